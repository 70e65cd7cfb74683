"""EditorSession: partition/encode once, undo/redo as a list of values, to_spec reproduces the edits."""

import json

import numpy as np
import pytest

from elements import edit
from elements.apply import apply_spec
from elements.editor import EditorSession
from elements.errors import UserError
from elements.partition import Partitioner


class Counting:
    """Wraps a partitioner or an encoder and counts calls."""

    def __init__(self, fn):
        self.fn, self.calls = fn, 0

    def __call__(self, x):
        self.calls += 1
        return self.fn(x)


def fake_encode(el):
    """A stand-in content encoder: the mean colour of each patch, repeated to 32 dims."""
    emb = np.repeat(el.patches.mean(axis=(2, 3)), 11, axis=1)[:, :32].astype(np.float32)
    return el.replace(embeddings=np.ascontiguousarray(emb))


@pytest.fixture
def session(chelsea):
    part = Counting(Partitioner("grid", num_elements=64))
    enc = Counting(fake_encode)
    s = EditorSession(part, encoder=enc)
    s.set_image(chelsea)
    return s, part, enc


MOVE = {"op": "move", "elements": [10, 11], "dx": 30, "dy": 5}
SCALE = {"op": "scale", "points": [[220, 150]], "factor": 1.4}
DELETE = {"op": "delete", "rect": [0, 0, 80, 80]}


def test_rerendering_never_repartitions_or_reencodes(session):
    s, part, enc = session
    assert part.calls == 1 and enc.calls == 1 and s.elements.embeddings is not None
    a = s.render("pixel")
    s.apply(MOVE)
    b = s.render("pixel")
    s.apply([SCALE, DELETE])
    c = s.render("pixel+inpaint")
    s.undo()
    assert np.array_equal(s.render("pixel"), b)
    s.redo()
    assert np.array_equal(s.render("pixel+inpaint"), c)
    assert part.calls == 1 and enc.calls == 1
    assert a.shape == b.shape == c.shape == (300, 451, 3) and not np.array_equal(a, b)
    assert s.elements.embeddings is not None and s.elements.embeddings.shape == (len(s.elements), 32)


def test_undo_redo_walk_a_list_of_values(session):
    s, _, _ = session
    v0 = s.elements
    assert not s.can_undo and not s.can_redo
    v1 = s.apply(MOVE)
    v2 = s.apply(SCALE)
    assert s.elements is v2 and s.can_undo and not s.can_redo
    assert s.undo() is v1 and s.undo() is v0 and s.undo() is v0  # no-op at the start
    assert s.redo() is v1 and s.can_redo
    v3 = s.apply(DELETE)  # a new edit after undo drops the redo branch
    assert not s.can_redo and s.undo() is v1 and s.redo() is v3
    assert np.array_equal(v1.centroids, edit.move(v0, [10, 11], 30, 5).centroids)
    assert s.original is v0 and not v0.edited.any()  # values are never modified in place
    assert s.reset() is v0 and s.undo() is v3


def test_failed_edit_changes_nothing(session):
    s, _, _ = session
    v1 = s.apply(MOVE)
    with pytest.raises(UserError, match=r"Edit 2 \(move\): Unknown element id 999"):
        s.apply([DELETE, {"op": "move", "elements": [999], "dx": 1, "dy": 1}])
    with pytest.raises(UserError, match="unknown op"):
        s.apply({"op": "spin", "elements": [1]})
    assert s.elements is v1 and not s.can_redo


def test_to_spec_reproduces_the_session(session):
    s, _, _ = session
    s.apply({"version": 1, "prompt": "a cat on grass", "seed": 7, "edits": [MOVE]})
    s.apply(SCALE)
    s.apply(DELETE)
    s.undo()
    spec = s.to_spec()
    assert spec.prompt == "a cat on grass" and spec.seed == 7 and list(spec.edits) == [MOVE, SCALE]
    again = apply_spec(s.original, spec)
    for k in ("centroids", "sizes", "active", "edited"):
        assert np.array_equal(getattr(again, k), getattr(s.elements, k)), k
    s.redo()
    s.reset()
    assert s.to_spec().edits == ()


def test_select_helpers(session):
    s, _, _ = session
    assert list(s.select(ids=[3, 2, 3])) == [2, 3]
    assert len(s.select(rect=[0, 0, 451, 300])) == len(s.elements)
    with pytest.raises(UserError, match="exactly one"):
        s.select(ids=[1], points=[[1, 1]])


def test_compose_in_a_session_partitions_and_encodes_the_other_image_once(session, coffee, tmp_path):
    from PIL import Image

    s, part, enc = session
    Image.fromarray(coffee).save(tmp_path / "coffee.png")
    e = {
        "op": "compose",
        "source": str(tmp_path / "coffee.png"),
        "rect": [200, 100, 400, 300],
        "at": [100, 100],
        "factor": 0.5,
    }
    s.apply(e)
    s.apply({**e, "at": [300, 200]})
    assert part.calls == 2 and enc.calls == 2  # the coffee image once, however often it is pasted
    assert s.elements.embeddings is not None and len(s.elements.embeddings) == len(s.elements)
    assert len(s.elements.sources) == 3
    spec = tmp_path / "spec.json"  # a spec file's relative compose source is found next to it
    spec.write_text(
        json.dumps({"version": 1, "prompt": "cup", "edits": [{**e, "source": "coffee.png", "at": [50, 250]}]})
    )
    s.apply(spec)
    assert len(s.elements.sources) == 4 and part.calls == 2 and s.prompt == "cup"


def test_a_decoder_lends_its_encoder_once(chelsea):
    class FakeLight:
        name = "fake"

        def __init__(self):
            self.encoder_calls, self.seen = 0, []

        def encoder(self, el):  # the callable form EditorSession accepts
            self.encoder_calls += 1
            return fake_encode(el)

        def __call__(self, el, **kw):
            self.seen.append(el.embeddings is not None)
            return el.geometry.from_canvas(el.image)

    s = EditorSession(Partitioner("grid", num_elements=16))
    s.set_image(chelsea)
    dec = FakeLight()
    s.render(dec)
    s.apply(MOVE | {"elements": [1]})
    s.render(dec)
    assert dec.encoder_calls == 1 and dec.seen == [True, True]


def test_no_image_yet():
    with pytest.raises(UserError, match="upload an image"):
        EditorSession(Partitioner("grid")).apply(MOVE)


# --- re-moving repositions (coalescing rule, elements/spec.py) ----------------------------------
def _two_drags(el):
    """The largest element and two moves of it: the second lands elsewhere."""
    k = int(np.argmax(el.areas))
    return k, [{"op": "move", "elements": [k], "dx": 60, "dy": 0}, {"op": "move", "elements": [k], "dx": 0, "dy": 70}]


def test_second_move_repositions_without_new_holes(astronaut_elements):
    el = astronaut_elements
    k, (a, b) = _two_drags(el)
    once = apply_spec(el, {"version": 1, "edits": [{"op": "move", "elements": [k], "dx": 60, "dy": 70}]})
    twice = apply_spec(el, {"version": 1, "edits": [a, b]})
    # two drags of the same selection = one drag to the final place: the first drop's victims come back
    assert np.array_equal(twice.active, once.active) and np.array_equal(twice.centroids, once.centroids)
    first = apply_spec(el, {"version": 1, "edits": [a]})
    hit_first = set(np.flatnonzero(el.active & ~first.active).tolist())
    hit_final = set(np.flatnonzero(el.active & ~twice.active).tolist())
    assert hit_first - hit_final, "an element covered only by the first drop must be restored"
    # without coalescing (the old rule) both drops punch holes: strictly more deletions
    stepwise = edit.move(edit.move(el, [k], 60, 0), [k], 0, 70)
    assert (~stepwise.active).sum() > (~twice.active).sum()
    assert edit.coverage(twice).max() <= 1


def test_other_edit_between_moves_closes_the_run(astronaut_elements):
    el = astronaut_elements
    k, (a, b) = _two_drags(el)
    far = int(np.argmin(np.abs(el.centroids - [0.05, 0.95]).sum(1)))
    mid = {"op": "delete", "elements": [far]}
    out = apply_spec(el, {"version": 1, "edits": [a, mid, b]})
    stepwise = edit.move(edit.delete(edit.move(el, [k], 60, 0), [far]), [k], 0, 70)
    assert np.array_equal(out.active, stepwise.active)
    # a move of a different selection is a new run as well
    j = int(np.argsort(el.areas)[-2])
    other = apply_spec(el, {"version": 1, "edits": [a, {"op": "move", "elements": [j], "dx": 5, "dy": 5}]})
    assert np.array_equal(other.active, edit.move(edit.move(el, [k], 60, 0), [j], 5, 5).active)


def test_session_coalesces_like_the_replayed_spec(astronaut_elements):
    el = astronaut_elements
    k, (a, b) = _two_drags(el)
    s = EditorSession(Partitioner("slic"))
    s.set_elements(el)
    s.apply(a)
    after_first = s.elements
    s.apply({"op": "scale", "elements": [k], "factor": 1.2})
    s.apply(b)
    replay = apply_spec(el, s.to_spec())
    assert np.array_equal(s.elements.active, replay.active) and np.array_equal(s.elements.centroids, replay.centroids)
    s.undo()
    s.undo()  # each gesture is still its own undo step
    assert s.elements is after_first
    s.apply(b)  # continues the run open after the first move
    assert np.array_equal(s.elements.active, apply_spec(el, {"version": 1, "edits": [a, b]}).active)
