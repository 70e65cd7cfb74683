"""Test configuration: never touch the network, build tiny models in-process."""

import os

# Set before anything imports huggingface_hub / gradio.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ.setdefault("OMP_NUM_THREADS", "2")
# Make sure no real checkpoint leaks into the tests from the developer's environment.
for var in ("EIE_SAM_CHECKPOINT", "EIE_STAGE1_CHECKPOINT", "EIE_STAGE2_CHECKPOINT", "EIE_SD_BASE", "EIE_SD_INPAINT"):
    os.environ.pop(var, None)

import numpy as np  # noqa: E402
import pytest  # noqa: E402


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


@pytest.fixture
def rng():
    return np.random.default_rng(0)
