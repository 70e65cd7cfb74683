"""Classical hole filling on the CPU: PatchMatch (default) and Telea, bounded in time.

Engines (``engine=``):

* ``"patchmatch"`` — PatchMatch (Barnes et al., SIGGRAPH 2009) from the ``pypatchmatch``
  package: each hole pixel copies a patch of the known image around it, found by randomised
  nearest-neighbour search over a coarse-to-fine pyramid. It continues *texture* (sky, fabric,
  wood grain) but not *structure*: an edge crossing the hole may break. Seeded, so a seed gives
  the same output. Pixels in ``exclude`` are neither filled nor copied from (moved elements, so
  that a vacated region is never filled with the object that left it). A window whose texture has
  a dominant period (:func:`regularity`) is searched with each pixel's phase as a guide.
* ``"telea"`` — OpenCV's fast-marching inpainting (``cv2.inpaint``): diffuses colour inward from
  the hole's border; a smear on anything wider than a few pixels. ``exclude`` is honoured by
  filling it too and putting it back.

**Smooth base** (PatchMatch only). PatchMatch copies patches; on a smooth gradient (sky, a studio
backdrop, a wall under soft light) a patch copied from a few dozen pixels away carries that place's
colour, and the fill shows as a blotchy field of slightly wrong colours. The fill's low frequencies
are therefore replaced by the **harmonic (membrane) fill** of the hole from its border
(:func:`harmonic_fill`, Laplace's equation solved with ``scipy.sparse``; it continues any linear
ramp exactly): ``fill + G_sigma * (membrane - fill)``, with ``sigma =`` :data:`LOW_SIGMA`. PatchMatch
supplies the texture (everything finer than ``sigma``), the membrane the shading; its border values
are local medians and it is edge-aware (:func:`smooth_base`), so structure is not spread as a haze.

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
from scipy import ndimage

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
#: Edge-aware membrane (``harmonic_fill(guide=)``): a link whose guide colours differ by d (Euclidean RGB)
#: conducts exp(-(d / EDGE_SCALE)^2): texture and noise (d ~ 10) conduct, an object's outline (d > 60) does not.
EDGE_SCALE = 25.0

#: Regular texture (stripes, tiles, brick, a fence): PatchMatch's coarse-to-fine search cannot see a fine
#: period at its coarse levels, so large regions of a fill come out in the wrong phase (issue 19's striped
#: scene: fill error 6.3-11.1 by seed, noise alone ~4.8). When one spatial frequency holds at least
#: REGULARITY_MIN of the window's texture power, the search is guided by each pixel's phase in that period
#: (pypatchmatch's ``inpaint_regularity``; the regularity term of Huang et al., SIGGRAPH 2014): 6.0 for
#: every seed. Photos measure 0.03-0.12, the striped scene 0.40-0.45.
REGULARITY_MIN = 0.25
#: Periods (px of the window being filled) that count as texture, not shading or noise.
MIN_PERIOD, MAX_PERIOD = 4.0, 48.0
#: Weight of the phase term against the patch distance (0.02-0.1 measured alike on the striped scene; a
#: larger weight lets phase outvote colour).
GUIDE_WEIGHT = 0.02

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
    gmask = exclude & ~holes if exclude.any() else None
    k, strength = regularity(image, known)
    with _PM_LOCK:
        patchmatch.set_random_seed(int(seed))
        if strength < REGULARITY_MIN:
            return patchmatch.inpaint(image, holes, global_mask=gmask, patch_size=radius)
        return patchmatch.inpaint_regularity(
            image,
            holes,
            regularity_map(holes.shape, k),
            global_mask=gmask,
            patch_size=radius,
            guide_weight=GUIDE_WEIGHT,
        )


def regularity(image: np.ndarray, known: np.ndarray) -> tuple[np.ndarray, float]:
    """The strongest spatial frequency of ``image``'s known texture and how much it dominates.

    ``image (H, W, 3) uint8``, ``known (H, W) bool``. The grey image minus its local mean (a normalised
    Gaussian of the known pixels, sigma = MAX_PERIOD / 4) is Hann-windowed, holes as 0, and Fourier
    transformed. Returns ``k (2,) float64`` (ky, kx), cycles per pixel, the power peak among periods of
    :data:`MIN_PERIOD`..:data:`MAX_PERIOD` px, and ``strength`` in [0, 1]: the share of that band's power
    within one frequency bin of the peak and its mirror (stripes, tiles, a fence: ~0.4; photos: <= 0.12).
    """
    g = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY).astype(np.float32)
    m = known.astype(np.float32)
    h, w = known.shape
    if min(h, w) < 2 * MAX_PERIOD or m.sum() < 0.25 * m.size:
        return np.zeros(2), 0.0
    sigma = MAX_PERIOD / 4
    local = cv2.GaussianBlur(g * m, (0, 0), sigma) / np.maximum(cv2.GaussianBlur(m, (0, 0), sigma), 1e-3)
    power = np.abs(np.fft.fft2((g - local) * m * np.outer(np.hanning(h), np.hanning(w)))) ** 2
    fy, fx = np.fft.fftfreq(h)[:, None], np.fft.fftfreq(w)[None, :]
    f = np.hypot(fy, fx)
    power = np.where((f >= 1 / MAX_PERIOD) & (f <= 1 / MIN_PERIOD), power, 0.0)
    total = power.sum()
    if total <= 0:
        return np.zeros(2), 0.0
    iy, ix = np.unravel_index(int(np.argmax(power)), power.shape)
    near = np.zeros_like(power, dtype=bool)
    for sign in (1, -1):
        rows = (sign * iy + np.arange(-1, 2)) % h
        cols = (sign * ix + np.arange(-1, 2)) % w
        near[np.ix_(rows, cols)] = True
    return np.array([fy[iy, 0], fx[0, ix]]), float(power[near].sum() / total)


def regularity_map(shape: tuple[int, int], k: np.ndarray) -> np.ndarray:
    """pypatchmatch's regularity map ``(H, W, 3) float32``: channel 0 is each pixel's phase ``k . p`` mod 1
    in the texture's period, the others 0, so that a guided search prefers sources in the same phase."""
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    out = np.zeros((*shape, 3), np.float32)
    out[..., 0] = np.mod(yy * k[0] + xx * k[1], 1.0)
    return out


def _edge_weights(guide: np.ndarray | None, ys, xs, ny, nx) -> np.ndarray | float:
    """Conductance of the links (ys, xs) -> (ny, nx): 1 without a guide, else ``exp(-(d / EDGE_SCALE)^2)`` of
    the guide's Euclidean colour difference ``d`` across the link (floored, so every region stays solvable)."""
    if guide is None:
        return 1.0
    d = np.linalg.norm(guide[ys, xs] - guide[ny, nx], axis=-1)
    return np.maximum(np.exp(-((d / EDGE_SCALE) ** 2)), 1e-4)


def _harmonic_solve(
    values: np.ndarray, unknown: np.ndarray, guide: np.ndarray | None = None, screen: float = 0.0
) -> np.ndarray:
    """Laplace's equation on ``unknown`` (5-point stencil, link weights from ``guide``: see
    :func:`harmonic_fill`) with Dirichlet values from the known 4-neighbours and a free (Neumann) image
    border; ``values (H, W, C) float64``. A region with no known neighbour gets the mean of the known pixels."""
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
    rows, cols, data = [np.arange(n)], [np.arange(n)], []
    for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0)):
        ny, nx = ys + dy, xs + dx
        ok = (ny >= 0) & (ny < h) & (nx >= 0) & (nx < w)
        i, j = np.flatnonzero(ok), idx[ny[ok], nx[ok]]
        wt = np.broadcast_to(_edge_weights(guide, ys[ok], xs[ok], ny[ok], nx[ok]), i.shape)
        diag[i] += wt
        rows.append(i[j >= 0])
        cols.append(j[j >= 0])
        data.append(-wt[j >= 0])
        b = i[j < 0]
        np.add.at(rhs, b, wt[j < 0, None] * values[ny[ok][j < 0], nx[ok][j < 0]])
        known_nb[b] = True
    # a tiny diagonal term keeps a region without known neighbours solvable (it decays to 0 there)
    data = np.concatenate([diag + 1e-9 + screen, *data])
    a = sp.csc_matrix((data, (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))
    out[unknown] = splu(a).solve(rhs)
    _, comp = cv2.connectedComponents(unknown.astype(np.uint8), connectivity=4)
    comp_u = comp[unknown]
    orphan = ~np.isin(comp_u, np.unique(comp_u[known_nb]))
    if orphan.any():
        out[unknown] = np.where(orphan[:, None], values[~unknown].mean(0) if (~unknown).any() else 0.0, out[unknown])
    return out


def _area_resize(a: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``a (H, W[, C])`` resized to ``size = (w, h)`` by area averaging, float64, channels kept."""
    flat = a.ndim == 2
    a = a[..., None] if flat else a
    out = np.stack(
        [cv2.resize(a[..., c].astype(np.float32), size, interpolation=cv2.INTER_AREA) for c in range(a.shape[2])], -1
    ).astype(np.float64)
    return out[..., 0] if flat else out


def harmonic_fill(
    values: np.ndarray,
    unknown: np.ndarray,
    budget: int = HARMONIC_BUDGET,
    guide: np.ndarray | None = None,
    screen: float = 0.0,
) -> np.ndarray:
    """The membrane fill: ``values (H, W, C)`` (any real dtype) with the ``unknown (H, W) bool`` pixels
    replaced by the harmonic interpolation of their known surroundings (float64, same shape).

    Harmonic = the smoothest surface through the border values (Laplace's equation; Perez et al. 2003's
    membrane): a linear ramp is continued exactly. ``guide (H, W, 3)``: an image whose edges the membrane
    does not cross (edge-aware diffusion: each link conducts ``exp(-(d / EDGE_SCALE)^2)`` of the guide's
    colour difference ``d``), e.g. a pasted object whose outline should stop a seam correction. ``screen``:
    each unknown is also tied to 0 with this conductance (screened Poisson), so that a region the guide cuts
    off decays to 0 instead of taking its weak neighbours' values (decay length ~ ``screen ** -0.5`` px). More than
    ``budget`` unknowns: solved on a grid downscaled to fit (a small pixel is unknown if any of its pixels
    is), then upsampled bilinearly.
    """
    vals = np.asarray(values, dtype=np.float64)
    flat = vals.ndim == 2
    vals = vals[..., None] if flat else vals
    unknown = np.asarray(unknown, dtype=bool)
    guide = None if guide is None else np.asarray(guide, dtype=np.float64)
    n = int(unknown.sum())
    if n == 0 or unknown.all():
        out = vals.copy()
        out[unknown] = 0.0
        return out[..., 0] if flat else out
    h, w = unknown.shape
    if n <= budget:
        out = _harmonic_solve(vals, unknown, guide, screen)
    else:
        f = float(np.sqrt(budget / n))
        size = (max(4, round(w * f)), max(4, round(h * f)))
        known_w = _area_resize((~unknown).astype(np.float64), size)
        s_unknown = known_w < 1.0 - 1e-6
        s_vals = _area_resize(np.where(unknown[..., None], 0.0, vals), size) / np.maximum(known_w, 1e-6)[..., None]
        s_guide = None if guide is None else _area_resize(guide, size)
        small = _harmonic_solve(s_vals, s_unknown, s_guide, screen)
        up = cv2.resize(small.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR).reshape(h, w, -1)
        out = np.where(unknown[..., None], up.astype(np.float64), vals)
    return out[..., 0] if flat else out


def smooth_base(
    fill: np.ndarray, image: np.ndarray, holes: np.ndarray, exclude: np.ndarray, sigma: float
) -> np.ndarray:
    """``fill (H, W, 3) uint8`` (holes filled, e.g. by PatchMatch) with its shading (detail coarser than
    ``sigma`` px) taken from the membrane fill of ``holes | exclude``.

    The membrane's border values are the **local median** (a ``2 sigma + 1`` square) of the known pixels
    around the hole, not the pixels themselves: a thin dark line or a light left at the border (a sliver
    of a removed object's lattice, a lamp) is structure, not shading, and must not spread into the hole
    as a haze. The membrane is edge-aware (guided by the fill, :func:`harmonic_fill`), so it does not
    carry colours across an edge the fill continued (a horizon). Only hole pixels change; excluded
    pixels (a moved object) never enter the shading."""
    unknown = holes | exclude
    comp = fill.copy()
    if exclude.any() and not exclude.all():  # the moved object out of the medians: nearest other pixel instead
        _, (iy, ix) = ndimage.distance_transform_edt(exclude, return_indices=True)
        comp = comp[iy, ix]
    k = 2 * max(1, round(sigma)) + 1
    shading = cv2.medianBlur(np.ascontiguousarray(comp), k)
    membrane = harmonic_fill(shading, unknown, guide=comp)
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
    "EDGE_SCALE",
    "ENGINES",
    "ENGINE_NAMES",
    "FULL_RES_BUDGET",
    "GUIDE_WEIGHT",
    "HARMONIC_BUDGET",
    "LOW_SIGMA",
    "MIN_CONTEXT",
    "PATCH_RADIUS",
    "PATCH_RADIUS_LARGE",
    "REGULARITY_MIN",
    "TELEA_RADIUS",
    "FillReport",
    "check_engine",
    "fill_holes",
    "harmonic_fill",
    "hole_windows",
    "patchmatch_status",
    "regularity",
    "regularity_map",
    "smooth_base",
]
