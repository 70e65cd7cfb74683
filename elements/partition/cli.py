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
import os
import shutil
import sys
import tempfile
from pathlib import Path

from elements.partition.options import add_partition_args


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        allow_abbrev=False,
        description="Split an image into ~256 editable image elements (paper Sec. 3.1, Alg. 2).",
    )
    p.add_argument("image", help="input image (any format Pillow reads; EXIF rotation is applied)")
    p.add_argument(
        "--out", required=True, help="output folder (created; existing files of the same names are replaced)"
    )
    add_partition_args(p)
    p.add_argument("--device", default=None, help="torch device for SAM (default cuda if a GPU is visible, else cpu)")
    return p


def run(args) -> int:
    from elements.image_io import MIN_SIDE, load_image
    from elements.memory import release_memory
    from elements.partition import Partitioner
    from elements.visualize import write_partition_outputs

    pending = Partitioner.from_args_in_background(args)  # the model loads while the image decodes
    image = load_image(args.image, min_side=MIN_SIDE)  # a bad file fails here, at once
    if image.reduced:
        print(f"note: {image.note('The input')}", file=sys.stderr)
    part = pending()
    if part.note:
        print(f"note: {part.note}", file=sys.stderr)
    if part.source:
        print(f"SAM: {part.source}", file=sys.stderr)
    el = part(image)
    described = part.describe()
    del part  # the model is not needed for the outputs: its memory goes back before 40 Mpx files are drawn
    release_memory()
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
    print(
        f"{el.num_elements} elements ({described}), dropped {100 * el.meta['dropped_fraction']:.3f}% of pixels -> {out}"
    )
    return 0
