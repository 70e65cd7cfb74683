"""Boundary quality of the partition backends at 256 elements: do elements follow objects?

    python bench/boundaries.py [--subset all|dev|held] [--backends slic,sam-alg2,sam] [--scenes 12] [--points 8]

Three kinds of ground truth, none of them made by SAM's partition or tuned to it:

* **scenes** — generated 512² images with known masks (:func:`make_scene`): 3-5 shapes (ellipses,
  rotated rectangles, stars, blobs) filled with textures (filtered noise, stripes, checks,
  scikit-image's brick / grass / gravel), on a textured background, anti-aliased and noised.
  Seeds 0..3 are the *dev* scenes, the rest *held-out*.
* **photos** — object masks for the bundled photos and scikit-image's ``camera``, computed once by
  GrabCut from hand-placed hints and checked by eye (``bench/boundary_masks.py`` writes
  ``bench/boundary_masks.json``): hair, badge, helmet (astronaut), cat (chelsea), cup, spoon
  (coffee), rocket, cameraman. astronaut and coffee are *dev*, the others *held-out*.
* **SAM points** — consistency with SAM itself: for random points (seeded) on the photos, the
  distilled SAM's own best mask (three masks at full decode, best predicted IoU: what the demo's
  click selects) must be covered by the elements that lie mostly inside it (object error below).
  Masks smaller than one mean element area (1024 canvas px) are skipped: no partition can cover
  them.

Which refinement to ship was decided on the *dev* subset only (``--subset dev``); the tables in
docs/partition.md report all subsets, dev and held-out separately.

Metrics (on the 512² working canvas, content pixels only; a ground-truth segmentation is the set of
objects plus one background segment, later objects painted over earlier ones; dropped pixels
(label -1, ~0.1 %) are given to the nearest element first and counted in ``dropped``):

* **BR** — boundary recall at 2 px: the fraction of ground-truth boundary pixels with an element
  boundary pixel within a 5 × 5 window (Chebyshev distance <= 2), Martin et al., PAMI 2004, as used for
  superpixels by Achanta et al., SLIC, PAMI 2012 and Stutz et al., CVIU 2018. A pixel is a boundary
  pixel when its right or lower 4-neighbour has another label.
* **BP** — boundary precision at 2 px, the converse (element boundary pixels near a ground-truth
  boundary). Reported so that a higher BR bought by wigglier borders shows.
* **UE** — undersegmentation error, Neubert & Protzel, 2012 (Stutz et al. Eq. 3):
  ``1/|I| · Σ_G Σ_{S ∩ G ≠ ∅} min(|S ∩ G|, |S \\ G|)``. Lower is better.
* **ASA** — achievable segmentation accuracy, Liu et al., CVPR 2011: ``Σ_S max_G |S ∩ G| / |I|``.
* **object error** (issue 20): per object mask R, U = the union of the elements with at least half
  of their pixels inside R (``elements.partition.objects.elements_in_mask``), error
  ``= (|U \\ R| + |R \\ U|) / |R|``; the mean over objects. Lower is better.
* **time** — seconds from a canvas to its labels, warm (models loaded), the SAM's image
  encoder included (its embedding is cleared before each image): upload → elements. When both
  ``sam-alg2`` and ``sam`` run, Alg. 2 runs once per image and ``sam`` is timed as its seconds plus
  those of :func:`~elements.partition.refine.refine_borders` on its labels, which is exactly what
  ``Partitioner(refine="borders")`` computes (tests/test_refine.py checks it): the shared machine's
  minutes go to more cases instead of a second identical Alg. 2.

Figures on this shared 2-core machine move by ±15 %; the load average is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import zlib
from pathlib import Path

import numpy as np
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

SIZE = 512
TOL = 2  # px, boundary match radius (Chebyshev)
DEV_SCENES = 4  # seeds 0..3 are the dev scenes
DEV_PHOTOS = ("astronaut", "coffee")
MASKS = Path(__file__).with_name("boundary_masks.json")
MIN_SAM_MASK = SIZE * SIZE // 256  # one mean element area at N = 256

#: backend name -> Partitioner keyword arguments
BACKENDS = {
    "slic": {"backend": "slic"},
    "sam-alg2": {"backend": "sam", "sam_model_type": "vit_t", "refine": "none"},
    "sam": {"backend": "sam", "sam_model_type": "vit_t"},
}

TITLES = {"slic": "pixel SLIC", "sam-alg2": "SAM, Alg. 2 alone", "sam": "SAM, Alg. 2 + refined borders (default)"}

# --- metrics ------------------------------------------------------------------------------------------------------


def boundaries(labels: np.ndarray) -> np.ndarray:
    """``(H, W) bool``: pixels whose right or lower 4-neighbour has another label."""
    e = np.zeros(labels.shape, dtype=bool)
    e[:, :-1] |= labels[:, 1:] != labels[:, :-1]
    e[:-1] |= labels[1:] != labels[:-1]
    return e


def boundary_recall(labels: np.ndarray, gt: np.ndarray, valid: np.ndarray, tol: int = TOL) -> float:
    """Fraction of ``gt``'s boundary pixels (in ``valid``) within Chebyshev distance ``tol`` of one of ``labels``'."""
    eg = boundaries(gt) & valid
    el = boundaries(labels) & valid
    if not eg.any():
        return float("nan")
    near = ndimage.binary_dilation(el, structure=np.ones((2 * tol + 1,) * 2, bool))
    return float(near[eg].mean())


def fill_dropped(labels: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Dropped content pixels (-1) get the label of the nearest labelled pixel; padding stays -1."""
    if not ((labels < 0) & valid).any():
        return labels
    _, (iy, ix) = ndimage.distance_transform_edt(labels < 0, return_indices=True)
    return np.where(valid, labels[iy, ix], -1)


def contingency(labels: np.ndarray, gt: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``(S, G) int64``: ``C[s, g] = |element s ∩ ground-truth segment g|`` over ``valid`` pixels."""
    s, g = labels[valid].astype(np.int64), gt[valid].astype(np.int64)
    ns, ng = int(s.max()) + 1, int(g.max()) + 1
    return np.bincount(s * ng + g, minlength=ns * ng).reshape(ns, ng)


def undersegmentation_error(c: np.ndarray) -> float:
    """Neubert & Protzel's UE from a contingency table ``c`` (:func:`contingency`)."""
    size = c.sum(axis=1, keepdims=True)
    return float(np.minimum(c, size - c)[c > 0].sum() / c.sum())


def achievable_accuracy(c: np.ndarray) -> float:
    """Liu et al.'s ASA from a contingency table ``c``."""
    return float(c.max(axis=1).sum() / c.sum())


def object_error(labels: np.ndarray, mask: np.ndarray) -> float:
    """Issue 20's error for one object: (|U \\ R| + |R \\ U|) / |R|, U = elements >= 50 % inside R = ``mask``."""
    from elements.partition.objects import elements_in_mask

    ids = elements_in_mask(labels.astype(np.int64), mask, int(labels.max()) + 1)
    union = np.isin(labels, ids)
    return float(((union & ~mask).sum() + (mask & ~union).sum()) / mask.sum())


def scores(labels: np.ndarray, gt: np.ndarray, objects: list[np.ndarray], valid: np.ndarray) -> dict:
    """All ground-truth metrics of one label map; ``gt``: ``(S, S) int`` segments, ``objects``: their masks."""
    dropped = float(((labels < 0) & valid).sum() / valid.sum())
    lab = fill_dropped(labels, valid)
    c = contingency(lab, gt, valid)
    return {
        "BR": boundary_recall(lab, gt, valid),
        "BP": boundary_recall(gt, lab, valid),
        "UE": undersegmentation_error(c),
        "ASA": achievable_accuracy(c),
        "obj": float(np.mean([object_error(lab, m) for m in objects])),
        "N": int(lab.max()) + 1,
        "dropped": dropped,
    }


# --- ground truth ---------------------------------------------------------------------------------------------------


def _texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """A random texture ``(size, size) float32`` in [0, 1]."""
    from skimage import data

    kind = rng.choice(["noise", "stripes", "checks", "brick", "grass", "gravel"])
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    if kind == "noise":
        t = ndimage.gaussian_filter(rng.standard_normal((size, size)), rng.uniform(1.0, 6.0))
    elif kind == "stripes":
        a = rng.uniform(0, np.pi)
        t = np.sin((xx * np.cos(a) + yy * np.sin(a)) * 2 * np.pi / rng.uniform(6, 24))
    elif kind == "checks":
        p = int(rng.integers(6, 20))
        t = ((xx // p + yy // p) % 2).astype(np.float32)
    else:
        t = getattr(data, kind)().astype(np.float32)[:size, :size]
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    return t.astype(np.float32)


def _shape(rng: np.random.Generator, size: int) -> np.ndarray:
    """A random shape mask ``(size, size) bool``: ellipse, rotated rectangle, star or blob, 40-170 px across."""
    from skimage.draw import ellipse, polygon

    m = np.zeros((size, size), dtype=bool)
    cx, cy = rng.uniform(0.2, 0.8, 2) * size
    r = rng.uniform(20, 85)
    kind = rng.choice(["ellipse", "rectangle", "star", "blob"])
    if kind == "ellipse":
        rr, cc = ellipse(cy, cx, r, r * rng.uniform(0.4, 1.0), shape=m.shape, rotation=rng.uniform(0, np.pi))
        m[rr, cc] = True
        return m
    if kind == "blob":
        k = np.zeros((size, size))
        k[int(cy), int(cx)] = 1
        noise = ndimage.gaussian_filter(rng.standard_normal((size, size)), 12) * 40
        dist = ndimage.distance_transform_edt(k == 0)
        return dist + noise * r / 40 < r
    if kind == "rectangle":
        a, w, h = rng.uniform(0, np.pi), r, r * rng.uniform(0.3, 1.0)
        corners = np.array([[-w, -h], [w, -h], [w, h], [-w, h]])
    else:
        n = int(rng.integers(5, 8))
        ang = np.arange(2 * n) * np.pi / n + rng.uniform(0, np.pi)
        rad = np.where(np.arange(2 * n) % 2 == 0, r, r * rng.uniform(0.35, 0.6))
        corners = np.stack([rad * np.cos(ang), rad * np.sin(ang)], axis=1)
        a = 0.0
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    pts = corners @ rot.T + [cx, cy]
    rr, cc = polygon(pts[:, 1], pts[:, 0], shape=m.shape)
    m[rr, cc] = True
    return m


def make_scene(seed: int, size: int = SIZE) -> tuple[np.ndarray, np.ndarray]:
    """A generated scene: ``(image (size, size, 3) uint8 RGB, segments (size, size) int32)``, 0 = background.

    Each region is a texture between two random colours; objects are painted in order (later ones
    occlude earlier ones); a fully hidden or tiny (< 400 px) object is not in ``segments``. The image
    is anti-aliased (Gaussian, sigma 0.7 px) and carries Gaussian noise (std 3 grey levels).
    """
    rng = np.random.default_rng(seed)

    def region() -> np.ndarray:
        t = _texture(rng, size)[..., None]
        c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
        c1 = c0 + (c1 - c0) * rng.uniform(0.2, 0.6)  # texture contrast below the object contrast, mostly
        return c0 * (1 - t) + c1 * t

    img = region()
    seg = np.zeros((size, size), dtype=np.int32)
    for k in range(1, int(rng.integers(3, 6)) + 1):
        m = _shape(rng, size)
        img = np.where(m[..., None], region(), img)
        seg[m] = k
    img = ndimage.gaussian_filter(img, (0.7, 0.7, 0)) + rng.normal(0, 3.0, img.shape)
    areas = np.bincount(seg.ravel())
    for k in np.flatnonzero(areas[1:] < 400) + 1:  # tiny remnants belong to the background segment
        seg[seg == k] = 0
    return np.clip(img, 0, 255).astype(np.uint8), seg


def scene_case(seed: int) -> dict:
    """One benchmark case from :func:`make_scene`."""
    from elements.geometry import Geometry

    img, seg = make_scene(seed)
    ids = [k for k in np.unique(seg) if k > 0]
    return {
        "name": f"scene{seed}",
        "canvas": img,
        "geometry": Geometry.fit(SIZE, SIZE, SIZE),
        "gt": seg,
        "objects": [seg == k for k in ids],
        "dev": seed < DEV_SCENES,
    }


def photo_case(name: str, img: np.ndarray, polygons: dict) -> dict:
    """One benchmark case from a photo and its object polygons (input px), rasterised on the canvas."""
    import cv2

    from elements.geometry import Geometry

    geometry = Geometry.fit(img.shape[1], img.shape[0], SIZE)
    canvas = geometry.to_canvas(img)  # the letterbox of elements.partition.to_canvas
    gt = np.zeros((SIZE, SIZE), dtype=np.int32)
    objects = []
    for k, poly in enumerate(polygons.values(), start=1):
        pts = geometry.input_to_norm(np.asarray(poly, dtype=np.float64) + 0.5) * SIZE - 0.5  # pixel centres
        m = np.zeros((SIZE, SIZE), dtype=np.uint8)
        cv2.fillPoly(m, [np.round(pts * 4).astype(np.int32)], 1, shift=2)
        objects.append(m.astype(bool) & geometry.content_mask())
        gt[objects[-1]] = k
    objects = [gt == k for k in range(1, len(objects) + 1)]  # what is left visible of each after painting
    return {
        "name": name,
        "canvas": canvas,
        "geometry": geometry,
        "gt": gt,
        "objects": [m for m in objects if m.any()],
        "names": list(polygons),
        "dev": name in DEV_PHOTOS,
    }


def sam_point_masks(affinity, case: dict, count: int, seed: int) -> list[np.ndarray]:
    """SAM's best mask (full decode, three masks, best predicted IoU) for random content points of a case."""
    rng = np.random.default_rng(seed)
    valid = case["geometry"].content_mask()
    ys, xs = np.nonzero(valid)
    affinity.set_image(case["canvas"])
    out = []
    for _ in range(4 * count):
        i = rng.integers(len(xs))
        m = affinity.mask(np.array([[xs[i] + 0.5, ys[i] + 0.5]]), np.array([1])) & valid
        if m.sum() >= MIN_SAM_MASK:
            out.append(m)
        if len(out) == count:
            break
    return out


# --- the run --------------------------------------------------------------------------------------------------------


def run_backend(part, case: dict) -> tuple[np.ndarray, float]:
    """Labels of one case and the seconds they took (the SAM embedding cleared first: encoder included)."""
    if part.affinity is not None:
        part.affinity.clear()
    t0 = time.perf_counter()
    labels = part.labels(case["canvas"], case["geometry"])
    return labels, time.perf_counter() - t0


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False)
    p.add_argument("--subset", choices=("all", "dev", "held"), default="all", help="which cases (default all)")
    p.add_argument(
        "--backends", default=",".join(BACKENDS), help=f"comma-separated, of {', '.join(BACKENDS)} (default all)"
    )
    p.add_argument("--scenes", type=int, default=12, help="generated scenes, seeds 0..n-1 (default 12)")
    p.add_argument("--points", type=int, default=8, help="random SAM points per photo (default 8)")
    p.add_argument("--num-elements", type=int, default=256, help="elements per image (default 256)")
    p.add_argument("--cases", default=None, help="comma-separated case names (scene0, astronaut, ...; default all)")
    p.add_argument(
        "--grid",
        action="store_true",
        help="instead of the table: score refine_borders over GRID (band, m, iterations) on one Alg. 2 run per case "
        "(how the defaults were chosen, with --subset dev)",
    )
    p.add_argument("--json", default=None, help="also write every per-case figure to this JSON file")
    p.add_argument(
        "--figure",
        default=None,
        help="write a PNG: for each photo case, the elements of the first and last backend side by side",
    )
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from bench.partition import photos
    from elements.errors import UserError
    from elements.partition import Partitioner
    from elements.partition.refine import refine_borders

    names = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = [b for b in names if b not in BACKENDS]
    names = [b for b in BACKENDS if b in names]  # table order; sam-alg2 before sam
    if unknown:
        print(f"error: unknown backend {', '.join(unknown)}; choose from {', '.join(BACKENDS)}.", file=sys.stderr)
        return 2
    derived = "sam" in names and "sam-alg2" in names  # sam = sam-alg2's labels + refine_borders (docstring)
    try:
        parts = {
            b: Partitioner(num_elements=args.num_elements, **BACKENDS[b]) for b in names if not (derived and b == "sam")
        }
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    keep = {"all": lambda c: True, "dev": lambda c: c["dev"], "held": lambda c: not c["dev"]}[args.subset]
    polys = json.loads(MASKS.read_text())
    cases = [c for c in (scene_case(s) for s in range(args.scenes)) if keep(c)]
    cases += [c for c in (photo_case(n, img, polys[n]) for n, img in photos(list(polys)).items()) if keep(c)]
    if args.cases:
        wanted = set(args.cases.split(","))
        cases = [c for c in cases if c["name"] in wanted]
        if not cases:
            print(f"error: no case named {args.cases}.", file=sys.stderr)
            return 2
    sam = next((p.affinity for p in parts.values() if p.affinity is not None), None)
    drawn = []

    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}  ({time.strftime('%H:%M UTC')})")
    if args.grid:
        return refine_grid(parts, cases)
    rows = []
    for case in cases:
        valid = case["geometry"].content_mask()
        point_masks = []
        if sam is not None and not case["name"].startswith("scene") and args.points > 0:
            point_masks = sam_point_masks(sam, case, args.points, seed=zlib.crc32(case["name"].encode()))
        done = {}
        for b in names:
            if derived and b == "sam":
                t0 = time.perf_counter()
                labels = refine_borders(done["sam-alg2"][0], case["canvas"], valid)
                secs = done["sam-alg2"][1] + time.perf_counter() - t0
            else:
                labels, secs = run_backend(parts[b], case)
            done[b] = (labels, secs)
            r = {"case": case["name"], "dev": case["dev"], "backend": b, "time": secs}
            r.update(scores(labels, case["gt"], case["objects"], valid))
            lab = fill_dropped(labels, valid)
            r["per_object"] = [object_error(lab, m) for m in case["objects"]]
            r["sam_points"] = [object_error(lab, m) for m in point_masks]
            rows.append(r)
            print(
                f"  {case['name']:10s} {b:9s} BR {r['BR']:.3f} BP {r['BP']:.3f} UE {r['UE']:.3f} "
                f"ASA {r['ASA']:.3f} obj {r['obj']:.3f} N {r['N']} {secs:.2f}s",
                flush=True,
            )
        if args.figure and not case["name"].startswith("scene"):
            drawn.append((case, [done[names[0]][0], done[names[-1]][0]]))
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}  ({time.strftime('%H:%M UTC')})")
    print()
    print(table(rows, names))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    if args.figure and drawn:
        figure(drawn, [TITLES[names[0]], TITLES[names[-1]]], Path(args.figure))
        print(f"wrote {args.figure}")
    return 0


#: (band px, SLIC m, iterations) tried for the refinement; the first row is Alg. 2 alone
GRID = (
    (0, 10.0, 0),
    (4, 10.0, 2),
    (8, 10.0, 2),
    (12, 10.0, 2),
    (12, 10.0, 4),
    (12, 5.0, 2),
    (12, 20.0, 2),
    (16, 10.0, 2),
)


def refine_grid(parts: dict, cases: list[dict]) -> int:
    """Print the means of every metric for each :data:`GRID` setting, scenes and photos apart (one Alg. 2 per case)."""
    from elements.partition.refine import refine_borders

    part = next((p for p in parts.values() if p.backend == "sam" and p.refine == "none"), None)
    if part is None:
        print("error: --grid needs the sam-alg2 backend.", file=sys.stderr)
        return 2
    res = {}
    for case in cases:
        valid = case["geometry"].content_mask()
        base, _ = run_backend(part, case)
        kind = "scenes" if case["name"].startswith("scene") else "photos"
        for band, m, it in GRID:
            t0 = time.perf_counter()
            lab = refine_borders(base, case["canvas"], valid, band=band, compactness=m, iterations=it)
            secs = time.perf_counter() - t0
            r = scores(lab, case["gt"], case["objects"], valid)
            r["objs"] = [object_error(fill_dropped(lab, valid), o) for o in case["objects"]]
            r["time"] = secs
            res.setdefault((kind, band, m, it), []).append(r)
        print(f"  {case['name']} done", flush=True)
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}  ({time.strftime('%H:%M UTC')})")
    print("| cases | band px | m | iterations | BR@2 | BP@2 | UE | ASA | object error | refine s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for (kind, band, m, it), rs in res.items():
        mean = {k: np.mean([r[k] for r in rs]) for k in ("BR", "BP", "UE", "ASA", "time")}
        obj = np.mean([e for r in rs for e in r["objs"]])
        what = "Alg. 2 alone" if band == 0 else f"{band} | {m:g} | {it}"
        what = f"{what} | | " if band == 0 else what
        print(
            f"| {kind} ({len(rs)}) | {what} | {mean['BR']:.3f} | {mean['BP']:.3f} | {mean['UE']:.4f} "
            f"| {mean['ASA']:.4f} | {obj:.3f} | {mean['time']:.2f} |"
        )
    return 0


def figure(drawn: list, titles: list[str], path: Path) -> None:
    """One row per photo: its elements under each of two backends (yellow borders), the object masks in red."""
    import cv2

    rows = []
    for case, labels in drawn:
        g = case["geometry"]
        crop = (slice(g.content_y, g.content_y + g.content_h), slice(g.content_x, g.content_x + g.content_w))
        gt_edge = ndimage.binary_dilation(boundaries(case["gt"]))[crop]
        tiles = []
        for lab, title in zip(labels, titles):
            img = case["canvas"][crop].copy()
            img[boundaries(lab)[crop]] = (255, 230, 0)
            img[gt_edge] = (230, 30, 30)
            bar = np.full((24, img.shape[1], 3), 255, np.uint8)
            cv2.putText(bar, f"{case['name']}: {title}", (6, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1)
            img = np.concatenate([bar, img], axis=0)
            tiles.append(img)
        row = np.concatenate([tiles[0], np.full((tiles[0].shape[0], 8, 3), 255, np.uint8), tiles[1]], axis=1)
        rows.append(row)
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 8), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.concatenate(rows, axis=0)[..., ::-1])


def table(rows: list[dict], names: list[str]) -> str:
    """The markdown table: per case set and backend, the means of every metric."""
    sets = [
        ("scenes, dev", lambda r: r["case"].startswith("scene") and r["dev"]),
        ("scenes, held-out", lambda r: r["case"].startswith("scene") and not r["dev"]),
        ("photos, dev", lambda r: not r["case"].startswith("scene") and r["dev"]),
        ("photos, held-out", lambda r: not r["case"].startswith("scene") and not r["dev"]),
    ]
    out = [
        "| cases | backend | BR@2 ↑ | BP@2 ↑ | UE ↓ | ASA ↑ | object error ↓ | N | dropped | s / image |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for title, pick in sets:
        for b in names:
            sel = [r for r in rows if pick(r) and r["backend"] == b]
            if not sel:
                continue
            m = {k: np.mean([r[k] for r in sel]) for k in ("BR", "BP", "UE", "ASA", "N", "dropped", "time")}
            obj = np.mean([e for r in sel for e in r["per_object"]])
            out.append(
                f"| {title} ({len(sel)}) | {b} | {m['BR']:.3f} | {m['BP']:.3f} | {m['UE']:.4f} | {m['ASA']:.4f} "
                f"| {obj:.3f} | {m['N']:.0f} | {100 * m['dropped']:.2f} % | {m['time']:.2f} |"
            )
    for b in names:
        errs = [e for r in rows if r["backend"] == b for e in r["sam_points"]]
        if errs:
            out.append(
                f"| SAM points ({len(errs)} masks) | {b} | | | | | {np.mean(errs):.3f} "
                f"(median {np.median(errs):.3f}) | | | |"
            )
    objs = [(r["case"], r["backend"], r["per_object"]) for r in rows if not r["case"].startswith("scene")]
    if objs:
        out += ["", "| photo object | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
        per = {}
        for case, b, errs in objs:
            per.setdefault(case, {})[b] = errs
        polys = json.loads(MASKS.read_text())
        for case, by in per.items():
            for k, obj in enumerate(polys[case]):
                out.append(f"| {case} {obj} | " + " | ".join(f"{by[b][k]:.3f}" for b in names if b in by) + " |")
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
