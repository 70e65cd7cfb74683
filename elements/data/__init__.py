"""Training and evaluation data: readers, LAION filters, the held-out split, preprocessing, datasets.

>>> from elements.data import iter_samples, LaionFilter
>>> for s in iter_samples("laion-shards/", split="heldout", filters=LaionFilter()):
...     s.key, s.image.shape, s.caption          # decoded (H, W, 3) uint8

* :mod:`elements.data.sources` — image folder / img2dataset webdataset readers, :class:`Sample`, :class:`DataStats`.
* :mod:`elements.data.filters` — :class:`LaionFilter` (aesthetic >= 6.25, CLIP similarity >= 0.25, Sec. 4.1).
* :mod:`elements.data.split` — the held-out rule (the only definition of it).
* :mod:`elements.data.preprocess` — centre crop + resize to 512², cached partition.
* :mod:`elements.data.dataset` — :class:`ElementsDataset` (torch IterableDataset) and its collate.

The package itself holds the readers and the data flags and imports no torch; the dataset and
preprocessing live in their submodules (``from elements.data.dataset import ElementsDataset``).
"""

from __future__ import annotations

import argparse

from elements.data.filters import MIN_AESTHETIC, MIN_SIMILARITY, LaionFilter
from elements.data.sources import DataStats, Sample, iter_positioned, iter_samples, resolve_source
from elements.partition import Partitioner
from elements.partition.options import add_partition_args, partition_kwargs


def add_data_args(parser: argparse.ArgumentParser, *, training: bool = True) -> None:
    """Flags for the data pipeline, shared by ``prepare`` and the training stages (``training=False``: without
    the flags that only a training run reads: ``--partition-cache``, ``--no-shuffle``)."""
    g = parser.add_argument_group("data")
    g.add_argument(
        "--train-data",
        required=True,
        help="image folder (recursive), folder of img2dataset .tar shards (+ .parquet), one .tar, "
        "a shard pattern like 'laion/{00000..00999}.tar', or the output of 'python -m elements prepare' "
        "(its stored elements are used; no partition model is built)",
    )
    add_filter_args(g)
    g.add_argument("--image-size", type=int, default=512, help="square training resolution (512, Sec. 3.1)")
    add_partition_args(parser)
    if not training:
        return
    g.add_argument(
        "--partition-cache",
        default=None,
        help="raw images only: folder to cache partitions in (keyed by sha256 of key, backend settings and "
        "image); better, run 'python -m elements prepare' once and train on its shards",
    )
    g.add_argument(
        "--no-shuffle", action="store_true", help="read shards/files in sorted order instead of a per-epoch shuffle"
    )


def add_filter_args(parser) -> None:
    """The LAION filter flags (Sec. 4.1), shared by ``prepare``, the training stages and ``eval split`` / ``eval recon``;
    read them with :func:`filters_from_args`. The underscore spellings stay hidden aliases (:func:`elements.cli.accept_old_spellings`)."""
    parser.add_argument(
        "--laion-filter",
        action="store_true",
        help="keep only samples with aesthetic >= --min-aesthetic and CLIP similarity >= --min-similarity "
        "(Sec. 4.1); needs those columns in the shard parquet or sidecar JSON",
    )
    parser.add_argument(
        "--min-aesthetic",
        type=float,
        default=MIN_AESTHETIC,
        help=f"aesthetic threshold with --laion-filter (default {MIN_AESTHETIC}, Sec. 4.1); negative disables it",
    )
    parser.add_argument(
        "--min-similarity",
        type=float,
        default=MIN_SIMILARITY,
        help=f"CLIP similarity threshold with --laion-filter (default {MIN_SIMILARITY}, Sec. 4.1); negative disables it",
    )


def filters_from_args(args) -> LaionFilter | None:
    if not args.laion_filter:
        return None
    return LaionFilter(
        min_aesthetic=args.min_aesthetic if args.min_aesthetic >= 0 else None,
        min_similarity=args.min_similarity if args.min_similarity >= 0 else None,
    )


def partition_from_args(args) -> dict:
    """Partitioner keyword arguments, checked here so a bad flag fails before any worker starts.

    The partitioner itself is built lazily inside each DataLoader worker (a SAM model is never pickled).
    """
    kwargs = partition_kwargs(args)
    Partitioner(**{**kwargs, "backend": "grid"})  # validates N, beta, beta_c, T without loading any model
    return kwargs


__all__ = [
    "DataStats",
    "LaionFilter",
    "Sample",
    "add_data_args",
    "add_filter_args",
    "filters_from_args",
    "iter_positioned",
    "iter_samples",
    "partition_from_args",
    "resolve_source",
]
