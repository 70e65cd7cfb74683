"""Giving freed memory back to the system between the phases of one CLI run.

A partition model (the distilled SAM: ~0.8 GB loaded, ~1.7 GB at its peak on a CPU) is not needed
once the elements exist; dropping it and trimming the C heap (glibc keeps freed blocks for reuse)
before 40 Mpx outputs are drawn and encoded keeps those outputs from adding to the model's peak
(bench/budget.py). A no-op where the C library has no ``malloc_trim``.
"""

from __future__ import annotations

import gc


def release_memory() -> None:
    """Collect unreachable Python objects, then return the C heap's free pages to the system."""
    gc.collect()
    try:
        import ctypes

        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (musl, macOS, Windows)
        pass


__all__ = ["release_memory"]
