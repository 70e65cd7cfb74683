"""Per-image metrics, run summaries and their files: shared by ``eval metrics`` and ``eval recon``.

* :func:`per_image_metrics` — MSE/PSNR/SSIM/LPIPS per image pair (conventions in :mod:`eval.metrics`);
* :func:`summarize` / :func:`format_summary` — one summary row per run (means, PSNR-cap count, FID);
* :func:`write_outputs` — ``per_image.csv``, ``summary.csv``, ``summary.md``, each atomically;
* :func:`add_metric_args` / :func:`build_lpips` — the metric flags both commands take.
"""

from __future__ import annotations

import argparse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

PER_IMAGE_METRICS = ("mse", "psnr", "ssim", "lpips")


def add_metric_args(p: argparse.ArgumentParser, default_metrics: str = "mse,psnr,ssim,lpips,fid") -> None:
    """Flags shared by ``metrics`` and ``recon``."""
    p.add_argument(
        "--metrics",
        default=default_metrics,
        help=f"comma-separated subset of mse,psnr,ssim,lpips,fid (default {default_metrics})",
    )
    p.add_argument("--device", default="cpu", help="torch device for LPIPS and FID features (default cpu)")
    p.add_argument("--batch-size", type=int, default=8, help="images per metric batch (default 8)")
    p.add_argument(
        "--lpips-net",
        default="alex",
        choices=["alex", "vgg", "squeeze"],
        help="LPIPS trunk (default alex, LPIPS v0.1 as in the paper's tables)",
    )
    p.add_argument(
        "--fid-workers", type=int, default=0, help="DataLoader workers for FID feature extraction (default 0)"
    )
    p.add_argument("--fid-batch-size", type=int, default=32, help="batch size for FID features (default 32)")
    p.add_argument(
        "--feature-extractor",
        default=None,
        help="module:callable returning a feature function for FID instead of clean-fid's Inception "
        "(callable(device) -> f((B,3,299,299) in [0,255]) -> (B,D)); used by offline tests",
    )
    p.add_argument("--kid", action="store_true", help="also report KID (clean-fid kernel_distance)")
    p.add_argument("--name", default=None, help="run name in summary tables (default: the --out folder name)")


def per_image_metrics(pairs, metrics, *, batch_size: int = 8, lpips_metric=None, progress=None) -> pd.DataFrame:
    """Per-image metrics for a list of :class:`eval.images.Pair`: DataFrame with ``stem`` + one column per metric.

    Images are decoded one batch ahead in a thread, so decoding overlaps computing.
    """
    from eval.images import read_pair
    from eval.metrics import compute_batch

    wanted = [m for m in metrics if m in PER_IMAGE_METRICS]
    if not wanted:
        return pd.DataFrame({"stem": [p.stem for p in pairs]})
    rows: list[dict] = []
    batches = [pairs[i : i + batch_size] for i in range(0, len(pairs), batch_size)]

    def load(batch):
        return [read_pair(p) for p in batch]

    with ThreadPoolExecutor(max_workers=1) as pool:
        nxt = pool.submit(load, batches[0]) if batches else None
        for bi, batch in enumerate(batches):
            loaded = nxt.result()
            nxt = pool.submit(load, batches[bi + 1]) if bi + 1 < len(batches) else None
            # Same-size runs inside a batch are stacked together; sizes may differ between images.
            groups: dict[tuple, list[int]] = {}
            for j, (p, _) in enumerate(loaded):
                groups.setdefault(p.shape, []).append(j)
            values: dict[int, dict] = {}
            for idx in groups.values():
                res = compute_batch(
                    np.stack([loaded[j][0] for j in idx]),
                    np.stack([loaded[j][1] for j in idx]),
                    wanted,
                    lpips_metric=lpips_metric,
                )
                for k, j in enumerate(idx):
                    values[j] = {m: float(res[m][k]) for m in wanted}
            rows += [{"stem": p.stem, **values[j]} for j, p in enumerate(batch)]
            if progress:
                progress(len(rows), len(pairs))
    return pd.DataFrame(rows, columns=["stem", *wanted])


def summarize(per_image: pd.DataFrame, *, name: str, fid=None, extra: dict | None = None) -> dict:
    """One summary row: N, means of the per-image columns, PSNR-cap count, FID with its N."""
    from eval.metrics import PSNR_CAP

    row: dict = {"run": name, "n": int(len(per_image))}
    for m in PER_IMAGE_METRICS:
        if m in per_image:
            row[m] = float(per_image[m].mean())
    if "psnr" in per_image:
        row["psnr_capped"] = int((per_image["psnr"] >= PSNR_CAP - 1e-9).sum())
    if fid is not None:
        row["fid"] = fid.fid
        row["fid_n"] = fid.n
        if fid.kid is not None:
            row["kid"] = fid.kid
        row["fid_features"] = fid.extractor
    row.update(extra or {})
    return row


def write_outputs(out, per_image: pd.DataFrame, summary: dict) -> None:
    from eval.report import to_markdown, write_csv, write_text

    out = Path(out)
    write_csv(out / "per_image.csv", per_image)
    df = pd.DataFrame([summary])
    write_csv(out / "summary.csv", df)
    write_text(out / "summary.md", to_markdown(df, {"psnr": 2, "fid": 2, "kid": 4}))


def format_summary(summary: dict) -> str:
    parts = [f"N={summary['n']}"]
    for m, d in (("mse", 4), ("psnr", 2), ("ssim", 4), ("lpips", 4)):
        if m in summary:
            parts.append(f"{m.upper()}={summary[m]:.{d}f}")
    if "fid" in summary:
        parts.append(f"FID={summary['fid']:.2f} (N={summary['fid_n']})")
    if "kid" in summary:
        parts.append(f"KID={summary['kid']:.4f}")
    if summary.get("psnr_capped"):
        parts.append(f"({summary['psnr_capped']} PSNR values at the cap)")
    return " ".join(parts)


def build_lpips(metrics, args):
    if "lpips" not in metrics:
        return None
    from eval.metrics import LPIPSMetric

    return LPIPSMetric(args.lpips_net, device=args.device)
