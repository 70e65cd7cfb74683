"""eval metrics: conventions match independent references (skimage, lpips, clean-fid), CLI outputs and errors."""

import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from elements.errors import UserError
from eval.cli import main
from eval.metrics import PSNR_CAP, SSIM_WIN, LPIPSMetric, compute_batch, mse_uint8, psnr_from_mse, ssim_uint8

EXTRACTOR = "eval.fid:pooled_pixels"


def _noisy(img, rng, amp):
    return np.clip(img.astype(np.int16) + rng.integers(-amp, amp + 1, img.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def folders(tmp_path_factory, astronaut, chelsea, coffee):
    """ref/ and pred/ with 12 images of 64x48 (pred = noisy ref), plus a copy of ref."""
    rng = np.random.default_rng(0)
    root = tmp_path_factory.mktemp("metrics")
    for d in ("ref", "pred", "same"):
        (root / d).mkdir()
    for i in range(12):
        src = (astronaut, chelsea, coffee)[i % 3]
        y, x = rng.integers(0, 200, 2)
        ref = np.ascontiguousarray(src[y : y + 48, x : x + 64])
        Image.fromarray(ref).save(root / "ref" / f"{i:03d}.png")
        Image.fromarray(ref).save(root / "same" / f"{i:03d}.png")
        Image.fromarray(_noisy(ref, rng, 10 + 5 * i)).save(root / "pred" / f"{i:03d}.png")
    return root


def _ssim_by_definition(x, y):
    """Wang et al. 2004 written out: (H, W, 3) float64 in [0, 1] -> mean SSIM, Gaussian window 11 (sigma 1.5, 3.5 sigma
    truncation), K1 = 0.01, K2 = 0.03, population (co)variances, over the window positions that need no padding."""
    from scipy.signal import convolve2d

    r = (SSIM_WIN - 1) // 2
    g = np.exp(-0.5 * (np.arange(-r, r + 1) / 1.5) ** 2)
    w = np.outer(g, g) / np.outer(g, g).sum()
    per_channel = []
    for c in range(3):
        a, b = x[..., c], y[..., c]
        mu_a, mu_b = convolve2d(a, w, "valid"), convolve2d(b, w, "valid")
        var_a = convolve2d(a * a, w, "valid") - mu_a**2
        var_b = convolve2d(b * b, w, "valid") - mu_b**2
        cov = convolve2d(a * b, w, "valid") - mu_a * mu_b
        c1, c2 = 0.01**2, 0.03**2
        s = (2 * mu_a * mu_b + c1) * (2 * cov + c2) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
        per_channel.append(s.mean())
    return float(np.mean(per_channel))


def test_psnr_and_ssim_match_skimage_and_the_definition_on_random_pairs():
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    rng = np.random.default_rng(1)
    for h, w in [(11, 11), (37, 53), (64, 64), (100, 31)]:
        a = rng.integers(0, 256, (3, h, w, 3), dtype=np.uint8)
        b = np.stack([_noisy(a[0], rng, 5), rng.integers(0, 256, (h, w, 3), dtype=np.uint8), _noisy(a[2], rng, 60)])
        got = compute_batch(b, a, ("mse", "psnr", "ssim"))  # what eval metrics / eval recon call
        for i in range(3):
            x, y = a[i] / 255.0, b[i] / 255.0
            assert got["mse"][i] == pytest.approx(np.mean((x - y) ** 2), rel=1e-12)
            assert abs(got["psnr"][i] - peak_signal_noise_ratio(x, y, data_range=1)) < 1e-6
            ref = structural_similarity(
                x, y, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1, channel_axis=-1
            )
            assert abs(got["ssim"][i] - ref) < 1e-12
            assert abs(got["ssim"][i] - _ssim_by_definition(x, y)) < 1e-9
    assert got["ssim"][0] > got["ssim"][2] > got["ssim"][1]  # less noise, more similar
    with pytest.raises(UserError, match="at least 11x11"):
        ssim_uint8(a[:, :10], b[:, :10])


def test_identical_images_have_defined_values():
    a = np.random.default_rng(2).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    assert mse_uint8(a, a).tolist() == [0.0, 0.0]
    assert psnr_from_mse(mse_uint8(a, a)).tolist() == [PSNR_CAP, PSNR_CAP] and math.isclose(PSNR_CAP, 100.0)
    assert np.allclose(ssim_uint8(a, a), 1.0, atol=1e-12)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_lpips_from_uint8_matches_the_lpips_package_and_ships_linear_weights():
    """``compute_batch`` (what eval calls) against lpips' own uint8 -> [-1, 1] conversion and forward, image by image."""
    import lpips

    assert (Path(lpips.__file__).parent / "weights" / "v0.1" / "alex.pth").is_file()
    torch.manual_seed(0)
    model = lpips.LPIPS(pnet_rand=True, verbose=False)  # random trunk (no download), the shipped v0.1 linear layers
    metric = LPIPSMetric("alex", model=model)
    rng = np.random.default_rng(3)
    a = rng.integers(0, 256, (3, 64, 48, 3), dtype=np.uint8)
    b = np.stack([_noisy(a[0], rng, 8), _noisy(a[1], rng, 80), rng.integers(0, 256, (64, 48, 3), dtype=np.uint8)])
    ours = compute_batch(b, a, ("lpips",), lpips_metric=metric)["lpips"]
    with torch.no_grad():
        direct = [model(lpips.im2tensor(p), lpips.im2tensor(r)).item() for p, r in zip(b, a)]
    np.testing.assert_allclose(ours, direct, rtol=1e-5, atol=1e-7)
    assert ours[0] < ours[1] and ours[0] < ours[2]  # a slightly noisy copy is the closest
    assert np.allclose(metric.from_uint8(a, a).numpy(), 0.0, atol=1e-6)


def test_lpips_offline_names_the_missing_file(tmp_path, monkeypatch):
    import socket

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)

    def no_network(*args, **kwargs):
        raise OSError("network disabled in tests")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    with pytest.raises(UserError) as err:
        LPIPSMetric("alex")
    msg = str(err.value)
    assert "alexnet-owt-7be5be79.pth" in msg and str(tmp_path) in msg and "\n" not in msg


def test_metrics_cli_identical_folders(folders, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(
        [
            "metrics",
            "--pred",
            str(folders / "same"),
            "--ref",
            str(folders / "ref"),
            "--out",
            str(out),
            "--metrics",
            "mse,psnr,ssim,fid",
            "--feature-extractor",
            EXTRACTOR,
        ]
    )
    assert rc == 0
    per = pd.read_csv(out / "per_image.csv")
    assert len(per) == 12 and (per["mse"] == 0).all() and (per["psnr"] == PSNR_CAP).all()
    assert np.allclose(per["ssim"], 1.0, atol=1e-6)
    summary = pd.read_csv(out / "summary.csv")
    assert len(summary) == 1 and summary.loc[0, "psnr_capped"] == 12 and summary.loc[0, "fid_n"] == 12
    assert abs(summary.loc[0, "fid"]) < 1e-3
    captured = capsys.readouterr()
    assert "N=12" in captured.out and "2048" in captured.err  # small-N warning
    assert "| run |" in (out / "summary.md").read_text()


def test_metrics_cli_matches_references_and_direct_clean_fid(folders, tmp_path):
    from cleanfid import fid as cfid
    from skimage.metrics import structural_similarity

    from eval.fid import pooled_pixels

    out = tmp_path / "out"
    rc = main(
        [
            "metrics",
            "--pred",
            str(folders / "pred"),
            "--ref",
            str(folders / "ref"),
            "--out",
            str(out),
            "--metrics",
            "mse,psnr,ssim,fid",
            "--feature-extractor",
            EXTRACTOR,
            "--batch-size",
            "5",
        ]
    )
    assert rc == 0
    per = pd.read_csv(out / "per_image.csv").set_index("stem")
    for stem in ("000", "007", "011"):
        p = np.asarray(Image.open(folders / "pred" / f"{int(stem):03d}.png")) / 255.0
        r = np.asarray(Image.open(folders / "ref" / f"{int(stem):03d}.png")) / 255.0
        assert abs(per.loc[int(stem), "mse"] - np.mean((p - r) ** 2)) < 1e-12
        ref = structural_similarity(
            p, r, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1, channel_axis=-1
        )
        assert abs(per.loc[int(stem), "ssim"] - ref) < 1e-4
    summary = pd.read_csv(out / "summary.csv")
    assert abs(summary.loc[0, "mse"] - per["mse"].mean()) < 1e-12  # mean of per-image values
    direct = cfid.compute_fid(
        str(folders / "pred"),
        str(folders / "ref"),
        mode="clean",
        device=torch.device("cpu"),
        num_workers=0,
        custom_feat_extractor=pooled_pixels(),
        verbose=False,
    )
    assert summary.loc[0, "fid"] == pytest.approx(direct, rel=1e-9, abs=1e-9) and direct > 1e-3


def _err(capsys):
    return capsys.readouterr().err.strip()


def test_metrics_cli_errors(folders, tmp_path, capsys):
    pred = tmp_path / "pred"
    pred.mkdir()
    for p in sorted((folders / "pred").iterdir())[:9]:
        (pred / p.name).write_bytes(p.read_bytes())
    (pred / "extra.png").write_bytes((folders / "pred" / "000.png").read_bytes())
    out = tmp_path / "out"
    assert (
        main(["metrics", "--pred", str(pred), "--ref", str(folders / "ref"), "--out", str(out), "--metrics", "mse"])
        == 2
    )
    msg = _err(capsys)
    assert msg.startswith("error:") and "3 reference(s) have no prediction (first: 009, 010, 011)" in msg
    assert "1 prediction(s) have no reference (first: extra)" in msg and not out.exists()

    assert (
        main(
            [
                "metrics",
                "--pred",
                str(folders / "pred"),
                "--ref",
                str(folders / "ref"),
                "--out",
                str(out),
                "--metrics",
                "mse,bogus",
            ]
        )
        == 2
    )
    assert "bogus" in _err(capsys)

    small = tmp_path / "small"
    small.mkdir()
    for p in sorted((folders / "ref").iterdir()):
        Image.open(p).resize((32, 24)).save(small / p.name)
    assert (
        main(["metrics", "--pred", str(small), "--ref", str(folders / "ref"), "--out", str(out), "--metrics", "mse"])
        == 2
    )
    assert "reference size" in _err(capsys) and not out.exists()

    broken = tmp_path / "broken"
    broken.mkdir()
    for p in sorted((folders / "ref").iterdir()):
        (broken / p.name).write_bytes(b"not a png")
    assert (
        main(["metrics", "--pred", str(broken), "--ref", str(folders / "ref"), "--out", str(out), "--metrics", "mse"])
        == 2
    )
    assert "could not be decoded" in _err(capsys) and not out.exists()

    assert (
        main(
            [
                "metrics",
                "--pred",
                str(folders / "pred"),
                "--ref",
                str(folders / "ref"),
                "--out",
                str(out),
                "--metrics",
                "fid",
                "--feature-extractor",
                "nowhere",
            ]
        )
        == 2
    )
    assert "module:callable" in _err(capsys)


def test_fid_offline_names_inception_file(folders, tmp_path, monkeypatch, capsys):
    import eval.fid as efid

    if os.path.exists(efid.inception_path()):
        pytest.skip("Inception weights present on this machine")
    import socket

    def no_network(*args, **kwargs):
        raise OSError("network disabled in tests")

    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    rc = main(
        [
            "metrics",
            "--pred",
            str(folders / "pred"),
            "--ref",
            str(folders / "ref"),
            "--out",
            str(tmp_path / "o"),
            "--metrics",
            "fid",
        ]
    )
    assert rc == 2
    msg = _err(capsys)
    assert "inception-2015-12-05.pt" in msg and efid.inception_path() in msg and "--feature-extractor" in msg


@pytest.mark.slow
def test_real_weights_lpips_and_inception_fid(folders, tmp_path):
    """Needs alexnet-owt-7be5be79.pth in torch's hub cache and /tmp/inception-2015-12-05.pt; skips naming what is missing."""
    from cleanfid import fid as cfid

    import eval.fid as efid

    missing = [f for f in (LPIPSMetric.trunk_file("alex")[1], efid.inception_path()) if not os.path.isfile(f)]
    if missing:
        pytest.skip(f"the real LPIPS/Inception weights are not on this machine (missing {', '.join(missing)}).")

    out = tmp_path / "out"
    assert main(["metrics", "--pred", str(folders / "pred"), "--ref", str(folders / "ref"), "--out", str(out)]) == 0
    summary = pd.read_csv(out / "summary.csv")
    assert 0 < summary.loc[0, "lpips"] < 1 and summary.loc[0, "fid_features"].startswith("inception")
    direct = cfid.compute_fid(
        str(folders / "pred"),
        str(folders / "ref"),
        mode="clean",
        device=torch.device("cpu"),
        num_workers=0,
        verbose=False,
        use_dataparallel=False,
    )
    assert summary.loc[0, "fid"] == pytest.approx(direct, rel=1e-6)
