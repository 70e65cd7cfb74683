"""Classical hole filling on the CPU: PatchMatch (default) and Telea, bounded in time.

Engines (``engine=``):

* ``"patchmatch"`` — PatchMatch (Barnes et al., SIGGRAPH 2009) from the ``pypatchmatch``
  package: each hole pixel copies a patch of the known image around it, found by randomised
  nearest-neighbour search over a coarse-to-fine pyramid. It continues *texture* (sky, fabric,
  wood grain) but not *structure*: an edge crossing the hole may break. Seeded, so a seed gives
  the same output. Pixels in ``exclude`` are neither filled nor copied from (moved elements, so
  that a vacated region is never filled with the object that left it).
* ``"telea"`` — OpenCV's fast-marching inpainting (``cv2.inpaint``): diffuses colour inward from
  the hole's border; a smear on anything wider than a few pixels. ``exclude`` is honoured by
  filling it too and putting it back.

Bounded cost: holes are grouped into **windows** (each hole's bounding box grown by
:data:`CONTEXT` of its size, at least :data:`MIN_CONTEXT` pixels; overlapping windows merged).
A window is filled at full resolution when it holds at most :data:`FULL_RES_BUDGET` pixels,
otherwise at a scale that fits the budget, but never coarser than the 512 canvas (Sec. 3.1) —
then the fill is upsampled and pasted into the full-resolution hole. Only hole pixels change.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import cv2
import numpy as np

from elements.errors import UserError

ENGINES = ("patchmatch", "telea")
ENGINE_NAMES = {"patchmatch": "PatchMatch", "telea": "Telea"}
#: PatchMatch patch radius: 5 x 5 patches. pypatchmatch's examples use 3 (7 x 7); on our test holes
#: (mission patch, spoon, rocket) radius 2 looked as good or better at about half the time.
PATCH_RADIUS = 2
#: A window with at most this many pixels is filled at full resolution (~0.5 s for PatchMatch on one core).
FULL_RES_BUDGET = 256 * 256
#: Context around a hole that PatchMatch copies from: this fraction of the hole's bounding-box side...
CONTEXT = 0.25
#: ...and at least this many canvas pixels (scaled to the output grid).
MIN_CONTEXT = 24
#: Telea inpainting radius in canvas pixels (scaled to the output grid): the neighbourhood each pixel averages.
TELEA_RADIUS = 5

_PM_LOCK = threading.Lock()  # pypatchmatch keeps its seed in process-wide native state


def patchmatch_status() -> tuple[bool, str]:
    """(can PatchMatch run here, one-line reason)."""
    try:
        import patchmatch
    except ImportError:
        return False, "the pypatchmatch package is not installed (pip install -r requirements.txt)"
    if not patchmatch.patchmatch_available:
        return False, "pypatchmatch's native library could not be loaded"
    return True, "pypatchmatch"


def check_engine(engine: str) -> str:
    """``engine`` if it is known and can run here, else a UserError saying why."""
    if engine not in ENGINES:
        raise UserError(f"Unknown hole-filling engine '{engine}'; choose {' or '.join(ENGINES)}.")
    if engine == "patchmatch":
        ok, why = patchmatch_status()
        if not ok:
            raise UserError(f"PatchMatch hole filling cannot run: {why}.")
    return engine


@dataclass(frozen=True)
class FillReport:
    """How a fill ran: the engine, and the coarsest scale a window was filled at (1.0 = full resolution)."""

    engine: str
    windows: int
    min_scale: float

    def note(self, shape: tuple[int, int]) -> str:
        h, w = shape
        if self.windows == 0:
            return "no holes to fill"
        if self.min_scale >= 1.0:
            return f"holes filled by {ENGINE_NAMES[self.engine]} at full resolution ({w}x{h})"
        return (
            f"holes filled by {ENGINE_NAMES[self.engine]} at {self.min_scale:.2f}x of {w}x{h} "
            "(large hole), the fill upsampled"
        )


def hole_windows(holes: np.ndarray, margin_min: int) -> list[tuple[int, int, int, int]]:
    """Windows ``(x0, y0, x1, y1)`` (end-exclusive) covering every hole with context; disjoint after merging."""
    n, _, stats, _ = cv2.connectedComponentsWithStats(holes.astype(np.uint8), connectivity=8)
    h, w = holes.shape
    boxes = []
    for x, y, bw, bh, _ in stats[1:n]:
        m = max(margin_min, round(CONTEXT * max(bw, bh)))
        boxes.append([max(0, x - m), max(0, y - m), min(w, x + bw + m), min(h, y + bh + m)])
    merged = True
    while merged:  # merge overlapping windows until none overlap
        merged = False
        out: list[list[int]] = []
        for b in boxes:
            for o in out:
                if b[0] < o[2] and o[0] < b[2] and b[1] < o[3] and o[1] < b[3]:
                    o[:] = [min(o[0], b[0]), min(o[1], b[1]), max(o[2], b[2]), max(o[3], b[3])]
                    merged = True
                    break
            else:
                out.append(list(b))
        boxes = out
    return [tuple(b) for b in sorted(boxes)]


def _patchmatch(image: np.ndarray, holes: np.ndarray, exclude: np.ndarray, seed: int) -> np.ndarray:
    import patchmatch

    known = ~(holes | exclude)
    if not known.any():  # nothing to copy from: a flat mid-grey is the least wrong answer
        out = image.copy()
        out[holes] = 127
        return out
    with _PM_LOCK:
        patchmatch.set_random_seed(int(seed))
        return patchmatch.inpaint(
            image, holes, global_mask=exclude & ~holes if exclude.any() else None, patch_size=PATCH_RADIUS
        )


def _telea(image: np.ndarray, holes: np.ndarray, exclude: np.ndarray, radius: float) -> np.ndarray:
    mask = holes | exclude
    if mask.all():
        out = image.copy()
        out[holes] = 127
        return out
    filled = cv2.inpaint(np.ascontiguousarray(image), mask.astype(np.uint8) * 255, max(1.0, radius), cv2.INPAINT_TELEA)
    return np.where(holes[..., None], filled, image)


def fill_holes(
    image: np.ndarray,
    holes: np.ndarray,
    *,
    engine: str = "patchmatch",
    seed: int = 0,
    exclude: np.ndarray | None = None,
    grid_scale: float = 1.0,
) -> tuple[np.ndarray, FillReport]:
    """Fill ``holes (H, W) bool`` of ``image (H, W, 3) uint8``; every other pixel is returned unchanged.

    ``exclude (H, W) bool``: pixels the fill must not copy from (and does not change).
    ``grid_scale``: output-grid pixels per canvas pixel (1 on the canvas, 2 for a 1024-px input); it
    scales the context margin and the Telea radius, and sets the coarsest scale a window is filled at.
    Deterministic for a given ``seed``.
    """
    check_engine(engine)
    holes = np.asarray(holes, dtype=bool)
    exclude = np.zeros_like(holes) if exclude is None else (np.asarray(exclude, dtype=bool) & ~holes)
    out = image.copy()
    if not holes.any():
        return out, FillReport(engine, 0, 1.0)
    if engine == "telea":  # cheap at any size: one pass over the whole image
        return _telea(image, holes, exclude, TELEA_RADIUS * grid_scale), FillReport(engine, 1, 1.0)
    floor_scale = min(1.0, 1.0 / max(grid_scale, 1e-6))  # never coarser than the canvas
    windows = hole_windows(holes, round(MIN_CONTEXT * grid_scale))
    min_scale = 1.0
    for k, (x0, y0, x1, y1) in enumerate(windows):
        crop, hole, excl = image[y0:y1, x0:x1], holes[y0:y1, x0:x1], exclude[y0:y1, x0:x1]
        area = (x1 - x0) * (y1 - y0)
        scale = 1.0 if area <= FULL_RES_BUDGET else max(floor_scale, float(np.sqrt(FULL_RES_BUDGET / area)))
        if scale >= 1.0:
            filled = _patchmatch(np.ascontiguousarray(crop), hole, excl, seed + k)
        else:
            sw, sh = max(8, round((x1 - x0) * scale)), max(8, round((y1 - y0) * scale))
            small = cv2.resize(np.ascontiguousarray(crop), (sw, sh), interpolation=cv2.INTER_AREA)
            # a small pixel that holds any hole is a hole; any excluded (and no hole) pixel is excluded
            s_hole = cv2.resize(hole.astype(np.float32), (sw, sh), interpolation=cv2.INTER_AREA) > 0
            s_excl = (cv2.resize(excl.astype(np.float32), (sw, sh), interpolation=cv2.INTER_AREA) > 0) & ~s_hole
            s_fill = _patchmatch(small, s_hole, s_excl, seed + k)
            if s_excl.any():  # keep excluded colours (a moved object) from bleeding into the upsampled fill
                s_fill = cv2.inpaint(s_fill, s_excl.astype(np.uint8) * 255, 2, cv2.INPAINT_TELEA)
            filled = cv2.resize(s_fill, (x1 - x0, y1 - y0), interpolation=cv2.INTER_CUBIC)
            min_scale = min(min_scale, scale)
        out[y0:y1, x0:x1][hole] = filled[hole]
    return out, FillReport(engine, len(windows), min_scale)


__all__ = [
    "CONTEXT",
    "ENGINES",
    "ENGINE_NAMES",
    "FULL_RES_BUDGET",
    "MIN_CONTEXT",
    "PATCH_RADIUS",
    "TELEA_RADIUS",
    "FillReport",
    "check_engine",
    "fill_holes",
    "hole_windows",
    "patchmatch_status",
]
