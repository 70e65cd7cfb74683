"""Content encoder, element tokens, light decoder and the stage-1 reconstructor (Sec. 3.2, App. C.1)."""

import numpy as np
import pytest
import torch

from elements.errors import UserError
from elements.models.positional import box_embedding, box_embedding_dim, grid_coordinates
from elements.models.presets import build_content_encoder, build_light_decoder
from elements.models.tokens import collate, element_tokens


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return build_content_encoder("tiny").eval(), build_light_decoder("tiny").eval()


def _batch(b=2, n=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    patches = torch.rand(b, n, 3, 32, 32, generator=g)
    boxes = torch.cat([torch.rand(b, n, 2, generator=g), 0.05 + 0.2 * torch.rand(b, n, 2, generator=g)], -1)
    return patches, boxes


def test_shapes(tiny):
    enc, dec = tiny
    patches, boxes = _batch()
    active = torch.ones(2, 7, dtype=torch.bool)
    content = enc(patches)
    assert content.shape == (2, 7, 32) and content.dtype == torch.float32
    tokens = element_tokens(content, boxes, active, enc.config.num_freqs)
    assert tokens.shape == (2, 7, enc.token_dim) == (2, 7, 32 + box_embedding_dim(enc.config.num_freqs))
    out = dec(tokens, content, active)
    assert out.shape == (2, 3, 512, 512) and torch.isfinite(out).all()
    assert box_embedding(boxes, 3).shape == (2, 7, 4 * 7)


def test_paper_preset_structure():
    enc, dec = build_content_encoder("paper"), build_light_decoder("paper")
    # 4 stride-2 downsamplings (Sec. 3.2), mid block = 2 ResBlocks + 1 attention, output 32 channels (App. C.1)
    downs = [b for b in enc.encoder.down_blocks if b.downsamplers is not None]
    assert len(downs) == 4
    assert len(enc.encoder.mid_block.resnets) == 2 and len(enc.encoder.mid_block.attentions) == 1
    assert enc.encoder.conv_out.out_channels == 32
    with torch.no_grad():
        assert enc.encoder(torch.zeros(1, 3, 32, 32)).shape == (1, 32, 2, 2)
    # 4 blocks x (1 cross-attention with 1 head + 2 self-attentions with 16 heads), 512 channels (App. C.1)
    assert len(dec.cross) == 4 and all(len(s) == 2 for s in dec.self_attn)
    assert all(c.heads == 1 and c.to_q.out_features == 512 for c in dec.cross)
    assert all(b.attn1.heads == 16 and b.attn1.inner_dim == 512 for s in dec.self_attn for b in s)
    assert dec.grid.shape[0] == 32 * 32
    assert dec.cross[0].to_v.in_features == 32  # values: content only, no spatial information
    assert dec.cross[0].to_k.in_features == enc.token_dim  # keys: full tokens


def test_grid_coordinates_row_major():
    g = grid_coordinates(4)
    assert torch.allclose(g[1], torch.tensor([0.375, 0.125])) and torch.allclose(g[4], torch.tensor([0.125, 0.375]))


def test_permutation_invariance(tiny):
    enc, dec = tiny
    patches, boxes = _batch(1, 9)
    active = torch.ones(1, 9, dtype=torch.bool)
    active[0, 3] = False
    perm = torch.randperm(9, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        c = enc(patches)
        t = element_tokens(c, boxes, active, enc.config.num_freqs)
        a = dec(t, c, active)
        b = dec(t[:, perm], c[:, perm], active[:, perm])
    assert torch.allclose(a, b, atol=1e-5)


def test_deleting_equals_zeroing_tokens(tiny):
    enc, dec = tiny
    patches, boxes = _batch(1, 8)
    active = torch.tensor([[1, 0, 1, 1, 0, 1, 0, 1]], dtype=torch.bool)
    with torch.no_grad():
        c = enc(patches)
        t = element_tokens(c, boxes, active, enc.config.num_freqs)
        # Sec. 3.3: both appearance and spatial part of a deleted element are zero, N is kept
        assert t.shape[1] == 8 and (t[~active] == 0).all() and (t[active] != 0).any(dim=-1).all()
        deleted = dec(t, c, active)
        # zeroing the token rows (activity read off the tokens) is the same as deleting
        zeroed = dec(t, c * active[..., None], None)
        # ... and the same as removing the elements from the set
        removed = dec(t[:, active[0]], c[:, active[0]], torch.ones(1, 5, dtype=torch.bool))
        # whatever the deleted slots' content holds does not leak
        garbage = dec(t, torch.where(active[..., None], c, torch.randn_like(c)), active)
        full = dec(element_tokens(c, boxes, torch.ones_like(active), enc.config.num_freqs), c, None)
    assert torch.allclose(deleted, zeroed, atol=1e-5)
    assert torch.allclose(deleted, removed, atol=1e-5)
    assert torch.allclose(deleted, garbage, atol=1e-5)
    assert not torch.allclose(deleted, full, atol=1e-3)


def test_all_deleted_is_finite(tiny):
    enc, dec = tiny
    out = dec(torch.zeros(2, 4, enc.token_dim), torch.zeros(2, 4, 32), torch.zeros(2, 4, dtype=torch.bool))
    assert torch.isfinite(out).all()


def test_batching_equals_single(tiny, astronaut_elements):
    enc, dec = tiny
    el = astronaut_elements
    small = el.replace(centroids=el.centroids[:20], sizes=el.sizes[:20], patches=el.patches[:20], active=el.active[:20])
    with torch.no_grad():
        single = collate([small])
        content1, tokens1 = enc.encode_batch(single)
        alone = dec(tokens1, content1, single.active)
        batch = collate([el, small])
        content, tokens = enc.encode_batch(batch)
        both = dec(tokens, content, batch.active)
    assert batch.active[1, 20:].logical_not().all() and batch.num_elements == el.num_elements
    assert torch.allclose(both[1], alone[0], atol=1e-4)


def test_save_load_round_trip(tiny, tmp_path):
    from elements.models.content_encoder import ContentEncoder
    from elements.models.light_decoder import LightDecoderNet

    enc, dec = tiny
    enc.save_pretrained(tmp_path / "content_encoder")
    dec.save_pretrained(tmp_path / "light_decoder")
    assert (tmp_path / "content_encoder" / "diffusion_pytorch_model.safetensors").is_file()
    enc2 = ContentEncoder.from_pretrained(tmp_path, subfolder="content_encoder").eval()
    dec2 = LightDecoderNet.from_pretrained(tmp_path, subfolder="light_decoder").eval()
    patches, boxes = _batch()
    active = torch.ones(2, 7, dtype=torch.bool)
    with torch.no_grad():
        c1, c2 = enc(patches), enc2(patches)
        t = element_tokens(c1, boxes, active, enc.config.num_freqs)
        assert torch.equal(c1, c2)
        assert torch.equal(dec(t, c1, active), dec2(t, c1, active))


def test_light_decoder_reconstructs(tiny, tmp_path, astronaut_elements):
    from elements.decoders.light import LightDecoder, encode
    from elements.decoders.reconstruct import LightReconstructor

    enc, dec = tiny
    enc.save_pretrained(tmp_path / "content_encoder")
    dec.save_pretrained(tmp_path / "light_decoder")
    light = LightDecoder.from_pretrained(str(tmp_path))

    def rec(el):
        return light.decode([el])[0]

    old = LightReconstructor.from_pretrained(str(tmp_path))  # the old name, kept one release
    assert np.array_equal(old(astronaut_elements), rec(astronaut_elements)) and old.decoder is old.net
    el = astronaut_elements
    encoded = encode(el, light.encoder)
    assert encoded.embeddings.shape == (el.num_elements, 32) and encoded.embeddings.dtype == np.float32
    encoded.validate()
    a = rec(el)
    assert a.shape == (512, 512, 3) and a.dtype == np.uint8
    assert np.array_equal(a, rec(encoded))  # stored embeddings give the same result as encoding on the fly
    # the reconstructor follows edits: moving and deleting elements changes the output
    moved = encoded.replace(centroids=np.clip(encoded.centroids + 0.2, 0, 1).astype(np.float32))
    deleted = encoded.replace(active=np.zeros_like(encoded.active))
    assert not np.array_equal(a, rec(moved)) and not np.array_equal(a, rec(deleted))
    # deleting = giving the decoder only the remaining elements
    keep = np.arange(el.num_elements) % 2 == 0
    half = encoded.replace(active=keep)
    sub = encoded.replace(
        centroids=encoded.centroids[keep],
        sizes=encoded.sizes[keep],
        patches=encoded.patches[keep],
        active=encoded.active[keep],
        embeddings=encoded.embeddings[keep],
    )
    assert np.abs(rec(half).astype(int) - rec(sub).astype(int)).max() <= 1


def test_light_decoder_errors(tmp_path, monkeypatch):
    from elements.decoders.light import LightDecoder

    monkeypatch.delenv("EIE_STAGE1_CHECKPOINT", raising=False)
    with pytest.raises(UserError, match="EIE_STAGE1_CHECKPOINT"):
        LightDecoder.from_pretrained()
    with pytest.raises(UserError, match="content_encoder/config.json"):
        LightDecoder.from_pretrained(str(tmp_path))
    with pytest.raises(UserError, match="HF_HUB_OFFLINE"):
        LightDecoder.from_pretrained("nobody/no-such-stage1")


def test_unknown_preset():
    with pytest.raises(UserError, match="tiny"):
        build_content_encoder("huge")


def test_fourier_feature_values():
    """NeRF-style features, laid out [x, sin(2^k π x) per dim, cos(2^k π x) per dim], checked on hand values."""
    from elements.models.positional import fourier_features

    x = torch.tensor([[0.5, 0.25]])
    r = 2**-0.5
    expected = torch.tensor(
        [
            [
                0.5,
                0.25,
                1.0,
                0.0,
                r,
                1.0,  # sin(π/2), sin(π), sin(π/4), sin(π/2)
                0.0,
                -1.0,
                r,
                0.0,
            ]
        ]
    )  # cos(π/2), cos(π), cos(π/4), cos(π/2)
    torch.testing.assert_close(fourier_features(x, 2), expected, atol=1e-6, rtol=0)
    assert torch.equal(fourier_features(x, 0), x)
    # a box embedding is the features of (cx, cy, w, h); F = 8 resolves 2^-8 of the canvas (2 px at 512)
    boxes = torch.tensor([[[0.5, 0.25, 0.125, 1.0]]])
    emb = box_embedding(boxes, 8)
    assert emb.shape == (1, 1, box_embedding_dim(8)) == (1, 1, 68)
    torch.testing.assert_close(emb[0, 0, 4 + 7], torch.sin(torch.tensor(128 * torch.pi * 0.5)), atol=1e-4, rtol=0)
    torch.testing.assert_close(emb, fourier_features(boxes, 8))
    shifted = box_embedding(boxes + torch.tensor([2**-8, 0, 0, 0]), 8)
    assert (shifted - emb).abs().max() > 0.5  # one 2-px step changes the highest octave a lot
