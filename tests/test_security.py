"""Issue 10: every item of the reliability and security campaign, one test each (docs/security.md)."""

import io
import json
import subprocess
import sys
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
from odd_inputs import SECRET, bomb_jpeg, bomb_png
from PIL import Image
from scipy import ndimage

from elements.apply import apply_spec
from elements.errors import UserError, excerpt
from elements.image_io import MIN_SIDE, load_image
from elements.spec import load_spec, parse_spec

ROOT = Path(__file__).resolve().parents[1]
ASTRONAUT = ROOT / "assets" / "astronaut.jpg"
GOOD = {"version": 1, "edits": [{"op": "delete", "elements": [1]}]}


@pytest.fixture(scope="module")
def el():
    from skimage import data

    from elements.partition import Partitioner

    return Partitioner("grid", num_elements=64)(data.chelsea())


# --- the API never reads server files ------------------------------------------------------------
def test_spec_text_is_never_a_path(tmp_path, monkeypatch):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(GOOD))
    monkeypatch.setenv("HOME", str(tmp_path))
    messages = set()
    for text in (str(spec), str(tmp_path / "missing.json"), "~/spec.json", "~/missing.json", "spec.json"):
        with pytest.raises(UserError) as err:
            parse_spec(text)
        messages.add(str(err.value))
    assert len(messages) == 1, messages  # whether a file exists is never revealed
    assert "file names are not accepted" in messages.pop()


def test_load_spec_does_not_expand_the_home_folder(tmp_path, monkeypatch):
    (tmp_path / "spec.json").write_text(json.dumps(GOOD))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(ROOT)
    with pytest.raises(UserError, match="does not exist"):
        load_spec("~/spec.json")


def test_errors_do_not_echo_planted_values():
    for text in (
        json.dumps({"version": SECRET, "edits": []}),
        json.dumps({"version": 1, "edits": [{"op": SECRET, "elements": [1]}]}),
        json.dumps({"version": 1, "edits": [{"op": "move", "elements": [1], "dx": SECRET, "dy": 0}]}),
        json.dumps({"version": 1, "edits": [], SECRET: 1}),
    ):
        with pytest.raises(UserError) as err:
            parse_spec(text)
        assert SECRET not in str(err.value) and len(str(err.value)) < 200, str(err.value)


def test_excerpt_is_short_and_sanitised():
    assert excerpt("a\x00b<script>" + "x" * 100) == "'a?b?script?xxxxxxxxxxxx…'"
    assert excerpt(10**400) == "an integer of 401 digits" and excerpt(3) == "3"


def test_api_edit_takes_text_only_and_caps_operations(tmp_path):
    from elements.ui import api

    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(GOOD))
    with pytest.raises(gr.Error, match="file names are not accepted"):
        api.api_edit(str(ASTRONAUT), str(spec), "", None)
    with pytest.raises(gr.Error, match="compose edits"):
        api.api_edit(
            str(ASTRONAUT),
            json.dumps(
                {"version": 1, "edits": [{"op": "compose", "source": str(ASTRONAUT), "elements": [1], "at": [5, 5]}]}
            ),
            "",
            None,
        )
    many = {"version": 1, "edits": [{"op": "delete", "elements": [1]}] * (api.MAX_API_EDITS + 1)}
    with pytest.raises(gr.Error, match=f"at most {api.MAX_API_EDITS} edits"):
        api.api_edit(str(ASTRONAUT), json.dumps(many), "", None)


def test_app_errors_never_show_the_upload_path(tmp_path):
    from elements.ui.session import load_for_app

    bad = tmp_path / "secret-server-folder" / "upload.png"
    bad.parent.mkdir()
    bad.write_bytes(b"not an image")
    with pytest.raises(UserError) as err:
        load_for_app(str(bad))
    assert "secret-server-folder" not in str(err.value) and str(err.value).startswith("upload.png is not an image")


# --- crashes that are now one sentence ------------------------------------------------------------
BIG = "1" + "0" * 400


@pytest.mark.parametrize(
    "edit",
    ids=["dx", "dy", "id", "point", "rect", "at", "5000-digit id"],
    argvalues=[
        f'{{"op": "move", "elements": [1], "dx": {BIG}, "dy": 0}}',
        f'{{"op": "move", "elements": [1], "dx": 0, "dy": -{BIG}}}',
        f'{{"op": "delete", "elements": [{BIG}]}}',
        f'{{"op": "delete", "points": [[{BIG}, 3]]}}',
        f'{{"op": "delete", "rect": [0, 0, {BIG}, 5]}}',
        f'{{"op": "compose", "source": "x.png", "elements": [1], "at": [{BIG}, 1]}}',
        '{"op": "delete", "elements": [%s]}' % ("9" * 5000),
    ],
)
def test_huge_integers_are_one_sentence(el, edit):
    with pytest.raises(UserError, match="at most|too long"):
        apply_spec(el, f'{{"version": 1, "edits": [{edit}]}}')


@pytest.mark.parametrize(
    "text",
    ids=["list", "object", "in-edits"],
    argvalues=[
        "[" * 1000 + "]" * 1000,
        '{"a":' * 1000 + "1" + "}" * 1000,
        '{"version": 1, "edits": [' + "[" * 1000 + "]" * 1000 + "]}",
    ],
)
def test_deep_json_is_one_sentence(el, text):
    with pytest.raises(UserError, match="nested"):
        apply_spec(el, text)


@pytest.mark.parametrize("source", ["x" * 5000, "a\x00b"], ids=["long", "nul"])
def test_odd_compose_sources_are_one_sentence(el, source):
    with pytest.raises(UserError, match="compose source"):
        apply_spec(el, {"version": 1, "edits": [{"op": "compose", "source": source, "elements": [1], "at": [5, 5]}]})


@pytest.mark.parametrize("source", [None, 5, b"", b"not an image", {}, {"path": "x"}, [1, 2]])
def test_load_image_of_odd_python_values_is_one_sentence(source):
    with pytest.raises(UserError):
        load_image(source)


def test_premultiplied_alpha_modes_load():
    for mode in ("La", "RGBa"):
        out = load_image(Image.new(mode, (40, 30)))
        assert out.size == (40, 30) and out.pixels.shape == (30, 40, 3)


def _cli(*args, cwd=None):
    """Run ``python -m elements ...``; returns (exit code, stderr lines)."""
    p = subprocess.run(
        [sys.executable, "-m", "elements", *map(str, args)],
        check=False,
        capture_output=True,
        text=True,
        cwd=cwd or ROOT,
        timeout=300,
    )
    return p.returncode, p.stderr.strip().splitlines()


@pytest.mark.parametrize("name, data", [("bomb.png", bomb_png()), ("bomb.jpg", bomb_jpeg())], ids=["png", "jpeg"])
def test_bombs_are_refused_in_one_line_without_gigabytes(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    code, err = _cli("partition", path, "--out", tmp_path / "out", "--backend", "grid")
    assert code == 2 and len(err) == 1 and err[0].startswith("error: "), err
    assert not (tmp_path / "out").exists()
    # peak of a fresh interpreter decoding only the bomb: VmHWM (ru_maxrss would carry the forking
    # pytest process's peak across exec)
    probe = (
        "from pathlib import Path; from elements.image_io import load_image\n"
        f"try: load_image({str(path)!r})\nexcept Exception as e: print(type(e).__name__)\n"
        "print(next(l.split()[1] for l in Path('/proc/self/status').read_text().splitlines() if l.startswith('VmHWM')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], check=False, capture_output=True, text=True, cwd=ROOT, timeout=120
    ).stdout.split()
    assert out[0] == "UserError" and int(out[1]) / 1024 < 400, out


def test_truncated_tiff_is_one_stderr_line(tmp_path):
    b = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 300, 3), dtype=np.uint8)).save(b, "TIFF")
    path = tmp_path / "cut.tif"
    path.write_bytes(b.getvalue()[: len(b.getvalue()) // 2])
    code, err = _cli("partition", path, "--out", tmp_path / "out", "--backend", "grid")
    assert code == 2 and len(err) == 1 and err[0].startswith("error: "), err


def test_float_tiff_with_nan_runs_without_warnings(tmp_path):
    f = np.linspace(0, 1020, 64 * 48, dtype=np.float32).reshape(48, 64)
    f[5, 5] = np.nan
    path = tmp_path / "f.tif"
    Image.fromarray(f, "F").save(path)
    code, err = _cli("partition", path, "--out", tmp_path / "out", "--backend", "slic")
    assert code == 0 and err == [], err


# --- wrong outputs ----------------------------------------------------------------------------------
@pytest.mark.parametrize("orientation", range(1, 9))
def test_tiff_orientation_is_applied_once(orientation):
    a = np.zeros((300, 200, 3), np.uint8)
    a[:50, :50] = 255
    results = {}
    for fmt in ("TIFF", "PNG"):
        im = Image.fromarray(a)
        exif = im.getexif()
        exif[0x0112] = orientation
        b = io.BytesIO()
        im.save(b, fmt, exif=exif.tobytes())
        results[fmt] = load_image(b.getvalue())
    want = (300, 200) if orientation >= 5 else (200, 300)
    assert results["TIFF"].size == results["PNG"].size == want
    np.testing.assert_array_equal(results["TIFF"].pixels, results["PNG"].pixels)


def test_float_and_int32_images_are_normalised_by_their_range():
    ramp = np.linspace(0, 1020, 100 * 200, dtype=np.float32).reshape(100, 200)
    for arr, mode in ((ramp, "F"), (-ramp, "F"), ((ramp * 2e6).astype(np.int32), "I")):
        b = io.BytesIO()
        Image.fromarray(arr, mode).save(b, "TIFF")
        px = load_image(b.getvalue()).pixels[..., 0].astype(int)
        assert 100 < px.mean() < 155 and (px == 255).mean() < 0.05 and (px == 0).mean() < 0.05
        assert px.min() == 0 and px.max() == 255  # the whole range is used, as a viewer shows it
    assert load_image(np.full((20, 20), 0.5, np.float32)).pixels.max() == 128  # [0, 1] floats scale by 255


@pytest.mark.parametrize("w, h", [(1, 1), (4, 3), (MIN_SIDE - 1, 40)])
def test_tiny_images_are_refused(w, h):
    with pytest.raises(UserError, match=f"at least {MIN_SIDE} pixels"):
        load_image(np.zeros((h, w, 3), np.uint8), min_side=MIN_SIDE)


def _stripes(n=1024):
    return np.tile((np.arange(n) % 2 * 255).astype(np.uint8), (n, 1))


@pytest.mark.parametrize(
    "name, image",
    [
        ("stripes", _stripes()),
        ("noise", np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8)),
        (
            "1-bit",
            np.asarray(
                Image.fromarray(np.random.default_rng(1).integers(0, 256, (120, 160), dtype=np.uint8))
                .convert("1")
                .convert("L")
            ),
        ),
        ("flat", np.full((200, 300, 3), 127, np.uint8)),
    ],
)
def test_slic_element_count_is_guaranteed(name, image):
    from elements.partition import Partitioner

    part = Partitioner("slic", num_elements=256)
    el = part(image)
    want = part.count_for(el.geometry)  # 256, fewer on a small image (75 for the 160 x 120 one)
    assert 0.75 * want <= el.num_elements <= want, (name, el.num_elements, want)
    mean = el.geometry.content_mask().sum() / want
    assert el.areas.max() <= 4 * mean, (name, el.areas.max() / mean)


@pytest.mark.parametrize(
    "crop", [(slice(None), slice(None)), (slice(0, 40), slice(0, 70)), (slice(0, 16), slice(0, 20))]
)
def test_labels_png_elements_are_connected_and_agree_with_elements_json(tmp_path, crop):
    from skimage import data

    path = tmp_path / "in.png"
    Image.fromarray(data.chelsea()[crop]).save(path)
    code, err = _cli("partition", path, "--out", tmp_path / "out", "--backend", "slic")
    assert code == 0, err
    lab = np.asarray(Image.open(tmp_path / "out" / "labels.png")).astype(np.int64) - 1
    doc = json.loads((tmp_path / "out" / "elements.json").read_text())
    counts = np.bincount(lab[lab >= 0], minlength=doc["num_elements"])
    for rec in doc["elements"]:
        assert rec["pixels"] == counts[rec["id"]]
        if rec["pixels"]:
            assert ndimage.label(lab == rec["id"])[1] == 1, rec["id"]
    assert lab.max() < doc["num_elements"]


# --- structured errors (issue 11, item 5) ------------------------------------------------------------
def test_user_error_carries_the_edit_and_the_ui_shows_only_the_message(el):
    from elements.editor import EditorSession
    from elements.ui import handlers as h

    with pytest.raises(UserError) as err:
        apply_spec(el, {"version": 1, "edits": [GOOD["edits"][0], {"op": "move", "elements": [999], "dx": 1, "dy": 1}]})
    e = err.value
    assert (e.edit_index, e.op) == (2, "move") and e.message.startswith("Unknown element id 999")
    assert str(e) == f"Edit 2 (move): {e.message}"

    class Session:
        editor = EditorSession()

        def prune_selection(self):
            pass

    s = Session()
    s.editor.set_elements(el)
    for edit, text in [
        ({"op": "move", "elements": [999], "dx": 1, "dy": 1}, "Unknown element id 999"),
        ({"op": "move", "dx": 1, "dy": 1}, "Select elements with exactly one of"),
    ]:
        with pytest.raises(UserError) as err:
            h._apply(s, edit)
        assert str(err.value).startswith(text) and "Edit 1" not in str(err.value)


# --- the windowed collision rule equals the full-canvas one -------------------------------------------
def _collide_reference(el, ids):
    """The collision rule as first written: every layer rasterised over the whole canvas."""
    from elements.warp import label_lut, layers

    ids = np.asarray(ids, dtype=np.int64)
    mine = np.zeros(el.num_elements, dtype=bool)
    mine[ids] = True
    lays = layers(el)
    cover = np.zeros((el.size, el.size), dtype=bool)
    for layer in lays:
        sel = layer.members[mine[layer.members]]
        if sel.size:
            cover |= np.isin(layer.warped, el.source_label[sel])
    active = el.active.copy()
    for layer in lays:
        lut = label_lut(el, layer)
        w = layer.warped
        visible = np.bincount(w[w >= 0], minlength=lut.size)
        hit = np.bincount(w[(w >= 0) & cover], minlength=lut.size)
        for i in layer.members:
            if visible[el.source_label[i]] == 0 or (not mine[i] and hit[el.source_label[i]] > 0):
                active[i] = False
    return active


@pytest.mark.parametrize("seed", range(4))
def test_windowed_collision_rule_matches_the_full_canvas_rule(seed):
    from skimage import data

    from elements import edit
    from elements.partition import Partitioner

    rng = np.random.default_rng(seed)
    el = Partitioner("slic", num_elements=64)(data.astronaut()[::2, ::3])
    for _ in range(12):
        ids = rng.choice(np.flatnonzero(el.active), size=int(rng.integers(1, 4)), replace=False)
        if rng.random() < 0.6:
            moved = edit.move(el, ids, float(rng.integers(-60, 61)), float(rng.integers(-60, 61)), collide=False)
        else:
            moved = edit.scale(el, ids, float(rng.choice([0.3, 0.7, 1.4, 2.5])), collide=False)
        fast = edit.collide_with(moved, ids)
        np.testing.assert_array_equal(fast.active, _collide_reference(moved, ids))
        el = fast
        assert edit.coverage(el).max() <= 1


def test_api_edit_refuses_odd_seeds_and_decoders_in_one_short_sentence():
    from elements.ui import api

    empty = json.dumps({"version": 1, "edits": []})
    for decoder, seed, match in [
        ("pixel", "1" * 400, "seed must be an integer"),
        ("pixel", [1], "seed must be an integer"),
        ("x<script>" * 20, 0, "Unknown decoder"),
        (5, 0, "decoder name must be text"),
    ]:
        with pytest.raises(gr.Error, match=match) as err:
            api.api_edit(str(ASTRONAUT), empty, decoder, seed)
        assert "<script>" not in str(err.value) and len(str(err.value)) < 200


def test_data_url_uploads_are_not_decoded_by_gradio(tmp_path):
    import base64

    from gradio.data_classes import ImageData

    from elements.ui.session import load_for_app
    from elements.ui.upload import UploadImage

    comp = UploadImage(type="filepath", format="png")
    url = "data:image/png;base64," + base64.b64encode(bomb_png()).decode()
    path = comp.preprocess(ImageData(url=url, orig_name="bomb.png"))
    assert Path(path).read_bytes() == bomb_png()  # written as sent, not decoded and re-encoded
    with pytest.raises(UserError, match=r"^bomb.png is 12000x12000 pixels \(144.0 Mpx\), too many to decode"):
        load_for_app(path)


def test_the_cli_refuses_tiny_images_but_training_data_keeps_them(tmp_path):
    path = tmp_path / "tiny.png"
    Image.fromarray(np.zeros((3, 4, 3), np.uint8)).save(path)
    code, err = _cli("partition", path, "--out", tmp_path / "out", "--backend", "grid")
    assert code == 2 and len(err) == 1 and f"at least {MIN_SIDE} pixels" in err[0], err
    assert load_image(path).size == (4, 3)  # the Python API default (min_side=1), as training data reads it
