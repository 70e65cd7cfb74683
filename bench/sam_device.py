"""The distilled SAM partition (Alg. 2) on CUDA vs the CPU: time per photo, N, dropped pixels, label agreement.

    python bench/sam_device.py        # needs a CUDA GPU and the converted weights (python -m elements.partition.tinysam)

Prints, for the four bundled photos, the median of 3 CUDA runs after a warm-up, one CPU run with all threads, the
pixel agreement of the two label maps on the content box, the time of one object click on the GPU, and the peak GPU
memory. Prepared for a GPU session; the numbers it prints go in docs/sam.md with the date.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from elements.partition import Partitioner
from elements.partition.objects import select_object
from elements.partition.tinysam import load_tinysam

PHOTOS = ("rocket", "astronaut", "coffee", "chelsea")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    ap.add_argument("--tinysam", default=None, help="distilled SAM folder (default: the cache, see docs/sam.md)")
    ap.add_argument("--repeats", type=int, default=3, help="CUDA runs per photo after one warm-up (default 3)")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("error: no CUDA GPU is visible", file=sys.stderr)
        return 2
    print("torch", torch.__version__, torch.cuda.get_device_name(0))
    gpu = Partitioner("sam", sam_model=load_tinysam(args.tinysam, device="cuda"), device="cuda")
    cpu = Partitioner("sam", sam_model=load_tinysam(args.tinysam))
    print("partition:", gpu.describe())
    for name in PHOTOS:
        img = f"assets/{name}.jpg"
        gpu(img)  # warm-up
        torch.cuda.synchronize()
        ts = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            el = gpu(img)
            torch.cuda.synchronize()
            ts.append(time.perf_counter() - t)
        t = time.perf_counter()
        ref = cpu(img)
        tc = time.perf_counter() - t
        m = el.geometry.content_mask()
        agree = float((el.labels[m] == ref.labels[m]).mean())
        print(
            f"{name}: N={el.num_elements} dropped={100 * el.meta['dropped_fraction']:.3f}% "
            f"cuda median {np.median(ts):.3f} s | cpu ({torch.get_num_threads()} threads) {tc:.2f} s "
            f"N={ref.num_elements} | label agreement {agree:.4f}"
        )
        if name == "rocket":
            t = time.perf_counter()
            ids = select_object(el, gpu.affinity, points=[(322, 250, True)])
            torch.cuda.synchronize()
            print(f"  object click on the GPU: {len(ids)} elements in {1000 * (time.perf_counter() - t):.1f} ms")
    print(f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
