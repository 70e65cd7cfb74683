"""``light``: the stage-1 light transformer decoder (Sec. 3.2, App. C.1).

>>> dec = LightDecoder(stage1="runs/stage1")    # or get_decoder("light", stage1=...); a Hub id works too
>>> el = encode(el, dec.encoder)                 # embeddings once (encode once, edit many)
>>> image = dec(el)                              # (H_in, W_in, 3) uint8 at the input's size, .ran == "light"
>>> canvases = dec.decode([el, other])           # (B, 512, 512, 3) uint8 working canvases, decoded jointly

Reconstructs the canvas from the element tokens (content embedding + position/size), so it
follows moves, resizes and deletions; its output is blurry by design (trained with MSE only,
Sec. 3.3). :class:`LightDecoder` is the decoder; the network it runs is
:class:`~elements.models.light_decoder.LightDecoderNet`, with the stage-1 content encoder. Weights: a
stage-1 checkpoint (``--stage1`` / ``EIE_STAGE1_CHECKPOINT``) holding ``content_encoder/`` and
``light_decoder/`` written by ``save_pretrained`` (the training script's ``OUTPUT_DIR``,
``OUTPUT_DIR/checkpoint-<step>`` or a Hub repo with those subfolders).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from elements import defaults
from elements.decoders import Decoder, torch_device, weights_status
from elements.errors import UserError
from elements.types import ImageElements


def encode(el: ImageElements, encoder, batch_size: int = 1024) -> ImageElements:
    """Run the content encoder on every element's patch.

    Returns ``el.replace(embeddings=...)`` with ``(N, content_dim) float32`` embeddings (all
    elements, deleted ones too: deletion is applied when tokens are built).
    """
    import torch

    device = encoder.device
    patches = torch.from_numpy(el.patches)
    with torch.no_grad():
        chunks = [
            encoder(patches[i : i + batch_size].to(device)).float().cpu() for i in range(0, len(patches), batch_size)
        ]
    emb = torch.cat(chunks).numpy() if chunks else np.zeros((0, encoder.content_dim), dtype=np.float32)
    return el.replace(embeddings=np.ascontiguousarray(emb, dtype=np.float32))


def load_stage1(ref: str | None, *, device: str = "cpu", dtype=None) -> tuple:
    """``(content encoder, LightDecoderNet)`` in eval mode from a stage-1 checkpoint (local folder or Hub id,
    ``repo`` or ``repo:subfolder``; default ``EIE_STAGE1_CHECKPOINT``). UserError when it cannot be had."""
    import torch

    from elements.hub import resolve_folder
    from elements.models.content_encoder import CONTENT_ENCODER_DIR, ContentEncoder
    from elements.models.light_decoder import LIGHT_DECODER_DIR, LightDecoderNet

    d = defaults.STAGE1_CHECKPOINT
    ref = d.get(ref)
    what = "The stage-1 checkpoint (content encoder + light decoder)"
    if not ref:
        raise UserError(f"{what} is not set; pass --stage1 (a stage-1 output folder) or set {d.env}.")
    base, sub = resolve_folder(ref, what=what, env=d.env)
    root = Path(base) / sub if sub else Path(base)  # resolve_folder always yields a local folder
    models = []
    for klass, name in ((ContentEncoder, CONTENT_ENCODER_DIR), (LightDecoderNet, LIGHT_DECODER_DIR)):
        if not (root / name / "config.json").is_file():
            raise UserError(
                f"{what} at '{ref}' has no {name}/config.json; point to a stage-1 output or checkpoint folder."
            )
        try:
            model = klass.from_pretrained(str(root), subfolder=name, torch_dtype=dtype or torch.float32)
        except (OSError, ValueError, TypeError, KeyError) as err:
            raise UserError(
                f"{what} at '{ref}' could not be loaded from {name} ({type(err).__name__}: {err})."
            ) from err
        models.append(model.to(device).eval())
    return tuple(models)


class LightDecoder(Decoder):
    """``light``: stage-1 reconstruction. Elements without embeddings are encoded on the fly.

    ``encoder``: the stage-1 content encoder; ``net``: the :class:`LightDecoderNet` it feeds.
    """

    name = "light"

    def __init__(self, *, stage1: str | None = None, device: str | None = None, dtype=None) -> None:
        self.ref = defaults.STAGE1_CHECKPOINT.get(stage1)
        if not self.ref:  # fail before importing torch and the models
            raise UserError(
                f"The light decoder needs {defaults.STAGE1_CHECKPOINT.what}; pass --stage1 or set "
                f"{defaults.STAGE1_CHECKPOINT.env}."
            )
        self.device = torch_device(device)
        self.encoder, self.net = load_stage1(self.ref, device=self.device, dtype=dtype)

    @classmethod
    def from_pretrained(cls, ref: str | None = None, device: str = "cpu", dtype=None) -> LightDecoder:
        """The decoder of the stage-1 checkpoint ``ref`` (default ``EIE_STAGE1_CHECKPOINT``), on ``device``."""
        return cls(stage1=ref, device=device, dtype=dtype)

    @classmethod
    def availability(cls, stage1: str | None = None, **_) -> tuple[bool, str]:
        return weights_status(
            defaults.STAGE1_CHECKPOINT.get(stage1), what="stage-1 checkpoint", env=defaults.STAGE1_CHECKPOINT.env
        )

    def requirements(self) -> dict:
        return {"weights": [f"stage-1 checkpoint ({self.ref})"], "gpu": "no"}

    def describe(self) -> str:
        return f"light: stage-1 light transformer decoder (Sec. 3.2) from {self.ref} on {self.device}"

    def decode(self, els: list[ImageElements]) -> np.ndarray:
        """Reconstruct several element sets jointly: ``(B, S, S, 3) uint8`` canvases.

        Uses ``el.embeddings`` when present (else encodes the patches), the *edited*
        ``centroids``/``sizes`` and ``el.active`` (deleted elements are left out).
        """
        import torch

        from elements.models.tokens import tokens_from_embeddings
        from elements.pixels import SIGNED, to_uint8

        embeddings = [el.embeddings if el.embeddings is not None else encode(el, self.encoder).embeddings for el in els]
        with torch.no_grad():
            tokens, content, active = tokens_from_embeddings(
                els, embeddings, self.encoder.config.num_freqs, device=self.net.device, dtype=self.net.dtype
            )
            image = self.net(tokens, content, active).float()  # (B, 3, S', S') in [-1, 1]
            size = els[0].size
            if image.shape[-1] != size:
                image = torch.nn.functional.interpolate(image, size=(size, size), mode="bicubic", align_corners=False)
        return to_uint8(image, SIGNED).permute(0, 2, 3, 1).cpu().numpy()

    def decode_canvas(self, el: ImageElements, *, prompt, seed, steps, guidance, progress) -> np.ndarray:
        return self.decode([el])[0]  # deterministic: no sampling, prompt/seed/steps do not apply


__all__ = ["LightDecoder", "encode", "load_stage1"]
