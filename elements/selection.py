"""Selecting elements: by id, by the element under a point, by centre inside a rectangle.

Points and rectangles are in **input-image pixels** of ``sources[0]`` (origin top-left, x right,
y down) and find elements where they are **now** (:func:`elements.warp.owner_map`), not where
they came from. Every problem raises :class:`~elements.errors.UserError` with one sentence.
"""

from __future__ import annotations

import numpy as np

from elements.errors import UserError
from elements.types import ImageElements
from elements.warp import owner_map


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


def check_point(el: ImageElements, x: float, y: float) -> None:
    """Raise UserError unless (x, y) is a finite point inside the input image (input pixels)."""
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
    check_point(el, x, y)
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


def selection_centroid(el: ImageElements, ids) -> np.ndarray:
    """Area-weighted mean of the current centroids of ``ids``: ``(2,) float64`` normalised."""
    ids = np.asarray(ids, dtype=np.int64)
    scale = np.prod(el.sizes[ids].astype(np.float64) / el.source_sizes[ids], axis=1)
    w = el.areas[ids] * scale
    return (el.centroids[ids].astype(np.float64) * w[:, None]).sum(0) / w.sum()


__all__ = ["check_point", "element_at", "select_ids", "select_points", "select_rect", "selection_centroid"]
