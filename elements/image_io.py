"""Reading any image a person may hand us, as RGB uint8, with its true size.

Handles EXIF rotation (all eight orientations, in every format), palette/greyscale/CMYK/alpha
modes (alpha, also premultiplied ``La``/``RGBa``, is composited on white), 16-bit and 32-bit
integer and float images (normalised by the data's range, as image viewers do), and large files
within a **pixel budget**: at most :data:`MAX_PIXELS` pixels are ever decoded at once. JPEGs are
decoded at reduced scale (``Image.draft``: 1/2, 1/4 or 1/8), so a JPEG may be up to 8x larger on
each side; any other format whose header claims more than the budget is refused with one
sentence before a single pixel is decoded. Decoded images are then reduced (``Image.reduce``)
to at most ``max_side`` on the long side before any mode conversion, so memory stays near the
budget's size whatever the mode. The CLIs and the demo refuse inputs smaller than
:data:`MIN_SIDE` on a side (``min_side``): 256 elements cannot be shown at that size.

Unreadable, empty, truncated or absurd files raise :class:`UserError`; Pillow's own warnings
(decompression bomb, corrupt EXIF, truncated TIFF) are not printed — the budget replaces them.
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from elements.errors import UserError, excerpt

#: Decoded images are kept no larger than this on their long side (memory bound; the canvas is 512).
MAX_DECODED_SIDE = 2048
#: Pixel budget: the most pixels decoded at once (40 Mpx: 160 MB as RGBA). JPEGs count after draft scaling.
MAX_PIXELS = 40_000_000
#: Smallest accepted side, in input pixels: below it the 16x16 element grid (Sec. 3.1) has no room.
MIN_SIDE = 16

_ORIENTATION_TAG = 0x0112
_INT_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
_PREMULTIPLIED = {"La": "LA", "RGBa": "RGBA"}

# Our budget replaces Pillow's decompression-bomb warning; its TIFF/EXIF warnings go to the user as
# one sentence (or not at all when the image decodes). Filters are process-wide and thread-safe.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
warnings.filterwarnings("ignore", module=r"PIL\.")


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


def load_image(source, *, max_side: int = MAX_DECODED_SIDE, name: str | None = None, min_side: int = 1) -> LoadedImage:
    """Decode ``source`` to RGB uint8.

    ``source``: a path, encoded file bytes, a PIL image, an ``(H, W[, C])`` array or a
    :class:`LoadedImage`. ``name`` is how error sentences call it (default: the path); the
    demo passes "The image" so that server paths never reach a visitor. ``min_side``: refuse
    images smaller than this on a side; the CLIs and the demo pass :data:`MIN_SIDE` (training
    data, centre-cropped and resized anyway, keeps 1). Raises UserError.
    """
    if isinstance(source, LoadedImage):
        return source
    if isinstance(source, np.ndarray):
        return _from_array(source, max_side, min_side)
    if isinstance(source, Image.Image):
        return _decode(source, max_side, name or "The image", min_side)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _open(io.BytesIO(bytes(source)), max_side, name or "The image data", min_side)
    if not isinstance(source, (str, os.PathLike)):
        raise UserError(
            f"An image must be a file path, file bytes, a PIL image or an array, not {type(source).__name__}."
        )
    try:
        path = Path(os.fspath(source))
        label = name or f"Image file '{excerpt(str(path), 120).strip(chr(39))}'"
        if not path.exists():
            raise UserError(f"{label} does not exist.")
        if path.is_dir():
            raise UserError(f"{label} is a folder, not an image file.")
        if path.stat().st_size == 0:
            raise UserError(f"{label} is empty.")
    except (OSError, ValueError, TypeError):  # a name too long, NUL in the name
        raise UserError(f"{name or 'The image file name'} is not a usable file name.") from None
    return _open(path, max_side, label, min_side)


def _open(fp, max_side: int, label: str, min_side: int = 1) -> LoadedImage:
    try:
        with warnings.catch_warnings():  # also when a caller (pytest) reset the module-level filters
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            warnings.filterwarnings("ignore", module=r"PIL\.")
            with Image.open(fp) as img:
                return _decode(img, max_side, label, min_side)
    except UserError:
        raise
    except Image.DecompressionBombError:
        raise UserError(f"{label} is too large to decode safely (over {MAX_PIXELS:,} pixels).") from None
    except UnidentifiedImageError:
        raise UserError(f"{label} is not an image file Pillow can read; use PNG, JPEG, WebP or TIFF.") from None
    except (OSError, SyntaxError, ValueError, TypeError, KeyError, IndexError, EOFError, MemoryError) as err:
        raise UserError(f"{label} could not be decoded ({_short(err)}).") from None


def _decode(img: Image.Image, max_side: int, name: str, min_side: int = 1) -> LoadedImage:
    """Header checks, reduced decode, EXIF rotation, RGB conversion; ``img`` is not modified."""
    w0, h0 = img.size
    if w0 == 0 or h0 == 0:
        raise UserError(f"{name} has no pixels.")
    if img.format == "JPEG" and max(w0, h0) > max_side:
        img.draft("RGB" if img.mode in ("RGB", "YCbCr") else img.mode, (max_side, max_side))  # >= requested
    w, h = img.size
    if w * h > MAX_PIXELS:
        raise UserError(
            f"{name} is {w0}x{h0} pixels, over the {MAX_PIXELS // 1_000_000} Mpx budget; "
            "downscale it (or save it as JPEG) first."
        )
    if min(w0, h0) < min_side:
        raise UserError(f"{name} is {w0}x{h0} pixels; images need at least {min_side} pixels on each side.")
    img.load()
    img = _reduce(img, max_side)
    before = img.size
    img = ImageOps.exif_transpose(img)
    swapped = img.size != before and img.size == before[::-1]
    # Pillow already shows some TIFFs transposed at open; the true size is whatever exif_transpose left
    true_size = (h0, w0) if swapped else (w0, h0)
    rgb = _to_rgb(img)
    if max(rgb.size) > max_side:
        rgb = rgb.copy()
        rgb.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    pixels = np.asarray(rgb, dtype=np.uint8).copy()
    return LoadedImage(pixels, (int(true_size[0]), int(true_size[1])))


def _reduce(img: Image.Image, max_side: int) -> Image.Image:
    """Box-reduce by an integer factor so the long side is at most ~2x ``max_side`` (thumbnail finishes)."""
    factor = max(img.size) // max_side
    if factor < 2:
        return img
    if img.mode in ("1", "P") or img.mode.startswith("I;16"):
        img = img.convert({"1": "L", "P": "RGBA"}.get(img.mode, "I"))
    return img.reduce(factor)


def _normalise(arr: np.ndarray, is_float: bool) -> np.ndarray:
    """Numbers of any range -> uint8, as image viewers show them.

    Floats in [0, 1] are scaled by 255; integers in [0, 255] kept; integers in [0, 65535] are
    16-bit (divided by 257); anything else (negative, > 65535, floats > 1) is stretched from
    its finite min to its finite max. NaN becomes 0, +/-inf the max/min.
    """
    with np.errstate(all="ignore"):
        return _normalise_quiet(arr, is_float)


def _normalise_quiet(arr: np.ndarray, is_float: bool) -> np.ndarray:
    a = np.asarray(arr, dtype=np.float64)
    finite = np.isfinite(a)
    if not finite.all():
        fill = a[finite] if finite.any() else np.zeros(1)
        a = np.nan_to_num(a, nan=float(fill.min()), posinf=float(fill.max()), neginf=float(fill.min()))
    lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
    if is_float and lo >= 0 and hi <= 1.0:
        a = a * 255.0
    elif lo >= 0 and hi <= 255 and not is_float:
        pass
    elif lo >= 0 and hi <= 65535 and not is_float:
        a = a / 257.0
    elif hi > lo:
        a = (a - lo) * (255.0 / (hi - lo))
    else:
        a = np.zeros_like(a)
    return np.clip(np.rint(a), 0, 255).astype(np.uint8)


def _to_rgb(img: Image.Image) -> Image.Image:
    mode = img.mode
    if mode in _INT_MODES:
        return Image.fromarray(_normalise(np.asarray(img), mode == "F"), "L").convert("RGB")
    if mode in _PREMULTIPLIED:
        img = img.convert(_PREMULTIPLIED[mode])
        mode = img.mode
    if (
        mode in {"RGBA", "LA", "PA"}
        or (mode == "P" and "transparency" in img.info)
        or (mode in {"RGB", "L"} and "transparency" in img.info)
    ):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    try:
        return img.convert("RGB")
    except ValueError:  # a mode Pillow cannot convert to RGB directly
        raise UserError(f"Images in Pillow mode {excerpt(mode)} are not supported; save it as RGB PNG.") from None


def _from_array(arr: np.ndarray, max_side: int, min_side: int = 1) -> LoadedImage:
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4) or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise UserError(f"An image array must be (H, W), (H, W, 3) or (H, W, 4); got shape {tuple(arr.shape)[:6]}.")
    if arr.shape[0] * arr.shape[1] > MAX_PIXELS:
        raise UserError(
            f"The image array has {arr.shape[1]}x{arr.shape[0]} pixels, over the {MAX_PIXELS // 1_000_000} Mpx budget."
        )
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    elif arr.dtype.kind not in "uif":
        raise UserError(f"An image array must hold numbers, not {arr.dtype}.")
    if arr.dtype != np.uint8:
        arr = _normalise(arr, np.issubdtype(arr.dtype, np.floating))
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    mode = "RGBA" if arr.shape[2] == 4 else "RGB"
    return _decode(Image.fromarray(np.ascontiguousarray(arr), mode), max_side, "The image array", min_side)


def _short(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return excerpt(text[0], 80).strip("'") if text else type(err).__name__


def save_png(path, array: np.ndarray) -> None:
    """Write ``array`` ((H, W) uint8/uint16 or (H, W, 3) uint8) as PNG, atomically (temp file + rename)."""
    from elements.atomic import atomic_write

    mode = "I;16" if array.dtype == np.uint16 else None
    atomic_write(path, lambda p: Image.fromarray(np.ascontiguousarray(array), mode).save(p, format="PNG"))
