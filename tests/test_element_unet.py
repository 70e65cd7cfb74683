"""Element cross-attention (Alg. 1) through diffusers attention processors, on a tiny random UNet."""

import copy
import logging

import pytest
import torch
from diffusers import UNet2DConditionModel
from diffusers.models.attention_processor import AttnProcessor2_0

from elements.models.element_attention import (
    ElementAdapter,
    ElementAttnProcessor,
    PassThroughAttnProcessor,
    element_processors,
    set_slice_size,
)
from elements.models.element_unet import ElementUNet

TOKEN_DIM = 36  # 32 content + 4 positional, the smallest plausible token


def tiny_unet(seed=0):
    torch.manual_seed(seed)
    return UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        sample_size=8,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=4,
    ).eval()


def inputs(batch=2, n=5, seed=1):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(batch, 4, 8, 8, generator=g)
    t = torch.tensor([10, 500][:batch] + [999] * max(0, batch - 2))
    text = torch.randn(batch, 7, 32, generator=g)
    tokens = torch.randn(batch, n, TOKEN_DIM, generator=g)
    return z, t, text, tokens


@pytest.fixture
def model():
    unet = tiny_unet()
    torch.manual_seed(3)
    return ElementUNet.from_base(unet, token_dim=TOKEN_DIM).eval()


def test_processor_on_every_attn2_and_nowhere_else(model):
    procs = model.unet.attn_processors
    attn2 = [k for k in procs if k.endswith("attn2.processor")]
    expected = [n for n, m in model.unet.named_modules() if n.endswith("attn2")]
    assert len(expected) == 1 + 1 + 2  # down block (1 layer), mid block, up block (layers + 1)
    assert attn2 == [n + ".processor" for n in expected] and len(model.adapter.layers) == 4
    for name, proc in procs.items():
        if name.endswith("attn2.processor"):
            assert isinstance(proc, ElementAttnProcessor)
        else:
            assert isinstance(proc, PassThroughAttnProcessor), name
    # each attn2 refers to its own element layer
    assert len({id(procs[k].layer) for k in attn2}) == len(attn2)
    # the UNet state dict stays a vanilla SD UNet: the element layers live in the adapter only
    assert not any("processor" in k for k in model.unet.state_dict())


def test_set_attn_processor_gets_a_fresh_dict_each_time(model):
    d = element_processors(model.unet, model.adapter)
    n = len(d)
    model.unet.set_attn_processor(d)
    assert len(d) == 0  # diffusers pops what it uses: hence element_processors() builds a new dict per call
    model.unet.set_attn_processor(element_processors(model.unet, model.adapter))
    assert len(model.unet.attn_processors) == n


def test_zeroed_element_branch_equals_vanilla_unet_exactly():
    vanilla = tiny_unet()
    model = ElementUNet.from_base(copy.deepcopy(vanilla), token_dim=TOKEN_DIM, init="zero_out").eval()
    z, t, text, tokens = inputs()
    with torch.no_grad():
        ref = vanilla(z, t, encoder_hidden_states=text).sample
        out = model(z, t, text, tokens)
    assert torch.equal(out, ref)


def test_text_only_equals_vanilla_unet_for_any_adapter(model):
    vanilla = tiny_unet()
    z, t, text, tokens = inputs()
    with torch.no_grad():
        ref = vanilla(z, t, encoder_hidden_states=text).sample
        assert torch.equal(model(z, t, text, None), ref)
        # S = ∅ per sample through the mask is the same thing
        assert torch.equal(model(z, t, text, tokens, element_mask=torch.tensor([False, False])), ref)


def test_four_cases_differ_and_batch_like_separate_calls(model):
    z, t, text, tokens = inputs(batch=4)
    with torch.no_grad():
        both = model(z, t, text, tokens)
        elements_only = model(z, t, None, tokens)
        text_only = model(z, t, text, None)
        neither = model(z, t, None, None)
        outs = [both, elements_only, text_only, neither]
        for i in range(4):
            for j in range(i + 1, 4):
                assert not torch.allclose(outs[i], outs[j], atol=1e-4), (i, j)
        # conditioning that a case ignores does not matter
        other_tokens = torch.randn_like(tokens)
        other_text = torch.randn_like(text)
        assert torch.equal(model(z, t, other_text, None, text_mask=torch.zeros(4, dtype=torch.bool)), neither)
        assert torch.allclose(model(z, t, None, other_tokens, element_mask=torch.zeros(4, dtype=torch.bool)), neither)
        assert not torch.allclose(model(z, t, None, other_tokens), elements_only, atol=1e-4)
        assert not torch.allclose(model(z, t, other_text, None), text_only, atol=1e-4)
        # one batch with per-sample switches reproduces the four separate calls (how CFG batches ∅/∅ with C/S)
        mixed = model(
            z,
            t,
            text,
            tokens,
            text_mask=torch.tensor([True, False, True, False]),
            element_mask=torch.tensor([True, True, False, False]),
        )
    for i, ref in enumerate(outs):
        assert torch.allclose(mixed[i], ref[i], atol=1e-5), i
    # with autograd on, off samples are computed and zeroed instead of skipped: same numbers
    switches = dict(
        text_mask=torch.tensor([True, False, True, False]), element_mask=torch.tensor([True, True, False, False])
    )
    with torch.enable_grad():
        gated = model(z, t, text, tokens, **switches)
    assert gated.requires_grad and torch.allclose(gated.detach(), mixed, atol=1e-5)


def test_deleted_elements_contribute_nothing(model):
    z, t, text, tokens = inputs()
    active = torch.ones(tokens.shape[:2], dtype=torch.bool)
    active[:, 2] = False
    projected = model.adapter.project(tokens, active)
    assert torch.count_nonzero(projected[:, 2]) == 0 and torch.count_nonzero(projected[:, 1]) > 0
    # zeroed token rows (what element_tokens() emits for deleted elements) are inferred inactive
    zeroed = tokens.clone()
    zeroed[:, 2] = 0
    assert torch.equal(model.adapter.project(zeroed), model.adapter.project(zeroed, active))
    with torch.no_grad():
        a = model(z, t, text, zeroed, active)
        changed = zeroed.clone()
        changed[:, 2] = 5.0  # content of a deleted element must not leak through
        b = model(z, t, text, changed, active)
    assert torch.equal(a, b)


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_no_unexpected_kwarg_warnings(model):
    log = logging.getLogger("diffusers.models.attention_processor")
    handler = _Records()
    log.addHandler(handler)
    try:
        z, t, text, tokens = inputs()
        with torch.no_grad():
            model(z, t, text, tokens)
        assert not [m for m in handler.messages if "not expected" in m]
        # the check can fail: a stock processor on attn1 does warn about the element kwargs
        model.unet.down_blocks[0].attentions[0].transformer_blocks[0].attn1.set_processor(AttnProcessor2_0())
        with torch.no_grad():
            model(z, t, text, tokens)
        assert [m for m in handler.messages if "not expected" in m]
    finally:
        log.removeHandler(handler)


def test_attention_slicing_matches(model):
    z, t, text, tokens = inputs()
    with torch.no_grad():
        ref = model(z, t, text, tokens)
        set_slice_size(model.unet, 1)
        sliced = model(z, t, text, tokens)
        set_slice_size(model.unet, None)
    assert torch.allclose(sliced, ref, atol=1e-5)
    assert isinstance(
        model.unet.attn_processors["down_blocks.0.attentions.0.transformer_blocks.0.attn2.processor"],
        ElementAttnProcessor,
    )


def test_random_init_trains_adapter_and_unet(model):
    model.train()
    z, t, text, tokens = inputs()
    model(z, t, text, tokens).square().mean().backward()
    for name, p in model.adapter.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert model.unet.conv_in.weight.grad.abs().sum() > 0


def test_adapter_round_trip_exact(model, tmp_path):
    model.adapter.save_pretrained(tmp_path / "ckpt" / "element_adapter")
    assert (tmp_path / "ckpt" / "element_adapter" / "diffusion_pytorch_model.safetensors").is_file()
    loaded = ElementAdapter.from_pretrained(tmp_path / "ckpt", subfolder="element_adapter")
    assert loaded.config.attn_names == model.adapter.config.attn_names
    sd, ld = model.adapter.state_dict(), loaded.state_dict()
    assert sd.keys() == ld.keys() and all(torch.equal(sd[k], ld[k]) for k in sd)
    # the full UNet + adapter checkpoint, reloaded, predicts bit-identically
    model.save_pretrained(tmp_path / "stage2")
    again = ElementUNet.from_pretrained(str(tmp_path / "stage2")).eval()
    z, t, text, tokens = inputs()
    with torch.no_grad():
        assert torch.equal(again(z, t, text, tokens), model(z, t, text, tokens))
    # unet/ is a plain diffusers UNet folder
    plain = UNet2DConditionModel.from_pretrained(tmp_path / "stage2", subfolder="unet")
    assert all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), model.unet.state_dict().values()))


def test_adapter_for_another_unet_is_rejected(model):
    other = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=2,
        sample_size=8,
        cross_attention_dim=32,
        attention_head_dim=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
    )
    with pytest.raises(ValueError, match="different cross-attention layers"):
        ElementUNet(other, model.adapter)
