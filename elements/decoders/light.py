"""``light``: the stage-1 light transformer decoder (Sec. 3.2, App. C.1).

Reconstructs the canvas from the element tokens (content embedding + position/size), so it
follows moves, resizes and deletions; its output is blurry by design (trained with MSE only,
Sec. 3.3). Weights: a stage-1 checkpoint (``--stage1`` / ``EIE_STAGE1_CHECKPOINT``) holding
``content_encoder/`` and ``light_decoder/``, loaded with
:meth:`elements.decoders.reconstruct.LightReconstructor.from_pretrained`.
"""

from __future__ import annotations

import numpy as np

from elements import defaults
from elements.decoders import Decoder, torch_device, weights_status
from elements.errors import UserError
from elements.types import ImageElements


class LightDecoder(Decoder):
    """``light``: stage-1 reconstruction. Elements without embeddings are encoded on the fly."""

    name = "light"

    def __init__(self, *, stage1: str | None = None, device: str | None = None) -> None:
        self.ref = defaults.STAGE1_CHECKPOINT.get(stage1)
        if not self.ref:  # fail before importing torch and the models
            raise UserError(
                f"The light decoder needs {defaults.STAGE1_CHECKPOINT.what}; pass --stage1 or set "
                f"{defaults.STAGE1_CHECKPOINT.env}."
            )
        from elements.decoders.reconstruct import LightReconstructor

        self.device = torch_device(device)
        self.model = LightReconstructor.from_pretrained(self.ref, device=self.device)  # UserError if missing

    @classmethod
    def availability(cls, stage1: str | None = None, **_) -> tuple[bool, str]:
        return weights_status(
            defaults.STAGE1_CHECKPOINT.get(stage1), what="stage-1 checkpoint", env=defaults.STAGE1_CHECKPOINT.env
        )

    def requirements(self) -> dict:
        return {"weights": [f"stage-1 checkpoint ({self.ref})"], "gpu": "no"}

    def describe(self) -> str:
        return f"light: stage-1 light transformer decoder (Sec. 3.2) from {self.ref} on {self.device}"

    @property
    def encoder(self):
        """The stage-1 content encoder (for :class:`elements.editor.EditorSession` to encode once)."""
        return self.model.encoder

    def decode_canvas(self, el: ImageElements, *, prompt, seed, steps, guidance, progress) -> np.ndarray:
        return self.model(el)  # deterministic: no sampling, prompt/seed/steps do not apply
