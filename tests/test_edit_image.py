"""One path for "image + spec -> image": the ``edit`` CLI, the demo's ``/edit`` endpoint and the demo's editor."""

import json
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
from PIL import Image

from elements.cli import main
from elements.editor import edit_image
from elements.errors import UserError
from elements.partition import Partitioner
from elements.spec import MAX_PROMPT_CHARS, STEPS_RANGE, EditSpec, load_spec, schema
from elements.ui import api, backends
from elements.ui import generate as gen
from elements.ui import handlers as h

ROOT = Path(__file__).resolve().parents[1]
ASTRONAUT = str(ROOT / "assets" / "astronaut.jpg")


@pytest.fixture(scope="module", autouse=True)
def offline_backends():
    backends._reset_for_tests()
    yield
    backends._reset_for_tests()


def gesture(session, seq, **data):
    """One canvas event as canvas.js sends it."""
    return h.on_gesture(session, 1.0, gr.EventData(None, {"seq": seq, **data}))


def test_the_same_spec_gives_the_same_image_through_the_cli_the_api_and_the_demo(tmp_path):
    session, *_ = h.on_image(None, ASTRONAUT)  # the demo: upload, partitioned with the shared partitioner
    el = session.elements
    big = [int(i) for i in np.argsort(-el.areas)[:6]]
    edits = [
        {"op": "move", "elements": [big[0]], "dx": 40, "dy": -12},
        {"op": "move", "elements": [big[0]], "dx": -15, "dy": 30},  # a second drag: one coalescing run
        {"op": "delete", "elements": [big[1], big[2]]},
        {"op": "scale", "elements": [big[3]], "factor": 1.3},
    ]
    spec = {"version": 1, "prompt": "", "seed": 5, "decoder": "pixel+inpaint", "edits": edits}
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(json.dumps(spec))

    # the demo, gesture by gesture, then Generate with the spec's seed
    gesture(session, 1, type="move", ids=[big[0]], dx=40, dy=-12)
    gesture(session, 2, type="move", ids=[big[0]], dx=-15, dy=30)
    gesture(session, 3, type="delete", ids=[big[1], big[2]])
    gesture(session, 4, type="selection", ids=[big[3]])
    h.scale(session, 1.3)
    _, (_, demo), *_ = gen.generate(session, "pixel+inpaint", "", 5, 50, 3.0, 1)
    assert session.editor.to_spec().edits == tuple(edits)

    api_out = api.api_edit(ASTRONAUT, spec_path.read_text(), "", None)  # the /edit endpoint

    out = tmp_path / "cli.png"
    assert main(["edit", ASTRONAUT, "--spec", str(spec_path), "--out", str(out)]) == 0
    cli = np.asarray(Image.open(out).convert("RGB"))

    direct = edit_image(ASTRONAUT, load_spec(spec_path), decoder="pixel+inpaint", partitioner=Partitioner("auto"))
    assert demo.shape == (512, 512, 3) and not np.array_equal(demo, session.input_pixels)  # the edits show
    np.testing.assert_array_equal(api_out, demo)
    np.testing.assert_array_equal(cli, demo)
    np.testing.assert_array_equal(direct.image, demo)
    assert int((~direct.elements.active).sum()) >= 2 and direct.elements.edited[big[0]]


def test_flags_given_win_over_the_spec_and_zero_is_not_ignored(tmp_path, monkeypatch, capsys):
    """``--steps 3`` reaches the decoder over the spec's 50; ``--steps 0`` is refused, never read as "not given"."""
    import elements.decoders as decoders

    seen = {}

    class Recording:
        name = "pixel"

        def describe(self):
            return "a decoder that records its settings"

        def __call__(self, el, **settings):
            seen.update(settings)
            g = el.geometry
            return np.zeros((g.input_h, g.input_w, 3), np.uint8)

    monkeypatch.setattr(decoders, "get_decoder", lambda name, **options: Recording())
    spec = tmp_path / "s.json"
    spec.write_text(json.dumps({"version": 1, "seed": 4, "steps": 50, "guidance": 2.5, "edits": []}))
    args = ["edit", ASTRONAUT, "--spec", str(spec), "--out", str(tmp_path / "o.png"), "--backend", "grid"]
    assert main([*args, "--decoder", "pixel", "--steps", "3", "--guidance", "0"]) == 0
    assert (seen["steps"], seen["guidance"], seen["seed"]) == (3, 0.0, 4)
    assert main([*args, "--decoder", "pixel"]) == 0
    assert (seen["steps"], seen["guidance"]) == (50, 2.5)
    capsys.readouterr()
    assert main([*args, "--decoder", "pixel", "--steps", "0"]) == 2
    assert "--steps must be an integer between 1 and 1000, got 0" in capsys.readouterr().err


def test_limits_are_the_schemas():
    for name, rng in (("seed", (0, 2**32 - 1)), ("steps", STEPS_RANGE), ("guidance", (0, 100))):
        prop = schema()["properties"][name]
        assert (prop["minimum"], prop["maximum"]) == tuple(rng)
    lo, hi = STEPS_RANGE
    assert EditSpec().override(steps=hi).steps == hi
    for bad in (lo - 1, hi + 1, 2.5, True, "ten"):
        with pytest.raises(UserError, match="The number of steps must be an integer between"):
            EditSpec().override(steps=bad)
    assert EditSpec(steps=7).override(steps=None).steps == 7  # None = not given
    assert MAX_PROMPT_CHARS == schema()["properties"]["prompt"]["maxLength"]
    with pytest.raises(UserError, match=f"--prompt is longer than {MAX_PROMPT_CHARS} characters"):
        EditSpec().override(prompt="x" * (MAX_PROMPT_CHARS + 1), labels={"prompt": "--prompt"})
    with pytest.raises(UserError, match=f"between {lo} and {hi}"):  # the demo's Generate controls
        gen._check_settings(0, hi + 1, 3.0, 1)
