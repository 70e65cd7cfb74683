"""Data-preparation benchmark: ``prepare``'s images/s per process, and the share of a training step spent waiting for
data when stage 1 reads raw images (partitioned on the fly) or prepared shards. Prints its figures; see
docs/benchmarks.md.

    python bench/prepare.py [--photos 12] [--backend auto] [--steps 4] [--repeats 2] [--preset tiny] [--workers 2]

1. ``prepare`` (in this process, the default backend unless ``--backend`` says otherwise) on ``--photos`` generated
   copies of scikit-image's photos: model load seconds, then seconds per image and images/s over the partitions.
2. Stage-1 training steps (``--preset``, batch 2) from the same photos, two ways, interleaved ``--repeats`` times:
   ``raw`` = the DataLoader partitions each image in its (spawned) workers, as a training run did before
   ``prepare`` existed (a partition cache would help only from the second epoch); ``prepared`` = the workers
   read the shards written in 1. For each, the seconds spent waiting for the next batch and in the step, and
   the waiting share = wait / (wait + step). The first batch of each run (worker start-up) is reported apart.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def make_photos(folder: Path, n: int) -> Path:
    from PIL import Image
    from skimage import data

    names = ["astronaut", "chelsea", "coffee", "rocket", "camera", "coins", "cat", "immunohistochemistry"]
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        img = getattr(data, names[i % len(names)])()
        img = np.stack([img] * 3, -1) if img.ndim == 2 else img[..., :3]
        if i >= len(names):  # a different image each time: flip and roll
            img = np.roll(img[:, ::-1], 37 * i, axis=1)
        Image.fromarray(np.ascontiguousarray(img)).save(folder / f"{i:03d}.jpg", quality=92)
    return folder


def bench_prepare(photos: Path, out: Path, backend: str) -> dict:
    from elements.data.prepare import prepare_unit
    from elements.data.prepared import stats_path
    from elements.data.sources import DataSource, resolve_source
    from elements.partition import Partitioner

    t0 = time.perf_counter()
    partitioner = Partitioner(backend)
    load = time.perf_counter() - t0
    source = resolve_source(photos)
    times = []

    class Clock:  # the progress hook: time per image
        last = time.perf_counter()

        def update(self, n):
            now = time.perf_counter()
            times.append(now - Clock.last)
            Clock.last = now

    out.mkdir(parents=True, exist_ok=True)
    Clock.last = time.perf_counter()
    record = prepare_unit(
        0,
        DataSource("folder", source.root, source.units),
        out,
        partitioner,
        filters=None,
        image_size=512,
        crop_format="png",
        progress=Clock(),
    )
    (out / "prepare.json").write_text("{}")  # marks the folder as prepared for the readers
    assert stats_path(out / record["shard"]).is_file()
    return {"describe": partitioner.describe(), "load": load, "per_image": times}


def write_figure(prepared: Path, path: Path, key: str = "002.jpg") -> None:
    """One prepared sample as training reads it: the stored crop | the same with its stored elements drawn."""
    from elements.data.sources import iter_samples
    from elements.image_io import save_png
    from elements.visualize import render_overlay

    sample = next(s for s in iter_samples(prepared, split="all") if s.key == key)
    save_png(path, np.concatenate([sample.image, render_overlay(sample.image, sample.labels)], axis=1))
    print(f"wrote {path}: {sample.key}, {int(sample.labels.max()) + 1} elements")


def train_run(source, partition: dict, steps: int, preset: str, workers: int) -> dict:
    import torch
    from accelerate import Accelerator

    from elements.data.dataset import ElementsDataset, make_dataloader
    from elements.train.common import make_optimizer
    from elements.train.stage1 import build_autoencoder, train_step

    torch.manual_seed(0)
    model = build_autoencoder(preset)
    args = argparse.Namespace(learning_rate=1e-4, adam_beta1=0.9, adam_beta2=0.95, weight_decay=0.01, adam_epsilon=1e-8)
    opt = make_optimizer(model.parameters(), args)
    acc = Accelerator(cpu=True)
    model, opt = acc.prepare(model, opt)
    ds = ElementsDataset(source, partition=partition, split="all", shuffle=False)
    waits, work = [], []
    batches = iter(make_dataloader(ds, batch_size=2, num_workers=workers))
    for _ in range(steps):
        t0 = time.perf_counter()
        batch = next(batches, None)
        t1 = time.perf_counter()
        if batch is None:
            break
        train_step(acc, model, opt, batch)
        waits.append(t1 - t0)
        work.append(time.perf_counter() - t1)
    del batches
    return {"first_wait": waits[0], "wait": sum(waits[1:]), "step": sum(work[1:]), "n": len(waits) - 1}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    p.add_argument("--photos", type=int, default=12, help="generated photos (default 12)")
    p.add_argument("--backend", default="auto", help="partition backend (default auto: the demo's)")
    p.add_argument("--steps", type=int, default=4, help="training steps per run, batch 2 (default 4)")
    p.add_argument("--repeats", type=int, default=2, help="interleaved raw/prepared runs each (default 2)")
    p.add_argument("--preset", default="tiny", choices=["tiny", "paper"], help="stage-1 model size (default tiny)")
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers (default 2)")
    p.add_argument("--figure", default=None, help="also write one prepared sample (crop | its elements) to this PNG")
    args = p.parse_args(argv)

    import torch

    print(f"machine: {os.cpu_count()} CPUs, torch {torch.__version__}, {torch.get_num_threads()} intra-op threads")
    with tempfile.TemporaryDirectory() as tmp:
        photos = make_photos(Path(tmp) / "photos", args.photos)
        prep = bench_prepare(photos, Path(tmp) / "prepared", args.backend)
        per = np.array(prep["per_image"])
        print(f"\n## prepare, 1 process: {prep['describe']}")
        print(f"model load {prep['load']:.2f} s; {len(per)} images: {per.mean():.2f} s/image (min {per.min():.2f}, ")
        print(f"max {per.max():.2f}) -> {1 / per.mean():.2f} images/s per process")
        if args.figure:
            write_figure(Path(tmp) / "prepared", Path(args.figure))

        print(f"\n## stage-1 steps ({args.preset}, batch 2, {args.workers} workers): waiting for data vs stepping")
        print("| run | repeat | first batch s | waiting s | step s | steps | waiting share |")
        print("|---|---|---|---|---|---|---|")
        partition = {"backend": args.backend}
        shares = {"raw": [], "prepared": []}
        for r in range(args.repeats):
            for name, source in (("raw", photos), ("prepared", Path(tmp) / "prepared")):
                res = train_run(source, partition, args.steps + 1, args.preset, args.workers)
                share = res["wait"] / max(1e-9, res["wait"] + res["step"])
                shares[name].append(share)
                print(
                    f"| {name} | {r + 1} | {res['first_wait']:.2f} | {res['wait']:.2f} | {res['step']:.2f} | "
                    f"{res['n']} | {share:.0%} |"
                )
        print(
            f"\nwaiting share, mean: raw {np.mean(shares['raw']):.0%}, prepared {np.mean(shares['prepared']):.0%} "
            f"(load average {os.getloadavg()[0]:.1f})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
