"""``pixel+inpaint``: pixel editing, then the holes are filled (App. A) — at full resolution.

Steps, on the output grid (the input's decoded full resolution, :func:`elements.decoders.pixel.render`):

1. **Pixel editing** (App. A): every element's pixels copied to its edited place and size.
2. **Hole band** (:func:`elements.decoders.blend.ghost_band`): vacated holes grow into the
   leftovers of the removed object in neighbouring unselected elements, so no ghost is filled in.
3. **Filling**, by one of three back-ends (``backend=``):

   * ``"sd"`` — Stable Diffusion Inpainting (diffusers ``StableDiffusionInpaintPipeline``, model
     :data:`elements.defaults.SD_INPAINT`). App. A notes that SD-Inpaint handles the small gaps
     between patches badly, so "we run the morphological operation on the masks to fill in the
     gaps first": :func:`split_holes` closes the covered mask; the thin gaps it fills are filled
     classically, and only the remaining holes go to the model, which works on the 512 canvas;
     its fill is upsampled and pasted into the (slightly dilated) holes only.
   * ``"patchmatch"`` — PatchMatch (:mod:`elements.decoders.holefill`): the offline CPU default;
     continues texture, seeded, never copies from the moved elements.
   * ``"telea"`` — OpenCV's Telea inpainting: the previous CPU default, kept for comparison (a
     smear on large holes). ``"opencv"`` is accepted as its old name.

   ``"auto"`` (default) uses ``sd`` when the SD-Inpaint weights can be had, else ``patchmatch``
   (``telea`` if the PatchMatch library cannot load).
4. **Seamless placement** (:func:`elements.decoders.blend.place_seamless`, ``blend=True``): moved,
   resized and composed elements are Poisson-blended into their new surroundings.

Pixels outside the holes, the hole band and the edited elements' footprints are the input's own
pixels, exactly. The output has no hole pixels; its ``ran`` names the engine that ran.
"""

from __future__ import annotations

import cv2
import numpy as np

from elements import defaults
from elements.decoders import diffusers_call_kwargs, load_sd_pipeline, weights_status
from elements.decoders.blend import ghost_band, place_seamless
from elements.decoders.holefill import ENGINE_NAMES, check_engine, fill_holes, patchmatch_status
from elements.decoders.pixel import FullResDecoder, grid_to_canvas, render
from elements.errors import UserError
from elements.pixels import to_uint8
from elements.types import ImageElements

BACKENDS = ("auto", "sd", "patchmatch", "telea", "opencv")
#: Closing kernel (canvas pixels, ellipse) that decides what counts as a "small gap" between patches.
#: App. A gives no size; 5 px closes the 1-2 px cracks that resizing leaves between elements.
GAP_KERNEL = 5
#: Telea inpainting radius (canvas pixels): the neighbourhood each filled pixel averages over.
TELEA_RADIUS = 5
#: SD-Inpaint's mask is dilated by this many canvas pixels so its output blends over the hole's border.
MASK_DILATION = 4


def split_holes(holes: np.ndarray, content: np.ndarray, kernel: int = GAP_KERNEL) -> tuple[np.ndarray, np.ndarray]:
    """Split ``holes (H, W) bool`` into (small gaps, large holes) by closing the covered mask.

    A hole pixel is a *small gap* when the morphological closing of the covered content
    (``content & ~holes``) with a ``kernel``-pixel ellipse covers it.
    """
    covered = (content & ~holes).astype(np.uint8)
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (kernel, kernel))
    closed = cv2.morphologyEx(covered, cv2.MORPH_CLOSE, k).astype(bool)
    small = holes & closed
    return small, holes & ~small


def default_engine() -> str:
    """The CPU engine ``auto`` picks: PatchMatch when its library loads, else Telea."""
    return "patchmatch" if patchmatch_status()[0] else "telea"


class InpaintDecoder(FullResDecoder):
    """``pixel+inpaint`` (App. A), with a hole band against ghosts and seamless placement."""

    name = "pixel+inpaint"

    def __init__(
        self,
        *,
        backend: str = "auto",
        sd_inpaint: str | None = None,
        device: str | None = None,
        dtype=None,
        gap_kernel: int = GAP_KERNEL,
        radius: int = TELEA_RADIUS,
        blend: bool = True,
        hole_band: bool = True,
        full_res: bool = True,
    ) -> None:
        if backend not in BACKENDS:
            raise UserError(f"Unknown inpainting backend '{backend}'; choose auto, sd, patchmatch or telea.")
        if int(gap_kernel) < 1 or int(radius) < 1:
            raise UserError("The gap kernel and the inpainting radius must be at least 1 pixel.")
        backend = "telea" if backend == "opencv" else backend
        self.ref = defaults.SD_INPAINT.get(sd_inpaint)
        ok, self.reason = (
            weights_status(self.ref, what="SD-Inpaint model", env=defaults.SD_INPAINT.env)
            if backend in ("auto", "sd")
            else (False, "")
        )
        if backend == "sd" and not ok:
            raise UserError(f"The SD-Inpaint back-end cannot run: {self.reason}.")
        if backend in ("patchmatch", "telea"):
            check_engine(backend)
        self.backend = (
            "sd"
            if (backend == "sd" or (backend == "auto" and ok))
            else (default_engine() if backend == "auto" else backend)
        )
        self.engine = "telea" if self.backend == "telea" else default_engine() if self.backend == "sd" else self.backend
        self.device, self.dtype = device, dtype
        self.gap_kernel, self.radius = int(gap_kernel), int(radius)
        self.blend, self.hole_band, self.full_res = bool(blend), bool(hole_band), bool(full_res)
        self._pipe = None

    @classmethod
    def availability(cls, sd_inpaint: str | None = None, **_) -> tuple[bool, str]:
        ok, why = weights_status(
            defaults.SD_INPAINT.get(sd_inpaint), what="SD-Inpaint model", env=defaults.SD_INPAINT.env
        )
        if ok:
            return True, f"SD-Inpaint: {why}"
        engine = default_engine()
        return True, f"{ENGINE_NAMES[engine]} hole filling on the CPU ({why})"

    def requirements(self) -> dict:
        if self.backend == "sd":
            return {"weights": [f"SD-Inpaint ({self.ref})"], "gpu": "advised"}
        return {"weights": [], "gpu": "no"}

    @property
    def ran(self) -> str:
        """What runs, as results name it: ``pixel+inpaint (PatchMatch)``, ``(Telea)`` or ``(SD-Inpaint)``."""
        return f"{self.name} ({'SD-Inpaint' if self.backend == 'sd' else ENGINE_NAMES[self.backend]})"

    def describe(self) -> str:
        extras = ", hole band" * self.hole_band + ", Poisson placement of moved elements" * self.blend
        if self.backend == "sd":
            return (
                f"pixel+inpaint: pixel editing (App. A) at full resolution + gap closing ({self.gap_kernel} px) + "
                f"SD-Inpaint {self.ref}{extras}"
            )
        what = {"patchmatch": "PatchMatch hole filling", "telea": f"OpenCV Telea inpainting (radius {self.radius} px)"}[
            self.backend
        ]
        return f"pixel+inpaint: pixel editing (App. A) at full resolution + {what} on the CPU{extras}"

    def pipeline(self):
        if self._pipe is None:
            self._pipe = load_sd_pipeline(
                "StableDiffusionInpaintPipeline",
                self.ref,
                what="SD-Inpaint model",
                env=defaults.SD_INPAINT.env,
                device=self.device,
                dtype=self.dtype,
            )
        return self._pipe

    def decode_grid(self, el: ImageElements, *, full_res, prompt, seed, steps, guidance, progress):
        r = render(el, full_res=full_res)
        gs = r.holes.shape[1] / el.geometry.content_w  # output-grid pixels per canvas pixel
        band = ghost_band(r, el, gs) if self.hole_band else np.zeros_like(r.holes)
        holes = r.holes | band
        exclude = r.edited_cover
        h, w = holes.shape
        if self.backend == "sd":
            image, note = self._sd_fill(
                el,
                r.image,
                holes,
                exclude,
                gs,
                prompt=prompt,
                seed=seed,
                steps=steps,
                guidance=guidance,
                progress=progress,
            )
        else:
            radius_scale = gs * self.radius / TELEA_RADIUS if self.backend == "telea" else gs
            image, report = fill_holes(
                r.image, holes, engine=self.backend, seed=seed, exclude=exclude, grid_scale=radius_scale
            )
            note = report.note((h, w))
        if self.blend and any(layer.edited for layer in r.layers):
            image, n = place_seamless(image, r, gs)
            note += "; moved elements Poisson-blended" if n else ""
        if not r.full_res:
            note += (
                f" (canvas resolution {w}x{h}: {'no full-resolution pixels saved' if full_res else 'full_res=False'})"
            )
        return image, self.ran, note

    def _sd_fill(self, el, image, holes, exclude, gs, *, prompt, seed, steps, guidance, progress):
        """Small gaps classically at full resolution; the rest by SD-Inpaint on the canvas, upsampled."""
        small, large = split_holes(holes, np.ones_like(holes), max(1, round(self.gap_kernel * gs)))
        image, _ = fill_holes(image, small, engine=self.engine, seed=seed, exclude=exclude, grid_scale=gs)
        if not large.any():
            return image, f"gaps filled by {ENGINE_NAMES[self.engine]}; no large hole for SD-Inpaint"
        from PIL import Image

        g = el.geometry
        s = el.size
        canvas = grid_to_canvas(image, el)
        large_c = grid_to_canvas(np.repeat(large[..., None].astype(np.uint8) * 255, 3, -1), el, fill=0)[..., 0] > 0
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * MASK_DILATION + 1,) * 2)
        mask_c = cv2.dilate(large_c.astype(np.uint8), k).astype(bool) & g.content_mask()
        steps, guidance = self.sampler_settings(steps, guidance)
        result = self.pipeline()(
            prompt=prompt,
            image=Image.fromarray(canvas),
            mask_image=Image.fromarray(mask_c.astype(np.uint8) * 255),
            height=s,
            width=s,
            num_inference_steps=steps,
            guidance_scale=guidance,
            output_type="np",
            **diffusers_call_kwargs(seed, progress),
        ).images[0]
        generated = to_uint8(np.asarray(result, dtype=np.float32))
        crop = generated[g.content_y : g.content_y + g.content_h, g.content_x : g.content_x + g.content_w]
        h, w = holes.shape
        up = (
            cv2.resize(np.ascontiguousarray(crop), (w, h), interpolation=cv2.INTER_CUBIC)
            if (w, h) != (g.content_w, g.content_h)
            else crop
        )
        reach = cv2.dilate(large.astype(np.uint8), _disk(MASK_DILATION * gs)).astype(bool) & ~exclude
        note = f"holes filled by SD-Inpaint on the {s}-px canvas" + (
            ", upsampled" if (w, h) != (g.content_w, g.content_h) else ""
        )
        return np.where(reach[..., None], up, image), note


def _disk(radius: float) -> np.ndarray:
    r = max(1, round(radius))
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
