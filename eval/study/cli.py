"""``python -m eval study {make-edits,render,export,analyze}``: the 2AFC user study (Sec. 4.2, 4.4, App. A).

The four steps, in order::

    python -m eval study make-edits --data HELDOUT --limit 100 --out study/edits
    python -m eval study render --edits study/edits --method ours=diffusion --method pixel --method pixel+inpaint --out study/renders
    python -m eval study export --edits study/edits --renders study/renders --ours ours --baselines pixel,pixel+inpaint --out study/hits
    python -m eval study analyze --results Batch_123_batch_results.csv --manifest study/hits/manifest.csv --out study/analysis
"""

from __future__ import annotations

import argparse
import sys

from elements.partition.options import add_partition_args, partition_kwargs


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        allow_abbrev=False,
        description="2AFC user study: deterministic edit specs, renders, MTurk export, analysis.",
    )
    sub = p.add_subparsers(dest="step", required=True, metavar="STEP")

    m = sub.add_parser(
        "make-edits",
        allow_abbrev=False,
        help="seeded edit specs (move/scale/delete/remove) with worker instructions",
        description="Deterministic, seeded edit specs per held-out image, each with an instruction sentence.",
    )
    m.add_argument("--data", required=True, help="image folder or img2dataset shards (held-out samples are used)")
    m.add_argument("--split", default="heldout", choices=["heldout", "all"], help="which samples (default heldout)")
    m.add_argument("--limit", type=int, default=100, help="number of source images (default 100)")
    m.add_argument(
        "--ops",
        default="move,scale,delete,remove",
        help="edit kinds, cycled over images (default move,scale,delete,remove; remove = delete + background prompt)",
    )
    m.add_argument("--seed", type=int, default=0, help="master seed (default 0)")
    add_partition_args(m)
    m.add_argument("--device", default="cpu", help="torch device for SAM in the partition (default cpu)")
    m.add_argument(
        "--background-prompt",
        default="a photo of the background",
        help="text prompt of 'remove' edits (Fig. 8: a prompt describing the background)",
    )
    m.add_argument("--out", required=True, help="output folder: items.csv, specs/, elements/, input/")

    r = sub.add_parser(
        "render",
        allow_abbrev=False,
        help="run every method on the same specs into RENDERS/method/{item}.png",
        description="Apply each item's spec and decode it with every method; resumable.",
    )
    r.add_argument("--edits", required=True, help="folder written by make-edits")
    r.add_argument(
        "--method",
        action="append",
        required=True,
        help="NAME or LABEL=NAME of a decoder (pixel, pixel+inpaint, pixel+sdedit, light, diffusion); repeat",
    )
    r.add_argument("--out", required=True, help="renders folder")
    r.add_argument("--device", default=None, help="torch device for the decoders (default: cuda if available)")
    r.add_argument("--steps", type=int, default=None, help="denoising steps (default: the decoder's, 50 DDIM for ours)")
    r.add_argument("--guidance", type=float, default=None, help="guidance scale (default: the decoder's)")

    e = sub.add_parser(
        "export",
        allow_abbrev=False,
        help="MTurk batch CSV, manifest.csv, HIT template and preview",
        description="Write an MTurk batch-input CSV with K trials per HIT plus the trial manifest.",
    )
    e.add_argument("--edits", required=True, help="folder written by make-edits (items.csv)")
    e.add_argument("--renders", required=True, help="folder written by render")
    e.add_argument("--ours", default="ours", help="method label of our results (default ours)")
    e.add_argument("--baselines", required=True, help="comma-separated method labels compared with ours")
    e.add_argument("--trials-per-hit", type=int, default=10, help="K trials per HIT (default 10)")
    e.add_argument("--vigilance-rate", type=float, default=0.1, help="share of vigilance trials (default 0.1)")
    e.add_argument("--practice", type=int, default=0, help="practice trials at the start of each HIT (default 0)")
    e.add_argument("--seed", type=int, default=0, help="randomisation seed (default 0)")
    e.add_argument(
        "--images",
        default="copy",
        choices=["copy", "reference"],
        help="copy the images into OUT/images (default) or reference the renders folder",
    )
    e.add_argument(
        "--url-prefix", default="", help="URL prefix of the images as workers will load them (e.g. an S3 bucket)"
    )
    e.add_argument("--out", required=True, help="output folder")

    a = sub.add_parser(
        "analyze",
        allow_abbrev=False,
        help="preference for ours per baseline with CIs, tests and a Fig. 9-style plot",
        description="Analyse MTurk batch results against the study manifest.",
    )
    a.add_argument("--results", required=True, nargs="+", help="MTurk batch results CSV(s)")
    a.add_argument("--manifest", required=True, help="manifest.csv written by export")
    a.add_argument(
        "--min-vigilance",
        type=float,
        default=0.8,
        help="drop workers whose vigilance accuracy is below this (default 0.8)",
    )
    a.add_argument("--bootstrap", type=int, default=2000, help="hierarchical bootstrap resamples (default 2000)")
    a.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    a.add_argument("--ours-label", default="Ours", help="name of our method in the plot")
    a.add_argument("--out", required=True, help="output folder")
    return p


def run(args) -> int:
    if args.step == "make-edits":
        from eval.study.edits import make_edits

        items = make_edits(
            args.data,
            args.out,
            split=args.split,
            limit=args.limit,
            ops=args.ops.split(","),
            seed=args.seed,
            partition=partition_kwargs(args),
            background_prompt=args.background_prompt,
            device=args.device,
        )
        print(f"{len(items)} edit specs -> {args.out}")
    elif args.step == "render":
        from eval.study.render import parse_methods, render

        counts = render(
            args.edits,
            args.out,
            parse_methods(args.method),
            device=args.device,
            steps=args.steps,
            guidance=args.guidance,
        )
        print(", ".join(f"{m}: {n} new" for m, n in counts.items()) + f" -> {args.out}")
    elif args.step == "export":
        from eval.study.export import export

        baselines = [b.strip() for b in args.baselines.split(",") if b.strip()]
        manifest = export(
            args.edits,
            args.renders,
            args.out,
            ours=args.ours,
            baselines=baselines,
            trials_per_hit=args.trials_per_hit,
            vigilance_rate=args.vigilance_rate,
            practice=args.practice,
            seed=args.seed,
            images=args.images,
            url_prefix=args.url_prefix,
        )
        n_hits = manifest["hit"].nunique()
        print(
            f"{n_hits} HITs x {args.trials_per_hit} trials ({int(manifest['vigilance'].sum())} vigilance, "
            f"{int(manifest['practice'].sum())} practice) -> {args.out}/batch.csv, manifest.csv, hit.html, preview.html"
        )
    elif args.step == "analyze":
        from pathlib import Path

        from eval.study.analyze import run_analyze

        table, counts = run_analyze(
            args.results,
            args.manifest,
            args.out,
            min_vigilance=args.min_vigilance,
            n_boot=args.bootstrap,
            seed=args.seed,
            ours_label=args.ours_label,
        )
        print((Path(args.out) / "results.md").read_text(), end="")
        print("excluded: " + ", ".join(f"{k}={v}" for k, v in counts.items()), file=sys.stderr)
    return 0
