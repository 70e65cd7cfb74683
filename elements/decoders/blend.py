"""Edits that look like edits: a hole band against ghosts, and seamless placement of moved elements.

Both work on the output grid of :func:`elements.decoders.pixel.render` (the input's full resolution);
lengths are given in canvas pixels (Sec. 3.1's 512 canvas) and scaled by ``grid_scale``.

**Ghost band.** A selection of elements rarely holds a whole object: the unselected elements around
it keep slivers of its rim. Fill the vacated region from its border and those slivers seed a "ghost"
of the object. App. A closes the hole masks morphologically before inpainting; we grow the
**vacated** holes (where moved-away or deleted elements of the edited image were) by

1. a fixed :data:`CLOSE_PX` ring (the anti-aliased and JPEG-ringing rim of the neighbours), and
2. the pixels of the *neighbouring unselected elements* within :data:`BAND_ELEMENTS` median element
   widths whose colour is likelier under the removed elements' colour histogram than under the
   surrounding background's (Lab, :data:`HIST_BINS`³ bins), connected to the vacated region.

Elements that the collision rule deleted (Sec. 3.3: they touch a moved element's footprint) leave
cracks around the object's new place; those are filled as they are, never grown.

**Seamless placement.** Each moved, resized or composed layer is re-pasted by Poisson
(gradient-domain) blending in normal mode: inside its footprint the result keeps the layer's own
gradients while its border takes the colours of the new surroundings, which removes halos and colour
steps. The membrane is solved by :func:`elements.decoders.holefill.harmonic_fill` (scipy), not by
``cv2.seamlessClone``: in our tests OpenCV 5.0.0's seamlessClone returned the destination unchanged
for about half of all placement centres (a checkerboard in the centre's x + y) and washed the clone
out for the others (bench/render.py's reference A).
A border point is smoothed only where it is a seam: where the layer's own source runs on smoothly
across it (an element border through background), not where the source has an edge there (the
border follows the object's outline: the object keeps its colours, so no halo and no tint), and not
where the new surroundings differ by more than :data:`STEP_KEEP` (the border cuts through content).
The correction is applied in full within :data:`BLEND_BAND` of the footprint's border and fades out
over the next :data:`BLEND_BAND`, so the inside of a distinct object keeps its colours.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage

from elements.decoders.holefill import harmonic_fill
from elements.decoders.pixel import Rendered, output_pixels
from elements.types import ImageElements

#: Ring (canvas pixels) always added around a vacated region: the neighbours' anti-aliased rim.
CLOSE_PX = 2
#: Reach of the colour-matched growth, in median element widths. Leftovers of an object lie in the
#: unselected elements that border the selection; an element left out of an object selection holds
#: less than half of it (``select_object``'s min_fraction 0.5), so a sliver is about half an element
#: deep. On the synthetic scene 0.25 left 1.7-4.6 % ghost, 0.5 and 1.0 left none.
BAND_ELEMENTS = 0.5
#: Bins per Lab channel of the colour histograms that decide "looks like the removed object".
HIST_BINS = 16
#: Border colour differences (Euclidean RGB) up to STEP_SMOOTH are smoothed away in full, those above
#: STEP_KEEP are kept (the border cuts through an edge of the content there), linearly in between.
STEP_SMOOTH, STEP_KEEP = 60.0, 120.0
#: Poisson correction at full strength within this many canvas pixels of a pasted border, then fading
#: to zero over as many again.
BLEND_BAND = 8
#: The layer's source is continuous across its border (an element border through background: blend) when
#: neighbouring pixels differ by at most CONT_SMOOTH (Euclidean RGB; noise and texture), and has an edge
#: there (the object's outline: keep) above CONT_KEEP, linearly in between.
CONT_SMOOTH, CONT_KEEP = 25.0, 50.0
#: ...with the continuity measured this many output pixels to either side of the border.
CONT_SPAN = 2
#: The correction is edge-aware (guided by the layer, ``harmonic_fill(guide=)``): it spreads along background
#: inside the footprint but not across the object's outline, and is screened (tied to 0 with this
#: conductance) so that a region the outline cuts off, the object itself, keeps its colours.
SCREEN = 1e-3


def _disk(radius: float) -> np.ndarray:
    r = max(1, round(radius))
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))


def _nearest(values: np.ndarray, where: np.ndarray) -> np.ndarray:
    """``values (H, W, C)`` at the nearest pixel of ``where (H, W) bool`` (itself where True)."""
    _, (iy, ix) = ndimage.distance_transform_edt(~where, return_indices=True)
    return values[iy, ix]


def _id_of_label(el: ImageElements) -> np.ndarray:
    """Source-0 label + 1 -> element id (-1 = none)."""
    lab = el.sources[0].labels
    lut = np.full(int(lab.max(initial=-1)) + 2, -1, dtype=np.int64)
    own = np.flatnonzero(el.source_index == 0)
    lut[el.source_label[own] + 1] = own
    return lut


def vacated_region(r: Rendered, el: ImageElements) -> tuple[np.ndarray, np.ndarray]:
    """``(vacated, removed_labels)``: hole pixels where source-0 elements were before they were moved
    away or deleted — except those the collision rule deleted (they touch an edited footprint) —
    and the source-0 labels of those elements."""
    removed = (el.source_index == 0) & (~el.active | el.edited)
    if not removed.any():
        return np.zeros_like(r.holes), np.zeros(0, dtype=np.int64)
    ids = _id_of_label(el)[r.base_labels + 1]  # (H, W) element id at each pixel's original place
    touched = cv2.dilate(r.edited_cover.astype(np.uint8), _disk(1)).astype(bool)
    collided = np.zeros(el.num_elements, dtype=bool)
    hit = np.unique(ids[touched & (ids >= 0)])
    collided[hit] = ~el.active[hit]
    vac = removed & ~collided
    mask = np.zeros(el.num_elements + 1, dtype=bool)
    mask[np.flatnonzero(vac) + 1] = True
    vacated = r.holes & mask[ids + 1]
    return vacated, el.source_label[vac].astype(np.int64)


def _lab_bins(pixels: np.ndarray) -> np.ndarray:
    lab = cv2.cvtColor(pixels.reshape(-1, 1, 3), cv2.COLOR_RGB2LAB).reshape(-1, 3).astype(np.int64)
    q = lab * HIST_BINS // 256
    return (q[:, 0] * HIST_BINS + q[:, 1]) * HIST_BINS + q[:, 2]


def _histogram(pixels: np.ndarray) -> np.ndarray:
    h = np.bincount(_lab_bins(pixels), minlength=HIST_BINS**3).astype(np.float64).reshape((HIST_BINS,) * 3)
    h = ndimage.gaussian_filter(h, 0.75, mode="constant")
    return (h / max(h.sum(), 1e-12)).reshape(-1)


def ghost_band(r: Rendered, el: ImageElements, grid_scale: float = 1.0) -> np.ndarray:
    """``(H, W) bool``: pixels to add to the holes so that no leftover of a removed object seeds the fill.

    Only pixels still showing unedited elements at their own place change; see the module docstring.
    """
    vacated, labels = vacated_region(r, el)
    band = np.zeros_like(vacated)
    if not vacated.any():
        return band
    unedited = (r.shown >= 0) & ~r.edited_cover
    growable = unedited & (r.base_labels >= 0)
    band |= cv2.dilate(vacated.astype(np.uint8), _disk(CLOSE_PX * grid_scale)).astype(bool) & growable
    own = (el.source_index == 0) & el.active
    width = float(np.median(np.sqrt(el.areas[own]))) if own.any() else 16.0  # canvas pixels
    reach = BAND_ELEMENTS * width * grid_scale
    dist = cv2.distanceTransform((~vacated).astype(np.uint8), cv2.DIST_L2, 5)
    near = (dist <= reach) & growable
    # the unselected elements bordering the vacated region
    rim = cv2.dilate(vacated.astype(np.uint8), _disk(2 * grid_scale)).astype(bool) & growable
    neighbours = np.unique(r.base_labels[rim])
    neighbours = neighbours[~np.isin(neighbours, labels)]
    cand = near & np.isin(r.base_labels, neighbours) & ~band
    if not cand.any():
        return band
    full = output_pixels(el.sources[0]) if r.full_res else None
    pix0 = full if full is not None and full.shape[:2] == r.holes.shape else r.image
    obj = pix0[np.isin(r.base_labels, labels)]
    ring = (dist > reach) & (dist <= 2 * reach) & growable & ~cand
    bg = r.image[ring] if ring.sum() >= 64 else r.image[growable & ~cand & ~near]
    if obj.size == 0 or bg.size == 0:
        return band
    p_obj, p_bg = _histogram(obj), _histogram(bg)
    bins = _lab_bins(r.image[cand])
    looks = np.zeros_like(cand)
    looks[cand] = p_obj[bins] > p_bg[bins]
    # fill the speckle between matching pixels, then keep what connects to the vacated region
    grown = cv2.morphologyEx(
        (looks | vacated | band).astype(np.uint8), cv2.MORPH_CLOSE, _disk(CLOSE_PX * grid_scale)
    ).astype(bool)
    grown &= cand | vacated | band
    comp, _ = ndimage.label(grown, structure=np.ones((3, 3)))
    keep = np.unique(comp[vacated])
    grown = np.isin(comp, keep[keep > 0])
    return (band | (grown & cand)) & ~r.holes


def poisson_membrane(src: np.ndarray, dst: np.ndarray, mask: np.ndarray) -> np.ndarray | None:
    """The Poisson correction of pasting ``src`` into ``dst`` on ``mask``: ``(H, W, 3) float32``.

    Normal-mode Poisson cloning (Perez et al. 2003) keeps ``src``'s gradients inside ``mask`` and takes
    ``dst``'s values on its border, so the result is ``src + M`` with ``M`` harmonic inside and
    ``M = dst - src`` on the border; ``M`` is solved by
    :func:`elements.decoders.holefill.harmonic_fill`. ``src`` is the whole layer mapped to its new
    place, so outside ``mask`` it shows the layer's *old* surroundings: ``dst - src`` there is how much
    the surroundings changed. The border value is kept only where it is a seam to smooth away:

    * where ``src`` runs on smoothly across the border (:data:`CONT_SMOOTH`..:data:`CONT_KEEP`): an
      element border through background; where ``src`` has an edge there (the border follows the
      object's outline, as SAM-feature elements do), the object keeps its own colours (``M = 0``);
    * where the change is a colour step, not a different content (:data:`STEP_SMOOTH`..:data:`STEP_KEEP`).

    None when the mask is too small to solve.
    """
    if mask.sum() < 16 or mask.all():
        return None
    src_f, dst_f = src.astype(np.float32), dst.astype(np.float32)
    diff = dst_f - src_f
    step = np.linalg.norm(diff, axis=-1, keepdims=True)
    weight = np.clip((STEP_KEEP - step) / (STEP_KEEP - STEP_SMOOTH), 0.0, 1.0)
    # continuity of the layer's own source across its border, measured CONT_SPAN px to either side (an edge
    # blurred by resampling or anti-aliasing is still an edge): the nearest pixel CONT_SPAN px outside the
    # mask against the nearest pixel CONT_SPAN px inside it
    span = _disk(CONT_SPAN)
    inner = cv2.erode(mask.astype(np.uint8), span).astype(bool)
    outer = ~cv2.dilate(mask.astype(np.uint8), span).astype(bool)
    far_in = _nearest(src_f, inner if inner.any() else mask)
    far_out = _nearest(src_f, outer if outer.any() else ~mask)
    jump = np.linalg.norm(far_out - far_in, axis=-1, keepdims=True)
    weight *= np.clip((CONT_KEEP - jump) / (CONT_KEEP - CONT_SMOOTH), 0.0, 1.0)
    return harmonic_fill(diff * weight, mask, guide=src_f, screen=SCREEN).astype(np.float32)


def place_seamless(image: np.ndarray, r: Rendered, grid_scale: float = 1.0) -> tuple[np.ndarray, int]:
    """Re-paste every edited layer of ``r`` onto ``image (H, W, 3) uint8`` (holes already filled) by
    Poisson blending; only pixels the edited layers show change (see the module docstring).

    Returns the image and the number of layers blended (layers too thin to solve are left as pasted).
    """
    out = image.copy()
    blended_layers = 0
    full_band = BLEND_BAND * grid_scale
    for k, layer in enumerate(r.layers):
        mask = r.shown == k
        if not layer.edited or mask.sum() < 16:
            continue
        ys, xs = np.nonzero(mask)
        pad = int(np.ceil(2 * full_band)) + 4
        y0, y1 = max(0, ys.min() - pad), min(mask.shape[0], ys.max() + 1 + pad)
        x0, x1 = max(0, xs.min() - pad), min(mask.shape[1], xs.max() + 1 + pad)
        m = mask[y0:y1, x0:x1]
        src = layer.warp((y0, y1, x0, x1))
        corr = poisson_membrane(np.ascontiguousarray(src), np.ascontiguousarray(out[y0:y1, x0:x1]), m)
        if corr is None:
            continue
        depth = cv2.distanceTransform(np.pad(m, 1).astype(np.uint8), cv2.DIST_L2, 5)[1:-1, 1:-1]  # px to the border
        weight = np.clip(2.0 - depth / full_band, 0.0, 1.0)[..., None]
        blended = np.clip(np.rint(src.astype(np.float32) + weight * corr), 0, 255).astype(np.uint8)
        out[y0:y1, x0:x1][m] = blended[m]
        blended_layers += 1
    return out, blended_layers


__all__ = [
    "BAND_ELEMENTS",
    "BLEND_BAND",
    "CLOSE_PX",
    "CONT_KEEP",
    "CONT_SMOOTH",
    "CONT_SPAN",
    "HIST_BINS",
    "SCREEN",
    "STEP_KEEP",
    "STEP_SMOOTH",
    "ghost_band",
    "place_seamless",
    "poisson_membrane",
    "vacated_region",
]
