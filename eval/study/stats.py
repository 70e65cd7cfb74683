"""Statistics of 2AFC preference judgments: Wilson interval, binomial test, hierarchical bootstrap."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a proportion ``k / n`` (as fractions in [0, 1]); (nan, nan) for n = 0."""
    if n == 0:
        return float("nan"), float("nan")
    z = stats.norm.ppf(0.5 + confidence / 2)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def binomial_p(k: int, n: int) -> float:
    """Two-sided exact binomial test of ``k`` successes in ``n`` against p = 0.5 (scipy.stats.binomtest)."""
    if n == 0:
        return float("nan")
    return float(stats.binomtest(int(k), int(n), 0.5, alternative="two-sided").pvalue)


def hierarchical_bootstrap(
    chose_ours_by_worker: list[np.ndarray], *, n_boot: int = 2000, seed: int = 0, confidence: float = 0.95
) -> tuple[float, float]:
    """Percentile CI of the pooled preference, resampling workers, then each sampled worker's trials.

    ``chose_ours_by_worker``: one ``(n_w,) bool`` array per worker (their judgments for one
    baseline). Two-level resampling accounts for judgments of one worker being correlated,
    which the Wilson interval (independent trials) ignores. Returns fractions in [0, 1].
    """
    groups = [np.asarray(g, dtype=np.float64) for g in chose_ours_by_worker if len(g)]
    if not groups:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    sizes = np.array([len(g) for g in groups])
    flat = np.concatenate(groups)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    w = len(groups)
    est = np.empty(n_boot)
    for b in range(n_boot):
        picked = rng.integers(0, w, w)
        n = sizes[picked]
        # For each picked worker, n draws with replacement among that worker's own trials.
        idx = starts[np.repeat(picked, n)] + (rng.random(n.sum()) * np.repeat(n, n)).astype(np.int64)
        est[b] = flat[idx].mean()
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(est, [alpha, 1 - alpha])
    return float(lo), float(hi)
