"""SAM ViT-B, the paper's partition model (Sec. 3.1), with its real weights.

``EIE_SAM_CHECKPOINT=/path/to/sam_vit_b_01ec64.pth python -m pytest -m slow tests/test_sam_vit_b.py``; skips saying
so when the variable is not set (the weights cannot be had offline), fails naming the path when it is bad.
"""

from pathlib import Path

import numpy as np
import pytest
from conftest import real_weights
from PIL import Image
from skimage.measure import label as cc_label

from elements import defaults
from elements.partition import Partitioner

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_vit_b_partition_covers_the_photo_with_connected_elements():
    checkpoint = real_weights(defaults.SAM_CHECKPOINT, folder=False)
    partitioner = Partitioner("sam", sam_checkpoint=str(checkpoint), sam_model_type="vit_b")
    photo = np.asarray(Image.open(ROOT / "assets" / "astronaut.jpg").convert("RGB"))
    el = partitioner(photo)
    assert el.meta["partition"]["model"] == "vit_b" and el.meta["partition"]["model_file"] == str(checkpoint)
    assert str(checkpoint) in partitioner.describe()
    labels, content = el.labels, el.geometry.content_mask()
    assert 192 <= el.num_elements <= 256  # ~256 elements (Sec. 3.1); small ones are merged away
    assert (labels[~content] == -1).all()
    assert ((labels < 0) & content).sum() / content.sum() <= 0.005  # the paper reports ~0.1 % dropped
    comp = cc_label(labels + 1, background=0, connectivity=1)
    pairs = np.unique(np.stack([labels[labels >= 0], comp[labels >= 0]]), axis=1)
    assert pairs.shape[1] == el.num_elements, "some element has more than one 4-connected piece"
