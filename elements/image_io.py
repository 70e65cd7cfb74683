"""Reading any image a person may hand us, as RGB uint8, within one pixel budget.

Handles EXIF rotation (all eight orientations, in every format), palette/greyscale/CMYK/alpha
modes (alpha, also premultiplied ``La``/``RGBa``, is composited on white), 16-bit and 32-bit
integer and float images (normalised by the data's range, as image viewers do).

**The pixel budget** is owned here and shared by the CLI, the Python API and the demo
(docs/security.md, "Pixel budget"):

* **Refusal limit**, checked on the file's header before a single pixel is decoded:
  :data:`MAX_PIXELS` (40 Mpx) for PNG, TIFF, WebP, BMP, GIF and arrays, which are decoded whole;
  :data:`MAX_JPEG_PIXELS` (120 Mpx) for JPEG, which is decoded at reduced scale. Past it: one
  sentence, and nothing decoded.
* **Working budget**: the decoded copy (the partition's canvas and the pixel decoders' source) is
  at most ``max_side`` (:data:`MAX_DECODED_SIDE`, the demo passes 4096) on its long side. A JPEG
  is decoded by ``Image.draft`` at the largest DCT reduction (1/2, 1/4 or 1/8) whose long side is
  still at least ``max_side``; any other image is box-reduced (``Image.reduce``) band by band before any mode
  conversion, so a palette, 16-bit or alpha image costs its decoded size and one band.
* **Output budget**: outputs (edited images, ``labels.png``, overlays) have the input's size when
  it holds at most :data:`MAX_OUTPUT_PIXELS`; a larger input (a JPEG over 40 Mpx) is used at the
  largest size within it, and :attr:`LoadedImage.reduced` / :meth:`LoadedImage.note` say so.

The CLIs and the demo refuse inputs smaller than :data:`MIN_SIDE` on a side (``min_side``):
256 elements cannot be shown at that size. Unreadable, empty, truncated or absurd files raise
:class:`UserError` with one sentence that names the problem and what is accepted; Pillow's and
libtiff's own warnings (decompression bomb, corrupt EXIF, truncated TIFF) are not printed.
"""

from __future__ import annotations

import io
import math
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from PIL.JpegImagePlugin import JpegImageFile

from elements.errors import UserError, excerpt

#: Working budget: the decoded copy is kept no larger than this on its long side (the canvas is 512).
MAX_DECODED_SIDE = 2048
#: Refusal limit for images decoded whole (PNG, TIFF, WebP, BMP, GIF, arrays): header pixels.
#: At most 40 Mpx are decoded at once (160 MB as RGBA).
MAX_PIXELS = 40_000_000
#: Refusal limit for JPEG (header pixels): decoded at 1/2-1/8 scale, a 120 Mpx JPEG costs ~8 Mpx
#: decoded (~30 Mpx in the demo's 4096 px); the bound is the time to read its entropy-coded data.
MAX_JPEG_PIXELS = 120_000_000
#: Output budget: inputs up to this keep their size; larger ones are used at the largest size within it.
MAX_OUTPUT_PIXELS = 40_000_000
#: Smallest accepted side, in input pixels: below it the 16x16 element grid (Sec. 3.1) has no room.
MIN_SIDE = 16
#: What every refusal sentence offers instead.
ACCEPTED = (
    f"accepted: PNG, JPEG, WebP, TIFF, BMP or GIF images of at most {MAX_PIXELS // 1_000_000} Mpx, "
    f"JPEG up to {MAX_JPEG_PIXELS // 1_000_000} Mpx"
)

_ORIENTATION_TAG = 0x0112
_INT_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
_PREMULTIPLIED = {"La": "LA", "RGBa": "RGBA"}
#: Rows per band when reducing a decoded image (a band of a 40 Mpx image: a few MB).
_BAND_ROWS = 256

# Our budget replaces Pillow's decompression-bomb warning; its TIFF/EXIF warnings go to the user as
# one sentence (or not at all when the image decodes). Filters are process-wide and thread-safe.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
warnings.filterwarnings("ignore", module=r"PIL\.")


def _silence_libtiff() -> None:
    """libtiff prints its own errors on stderr (``JPEGLib: Quantization table 0x00 was not defined.``)
    beside our one sentence; its documented ``TIFFSetErrorHandler(NULL)`` turns that off. Pillow
    still gets the error codes. A no-op where the library cannot be found."""
    try:
        import ctypes

        import PIL._imaging  # noqa: F401  (loads Pillow's libtiff)

        maps = Path("/proc/self/maps").read_text()
        for path in sorted(set(re.findall(r"(/\S*libtiff[^/\s]*\.so[^/\s]*)", maps))):
            lib = ctypes.CDLL(path)
            for fn in (lib.TIFFSetErrorHandler, lib.TIFFSetWarningHandler):
                fn.restype, fn.argtypes = ctypes.c_void_p, [ctypes.c_void_p]
                fn(None)
    except (OSError, AttributeError, ValueError):  # no libtiff loaded, or not a build we can reach: best effort
        pass


_silence_libtiff()


@dataclass(frozen=True)
class LoadedImage:
    """An input image after decoding.

    ``pixels``: ``(h, w, 3) uint8`` RGB, the working copy; may be smaller than ``size``.
    ``size``: the input's (width, height) from now on, after EXIF rotation: every user-facing
    coordinate and every output refers to it. It is the file's own size unless that is over the
    output budget; then ``original_size`` is the file's size and ``size`` the largest size within
    the budget (same aspect ratio).
    """

    pixels: np.ndarray
    size: tuple[int, int]
    original_size: tuple[int, int] | None = None

    @property
    def downscaled(self) -> bool:
        """The working copy is smaller than ``size`` (never shown: outputs are at ``size``)."""
        return (self.pixels.shape[1], self.pixels.shape[0]) != self.size

    @property
    def reduced(self) -> bool:
        """The file was over the output budget: coordinates and outputs refer to ``size``, not the file's size."""
        return self.original_size is not None and tuple(self.original_size) != tuple(self.size)

    def note(self, name: str = "The image") -> str:
        """One sentence saying that the input was reduced ('' when it was not)."""
        if not self.reduced:
            return ""
        (W, H), (w, h) = self.original_size, self.size
        return (
            f"{name} is {W}x{H} pixels ({W * H / 1e6:.0f} Mpx), over the {MAX_OUTPUT_PIXELS // 1_000_000} Mpx "
            f"output budget: it is used at {w}x{h}, and coordinates and outputs refer to that size."
        )


def output_size(width: int, height: int, budget: int = MAX_OUTPUT_PIXELS) -> tuple[int, int]:
    """The largest size with the aspect ratio of ``width x height`` and at most ``budget`` pixels."""
    if width * height <= budget:
        return int(width), int(height)
    s = math.sqrt(budget / (width * height))
    return max(1, math.floor(width * s)), max(1, math.floor(height * s))


def load_image(
    source,
    *,
    max_side: int = MAX_DECODED_SIDE,
    name: str | None = None,
    min_side: int = 1,
    max_output_pixels: int = MAX_OUTPUT_PIXELS,
) -> LoadedImage:
    """Decode ``source`` to RGB uint8 within the pixel budget (module docstring).

    ``source``: a path, encoded file bytes, a PIL image, an ``(H, W[, C])`` array or a
    :class:`LoadedImage`. ``name`` is how error sentences call it (default: the path); the
    demo names uploads by their file name only, so that server paths never reach a visitor.
    ``min_side``: refuse images smaller than this on a side; the CLIs and the demo pass
    :data:`MIN_SIDE` (training data, centre-cropped and resized anyway, keeps 1).
    ``max_output_pixels``: the output budget. Raises UserError.
    """
    if isinstance(source, LoadedImage):
        return source
    budget = _Budget(max_side, min_side, max_output_pixels)
    if isinstance(source, np.ndarray):
        return _from_array(source, budget)
    if isinstance(source, Image.Image):
        return _decode(source, budget, name or "The image")
    if isinstance(source, (bytes, bytearray, memoryview)):
        label = name or "The image data"
        if len(source) == 0:
            raise UserError(f"{label} is empty ({ACCEPTED}).")
        return _open(io.BytesIO(bytes(source)), budget, label)
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
            raise UserError(f"{label} is empty ({ACCEPTED}).")
    except (OSError, ValueError, TypeError) as err:  # a name too long, NUL in the name
        raise UserError(f"{name or 'The image file name'} is not a usable file name.") from err
    return _open(path, budget, label)


@dataclass(frozen=True)
class _Budget:
    max_side: int
    min_side: int
    max_output_pixels: int


def _open(fp, budget: _Budget, label: str) -> LoadedImage:
    try:
        with warnings.catch_warnings():  # also when a caller (pytest) reset the module-level filters
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            warnings.filterwarnings("ignore", module=r"PIL\.")
            with Image.open(fp) as img:
                return _decode(img, budget, label)
    except UserError:
        raise
    except Image.DecompressionBombError as err:  # Pillow's own guard, at open: far past our limits
        found = re.search(r"\((\d+) pixels\)", str(err))
        size = f"{int(found.group(1)) / 1e6:,.0f} Mpx" if found else "far more pixels than accepted"
        raise UserError(f"{label} has {size}, too many to decode ({ACCEPTED}).") from err
    except UnidentifiedImageError as err:
        raise UserError(f"{label} is not an image ({ACCEPTED}).") from err
    except (OSError, SyntaxError, ValueError, TypeError, KeyError, IndexError, EOFError, MemoryError) as err:
        raise UserError(
            f"{label} is damaged or truncated and could not be decoded: {_short(err)} ({ACCEPTED})."
        ) from err


def _decode(img: Image.Image, budget: _Budget, name: str) -> LoadedImage:
    """Header checks, reduced decode, EXIF rotation, RGB conversion; ``img``'s pixels are not modified
    (a JPEG file image is told to decode at reduced scale: ``draft``)."""
    w0, h0 = img.size
    if w0 == 0 or h0 == 0:
        raise UserError(f"{name} has no pixels ({ACCEPTED}).")
    jpeg = isinstance(img, JpegImageFile)  # also MPO (camera JPEGs with a preview)
    limit = MAX_JPEG_PIXELS if jpeg else MAX_PIXELS
    if w0 * h0 > limit:
        raise UserError(
            f"{name} is {w0}x{h0} pixels ({w0 * h0 / 1e6:,.1f} Mpx), too many to decode; downscale it first ({ACCEPTED})."
        )
    if min(w0, h0) < budget.min_side:
        raise UserError(f"{name} is {w0}x{h0} pixels; images need at least {budget.min_side} pixels on each side.")
    out_w, out_h = output_size(w0, h0, budget.max_output_pixels)  # rotation keeps the pixel count
    side = max(1, min(budget.max_side, max(out_w, out_h)))  # the working copy's long side
    if jpeg:
        _draft(img, side)
    img.load()
    img = _reduce(img, max(img.size) // side)
    before = img.size
    img = ImageOps.exif_transpose(img)
    swapped = img.size != before and img.size == before[::-1]
    # Pillow already shows some TIFFs transposed at open; the true size is whatever exif_transpose left
    true_size = (h0, w0) if swapped else (w0, h0)
    rgb = _to_rgb(img)
    if max(rgb.size) > side:
        rgb = rgb.copy()
        rgb.thumbnail((side, side), Image.Resampling.LANCZOS)
    pixels = np.asarray(rgb, dtype=np.uint8).copy()
    size = output_size(*true_size, budget.max_output_pixels)
    return LoadedImage(pixels, size, true_size if size != true_size else None)


def _draft(img: Image.Image, side: int) -> None:
    """Decode a JPEG at the largest DCT reduction (1, 2, 4 or 8) whose long side is still >= ``side``."""
    w, h = img.size
    scale = 1
    while scale < 8 and max(w, h) // (scale * 2) >= side:
        scale *= 2
    if scale > 1:
        # Pillow picks the reduction from the requested size per axis: ask for exactly 1/scale
        img.draft("RGB" if img.mode in ("RGB", "YCbCr") else img.mode, (max(1, w // scale), max(1, h // scale)))


def _reduce(img: Image.Image, factor: int) -> Image.Image:
    """Box-reduce by an integer ``factor``, band by band (the long side ends near ``side``; thumbnail finishes).

    Modes ``reduce`` cannot average (1-bit, palette, 16-bit) are converted per band first, so
    the peak is the decoded image plus one band, whatever the mode.
    """
    if factor < 2:
        return img
    mode = img.mode
    work = {"1": "L", "P": "RGBA"}.get(mode, "I" if mode.startswith("I;16") else mode)
    w, h = img.size
    out = None
    rows = factor * max(1, _BAND_ROWS // factor)
    for y in range(0, h, rows):
        band = img.crop((0, y, w, min(h, y + rows)))
        if work != mode:
            band = band.convert(work)
        small = band.reduce(factor)
        if out is None:
            out = Image.new(small.mode, (-(-w // factor), -(-h // factor)))
            out.info = dict(img.info)  # as Image.reduce keeps it: exif_transpose reads the orientation there
        out.paste(small, (0, y // factor))
    return out


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
    except ValueError as err:  # a mode Pillow cannot convert to RGB directly
        raise UserError(f"Images in Pillow mode {excerpt(mode)} are not supported; save it as RGB PNG.") from err


def _from_array(arr: np.ndarray, budget: _Budget) -> LoadedImage:
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4) or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise UserError(f"An image array must be (H, W), (H, W, 3) or (H, W, 4); got shape {tuple(arr.shape)[:6]}.")
    if arr.shape[0] * arr.shape[1] > MAX_PIXELS:
        raise UserError(
            f"The image array has {arr.shape[1]}x{arr.shape[0]} pixels, over the {MAX_PIXELS // 1_000_000} Mpx "
            "limit; downscale it first."
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
    return _decode(Image.fromarray(np.ascontiguousarray(arr), mode), budget, "The image array")


def _short(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return excerpt(text[0], 80).strip("'") if text else type(err).__name__


#: PNGs larger than this are written by OpenCV with zlib level 1 and the "up" filter: a 40 Mpx photo in
#: ~0.8 s of CPU instead of ~1.8 s (Pillow, level 1, adaptive filters) or ~5 s (level 6), ~15 MB.
FAST_PNG_PIXELS = 4_000_000


def encode_png(array: np.ndarray, *, fast: bool | None = None) -> bytes:
    """``array`` ((H, W) uint8/uint16 or (H, W, 3) uint8 RGB) as PNG bytes, lossless.

    ``fast`` (default: more than :data:`FAST_PNG_PIXELS`): OpenCV, zlib level 1 and the "up"
    filter, ~10 % larger files for ~5x less CPU (a 2048 x 1366 photo: ~0.09 s against ~0.5 s);
    otherwise Pillow's defaults. A busy server asks for ``fast=True`` (elements/ui/png_output.py).
    """
    array = np.ascontiguousarray(array)
    if fast is None:
        fast = array.shape[0] * array.shape[1] > FAST_PNG_PIXELS
    if not fast:
        # uint16 arrays become Pillow's "I;16" by their dtype (passing the mode is deprecated in Pillow 12)
        buf = io.BytesIO()
        Image.fromarray(array).save(buf, format="PNG")
        return buf.getvalue()
    import cv2

    image = cv2.cvtColor(array, cv2.COLOR_RGB2BGR) if array.ndim == 3 else array
    flags = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_UP]
    ok, data = cv2.imencode(".png", image, flags)
    if not ok:
        raise OSError(f"OpenCV could not encode a {array.shape} {array.dtype} image as PNG")
    return data.tobytes()


def save_png(path, array: np.ndarray) -> None:
    """Write ``array`` (as :func:`encode_png` takes it) as PNG, atomically (temp file + rename).

    Lossless either way; past :data:`FAST_PNG_PIXELS` the encoder trades ~10 % of file size for
    speed (every output up to the 40 Mpx output budget is written whole).
    """
    from elements.atomic import atomic_write

    data = encode_png(array)
    atomic_write(path, lambda p: Path(p).write_bytes(data))
