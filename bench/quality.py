"""How an edit looks: ghost and seam measures, and the generated scene they are checked on.

    python bench/quality.py        # prints the ghost and seam table of the synthetic scene (docs/cpu-editing.md)

* :func:`synthetic_scene` — a textured background (colour ramp + stripes + noise, so the old and
  the new place of a moved object differ) with a distinct red disc, partitioned into square
  elements that straddle the disc's border, and the ids of the elements that hold at least half
  disc (as a SAM-style object selection does, so the unselected neighbours keep slivers of it).
* :func:`ghost_fraction` — object-coloured pixels left at the object's old place, as a fraction of
  the object's area (target <= 2 %).
* :func:`seam_contrast` — gradient energy on a thin band along a pasted footprint's border over the
  gradient energy of the nearby inside and outside (about 1 = no visible seam).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from elements.geometry import Geometry
from elements.types import ImageElements

OBJECT_RGB = (215, 30, 40)  # the disc's colour: far from every background colour of the scene

#: The rocket in assets/rocket.jpg (640 x 427 input pixels), nose to base; its elements are those with
#: at least half their pixels inside (as SAM's select_object with min_fraction 0.5 would pick them).
ROCKET_POLYGON = [
    (322, 126),
    (314, 133),
    (310, 145),
    (309, 180),
    (308, 405),
    (336, 405),
    (335, 180),
    (334, 145),
    (330, 133),
]


@dataclass(frozen=True)
class Scene:
    image: np.ndarray  # (H, W, 3) uint8, the input
    object_mask: np.ndarray  # (H, W) bool, the disc
    elements: ImageElements  # grid partition of image
    selection: np.ndarray  # (M,) int64, elements with >= 50 % disc pixels


def synthetic_scene(
    width: int = 384, height: int = 288, *, cell: int = 24, radius: float = 0.17, seed: int = 0
) -> Scene:
    """The scene described in the module docstring; ``cell`` is the element side in canvas pixels."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    u, v = xx / width, yy / height
    base = np.stack([60 + 90 * u, 110 + 60 * v, 170 - 80 * u], -1)  # smooth ramp: colour differs across the image
    stripes = 14 * np.sin(2 * np.pi * (xx * 0.9 + yy * 0.45) / 11.0)  # a texture PatchMatch can continue
    img = base + stripes[..., None] + rng.normal(0, 5, (height, width, 3))
    cx, cy, r = 0.3 * width, 0.45 * height, radius * min(width, height) * 1.3
    obj = (xx - cx) ** 2 + (yy - cy) ** 2 <= r**2
    shade = 1.0 - 0.15 * np.clip(((xx - cx) + (yy - cy)) / (2 * r), -1, 1)  # a little shading on the disc
    img[obj] = np.asarray(OBJECT_RGB, dtype=np.float64) * shade[obj][:, None]
    # soften the disc's edge by one pixel, as a photo's would be
    img = np.clip(img, 0, 255).astype(np.uint8)
    soft = cv2.GaussianBlur(img, (3, 3), 0.7)
    edge = cv2.dilate(obj.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool) & ~cv2.erode(
        obj.astype(np.uint8), np.ones((3, 3), np.uint8)
    ).astype(bool)
    img[edge] = soft[edge]
    el = grid_elements(img, cell)
    g = el.geometry
    obj_c = _to_canvas_mask(obj, g)
    lab = el.labels
    inside = np.bincount(lab[lab >= 0], weights=obj_c[lab >= 0], minlength=el.num_elements)
    selection = np.flatnonzero(inside >= 0.5 * el.areas).astype(np.int64)
    return Scene(img, obj, el, selection)


def grid_elements(image: np.ndarray, cell: int) -> ImageElements:
    """Square ``cell``-pixel elements on the canvas (the last row/column may be narrower)."""
    from elements.partition.build import elements_from_labels

    h, w = image.shape[:2]
    g = Geometry.fit(w, h)
    canvas = g.to_canvas(image)
    ys, xs = np.mgrid[0 : g.size, 0 : g.size]
    raw = np.where(g.content_mask(), ((ys - g.content_y) // cell) * 1000 + (xs - g.content_x) // cell, -1)
    _, inv = np.unique(raw, return_inverse=True)
    labels = (inv.reshape(raw.shape) - 1).astype(np.int32)  # -1 (padding) sorts first
    if not (raw < 0).any():
        labels += 1
    return elements_from_labels(canvas, labels, g, {"partition": {"backend": "grid", "cell": cell}}, full=image)


def _to_canvas_mask(mask: np.ndarray, g: Geometry) -> np.ndarray:
    out = np.zeros((g.size, g.size), dtype=np.float64)
    small = cv2.resize(mask.astype(np.float32), (g.content_w, g.content_h), interpolation=cv2.INTER_AREA)
    out[g.content_y : g.content_y + g.content_h, g.content_x : g.content_x + g.content_w] = small
    return out


def object_coloured(image: np.ndarray, rgb=OBJECT_RGB, tol: float = 60.0) -> np.ndarray:
    """``(H, W) bool``: pixels within ``tol`` (Euclidean RGB) of the object's colour, or clearly red."""
    d = np.linalg.norm(image.astype(np.float64) - np.asarray(rgb, dtype=np.float64), axis=-1)
    px = image.astype(np.int64)
    red = (px[..., 0] > 140) & (px[..., 0] - np.maximum(px[..., 1], px[..., 2]) > 90)
    return (d <= tol) | red


def ghost_fraction(result: np.ndarray, object_mask: np.ndarray, now_covered: np.ndarray | None = None) -> float:
    """Object-coloured pixels of ``result`` inside the object's old place (grown by 2 px), minus where
    anything edited lies now (``now_covered``), over the object's area."""
    old = cv2.dilate(object_mask.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    if now_covered is not None:
        old &= ~now_covered
    return float((object_coloured(result) & old).sum() / max(1, object_mask.sum()))


def gradient_energy(image: np.ndarray) -> np.ndarray:
    """``(H, W) float64``: squared Sobel gradient magnitude of the luminance-weighted image."""
    f = image.astype(np.float64)
    gx = sum(cv2.Sobel(f[..., c], cv2.CV_64F, 1, 0, ksize=3) ** 2 for c in range(3))
    gy = sum(cv2.Sobel(f[..., c], cv2.CV_64F, 0, 1, ksize=3) ** 2 for c in range(3))
    return gx + gy


def seam_contrast(
    image: np.ndarray, footprint: np.ndarray, *, band: int = 2, reach: int = 10, ignore: np.ndarray | None = None
) -> float:
    """Mean gradient energy within ``band`` px of ``footprint``'s border, over its mean on the pixels
    ``band + 2 .. reach`` px from the border (inside and outside); ``ignore`` (e.g. the object's own
    outline) is left out of both. About 1 when the paste is invisible; a colour step gives >> 1."""
    fp = footprint.astype(np.uint8)
    d_out = cv2.distanceTransform(1 - fp, cv2.DIST_L2, 5)
    d_in = cv2.distanceTransform(np.pad(fp, 1), cv2.DIST_L2, 5)[1:-1, 1:-1]
    d = np.where(footprint, d_in, d_out)
    ok = np.ones_like(footprint, dtype=bool) if ignore is None else ~ignore
    e = gradient_energy(image)
    seam = (d <= band) & ok
    ref = (d > band + 2) & (d <= reach) & ok
    return float(e[seam].mean() / max(e[ref].mean(), 1e-9))


def report(seed: int = 0) -> list[tuple[str, float, float]]:
    """``[(configuration, ghost fraction, seam contrast)]`` for the synthetic scene's disc moved 170 px right."""
    from elements import edit
    from elements.decoders import get_decoder
    from elements.decoders.pixel import render

    scene = synthetic_scene(384, 288, cell=24, seed=seed)
    moved = edit.move(scene.elements, scene.selection, 170, 0)
    now = render(moved).edited_cover
    disc = cv2.dilate(np.roll(scene.object_mask, 170, axis=1).astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    runs = [
        ("Telea (before: no hole band, no blending)", {"backend": "telea", "hole_band": False, "blend": False}),
        ("Telea + hole band + blending", {"backend": "telea"}),
        ("PatchMatch, no hole band, no blending", {"backend": "patchmatch", "hole_band": False, "blend": False}),
        ("PatchMatch + hole band, no blending", {"backend": "patchmatch", "blend": False}),
        ("PatchMatch + hole band + blending (default)", {"backend": "patchmatch"}),
    ]
    rows = []
    for name, kw in runs:
        out = np.asarray(get_decoder("pixel+inpaint", **kw)(moved, seed=seed))
        rows.append((name, ghost_fraction(out, scene.object_mask, now), seam_contrast(out, now, ignore=disc)))
    return rows


def main() -> None:
    """``python bench/quality.py``: print the ghost and seam table of the synthetic scene."""
    print("synthetic scene (384x288, 24-px grid elements, red disc selected by its >= 50 % elements, moved 170 px):")
    print("| pixel+inpaint | ghost (share of disc area, target <= 2 %) | seam contrast (1 = invisible) |")
    print("|---|---:|---:|")
    for name, ghost, seam in report():
        print(f"| {name} | {100 * ghost:.1f} % | {seam:.2f} |")


__all__ = [
    "OBJECT_RGB",
    "Scene",
    "ghost_fraction",
    "gradient_energy",
    "grid_elements",
    "object_coloured",
    "report",
    "seam_contrast",
    "synthetic_scene",
]


if __name__ == "__main__":
    main()
