"""The edit spec: schema + semantic validation with one-sentence errors, application, reproducibility."""

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from elements import edit
from elements.apply import apply_spec
from elements.compose_sources import compose_loader
from elements.decoders import get_decoder
from elements.errors import UserError
from elements.partition import Partitioner
from elements.spec import SCHEMA_PATH, EditSpec, load_spec, schema


@pytest.fixture(scope="module")
def el(chelsea):
    return Partitioner("grid", num_elements=64)(chelsea)  # 451 x 300 input, 63 elements


GOOD = {
    "version": 1,
    "prompt": "a cat",
    "seed": 3,
    "edits": [
        {"op": "move", "elements": [3, 4], "dx": 40, "dy": -10},
        {"op": "scale", "points": [[120, 88]], "factor": 1.5},
        {"op": "delete", "rect": [0, 0, 60, 60]},
    ],
}


def test_schema_ships_with_the_package_and_is_valid():
    import jsonschema

    assert SCHEMA_PATH.is_file() and SCHEMA_PATH.parent.name == "elements"
    jsonschema.Draft202012Validator.check_schema(schema())


def test_good_spec_loads_from_dict_text_and_file_and_round_trips(tmp_path):
    a = load_spec(GOOD)
    b = load_spec(json.dumps(GOOD))
    p = tmp_path / "s.json"
    p.write_text(json.dumps(GOOD))
    c = load_spec(p)
    assert a == b == c and c.base_dir == str(tmp_path.resolve())
    assert a.prompt == "a cat" and a.seed == 3 and len(a.edits) == 3
    assert load_spec(a.to_dict()) == a
    a.save(tmp_path / "t.json")
    assert load_spec(tmp_path / "t.json") == a


def test_apply_spec_equals_the_edit_functions(el):
    out = apply_spec(el, GOOD)
    ref = edit.move(el, [3, 4], 40, -10)
    ref = edit.scale(ref, edit.select_points(ref, [[120, 88]]), 1.5)
    ref = edit.delete(ref, edit.select_rect(ref, [0, 0, 60, 60]))
    for k in ("centroids", "sizes", "active", "edited"):
        assert np.array_equal(getattr(out, k), getattr(ref, k)), k
    assert apply_spec(el, {"version": 1, "edits": []}) is el  # empty edit list = reconstruction


def test_spec_plus_image_reproduces_the_output_exactly(chelsea, tmp_path):
    p = tmp_path / "s.json"
    p.write_text(json.dumps(GOOD))
    outs = []
    for _ in range(2):
        el = Partitioner("grid", num_elements=64)(chelsea)
        outs.append(get_decoder("pixel+inpaint")(apply_spec(el, load_spec(p)), seed=load_spec(p).seed))
    assert np.array_equal(*outs)


def spec_with(edit_dict, **top):
    return {"version": 1, "edits": [edit_dict], **top}


@pytest.mark.parametrize(
    "spec, message",
    [
        (
            spec_with({"op": "rotate", "elements": [1], "angle": 3}),
            r"Edit 1: This edit has an unknown op 'rotate'; choose one of move, scale, delete, compose\.",
        ),
        (spec_with({"elements": [1]}), r"Edit 1: Each edit needs an 'op'"),
        (spec_with({"op": "scale", "elements": [1], "factor": 0}), r"factor 0; a scale factor must be greater than 0"),
        (
            spec_with({"op": "scale", "elements": [1], "factor": -2.5}),
            r"factor -2.5; a scale factor must be greater than 0",
        ),
        (spec_with({"op": "scale", "elements": [1], "factor": 1000}), r"spec\.edits\[0\]\.factor"),
        (spec_with({"op": "move", "elements": [1], "dx": 1}), r"'dy' is a required property"),
        (
            spec_with({"op": "move", "elements": [1], "points": [[1, 1]], "dx": 1, "dy": 1}),
            r"exactly one of elements, points or rect \(got elements and points\)",
        ),
        (spec_with({"op": "delete"}), r"exactly one of elements, points or rect \(got none\)"),
        (
            spec_with({"op": "move", "elements": [1], "dx": "5", "dy": 1}),
            r"spec\.edits\[0\]\.dx: '5' is not of type 'number'",
        ),
        (spec_with({"op": "move", "elements": [1], "dx": True, "dy": 1}), r"dx: True is not of type 'number'"),
        (spec_with({"op": "delete", "elements": [1.5]}), r"1\.5 is not of type 'integer'"),
        (
            spec_with({"op": "move", "elements": [1], "dx": float("nan"), "dy": 1}),
            r"contains nan at spec\.edits\[0\]\.dx; every number must be finite",
        ),
        (spec_with({"op": "delete", "elements": [1]}, extra=1), r"Additional properties are not allowed \('extra'"),
        ({"edits": []}, r"no 'version'"),
        ({"version": 2, "edits": []}, r"Unsupported edit spec version 2"),
        ("[1, 2]", r"must be a JSON object"),
    ],
)
def test_schema_errors_are_one_sentence(spec, message):
    with pytest.raises(UserError, match=message) as err:
        load_spec(spec)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_literals_are_rejected(literal):
    text = f'{{"version": 1, "edits": [{{"op": "move", "elements": [1], "dx": {literal}, "dy": 0}}]}}'
    with pytest.raises(UserError, match=f"contains {literal}; every number must be finite"):
        load_spec(text)


def test_file_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_spec(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"version": 1, "edits": [}')
    with pytest.raises(UserError, match=r"is not valid JSON \(.* at line 1, column"):
        load_spec(bad)


@pytest.mark.parametrize(
    "e, message",
    [
        (
            {"op": "move", "elements": [3, 99], "dx": 1, "dy": 1},
            r"Edit 1 \(move\): Unknown element id 99: the image has 63 elements \(ids 0-62\)\.",
        ),
        (
            {"op": "scale", "points": [[451, 10]], "factor": 2},
            r"Edit 1 \(scale\): Point \(451, 10\) lies outside the 451x300 image\.",
        ),
        ({"op": "delete", "points": [[-0.5, 10]]}, r"Point \(-0.5, 10\) lies outside"),
        ({"op": "move", "rect": [0, 0, 1, 1], "dx": 1, "dy": 1}, r"No element has its centre inside the rectangle"),
        ({"op": "move", "rect": [10, 10, 5, 50], "dx": 1, "dy": 1}, r"x0 <= x1"),
        ({"op": "move", "elements": [1], "dx": 1e9, "dy": 0}, r"more than 4 image sizes"),
        (
            {"op": "compose", "source": "nope.png", "elements": [1], "at": [5, 5]},
            r"Compose source 'nope.png' does not exist",
        ),
    ],
)
def test_semantic_errors_name_the_edit(el, e, message):
    with pytest.raises(UserError, match=message):
        apply_spec(el, {"version": 1, "edits": [e]}, load_other=compose_loader(like=el))


def test_editing_a_deleted_element_is_an_error_deleting_twice_is_not(el):
    spec = {
        "version": 1,
        "edits": [
            {"op": "delete", "elements": [5]},
            {"op": "delete", "elements": [5]},
            {"op": "move", "elements": [5], "dx": 1, "dy": 0},
        ],
    }
    with pytest.raises(UserError, match=r"Edit 3 \(move\): Element 5 has been deleted"):
        apply_spec(el, spec)


def test_compose_from_image_and_from_saved_elements(el, coffee, tmp_path):
    from PIL import Image

    Image.fromarray(coffee).save(tmp_path / "other.png")
    spec = {
        "version": 1,
        "edits": [
            {"op": "compose", "source": "other.png", "rect": [200, 100, 400, 300], "at": [100, 150], "factor": 0.5}
        ],
    }
    p = tmp_path / "spec.json"
    p.write_text(json.dumps(spec))
    spec_p = load_spec(p)
    out = apply_spec(el, spec_p, load_other=compose_loader(base_dir=spec_p.base_dir, like=el))  # like `el`: grid, 64
    assert len(out.sources) == 2 and len(out) > len(el) and edit.coverage(out).max() <= 1
    other = Partitioner("grid", num_elements=64)(coffee)
    other.save(tmp_path / "other_elements")
    spec["edits"][0]["source"] = str(tmp_path / "other_elements")
    out2 = apply_spec(el, spec, load_other=compose_loader())
    assert np.array_equal(out2.centroids, out.centroids) and np.array_equal(out2.active, out.active)
    with pytest.raises(UserError, match="Edit 1 \\(compose\\): Compose edits are not accepted here"):
        apply_spec(el, spec)  # applying reads no file unless it is given a loader


# --- generated specs: validate and apply, or fail with a UserError; never crash ---------------------
xs, ys = st.floats(-10, 460), st.floats(-10, 310)  # the image is 451 x 300: a few points fall outside
pt = st.tuples(xs, ys).map(list)
selection = st.one_of(
    st.fixed_dictionaries({"elements": st.lists(st.integers(0, 64), min_size=1, max_size=4)}),  # ids >= 63 are unknown
    st.fixed_dictionaries({"points": st.lists(pt, min_size=1, max_size=3)}),
    st.fixed_dictionaries({"rect": st.tuples(xs, ys, xs, ys).map(list)}),
)
CORRUPTIONS = [None] * 40 + [
    "nan",
    "inf",
    "no_op",
    "bad_op",
    "factor<=0",
    "string",
    "extra",
    "two_selectors",
    "no_selector",
]


@st.composite
def edits(draw):
    op = draw(st.sampled_from(["move", "scale", "delete"] if draw(st.integers(0, 9)) else ["compose"]))
    e = {"op": op, **draw(selection)}
    if op == "move":
        e["dx"], e["dy"] = draw(st.floats(-300, 300)), draw(st.floats(-300, 300))
    if op in ("scale", "compose"):
        e["factor"] = draw(st.floats(0.05, 4))
    if op == "compose":
        e["source"], e["at"] = "missing.png", draw(pt)
    if op != "delete" and draw(st.booleans()):
        e["collide"] = draw(st.booleans())
    bad = draw(st.sampled_from(CORRUPTIONS))
    key = draw(st.sampled_from(sorted(k for k in e if k != "op")))
    if bad in ("nan", "inf", "string"):
        e[key] = {"nan": float("nan"), "inf": float("inf"), "string": "x"}[bad]
    elif bad == "no_op":
        del e["op"]
    elif bad == "bad_op":
        e["op"] = "rotate"
    elif bad == "factor<=0":
        e["factor"] = draw(st.sampled_from([0, -1, -0.0]))
    elif bad == "extra":
        e["colour"] = 1
    elif bad == "two_selectors":
        e["elements" if "elements" not in e else "points"] = [1] if "elements" not in e else [[1, 1]]
    elif bad == "no_selector":
        for k in ("elements", "points", "rect"):
            e.pop(k, None)
    return e


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(st.fixed_dictionaries({"version": st.sampled_from([1] * 9 + [2]), "edits": st.lists(edits(), max_size=4)}))
def test_generated_specs_apply_or_fail_with_a_user_error(el, spec):
    try:
        out = apply_spec(el, spec)
    except UserError as err:
        assert str(err) and "\n" not in str(err)
        return
    out.validate()
    assert (
        len(out) >= len(el) and edit.coverage(out).max() <= 1 or any(e.get("collide") is False for e in spec["edits"])
    )


def test_editspec_to_json_is_strict_json():
    spec = EditSpec(({"op": "move", "elements": [1], "dx": 1.5, "dy": 0},), prompt="x", seed=2)
    assert json.loads(spec.to_json())["edits"][0]["dx"] == 1.5
