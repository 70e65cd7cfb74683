"""Stage 1's memory estimate against one measured step on this machine's CPU; prints a table (docs/training.md).

    python bench/train_memory.py [--preset paper] [--steps "2 ckpt,4 ckpt,2 plain"]
    python bench/train_memory.py --time [--repeats 3]

Each step runs in its own process: build the autoencoder, measure it with
:func:`elements.train.memory_plan.probe_stage1`, then one training step (forward, MSE backward, AdamW
step) on a random batch of that many images × 256 active elements. "measured" is the peak RSS
(``VmHWM``, reset through ``/proc/self/clear_refs`` just before the step) over the RSS before it;
"held" is what the step holds by :meth:`~elements.train.memory_plan.Stage1Memory.held` (activations,
gradients, AdamW), "estimate" what :func:`~elements.train.memory_plan.plan_stage1` compares with the
free memory (with its margin and fixed overhead). Linux only.

``--time``: what checkpointing costs instead: forward + backward of one image (256 elements) with and
without it, interleaved, ``--repeats`` times each in one process; prints the medians and their ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

ELEMENTS = 256  # Sec. 3.1


def _batch(size: int):
    """A random ElementBatch of ``size`` images × :data:`ELEMENTS` active elements, and its target images."""
    import torch

    from elements.models.tokens import ElementBatch

    el = ElementBatch(
        torch.rand(size, ELEMENTS, 3, 32, 32), torch.rand(size, ELEMENTS, 4), torch.ones(size, ELEMENTS, dtype=bool)
    )
    return el, torch.rand(size, 3, 512, 512)


def one(preset: str, batch: int, checkpointing: bool) -> dict:
    """One measured step in this process."""
    from contextlib import nullcontext

    import torch

    from bench.load import rss_mb
    from elements.memory import trim_heap
    from elements.train.memory_plan import probe_stage1
    from elements.train.stage1 import build_autoencoder

    torch.manual_seed(0)
    model = build_autoencoder(preset).train()
    opt = torch.optim.AdamW(model.parameters(), 1e-4)
    mem = probe_stage1(model.encoder, model.decoder, "cpu", nullcontext, ELEMENTS)
    if checkpointing:
        model.encoder.enable_gradient_checkpointing()
        model.decoder.enable_gradient_checkpointing()
    el, target = _batch(batch)
    trim_heap()
    Path("/proc/self/clear_refs").write_text("5")  # peak RSS := RSS now
    base, _ = rss_mb(os.getpid())
    torch.nn.functional.mse_loss(model(el), target).backward()
    opt.step()
    _, peak = rss_mb(os.getpid())
    return {
        "measured": (peak - base) * 2**20,
        "held": mem.held(batch, ELEMENTS, checkpointing),
        "estimate": mem.need(batch, ELEMENTS, checkpointing),
    }


def timing(preset: str, repeats: int) -> None:
    """Interleaved forward + backward of one image with and without activation checkpointing."""
    import statistics
    import time

    import torch

    from elements.train.stage1 import build_autoencoder

    torch.manual_seed(0)
    model = build_autoencoder(preset).train()
    el, target = _batch(1)

    def step(checkpointing: bool) -> float:
        for m in (model.encoder, model.decoder):
            m.enable_gradient_checkpointing() if checkpointing else m.disable_gradient_checkpointing()
        t = time.perf_counter()
        torch.nn.functional.mse_loss(model(el), target).backward()
        model.zero_grad()
        return time.perf_counter() - t

    step(False)  # warm-up
    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(repeats):
        for ck in (False, True):
            times[ck].append(step(ck))
    off, on = statistics.median(times[False]), statistics.median(times[True])
    print(
        f"preset {preset}, fp32, CPU, one image x {ELEMENTS} elements, forward + backward, {repeats} interleaved repeats"
    )
    print(f"  without checkpointing {off:.2f} s, with {on:.2f} s (medians): {on / off:.2f}x")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="paper", choices=["paper", "tiny"])
    p.add_argument("--steps", default="2 ckpt,4 ckpt,2 plain", help='comma-separated "BATCH ckpt|plain"')
    p.add_argument("--time", action="store_true", help="time a step with and without checkpointing instead")
    p.add_argument("--repeats", type=int, default=3, help="interleaved repeats of --time")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.time:
        timing(a.preset, a.repeats)
        return 0
    if a.child:
        batch, mode = a.child.split()
        print(json.dumps(one(a.preset, int(batch), mode == "ckpt")))
        return 0
    print(f"preset {a.preset}, fp32, CPU, {ELEMENTS} elements per image")
    print(f"{'batch':>5} {'checkpointing':>13} {'measured GB':>12} {'held GB':>8} {'estimate GB':>12}")
    for spec in a.steps.split(","):
        batch, mode = spec.split()
        out = subprocess.run(
            [sys.executable, __file__, "--preset", a.preset, "--child", spec.strip()],
            capture_output=True,
            text=True,
            check=True,
        )
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            f"{batch:>5} {'on' if mode == 'ckpt' else 'off':>13} {r['measured'] / 1e9:12.2f} {r['held'] / 1e9:8.2f} "
            f"{r['estimate'] / 1e9:12.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
