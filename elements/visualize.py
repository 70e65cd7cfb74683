"""Drawing element overlays (boundaries, selection tint + outline, centroid dots, paper Fig. 4-5) and writing partition files."""

from __future__ import annotations

from pathlib import Path

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


def render_overlay(image: np.ndarray, labels: np.ndarray, *, selected=(), edited=None, dots=None) -> np.ndarray:
    """The one overlay renderer: ``(H, W, 3) uint8`` copy of ``image`` with elements marked.

    ``image``: ``(H, W, 3) uint8``; ``labels``: ``(H, W)`` int element id shown at each pixel,
    -1 = none (a hole or padding). Boundaries are lightened; ``selected`` ids get a tinted fill
    and a 2-px outline in :data:`SELECTED`; ``edited`` (``(N,) bool`` or None) ones a lighter
    :data:`EDITED` tint; ``dots`` (``(N, 2)`` float (x, y) pixels, NaN = none) draws the
    paper's centroid dots (Fig. 4-5: red selected, green edited, white other) for ids present
    in ``labels``. The demo's canvas (``elements/ui/canvas.js``) draws the same marks in the browser.
    """
    img = np.ascontiguousarray(image, dtype=np.uint8).copy()
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
    f = img.astype(np.float32)
    is_edit = edit_flag[lab] & ~sel_flag[lab]
    f[is_edit] = (1 - EDITED_TINT) * f[is_edit] + EDITED_TINT * np.array(EDITED, np.float32)
    is_sel = sel_flag[lab]
    f[is_sel] = (1 - SELECTED_TINT) * f[is_sel] + SELECTED_TINT * np.array(SELECTED, np.float32)
    edge = boundaries(lab)
    f[edge] = 0.45 * f[edge] + 0.55 * 255
    if is_sel.any():  # outline of the selection as a whole, 2 px inside its border
        inner = cv2.erode(
            is_sel.astype(np.uint8), np.ones((5, 5), np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=0
        )
        f[is_sel & ~inner.astype(bool)] = SELECTED
    img = np.clip(f, 0, 255).astype(np.uint8)
    if dots is not None:
        radius = max(2, round(min(img.shape[:2]) / 170))
        shown = np.zeros(n + 1, dtype=bool)
        shown[np.unique(lab[lab >= 0])] = True
        for i in np.flatnonzero(shown[:-1]):
            if i >= len(dots) or not np.isfinite(dots[i]).all():
                continue
            colour = SELECTED if sel_flag[i] else EDITED if edit_flag[i] else PLAIN
            x, y = int(round(dots[i, 0])), int(round(dots[i, 1]))
            cv2.circle(img, (x, y), radius + 1, (0, 0, 0), -1, lineType=cv2.LINE_AA)
            cv2.circle(img, (x, y), radius, colour, -1, lineType=cv2.LINE_AA)
    return img


def overlay(
    el: ImageElements, *, selected=(), at_input_size: bool = True, image: np.ndarray | None = None
) -> np.ndarray:
    """The image with element boundaries and a dot per active element: ``(H, W, 3) uint8``.

    At the input's size by default (what users see), else on the canvas. Drawn by
    :func:`render_overlay` from the partition's labels (``image=None``: the source photo) or
    over a given ``image`` of the current value (then dots sit at the current centroids).
    """
    g = el.geometry
    base = el.image if image is None else image
    if at_input_size:
        img = g.from_canvas(base) if image is None or image.shape[:2] == (g.size, g.size) else image
        labels = g.labels_to_input(el.labels)
        pts = g.norm_to_input(el.source_centroids if image is None else el.centroids)
    else:
        img, labels = base, el.labels
        pts = el.centroids * g.size
    pts = np.where(el.active[:, None], pts, np.nan)
    return render_overlay(img, labels, selected=selected, edited=el.edited, dots=pts)


def write_partition_outputs(el: ImageElements, directory) -> None:
    """Write elements.json, labels.png (16-bit, id + 1, 0 = dropped), overlay.png and the saved value."""
    import json

    from elements.image_io import save_png
    from elements.partition.build import input_labels
    from elements.types import elements_json

    d = Path(directory)
    lab = input_labels(el)  # each element one 4-connected region at the input's size
    (d / "elements.json").write_text(json.dumps(elements_json(el, lab), indent=1))
    save_png(d / "labels.png", (lab.astype(np.int64) + 1).astype(np.uint16))
    save_png(d / "overlay.png", overlay(el))
    el.save(d)
