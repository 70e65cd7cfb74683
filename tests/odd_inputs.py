"""Seeded generators of odd and hostile inputs: image files and edit-spec texts.

``odd_images(seed)`` yields ``(name, data: bytes, expect)`` for every class the reliability
campaign of issue 10 covered: formats x modes, EXIF orientations 1-8 per format, sizes from
1x1 to decompression bombs, truncation at many offsets, non-images. ``expect`` is ``"ok"``
(must decode), ``"refuse"`` (must raise UserError) or ``"any"`` (either, but nothing else).

``odd_specs(seed)`` yields ``(name, text)`` of hostile JSON: mutations of a valid spec (huge and
non-finite numbers, wrong types, deep nesting, long and NUL-bearing strings, unknown keys with
secrets, truncations, random bytes).

The fast suite runs a seeded sample (:func:`sample`); ``pytest -m slow tests/test_fuzz_*.py``
runs everything (docs/security.md).
"""

from __future__ import annotations

import io
import json
import random

import numpy as np
from PIL import Image

#: A secret planted in hostile specs; no error sentence may contain it whole.
SECRET = "SECRET-TOKEN-123-4f1c9a77e0b24d6b8c55"

FORMATS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp", "TIFF": "tif", "BMP": "bmp", "GIF": "gif"}
MODES = ["1", "L", "LA", "P", "RGB", "RGBA", "I;16", "I", "F", "CMYK"]
# which modes each format can store (Pillow's writers)
_WRITES = {
    "PNG": {"1", "L", "LA", "P", "RGB", "RGBA", "I;16", "I"},
    "JPEG": {"L", "RGB", "CMYK"},
    "WEBP": {"RGB", "RGBA"},
    "TIFF": {"1", "L", "LA", "P", "RGB", "RGBA", "I;16", "I", "F", "CMYK"},
    "BMP": {"1", "L", "P", "RGB"},
    "GIF": {"L", "P"},
}


def _picture(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """A smooth picture with a few blobs and some noise: ``(h, w, 3) uint8``."""
    y, x = np.mgrid[0:h, 0:w]
    out = np.stack([x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1), (x + y) * 127 // max(w + h - 2, 1)], -1)
    for _ in range(3):
        cx, cy, r = rng.integers(0, w), rng.integers(0, h), rng.integers(2, max(3, min(w, h) // 3))
        out[(x - cx) ** 2 + (y - cy) ** 2 < r * r] = rng.integers(0, 256, 3)
    return np.clip(out + rng.integers(-8, 9, out.shape), 0, 255).astype(np.uint8)


def _in_mode(rgb: np.ndarray, mode: str) -> Image.Image:
    im = Image.fromarray(rgb, "RGB")
    if mode in ("RGB", "L", "1", "P", "CMYK"):
        return im.convert(mode)
    if mode in ("RGBA", "LA"):
        out = im.convert(mode)
        out.putalpha(
            Image.fromarray(
                (
                    np.arange(rgb.shape[1])[None, :] * 255 // max(rgb.shape[1] - 1, 1) * np.ones((rgb.shape[0], 1))
                ).astype(np.uint8)
            )
        )
        return out
    grey = rgb.mean(axis=2)
    if mode == "I;16":
        return Image.fromarray((grey * 257).astype(np.uint16), "I;16")
    if mode == "I":
        return Image.fromarray((grey.astype(np.int64) * 8_000_000 - 1_000_000_000).astype(np.int32), "I")
    return Image.fromarray((grey * 4.0 - 100.0).astype(np.float32), "F")  # F: values -100..920


def _encode(im: Image.Image, fmt: str, **kw) -> bytes:
    b = io.BytesIO()
    im.save(b, fmt, **kw)
    return b.getvalue()


def _with_orientation(im: Image.Image, fmt: str, orientation: int) -> bytes:
    exif = im.getexif()
    exif[0x0112] = orientation
    return _encode(im, fmt, exif=exif.tobytes())


def _patch_png_size(data: bytes, w: int, h: int) -> bytes:
    """A PNG whose IHDR claims ``w x h`` (CRC fixed), with the original small image data."""
    import struct
    import zlib

    ihdr = bytearray(data[12:29])  # b"IHDR" + 13 bytes
    ihdr[4:12] = struct.pack(">II", w, h)
    return data[:12] + bytes(ihdr) + struct.pack(">I", zlib.crc32(bytes(ihdr))) + data[33:]


def _patch_jpeg_size(data: bytes, w: int, h: int) -> bytes:
    """A JPEG whose SOF0 frame header claims ``w x h`` (``h``, ``w`` <= 65535)."""
    import struct

    i = data.index(b"\xff\xc0")
    return data[: i + 5] + struct.pack(">HH", h, w) + data[i + 9 :]


def bomb_png() -> bytes:
    """The issue's 17 KB PNG of 12000 x 12000 1-bit pixels."""
    return _encode(Image.new("1", (12000, 12000)), "PNG", optimize=True)


def bomb_jpeg() -> bytes:
    """The issue's 1.3 KB JPEG whose header claims 12000 x 12000, its data cut off."""
    return _patch_jpeg_size(_encode(Image.fromarray(_picture(np.random.default_rng(0), 64, 64)), "JPEG"), 12000, 12000)[
        :1300
    ]


def sof_jpeg(w: int = 12000, h: int = 12000) -> bytes:
    """Issue 19's ~1.3 KB JPEG: a whole 64 x 64 image (EOI marker included) whose SOF0 header declares
    ``w x h``. Unlike :func:`bomb_jpeg` it is not cut off: libjpeg decodes it, the missing blocks grey."""
    return _patch_jpeg_size(_encode(Image.fromarray(_picture(np.random.default_rng(0), 64, 64)), "JPEG"), w, h)


def photo_jpeg(photo, megapixels: float = 40.0, quality: int = 90) -> bytes:
    """A real photo (a path, e.g. ``assets/rocket.jpg``) upscaled (bicubic) to about ``megapixels`` Mpx,
    at most that many, its aspect ratio kept, as JPEG bytes: a camera-sized file made from a photo."""
    with Image.open(photo) as im:
        rgb = im.convert("RGB")
    w, h = rgb.size
    s = (megapixels * 1e6 / (w * h)) ** 0.5
    big = rgb.resize((int(w * s), int(h * s)), Image.Resampling.BICUBIC)
    return _encode(big, "JPEG", quality=quality)


def bomb_png_40000() -> bytes:
    """Issue 22's PNG bomb: 40000 x 40000 1-bit pixels (1600 Mpx, 200 MB of zero bits) in ~0.9 MB.

    Written chunk by chunk (zlib level 1) because Pillow's own writer takes ~25 s for it; Pillow
    reads it as a valid PNG (the 400 x 400 version decodes)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    side = 40000
    rows = (b"\x00" + bytes(side // 8)) * 1000  # filter byte 0, then the row's bits
    z = zlib.compressobj(1)
    idat = b"".join(z.compress(rows) for _ in range(side // 1000)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)  # 1-bit greyscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def odd_images(seed: int = 0):
    """Every odd image input, in a fixed order for ``seed``: ``(name, bytes, expect)``."""
    rng = np.random.default_rng(seed)
    base = _picture(rng, 48, 32)
    # formats x modes
    for fmt, ext in FORMATS.items():
        for mode in MODES:
            if mode in _WRITES[fmt]:
                yield f"{mode}.{ext}".replace(";", ""), _encode(_in_mode(base, mode), fmt), "ok"
    # orientations 1-8 per format (expect: the decoded size is (32, 48) for 5-8, checked by the tests)
    for fmt in ("JPEG", "PNG", "WEBP", "TIFF"):
        for o in range(1, 9):
            yield f"orient{o}.{FORMATS[fmt]}", _with_orientation(Image.fromarray(base), fmt, o), "ok"
    # float images with NaN, negative or > 1 values; 32-bit integers over the whole range
    f = np.linspace(-5, 1020, 48 * 32, dtype=np.float32).reshape(32, 48)
    f[3, 3] = np.nan
    yield "float_nan.tif", _encode(Image.fromarray(f, "F"), "TIFF"), "ok"
    yield "float_neg.tif", _encode(Image.fromarray(-np.abs(f), "F"), "TIFF"), "ok"
    yield "float_inf.tif", _encode(Image.fromarray(np.full((32, 48), np.inf, np.float32), "F"), "TIFF"), "ok"
    yield (
        "int32_full.tif",
        _encode(Image.fromarray(rng.integers(-(2**31), 2**31 - 1, (32, 48)).astype(np.int32), "I"), "TIFF"),
        "ok",
    )
    # sizes: too small, thin, at the minimum, large-but-fine
    for w, h in [(1, 1), (4, 3), (15, 16), (1, 900), (900, 2)]:
        yield f"size{w}x{h}.png", _encode(Image.fromarray(_picture(rng, w, h)), "PNG"), "refuse"
    for w, h in [(16, 16), (16, 700), (3000, 20), (2100, 900)]:
        yield f"size{w}x{h}.png", _encode(Image.fromarray(_picture(rng, w, h)), "PNG"), "ok"
    # bombs: a 12000^2 1-bit PNG (17 KB) and a JPEG header claiming 12000^2 with its data cut off
    yield "bomb_1bit_12000.png", bomb_png(), "refuse"
    yield "bomb_1bit_40000.png", bomb_png_40000(), "refuse"
    yield "bomb_trunc_12000.jpg", bomb_jpeg(), "refuse"
    yield "bomb_header_7000.png", _patch_png_size(_encode(Image.new("RGB", (8, 8)), "PNG"), 7000, 7000), "refuse"
    yield "bomb_header_60000.jpg", _patch_jpeg_size(_encode(Image.new("RGB", (8, 8)), "JPEG"), 60000, 60000), "refuse"
    yield "big_jpeg_8192.jpg", _encode(Image.new("L", (8192, 8192), 128), "JPEG", quality=10), "ok"  # 1/8 scale
    yield "sof_12000.jpg", sof_jpeg(12000, 12000), "refuse"  # 144 Mpx declared: over the JPEG limit
    yield "sof_10000.jpg", sof_jpeg(10000, 10000), "ok"  # 100 Mpx declared: decoded at 1/8, used at 40 Mpx
    yield "sof_65000x1800.jpg", sof_jpeg(65000, 1800), "ok"  # thin: reduced along its long side
    # truncation at many offsets, in each format
    for fmt in ("PNG", "JPEG", "WEBP", "TIFF", "GIF", "BMP"):
        data = _encode(_in_mode(_picture(rng, 64, 48), "RGB" if fmt != "GIF" else "P"), fmt)
        for cut in sorted({1, 8, 16, 33, 100, len(data) // 3, len(data) // 2, len(data) - 10, len(data) - 1}):
            if 0 < cut < len(data):
                yield f"trunc{cut}.{FORMATS[fmt]}", data[:cut], "any"
        flipped = bytearray(data)
        for i in rng.integers(len(data) // 4, len(data), 12):
            flipped[i] ^= 0xFF
        yield f"corrupt.{FORMATS[fmt]}", bytes(flipped), "any"
    # compressed TIFFs, cut: libtiff decodes these, and prints its own complaints unless told not to
    for comp in ("tiff_lzw", "tiff_adobe_deflate", "jpeg"):
        data = _encode(Image.fromarray(_picture(rng, 64, 48)), "TIFF", compression=comp)
        short = comp.split("_")[-1]
        yield f"{short}tiff_cut.tif", data[: len(data) - 20], "any"
        yield f"{short}tiff_half.tif", data[: len(data) // 2], "any"
    # not images at all
    yield "empty.png", b"", "refuse"
    yield "text.png", b"hello, this is not an image\n" * 10, "refuse"
    yield "page.jpg", b"<!doctype html><html><body><img src=x onerror=alert(1)></body></html>", "refuse"
    yield "random.webp", rng.integers(0, 256, 4096, dtype=np.uint8).tobytes(), "refuse"
    yield "zip.png", b"PK\x03\x04" + bytes(200), "refuse"
    yield "svg.png", b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>', "refuse"


def _valid_spec() -> dict:
    return {
        "version": 1,
        "prompt": "a cat",
        "seed": 3,
        "edits": [
            {"op": "move", "elements": [1, 2], "dx": 10, "dy": -4},
            {"op": "scale", "points": [[100, 80]], "factor": 1.5},
            {"op": "delete", "rect": [0, 0, 200, 200]},
        ],
    }


_BIG = "1" + "0" * 400
_HUGE = "9" * 5000


def _paths(d, path=()):
    """Every (container, key) position of a JSON value."""
    if isinstance(d, dict):
        for k, v in d.items():
            yield path + (k,)
            yield from _paths(v, path + (k,))
    elif isinstance(d, list):
        for i, v in enumerate(d):
            yield path + (i,)
            yield from _paths(v, path + (i,))


def _set(d, path, value):
    d = json.loads(json.dumps(d))
    node = d
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value
    return d


def odd_specs(seed: int = 0):
    """Hostile spec texts: ``(name, text)``; every one must parse or be refused with one sentence."""
    rng = random.Random(seed)
    good = _valid_spec()
    yield "valid", json.dumps(good)
    replacements = [
        _BIG,
        "-" + _BIG,
        _HUGE,
        "1e400",
        "-1e400",
        "NaN",
        "Infinity",
        '"' + SECRET + '"',
        "true",
        "null",
        "[]",
        "{}",
        '"\\u0000"',
        '"' + "x" * 5000 + '"',
        "[[[[[[[[[[1]]]]]]]]]]",
        '{"' + SECRET + '": 1}',
        "-0",
        "1.5",
        "0",
        "-1",
        "4294967296",
    ]
    marker = "\u0001MARK\u0001"
    for path in _paths(good):
        for rep in replacements:
            text = json.dumps(_set(good, path, marker)).replace(json.dumps(marker), rep)
            yield f"{'.'.join(map(str, path))}={rep[:12]}", text
    for depth in (10, 100, 1000, 5000):
        yield f"deep{depth}", "[" * depth + "]" * depth
        yield f"deepobj{depth}", '{"a":' * depth + "1" + "}" * depth
        yield f"deep_in_edit{depth}", json.dumps({"version": 1, "edits": []})[:-2] + "[" * depth + "]" * depth + "]}"
    for key in ("api_key", SECRET, "a" * 300, "\u0000", "../../etc/passwd"):
        yield f"key:{key[:10]}", json.dumps({**good, key: "x"})
    yield "version_secret", json.dumps({"version": SECRET, "edits": []})
    yield "op_secret", json.dumps({"version": 1, "edits": [{"op": SECRET, "elements": [1]}]})
    for src in ("x" * 5000, "a\u0000b", "~/.ssh/id_rsa", "/etc/passwd", "", "\n"):
        yield (
            f"compose:{src[:8]!r}",
            json.dumps({"version": 1, "edits": [{"op": "compose", "source": src, "elements": [1], "at": [5, 5]}]}),
        )
    for text in (
        "",
        " ",
        "~/spec.json",
        "/etc/passwd",
        "spec.json",
        "{",
        "[",
        "{}",
        "[]",
        "null",
        "\u0000",
        '{"version": 1,}',
        '{"version": 1, "edits": [], "version": 2}',
        "\ufeff{}",
    ):
        yield f"text:{text[:10]!r}", text
    full = json.dumps(good)
    for cut in range(1, len(full), max(1, len(full) // 25)):
        yield f"trunc{cut}", full[:cut]
    for i in range(60):
        chars = list(full)
        for _ in range(rng.randint(1, 6)):
            pos = rng.randrange(len(chars))
            op = rng.choice(["del", "dup", "rand"])
            if op == "del":
                del chars[pos]
            elif op == "dup":
                chars.insert(pos, chars[pos])
            else:
                chars[pos] = rng.choice('{}[]",:0123456789-eE.tfn \\x\u0000\u00e9')
        yield f"mut{i}", "".join(chars)
    yield "many_edits", json.dumps({"version": 1, "edits": [{"op": "delete", "elements": [1]}] * 10001})


def sample(items, k: int, seed: int = 0) -> list:
    """A seeded sample of ``k`` items (all if fewer), keeping their order."""
    items = list(items)
    if len(items) <= k:
        return items
    keep = sorted(random.Random(seed).sample(range(len(items)), k))
    return [items[i] for i in keep]
