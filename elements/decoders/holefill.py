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

**Smooth base** (PatchMatch only). PatchMatch copies patches; on a smooth gradient (sky, a studio
backdrop, a wall under soft light) a patch copied from a few dozen pixels away carries that place's
colour, and the fill shows as a blotchy field of slightly wrong colours. The fill's low frequencies
are therefore replaced by the **harmonic (membrane) fill** of the hole from its border
(:func:`harmonic_fill`, Laplace's equation solved with ``scipy.sparse``; it continues any linear
ramp exactly): ``fill + G_sigma * (membrane - fill)``, with ``sigma =`` :data:`LOW_SIGMA`. PatchMatch
supplies the texture (everything finer than ``sigma``), the membrane the shading.

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
#: PatchMatch patch radius of a window filled at full resolution: 9 x 9 patches. Issue 13 chose 2 (5 x 5)
#: on three photo holes; on a striped background (issue 19, bench/render.py) 5 x 5 patches lose the
#: stripes' phase (fill error 11-13 against the truth, 6-7 with radius 4, 4.5 = the noise alone).
PATCH_RADIUS = 4
#: ...and of a window still larger than FULL_RES_BUDGET at the coarsest scale allowed (the canvas): 7 x 7,
#: so that a 15 % hole at 1024 px stays within issue 13's 1.5 s (radius 4 there: ~1.9 s of CPU).
PATCH_RADIUS_LARGE = 3
#: A window with at most this many pixels is filled at full resolution (~0.5 s for PatchMatch on one core).
FULL_RES_BUDGET = 256 * 256
#: Context around a hole that PatchMatch copies from: this fraction of the hole's bounding-box side...
CONTEXT = 0.25
#: ...and at least this many canvas pixels (scaled to the output grid).
MIN_CONTEXT = 24
#: Telea inpainting radius in canvas pixels (scaled to the output grid): the neighbourhood each pixel averages.
TELEA_RADIUS = 5

#: Gaussian sigma (canvas pixels) that splits a PatchMatch fill into its shading (replaced by the membrane
#: fill) and its texture (kept). Issue 19 scenes: 2 -> smooth smears on texture, 8 -> blotches on ramps.
LOW_SIGMA = 4.0
#: The membrane is solved on at most this many unknowns; a larger hole is solved at a coarser scale and
#: upsampled (the membrane is smooth: ~0.1 s per 10k unknowns with SuperLU).
HARMONIC_BUDGET = 20000
#: A shading difference (Euclidean RGB) up to SHADE_SMOOTH is a drift of copied patches and is corrected
#: in full; above SHADE_KEEP it is structure PatchMatch continued (a rim, an edge), which the smooth
#: membrane would only blur: kept, linearly in between.
SHADE_SMOOTH, SHADE_KEEP = 24.0, 48.0

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


def _patchmatch(image: np.ndarray, holes: np.ndarray, exclude: np.ndarray, seed: int, radius: int) -> np.ndarray:
    import patchmatch

    known = ~(holes | exclude)
    if not known.any():  # nothing to copy from: a flat mid-grey is the least wrong answer
        out = image.copy()
        out[holes] = 127
        return out
    with _PM_LOCK:
        patchmatch.set_random_seed(int(seed))
        return patchmatch.inpaint(
            image, holes, global_mask=exclude & ~holes if exclude.any() else None, patch_size=radius
        )


def _harmonic_solve(values: np.ndarray, unknown: np.ndarray) -> np.ndarray:
    """Laplace's equation on ``unknown`` (5-point stencil) with Dirichlet values from the known 4-neighbours
    and a free (Neumann) image border; ``values (H, W, C) float64``. A region with no known neighbour
    gets the mean of the known pixels."""
    import scipy.sparse as sp
    from scipy.sparse.linalg import splu

    h, w = unknown.shape
    out = values.copy()
    n = int(unknown.sum())
    idx = np.full((h, w), -1, dtype=np.int64)
    idx[unknown] = np.arange(n)
    ys, xs = np.nonzero(unknown)
    diag = np.zeros(n)
    rhs = np.zeros((n, values.shape[2]))
    known_nb = np.zeros(n, dtype=bool)
    rows, cols = [np.arange(n)], [np.arange(n)]
    for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0)):
        ny, nx = ys + dy, xs + dx
        ok = (ny >= 0) & (ny < h) & (nx >= 0) & (nx < w)
        diag[ok] += 1
        i, j = np.flatnonzero(ok), idx[ny[ok], nx[ok]]
        rows.append(i[j >= 0])
        cols.append(j[j >= 0])
        b = i[j < 0]
        np.add.at(rhs, b, values[ny[ok][j < 0], nx[ok][j < 0]])
        known_nb[b] = True
    # a tiny diagonal term keeps a region without known neighbours solvable (it decays to 0 there)
    data = np.concatenate([diag + 1e-9, -np.ones(sum(len(r) for r in rows[1:]))])
    a = sp.csc_matrix((data, (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))
    out[unknown] = splu(a).solve(rhs)
    _, comp = cv2.connectedComponents(unknown.astype(np.uint8), connectivity=4)
    comp_u = comp[unknown]
    orphan = ~np.isin(comp_u, np.unique(comp_u[known_nb]))
    if orphan.any():
        out[unknown] = np.where(orphan[:, None], values[~unknown].mean(0) if (~unknown).any() else 0.0, out[unknown])
    return out


def harmonic_fill(values: np.ndarray, unknown: np.ndarray, budget: int = HARMONIC_BUDGET) -> np.ndarray:
    """The membrane fill: ``values (H, W, C)`` (any real dtype) with the ``unknown (H, W) bool`` pixels
    replaced by the harmonic interpolation of their known surroundings (float64, same shape).

    Harmonic = the smoothest surface through the border values (Laplace's equation; Perez et al. 2003's
    membrane): a linear ramp is continued exactly. More than ``budget`` unknowns: solved on a grid
    downscaled to fit (a small pixel is unknown if any of its pixels is), then upsampled bilinearly.
    """
    vals = np.asarray(values, dtype=np.float64)
    flat = vals.ndim == 2
    vals = vals[..., None] if flat else vals
    unknown = np.asarray(unknown, dtype=bool)
    n = int(unknown.sum())
    if n == 0 or unknown.all():
        out = vals.copy()
        out[unknown] = 0.0
        return out[..., 0] if flat else out
    h, w = unknown.shape
    if n <= budget:
        out = _harmonic_solve(vals, unknown)
    else:
        f = float(np.sqrt(budget / n))
        sw, sh = max(4, round(w * f)), max(4, round(h * f))
        known_w = cv2.resize((~unknown).astype(np.float32), (sw, sh), interpolation=cv2.INTER_AREA)
        s_unknown = known_w < 1.0 - 1e-6
        s_vals = (
            np.stack(
                [
                    cv2.resize(
                        np.where(unknown, 0.0, vals[..., c]).astype(np.float32), (sw, sh), interpolation=cv2.INTER_AREA
                    )
                    for c in range(vals.shape[2])
                ],
                -1,
            )
            / np.maximum(known_w, 1e-6)[..., None]
        )
        small = _harmonic_solve(s_vals.astype(np.float64), s_unknown)
        up = cv2.resize(small.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR).reshape(h, w, -1)
        out = np.where(unknown[..., None], up.astype(np.float64), vals)
    return out[..., 0] if flat else out


def smooth_base(
    fill: np.ndarray, image: np.ndarray, holes: np.ndarray, exclude: np.ndarray, sigma: float
) -> np.ndarray:
    """``fill (H, W, 3) uint8`` (holes filled, e.g. by PatchMatch) with its shading (detail coarser than
    ``sigma`` px) taken from the membrane fill of ``holes | exclude`` from ``image``'s known pixels.
    Only hole pixels change; excluded pixels (a moved object) never enter the shading."""
    unknown = holes | exclude
    membrane = harmonic_fill(image, unknown)
    patched = np.where(exclude[..., None], membrane, fill.astype(np.float64))
    corr = cv2.GaussianBlur((membrane - patched).astype(np.float32), (0, 0), sigmaX=max(sigma, 0.5))
    size = np.linalg.norm(corr, axis=-1, keepdims=True)
    corr *= np.clip((SHADE_KEEP - size) / (SHADE_KEEP - SHADE_SMOOTH), 0.0, 1.0)
    out = fill.copy()
    out[holes] = np.clip(np.rint(fill[holes] + corr[holes]), 0, 255).astype(np.uint8)
    return out


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
            filled = _patchmatch(np.ascontiguousarray(crop), hole, excl, seed + k, PATCH_RADIUS)
            filled = smooth_base(filled, crop, hole, excl, LOW_SIGMA * grid_scale)
        else:
            sw, sh = max(8, round((x1 - x0) * scale)), max(8, round((y1 - y0) * scale))
            small = cv2.resize(np.ascontiguousarray(crop), (sw, sh), interpolation=cv2.INTER_AREA)
            # a small pixel that holds any hole is a hole; any excluded (and no hole) pixel is excluded
            s_hole = cv2.resize(hole.astype(np.float32), (sw, sh), interpolation=cv2.INTER_AREA) > 0
            s_excl = (cv2.resize(excl.astype(np.float32), (sw, sh), interpolation=cv2.INTER_AREA) > 0) & ~s_hole
            radius = PATCH_RADIUS if sw * sh <= FULL_RES_BUDGET else PATCH_RADIUS_LARGE
            s_fill = _patchmatch(small, s_hole, s_excl, seed + k, radius)
            s_fill = smooth_base(s_fill, small, s_hole, s_excl, LOW_SIGMA * grid_scale * scale)
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
    "HARMONIC_BUDGET",
    "LOW_SIGMA",
    "MIN_CONTEXT",
    "PATCH_RADIUS",
    "PATCH_RADIUS_LARGE",
    "TELEA_RADIUS",
    "FillReport",
    "check_engine",
    "fill_holes",
    "harmonic_fill",
    "hole_windows",
    "patchmatch_status",
    "smooth_base",
]
