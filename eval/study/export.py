"""``eval study export``: MTurk batch-input CSV, trial manifest, HIT template and preview page.

Design of the 2AFC study (Sec. 4.2, 4.4, Fig. 9, 11): a worker sees the edit instruction, the
source image and two results, and picks the one that "better reflects both the edit and
image quality".

* The source image shown is ``renders/source/{item}.png`` (the object outlined, from
  make-edits) when present, else the unedited input.
* Real trials: every (item, baseline) pair exactly once, ours against that baseline.
* Vigilance trials: ours (the correct edit) against the **unedited input**; a worker who
  prefers the unedited input is not following the task. ``v = max(1, round(K * rate))`` per
  HIT (default rate 10 %), so every HIT carries at least one; the last HIT is filled up with
  extra vigilance trials so that all HITs have K trials (MTurk needs one column set).
* Practice trials (optional, ``--practice P``): the first P trials of every HIT, also ours vs
  input, shown with feedback by the template and ignored by ``analyze``.
* Randomisation, all from ``--seed``: real trials are shuffled before being cut into HITs,
  trial order within a HIT is shuffled, and the side of ours is an independent fair coin per
  trial drawn from ``default_rng([seed, hit, trial])``.

Outputs in OUT: ``batch.csv`` (one row per HIT: ``hit_id``, then per slot t = 1..K
``t{t}_id, t{t}_instruction, t{t}_source, t{t}_left, t{t}_right, t{t}_practice``),
``manifest.csv`` (one row per trial), ``hit.html`` (MTurk template), ``preview.html``
(the first HIT with local images) and, with ``--images copy``, ``images/``.
"""

from __future__ import annotations

import html
import math
import string
from pathlib import Path

import numpy as np
import pandas as pd

from elements.atomic import copy_file
from elements.errors import UserError
from eval.report import read_csv

INPUT_METHOD = "input"  # renders/input/{item}.png: the unedited input at input size
SOURCE_METHOD = "source"  # renders/source/{item}.png: the input with the edited object outlined (shown as the source)
TEMPLATE = Path(__file__).resolve().parent.parent / "templates" / "hit.html"
MANIFEST_COLUMNS = [
    "hit",
    "trial",
    "trial_id",
    "item",
    "method_a",
    "method_b",
    "left",
    "right",
    "ours_side",
    "vigilance",
    "practice",
    "seed",
    "instruction",
]


def read_items(edits_dir) -> pd.DataFrame:
    f = Path(edits_dir) / "items.csv"
    if not f.is_file():
        raise UserError(f"'{edits_dir}' holds no items.csv; run 'eval study make-edits' first.")
    items = read_csv(f, what="items", dtype={"item": str}, keep_default_na=False)
    missing = {"item", "instruction"} - set(items.columns)
    if missing:
        raise UserError(f"'{f}' lacks column(s) {', '.join(sorted(missing))}.")
    if items["item"].duplicated().any():
        raise UserError(f"'{f}' lists item '{items['item'][items['item'].duplicated()].iloc[0]}' twice.")
    return items


def render_path(renders, method: str, item: str) -> Path:
    return Path(renders) / method / f"{item}.png"


def plan_trials(
    items: list[str],
    baselines: list[str],
    *,
    trials_per_hit: int,
    vigilance_rate: float,
    practice: int,
    seed: int,
    ours: str = "ours",
) -> pd.DataFrame:
    """The trial manifest (one row per trial, :data:`MANIFEST_COLUMNS` minus ``instruction``), deterministic in ``seed``."""
    k = int(trials_per_hit)
    if not 0 <= vigilance_rate < 1:
        raise UserError(f"--vigilance-rate must lie in [0, 1), got {vigilance_rate}.")
    if practice < 0 or k < 1:
        raise UserError("--trials-per-hit must be at least 1 and --practice at least 0.")
    v = max(1, round(k * vigilance_rate)) if vigilance_rate > 0 else 0
    real_per_hit = k - v - practice
    if real_per_hit < 1:
        raise UserError(
            f"A HIT of {k} trials has no room for real trials after {v} vigilance and {practice} practice trials."
        )
    if not items or not baselines:
        raise UserError("The study needs at least one item and one baseline.")
    if seed < 0:
        raise UserError(f"--seed must be a non-negative integer, got {seed}.")
    rng = np.random.default_rng(seed)
    real = [(item, b) for item in items for b in baselines]
    order = rng.permutation(len(real))
    real = [real[i] for i in order]
    n_hits = math.ceil(len(real) / real_per_hit)
    vig_items = rng.permutation(np.resize(np.asarray(items, dtype=object), n_hits * (k - practice)))
    rows, vi = [], 0
    for h in range(n_hits):
        chunk = real[h * real_per_hit : (h + 1) * real_per_hit]
        trials = [(item, b, "real") for item, b in chunk]
        while len(trials) < k - practice:  # v vigilance trials, plus filler in the last HIT
            trials.append((str(vig_items[vi]), INPUT_METHOD, "vigilance"))
            vi += 1
        trials = [trials[i] for i in rng.permutation(len(trials))]
        prac = [(str(item), INPUT_METHOD, "practice") for item in rng.choice(items, practice)]
        for t, (item, other, kind) in enumerate(prac + trials):
            coin = np.random.default_rng([seed, h, t]).random() < 0.5  # independent fair coin per trial
            ours_side = "left" if coin else "right"
            left, right = (ours, other) if coin else (other, ours)
            rows.append(
                {
                    "hit": h,
                    "trial": t,
                    "trial_id": f"h{h:05d}t{t:02d}",
                    "item": item,
                    "method_a": ours,
                    "method_b": other,
                    "left": left,
                    "right": right,
                    "ours_side": ours_side,
                    "vigilance": kind == "vigilance",
                    "practice": kind == "practice",
                    "seed": seed,
                }
            )
    return pd.DataFrame(rows)


def export(
    edits_dir,
    renders_dir,
    out,
    *,
    ours: str,
    baselines: list[str],
    trials_per_hit: int = 10,
    vigilance_rate: float = 0.1,
    practice: int = 0,
    seed: int = 0,
    images: str = "copy",
    url_prefix: str = "",
) -> pd.DataFrame:
    """Write the study files into ``out`` (see module docstring); returns the manifest."""
    from eval.report import write_csv, write_text

    items_df = read_items(edits_dir)
    items = items_df["item"].tolist()
    if ours in baselines:
        raise UserError(f"The method '{ours}' is both ours and a baseline.")
    methods = [ours, *baselines, INPUT_METHOD]
    missing = [(m, i) for m in methods for i in items if not render_path(renders_dir, m, i).is_file()]
    if missing:
        m, i = missing[0]
        raise UserError(
            f"{len(missing)} rendered image(s) are missing from '{renders_dir}' (first: {m}/{i}.png); run 'eval study render'."
        )
    manifest = plan_trials(
        items,
        baselines,
        trials_per_hit=trials_per_hit,
        vigilance_rate=vigilance_rate,
        practice=practice,
        seed=seed,
        ours=ours,
    )
    instr = dict(zip(items_df["item"], items_df["instruction"]))
    manifest["instruction"] = manifest["item"].map(instr)
    if url_prefix and not url_prefix.endswith("/"):
        url_prefix += "/"
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    shown = {i: SOURCE_METHOD if render_path(renders_dir, SOURCE_METHOD, i).is_file() else INPUT_METHOD for i in items}
    used = sorted(
        {(m, i) for m, i in zip(manifest["left"], manifest["item"])}
        | {(m, i) for m, i in zip(manifest["right"], manifest["item"])}
        | {(shown[i], i) for i in manifest["item"]}
    )
    if images == "copy":
        for m, i in used:
            dst = out / "images" / m / f"{i}.png"
            if not dst.exists():
                copy_file(render_path(renders_dir, m, i), dst)

        def url(m, i):
            return f"{url_prefix}images/{m}/{i}.png"
    elif images == "reference":
        root = Path(renders_dir).resolve()

        def url(m, i):
            return f"{url_prefix}{m}/{i}.png" if url_prefix else (root / m / f"{i}.png").as_uri()
    else:
        raise UserError(f"--images must be 'copy' or 'reference', got '{images}'.")
    batch = []
    for h, g in manifest.groupby("hit", sort=True):
        row = {"hit_id": f"h{h:05d}"}
        for slot, r in enumerate(g.sort_values("trial").itertuples(), start=1):
            row.update(
                {
                    f"t{slot}_id": r.trial_id,
                    f"t{slot}_instruction": r.instruction,
                    f"t{slot}_source": url(shown[r.item], r.item),
                    f"t{slot}_left": url(r.left, r.item),
                    f"t{slot}_right": url(r.right, r.item),
                    f"t{slot}_practice": int(r.practice),
                    f"t{slot}_practice_answer": r.ours_side if r.practice else "",
                }
            )
        batch.append(row)
    batch_df = pd.DataFrame(batch)
    template = hit_template(trials_per_hit)
    write_csv(out / "manifest.csv", manifest[MANIFEST_COLUMNS])
    write_csv(out / "batch.csv", batch_df)
    write_text(out / "hit.html", template)
    preview_urls = dict(batch[0])
    if images == "copy" and url_prefix:  # the preview opens from disk: point at the copied files
        preview_urls = {
            k: (v.replace(url_prefix, "", 1) if isinstance(v, str) and v.startswith(url_prefix) else v)
            for k, v in preview_urls.items()
        }
    write_text(out / "preview.html", fill_template(template, preview_urls))
    return manifest


def hit_template(k: int) -> str:
    """The MTurk HIT HTML with K trial blocks; MTurk substitutes ``${column}`` from batch.csv."""
    text = TEMPLATE.read_text(encoding="utf-8")
    head, rest = text.split("<!-- TRIAL -->", 1)
    block, tail = rest.split("<!-- /TRIAL -->", 1)
    blocks = "".join(block.replace("{t}", str(t)) for t in range(1, k + 1))
    return head + blocks + tail.replace("{K}", str(k))


def fill_template(template: str, values: dict) -> str:
    """Substitute ``${name}`` like MTurk does (values HTML-escaped) — for the static preview."""
    return string.Template(template).safe_substitute({k: html.escape(str(v)) for k, v in values.items()})
