"""Serving a crowd (issue 22): the shared partition cache, its bounds, and what the demo says it runs."""

import json
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from elements.ui import api, backends, session
from elements.ui.cache import BoundedCache, nbytes

ROOT = Path(__file__).resolve().parents[1]
CHELSEA = str(ROOT / "assets" / "chelsea.jpg")


@pytest.fixture(scope="module", autouse=True)
def offline_backends():
    backends._reset_for_tests()
    session.PARTITIONS.clear()
    yield
    backends._reset_for_tests()
    session.PARTITIONS.clear()


def test_nbytes_counts_arrays_once_through_containers_and_views():
    a = np.zeros((100, 100), np.float32)  # 40,000 bytes
    assert nbytes(a) == 40_000
    assert nbytes((a, a[10:20], {"x": a}, [a.T])) == 40_000  # views and repeats count their base once
    assert nbytes(("text", 3, None)) == 0


def test_the_cache_drops_the_least_recently_used_within_its_byte_and_entry_caps():
    cache = BoundedCache("t", max_bytes=3_000, max_items=3)
    block = lambda: np.zeros(1_000, np.uint8)
    for k in "abc":
        cache.put(k, block())
    cache.get_or_compute("a", lambda: pytest.fail("a is cached"))  # a is now the most recent
    cache.put("d", block())  # over 3,000 bytes: b (least recent) goes
    assert set(cache._items) == {"a", "c", "d"} and cache.size_bytes == 3_000
    cache.put("big", np.zeros(5_000, np.uint8))  # larger than the whole budget: not kept, nothing evicted
    assert "big" not in cache._items and len(cache) == 3
    small = BoundedCache("t", max_bytes=10**9, max_items=2)
    for k in range(5):
        small.put(k, k)
    assert list(small._items) == [3, 4]


def test_concurrent_misses_of_one_key_compute_it_once_and_a_failure_is_not_kept():
    cache = BoundedCache("t", max_bytes=10**6, max_items=8)
    calls, results = [], []

    def slow():
        calls.append(1)
        time.sleep(0.2)
        return np.ones(10)

    threads = [threading.Thread(target=lambda: results.append(cache.get_or_compute("k", slow))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(results) == 4 and all(r is results[0] for r in results)

    def broken():
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        cache.get_or_compute("bad", broken)
    assert cache.get_or_compute("bad", lambda: 7) == 7  # the failure was not stored


def test_edit_calls_reuse_the_partition_of_the_same_photo_in_any_session():
    session.PARTITIONS.clear()
    part = backends.partitioner()
    runs = []
    original = type(part).__call__

    def counting(self, image):
        runs.append(1)
        return original(self, image)

    type(part).__call__ = counting
    try:
        _, doc = api.api_partition(CHELSEA)
        ids = [e["id"] for e in json.loads(doc)["elements"]]
        spec = {"version": 1, "edits": [{"op": "move", "elements": ids[:2], "dx": 20, "dy": 0}]}
        first = api.api_edit(CHELSEA, json.dumps(spec), "pixel", 0)
        again = api.api_edit(CHELSEA, json.dumps(spec), "pixel", 0)
    finally:
        type(part).__call__ = original
    assert len(runs) == 1  # /partition partitioned; both /edit calls reused it
    assert np.array_equal(first, again)
    el, _ = session.PARTITIONS.get_or_compute(next(iter(session.PARTITIONS._items)), pytest.fail)
    assert not el.edited.any() and el.active.all()  # the shared value was never edited in place


def test_the_allocator_settings_and_trim_run_on_glibc():
    from elements import memory

    assert memory.configure_allocator() in (True, False)  # False only off glibc
    memory.trim_heap()


def _fake_partitioner(model_type: str, refine: str):
    return SimpleNamespace(
        backend="sam",
        affinity=SimpleNamespace(model_type=model_type, description=f"SAM {model_type}"),
        refine=refine,
        method="Alg. 2, the paper's partition" if refine == "none" else "Alg. 2, borders refined",
        note="",
    )


@pytest.mark.parametrize(
    ("model_type", "refine", "head"),
    [
        ("vit_b", "none", "The paper's method"),
        ("vit_b", "borders", "Approximation of the paper's method"),
        ("vit_t", "none", "Approximation of the paper's method"),
    ],
)
def test_the_banner_calls_only_the_paper_partition_with_a_paper_decoder_the_paper_s_method(
    monkeypatch, model_type, refine, head
):
    monkeypatch.setattr(backends, "partitioner", lambda: _fake_partitioner(model_type, refine))
    line = backends.banner("light")
    assert line.startswith(f"**{head}:**"), line
    if head != "The paper's method":
        assert "not the paper's ViT-B Alg. 2" in line


def test_the_pixel_decoder_is_said_to_leave_black_holes_and_does():
    from elements.decoders.pixel import HOLE_VALUE

    assert HOLE_VALUE == 0 and "holes are left black" in backends.PLAIN_DECODERS["pixel"]


def test_sampler_settings_are_each_decoder_s_own_defaults():
    import importlib.util

    from elements.decoders import sampler_defaults

    spec = importlib.util.spec_from_file_location("eie_app", ROOT / "app.py")
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    for name in ("diffusion", "pixel+sdedit", "pixel+inpaint"):
        steps, guidance = app.sampler_settings(name)
        own = sampler_defaults(name)
        assert steps["value"] == own.steps and guidance["value"] == own.guidance, name
    assert app.sampler_settings("diffusion")[1]["value"] != app.sampler_settings("pixel+sdedit")[1]["value"]
    assert "value" not in app.sampler_settings("pixel")[0]  # no sampler: the hidden sliders stay as they are
