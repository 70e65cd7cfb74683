"""Folders of images: listing, matching predictions to references by file stem, exact decoding.

Metrics must see the exact stored pixels, so images are decoded with Pillow to RGB uint8 and
nothing else (no EXIF rotation, no resizing): a size mismatch between a prediction and its
reference is an error, never silently "fixed".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from elements.errors import UserError

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


@dataclass(frozen=True)
class Pair:
    stem: str
    pred: Path
    ref: Path


def list_images(folder, *, what: str = "folder") -> dict[str, Path]:
    """stem -> path of every image directly inside ``folder`` (not recursive; dotfiles skipped)."""
    d = Path(folder)
    if not d.is_dir():
        raise UserError(f"The {what} '{d}' is not a folder.")
    out: dict[str, Path] = {}
    for p in sorted(d.iterdir()):
        if p.name.startswith(".") or p.suffix.lower() not in IMAGE_EXTS or not p.is_file():
            continue
        if p.stem in out:
            raise UserError(
                f"The {what} '{d}' holds two images with the stem '{p.stem}' ({out[p.stem].name}, {p.name})."
            )
        out[p.stem] = p
    return out


def pair_folders(pred_dir, ref_dir) -> list[Pair]:
    """Match ``pred_dir`` and ``ref_dir`` by file stem; any unmatched file is a UserError listing counts and examples."""
    pred = list_images(pred_dir, what="--pred folder")
    ref = list_images(ref_dir, what="--ref folder")
    if not pred:
        raise UserError(f"The --pred folder '{pred_dir}' holds no images.")
    only_pred = sorted(set(pred) - set(ref))
    only_ref = sorted(set(ref) - set(pred))
    if only_pred or only_ref:
        parts = []
        if only_ref:
            parts.append(f"{len(only_ref)} reference(s) have no prediction (first: {', '.join(only_ref[:3])})")
        if only_pred:
            parts.append(f"{len(only_pred)} prediction(s) have no reference (first: {', '.join(only_pred[:3])})")
        raise UserError(
            f"--pred has {len(pred)} images and --ref has {len(ref)}, matched by file stem: {'; '.join(parts)}."
        )
    return [Pair(s, pred[s], ref[s]) for s in sorted(pred)]


def read_rgb(path) -> np.ndarray:
    """Decode an image file to ``(H, W, 3) uint8`` RGB exactly as stored; UserError if unreadable."""
    try:
        with Image.open(path) as im:
            im.load()
            return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise UserError(f"Image '{path}' could not be decoded ({type(err).__name__}).") from err


def read_pair(pair: Pair) -> tuple[np.ndarray, np.ndarray]:
    p, r = read_rgb(pair.pred), read_rgb(pair.ref)
    if p.shape != r.shape:
        raise UserError(
            f"'{pair.pred.name}' is {p.shape[1]}x{p.shape[0]} but its reference '{pair.ref.name}' is "
            f"{r.shape[1]}x{r.shape[0]}; predictions must be at the reference size."
        )
    return p, r
