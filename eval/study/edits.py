"""``eval study make-edits``: deterministic, seeded edit specs with instruction sentences.

For each held-out image (first ``--limit`` in reader order; the 512² reference of
:func:`elements.data.preprocess.center_crop_resize`) one edit is made; the kind cycles through ``--ops``:

* ``move``   — the object moves by 15-25 % of the image side towards the side with more room;
* ``scale``  — the object is scaled by one of 0.6, 0.75, 1.33, 1.5 about its centre;
* ``delete`` — the object's elements are deleted, no prompt;
* ``remove`` — deleted with a background prompt (Fig. 8; ``--background-prompt``).

The **object** is a compact group of neighbouring elements: from a seeded element whose centre
lies in the central 60 % of the image, the k elements (k seeded in [12, 28], i.e. about 5-11 %
of the image for N = 256) with the nearest centroids. Without a detector there are no class
names, so the instruction names the object by where it is — "move the object at the top left to
the right" — and ``source/{item}.png`` shows the input with the object outlined, which the HIT
displays as the source image.

Everything is a function of ``(--seed, image index)``: the same data and seed give the same specs.
Writes ``items.csv``, ``specs/{item}.json`` (the ``elements.spec`` format, input pixels),
``elements/{index}/`` (the saved partition, so ``render`` edits exactly these ids),
``input/{item}.png`` and ``source/{item}.png``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from elements.errors import UserError

OPS = ("move", "scale", "delete", "remove")
SCALE_FACTORS = (0.6, 0.75, 1.33, 1.5)
GROUP_SIZE = (12, 28)
MOVE_FRACTION = (0.15, 0.25)
OUTLINE_RGB = (255, 40, 40)


def position_words(x: float, y: float) -> str:
    """Normalised centre -> "at the top left", "on the right", "in the centre", ... (thirds of the image)."""
    col = "left" if x < 1 / 3 else "right" if x > 2 / 3 else ""
    row = "top" if y < 1 / 3 else "bottom" if y > 2 / 3 else ""
    if row:
        return f"at the {row} {col}".rstrip()
    return f"on the {col}" if col else "in the centre"


def pick_object(el, rng: np.random.Generator) -> np.ndarray:
    """Ids of a compact group of neighbouring active elements (see the module docstring)."""
    ids = np.flatnonzero(el.active)
    c = el.centroids[ids].astype(np.float64)
    central = ids[np.all((c > 0.2) & (c < 0.8), axis=1)]
    pool = central if central.size else ids
    seed_id = int(rng.choice(pool))
    k = int(rng.integers(GROUP_SIZE[0], GROUP_SIZE[1] + 1))
    d = np.linalg.norm(c - el.centroids[seed_id].astype(np.float64), axis=1)
    return np.sort(ids[np.argsort(d, kind="stable")[: min(k, ids.size)]])


def _bbox(el, ids) -> np.ndarray:
    """Selection bounding box ``[x0, y0, x1, y1]`` in normalised canvas coordinates."""
    c, s = el.centroids[ids].astype(np.float64), el.sizes[ids].astype(np.float64)
    return np.r_[(c - s / 2).min(0), (c + s / 2).max(0)]


def make_edit(
    el, op: str, rng: np.random.Generator, *, background_prompt: str
) -> tuple[list[dict], str, str, np.ndarray]:
    """``(edits, instruction, prompt, selected ids)`` for one image; coordinates in input pixels."""
    from elements.edit import selection_centroid

    ids = pick_object(el, rng)
    cx, cy = selection_centroid(el, ids)
    where = position_words(cx, cy)
    obj = f"the object {where}"
    sel = [int(i) for i in ids]
    if op == "move":
        x0, y0, x1, y1 = _bbox(el, ids)
        room = {"left": x0, "right": 1 - x1, "up": y0, "down": 1 - y1}
        direction = max(room, key=lambda k: (room[k], k))
        amount = float(rng.uniform(*MOVE_FRACTION))
        amount = min(amount, max(room[direction], 0.05))
        w, h = el.geometry.input_w, el.geometry.input_h
        dx = {"left": -amount * w, "right": amount * w}.get(direction, 0.0)
        dy = {"up": -amount * h, "down": amount * h}.get(direction, 0.0)
        words = {"left": "to the left", "right": "to the right", "up": "up", "down": "down"}[direction]
        return (
            [{"op": "move", "elements": sel, "dx": round(dx, 2), "dy": round(dy, 2)}],
            f"Move {obj} {words}.",
            "",
            ids,
        )
    if op == "scale":
        factor = float(rng.choice(SCALE_FACTORS))
        return (
            [{"op": "scale", "elements": sel, "factor": factor}],
            f"Make {obj} {'larger' if factor > 1 else 'smaller'}.",
            "",
            ids,
        )
    if op == "delete":
        return [{"op": "delete", "elements": sel}], f"Remove {obj}.", "", ids
    if op == "remove":
        return (
            [{"op": "delete", "elements": sel}],
            f"Remove {obj} and fill the area with background.",
            background_prompt,
            ids,
        )
    raise UserError(f"Unknown edit kind '{op}'; choose from {', '.join(OPS)}.")


def outline(image: np.ndarray, labels_input: np.ndarray, ids_labels: np.ndarray, width: int = 3) -> np.ndarray:
    """The image with the boundary of the selected elements drawn in :data:`OUTLINE_RGB`."""
    import cv2

    mask = np.isin(labels_input, ids_labels).astype(np.uint8)
    k = np.ones((width, width), np.uint8)
    edge = cv2.dilate(mask, k) != cv2.erode(mask, k)
    out = image.copy()
    out[edge] = OUTLINE_RGB
    return out


def make_edits(
    data,
    out,
    *,
    split: str = "heldout",
    limit: int = 100,
    ops=OPS,
    seed: int = 0,
    partition: dict | None = None,
    background_prompt: str = "a photo of the background",
    device: str = "cpu",
) -> pd.DataFrame:
    """Seeded edit specs for the first ``limit`` samples of ``data`` (see the module docstring).

    ``partition``: :class:`~elements.partition.Partitioner` keyword arguments
    (:func:`elements.partition.options.partition_kwargs`); default ``{"backend": "auto"}``.
    ``device``: torch device for SAM.
    """
    from elements.data import iter_samples, resolve_source
    from elements.data.preprocess import center_crop_resize
    from elements.image_io import save_png
    from elements.partition import Partitioner
    from elements.spec import load_spec
    from eval.manifest import stem_for
    from eval.report import write_csv, write_text

    ops = [o.strip() for o in ops if o.strip()]
    bad = [o for o in ops if o not in OPS]
    if bad or not ops:
        raise UserError(f"Unknown edit kind(s) {', '.join(bad) or '(none)'}; choose from {', '.join(OPS)}.")
    if limit < 1:
        raise UserError(f"--limit must be at least 1, got {limit}.")
    resolve_source(data)  # a bad --data fails before any partition model is loaded
    out = Path(out)
    for sub in ("specs", "elements", "input", "source"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    part = Partitioner(**(partition or {"backend": "auto"}), device=device)
    rows = []
    for index, sample in enumerate(iter_samples(data, split=split)):
        if index >= limit:
            break
        image = center_crop_resize(sample.image)
        el = part(image)
        el.save(out / "elements" / f"{index:05d}")
        op = ops[index % len(ops)]
        rng = np.random.default_rng([seed, index])
        edits, instruction, prompt, ids = make_edit(el, op, rng, background_prompt=background_prompt)
        item = f"{index:05d}-{op}"
        spec = load_spec({"version": 1, "prompt": prompt, "seed": int(rng.integers(0, 2**31)), "edits": edits})
        spec.save(out / "specs" / f"{item}.json")
        save_png(out / "input" / f"{item}.png", image)
        labels = el.geometry.labels_to_input(el.labels)
        save_png(out / "source" / f"{item}.png", outline(image, labels, el.source_label[ids]))
        rows.append(
            {
                "item": item,
                "index": index,
                "key": sample.key,
                "stem": stem_for(sample.split_key),
                "op": op,
                "instruction": instruction,
                "prompt": prompt,
                "seed": spec.seed,
                "spec": f"specs/{item}.json",
                "elements": f"elements/{index:05d}",
                "selected": " ".join(map(str, ids.tolist())),
            }
        )
    if not rows:
        raise UserError(f"No {split} sample was found in '{data}'.")
    items = pd.DataFrame(rows)
    write_csv(out / "items.csv", items)
    write_text(
        out / "make_edits.json",
        json.dumps(
            {
                "data": str(data),
                "split": split,
                "limit": limit,
                "ops": ops,
                "seed": seed,
                "partition": part.params(),
                "background_prompt": background_prompt,
            },
            indent=2,
        )
        + "\n",
    )
    return items
