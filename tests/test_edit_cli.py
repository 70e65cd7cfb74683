"""``python -m elements edit`` on bundled photos: reconstruction, edits, reproducibility, clean failures."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from elements.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def photos(tmp_path_factory, astronaut, chelsea):
    d = tmp_path_factory.mktemp("photos")
    Image.fromarray(astronaut).save(d / "astronaut.png")
    Image.fromarray(chelsea).save(d / "chelsea.png")
    return d


def write_spec(path, edits, **top):
    path.write_text(json.dumps({"version": 1, "edits": edits, **top}))
    return path


def run_cli(*args):
    return main(["edit", *map(str, args)])


def test_empty_edit_list_reconstructs(photos, tmp_path, capsys):
    spec = write_spec(tmp_path / "s.json", [])
    out = tmp_path / "recon.png"
    assert run_cli(photos / "chelsea.png", "--spec", spec, "--out", out, "--backend", "grid") == 0
    printed = capsys.readouterr().out
    assert "decoder: pixel+inpaint" in printed and "regular grid" in printed and "reconstruction" in printed
    src = np.asarray(Image.open(photos / "chelsea.png")).astype(int)
    got = np.asarray(Image.open(out)).astype(int)
    assert got.shape == src.shape
    mse = ((got - src) ** 2).mean()
    # pixel decoders now copy the input at full resolution, so an empty edit list is exact (PSNR = inf)
    assert mse == 0 or 10 * np.log10(255**2 / mse) > 35


def test_edit_moves_content_and_is_reproducible(photos, tmp_path, capsys):
    spec = write_spec(tmp_path / "s.json", [{"op": "move", "rect": [170, 40, 250, 130], "dx": 60, "dy": 150}], seed=0)
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    assert (
        run_cli(
            photos / "astronaut.png",
            "--spec",
            spec,
            "--out",
            a,
            "--decoder",
            "pixel",
            "--backend",
            "grid",
            "--save-elements",
            tmp_path / "el",
        )
        == 0
    )
    assert "decoder: pixel: pixel editing" in capsys.readouterr().out
    # the same spec on the saved partition gives the identical image
    empty = write_spec(tmp_path / "e.json", [])
    assert (
        run_cli(
            photos / "astronaut.png", "--spec", empty, "--out", b, "--decoder", "pixel", "--elements", tmp_path / "el"
        )
        == 0
    )
    assert np.array_equal(np.asarray(Image.open(a)), np.asarray(Image.open(b)))
    img = np.asarray(Image.open(photos / "astronaut.png"))
    out = np.asarray(Image.open(a))
    assert not np.array_equal(out, img)
    c = tmp_path / "c.png"
    assert run_cli(photos / "astronaut.png", "--spec", spec, "--out", c, "--decoder", "pixel", "--backend", "grid") == 0
    assert np.array_equal(np.asarray(Image.open(a)), np.asarray(Image.open(c)))


@pytest.mark.parametrize(
    "case, message",
    [
        ("unknown_op", "unknown op 'twirl'"),
        ("unknown_id", "Unknown element id 5000"),
        ("outside", "lies outside the 451x300 image"),
        ("nan", "must be finite"),
        ("factor", "must be greater than 0"),
        ("bad_json", "is not valid JSON"),
        ("missing_image", "does not exist"),
        ("not_png", "must name a .png file"),
        ("light_offline", "stage-1"),
        ("steps_zero", "--steps must be an integer between 1 and 1000, got 0"),
        ("seed_negative", "--seed must be an integer between 0 and 4294967295, got -1"),
        ("guidance_huge", "--guidance must be a number between 0 and 100, got 1000.0"),
    ],
)
def test_bad_inputs_exit_2_with_one_line_and_no_output(photos, tmp_path, capsys, case, message):
    spec = tmp_path / "s.json"
    image, extra, out = photos / "chelsea.png", [], tmp_path / "out.png"
    edits = {
        "unknown_op": [{"op": "twirl", "elements": [1]}],
        "unknown_id": [{"op": "delete", "elements": [5000]}],
        "outside": [{"op": "delete", "points": [[460, 10]]}],
        "factor": [{"op": "scale", "elements": [1], "factor": 0}],
    }.get(case, [])
    write_spec(spec, edits)
    if case == "nan":
        spec.write_text('{"version": 1, "edits": [{"op": "move", "elements": [1], "dx": NaN, "dy": 0}]}')
    if case == "bad_json":
        spec.write_text("{version: 1")
    if case == "missing_image":
        image = tmp_path / "nope.jpg"
    if case == "not_png":
        out = tmp_path / "out.jpg"
    if case == "light_offline":
        extra = ["--decoder", "light"]
    extra += {
        "steps_zero": ["--steps", "0"],
        "seed_negative": ["--seed", "-1"],
        "guidance_huge": ["--guidance", "1e3"],
    }.get(case, [])
    assert run_cli(image, "--spec", spec, "--out", out, "--backend", "grid", *extra) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and message in err[-1]
    assert len([line for line in err if line.startswith("error")]) == 1 and "Traceback" not in "\n".join(err)
    assert not out.exists() and not list(tmp_path.glob("*.png")) and not list(tmp_path.glob(".*tmp"))


def test_module_entry_point_on_a_bundled_photo(photos, tmp_path):
    spec = write_spec(
        tmp_path / "s.json",
        [{"op": "delete", "points": [[220, 90]]}, {"op": "scale", "rect": [150, 60, 330, 230], "factor": 1.3}],
    )
    out = tmp_path / "out.png"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "elements",
            "edit",
            str(photos / "chelsea.png"),
            "--spec",
            str(spec),
            "--out",
            str(out),
            "--backend",
            "slic",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)},
    )
    assert r.returncode == 0, r.stderr
    assert "partition:" in r.stdout and "pixel-space SLIC" in r.stdout and "decoder: pixel+inpaint" in r.stdout
    assert np.asarray(Image.open(out)).shape == (300, 451, 3)
    bad = subprocess.run(
        [sys.executable, "-m", "elements", "edit", str(photos / "chelsea.png"), "--spec", str(spec)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
    )
    assert bad.returncode == 2 and "--out" in bad.stderr
