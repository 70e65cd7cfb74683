"""What the demo shows of the current elements: a pixel-edit preview with boundaries and dots.

A click only changes which dots are red, so the expensive part — the pixel-edit preview, the
owner map and the boundaries of the *current* (edited) footprints — is computed once per
edit in :func:`build_view` and every click only redraws dots with :func:`draw` (paper Fig. 4-5:
red = selected, green = edited, white = other; deleted elements have no dot).

All images here are at the input's size (``(H_in, W_in, 3) uint8``, what the user sees and
clicks, so a click's pixel is an input pixel); the owner map stays on the canvas.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from elements.decoders.pixel import pixel_edit
from elements.edit import owner_map
from elements.types import ImageElements
from elements.visualize import EDITED, PLAIN, SELECTED, boundaries

#: Holes (vacated or deleted regions the decoder will fill) show the original this faintly.
HOLE_ALPHA = 0.3


@dataclass(frozen=True)
class View:
    """The click-independent part of an overlay, for one :class:`ImageElements` value.

    ``elements``: the value it was drawn for (identity is the cache key).
    ``base``: ``(H_in, W_in, 3) uint8`` preview with boundaries, no dots.
    ``owner``: ``(S, S) int64`` canvas map of the active element shown at each pixel, -1 = none.
    ``dots``: ``(N, 2) float64`` current centroids (x, y) in input pixels.
    """

    elements: ImageElements
    base: np.ndarray
    owner: np.ndarray
    dots: np.ndarray


def build_view(el: ImageElements) -> View:
    """Pixel-edit preview of ``el`` (holes as a faded original), current boundaries, dot positions."""
    g = el.geometry
    owner = owner_map(el)
    if el.active.all() and not el.edited.any():
        canvas = el.image  # unedited: show the photo itself, dropped pixels included
    else:
        canvas, holes = pixel_edit(el)
        faded = (HOLE_ALPHA * el.image.astype(np.float32) + (1 - HOLE_ALPHA) * 96).astype(np.uint8)
        canvas = np.where(holes[..., None], faded, canvas)
    img = np.ascontiguousarray(g.from_canvas(canvas))
    edge = boundaries(g.labels_to_input(owner))
    img[edge] = (0.45 * img[edge] + 0.55 * 255).astype(np.uint8)
    return View(el, img, owner, g.norm_to_input(el.centroids))


def dot_radius(shape) -> int:
    """The same dot size as :func:`elements.visualize.overlay`."""
    return max(2, round(min(shape[:2]) / 170))


def draw(view: View, selected=()) -> np.ndarray:
    """The overlay: ``view.base`` plus one dot per active element, ``(H_in, W_in, 3) uint8``."""
    el = view.elements
    img = view.base.copy()
    r = dot_radius(img.shape)
    sel = set(int(i) for i in selected)
    for i in np.flatnonzero(el.active):
        colour = SELECTED if i in sel else EDITED if el.edited[i] else PLAIN
        x, y = int(round(view.dots[i, 0])), int(round(view.dots[i, 1]))
        cv2.circle(img, (x, y), r + 1, (0, 0, 0), -1, lineType=cv2.LINE_AA)
        cv2.circle(img, (x, y), r, colour, -1, lineType=cv2.LINE_AA)
    return img


def element_under(view: View, x: float, y: float) -> int | None:
    """The element shown at input pixel (x, y), or None (a hole, padding, or outside the image)."""
    g = view.elements.geometry
    if not (0 <= x < g.input_w and 0 <= y < g.input_h):
        return None
    p = g.input_to_norm([x, y]) * g.size
    i, j = (int(np.clip(np.floor(v), 0, g.size - 1)) for v in (p[1], p[0]))
    k = int(view.owner[i, j])
    return None if k < 0 else k


def elements_in_mask(view: View, mask: np.ndarray, min_fraction: float = 0.5) -> np.ndarray:
    """Active elements with at least ``min_fraction`` of their shown pixels inside ``mask (S, S) bool``."""
    from elements.partition.objects import elements_in_mask as in_mask

    return in_mask(view.owner, mask, view.elements.num_elements, min_fraction)
