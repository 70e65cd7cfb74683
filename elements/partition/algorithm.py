"""Algorithm 2 (App. C.3): SLIC-style assignment in an affinity space, vectorised.

All functions work on the S × S working canvas (S = 512). Eq. 1 takes an *affinity*
``s: (N, S, S) float32`` in [0, 1] — s[n, y, x] is how strongly pixel (x, y) belongs to the
element seeded at query n (Sec. 3.1) — which may be a zero-stride broadcast view.

Coordinates: queries and centroids are ``(N, 2) float32`` (x, y) in normalised canvas
coordinates [0, 1] (pixel centre (i + 0.5) / S). Label maps are ``(S, S) int32`` with -1 for
dropped pixels and padding.

Two phases per iteration
------------------------
SAM is asked twice per iteration, through an :class:`AffinityProvider`, and only where it matters:

1. **Plain assignment (lines 3-5) on logit samples.** ``provider.samples(points)`` returns SAM's
   *logits* ``(N, P)`` at P sample points, one per 8 × 8-px canvas cell, each an exact low-res
   logit position (never interpolated), with the points' positions ``(P, 2)``. Each valid sample
   goes to the query with the largest logit (ties: the nearest query), and each query's centroid
   is the mean of its samples (:func:`plain_assignment_from_samples`). Not the sigmoid: in float32
   it saturates to exactly 1.0 for logits above ~17, and on the 8 photos of
   ``bench/partition.py --table plain`` 7-95 % of the samples then had their top two prompts
   within 1e-4 (0.00-0.07 % on logits). The assignment is sensitive to where and what it reads:
   samples 2 canvas px away change 10-21 % of the final partition, logit noise of 1e-2 changes
   1-5 %; so the samples are exact logits at fixed positions (one per token), the same for
   every decode.
2. **Eq. 1 (line 7) only where a query can win.** From the adjusted centroids (line 6),
   :func:`candidate_boxes` gives each query the canvas box that holds every 16 × 16-px block in
   which it is a candidate of Eq. 1's exact pruning (:func:`candidate_mask`, shared with
   :func:`assign_with_distance`). ``provider.dense(points, boxes)`` need only be right inside each
   query's box; :func:`assign_with_distance` reads nothing else, so its labels equal those from
   the full affinity.

:class:`DenseAffinity` turns a plain ``fn(points) -> (N, S, S)`` (tests, the grid baseline) into
a provider; :func:`run_algorithm2` accepts either.

Distance in Eq. 1
-----------------
``d(m, n)`` is the distance between pixel m and centroid n in normalised canvas coordinates
(the canvas is [0, 1]², one unit is 512 px). The paper calls Eq. 1 "one iteration of SLIC" and
does not spell the distance out, so its form is a parameter, ``distance``:

* ``"squared"`` (default) — β·d², SLIC's own form. A query takes pixel m from the nearest
  centroid only if β·(d_n² − d_min²) ≤ 1, i.e. within ~1/√β = 64 px (two grid cells at N = 256,
  β = 64), so elements reach the object edge SAM's logits show while staying local. With the
  distilled SAM on the four bundled photos this drops 0.05-0.3 % of pixels (the paper reports
  ~0.1 %) and its elements follow objects (docs/sam.md has the table and the command).
* ``"euclidean"`` — β·d, plain distance. A full affinity swing of 1 moves a boundary by
  1/β = 8 px, a quarter of the grid spacing: the partition stays an almost regular grid
  (the first version's reading; kept for comparison).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol, runtime_checkable

import numpy as np
from skimage.measure import label as connected_label

BETA = 64.0  # Eq. 1; Sec. 4.1 and App. C.3
BETA_C = 0.2  # centroid adjustment ratio, App. C.3
NUM_ELEMENTS = 256  # 16 × 16 query grid, Sec. 3.1
ITERATIONS = 1  # T, App. C.3
DISTANCES = ("squared", "euclidean")
DISTANCE = "squared"  # form of d in Eq. 1 ("one iteration of SLIC", App. C.3); evidence in docs/sam.md
BLOCK = 16  # canvas px per side of the blocks of Eq. 1's candidate pruning, and the unit of candidate_boxes
SAMPLE_STRIDE = 8  # canvas px between plain-assignment samples: one per 8 × 8-px cell, i.e. one SAM token


def grid_shape(num: int, aspect: float) -> tuple[int, int]:
    """(rows, cols) of a query grid with about ``num`` points for a content box of ``aspect`` = w / h.

    ``rows * cols <= num``; a square box gives 16 × 16 for 256.
    """
    rows = max(1, int(round(math.sqrt(num / aspect))))
    cols = max(1, num // rows)
    return rows, cols


def query_grid(content_box: tuple[float, float, float, float], num: int) -> np.ndarray:
    """Regularly spaced queries at the cell centres of the content box.

    ``content_box``: (x0, y0, x1, y1) normalised. Returns ``(rows*cols, 2) float32`` (x, y),
    raster order (row-major, top-left first).
    """
    x0, y0, x1, y1 = content_box
    rows, cols = grid_shape(num, (x1 - x0) / (y1 - y0))
    xs = x0 + (np.arange(cols) + 0.5) * (x1 - x0) / cols
    ys = y0 + (np.arange(rows) + 0.5) * (y1 - y0) / rows
    gx, gy = np.meshgrid(xs, ys)
    return np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.float32)


def plain_assignment_from_samples(
    logits: np.ndarray, xy: np.ndarray, queries: np.ndarray, valid: np.ndarray
) -> np.ndarray:
    """Alg. 2 lines 3-5: argmax_n of SAM's logits ("SAM assignment") at each sample, then each element's centroid.

    ``logits``: ``(N, P) float32``, any real values, query n's logit at sample p.
    ``xy``: ``(P, 2) float32``, the samples' positions (x, y) in normalised canvas coordinates.
    ``queries``: ``(N, 2) float32``. ``valid``: ``(S, S) bool``; sample p counts only if
    ``valid[floor(y·S), floor(x·S)]``. Ties are broken by proximity to the query (the lowest
    index among equally near ones), so a uniform affinity yields the Voronoi grid. Returns the
    mean position of each query's samples, ``(N, 2) float32``; a query with no sample keeps its
    query point.
    """
    size_y, size_x = valid.shape
    logits = np.asarray(logits, dtype=np.float32)
    pos = np.asarray(xy, dtype=np.float32).astype(np.float64)
    ix = np.clip(np.floor(pos[:, 0] * size_x).astype(np.int64), 0, size_x - 1)
    iy = np.clip(np.floor(pos[:, 1] * size_y).astype(np.int64), 0, size_y - 1)
    keep = valid[iy, ix]
    if not keep.all():
        logits, pos = logits[:, keep], pos[keep]
    if logits.size == 0:
        return queries.astype(np.float32)
    px, py = pos[:, 0], pos[:, 1]
    q = logits.argmax(axis=0)
    best = logits[q, np.arange(logits.shape[1])]
    tie = (logits == best[None]).sum(axis=0) > 1
    if tie.any():  # rare for SAM's logits; everywhere for a uniform affinity
        t = np.flatnonzero(tie)
        d2 = (px[t][None] - queries[:, :1]) ** 2 + (py[t][None] - queries[:, 1:]) ** 2
        q[t] = np.where(logits[:, t] == best[t][None], d2, np.inf).argmin(axis=0)
    return _centroids(q, px, py, queries)


def _centroids(assign: np.ndarray, px: np.ndarray, py: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    n = fallback.shape[0]
    count = np.bincount(assign, minlength=n).astype(np.float64)
    cx = np.bincount(assign, weights=px, minlength=n)
    cy = np.bincount(assign, weights=py, minlength=n)
    out = fallback.astype(np.float64).copy()
    has = count > 0
    out[has, 0] = cx[has] / count[has]
    out[has, 1] = cy[has] / count[has]
    return out.astype(np.float32)


def label_centroids(labels: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """Centroids ``(N, 2) float32`` of a label map's elements 0..N-1; empty ones keep ``fallback``."""
    size = labels.shape[0]
    ys, xs = np.nonzero(labels >= 0)
    lab = labels[ys, xs]
    return _centroids(lab, (xs + 0.5) / size, (ys + 0.5) / size, fallback)


def adjust_centroids(centroids: np.ndarray, queries: np.ndarray, beta_c: float = BETA_C) -> np.ndarray:
    """Alg. 2 line 6: C̃ = β_c·C + (1 − β_c)·Q, which keeps centroids from collapsing."""
    return (beta_c * centroids + (1.0 - beta_c) * queries).astype(np.float32)


def _block(size: int) -> int:
    return BLOCK if size % BLOCK == 0 else 1


def candidate_mask(centroids: np.ndarray, size: int, beta: float = BETA, distance: str = DISTANCE) -> np.ndarray:
    """The queries that can win a pixel of each block in Eq. 1: ``(B, B, N) bool``, [block row, block col, n].

    Blocks are :data:`BLOCK` × :data:`BLOCK` canvas px (1 px when ``size`` is not a multiple of
    it), so B = size / 16. ``centroids``: ``(N, 2) float32`` (x, y) normalised (the adjusted
    centroids of line 6). With s in [0, 1], query n can win pixel m only if
    f(d(m, n)) <= min_k f(d(m, k)) + 1/β. Per block we keep the queries whose f(distance to the
    block) is within (the smallest f(farthest-corner distance) of any query) + 1/β, which is a
    superset of those winners (f is increasing); every block keeps at least one query.
    """
    if distance not in DISTANCES:
        raise ValueError(f"distance must be one of {DISTANCES}, got {distance!r}")
    b = _block(size)
    nb = size // b
    lo = (np.arange(nb) * b + 0.5) / size  # first pixel centre of each block row/col
    hi = lo + (b - 1) / size
    cx, cy = centroids[:, 0].astype(np.float64), centroids[:, 1].astype(np.float64)
    dx_min = np.maximum(np.maximum(lo[:, None] - cx[None], cx[None] - hi[:, None]), 0.0)  # (nb, N)
    dy_min = np.maximum(np.maximum(lo[:, None] - cy[None], cy[None] - hi[:, None]), 0.0)
    dx_max = np.maximum(np.abs(cx[None] - lo[:, None]), np.abs(cx[None] - hi[:, None]))
    dy_max = np.maximum(np.abs(cy[None] - lo[:, None]), np.abs(cy[None] - hi[:, None]))
    fmin = dy_min[:, None, :] ** 2 + dx_min[None, :, :] ** 2  # (nb_y, nb_x, N), squared distances
    fmax = dy_max[:, None, :] ** 2 + dx_max[None, :, :] ** 2
    if distance == "euclidean":
        fmin, fmax = np.sqrt(fmin), np.sqrt(fmax)
    return fmin <= fmax.min(axis=-1, keepdims=True) + 1.0 / beta + 1e-9


def candidate_boxes(centroids: np.ndarray, size: int, beta: float = BETA, distance: str = DISTANCE) -> np.ndarray:
    """Per query, the canvas box holding every pixel where it is a candidate of Eq. 1 (:func:`candidate_mask`).

    Returns ``(N, 4) int64`` (x0, y0, x1, y1) in canvas px, ends exclusive: the bounding box of
    the query's candidate blocks, so every coordinate is a multiple of :data:`BLOCK` (of 1 when
    ``size`` is not a multiple of it). A query that is nowhere a candidate gets (0, 0, 0, 0).
    :func:`assign_with_distance` reads query n's affinity only inside box n.
    """
    cand = candidate_mask(centroids, size, beta, distance)
    nb, b = cand.shape[0], size // cand.shape[0]
    rows, cols = cand.any(axis=1), cand.any(axis=0)  # (nb, N) each
    boxes = np.stack(
        [cols.argmax(0), rows.argmax(0), nb - cols[::-1].argmax(0), nb - rows[::-1].argmax(0)], axis=1
    ).astype(np.int64)
    boxes *= b
    boxes[~rows.any(axis=0)] = 0
    return boxes


def assign_with_distance(
    s: np.ndarray, centroids: np.ndarray, valid: np.ndarray, beta: float = BETA, distance: str = DISTANCE
) -> np.ndarray:
    """Eq. 1: g(m) = argmax_n [s(m, n) − β·f(d(m, n))], for every canvas pixel.

    ``f`` is the square (``distance="squared"``, default) or the identity (``"euclidean"``);
    see the module docstring. Exact, but only the candidates of each 16 × 16-px block
    (:func:`candidate_mask`) are evaluated, and ``s[n]`` is read only in query n's candidate
    blocks (inside :func:`candidate_boxes`), so it may hold anything elsewhere. Cost ~ S² · K,
    K ≈ 10-30, instead of S² · N. Ties go to the lowest query index. Returns ``(S, S) int32``;
    -1 where ``valid`` is False.
    """
    size = s.shape[-1]
    cand = candidate_mask(centroids, size, beta, distance)
    nb = cand.shape[0]
    b = size // nb
    k = int(cand.sum(-1).max())
    order = np.argsort(~cand, axis=-1, kind="stable")[..., :k]  # (nb, nb, K) candidates first, by index
    # a block with fewer than K candidates repeats its first one: no read outside the candidates, same argmax
    order = np.where(np.take_along_axis(cand, order, axis=-1), order, order[..., :1])

    pix = ((np.arange(size) + 0.5) / size).astype(np.float32)
    yi = np.arange(size).reshape(nb, b, 1, 1, 1)
    xi = np.arange(size).reshape(1, 1, nb, b, 1)
    cand_e = order[:, None, :, None, :]  # (nb, 1, nb, 1, K)
    score = np.asarray(s[cand_e, yi, xi], dtype=np.float32)  # (nb, b, nb, b, K) affinities of the candidates
    cx32, cy32 = centroids[:, 0].astype(np.float32), centroids[:, 1].astype(np.float32)
    dx = pix.reshape(1, 1, nb, b, 1) - cx32[cand_e]
    dy = pix.reshape(nb, b, 1, 1, 1) - cy32[cand_e]
    dist = dx * dx + dy * dy
    if distance == "euclidean":
        dist = np.sqrt(dist)
    score -= np.float32(beta) * dist
    best = np.take_along_axis(cand_e, score.argmax(-1)[..., None], axis=-1)[..., 0]  # (nb, b, nb, b)
    labels = best.reshape(size, size).astype(np.int32)
    labels[~valid] = -1
    return labels


def mode_filter(labels: np.ndarray) -> np.ndarray:
    """3 × 3 majority filter on a label map: the label-map analogue of a binary opening/closing.

    Removes one-pixel spurs, notches and isolated pixels along element boundaries. -1 (dropped
    or padding) never wins, padding stays padding, and the centre label wins ties.
    """
    h, w = labels.shape
    padded = np.pad(labels, 1, constant_values=-1)
    shifts = np.stack([padded[dy : dy + h, dx : dx + w] for dy in range(3) for dx in range(3)])  # (9, H, W)
    counts = np.zeros(shifts.shape, dtype=np.int16)
    for i in range(9):
        for j in range(i, 9):
            eq = shifts[i] == shifts[j]
            counts[i] += eq
            if j != i:
                counts[j] += eq
    counts[shifts < 0] = -1
    best = counts.argmax(axis=0)
    best = np.where(counts[4] >= counts.max(axis=0), 4, best)  # centre wins ties
    out = np.take_along_axis(shifts, best[None], axis=0)[0]
    return np.where(labels < 0, labels, out).astype(np.int32)


def keep_largest_components(labels: np.ndarray) -> np.ndarray:
    """Keep the largest 4-connected piece of each element; other pieces become -1 (dropped, Sec. 3.1)."""
    comp = connected_label(labels + 1, background=0, connectivity=1)  # equal values -> same region
    flat_c = comp.ravel()
    flat_l = labels.ravel()
    n_comp = int(flat_c.max())
    sizes = np.bincount(flat_c, minlength=n_comp + 1)
    first = np.full(n_comp + 1, -1, dtype=np.int64)
    idx = np.flatnonzero(flat_c)
    first[flat_c[idx[::-1]]] = idx[::-1]  # any pixel of each component gives its label
    comp_label = np.where(first >= 0, flat_l[np.maximum(first, 0)], -1)
    comp_ids = np.arange(1, n_comp + 1)
    # sort components by (label, -size) and keep the first of each label
    order = np.lexsort((-sizes[comp_ids], comp_label[comp_ids]))
    sorted_ids = comp_ids[order]
    sorted_lab = comp_label[sorted_ids]
    is_first = np.ones(len(sorted_ids), dtype=bool)
    is_first[1:] = sorted_lab[1:] != sorted_lab[:-1]
    keep = np.zeros(n_comp + 1, dtype=bool)
    keep[sorted_ids[is_first]] = True
    return np.where(keep[comp], labels, -1).astype(np.int32)


def relabel_contiguous(labels: np.ndarray) -> np.ndarray:
    """Renumber the present labels to 0..K-1, keeping their order (so raster order of queries)."""
    present = np.unique(labels[labels >= 0])
    lut = np.full(int(labels.max(initial=-1)) + 2, -1, dtype=np.int32)
    lut[present + 1] = np.arange(len(present), dtype=np.int32)
    return lut[labels + 1]


def cleanup(labels: np.ndarray, *, smooth: bool = True) -> np.ndarray:
    """Alg. 2 line 8 and App. C.3: morphological clean-up, connected components, renumbering."""
    if smooth:
        labels = mode_filter(labels)
    return relabel_contiguous(keep_largest_components(labels))


class BoxAffinity:
    """A dense affinity that holds values only inside one box per query: what Eq. 1 reads.

    ``values``: ``(N, h, w) float32``, query n's affinity for canvas pixels
    ``origin[n] + (0..h, 0..w)``; ``origin``: ``(N, 2) int64`` (x, y) canvas px; ``size``: S.
    Indexing ``s[n, y, x]`` (integer arrays, broadcast) reads ``values[n, y − y0, x − x0]``,
    clamped into the box: reads outside a query's box return some value of that box, which
    :func:`assign_with_distance` never uses. ``shape`` is (N, S, S), as for the full array
    (~30 MB for 256 queries instead of ~270 MB).
    """

    def __init__(self, values: np.ndarray, origin: np.ndarray, size: int) -> None:
        self.values, self.origin = values, np.asarray(origin, dtype=np.int64)
        self.shape = (values.shape[0], size, size)

    def __getitem__(self, index):
        n, y, x = index
        _, h, w = self.values.shape
        yy = np.clip(y - self.origin[n, 1], 0, h - 1)
        xx = np.clip(x - self.origin[n, 0], 0, w - 1)
        return self.values[n, yy, xx]


@runtime_checkable
class AffinityProvider(Protocol):
    """Where Alg. 2's affinity comes from, in its two phases (module docstring).

    Within one iteration :func:`run_algorithm2` passes the same ``points`` (the current
    centroids, ``(N, 2) float32`` (x, y) normalised) to :meth:`samples` and then to
    :meth:`dense`, so a provider may keep per-prompt state between the two calls.
    """

    def samples(
        self, points: np.ndarray, region: tuple[int, int, int, int] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(logits (N, P) float32, xy (P, 2) float32)``: scores at P sample points, argmax over n is what counts.

        ``region``: canvas px (x0, y0, x1, y1), ends exclusive, outside which no sample is read
        (the letterbox's padding); a provider may skip those samples and give them any value.
        """
        ...

    def dense(self, points: np.ndarray, boxes: np.ndarray) -> np.ndarray | BoxAffinity:
        """``(N, S, S) float32`` in [0, 1] (or a :class:`BoxAffinity`), correct inside ``boxes[n]``
        ((N, 4) int64 px, ends exclusive), any value outside."""
        ...


class DenseAffinity:
    """:class:`AffinityProvider` over a plain ``fn(points (N, 2)) -> (N, S, S) float32`` affinity in [0, 1].

    For tests, the grid baseline and any affinity that is dense anyway. :meth:`samples` reads the
    affinity itself (no logits) at pixel (8i + 4, 8j + 4) of every 8 × 8-px cell, i.e. at
    ``xy = ((8j + 4.5) / S, (8i + 4.5) / S)``, that pixel's centre (j the column, raster order).
    :meth:`dense` returns the whole affinity. ``fn`` runs once per distinct ``points``; only the
    latest result is kept.
    """

    def __init__(self, fn: Callable[[np.ndarray], np.ndarray]) -> None:
        self.fn = fn
        self._points: np.ndarray | None = None
        self._s: np.ndarray | None = None

    def _affinity(self, points: np.ndarray) -> np.ndarray:
        if self._s is None or not np.array_equal(self._points, points):
            self._s = None  # free the previous affinity first
            self._s = self.fn(points)
            self._points = np.array(points, copy=True)
        return self._s

    def samples(self, points: np.ndarray, region=None) -> tuple[np.ndarray, np.ndarray]:
        s = self._affinity(points)
        size, off = s.shape[-1], SAMPLE_STRIDE // 2
        values = np.asarray(s[:, off::SAMPLE_STRIDE, off::SAMPLE_STRIDE], dtype=np.float32).reshape(len(s), -1)
        centres = (np.arange(off, size, SAMPLE_STRIDE) + 0.5) / size
        gx, gy = np.meshgrid(centres, centres)
        return values, np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.float32)

    def dense(self, points: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        return self._affinity(points)


def run_algorithm2(
    affinity: AffinityProvider | Callable[[np.ndarray], np.ndarray],
    queries: np.ndarray,
    valid: np.ndarray,
    *,
    beta: float = BETA,
    beta_c: float = BETA_C,
    iterations: int = ITERATIONS,
    distance: str = DISTANCE,
) -> np.ndarray:
    """Algorithm 2 end to end, on the S × S canvas of ``valid`` (``(S, S) bool``, the content pixels).

    ``affinity``: an :class:`AffinityProvider`, or a plain ``fn(points (N, 2)) -> (N, S, S)``
    (wrapped in :class:`DenseAffinity`). Each iteration asks it once for samples and once for
    the dense affinity in the candidate boxes, both at the current centroids. ``queries``:
    ``(N, 2) float32`` (x, y) normalised. Returns the cleaned, contiguous label map
    ``(S, S) int32`` (-1 = dropped/padding).
    """
    if iterations < 1:
        raise ValueError("iterations must be >= 1")
    if distance not in DISTANCES:
        raise ValueError(f"distance must be one of {DISTANCES}, got {distance!r}")
    provider = affinity if isinstance(affinity, AffinityProvider) else DenseAffinity(affinity)
    size = valid.shape[0]
    rows, cols = np.flatnonzero(valid.any(axis=1)), np.flatnonzero(valid.any(axis=0))
    if not len(rows):
        raise ValueError("the canvas has no content pixels")
    region = (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)  # content bounding box, px
    centroids = queries
    labels = None
    for i in range(iterations):
        logits, xy = provider.samples(centroids, region)  # line 3: SAM prompted at the current centroids
        c_plain = plain_assignment_from_samples(logits, xy, queries, valid)  # lines 4-5
        c_adj = adjust_centroids(c_plain, queries, beta_c)  # line 6
        boxes = candidate_boxes(c_adj, size, beta, distance)  # where line 7 can be won
        boxes[:, 0::2] = boxes[:, 0::2].clip(region[0], region[2])  # padding is labelled -1 whatever s is there
        boxes[:, 1::2] = boxes[:, 1::2].clip(region[1], region[3])
        s = provider.dense(centroids, boxes)
        labels = assign_with_distance(s, c_adj, valid, beta, distance)  # line 7, Eq. 1
        del s
        if i == iterations - 1:
            labels = cleanup(labels)  # line 8
        else:
            centroids = label_centroids(labels, queries)  # line 9
    return labels
