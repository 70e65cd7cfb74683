"""The demo's handlers, called directly (no server): canvas gestures, edits, compose, generate, sessions, errors."""

import importlib.util
import json
import threading
from pathlib import Path

import gradio as gr
import numpy as np
import pytest

from elements import edit
from elements.errors import UserError as UserErrorLike
from elements.ui import api, backends
from elements.ui import generate as gen
from elements.ui import handlers as h
from elements.ui.canvas import DISPLAY_MAX_SIDE, decode_labels, parse_gesture
from elements.ui.session import APP_MAX_SIDE, delete_session
from elements.ui.view import build_view, draw
from elements.visualize import SELECTED

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


SEQ = iter(range(1, 10**9))


def gesture(session, factor=1.0, **data):
    """One canvas event as the browser sends it (numbered like canvas.js does)."""
    data.setdefault("seq", next(SEQ))
    return h.on_gesture(session, factor, gr.EventData(None, data))


def runs_to_labels(value):
    return decode_labels(value)


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
    """A session on the astronaut photo (partitioned once per module; tests reset its edits)."""
    session, canvas, text, *_ = h.on_image(None, ASTRONAUT)
    return session, canvas


@pytest.fixture
def fresh(astro):
    session, canvas = astro
    with session.lock:
        session.editor.reset()
        session.selection, session.past, session.future = (), [], []
    return session, canvas


def test_demo_builds_without_launch():
    app = load_app()
    demo = app.build_demo()
    assert isinstance(demo, gr.Blocks)
    public = {fn.api_name for fn in demo.fns.values() if fn.api_visibility == "public"}
    assert public == {"partition", "edit"}
    kw = app.launch_kwargs()
    assert kw["server_name"] == "127.0.0.1" and kw["share"] is False
    assert kw["allowed_paths"] == [str(ROOT / "assets")] and kw["max_file_size"] and "#panel" in kw["css"]
    canvas = [b for b in demo.blocks.values() if isinstance(b, gr.HTML) and b.elem_id == "canvas"][0]
    js = (ROOT / "elements" / "ui" / "canvas.js").read_text()
    assert canvas.js_on_load == js and 'trigger("gesture"' in js  # the JS lives in its own file
    line = backends.banner()
    assert line.startswith("**Fast CPU mode:**") and "SLIC" in line and "not the paper" in line and "\n" not in line
    assert "Partition:" in backends.details() and "Decoder:" in backends.details()
    uses, why = backends.decoder_settings("pixel+inpaint")
    assert not uses and "ignores them" in why
    settings = app.on_decoder("pixel+inpaint")
    assert settings[2].visible is False  # prompt, seed, steps, guidance, candidates hidden


def test_upload_sends_the_canvas_its_image_and_label_map(astro):
    session, value = astro
    assert (value["w"], value["h"], value["input_w"], value["input_h"]) == (512, 512, 512, 512)
    assert value["image"].startswith("data:image/jpeg;base64,") and value["selection"] == []
    labels = runs_to_labels(value)
    np.testing.assert_array_equal(labels, session.view().labels)  # the run-length map is exact
    assert not value["object"] and not value["place"]
    s2, v2, text, *_ = h.on_image(None, COFFEE)
    assert (v2["w"], v2["h"]) == (600, 400)  # non-square: input size, not cropped
    assert f"{int(s2.elements.active.sum())} elements" in text
    cents = np.array([c for c in v2["centroids"] if c is not None])
    assert cents[:, 0].max() < 600 and cents[:, 1].max() < 400


def test_selection_gestures_show_in_the_status_only(fresh):
    session, _ = fresh
    k = biggest(session)
    k2 = biggest(session, skip={k})
    session, canvas, text = gesture(session, type="selection", ids=[k2, k])
    assert session.selection == tuple(sorted((k, k2))) and "2 selected" in text
    assert isinstance(canvas, type(gr.skip()))  # the browser already shows it; nothing is re-sent
    gesture(session, type="selection", ids=[k], seq=0)  # older than what the server has seen: ignored
    assert session.selection == tuple(sorted((k, k2)))
    gesture(session, type="selection", ids=[k, 10**6])  # unknown ids are dropped, not an error
    assert session.selection == (k,)
    img = draw(session.view(), session.selection)
    assert has_colour(img, SELECTED) and not has_colour(draw(session.view()), SELECTED)


def test_drag_moves_and_a_second_drag_repositions(fresh):
    session, _ = fresh
    k = biggest(session)
    gesture(session, type="selection", ids=[k])
    el0 = session.elements
    x0, y0 = inside(session, k)
    before = session.view().photo[y0, x0].astype(int)
    session, v1, t1 = gesture(session, type="move", ids=[k], dx=60, dy=0)
    deleted_first = set(np.flatnonzero(el0.active & ~session.elements.active).tolist())
    assert v1["image"] and v1["rev"] > 0 and "1 edited" in t1 and session.selection == (k,)
    assert np.abs(session.view().photo[y0, x0 + 60].astype(int) - before).max() <= 12  # pixels at the drop point
    session, v2, t2 = gesture(session, type="move", ids=[k], dx=0, dy=80)
    deleted_final = set(np.flatnonzero(el0.active & ~session.elements.active).tolist())
    one_move = edit.move(el0, [k], 60, 80)
    assert deleted_final == set(np.flatnonzero(el0.active & ~one_move.active).tolist())  # no new holes
    assert deleted_first - deleted_final  # the first drop's victims are back
    assert v2["rev"] > v1["rev"] and "undo ✓" in t2
    session, v3, _ = gesture(session, type="undo")
    assert set(np.flatnonzero(el0.active & ~session.elements.active).tolist()) == deleted_first
    gesture(session, type="redo")
    spec = gen.export_spec(session)
    assert [(e["op"], e["dx"], e["dy"]) for e in spec.edits] == [("move", 60.0, 0.0), ("move", 0.0, 80.0)]


def test_delete_undo_redo_and_buttons(fresh):
    session, _ = fresh
    k = biggest(session)
    with pytest.raises(gr.Error, match="selection is empty"):
        h.delete(session)
    gesture(session, type="selection", ids=[k])
    s0 = session.elements.sizes[k].copy()
    h.scale(session, 1.5)
    np.testing.assert_allclose(session.elements.sizes[k], s0 * 1.5, rtol=1e-5)
    with pytest.raises(gr.Error, match="The scale edit has factor 0.0; a scale factor must be greater than 0"):
        h.scale(session, 0.0)
    session, value, text = gesture(session, type="delete", ids=[k])
    assert not session.elements.active[k] and session.selection == () and k not in runs_to_labels(value)
    assert [e["op"] for e in gen.export_spec(session).edits] == ["scale", "delete"]
    gesture(session, type="undo")
    assert session.elements.active[k]
    gesture(session, type="redo")
    assert not session.elements.active[k]
    session, value, _ = h.reset(session)
    np.testing.assert_array_equal(runs_to_labels(value), build_view(session.editor.original).labels)


def test_bad_gestures_are_sentences(fresh):
    session, _ = fresh
    for data in (
        {"type": "explode"},
        {"type": "move", "ids": [1], "dx": "a", "dy": 0},
        {"type": "selection", "ids": "1"},
        {"type": "object", "points": [[1, 2]]},
        None,
    ):
        with pytest.raises(UserErrorLike):
            parse_gesture(data)
    with pytest.raises(gr.Error, match="not a finite number"):
        gesture(session, type="move", ids=[1], dx=float("nan"), dy=0)
    with pytest.raises(gr.Error, match="Upload an image"):
        gesture(None, type="undo")


def test_compose_places_selected_elements(fresh, tmp_path):
    session, _ = fresh
    session, other_overlay, text, _ = h.on_other_image(session, CHELSEA)
    assert other_overlay.shape == (300, 451, 3)
    with pytest.raises(gr.Error, match="click the elements to paste"):
        gesture(session, type="place", x=200, y=200)
    other = session.other
    own = other.current_view().owner
    k = int(np.bincount(own[own >= 0]).argmax())
    ys, xs = np.nonzero(other.elements.geometry.labels_to_input(own) == k)
    session, picked, text, value = h.on_other_click(session, click(int(xs[len(xs) // 2]), int(ys[len(ys) // 2])))
    assert session.other.selection == (k,) and has_colour(picked, SELECTED) and value["place"]
    n0 = session.elements.num_elements
    gesture(session, type="place", x=256, y=300)
    el = session.elements
    assert el.num_elements == n0 + 1 and session.selection == (n0,)
    assert el.source_index[n0] == 1 and len(el.sources) == 2
    spec = gen.export_spec(session)
    assert spec.edits[-1]["source"] == "chelsea.jpg"


def test_generate_shows_before_after_and_replays_through_the_edit_api(fresh):
    session, _ = fresh
    k = biggest(session)
    gesture(session, type="move", ids=[k], dx=40, dy=0)
    session, pair, gallery, result, spec_path, text, tabs = gen.generate(
        session, "pixel+inpaint", "a photo", 7, 50, 3.0, 2
    )
    before, image = pair
    assert (
        gallery["visible"] is False and "Result of `pixel+inpaint (PatchMatch)`" in text
    )  # names what ran; one candidate
    assert image.shape == (512, 512, 3) and image.dtype == np.uint8 and before.shape == image.shape
    assert np.array_equal(before, session.input_pixels) and tabs.selected == "result"
    assert Path(result).is_file() and Path(spec_path).is_file()
    spec = json.loads(Path(spec_path).read_text())
    assert spec["decoder"] == "pixel+inpaint" and spec["seed"] == 7 and spec["prompt"] == ""
    replay = api.api_edit(ASTRONAUT, Path(spec_path).read_text(), "", None)
    assert np.array_equal(replay, image)  # the UI and the API run the same pipeline
    session, path, pair2 = gen.pick_candidate(session, gr.SelectData(None, {"index": 0, "value": None}))
    np.testing.assert_array_equal(pair2[1], image)
    np.testing.assert_array_equal(gen.use_as_input(session)[0], image)
    with pytest.raises(gr.Error, match="between 0"):
        gen.generate(session, "pixel+inpaint", "", -1, 50, 3.0, 1)
    with pytest.raises(gr.Error, match="cannot run here"):
        gen.generate(session, "diffusion", "", 0, 50, 3.0, 1)


def test_use_as_input_and_replacing_keep_the_history(tmp_path):
    from PIL import Image

    session, *_ = h.on_image(None, ASTRONAUT)
    k = biggest(session)
    gesture(session, type="move", ids=[k], dx=30, dy=0)
    edited_value = session.elements
    out = tmp_path / "result.png"
    Image.fromarray(session.view().photo).save(out)
    session, value, text, result, gallery, widget = h.on_image(session, str(out))  # "use as input"
    assert "kept" in text and "undo ✓" in text and not session.elements.edited.any()
    gesture(session, type="undo")  # back to the astronaut, its move intact
    assert session.elements is edited_value and session.future
    gesture(session, type="redo")
    assert session.elements is not edited_value and not session.past[-1].editor.can_redo


def test_a_second_change_event_for_the_same_upload_is_answered_at_once(tmp_path, monkeypatch):
    """The image widget fires change twice for one upload: the second must not wait for the partition."""
    session, *_ = h.on_image(None, ASTRONAUT)
    started, release = threading.Event(), threading.Event()
    real = h.partition

    def slow(loaded):
        started.set()
        assert release.wait(30)
        return real(loaded)

    monkeypatch.setattr(h, "partition", slow)
    first = []
    worker = threading.Thread(target=lambda: first.append(h.on_image(session, CHELSEA)))
    worker.start()
    try:
        assert started.wait(30)
        second = h.on_image(session, CHELSEA)  # returns while the first is still partitioning
        assert worker.is_alive() and all(isinstance(v, type(gr.skip())) for v in second[1:])
    finally:
        release.set()
        worker.join(60)
    assert first and session.pending_key is None and session.input_key is not None
    assert h.on_image(session, CHELSEA)[1:] == second[1:]  # the same file again: a no-op, as before


def _unreadable_uploads(tmp_path) -> dict:
    """Issue 22's unreadable uploads: a text file, an empty file, a 40000x40000 PNG bomb -> the problem named."""
    from odd_inputs import bomb_png_40000

    files = {"notes.txt": b"hello, this is not an image\n", "empty.png": b"", "bomb.png": bomb_png_40000()}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    return {
        "notes.txt": "notes.txt is not an image",
        "empty.png": "empty.png is empty",
        "bomb.png": "bomb.png has 1,600 Mpx, too many to decode",
    }


def test_failed_or_cleared_upload_keeps_the_image_and_edits(fresh, tmp_path):
    session, _ = fresh
    k = biggest(session)
    gesture(session, type="move", ids=[k], dx=25, dy=0)
    el = session.elements
    for name, problem in _unreadable_uploads(tmp_path).items():
        session, canvas, text, result, gallery, widget = h.on_image(session, str(tmp_path / name))
        assert session.elements is el and "kept" in text and widget is None
        assert problem in text and "accepted: PNG, JPEG" in text, text  # the problem, then what is accepted
        assert "Error" not in text and "Exception" not in text and "Unreadable" not in text
        assert str(tmp_path) not in text  # the visitor's file name, never the server's path
        assert isinstance(canvas, type(gr.skip()))  # the canvas keeps showing the edited image
    out = h.on_image(session, None)  # the ✕ of the input widget
    assert out[0].elements is el and all(isinstance(v, type(gr.skip())) for v in out[1:])


def test_unreadable_uploads_are_one_sentence_on_the_api_too(tmp_path):
    from gradio.data_classes import FileData

    from elements.ui.upload import UploadImage

    comp = UploadImage(type="filepath", format="png")
    assert comp.get_block_name() == "image"
    for name, problem in _unreadable_uploads(tmp_path).items():
        path = comp.preprocess(FileData(path=str(tmp_path / name), orig_name=name))
        assert path == str(tmp_path / name)  # passed on undecoded: the pixel budget decides
        for endpoint, args in ((api.api_partition, (path,)), (api.api_edit, (path, '{"version": 1, "edits": []}'))):
            with pytest.raises(gr.Error) as err:
                endpoint(*args)
            msg = str(err.value.message)
            assert msg.startswith(problem) and msg.endswith(").") and ". " not in msg and "\n" not in msg, msg
            assert "accepted: PNG, JPEG" in msg and "Unreadable" not in msg and str(tmp_path) not in msg


def test_a_pasted_image_the_server_cannot_store_is_its_fault_and_logged(tmp_path, monkeypatch, caplog):
    import base64

    from gradio.data_classes import ImageData

    from elements.ui.upload import UploadImage

    comp = UploadImage(type="filepath", format="png")
    monkeypatch.setattr(comp, "GRADIO_CACHE", str(tmp_path))

    def disk_full(self, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", disk_full)
    url = "data:image/png;base64," + base64.b64encode(b"\x89PNG not really").decode()
    with caplog.at_level("ERROR", logger="elements.app"), pytest.raises(gr.Error) as err:
        comp.preprocess(ImageData(url=url, orig_name="photo.png"))
    assert str(err.value.message) == "The server could not store the pasted image; please try again."
    record = next(r for r in caplog.records if "storing a pasted image" in r.getMessage())
    assert record.exc_info and record.exc_info[0] is OSError


def test_unexpected_upload_errors_are_logged_not_shown(fresh, monkeypatch, caplog):
    session, _ = fresh
    el = session.elements

    def broken(*args, **kwargs):
        raise KeyError("internal detail")

    monkeypatch.setattr(h, "load_for_app", broken)
    with caplog.at_level("ERROR", logger="elements.app"):
        session, canvas, text, *_ = h.on_image(session, COFFEE)  # a new file (the same one is skipped)
    assert session.elements is el and "went wrong on the server while decoding" in text
    assert "KeyError" not in text and "internal detail" not in text
    assert any(r.exc_info and "internal detail" in str(r.exc_info[1]) for r in caplog.records)  # the traceback
    monkeypatch.setattr(api, "load_for_app", broken)
    with caplog.at_level("ERROR", logger="elements.app"), pytest.raises(gr.Error) as err:
        api.api_partition(ASTRONAUT)
    assert "KeyError" not in str(err.value.message) and "internal detail" not in str(err.value.message)
    assert sum(bool(r.exc_info) for r in caplog.records) == 2


def test_a_partition_failing_during_an_upload_names_partitioning_not_the_file(fresh, monkeypatch, caplog):
    session, _ = fresh
    el = session.elements

    def broken(loaded):
        raise RuntimeError("onnxruntime: internal detail")

    monkeypatch.setattr(h, "partition", broken)
    with caplog.at_level("ERROR", logger="elements.app"):
        session, canvas, text, *_ = h.on_image(session, CHELSEA)
    assert session.elements is el and canvas is not None  # nothing lost
    assert "Partitioning the image into elements failed" in text and "kept" in text
    for blame in ("could not be read", "not an image", "RuntimeError", "internal detail", "chelsea"):
        assert blame not in text
    record = next(r for r in caplog.records if "partitioning an upload failed" in r.getMessage())
    assert record.exc_info and "internal detail" in str(record.exc_info[1])  # the traceback is in the log

    def out_of_memory(loaded):
        raise MemoryError

    monkeypatch.setattr(h, "partition", out_of_memory)
    session, canvas, text, *_ = h.on_image(session, CHELSEA)
    assert "Partitioning the image into elements ran out of memory" in text and "file" not in text


def test_large_images_keep_full_resolution_and_the_canvas_is_capped(tmp_path):
    from PIL import Image

    big = tmp_path / "big.png"
    Image.fromarray(np.zeros((1500, 3000, 3), np.uint8) + 90).save(big)
    session, value, text, *_ = h.on_image(None, str(big))
    assert session.elements.geometry.input_w == 3000 and "downscaled" not in text  # no 1024-px cap any more
    assert (value["w"], value["h"], value["input_w"]) == (DISPLAY_MAX_SIDE, DISPLAY_MAX_SIDE // 2, 3000)
    huge = tmp_path / "huge.png"
    Image.fromarray(np.zeros((100, APP_MAX_SIDE + 904, 3), np.uint8) + 90).save(huge)
    session, value, text, *_ = h.on_image(None, str(huge))
    assert "downscaled" in text and session.elements.geometry.input_w == APP_MAX_SIDE


def test_two_sessions_keep_separate_state():
    a, *_ = h.on_image(None, ASTRONAUT)
    b, *_ = h.on_image(None, COFFEE)
    ka, kb = biggest(a), biggest(b)

    def work(session, k, dx):
        gesture(session, type="selection", ids=[k])
        gesture(session, type="move", ids=[k], dx=dx, dy=0)

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


def test_object_gestures_go_through_select_object(tiny_sam, monkeypatch):
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
    session, value, *_ = h.on_image(None, ASTRONAUT)
    assert value["object"]
    h.on_image(None, COFFEE)  # another tab: its embedding is now SAM's current one
    seen = []

    def disc(self, points=None, labels=None, box=None, size=512):
        """SAM's mask stand-in: a disc of radius 80 around the first click (canvas pixels), or the box itself."""
        seen.append(self.embedding.key)
        yy, xx = np.mgrid[:size, :size] + 0.5
        if box is not None:
            x0, y0, x1, y1 = box
            return (xx >= x0) & (xx < x1) & (yy >= y0) & (yy < y1)
        cx, cy = points[0]
        return ((xx - cx) ** 2 + (yy - cy) ** 2) < 80**2

    monkeypatch.setattr(SamAffinity, "mask", disc)
    x, y = 256.0, 200.0
    session, value, _ = gesture(session, type="object", points=[[x, y, True]])
    assert seen == [session.sam_embedding.key]  # the astronaut's embedding, not the coffee's
    el = session.elements
    g = el.geometry

    def inside(mask):
        return tuple(
            i for i in range(el.num_elements) if (m := footprint(el, i)).any() and (m & mask).sum() >= 0.5 * m.sum()
        )

    expect = inside(disc(part.affinity, g.input_to_norm([[x, y]]) * 512))
    assert session.selection == expect and len(expect) >= 3 and value["selection"] == list(expect)
    # a box prompt selects the elements mostly inside SAM's mask for that box
    box = (100.0, 100.0, 300.0, 260.0)
    session, value, _ = gesture(session, type="object", box=list(box))
    canvas_box = (g.input_to_norm(np.array([box[:2], box[2:]])) * 512).reshape(4)
    expect_box = inside(disc(part.affinity, box=canvas_box))
    assert set(expect_box) <= set(session.selection) and len(expect_box) >= 3


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
        session, canvas, text, *_ = h.on_image(None, ASTRONAUT)
        assert "EIE_APP_PARTITION must be" in text and not session.has_image
    finally:
        monkeypatch.delenv("EIE_APP_PARTITION")
        backends._reset_for_tests()


def test_transparency_is_shown_as_it_is_edited(tmp_path):
    """An RGBA upload: the canvas shows the pixels being edited (alpha composited on white), not the hidden colour."""
    from PIL import Image

    rgba = np.zeros((200, 300, 4), np.uint8)
    rgba[..., 0] = 255  # hidden red under full transparency on the left half
    rgba[:, 150:] = [20, 120, 40, 255]
    path = tmp_path / "cutout.png"
    Image.fromarray(rgba, "RGBA").save(path)
    session, value, *_ = h.on_image(None, str(path))
    photo = session.view().photo
    assert np.abs(photo[100, 40].astype(int) - 255).max() <= 3  # white, not the red under the alpha
    np.testing.assert_array_equal(photo, session.input_pixels)  # the canvas shows exactly what is edited


def test_a_tiny_upload_gets_elements_of_the_minimum_area(tmp_path):
    from PIL import Image

    from elements.partition.options import MIN_ELEMENT_AREA

    tiny = tmp_path / "tiny.png"
    Image.open(ASTRONAUT).resize((64, 64), Image.LANCZOS).save(tiny)
    session, value, text, *_ = h.on_image(None, str(tiny))
    n = session.elements.num_elements
    assert 8 <= n <= 16 and 64 * 64 / n >= MIN_ELEMENT_AREA and text.startswith(f"{n} elements")
    assert (value["input_w"], value["input_h"]) == (64, 64)
