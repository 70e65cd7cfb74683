"""CPU edits that look like edits (issue 13): full-resolution pixel editing, PatchMatch filling that
never copies the moved object, no ghost at the old place, no seam at the new one, determinism."""

import cv2
import numpy as np
import pytest

from bench.quality import ghost_fraction, grid_elements, seam_contrast, synthetic_scene
from elements import edit
from elements.decoders import get_decoder, holefill
from elements.decoders.blend import ghost_band, poisson_membrane
from elements.decoders.pixel import render
from elements.decoders.result import DecodedImage
from elements.errors import UserError
from elements.types import ImageElements

DX = 170  # input pixels: the disc moves from the left third to the right


@pytest.fixture(scope="module")
def scene():
    return synthetic_scene(384, 288, cell=24, seed=0)


@pytest.fixture(scope="module")
def moved(scene):
    return edit.move(scene.elements, scene.selection, DX, 0)


@pytest.fixture(scope="module")
def decoded(moved):
    """PatchMatch with and without the hole band and the blending, Telea as it was (no band, no blend)."""
    runs = {
        "full": {"backend": "patchmatch"},
        "no_band": {"backend": "patchmatch", "hole_band": False},
        "no_blend": {"backend": "patchmatch", "blend": False},
        "telea_plain": {"backend": "telea", "hole_band": False, "blend": False},
    }
    return {k: get_decoder("pixel+inpaint", **kw)(moved, seed=0) for k, kw in runs.items()}


def test_scene_selection_leaves_slivers_in_unselected_elements(scene):
    el = scene.elements
    assert el.sources[0].full is scene.image
    sel = np.zeros(el.num_elements, dtype=bool)
    sel[scene.selection] = True
    g = el.geometry
    lab = g.labels_to_input(el.labels)
    left_over = scene.object_mask & ~sel[np.clip(lab, 0, None)]
    assert 0.03 < left_over.sum() / scene.object_mask.sum() < 0.3  # a real ghost source, not a clean cut


def test_no_ghost_at_the_old_place(scene, moved, decoded):
    now = render(moved).edited_cover
    ghosts = {k: ghost_fraction(np.asarray(v), scene.object_mask, now) for k, v in decoded.items()}
    assert ghosts["full"] <= 0.02, ghosts  # issue 13 target: <= 2 % of the object's area
    assert ghosts["no_band"] > 0.04, ghosts  # without the band the slivers seed a ghost (measured ~10 %)
    assert ghosts["telea_plain"] > 0.3, ghosts  # the old default smears the slivers in (measured ~79 %)


def test_blending_removes_the_seam(scene, moved, decoded):
    now = render(moved).edited_cover
    disc_now = np.roll(scene.object_mask, DX, axis=1)
    ignore = cv2.dilate(disc_now.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)  # the disc's own edge
    seam = {k: seam_contrast(np.asarray(decoded[k]), now, ignore=ignore) for k in ("full", "no_blend")}
    assert seam["no_blend"] > 3.0, seam  # the background ramp makes a colour step at the pasted border (~4.5)
    assert seam["full"] < 2.0 and seam["full"] < 0.5 * seam["no_blend"], seam  # measured ~1.3


def test_pixels_outside_footprint_and_hole_band_are_the_input(scene, moved, decoded):
    r = render(moved)
    band = ghost_band(r, moved, r.holes.shape[1] / moved.geometry.content_w)
    changed = r.holes | band | r.edited_cover
    assert changed.mean() < 0.35  # the old and the new place of an object covering 11 % of the image
    for k in ("full", "no_blend", "no_band"):
        out = np.asarray(decoded[k])
        assert out.shape == scene.image.shape
        assert np.array_equal(out[~changed], scene.image[~changed]), k
        assert not np.array_equal(out[r.holes], r.image[r.holes])  # holes were filled


def test_deterministic_for_a_seed(moved, decoded):
    dec = get_decoder("pixel+inpaint", backend="patchmatch")
    again = dec(moved, seed=0)
    assert np.array_equal(again, decoded["full"])
    other = dec(moved, seed=1)
    assert not np.array_equal(other, decoded["full"])


def test_result_names_the_engine_that_ran(moved, decoded):
    assert decoded["full"].ran == "pixel+inpaint (PatchMatch)"
    assert "full resolution" in decoded["full"].note and "Poisson" in decoded["full"].note
    assert decoded["telea_plain"].ran == "pixel+inpaint (Telea)"
    assert get_decoder("pixel")(moved).ran == "pixel"
    copy = decoded["full"][10:20].copy()
    assert isinstance(copy, DecodedImage) and copy.ran == "pixel+inpaint (PatchMatch)"
    import pickle

    back = pickle.loads(pickle.dumps(decoded["full"]))
    assert back.ran == decoded["full"].ran and np.array_equal(back, decoded["full"])
    with pytest.raises(UserError, match="Unknown inpainting backend"):
        get_decoder("pixel+inpaint", backend="lama")


def test_full_resolution_copy_from_a_large_input():
    """A 900 x 600 input: unedited pixels are the input's own, not a 512-canvas resample."""
    rng = np.random.default_rng(1)
    img = cv2.resize(rng.integers(0, 255, (60, 90, 3), dtype=np.uint8), (900, 600), interpolation=cv2.INTER_CUBIC)
    img = np.clip(img.astype(int) + rng.integers(-20, 20, img.shape), 0, 255).astype(np.uint8)  # fine detail
    el = grid_elements(img, 32)
    ids = edit.select_rect(el, (100, 100, 300, 300))
    out = get_decoder("pixel")(edit.move(el, ids, 400, 150))
    r = render(edit.move(el, ids, 400, 150))
    assert out.shape == img.shape and r.full_res
    keep = ~r.holes & ~r.edited_cover
    assert keep.mean() > 0.6 and np.array_equal(np.asarray(out)[keep], img[keep])
    # the moved block is the input's pixels shifted by exactly (400, 150): full-resolution copy
    ys, xs = np.nonzero(r.edited_cover)
    inner = (ys - 150 >= 0) & (xs - 400 >= 0)
    diff = np.abs(np.asarray(out)[ys[inner], xs[inner]].astype(int) - img[ys[inner] - 150, xs[inner] - 400]).mean()
    assert diff < 0.5


def test_fill_never_copies_excluded_pixels():
    """PatchMatch's source excludes the moved object: a red block beside the hole never leaks into it."""
    rng = np.random.default_rng(0)
    img = np.clip(rng.normal(110, 25, (96, 128, 3)), 0, 255).astype(np.uint8)
    img[:, :, 2] = 200  # blue-ish texture
    hole = np.zeros((96, 128), bool)
    hole[30:66, 40:76] = True
    red = np.zeros_like(hole)
    red[30:66, 76:100] = True  # the moved object, right beside the hole
    img[red] = (230, 20, 20)

    def redness(px):
        return (np.abs(px.astype(int) - (230, 20, 20)).max(axis=-1) < 60).mean()

    assert redness(img[~red]) == 0.0
    with_excl, report = holefill.fill_holes(img, hole, engine="patchmatch", seed=0, exclude=red)
    without, _ = holefill.fill_holes(img, hole, engine="patchmatch", seed=0)
    assert redness(with_excl[hole]) == 0.0 and report.min_scale == 1.0
    assert redness(without[hole]) > 0.01  # the test can fail: without exclusion red is copied
    assert np.array_equal(with_excl[~hole], img[~hole])
    telea, _ = holefill.fill_holes(img, hole, engine="telea", exclude=red)
    assert redness(telea[hole]) == 0.0


def test_large_windows_are_filled_at_a_coarser_scale_never_below_the_canvas(monkeypatch):
    monkeypatch.setattr(holefill, "FULL_RES_BUDGET", 48 * 48)
    rng = np.random.default_rng(0)
    img = np.clip(rng.normal(120, 20, (160, 160, 3)), 0, 255).astype(np.uint8)
    hole = np.zeros((160, 160), bool)
    hole[50:110, 50:110] = True
    out, report = holefill.fill_holes(img, hole, engine="patchmatch", grid_scale=2.0)
    assert report.min_scale == pytest.approx(0.5)  # budget says ~0.3; the canvas floor (1 / grid_scale) wins
    assert "upsampled" in report.note(hole.shape)
    assert np.array_equal(out[~hole], img[~hole]) and np.abs(out[hole].astype(int) - 120).mean() < 25


def test_windows_merge_and_cover_every_hole():
    holes = np.zeros((200, 300), bool)
    holes[20:40, 20:40] = True
    holes[30:50, 50:60] = True  # close to the first: windows overlap and merge
    holes[150:160, 250:290] = True
    wins = holefill.hole_windows(holes, 8)
    assert len(wins) == 2
    cover = np.zeros_like(holes)
    for x0, y0, x1, y1 in wins:
        cover[y0:y1, x0:x1] = True
    assert cover[holes].all()


def test_poisson_membrane_removes_a_colour_step_but_keeps_an_edge():
    rng = np.random.default_rng(0)
    base = np.clip(rng.normal(100, 6, (80, 80, 3)), 0, 255)
    src = np.clip(base + 30, 0, 255).astype(np.uint8)  # the pasted layer: 30 levels brighter (a step)
    dst = base.astype(np.uint8)
    mask = np.zeros((80, 80), bool)
    mask[20:60, 20:60] = True
    m = poisson_membrane(src, dst, mask)
    assert m is not None and abs(m[mask].mean() + 30) < 3  # the step is taken out
    src2 = src.copy()
    src2[10:70, 10:70] = (240, 10, 10)  # the border cuts through a red object that meets a grey background: kept
    m2 = poisson_membrane(src2, dst, mask)
    assert np.abs(m2[mask]).max() < 1.0


def test_compose_and_scale_are_placed_seamlessly(scene):
    other = synthetic_scene(384, 288, cell=24, seed=3)
    composed = edit.compose(scene.elements, other.elements, other.selection, at=(300, 200), factor=0.6)
    scaled = edit.scale(scene.elements, scene.selection, 1.3)
    blend = get_decoder("pixel+inpaint", backend="patchmatch")
    hard = get_decoder("pixel+inpaint", backend="patchmatch", blend=False)
    for el in (composed, scaled):
        r = render(el)
        a, b = np.asarray(blend(el, seed=0)), np.asarray(hard(el, seed=0))
        assert a.shape == scene.image.shape and (a[r.holes].max(axis=1) > 0).all()
        assert np.array_equal(a[~r.edited_cover], b[~r.edited_cover])  # blending changes the pasted pixels only
        disc = (
            cv2.dilate((np.abs(a.astype(int) - (215, 30, 40)).max(-1) < 70).astype(np.uint8), np.ones((9, 9), np.uint8))
            > 0
        )
        assert seam_contrast(a, r.edited_cover, ignore=disc) < seam_contrast(b, r.edited_cover, ignore=disc)


def test_full_image_survives_save_and_load(scene, tmp_path):
    scene.elements.save(tmp_path / "el")
    back = ImageElements.load(tmp_path / "el")
    assert np.array_equal(back.sources[0].full, scene.image)
    out = get_decoder("pixel")(back)
    assert np.array_equal(np.asarray(out), np.asarray(get_decoder("pixel")(scene.elements)))


def test_elements_without_full_pixels_still_decode(scene):
    import dataclasses

    el = scene.elements
    bare = el.replace(sources=(dataclasses.replace(el.sources[0], full=None),))
    out = get_decoder("pixel+inpaint", backend="telea")(edit.delete(bare, scene.selection))
    assert out.shape == scene.image.shape and "no full-resolution pixels saved" in out.note
    small = get_decoder("pixel", full_res=False)(el)  # the 512-canvas baseline, e.g. for a benchmark at 512
    assert small.shape == scene.image.shape and "full_res=False" in small.note


@pytest.mark.parametrize("backend, engine", [("auto", "PatchMatch"), ("telea", "Telea")])
def test_edit_cli_prints_the_engine_that_ran(scene, tmp_path, capsys, backend, engine):
    import json

    from PIL import Image

    from elements.cli import main

    Image.fromarray(scene.image).save(tmp_path / "scene.png")
    spec = tmp_path / "s.json"
    spec.write_text(json.dumps({"version": 1, "edits": [{"op": "delete", "rect": [90, 100, 140, 160]}]}))
    out = tmp_path / "out.png"
    assert (
        main(
            [
                "edit",
                str(tmp_path / "scene.png"),
                "--spec",
                str(spec),
                "--out",
                str(out),
                "--backend",
                "grid",
                "--num-elements",
                "64",
                "--decoder",
                "pixel+inpaint",
                "--inpaint-backend",
                backend,
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert f"ran: pixel+inpaint ({engine}) — holes filled by {engine} at full resolution (384x288)" in printed
    assert np.asarray(Image.open(out)).shape == scene.image.shape


# --- issue 19: render error against a known truth (bench/render.py measures the full-size scenes) -------------
def _ramp(h=192, w=256, seed=0):
    """A smooth colour ramp (0.5-0.9 levels per pixel) with 1.5-level noise: ``(H, W, 3) float64``."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    bg = np.stack([40 + 170 * xx / w, 90 + 110 * yy / h, 200 - 120 * xx / w], -1)
    return bg + np.random.default_rng(seed).normal(0, 1.5, bg.shape)


def test_harmonic_fill_continues_a_linear_ramp():
    yy, xx = np.mgrid[0:120, 0:160].astype(np.float64)
    ramp = np.stack([0.7 * xx + 0.3 * yy, 200 - 0.5 * yy, 0 * xx + 90], -1)
    hole = np.zeros((120, 160), bool)
    hole[20:100, 30:140] = True
    exact = holefill.harmonic_fill(np.where(hole[..., None], 0.0, ramp), hole)
    assert np.abs(exact - ramp).max() < 1e-3  # Laplace's equation holds for any linear function
    coarse = holefill.harmonic_fill(np.where(hole[..., None], 0.0, ramp), hole, budget=500)  # solved at ~0.25x
    assert np.abs(coarse - ramp)[hole].mean() < 1.0
    assert np.array_equal(coarse[~hole], ramp[~hole])


def test_patchmatch_fill_of_a_ramp_matches_the_true_background():
    """PatchMatch alone copies patches from elsewhere on the ramp (MAE 5.4 before issue 19); its shading now
    comes from the membrane, its texture from PatchMatch."""
    bg = np.clip(_ramp(), 0, 255).astype(np.uint8)
    hole = np.zeros(bg.shape[:2], bool)
    hole[70:130, 100:160] = True
    img = bg.copy()
    img[hole] = 0
    filled, _ = holefill.fill_holes(img, hole, engine="patchmatch", seed=0)
    assert np.array_equal(filled[~hole], img[~hole])
    assert np.abs(filled.astype(float) - bg)[hole].mean() < 2.5  # measured 1.8


def test_moved_object_on_a_ramp_matches_the_truth_without_ghost_or_halo():
    """A disc that is one element (as SAM-feature elements follow an object) moved 100 px on a ramp: the
    render against the true background with the disc at its new place (MAE 3.85 before issue 19)."""
    from elements.geometry import Geometry
    from elements.partition.build import elements_from_labels

    h, w = 192, 256
    bg = _ramp(h, w)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)

    def scene(cx):
        a = np.clip(30 - np.hypot(xx - cx, yy - 96) + 0.5, 0, 1)[..., None]
        return np.clip(bg * (1 - a) + np.array([215.0, 30, 40]) * a, 0, 255).astype(np.uint8), a[..., 0] > 0.5

    (img, old), (truth, new) = scene(70), scene(170)
    g = Geometry.fit(w, h)
    ys, xs = np.mgrid[0 : g.size, 0 : g.size]
    lab = ((ys - g.content_y) // 32) * 100 + (xs - g.content_x) // 32
    (cx, cy), r = g.input_to_norm([[70, 96]])[0] * g.size, 30 * g.scale_xy[0]
    lab = np.where(np.hypot(xs + 0.5 - cx, ys + 0.5 - cy) <= r, 9999, lab)  # the disc: the last element
    _, inv = np.unique(np.where(g.content_mask(), lab, -1), return_inverse=True)
    el = elements_from_labels(g.to_canvas(img), (inv.reshape(lab.shape) - 1).astype(np.int32), g, {}, full=img)
    out = np.asarray(get_decoder("pixel+inpaint", backend="patchmatch")(edit.move(el, [el.num_elements - 1], 100, 0)))
    err = np.abs(out.astype(float) - truth).mean(-1)
    region = cv2.dilate((old | new).astype(np.uint8), np.ones((17, 17), np.uint8)).astype(bool)
    assert err[region].mean() < 3.0  # measured 2.3
    ring = cv2.dilate(new.astype(np.uint8), np.ones((13, 13), np.uint8)).astype(bool) & ~cv2.dilate(
        new.astype(np.uint8), np.ones((3, 3), np.uint8)
    ).astype(bool)
    assert err[ring].mean() < 4.0  # no halo around the placed disc
    assert err[new].mean() < 4.0  # the disc keeps its colours
    assert (err[old & ~new] > 30).mean() < 0.01  # no ghost at the old place


def test_poisson_membrane_keeps_an_object_whose_border_follows_its_outline():
    """The border of a pasted object that is its own outline is content, not a seam: no tint, whatever the
    new surroundings; the same object pasted with a ring of its old background takes the new one's colour."""
    bg = _ramp(96, 96)
    yy, xx = np.mgrid[0:96, 0:96]
    obj = np.hypot(xx - 48, yy - 48) <= 24
    src = np.clip(np.where(obj[..., None], (60.0, 150.0, 90.0), bg), 0, 255).astype(np.uint8)  # ~75 from the ramp
    dst = np.clip(bg + 25, 0, 255).astype(np.uint8)  # the new place is 25 levels brighter
    m = poisson_membrane(src, dst, obj)
    assert np.abs(m[obj]).max() < 3.0  # the object keeps its colours (before issue 19: tinted by the full 25)
    ringed = np.hypot(xx - 48, yy - 48) <= 30
    m2 = poisson_membrane(src, dst, ringed)
    ring = ringed & ~obj
    assert abs(m2[ring].mean() - 25) < 5  # the carried background takes the new surroundings' colour


def _stripes(h=200, w=260, seed=0):
    """Diagonal stripes (period 11 px) on a ramp with 3-level noise: ``(H, W, 3) uint8`` (bench/render.py's texture)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    bg = _ramp(h, w, seed) + 14 * np.sin(2 * np.pi * (0.9 * xx + 0.45 * yy) / 11.0)[..., None]
    return np.clip(bg + np.random.default_rng(seed + 1).normal(0, 3, bg.shape), 0, 255).astype(np.uint8)


def test_regularity_is_found_in_stripes_not_in_a_ramp():
    known = np.ones((200, 260), bool)
    known[60:140, 80:180] = False
    k, strength = holefill.regularity(_stripes(), known)
    assert strength >= holefill.REGULARITY_MIN and abs(1 / np.hypot(*k) - 11.0) < 1.0  # the stripes' period
    ramp = np.clip(_ramp(200, 260), 0, 255).astype(np.uint8)
    assert holefill.regularity(ramp, known)[1] < holefill.REGULARITY_MIN  # noise has no dominant frequency
    phase = holefill.regularity_map((200, 260), k)[..., 0]
    assert phase.min() >= 0 and phase.max() < 1  # pypatchmatch's ijmap: a phase in [0, 1)


def test_patchmatch_continues_stripes_in_phase_for_every_seed():
    """Unguided PatchMatch lost the stripes' phase over large parts of a hole (fill error 6.3-11.1 by seed
    on bench/render.py's striped scene); guided by the stripes' phase it matches the truth up to noise."""
    truth = _stripes()
    hole = np.zeros(truth.shape[:2], bool)
    hole[50:150, 70:190] = True
    img = truth.copy()
    img[hole] = 0
    for seed in (0, 1):
        out, _ = holefill.fill_holes(img, hole, engine="patchmatch", seed=seed)
        err = np.abs(out.astype(int) - truth.astype(int)).mean(-1)[hole].mean()
        assert err < 7.5, (seed, err)  # out of phase: ~14 (the stripes' mean |difference|); noise alone ~4.8


def test_smooth_base_does_not_spread_a_dark_line_at_the_border_into_the_hole():
    """A sliver of dark lattice left at the hole's border (the rocket photo) is structure, not shading."""
    sky = np.clip(_ramp(160, 160, seed=3) * 0 + (60, 80, 120), 0, 255)
    sky = np.clip(sky + np.random.default_rng(3).normal(0, 1.5, sky.shape), 0, 255).astype(np.uint8)
    hole = np.zeros((160, 160), bool)
    hole[30:130, 60:100] = True
    img = sky.copy()
    img[30:130, 100:103] = (20, 20, 22)  # a 3-px dark line along the hole's right border
    img[hole] = 0
    out, _ = holefill.fill_holes(img, hole, engine="patchmatch", seed=0)
    inner = hole.copy()
    inner[:, 92:] = False  # away from the line itself
    assert np.abs(out[inner].astype(int) - (60, 80, 120)).mean() < 4.0


def test_seam_correction_stops_at_the_object_outline():
    """A disc pasted with a 2-px ring of its old background: the ring takes the new surroundings' colour,
    the disc keeps its own (issue 19: SLIC elements left a tinted rim inside the disc)."""
    yy, xx = np.mgrid[0:120, 0:120]
    d = np.hypot(xx - 60, yy - 60)
    src = np.where((d < 30)[..., None], np.array([215, 30, 40]), np.array([90, 120, 160])).astype(np.uint8)
    dst = np.full_like(src, (130, 150, 120))
    mask = d < 32  # the element: the disc and a 2-px ring of old background
    corr = poisson_membrane(src, dst, mask)
    assert np.abs(corr[d < 26]).max() < 3.0  # the disc's inside is untouched
