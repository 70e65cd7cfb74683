"""``python -m eval recon --data ... --decoder ... --limit 5000 --out OUT``: the reconstruction benchmark.

Tables 1-2 / App. B: every held-out image is partitioned (or, when ``--data`` is prepared with
``python -m elements prepare``, its stored elements are used: the ones training saw), **all** its elements are kept
(encoded by the decoder's content encoder when it has one), decoded, and compared with its
reference by MSE, PSNR, SSIM, LPIPS and FID (conventions in :mod:`eval.metrics`, :mod:`eval.fid`).

Layout of OUT::

    heldout/            manifest + 512² PNG references (``eval split``), unless --data is such a folder
    pred/{stem}.png     reconstructions, written atomically
    per_image/{stem}.json  per-image metrics, written atomically *after* the PNG
    per_image.csv, summary.csv, summary.md, config.json   written by rank 0 at the end

Crash safety: an image counts as done iff its JSON exists, and the JSON is renamed into place
only after its PNG is complete, so re-running the same command skips finished images and redoes
at most the ones in flight. Each image's seed is derived from its stem (``seed ^ int(stem[:8], 16)``),
not from its position, so a resumed or re-sharded run produces the same pixels, and the final
numbers equal those of an uninterrupted run (tested). ``config.json`` pins the settings; once
results exist, resuming with different ones is refused.

Sharding: under ``accelerate launch`` each rank takes the manifest rows ``rank::world``; after a
barrier rank 0 merges the per-image files (one file per stem, so duplicates cannot arise; files of
stems outside the manifest are ignored) and computes FID over all images.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from elements.errors import UserError
from elements.partition.options import add_partition_args, partition_kwargs


def build_parser(prog: str) -> argparse.ArgumentParser:
    from eval.manifest import add_data_args
    from eval.summary import add_metric_args

    p = argparse.ArgumentParser(
        prog=prog,
        allow_abbrev=False,
        description="Reconstruction benchmark on the held-out split (paper Tables 1-2): "
        "partition, encode all elements, decode, compare. Resumable; shard with accelerate launch.",
    )
    p.add_argument(
        "--data", required=True, help="folder written by 'eval split', or data for it (image folder / shards)"
    )
    p.add_argument(
        "--decoder", required=True, help="pixel, pixel+inpaint, pixel+sdedit, light or diffusion (ours, Table 2)"
    )
    p.add_argument(
        "--decoder-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="constructor option of the decoder, e.g. stage1=PATH, stage2=PATH, strength=0.7 (repeatable)",
    )
    p.add_argument("--out", required=True, help="run folder (resumed when it exists)")
    add_data_args(p)
    add_partition_args(p)
    p.add_argument(
        "--steps", type=int, default=None, help="denoising steps (default: the decoder's; the paper uses 50 DDIM)"
    )
    p.add_argument("--guidance", type=float, default=None, help="guidance scale (default: the decoder's)")
    p.add_argument(
        "--prompt",
        default="caption",
        choices=["caption", "empty"],
        help="text prompt given to the decoder: the sample's caption (default) or empty",
    )
    p.add_argument("--seed", type=int, default=0, help="base seed; each image uses seed XOR int(stem[:8], 16)")
    add_metric_args(p)
    return p


def parse_options(pairs: list[str]) -> dict:
    """``["strength=0.7", "stage1=ckpt"]`` -> ``{"strength": 0.7, "stage1": "ckpt"}`` (numbers parsed)."""
    out = {}
    for item in pairs:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"Decoder option '{item}' must look like KEY=VALUE.")
        for cast in (int, float):
            try:
                value = cast(value)
                break
            except ValueError:
                continue
        out[key.replace("-", "_")] = value
    return out


def make_decoder(name: str, options: dict, device=None):
    """``elements.decoders.get_decoder(name, **options)``, adding ``device`` when the decoder takes one and none is set."""
    import importlib
    import inspect

    from elements.decoders import REGISTRY, get_decoder

    if device is not None and name in REGISTRY and "device" not in options:
        module, _, cls = REGISTRY[name].partition(":")
        if "device" in inspect.signature(getattr(importlib.import_module(module), cls)).parameters:
            options = {"device": str(device), **options}
    return get_decoder(name, **options)


def image_seed(seed: int, stem: str) -> int:
    return (int(seed) ^ int(stem[:8], 16)) & 0xFFFFFFFF


def _config(args, metrics) -> dict:
    """The settings that determine the numbers; a resumed run must match them."""
    return {
        "decoder": args.decoder,
        "decoder_options": parse_options(args.decoder_option),
        "partition": args.backend,
        "partition_params": _partition_params(args),
        "steps": args.steps,
        "guidance": args.guidance,
        "prompt": args.prompt,
        "seed": args.seed,
        "metrics": list(metrics),
        "lpips_net": args.lpips_net,
        "feature_extractor": args.feature_extractor,
        "limit": args.limit,
    }


def _partition_params(args) -> dict:
    """The partition settings that change the numbers (paths excluded: the same weights may move)."""
    kw = partition_kwargs(args)
    return {k: kw[k] for k in ("num_elements", "beta", "beta_c", "iterations")}


def stored_elements(ref, labels_png: Path):
    """The elements of a reference ``(512, 512, 3) uint8`` from its stored labels (``eval split`` on prepared data)."""
    from elements.data.prepared import decode_labels
    from elements.geometry import Geometry
    from elements.partition.build import elements_from_labels

    labels = decode_labels(labels_png.read_bytes())
    if labels is None or labels.shape != ref.shape[:2]:
        raise UserError(f"'{labels_png}' is not the 16-bit label map of its {ref.shape[1]}x{ref.shape[0]} reference.")
    size = ref.shape[0]
    return elements_from_labels(ref, labels, Geometry.fit(size, size, size), {"partition": {"backend": "prepared"}})


def _state():
    from accelerate import PartialState

    return PartialState()


def _pin_settings(out: Path, config: dict, split_dir: Path, state) -> None:
    """Write ``out/config.json``; refuse (UserError) when ``out`` already holds results made with other settings."""
    from eval.report import write_text

    cfg_path = out / "config.json"
    started = any((out / "per_image").glob("*.json"))
    if cfg_path.exists() and started:  # results exist: they were made with the pinned settings
        old = json.loads(cfg_path.read_text()).get("settings", {})
        new = json.loads(json.dumps(config))
        if old != new:
            diff = sorted(k for k in new if old.get(k) != new[k])
            raise UserError(
                f"'{out}' holds a run with other settings ({', '.join(diff)}); use another --out or the same flags."
            )
    state.wait_for_everyone()
    if state.is_main_process:
        write_text(cfg_path, json.dumps({"settings": config, "data": str(split_dir)}, indent=2) + "\n")


def _collect(out: Path, manifest) -> list[dict]:
    """Every image's per-image record, in manifest order; UserError naming the first one missing."""
    records, missing = [], []
    for stem in manifest["stem"]:
        f = out / "per_image" / f"{stem}.json"
        if f.exists():
            records.append(json.loads(f.read_text()))
        else:
            missing.append(stem)
    if missing:
        raise UserError(
            f"{len(missing)} of {len(manifest)} images have no result (first: {missing[0]}); re-run the same command to finish them."
        )
    return records


def run(args, *, on_image=None) -> int:
    """Run (or resume) the benchmark. ``on_image(done_this_call)`` is called after each image (tests simulate crashes with it)."""
    from elements.data import filters_from_args
    from elements.image_io import save_png
    from elements.partition import Partitioner
    from eval.fid import compute_fid
    from eval.images import read_rgb
    from eval.manifest import build_split, is_split_folder, load_split
    from eval.metrics import compute_batch, parse_metrics
    from eval.report import write_text
    from eval.summary import PER_IMAGE_METRICS, build_lpips, format_summary, summarize, write_outputs

    metrics = parse_metrics(args.metrics)
    state = _state()
    out = Path(args.out)
    config = _config(args, metrics)
    if is_split_folder(args.data):
        split_dir = Path(args.data)
    else:
        split_dir = out / "heldout"
        if state.is_main_process and not is_split_folder(split_dir):
            build_split(args.data, split_dir, limit=args.limit, filters=filters_from_args(args))
        state.wait_for_everyone()
    manifest, info = load_split(split_dir)
    if args.limit is not None:
        manifest = manifest.iloc[: args.limit]
    prepared = bool(len(manifest)) and bool(manifest["labels"].astype(bool).all())
    if prepared:  # prepared data: decode the stored elements (the partition flags do not apply)
        config["partition"] = "prepared"
        config["partition_params"] = {"elements": info.get("elements")}
        print(f"elements: stored with the prepared data ({info.get('elements')})", file=sys.stderr)
    _pin_settings(out, config, split_dir, state)
    (out / "pred").mkdir(parents=True, exist_ok=True)
    (out / "per_image").mkdir(parents=True, exist_ok=True)

    mine = manifest.iloc[state.process_index :: state.num_processes]
    todo = [r for r in mine.itertuples() if not (out / "per_image" / f"{r.stem}.json").exists()]
    if todo:
        # Each rank decodes on its own accelerator unless --decoder-option device=... says otherwise.
        decoder = make_decoder(args.decoder, config["decoder_options"], state.device)
        partitioner = None if prepared else Partitioner.from_args(args, device=str(state.device))
        lp = build_lpips(metrics, args)
        per_image_wanted = [m for m in metrics if m in PER_IMAGE_METRICS]
        for done, r in enumerate(todo, 1):
            ref = read_rgb(split_dir / r.ref)
            el = stored_elements(ref, split_dir / r.labels) if prepared else partitioner(ref)
            prompt = r.caption if args.prompt == "caption" else ""
            pred = decoder(
                el, prompt=prompt, seed=image_seed(args.seed, r.stem), steps=args.steps, guidance=args.guidance
            )
            save_png(out / "pred" / f"{r.stem}.png", pred)
            # Metrics on the PNG as stored, exactly what a later 'eval metrics' on pred/ would see.
            stored = read_rgb(out / "pred" / f"{r.stem}.png")
            values = (
                compute_batch(stored[None], ref[None], per_image_wanted, lpips_metric=lp) if per_image_wanted else {}
            )
            record = {"stem": r.stem, **{m: float(v[0]) for m, v in values.items()}}
            write_text(out / "per_image" / f"{r.stem}.json", json.dumps(record) + "\n")
            print(f"[rank {state.process_index}] {done}/{len(todo)} {r.stem}", file=sys.stderr, flush=True)
            if on_image:
                on_image(done)
    state.wait_for_everyone()
    if not state.is_main_process:
        return 0
    records = _collect(out, manifest)
    per_image = pd.DataFrame(records, columns=["stem", *[m for m in metrics if m in PER_IMAGE_METRICS]])
    fid = None
    if "fid" in metrics:
        fid = compute_fid(
            [out / "pred" / f"{s}.png" for s in manifest["stem"]],
            [split_dir / r for r in manifest["ref"]],
            device=args.device,
            num_workers=args.fid_workers,
            batch_size=args.fid_batch_size,
            feature_extractor=args.feature_extractor,
            kid=args.kid,
        )
    summary = summarize(
        per_image,
        name=args.name or out.resolve().name,
        fid=fid,
        extra={"decoder": args.decoder, "partition": config["partition"], "steps": args.steps},
    )
    write_outputs(out, per_image, summary)
    print(format_summary(summary))
    return 0
