"""Partition (Sec. 3.1, Alg. 2): coverage, contiguity, counts, grid reduction, SAM end to end."""

import numpy as np
import pytest
from conftest import assert_box_affinity
from skimage.measure import label as cc_label

from elements.geometry import Geometry
from elements.partition import Partitioner, random_partition
from elements.partition.algorithm import (
    DenseAffinity,
    adjust_centroids,
    assign_with_distance,
    candidate_boxes,
    candidate_mask,
    cleanup,
    grid_shape,
    keep_largest_components,
    mode_filter,
    plain_assignment_from_samples,
    query_grid,
    run_algorithm2,
)


def _check_partition(el):
    labels = el.labels
    content = el.geometry.content_mask()
    n = el.num_elements
    # every content pixel is in exactly one element or dropped; padding is never an element
    assert labels.dtype == np.int32 and labels.min() >= -1 and labels.max() == n - 1
    assert (labels[~content] == -1).all()
    assert set(np.unique(labels[labels >= 0])) == set(range(n))
    dropped = ((labels < 0) & content).sum() / content.sum()
    assert dropped <= 0.01
    assert dropped == pytest.approx(el.meta["dropped_fraction"])
    # each element is one 4-connected region
    comp = cc_label(labels + 1, background=0, connectivity=1)
    pairs = np.unique(np.stack([labels[labels >= 0], comp[labels >= 0]]), axis=1)
    assert pairs.shape[1] == n, "some element has more than one 4-connected piece"
    # areas and centroids agree with the label map
    assert el.areas.sum() == (labels >= 0).sum()
    ys, xs = np.nonzero(labels == 0)
    assert el.centroids[0] == pytest.approx([(xs.mean() + 0.5) / 512, (ys.mean() + 0.5) / 512], abs=1e-5)


@pytest.mark.parametrize("backend", ["slic", "grid"])
@pytest.mark.parametrize("photo", ["astronaut", "coffee", "chelsea"])
def test_bundled_photos_default_settings(backend, photo, request):
    image = request.getfixturevalue(photo)
    el = Partitioner(backend)(image)
    assert 192 <= el.num_elements <= 256
    _check_partition(el)


@pytest.mark.parametrize("photo", ["astronaut", "coffee", "chelsea"])
def test_sam_backend_with_tiny_random_sam(photo, request, tiny_sam):
    image = request.getfixturevalue(photo)
    part = Partitioner("sam", sam_model=tiny_sam)
    el = part(image)
    assert el.meta["partition"]["backend"] == "sam"
    assert el.meta["partition"]["beta"] == 64.0
    assert 192 <= el.num_elements <= 256
    _check_partition(el)


def test_sam_embedding_computed_once(tiny_sam, astronaut, monkeypatch):
    part = Partitioner("sam", sam_model=tiny_sam)
    calls = []
    orig = part.affinity._encode
    monkeypatch.setattr(part.affinity, "_encode", lambda *a, **k: (calls.append(1), orig(*a, **k))[1])
    a = part(astronaut)
    b = part(astronaut)
    assert len(calls) == 1
    np.testing.assert_array_equal(a.labels, b.labels)


class _BoxOnly:
    """A provider whose dense affinity is ``fn``'s inside each query's box and 0 outside; it records its calls."""

    def __init__(self, fn):
        self.inner = DenseAffinity(fn)
        self.calls = []

    def samples(self, points, region=None):
        self.calls.append(("samples", points.copy()))
        return self.inner.samples(points)

    def dense(self, points, boxes):
        self.calls.append(("dense", points.copy()))
        return _zero_outside(self.inner.dense(points, boxes), boxes)


def _zero_outside(s, boxes):
    out = np.zeros(s.shape, dtype=np.float32)
    for k, (x0, y0, x1, y1) in enumerate(boxes):
        out[k, y0:y1, x0:x1] = s[k, y0:y1, x0:x1]
    return out


@pytest.mark.parametrize("boxes_only", [False, True])
def test_uniform_affinity_reduces_to_regular_grid(boxes_only):
    # Eq. 1 with s constant: argmax of -beta*d is the nearest query, i.e. the 16x16 grid of 32-px cells
    # (the plain assignment's ties go to the nearest query: its centroids sit 0.5 px off the queries, the same for all)
    g = Geometry.fit(512, 512)
    q = query_grid(g.content_box_norm(), 256)
    yy, xx = np.mgrid[0:512, 0:512]
    for value in (0.0, 0.5, 1.0):
        s = np.broadcast_to(np.full((1, 1, 1), value, dtype=np.float32), (256, 512, 512))
        fn = lambda pts, s=s: s
        labels = run_algorithm2(_BoxOnly(fn) if boxes_only else fn, q, g.content_mask())
        np.testing.assert_array_equal(labels, (yy // 32) * 16 + xx // 32)


@pytest.mark.parametrize("distance, boundary", [("euclidean", 0.5 - 1 / 128), ("squared", 0.5 - 1 / 64)])
def test_affinity_pulls_boundaries_as_far_as_eq1_allows(distance, boundary):
    # Two queries 0.5 apart; affinity 1 for query 1 everywhere moves their boundary towards query 0 by:
    # euclidean: 1 - 64*d1 = -64*d0 -> d1 - d0 = 1/64 -> x = 0.5 - 1/128 (4 px);
    # squared:   1 - 64*d1^2 = -64*d0^2 -> d1^2 - d0^2 = 0.5 - x = 1/64 -> x = 0.5 - 1/64 (8 px).
    q = np.array([[0.25, 0.5], [0.75, 0.5]], dtype=np.float32)
    valid = np.ones((512, 512), dtype=bool)
    s = np.zeros((2, 512, 512), dtype=np.float32)
    s[1] = 1.0
    labels = assign_with_distance(s, q, valid, beta=64.0, distance=distance)
    first_col_of_1 = int(np.argmax(labels[256] == 1))
    assert abs((first_col_of_1 + 0.5) / 512 - boundary) <= 1.5 / 512


def _brute_eq1(s, c, valid, beta, distance):
    size = s.shape[-1]
    pix = (np.arange(size) + 0.5) / size
    d2 = (pix[None, None, :] - c[:, 0, None, None]) ** 2 + (pix[None, :, None] - c[:, 1, None, None]) ** 2
    d = d2 if distance == "squared" else np.sqrt(d2)
    lab = np.argmax(s - beta * d, axis=0).astype(np.int32)
    lab[~valid] = -1
    return lab


@pytest.mark.parametrize("distance", ["squared", "euclidean"])
@pytest.mark.parametrize("beta", [8.0, 64.0])
def test_assign_with_distance_matches_brute_force(rng, distance, beta):
    # the block-wise candidate pruning is exact, for both forms of d
    n, size = 64, 128
    q = rng.uniform(0, 1, (n, 2)).astype(np.float32)
    s = rng.uniform(0, 1, (n, size, size)).astype(np.float32)
    valid = np.ones((size, size), dtype=bool)
    valid[:, :7] = False
    fast = assign_with_distance(s, q, valid, beta=beta, distance=distance)
    np.testing.assert_array_equal(fast, _brute_eq1(s, q, valid, beta, distance))


def _smooth_affinity(rng, n, size):
    """A random affinity that depends on the prompt points: a bump at each point times a smooth random field."""
    from scipy import ndimage

    field = ndimage.gaussian_filter(rng.uniform(0, 1, (n, size, size)), sigma=(0, 6, 6))
    field = (field - field.min()) / (field.max() - field.min())
    pix = (np.arange(size) + 0.5) / size

    def fn(pts):
        d2 = (pix[None, None, :] - pts[:, 0, None, None]) ** 2 + (pix[None, :, None] - pts[:, 1, None, None]) ** 2
        return (np.exp(-d2 / 0.02) * field).astype(np.float32)

    return fn


def _brute_plain(logits, xy, queries, valid):
    # Alg. 2 lines 3-5, one sample at a time: the largest logit wins, ties go to the nearest query, then the lowest index
    size = valid.shape[0]
    members = {}
    for p, (x, y) in enumerate(xy.astype(np.float64)):
        if not valid[min(int(np.floor(y * size)), size - 1), min(int(np.floor(x * size)), size - 1)]:
            continue
        best = logits[:, p].max()
        tied = [n for n in range(len(queries)) if logits[n, p] == best]
        d2 = [(x - float(queries[n, 0])) ** 2 + (y - float(queries[n, 1])) ** 2 for n in tied]
        members.setdefault(tied[int(np.argmin(d2))], []).append((x, y))
    out = queries.astype(np.float64).copy()
    for n, pts in members.items():
        out[n] = np.mean(pts, axis=0)
    return out.astype(np.float32)


def _brute_centroids(s, queries, valid):
    # the plain assignment on the documented samples of a dense affinity: pixel (8i + 4, 8j + 4), at its centre
    size = s.shape[-1]
    logits, xy = [], []
    for y in range(4, size, 8):
        for x in range(4, size, 8):
            logits.append(s[:, y, x])
            xy.append(((x + 0.5) / size, (y + 0.5) / size))
    return _brute_plain(np.stack(logits, axis=1), np.array(xy, dtype=np.float32), queries, valid)


def test_plain_assignment_from_samples_matches_brute_force(rng):
    n, p, size = 9, 400, 64
    q = rng.uniform(0, 1, (n, 2)).astype(np.float32)
    xy = rng.uniform(0, 1, (p, 2)).astype(np.float32)
    xy[:20] = q[rng.integers(0, n, 20)] + np.float32(0.01)  # some samples near their queries
    logits = rng.integers(0, 3, (n, p)).astype(np.float32)  # many exact ties
    logits[n - 1] = -5.0  # never wins: keeps its query as centroid
    valid = np.ones((size, size), dtype=bool)
    valid[40:] = False  # samples with floor(y * 64) >= 40 do not count
    out = plain_assignment_from_samples(logits, xy, q, valid)
    assert out.dtype == np.float32 and out.shape == (n, 2)
    np.testing.assert_allclose(out, _brute_plain(logits, xy, q, valid), atol=1e-6)
    np.testing.assert_array_equal(out[n - 1], q[n - 1])
    # the invalid samples are ignored, and with none valid every centroid is its query
    keep = np.floor(xy[:, 1] * size) < 40
    np.testing.assert_array_equal(out, plain_assignment_from_samples(logits[:, keep], xy[keep], q, valid))
    np.testing.assert_array_equal(plain_assignment_from_samples(logits, xy, q, np.zeros_like(valid)), q)
    # a tie goes to the nearer query: two samples, both logits equal
    two = np.array([[0.2, 0.5], [0.8, 0.5]], dtype=np.float32)
    pts = np.array([[0.3, 0.5], [0.7, 0.5]], dtype=np.float32)
    np.testing.assert_allclose(plain_assignment_from_samples(np.zeros((2, 2), np.float32), pts, two, valid), pts)


def test_dense_affinity_samples_the_documented_pixels(rng):
    size = 64
    s = rng.uniform(0, 1, (3, size, size)).astype(np.float32)
    calls = []
    provider = DenseAffinity(lambda pts: (calls.append(1), s)[1])
    pts = np.zeros((3, 2), np.float32)
    logits, xy = provider.samples(pts)
    assert logits.shape == (3, 64) and xy.shape == (64, 2) and xy.dtype == np.float32
    ix, iy = np.floor(xy[:, 0] * size).astype(int), np.floor(xy[:, 1] * size).astype(int)
    np.testing.assert_array_equal((ix % 8, iy % 8), (np.full(64, 4), np.full(64, 4)))
    np.testing.assert_array_equal(xy, np.stack([(ix + 0.5) / size, (iy + 0.5) / size], 1))  # the pixel's centre
    np.testing.assert_array_equal(logits, s[:, iy, ix])
    assert provider.dense(pts, np.zeros((3, 4), np.int64)) is s and len(calls) == 1  # once per points


def test_centroid_adjustment_is_beta_c_mix():
    c = np.array([[0.1, 0.9], [0.6, 0.2]], dtype=np.float32)
    q = np.array([[0.3, 0.5], [0.5, 0.5]], dtype=np.float32)
    np.testing.assert_allclose(adjust_centroids(c, q, 0.2), 0.2 * c + 0.8 * q, atol=1e-7)
    np.testing.assert_allclose(adjust_centroids(c, q, 0.0), q)
    np.testing.assert_allclose(adjust_centroids(c, q, 1.0), c)


@pytest.mark.parametrize("iterations", [1, 3])
@pytest.mark.parametrize("distance", ["squared", "euclidean"])
def test_algorithm2_matches_brute_force(rng, iterations, distance):
    # Alg. 2 end to end against a loop that follows its lines literally (full affinity, no pruning, no vectorised
    # centroids); the provider's dense affinity is 0 outside the candidate boxes, so the boxes are enough
    n, size, beta, beta_c = 16, 64, 16.0, 0.2
    q = query_grid((0.0, 0.0, 1.0, 1.0), n)
    fn = _smooth_affinity(rng, n, size)
    valid = np.ones((size, size), dtype=bool)
    valid[:, 60:] = False
    provider = _BoxOnly(fn)
    fast = run_algorithm2(provider, q, valid, beta=beta, beta_c=beta_c, iterations=iterations, distance=distance)
    assert [kind for kind, _ in provider.calls] == ["samples", "dense"] * iterations
    c, pix = q, (np.arange(size) + 0.5) / size
    for it in range(iterations):
        for _, pts in provider.calls[2 * it : 2 * it + 2]:  # line 3: SAM is prompted at the current centroids
            np.testing.assert_allclose(pts, c, atol=1e-6)
        s = fn(c)
        c_adj = beta_c * _brute_centroids(s, q, valid) + (1 - beta_c) * q  # lines 4-6
        lab = _brute_eq1(s, c_adj.astype(np.float32), valid, beta, distance)  # line 7
        if it < iterations - 1:  # line 9: new centroids from the assignment
            c = q.astype(np.float64).copy()
            for k in range(n):
                ys, xs = np.nonzero(lab == k)
                if len(xs):
                    c[k] = (pix[xs].mean(), pix[ys].mean())
            c = c.astype(np.float32)
    np.testing.assert_array_equal(fast, cleanup(lab))


@pytest.mark.parametrize("distance", ["squared", "euclidean"])
@pytest.mark.parametrize("beta", [8.0, 64.0])
@pytest.mark.parametrize("kind", ["random", "adversarial"])
def test_candidate_boxes_hold_everything_eq1_reads(rng, distance, beta, kind):
    # Eq. 1 with the affinity zeroed outside each query's box gives the full affinity's labels, even when every
    # query wants its far pixels most; one block less on each side does change them then (the test has teeth)
    size = 256
    q = query_grid((0.0, 0.0, 1.0, 1.0), 64)  # 8 x 8 queries, 32-px cells
    c = adjust_centroids(q + rng.uniform(-0.05, 0.05, q.shape).astype(np.float32), q)
    valid = np.ones((size, size), dtype=bool)
    if kind == "random":
        s = rng.uniform(0, 1, (len(q), size, size)).astype(np.float32)
    else:
        yy, xx = (np.mgrid[0:size, 0:size] + 0.5) / size
        far = np.sqrt((xx[None] - c[:, 0, None, None]) ** 2 + (yy[None] - c[:, 1, None, None]) ** 2)
        s = np.clip(far * 4 + rng.uniform(0, 0.3, far.shape), 0, 1).astype(np.float32)  # grows with distance
    boxes = candidate_boxes(c, size, beta, distance)
    assert boxes.dtype == np.int64 and boxes.shape == (len(q), 4)
    assert (boxes % 16 == 0).all() and (boxes[:, :2] < boxes[:, 2:]).all() and (boxes <= size).all()
    full = assign_with_distance(s, c, valid, beta, distance)
    np.testing.assert_array_equal(assign_with_distance(_zero_outside(s, boxes), c, valid, beta, distance), full)
    if kind == "adversarial":
        shrunk = boxes + np.array([16, 16, -16, -16])
        assert (assign_with_distance(_zero_outside(s, shrunk), c, valid, beta, distance) != full).mean() > 0.001


def test_candidate_boxes_bound_the_candidate_blocks():
    c = np.array([[0.3, 0.3], [0.7, 0.6], [0.31, 0.3], [5.0, 5.0]], dtype=np.float32)  # the last is never a candidate
    cand = candidate_mask(c, 512, 64.0, "squared")
    assert cand.shape == (32, 32, 4) and cand.any(-1).all()  # every block has a candidate
    boxes = candidate_boxes(c, 512, 64.0, "squared")
    for n in range(3):
        by, bx = np.nonzero(cand[..., n])
        np.testing.assert_array_equal(boxes[n], [16 * bx.min(), 16 * by.min(), 16 * bx.max() + 16, 16 * by.max() + 16])
    np.testing.assert_array_equal(boxes[3], [0, 0, 0, 0])


def test_cleanup_keeps_largest_piece_and_removes_spurs():
    labels = np.zeros((20, 20), dtype=np.int32)
    labels[:, 10:] = 1
    labels[2:4, 14:16] = 0  # a detached piece of element 0 inside element 1
    labels[15, 5] = 1  # an isolated pixel of element 1 inside element 0
    out = cleanup(labels)
    assert out[15, 5] == 0  # the mode filter absorbed the isolated pixel
    kept = keep_largest_components(labels)
    assert (kept[2:4, 14:16] == -1).all()  # the smaller piece of 0 is dropped
    assert mode_filter(np.full((5, 5), -1, dtype=np.int32)).max() == -1  # padding stays padding


def test_grid_shape_follows_aspect():
    assert grid_shape(256, 1.0) == (16, 16)
    rows, cols = grid_shape(256, 1.5)
    assert rows * cols <= 256 and abs(cols / rows - 1.5) < 0.2


def test_non_square_is_letterboxed_not_distorted(chelsea):
    el = Partitioner("grid")(chelsea)
    g = el.geometry
    assert (g.input_w, g.input_h) == (451, 300)
    assert g.content_w == 512 and abs(g.content_h - round(300 * 512 / 451)) <= 1
    # elements only inside the content box, and their cells are square-ish (no stretching)
    assert (el.labels[: g.content_y] == -1).all()
    assert np.median(el.sizes[:, 0] / el.sizes[:, 1]) == pytest.approx(1.0, abs=0.15)


def test_random_partition_imposes_donor_labels(astronaut, chelsea):
    donor = Partitioner("grid")(astronaut)
    el = random_partition(chelsea, donor.labels)
    content = el.geometry.content_mask()
    # inside the content box, element boundaries are exactly the donor's grid boundaries
    lab, don = el.labels[content], donor.labels[content]
    pairs = np.unique(np.stack([lab, don]), axis=1)
    assert (pairs[0] >= 0).all() and len(np.unique(pairs[0])) == pairs.shape[1]
    np.testing.assert_array_equal(el.image, Partitioner("grid")(chelsea).image)


def test_partitioner_rejects_bad_settings():
    from elements.errors import UserError

    with pytest.raises(UserError):
        Partitioner("watershed")
    with pytest.raises(UserError):
        Partitioner("grid", num_elements=0)
    with pytest.raises(UserError):
        Partitioner("grid", beta=float("nan"))
    with pytest.raises(UserError):
        Partitioner("grid", distance="manhattan")


def test_auto_falls_back_to_slic_offline_and_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("EIE_CACHE_DIR", str(tmp_path))  # no distilled SAM in the cache
    monkeypatch.setenv("PATH", str(tmp_path))  # and no npm to fetch it
    part = Partitioner("auto")
    assert part.backend == "slic"
    assert "SLIC" in part.note and "EIE_SAM_CHECKPOINT" in part.note and "EIE_TINYSAM" in part.note
    assert "npm" in part.note


def test_select_object_follows_the_half_inside_rule(tiny_sam, astronaut):
    # whatever SAM's mask is, the selection is exactly the elements with >= 50 % of their pixels inside it
    from elements.edit import owner_map
    from elements.errors import UserError
    from elements.partition.objects import object_mask, select_object

    part = Partitioner("sam", sam_model=tiny_sam, num_elements=64)
    el = part(astronaut)
    part.affinity.set_image(el.image)
    box = (100, 120, 400, 450)
    mask = object_mask(el, part.affinity, box=box, points=[(250, 300, True), (150, 200, False)])
    assert mask.shape == (512, 512) and mask.dtype == bool
    own = owner_map(el)
    frac = np.array([(mask & (own == i)).sum() / max(1, (own == i).sum()) for i in range(el.num_elements)])
    try:
        ids = select_object(el, part.affinity, box=box, points=[(250, 300, True), (150, 200, False)], owner=own)
    except UserError:
        assert (frac < 0.5).all()
    else:
        np.testing.assert_array_equal(ids, np.flatnonzero(frac >= 0.5))
    with pytest.raises(UserError):
        select_object(el, part.affinity)
    with pytest.raises(UserError):
        select_object(el, part.affinity, points=[(-5, 10, True)])


def test_select_object_never_uses_another_images_embedding(tiny_sam, astronaut, rng):
    # the SAM embedding is the affinity's state: selecting on one image after partitioning another (or with a
    # session's stale embedding) must give that image's own mask, never the other's
    from elements.partition.objects import object_mask

    part = Partitioner("sam", sam_model=tiny_sam, num_elements=64)
    el = part(astronaut)
    own_emb = part.affinity.embedding_state()
    want = object_mask(el, part.affinity, box=(100, 120, 400, 450))
    other = part(rng.integers(0, 255, (300, 400, 3), dtype=np.uint8))
    other_emb = part.affinity.embedding_state()
    assert other_emb.key != own_emb.key
    for emb in (None, other_emb, own_emb):  # current embedding is the other image's in the first two
        part.affinity.restore_embedding(other_emb)
        np.testing.assert_array_equal(object_mask(el, part.affinity, box=(100, 120, 400, 450), embedding=emb), want)
    assert part.affinity.embedding_state().key == own_emb.key
    assert other.num_elements > 0


def test_dense_decodes_again_where_a_box_leaves_the_kept_window(tiny_sam, astronaut, monkeypatch):
    # the decoder state is kept on a CROP-token window per prompt; a box beyond it is decoded again, same values
    from elements.image_io import load_image
    from elements.partition import sam as sam_mod
    from elements.partition import to_canvas
    from elements.partition.algorithm import query_grid

    aff = sam_mod.SamAffinity(tiny_sam)
    aff.set_image(to_canvas(load_image(astronaut))[1])
    q = query_grid((0.0, 0.0, 1.0, 1.0), 36)
    boxes = np.array([[0, 0, 512, 512], [64, 64, 128, 128], [0, 0, 0, 0], [400, 16, 512, 200]] * 9)
    full = aff.dense(q, boxes).values  # CROP >= g = 16 tokens here: every window is in its crop
    assert aff.redecoded == 0
    monkeypatch.setattr(sam_mod, "CROP", 5)
    aff.samples(q)
    small = aff.dense(q, boxes).values
    assert 18 <= aff.redecoded <= 27  # 16 x 16 tokens here: the whole-canvas and 5 x 8-token boxes leave a 5-token crop
    np.testing.assert_allclose(small, full, atol=1e-5)


@pytest.mark.parametrize("depth", [1, 2])
def test_low_rank_decode_is_sams_own_decode(depth):
    # sam_decode's two-way transformer and upscaling == segment-anything's MaskDecoder (single mask), for a
    # one-layer and a two-layer transformer (the real decoder has two: the second layer's low-rank algebra)
    import torch
    import torch.nn.functional as F

    from elements.partition import sam_decode
    from elements.partition.sam import SamAffinity, build_tiny_sam

    sam = build_tiny_sam(img_size=256, decoder_depth=depth)  # 16 x 16 tokens, 64 x 64 low-res logits
    aff = SamAffinity(sam)
    rng = np.random.default_rng(3)
    aff.set_image(rng.integers(0, 255, (256, 256, 3), dtype=np.uint8))  # canvas 256: 4 canvas px per logit
    pts = rng.uniform(0, 1, (9, 2)).astype(np.float32)
    coords = torch.tensor(pts * 256, dtype=torch.float32)[:, None]
    pe, md = sam.prompt_encoder, sam.mask_decoder
    with torch.inference_mode():
        sparse, dense = pe(points=(coords, torch.ones(9, 1, dtype=torch.int64)), boxes=None, masks=None)
        ref, _ = md(
            image_embeddings=aff.embedding.features,
            image_pe=pe.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=False,
        )
        ref = ref[:, 0]  # (9, 64, 64)
        tokens = torch.cat([torch.cat([md.iou_token.weight, md.mask_tokens.weight])[None].expand(9, -1, -1), sparse], 1)
        src = aff.embedding.features + dense
        hs, keys = md.transformer(src, pe.get_dense_pe(), tokens)
        side = sam_decode.ImageSide(sam, aff.embedding.features)
        hs_lr, rep = sam_decode.two_way(side, tokens)
        assert float((hs_lr - hs[:, 1]).abs().max()) <= 1e-4
        assert float((rep.materialize() - keys).abs().max()) <= 1e-4
        up = F.interpolate(torch.sigmoid(ref)[None], scale_factor=4, mode="bilinear", align_corners=False)[0].numpy()
    logits, xy = aff.samples(pts)
    np.testing.assert_allclose(logits, ref[:, 2::4, 2::4].reshape(9, -1).numpy(), atol=1e-4)
    np.testing.assert_allclose(
        xy[17], [(16 + 8 + 0.5 * 4) / 256, (16 + 8 + 0.5 * 4) / 256]
    )  # token (1, 1), logit (6, 6)
    boxes = np.array([[0, 0, 256, 256], [32, 48, 96, 160], [0, 0, 0, 0], [240, 200, 256, 256], [64, 64, 80, 80]] * 2)[
        :9
    ]
    s = aff.dense(pts, boxes)  # a BoxAffinity: each prompt's box only
    assert_box_affinity(s, boxes, up, 256)
    np.testing.assert_allclose(aff(pts), up, atol=1e-5)  # the full affinity: every box the whole canvas


def test_sam_provider_decodes_once_per_iteration(tiny_sam, astronaut, monkeypatch):
    # Alg. 2 asks for samples then the dense affinity at the same points: one decoder pass, state dropped after
    from elements.partition import sam_decode

    part = Partitioner("sam", sam_model=tiny_sam)
    calls = []
    orig = sam_decode.two_way
    monkeypatch.setattr(sam_decode, "two_way", lambda *a, **k: (calls.append(1), orig(*a, **k))[1])
    part(astronaut)
    from elements.partition.sam import PROMPT_CHUNK

    chunks = -(-256 // PROMPT_CHUNK["cpu"])
    assert len(calls) == chunks and part.affinity._decoded is None


@pytest.mark.parametrize("distance", ["squared", "euclidean"])
def test_box_affinity_gives_eq1_the_full_affinitys_labels(rng, distance):
    # a BoxAffinity holds each query's candidate box only (clipped to the content); Eq. 1 reads nothing else
    from elements.partition.algorithm import BoxAffinity, candidate_boxes

    n, size = 64, 128
    q = rng.uniform(0, 1, (n, 2)).astype(np.float32)
    s = rng.uniform(0, 1, (n, size, size)).astype(np.float32)
    valid = np.zeros((size, size), dtype=bool)
    valid[10:120, 3:100] = True
    boxes = candidate_boxes(q, size, 16.0, distance)
    boxes[:, 0::2] = boxes[:, 0::2].clip(3, 100)
    boxes[:, 1::2] = boxes[:, 1::2].clip(10, 120)
    h, w = (boxes[:, 3] - boxes[:, 1]).max(), (boxes[:, 2] - boxes[:, 0]).max()
    values = np.full((n, h, w), np.nan, dtype=np.float32)  # NaN where nothing may be read
    for k, (x0, y0, x1, y1) in enumerate(boxes):
        values[k, : y1 - y0, : x1 - x0] = s[k, y0:y1, x0:x1]
    box = BoxAffinity(np.nan_to_num(values, nan=5.0), boxes[:, :2], size)  # 5: would win wherever it were read
    np.testing.assert_array_equal(
        assign_with_distance(box, q, valid, 16.0, distance), assign_with_distance(s, q, valid, 16.0, distance)
    )


def test_small_images_get_fewer_elements_of_at_least_the_minimum_area(chelsea):
    """The one rule (elements.partition.options.element_count): the mean element keeps >= 16 x 16 input pixels."""
    from PIL import Image

    from elements.errors import UserError
    from elements.partition.options import MIN_ELEMENT_AREA, element_count

    assert MIN_ELEMENT_AREA == 16 * 16
    assert element_count(256, 64, 64) == 16 and element_count(256, 512, 512) == 256
    assert element_count(256, 200, 150) == 117 and element_count(256, 16, 16) == 1 and element_count(256, 3, 3) == 1
    assert element_count(256, 64, 64, min_area=1) == 256 and element_count(100, 64, 64) == 16
    for backend in ("grid", "slic"):
        part = Partitioner(backend)
        for w, h in [(64, 64), (96, 40), (160, 120), (300, 451)]:
            img = np.asarray(Image.fromarray(chelsea).resize((w, h), Image.LANCZOS))
            el = part(img)
            want = element_count(256, w, h)
            assert 0.75 * want <= el.num_elements <= want, (backend, w, h, el.num_elements)
            # in input pixels, the mean element is at least the minimum area
            assert w * h / el.num_elements >= MIN_ELEMENT_AREA, (backend, w, h)
            assert el.meta["partition"]["min_element_area"] == MIN_ELEMENT_AREA
    assert Partitioner("grid", min_element_area=1)(np.zeros((64, 64, 3), np.uint8)).num_elements == 256
    with pytest.raises(UserError, match="min-element-area"):
        Partitioner("grid", min_element_area=0)


def test_sam_input_transform_is_segment_anythings(rng):
    """LongestSide (no torchvision) gives ResizeLongestSide's image, points and boxes exactly."""
    from segment_anything.utils.transforms import ResizeLongestSide

    from elements.partition.sam_modules import LongestSide

    for h, w in [(512, 512), (427, 640), (333, 97)]:
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        ours, theirs = LongestSide(1024), ResizeLongestSide(1024)
        np.testing.assert_array_equal(ours.apply_image(img), theirs.apply_image(img))
        pts = rng.uniform(0, max(h, w), (5, 2))
        np.testing.assert_array_equal(ours.apply_coords(pts, (h, w)), theirs.apply_coords(pts, (h, w)))
        boxes = rng.uniform(0, max(h, w), (3, 4))
        np.testing.assert_array_equal(ours.apply_boxes(boxes, (h, w)), theirs.apply_boxes(boxes, (h, w)))


def test_the_distilled_sam_path_imports_no_torchvision():
    """segment-anything's model classes load without its package __init__; the full package still imports after."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from elements.partition.sam_models import build_tiny_sam\nfrom elements.partition.sam_modules import sam_modeling\n"
        "from elements.partition.sam import SamAffinity\n"
        "SamAffinity(build_tiny_sam())\n"
        "assert 'torchvision' not in sys.modules, 'torchvision was imported'\n"
        "from segment_anything import SamPredictor, sam_model_registry\n"
        "assert sam_model_registry['vit_b'].__module__ == 'segment_anything.build_sam'\n"
        "assert sys.modules['segment_anything.modeling'] is sam_modeling()\n"
        "import segment_anything.modeling as m\n"
        "assert m.Sam is sam_modeling().Sam\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
