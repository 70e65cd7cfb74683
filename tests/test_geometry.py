"""Geometry: the letterbox map between input pixels and the 512² canvas round-trips."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from elements.geometry import WORKING_SIZE, Geometry

sides = st.integers(min_value=1, max_value=4000)


@settings(max_examples=200, deadline=None)
@given(w=sides, h=sides, fx=st.floats(0, 1), fy=st.floats(0, 1), fw=st.floats(0.001, 2), fh=st.floats(0.001, 2))
def test_points_and_sizes_round_trip(w, h, fx, fy, fw, fh):
    g = Geometry.fit(w, h)
    g.validate()
    assert max(g.content_w, g.content_h) == WORKING_SIZE  # the longer side fills the canvas
    xy = np.array([fx * w, fy * h])
    np.testing.assert_allclose(g.norm_to_input(g.input_to_norm(xy)), xy, rtol=1e-9, atol=1e-9 * max(w, h))
    wh = np.array([fw * w, fh * h])
    np.testing.assert_allclose(g.norm_to_input_size(g.input_to_norm_size(wh)), wh, rtol=1e-9)
    # the image's corners are the content box's corners
    x0, y0, x1, y1 = g.content_box_norm()
    np.testing.assert_allclose(g.input_to_norm([[0, 0], [w, h]]), [[x0, y0], [x1, y1]], atol=1e-12)
    assert Geometry.from_dict(g.to_dict()) == g


@settings(max_examples=30, deadline=None)
@given(short=st.integers(min_value=1, max_value=WORKING_SIZE), portrait=st.booleans(), seed=st.integers(0, 2**16))
def test_images_at_working_scale_round_trip_exactly(short, portrait, seed):
    """Longer side 512: to_canvas pads without resampling, from_canvas crops it back bit for bit; labels too."""
    w, h = (short, WORKING_SIZE) if portrait else (WORKING_SIZE, short)
    img = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    g = Geometry.fit(w, h)
    canvas = g.to_canvas(img, fill=7)
    assert (canvas[~g.content_mask()] == 7).all()
    np.testing.assert_array_equal(g.from_canvas(canvas), img)
    labels = np.arange(WORKING_SIZE * WORKING_SIZE, dtype=np.int64).reshape(WORKING_SIZE, WORKING_SIZE)
    crop = labels[g.content_y : g.content_y + h, g.content_x : g.content_x + w]
    np.testing.assert_array_equal(g.labels_to_input(labels), crop)


def test_resampled_round_trip_is_close_for_smooth_images():
    """Other sizes are resampled twice (down to the canvas, back up): a smooth image comes back within a few levels."""
    h, w = 300, 1000
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([128 + 100 * np.sin(xx / 90.0), 128 + 100 * np.cos(yy / 70.0), (xx + yy) * 255 // (h + w)], -1)
    img = img.astype(np.uint8)
    g = Geometry.fit(w, h)
    back = g.from_canvas(g.to_canvas(img))
    assert back.shape == img.shape
    err = np.abs(back.astype(int) - img.astype(int))
    assert err.mean() < 1.0 and np.percentile(err, 99) <= 4
