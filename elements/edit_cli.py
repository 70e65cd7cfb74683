"""``python -m elements edit IMAGE --spec SPEC.json --out OUT.png``: apply an edit spec and decode.

The image is partitioned (or its saved elements loaded with ``--elements``), the spec's edits
are applied in order (:mod:`elements.spec`) and the chosen decoder renders the result at the
input's size. An empty edit list is a reconstruction. The command prints the partition backend
and the decoder that ran. Every problem with the inputs is one ``error: ...`` line, exit
status 2, and no output file is written (the PNG is written to a temporary name and renamed).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from elements import defaults
from elements.errors import UserError
from elements.partition.options import add_partition_args

DECODERS = ("auto", "pixel", "pixel+inpaint", "pixel+sdedit", "light", "diffusion")


def _own(setting: str) -> str:
    """``"pixel+inpaint 50, ..."``: each sampling decoder's default ``setting`` (elements.decoders.SAMPLER_DEFAULTS)."""
    from elements.decoders import SAMPLER_DEFAULTS

    own = ((name, getattr(d, setting)) for name, d in SAMPLER_DEFAULTS.items())
    return ", ".join(f"{name} {value:g}" for name, value in own if value is not None)


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        allow_abbrev=False,
        description="Apply an edit spec (JSON, see docs/editing.md, 'The edit spec') to an image and decode it.",
    )
    p.add_argument("image", help="input image (any format Pillow reads); spec coordinates are its pixels")
    p.add_argument(
        "--spec", required=True, help='edit spec JSON file (version 1); {"version": 1, "edits": []} reconstructs'
    )
    p.add_argument("--out", required=True, help="output PNG, the input's size (written only on success)")
    p.add_argument(
        "--decoder",
        default=None,
        choices=DECODERS,
        help="decoder (default: the spec's 'decoder', else auto = diffusion if its weights can be had, "
        "else pixel+inpaint)",
    )
    p.add_argument(
        "--elements",
        default=None,
        metavar="DIR",
        help="use elements saved by --save-elements or 'partition --out' instead of partitioning IMAGE",
    )
    p.add_argument(
        "--checkpoint",
        "--stage2",
        dest="stage2",
        default=None,
        help=f"stage-2 checkpoint for the diffusion decoder (env {defaults.STAGE2_CHECKPOINT.env})",
    )
    p.add_argument(
        "--stage1",
        default=None,
        help=f"stage-1 checkpoint, for light and diffusion (env {defaults.STAGE1_CHECKPOINT.env})",
    )
    p.add_argument("--sd-base", default=None, help=f"SD-1.5 folder or Hub id (env {defaults.SD_BASE.env})")
    p.add_argument("--sd-inpaint", default=None, help=f"SD-Inpaint folder or Hub id (env {defaults.SD_INPAINT.env})")
    p.add_argument(
        "--inpaint-backend",
        default="auto",
        choices=["auto", "sd", "patchmatch", "telea", "opencv"],
        help="pixel+inpaint hole filling: sd = SD-Inpaint, patchmatch = PatchMatch on the CPU, telea (alias "
        "opencv) = OpenCV Telea (default auto: sd if available, else patchmatch)",
    )
    p.add_argument(
        "--strength", type=float, default=0.7, help="SDEdit strength for pixel+sdedit (paper: 0.5, 0.7, 0.9)"
    )
    p.add_argument("--prompt", default=None, help="text prompt (overrides the spec's)")
    p.add_argument("--seed", type=int, default=None, help="random seed (overrides the spec's; default 0)")
    p.add_argument(
        "--steps", type=int, default=None, help=f"denoising steps (default: the decoder's own; {_own('steps')})"
    )
    p.add_argument(
        "--guidance", type=float, default=None, help=f"guidance scale (default: the decoder's own; {_own('guidance')})"
    )
    p.add_argument(
        "--device", default=None, help="torch device for model decoders (default cuda if available, else cpu)"
    )
    add_partition_args(p)
    p.add_argument("--save-elements", default=None, metavar="DIR", help="also save the edited ImageElements to DIR")
    return p


def decoder_options(name: str, args) -> dict:
    """The constructor options each decoder takes, from the command line."""
    common = {"device": args.device}
    return {
        "pixel": {},
        "pixel+inpaint": {"backend": args.inpaint_backend, "sd_inpaint": args.sd_inpaint, **common},
        "pixel+sdedit": {"strength": args.strength, "sd_base": args.sd_base, **common},
        "light": {"stage1": args.stage1, **common},
        "diffusion": {"sd_base": args.sd_base, "stage1": args.stage1, "stage2": args.stage2, **common},
    }[name]


def run(args) -> int:
    from elements.decoders import best_available, get_decoder
    from elements.image_io import MIN_SIDE, load_image, save_png
    from elements.memory import release_memory
    from elements.spec import apply_spec, load_spec
    from elements.types import ImageElements

    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise UserError(f"--out must name a .png file, got '{out}'.")
    if out.is_dir():
        raise UserError(f"--out '{out}' is a folder; give a file name ending in .png.")
    if args.seed is not None and args.seed < 0:
        raise UserError(f"--seed must be >= 0, got {args.seed}.")
    spec = load_spec(args.spec)  # cheap checks first, before any model loads
    part = None
    if not args.elements:  # the partition model loads while the image decodes
        from elements.partition import Partitioner

        pending = Partitioner.from_args_in_background(args)
    image = load_image(args.image, min_side=MIN_SIDE)
    if image.reduced:  # spec coordinates and the output are at the size it is used at
        print(f"note: {image.note('The input')}", file=sys.stderr)
    if not args.elements:  # joined before the decoder loads: two threads importing torch at once is not safe
        part = pending()

    name = args.decoder or spec.decoder or "auto"
    if name == "auto":
        name = best_available(sd_base=args.sd_base, stage1=args.stage1, stage2=args.stage2)
    decoder = get_decoder(name, **decoder_options(name, args))  # missing weights fail before the partition runs

    if args.elements:
        try:
            el = ImageElements.load(args.elements)
        except ValueError as err:
            raise UserError(f"--elements: {err}.") from err
        if (el.geometry.input_w, el.geometry.input_h) != image.size:
            raise UserError(
                f"--elements were made from a {el.geometry.input_w}x{el.geometry.input_h} image, "
                f"but {args.image} is {image.size[0]}x{image.size[1]}."
            )
        part, how = None, f"loaded from {args.elements} ({el.meta.get('partition', {}).get('backend', '?')})"
    else:
        if part.note:
            print(f"note: {part.note}", file=sys.stderr)
        el = part(image)
        how = part.describe()
    print(f"partition: {el.num_elements} elements, {how}")

    edited = apply_spec(el, spec, partitioner=part)
    n_del = int((el.active.sum() + (edited.num_elements - el.num_elements)) - edited.active.sum())
    del part  # compose sources are cut: the partition model's memory goes back before decoding
    release_memory()
    print(
        f"edits: {len(spec.edits)} applied; {int(edited.edited.sum())} elements edited, {n_del} deleted"
        + ("" if spec.edits else " (empty edit list: reconstruction)")
    )
    print(f"decoder: {decoder.describe()}")

    t0 = time.perf_counter()
    result = decoder(
        edited,
        prompt=spec.prompt if args.prompt is None else args.prompt,
        seed=spec.seed if args.seed is None else args.seed,
        steps=args.steps or spec.steps,
        guidance=args.guidance if args.guidance is not None else spec.guidance,
    )
    dt = time.perf_counter() - t0

    out.parent.mkdir(parents=True, exist_ok=True)
    save_png(out, result)
    if args.save_elements:
        edited.save(args.save_elements)
    from elements.decoders.result import ran_of

    note = getattr(result, "note", "")
    print(f"ran: {ran_of(result, decoder.name)}" + (f" — {note}" if note else ""))
    print(f"wrote {out} ({result.shape[1]}x{result.shape[0]}) in {dt:.2f} s")
    return 0
