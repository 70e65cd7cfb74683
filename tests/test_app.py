"""The demo's handlers, called directly (no server): selection, edits, compose, generate, sessions, errors."""

import importlib.util
import json
import threading
from pathlib import Path

import gradio as gr
import numpy as np
import pytest

from elements.ui import api, backends
from elements.ui import generate as gen
from elements.ui import handlers as h
from elements.ui.session import APP_MAX_SIDE, delete_session
from elements.visualize import EDITED, SELECTED

ROOT = Path(__file__).resolve().parents[1]
ASTRONAUT = str(ROOT / "assets" / "astronaut.jpg")
COFFEE = str(ROOT / "assets" / "coffee.jpg")
CHELSEA = str(ROOT / "assets" / "chelsea.jpg")


def load_app():
    spec = importlib.util.spec_from_file_location("eie_app", ROOT / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def click(x, y):
    return gr.SelectData(None, {"index": [x, y], "value": None})


def inside(session, k):
    """An input pixel shown as element ``k`` (the middle one of its current footprint)."""
    v = session.view()
    ys, xs = np.nonzero(v.elements.geometry.labels_to_input(v.owner) == k)
    m = len(xs) // 2
    return int(xs[m]), int(ys[m])


def biggest(session, skip=()):
    v = session.view()
    ids, counts = np.unique(v.owner[v.owner >= 0], return_counts=True)
    order = [int(i) for i in ids[np.argsort(-counts)] if int(i) not in skip]
    return order[0]


def has_colour(img, colour, tol=30):
    return bool((np.abs(img.astype(int) - np.array(colour)).max(axis=2) < tol).any())


@pytest.fixture(scope="module", autouse=True)
def offline_backends():
    backends._reset_for_tests()
    yield
    backends._reset_for_tests()


@pytest.fixture(scope="module")
def astro():
    """A session on the astronaut photo (partitioned once per module; tests copy its editor state via undo/reset)."""
    session, overlay, text, gallery = h.on_image(None, ASTRONAUT)
    return session, overlay


@pytest.fixture
def fresh(astro):
    session, overlay = astro
    with session.lock:
        session.editor.reset()
        session.selection = ()
    return session, h._shown(session)[1]


def test_demo_builds_without_launch():
    app = load_app()
    demo = app.build_demo()
    assert isinstance(demo, gr.Blocks)
    public = {fn.api_name for fn in demo.fns.values() if fn.api_visibility == "public"}
    assert public == {"partition", "edit"}
    kw = app.launch_kwargs()
    assert kw["server_name"] == "127.0.0.1" and kw["share"] is False
    assert kw["allowed_paths"] == [str(ROOT / "assets")] and kw["max_file_size"]
    modes = [b for b in demo.blocks.values() if isinstance(b, gr.Radio)][0]
    assert "object" not in [c[1] for c in modes.choices], "object mode must be off without SAM"
    assert "SLIC partition" in backends.banner() and "not" in backends.banner()


def test_upload_partitions_once_and_keeps_aspect(astro):
    session, overlay = astro
    assert overlay.shape == (512, 512, 3)
    assert session.elements.num_elements > 100
    s2, ov2, text, _ = h.on_image(None, COFFEE)
    assert ov2.shape == (400, 600, 3)  # non-square: input size, not cropped
    assert f"{int(s2.elements.active.sum())} elements" in text


def test_click_selects_and_deselects(fresh):
    session, before = fresh
    k = biggest(session)
    x, y = inside(session, k)
    session, after, text = h.on_click(session, "select", 1.0, click(x, y))
    assert session.selection == (k,)
    assert "1 selected" in text
    changed = np.argwhere((after != before).any(axis=2))
    cx, cy = session.view().dots[k]
    assert len(changed) and np.abs(changed[:, ::-1] - [cx, cy]).max() <= 5  # only k's dot changed
    assert has_colour(after, SELECTED) and not has_colour(before, SELECTED)
    k2 = biggest(session, skip={k})
    session, both, _ = h.on_click(session, "select", 1.0, click(*inside(session, k2)))
    assert session.selection == tuple(sorted((k, k2)))
    session, back, _ = h.on_click(session, "select", 1.0, click(*inside(session, k2)))
    session, back, _ = h.on_click(session, "select", 1.0, click(x, y))
    assert session.selection == () and np.array_equal(back, before)


def test_click_on_padding_is_an_error():
    session, *_ = h.on_image(None, COFFEE)  # 600x400: no padding inside the image, so click outside it
    with pytest.raises(gr.Error, match="No element"):
        h.on_click(session, "select", 1.0, click(700, 10))


def test_move_by_click_target_then_undo_redo(fresh):
    session, before = fresh
    k = biggest(session)
    h.on_click(session, "select", 1.0, click(*inside(session, k)))
    session, moved, text = h.on_click(session, "move", 1.0, click(400, 120))
    el = session.elements
    cx, cy = el.geometry.norm_to_input(el.centroids[k])
    assert abs(cx - 400) < 1 and abs(cy - 120) < 1
    assert session.selection == (k,) and "undo ✓" in text
    assert has_colour(moved, SELECTED)
    h.clear_selection(session)
    assert has_colour(h._shown(session)[1], EDITED)  # the moved element's dot is green
    session, undone, _ = h.undo(session)
    assert not session.elements.edited.any() and np.array_equal(undone, before)
    session, redone, _ = h.redo(session)
    assert session.elements.edited[k]


def test_buttons_move_scale_delete_reset(fresh):
    session, before = fresh
    k = biggest(session)
    with pytest.raises(gr.Error, match="selection is empty"):
        h.delete(session)
    h.on_click(session, "select", 1.0, click(*inside(session, k)))
    c0 = session.elements.geometry.norm_to_input(session.elements.centroids[k])
    h.move_by(session, 30, -20)
    c1 = session.elements.geometry.norm_to_input(session.elements.centroids[k])
    np.testing.assert_allclose(c1 - c0, [30, -20], atol=1e-2)
    s0 = session.elements.sizes[k].copy()
    h.scale(session, 1.5)
    np.testing.assert_allclose(session.elements.sizes[k], s0 * 1.5, rtol=1e-5)
    with pytest.raises(gr.Error, match="The scale edit has factor 0.0; a scale factor must be greater than 0"):
        h.scale(session, 0.0)
    session, img, text = h.delete(session)
    assert not session.elements.active[k] and session.selection == ()
    spec = gen.export_spec(session)
    assert [e["op"] for e in spec.edits] == ["move", "scale", "delete"]
    session, img, _ = h.reset(session)
    assert np.array_equal(img, before)


def test_compose_places_selected_elements(fresh, tmp_path):
    session, _ = fresh
    session, other_overlay, text = h.on_other_image(session, CHELSEA)
    assert other_overlay.shape == (300, 451, 3)
    with pytest.raises(gr.Error, match="click the elements to paste"):
        h.on_click(session, "place", 1.0, click(200, 200))
    other = session.other
    own = other.current_view().owner
    k = int(np.bincount(own[own >= 0]).argmax())
    ys, xs = np.nonzero(other.elements.geometry.labels_to_input(own) == k)
    session, picked, text = h.on_other_click(session, click(int(xs[len(xs) // 2]), int(ys[len(ys) // 2])))
    assert session.other.selection == (k,) and has_colour(picked, SELECTED)
    n0 = session.elements.num_elements
    session, img, _ = h.on_click(session, "place", 1.0, click(256, 300))
    el = session.elements
    assert el.num_elements == n0 + 1 and session.selection == (n0,)
    assert el.source_index[n0] == 1 and len(el.sources) == 2
    spec = gen.export_spec(session)
    assert spec.edits[-1]["source"] == "chelsea.jpg"


def test_generate_downloads_and_replays_through_the_edit_api(fresh):
    session, _ = fresh
    k = biggest(session)
    h.on_click(session, "select", 1.0, click(*inside(session, k)))
    h.move_by(session, 40, 0)
    session, gallery, result, spec_path, text = gen.generate(session, "pixel+inpaint", "a photo", 7, 50, 3.0, 2)
    assert len(gallery) == 2  # PatchMatch is seeded: each seed gives its own fill (docs/cpu-editing.md)
    image = gallery[0][0]
    assert image.shape == (512, 512, 3) and image.dtype == np.uint8
    assert Path(result).is_file() and Path(spec_path).is_file()
    spec = json.loads(Path(spec_path).read_text())
    assert spec["decoder"] == "pixel+inpaint" and spec["seed"] == 7 and spec["prompt"] == "a photo"
    replay = api.api_edit(ASTRONAUT, Path(spec_path).read_text(), "", None)
    assert np.array_equal(replay, image)  # the UI and the API run the same pipeline
    session, path = gen.pick_candidate(session, gr.SelectData(None, {"index": 0, "value": None}))
    np.testing.assert_array_equal(gen.use_as_input(session), image)
    with pytest.raises(gr.Error, match="between 0"):
        gen.generate(session, "pixel+inpaint", "", -1, 50, 3.0, 1)
    with pytest.raises(gr.Error, match="cannot run here"):
        gen.generate(session, "diffusion", "", 0, 50, 3.0, 1)


def test_errors_are_sentences(tmp_path):
    bad = tmp_path / "not_an_image.png"
    bad.write_text("hello")
    with pytest.raises(gr.Error, match="not an image file"):
        h.on_image(None, str(bad))
    for fn in (h.clear_selection, h.undo, h.delete):
        with pytest.raises(gr.Error, match="Upload an image"):
            fn(None)
    with pytest.raises(gr.Error, match="compose"):
        api.api_edit(ASTRONAUT, json.dumps({"version": 1, "edits": [
            {"op": "compose", "source": "/etc/passwd", "elements": [0], "at": [1, 1]}]}))
    with pytest.raises(gr.Error, match="Unknown element id"):
        api.api_edit(ASTRONAUT, json.dumps({"version": 1, "edits": [{"op": "delete", "elements": [99999]}]}))


def test_upload_component_turns_decode_errors_into_a_sentence(tmp_path):
    from gradio.data_classes import FileData

    from elements.ui.upload import UploadImage

    bad = tmp_path / "photo.png"
    bad.write_bytes(b"not a png at all")
    comp = UploadImage(type="filepath", format="png")
    assert comp.get_block_name() == "image"
    with pytest.raises(gr.Error, match="photo.png is not an image file"):
        comp.preprocess(FileData(path=str(bad), orig_name="photo.png"))


def test_huge_image_is_downscaled_and_said(tmp_path):
    from PIL import Image

    big = tmp_path / "big.png"
    Image.fromarray(np.zeros((1500, 3000, 3), np.uint8) + 90).save(big)
    session, overlay, text, _ = h.on_image(None, str(big))
    assert overlay.shape == (APP_MAX_SIDE // 2, APP_MAX_SIDE, 3)
    assert "3000×1500" in text and "downscaled" in text


def test_two_sessions_keep_separate_state():
    a, ov_a, *_ = h.on_image(None, ASTRONAUT)
    b, ov_b, *_ = h.on_image(None, COFFEE)
    ka, kb = biggest(a), biggest(b)

    def work(session, k, dx):
        h.on_click(session, "select", 1.0, click(*inside(session, k)))
        h.move_by(session, dx, 0)

    threads = [threading.Thread(target=work, args=(a, ka, 25)), threading.Thread(target=work, args=(b, kb, -25))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert a.selection == (ka,) and b.selection == (kb,)
    assert a.elements.geometry.input_w == 512 and b.elements.geometry.input_w == 600
    assert gen.export_spec(a).edits[0]["dx"] == 25 and gen.export_spec(b).edits[0]["dx"] == -25
    h.undo(a)
    assert not a.elements.edited.any() and b.elements.edited[kb]
    a.workdir.mkdir(exist_ok=True)
    folder = a.workdir
    delete_session(a)
    assert not folder.exists() and b.workdir.exists()


def test_object_mode_selects_elements_inside_the_sam_mask(tiny_sam, monkeypatch):
    """Object mode restores *this* session's SAM embedding, prompts at the click, keeps elements >= 50 % inside.

    A random tiny SAM gives speckle masks, so SAM's prompt call is replaced by a disc around the
    click that also records which image embedding was current when it ran.
    """
    from elements.edit import footprint
    from elements.partition import Partitioner
    from elements.partition.sam import SamAffinity

    part = Partitioner("sam", sam_model=tiny_sam, num_elements=64)
    monkeypatch.setattr(backends, "_partitioner", part)
    assert backends.object_mode_status()[0]
    session, *_ = h.on_image(None, ASTRONAUT)
    h.on_image(None, COFFEE)  # another tab: its embedding is now SAM's current one
    seen = []

    def disc(self, points, size):
        seen.append(self._image_key)
        yy, xx = np.mgrid[:size, :size] + 0.5
        cx, cy = points[0] * size
        return (((xx - cx) ** 2 + (yy - cy) ** 2) < 80 ** 2)[None].astype(np.float32)

    monkeypatch.setattr(SamAffinity, "__call__", disc)
    x, y = 256.0, 200.0
    session, img, _ = h.on_click(session, "object", 1.0, click(x, y))
    assert seen == [session.sam_embedding[0]]  # the astronaut's embedding, not the coffee's
    el = session.elements
    mask = disc(part.affinity, el.geometry.input_to_norm([x, y])[None], 512)[0] > 0.5
    expect = tuple(i for i in range(el.num_elements) if (m := footprint(el, i)).any() and (m & mask).sum() >= 0.5 * m.sum())
    assert session.selection == expect and len(expect) >= 3
    assert has_colour(img, SELECTED)


def test_gpu_decorator_uses_spaces_when_importable(monkeypatch):
    import sys
    import types

    assert backends.gpu()(len) is len  # no `spaces` package here: identity
    calls = []
    fake = types.ModuleType("spaces")
    fake.GPU = lambda duration: (calls.append(duration), lambda fn: ("wrapped", fn))[1]
    monkeypatch.setitem(sys.modules, "spaces", fake)
    assert backends.gpu(duration=90)(len) == ("wrapped", len) and calls == [90]


def test_bad_partition_setting_is_one_sentence(monkeypatch):
    monkeypatch.setenv("EIE_APP_PARTITION", "bogus")
    backends._reset_for_tests()
    try:
        with pytest.raises(gr.Error, match="EIE_APP_PARTITION must be"):
            h.on_image(None, ASTRONAUT)
    finally:
        monkeypatch.delenv("EIE_APP_PARTITION")
        backends._reset_for_tests()
