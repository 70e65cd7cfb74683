"""``python -m elements edit IMAGE --spec SPEC.json --out OUT.png``: apply an edit spec and decode.

The image is partitioned (or its saved elements loaded with ``--elements``), the spec's edits
are applied in order and the chosen decoder renders the result at the input's size, all by
:func:`elements.editor.edit_image` (the demo's ``/edit`` endpoint takes the same path). An
empty edit list is a reconstruction. The command prints the partition backend and the decoder
that ran. A ``--seed``, ``--steps`` or ``--guidance`` that is given wins over the spec's (0 is
a value, not "not given") and is checked against the spec schema's limits. Every problem with the inputs is one ``error: ...`` line, exit
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
from elements.spec import LIMITS

DECODERS = ("auto", "pixel", "pixel+inpaint", "pixel+sdedit", "light", "diffusion")
#: The decoder settings a flag may give instead of the spec: (name, type, help).
SETTING_FLAGS = (
    ("seed", int, "random seed (default: the spec's, else 0)"),
    ("steps", int, "denoising steps (default: the spec's, else the decoder's own: {own})"),
    ("guidance", float, "guidance scale (default: the spec's, else the decoder's own: {own})"),
)


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
    for name, kind, what in SETTING_FLAGS:  # limits: the spec schema's (elements.spec.LIMITS)
        lo, hi = LIMITS[name]
        p.add_argument(
            f"--{name}",
            type=kind,
            default=None,
            help=f"{what.format(own=_own(name)) if name != 'seed' else what}; {lo:g} to {hi:.10g}",
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
    from elements.decoders.result import ran_of
    from elements.editor import edit_image
    from elements.image_io import MIN_SIDE, load_image, save_png
    from elements.spec import load_spec
    from elements.types import ImageElements

    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise UserError(f"--out must name a .png file, got '{out}'.")
    if out.is_dir():
        raise UserError(f"--out '{out}' is a folder; give a file name ending in .png.")
    # cheap checks first, before any model loads; a flag that is given wins over the spec (None = not given)
    spec = load_spec(args.spec).override(
        prompt=args.prompt,
        seed=args.seed,
        steps=args.steps,
        guidance=args.guidance,
        labels={"prompt": "--prompt", **{name: f"--{name}" for name, _, _ in SETTING_FLAGS}},
    )
    pending = None
    if not args.elements:  # the partition model loads while the image decodes
        from elements.partition import Partitioner

        pending = Partitioner.from_args_in_background(args)
    image = load_image(args.image, min_side=MIN_SIDE)
    if image.reduced:  # spec coordinates and the output are at the size it is used at
        print(f"note: {image.note('The input')}", file=sys.stderr)
    # joined before the decoder loads (two threads importing torch at once is not safe); held in a dict that
    # hands it to edit_image, so that nothing here keeps the model alive once edit_image lets it go
    models = {"partitioner": pending()} if pending else {}

    name = args.decoder or spec.decoder or "auto"
    if name == "auto":
        name = best_available(sd_base=args.sd_base, stage1=args.stage1, stage2=args.stage2)
    decoder = get_decoder(name, **decoder_options(name, args))  # missing weights fail before the partition runs

    if args.elements:
        try:
            source = ImageElements.load(args.elements)
        except ValueError as err:
            raise UserError(f"--elements: {err}.") from err
        if (source.geometry.input_w, source.geometry.input_h) != image.size:
            raise UserError(
                f"--elements were made from a {source.geometry.input_w}x{source.geometry.input_h} image, "
                f"but {args.image} is {image.size[0]}x{image.size[1]}."
            )
        how = f"loaded from {args.elements} ({source.meta.get('partition', {}).get('backend', '?')})"
    else:
        part = models["partitioner"]
        if part.note:
            print(f"note: {part.note}", file=sys.stderr)
        source, how = image, part.describe()
        del part

    t0 = time.perf_counter()
    # the partition model's memory goes back once the edits (and compose sources) are done, before decoding
    release = "partitioner" in models
    res = edit_image(
        source, spec, decoder=decoder, partitioner=models.pop("partitioner", None), release_partitioner=release
    )
    dt = time.perf_counter() - t0
    el, edited, result = res.original, res.elements, res.image
    n_del = int((el.active.sum() + (edited.num_elements - el.num_elements)) - edited.active.sum())
    print(f"partition: {el.num_elements} elements, {how}")
    print(
        f"edits: {len(spec.edits)} applied; {int(edited.edited.sum())} elements edited, {n_del} deleted"
        + ("" if spec.edits else " (empty edit list: reconstruction)")
    )
    print(f"decoder: {decoder.describe()}")

    out.parent.mkdir(parents=True, exist_ok=True)
    save_png(out, result)
    if args.save_elements:
        edited.save(args.save_elements)
    note = getattr(result, "note", "")
    print(f"ran: {ran_of(result, decoder.name)}" + (f" — {note}" if note else ""))
    print(f"wrote {out} ({result.shape[1]}x{result.shape[0]}) in {dt:.2f} s")
    return 0
