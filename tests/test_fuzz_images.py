"""Odd and hostile image files (tests/odd_inputs.py): each decodes or is refused with one sentence.

The fast suite runs a seeded sample; ``python -m pytest -m slow tests/test_fuzz_images.py`` runs all.
"""

import functools
import io
import resource
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from odd_inputs import odd_images, photo_jpeg, sample, sof_jpeg
from PIL import Image, ImageFile
from PIL.JpegImagePlugin import JpegImageFile

from elements.errors import UserError
from elements.image_io import (
    MAX_DECODED_SIDE,
    MAX_JPEG_PIXELS,
    MAX_OUTPUT_PIXELS,
    MIN_SIDE,
    _draft,
    _reduce,
    load_image,
)


@functools.lru_cache(maxsize=1)
def _all():
    return list(odd_images(seed=0))


def check(name, data, expect):
    """Returns "ok" or "refused"; fails on any other exception, a warning, or a wrong size."""
    with warnings.catch_warnings(record=True) as caught:
        try:
            out = load_image(data, min_side=MIN_SIDE)  # as the CLIs and the demo call it
        except UserError as err:
            assert "\n" not in str(err) and len(str(err)) < 300, name
            assert expect != "ok", f"{name}: refused: {err}"
            result = "refused"
        else:
            assert expect != "refuse", f"{name}: decoded, should be refused"
            h, w, c = out.pixels.shape
            assert c == 3 and out.pixels.dtype == np.uint8 and max(h, w) <= MAX_DECODED_SIDE, name
            assert min(out.size) >= 1
            if name.startswith("orient"):
                o = int(name[6])
                assert out.size == ((32, 48) if o >= 5 else (48, 32)), (name, out.size)
                assert (w, h) == out.size
            result = "ok"
    assert not caught, f"{name}: warnings {[str(c.message) for c in caught]}"
    return result


def _run(items):
    counts = {"ok": 0, "refused": 0}
    for name, data, expect in items:
        counts[check(name, data, expect)] += 1
    return counts


def test_a_sample_of_odd_images_decodes_or_is_refused():
    items = sample(_all(), 60, seed=1)
    counts = _run(items)
    assert counts["ok"] > 10 and counts["refused"] > 5, counts


def test_orientation_and_bombs_are_always_in_the_sample():
    items = [it for it in _all() if it[0].startswith(("orient", "bomb", "float", "int32"))]
    peak0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    _run(items)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak0) / 1024
    assert grown_mb < 600, f"decoding the bombs raised peak RSS by {grown_mb:.0f} MB"


@pytest.mark.slow
def test_every_odd_image():
    counts = _run(_all())
    print(f"odd images: {len(_all())} tried, {counts['ok']} decoded, {counts['refused']} refused cleanly, 0 crashes")


# --- the pixel budget (issue 19, item 1) ------------------------------------------------------------
ROOT = Path(__file__).resolve().parents[1]


def test_the_1_3_kb_jpeg_declaring_12000_squared_is_refused_before_decoding(monkeypatch):
    data = sof_jpeg(12000, 12000)  # a whole 64x64 JPEG whose SOF header says 12000x12000
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # Pillow's, for our own size check
        assert 1200 < len(data) < 1400 and Image.open(io.BytesIO(data)).size == (12000, 12000)

    def no_decoding(self, *args, **kwargs):
        raise AssertionError("a pixel was decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    with pytest.raises(UserError) as err:
        load_image(data, min_side=MIN_SIDE)
    msg = str(err.value)
    assert msg.startswith("The image data is 12000x12000 pixels (144.0 Mpx), too many to decode"), msg
    assert f"JPEG up to {MAX_JPEG_PIXELS // 1_000_000} Mpx" in msg and "\n" not in msg


def test_a_jpeg_over_the_output_budget_is_decoded_reduced_and_says_so():
    from elements.partition import Partitioner
    from elements.types import elements_json

    calls = []
    draft = JpegImageFile.draft

    def spy(self, mode, size):
        calls.append(size)
        return draft(self, mode, size)

    data = sof_jpeg(10000, 8000)  # 80 Mpx declared: under the JPEG limit, over the output budget
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(JpegImageFile, "draft", spy)
        loaded = load_image(data, min_side=MIN_SIDE)
    assert calls == [(2500, 2000)]  # decoded at 1/4: the largest DCT reduction still 2048 px or more
    w, h = loaded.size
    assert loaded.reduced and loaded.original_size == (10000, 8000)
    assert w * h <= MAX_OUTPUT_PIXELS and w * h > 0.999 * MAX_OUTPUT_PIXELS and abs(w / h - 1.25) < 1e-3
    assert max(loaded.pixels.shape) <= MAX_DECODED_SIDE
    assert loaded.note("The input").startswith("The input is 10000x8000 pixels (80 Mpx), over the 40 Mpx output")
    el = Partitioner("grid")(loaded)
    assert (el.geometry.input_w, el.geometry.input_h) == (w, h) and el.meta["reduced_from"] == [10000, 8000]
    doc = elements_json(el)
    assert doc["image_size"] == [w, h] and doc["reduced_from"] == [10000, 8000]


def test_jpeg_draft_takes_the_largest_reduction_that_keeps_the_working_side():
    sizes = []
    for w, h, side in [(7742, 5165, 2048), (16400, 2000, 2048), (65000, 1800, 2048), (5000, 3000, 4096)]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(sof_jpeg(w, h))) as img:
                _draft(img, side)
                sizes.append(img.size)
    # 7742 / 2 = 3871 >= 2048 but 7742 / 4 = 1935 < 2048; a thin image is reduced along its long side
    assert sizes == [(3871, 2583), (2050, 250), (8125, 225), (5000, 3000)]


def test_a_real_40_mpx_photo_keeps_its_full_size():
    data = photo_jpeg(ROOT / "assets" / "rocket.jpg", 40)
    with Image.open(io.BytesIO(data)) as img:
        size = img.size
    assert 39.5e6 < size[0] * size[1] <= 40e6
    loaded = load_image(data, min_side=MIN_SIDE)
    assert loaded.size == size and not loaded.reduced and loaded.note() == ""
    assert max(loaded.pixels.shape) == MAX_DECODED_SIDE  # the working copy: the budget's long side
    ref = np.asarray(Image.open(ROOT / "assets" / "rocket.jpg").convert("RGB").resize(loaded.pixels.shape[1::-1]))
    assert np.abs(loaded.pixels.astype(int) - ref).mean() < 6  # the photo, not the grey of a broken decode


@pytest.mark.parametrize("mode", ["1", "L", "P", "RGB", "RGBA", "LA", "I;16", "I", "F"])
def test_band_by_band_reduction_equals_reducing_the_whole_image(mode):
    from odd_inputs import _in_mode, _picture

    img = _in_mode(_picture(np.random.default_rng(2), 1003, 777), mode)  # bands do not divide 777
    got = _reduce(img, 3)
    work = {"1": "L", "P": "RGBA"}.get(mode, "I" if mode == "I;16" else mode)
    want = img.convert(work).reduce(3)
    assert got.mode == want.mode and got.size == want.size == (335, 259)
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def _cli_lines(command: str, paths: list, tmp_path) -> dict:
    """Run ``python -m elements COMMAND`` on each file in one child process (fd 2 is what a shell shows, so
    libtiff's own prints count); returns ``{name: (exit status, stderr lines)}``."""
    spec = tmp_path / "spec.json"
    spec.write_text('{"version": 1, "edits": []}')
    driver = (
        "import os, sys\nfrom elements.cli import main\n"
        "for i, p in enumerate(sys.argv[2:]):\n"
        "    out = os.path.join(sys.argv[1], f'o{i}')\n"
        f"    args = {{'partition': [p, '--out', out], 'edit': [p, '--spec', {str(spec)!r}, '--out', out + '.png',"
        " '--decoder', 'pixel']}[" + repr(command) + "]\n"
        "    sys.stderr.flush(); os.write(2, f'@@ {os.path.basename(p)}\\n'.encode())\n"
        "    code = main([" + repr(command) + ", *args, '--backend', 'grid'])\n"
        "    sys.stderr.flush(); os.write(2, f'@@rc {code}\\n'.encode())\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", driver, str(tmp_path), *map(str, paths)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    results, name, lines = {}, None, []
    for line in proc.stderr.splitlines():
        if line.startswith("@@rc "):
            results[name] = (int(line[5:]), lines)
        elif line.startswith("@@ "):
            name, lines = line[3:], []
        else:
            lines.append(line)
    return results


def _broken_files(tmp_path, names=None) -> list:
    paths = []
    for name, data, expect in _all():
        if expect != "ok" and (names is None or name in names):
            paths.append(tmp_path / name)
            paths[-1].write_bytes(data)
    return paths


BROKEN_SAMPLE = (
    "trunc8.tif",
    "trunc16.tif",
    "corrupt.tif",
    "jpegtiff_cut.tif",
    "trunc100.png",
    "empty.png",
    "text.png",
    "sof_12000.jpg",
    "bomb_1bit_40000.png",
    "corrupt.jpg",
    "trunc33.gif",
)


@pytest.mark.parametrize("command", ["partition", "edit"])
def test_broken_files_are_one_stderr_line_and_exit_2(tmp_path, command):
    results = _cli_lines(command, _broken_files(tmp_path, BROKEN_SAMPLE), tmp_path)
    assert set(results) == set(BROKEN_SAMPLE)
    for name, (code, lines) in results.items():
        if code == 0:  # "any": some corruptions still decode; then nothing is printed on stderr
            assert lines == [], (name, lines)
        else:
            assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), (name, lines)


@pytest.mark.slow
@pytest.mark.parametrize("command", ["partition", "edit"])
def test_every_broken_file_is_one_stderr_line_and_exit_2(tmp_path, command):
    results = _cli_lines(command, _broken_files(tmp_path), tmp_path)
    bad = {n: r for n, r in results.items() if not (r == (0, []) or (r[0] == 2 and len(r[1]) == 1))}
    assert not bad, bad
    print(f"{command}: {len(results)} broken files, {sum(r[0] == 2 for r in results.values())} refused in one line")


@pytest.mark.slow
def test_the_cli_keeps_a_40_mpx_photo_at_full_size_and_says_when_it_reduces(tmp_path):
    """``partition`` and ``edit`` write 40 Mpx outputs for a 40 Mpx photo, and reduce (saying so) past it.
    Time and memory are bench/budget.py's figures; this checks what is written."""
    import json

    big = tmp_path / "photo40.jpg"
    big.write_bytes(photo_jpeg(ROOT / "assets" / "rocket.jpg", 40))
    over = tmp_path / "declared80.jpg"
    over.write_bytes(sof_jpeg(10000, 8000))
    spec = tmp_path / "spec.json"
    spec.write_text('{"version": 1, "edits": [{"op": "move", "points": [[3800, 2500]], "dx": 300, "dy": 0}]}')
    for path, reduced in ((big, False), (over, True)):
        with Image.open(path) as img:
            size = img.size
        out = tmp_path / f"{path.stem}-out"
        run = [sys.executable, "-m", "elements"]
        p = subprocess.run([*run, "partition", path, "--out", out, "--backend", "slic"], capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
        doc = json.loads((out / "elements.json").read_text())
        with Image.open(out / "labels.png") as lab, Image.open(out / "overlay.png") as ov:
            assert lab.size == ov.size == tuple(doc["image_size"])
        e = subprocess.run(
            [*run, "edit", path, "--spec", spec, "--out", tmp_path / f"{path.stem}.png", "--backend", "slic"],
            capture_output=True,
            text=True,
        )
        assert e.returncode == 0, e.stderr
        with Image.open(tmp_path / f"{path.stem}.png") as res:
            assert res.size == tuple(doc["image_size"])
        if reduced:
            assert doc["reduced_from"] == list(size) and doc["image_size"][0] * doc["image_size"][1] <= 40e6
            for proc in (p, e):
                assert "over the 40 Mpx output budget" in proc.stderr
        else:
            assert doc["image_size"] == list(size) and "reduced_from" not in doc
            assert "budget" not in p.stderr + e.stderr


@pytest.mark.parametrize(
    "shape, dtype", [((40, 60, 3), np.uint8), ((2100, 2000, 3), np.uint8), ((2000, 2100), np.uint16)]
)
def test_save_png_is_lossless_on_both_encoders(tmp_path, shape, dtype):
    from elements.image_io import FAST_PNG_PIXELS, save_png

    a = np.random.default_rng(0).integers(0, np.iinfo(dtype).max, shape, dtype=dtype)
    save_png(tmp_path / "a.png", a)
    with Image.open(tmp_path / "a.png") as im:
        assert im.mode == ("RGB" if a.ndim == 3 else "I;16")
        np.testing.assert_array_equal(np.asarray(im), a)
    assert (shape[0] * shape[1] > FAST_PNG_PIXELS) == (shape[0] > 1000)  # both encoders are exercised


def test_api_png_output_is_lossless_and_fast_encoded(tmp_path):
    """The API's output component writes arrays with encode_png's fast path; the file decodes to the array."""
    from elements.image_io import encode_png
    from elements.ui.png_output import PngImage

    a = np.random.default_rng(1).integers(0, 256, (70, 90, 3), dtype=np.uint8)
    data = PngImage(format="png").postprocess(a)
    assert Path(data.path).read_bytes() == encode_png(a, fast=True) != encode_png(a, fast=False)
    with Image.open(data.path) as im:
        np.testing.assert_array_equal(np.asarray(im.convert("RGB")), a)
    assert PngImage(format="png").postprocess(None) is None
