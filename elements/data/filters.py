"""LAION metadata filters (Sec. 4.1, App. C.2): aesthetic score >= 6.25, CLIP similarity >= 0.25.

Metadata tables differ in their column names, so each quantity accepts a short list of
documented aliases; the first one present is used. A table with none of them raises
:class:`~elements.errors.UserError` naming the columns it does have, at load time (when the
shard's parquet or the first sidecar JSON is opened), not after hours of training.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from elements.errors import UserError

MIN_AESTHETIC = 6.25  # Sec. 4.1 / App. C.2
MIN_SIMILARITY = 0.25  # Sec. 4.1 / App. C.2 ("text-to-image alignment score")

#: Accepted column names, in order of preference.
AESTHETIC_COLUMNS = ("aesthetic", "AESTHETIC_SCORE", "aesthetic_score", "aesthetic_score_laion_v2")
SIMILARITY_COLUMNS = ("similarity", "clip_similarity", "clip_sim", "similarity_score")


@dataclass(frozen=True)
class LaionFilter:
    """Keep a sample iff every set threshold is met (``None`` disables that test).

    Rows whose score is missing or NaN are dropped: they cannot be shown to pass.
    """

    min_aesthetic: float | None = MIN_AESTHETIC
    min_similarity: float | None = MIN_SIMILARITY

    def _tests(self) -> list[tuple[str, tuple[str, ...], float]]:
        tests = []
        if self.min_aesthetic is not None:
            tests.append(("aesthetic score", AESTHETIC_COLUMNS, float(self.min_aesthetic)))
        if self.min_similarity is not None:
            tests.append(("CLIP similarity", SIMILARITY_COLUMNS, float(self.min_similarity)))
        return tests

    def resolve(self, columns: Iterable[str], where: str) -> dict[str, str]:
        """Map each active test to the column it reads; UserError if a table lacks one."""
        cols = list(columns)
        found = {}
        for what, aliases, _ in self._tests():
            name = next((c for c in aliases if c in cols), None)
            if name is None:
                shown = ", ".join(cols[:20]) + (" ..." if len(cols) > 20 else "")
                raise UserError(
                    f"{where} has no {what} column (looked for {', '.join(aliases)}; it has: {shown or 'no columns'})."
                )
            found[what] = name
        return found

    def mask(self, table, where: str) -> np.ndarray:
        """``(rows,) bool`` keep-mask of a pandas DataFrame."""
        keep = np.ones(len(table), dtype=bool)
        columns = self.resolve(table.columns, where)
        for what, _, threshold in self._tests():
            values = np.asarray(table[columns[what]], dtype=np.float64)
            keep &= np.nan_to_num(values, nan=-np.inf) >= threshold
        return keep

    def keep(self, record: Mapping, where: str) -> bool:
        """The same test for one metadata dict (an image folder's sidecar JSON)."""
        columns = self.resolve(record.keys(), where)
        for what, _, threshold in self._tests():
            try:
                value = float(record[columns[what]])
            except (TypeError, ValueError):
                return False
            if not (math.isfinite(value) and value >= threshold):
                return False
        return True

    def describe(self) -> str:
        parts = [f"{what} >= {t:g}" for what, _, t in self._tests()]
        return " and ".join(parts) if parts else "no filter"
