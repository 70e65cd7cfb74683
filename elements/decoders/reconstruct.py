"""Encoding elements and reconstructing an image with the stage-1 light decoder (Sec. 3.2).

>>> rec = LightReconstructor.from_pretrained("runs/stage1/checkpoint-5000")   # or a Hub id
>>> el = encode(el, rec.encoder)          # embeddings once (encode once, edit many)
>>> canvas = rec(el)                      # (512, 512, 3) uint8, respects edits and deletions

A stage-1 folder holds ``content_encoder/`` and ``light_decoder/`` written by
``save_pretrained`` (the training script's ``OUTPUT_DIR``, ``OUTPUT_DIR/checkpoint-<step>``
or a Hub repo with those subfolders).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from elements.errors import UserError
from elements.pixels import SIGNED, to_uint8
from elements.types import ImageElements


@torch.no_grad()
def encode(el: ImageElements, encoder, batch_size: int = 1024) -> ImageElements:
    """Run the content encoder on every element's patch.

    Returns ``el.replace(embeddings=...)`` with ``(N, content_dim) float32`` embeddings (all
    elements, deleted ones too: deletion is applied when tokens are built).
    """
    device = encoder.device
    patches = torch.from_numpy(el.patches)
    chunks = [encoder(patches[i : i + batch_size].to(device)).float().cpu() for i in range(0, len(patches), batch_size)]
    emb = torch.cat(chunks).numpy() if chunks else np.zeros((0, encoder.content_dim), dtype=np.float32)
    return el.replace(embeddings=np.ascontiguousarray(emb, dtype=np.float32))


class LightReconstructor:
    """A content encoder and light decoder pair, loaded once per process."""

    def __init__(self, encoder, decoder) -> None:
        self.encoder = encoder.eval()
        self.decoder = decoder.eval()

    @property
    def device(self) -> torch.device:
        return self.decoder.device

    @classmethod
    def from_pretrained(
        cls, ref: str | None = None, device: str = "cpu", dtype: torch.dtype = torch.float32
    ) -> LightReconstructor:
        """Load a stage-1 checkpoint from a local folder or Hub id (``repo`` or ``repo:subfolder``).

        ``ref`` defaults to ``EIE_STAGE1_CHECKPOINT``; a missing or unreachable checkpoint raises
        :class:`~elements.errors.UserError`.
        """
        from elements.defaults import STAGE1_CHECKPOINT
        from elements.hub import resolve_folder
        from elements.models.content_encoder import CONTENT_ENCODER_DIR, ContentEncoder
        from elements.models.light_decoder import LIGHT_DECODER_DIR, LightDecoderNet

        ref = STAGE1_CHECKPOINT.get(ref)
        what = "The stage-1 checkpoint (content encoder + light decoder)"
        if not ref:
            raise UserError(f"{what} is not set; pass a stage-1 output folder or set {STAGE1_CHECKPOINT.env}.")
        base, sub = resolve_folder(ref, what=what, env=STAGE1_CHECKPOINT.env)
        root = Path(base) / sub if sub else Path(base)  # resolve_folder always yields a local folder
        models = []
        for klass, name in ((ContentEncoder, CONTENT_ENCODER_DIR), (LightDecoderNet, LIGHT_DECODER_DIR)):
            if not (root / name / "config.json").is_file():
                raise UserError(
                    f"{what} at '{ref}' has no {name}/config.json; point to a stage-1 output or checkpoint folder."
                )
            try:
                models.append(klass.from_pretrained(str(root), subfolder=name, torch_dtype=dtype).to(device))
            except (OSError, ValueError, TypeError, KeyError) as err:
                raise UserError(
                    f"{what} at '{ref}' could not be loaded from {name} ({type(err).__name__}: {err})."
                ) from err
        return cls(*models)

    @torch.no_grad()
    def decode(self, els: list[ImageElements]) -> np.ndarray:
        """Reconstruct several element sets jointly: ``(B, S, S, 3) uint8`` canvases."""
        from elements.models.tokens import tokens_from_embeddings

        embeddings = [el.embeddings if el.embeddings is not None else encode(el, self.encoder).embeddings for el in els]
        tokens, content, active = tokens_from_embeddings(
            els, embeddings, self.encoder.config.num_freqs, device=self.device, dtype=self.decoder.dtype
        )
        image = self.decoder(tokens, content, active).float()  # (B, 3, S', S') in [-1, 1]
        size = els[0].size
        if image.shape[-1] != size:
            image = torch.nn.functional.interpolate(image, size=(size, size), mode="bicubic", align_corners=False)
        return to_uint8(image, SIGNED).permute(0, 2, 3, 1).cpu().numpy()

    def __call__(self, el: ImageElements) -> np.ndarray:
        """Reconstruct one image from its (possibly edited) elements: ``(S, S, 3) uint8`` canvas.

        Uses ``el.embeddings`` when present (else encodes the patches), the *edited*
        ``centroids``/``sizes`` and ``el.active`` (deleted elements are left out).
        """
        return self.decode([el])[0]
