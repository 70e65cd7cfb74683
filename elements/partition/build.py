"""From a label map to an :class:`~elements.types.ImageElements` value (Alg. 2 lines 12-15)."""

from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage

from elements.geometry import Geometry
from elements.types import PATCH_SIZE, ImageElements, Source


def pixel_bboxes(labels: np.ndarray, num: int) -> np.ndarray:
    """Pixel bounding boxes ``(num, 4) int64`` (x0, y0, x1, y1), end-exclusive, of labels 0..num-1."""
    boxes = np.zeros((num, 4), dtype=np.int64)
    for i, sl in enumerate(ndimage.find_objects(labels + 1, max_label=num)):
        if sl is not None:
            boxes[i] = (sl[1].start, sl[0].start, sl[1].stop, sl[0].stop)
    return boxes


def masked_patches(image: np.ndarray, labels: np.ndarray, boxes: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Masked crops resized to 32 × 32 (App. C.1): ``(len(ids), 3, 32, 32) float32`` in [0, 1].

    Each crop is the element's bounding box with every pixel not in the element set to 0;
    the aspect ratio is not kept, so the content encoder sees no size information (Sec. 3.2).
    """
    out = np.zeros((len(ids), PATCH_SIZE, PATCH_SIZE, 3), dtype=np.float32)
    for k, (i, (x0, y0, x1, y1)) in enumerate(zip(ids, boxes)):
        crop = image[y0:y1, x0:x1] * (labels[y0:y1, x0:x1] == i)[..., None]
        interp = cv2.INTER_AREA if (x1 - x0) >= PATCH_SIZE and (y1 - y0) >= PATCH_SIZE else cv2.INTER_LINEAR
        out[k] = cv2.resize(crop.astype(np.float32), (PATCH_SIZE, PATCH_SIZE), interpolation=interp)
    return np.clip(out / 255.0, 0.0, 1.0).transpose(0, 3, 1, 2).copy()


def elements_from_labels(
    canvas: np.ndarray, labels: np.ndarray, geometry: Geometry, meta: dict | None = None, full: np.ndarray | None = None
) -> ImageElements:
    """Build the value for one image. ``labels`` must be contiguous 0..N-1 (-1 = dropped/padding).

    ``canvas``: ``(S, S, 3) uint8``; ``full``: the input's decoded pixels ``(h, w, 3) uint8`` (kept
    for the pixel decoders, which work at full resolution) or None. Centroid = mean pixel centre; size = bounding-box extent;
    both normalised by S.
    """
    size = geometry.size
    num = int(labels.max(initial=-1)) + 1
    ys, xs = np.nonzero(labels >= 0)
    lab = labels[ys, xs]
    areas = np.bincount(lab, minlength=num).astype(np.int64)
    if num and (areas == 0).any():
        raise ValueError("labels must be contiguous (every id 0..N-1 present)")
    safe = np.maximum(areas, 1)
    cx = np.bincount(lab, weights=xs + 0.5, minlength=num) / safe / size
    cy = np.bincount(lab, weights=ys + 0.5, minlength=num) / safe / size
    centroids = np.stack([cx, cy], axis=1).astype(np.float32)
    boxes = pixel_bboxes(labels, num)
    sizes = np.stack([boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]], axis=1).astype(np.float32) / size
    ids = np.arange(num, dtype=np.int32)
    content = geometry.content_mask()
    dropped = float(((labels < 0) & content).sum() / max(1, content.sum()))
    info = {"num_elements": num, "dropped_fraction": dropped, **(meta or {})}
    return ImageElements(
        sources=(Source(canvas, labels.astype(np.int32), geometry, full),),
        centroids=centroids,
        sizes=sizes,
        areas=areas,
        patches=masked_patches(canvas, labels, boxes, ids),
        source_index=np.zeros(num, dtype=np.int32),
        source_label=ids,
        source_centroids=centroids.copy(),
        source_sizes=sizes.copy(),
        active=np.ones(num, dtype=bool),
        edited=np.zeros(num, dtype=bool),
        meta=info,
    ).validate()


def input_labels(el: ImageElements) -> np.ndarray:
    """The canvas labels at the input's size, ``(H, W) int32``, -1 = dropped: what ``labels.png`` holds (+1).

    Guarantee: every element present is **one 4-connected region**. Nearest-neighbour resampling
    from the 512 canvas to a smaller input can cut a thin element in pieces; every piece but the
    largest goes to the neighbouring elements (nearest pixel), and that is repeated until each
    element is one piece. An element thinner than an input pixel can be absent; ``elements.json``
    then says ``"pixels": 0`` for it.

    An input at least as large as the canvas box (upsampling) repeats canvas rows and columns,
    which keeps 4-connectivity both ways: the pieces are then joined on the canvas (cheap) and the
    result upsampled, so a 40 Mpx map costs its own size once (160 MB), not several copies.
    """
    g = el.geometry
    ys, xs = g.input_pixel_index()
    if g.input_w >= g.content_w and g.input_h >= g.content_h:
        canvas = el.labels.astype(np.int32)  # a copy
        box = (slice(g.content_y, g.content_y + g.content_h), slice(g.content_x, g.content_x + g.content_w))
        canvas[box] = _one_piece(canvas[box])
        return np.take(canvas[:, xs], ys, axis=0)
    return _one_piece(np.take(el.labels[:, xs], ys, axis=0).astype(np.int32))


def _one_piece(lab: np.ndarray) -> np.ndarray:
    """``lab (H, W) int32`` (-1 = dropped) with each label one 4-connected region (see :func:`input_labels`)."""
    for _ in range(4):
        stray = np.zeros(lab.shape, dtype=bool)
        for k, box in enumerate(ndimage.find_objects(lab + 1)):  # label k + 1 - 1 = element k
            if box is None:
                continue
            mine = lab[box] == k
            parts, n = ndimage.label(mine)  # 4-connected (the default cross structure)
            if n > 1:
                keep = np.argmax(np.bincount(parts.ravel())[1:]) + 1
                stray[box] |= mine & (parts != keep)
        if not stray.any():
            return lab
        fill = lab.copy()
        fill[stray] = -1
        dropped = lab < 0
        _, (iy, ix) = ndimage.distance_transform_edt(fill < 0, return_indices=True)
        lab = np.where(stray, fill[iy, ix], lab).astype(np.int32)
        lab[dropped] = -1
    lab[stray] = -1  # pieces still split after four rounds (never seen) are marked dropped, not left split
    return lab


def label_counts(ids: np.ndarray, num: int, rows: int = 512) -> np.ndarray:
    """Pixels per element ``(num,) int64`` of an ``(H, W)`` map of ``id + 1`` (0 = none), counted in row
    bands (``np.bincount`` widens its input to int64: a whole 40 Mpx map would cost 320 MB)."""
    counts = np.zeros(num + 1, dtype=np.int64)
    for y in range(0, ids.shape[0], rows):
        counts += np.bincount(ids[y : y + rows].ravel(), minlength=num + 1)[: num + 1]
    return counts[1:]
