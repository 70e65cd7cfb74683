"""The streaming training dataset: read -> crop to 512² -> partition -> element arrays.

Each process reads its own part of the data (``rank`` of ``world_size``, from
``accelerate``), and each DataLoader worker a sub-part, so that across ``accelerate launch``
on many GPUs every sample is read once per epoch. Do not pass the DataLoader to
``accelerator.prepare`` (that would re-dispatch batches from rank 0).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch
from torch.utils.data import IterableDataset, get_worker_info

from elements.data.filters import LaionFilter
from elements.data.preprocess import PartitionCache, center_crop_resize
from elements.data.sources import DataStats, iter_positioned, resolve_source
from elements.geometry import WORKING_SIZE
from elements.models.tokens import pad_elements, token_boxes
from elements.partition import Partitioner
from elements.pixels import from_uint8


class ElementsDataset(IterableDataset):
    """Yields one dict per image:

    ``pixel_values``: ``(3, S, S)`` float32 in [-1, 1] (S = 512); ``caption``: str; ``key``: str;
    ``patches``: ``(N, 3, 32, 32)`` float32 in [0, 1]; ``boxes``: ``(N, 4)`` float32 ``(cx, cy, w, h)``
    normalised; ``active``: ``(N,)`` bool (all True); plus bookkeeping ``worker``, ``position``
    (records of this worker consumed, for resume) and ``stats`` (this worker's :class:`DataStats`).

    Args:
        source: folder, shard(s) or shard pattern (:func:`~elements.data.sources.resolve_source`).
        partition: ``dict`` of :class:`~elements.partition.Partitioner` arguments (built lazily in each
            worker, so a SAM model is never pickled), e.g. ``{"backend": "slic", "num_elements": 256}``.
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
        self._cache: PartitionCache | None = None

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch's shuffle; call before creating the DataLoader iterator."""
        self.epoch = int(epoch)

    def set_start_positions(self, positions: dict[int, int]) -> None:
        """Resume: worker ``w`` skips its first ``positions[w]`` records (undecoded). Cleared by :meth:`set_epoch` callers."""
        self.start_positions = {int(k): int(v) for k, v in positions.items()}

    def _partitioner(self) -> PartitionCache:
        if self._cache is None:
            self._cache = PartitionCache(Partitioner(**self.partition), self.cache_dir)
        return self._cache

    def __iter__(self):
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        stats = DataStats()
        part_fn = self._partitioner()
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
            canvas = center_crop_resize(sample.image, self.image_size)
            el = part_fn(sample.key, canvas)
            if el.num_elements == 0:
                stats.corrupt += 1  # nothing to encode (e.g. a blank image under SAM): treat as unusable
                continue
            pixels = from_uint8(canvas).permute(2, 0, 1)  # (3, S, S) in [-1, 1]
            yield {
                "pixel_values": pixels,
                "caption": sample.caption,
                "key": sample.key,
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
        "worker": int(items[-1]["worker"]),
        "position": int(max(it["position"] for it in items)),
        "stats": items[-1]["stats"],
    }


def make_dataloader(dataset: ElementsDataset, batch_size: int, num_workers: int = 0, max_elements: int | None = None):
    """A DataLoader over :class:`ElementsDataset` with :func:`collate` (padding to ``max_elements`` if given);
    workers are not persistent so that :meth:`ElementsDataset.set_epoch` reaches them."""
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        num_workers=num_workers,
        collate_fn=functools.partial(collate, max_elements=max_elements),
        pin_memory=torch.cuda.is_available(),
        drop_last=False,
    )


def total_stats(per_worker: dict[int, dict]) -> dict:
    """Sum the latest counters of each worker."""
    return DataStats.total(list(per_worker.values()))


__all__ = ["ElementsDataset", "collate", "make_dataloader", "total_stats"]
