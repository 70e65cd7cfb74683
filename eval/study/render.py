"""``eval study render``: run every method on the same edit specs into ``RENDERS/{method}/{item}.png``.

Each item's saved partition (``EDITS/elements/{index}``) is loaded, its spec applied with
:func:`elements.spec.apply_spec`, and the result decoded with the spec's prompt and seed, so every
method sees the same edited elements. Methods are ``NAME`` or ``LABEL=NAME[:KEY=VALUE,...]`` with
NAME a decoder of :mod:`elements.decoders` (e.g. ``ours=diffusion``, ``sd0.7=pixel+sdedit:strength=0.7``).
Baselines that run elsewhere (Self-Guidance, Paint-by-Example, InstructPix2Pix; Sec. 4.2) are
added by placing their outputs at ``RENDERS/{label}/{item}.png``; ``export`` only needs the files.

Also copies ``input/`` (the unedited input, used by vigilance trials) and ``source/`` (the input
with the object outlined) from the edits folder. Finished files are skipped, so an interrupted
render resumes; PNGs are written atomically.
"""

from __future__ import annotations

from pathlib import Path

from elements.atomic import copy_file
from elements.errors import UserError


def parse_methods(specs: list[str]) -> list[tuple[str, str, dict]]:
    """``["ours=diffusion", "pixel+sdedit:strength=0.7"]`` -> ``[(label, decoder name, options), ...]``."""
    from eval.recon import parse_options

    out, labels = [], set()
    for spec in specs:
        label, sep, rest = spec.partition("=")
        if not sep or ":" in label:
            label, rest = spec.split(":", 1)[0], spec
        name, _, opts = rest.partition(":")
        options = parse_options([o for o in opts.split(",") if o]) if opts else {}
        if not label or not name:
            raise UserError(f"Method '{spec}' must look like NAME or LABEL=NAME[:KEY=VALUE,...].")
        if label in labels or label in ("input", "source"):
            raise UserError(f"Method label '{label}' is used twice or reserved (input, source).")
        labels.add(label)
        out.append((label, name, options))
    return out


def _copy(src: Path, dst: Path) -> None:
    if dst.exists():
        return
    copy_file(src, dst)


def render(
    edits_dir,
    out,
    methods,
    *,
    device: str | None = None,
    steps: int | None = None,
    guidance: float | None = None,
    progress=None,
) -> dict[str, int]:
    """Render all (method, item) pairs not rendered yet; returns the number of new images per method."""
    from elements.apply import apply_spec
    from elements.image_io import save_png
    from elements.spec import load_spec
    from elements.types import ImageElements
    from eval.recon import make_decoder
    from eval.study.export import read_items

    edits_dir, out = Path(edits_dir), Path(out)
    items = read_items(edits_dir)
    for col in ("spec", "elements"):
        if col not in items:
            raise UserError(f"'{edits_dir / 'items.csv'}' lacks the '{col}' column; it was not written by make-edits.")
    for it in items["item"]:
        for kind in ("input", "source"):
            src = edits_dir / kind / f"{it}.png"
            if not src.is_file():
                raise UserError(f"'{src}' is missing; re-run make-edits.")
            _copy(src, out / kind / f"{it}.png")
    counts = {}
    cache: dict[str, ImageElements] = {}
    for label, name, options in methods:
        todo = [r for r in items.itertuples() if not (out / label / f"{r.item}.png").exists()]
        counts[label] = 0
        if not todo:
            continue
        decoder = make_decoder(name, options, device)
        (out / label).mkdir(parents=True, exist_ok=True)
        for r in todo:
            if r.elements not in cache:  # encode once, edit many: one partition per source image
                try:
                    cache[r.elements] = ImageElements.load(edits_dir / r.elements)
                except ValueError as err:
                    raise UserError(f"Item {r.item}: {err}.") from err
            spec = load_spec(edits_dir / r.spec)
            edited = apply_spec(cache[r.elements], spec)
            image = decoder(edited, prompt=spec.prompt, seed=spec.seed, steps=steps, guidance=guidance)
            save_png(out / label / f"{r.item}.png", image)
            counts[label] += 1
            if progress:
                progress(label, r.item)
    return counts
