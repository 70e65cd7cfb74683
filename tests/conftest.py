"""Test configuration: never touch the network, build tiny models in-process."""

import contextlib
import os
from pathlib import Path

# Set before anything imports huggingface_hub / gradio.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ.setdefault("OMP_NUM_THREADS", "2")
# Make sure no real checkpoint leaks into the tests from the developer's environment.
for var in (
    "EIE_SAM_CHECKPOINT",
    "EIE_STAGE1_CHECKPOINT",
    "EIE_STAGE2_CHECKPOINT",
    "EIE_SD_BASE",
    "EIE_SD_INPAINT",
    "EIE_TINYSAM",
    "EIE_SAM_MODEL_TYPE",
):
    os.environ.pop(var, None)
# The distilled SAM that tools/install_test_deps.sh put in the user's cache is used only by the tests that
# ask for it (the `distilled_sam` fixture); everything else sees an empty cache and no fetching, so "auto" is SLIC.
from elements.partition.tinysam import cache_root  # noqa: E402

REAL_CACHE = cache_root()
os.environ["EIE_CACHE_DIR"] = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"eie-test-cache-{os.getpid()}")
os.environ["EIE_NO_NPM"] = "1"

import numpy as np  # noqa: E402
import pytest  # noqa: E402

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
def rng():
    return np.random.default_rng(0)


def assert_box_affinity(s, boxes, full, size):
    """``s`` (SamAffinity.dense's BoxAffinity) equals ``full (N, S, S)`` inside every non-empty box, read both ways."""
    assert s.shape == (len(boxes), size, size)
    for k, (x0, y0, x1, y1) in enumerate(boxes):
        if x1 > x0 and y1 > y0:
            np.testing.assert_allclose(s.values[k, : y1 - y0, : x1 - x0], full[k, y0:y1, x0:x1], atol=1e-5)
            yy, xx = np.mgrid[y0:y1, x0:x1]
            np.testing.assert_allclose(s[np.full_like(yy, k), yy, xx], full[k, y0:y1, x0:x1], atol=1e-5)


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
