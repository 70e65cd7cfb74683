"""ImageElements: exact save/load round trip and validation on load."""

import json

import numpy as np
import pytest

from elements.types import ImageElements


def test_save_load_round_trip_is_exact(astronaut_elements, tmp_path, rng):
    el = astronaut_elements.replace(
        embeddings=rng.standard_normal((astronaut_elements.num_elements, 32)).astype(np.float32),
        active=np.r_[False, astronaut_elements.active[1:]],
    )
    el.save(tmp_path)
    back = ImageElements.load(tmp_path)
    for name in ImageElements._ARRAYS + ("embeddings",):
        a, b = getattr(el, name), getattr(back, name)
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(el.image, back.image)
    np.testing.assert_array_equal(el.labels, back.labels)
    assert back.geometry == el.geometry
    assert back.meta == json.loads(json.dumps(el.meta))


def test_load_validates(astronaut_elements, tmp_path):
    astronaut_elements.save(tmp_path)
    meta = json.loads((tmp_path / "elements_meta.json").read_text())
    meta["num_elements"] += 1
    (tmp_path / "elements_meta.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="elements"):
        ImageElements.load(tmp_path)
    with pytest.raises(ValueError, match="no saved ImageElements"):
        ImageElements.load(tmp_path / "nothing")
    (tmp_path / "elements.safetensors").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="corrupt"):
        ImageElements.load(tmp_path)


def test_validate_catches_bad_values(astronaut_elements):
    el = astronaut_elements
    with pytest.raises(ValueError, match="NaN"):
        el.replace(centroids=np.full_like(el.centroids, np.nan)).validate()
    with pytest.raises(ValueError, match="sizes"):
        el.replace(sizes=np.zeros_like(el.sizes)).validate()
    with pytest.raises(ValueError, match="must be"):
        el.replace(centroids=el.centroids[:-1]).validate()


def test_records_are_in_input_pixels(chelsea):
    from elements.partition import Partitioner

    el = Partitioner("grid")(chelsea)
    rec = el.records()
    xs = np.array([r["centroid"][0] for r in rec])
    ys = np.array([r["centroid"][1] for r in rec])
    assert xs.min() > 0 and xs.max() < 451 and ys.min() > 0 and ys.max() < 300
    # areas add up to the input image's area (nothing dropped by the grid)
    assert sum(r["area"] for r in rec) == pytest.approx(451 * 300, rel=0.01)
