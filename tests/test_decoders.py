"""Decoders: pixel editing really moves content, inpainting leaves no hole, SD baselines and our
decoders run behind one interface on tiny random models saved to disk and loaded by path."""

import cv2
import numpy as np
import pytest
from conftest import real_weights

from elements import defaults, edit
from elements.decoders import available_decoders, get_decoder
from elements.decoders.inpaint import split_holes
from elements.decoders.pixel import HOLE_VALUE, pixel_edit, render
from elements.errors import UserError
from elements.geometry import Geometry
from elements.partition.build import elements_from_labels

SMALL = 64  # canvas side for the SD-backed tests: 8x8 latents


def small_elements(w=80, h=56, size=SMALL, seed=0):
    """A non-square scene on a small canvas: smooth background, a red square; 8 x 8-pixel grid elements."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([100 + xx, 120 + yy, 160 + 0 * xx], -1).astype(np.float64)
    img[16:36, 20:44] = (220, 30, 30)
    img = np.clip(img + rng.normal(0, 2, img.shape), 0, 255).astype(np.uint8)
    g = Geometry.fit(w, h, size=size)
    canvas = g.to_canvas(img)
    cm = g.content_mask()
    ys, xs = np.mgrid[0:size, 0:size]
    labels = np.where(cm, (ys // 8) * (size // 8) + xs // 8, -1)
    _, labels = np.unique(labels, return_inverse=True)  # contiguous 0..N-1 with -1 -> 0
    labels = (labels.reshape(size, size) - 1).astype(np.int32)
    return elements_from_labels(canvas, labels, g, {"partition": {"backend": "grid"}})


def test_pixel_reconstruction_is_the_input_except_dropped_pixels(astronaut_elements, astronaut):
    el = astronaut_elements
    out = get_decoder("pixel")(el)
    assert out.shape == astronaut.shape and out.dtype == np.uint8
    dropped = el.geometry.labels_to_input(el.labels) < 0
    assert np.array_equal(out[~dropped], astronaut[~dropped])
    assert (out[dropped] == HOLE_VALUE).all()


def test_pixel_decoder_really_moves_content(astronaut_elements):
    el = astronaut_elements
    ids = edit.select_rect(el, (170, 40, 250, 130))  # the face
    dx, dy = 60, 150  # astronaut is 512 x 512: input pixels are canvas pixels
    moved = edit.move(el, ids, dx, dy)
    out = get_decoder("pixel")(moved)
    src = np.isin(el.labels, el.source_label[ids])
    ys, xs = np.nonzero(src)
    keep = (ys + dy < 512) & (xs + dx < 512)
    ys, xs = ys[keep], xs[keep]
    # measured: every pixel of the moved object appears exactly at its target
    assert np.array_equal(out[ys + dy, xs + dx], el.image[ys, xs])
    # and the vacated source region is empty wherever nothing else landed on it
    _, holes = pixel_edit(moved)
    vacated = src & (edit.owner_map(moved) < 0)
    assert vacated.sum() > 0.5 * src.sum() and holes[vacated].all() and (out[vacated] == HOLE_VALUE).all()


def test_pixel_decoder_scales_content_on_a_non_square_image(chelsea):
    from elements.partition import Partitioner

    el = Partitioner("grid", num_elements=64)(chelsea)
    ids = edit.select_rect(el, (150, 80, 300, 220))
    out_el = edit.scale(el, ids, 1.5)
    canvas, holes = pixel_edit(out_el)
    # reference: the source canvas resized by 1.5 about the same centre, sampled where the elements landed
    (sx, sy, tx, ty) = edit.transforms(out_el)[ids[0]]
    assert sx == pytest.approx(1.5) and sy == pytest.approx(1.5)
    import cv2

    m = np.array([[sx, 0, tx + 0.5 * (sx - 1)], [0, sy, ty + 0.5 * (sy - 1)]])
    ref = cv2.warpAffine(el.image, m, (el.size, el.size), flags=cv2.INTER_LINEAR)
    mask = np.zeros_like(holes)
    for lay in edit.layers(out_el):
        if set(lay.members.tolist()) & set(ids.tolist()):
            mask |= np.isin(lay.warped, out_el.source_label[ids])
    mask = cv2.erode(mask.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)  # interior: no blur at borders
    err = np.abs(canvas[mask].astype(int) - ref[mask].astype(int)).mean()
    assert mask.sum() > 5000 and err < 3.0
    result = get_decoder("pixel")(out_el)
    assert result.shape == chelsea.shape


def test_split_holes_separates_thin_gaps_from_large_holes():
    content = np.ones((40, 40), dtype=bool)
    holes = np.zeros_like(content)
    holes[:, 20] = True  # a 1-pixel crack
    holes[5:15, 5:15] = True  # a real hole
    small, large = split_holes(holes, content)
    assert small[20:, 20].all() and not large[20:, 20].any()
    assert large[7:13, 7:13].all()
    assert not (small & large).any() and np.array_equal(small | large, holes)


def red_square(el):
    """Ids of every element holding a pixel of the red square."""
    img = el.image.astype(int)
    red = (img[..., 0] > 180) & (img[..., 1] < 80) & (el.labels >= 0)
    return np.unique(el.labels[red])


@pytest.mark.parametrize("backend", ["opencv", "telea", "patchmatch"])
def test_pixel_inpaint_cpu_engines_fill_every_hole_plausibly(backend):
    from elements.decoders.blend import ghost_band

    el = small_elements()
    deleted = edit.delete(el, red_square(el))
    dec = get_decoder("pixel+inpaint", backend=backend)
    engine = "PatchMatch" if backend == "patchmatch" else "Telea"
    assert engine in dec.describe() and dec.requirements()["gpu"] == "no"
    canvas, holes = pixel_edit(deleted)
    assert holes.sum() > 300
    out_canvas = dec.decode_canvas(deleted, prompt="", seed=0, steps=None, guidance=None, progress=None)
    filled = out_canvas[holes].astype(int)
    assert (filled.max(axis=1) > 0).all()  # no hole pixel is left black
    band = ghost_band(render(deleted, full_res=False), deleted)
    band_c = np.zeros_like(holes)
    g = el.geometry
    band_c[g.content_y : g.content_y + g.content_h, g.content_x : g.content_x + g.content_w] = band
    assert not (band_c & holes).any() and band_c.sum() < 0.5 * holes.sum()  # a thin band, outside the holes
    reach = holes | band_c
    assert np.array_equal(out_canvas[~reach], canvas[~reach])  # nothing else changes
    # the red square is gone: the fill is close to the smooth background it replaced
    ys, xs = np.nonzero(holes)
    xin, yin = ((xs + 0.5 - g.content_x) / g.scale_xy[0], (ys + 0.5 - g.content_y) / g.scale_xy[1])
    background = np.stack([100 + xin, 120 + yin, 160 + 0 * xin], -1)
    assert np.abs(filled - background).mean() < 20
    red = (filled[:, 0] > 180) & (filled[:, 1] < 80)
    assert red.mean() < 0.01
    out = dec(deleted)
    assert out.shape == (56, 80, 3) and out.ran == f"pixel+inpaint ({engine})"
    assert np.array_equal(out, dec(deleted))  # deterministic


def test_registry_and_offline_availability(monkeypatch):
    avail = available_decoders()
    assert set(avail) == {"pixel", "pixel+inpaint", "pixel+sdedit", "light", "diffusion"}
    assert avail["pixel"][0] and avail["pixel+inpaint"][0]
    assert "PatchMatch" in avail["pixel+inpaint"][1]  # offline: the classical CPU engine
    assert not avail["light"][0] and "EIE_STAGE1_CHECKPOINT" in avail["light"][1]
    assert not avail["diffusion"][0]
    with pytest.raises(UserError, match="Unknown decoder 'magic'"):
        get_decoder("magic")
    with pytest.raises(UserError, match="EIE_SD_BASE|Hub"):
        get_decoder("pixel+sdedit")
    with pytest.raises(UserError, match="strength"):
        get_decoder("pixel+sdedit", strength=1.5)
    with pytest.raises(UserError, match="stage-1"):
        get_decoder("light")
    with pytest.raises(UserError, match="SD-Inpaint"):
        get_decoder("pixel+inpaint", backend="sd")
    with pytest.raises(UserError, match="does not take"):
        get_decoder("pixel", strength=0.5)


def test_sampler_defaults_are_read_from_the_registry_without_importing_a_decoder():
    import subprocess
    import sys

    from conftest import ROOT

    from elements.decoders import REGISTRY, SAMPLER_DEFAULTS, sampler_defaults

    assert set(SAMPLER_DEFAULTS) == set(REGISTRY)
    assert (sampler_defaults("diffusion").steps, sampler_defaults("diffusion").guidance) == (50, 3.0)  # App. C.2
    assert sampler_defaults("pixel+sdedit").guidance == sampler_defaults("pixel+inpaint").guidance == 7.5
    assert sampler_defaults("pixel").steps is None and sampler_defaults("light").guidance is None
    with pytest.raises(UserError, match="Unknown decoder"):
        sampler_defaults("magic")
    code = "import sys, elements.decoders as d; d.sampler_defaults('diffusion'); print(sorted(m for m in sys.modules if m.startswith(('torch', 'diffusers', 'elements.decoders.'))))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "['elements.decoders.result']", out.stdout + out.stderr


def test_settings_limits_are_the_spec_schemas():
    import json

    from conftest import ROOT

    from elements.decoders import check_settings

    props = json.loads((ROOT / "elements" / "spec_schema.json").read_text())["properties"]
    hi = {k: props[k]["maximum"] for k in ("seed", "steps", "guidance")}
    assert check_settings(seed=hi["seed"], steps=hi["steps"], guidance=hi["guidance"]) == (
        hi["seed"],
        hi["steps"],
        float(hi["guidance"]),
    )
    assert check_settings(seed=0, steps=None, guidance=None) == (0, None, None)
    for bad, match in [
        ({"seed": -1}, "seed must be an integer between 0 and 4294967295, got -1"),
        ({"seed": hi["seed"] + 1}, "seed"),
        ({"steps": 0}, "steps must be an integer between 1 and 1000, got 0"),
        ({"steps": hi["steps"] + 1}, "steps"),
        ({"steps": 2.5}, "steps"),
        ({"guidance": float("nan")}, "guidance scale must be a number between 0 and 100"),
        ({"guidance": -0.5}, "guidance"),
    ]:
        with pytest.raises(UserError, match=match):
            check_settings(**{"seed": 0, "steps": None, "guidance": None, **bad})
    el = small_elements()
    with pytest.raises(UserError, match="steps"):
        get_decoder("pixel")(el, steps=0)  # the full-resolution decoders check the same limits
    out = get_decoder("pixel")(el, seed=hi["seed"])
    assert out.ran == "pixel"


def test_a_bug_inside_a_decoder_constructor_is_not_reported_as_a_bad_option(monkeypatch):
    import elements.decoders as decoders

    class Broken(decoders.Decoder):
        name = "broken"

        def __init__(self, *, size: int = 1) -> None:
            len(size)  # a bug: TypeError inside the constructor

    monkeypatch.setitem(decoders.REGISTRY, "broken", "builtins:Broken")
    monkeypatch.setattr("builtins.Broken", Broken, raising=False)
    with pytest.raises(TypeError, match="has no len"):
        get_decoder("broken")
    with pytest.raises(UserError, match="does not take these options .*colour.*it takes size"):
        get_decoder("broken", colour="red")


# --- SD-backed baselines on tiny random pipelines --------------------------------------------------
@pytest.fixture(scope="module")
def tiny_sd(tmp_path_factory):
    """A tiny SD-1.5-shaped base and a matching 9-channel inpainting model, saved and loaded by path."""
    from diffusers import StableDiffusionInpaintPipeline, UNet2DConditionModel

    from elements.tiny_base import build_tiny_components, write_tiny_base

    root = tmp_path_factory.mktemp("sd")
    base = write_tiny_base(root / "base", seed=0)
    parts = build_tiny_components(seed=0)
    import torch

    torch.manual_seed(3)
    parts["unet"] = UNet2DConditionModel.from_config({**parts["unet"].config, "in_channels": 9})
    StableDiffusionInpaintPipeline(
        **parts, safety_checker=None, feature_extractor=None, requires_safety_checker=False
    ).save_pretrained(root / "inpaint")
    return {"base": str(base), "inpaint": str(root / "inpaint")}


def test_sd_inpaint_backend_closes_gaps_and_only_changes_holes(tiny_sd):
    el = small_elements()
    deleted = edit.delete(el, red_square(el))
    assert available_decoders(sd_inpaint=tiny_sd["inpaint"])["pixel+inpaint"][1].startswith("SD-Inpaint")
    dec = get_decoder("pixel+inpaint", sd_inpaint=tiny_sd["inpaint"], device="cpu")
    assert dec.backend == "sd" and "SD-Inpaint" in dec.describe()
    calls = []
    a = dec.decode_canvas(
        deleted, prompt="grass", seed=1, steps=2, guidance=2.0, progress=lambda i, n: calls.append((i, n))
    )
    assert calls == [(1, 2), (2, 2)]
    canvas, holes = pixel_edit(deleted)
    import cv2

    from elements.decoders.blend import CLOSE_PX
    from elements.decoders.inpaint import MASK_DILATION

    k = 2 * (CLOSE_PX + MASK_DILATION) + 3  # the hole band, then SD-Inpaint's dilated mask
    reach = cv2.dilate(holes.astype(np.uint8), np.ones((k, k), np.uint8)).astype(bool)
    assert np.array_equal(a[~reach], canvas[~reach])  # outside the (dilated) holes: the pixel edit, exactly
    assert (a[holes].max(axis=1) > 0).mean() > 0.99  # holes now hold generated pixels
    b = dec.decode_canvas(deleted, prompt="grass", seed=1, steps=2, guidance=2.0, progress=None)
    c = dec.decode_canvas(deleted, prompt="grass", seed=2, steps=2, guidance=2.0, progress=None)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert dec(deleted, seed=1, steps=1).shape == (56, 80, 3)


def test_sdedit_runs_img2img_at_the_given_strength(tiny_sd):
    el = small_elements()
    moved = edit.move(el, edit.select_rect(el, (20, 16, 44, 36)), 16, 8)
    dec = get_decoder("pixel+sdedit", sd_base=tiny_sd["base"], strength=0.5, device="cpu")
    assert "strength 0.5" in dec.describe()
    calls = []
    out = dec(moved, prompt="a red box", seed=0, steps=4, progress=lambda i, n: calls.append(n))
    assert out.shape == (56, 80, 3) and out.dtype == np.uint8
    assert len(calls) == 2  # img2img runs strength * steps of the schedule
    assert out.ran == "pixel+sdedit (SDEdit, strength 0.5)" and out.note == "4 steps, guidance 7.5"
    assert np.array_equal(out, dec(moved, prompt="a red box", seed=0, steps=4))


# --- our decoders ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_stage1(tmp_path_factory):
    import torch

    from elements.models.presets import build_content_encoder, build_light_decoder

    root = tmp_path_factory.mktemp("stage1")
    torch.manual_seed(0)
    build_content_encoder("tiny").save_pretrained(root / "content_encoder")
    build_light_decoder("tiny").save_pretrained(root / "light_decoder")
    return str(root)


def test_light_decoder_follows_edits(tiny_stage1, chelsea):
    from elements.partition import Partitioner

    el = Partitioner("grid", num_elements=64)(chelsea)
    assert available_decoders(stage1=tiny_stage1)["light"][0]
    dec = get_decoder("light", stage1=tiny_stage1, device="cpu")
    assert "stage-1" in dec.describe() and dec.encoder is not None
    a = dec(el)
    assert a.shape == chelsea.shape and a.dtype == np.uint8 and (a.ran, a.note) == ("light", "")
    deleted = edit.delete(el, edit.select_rect(el, (150, 80, 300, 220)))
    assert not np.array_equal(dec(deleted), a)
    assert np.array_equal(dec(el), a)


def test_diffusion_decoder_from_tiny_checkpoints(tmp_path):
    import torch

    from elements.models.element_attention import ElementAdapter
    from elements.models.element_unet import ElementUNet
    from elements.models.presets import build_content_encoder
    from elements.tiny_base import build_tiny_components, write_tiny_base

    base = write_tiny_base(tmp_path / "base", seed=0)
    parts = build_tiny_components(seed=0)
    torch.manual_seed(0)
    encoder = build_content_encoder("tiny")
    adapter = ElementAdapter.from_unet(parts["unet"], token_dim=encoder.token_dim)
    ElementUNet(parts["unet"], adapter).save_pretrained(tmp_path / "stage2")
    encoder.save_pretrained(tmp_path / "stage2" / "content_encoder")
    opts = {"sd_base": str(base), "stage2": str(tmp_path / "stage2")}
    assert available_decoders(**opts)["diffusion"][0]
    dec = get_decoder("diffusion", device="cpu", **opts)
    el = small_elements()
    steps = []
    a = dec(el, prompt="a dog", seed=0, steps=2, progress=lambda i, n: steps.append(i))
    assert a.shape == (56, 80, 3) and a.dtype == np.uint8 and steps == [1, 2]
    assert a.ran == "diffusion" and a.note == "2 steps, guidance 3"  # the paper's w = 3 when none is given
    assert np.array_equal(a, dec(el, prompt="a dog", seed=0, steps=2))
    assert not np.array_equal(a, dec(el, prompt="a dog", seed=1, steps=2))


# --- real weights / GPU (skipped by default; run with -m slow or -m gpu) ------------------------------
@pytest.mark.gpu
def test_sd_baselines_on_cuda_in_fp16(tiny_sd):
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    el = small_elements()
    deleted = edit.delete(el, red_square(el))
    for name, opts in (
        ("pixel+inpaint", {"sd_inpaint": tiny_sd["inpaint"], "backend": "sd"}),
        ("pixel+sdedit", {"sd_base": tiny_sd["base"]}),
    ):
        dec = get_decoder(name, device="cuda", **opts)
        assert dec.pipeline().unet.dtype == torch.float16
        a = dec(deleted, seed=0, steps=2)
        assert a.shape == (56, 80, 3) and np.array_equal(a, dec(deleted, seed=0, steps=2))


@pytest.mark.slow
def test_real_sd_inpaint_removes_an_object(astronaut_elements):
    """``EIE_SD_INPAINT=/path/to/sd-inpainting python -m pytest -m slow tests/test_decoders.py``: real SD-Inpaint."""
    weights = real_weights(defaults.SD_INPAINT, folder=True)
    el = astronaut_elements
    deleted = edit.delete(el, edit.select_rect(el, (370, 0, 470, 275)))
    dec = get_decoder("pixel+inpaint", backend="sd", sd_inpaint=str(weights))
    out = dec(deleted, prompt="grey studio backdrop", seed=0, steps=25)
    r = render(deleted)  # the astronaut is 512 x 512: the output grid is the input
    assert out.shape == (512, 512, 3) == r.image.shape and r.holes.sum() > 2000
    # the shuttle model stands in front of the studio backdrop; above the table (y < 200) the truth is the
    # backdrop, whose colour is the median of the known pixels within 12 px of the hole in those rows
    upper = r.holes.copy()
    upper[200:] = False
    near = cv2.dilate(r.holes.astype(np.uint8), np.ones((25, 25), np.uint8)).astype(bool) & ~r.holes
    near[200:] = False
    backdrop = np.median(r.original[near], axis=0)
    fill_err = np.abs(np.asarray(out)[upper].astype(float) - backdrop).mean()
    removed_err = np.abs(r.original[upper].astype(float) - backdrop).mean()  # ~57; PatchMatch's fill: ~8
    assert fill_err < 0.5 * removed_err, (fill_err, removed_err)  # the object is gone, the backdrop continues
    far = ~cv2.dilate(r.holes.astype(np.uint8), np.ones((41, 41), np.uint8)).astype(bool)  # beyond the hole band
    assert np.array_equal(np.asarray(out)[far], r.original[far])  # the rest is the input
