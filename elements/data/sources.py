"""Reading training/evaluation images: an image folder or img2dataset webdataset shards.

Three layouts are understood:

* **image folder** — every ``.jpg/.jpeg/.png/.webp/.bmp/.tif(f)`` below the folder (recursive,
  hidden folders skipped). Optional sidecars with the same stem: ``.txt`` (caption) and ``.json``
  (metadata: ``url``, ``caption``, LAION scores). The sample key is the path relative to the folder.
* **webdataset shards** as img2dataset writes them — ``NNNNN.tar`` holding ``{key}.jpg``,
  ``{key}.txt``, ``{key}.json``, each with a ``NNNNN.parquet`` beside it (one row per sample:
  ``key``, ``url``, ``caption``, ``status``, plus the LAION columns that were kept).
  ``source`` may be a folder of shards, one ``.tar``, a brace pattern (``data/{00000..00099}.tar``)
  or a list of paths.
* **prepared shards** written by ``python -m elements prepare`` (:mod:`elements.data.prepared`): the
  same webdataset layout, each sample carrying its 512² crop and its element labels. Their samples
  keep the input's key and URL (so the held-out split is the same) and come with ``Sample.labels``.

For each record the held-out split (:mod:`elements.data.split`) and the metadata filters are
decided from the key/URL and metadata alone, **before** the image is decoded; a training reader
never decodes a held-out image. Undecodable images, unreadable sidecars and truncated shards
are skipped and counted in :class:`DataStats`, never fatal.

Work is divided into ``num_parts`` parts (processes × DataLoader workers): shards are dealt
out round-robin when there are at least as many shards as parts, otherwise every part reads all
shards and keeps every ``num_parts``-th record. Either way each record belongs to exactly one part.
"""

from __future__ import annotations

import io
import json
import re
import tarfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from elements.data.filters import LaionFilter
from elements.data.prepared import LABELS_EXT, decode_labels
from elements.data.split import is_heldout, split_key
from elements.errors import UserError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
SPLITS = ("train", "heldout", "all")


@dataclass
class Sample:
    """One decoded sample.

    ``image``: ``(H, W, 3) uint8`` RGB as decoded (not yet cropped); ``split_key``: what the
    held-out rule hashed (URL, else key); ``meta``: the sample's metadata row/JSON (may be empty).
    """

    key: str
    split_key: str
    image: np.ndarray
    caption: str
    meta: dict = field(default_factory=dict)
    #: prepared shards only (:mod:`elements.data.prepared`): ``image`` is then the stored ``(S, S, 3)`` crop,
    #: ``labels`` its ``(S, S) int32`` element ids (-1 = none) and ``partition`` the parameters that made them
    labels: np.ndarray | None = None
    partition: dict | None = None


@dataclass
class DataStats:
    """Counters of one reader (one process or DataLoader worker)."""

    records: int = 0  # records of this part looked at
    other_split: int = 0  # skipped: belongs to the other side of the held-out split
    filtered: int = 0  # skipped: failed the metadata filters
    no_image: int = 0  # skipped: record without an image member/file
    corrupt: int = 0  # skipped: image could not be decoded
    corrupt_shards: int = 0  # shards that ended early (truncated/unreadable tar)
    yielded: int = 0

    def as_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def total(stats: Sequence[dict]) -> dict:
        out = DataStats().as_dict()
        for s in stats:
            for k in out:
                out[k] += int(s.get(k, 0))
        return out


@dataclass
class _Record:
    key: str
    url: str | None
    caption: str
    meta: dict
    image: bytes | Path | None  # encoded bytes (shard) or a file path (folder)
    where: str
    labels: bytes | None = None  # prepared shards: the 16-bit labels PNG
    partition: dict | None = None


# --- locating the data ---------------------------------------------------------------------
def _expand_braces(pattern: str) -> list[str]:
    m = re.search(r"\{(\d+)\.\.(\d+)\}", pattern)
    if not m:
        return [pattern]
    lo, hi = m.group(1), m.group(2)
    width = len(lo)
    out = []
    for i in range(int(lo), int(hi) + 1):
        out += _expand_braces(pattern[: m.start()] + str(i).zfill(width) + pattern[m.end() :])
    return out


@dataclass(frozen=True)
class DataSource:
    """A resolved input: ``kind`` is ``"folder"`` or ``"webdataset"``; ``units`` are image files or shards, sorted."""

    kind: str
    root: Path | None
    units: tuple[Path, ...]

    def __len__(self) -> int:
        return len(self.units)


def resolve_source(source) -> DataSource:
    """Work out what ``source`` is (see the module docstring); UserError if it holds no data."""
    if isinstance(source, DataSource):
        return source
    if isinstance(source, (list, tuple)):
        shards = tuple(Path(p) for p in source)
        missing = [str(p) for p in shards if not p.is_file()]
        if missing:
            raise UserError(f"Shard '{missing[0]}' does not exist.")
        return DataSource("webdataset", None, shards)
    text = str(source)
    if "{" in text:
        return resolve_source(list(_expand_braces(text)))
    path = Path(text).expanduser()
    if path.is_file() and path.suffix == ".tar":
        return DataSource("webdataset", path.parent, (path,))
    if not path.is_dir():
        raise UserError(f"Data '{source}' is neither a folder, a .tar shard nor a {{000..999}} shard pattern.")
    shards = sorted(p for p in path.glob("*.tar") if p.is_file())
    if shards:
        return DataSource("webdataset", path, tuple(shards))
    files = sorted(
        (
            p
            for p in path.rglob("*")
            if p.suffix.lower() in IMAGE_EXTENSIONS
            and p.is_file()
            and not any(part.startswith(".") for part in p.relative_to(path).parts)
        ),
        key=lambda p: p.relative_to(path).as_posix(),
    )
    if not files:
        raise UserError(f"Folder '{source}' holds no .tar shards and no images ({', '.join(IMAGE_EXTENSIONS)}).")
    return DataSource("folder", path, tuple(files))


# --- raw records (no image decoding) -------------------------------------------------------
def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _folder_record(root: Path, path: Path) -> _Record:
    meta = _read_json(path.with_suffix(".json")) if path.with_suffix(".json").is_file() else {}
    txt = path.with_suffix(".txt")
    caption = txt.read_text(errors="replace").strip() if txt.is_file() else str(meta.get("caption") or "")
    return _Record(path.relative_to(root).as_posix(), meta.get("url") or None, caption, meta, path, str(path))


_MEMBER_RE = re.compile(r"^((?:.*/)?[^./]+)\.([^/]+)$")  # webdataset: key = path up to the first dot of the basename


@dataclass
class _ShardTable:
    rows: dict[str, dict]
    filtered: bool  # rows carry "_keep" from the filters


def _shard_table(shard: Path, filters: LaionFilter | None) -> _ShardTable | None:
    """The shard's parquet as ``{key: row}`` (None if absent); checks filter columns once per shard."""
    pq = shard.with_suffix(".parquet")
    if not pq.is_file():
        return None
    import pandas as pd

    try:
        table = pd.read_parquet(pq)
    except Exception as err:  # a broken metadata file is the user's data problem, say which
        raise UserError(f"Metadata file '{pq}' could not be read ({type(err).__name__}).") from err
    if "key" not in table.columns:
        raise UserError(f"Metadata file '{pq}' has no 'key' column (it has: {', '.join(map(str, table.columns))}).")
    if filters is not None:
        table = table.assign(_keep=filters.mask(table, f"Metadata file '{pq}'"))
    table["key"] = table["key"].astype(str)
    return _ShardTable({row["key"]: row for row in table.to_dict("records")}, filters is not None)


def _shard_records(shard: Path, table: _ShardTable | None, stats: DataStats) -> Iterator[_Record]:
    group: dict = {}
    current = None

    def flush():
        if LABELS_EXT in group:
            return _prepared_record(shard, current, group)
        row = table.rows.get(current) if table is not None else None
        meta = dict(row) if row is not None else {}
        if row is None and table is not None and table.filtered:
            meta["_keep"] = False  # filtering by a parquet that does not list this key: cannot pass
        if "json" in group:
            try:
                side = json.loads(group["json"])
                meta = {**side, **meta} if isinstance(side, dict) else meta
            except ValueError:
                pass  # a malformed sidecar loses only its metadata; the image and its parquet row still count
        caption = group["txt"].decode("utf-8", "replace").strip() if "txt" in group else str(meta.get("caption") or "")
        image = next((group[e] for e in ("jpg", "jpeg", "png", "webp") if e in group), None)
        return _Record(current, meta.get("url") or None, caption, meta, image, f"{shard.name}:{current}")

    try:
        with tarfile.open(shard, "r|*") as tf:
            for member in tf:
                if not member.isfile():
                    continue
                m = _MEMBER_RE.match(member.name)
                if not m:
                    continue
                key, ext = m.group(1), m.group(2).lower()
                if key != current and current is not None:
                    yield flush()
                    group = {}
                current = key
                f = tf.extractfile(member)
                group[ext] = f.read() if f is not None else b""
    except (tarfile.TarError, EOFError, OSError, zlib.error):
        stats.corrupt_shards += 1
        return  # the incomplete last group is dropped with the rest of the shard
    if current is not None:
        yield flush()


def _prepared_record(shard: Path, name: str, group: dict) -> _Record:
    """A sample of a prepared shard: the input's own key/URL/metadata from its JSON, crop and labels as stored."""
    try:
        info = json.loads(group.get("json", b"{}"))
    except ValueError:
        info = {}
    info = info if isinstance(info, dict) else {}
    meta = info.get("meta") if isinstance(info.get("meta"), dict) else {}
    key = str(info.get("key") or name)
    caption = group["txt"].decode("utf-8", "replace").strip() if "txt" in group else str(meta.get("caption") or "")
    image = next((group[e] for e in ("png", "jpg") if e in group), None)
    return _Record(
        key,
        info.get("url") or None,
        caption,
        dict(meta),
        image,
        f"{shard.name}:{name}",
        group[LABELS_EXT],
        info.get("partition") if isinstance(info.get("partition"), dict) else {},
    )


# --- decoding --------------------------------------------------------------------------------
def decode_image(data) -> np.ndarray | None:
    """Bytes or a path -> ``(H, W, 3) uint8`` RGB, or None if it cannot be decoded."""
    from PIL import Image

    from elements.image_io import load_image

    try:
        if isinstance(data, (bytes, bytearray)):
            with Image.open(io.BytesIO(data)) as img:
                return load_image(img).pixels
        return load_image(data).pixels
    except UserError:
        return None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None


# --- the reader --------------------------------------------------------------------------------
def iter_positioned(
    source,
    *,
    split: str = "train",
    filters: LaionFilter | None = None,
    part: int = 0,
    num_parts: int = 1,
    epoch: int = 0,
    seed: int = 0,
    shuffle: bool = False,
    start: int = 0,
    stats: DataStats | None = None,
) -> Iterator[tuple[int, Sample]]:
    """Like :func:`iter_samples`, yielding ``(position, sample)``.

    ``position`` is the number of this part's records consumed so far (decoded or skipped);
    passing it back as ``start`` resumes right after that sample without decoding what came before.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if not 0 <= part < num_parts:
        raise ValueError(f"part {part} out of range for {num_parts} parts")
    src = resolve_source(source)
    stats = stats if stats is not None else DataStats()
    units = list(src.units)
    if shuffle:  # the same order on every process (same seed + epoch), so the parts stay disjoint
        order = np.random.default_rng([seed, epoch]).permutation(len(units))
        units = [units[i] for i in order]
    deal_units = src.kind == "folder" or len(units) >= num_parts
    if deal_units:
        units = units[part::num_parts]

    def records() -> Iterator[_Record]:
        if src.kind == "folder":
            for path in units:
                yield _folder_record(src.root, path)
            return
        index = 0
        for shard in units:
            table = _shard_table(shard, filters)
            for rec in _shard_records(shard, table, stats):
                if deal_units or index % num_parts == part:
                    yield rec
                index += 1

    folder_checked = False
    position = 0
    for rec in records():
        position += 1
        if position <= start:
            continue
        stats.records += 1
        sk = split_key(rec.url, rec.key)
        held = is_heldout(sk)
        if (split == "train" and held) or (split == "heldout" and not held):
            stats.other_split += 1
            continue
        if filters is not None:
            if "_keep" in rec.meta:  # decided from the shard's parquet
                ok = bool(rec.meta.pop("_keep"))
            else:
                if not folder_checked:  # first metadata record: fail fast on missing columns
                    filters.resolve(rec.meta.keys(), f"Metadata of '{rec.where}'")
                    folder_checked = True
                ok = filters.keep(rec.meta, f"Metadata of '{rec.where}'")
            if not ok:
                stats.filtered += 1
                continue
        rec.meta.pop("_keep", None)
        if rec.image is None:
            stats.no_image += 1
            continue
        image = decode_image(rec.image)
        labels = decode_labels(rec.labels) if rec.labels is not None else None
        if image is None or (rec.labels is not None and (labels is None or labels.shape != image.shape[:2])):
            stats.corrupt += 1
            continue
        stats.yielded += 1
        yield position, Sample(rec.key, sk, image, rec.caption, _plain(rec.meta), labels, rec.partition)


def iter_samples(source, *, split: str = "train", filters: LaionFilter | None = None, **kwargs) -> Iterator[Sample]:
    """Decoded samples of one split.

    Args:
        source: folder, shard, shard pattern or list of shards (see the module docstring).
        split: ``"train"`` (held-out samples never decoded), ``"heldout"`` (only those) or ``"all"``.
        filters: LAION metadata filters, or None.
        part, num_parts: read only this part of the data (``rank · workers + worker`` of ``world · workers``).
        epoch, seed, shuffle: shuffle the shard/file order per epoch, identically on every part.
        start: skip this part's first ``start`` records undecoded (resume).
        stats: a :class:`DataStats` to count into.
    """
    for _, sample in iter_positioned(source, split=split, filters=filters, **kwargs):
        yield sample


def _plain(meta: dict) -> dict:
    """Metadata with numpy scalars turned into Python ones (JSON-able)."""
    out = {}
    for k, v in meta.items():
        if hasattr(v, "item") and getattr(v, "ndim", 1) == 0:
            v = v.item()
        if isinstance(v, float) and v != v:
            v = None
        if isinstance(v, (str, int, float, bool)) or v is None:
            out[str(k)] = v
    return out
