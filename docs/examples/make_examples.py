"""Rebuild the example strips and the CPU-editing figures: ``python docs/examples/make_examples.py`` from the repo root.

For each example spec (``docs/examples/<op>.json`` on its bundled photo; SLIC partition, the offline
default) it decodes with ``pixel+inpaint`` twice and writes ``docs/examples/<op>.png``:
input | Telea as it was (no hole band, no blending) | PatchMatch + hole band + Poisson placement (the
CPU default now), scaled to half size. It also writes full-resolution before/after crops of the
rocket move and the spoon removal to ``docs/images/`` and prints the rocket's ghost and seam figures.

``--before REV`` (e.g. ``--before cd5e6bd``, the commit before issue 13) takes the "before" column of
the ``docs/images/`` crops from that commit's own ``python -m elements edit`` (its default
``pixel+inpaint``: Telea on the 512 canvas, upsampled), run from ``git archive REV`` in a temporary folder.
"""

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))


EXAMPLES = {"move": "rocket", "scale": "astronaut", "delete": "coffee", "compose": "astronaut"}
#: Full-resolution crops (x0, y0, x1, y1) for docs/images/.
CROPS = {"move": (150, 100, 400, 427), "delete": (290, 40, 470, 350)}
FIGURES = {"move": "rocket_move.png", "delete": "spoon_delete.png"}
BEFORE = {"backend": "telea", "hole_band": False, "blend": False}
NOW = {"backend": "patchmatch"}


def gap(h: int, w: int = 8) -> np.ndarray:
    return np.full((h, w, 3), 255, np.uint8)


def rocket_figures(edited, before: np.ndarray, now: np.ndarray, dx: int, only_before: str | None = None) -> None:
    """Ghost (pixels at the rocket's old place, above the lit pad, that are not sky-blue) and seam contrast, printed."""
    from bench.quality import ROCKET_POLYGON, seam_contrast
    from elements.decoders import get_decoder
    from elements.decoders.pixel import render

    h, w = before.shape[:2]
    old = np.zeros((h, w), np.uint8)
    cv2.fillPoly(old, [np.asarray(ROCKET_POLYGON, np.int32)], 1)
    old = old.astype(bool)
    old[340:] = False  # below, the launch pad's lights are as bright as the rocket
    covered = render(edited).edited_cover
    moved_poly = cv2.dilate(np.roll(old, dx, axis=1).astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    if only_before:
        runs = ((only_before, before),)
    else:
        no_blend = np.asarray(get_decoder("pixel+inpaint", backend="patchmatch", blend=False)(edited, seed=0))
        runs = (
            ("Telea as it was", before),
            ("PatchMatch + band, no blending", no_blend),
            ("PatchMatch + band + blend", now),
        )
    for name, img in runs:
        px = img.astype(np.int64)
        grey = px[..., 2] - px[..., 0] < 30  # dusk sky: blue - red 36-50 (1st-50th percentile); the rocket: -27-8
        ghost = (grey & old & ~covered).sum() / old.sum()
        if only_before:  # its seam is not comparable: that output is the 512 canvas upsampled, soft everywhere
            print(f"  rocket move, {name}: ghost {100 * ghost:.1f} % of the rocket's area (above the pad)")
            continue
        seam = seam_contrast(img, covered, ignore=moved_poly)
        print(
            f"  rocket move, {name}: ghost {100 * ghost:.1f} % of the rocket's area (above the pad); "
            f"seam contrast {seam:.2f}"
        )


def old_outputs(rev: str, tmp: Path) -> dict:
    """``{op: image}``: the crops' "before" images decoded by commit ``rev``'s own edit CLI."""
    tree = tmp / "old"
    tree.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    out = {}
    for op in CROPS:
        png = tmp / f"{op}.png"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "elements",
                "edit",
                str(ROOT / "assets" / f"{EXAMPLES[op]}.jpg"),
                "--spec",
                str(HERE / f"{op}.json"),
                "--out",
                str(png),
                "--decoder",
                "pixel+inpaint",
                "--backend",
                "slic",
            ],
            cwd=tree,
            check=True,
            capture_output=True,
            env={**__import__("os").environ, "PYTHONPATH": str(tree)},
        )
        out[op] = np.asarray(Image.open(png).convert("RGB"))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(
        allow_abbrev=False, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--before", default=None, metavar="REV", help="git revision whose edit CLI gives the crops' 'before' column"
    )
    args = ap.parse_args()
    from elements.apply import apply_spec
    from elements.compose_sources import compose_loader
    from elements.decoders import get_decoder
    from elements.image_io import load_image
    from elements.partition import Partitioner
    from elements.spec import load_spec

    tmp = tempfile.TemporaryDirectory()
    old = old_outputs(args.before, Path(tmp.name)) if args.before else {}
    part = Partitioner("slic")
    (ROOT / "docs" / "images").mkdir(parents=True, exist_ok=True)
    before_dec, now_dec = get_decoder("pixel+inpaint", **BEFORE), get_decoder("pixel+inpaint", **NOW)
    for op, photo in EXAMPLES.items():
        loaded = load_image(ROOT / "assets" / f"{photo}.jpg")
        spec = load_spec(HERE / f"{op}.json")
        el = part(loaded)
        edited = apply_spec(el, spec, load_other=compose_loader(part, base_dir=spec.base_dir, like=el))
        src = loaded.pixels
        before = np.asarray(before_dec(edited, seed=spec.seed))
        result = now_dec(edited, seed=spec.seed)
        now = np.asarray(result)
        print(f"{op} on {photo}.jpg: {result.ran} — {result.note}")
        h = src.shape[0]
        strip = Image.fromarray(np.concatenate([src, gap(h), before, gap(h), now], axis=1))
        strip = strip.resize((strip.width // 2, strip.height // 2), Image.LANCZOS)
        strip.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.FLOYDSTEINBERG).save(
            HERE / f"{op}.png", optimize=True
        )
        if op in CROPS:
            x0, y0, x1, y1 = CROPS[op]
            crops = [a[y0:y1, x0:x1] for a in (src, old.get(op, before), now)]
            fig = np.concatenate([crops[0], gap(y1 - y0), crops[1], gap(y1 - y0), crops[2]], axis=1)
            Image.fromarray(fig).save(ROOT / "docs" / "images" / FIGURES[op], optimize=True)
        if op == "move":
            rocket_figures(edited, before, now, int(spec.edits[0]["dx"]))
            if "move" in old:
                rocket_figures(edited, old["move"], now, int(spec.edits[0]["dx"]), only_before=f"commit {args.before}")
    tmp.cleanup()


if __name__ == "__main__":
    main()
