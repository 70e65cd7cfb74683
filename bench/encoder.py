"""Speed and memory of the stage-1 models (``paper`` preset by default).

    python bench/encoder.py [--preset paper] [--device cpu] [--elements 256] [--repeats 3]

Prints the content encoder's throughput (elements/s on a batch of ``--elements`` masked
32×32 patches), the light decoder's seconds per 512² image (all ``--elements`` decoded
jointly, App. C.1), the FLOPs of both (machine-independent, torch's FlopCounterMode) and
the process's peak resident memory (``ru_maxrss``; tracemalloc does
not see torch's allocator). On CUDA it also prints peak allocated GPU memory.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _time(fn, repeats: int, device: str) -> float:
    fn()  # warm-up (allocations, kernel selection)
    _sync(device)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        _sync(device)
        best = min(best, time.perf_counter() - t)
    return best


def main() -> int:
    p = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="paper", help="model preset (paper | tiny)")
    p.add_argument("--device", default="cpu", help="torch device")
    p.add_argument("--elements", type=int, default=256, help="elements per image (Sec. 3.1 uses ~256)")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats; the best is reported")
    p.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"], help="model dtype")
    args = p.parse_args()

    import torch

    from elements.models.presets import build_content_encoder, build_light_decoder
    from elements.models.tokens import element_tokens

    dtype = getattr(torch, args.dtype)
    torch.manual_seed(0)
    enc = build_content_encoder(args.preset).to(args.device).eval()
    dec = build_light_decoder(args.preset).to(args.device).eval()
    if dtype != torch.float32:
        enc, dec = enc.to(dtype), dec.to(dtype)
    n = args.elements
    patches = torch.rand(1, n, 3, 32, 32, device=args.device, dtype=dtype)
    boxes = torch.cat([torch.rand(1, n, 2), 0.02 + 0.1 * torch.rand(1, n, 2)], -1).to(args.device, dtype)
    active = torch.ones(1, n, dtype=torch.bool, device=args.device)

    with torch.inference_mode():
        t_enc = _time(lambda: enc(patches), args.repeats, args.device)
        content = enc(patches)
        tokens = element_tokens(content, boxes, active, enc.config.num_freqs)
        t_dec = _time(lambda: dec(tokens, content, active), args.repeats, args.device)

    from torch.utils.flop_counter import FlopCounterMode

    with torch.inference_mode():
        with FlopCounterMode(display=False) as fc_enc:
            enc(patches[:, :1])
        with FlopCounterMode(display=False) as fc_dec:
            dec(tokens, content, active)
    n_enc = sum(x.numel() for x in enc.parameters())
    n_dec = sum(x.numel() for x in dec.parameters())
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
    threads = torch.get_num_threads()
    print(
        f"preset={args.preset} device={args.device} dtype={args.dtype} torch_threads={threads} "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}"
    )
    print(
        f"content encoder: {n_enc / 1e6:.1f}M params, {fc_enc.get_total_flops() / 1e9:.2f} GFLOP per element, "
        f"{n / t_enc:,.0f} elements/s (batch of {n}, {t_enc * 1e3:.1f} ms)"
    )
    print(
        f"light decoder:   {n_dec / 1e6:.1f}M params, {fc_dec.get_total_flops() / 1e9:.1f} GFLOP per image, "
        f"{t_dec:.3f} s per {dec.config.image_size}² image ({n} elements)"
    )
    print(f"peak RSS: {rss_mb:,.0f} MiB")
    if args.device.startswith("cuda"):
        print(f"peak GPU memory allocated: {torch.cuda.max_memory_allocated() / 2**20:,.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
