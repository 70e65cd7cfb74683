"""Pure edit operations on :class:`~elements.types.ImageElements` (paper Sec. 3.3, 4.2-4.3).

Every function returns a **new** value and never modifies its input, so undo is a list of
values. Arguments a person types (offsets, points, rectangles, positions) are in **input-image
pixels** of ``sources[0]`` (origin top-left, x right, y down); internally everything is in
normalised canvas coordinates (see :mod:`elements.geometry`). Where an element is drawn now
(its *footprint*) is :mod:`elements.warp`'s; which elements an edit acts on is
:mod:`elements.selection`'s. Both are re-exported here, so ``from elements.edit import move,
select_rect, owner_map`` keeps working.

Collision rule (Sec. 3.3, "a pixel is covered by at most one element")
-----------------------------------------------------------------------
After ``move``, ``scale`` or ``compose``, every active element that is *not* part of that edit
and whose footprint shares **at least one pixel** with the edited elements' footprints is
deleted (``active=False``). Any active element whose footprint is then empty — moved entirely
off the canvas, or shrunk below one pixel — is deleted as well. Partly off-canvas elements stay
active; their centroid may leave [0, 1] and only the visible part is drawn. Together with
disjoint source partitions this keeps the invariant ``coverage(el).max() <= 1``.

Positions are stored as ``float32(source_centroid + offset)`` with the offset on a dyadic grid
of ``2**-20`` (1/2048 of a canvas pixel), so a move followed by the opposite move gives back
bit-identical centroids.
"""

from __future__ import annotations

import numpy as np

from elements.errors import UserError
from elements.selection import (
    check_point,
    element_at,
    select_ids,
    select_points,
    select_rect,
    selection_centroid,
)
from elements.types import ImageElements
from elements.warp import (
    coverage,
    footprint,
    groups,
    label_window,
    layer_masks,
    layers,
    owner_map,
    sample_labels,
    transforms,
    warp_labels,
)

#: Offsets of centroids from their source centroid are multiples of this (normalised units).
OFFSET_GRID = 2.0**-20
#: Resize factors are limited to this range (elements beyond it are sub-pixel or cover everything).
MAX_FACTOR = 100.0
#: Edited elements must keep their centroid within this distance of the canvas (normalised units)
#: and their size within these bounds; beyond them nothing is visible or floats lose the offset grid.
MAX_OFFSET = 4.0
SIZE_RANGE = (1e-6, 64.0)


def _place(el: ImageElements, ids: np.ndarray, new_centroids: np.ndarray) -> np.ndarray:
    """Centroid array with ``ids`` set to ``new_centroids`` (float64), snapped to the offset grid."""
    c = el.centroids.copy()
    sc = el.source_centroids[ids].astype(np.float64)
    offset = np.round((new_centroids - sc) / OFFSET_GRID) * OFFSET_GRID
    c[ids] = (sc + offset).astype(np.float32)
    return c


def _offsets(el: ImageElements, ids: np.ndarray) -> np.ndarray:
    """Current grid offsets of ``ids`` from their source centroids, recovered exactly."""
    raw = el.centroids[ids].astype(np.float64) - el.source_centroids[ids].astype(np.float64)
    return np.round(raw / OFFSET_GRID) * OFFSET_GRID


def _check_bounds(el: ImageElements, ids: np.ndarray, what: str) -> None:
    c, z = el.centroids[ids], el.sizes[ids]
    if np.abs(c - 0.5).max(initial=0) > MAX_OFFSET:
        raise UserError(f"This {what} would put elements more than {MAX_OFFSET:g} image sizes off the canvas.")
    if z.min(initial=1) < SIZE_RANGE[0] or z.max(initial=0) > SIZE_RANGE[1]:
        raise UserError(
            f"This {what} would make elements smaller than a millionth or larger than {SIZE_RANGE[1]:g} times the image."
        )


def move(el: ImageElements, ids, dx: float, dy: float, *, collide: bool = True) -> ImageElements:
    """Translate elements ``ids`` by (dx, dy) **input pixels**; then apply the collision rule."""
    ids = select_ids(el, ids)
    if not (np.isfinite(dx) and np.isfinite(dy)):
        raise UserError(f"Move offset ({dx}, {dy}) must be finite.")
    d = el.geometry.input_to_norm_size([dx, dy])
    if np.abs(d).max() > MAX_OFFSET:
        raise UserError(f"Move ({dx:g}, {dy:g}) is more than {MAX_OFFSET:g} image sizes; nothing would be left to see.")
    d = np.round(d / OFFSET_GRID) * OFFSET_GRID
    sc = el.source_centroids[ids].astype(np.float64)
    c = _place(el, ids, sc + _offsets(el, ids) + d)
    edited = el.edited.copy()
    edited[ids] = True
    out = el.replace(centroids=c, edited=edited)
    _check_bounds(out, ids, "move")
    return collide_with(out, ids) if collide else out


def _check_factor(factor: float) -> float:
    factor = float(factor)
    if not np.isfinite(factor) or factor <= 0 or factor > MAX_FACTOR:
        raise UserError(f"Scale factor {factor:g} must be a number in (0, {MAX_FACTOR:g}].")
    return factor


def scale(el: ImageElements, ids, factor: float, *, collide: bool = True) -> ImageElements:
    """Scale elements ``ids`` by ``factor`` about their area-weighted centroid (positions and sizes)."""
    ids = select_ids(el, ids)
    factor = _check_factor(factor)
    centre = selection_centroid(el, ids)
    new = centre + factor * (el.centroids[ids].astype(np.float64) - centre)
    c = _place(el, ids, new)
    sizes = el.sizes.copy()
    sizes[ids] = (el.sizes[ids].astype(np.float64) * factor).astype(np.float32)
    edited = el.edited.copy()
    edited[ids] = True
    out = el.replace(centroids=c, sizes=sizes, edited=edited)
    _check_bounds(out, ids, "scale")
    return collide_with(out, ids) if collide else out


def delete(el: ImageElements, ids) -> ImageElements:
    """Mark ``ids`` deleted (Sec. 3.3: the model zeroes their tokens; N is kept). Deleting twice is a no-op."""
    ids = select_ids(el, ids, allow_deleted=True)
    active = el.active.copy()
    active[ids] = False
    return el.replace(active=active)


def collide_with(el: ImageElements, ids) -> ImageElements:
    """Collision rule: delete active elements outside ``ids`` that touch ``ids``' footprints, and empty ones.

    Only the window each edited layer maps into is rasterised, and the other layers are sampled
    only at the covered pixels, so one edit costs about its footprint's area, not the canvas'
    times the number of layers (10,000 one-element moves: docs/security.md). "Empty" is checked
    for ``ids``: the others' footprints did not change.
    """
    ids = np.asarray(ids, dtype=np.int64)
    mine = np.zeros(el.num_elements, dtype=bool)
    mine[ids] = True
    active = el.active.copy()
    content = el.geometry.content_mask()
    rows_ok, cols_ok = np.flatnonzero(content.any(axis=1)), np.flatnonzero(content.any(axis=0))
    box = (
        (int(cols_ok[0]), int(rows_ok[0]), int(cols_ok[-1]) + 1, int(rows_ok[-1]) + 1) if rows_ok.size else (0, 0, 0, 0)
    )
    cover_r, cover_c = [], []
    for k, t0, members in groups(el, ids[el.active[ids]]):
        members = np.asarray(members, dtype=np.int64)
        labels = el.sources[k].labels
        wanted = el.source_label[members]
        win = label_window(el.sources[k].label_boxes, t0, wanted, box)
        if win is None:
            active[members] = False
            continue
        rr, cc = np.mgrid[win[0], win[1]]
        lab = sample_labels(labels, t0, rr.ravel(), cc.ravel())
        hit = np.isin(lab, wanted) & content[rr.ravel(), cc.ravel()]
        active[members[~np.isin(wanted, lab[hit])]] = False  # nothing of them is visible: deleted
        cover_r.append(rr.ravel()[hit])
        cover_c.append(cc.ravel()[hit])
    if cover_r:
        rr, cc = np.concatenate(cover_r), np.concatenate(cover_c)
        others = np.flatnonzero(el.active & ~mine)
        for k, t0, members in groups(el, others):
            if rr.size == 0:
                break
            members = np.asarray(members, dtype=np.int64)
            lab = sample_labels(el.sources[k].labels, t0, rr, cc)
            active[members[np.isin(el.source_label[members], lab[lab >= 0])]] = False
    return el.replace(active=active)


def compose(
    el: ImageElements, other: ImageElements, ids, at, factor: float = 1.0, *, collide: bool = True
) -> ImageElements:
    """Paste elements ``ids`` of ``other`` into ``el`` (Sec. 4.3); the originals they cover are deleted.

    ``at``: (x, y) input pixels of ``el`` where the pasted elements' area-weighted centroid goes.
    ``factor``: scale relative to their size in ``other`` on the canvas, where both images span
    the canvas' long side — factor 1 keeps the fraction of the image the object covered.
    The sources the pasted elements come from are appended to ``el.sources``; the new elements
    get ids ``el.num_elements ...`` in the order of ``ids``. Embeddings are kept only when both
    values carry them (otherwise the result has none and decoders encode on demand).
    """
    ids = select_ids(other, ids)
    factor = _check_factor(factor)
    x, y = (float(v) for v in at)
    check_point(el, x, y)
    if other.size != el.size:
        raise UserError(f"Cannot compose a {other.size}-pixel canvas into a {el.size}-pixel one.")
    used = sorted(set(other.source_index[ids].tolist()))
    remap = {k: len(el.sources) + n for n, k in enumerate(used)}
    centre = selection_centroid(other, ids)
    target = el.geometry.input_to_norm([x, y])
    new_c = target + factor * (other.centroids[ids].astype(np.float64) - centre)
    n0, m = el.num_elements, len(ids)

    def cat(a, b):
        return np.concatenate([a, b], axis=0)

    sc = other.source_centroids[ids]
    offset = np.round((new_c - sc.astype(np.float64)) / OFFSET_GRID) * OFFSET_GRID
    embeddings = None
    if (
        el.embeddings is not None
        and other.embeddings is not None
        and el.embeddings.shape[1] == other.embeddings.shape[1]
    ):
        embeddings = cat(el.embeddings, other.embeddings[ids])
    out = el.replace(
        sources=el.sources + tuple(other.sources[k] for k in used),
        centroids=cat(el.centroids, (sc.astype(np.float64) + offset).astype(np.float32)),
        sizes=cat(el.sizes, (other.sizes[ids].astype(np.float64) * factor).astype(np.float32)),
        areas=cat(el.areas, other.areas[ids]),
        patches=cat(el.patches, other.patches[ids]),
        source_index=cat(el.source_index, np.array([remap[k] for k in other.source_index[ids]], dtype=np.int32)),
        source_label=cat(el.source_label, other.source_label[ids]),
        source_centroids=cat(el.source_centroids, sc),
        source_sizes=cat(el.source_sizes, other.source_sizes[ids]),
        active=cat(el.active, np.ones(m, dtype=bool)),
        edited=cat(el.edited, np.ones(m, dtype=bool)),
        embeddings=embeddings,
        meta={
            **el.meta,
            "composed": [*el.meta.get("composed", []), {"elements": m, "from": other.meta.get("partition", {})}],
        },
    )
    new_ids = np.arange(n0, n0 + m, dtype=np.int64)
    _check_bounds(out, new_ids, "composition")
    return collide_with(out, new_ids) if collide else out


__all__ = [
    "MAX_FACTOR",
    "MAX_OFFSET",
    "OFFSET_GRID",
    "SIZE_RANGE",
    "collide_with",
    "compose",
    "coverage",
    "delete",
    "element_at",
    "footprint",
    "layer_masks",
    "layers",
    "move",
    "owner_map",
    "scale",
    "select_ids",
    "select_points",
    "select_rect",
    "selection_centroid",
    "transforms",
    "warp_labels",
]
