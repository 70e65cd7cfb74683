"""eval split + recon: held-out manifest, PNG references, crash/resume equality, rank sharding and merge."""

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import eval.recon as recon
from elements.data.preprocess import center_crop_resize
from elements.data.split import is_heldout
from eval.cli import main
from eval.manifest import load_split

N_IMAGES = 5


class NoisyDecoder:
    """Stands in for a real decoder: the canvas plus seed-dependent noise, at the input size."""

    name = "noisy"

    def __call__(self, el, *, prompt="", seed=0, steps=None, guidance=None, progress=None):
        noise = np.random.default_rng(seed).integers(-12, 13, el.image.shape)
        canvas = np.clip(el.image.astype(np.int16) + noise, 0, 255).astype(np.uint8)
        return el.geometry.from_canvas(canvas)


@pytest.fixture(scope="module")
def data(tmp_path_factory, astronaut, chelsea, coffee):
    """An image folder whose held-out members (by the real sha256 rule) number N_IMAGES, plus training images."""
    root = tmp_path_factory.mktemp("data")
    held, i = 0, 0
    while held < N_IMAGES:
        name = f"img{i:04d}.png"
        if is_heldout(name):
            src = (astronaut, chelsea, coffee)[held % 3]
            Image.fromarray(np.ascontiguousarray(src[::4, ::3])).save(root / name)  # non-square inputs
            held += 1
        elif i < 20:
            Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(root / name)  # training side: must be skipped
        i += 1
    return root


@pytest.fixture
def fake_decoder(monkeypatch):
    import elements.decoders

    monkeypatch.setattr(elements.decoders, "get_decoder", lambda name, **kw: NoisyDecoder())


def _args(data, out, *extra):
    return [
        "recon",
        "--data",
        str(data),
        "--decoder",
        "pixel",
        "--out",
        str(out),
        "--backend",
        "grid",
        "--metrics",
        "mse,psnr,ssim,fid",
        "--feature-extractor",
        "eval.fid:pooled_pixels",
        "--name",
        "run",
        *extra,
    ]


def test_split_writes_manifest_and_png_references(data, tmp_path, capsys):
    out = tmp_path / "split"
    assert main(["split", "--data", str(data), "--out", str(out)]) == 0
    manifest, info = load_split(out)
    assert len(manifest) == N_IMAGES and all(is_heldout(k) for k in manifest["split_key"])
    assert info["rule"].startswith("held out iff") and len(info["manifest_sha256"]) == 64
    first = manifest.iloc[0]
    ref = np.asarray(Image.open(out / first["ref"]))
    assert Image.open(out / first["ref"]).format == "PNG" and ref.shape == (512, 512, 3)
    src = np.asarray(Image.open(data / first["key"]).convert("RGB"))
    assert np.array_equal(ref, center_crop_resize(src))
    # Tampering with the manifest is detected.
    (out / "manifest.csv").write_text((out / "manifest.csv").read_text().replace(first["stem"], "0" * 16))
    with pytest.raises(Exception, match="sha256"):
        load_split(out)


def test_recon_resume_after_crash_equals_uninterrupted(data, tmp_path, fake_decoder, capsys):
    full = tmp_path / "full"
    assert main(_args(data, full)) == 0

    crashed = tmp_path / "crashed"
    args = recon.build_parser("recon").parse_args(_args(data, crashed)[1:])

    def crash(done):
        if done == 2:
            raise RuntimeError("simulated crash")

    with pytest.raises(RuntimeError, match="simulated crash"):
        recon.run(args, on_image=crash)
    assert len(list((crashed / "per_image").glob("*.json"))) == 2 and not (crashed / "summary.csv").exists()
    calls = []
    recon.run(args, on_image=calls.append)
    assert calls == [1, 2, 3]  # only the three unfinished images were decoded again
    for name in ("per_image.csv", "summary.csv", "summary.md"):
        assert (crashed / name).read_bytes() == (full / name).read_bytes()
    for png in (full / "pred").glob("*.png"):
        assert (crashed / "pred" / png.name).read_bytes() == png.read_bytes()
    summary = pd.read_csv(full / "summary.csv")
    assert summary.loc[0, "n"] == N_IMAGES and summary.loc[0, "fid_n"] == N_IMAGES and 0 < summary.loc[0, "mse"] < 0.01

    # Resuming with other settings is refused rather than mixing two runs.
    assert main(_args(data, crashed, "--seed", "1")) == 2
    assert "other settings (seed)" in capsys.readouterr().err


def test_recon_shards_merge_to_the_single_process_result(data, tmp_path, fake_decoder, monkeypatch):
    single = tmp_path / "single"
    assert main(_args(data, single)) == 0
    split = single / "heldout"
    sharded = tmp_path / "sharded"
    for rank in (1, 0):  # rank 1 finishes first; rank 0 does its share, then merges
        state = SimpleNamespace(
            process_index=rank, num_processes=2, is_main_process=rank == 0, device="cpu", wait_for_everyone=lambda: None
        )
        monkeypatch.setattr(recon, "_state", lambda state=state: state)
        args = recon.build_parser("recon").parse_args(_args(split, sharded)[1:])
        assert recon.run(args) == 0
        if rank == 1:
            assert len(list((sharded / "per_image").glob("*.json"))) == N_IMAGES // 2
            assert not (sharded / "summary.csv").exists()
    # A stray result of an image outside the manifest is ignored by the merge.
    (sharded / "per_image" / "ffffffffffffffff.json").write_text(json.dumps({"stem": "ffffffffffffffff", "mse": 1.0}))
    monkeypatch.setattr(
        recon,
        "_state",
        lambda: SimpleNamespace(
            process_index=0, num_processes=1, is_main_process=True, device="cpu", wait_for_everyone=lambda: None
        ),
    )
    assert recon.run(recon.build_parser("recon").parse_args(_args(split, sharded)[1:])) == 0
    a, b = pd.read_csv(single / "per_image.csv"), pd.read_csv(sharded / "per_image.csv")
    pd.testing.assert_frame_equal(a, b)
    sa, sb = pd.read_csv(single / "summary.csv"), pd.read_csv(sharded / "summary.csv")
    pd.testing.assert_frame_equal(sa, sb)


def test_training_images_equal_eval_references(data, tmp_path):
    """Training and evaluation resample an image the same way: one crop/resize owns both.

    The held-out images are read by the training dataset and by ``eval split``; the dataset's
    ``pixel_values`` (mapped back to uint8) must equal the stored reference PNGs byte for byte.
    """
    from elements.data.dataset import ElementsDataset

    out = tmp_path / "split"
    assert main(["split", "--data", str(data), "--out", str(out)]) == 0
    manifest, _ = load_split(out)
    refs = {r.key: np.asarray(Image.open(out / r.ref).convert("RGB")) for r in manifest.itertuples()}
    dataset = ElementsDataset(data, partition={"backend": "grid", "num_elements": 16}, split="heldout", shuffle=False)
    seen = 0
    for item in dataset:
        train = ((item["pixel_values"].permute(1, 2, 0).numpy() + 1.0) * 127.5).round().astype(np.uint8)
        assert np.array_equal(train, refs[item["key"]]), item["key"]
        seen += 1
    assert seen == N_IMAGES


def test_split_and_recon_read_prepared_shards(data, tmp_path, monkeypatch, capsys):
    """``eval split`` on ``prepare``'s shards keeps the stored labels; ``recon`` decodes those very elements and
    builds no partition model (the partition flags would ask for SLIC: they must not be used)."""
    import elements.partition
    from elements.data.prepare import prepare

    prepared = tmp_path / "prepared"
    prepare(data, prepared, partition={"backend": "grid", "num_elements": 16})
    split = tmp_path / "split"
    assert main(["split", "--data", str(prepared), "--out", str(split)]) == 0
    manifest, info = load_split(split)
    assert len(manifest) == N_IMAGES and all(manifest["labels"].str.startswith("labels/"))
    assert info["elements"] == "regular grid (paper Fig. 16 baseline)"

    def no_partitioner(*args, **kwargs):
        raise AssertionError("eval recon built a partitioner for prepared data")

    monkeypatch.setattr(elements.partition.Partitioner, "from_args", no_partitioner)
    out = tmp_path / "recon"
    args = _args(split, out, "--backend", "slic")
    args[args.index("--metrics") + 1] = "mse"
    assert main(args) == 0
    assert json.loads((out / "config.json").read_text())["settings"]["partition"] == "prepared"
    stored = recon.stored_elements(
        np.asarray(Image.open(split / manifest.iloc[0]["ref"])), split / manifest.iloc[0]["labels"]
    )
    assert stored.num_elements == 16 and pd.read_csv(out / "summary.csv").loc[0, "mse"] == 0.0
