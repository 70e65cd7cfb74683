"""The streaming training dataset: read -> crop to 512² -> elements -> element arrays.

Elements come from one of two places (:class:`SampleElements`, the one owner of that choice):

* **prepared shards** (``python -m elements prepare``, :mod:`elements.data.prepared`): the stored crop
  and labels; no partition model is ever built;
* **raw images** (a folder or img2dataset shards): partitioned on the fly. A model-backed partition
  (SAM) is then built lazily in each DataLoader worker, and :func:`make_dataloader` starts those
  workers with ``spawn``, never ``fork``: a forked child inherits the parent's torch/onnxruntime
  thread pools mid-state and can block forever in its first model build.

Each process reads its own part of the data (``rank`` of ``world_size``, from
``accelerate``), and each DataLoader worker a sub-part, so that across ``accelerate launch``
on many GPUs every sample is read once per epoch. Do not pass the DataLoader to
``accelerator.prepare`` (that would re-dispatch batches from rank 0).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from elements.data.filters import LaionFilter
from elements.data.prepared import is_prepared
from elements.data.preprocess import PartitionCache, center_crop_resize
from elements.data.sources import DataStats, Sample, iter_positioned, resolve_source
from elements.errors import UserError
from elements.geometry import WORKING_SIZE, Geometry
from elements.models.tokens import pad_elements, token_boxes
from elements.partition import Partitioner
from elements.partition.build import elements_from_labels
from elements.pixels import from_uint8
from elements.types import ImageElements

#: backends whose Partitioner loads a model (the rest are pure numpy/OpenCV)
MODEL_BACKENDS = ("sam", "auto")


class SampleElements:
    """``sample -> (canvas (S, S, 3) uint8, ImageElements)``: stored elements when the sample has them, else a
    partition of its centre crop (through a lazily built, optionally cached :class:`~elements.partition.Partitioner`).

    Args:
        partition: :class:`~elements.partition.Partitioner` keyword arguments, used only for raw samples.
        image_size: canvas side S; a prepared sample of another size is refused with a :class:`UserError`.
        cache_dir: partition cache folder for raw samples (None = none).
    """

    def __init__(self, partition: dict, image_size: int = WORKING_SIZE, cache_dir=None) -> None:
        self.partition, self.image_size, self.cache_dir = dict(partition), int(image_size), cache_dir
        self._cache: PartitionCache | None = None

    @property
    def partitioner(self) -> Partitioner | None:
        """The partitioner, once a raw sample has made one (None for prepared data)."""
        return self._cache.partitioner if self._cache is not None else None

    def describe(self, sample: Sample) -> str:
        """What made this sample's elements, e.g. "prepared: SAM-feature SLIC (Alg. 2 ...) ..." or "on the fly: ..."."""
        if sample.labels is not None:
            part = sample.partition or {}
            return "prepared: " + str(part.get("description") or part.get("backend") or "unknown partition")
        if self.partitioner is None:
            return f"on the fly: --backend {self.partition.get('backend', 'auto')}"
        note = f" ({self.partitioner.note})" if self.partitioner.note else ""
        return f"on the fly: {self.partitioner.describe()}{note}"

    def __call__(self, sample: Sample) -> tuple[np.ndarray, ImageElements]:
        if sample.labels is not None:
            canvas = sample.image
            if canvas.shape[:2] != (self.image_size, self.image_size):
                raise UserError(
                    f"The prepared data holds {canvas.shape[1]}x{canvas.shape[0]} crops, not the "
                    f"{self.image_size}x{self.image_size} that --image-size asks for; prepare it again at that size."
                )
            meta = {"partition": sample.partition or {}, "prepared": True}
            return canvas, elements_from_labels(canvas, sample.labels, Geometry.fit(*canvas.shape[1::-1]), meta)
        if self._cache is None:
            self._cache = PartitionCache(Partitioner(**self.partition), self.cache_dir)
        canvas = center_crop_resize(sample.image, self.image_size)
        return canvas, self._cache(sample.key, canvas)


class ElementsDataset(IterableDataset):
    """Yields one dict per image:

    ``pixel_values``: ``(3, S, S)`` float32 in [-1, 1] (S = 512); ``caption``: str; ``key``: str;
    ``patches``: ``(N, 3, 32, 32)`` float32 in [0, 1]; ``boxes``: ``(N, 4)`` float32 ``(cx, cy, w, h)``
    normalised; ``active``: ``(N,)`` bool (all True); ``elements_by``: what made the elements
    (:meth:`SampleElements.describe`); plus bookkeeping ``worker``, ``position``
    (records of this worker consumed, for resume) and ``stats`` (this worker's :class:`DataStats`).

    Args:
        source: folder, shard(s) or shard pattern (:func:`~elements.data.sources.resolve_source`).
        partition: ``dict`` of :class:`~elements.partition.Partitioner` arguments for raw images (built lazily in
            each worker, so a SAM model is never pickled), e.g. ``{"backend": "slic", "num_elements": 256}``;
            unused for prepared shards.
        split, filters: as in :func:`~elements.data.sources.iter_samples`.
        cache_dir: partition cache folder (None = no cache).
        rank, world_size: this process among all (``accelerator.process_index`` / ``num_processes``).
        shuffle, seed: shuffle the shard/file order each epoch (see :meth:`set_epoch`).
    """

    def __init__(
        self,
        source,
        *,
        partition: dict,
        split: str = "train",
        filters: LaionFilter | None = None,
        image_size: int = WORKING_SIZE,
        cache_dir=None,
        rank: int = 0,
        world_size: int = 1,
        shuffle: bool = True,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.source = resolve_source(source)
        self.partition = dict(partition)
        self.split, self.filters, self.image_size = split, filters, int(image_size)
        self.cache_dir, self.rank, self.world_size = cache_dir, int(rank), int(world_size)
        self.shuffle, self.seed = shuffle, int(seed)
        self.epoch = 0
        self.start_positions: dict[int, int] = {}
        self._elements: SampleElements | None = None

    @property
    def builds_models(self) -> bool:
        """Whether a worker may build a torch/onnxruntime model (then workers must be spawned, not forked).

        False for prepared shards, whose samples carry their elements; for raw data, True with a SAM backend.
        """
        return not is_prepared(self.source) and self.partition.get("backend", "auto") in MODEL_BACKENDS

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch's shuffle; call before creating the DataLoader iterator."""
        self.epoch = int(epoch)

    def set_start_positions(self, positions: dict[int, int]) -> None:
        """Resume: worker ``w`` skips its first ``positions[w]`` records (undecoded). Cleared by :meth:`set_epoch` callers."""
        self.start_positions = {int(k): int(v) for k, v in positions.items()}

    def _elements_of(self, sample: Sample) -> ImageElements:
        """The sample's elements (stored, or partitioned here); subclasses transform them (element dropout)."""
        if self._elements is None:
            self._elements = SampleElements(self.partition, self.image_size, self.cache_dir)
        return self._elements(sample)

    def __iter__(self):
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        stats = DataStats()
        for position, sample in iter_positioned(
            self.source,
            split=self.split,
            filters=self.filters,
            part=self.rank * workers + worker,
            num_parts=self.world_size * workers,
            epoch=self.epoch,
            seed=self.seed,
            shuffle=self.shuffle,
            start=self.start_positions.get(worker, 0),
            stats=stats,
        ):
            canvas, el = self._elements_of(sample)
            if el.num_elements == 0:
                stats.corrupt += 1  # nothing to encode (e.g. a blank image under SAM): treat as unusable
                continue
            pixels = from_uint8(canvas).permute(2, 0, 1)  # (3, S, S) in [-1, 1]
            yield {
                "pixel_values": pixels,
                "caption": sample.caption,
                "key": sample.key,
                "elements_by": self._elements.describe(sample),
                "patches": el.patches,
                "boxes": token_boxes(el),
                "active": el.active.copy(),
                "worker": worker,
                "position": position,
                "stats": stats.as_dict(),
            }


def collate(items: Sequence[dict], max_elements: int | None = None) -> dict:
    """Batch dataset items: ``pixel_values (B, 3, S, S)``, ``elements`` (:class:`~elements.models.tokens.ElementBatch`,
    padded to ``max_elements``, or further if an image has more), ``captions``/``keys`` lists and the
    bookkeeping of the worker that made the batch (``worker``, ``position``, ``stats``).
    """
    largest = max(len(it["boxes"]) for it in items)
    return {
        "pixel_values": torch.stack([it["pixel_values"] for it in items]),
        "elements": pad_elements(
            [it["patches"] for it in items],
            [it["boxes"] for it in items],
            [it["active"] for it in items],
            max(largest, max_elements or 0),
        ),
        "captions": [it["caption"] for it in items],
        "keys": [it["key"] for it in items],
        "elements_by": sorted({it.get("elements_by", "") for it in items} - {""}),
        "worker": int(items[-1]["worker"]),
        "position": int(max(it["position"] for it in items)),
        "stats": items[-1]["stats"],
    }


def default_num_workers(num_processes: int = 1) -> int:
    """DataLoader workers per process: the usable CPUs shared among the processes on this machine, at most 8."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(0, min(8, cpus // max(1, num_processes)))


def make_dataloader(dataset: ElementsDataset, batch_size: int, num_workers: int = 0, max_elements: int | None = None):
    """A DataLoader over :class:`ElementsDataset` with :func:`collate` (padding to ``max_elements`` if given).

    Workers are not persistent so that :meth:`ElementsDataset.set_epoch` reaches them, and they are spawned
    (not forked) when they may build a model (:attr:`ElementsDataset.builds_models`).
    """
    context = "spawn" if num_workers > 0 and dataset.builds_models else None
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        num_workers=num_workers,
        collate_fn=functools.partial(collate, max_elements=max_elements),
        pin_memory=torch.cuda.is_available(),
        drop_last=False,
        multiprocessing_context=context,
    )


def total_stats(per_worker: dict[int, dict]) -> dict:
    """Sum the latest counters of each worker."""
    return DataStats.total(list(per_worker.values()))


__all__ = ["ElementsDataset", "SampleElements", "collate", "default_num_workers", "make_dataloader", "total_stats"]
