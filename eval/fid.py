"""FID (and optionally KID) with clean-fid in "clean" mode, on explicit lists of files.

clean-fid's own ``compute_fid(dir1, dir2, mode="clean")`` globs each folder; we call the very
functions it calls (``get_files_features`` with its PIL-bicubic resizer to 299², then
``frechet_distance`` on mean and covariance) on the *matched* files only, so extra files in a
folder never leak into the score and the number equals a direct clean-fid call on folders that
hold exactly those images (tested).

The Inception-v3 weights (``inception-2015-12-05.pt``) are a TorchScript file that clean-fid
downloads into ``/tmp``; offline, a missing file raises :class:`UserError` saying where to put it.
``feature_extractor="module:callable"`` replaces Inception: ``callable(device)`` must return a
function mapping ``(B, 3, 299, 299) float32`` in [0, 255] to ``(B, D)`` features — the tests'
offline hook, and a way to compute e.g. CLIP-FID.
"""

from __future__ import annotations

import importlib
import os
import platform
import sys
from dataclasses import dataclass

import numpy as np
import torch

from elements.errors import UserError

FID_MIN_IMAGES = 2048  # Inception pool3 has 2048 dims; fewer images give a rank-deficient covariance
INCEPTION_FILE = "inception-2015-12-05.pt"


@dataclass(frozen=True)
class FIDResult:
    fid: float
    n: int  # images per side
    kid: float | None
    extractor: str


def inception_path() -> str:
    """Where clean-fid looks for (and downloads) the Inception weights."""
    return os.path.join("./" if platform.system() == "Windows" else "/tmp", INCEPTION_FILE)


def load_extractor(spec: str | None, device) -> tuple[object, str]:
    """``(feature_fn, description)``; ``spec`` None = clean-fid's Inception-v3 in clean mode."""
    device = torch.device(device)
    if spec:
        mod_name, _, attr = spec.partition(":")
        if not mod_name or not attr:
            raise UserError(f"--feature-extractor must look like module:callable, got '{spec}'.")
        try:
            factory = getattr(importlib.import_module(mod_name), attr)
        except (ImportError, AttributeError) as err:
            raise UserError(f"Cannot import feature extractor '{spec}' ({type(err).__name__}: {err}).") from err
        return factory(device), spec
    from cleanfid.downloads_helper import inception_url
    from cleanfid.features import build_feature_extractor

    path = inception_path()
    try:
        # DataParallel only helps with several GPUs and breaks plain CPU runs' determinism of device placement.
        return build_feature_extractor("clean", device, use_dataparallel=False), "inception-v3 (clean-fid, clean mode)"
    except (OSError, RuntimeError) as err:  # offline (URLError is an OSError), a truncated or corrupt file
        raise UserError(
            f"FID needs the Inception weights {INCEPTION_FILE}, which could not be loaded ({type(err).__name__}); "
            f"download {inception_url} on a connected machine and put it at {path}, or pass --feature-extractor."
        ) from err


def features(files: list[str], feat_fn, *, device, num_workers: int, batch_size: int) -> np.ndarray:
    """clean-mode features of ``files`` in order: ``(N, D) float``."""
    from cleanfid import fid as cfid

    return cfid.get_files_features(
        files,
        feat_fn,
        num_workers=num_workers,
        batch_size=batch_size,
        device=torch.device(device),
        mode="clean",
        verbose=False,
    )


def compute_fid(
    pred_files: list[str],
    ref_files: list[str],
    *,
    device="cpu",
    num_workers: int = 0,
    batch_size: int = 32,
    feature_extractor: str | None = None,
    kid: bool = False,
    warn=None,
    feature_fn=None,
) -> FIDResult:
    """FID between two lists of image files (clean-fid, clean mode).

    ``feature_extractor``: ``"module:callable"`` hook (see the module docstring), or None for
    Inception; ``feature_fn``: an already built feature function (overrides it; for library use).
    ``warn``: callable receiving the small-sample warning (default: print to stderr).
    """
    from cleanfid import fid as cfid

    if len(pred_files) < 2 or len(ref_files) < 2:
        raise UserError(f"FID needs at least 2 images per side, got {len(pred_files)} and {len(ref_files)}.")
    n = min(len(pred_files), len(ref_files))
    if n < FID_MIN_IMAGES:
        msg = (
            f"warning: FID on N={n} images (< {FID_MIN_IMAGES}) is biased upwards and not comparable "
            f"to FIDs on other N; the paper's Tables 1-2 use N=5,000."
        )
        (warn or (lambda m: print(m, file=sys.stderr)))(msg)
    if feature_fn is not None:
        feat_fn, desc = feature_fn, getattr(feature_fn, "__qualname__", "custom feature function")
    else:
        feat_fn, desc = load_extractor(feature_extractor, device)
    f1 = features(list(map(str, pred_files)), feat_fn, device=device, num_workers=num_workers, batch_size=batch_size)
    f2 = features(list(map(str, ref_files)), feat_fn, device=device, num_workers=num_workers, batch_size=batch_size)
    mu1, s1 = np.mean(f1, axis=0), np.cov(f1, rowvar=False)
    mu2, s2 = np.mean(f2, axis=0), np.cov(f2, rowvar=False)
    score = float(cfid.frechet_distance(mu1, s1, mu2, s2))
    k = float(cfid.kernel_distance(f1, f2)) if kid else None
    return FIDResult(fid=score, n=n, kid=k, extractor=desc)


def pooled_pixels(device=None):
    """A tiny deterministic feature function for offline smoke tests (NOT Inception; not comparable to FID).

    ``(B, 3, 299, 299)`` in [0, 255] -> ``(B, 48)``: the image average-pooled to 4 × 4 per channel,
    scaled to [0, 1]. Use as ``--feature-extractor eval.fid:pooled_pixels``.
    """

    def feat(x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.adaptive_avg_pool2d(x.float() / 255.0, 4).flatten(1)

    return feat
