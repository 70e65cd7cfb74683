"""Bounded caches the demo shares across visitors: decoded uploads and their partitions.

A visitor of the API sends the same photo to ``/partition`` and then to ``/edit`` again and
again (the endpoints are stateless); a visitor of the page uploads it once. Decoding and
partitioning it (the SAM encoder and Alg. 2: seconds on a CPU) once per photo instead of once
per call is most of the demo's throughput (docs/demo.md, "Serving a crowd"). What is cached is
immutable (:class:`~elements.types.ImageElements` values, decoded pixels, the SAM embedding,
never written to), so one entry safely serves every session that sends the same bytes.

Each cache has a byte budget and an entry cap and evicts the least recently used entry; a
value is weighed by the numpy arrays and torch tensors it holds. Two callers that ask for the
same missing key at once compute it once (the second waits for the first).
"""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

import numpy as np


def nbytes(value: Any, _seen: set | None = None) -> int:
    """Bytes held by the arrays and tensors inside ``value`` (tuples, lists, dicts, dataclasses), each counted once."""
    seen = set() if _seen is None else _seen
    if id(value) in seen:
        return 0
    seen.add(id(value))
    if isinstance(value, np.ndarray):
        base = value.base if isinstance(value.base, np.ndarray) else None
        return nbytes(base, seen) if base is not None else value.nbytes
    if hasattr(value, "element_size") and hasattr(value, "numel"):  # a torch tensor, without importing torch
        return int(value.element_size() * value.numel())
    if isinstance(value, (tuple, list)):
        return sum(nbytes(v, seen) for v in value)
    if isinstance(value, dict):
        return sum(nbytes(v, seen) for v in value.values())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return sum(nbytes(getattr(value, f.name), seen) for f in dataclasses.fields(value))
    return 0


class BoundedCache:
    """A thread-safe LRU map with at most ``max_items`` entries and ``max_bytes`` of arrays (:func:`nbytes`).

    A value larger than ``max_bytes`` on its own is returned but not kept.
    """

    def __init__(self, name: str, *, max_bytes: int, max_items: int) -> None:
        self.name, self.max_bytes, self.max_items = name, int(max_bytes), int(max_items)
        self._items: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._pending: dict[Hashable, threading.Event] = {}
        self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._items)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def get_or_compute(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """The cached value of ``key``, else ``compute()`` (once, however many threads ask) stored under it.

        An exception from ``compute`` is raised to its caller and nothing is stored; a caller that
        was waiting for it then computes it itself.
        """
        while True:
            with self._lock:
                if key in self._items:
                    self._items.move_to_end(key)
                    self.hits += 1
                    return self._items[key][0]
                event = self._pending.get(key)
                if event is None:
                    event = self._pending[key] = threading.Event()
                    self.misses += 1
                    break
            event.wait()  # another thread computes it; then look again
        try:
            value = compute()
            self.put(key, value)
            return value
        finally:
            with self._lock:
                self._pending.pop(key, None)
            event.set()

    def put(self, key: Hashable, value: Any) -> None:
        size = nbytes(value)
        with self._lock:
            if key in self._items:
                self._bytes -= self._items.pop(key)[1]
            if size > self.max_bytes:
                return
            self._items[key] = (value, size)
            self._bytes += size
            while self._items and (self._bytes > self.max_bytes or len(self._items) > self.max_items):
                _, (_, dropped) = self._items.popitem(last=False)
                self._bytes -= dropped

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0

    def stats(self) -> str:
        return (
            f"{self.name}: {len(self._items)} entries, {self._bytes / 2**20:.0f} of {self.max_bytes / 2**20:.0f} MB, "
            f"{self.hits} hits, {self.misses} misses"
        )


__all__ = ["BoundedCache", "nbytes"]
