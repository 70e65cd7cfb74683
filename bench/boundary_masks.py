"""Object masks for the photos of bench/boundaries.py: computed once by GrabCut from hand-placed hints.

    python bench/boundary_masks.py          # rewrites bench/boundary_masks.json and /tmp/boundary_masks.png

Each object has a box (input pixels, x0 y0 x1 y1; outside it is background), optional hand-placed
foreground strokes and background polygons (definite labels for GrabCut, Rother et al. 2004,
``cv2.grabCut``), or a hand-measured ellipse where the object is one (the mission badge). The mask
is the largest 4-connected piece, its holes filled, stored as a polygon (``cv2.approxPolyDP``,
1 px) in input pixels of the photo. The masks were checked by eye on the picture this writes; they
are independent of SAM and of every partition backend.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

OUT = Path(__file__).with_name("boundary_masks.json")

#: photo -> object -> hints (input px). "fg": polylines of definite object; "bg": polygons of definite background.
HINTS = {
    "astronaut": {
        "hair": {
            "box": (150, 10, 305, 140),
            "fg": [[(200, 35), (270, 35)], [(165, 75), (172, 110)], [(285, 70), (292, 110)]],
            "bg": [[(190, 88), (268, 88), (264, 150), (240, 185), (205, 185), (186, 140)]],
        },
        "badge": {"ellipse": (170.5, 390.5, 36.5, 36.5)},
        "helmet": {
            "box": (276, 340, 512, 512),
            "fg": [[(330, 430), (440, 430)], [(320, 480), (480, 480)], [(390, 360), (440, 352)]],
            "bg": [
                [(405, 336), (512, 336), (512, 455), (507, 428), (497, 396), (477, 364), (440, 343)],
                [(276, 340), (330, 340), (276, 420)],
            ],
        },
    },
    "chelsea": {
        "cat": {
            "box": (0, 0, 451, 300),
            "fg": [[(60, 40), (330, 40)], [(60, 150), (330, 150)], [(100, 270), (300, 270)]],
            "bg": [[(425, 0), (451, 0), (451, 250), (425, 250)], [(0, 25), (10, 25), (10, 100), (0, 100)]],
        },
    },
    "coffee": {
        "cup": {"box": (172, 18, 410, 300)},
        "spoon": {"box": (322, 65, 425, 325)},
    },
    "rocket": {"rocket": {"box": (295, 125, 340, 405)}},
    "camera": {"cameraman": {"box": (100, 30, 380, 512), "bg": [[(250, 420), (330, 420), (300, 512), (260, 512)]]}},
}


def grabcut_mask(img: np.ndarray, hints: dict) -> np.ndarray:
    """``(H, W) bool`` object mask of ``img (H, W, 3) uint8 RGB`` from one object's ``hints`` (see HINTS)."""
    h, w = img.shape[:2]
    if "ellipse" in hints:
        cx, cy, rx, ry = hints["ellipse"]
        yy, xx = np.mgrid[:h, :w]
        return ((xx + 0.5 - cx) / rx) ** 2 + ((yy + 0.5 - cy) / ry) ** 2 <= 1.0
    x0, y0, x1, y1 = hints["box"]
    mask = np.full((h, w), cv2.GC_BGD, np.uint8)
    mask[y0:y1, x0:x1] = cv2.GC_PR_FGD
    for poly in hints.get("bg", []):
        cv2.fillPoly(mask, [np.asarray(poly, np.int32)], cv2.GC_BGD)
    for line in hints.get("fg", []):
        cv2.polylines(mask, [np.asarray(line, np.int32)], False, cv2.GC_FGD, 5)
    bgd, fgd = np.zeros((1, 65)), np.zeros((1, 65))
    cv2.setRNGSeed(0)
    cv2.grabCut(np.ascontiguousarray(img[..., ::-1]), mask, None, bgd, fgd, 10, cv2.GC_INIT_WITH_MASK)
    m = (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)
    parts, n = ndimage.label(m)
    if n > 1:
        m = parts == 1 + np.argmax(np.bincount(parts.ravel())[1:])
    return ndimage.binary_fill_holes(m)


def to_polygon(mask: np.ndarray) -> list[list[int]]:
    """The outer contour of a one-piece ``mask`` as a 1-px-accurate polygon, ``[[x, y], ...]`` input px."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    c = max(contours, key=cv2.contourArea)
    return cv2.approxPolyDP(c, 1.0, True)[:, 0].tolist()


def main() -> None:
    from bench.partition import photos

    imgs = photos(list(HINTS))
    out, tiles = {}, []
    for name, objects in HINTS.items():
        img = imgs[name]
        vis = img.copy()
        out[name] = {}
        for obj, hints in objects.items():
            poly = to_polygon(grabcut_mask(img, hints))
            out[name][obj] = poly
            cv2.polylines(vis, [np.asarray(poly, np.int32)], True, (255, 0, 0), 1)
            print(f"{name:10s} {obj:10s} {len(poly):4d} vertices")
        tiles.append(cv2.resize(vis, (round(vis.shape[1] * 300 / vis.shape[0]), 300)))
    OUT.write_text(json.dumps(out, separators=(",", ":")) + "\n")
    cv2.imwrite("/tmp/boundary_masks.png", np.concatenate(tiles, axis=1)[..., ::-1])
    print(f"wrote {OUT.relative_to(ROOT)} ({OUT.stat().st_size} bytes) and /tmp/boundary_masks.png")


if __name__ == "__main__":
    main()
