"""`python -m elements partition`: outputs, and odd or broken inputs."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from elements.cli import main
from elements.image_io import ACCEPTED


def _run(tmp_path, image_path, *extra):
    out = tmp_path / "out"
    code = main(["partition", str(image_path), "--out", str(out), "--backend", "grid", *extra])
    return code, out


def test_outputs_in_input_pixels(tmp_path, chelsea):
    src = tmp_path / "cat.png"
    Image.fromarray(chelsea).save(src)
    code, out = _run(tmp_path, src)
    assert code == 0
    doc = json.loads((out / "elements.json").read_text())
    assert doc["image_size"] == [451, 300] and doc["partition"]["backend"] == "grid"
    assert doc["num_elements"] == len(doc["elements"]) >= 192
    labels = np.asarray(Image.open(out / "labels.png"))
    assert labels.shape == (300, 451) and labels.dtype in (np.uint16, np.int32)
    ids = set(np.unique(labels).tolist()) - {0}
    assert ids == {e["id"] + 1 for e in doc["elements"]}
    # an element's centroid in elements.json lies on that element's pixels in labels.png
    e = doc["elements"][100]
    x, y = (int(v) for v in e["centroid"])
    assert labels[y, x] == e["id"] + 1
    assert Image.open(out / "overlay.png").size == (451, 300)
    assert (out / "elements.safetensors").exists() and (out / "elements_meta.json").exists()


def _exif_rotated(path, arr):
    img = Image.fromarray(arr)
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    img.save(path, exif=exif)


@pytest.mark.parametrize("kind", ["rgba", "palette", "grey", "grey16", "exif", "cmyk", "large"])
def test_odd_inputs(tmp_path, kind, astronaut):
    small = astronaut[::2, ::2]  # 256x256
    path = tmp_path / f"img_{kind}.png"
    expect = (256, 256)
    if kind == "rgba":
        Image.fromarray(np.dstack([small, np.full(small.shape[:2], 128, np.uint8)])).save(path)
    elif kind == "palette":
        Image.fromarray(small).convert("P", palette=Image.Palette.ADAPTIVE).save(path)
    elif kind == "grey":
        Image.fromarray(small).convert("L").save(path)
    elif kind == "grey16":
        Image.fromarray((small[..., 0].astype(np.uint16) * 257), mode="I;16").save(path)
    elif kind == "exif":
        path = tmp_path / "rot.jpg"
        _exif_rotated(path, small[:, :200])  # 200 wide, 256 tall stored; displayed 256 wide, 200 tall
        expect = (256, 200)
    elif kind == "cmyk":
        path = tmp_path / "cmyk.jpg"
        Image.fromarray(small).convert("CMYK").save(path)
    elif kind == "large":
        path = tmp_path / "large.jpg"
        Image.fromarray(np.kron(small, np.ones((24, 24, 1), np.uint8))).save(path, quality=70)  # 6144²
        expect = (6144, 6144)
    code, out = _run(tmp_path, path)
    assert code == 0
    doc = json.loads((out / "elements.json").read_text())
    assert doc["image_size"] == list(expect)
    assert np.asarray(Image.open(out / "labels.png")).shape == expect[::-1]
    if kind == "grey16":  # 16-bit values are scaled, not clipped to white
        el_img = np.asarray(Image.open(out / "overlay.png"))
        assert el_img.mean() < 230


@pytest.mark.parametrize("content", [b"", b"not an image at all", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00"])
def test_unreadable_inputs_exit_2_with_one_line(tmp_path, capsys, content):
    bad = tmp_path / "bad.png"
    bad.write_bytes(content)
    code, out = _run(tmp_path, bad)
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    assert not out.exists()


def test_missing_file_and_bad_flag_exit_2(tmp_path, capsys):
    code, out = _run(tmp_path, tmp_path / "missing.jpg")
    assert code == 2 and "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["partition", "x.jpg", "--out", str(tmp_path), "--num-elements", "many"])
    assert exc.value.code == 2


def test_real_process_exit_status(tmp_path):
    bad = tmp_path / "empty.jpg"
    bad.write_bytes(b"")
    proc = subprocess.run(
        [sys.executable, "-m", "elements", "partition", str(bad), "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"error: Image file '{bad}' is empty ({ACCEPTED})."]


def test_the_model_loads_while_the_image_decodes_and_its_failure_is_one_line(tmp_path, capsys, monkeypatch, chelsea):
    import threading

    import elements.image_io
    import elements.partition

    src = tmp_path / "cat.png"
    Image.fromarray(chelsea).save(src)
    building = threading.Event()
    real_init, real_load = elements.partition.Partitioner.__init__, elements.image_io.load_image
    seen = {}

    def slow_init(self, *args, **kwargs):
        building.set()
        seen["thread"] = threading.current_thread().name
        real_init(self, *args, **kwargs)

    def load_image(*args, **kwargs):
        seen["model_loading_during_decode"] = building.wait(10)  # the model thread started before the decode
        return real_load(*args, **kwargs)

    monkeypatch.setattr(elements.partition.Partitioner, "__init__", slow_init)
    monkeypatch.setattr(elements.image_io, "load_image", load_image)
    code, out = _run(tmp_path, src)
    assert code == 0 and (out / "elements.json").exists()
    assert seen == {"thread": "eie-load-partitioner", "model_loading_during_decode": True}

    # a model that cannot be had fails in its thread and reaches the user as one line, exit 2
    monkeypatch.setenv("EIE_SAM_CHECKPOINT", str(tmp_path / "missing.pth"))
    capsys.readouterr()
    code = main(["partition", str(src), "--out", str(tmp_path / "o2"), "--backend", "sam"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: ") and "\n" not in err and not (tmp_path / "o2").exists()


def test_a_tiny_image_gets_elements_of_the_minimum_area(tmp_path, chelsea):
    src = tmp_path / "tiny.png"
    Image.fromarray(chelsea).resize((64, 64)).save(src)
    code, out = _run(tmp_path, src)
    doc = json.loads((out / "elements.json").read_text())
    assert code == 0 and doc["num_elements"] == 16 and doc["partition"]["min_element_area"] == 256
    assert min(e["area"] for e in doc["elements"]) >= 200  # the grid's cells: 16 x 16 input pixels, give or take
    code, out = _run(tmp_path, src, "--min-element-area", "64")
    assert code == 0 and json.loads((out / "elements.json").read_text())["num_elements"] == 64
