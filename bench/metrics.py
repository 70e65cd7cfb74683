"""Throughput of the eval metrics at 512² against direct calls of the underlying libraries.

    OMP_NUM_THREADS=1 python bench/metrics.py [--n 16] [--repeats 3] [--device cpu]

Prints images/s per metric, ours vs direct, on the same in-memory 512×512 images:

* MSE, PSNR, SSIM — ``eval.metrics.compute_batch`` vs ``skimage.metrics`` per image (float64 in [0, 1]);
* LPIPS — ours vs ``lpips.LPIPS`` called directly on ``lpips.im2tensor`` inputs, same model
  (random AlexNet trunk: same cost as the pretrained one, which cannot be downloaded here);
* FID — ``eval.fid.compute_fid`` on file lists vs ``cleanfid.fid.compute_fid`` on the folders,
  both in clean mode with the same feature network (a randomly initialised torchvision
  Inception-v3 pool3, the cost of clean-fid's Inception, whose weights cannot be downloaded here);
* end to end — ``eval metrics``' per-image loop over PNG folders (decode + MSE/PSNR/SSIM).

Targets (issue 7): ours >= 0.9x direct for every metric.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch
from PIL import Image


def images(n: int) -> tuple[np.ndarray, np.ndarray]:
    from skimage import data

    rng = np.random.default_rng(0)
    srcs = [data.astronaut(), data.chelsea(), data.coffee(), data.rocket()]
    ref = np.stack(
        [np.asarray(Image.fromarray(srcs[i % 4]).resize((512, 512), Image.Resampling.BICUBIC)) for i in range(n)]
    )
    pred = np.clip(ref.astype(np.int16) + rng.integers(-20, 21, ref.shape), 0, 255).astype(np.uint8)
    return pred, ref


def best_pair(ours, direct, repeats: int) -> tuple[float, float]:
    """Best-of-``repeats`` seconds of each, interleaved (ours, direct, ours, ...) after one warm-up each,
    so load from other processes on a shared machine hits both alike."""
    ours()
    direct()
    t_o, t_d = [], []
    for _ in range(repeats):
        for fn, acc in ((ours, t_o), (direct, t_d)):
            t = time.perf_counter()
            fn()
            acc.append(time.perf_counter() - t)
    return min(t_o), min(t_d)


def inception_features(device=None):
    """Randomly initialised Inception-v3 up to pool3 (2048-d): clean-fid's compute cost without its weights."""
    import torchvision

    net = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=False).eval()
    net.fc = torch.nn.Identity()

    @torch.no_grad()
    def feat(x):
        return net((x / 255.0 - 0.5) / 0.5)

    return feat


def _ssim(ref, pred) -> float:
    """skimage's SSIM with the Gaussian window of Wang et al. 2004, on [0, 1] images (what eval.metrics uses)."""
    from skimage.metrics import structural_similarity

    return structural_similarity(
        ref, pred, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1, channel_axis=-1
    )


def _ours(pred, ref, bs: int, metric: str, **kw):
    """eval.metrics.compute_batch over all pairs, in batches of ``bs``, for one metric."""
    from eval.metrics import compute_batch

    def f():
        for i in range(0, len(pred), bs):
            compute_batch(pred[i : i + bs], ref[i : i + bs], [metric], **kw)

    return f


def pixel_rows(pred, ref, bs: int, repeats: int) -> list[tuple[str, float, float]]:
    """MSE, PSNR and SSIM: (metric, ours img/s, skimage img/s)."""
    from skimage.metrics import mean_squared_error, peak_signal_noise_ratio

    n = len(pred)
    direct = {
        "mse": lambda: [mean_squared_error(ref[i] / 255.0, pred[i] / 255.0) for i in range(n)],
        "psnr": lambda: [peak_signal_noise_ratio(ref[i] / 255.0, pred[i] / 255.0, data_range=1) for i in range(n)],
        "ssim": lambda: [_ssim(ref[i] / 255.0, pred[i] / 255.0) for i in range(n)],
    }
    rows = []
    for m in ("mse", "psnr", "ssim"):
        t_ours, t_direct = best_pair(_ours(pred, ref, bs, m), direct[m], repeats)
        rows.append((m, n / t_ours, n / t_direct))
    return rows


def lpips_row(pred, ref, bs: int, repeats: int) -> tuple[str, float, float]:
    """LPIPS (random-init AlexNet: the weights are not reachable offline): ours against the lpips package."""
    import lpips

    from eval.metrics import LPIPSMetric

    n = len(pred)
    torch.manual_seed(0)
    model = lpips.LPIPS(pnet_rand=True, verbose=False).eval()

    @torch.no_grad()
    def direct():
        for i in range(0, n, bs):
            a = torch.cat([lpips.im2tensor(x) for x in pred[i : i + bs]])
            b = torch.cat([lpips.im2tensor(x) for x in ref[i : i + bs]])
            model(a, b)

    ours = _ours(pred, ref, bs, "lpips", lpips_metric=LPIPSMetric("alex", model=model))
    t_ours, t_direct = best_pair(ours, direct, repeats)
    return ("lpips", n / t_ours, n / t_direct)


def file_rows(pred, ref, bs: int, repeats: int) -> list[tuple[str, float, float]]:
    """FID (clean-fid against ours, same feature network) and the end-to-end per-image loop from PNG files."""
    from cleanfid import fid as cfid
    from skimage.metrics import mean_squared_error, peak_signal_noise_ratio

    from eval.fid import compute_fid
    from eval.images import pair_folders
    from eval.summary import per_image_metrics

    n = len(pred)
    with tempfile.TemporaryDirectory() as tmp:
        dp, dr = Path(tmp, "pred"), Path(tmp, "ref")
        dp.mkdir()
        dr.mkdir()
        for i in range(n):
            Image.fromarray(pred[i]).save(dp / f"{i:04d}.png")
            Image.fromarray(ref[i]).save(dr / f"{i:04d}.png")
        pairs = pair_folders(dp, dr)
        feat = inception_features()
        t_ours, t_direct = best_pair(
            lambda: compute_fid(
                [p.pred for p in pairs],
                [p.ref for p in pairs],
                feature_fn=feat,
                batch_size=32,
                num_workers=0,
                warn=lambda m: None,
            ),
            lambda: cfid.compute_fid(
                str(dp),
                str(dr),
                mode="clean",
                device=torch.device("cpu"),
                num_workers=0,
                batch_size=32,
                custom_feat_extractor=feat,
                verbose=False,
            ),
            repeats,
        )
        rows = [("fid", 2 * n / t_ours, 2 * n / t_direct)]  # both sides' images go through the network

        def e2e_direct():
            for p in pairs:
                r, q = np.asarray(Image.open(p.ref)) / 255.0, np.asarray(Image.open(p.pred)) / 255.0
                mean_squared_error(r, q)
                peak_signal_noise_ratio(r, q, data_range=1)
                _ssim(r, q)

        t_e2e, t_e2e_direct = best_pair(
            lambda: per_image_metrics(pairs, ("mse", "psnr", "ssim"), batch_size=bs), e2e_direct, repeats
        )
        rows.append(("e2e", n / t_e2e, n / t_e2e_direct))
    return rows


def main() -> None:
    p = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=16, help="image pairs (default 16)")
    p.add_argument("--repeats", type=int, default=3, help="timing repeats, best is kept (default 3)")
    p.add_argument("--batch-size", type=int, default=8)
    args = p.parse_args()
    import warnings

    # torchvision "pretrained=" notices from lpips, singular-covariance notes on N < 2048
    warnings.filterwarnings("ignore")

    pred, ref = images(args.n)
    print(
        f"{args.n} image pairs of 512x512, torch threads {torch.get_num_threads()}, "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}"
    )
    print(f"{'metric':<8} {'ours img/s':>11} {'direct img/s':>13} {'ratio':>7}")
    bs, reps = args.batch_size, args.repeats
    rows = [*pixel_rows(pred, ref, bs, reps), lpips_row(pred, ref, bs, reps), *file_rows(pred, ref, bs, reps)]
    for m, o, d in rows:
        print(f"{m:<8} {o:>11.2f} {d:>13.2f} {o / d:>6.2f}x")
    print(
        "e2e = PNG decode + MSE + PSNR + SSIM per pair (ours: eval metrics' loop; direct: PIL + skimage);"
        " fid counts images through the feature network (pred + ref)."
    )


if __name__ == "__main__":
    main()
