"""What the demo shows of the current elements: a pixel-edit preview and the label map shown on it.

A selection change only changes how elements are marked, so the expensive part — the pixel-edit
preview, the owner map and its input-size label map — is computed once per edit in
:func:`build_view`. The preview is the library's own full-resolution pixel editing
(:func:`elements.decoders.pixel.render`, what the ``pixel`` decoder returns); the view adds only
what is visual: holes drawn as a faded original. The browser canvas (``elements/ui/canvas.js``) draws boundaries, the
selection, the edited elements and the hover highlight from ``photo`` and ``labels`` itself;
:func:`draw` renders the same marks server-side (PNG overlays: the compose picker, tests)
through the one renderer, :func:`elements.visualize.render_overlay`.

All images here are at the input's size (``(H_in, W_in, 3) uint8``, so a pixel is an input
pixel); the owner map stays on the canvas.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from elements.decoders.pixel import output_pixels, render, to_input_size
from elements.edit import element_at, owner_map
from elements.types import ImageElements
from elements.visualize import render_overlay

#: Holes (vacated or deleted regions the decoder will fill) show the original this faintly.
HOLE_ALPHA = 0.3


@dataclass(frozen=True)
class View:
    """The selection-independent part of what the demo shows, for one :class:`ImageElements` value.

    ``elements``: the value it was drawn for (identity is the cache key).
    ``photo``: ``(H_in, W_in, 3) uint8`` pixel-edit preview, holes as a faded original, no marks.
    ``owner``: ``(S, S) int64`` canvas map of the active element shown at each pixel, -1 = none.
    ``labels``: ``(H_in, W_in) int32`` the same map at the input's size (nearest), -1 = none.
    ``dots``: ``(N, 2) float64`` current centroids (x, y) in input pixels, NaN for deleted elements.
    """

    elements: ImageElements
    photo: np.ndarray
    owner: np.ndarray
    labels: np.ndarray
    dots: np.ndarray


def build_view(el: ImageElements, original: np.ndarray | None = None) -> View:
    """Pixel-edit preview of ``el`` (holes as a faded original), its label map and dot positions.

    ``original``: ``(H_in, W_in, 3) uint8`` the input as loaded, if known: shown as it is while nothing
    is edited. The preview itself is :func:`elements.decoders.pixel.render` at full resolution (the
    input's own pixels wherever an unedited element is shown), resized to the input's size.
    """
    g = el.geometry
    owner = owner_map(el)
    labels = g.labels_to_input(owner).astype(np.int32)
    if el.active.all() and not el.edited.any():  # unedited: the photo itself, dropped pixels included
        known = original is not None and original.shape == (g.input_h, g.input_w, 3)
        photo = original if known else to_input_size(output_pixels(el.sources[0]), el)
    else:
        r = render(el)
        image = r.image
        image[r.holes] = (HOLE_ALPHA * r.original[r.holes].astype(np.float32) + (1 - HOLE_ALPHA) * 96).astype(np.uint8)
        photo = to_input_size(image, el)
    photo = np.ascontiguousarray(photo)
    dots = np.where(el.active[:, None], g.norm_to_input(el.centroids), np.nan)
    return View(el, photo, owner, labels, dots)


def draw(view: View, selected=()) -> np.ndarray:
    """``(H_in, W_in, 3) uint8``: the preview with boundaries, selection, edited tint and dots (PNG overlays)."""
    return render_overlay(view.photo, view.labels, selected=selected, edited=view.elements.edited, dots=view.dots)


def element_under(view: View, x: float, y: float) -> int | None:
    """The element shown at input pixel (x, y), or None (a hole, padding, or outside the image)."""
    g = view.elements.geometry
    if not (np.isfinite(x) and np.isfinite(y) and 0 <= x < g.input_w and 0 <= y < g.input_h):
        return None
    return element_at(view.elements, x, y, view.owner)
