"""``python -m eval split``: the held-out evaluation manifest and its 512² PNG references.

The held-out rule lives in :mod:`elements.data.split` (sha256 of the URL, else the key; 1/30
held out, Sec. 4.1) and the readers in :mod:`elements.data`; this module only records *which*
held-out samples an evaluation used, so that two labs can check they evaluated the same images:

* ``manifest.csv`` — one row per image, in reader order: ``stem`` (first 16 hex digits of
  sha256(split key), a stable file name on every machine and shard layout), ``key``,
  ``split_key``, ``caption``, ``ref`` (path of the reference PNG relative to the folder), ``labels`` (path of
  the stored element labels, or empty);
* ``manifest.json`` — the rule text, the held-out fraction, the count, the sha256 of
  ``manifest.csv``'s bytes, the data source, filters, limit and reader counters;
* ``labels/{stem}.png`` — only when ``data`` is prepared (``python -m elements prepare``): the stored element
  labels of the reference (16-bit PNG, :mod:`elements.data.prepared`), named in the manifest's ``labels``
  column, so that ``eval recon`` decodes the very elements training saw and builds no partition model;
* ``refs/{stem}.png`` — the reference: :func:`elements.data.preprocess.center_crop_resize`
  (central square crop, Pillow bicubic resize to 512 × 512 — the same function the training
  data goes through), stored as PNG — never JPEG, whose loss would enter every metric. On a square canvas the letterbox geometry of the
  partition is the identity, so decoders output at exactly the reference size.

References are prepared once: an interrupted ``split`` keeps the PNGs it wrote and a re-run
only adds the missing ones; the manifest files are written last, atomically.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import pandas as pd

from elements.data.preprocess import center_crop_resize
from elements.errors import UserError
from elements.geometry import WORKING_SIZE
from eval.report import read_csv

REF_SIZE = WORKING_SIZE  # H = W = 512, Sec. 3.1 / App. B
MANIFEST_COLUMNS = ["stem", "key", "split_key", "caption", "ref", "labels"]


def stem_for(split_key: str) -> str:
    """A filename-safe stem determined by the split key alone."""
    return hashlib.sha256(split_key.encode("utf-8")).hexdigest()[:16]


def build_split(
    data, out, *, limit: int | None = None, split: str = "heldout", filters=None, progress=None
) -> pd.DataFrame:
    """Read the held-out samples of ``data``, write references and the manifest into ``out``; returns the manifest."""
    from elements.atomic import atomic_write
    from elements.data import DataStats, iter_samples
    from elements.data.prepared import encode_labels
    from elements.data.split import HOLDOUT_FRACTION, rule_text
    from elements.image_io import save_png
    from eval.report import write_csv, write_text

    if limit is not None and limit < 1:
        raise UserError(f"--limit must be at least 1, got {limit}.")
    out = Path(out)
    (out / "refs").mkdir(parents=True, exist_ok=True)
    stats = DataStats()
    rows, seen, made_by = [], set(), set()
    for sample in iter_samples(data, split=split, filters=filters, stats=stats):
        stem = stem_for(sample.split_key)
        if stem in seen:  # the same URL twice in a crawl is one image for evaluation
            continue
        seen.add(stem)
        ref = out / "refs" / f"{stem}.png"
        if not ref.exists():
            save_png(ref, center_crop_resize(sample.image, REF_SIZE))
        labels = ""
        if sample.labels is not None and sample.image.shape[:2] == (
            REF_SIZE,
            REF_SIZE,
        ):  # prepared: the crop is the ref
            labels = f"labels/{stem}.png"
            made_by.add(str((sample.partition or {}).get("description") or "unknown partition"))
            if not (out / labels).exists():
                atomic_write(out / labels, lambda tmp, lab=sample.labels: Path(tmp).write_bytes(encode_labels(lab)))
        rows.append(
            {
                "stem": stem,
                "key": sample.key,
                "split_key": sample.split_key,
                "caption": sample.caption or "",
                "ref": f"refs/{stem}.png",
                "labels": labels,
            }
        )
        if progress:
            progress(len(rows))
        if limit is not None and len(rows) >= limit:
            break
    if not rows:
        raise UserError(f"No {split} sample was found in '{data}' ({stats.records} records read).")
    manifest = pd.DataFrame(rows, columns=MANIFEST_COLUMNS)
    write_csv(out / "manifest.csv", manifest)
    info = {
        "rule": rule_text(),
        "holdout_fraction": HOLDOUT_FRACTION,
        "split": split,
        "count": len(manifest),
        "manifest_sha256": hashlib.sha256((out / "manifest.csv").read_bytes()).hexdigest(),
        "source": str(data),
        "limit": limit,
        "filters": repr(filters) if filters is not None else None,
        "reference": f"central square crop, Pillow bicubic resize to {REF_SIZE}x{REF_SIZE}, PNG",
        "reader": stats.as_dict(),
        "elements": "; ".join(sorted(made_by)) or None,  # prepared data: what made the stored labels
    }
    write_text(out / "manifest.json", json.dumps(info, indent=2) + "\n")
    return manifest


def load_split(folder) -> tuple[pd.DataFrame, dict]:
    """Read a folder written by :func:`build_split`, checking the manifest's sha256 and that every reference exists."""
    d = Path(folder)
    try:
        info = json.loads((d / "manifest.json").read_text())
        raw = (d / "manifest.csv").read_bytes()
    except FileNotFoundError as err:
        raise UserError(f"'{d}' holds no manifest.json/manifest.csv; run 'python -m eval split' first.") from err
    except json.JSONDecodeError as err:
        raise UserError(f"'{d / 'manifest.json'}' is not valid JSON.") from err
    if hashlib.sha256(raw).hexdigest() != info.get("manifest_sha256"):
        raise UserError(
            f"'{d / 'manifest.csv'}' does not match the sha256 recorded in manifest.json (edited or truncated)."
        )
    manifest = read_csv(d / "manifest.csv", what="held-out manifest", dtype=str, keep_default_na=False)
    if "labels" not in manifest.columns:  # written before prepared data existed
        manifest["labels"] = ""
    missing = [r for r in [*manifest["ref"], *filter(None, manifest["labels"])] if not (d / r).is_file()]
    if missing:
        raise UserError(f"{len(missing)} file(s) listed in '{d}' are missing (first: {missing[0]}).")
    return manifest, info


def is_split_folder(path) -> bool:
    return (Path(path) / "manifest.json").is_file() and (Path(path) / "manifest.csv").is_file()


def add_data_args(p: argparse.ArgumentParser) -> None:
    """``--limit`` and the data pipeline's LAION filter flags (:func:`elements.data.add_filter_args`)."""
    from elements.data import add_filter_args

    p.add_argument(
        "--limit", type=int, default=None, help="use the first N held-out samples in reader order (paper: 5,000)"
    )
    add_filter_args(p)


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        allow_abbrev=False,
        description="Write the held-out manifest (keys, its sha256, the rule) and "
        "512x512 bicubic PNG references of the held-out samples.",
    )
    p.add_argument(
        "--data", required=True, help="image folder, img2dataset shard folder / .tar / pattern (with parquet)"
    )
    p.add_argument("--out", required=True, help="output folder: manifest.csv, manifest.json, refs/")
    add_data_args(p)
    return p


def run(args) -> int:
    from elements.data import filters_from_args

    manifest = build_split(args.data, args.out, limit=args.limit, filters=filters_from_args(args))
    info = json.loads((Path(args.out) / "manifest.json").read_text())
    print(f"{len(manifest)} held-out images, manifest sha256 {info['manifest_sha256']} -> {args.out}")
    return 0
