"""Drawing element overlays (boundaries + centroid dots, paper Fig. 4-5) and writing partition files."""

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


def overlay(el: ImageElements, *, selected=(), at_input_size: bool = True, image: np.ndarray | None = None) -> np.ndarray:
    """The image with element boundaries and a dot per active element: ``(H, W, 3) uint8``.

    At the input's size by default (what users see), else on the canvas. Dots: red if in
    ``selected``, green if edited, white otherwise; deleted elements get no dot.
    """
    g = el.geometry
    base = el.image if image is None else image
    if at_input_size:
        img = g.from_canvas(base) if image is None or image.shape[:2] == (g.size, g.size) else image.copy()
        labels = g.labels_to_input(el.labels)
        pts = g.norm_to_input(el.source_centroids if image is None else el.centroids)
    else:
        img = base.copy()
        labels = el.labels
        pts = el.centroids * g.size
    img = np.ascontiguousarray(img)
    edge = boundaries(labels)
    img[edge] = (0.45 * img[edge] + 0.55 * 255).astype(np.uint8)
    radius = max(2, round(min(img.shape[:2]) / 170))
    sel = set(int(i) for i in selected)
    for i in range(el.num_elements):
        if not el.active[i]:
            continue
        colour = SELECTED if i in sel else EDITED if el.edited[i] else PLAIN
        x, y = int(round(pts[i, 0])), int(round(pts[i, 1]))
        cv2.circle(img, (x, y), radius + 1, (0, 0, 0), -1, lineType=cv2.LINE_AA)
        cv2.circle(img, (x, y), radius, colour, -1, lineType=cv2.LINE_AA)
    return img


def write_partition_outputs(el: ImageElements, directory) -> None:
    """Write elements.json, labels.png (16-bit, id + 1, 0 = dropped), overlay.png and the saved value."""
    import json

    from elements.image_io import save_png
    from elements.types import elements_json

    d = Path(directory)
    (d / "elements.json").write_text(json.dumps(elements_json(el), indent=1))
    lab = el.geometry.labels_to_input(el.labels)
    save_png(d / "labels.png", (lab.astype(np.int64) + 1).astype(np.uint16))
    save_png(d / "overlay.png", overlay(el))
    el.save(d)
