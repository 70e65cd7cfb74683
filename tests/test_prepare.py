"""``python -m elements prepare``: shards of crops + element labels, sharded over processes, resumable after a
kill; training reads them without any partition model, and raw images train with the default backend."""

import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import REAL_CACHE, ROOT
from PIL import Image

from elements.data.prepared import decode_labels, encode_labels

# Three photos (one square, two landscape) give every property tested here: a shard of two and one of one with
# --samples-per-shard 2 (kill half-way), three units over two processes with 1 (ranks 0, 1, 0). Each costs one
# distilled-SAM partition (~6 s on 2 CPU cores) in every run that partitions it.
PHOTOS = ("astronaut", "chelsea", "coffee")


def _has_distilled_sam() -> bool:
    from elements.partition.tinysam import _CACHE_NAME

    return (REAL_CACHE / _CACHE_NAME).is_dir()


needs_sam = pytest.mark.skipif(
    not _has_distilled_sam(), reason="the distilled SAM is not in the cache (tools/install_test_deps.sh fetches it)"
)


def _env(*, sam: bool) -> dict:
    """The subprocess environment: the real distilled SAM reachable (``sam``) or no SAM at all (empty cache, no npm)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), EIE_NO_NPM="1")
    if sam:
        env["EIE_CACHE_DIR"] = str(REAL_CACHE)
    return env


def _cli(*args, sam: bool, cwd=None, timeout=1800, launcher=("-m", "elements")):
    return subprocess.run(
        [sys.executable, *launcher, *map(str, args)],
        env=_env(sam=sam),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _photos(folder: Path, names=PHOTOS) -> Path:
    """Small JPEGs of scikit-image's photos, with captions (prepare crops and resizes them to 512²)."""
    from skimage import data

    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        img = getattr(data, name)()
        if img.ndim == 2:
            img = np.stack([img] * 3, axis=-1)
        Image.fromarray(img[..., :3]).save(folder / f"{name}.jpg", quality=92)
        (folder / f"{name}.txt").write_text(f"a photo of {name}")
    return folder


def _by_key(folder: Path) -> dict:
    """``{input key: (crop bytes, labels bytes)}`` of every sample in a prepared folder, read as training reads it."""
    from elements.data.sources import iter_samples

    return {s.key: (s.image.tobytes(), s.labels.tobytes()) for s in iter_samples(folder, split="all")}


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    return _photos(tmp_path_factory.mktemp("photos"))


@pytest.fixture(scope="module")
def prepared(photos, tmp_path_factory):
    """``python -m elements prepare`` on the 3 photos with the default flags (the distilled SAM, as the demo runs)."""
    if not _has_distilled_sam():
        pytest.skip("the distilled SAM is not in the cache (tools/install_test_deps.sh fetches it)")
    out = tmp_path_factory.mktemp("prepared")
    proc = _cli("prepare", "--train_data", photos, "--output_dir", out, sam=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out, proc.stdout


def test_labels_png_roundtrip():
    labels = np.random.default_rng(0).integers(-1, 4096, (64, 48)).astype(np.int32)
    assert np.array_equal(decode_labels(encode_labels(labels)), labels)
    assert decode_labels(b"not a png") is None


@needs_sam
def test_prepare_with_defaults_writes_shards(prepared, photos, distilled_sam):
    from elements.data.preprocess import center_crop_resize
    from elements.data.sources import decode_image, iter_samples
    from elements.geometry import Geometry
    from elements.partition import Partitioner
    from elements.partition.build import pixel_bboxes

    out, stdout = prepared
    assert "prepare: 3 images read, 0 refused, 3 written in 1 shards" in stdout
    assert "elements made by: SAM-feature SLIC (Alg. 2" in stdout and "distilled SAM vit_t" in stdout
    assert sorted(p.name for p in out.iterdir()) == [
        "prepare.json",
        "prepared-000000.stats.json",
        "prepared-000000.tar",
    ]
    samples = list(iter_samples(out, split="all"))
    assert sorted(s.key for s in samples) == sorted(f"{n}.jpg" for n in PHOTOS)  # the inputs' own keys
    s = next(s for s in samples if s.key == "coffee.jpg")
    assert s.caption == "a photo of coffee"
    assert s.partition["backend"] == "sam" and s.partition["model"] == "vit_t"
    # the stored crop is the shared centre crop of the input, and the labels are what the default partition gives it
    crop = center_crop_resize(decode_image(photos / "coffee.jpg"))
    assert np.array_equal(s.image, crop)
    fresh = Partitioner("sam", sam_model=distilled_sam).labels(crop, Geometry.fit(512, 512, 512))
    assert np.array_equal(s.labels, fresh)
    with tarfile.open(out / "prepared-000000.tar") as tf:
        names = tf.getnames()
        member = next(n for n in names if n.endswith(".json") and json.loads(tf.extractfile(n).read())["key"] == s.key)
        info = json.loads(tf.extractfile(member).read())
    assert info["boxes"] == pixel_bboxes(s.labels, int(s.labels.max()) + 1).tolist()
    assert all("." not in Path(n).name.split(".", 1)[0] for n in names)  # webdataset keys free of dots


@needs_sam
def test_kill_then_rerun_gives_the_same_samples(prepared, photos, tmp_path):
    """SIGKILL half-way (the first of two shards done, the second in flight), rerun: no half-written shard, the
    finished one is not recomputed, and the keys, crops and labels equal those of the uninterrupted run."""
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "elements", "prepare", "--train_data", str(photos), "--output_dir", str(out)]
    cmd += ["--samples_per_shard", "2"]
    proc = subprocess.Popen(cmd, env=_env(sam=True), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = out / "prepared-000000.tar"
    deadline = time.time() + 500
    while not first.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert first.exists(), "the first shard never appeared"
    finished = sorted(out.glob("prepared-*.tar"))
    assert len(finished) < 2, "the job ended before it could be killed half-way"
    for shard in finished:  # every shard in place is complete
        with tarfile.open(shard) as tf:
            assert len([n for n in tf.getnames() if n.endswith(".labels.png")]) == 2
    stamp = first.stat().st_mtime_ns
    rerun = _cli(*cmd[3:], sam=True)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "3 written in 2 shards (1 already done)" in rerun.stdout
    assert first.stat().st_mtime_ns == stamp  # never recomputed
    assert not list(out.glob(".*.tmp"))
    assert _by_key(out) == _by_key(prepared[0])


@needs_sam
def test_two_processes_write_disjoint_shards_whose_union_is_the_single_run(prepared, photos, tmp_path):
    out = tmp_path / "two"
    args = ["--train_data", photos, "--output_dir", out, "--samples_per_shard", "1"]
    # accelerate's --cpu launcher starts one process unless MPI is set up; --multi_gpu starts 2 (torchrun), and on a
    # machine without a GPU prepare's process group is a CPU one (gloo)
    launch = ("-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1")
    launch += ("--mixed_precision", "no", "--dynamo_backend", "no", "-m", "elements", "prepare")
    proc = _cli(*args, sam=True, launcher=launch)
    assert proc.returncode == 0, proc.stderr[-3000:]
    stats = {p.name: json.loads(p.read_text()) for p in sorted(out.glob("*.stats.json"))}
    assert [s["rank"] for s in stats.values()] == [0, 1, 0]  # unit i belongs to process i mod 2
    keys = [set(_by_key_shard(out / s["shard"])) for s in stats.values()]
    assert sum(map(len, keys)) == len(set().union(*keys)) == 3  # disjoint
    assert _by_key(out) == _by_key(prepared[0])  # same samples, byte for byte
    again = _cli(*args, sam=True, launcher=launch)
    assert again.returncode == 0 and "(3 already done)" in again.stdout


def _by_key_shard(shard: Path) -> dict:
    from elements.data.sources import iter_samples

    return {s.key: s.labels.tobytes() for s in iter_samples([shard], split="all")}


@needs_sam
def test_stage1_trains_from_prepared_shards_without_any_sam(prepared, tmp_path):
    """No npm and an empty cache: no SAM can be had, yet training runs, on the stored elements, and learns.

    Batch 2 (the default, 16, puts the whole set in every step): a tiny-preset step costs ~1 s per 512² image on 2
    CPU cores, and the loss still falls to ~0.5 of its start in 12 steps."""
    run = tmp_path / "run"
    proc = _cli(
        "train", "stage1", "--train_data", prepared[0], "--output_dir", run, "--preset", "tiny",
        "--max_train_steps", "12", "--train_batch_size", "2", "--learning_rate", "1e-3", "--seed", "0",
        "--dataloader_num_workers", "2", "--logging_steps", "1", "--validation_steps", "0", sam=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in log if "loss" in r]
    assert len(losses) == 12
    assert np.mean(losses[-5:]) <= 0.7 * np.mean(losses[:5]), losses
    made_by = next(r["elements_by"] for r in log if "elements_by" in r)
    assert made_by.startswith("prepared: SAM-feature SLIC (Alg. 2") and "vit_t" in made_by
    assert "elements prepared: SAM-feature SLIC" in proc.stderr  # the log says which backend made them
    assert not (run / "prepared").exists()


@needs_sam
def test_raw_images_train_with_the_default_backend_and_two_workers(photos, tmp_path):
    """The command of a new user, with no --backend: the SAM partition runs once per image in the training
    process (OUTPUT_DIR/prepared), never in a forked worker, and training reaches its last step (batch 2, as above)."""
    run = tmp_path / "run"
    proc = _cli(
        "train", "stage1", "--train_data", photos, "--output_dir", run, "--preset", "tiny", "--max_train_steps", "8",
        "--train_batch_size", "2", "--seed", "0", "--dataloader_num_workers", "2", "--logging_steps", "1",
        "--learning_rate", "1e-3", sam=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in log if "loss" in r]
    assert len(losses) == 8 and np.mean(losses[-3:]) < np.mean(losses[:3]), losses
    assert "distilled SAM vit_t" in next(r["elements_by"] for r in log if "elements_by" in r)
    assert len(_by_key(run / "prepared")) == len(PHOTOS)
    assert (run / "light_decoder").is_dir() and (run / "content_encoder").is_dir()


def test_workers_that_may_build_a_model_are_spawned(tmp_path, prepared_slic):
    """Raw images with a SAM backend: spawned workers (a fork inherits thread pools mid-state and can hang);
    prepared shards or model-free backends: the cheap fork."""
    from elements.data.dataset import ElementsDataset, make_dataloader

    raw = _photos(tmp_path / "raw", PHOTOS[:1])
    for source, backend, context in ((raw, "auto", "spawn"), (raw, "slic", None), (prepared_slic, "auto", None)):
        ds = ElementsDataset(source, partition={"backend": backend})
        loader = make_dataloader(ds, batch_size=1, num_workers=2)
        got = loader.multiprocessing_context
        assert (got.get_start_method() if got is not None else None) == context


@pytest.fixture(scope="module")
def prepared_slic(tmp_path_factory):
    """A fast prepared folder (pixel SLIC, 2 photos) for the tests that need only the format (made in-process: the
    CLI's own process is tested above)."""
    from elements.cli import main

    photos = _photos(tmp_path_factory.mktemp("slic_photos"), PHOTOS[:2])
    out = tmp_path_factory.mktemp("prepared_slic")
    assert main(["prepare", "--train_data", str(photos), "--output_dir", str(out), "--backend", "slic"]) == 0
    return out


def test_prepared_shards_train_stage2_dataset_with_element_dropout(prepared_slic):
    from elements.train.masks import ElementDropoutDataset

    ds = ElementDropoutDataset(
        prepared_slic, partition={"backend": "sam"}, split="all", shuffle=False, dropout_prob=1.0, mask_source="random"
    )
    assert not ds.builds_models
    items = list(ds)
    assert len(items) == 2 and all(it["elements_by"].startswith("prepared: pixel-space SLIC") for it in items)
    assert all(0 < it["active"].sum() <= len(it["active"]) for it in items)


def test_bad_input_and_changed_settings_are_one_sentence(prepared_slic, tmp_path, capsys):
    """In-process (``main``, as ``python -m elements`` calls it), but for the last refusal: a real process, whose whole
    stderr (import-time warnings included) must be the one sentence."""
    from elements.cli import main

    def prepare(*args) -> tuple[int, str]:
        capsys.readouterr()
        code = main(["prepare", *map(str, args)])
        return code, capsys.readouterr().err

    code, err = prepare("--train_data", tmp_path / "nope", "--output_dir", tmp_path / "o")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "neither a folder" in err
    code, err = prepare("--train_data", prepared_slic, "--output_dir", tmp_path / "o")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "already prepared" in err
    photos = _photos(tmp_path / "p", PHOTOS[:1])
    code, err = prepare("--train_data", photos, "--output_dir", tmp_path / "o2", "--backend", "grid")
    assert code == 0, err
    other = _cli("prepare", "--train_data", photos, "--output_dir", tmp_path / "o2", "--backend", "slic", sam=False)
    assert other.returncode == 2 and len(other.stderr.strip().splitlines()) == 1
    assert "other settings (partition)" in other.stderr


def test_cli_lists_prepare():
    proc = _cli("--help", sam=False)
    assert "prepare" in proc.stdout
