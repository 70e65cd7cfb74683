"""Data pipeline: img2dataset shards, image folders, LAION filters, held-out split, corruption, sharding."""

import io
import json
import tarfile

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from elements.data import DataStats, LaionFilter, iter_positioned, iter_samples, resolve_source
from elements.data.split import is_heldout, split_key
from elements.errors import UserError


def _jpeg(rng, w=24, h=16):
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _urls(n, heldout_min=3):
    """n URLs of which at least ``heldout_min`` are held out (chosen by the real rule, not by hand)."""
    held = [f"https://example.com/h{i}.jpg" for i in range(5000) if is_heldout(f"https://example.com/h{i}.jpg")][
        :heldout_min
    ]
    return held + [f"https://example.com/img{i}.jpg" for i in range(n - len(held))]


def write_shards(root, rng, num_shards=3, per_shard=8, corrupt_key=None, extra_columns=None):
    """img2dataset 'webdataset' layout: NNNNN.tar with {key}.jpg/.txt/.json and NNNNN.parquet."""
    root.mkdir(parents=True, exist_ok=True)
    urls = _urls(num_shards * per_shard)
    rows_all = []
    for s in range(num_shards):
        rows = []
        with tarfile.open(root / f"{s:05d}.tar", "w") as tf:
            for j in range(per_shard):
                i = s * per_shard + j
                key = f"{s:05d}{j:04d}"
                row = {
                    "key": key,
                    "url": urls[i],
                    "caption": f"caption {i}",
                    "status": "success",
                    "similarity": float(rng.uniform(0.1, 0.4)),
                    "AESTHETIC_SCORE": float(rng.uniform(5.0, 7.5)),
                    "width": 24,
                    "height": 16,
                }
                row.update((extra_columns or {}).get(key, {}))
                rows.append(row)
                payload = {
                    "jpg": b"not a jpeg at all" if key == corrupt_key else _jpeg(rng),
                    "txt": row["caption"].encode(),
                    "json": json.dumps(row).encode(),
                }
                for ext, data in payload.items():
                    info = tarfile.TarInfo(f"{key}.{ext}")
                    info.size = len(data)
                    tf.addfile(info, io.BytesIO(data))
        pd.DataFrame(rows).to_parquet(root / f"{s:05d}.parquet")
        rows_all += rows
    return pd.DataFrame(rows_all)


@pytest.fixture
def shards(tmp_path):
    rng = np.random.default_rng(0)
    table = write_shards(tmp_path / "shards", rng)
    return tmp_path / "shards", table


def test_reads_img2dataset_shards(shards):
    root, table = shards
    src = resolve_source(root)
    assert src.kind == "webdataset" and len(src) == 3
    got = list(iter_samples(root, split="all"))
    assert [s.key for s in got] == list(table["key"])
    first = got[0]
    assert first.image.shape == (16, 24, 3) and first.image.dtype == np.uint8
    assert first.caption == "caption 0" and first.meta["url"] == table["url"][0]
    assert first.split_key == table["url"][0]  # the URL, not the key, is hashed when present
    # the pattern and single-shard forms name the same data
    assert [s.key for s in iter_samples(str(root / "{00000..00002}.tar"), split="all")] == list(table["key"])
    assert len(list(iter_samples(root / "00001.tar", split="all"))) == 8


def test_split_disjoint_and_stable(shards):
    root, table = shards
    train = {s.key for s in iter_samples(root, split="train")}
    held = {s.key for s in iter_samples(root, split="heldout")}
    assert train.isdisjoint(held) and train | held == set(table["key"])
    expected = {k for k, u in zip(table["key"], table["url"]) if is_heldout(split_key(u, k))}
    assert held == expected and len(held) >= 3
    assert held == {s.key for s in iter_samples(root, split="heldout")}  # same answer every time
    assert {s.key for s in iter_samples(root, split="heldout", shuffle=True, seed=5, epoch=3)} == held


def test_training_never_decodes_heldout(shards, monkeypatch):
    import elements.data.sources as sources

    root, table = shards
    held_urls = {u for k, u in zip(table["key"], table["url"]) if is_heldout(u)}
    real = sources.decode_image
    decoded = []

    def spy(data):
        decoded.append(data)
        return real(data)

    monkeypatch.setattr(sources, "decode_image", spy)
    stats = DataStats()
    out = list(iter_samples(root, split="train", stats=stats))
    assert len(decoded) == len(out) == len(table) - len(held_urls) and stats.other_split == len(held_urls)
    assert not any(s.meta["url"] in held_urls for s in out)


def test_laion_filter_drops_the_right_rows(shards):
    root, table = shards
    f = LaionFilter()
    kept = [s.key for s in iter_samples(root, split="all", filters=f)]
    expected = table[(table["AESTHETIC_SCORE"] >= 6.25) & (table["similarity"] >= 0.25)]["key"].tolist()
    assert kept == expected and 0 < len(kept) < len(table)
    only_sim = [s.key for s in iter_samples(root, split="all", filters=LaionFilter(min_aesthetic=None))]
    assert only_sim == table[table["similarity"] >= 0.25]["key"].tolist()


def test_laion_filter_missing_column_is_a_clear_error(tmp_path):
    rng = np.random.default_rng(1)
    root = tmp_path / "s"
    write_shards(root, rng, num_shards=1, per_shard=2)
    df = pd.read_parquet(root / "00000.parquet").drop(columns=["AESTHETIC_SCORE"])
    df.to_parquet(root / "00000.parquet")
    with pytest.raises(UserError, match=r"no aesthetic score column.*AESTHETIC_SCORE.*it has: key, url"):
        list(iter_samples(root, split="all", filters=LaionFilter()))


def test_filter_nan_and_alias():
    df = pd.DataFrame({"aesthetic": [6.3, np.nan, 7.0, 6.0], "clip_similarity": [0.3, 0.3, 0.2, 0.9]})
    assert LaionFilter().mask(df, "t").tolist() == [True, False, False, False]
    assert LaionFilter().keep({"aesthetic": "6.5", "similarity": 0.26}, "t")


def test_corrupt_sample_and_truncated_shard_are_counted(tmp_path):
    rng = np.random.default_rng(2)
    root = tmp_path / "s"
    table = write_shards(root, rng, num_shards=2, per_shard=6, corrupt_key="000000003")
    data = (root / "00001.tar").read_bytes()
    (root / "00001.tar").write_bytes(data[: len(data) // 2 + 100])  # cut the second shard mid-way
    stats = DataStats()
    got = [s.key for s in iter_samples(root, split="all", stats=stats)]
    assert "000000003" not in got and stats.corrupt == 1 and stats.corrupt_shards == 1
    assert set(table["key"][:6]) - {"000000003"} <= set(got)
    assert stats.yielded == len(got) and 0 < sum(k.startswith("00001") for k in got) < 6


def test_image_folder(tmp_path):
    rng = np.random.default_rng(3)
    root = tmp_path / "imgs"
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / ".hidden").mkdir()
    names = ["a.jpg", "sub/b.png", "sub/deeper/c.jpeg"]
    for n in names:
        Image.fromarray(rng.integers(0, 255, (10, 12, 3), dtype=np.uint8)).save(root / n)
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(root / ".hidden" / "x.png")
    (root / "sub" / "b.txt").write_text("a caption\n")
    (root / "sub" / "deeper" / "c.json").write_text(
        json.dumps({"url": "https://x/c.jpg", "aesthetic": 7, "similarity": 0.3})
    )
    (root / "broken.jpg").write_bytes(b"\xff\xd8 garbage")
    stats = DataStats()
    got = {s.key: s for s in iter_samples(root, split="all", stats=stats)}
    assert sorted(got) == sorted(names) and stats.corrupt == 1
    assert got["sub/b.png"].caption == "a caption" and got["sub/deeper/c.jpeg"].split_key == "https://x/c.jpg"
    assert got["a.jpg"].split_key == "a.jpg"
    with pytest.raises(UserError, match="no aesthetic score column"):
        list(iter_samples(root, split="all", filters=LaionFilter()))


@pytest.mark.parametrize("num_parts", [2, 6])  # fewer and more parts than the 3 shards
def test_parts_cover_every_sample_once(shards, num_parts):
    root, table = shards
    seen = []
    for part in range(num_parts):
        seen += [s.key for s in iter_samples(root, split="all", part=part, num_parts=num_parts, shuffle=True, epoch=1)]
    assert sorted(seen) == sorted(table["key"])


def test_resume_position_skips_exactly(shards):
    root, _ = shards
    full = list(iter_positioned(root, split="train", shuffle=True, epoch=2, seed=1))
    pos, _ = full[4]
    rest = list(iter_positioned(root, split="train", shuffle=True, epoch=2, seed=1, start=pos))
    assert [s.key for _, s in rest] == [s.key for _, s in full[5:]]


def test_bad_source(tmp_path):
    with pytest.raises(UserError, match="neither a folder"):
        resolve_source(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no .tar shards and no images"):
        resolve_source(tmp_path / "empty")


def test_center_crop_resize():
    from elements.data.preprocess import center_crop_resize

    img = np.zeros((100, 300, 3), np.uint8)
    img[:, 100:200] = 255  # the central square is white
    out = center_crop_resize(img, 64)
    assert out.shape == (64, 64, 3) and out.min() == 255
    assert center_crop_resize(np.zeros((512, 700, 3), np.uint8)).shape == (512, 512, 3)


def test_partition_cache(tmp_path, astronaut):
    from elements.data.preprocess import PartitionCache, center_crop_resize
    from elements.partition import Partitioner

    canvas = center_crop_resize(astronaut)
    cache = PartitionCache(Partitioner("grid", num_elements=64), tmp_path / "cache")
    a = cache("k", canvas)
    b = cache("k", canvas)
    assert (cache.misses, cache.hits) == (1, 1) and np.array_equal(a.labels, b.labels)
    assert np.array_equal(a.patches, b.patches) and a.num_elements == 64
    cache("k", canvas[::-1].copy())  # another image under the same key is not served from the cache
    assert cache.misses == 2 and len(list((tmp_path / "cache").rglob("*.npz"))) == 2


def test_dataset_workers_see_each_sample_once(shards):
    import torch

    from elements.data.dataset import ElementsDataset, make_dataloader

    root, table = shards
    keys = []
    for rank in range(2):  # two "processes", two workers each
        ds = ElementsDataset(
            root,
            partition={"backend": "grid", "num_elements": 16},
            split="all",
            image_size=64,
            rank=rank,
            world_size=2,
            seed=0,
        )
        ds.set_epoch(1)
        for batch in make_dataloader(ds, batch_size=3, num_workers=2):
            assert batch["pixel_values"].shape[1:] == (3, 64, 64) and batch["pixel_values"].dtype == torch.float32
            assert -1 <= batch["pixel_values"].min() and batch["pixel_values"].max() <= 1
            e = batch["elements"]
            assert e.patches.shape[2:] == (3, 32, 32) and e.boxes.shape[-1] == 4 and e.active.any(1).all()
            keys += batch["keys"]
    assert sorted(keys) == sorted(table["key"])


def test_collate_pads_to_max_elements(shards):
    from elements.data.dataset import ElementsDataset, make_dataloader

    root, _ = shards
    ds = ElementsDataset(
        root, partition={"backend": "grid", "num_elements": 16}, split="all", image_size=64, shuffle=False
    )
    batch = next(iter(make_dataloader(ds, batch_size=2, max_elements=20)))
    e = batch["elements"]
    assert e.num_elements == 20 and e.active.sum(1).tolist() == [16, 16]
    assert (e.patches[~e.active] == 0).all() and (e.boxes[~e.active] == 0).all()
    batch = next(iter(make_dataloader(ds, batch_size=2, max_elements=4)))  # never truncates
    assert batch["elements"].num_elements == 16
