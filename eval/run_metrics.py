"""``python -m eval metrics --pred DIR --ref DIR --out OUT``: reconstruction metrics of two image folders.

Images are matched by file stem (``pred/0001.png`` <-> ``ref/0001.jpg``); any unmatched file is
an error. Writes, each atomically:

* ``OUT/per_image.csv`` — one row per image: stem, mse, psnr, ssim, lpips (those requested);
* ``OUT/summary.csv`` and ``OUT/summary.md`` — one row for the run: N, the per-image means,
  the number of PSNR values at the cap, FID with its N (and KID when asked).

Conventions are documented in :mod:`eval.metrics` and :mod:`eval.fid`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from eval.summary import add_metric_args, build_lpips, format_summary, per_image_metrics, summarize, write_outputs


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        allow_abbrev=False,
        description="MSE, PSNR, SSIM, LPIPS and FID between two image folders "
        "matched by file stem (paper Tables 1-2 conventions).",
    )
    p.add_argument("--pred", required=True, help="folder of predicted / reconstructed images")
    p.add_argument("--ref", required=True, help="folder of reference images (same stems, same sizes)")
    p.add_argument("--out", required=True, help="output folder for per_image.csv, summary.csv, summary.md")
    add_metric_args(p)
    return p


def run(args) -> int:
    from elements.errors import UserError
    from eval.fid import compute_fid
    from eval.images import pair_folders
    from eval.metrics import parse_metrics

    metrics = parse_metrics(args.metrics)
    if args.batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {args.batch_size}.")
    pairs = pair_folders(args.pred, args.ref)
    lp = build_lpips(metrics, args)  # fail on missing weights before any work
    per_image = per_image_metrics(pairs, metrics, batch_size=args.batch_size, lpips_metric=lp)
    fid = None
    if "fid" in metrics:
        fid = compute_fid(
            [p.pred for p in pairs],
            [p.ref for p in pairs],
            device=args.device,
            num_workers=args.fid_workers,
            batch_size=args.fid_batch_size,
            feature_extractor=args.feature_extractor,
            kid=args.kid,
        )
    name = args.name or Path(args.out).resolve().name
    summary = summarize(per_image, name=name, fid=fid, extra={"lpips_net": args.lpips_net} if lp else None)
    write_outputs(args.out, per_image, summary)
    print(format_summary(summary), file=sys.stdout)
    return 0
