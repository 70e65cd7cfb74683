"""Per-image reconstruction metrics: MSE, PSNR (exact, from uint8), SSIM (scikit-image) and LPIPS (the lpips package).

Conventions (Tables 1-2, App. B) — numbers from here get quoted, so they are fixed:

* Images are ``(B, 3, H, W) float32`` in [0, 1] (uint8 / 255); every metric is computed per
  image and the reported figure is the mean over images.
* **MSE** — mean over H, W and the 3 channels of ``(pred - ref)**2``.
* **PSNR** — ``10 log10(1 / max(MSE, MSE_FLOOR))`` dB with data range 1. Identical images
  (MSE 0) would give +inf, which poisons a mean, so MSE is floored at ``MSE_FLOOR = 1e-10``:
  PSNR is capped at ``PSNR_CAP = 100`` dB. The cap is monotone (closer never scores lower) and
  the number of capped images is reported beside the mean (``psnr_capped``).
* **SSIM** — ``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=1, channel_axis=-1)``: Gaussian window 11 (sigma 1.5,
  truncate 3.5), K1 = 0.01, K2 = 0.03, population covariance, mean over the region the window
  covers without padding (5-pixel border cropped), then mean over RGB (Wang et al. 2004).
* **LPIPS** — ``lpips.LPIPS(net="alex", version="0.1")`` on inputs scaled to [-1, 1] as
  ``lpips.im2tensor`` scales them (``x / 127.5 - 1``).
"""

from __future__ import annotations

import math
import os

import numpy as np
import torch

from elements.errors import UserError

MSE_FLOOR = 1e-10
PSNR_CAP = 10.0 * math.log10(1.0 / MSE_FLOOR)  # 100 dB

SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5  # scipy.ndimage.gaussian_filter default, used by skimage
SSIM_WIN = 2 * int(SSIM_TRUNCATE * SSIM_SIGMA + 0.5) + 1  # 11
SSIM_K1, SSIM_K2 = 0.01, 0.03

#: torchvision weight files the lpips trunks download into torch.hub's cache.
LPIPS_TRUNKS = {
    "alex": ("AlexNet_Weights", "alexnet"),
    "vgg": ("VGG16_Weights", "vgg16"),
    "squeeze": ("SqueezeNet1_1_Weights", "squeezenet1_1"),
}
ALL_METRICS = ("mse", "psnr", "ssim", "lpips", "fid")


def mse_uint8(pred: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Per-image MSE on [0, 1] computed exactly from ``(B, H, W, 3) uint8`` arrays -> ``(B,) float64``.

    Integer squared differences are summed exactly and divided once, so the value does not
    depend on float32 rounding of ``x / 255``.
    """
    d = pred.astype(np.int32) - ref  # |d| <= 255, d*d fits int32
    sq = np.einsum("bi,bi->b", d.reshape(len(d), -1), d.reshape(len(d), -1), dtype=np.int64)
    return sq.astype(np.float64) / (255.0**2 * d[0].size)


def psnr_from_mse(m: torch.Tensor | np.ndarray) -> np.ndarray:
    """PSNR in dB for data range 1, capped at :data:`PSNR_CAP` (MSE floored at :data:`MSE_FLOOR`)."""
    m = np.asarray(m.cpu() if isinstance(m, torch.Tensor) else m, dtype=np.float64)
    return 10.0 * np.log10(1.0 / np.maximum(m, MSE_FLOOR))


def ssim_uint8(pred: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Per-image SSIM (module docstring convention). pred, ref: ``(B, H, W, 3) uint8``, at least 11 × 11 -> ``(B,) float64``."""
    from skimage.metrics import structural_similarity

    if min(pred.shape[1:3]) < SSIM_WIN:
        raise UserError(
            f"SSIM needs images of at least {SSIM_WIN}x{SSIM_WIN} pixels, got {pred.shape[2]}x{pred.shape[1]}."
        )
    return np.array(
        [
            structural_similarity(
                p / 255.0,
                r / 255.0,
                gaussian_weights=True,
                sigma=SSIM_SIGMA,
                use_sample_covariance=False,
                data_range=1.0,
                channel_axis=-1,
                K1=SSIM_K1,
                K2=SSIM_K2,
            )
            for p, r in zip(pred, ref)
        ],
        dtype=np.float64,
    )


class LPIPSMetric:
    """LPIPS distance with the lpips package (default AlexNet trunk, v0.1 linear layers).

    The calibrated linear layers ship inside the lpips wheel (``lpips/weights/v0.1/*.pth``);
    the ImageNet trunk comes from torchvision's download cache. Offline, a missing trunk file
    raises :class:`UserError` naming the file and the folder to put it in.

    ``model`` lets tests pass ``lpips.LPIPS(pnet_rand=True)`` (random trunk, no download).
    """

    def __init__(self, net: str = "alex", *, device="cpu", model=None) -> None:
        if net not in LPIPS_TRUNKS:
            raise UserError(f"Unknown LPIPS net '{net}'; choose one of {', '.join(LPIPS_TRUNKS)}.")
        self.net = net
        self.device = torch.device(device)
        if model is None:
            model = self._load(net)
        self.model = model.to(self.device).eval().requires_grad_(False)

    @staticmethod
    def trunk_file(net: str) -> tuple[str, str]:
        """``(url, local path)`` of the torchvision weights the ``net`` trunk needs."""
        import torchvision.models as tvm

        enum_name, _ = LPIPS_TRUNKS[net]
        url = getattr(tvm, enum_name).IMAGENET1K_V1.url
        return url, os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(url))

    @classmethod
    def _load(cls, net: str):
        import warnings

        import lpips

        url, path = cls.trunk_file(net)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torchvision's "pretrained=" deprecation notice
                return lpips.LPIPS(net=net, version="0.1", verbose=False)
        except (OSError, RuntimeError) as err:  # offline (URLError is an OSError), a truncated or corrupt file
            raise UserError(
                f"LPIPS ({net}) needs the torchvision ImageNet weights {os.path.basename(url)}, which could not be "
                f"loaded ({type(err).__name__}); download {url} on a connected machine and put it at {path}."
            ) from err

    @torch.no_grad()
    def from_uint8(self, pred: np.ndarray, ref: np.ndarray) -> torch.Tensor:
        """pred, ref: ``(B, H, W, 3) uint8`` -> ``(B,) float64``; scales straight to [-1, 1] (x / 127.5 - 1, as lpips.im2tensor)."""

        def prep(a):
            t = torch.from_numpy(np.ascontiguousarray(a)).to(self.device).permute(0, 3, 1, 2).float()
            return t.div_(127.5).sub_(1.0)

        return self.model(prep(pred), prep(ref)).view(-1).double().cpu()


def parse_metrics(text: str) -> tuple[str, ...]:
    """``"mse,psnr,ssim"`` -> ordered tuple; UserError on unknown names."""
    names = [t.strip().lower() for t in str(text).split(",") if t.strip()]
    bad = [n for n in names if n not in ALL_METRICS]
    if bad or not names:
        raise UserError(f"Unknown metric(s) {', '.join(bad) or '(none)'}; choose from {','.join(ALL_METRICS)}.")
    return tuple(n for n in ALL_METRICS if n in names)


def compute_batch(
    pred: np.ndarray, ref: np.ndarray, metrics, *, lpips_metric: LPIPSMetric | None = None
) -> dict[str, np.ndarray]:
    """All per-image metrics for one batch. pred, ref: ``(B, H, W, 3) uint8`` -> name -> ``(B,) float64``."""
    out: dict[str, np.ndarray] = {}
    if "mse" in metrics or "psnr" in metrics:
        m = mse_uint8(pred, ref)
        if "mse" in metrics:
            out["mse"] = m
        if "psnr" in metrics:
            out["psnr"] = psnr_from_mse(m)
    if "ssim" in metrics:
        out["ssim"] = ssim_uint8(pred, ref)
    if "lpips" in metrics:
        if lpips_metric is None:
            raise ValueError("lpips requested but no LPIPSMetric given")
        out["lpips"] = lpips_metric.from_uint8(pred, ref).numpy()
    return out
