"""Pure edit operations: exact inverses, the collision rule, composition, selection, off-canvas behaviour."""

import numpy as np
import pytest

from elements import edit
from elements.errors import UserError
from elements.partition import Partitioner
from elements.types import ARRAY_FIELDS as FIELDS


@pytest.fixture(scope="module")
def chelsea_elements(chelsea):
    """A non-square image (451 x 300): canvas and input pixels differ by a non-integer scale."""
    return Partitioner("grid", num_elements=64)(chelsea)


def snapshot(el):
    return {k: getattr(el, k).copy() for k in FIELDS}


def assert_unchanged(el, snap):
    for k in FIELDS:
        assert np.array_equal(getattr(el, k), snap[k]), k


def face(el):
    """Elements of the astronaut's face (centroids inside a box around it, input pixels)."""
    return edit.select_rect(el, (170, 40, 250, 130))


def test_edits_never_modify_their_input(astronaut_elements, chelsea_elements):
    el = astronaut_elements
    snap = snapshot(el)
    ids = face(el)
    edit.move(el, ids, 30, 10)
    edit.scale(el, ids, 1.7)
    edit.delete(el, ids)
    edit.compose(el, chelsea_elements, [10, 11, 12], at=(100, 400))
    assert_unchanged(el, snap)
    assert len(el.sources) == 1


@pytest.mark.parametrize("dx, dy", [(40, -10), (13.37, 0.5), (-250.25, 123.0), (0.001, -0.001)])
def test_move_then_inverse_move_restores_exactly(astronaut_elements, chelsea_elements, dx, dy):
    for el in (astronaut_elements, chelsea_elements):
        ids = edit.select_rect(el, (60, 60, 300, 260))
        back = edit.move(edit.move(el, ids, dx, dy, collide=False), ids, -dx, -dy, collide=False)
        assert np.array_equal(back.centroids, el.centroids)  # bit-identical, not merely close
        assert np.array_equal(back.sizes, el.sizes)
        assert np.array_equal(back.active, el.active)
        assert np.array_equal(edit.owner_map(back), edit.owner_map(el))
        assert back.edited[ids].all() and not back.edited[np.setdiff1d(np.arange(len(el)), ids)].any()


def test_move_translates_centroids_by_the_offset_in_input_pixels(chelsea_elements):
    el = chelsea_elements
    ids = np.array([5, 6, 13])
    out = edit.move(el, ids, 25.0, -12.5, collide=False)
    before = el.geometry.norm_to_input(el.centroids[ids])
    after = out.geometry.norm_to_input(out.centroids[ids])
    np.testing.assert_allclose(after - before, [[25.0, -12.5]] * 3, atol=2e-3)


def collision_reference(before, after, ids):
    """Independent check of the rule with one footprint per element: who must be deleted."""
    union = np.zeros((before.size, before.size), dtype=bool)
    for i in ids:
        union |= edit.footprint(after, int(i))
    expect = before.active.copy()
    for j in np.flatnonzero(before.active):
        fp = edit.footprint(after, int(j))
        if not fp.any() or (j not in ids and (fp & union).any()):
            expect[j] = False
    return expect


@pytest.mark.parametrize("op", ["move", "grow", "shrink"])
def test_collision_rule_matches_reference_and_no_pixel_is_covered_twice(astronaut_elements, op):
    el = astronaut_elements
    ids = face(el)
    after = {
        "move": lambda: edit.move(el, ids, 57, 23, collide=False),
        "grow": lambda: edit.scale(el, ids, 1.6, collide=False),
        "shrink": lambda: edit.scale(el, ids, 0.45, collide=False),
    }[op]()
    if op != "shrink":
        assert edit.coverage(after).max() == 2  # without the rule, elements overlap
    out = edit.collide_with(after, ids)
    assert np.array_equal(out.active, collision_reference(el, after, ids))
    assert edit.coverage(out).max() <= 1
    assert out.active[ids].all()
    if op != "shrink":
        assert (~out.active).sum() > 0


def test_no_pixel_covered_twice_after_a_sequence_of_edits(astronaut_elements, chelsea_elements):
    el = astronaut_elements
    n0 = len(el)
    steps = [
        lambda e: edit.move(e, face(e), 120, 40),
        lambda e: edit.scale(e, edit.select_points(e, [[420, 300]]), 1.5),
        lambda e: edit.delete(e, edit.select_rect(e, (0, 0, 100, 100))),
        lambda e: edit.compose(
            e, chelsea_elements, edit.select_rect(chelsea_elements, (200, 60, 330, 230)), at=(100, 420), factor=0.6
        ),
        lambda e: edit.scale(e, np.arange(n0, len(e)), 1.3),
        lambda e: edit.move(e, edit.select_rect(e, (300, 300, 512, 512)), -70.5, -30.25),
    ]
    for step in steps:
        el = step(el)
        el.validate()
        cov = edit.coverage(el)
        assert cov.max() <= 1
        # every active element is visible somewhere
        for lay in edit.layers(el):
            vis = np.isin(el.source_label[lay.members], lay.warped)
            assert vis.all()


def test_delete_keeps_n_and_only_flags(astronaut_elements):
    el = astronaut_elements
    ids = face(el)
    out = edit.delete(el, ids)
    assert len(out) == len(el) and not out.active[ids].any() and out.active.sum() == el.active.sum() - len(ids)
    assert np.array_equal(out.centroids, el.centroids) and np.array_equal(out.patches, el.patches)
    cov = edit.coverage(out)
    assert cov.max() <= 1 and (cov[el.labels >= 0] == 0).sum() == sum(int(el.areas[i]) for i in ids)
    assert np.array_equal(edit.delete(out, ids).active, out.active)  # idempotent
    with pytest.raises(UserError, match="deleted"):
        edit.move(out, ids[:1], 1, 1)


def test_resize_scales_about_the_selection_centroid(astronaut_elements):
    el = astronaut_elements
    ids = edit.select_rect(el, (220, 220, 300, 300))  # far from the borders: nothing clipped
    centre = edit.selection_centroid(el, ids)
    out = edit.scale(el, ids, 1.5, collide=False)
    np.testing.assert_allclose(edit.selection_centroid(out, ids), centre, atol=1e-6)
    np.testing.assert_allclose(out.sizes[ids], el.sizes[ids] * 1.5, rtol=1e-6)
    np.testing.assert_allclose(out.centroids[ids] - centre, 1.5 * (el.centroids[ids] - centre), atol=1e-6)
    # the footprint area grows by factor^2 (up to rasterisation)
    area = sum(edit.footprint(out, int(i)).sum() for i in ids)
    assert abs(area / el.areas[ids].sum() - 2.25) < 0.05


def test_compose_places_elements_at_the_right_place_and_scale(astronaut_elements, chelsea_elements):
    el, other = astronaut_elements, chelsea_elements
    ids = edit.select_rect(other, (200, 60, 330, 230))
    out = edit.compose(el, other, ids, at=(150.0, 380.0), factor=0.5)
    new = np.arange(len(el), len(out))
    assert len(new) == len(ids) and len(out.sources) == 2 and (out.source_index[new] == 1).all()
    assert out.sources[1] is other.sources[0]
    np.testing.assert_allclose(out.geometry.norm_to_input(edit.selection_centroid(out, new)), [150.0, 380.0], atol=1e-3)
    np.testing.assert_allclose(out.sizes[new], other.sizes[ids] * 0.5, rtol=1e-6)
    # relative layout preserved, scaled by the factor
    rel_o = other.centroids[ids] - other.centroids[ids].mean(0)
    rel_n = out.centroids[new] - out.centroids[new].mean(0)
    np.testing.assert_allclose(rel_n, 0.5 * rel_o, atol=1e-6)
    assert out.edited[new].all() and out.active[new].all()
    assert edit.coverage(out).max() <= 1 and (~out.active[: len(el)]).sum() > 0
    out.validate()


def test_select_points_finds_elements_where_they_are_now(astronaut_elements):
    el = astronaut_elements
    (i,) = edit.select_points(el, [[200, 90]])
    moved = edit.move(el, [i], 150, 0)
    ys, xs = np.nonzero(edit.footprint(moved, int(i)))
    k = len(xs) // 2
    pt = moved.geometry.norm_to_input((np.array([xs[k], ys[k]]) + 0.5) / el.size)
    assert list(edit.select_points(moved, [pt])) == [i]
    with pytest.raises(UserError, match="No element"):  # its old place is a hole now
        edit.select_points(moved, [[200, 90]])


def test_select_errors(astronaut_elements):
    el = astronaut_elements
    with pytest.raises(UserError, match="Unknown element id 9999"):
        edit.select_ids(el, [1, 9999])
    with pytest.raises(UserError, match="outside"):
        edit.select_points(el, [[512, 10]])
    with pytest.raises(UserError, match="No element has its centre"):
        edit.select_rect(el, (0, 0, 0.1, 0.1))
    with pytest.raises(UserError, match="factor"):
        edit.scale(el, [1], 0.0)
    with pytest.raises(UserError, match="finite"):
        edit.move(el, [1], float("nan"), 0)


def test_off_canvas_elements_are_clipped_then_deleted(chelsea_elements):
    el = chelsea_elements
    ids = edit.select_rect(el, (300, 0, 451, 300))  # right part of the image
    partly = edit.move(el, ids, 100, 0)
    assert partly.active[ids].sum() > 0 and (~partly.active[ids]).sum() > 0  # the right-most ones left
    inside = partly.geometry.content_mask()
    for i in ids[partly.active[ids]]:
        fp = edit.footprint(partly, int(i))
        assert fp.any() and not (fp & ~inside).any()
    gone = edit.move(el, ids, 1000, 0)
    assert not gone.active[ids].any()
    assert edit.coverage(gone).max() <= 1


def test_label_boxes_are_kept_on_their_source_not_in_a_module_cache(chelsea_elements):
    """The collision rule's per-label boxes: right, computed once per source, shared by every edited value."""
    import elements.edit
    import elements.warp

    el = chelsea_elements
    src = el.sources[0]
    boxes = src.label_boxes
    assert src.label_boxes is boxes and boxes.shape == (int(src.labels.max()) + 1, 4)
    for lab in np.unique(src.labels[src.labels >= 0])[::7]:
        ys, xs = np.nonzero(src.labels == lab)
        assert boxes[lab].tolist() == [ys.min(), ys.max() + 1, xs.min(), xs.max() + 1]
    moved = edit.move(el, [3, 4], 30, 10)
    assert moved.sources[0].label_boxes is boxes  # edits keep the source, and with it the boxes
    for module in (elements.edit, elements.warp):  # no module-level dict/list a thread could change
        assert not [k for k, v in vars(module).items() if isinstance(v, (dict, list, set)) and not k.startswith("__")]
