"""Border refinement after Alg. 2 (elements/partition/refine.py) and the boundary metrics of bench/boundaries.py."""

import hashlib

import numpy as np
import pytest
from skimage.draw import disk, polygon
from skimage.measure import label as cc_label

from bench.boundaries import (
    achievable_accuracy,
    boundary_recall,
    contingency,
    make_scene,
    object_error,
    undersegmentation_error,
)
from elements.partition import Partitioner
from elements.partition.algorithm import query_grid, run_algorithm2
from elements.partition.refine import BAND, border_distance, refine_borders

#: sha256 of Partitioner("sam", sam_model=build_tiny_sam(img_size=256), refine="none")(data.astronaut()).labels
#: as little-endian int32, computed with the code before the refinement existed (commit cff6f0b).
ALG2_ASTRONAUT_SHA256 = "6be1b86ebca3ff9f667fff33cbfacc01840ea9e16984c30738c9b199cd5e1298"


def _scene():
    """Two textured objects on a textured background, 256² (fast), and their segments."""
    rng = np.random.default_rng(0)
    seg = np.zeros((256, 256), np.int32)
    rr, cc = disk((100, 90), 55)
    seg[rr, cc] = 1
    rr, cc = polygon([150, 240, 240, 170], [140, 130, 240, 235])
    seg[rr, cc] = 2
    colours = np.array([[60, 140, 60], [220, 200, 40], [80, 60, 200]], np.float32)
    img = colours[seg] + rng.normal(0, 8, (256, 256, 3))
    return np.clip(img, 0, 255).astype(np.uint8), seg


def _grid_partition(size: int, num: int) -> np.ndarray:
    """The regular grid (Alg. 2 with a uniform affinity): borders that ignore the image."""
    valid = np.ones((size, size), bool)
    s = np.zeros((1, size, size), np.float32)
    return run_algorithm2(lambda pts: np.broadcast_to(s, (len(pts), size, size)), query_grid((0, 0, 1, 1), num), valid)


def _one_piece_each(labels: np.ndarray) -> bool:
    comp = cc_label(labels + 1, background=0, connectivity=1)
    shown = labels >= 0
    pairs = np.unique(np.stack([labels[shown], comp[shown]]), axis=1)
    return pairs.shape[1] == len(np.unique(labels[shown]))


def test_refined_borders_find_the_object_edges():
    img, seg = _scene()
    valid = np.ones(seg.shape, bool)
    before = _grid_partition(256, 64)
    after = refine_borders(before, img, valid)
    assert boundary_recall(after, seg, valid) > boundary_recall(before, seg, valid) + 0.2
    assert object_error(after, seg == 1) < 0.5 * object_error(before, seg == 1)
    # the same elements, each one piece, nothing dropped, and no border moved further than BAND
    assert after.max() == before.max() and (after >= 0).all()
    assert _one_piece_each(after)
    moved = after != before
    assert (border_distance(before)[moved] <= BAND).all()


def test_refinement_changes_nothing_without_band_or_edges():
    img, _ = _scene()
    valid = np.ones((256, 256), bool)
    grid = _grid_partition(256, 64)
    assert np.array_equal(refine_borders(grid, img, valid, band=0), grid)
    flat = np.full_like(img, 128)
    assert np.array_equal(refine_borders(grid, flat, valid), grid)  # the grid is SLIC's fixed point on a flat image


def test_refinement_keeps_padding_and_fills_dropped_pixels():
    img, _ = _scene()
    valid = np.zeros((256, 256), bool)
    valid[40:216] = True  # a letterbox
    grid = np.where(valid, _grid_partition(256, 64), -1)
    grid[100, 100] = -1  # a pixel Alg. 2 dropped
    out = refine_borders(grid, img, valid)
    assert (out[~valid] == -1).all() and (out[valid] >= 0).all()
    assert _one_piece_each(out)


def test_alg2_option_gives_the_previous_labels(tiny_sam):
    from skimage import data

    el = Partitioner("sam", sam_model=tiny_sam, refine="none")(data.astronaut())
    assert hashlib.sha256(el.labels.astype("<i4").tobytes()).hexdigest() == ALG2_ASTRONAUT_SHA256
    assert el.meta["partition"]["refine"] == "none"


def test_default_is_alg2_then_refined_borders(tiny_sam, astronaut):
    from elements.image_io import load_image
    from elements.partition import to_canvas

    plain = Partitioner("sam", sam_model=tiny_sam, refine="none")
    default = Partitioner("sam", sam_model=tiny_sam)
    assert default.refine == "borders" and "borders refined" in default.describe()
    assert "the paper's partition" in plain.describe()
    geometry, canvas = to_canvas(load_image(astronaut))
    want = refine_borders(plain.labels(canvas, geometry), canvas, geometry.content_mask())
    assert np.array_equal(default.labels(canvas, geometry), want)


def test_refine_flag_and_bad_value():
    import argparse

    from elements.errors import UserError
    from elements.partition.options import add_partition_args, partition_kwargs

    p = argparse.ArgumentParser()
    add_partition_args(p)
    assert partition_kwargs(p.parse_args([]))["refine"] == "borders"
    assert partition_kwargs(p.parse_args(["--refine", "none"]))["refine"] == "none"
    with pytest.raises(UserError, match="border refinement"):
        Partitioner("slic", refine="snap")


def test_metrics_match_hand_computed_values():
    gt = np.zeros((4, 4), np.int64)
    gt[:, 2:] = 1  # two halves
    sp = np.zeros((4, 4), np.int64)
    sp[:, 1:] = 1  # element 1 holds 4 px of segment 0 and all 8 of segment 1
    valid = np.ones((4, 4), bool)
    c = contingency(sp, gt, valid)
    assert c.tolist() == [[4, 0], [4, 8]]
    # UE: segment 0 meets S0 (min(4, 0)) and S1 (min(4, 8)); segment 1 meets S1 (min(8, 4)) -> (0 + 4 + 4) / 16
    assert undersegmentation_error(c) == pytest.approx(0.5)
    assert achievable_accuracy(c) == pytest.approx((4 + 8) / 16)
    # the gt border (column 1|2) is one pixel from the element border (column 0|1): recall 1 at 2 px, 0 at 0 px
    assert boundary_recall(sp, gt, valid, tol=2) == 1.0 and boundary_recall(sp, gt, valid, tol=0) == 0.0
    # object = segment 1: element 1 is 8/12 inside -> U = element 1; error = 4 leaked / 8
    assert object_error(sp, gt == 1) == pytest.approx(0.5)


def test_generated_scenes_are_fixed_and_have_objects():
    a, sa = make_scene(3)
    b, sb = make_scene(3)
    assert np.array_equal(a, b) and np.array_equal(sa, sb)
    assert a.shape == (512, 512, 3) and a.dtype == np.uint8
    assert 2 <= len(np.unique(sa)) - 1 <= 5
