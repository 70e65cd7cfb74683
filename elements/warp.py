"""Where elements are on the canvas now: their maps, footprints, layers and the owner of each pixel.

An element's *footprint* is the set of canvas pixels it covers now. It is its source mask
(``sources[k].labels == source_label``) mapped by the axis-aligned affine map that takes the
source centroid/size to the current centroid/size::

    p_now = (p_src - source_centroid) * (size / source_size) + centroid      # normalised

and rasterised by inverse nearest-neighbour lookup at canvas pixel centres. Elements that share
a source and a map (e.g. everything one ``move`` touched) are rasterised together from one
lookup (a :class:`Layer`), so their footprints are disjoint exactly as their source masks are.
Footprints are **clipped to the content box** of ``sources[0]`` (the letterbox padding is never
shown). The edits (:mod:`elements.edit`), the pixel decoder and the UI's hit-testing all read
positions through this module.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from elements.types import ImageElements

#: Two elements share a rasterisation when their maps differ by less than this (canvas pixels).
SAME_MAP_TOL = 1e-3


def transforms(el: ImageElements) -> np.ndarray:
    """Per-element map from source canvas pixels to current canvas pixels.

    Returns ``(N, 4) float64`` rows ``(sx, sy, tx, ty)`` with ``p_now = s * p_src + t`` in
    continuous canvas pixels (pixel (i, j) has its centre at (i + 0.5, j + 0.5)).
    """
    s = el.sizes.astype(np.float64) / el.source_sizes.astype(np.float64)
    t = (el.centroids.astype(np.float64) - s * el.source_centroids.astype(np.float64)) * el.size
    return np.concatenate([s, t], axis=1)


@dataclass(frozen=True)
class Layer:
    """Elements drawn from one source with one map; ``warped`` is that source's labels under the map."""

    source: int
    transform: np.ndarray  # (4,) sx, sy, tx, ty
    members: np.ndarray  # (M,) int64 element ids
    warped: np.ndarray  # (S, S) int32, source label at each canvas pixel, -1 outside the source


def layers(el: ImageElements, ids=None) -> list[Layer]:
    """Group elements (default: all active ones) into layers that share a source and a map.

    Unedited elements come first, then edited ones in id order, which is the paint order of the
    pixel decoder (later layers on top).
    """
    ids = np.flatnonzero(el.active) if ids is None else np.asarray(ids, dtype=np.int64)
    content = el.geometry.content_mask()
    out = []
    for k, t0, members in groups(el, ids):
        warped = warp_labels(el.sources[k].labels, t0)
        warped = np.where(content, warped, -1)
        out.append(Layer(k, t0, np.asarray(members, dtype=np.int64), warped))
    return out


def groups(el: ImageElements, ids: np.ndarray) -> list[tuple[int, np.ndarray, list[int]]]:
    """``(source, transform (4,), member ids)`` of elements ``ids`` that share a source and a map, in paint order.

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
        if np.all(np.abs(tr - tr[0]) * scale < SAME_MAP_TOL):
            return [(int(src[0]), tr[0], order.tolist())]
    if plain.any() and not plain.all():  # unedited ones first (usually one group), then the few edited ones
        head, tail = groups(el, order[plain]), groups(el, order[~plain])
        return _merge_groups(el, head, tail)
    key = np.column_stack(
        [
            el.source_index[order].astype(np.float64),
            np.floor(tr[:, :2] * el.size / SAME_MAP_TOL),
            np.floor(tr[:, 2:] / SAME_MAP_TOL),
        ]
    )
    _, first, inv = np.unique(key, axis=0, return_index=True, return_inverse=True)
    inv = inv.reshape(-1)
    found: list[tuple[int, np.ndarray, list[int]]] = []
    bucket_group: dict[int, int] = {}
    reps = np.zeros((len(first), 5))  # (source, sx, sy, tx, ty) of each group so far
    scale = np.array([0.0, el.size, el.size, 1.0, 1.0])
    for u in np.argsort(first, kind="stable").tolist():  # buckets in order of their first member
        i, t = int(first[u]), tr[int(first[u])]
        k = int(el.source_index[order[i]])
        row = np.concatenate([[k], t])
        g = len(found)
        near = np.flatnonzero((reps[:g, 0] == k) & np.all(np.abs(reps[:g, 1:] - t) * scale[1:] < SAME_MAP_TOL, axis=1))
        if near.size:
            bucket_group[u] = int(near[0])
        else:
            bucket_group[u] = g
            reps[g] = row
            found.append((k, t, []))
    group_of = np.asarray([bucket_group[u] for u in range(len(first))])[inv]
    for n in range(len(found)):
        found[n][2].extend(order[group_of == n].tolist())
    return found


def _merge_groups(el: ImageElements, head: list, tail: list) -> list:
    """``head + tail``, where a tail group whose map matches a head group's joins it (as one pass would)."""
    out = [(k, t, list(m)) for k, t, m in head]
    for k, t, members in tail:
        for _, (k0, t0, m0) in enumerate(out):
            if (
                k0 == k
                and np.all(np.abs(t0[:2] - t[:2]) * el.size < SAME_MAP_TOL)
                and np.all(np.abs(t0[2:] - t[2:]) < SAME_MAP_TOL)
            ):
                m0.extend(members)
                break
        else:
            out.append((k, t, list(members)))
    return out


def sample_labels(labels: np.ndarray, transform, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Source labels under canvas pixels ``(rows, cols)`` (matching 1-D int arrays) for one map; -1 outside.

    ``labels``: ``(S, S) int32`` source labels; ``transform``: ``(sx, sy, tx, ty)`` as :func:`transforms`.
    """
    size = labels.shape[0]
    sx, sy, tx, ty = (float(v) for v in transform)
    ix = np.floor((cols + 0.5 - tx) / sx).astype(np.int64)
    iy = np.floor((rows + 0.5 - ty) / sy).astype(np.int64)
    ok = (ix >= 0) & (ix < size) & (iy >= 0) & (iy < size)
    out = labels[np.clip(iy, 0, size - 1), np.clip(ix, 0, size - 1)]
    return np.where(ok, out, -1)


def label_window(boxes: np.ndarray, transform, wanted: np.ndarray, box) -> tuple[slice, slice] | None:
    """Canvas window (rows, cols) that holds every pixel mapped from source labels ``wanted``, within ``box``.

    ``boxes``: the source's :attr:`~elements.types.Source.label_boxes`, ``(L, 4)`` y0, y1, x0, x1 per
    label (empty labels have y0 > y1); ``box``: ``(x0, y0, x1, y1)`` canvas pixels, end-exclusive.
    Returns ``(rows, cols)`` slices, or None when nothing of ``wanted`` lands inside ``box``.
    """
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


def layer_masks(layer: Layer, el: ImageElements) -> np.ndarray:
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
        lut = label_lut(el, layer)
        hit = layer.warped >= 0
        ids = np.where(hit, lut[np.clip(layer.warped, 0, None)], -1)
        owner = np.where(ids >= 0, ids, owner)
    return owner


def label_lut(el: ImageElements, layer: Layer) -> np.ndarray:
    """Source label -> element id for the layer's active members (-1 elsewhere)."""
    src_labels = el.sources[layer.source].labels
    lut = np.full(int(src_labels.max(initial=-1)) + 2, -1, dtype=np.int64)
    act = layer.members[el.active[layer.members]]
    lut[el.source_label[act]] = act
    return lut


__all__ = [
    "SAME_MAP_TOL",
    "Layer",
    "coverage",
    "footprint",
    "groups",
    "label_lut",
    "label_window",
    "layer_masks",
    "layers",
    "owner_map",
    "sample_labels",
    "transforms",
    "warp_labels",
]
