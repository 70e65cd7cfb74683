"""Odd and hostile image files (tests/odd_inputs.py): each decodes or is refused with one sentence.

The fast suite runs a seeded sample; ``python -m pytest -m slow tests/test_fuzz_images.py`` runs all.
"""

import functools
import resource
import warnings

import numpy as np
import pytest
from odd_inputs import odd_images, sample

from elements.errors import UserError
from elements.image_io import MAX_DECODED_SIDE, MIN_SIDE, load_image


@functools.lru_cache(maxsize=1)
def _all():
    return list(odd_images(seed=0))


def check(name, data, expect):
    """Returns "ok" or "refused"; fails on any other exception, a warning, or a wrong size."""
    with warnings.catch_warnings(record=True) as caught:
        try:
            out = load_image(data, min_side=MIN_SIDE)  # as the CLIs and the demo call it
        except UserError as err:
            assert "\n" not in str(err) and len(str(err)) < 300, name
            assert expect != "ok", f"{name}: refused: {err}"
            result = "refused"
        else:
            assert expect != "refuse", f"{name}: decoded, should be refused"
            h, w, c = out.pixels.shape
            assert c == 3 and out.pixels.dtype == np.uint8 and max(h, w) <= MAX_DECODED_SIDE, name
            assert min(out.size) >= 1
            if name.startswith("orient"):
                o = int(name[6])
                assert out.size == ((32, 48) if o >= 5 else (48, 32)), (name, out.size)
                assert (w, h) == out.size
            result = "ok"
    assert not caught, f"{name}: warnings {[str(c.message) for c in caught]}"
    return result


def _run(items):
    counts = {"ok": 0, "refused": 0}
    for name, data, expect in items:
        counts[check(name, data, expect)] += 1
    return counts


def test_a_sample_of_odd_images_decodes_or_is_refused():
    items = sample(_all(), 60, seed=1)
    counts = _run(items)
    assert counts["ok"] > 10 and counts["refused"] > 5, counts


def test_orientation_and_bombs_are_always_in_the_sample():
    items = [it for it in _all() if it[0].startswith(("orient", "bomb", "float", "int32"))]
    peak0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    _run(items)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak0) / 1024
    assert grown_mb < 600, f"decoding the bombs raised peak RSS by {grown_mb:.0f} MB"


@pytest.mark.slow
def test_every_odd_image():
    counts = _run(_all())
    print(f"odd images: {len(_all())} tried, {counts['ok']} decoded, {counts['refused']} refused cleanly, 0 crashes")
