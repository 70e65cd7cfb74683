"""``pixel+sdedit``: pixel editing, then SDEdit with Stable Diffusion 1.5 (App. A).

"We provide the masked pixel editing results as input, where the source region is left blank
instead of maintaining the original pixels", noise it to an intermediate time step and run the
reverse process (diffusers ``StableDiffusionImg2ImgPipeline``; ``strength`` = fraction of the
schedule that is re-run). App. A tries 0.5, 0.7 and 0.9 and finds no single best value; the
paper compares on SD-1.5 (:data:`elements.defaults.SD_BASE`).
"""

from __future__ import annotations

import numpy as np

from elements import defaults
from elements.decoders import Decoder, diffusers_call_kwargs, load_sd_pipeline, weights_status
from elements.decoders.pixel import pixel_edit
from elements.errors import UserError
from elements.pixels import to_uint8
from elements.types import ImageElements

PAPER_STRENGTHS = (0.5, 0.7, 0.9)  # App. A
DEFAULT_STRENGTH = 0.7  # the middle of App. A's sweep


class SDEditDecoder(Decoder):
    """``pixel+sdedit`` (App. A). ``strength`` in (0, 1]; the paper's values are 0.5, 0.7, 0.9."""

    name = "pixel+sdedit"

    def __init__(
        self, *, strength: float = DEFAULT_STRENGTH, sd_base: str | None = None, device: str | None = None, dtype=None
    ) -> None:
        strength = float(strength)
        if not (np.isfinite(strength) and 0 < strength <= 1):
            raise UserError(f"SDEdit strength must lie in (0, 1] (the paper uses 0.5, 0.7, 0.9), got {strength:g}.")
        self.strength = strength
        self.ref = defaults.SD_BASE.get(sd_base)
        ok, reason = weights_status(self.ref, what="Stable Diffusion 1.5 model", env=defaults.SD_BASE.env)
        if not ok:
            raise UserError(f"The pixel+sdedit decoder cannot run: {reason}.")
        self.device, self.dtype = device, dtype
        self._pipe = None

    @classmethod
    def availability(cls, sd_base: str | None = None, **_) -> tuple[bool, str]:
        return weights_status(
            defaults.SD_BASE.get(sd_base), what="Stable Diffusion 1.5 model", env=defaults.SD_BASE.env
        )

    def requirements(self) -> dict:
        return {"weights": [f"Stable Diffusion 1.5 ({self.ref})"], "gpu": "advised"}

    @property
    def ran(self) -> str:
        return f"{self.name} (SDEdit, strength {self.strength:g})"

    def describe(self) -> str:
        return f"pixel+sdedit: pixel editing (App. A) + SDEdit strength {self.strength:g} with {self.ref}"

    def pipeline(self):
        if self._pipe is None:
            self._pipe = load_sd_pipeline(
                "StableDiffusionImg2ImgPipeline",
                self.ref,
                what="Stable Diffusion 1.5 model",
                env=defaults.SD_BASE.env,
                device=self.device,
                dtype=self.dtype,
            )
        return self._pipe

    def decode_canvas(self, el: ImageElements, *, prompt, seed, steps, guidance, progress) -> np.ndarray:
        from PIL import Image

        image, _ = pixel_edit(el)  # holes stay black: "the source region is left blank"
        steps, guidance = self.sampler_settings(steps, guidance)
        result = self.pipeline()(
            prompt=prompt,
            image=Image.fromarray(image),
            strength=self.strength,
            # img2img runs int(steps * strength) steps; keep at least one
            num_inference_steps=max(steps, int(np.ceil(1.0 / self.strength))),
            guidance_scale=guidance,
            output_type="np",
            **diffusers_call_kwargs(seed, progress),
        ).images[0]
        return to_uint8(np.asarray(result))
