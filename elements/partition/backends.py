"""Partition backends: where the affinity of Algorithm 2 (or the labels) come from.

* ``sam``  — the paper's method (Sec. 3.1, App. C.3): SAM mask logits as affinity, then Eq. 1
  (:func:`sam_labels`); ``Partitioner`` then refines its borders unless ``refine="none"``
  (:mod:`elements.partition.refine`).
* ``slic`` — pixel-space SLIC from scikit-image, the paper's Fig. 16 baseline. The offline
  and CPU default, used when no SAM checkpoint can be had.
* ``grid`` — the regular-grid baseline: a uniform affinity, for which Eq. 1 is the Voronoi
  diagram of the query grid, i.e. the grid itself.
"""

from __future__ import annotations

import warnings

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

    Where SLIC collapses (stripes, noise, flat or 1-bit images can give one segment over most of
    the image), every segment larger than :data:`MAX_AREA_RATIO` times the mean element area is
    cut along the regular grid of ``num`` cells (:func:`grid_labels`), so the partition
    guarantees ``0.75 * num <= count <= num`` elements, none much larger than a grid cell
    (tests/test_security.py). scikit-image may also return a few more segments than asked;
    we ask for fewer until the count is at most ``num`` (usually at once).
    """
    ask = num
    grid = None
    for _ in range(8):
        with warnings.catch_warnings():  # kmeans2's "One of the clusters is empty" on flat images
            warnings.simplefilter("ignore")
            lab = slic(
                canvas,
                n_segments=ask,
                compactness=SLIC_COMPACTNESS,
                sigma=SLIC_SIGMA,
                start_label=1,
                mask=valid,
                enforce_connectivity=True,
                channel_axis=-1,
            )
        lab = lab.astype(np.int32) - 1
        lab, grid = _split_collapsed(lab, canvas, valid, num, grid)
        labels = cleanup(lab, smooth=True)
        got = int(labels.max()) + 1
        if got <= num:
            return labels
        if grid is not None:  # a collapse was cut along the grid: merge the smallest extras instead of re-asking
            break
        ask = max(1, int(ask * num / got) - 1)
    return _merge_smallest(labels, valid, num)


def _merge_smallest(labels: np.ndarray, valid: np.ndarray, num: int) -> np.ndarray:
    """At most ``num`` labels: the smallest extra elements' pixels go to the nearest remaining element."""
    from scipy.ndimage import distance_transform_edt

    got = int(labels.max()) + 1
    if got <= num:
        return labels
    areas = np.bincount(labels[labels >= 0], minlength=got)
    drop = np.argsort(areas, kind="stable")[: got - num]
    lab = labels.copy()
    lab[np.isin(lab, drop)] = -1
    _, (iy, ix) = distance_transform_edt(lab < 0, return_indices=True)
    lab = np.where(valid, lab[iy, ix], -1).astype(np.int32)
    return cleanup(lab, smooth=False)


#: A SLIC segment larger than this many mean element areas is cut along the grid (a collapse).
MAX_AREA_RATIO = 3.0


def _split_collapsed(lab: np.ndarray, canvas: np.ndarray, valid: np.ndarray, num: int, grid):
    """Cut oversized segments of ``lab`` ((S, S) int32, -1 outside) along the grid cells; returns (labels, grid)."""
    n_valid = int(valid.sum())
    if n_valid == 0 or lab.max() < 0:
        return lab, grid
    areas = np.bincount(lab[lab >= 0])
    big = np.flatnonzero(areas > MAX_AREA_RATIO * n_valid / num)
    if big.size == 0:
        return lab, grid
    if grid is None:
        rows, cols = np.flatnonzero(valid.any(axis=1)), np.flatnonzero(valid.any(axis=0))
        size = valid.shape[0]
        box = (cols[0] / size, rows[0] / size, (cols[-1] + 1) / size, (rows[-1] + 1) / size)
        grid = grid_labels(canvas, valid, box, num)
    cut = np.isin(lab, big) & (grid >= 0)
    out = lab.copy()
    out[cut] = int(lab.max()) + 1 + grid[cut]  # one new label per (collapsed region, grid cell)
    return out, grid


def sam_labels(
    affinity,
    canvas: np.ndarray,
    valid: np.ndarray,
    content_box,
    num: int,
    *,
    beta: float = BETA,
    beta_c: float = BETA_C,
    iterations: int = ITERATIONS,
    distance: str = DISTANCE,
) -> np.ndarray:
    """Algorithm 2 with a :class:`~elements.partition.sam.SamAffinity` (embedding computed once).

    The affinity is Alg. 2's provider itself: its ``samples`` give the plain assignment SAM's
    logits, its ``dense`` decodes each query's mask only inside its Eq. 1 candidate box
    (:class:`~elements.partition.algorithm.AffinityProvider`).
    """
    q = query_grid(content_box, num)
    with affinity.lock:  # the embedding is the affinity's state: one image at a time
        affinity.set_image(canvas)
        return run_algorithm2(affinity, q, valid, beta=beta, beta_c=beta_c, iterations=iterations, distance=distance)
