"""``diffusion``: our element-conditioned Stable Diffusion decoder (Sec. 3.3, App. C.1-C.2).

Runs :class:`elements.decoders.pipeline.ElementsPipeline`: SD-1.5 with extra cross-attention on the
element tokens, classifier-free guidance with equal weight on text and elements, w = 3 and
50 DDIM steps by default (App. C.2; :data:`elements.decoders.SAMPLER_DEFAULTS`). Needs SD-1.5 (``--sd-base`` / ``EIE_SD_BASE``), a stage-1
checkpoint (element UNet + adapter, usually with the content encoder; otherwise a stage-1
checkpoint supplies it); a GPU is advised.
"""

from __future__ import annotations

import numpy as np

from elements import defaults
from elements.decoders import Decoder, diffusers_call_kwargs, torch_device, weights_status
from elements.errors import UserError
from elements.pixels import to_uint8
from elements.types import ImageElements


class DiffusionDecoder(Decoder):
    """``diffusion``: the paper's decoder."""

    name = "diffusion"

    def __init__(
        self,
        *,
        sd_base: str | None = None,
        stage1: str | None = None,
        stage2: str | None = None,
        device: str | None = None,
        dtype=None,
    ) -> None:
        import torch

        from elements.decoders.pipeline import ElementsPipeline

        self.base = defaults.SD_BASE.get(sd_base)
        self.stage1 = defaults.STAGE1_CHECKPOINT.get(stage1)
        self.stage2 = defaults.STAGE2_CHECKPOINT.get(stage2)
        if not self.stage2:
            d = defaults.STAGE2_CHECKPOINT
            raise UserError(f"The diffusion decoder needs {d.what}; set {d.env} or pass its flag.")
        self.device = torch_device(device)
        self.dtype = dtype or (torch.float16 if self.device.startswith("cuda") else torch.float32)
        self.pipe = ElementsPipeline.from_elements_checkpoint(
            base=self.base, stage1=self.stage1, stage2=self.stage2, device=self.device, dtype=self.dtype
        )
        if hasattr(self.pipe, "set_progress_bar_config"):
            self.pipe.set_progress_bar_config(disable=True)

    @classmethod
    def availability(
        cls, sd_base: str | None = None, stage1: str | None = None, stage2: str | None = None, **_
    ) -> tuple[bool, str]:
        parts = [
            weights_status(defaults.SD_BASE.get(sd_base), what="Stable Diffusion 1.5 model", env=defaults.SD_BASE.env),
            weights_status(
                defaults.STAGE2_CHECKPOINT.get(stage2), what="stage-2 checkpoint", env=defaults.STAGE2_CHECKPOINT.env
            ),
        ]
        if defaults.STAGE1_CHECKPOINT.get(stage1):  # only needed when stage 2 carries no content encoder
            parts.append(
                weights_status(
                    defaults.STAGE1_CHECKPOINT.get(stage1),
                    what="stage-1 checkpoint",
                    env=defaults.STAGE1_CHECKPOINT.env,
                )
            )
        missing = [why for ok, why in parts if not ok]
        return (not missing), ("; ".join(missing) if missing else "; ".join(why for _, why in parts))

    def requirements(self) -> dict:
        weights = [f"Stable Diffusion 1.5 ({self.base})", f"stage-2 ({self.stage2})"]
        return {"weights": weights + ([f"stage-1 ({self.stage1})"] if self.stage1 else []), "gpu": "advised"}

    def describe(self) -> str:
        s1 = f", stage-1 {self.stage1}" if self.stage1 else ""
        return f"diffusion: element-conditioned SD decoder (Sec. 3.3), base {self.base}, stage-2 {self.stage2}{s1} on {self.device}"

    @property
    def encoder(self):
        """The frozen content encoder inside the pipeline, when it exposes one."""
        return getattr(self.pipe, "content_encoder", None)

    def decode_canvas(self, el: ImageElements, *, prompt, seed, steps, guidance, progress) -> np.ndarray:
        steps, guidance = self.sampler_settings(steps, guidance)
        out = self.pipe(
            el,
            prompt=prompt,
            num_inference_steps=steps,
            guidance_scale=guidance,
            output_type="np",
            **diffusers_call_kwargs(seed, progress),
        )
        return to_uint8(np.asarray(out.images[0]))  # (S, S, 3) float in [0, 1] -> uint8
