"""The prepared-shard format: training crops with their elements, written once by ``python -m elements prepare``.

A prepared folder holds webdataset ``.tar`` shards and, beside each, a small JSON of how it was made::

    prepare.json                 the job's settings (source, crop size, filters, requested partition)
    prepared-000000.tar          samples of input unit 0 (one input shard, or a chunk of image files)
    prepared-000000.stats.json   that shard's counters and the partition that actually ran
    ...

Each sample ``{k}`` (``k`` = ``<shard stem>-<index>``, webdataset's ``__key__``, free of dots) has:

* ``{k}.png`` (or ``{k}.jpg`` with ``--crop-format jpg``): the ``(S, S, 3) uint8`` crop made by
  :func:`elements.data.preprocess.center_crop_resize` — the canvas that was partitioned;
* ``{k}.txt``: the caption;
* ``{k}.labels.png``: 16-bit PNG of ``labels + 1`` (0 = pixel of no element); ``labels`` ``(S, S) int32``
  are contiguous ``-1..N-1`` element ids as :func:`elements.partition.build.elements_from_labels` takes them;
* ``{k}.json``: ``{"key", "url", "meta", "partition", "num_elements", "boxes"}`` — the input's own key
  and URL (so the held-out rule of :mod:`elements.data.split` decides the same split as on the raw
  data), its metadata, the partition parameters that made the labels, and the elements' pixel boxes
  ``(N, 4)`` ``(x0, y0, x1, y1)``, end-exclusive, canvas pixels.

The readers in :mod:`elements.data.sources` recognise such samples by their ``labels.png`` member and
hand the stored crop and labels on (:attr:`~elements.data.sources.Sample.labels`), so training and
evaluation never build a partition model for them.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

FORMAT_VERSION = 1
MANIFEST = "prepare.json"
SHARD_PREFIX = "prepared-"
LABELS_EXT = "labels.png"
STATS_SUFFIX = ".stats.json"
CROP_FORMATS = ("png", "jpg")
JPEG_QUALITY = 95  # --crop-format jpg: near-lossless, ~4x smaller than PNG


def shard_name(index: int) -> str:
    """``prepared-000012.tar`` for input unit 12."""
    return f"{SHARD_PREFIX}{index:06d}.tar"


def stats_path(shard: Path) -> Path:
    """``prepared-000012.stats.json`` beside ``prepared-000012.tar``."""
    return shard.with_name(shard.name[: -len(".tar")] + STATS_SUFFIX)


def encode_labels(labels: np.ndarray) -> bytes:
    """``(S, S) int32`` labels in -1..65534 -> 16-bit PNG bytes of ``labels + 1``."""
    if labels.min(initial=0) < -1 or labels.max(initial=-1) > 65534:
        raise ValueError("labels must lie in -1..65534 to be stored as a 16-bit PNG")
    ok, buf = cv2.imencode(".png", (labels.astype(np.int64) + 1).astype(np.uint16))
    if not ok:
        raise ValueError("the labels could not be encoded as PNG")
    return buf.tobytes()


def decode_labels(data: bytes) -> np.ndarray | None:
    """Inverse of :func:`encode_labels`: ``(S, S) int32``, -1 = no element; None if the bytes are not such a PNG."""
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None or arr.ndim != 2 or arr.dtype != np.uint16:
        return None
    return arr.astype(np.int32) - 1


def encode_crop(crop: np.ndarray, fmt: str = "png") -> bytes:
    """``(S, S, 3) uint8`` -> PNG (lossless) or JPEG (quality 95) bytes."""
    buf = io.BytesIO()
    if fmt == "png":
        Image.fromarray(crop).save(buf, format="PNG")
    elif fmt == "jpg":
        Image.fromarray(crop).save(buf, format="JPEG", quality=JPEG_QUALITY, subsampling=0)
    else:
        raise ValueError(f"crop format must be one of {CROP_FORMATS}, got {fmt!r}")
    return buf.getvalue()


def sample_members(
    key: str,
    *,
    source_key: str,
    url: str | None,
    caption: str,
    meta: dict,
    crop: np.ndarray,
    labels: np.ndarray,
    boxes: np.ndarray,
    partition: dict,
    crop_format: str = "png",
) -> dict:
    """The webdataset sample (``{"__key__": key, ext: bytes}``) for one prepared image."""
    info = {
        "key": source_key,
        "url": url,
        "meta": meta,
        "partition": partition,
        "num_elements": int(len(boxes)),
        "boxes": np.asarray(boxes, dtype=np.int64).tolist(),
    }
    return {
        "__key__": key,
        crop_format: encode_crop(crop, crop_format),
        "txt": caption.encode("utf-8"),
        LABELS_EXT: encode_labels(labels),
        "json": json.dumps(info, sort_keys=True).encode("utf-8"),
    }


def shard_stats(folder: Path) -> list[dict]:
    """The ``*.stats.json`` of the finished shards in ``folder`` (those whose ``.tar`` exists), sorted by name."""
    out = []
    for tar in sorted(Path(folder).glob(f"{SHARD_PREFIX}*.tar")):
        path = stats_path(tar)
        try:
            out.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return out


def describe_partitions(stats: list[dict]) -> str:
    """One line saying which partition made the elements of these shards (several if they differ)."""
    counts: dict[str, int] = {}
    for s in stats:
        what = s.get("partition_description") or str(s.get("partition", {}).get("backend", "unknown"))
        counts[what] = counts.get(what, 0) + int(s.get("written", 0))
    if not counts:
        return "unknown (no shard statistics found beside the shards)"
    if len(counts) == 1:
        return next(iter(counts))
    return "; ".join(f"{n} samples by {what}" for what, n in counts.items())


def is_prepared(source) -> bool:
    """Whether a resolved :class:`~elements.data.sources.DataSource` holds prepared shards (their stats files or
    the job's ``prepare.json`` lie beside them)."""
    if getattr(source, "kind", None) != "webdataset" or not source.units:
        return False
    first = Path(source.units[0])
    return stats_path(first).is_file() or (first.parent / MANIFEST).is_file()


__all__ = [
    "CROP_FORMATS",
    "FORMAT_VERSION",
    "LABELS_EXT",
    "MANIFEST",
    "decode_labels",
    "describe_partitions",
    "encode_crop",
    "encode_labels",
    "is_prepared",
    "sample_members",
    "shard_name",
    "shard_stats",
    "stats_path",
]
