"""Giving freed memory back to the system.

Two uses. **Between the phases of one CLI run**: a partition model (the distilled SAM: ~0.8 GB
loaded, ~1.7 GB at its peak on a CPU) is not needed once the elements exist; dropping it and trimming the C heap (glibc keeps freed blocks for reuse)
before 40 Mpx outputs are drawn and encoded keeps those outputs from adding to the model's peak
(bench/budget.py). **In a long-lived server** (the demo): glibc gives every thread that meets a
locked heap an arena of its own (up to 8 per core) and, once a large block has been freed, raises
the size above which blocks are mapped on their own (up to 32 MB); Gradio's worker threads then
each keep tens of MB of freed numpy and torch temporaries that no other thread reuses, and the
demo's RSS climbs with the number of visitors (docs/demo.md, "Serving a crowd", has the figures).
:func:`configure_allocator` bounds both; :func:`start_trimmer` returns what requests freed.
Everything here is a no-op where the C library is not glibc.
"""

from __future__ import annotations

import ctypes
import gc
import os
import threading
import time

# mallopt parameters (glibc malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -3, -8


def _libc():
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt, libc.malloc_trim  # noqa: B018 - glibc only
        return libc
    except (OSError, AttributeError):  # not glibc (musl, macOS, Windows)
        return None


#: Blocks from this size up are mapped on their own: glibc's own ceiling for its dynamic threshold,
#: fixed so that it stops moving. A lower value (4 MB was tried) maps and zero-fills every large
#: numpy/torch temporary afresh: a SAM partition then took ~1 s (20-35 %) longer on 2 cores, for
#: no lower RSS once the trimmer runs (docs/demo.md, "Where the memory went").
MMAP_THRESHOLD = 32 * 2**20


def configure_allocator(*, arenas: int = 2, mmap_threshold: int = MMAP_THRESHOLD) -> bool:
    """Bound glibc's heap for a multi-threaded server; call it before the worker threads start.

    ``arenas``: at most this many malloc arenas (glibc's default is 8 per core);
    ``mmap_threshold``: blocks from this size up are mapped on their own and unmapped when
    freed (a fixed value also stops glibc raising it after each large free). A variable the
    user set (``MALLOC_ARENA_MAX``, ``MALLOC_MMAP_THRESHOLD_``) wins. Returns whether glibc took them.
    """
    libc = _libc()
    if libc is None:
        return False
    ok = True
    if "MALLOC_ARENA_MAX" not in os.environ:
        ok &= bool(libc.mallopt(_M_ARENA_MAX, int(arenas)))
    if "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        ok &= bool(libc.mallopt(_M_MMAP_THRESHOLD, int(mmap_threshold)))
    return ok


def trim_heap() -> None:
    """Return the C heap's free pages to the system (no garbage collection: cheap enough per request)."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


_trimmer: threading.Thread | None = None


def start_trimmer(interval: float = 5.0) -> None:
    """Trim the C heap every ``interval`` seconds in a daemon thread (once per process; a server's
    requests then never pay for it). What a finished request freed goes back to the system
    within ``interval``, so the RSS follows what is held, not the busiest moment so far."""
    global _trimmer
    if _trimmer is not None or _libc() is None:
        return

    def loop() -> None:
        while True:
            time.sleep(interval)
            trim_heap()

    _trimmer = threading.Thread(target=loop, name="eie-trim-heap", daemon=True)
    _trimmer.start()


def release_memory() -> None:
    """Collect unreachable Python objects, then return the C heap's free pages to the system."""
    gc.collect()
    trim_heap()


__all__ = ["MMAP_THRESHOLD", "configure_allocator", "release_memory", "start_trimmer", "trim_heap"]
