"""Stage-2 training: CFG dropout rates, element dropout, frozen parts, loss going down, CLI + resume."""

import json

import numpy as np
import pytest
import torch

from elements.errors import UserError
from elements.models.tokens import collate
from elements.partition import Partitioner, random_partition
from elements.pixels import from_uint8
from elements.train.masks import (
    ElementDropout,
    ObjectMaskSampler,
    drop_overlapping,
    random_blob_mask,
    random_polygon_mask,
)
from elements.train.stage2 import build_models, build_parser, cfg_dropout, compute_loss, run


# --- conditioning dropout (App. C.2) -------------------------------------------------------------
def test_cfg_dropout_rates():
    n = 200_000
    text_on, el_on = cfg_dropout(n, generator=torch.Generator().manual_seed(0))
    rates = {
        "only C=∅": float((~text_on & el_on).float().mean()),
        "only S=∅": float((text_on & ~el_on).float().mean()),
        "both ∅": float((~text_on & ~el_on).float().mean()),
        "none": float((text_on & el_on).float().mean()),
    }
    expected = {"only C=∅": 0.3, "only S=∅": 0.1, "both ∅": 0.1, "none": 0.5}
    for k in expected:
        assert abs(rates[k] - expected[k]) < 0.005, (k, rates[k])
    with pytest.raises(UserError):
        cfg_dropout(4, text=0.6, elements=0.3, both=0.2)


# --- object masks and element dropout (Sec. 3.3) ---------------------------------------------------
@pytest.mark.parametrize("make", [random_blob_mask, random_polygon_mask])
def test_random_masks_are_object_sized(make):
    import cv2

    rng = np.random.default_rng(0)
    areas = []
    for _ in range(40):
        m = make(128, rng, min_area=0.05, max_area=0.4)
        assert m.shape == (128, 128) and m.dtype == bool
        assert cv2.connectedComponents(m.astype(np.uint8), connectivity=8)[0] == 2  # background + one object
        areas.append(m.mean())
    areas = np.array(areas)
    assert areas.min() > 0.02 and areas.max() < 0.5 and areas.std() > 0.03  # varied, never empty or the whole image


def test_sam_masks_are_banked_and_used(tiny_sam, astronaut):
    import cv2

    canvas = cv2.resize(astronaut, (256, 256))
    # thresholds off: the tiny random SAM scores low, but the mask plumbing is what is tested
    sampler = ObjectMaskSampler(
        tiny_sam,
        rng=np.random.default_rng(0),
        points_per_side=4,
        min_area=0.0,
        max_area=1.0,
        pred_iou_thresh=0.0,
        stability_score_thresh=0.0,
    )
    assert sampler.source == "sam"
    kept = sampler.add_image(canvas)
    assert kept == len(sampler.bank) > 0
    m = sampler(canvas)
    assert any(m is b for b in sampler.bank)
    fallback = ObjectMaskSampler(None, rng=np.random.default_rng(0))
    assert fallback.source == "random" and fallback(canvas).shape == (256, 256)


def test_drop_overlapping(astronaut_elements):
    el = astronaut_elements
    mask = random_blob_mask(el.size, np.random.default_rng(3), min_area=0.1, max_area=0.2)
    out = drop_overlapping(el, mask)
    assert out is not el and el.active.all()  # pure: input untouched
    dropped = np.flatnonzero(~out.active)
    hit = set(np.unique(el.labels[mask & (el.labels >= 0)]).tolist())
    assert set(el.source_label[dropped].tolist()) == hit
    # every masked pixel belongs to a dropped element (or to no element)
    lab = el.labels[mask]
    assert np.isin(lab[lab >= 0], el.source_label[dropped]).all()


def test_element_dropout_rate_and_random_partition(astronaut_elements, chelsea):
    el = astronaut_elements
    canvas = el.image
    masks = ObjectMaskSampler(None, rng=np.random.default_rng(0))
    own = ElementDropout(masks, prob=0.3, random_partition=False)
    changed = sum(not own(el, canvas).active.all() for _ in range(1000))
    assert abs(changed / 1000 - 0.3) < 0.05 and own.applied == changed
    # random partition: elements follow the *previous* image's partition, not this one's
    other = Partitioner("slic", num_elements=64)(chelsea)
    drop = ElementDropout(ObjectMaskSampler(None, rng=np.random.default_rng(1)), prob=1.0, random_partition=True)
    drop(other, other.image)  # the worker sees the cat first
    out = drop(el, canvas)
    assert out.num_elements != el.num_elements and (~out.active).any() and out.active.any()
    donor = other.labels
    for lab in np.unique(out.labels[out.labels >= 0])[:50]:  # each new element lies inside one donor element
        assert len(np.unique(donor[out.labels == lab])) == 1
    assert np.array_equal(out.image, canvas)  # same pixels, new cut
    ref = random_partition(canvas, donor)
    assert np.array_equal(out.labels, ref.labels)


# --- training ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    from elements.models.presets import build_content_encoder
    from elements.tiny_base import write_tiny_base

    root = tmp_path_factory.mktemp("stage2")
    write_tiny_base(root / "base", seed=0)
    torch.manual_seed(0)
    build_content_encoder("tiny").save_pretrained(root / "stage1" / "content_encoder")
    return root


HELD_OUT_RATIO = 0.5  # measured 1.028 -> 0.275 (0.27x) on the held-out batch, 1.030 -> 0.276 on the training batch


def small_batch(first, second, size=64, captions=("an astronaut", "a cup of coffee")):
    import cv2

    from elements.data.preprocess import center_crop_resize

    canvases = [center_crop_resize(im, size) for im in (first, second)]
    els = [Partitioner("grid", num_elements=16)(cv2.resize(c, (512, 512))) for c in canvases]
    pixels = torch.stack([from_uint8(c).permute(2, 0, 1) for c in canvases])
    return {"pixel_values": pixels, "elements": collate(els), "captions": list(captions)}


def test_frozen_modules_get_no_gradient(checkpoints, astronaut, coffee):
    model, frozen = build_models(sd_base=str(checkpoints / "base"), stage1=str(checkpoints / "stage1"))
    loss = compute_loss(model, frozen, small_batch(astronaut, coffee), generator=torch.Generator().manual_seed(0))
    loss.backward()
    for name, module in (
        ("vae", frozen.vae),
        ("text_encoder", frozen.text_encoder),
        ("content", model.content_encoder),
    ):
        assert all(not p.requires_grad and p.grad is None for p in module.parameters()), name
    assert all(p.grad is not None for p in model.element_unet.adapter.parameters())
    assert model.element_unet.unet.conv_in.weight.grad.abs().sum() > 0
    # ablation switch: the content encoder trains
    model2, frozen2 = build_models(
        sd_base=str(checkpoints / "base"), stage1=str(checkpoints / "stage1"), unfreeze_content_encoder=True
    )
    compute_loss(
        model2, frozen2, small_batch(astronaut, coffee), drop=(0, 0, 0), generator=torch.Generator().manual_seed(0)
    ).backward()
    assert all(p.grad is not None for p in model2.content_encoder.parameters() if p.requires_grad)
    assert any(p.grad.abs().sum() > 0 for p in model2.content_encoder.parameters())
    assert all(p.grad is None for p in frozen2.vae.parameters())


def test_a_few_steps_lower_the_loss(checkpoints, astronaut, coffee, chelsea):
    """Training on two images lowers the loss on them and on a held-out batch the steps never saw."""
    from skimage import data

    torch.manual_seed(0)
    model, frozen = build_models(sd_base=str(checkpoints / "base"), stage1=str(checkpoints / "stage1"))
    batch = small_batch(astronaut, coffee)
    held_out = small_batch(chelsea, data.rocket(), captions=("a cat", "a rocket on its launch pad"))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-3)

    def loss_on(b):
        with torch.no_grad():
            return float(
                np.mean(
                    [
                        compute_loss(model, frozen, b, drop=(0, 0, 0), generator=torch.Generator().manual_seed(100 + i))
                        for i in range(4)
                    ]
                )
            )

    before, before_held = loss_on(batch), loss_on(held_out)
    g = torch.Generator().manual_seed(1)
    for _ in range(25):
        loss = compute_loss(model, frozen, batch, generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after, after_held = loss_on(batch), loss_on(held_out)
    print(f"training-batch loss {before:.4f} -> {after:.4f}; held-out batch {before_held:.4f} -> {after_held:.4f}")
    assert after < 0.8 * before, (before, after)
    assert after_held < HELD_OUT_RATIO * before_held, (before_held, after_held)


def test_joint_ablation_builds_a_fresh_encoder(checkpoints):
    model, _ = build_models(sd_base=str(checkpoints / "base"), stage1=None, joint=True, content_preset="tiny")
    assert all(p.requires_grad for p in model.content_encoder.parameters())
    with pytest.raises(UserError, match="EIE_STAGE1_CHECKPOINT"):
        build_models(sd_base=str(checkpoints / "base"), stage1=None)


def test_cli_trains_checkpoints_resumes_and_loads(checkpoints, tmp_path, astronaut, coffee, chelsea):
    from elements.decoders.pipeline import ElementsPipeline
    from elements.image_io import save_png

    data = tmp_path / "data"
    data.mkdir()
    for i, im in enumerate((astronaut, coffee, chelsea)):
        save_png(data / f"{i}.png", im)
    out = tmp_path / "run"
    common = [
        "--train_data",
        str(data),
        "--output_dir",
        str(out),
        "--sd_base",
        str(checkpoints / "base"),
        "--stage1",
        str(checkpoints / "stage1"),
        "--image_size",
        "64",
        "--backend",
        "grid",
        "--num-elements",
        "16",
        "--train_batch_size",
        "2",
        "--dataloader_num_workers",
        "0",
        "--checkpointing_steps",
        "2",
        "--logging_steps",
        "1",
        "--validation_steps",
        "2",
        "--validation_inference_steps",
        "2",
        "--num_validation_images",
        "2",
        "--dropout_masks",
        "random",
        "--num_train_epochs",
        "10",
    ]
    parser = build_parser("stage2")
    assert run(parser.parse_args(common + ["--max_train_steps", "2"])) == 0
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2] and all(np.isfinite(r["loss"]) for r in log)
    assert {p.name for p in (out / "checkpoint-2").iterdir()} >= {"unet", "element_adapter", "content_encoder"}
    assert (out / "validation" / "step-0000002.png").is_file()
    assert run(parser.parse_args(common + ["--max_train_steps", "3", "--resume", "latest"])) == 0
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3]
    # the same data fields as stage 1 (elements.train.loop), and they count what each step trained on
    assert all(
        r["epoch_corrupt"] == 0
        and 1 <= r["samples"] <= 2
        and r["samples"] <= r["epoch_samples"]
        and r["samples_per_s"] > 0
        for r in log
    ), log
    pipe = ElementsPipeline.from_elements_checkpoint(base=str(checkpoints / "base"), stage2=str(out))
    pipe.set_progress_bar_config(disable=True)
    el = Partitioner("grid", num_elements=16)(astronaut)
    img = pipe(el, num_inference_steps=1, height=64, width=64, output_type="np").images
    assert img.shape == (1, 64, 64, 3) and np.isfinite(img).all()


def test_bad_flags_are_user_errors(checkpoints, tmp_path):
    parser = build_parser("stage2")
    base = ["--train_data", str(tmp_path), "--output_dir", str(tmp_path / "o")]
    with pytest.raises(UserError, match="--element-dropout-prob"):
        run(parser.parse_args(base + ["--element_dropout_prob", "1.5"]))
    with pytest.raises(UserError, match="--joint"):
        run(parser.parse_args(base + ["--joint", "--stage1", "x"]))
    with pytest.raises(UserError, match="sum to at most 1"):
        run(parser.parse_args(base + ["--drop_text", "0.9"]))
