"""Reading any image a person may hand us, as RGB uint8, with its true size.

Handles EXIF rotation, palette/greyscale/CMYK/alpha modes (alpha is composited on white),
16-bit and 32-bit integer images, and very large files (JPEGs are decoded at reduced
scale with ``Image.draft``, others are downscaled right after decoding: the method only
ever needs the 512×512 canvas). Unreadable, empty or absurd files raise :class:`UserError`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from elements.errors import UserError

#: Decoded images are kept no larger than this on their long side (memory bound; the canvas is 512).
MAX_DECODED_SIDE = 2048
#: Refuse images with more pixels than this (Pillow's decompression-bomb guard is 2x its warning size).
MAX_PIXELS = 250_000_000

_ORIENTATION_TAG = 0x0112
_SWAPS_AXES = {5, 6, 7, 8}


@dataclass(frozen=True)
class LoadedImage:
    """An input image after decoding.

    ``pixels``: ``(h, w, 3) uint8`` RGB; may be smaller than the true size for huge inputs.
    ``size``: the true (width, height) of the input after EXIF rotation, in input pixels;
    every user-facing coordinate refers to this size.
    """

    pixels: np.ndarray
    size: tuple[int, int]

    @property
    def downscaled(self) -> bool:
        return (self.pixels.shape[1], self.pixels.shape[0]) != self.size


def load_image(source, *, max_side: int = MAX_DECODED_SIDE) -> LoadedImage:
    """Decode ``source`` (a path, a PIL image, or an ``(H, W[, C])`` array) to RGB uint8."""
    if isinstance(source, LoadedImage):
        return source
    if isinstance(source, np.ndarray):
        return _from_array(source, max_side)
    if isinstance(source, Image.Image):
        return _from_pil(source, max_side, name="image")
    path = Path(os.fspath(source))
    if not path.exists():
        raise UserError(f"Image file '{path}' does not exist.")
    if path.is_dir():
        raise UserError(f"'{path}' is a folder, not an image file.")
    if path.stat().st_size == 0:
        raise UserError(f"Image file '{path}' is empty.")
    try:
        with Image.open(path) as img:
            return _from_pil(img, max_side, name=f"'{path}'")
    except UserError:
        raise
    except Image.DecompressionBombError:
        raise UserError(f"Image {path} is too large to decode safely (over {MAX_PIXELS:,} pixels).") from None
    except UnidentifiedImageError:
        raise UserError(f"'{path}' is not an image file Pillow can read.") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise UserError(f"Image file '{path}' could not be decoded ({_short(err)}).") from None


def _from_pil(img: Image.Image, max_side: int, name: str) -> LoadedImage:
    w, h = img.size
    if w == 0 or h == 0:
        raise UserError(f"Image {name} has no pixels.")
    if w * h > MAX_PIXELS:
        raise UserError(f"Image {name} is too large to decode safely ({w}x{h} pixels).")
    try:
        orientation = int(img.getexif().get(_ORIENTATION_TAG, 1))
    except Exception:
        orientation = 1
    true_size = (h, w) if orientation in _SWAPS_AXES else (w, h)
    if img.format == "JPEG" and max(w, h) > max_side:
        img.draft("RGB", (max_side, max_side))  # decodes at 1/2, 1/4 or 1/8 scale, >= requested
    img.load()
    img = ImageOps.exif_transpose(img)
    rgb = _to_rgb(img)
    if max(rgb.size) > max_side:
        rgb = rgb.copy()
        rgb.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    pixels = np.asarray(rgb, dtype=np.uint8).copy()
    return LoadedImage(pixels, (int(true_size[0]), int(true_size[1])))


def _to_rgb(img: Image.Image) -> Image.Image:
    mode = img.mode
    if mode in {"I", "I;16", "I;16B", "I;16L", "I;16N", "F"}:
        arr = np.asarray(img).astype(np.float64)
        hi = arr.max() if arr.size else 0.0
        if mode == "F" and hi <= 1.0:
            arr = arr * 255.0
        elif hi > 255:
            arr = arr / 257.0  # 16-bit range onto 8-bit
        return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), "L").convert("RGB")
    if mode in {"RGBA", "LA", "PA"} or (mode == "P" and "transparency" in img.info) or (mode in {"RGB", "L"} and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")


def _from_array(arr: np.ndarray, max_side: int) -> LoadedImage:
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4) or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise UserError(f"An image array must be (H, W), (H, W, 3) or (H, W, 4); got shape {tuple(arr.shape)}.")
    if arr.dtype != np.uint8:
        a = arr.astype(np.float64)
        if np.issubdtype(arr.dtype, np.floating):
            if not np.isfinite(a).all():
                raise UserError("The image array contains NaN or infinite values.")
            a = a * 255.0 if a.max(initial=0) <= 1.0 else a
        elif a.max(initial=0) > 255:
            a = a / 257.0
        arr = np.clip(np.rint(a), 0, 255).astype(np.uint8)
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    mode = "RGBA" if arr.shape[2] == 4 else "RGB"
    return _from_pil(Image.fromarray(np.ascontiguousarray(arr), mode), max_side, name="array")


def _short(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def save_png(path, array: np.ndarray) -> None:
    """Write ``array`` ((H, W) uint8/uint16 or (H, W, 3) uint8) as PNG, atomically (temp file + rename)."""
    from elements.atomic import atomic_write

    mode = "I;16" if array.dtype == np.uint16 else None
    atomic_write(path, lambda p: Image.fromarray(np.ascontiguousarray(array), mode).save(p, format="PNG"))
