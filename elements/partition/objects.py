"""Object selection: SAM's mask for a click, clicks or a box -> the elements mostly inside it.

Sec. 3.1: elements follow SAM's object boundaries, so "the elements of an object" is the set
of elements with at least half of their shown pixels inside SAM's mask for that object. One
positive click usually suffices; negative clicks take parts away; a box selects what SAM finds
in it. Coordinates are pixels of the user's input image, origin top-left.

>>> ids = select_object(el, part.affinity, points=[(260, 300, True)])
>>> ids = select_object(el, part.affinity, box=(300, 120, 340, 400))
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from elements.errors import UserError
from elements.types import ImageElements

MIN_FRACTION = 0.5  # an element belongs to the object when at least half of it is inside the mask


def elements_in_mask(
    owner: np.ndarray, mask: np.ndarray, num_elements: int, min_fraction: float = MIN_FRACTION
) -> np.ndarray:
    """Elements with at least ``min_fraction`` of their shown pixels inside ``mask``.

    ``owner``: ``(S, S) int64`` canvas map of the element shown at each pixel, -1 = none (as
    :func:`elements.edit.owner_map`); ``mask``: ``(S, S) bool``. Returns sorted ``int64`` ids.
    """
    shown = np.bincount(owner[owner >= 0], minlength=num_elements)
    inside = np.bincount(owner[(owner >= 0) & mask], minlength=num_elements)
    frac = inside / np.maximum(shown, 1)
    return np.flatnonzero((shown > 0) & (frac >= min_fraction)).astype(np.int64)


def object_mask(el: ImageElements, affinity, *, points: Sequence = (), box=None, embedding=None) -> np.ndarray:
    """SAM's mask ``(S, S) bool`` on the canvas for prompts in input pixels (see :func:`select_object`).

    Holds ``affinity.lock`` while it makes SAM's embedding that of ``el``'s canvas
    (:meth:`~elements.partition.sam.SamAffinity.use_image`: ``embedding`` when it belongs to that
    canvas, else the current one when it does, else the encoder runs) and asks SAM for the mask.
    """
    g = el.geometry
    pts = np.asarray([(p[0], p[1]) for p in points], dtype=np.float64).reshape(-1, 2)
    labels = np.asarray([1 if p[2] else 0 for p in points], dtype=np.int64)
    if len(pts) == 0 and box is None:
        raise UserError("Object selection needs a click or a box.")
    if len(pts) and labels.max() == 0 and box is None:
        raise UserError(
            "Object selection needs at least one positive click or a box; negative clicks only take parts away."
        )
    for x, y in pts:
        if not (0 <= x < g.input_w and 0 <= y < g.input_h):
            raise UserError(f"The click ({x:g}, {y:g}) is outside the {g.input_w} × {g.input_h} image.")
    canvas_pts = g.input_to_norm(pts) * g.size if len(pts) else None
    canvas_box = None
    if box is not None:
        x0, y0, x1, y1 = (float(v) for v in box)
        x0, x1 = sorted((x0, x1))
        y0, y1 = sorted((y0, y1))
        x0, x1 = np.clip([x0, x1], 0, g.input_w)
        y0, y1 = np.clip([y0, y1], 0, g.input_h)
        if x1 - x0 < 2 or y1 - y0 < 2:
            raise UserError("The box is too small or outside the image; drag a box around the object.")
        canvas_box = (g.input_to_norm(np.array([[x0, y0], [x1, y1]])) * g.size).reshape(4)
    with affinity.lock:
        affinity.use_image(el.image, embedding)
        mask = affinity.mask(canvas_pts, labels if len(pts) else None, canvas_box)
    return mask & g.content_mask()


def select_object(
    el: ImageElements,
    affinity,
    *,
    points: Sequence = (),
    box=None,
    min_fraction: float = MIN_FRACTION,
    owner: np.ndarray | None = None,
    embedding=None,
) -> np.ndarray:
    """Ids (``int64``) of the active elements with ``>= min_fraction`` of their shown pixels inside SAM's mask.

    ``points``: sequence of ``(x, y, positive: bool)`` in input pixels (negative clicks remove);
    ``box``: ``(x0, y0, x1, y1)`` input pixels, or None. ``affinity``: a
    :class:`~elements.partition.sam.SamAffinity`; ``embedding``: a
    :class:`~elements.partition.sam.SamEmbedding` kept from ``el``'s partition (optional; one
    of another canvas is never used, see :func:`object_mask`).
    ``owner``: optional ``(S, S)`` owner map (:func:`elements.edit.owner_map`) to reuse.
    Raises UserError when SAM's mask is empty or contains no element.
    """
    from elements.edit import owner_map

    mask = object_mask(el, affinity, points=points, box=box, embedding=embedding)
    if not mask.any():
        raise UserError("SAM found no object there; click on the object itself or drag a box around it.")
    own = owner_map(el) if owner is None else owner
    ids = elements_in_mask(own, mask, el.num_elements, min_fraction)
    ids = ids[el.active[ids]]
    if ids.size == 0:
        raise UserError("SAM's mask there holds no element (the object is smaller than half an element); try a box.")
    return ids


__all__ = ["MIN_FRACTION", "elements_in_mask", "object_mask", "select_object"]
