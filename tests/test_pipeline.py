"""ElementsPipeline on tiny random components: shapes, determinism, guidance, loading."""

import copy

import numpy as np
import pytest
import torch
from conftest import real_weights

from elements.decoders.pipeline import ElementsPipeline, guide, make_scheduler
from elements.errors import UserError
from elements.models.element_attention import ElementAdapter, ElementAttnProcessor
from elements.models.element_unet import ElementUNet
from elements.models.presets import build_content_encoder
from elements.tiny_base import build_tiny_components

SIZE = 64  # generate 64² images (8² latents): element boxes are normalised, so any size works


@pytest.fixture(scope="module")
def pipe():
    parts = build_tiny_components(seed=0)
    torch.manual_seed(0)
    encoder = build_content_encoder("tiny").eval()
    adapter = ElementAdapter.from_unet(parts["unet"], token_dim=encoder.token_dim)
    p = ElementsPipeline(content_encoder=encoder, element_adapter=adapter, **parts)
    p.set_progress_bar_config(disable=True)
    return p


@pytest.fixture(scope="module")
def els(astronaut_elements):
    el = astronaut_elements
    deleted = el.active.copy()
    deleted[:40] = False  # a second, edited element set
    return [el, el.replace(active=deleted)]


def run(pipe, els, **kw):
    kw.setdefault("num_inference_steps", 2)
    kw.setdefault("height", SIZE)
    kw.setdefault("width", SIZE)
    return pipe(els, **kw).images


def test_two_steps_shape_and_determinism(pipe, els):
    a = run(
        pipe,
        els,
        prompt="a photo",
        generator=torch.Generator().manual_seed(0),
        output_type="np",
        num_images_per_prompt=2,
    )
    assert a.shape == (4, SIZE, SIZE, 3) and a.dtype == np.float32 and 0 <= a.min() and a.max() <= 1
    b = run(
        pipe,
        els,
        prompt="a photo",
        generator=torch.Generator().manual_seed(0),
        output_type="np",
        num_images_per_prompt=2,
    )
    assert np.array_equal(a, b)
    c = run(
        pipe,
        els,
        prompt="a photo",
        generator=torch.Generator().manual_seed(1),
        output_type="np",
        num_images_per_prompt=2,
    )
    assert not np.allclose(a, c)
    pil = run(pipe, els[0], generator=torch.Generator().manual_seed(0))
    assert len(pil) == 1 and pil[0].size == (SIZE, SIZE)


def test_default_output_is_the_canvas(pipe, els):
    img = pipe(
        els[0],
        num_inference_steps=1,
        guidance_scale=1.0,
        output_type="latent",
        generator=torch.Generator().manual_seed(0),
    ).images
    assert img.shape == (1, 4, els[0].size // 8, els[0].size // 8)


def _manual(pipe, el, prompt, w, steps=3, seed=0):
    """An independent sampler loop: separate ∅/∅ and C/S calls, no batching tricks, and classifier-free
    guidance written out from App. C.2 (ε̂ = ε(z,∅,∅) + w·[ε(z,C,S) − ε(z,∅,∅)]), not the pipeline's ``guide``."""
    sched = copy.deepcopy(pipe.scheduler)
    sched.set_timesteps(steps)
    model = ElementUNet.__new__(ElementUNet)  # reuse attention_kwargs without reinstalling processors
    torch.nn.Module.__init__(model)
    model.unet, model.adapter = pipe.unet, pipe.element_adapter
    tokens, active = pipe.encode_elements([el], "cpu")
    text = pipe.encode_prompt([prompt], "cpu")
    z = torch.randn(1, 4, SIZE // 8, SIZE // 8, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        for t in sched.timesteps:
            cond = pipe.unet(
                z, t, encoder_hidden_states=text, cross_attention_kwargs=model.attention_kwargs(tokens, active)
            ).sample
            eps = cond
            if w != 1:
                uncond = pipe.unet(z, t, encoder_hidden_states=None, cross_attention_kwargs={}).sample
                eps = uncond + w * (cond - uncond)
            z = sched.step(eps, t, z).prev_sample
    return z


def test_guidance_one_is_the_plain_conditional_prediction(pipe, els):
    ref = _manual(pipe, els[0], "a dog", w=1.0)
    got = run(
        pipe,
        els[0],
        prompt="a dog",
        guidance_scale=1.0,
        num_inference_steps=3,
        output_type="latent",
        generator=torch.Generator().manual_seed(0),
    )
    assert torch.equal(got, ref)
    assert torch.allclose(guide(torch.ones(2), torch.full((2,), 5.0), 1.0), torch.full((2,), 5.0))


def test_guide_extrapolates_from_unconditional_towards_conditional():
    """ε̂ = ε_∅ + w·(ε_cond − ε_∅) on hand-computed values (App. C.2, w = 3)."""
    uncond, cond = torch.tensor([1.0, -2.0, 0.5]), torch.tensor([2.0, 0.0, 0.5])
    assert torch.equal(guide(uncond, cond, 3.0), torch.tensor([4.0, 4.0, 0.5]))
    assert torch.equal(guide(uncond, cond, 0.0), uncond)


def test_guidance_matches_separate_uncond_and_cond_calls(pipe, els):
    ref = _manual(pipe, els[1], "a dog", w=3.0)
    got = run(
        pipe,
        els[1],
        prompt="a dog",
        guidance_scale=3.0,
        num_inference_steps=3,
        output_type="latent",
        generator=torch.Generator().manual_seed(0),
    )
    assert torch.allclose(got, ref, atol=1e-4)
    w1 = run(
        pipe,
        els[1],
        prompt="a dog",
        guidance_scale=1.0,
        num_inference_steps=3,
        output_type="latent",
        generator=torch.Generator().manual_seed(0),
    )
    assert not torch.allclose(got, w1, atol=1e-3)


def test_prompt_and_elements_both_matter(pipe, els):
    kw = dict(output_type="latent", guidance_scale=3.0)
    base = run(pipe, els[0], prompt="a dog", generator=torch.Generator().manual_seed(0), **kw)
    other_prompt = run(pipe, els[0], prompt="a cat", generator=torch.Generator().manual_seed(0), **kw)
    no_prompt = run(pipe, els[0], prompt="", generator=torch.Generator().manual_seed(0), **kw)
    edited = run(pipe, els[1], prompt="a dog", generator=torch.Generator().manual_seed(0), **kw)
    for other in (other_prompt, no_prompt, edited):
        assert not torch.allclose(base, other, atol=1e-4)


def test_cached_embeddings_match_encoder(pipe, els):
    el = els[1]
    tokens, active = pipe.encode_elements([el], "cpu", use_cached_embeddings=False)
    with torch.no_grad():
        emb = pipe.content_encoder(torch.from_numpy(el.patches)).numpy().astype(np.float32)
    cached_tokens, cached_active = pipe.encode_elements([el.replace(embeddings=emb)], "cpu")
    assert torch.equal(active, cached_active)
    assert torch.allclose(tokens, cached_tokens, atol=1e-5)
    assert torch.count_nonzero(tokens[0, ~active[0]]) == 0


def test_callback_scheduler_swap_and_slicing(pipe, els):
    seen = []

    def cb(p, i, t, tensors):
        seen.append((i, p.num_timesteps))
        return tensors

    run(pipe, els[0], num_inference_steps=3, callback_on_step_end=cb, output_type="latent")
    assert seen == [(0, 3), (1, 3), (2, 3)]
    ref = run(pipe, els[0], generator=torch.Generator().manual_seed(0), output_type="latent")
    pipe.enable_attention_slicing(1)
    try:
        assert all(
            isinstance(p, ElementAttnProcessor)
            for n, p in pipe.unet.attn_processors.items()
            if n.endswith("attn2.processor")
        )
        sliced = run(pipe, els[0], generator=torch.Generator().manual_seed(0), output_type="latent")
    finally:
        pipe.disable_attention_slicing()
    assert torch.allclose(ref, sliced, atol=1e-5)
    ddim = pipe.scheduler
    try:
        pipe.scheduler = make_scheduler("dpm++", ddim.config)
        out = run(pipe, els[0], generator=torch.Generator().manual_seed(0), output_type="latent")
        assert torch.isfinite(out).all() and not torch.allclose(out, ref)
    finally:
        pipe.scheduler = ddim
    with pytest.raises(UserError, match="Unknown scheduler"):
        make_scheduler("euler-ish", ddim.config)


def test_to_input_size_is_the_known_crop_of_the_letterbox(pipe, coffee):
    """A 600x400 input sits in rows 85..425 of the 512² canvas (512 / 600 * 400 = 341 rows, centred): the output is
    that band resized to 600x400, with none of the padding above or below it."""
    import cv2

    from elements.partition import Partitioner

    el = Partitioner("grid", num_elements=16)(coffee)
    canvas = np.empty((512, 512, 3), np.uint8)
    canvas[:85] = (255, 0, 255)  # padding: colours the photo does not have
    canvas[426:] = (0, 255, 0)
    canvas[85:426] = cv2.resize(coffee, (512, 341), interpolation=cv2.INTER_AREA)
    expect = cv2.resize(canvas[85:426], (600, 400), interpolation=cv2.INTER_CUBIC)
    out = pipe.to_input_size(canvas, el)
    assert out.dtype == np.uint8 and np.array_equal(out, expect)
    assert np.array_equal(pipe.to_input_size(canvas / 255.0, el), expect)  # output_type="np": floats in [0, 1]
    err = np.abs(out.astype(int) - coffee).mean(axis=(1, 2))  # per row: it is the photo again, edges included
    assert err.mean() < 6 and err[0] < 20 and err[-1] < 20
    # the pipeline's own output (64², any square size) takes the same band, scaled
    img = run(pipe, el, output_type="np", generator=torch.Generator().manual_seed(0))[0]
    assert pipe.to_input_size(img, el).shape == coffee.shape


def test_bad_inputs_are_user_errors(pipe, els):
    with pytest.raises(UserError):
        pipe([], num_inference_steps=1)
    with pytest.raises(UserError, match="prompts"):
        pipe(els, prompt=["a", "b", "c"], num_inference_steps=1)
    with pytest.raises(UserError, match="multiples of 8"):
        pipe(els[0], height=60, width=64, num_inference_steps=1)


def test_from_elements_checkpoint(pipe, tmp_path, els):
    from elements.tiny_base import write_tiny_base

    base = write_tiny_base(tmp_path / "base", seed=0)
    stage2 = tmp_path / "stage2"
    ElementUNet(pipe.unet, pipe.element_adapter).save_pretrained(stage2)
    pipe.content_encoder.save_pretrained(stage2 / "content_encoder")
    loaded = ElementsPipeline.from_elements_checkpoint(base=str(base), stage2=str(stage2), device="cpu")
    loaded.set_progress_bar_config(disable=True)
    a = run(loaded, els[0], prompt="a dog", generator=torch.Generator().manual_seed(0), output_type="latent")
    b = run(pipe, els[0], prompt="a dog", generator=torch.Generator().manual_seed(0), output_type="latent")
    assert torch.equal(a, b)
    with pytest.raises(UserError, match="EIE_STAGE2_CHECKPOINT"):
        ElementsPipeline.from_elements_checkpoint(base=str(base))
    with pytest.raises(UserError, match="EIE_SD_BASE"):  # a Hub id while offline (conftest sets HF_HUB_OFFLINE)
        ElementsPipeline.from_elements_checkpoint(base="nobody/not-a-model", stage2=str(stage2))
    (stage2 / "content_encoder").rename(tmp_path / "ce")
    with pytest.raises(UserError, match="EIE_STAGE1_CHECKPOINT"):
        ElementsPipeline.from_elements_checkpoint(base=str(base), stage2=str(stage2))


@pytest.mark.gpu
def test_fp16_on_gpu(pipe, els):
    """``python -m pytest -m gpu tests/test_pipeline.py``: fp16 sampling with slicing and VAE tiling."""
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    gpu = copy.deepcopy(pipe).to("cuda", torch.float16)
    gpu.enable_attention_slicing()
    gpu.vae.enable_tiling()  # diffusers 0.42: tiling is the VAE's (DiffusionPipeline has no enable_vae_tiling)
    a = gpu(
        els, prompt="a photo", num_inference_steps=2, output_type="np", generator=torch.Generator().manual_seed(0)
    ).images
    b = gpu(
        els, prompt="a photo", num_inference_steps=2, output_type="np", generator=torch.Generator().manual_seed(0)
    ).images
    assert a.shape == (2, 512, 512, 3) and np.isfinite(a).all() and np.array_equal(a, b)


@pytest.mark.slow
def test_real_sd15_base_with_zero_adapter_is_sd15():
    """``EIE_SD_BASE=/path/to/sd15 python -m pytest -m slow tests/test_pipeline.py``: needs SD-1.5 weights.

    A zero-initialised adapter on the real SD-1.5 UNet reproduces SD-1.5's noise prediction.
    """
    from diffusers import UNet2DConditionModel

    from elements import defaults

    base = real_weights(defaults.SD_BASE, folder=True)
    unet = UNet2DConditionModel.from_pretrained(base, subfolder="unet")
    vanilla = copy.deepcopy(unet)
    model = ElementUNet.from_base(unet, token_dim=build_content_encoder("paper").token_dim, init="zero_out").eval()
    c = unet.config  # SD-1.5: 4 latent channels, 64² latents, 768-d text states
    z = torch.randn(2, c.in_channels, c.sample_size, c.sample_size)
    text = torch.randn(2, 77, c.cross_attention_dim)
    tokens = torch.randn(2, 256, model.adapter.config.token_dim)
    with torch.no_grad():
        assert torch.equal(model(z, 500, text, tokens), vanilla(z, 500, encoder_hidden_states=text).sample)
