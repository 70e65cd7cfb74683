"""``pixel+inpaint``: pixel editing, then the holes are filled (App. A).

Two back-ends, chosen by ``backend=``:

* ``"sd"`` — Stable Diffusion Inpainting (diffusers ``StableDiffusionInpaintPipeline``, model
  :data:`elements.defaults.SD_INPAINT`). App. A notes that SD-Inpaint handles the small gaps
  between patches badly, so "we run the morphological operation on the masks to fill in the
  gaps first": :func:`split_holes` closes the covered mask; the thin gaps it fills are filled
  classically, and only the remaining holes go to the diffusion model. The model's output is
  pasted back inside the (slightly dilated) hole mask only, so every other pixel is exactly
  the pixel-editing result.
* ``"opencv"`` — classical inpainting (``cv2.inpaint``, Telea's fast-marching method), the
  offline CPU default: no weights, deterministic, a few hundred ms.

``"auto"`` (default) uses ``sd`` when the SD-Inpaint weights can be had, else ``opencv``.
Either way the output has no hole pixels.
"""

from __future__ import annotations

import cv2
import numpy as np

from elements import defaults
from elements.decoders import Decoder, diffusers_call_kwargs, load_sd_pipeline, weights_status
from elements.decoders.pixel import pixel_edit
from elements.errors import UserError
from elements.types import ImageElements

#: Closing kernel (pixels, ellipse) that decides what counts as a "small gap" between patches.
#: App. A gives no size; 5 px closes the 1-2 px cracks that resizing leaves between elements.
GAP_KERNEL = 5
#: Telea inpainting radius (pixels): the neighbourhood each filled pixel averages over.
TELEA_RADIUS = 5
#: SD-Inpaint's mask is dilated by this many pixels so its output blends over the hole's border.
MASK_DILATION = 4
DEFAULT_STEPS = 50  # same sampler budget as our decoder, Sec. 3.3 / App. C.2
DEFAULT_GUIDANCE = 7.5  # diffusers' default for SD-Inpaint; App. A does not state one


def split_holes(holes: np.ndarray, content: np.ndarray, kernel: int = GAP_KERNEL) -> tuple[np.ndarray, np.ndarray]:
    """Split ``holes (S, S) bool`` into (small gaps, large holes) by closing the covered mask.

    A hole pixel is a *small gap* when the morphological closing of the covered content
    (``content & ~holes``) with a ``kernel``-pixel ellipse covers it.
    """
    covered = (content & ~holes).astype(np.uint8)
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (kernel, kernel))
    closed = cv2.morphologyEx(covered, cv2.MORPH_CLOSE, k).astype(bool)
    small = holes & closed
    return small, holes & ~small


def telea_fill(image: np.ndarray, holes: np.ndarray, content_box: tuple[int, int, int, int], radius: int = TELEA_RADIUS) -> np.ndarray:
    """Fill ``holes`` of ``image (S, S, 3) uint8`` with ``cv2.inpaint`` (Telea) inside ``content_box`` (x, y, w, h).

    Working on the content box alone keeps the black letterbox padding from bleeding in.
    """
    out = image.copy()
    if not holes.any():
        return out
    x, y, w, h = content_box
    crop = np.ascontiguousarray(image[y : y + h, x : x + w])
    mask = holes[y : y + h, x : x + w].astype(np.uint8) * 255
    if mask.all():  # nothing to propagate from: a flat mid-grey is the least wrong answer
        out[y : y + h, x : x + w] = 127
        return out
    out[y : y + h, x : x + w] = cv2.inpaint(crop, mask, radius, cv2.INPAINT_TELEA)
    return out


class InpaintDecoder(Decoder):
    """``pixel+inpaint`` (App. A)."""

    name = "pixel+inpaint"

    def __init__(self, *, backend: str = "auto", sd_inpaint: str | None = None, device: str | None = None,
                 dtype=None, gap_kernel: int = GAP_KERNEL, radius: int = TELEA_RADIUS) -> None:
        if backend not in ("auto", "sd", "opencv"):
            raise UserError(f"Unknown inpainting backend '{backend}'; choose auto, sd or opencv.")
        if int(gap_kernel) < 1 or int(radius) < 1:
            raise UserError("The gap kernel and the inpainting radius must be at least 1 pixel.")
        self.ref = defaults.SD_INPAINT.get(sd_inpaint)
        ok, self.reason = weights_status(self.ref, what="SD-Inpaint model", env=defaults.SD_INPAINT.env)
        if backend == "sd" and not ok:
            raise UserError(f"The SD-Inpaint back-end cannot run: {self.reason}.")
        self.backend = "sd" if (backend == "sd" or (backend == "auto" and ok)) else "opencv"
        self.device, self.dtype = device, dtype
        self.gap_kernel, self.radius = int(gap_kernel), int(radius)
        self._pipe = None

    @classmethod
    def availability(cls, sd_inpaint: str | None = None, **_) -> tuple[bool, str]:
        ok, why = weights_status(defaults.SD_INPAINT.get(sd_inpaint), what="SD-Inpaint model", env=defaults.SD_INPAINT.env)
        return True, (f"SD-Inpaint: {why}" if ok else f"OpenCV Telea inpainting ({why})")

    def requirements(self) -> dict:
        if self.backend == "sd":
            return {"weights": [f"SD-Inpaint ({self.ref})"], "gpu": "advised"}
        return {"weights": [], "gpu": "no"}

    def describe(self) -> str:
        if self.backend == "sd":
            return f"pixel+inpaint: pixel editing (App. A) + gap closing ({self.gap_kernel} px) + SD-Inpaint {self.ref}"
        return f"pixel+inpaint: pixel editing (App. A) + OpenCV Telea inpainting (radius {self.radius} px; offline CPU fallback)"

    def pipeline(self):
        if self._pipe is None:
            self._pipe = load_sd_pipeline("StableDiffusionInpaintPipeline", self.ref, what="SD-Inpaint model",
                                          env=defaults.SD_INPAINT.env, device=self.device, dtype=self.dtype)
        return self._pipe

    def decode_canvas(self, el: ImageElements, *, prompt, seed, steps, guidance, progress) -> np.ndarray:
        image, holes = pixel_edit(el)
        g = el.geometry
        box = (g.content_x, g.content_y, g.content_w, g.content_h)
        if self.backend == "opencv":
            return telea_fill(image, holes, box, self.radius)
        small, large = split_holes(holes, g.content_mask(), self.gap_kernel)
        image = telea_fill(image, small, box, max(1, self.gap_kernel // 2))
        if not large.any():
            return image
        from PIL import Image

        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * MASK_DILATION + 1,) * 2)
        mask = cv2.dilate(large.astype(np.uint8), k).astype(bool) & g.content_mask()
        s = el.size
        result = self.pipeline()(
            prompt=prompt, image=Image.fromarray(image), mask_image=Image.fromarray(mask.astype(np.uint8) * 255),
            height=s, width=s, num_inference_steps=int(steps or DEFAULT_STEPS),
            guidance_scale=float(DEFAULT_GUIDANCE if guidance is None else guidance), output_type="np",
            **diffusers_call_kwargs(seed, progress),
        ).images[0]
        generated = np.clip(np.rint(np.asarray(result, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)
        return np.where(mask[..., None], generated, image)
