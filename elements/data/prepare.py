"""``python -m elements prepare``: compute every training image's elements once, into webdataset shards.

    python -m elements prepare --train-data photos/ --output-dir prepared/
    accelerate launch --multi_gpu --num_processes 8 -m elements prepare --train-data 'laion/{00000..01023}.tar' \\
        --output-dir laion-prepared/

Partitioning is the costly part of the data pipeline (one SAM encoder pass and Alg. 2 per image), so it
runs once here instead of in every training epoch; both training stages and ``eval`` then read the
stored crops and labels (format: :mod:`elements.data.prepared`) and never build a partition model.

**Work units.** The input is cut into units in a fixed order: one unit per input shard, or, for an
image folder, one unit per ``--samples-per-shard`` files (sorted by path). Unit ``i`` becomes
``prepared-<i>.tar`` and belongs to process ``i mod num_processes`` (``accelerate``'s process index and
count, over any number of machines); each process runs its partition model on its own device. So the
set of shards, and every byte in them, does not depend on the number of processes.

**Resume.** A shard is written to a hidden temporary file and renamed into place only when complete,
after its ``.stats.json``; a finished shard is never recomputed. After a kill at any point, running the
same command again finishes the job with the same keys and labels as an uninterrupted run. A rerun with
other settings is refused (``prepare.json`` records them).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

from elements.cli import accept_old_spellings
from elements.errors import UserError

logger = logging.getLogger("elements.data.prepare")

SAMPLES_PER_SHARD = 1000  # image-folder input: images per output shard (img2dataset input keeps its shards)


def build_parser(prog: str) -> argparse.ArgumentParser:
    from elements.data import add_data_args
    from elements.data.prepared import CROP_FORMATS

    p = argparse.ArgumentParser(
        prog=prog,
        allow_abbrev=False,
        description="Partition every image of a training set once and write webdataset shards of 512² crops with "
        "their element labels; training and evaluation read them without any partition model. Sharded over "
        "processes and machines with 'accelerate launch', resumable after a kill.",
    )
    p.add_argument("--output-dir", required=True, help="folder for the prepared shards (resumed when it exists)")
    add_data_args(p, training=False)
    g = p.add_argument_group("prepare")
    g.add_argument(
        "--samples-per-shard",
        type=int,
        default=SAMPLES_PER_SHARD,
        help=f"image-folder input: images per output shard (default {SAMPLES_PER_SHARD}); shard input keeps its shards",
    )
    g.add_argument(
        "--crop-format",
        default="png",
        choices=CROP_FORMATS,
        help="how the crop is stored: png (lossless, exactly the partitioned pixels; default) or jpg (quality 95, "
        "about 4x smaller)",
    )
    return accept_old_spellings(p)  # --output_dir etc., the spelling before hyphens everywhere


def _settings(source, *, partition: dict, filters, image_size: int, samples_per_shard: int, crop_format: str) -> dict:
    """What decides the shards' content; a resumed run must match (model paths excluded: the same weights may move)."""
    from elements.data.prepared import FORMAT_VERSION

    return {
        "format": FORMAT_VERSION,
        "source": str(source),
        "image_size": int(image_size),
        "samples_per_shard": int(samples_per_shard),
        "crop_format": crop_format,
        "filters": repr(filters),
        "partition": {
            k: partition.get(k)
            for k in ("backend", "num_elements", "beta", "beta_c", "iterations", "distance", "refine")
        },
    }


def process_state():
    """This process among all (``accelerate``'s ``PartialState``). Without a GPU it is a CPU process group (gloo), so
    that ``accelerate launch --multi_gpu`` or ``torchrun`` on a machine with no GPU still runs one part per process."""
    import torch
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available() or os.environ.get("ACCELERATE_USE_CPU", "") in ("1", "true"))


def plan_units(source, samples_per_shard: int) -> list:
    """The input cut into work units (:class:`~elements.data.sources.DataSource` each), in a fixed order."""
    from elements.data.sources import DataSource

    if source.kind == "folder":
        files = source.units
        return [
            DataSource("folder", source.root, files[i : i + samples_per_shard])
            for i in range(0, len(files), samples_per_shard)
        ]
    return [DataSource("webdataset", Path(u).parent, (u,)) for u in source.units]


def prepare_unit(
    index: int,
    unit,
    out: Path,
    partitioner,
    *,
    filters,
    image_size: int,
    crop_format: str,
    rank: int = 0,
    progress=None,
) -> dict:
    """Write ``prepared-<index>.tar`` (and its stats) for one unit; returns the stats."""
    import webdataset as wds

    from elements.atomic import write_text
    from elements.data.prepared import sample_members, shard_name, stats_path
    from elements.data.preprocess import center_crop_resize
    from elements.data.sources import DataStats, iter_positioned
    from elements.geometry import Geometry
    from elements.partition.build import pixel_bboxes

    final = out / shard_name(index)
    tmp = out / f".{final.name}.tmp"  # one owner per unit, so a fixed name: a rerun overwrites what a kill left
    stats = DataStats()
    size = int(image_size)
    geometry = Geometry.fit(size, size, size)
    params = {**partitioner.params(), "description": partitioner.describe()}
    written = empty = 0
    with open(tmp, "wb") as f, wds.TarWriter(f, encoder=False, mtime=0.0) as sink:
        for position, sample in iter_positioned(unit, split="all", filters=filters, stats=stats):
            crop = center_crop_resize(sample.image, size)
            labels = partitioner.labels(crop, geometry)
            num = int(labels.max(initial=-1)) + 1
            if num == 0:  # nothing to encode (e.g. a blank image under SAM)
                empty += 1
            else:
                sink.write(
                    sample_members(
                        f"{final.stem}-{position:06d}",
                        source_key=sample.key,
                        url=sample.meta.get("url"),
                        caption=sample.caption,
                        meta=sample.meta,
                        crop=crop,
                        labels=labels,
                        boxes=pixel_bboxes(labels, num),
                        partition=params,
                        crop_format=crop_format,
                    )
                )
                written += 1
            if progress is not None:
                progress.update(1)
        f.flush()
        os.fsync(f.fileno())
    record = {
        "shard": final.name,
        "rank": int(rank),
        "input": {"kind": unit.kind, "first": str(unit.units[0]), "count": len(unit.units)},
        "read": stats.records,
        "written": written,
        "refused": {
            "undecodable": stats.corrupt,
            "no image": stats.no_image,
            "filtered": stats.filtered,
            "no elements": empty,
            "truncated shard": stats.corrupt_shards,
        },
        "partition": params,
        "partition_description": partitioner.describe() + (f" ({partitioner.note})" if partitioner.note else ""),
    }
    write_text(stats_path(final), json.dumps(record, indent=2) + "\n")
    os.replace(tmp, final)
    return record


def summary_line(stats: list[dict], out: Path, skipped: int, seconds: float) -> str:
    """``prepare: 6 read, 1 refused (1 undecodable), 5 written in 3 shards (2 already done) in 12 s -> out``."""
    read = sum(s["read"] for s in stats)
    written = sum(s["written"] for s in stats)
    reasons: dict[str, int] = {}
    for s in stats:
        for why, n in s["refused"].items():
            reasons[why] = reasons.get(why, 0) + n
    refused = sum(n for why, n in reasons.items() if why != "truncated shard")
    why = ", ".join(f"{n} {w}" for w, n in reasons.items() if n)
    done = f" ({skipped} already done)" if skipped else ""
    return (
        f"prepare: {read} images read, {refused} refused{f' ({why})' if why else ''}, {written} written "
        f"in {len(stats)} shards{done} in {seconds:.0f} s -> {out}"
    )


def _check_same_settings(manifest: Path, settings: dict) -> None:
    """UserError when ``manifest`` (an earlier run's) was written with other settings than ``settings``."""
    if not manifest.is_file():
        return
    try:
        old = json.loads(manifest.read_text()).get("settings")
    except ValueError:
        old = None
    if old != json.loads(json.dumps(settings)):
        diff = sorted(k for k in settings if not isinstance(old, dict) or old.get(k) != settings[k])
        raise UserError(
            f"'{manifest.parent}' holds shards prepared with other settings ({', '.join(diff)}); "
            "use another output folder or the same flags."
        )


def _prepare_units(
    todo: list[int],
    units,
    out: Path,
    state,
    *,
    counted: bool,
    of: int,
    partition: dict,
    filters,
    image_size,
    crop_format,
) -> None:
    """Run :func:`prepare_unit` on this process's unfinished units ``todo`` (of its ``of``), with one progress bar.

    ``counted``: folder units are file lists, so the bar knows its total without decoding anything.
    """
    from tqdm.auto import tqdm

    from elements.partition import Partitioner

    # The partition model is built here, in this process, on its own device; never in a forked child.
    partitioner = Partitioner(**{**partition, "device": str(state.device)})
    if partitioner.note:
        logger.warning("rank %d: %s", state.process_index, partitioner.note)
    logger.info(
        "%d units, %d for %d process(es); rank %d: %d to do with %s",
        len(units),
        of,
        state.num_processes,
        state.process_index,
        len(todo),
        partitioner.describe(),
    )
    total = sum(len(units[i].units) for i in todo) if counted else None
    with tqdm(
        total=total,
        unit="img",
        desc=f"prepare rank {state.process_index}" if state.num_processes > 1 else "prepare",
        position=state.process_index,
        file=sys.stderr,
        dynamic_ncols=True,
    ) as bar:
        for i in todo:
            prepare_unit(
                i,
                units[i],
                out,
                partitioner,
                filters=filters,
                image_size=image_size,
                crop_format=crop_format,
                rank=state.process_index,
                progress=bar,
            )


def prepare(
    train_data,
    output_dir,
    *,
    partition: dict,
    filters=None,
    image_size: int = 512,
    samples_per_shard: int = SAMPLES_PER_SHARD,
    crop_format: str = "png",
) -> tuple[list[dict], int]:
    """Prepare ``train_data`` into ``output_dir`` on this process's share of the units (module docstring).

    Every process of an ``accelerate`` run must call it (it synchronises them). ``partition``: Partitioner keyword
    arguments (the model is built here only if this process has a unit to do, on its device). Returns, on every
    process, the stats of all finished shards and how many were already done before this call.
    """

    from elements.atomic import write_text
    from elements.data.prepared import MANIFEST, is_prepared, shard_name, shard_stats
    from elements.data.sources import resolve_source

    if samples_per_shard < 1:
        raise UserError(f"--samples-per-shard must be at least 1, got {samples_per_shard}.")
    if image_size < 16:
        raise UserError(f"--image-size must be at least 16, got {image_size}.")
    out = Path(output_dir)
    if out.exists() and not out.is_dir():
        raise UserError(f"'{out}' exists and is not a folder.")
    source = resolve_source(train_data)
    if is_prepared(source):
        raise UserError(f"'{train_data}' is already prepared; train on it directly.")
    settings = _settings(
        train_data,
        partition=partition,
        filters=filters,
        image_size=image_size,
        samples_per_shard=samples_per_shard,
        crop_format=crop_format,
    )
    state = process_state()
    manifest = out / MANIFEST
    _check_same_settings(manifest, settings)
    state.wait_for_everyone()
    units = plan_units(source, samples_per_shard)
    already = 0
    if state.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        write_text(manifest, json.dumps({"settings": settings}, indent=2) + "\n")
        already = sum((out / shard_name(i)).is_file() for i in range(len(units)))  # before any process starts
    state.wait_for_everyone()

    mine = [i for i in range(len(units)) if i % state.num_processes == state.process_index]
    todo = [i for i in mine if not (out / shard_name(i)).is_file()]
    if todo:
        _prepare_units(
            todo,
            units,
            out,
            state,
            counted=source.kind == "folder",
            of=len(mine),
            partition=partition,
            filters=filters,
            image_size=image_size,
            crop_format=crop_format,
        )
    state.wait_for_everyone()
    if state.is_main_process:
        for stale in out.glob(".prepared-*.tar.tmp"):
            stale.unlink(missing_ok=True)  # left by a kill; every unit is finished now
    state.wait_for_everyone()
    return shard_stats(out), already


def run(args) -> int:

    from elements.data import filters_from_args, partition_from_args
    from elements.data.prepared import describe_partitions

    started = time.perf_counter()
    state = process_state()
    logging.basicConfig(
        level=logging.INFO if state.is_main_process else logging.WARNING, format="%(asctime)s %(name)s: %(message)s"
    )
    stats, already = prepare(
        args.train_data,
        args.output_dir,
        partition=partition_from_args(args),
        filters=filters_from_args(args),
        image_size=args.image_size,
        samples_per_shard=args.samples_per_shard,
        crop_format=args.crop_format,
    )
    if state.is_main_process:
        print(summary_line(stats, Path(args.output_dir), already, time.perf_counter() - started))
        print(f"elements made by: {describe_partitions(stats)}")
    return 0


def prepare_for_training(args) -> object:
    """The data a training stage reads: ``--train-data`` itself when it is prepared or partitions without a model
    (slic, grid: cheap in the data workers), else its elements prepared once into ``OUTPUT_DIR/prepared``.

    So a SAM partition is computed once per image, in the training processes themselves (sharded like
    ``prepare``), and never in a DataLoader worker; a resumed run finds the shards done. Returns the
    :class:`~elements.data.sources.DataSource` to train on.
    """
    from elements.data import filters_from_args, partition_from_args
    from elements.data.dataset import MODEL_BACKENDS
    from elements.data.prepared import describe_partitions, is_prepared
    from elements.data.sources import resolve_source

    source = resolve_source(args.train_data)
    if is_prepared(source) or args.backend not in MODEL_BACKENDS:
        return source
    out = Path(args.output_dir) / "prepared"
    logger.info("raw images and --backend %s: preparing their elements once into %s", args.backend, out)
    stats, _ = prepare(
        args.train_data,
        out,
        partition=partition_from_args(args),
        filters=filters_from_args(args),
        image_size=args.image_size,
    )
    logger.info(
        "prepared %d samples; elements made by %s", sum(s["written"] for s in stats), describe_partitions(stats)
    )
    return resolve_source(out)
