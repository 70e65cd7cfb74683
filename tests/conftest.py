"""Test configuration: never touch the network, build tiny models in-process, run each test in a clean environment.

* At import, only what libraries read once when they are first imported: the Hub offline (huggingface_hub reads
  ``HF_HUB_OFFLINE`` at its import), Gradio's analytics off, the thread count. No test touches the network.
* Per test (the autouse ``isolated_env`` fixture, through ``monkeypatch``): the model locations of
  :mod:`elements.defaults` and the demo's ``EIE_APP_*`` are removed, the model cache is an empty folder and npm is
  not used, so "auto" is SLIC and no checkpoint of the developer's leaks in. A test marked ``slow`` keeps
  ``EIE_SD_BASE``, ``EIE_SD_INPAINT`` and ``EIE_SAM_CHECKPOINT`` from the caller's environment and reads them with
  :func:`real_weights`, which skips naming the variable when it is not set and fails naming a path that is bad.
* The distilled SAM that tools/install_test_deps.sh put in the user's cache is used only by the tests that ask
  for it (the ``distilled_sam`` fixture).
"""

import contextlib
import os
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ.setdefault("OMP_NUM_THREADS", "2")

import numpy as np
import pytest

from elements import defaults
from elements.partition.tinysam import cache_root

REAL_CACHE = cache_root()  # the developer's cache, read before any test points EIE_CACHE_DIR elsewhere
# What a test must not inherit: every model location, the demo's choices.
ISOLATED = (*(d.env for d in defaults.ALL.values()), "EIE_APP_PARTITION", "EIE_APP_DECODER", "EIE_APP_DEVICE")
# What a slow test reads from the caller's environment (real weights; see real_weights).
SLOW_WEIGHTS = (defaults.SD_BASE.env, defaults.SD_INPAINT.env, defaults.SAM_CHECKPOINT.env)
CALLER_ENV = {var: os.environ[var] for var in SLOW_WEIGHTS if var in os.environ}


def _isolate(mp: pytest.MonkeyPatch, cache_dir: Path, keep=()) -> None:
    for var in ISOLATED:
        mp.delenv(var, raising=False)
    for var in keep:
        if var in CALLER_ENV:
            mp.setenv(var, CALLER_ENV[var])
    mp.setenv("EIE_CACHE_DIR", str(cache_dir))
    mp.setenv("EIE_NO_NPM", "1")


@pytest.fixture(scope="session")
def empty_cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("eie-cache")


@pytest.fixture(scope="session", autouse=True)
def _session_env(empty_cache_dir):
    """Session fixtures (built before any test's own fixtures) see the same clean environment as the tests."""
    with pytest.MonkeyPatch.context() as mp:
        _isolate(mp, empty_cache_dir)
        yield


@pytest.fixture(autouse=True)
def isolated_env(request, monkeypatch, empty_cache_dir):
    """Each test starts from the clean environment; a ``slow`` test also gets the caller's weight locations."""
    _isolate(monkeypatch, empty_cache_dir, SLOW_WEIGHTS if request.node.get_closest_marker("slow") else ())


def real_weights(default: defaults.Default, *, folder: bool) -> Path:
    """The local path of a slow test's real weights, from ``default.env`` (a path, or a Hub id in the local cache).

    Skips with one sentence naming the variable when it is not set; fails with one line naming the value when it
    does not lead to weights (a path that does not exist, a Hub id that is not in the cache).
    """
    from elements.errors import UserError
    from elements.hub import resolve_file, resolve_folder

    value = os.environ.get(default.env, "").strip()
    if not value:
        pytest.skip(f"{default.env} is not set; point it at the {default.what} to run this test.")
    try:
        if not folder:
            return resolve_file(value, what=default.what, env=default.env)
        root, sub = resolve_folder(value, what=default.what, env=default.env)
        path = Path(root) / sub if sub else Path(root)
        problem = None if path.is_dir() else f"the Hub repo has no folder '{sub}'."
    except UserError as err:
        problem = str(err)
    if problem:  # failed outside the except block, so that the report is this one line, not a chain
        pytest.fail(f"{default.env}={value}: {problem}", pytrace=False)
    return path


ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def astronaut():
    from skimage import data

    return data.astronaut()


@pytest.fixture(scope="session")
def chelsea():
    from skimage import data

    return data.chelsea()


@pytest.fixture(scope="session")
def coffee():
    from skimage import data

    return data.coffee()


@pytest.fixture(scope="session")
def astronaut_elements(astronaut):
    """SLIC partition of the astronaut photo (the offline default backend)."""
    from elements.partition import Partitioner

    return Partitioner("slic")(astronaut)


@pytest.fixture(scope="session")
def tiny_sam():
    from elements.partition.sam import build_tiny_sam

    return build_tiny_sam(img_size=256)


@pytest.fixture(scope="session")
def distilled_sam():
    """The real distilled SAM (vit_t) from the user's cache, loaded once per session; skips saying why without it."""
    from elements.errors import UserError
    from elements.partition.tinysam import _CACHE_NAME, load_tinysam

    try:
        return load_tinysam(str(REAL_CACHE / _CACHE_NAME))
    except UserError as err:
        pytest.skip(f"distilled SAM not available ({err}); tools/install_test_deps.sh fetches it")


@pytest.fixture
def fresh_accelerate_state():
    """accelerate's process-wide state reset before and after a test that builds an Accelerator."""
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    yield
    AcceleratorState._reset_state(True)
    GradientState._reset_state()


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def assert_box_affinity(s, boxes, full, size, atol=1e-5):
    """``s`` (SamAffinity.dense's BoxAffinity) equals ``full (N, S, S)`` within ``atol`` inside every non-empty box,
    read both ways."""
    assert s.shape == (len(boxes), size, size)
    for k, (x0, y0, x1, y1) in enumerate(boxes):
        if x1 > x0 and y1 > y0:
            np.testing.assert_allclose(s.values[k, : y1 - y0, : x1 - x0], full[k, y0:y1, x0:x1], atol=atol)
            yy, xx = np.mgrid[y0:y1, x0:x1]
            np.testing.assert_allclose(s[np.full_like(yy, k), yy, xx], full[k, y0:y1, x0:x1], atol=atol)


@contextlib.contextmanager
def serve_demo():
    """Build ``app.py``'s demo, launch it on a free 127.0.0.1 port, yield its URL, then close it."""
    import importlib.util
    import socket

    from elements.ui import backends

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    backends._reset_for_tests()
    spec = importlib.util.spec_from_file_location("eie_app", ROOT / "app.py")
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    demo = app.build_demo()
    kw = app.launch_kwargs(port=port)
    demo.launch(prevent_thread_lock=True, quiet=True, **kw)
    try:
        yield f"http://127.0.0.1:{kw['server_port']}/"
    finally:
        demo.close()
        backends._reset_for_tests()
