"""Drawing element overlays (boundaries, selection tint + outline, centroid dots, paper Fig. 4-5)."""

from __future__ import annotations

import cv2
import numpy as np

from elements.types import ImageElements

SELECTED = (255, 40, 40)  # red dots: selected elements (Fig. 4-5)
EDITED = (40, 220, 40)  # green dots: edited elements
PLAIN = (255, 255, 255)


def boundaries(labels: np.ndarray) -> np.ndarray:
    """``(H, W) bool``: pixels whose right or lower neighbour has another label."""
    b = np.zeros(labels.shape, dtype=bool)
    b[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    b[:-1, :] |= labels[:-1, :] != labels[1:, :]
    return b


#: Selected elements get this much of SELECTED blended over their pixels, edited ones this much of EDITED.
SELECTED_TINT, EDITED_TINT = 0.38, 0.22


def render_overlay(
    image: np.ndarray, labels: np.ndarray, *, selected=(), edited=None, dots=None, copy: bool = True
) -> np.ndarray:
    """The one overlay renderer: ``(H, W, 3) uint8`` copy of ``image`` with elements marked.

    ``image``: ``(H, W, 3) uint8``; ``labels``: ``(H, W)`` int element id shown at each pixel,
    -1 = none (a hole or padding). Boundaries are lightened; ``selected`` ids get a tinted fill
    and a 2-px outline in :data:`SELECTED`; ``edited`` (``(N,) bool`` or None) ones a lighter
    :data:`EDITED` tint; ``dots`` (``(N, 2)`` float (x, y) pixels, NaN = none) draws the
    paper's centroid dots (Fig. 4-5: red selected, green edited, white other) for ids present
    in ``labels``. The demo's canvas (``elements/ui/canvas.js``) draws the same marks in the browser.
    ``copy=False`` draws into ``image`` itself (a contiguous uint8 array). Rows are drawn in bands,
    so a 40 Mpx overlay costs the image and one band, not float copies of the whole image.
    """
    img = np.array(image, dtype=np.uint8, order="C", copy=copy or None)  # copy=False: image itself if it can be
    lab = np.asarray(labels)
    n = int(lab.max(initial=-1)) + 1
    if dots is not None:
        n = max(n, len(dots))
    sel_flag = np.zeros(n + 1, dtype=bool)  # index -1 (the last entry) stays False
    sel = [int(i) for i in selected if 0 <= int(i) < n]
    sel_flag[sel] = True
    edit_flag = np.zeros(n + 1, dtype=bool)
    if edited is not None:
        edit_flag[: len(edited)] = np.asarray(edited, dtype=bool)
    h = img.shape[0]
    for y0 in range(0, h, _BAND_ROWS):
        y1 = min(h, y0 + _BAND_ROWS)
        a, b = max(0, y0 - _HALO), min(h, y1 + _HALO)  # the band with the rows its marks look at
        _mark_band(img[a:b], lab[a:b], sel_flag, edit_flag, rows=slice(y0 - a, y1 - a))
    if dots is not None:
        shown = np.zeros(n + 1, dtype=bool)  # -1 (none) lands on the last entry
        for y0 in range(0, h, _BAND_ROWS):
            shown[lab[y0 : y0 + _BAND_ROWS]] = True
        shown = shown[:-1]
        radius = max(2, round(min(img.shape[:2]) / 170))
        for i in np.flatnonzero(shown):
            if i >= len(dots) or not np.isfinite(dots[i]).all():
                continue
            colour = SELECTED if sel_flag[i] else EDITED if edit_flag[i] else PLAIN
            x, y = int(round(dots[i, 0])), int(round(dots[i, 1]))
            cv2.circle(img, (x, y), radius + 1, (0, 0, 0), -1, lineType=cv2.LINE_AA)
            cv2.circle(img, (x, y), radius, colour, -1, lineType=cv2.LINE_AA)
    return img


#: Rows drawn at once, and the rows of context each band needs (the 5x5 outline erosion: 2).
_BAND_ROWS, _HALO = 256, 2


def _mark_band(image: np.ndarray, lab: np.ndarray, sel_flag, edit_flag, rows: slice) -> None:
    """Draw tints, boundaries and the selection outline into ``image[rows]`` (a band ``(h, W, 3)`` with
    :data:`_HALO` rows of context around ``rows``; ``lab (h, W)``). Only marked pixels are touched."""
    edge = boundaries(lab)
    if sel_flag.any() or edit_flag.any():
        is_sel = sel_flag[lab]
        is_edit = edit_flag[lab] & ~is_sel
        marked = is_edit | is_sel | edge
    else:  # boundaries only (a fresh partition): no table lookups
        is_sel = is_edit = np.zeros(lab.shape, dtype=bool)
        marked = edge
    marked[: rows.start] = False  # context rows are drawn by their own band
    marked[rows.stop :] = False
    v = image[marked].astype(np.float32)  # (K, 3): the marked pixels only
    e, s, g = is_edit[marked], is_sel[marked], edge[marked]
    v[e] = (1 - EDITED_TINT) * v[e] + EDITED_TINT * np.array(EDITED, np.float32)
    v[s] = (1 - SELECTED_TINT) * v[s] + SELECTED_TINT * np.array(SELECTED, np.float32)
    v[g] = 0.45 * v[g] + 0.55 * 255
    if s.any():  # outline of the selection as a whole, 2 px inside its border
        inner = cv2.erode(
            is_sel.astype(np.uint8), np.ones((5, 5), np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=0
        )
        v[(is_sel & ~inner.astype(bool))[marked]] = SELECTED
    image[marked] = np.clip(v, 0, 255).astype(np.uint8)


def overlay(
    el: ImageElements, *, selected=(), at_input_size: bool = True, image: np.ndarray | None = None
) -> np.ndarray:
    """The image with element boundaries and a dot per active element: ``(H, W, 3) uint8``.

    At the input's size by default (what users see), else on the canvas. Drawn by
    :func:`render_overlay` from the partition's labels (``image=None``: the source photo, from
    its decoded full resolution when the value keeps it, else from the canvas) or over a given
    ``image`` of the current value (then dots sit at the current centroids).
    """
    g = el.geometry
    base = el.image if image is None else image
    if at_input_size:
        if image is None:
            img = _photo_at_input_size(el)
        else:
            img = g.from_canvas(image) if image.shape[:2] == (g.size, g.size) else image
        labels = g.labels_to_input(el.labels.astype(np.int16) if el.labels.max(initial=0) < 2**15 else el.labels)
        pts = g.norm_to_input(el.source_centroids if image is None else el.centroids)
    else:
        img, labels = base, el.labels
        pts = el.centroids * g.size
    pts = np.where(el.active[:, None], pts, np.nan)
    return render_overlay(img, labels, selected=selected, edited=el.edited, dots=pts, copy=image is not None)


def _photo_at_input_size(el: ImageElements) -> np.ndarray:
    """The source photo ``(H, W, 3) uint8`` at the input's size: its decoded pixels (``sources[0].full``,
    up to 2048 px) resized if needed, or the 512 canvas upsampled when the value does not keep them."""
    g, full = el.geometry, el.sources[0].full
    if full is None:
        return g.from_canvas(el.image)
    if full.shape[:2] == (g.input_h, g.input_w):
        return full.copy()
    interp = cv2.INTER_AREA if full.shape[1] > g.input_w else cv2.INTER_CUBIC
    return cv2.resize(full, (g.input_w, g.input_h), interpolation=interp)
