"""Pure edit operations on :class:`~elements.types.ImageElements` (paper Sec. 3.3, 4.2-4.3).

Every function returns a **new** value and never modifies its input, so undo is a list of
values. Arguments a person types (offsets, points, rectangles, positions) are in **input-image
pixels** of ``sources[0]`` (origin top-left, x right, y down); internally everything is in
normalised canvas coordinates (see :mod:`elements.geometry`).

Footprints
----------
An element's *footprint* is the set of canvas pixels it covers now. It is its source mask
(``sources[k].labels == source_label``) mapped by the axis-aligned affine map that takes the
source centroid/size to the current centroid/size::

    p_now = (p_src - source_centroid) * (size / source_size) + centroid      # normalised

and rasterised by inverse nearest-neighbour lookup at canvas pixel centres. Elements that share
a source and a map (e.g. everything one ``move`` touched) are rasterised together from one
lookup, so their footprints are disjoint exactly as their source masks are. Footprints are
**clipped to the content box** of ``sources[0]`` (the letterbox padding is never shown).

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

from dataclasses import dataclass

import numpy as np

from elements.errors import UserError
from elements.types import ImageElements

#: Offsets of centroids from their source centroid are multiples of this (normalised units).
OFFSET_GRID = 2.0**-20
#: Resize factors are limited to this range (elements beyond it are sub-pixel or cover everything).
MAX_FACTOR = 100.0
#: Edited elements must keep their centroid within this distance of the canvas (normalised units)
#: and their size within these bounds; beyond them nothing is visible or floats lose the offset grid.
MAX_OFFSET = 4.0
SIZE_RANGE = (1e-6, 64.0)
#: Two elements share a rasterisation when their maps differ by less than this (canvas pixels).
_SAME_MAP_TOL = 1e-3


# --- footprints -------------------------------------------------------------------------------
def transforms(el: ImageElements) -> np.ndarray:
    """Per-element map from source canvas pixels to current canvas pixels.

    Returns ``(N, 4) float64`` rows ``(sx, sy, tx, ty)`` with ``p_now = s * p_src + t`` in
    continuous canvas pixels (pixel (i, j) has its centre at (i + 0.5, j + 0.5)).
    """
    s = el.sizes.astype(np.float64) / el.source_sizes.astype(np.float64)
    t = (el.centroids.astype(np.float64) - s * el.source_centroids.astype(np.float64)) * el.size
    return np.concatenate([s, t], axis=1)


@dataclass(frozen=True)
class _Layer:
    """Elements drawn from one source with one map; ``warped`` is that source's labels under the map."""

    source: int
    transform: np.ndarray  # (4,) sx, sy, tx, ty
    members: np.ndarray  # (M,) int64 element ids
    warped: np.ndarray  # (S, S) int32, source label at each canvas pixel, -1 outside the source


def layers(el: ImageElements, ids=None) -> list[_Layer]:
    """Group elements (default: all active ones) into layers that share a source and a map.

    Unedited elements come first, then edited ones in id order, which is the paint order of the
    pixel decoder (later layers on top).
    """
    ids = np.flatnonzero(el.active) if ids is None else np.asarray(ids, dtype=np.int64)
    content = el.geometry.content_mask()
    out = []
    for k, t0, members in _groups(el, ids):
        warped = warp_labels(el.sources[k].labels, t0)
        warped = np.where(content, warped, -1)
        out.append(_Layer(k, t0, np.asarray(members, dtype=np.int64), warped))
    return out


def _groups(el: ImageElements, ids: np.ndarray) -> list[tuple[int, np.ndarray, list[int]]]:
    """``(source, transform, members)`` of elements ``ids`` that share a source and a map, in paint order.

    Vectorised: maps are bucketed on a grid of the tolerance, then buckets whose maps agree within
    the tolerance are merged (an element joins the first group whose map matches, as before).
    """
    ids = np.asarray(ids, dtype=np.int64).reshape(-1)
    if ids.size == 0:
        return []
    order = ids[np.lexsort((ids, el.edited[ids]))]  # unedited first, then id order: the paint order
    tr = transforms(el)[order]
    plain = ~el.edited[order]
    src = el.source_index[order]
    if plain.all() and (src == src[0]).all():  # fast path: one source, every map the first one's (no edits)
        scale = np.array([el.size, el.size, 1.0, 1.0])
        if np.all(np.abs(tr - tr[0]) * scale < _SAME_MAP_TOL):
            return [(int(src[0]), tr[0], order.tolist())]
    if plain.any() and not plain.all():  # unedited ones first (usually one group), then the few edited ones
        head, tail = _groups(el, order[plain]), _groups(el, order[~plain])
        return _merge_groups(el, head, tail)
    key = np.column_stack(
        [
            el.source_index[order].astype(np.float64),
            np.floor(tr[:, :2] * el.size / _SAME_MAP_TOL),
            np.floor(tr[:, 2:] / _SAME_MAP_TOL),
        ]
    )
    _, first, inv = np.unique(key, axis=0, return_index=True, return_inverse=True)
    inv = inv.reshape(-1)
    groups: list[tuple[int, np.ndarray, list[int]]] = []
    bucket_group: dict[int, int] = {}
    reps = np.zeros((len(first), 5))  # (source, sx, sy, tx, ty) of each group so far
    scale = np.array([0.0, el.size, el.size, 1.0, 1.0])
    for u in np.argsort(first, kind="stable").tolist():  # buckets in order of their first member
        i, t = int(first[u]), tr[int(first[u])]
        k = int(el.source_index[order[i]])
        row = np.concatenate([[k], t])
        g = len(groups)
        near = np.flatnonzero((reps[:g, 0] == k) & np.all(np.abs(reps[:g, 1:] - t) * scale[1:] < _SAME_MAP_TOL, axis=1))
        if near.size:
            bucket_group[u] = int(near[0])
        else:
            bucket_group[u] = g
            reps[g] = row
            groups.append((k, t, []))
    group_of = np.asarray([bucket_group[u] for u in range(len(first))])[inv]
    for n in range(len(groups)):
        groups[n][2].extend(order[group_of == n].tolist())
    return groups


def _merge_groups(el: ImageElements, head: list, tail: list) -> list:
    """``head + tail``, where a tail group whose map matches a head group's joins it (as one pass would)."""
    out = [(k, t, list(m)) for k, t, m in head]
    for k, t, members in tail:
        for _, (k0, t0, m0) in enumerate(out):
            if (
                k0 == k
                and np.all(np.abs(t0[:2] - t[:2]) * el.size < _SAME_MAP_TOL)
                and np.all(np.abs(t0[2:] - t[2:]) < _SAME_MAP_TOL)
            ):
                m0.extend(members)
                break
        else:
            out.append((k, t, list(members)))
    return out


def _sample(labels: np.ndarray, transform, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Source labels under canvas pixels ``(rows, cols)`` (matching 1-D arrays) for one map; -1 outside."""
    size = labels.shape[0]
    sx, sy, tx, ty = (float(v) for v in transform)
    ix = np.floor((cols + 0.5 - tx) / sx).astype(np.int64)
    iy = np.floor((rows + 0.5 - ty) / sy).astype(np.int64)
    ok = (ix >= 0) & (ix < size) & (iy >= 0) & (iy < size)
    out = labels[np.clip(iy, 0, size - 1), np.clip(ix, 0, size - 1)]
    return np.where(ok, out, -1)


_BOXES: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def _label_boxes(labels: np.ndarray) -> np.ndarray:
    """``(L, 4) int64`` bounding box (y0, y1, x0, x1), end-exclusive, of each label of a source label map.

    Cached per array (source label maps are never modified), the few most recent ones kept.
    """
    hit = _BOXES.get(id(labels))
    if hit is not None and hit[0] is labels:
        return hit[1]
    from scipy import ndimage

    objs = ndimage.find_objects(labels.astype(np.int64) + 1)
    boxes = np.array(
        [[o[0].start, o[0].stop, o[1].start, o[1].stop] if o is not None else [1, 0, 1, 0] for o in objs],
        dtype=np.int64,
    ).reshape(-1, 4)
    if len(_BOXES) >= 16:
        _BOXES.pop(next(iter(_BOXES)))
    _BOXES[id(labels)] = (labels, boxes)
    return boxes


def _window(labels: np.ndarray, transform, wanted: np.ndarray, box) -> tuple[slice, slice] | None:
    """Canvas window (rows, cols) that holds every pixel mapped from source labels ``wanted``, within ``box``."""
    boxes = _label_boxes(labels)  # (L, 4) y0, y1, x0, x1 per label; empty labels have y0 > y1
    wanted = wanted[(wanted >= 0) & (wanted < len(boxes))]
    b = boxes[wanted]
    b = b[b[:, 0] < b[:, 1]]
    if b.size == 0:
        return None
    ys0, ys1, xs0, xs1 = int(b[:, 0].min()), int(b[:, 1].max()), int(b[:, 2].min()), int(b[:, 3].max())
    sx, sy, tx, ty = (float(v) for v in transform)
    # canvas pixel c samples source floor((c + 0.5 - t) / s): invert the source range, one pixel of margin
    c0 = int(np.floor(xs0 * sx + tx - 0.5)) - 1
    c1 = int(np.ceil(xs1 * sx + tx - 0.5)) + 1
    r0 = int(np.floor(ys0 * sy + ty - 0.5)) - 1
    r1 = int(np.ceil(ys1 * sy + ty - 0.5)) + 1
    x0, y0, x1, y1 = box
    r0, r1, c0, c1 = max(r0, y0), min(r1, y1), max(c0, x0), min(c1, x1)
    if r0 >= r1 or c0 >= c1:
        return None
    return slice(r0, r1), slice(c0, c1)


def warp_labels(labels: np.ndarray, transform) -> np.ndarray:
    """Nearest-neighbour inverse lookup of ``labels (S, S) int32`` under ``(sx, sy, tx, ty)``; -1 outside."""
    size = labels.shape[0]
    sx, sy, tx, ty = (float(v) for v in transform)
    centres = np.arange(size) + 0.5
    ix = np.floor((centres - tx) / sx).astype(np.int64)
    iy = np.floor((centres - ty) / sy).astype(np.int64)
    okx, oky = (ix >= 0) & (ix < size), (iy >= 0) & (iy < size)
    out = labels[np.clip(iy, 0, size - 1)[:, None], np.clip(ix, 0, size - 1)[None, :]]
    return np.where(oky[:, None] & okx[None, :], out, -1).astype(np.int32)


def layer_masks(layer: _Layer, el: ImageElements) -> np.ndarray:
    """``(S, S) bool``: pixels covered by the layer's still-active members."""
    labels = el.source_label[layer.members[el.active[layer.members]]]
    return np.isin(layer.warped, labels) & (layer.warped >= 0)


def footprint(el: ImageElements, i: int) -> np.ndarray:
    """``(S, S) bool``: the canvas pixels element ``i`` covers now (clipped to the content box)."""
    (layer,) = layers(el, [i])
    return layer.warped == el.source_label[i]


def coverage(el: ImageElements) -> np.ndarray:
    """``(S, S) int32``: how many active elements cover each canvas pixel (the invariant is <= 1)."""
    count = np.zeros((el.size, el.size), dtype=np.int32)
    for layer in layers(el):
        count += layer_masks(layer, el)
    return count


def owner_map(el: ImageElements) -> np.ndarray:
    """``(S, S) int64``: the active element shown at each canvas pixel (top-most layer), -1 = none."""
    owner = np.full((el.size, el.size), -1, dtype=np.int64)
    for layer in layers(el):
        lut = _label_lut(el, layer)
        hit = layer.warped >= 0
        ids = np.where(hit, lut[np.clip(layer.warped, 0, None)], -1)
        owner = np.where(ids >= 0, ids, owner)
    return owner


def _label_lut(el: ImageElements, layer: _Layer) -> np.ndarray:
    """Source label -> element id for the layer's active members (-1 elsewhere)."""
    src_labels = el.sources[layer.source].labels
    lut = np.full(int(src_labels.max(initial=-1)) + 2, -1, dtype=np.int64)
    act = layer.members[el.active[layer.members]]
    lut[el.source_label[act]] = act
    return lut


# --- selection --------------------------------------------------------------------------------
def select_ids(el: ImageElements, ids, *, allow_deleted: bool = False) -> np.ndarray:
    """Check element ids; returns sorted unique ``(M,) int64``. Unknown (or deleted) ids raise UserError."""
    arr = np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids).reshape(-1)
    if arr.size == 0:
        raise UserError("The selection is empty; give at least one element id.")
    out = []
    for v in arr.tolist():
        if isinstance(v, bool) or not float(v).is_integer():
            raise UserError(f"Element id {v!r} is not an integer.")
        v = int(v)
        if not 0 <= v < el.num_elements:
            raise UserError(
                f"Unknown element id {v}: the image has {el.num_elements} elements (ids 0-{el.num_elements - 1})."
            )
        if not allow_deleted and not el.active[v]:
            raise UserError(f"Element {v} has been deleted and cannot be edited.")
        out.append(v)
    return np.unique(np.asarray(out, dtype=np.int64))


def _check_point(el: ImageElements, x: float, y: float) -> None:
    g = el.geometry
    if not (np.isfinite(x) and np.isfinite(y)):
        raise UserError(f"Point ({x}, {y}) is not finite.")
    if not (0 <= x < g.input_w and 0 <= y < g.input_h):
        raise UserError(f"Point ({x:g}, {y:g}) lies outside the {g.input_w}x{g.input_h} image.")


def element_at(el: ImageElements, x: float, y: float, owner: np.ndarray | None = None) -> int | None:
    """The active element whose **current** footprint is under input pixel (x, y), or None (a hole).

    Moved elements are found where they are now, not where they came from; where layers
    overlap (only if collisions were switched off) the top-most one wins.
    """
    _check_point(el, x, y)
    owner = owner_map(el) if owner is None else owner
    p = el.geometry.input_to_norm([x, y]) * el.size
    i, j = (int(np.clip(np.floor(v), 0, el.size - 1)) for v in (p[1], p[0]))
    k = int(owner[i, j])
    return None if k < 0 else k


def select_points(el: ImageElements, points) -> np.ndarray:
    """Elements under input-pixel points ``[(x, y), ...]``; a point on no element raises UserError."""
    owner = owner_map(el)
    ids = []
    for pt in points:
        x, y = (float(v) for v in pt)
        k = element_at(el, x, y, owner)
        if k is None:
            raise UserError(f"No element lies under point ({x:g}, {y:g}); that pixel is empty.")
        ids.append(k)
    return select_ids(el, ids)


def select_rect(el: ImageElements, rect) -> np.ndarray:
    """Active elements whose current centroid lies in ``rect = (x0, y0, x1, y1)`` (input pixels, inclusive)."""
    x0, y0, x1, y1 = (float(v) for v in rect)
    if not np.isfinite([x0, y0, x1, y1]).all() or x1 < x0 or y1 < y0:
        raise UserError(f"Rectangle {list(rect)} must be finite with x0 <= x1 and y0 <= y1.")
    c = el.geometry.norm_to_input(el.centroids)
    inside = el.active & (c[:, 0] >= x0) & (c[:, 0] <= x1) & (c[:, 1] >= y0) & (c[:, 1] <= y1)
    if not inside.any():
        raise UserError(f"No element has its centre inside the rectangle {[x0, y0, x1, y1]}.")
    return np.flatnonzero(inside).astype(np.int64)


# --- edits --------------------------------------------------------------------------------------
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


def selection_centroid(el: ImageElements, ids) -> np.ndarray:
    """Area-weighted mean of the current centroids of ``ids``: ``(2,) float64`` normalised."""
    ids = np.asarray(ids, dtype=np.int64)
    scale = np.prod(el.sizes[ids].astype(np.float64) / el.source_sizes[ids], axis=1)
    w = el.areas[ids] * scale
    return (el.centroids[ids].astype(np.float64) * w[:, None]).sum(0) / w.sum()


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
    for k, t0, members in _groups(el, ids[el.active[ids]]):
        members = np.asarray(members, dtype=np.int64)
        labels = el.sources[k].labels
        wanted = el.source_label[members]
        win = _window(labels, t0, wanted, box)
        if win is None:
            active[members] = False
            continue
        rr, cc = np.mgrid[win[0], win[1]]
        lab = _sample(labels, t0, rr.ravel(), cc.ravel())
        hit = np.isin(lab, wanted) & content[rr.ravel(), cc.ravel()]
        active[members[~np.isin(wanted, lab[hit])]] = False  # nothing of them is visible: deleted
        cover_r.append(rr.ravel()[hit])
        cover_c.append(cc.ravel()[hit])
    if cover_r:
        rr, cc = np.concatenate(cover_r), np.concatenate(cover_c)
        others = np.flatnonzero(el.active & ~mine)
        for k, t0, members in _groups(el, others):
            if rr.size == 0:
                break
            members = np.asarray(members, dtype=np.int64)
            lab = _sample(el.sources[k].labels, t0, rr, cc)
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
    _check_point(el, x, y)
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
    "layers",
    "move",
    "owner_map",
    "scale",
    "select_ids",
    "select_points",
    "select_rect",
    "selection_centroid",
    "transforms",
]
