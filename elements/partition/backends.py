"""Partition backends: where the affinity of Algorithm 2 (or the labels) come from.

* ``sam``  — the paper's method (Sec. 3.1, App. C.3): SAM mask logits as affinity, then Eq. 1.
* ``slic`` — pixel-space SLIC from scikit-image, the paper's Fig. 16 baseline. The offline
  and CPU default, used when no SAM checkpoint can be had.
* ``grid`` — the regular-grid baseline: a uniform affinity, for which Eq. 1 is the Voronoi
  diagram of the query grid, i.e. the grid itself.
"""

from __future__ import annotations

import numpy as np
from skimage.segmentation import slic

from elements.partition.algorithm import BETA, BETA_C, DISTANCE, ITERATIONS, cleanup, query_grid, run_algorithm2

SLIC_COMPACTNESS = 10.0  # scikit-image's default for RGB in Lab space
SLIC_SIGMA = 1.0  # scikit-image's recommended pre-smoothing for noisy photos


def grid_labels(canvas: np.ndarray, valid: np.ndarray, content_box, num: int) -> np.ndarray:
    """Regular grid through Algorithm 2 with s ≡ 0 (a zero-stride view, nothing allocated)."""
    q = query_grid(content_box, num)
    size = canvas.shape[0]
    s = np.broadcast_to(np.zeros((1, 1, 1), dtype=np.float32), (len(q), size, size))
    return run_algorithm2(lambda pts: s, q, valid, iterations=1)


def slic_labels(canvas: np.ndarray, valid: np.ndarray, num: int) -> np.ndarray:
    """scikit-image SLIC (k-means in Lab + xy) restricted to the content box, then the common clean-up.

    scikit-image may return a few more segments than asked; we ask for fewer until it returns
    at most ``num`` (usually at once).
    """
    ask = num
    for _ in range(8):
        lab = slic(canvas, n_segments=ask, compactness=SLIC_COMPACTNESS, sigma=SLIC_SIGMA, start_label=1,
                   mask=valid, enforce_connectivity=True, channel_axis=-1)
        labels = cleanup(lab.astype(np.int32) - 1, smooth=True)
        got = int(labels.max()) + 1
        if got <= num:
            return labels
        ask = max(1, int(ask * num / got) - 1)
    return labels


def sam_labels(affinity, canvas: np.ndarray, valid: np.ndarray, content_box, num: int, *,
               beta: float = BETA, beta_c: float = BETA_C, iterations: int = ITERATIONS,
               distance: str = DISTANCE) -> np.ndarray:
    """Algorithm 2 with a :class:`~elements.partition.sam.SamAffinity` (embedding computed once)."""
    from elements.partition.algorithm import grid_shape

    affinity.set_image(canvas)
    q = query_grid(content_box, num)
    size = canvas.shape[0]
    rows, cols = grid_shape(num, (content_box[2] - content_box[0]) / (content_box[3] - content_box[1]))
    cell = ((content_box[2] - content_box[0]) * size / cols, (content_box[3] - content_box[1]) * size / rows)
    window = affinity.window_for(beta=beta, beta_c=beta_c, iterations=iterations, distance=distance, cell=cell, size=size)
    return run_algorithm2(lambda pts: affinity(pts, size, window=window), q, valid, beta=beta, beta_c=beta_c, iterations=iterations,
                          distance=distance)
