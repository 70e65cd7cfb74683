"""Concepts that have one implementation each: random partition, pixel conversion, tokens from cached embeddings."""

import numpy as np
import pytest
import torch

from elements.models.presets import build_content_encoder
from elements.models.tokens import collate, tokens_from_embeddings
from elements.partition import Partitioner, random_partition
from elements.pixels import SIGNED, UNIT, from_uint8, to_uint8


def test_random_partition_on_a_small_training_canvas(astronaut):
    """Training canvases of any square size S are cut along the donor labels as they are (no letterbox)."""
    from elements.data.preprocess import center_crop_resize

    canvas = center_crop_resize(astronaut, 64)
    donor = np.repeat(np.repeat(np.arange(16, dtype=np.int32).reshape(4, 4), 16, 0), 16, 1)  # 4x4 blocks
    donor[:16, :16] = 1  # block 0 merged into block 1: ids must come back contiguous
    el = random_partition(canvas, donor)
    assert el.size == 64 and el.num_elements == 15 and el.meta["partition"]["backend"] == "random"
    assert (el.labels >= 0).all()  # a square canvas has no padding: every pixel belongs to an element
    # each new element is exactly one donor region
    for i in range(el.num_elements):
        assert len(np.unique(donor[el.labels == i])) == 1
    np.testing.assert_array_equal(el.image, canvas)


def test_random_partition_letterboxes_other_images(astronaut):
    donor = Partitioner("grid", num_elements=64)(astronaut[:, :300]).labels  # a portrait image's labels
    el = random_partition(astronaut[:300], donor)  # onto a landscape image: padding rows are dropped
    assert el.size == 512 and el.geometry.input_w == 512 and el.geometry.input_h == 300
    assert (el.labels[~el.geometry.content_mask()] == -1).all()
    with pytest.raises(ValueError, match="donor labels"):
        random_partition(astronaut, donor[:100])


def test_uint8_conversion_round_trips_and_matches_the_usual_formulas():
    x = np.arange(256, dtype=np.uint8)
    np.testing.assert_array_equal(to_uint8(from_uint8(x, SIGNED), SIGNED).numpy(), x)
    np.testing.assert_array_equal(to_uint8(from_uint8(x, UNIT).numpy(), UNIT), x)
    assert torch.equal(from_uint8(x), torch.from_numpy(x).float() / 127.5 - 1.0)
    y = torch.linspace(-1.5, 1.5, 1001)
    assert torch.equal(to_uint8(y, SIGNED), ((y.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8))
    z = np.linspace(-0.1, 1.1, 1001, dtype=np.float32)
    np.testing.assert_array_equal(to_uint8(z), np.clip(np.rint(z * 255.0), 0, 255).astype(np.uint8))
    assert to_uint8(np.float32(0.5)) == 128 and to_uint8(np.float32(0.5 / 255)) == 0  # round half to even


def test_cached_tokens_equal_encoding_the_patches(astronaut):
    """Tokens from stored embeddings (encode once, edit many) equal the encoder run on the patches."""
    torch.manual_seed(0)
    enc = build_content_encoder("tiny").eval()
    part = Partitioner("grid", num_elements=16)
    els = [part(astronaut), part(astronaut[:200])]
    els[1] = els[1].replace(active=np.arange(els[1].num_elements) % 3 != 0)  # some deleted
    with torch.no_grad():
        batch = collate(els)
        direct = enc.tokens(batch)
        embeddings = [enc(torch.from_numpy(el.patches)[None])[0].numpy() for el in els]
        tokens, content, active = tokens_from_embeddings(els, embeddings, enc.config.num_freqs)
    assert torch.equal(active, batch.active)
    torch.testing.assert_close(tokens, direct, rtol=1e-5, atol=1e-5)
    assert (tokens[~active] == 0).all() and content.shape == (2, 16, enc.content_dim)
    with pytest.raises(ValueError, match="embeddings"):
        tokens_from_embeddings(els, [embeddings[0], embeddings[1][:3]], enc.config.num_freqs)
