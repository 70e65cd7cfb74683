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
from elements.types import ImageElements


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


def write_partition_outputs(el: ImageElements, directory) -> None:
    """Write elements.json, labels.png (16-bit, id + 1, 0 = dropped), overlay.png and the saved value.

    Both PNGs are at the input's size (at most image_io.MAX_OUTPUT_PIXELS, 40 Mpx): the label map is
    kept as uint16 (80 MB at 40 Mpx) and the two files are encoded at once (the PNG encoders release
    the GIL), so a 40 Mpx input costs about one overlay's encoding time.
    """
    import json
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    from elements.image_io import save_png
    from elements.partition.build import input_labels, label_counts
    from elements.types import elements_json
    from elements.visualize import overlay

    d = Path(directory)
    lab = input_labels(el)  # each element one 4-connected region at the input's size
    np.add(lab, 1, out=lab)  # id + 1, 0 = dropped
    ids = lab.astype(np.uint16)  # ids < 4096 (Partitioner's bound on num_elements)
    del lab
    (d / "elements.json").write_text(json.dumps(elements_json(el, pixels=label_counts(ids, el.num_elements)), indent=1))
    with ThreadPoolExecutor(2) as pool:
        jobs = [pool.submit(save_png, d / "labels.png", ids), pool.submit(save_png, d / "overlay.png", overlay(el))]
        for job in jobs:
            job.result()
    el.save(d)
