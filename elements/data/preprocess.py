"""Square 512² preprocessing and on-the-fly partition with an optional on-disk cache.

Training and evaluation images are centre-cropped to a square and resized to the working
size (512, Sec. 3.1), like the paper's LAION pipeline; on a square canvas the letterbox
:class:`~elements.geometry.Geometry` is the identity, so every pixel belongs to the content.
:func:`center_crop_resize` is the one crop/resize: the training dataset and the evaluation
references (``python -m eval split``) both call it, so a model is scored against images
resampled exactly as its training images were.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
from PIL import Image

from elements.atomic import atomic_write
from elements.geometry import WORKING_SIZE, Geometry
from elements.partition.build import elements_from_labels
from elements.types import ImageElements

CACHE_VERSION = 1


def center_crop_resize(image: np.ndarray, size: int = WORKING_SIZE) -> np.ndarray:
    """``(H, W, 3) uint8`` -> ``(size, size, 3) uint8``: central square crop, then Pillow bicubic resize.

    Pillow's bicubic widens its support when shrinking (antialiased, like torchvision's
    ``Resize`` on PIL images), so large LAION images do not alias; the crop offset rounds down.
    """
    h, w = image.shape[:2]
    side = min(h, w)
    y0, x0 = (h - side) // 2, (w - side) // 2
    crop = np.ascontiguousarray(image[y0 : y0 + side, x0 : x0 + side])
    if side == size:
        return crop
    return np.asarray(Image.fromarray(crop).resize((size, size), Image.Resampling.BICUBIC), dtype=np.uint8)


class PartitionCache:
    """Partition canvases with a :class:`~elements.partition.Partitioner`, caching label maps on disk.

    Entries are ``cache_dir/<2 hex>/<sha256>.npz`` holding the ``(S, S) int32`` labels (compressed),
    keyed by sha256 of the sample key, the partitioner's parameters and the canvas bytes, so a
    changed image or backend setting never reuses a stale partition. Writes are atomic; an
    unreadable entry is recomputed. ``cache_dir=None`` disables caching.
    """

    def __init__(self, partitioner, cache_dir=None) -> None:
        self.partitioner = partitioner
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.hits = 0
        self.misses = 0

    def entry(self, key: str, canvas: np.ndarray) -> Path:
        h = hashlib.sha256()
        h.update(
            json.dumps({"v": CACHE_VERSION, "key": key, "params": self.partitioner.params()}, sort_keys=True).encode()
        )
        h.update(np.ascontiguousarray(canvas).tobytes())
        digest = h.hexdigest()
        return self.cache_dir / digest[:2] / f"{digest}.npz"

    def __call__(self, key: str, canvas: np.ndarray) -> ImageElements:
        """Elements of a square ``(S, S, 3) uint8`` canvas."""
        size = canvas.shape[0]
        geometry = Geometry.fit(size, size, size)
        meta = {"partition": self.partitioner.params()}
        labels = None
        path = self.entry(key, canvas) if self.cache_dir else None
        if path is not None and path.is_file():
            try:
                with np.load(path) as z:
                    labels = z["labels"]
                if labels.shape != (size, size) or labels.dtype != np.int32:
                    labels = None
            except (OSError, ValueError, KeyError):
                labels = None
        if labels is not None:
            self.hits += 1
            try:
                return elements_from_labels(canvas, labels, geometry, meta)
            except ValueError:
                pass  # a cache entry that does not fit: recompute below
        self.misses += 1
        labels = self.partitioner.labels(canvas, geometry)
        if path is not None:
            _save_labels(path, labels)
        return elements_from_labels(canvas, labels, geometry, meta)


def _save_labels(path: Path, labels: np.ndarray) -> None:
    def write(tmp):
        with open(tmp, "wb") as f:  # a file object, so numpy does not append ".npz" to the temporary name
            np.savez_compressed(f, labels=labels.astype(np.int32))

    atomic_write(path, write)
