"""``eval study analyze``: MTurk batch results + manifest -> preference for ours per baseline.

Reading the results (one row per assignment, MTurk's ``WorkerId``, ``AssignmentId``, ``Input.*``,
``Answer.*`` columns): slot t's trial is ``Input.t{t}_id`` and its answer ``Answer.t{t}``
("left"/"right"; a JSON ``Answer.taskAnswers`` column from crowd-form is read too).

Exclusions, each counted and written to ``exclusions.csv`` (never silent):

* ``duplicate_assignment`` — an ``AssignmentId`` seen before, or a worker answering the same
  HIT twice (the first assignment is kept);
* ``unknown_trial`` — a trial id absent from the manifest or listed under another HIT;
* ``missing_answer`` — empty or not "left"/"right";
* ``practice`` — practice trials;
* ``failed_vigilance`` — every trial of a worker whose vigilance accuracy is below
  ``--min-vigilance`` (default 0.8); vigilance trials themselves are never scored. Workers who
  saw no vigilance trial are kept and counted (``workers_without_vigilance``).

Per baseline: N judgments, preference for ours in %, Wilson 95 % CI, two-sided exact binomial
test against 50 %, and a hierarchical bootstrap 95 % CI (workers, then their trials).
Outputs ``results.csv``, ``results.md``, ``exclusions.csv`` and ``preference.png`` (Fig. 9 / 11).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from elements.errors import UserError
from eval.report import read_csv

_SLOT = re.compile(r"^Input\.t(\d+)_id$")
MANIFEST_REQUIRED = {"hit", "trial_id", "item", "method_b", "ours_side", "vigilance", "practice"}


def _read(path, what) -> pd.DataFrame:
    return read_csv(path, what=what, dtype=str, keep_default_na=False)


def read_manifest(path) -> pd.DataFrame:
    m = _read(path, "manifest")
    missing = MANIFEST_REQUIRED - set(m.columns)
    if missing:
        raise UserError(
            f"The manifest '{path}' lacks column(s) {', '.join(sorted(missing))}; pass the manifest.csv written by 'eval study export'."
        )
    if m["trial_id"].duplicated().any():
        raise UserError(
            f"The manifest '{path}' lists trial '{m['trial_id'][m['trial_id'].duplicated()].iloc[0]}' twice."
        )
    for col in ("vigilance", "practice"):
        m[col] = m[col].str.lower().map({"true": True, "false": False, "1": True, "0": False})
        if m[col].isna().any():
            raise UserError(f"The manifest '{path}' has a non-boolean value in column '{col}'.")
    if not m["ours_side"].isin(["left", "right"]).all():
        raise UserError(f"The manifest '{path}' has an ours_side other than left/right.")
    return m


def _answers_from_json(cell: str) -> dict:
    """crowd-form's ``Answer.taskAnswers``: ``[{"t1": "left", ...}]`` or ``[{"t1": {"left": true}}]``."""
    try:
        data = json.loads(cell) if cell else [{}]
    except json.JSONDecodeError:
        return {}
    data = data[0] if isinstance(data, list) and data else data
    out = {}
    for k, v in (data or {}).items():
        if isinstance(v, dict):
            v = next((side for side, on in v.items() if on), "")
        out[k] = str(v)
    return out


def long_judgments(results: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """One row per (assignment, slot): worker, assignment, hit_id, trial_id, answer. Also duplicate counts."""
    if "WorkerId" not in results:
        raise UserError("The results CSV has no WorkerId column; pass MTurk's batch results file.")
    slots = sorted(int(m.group(1)) for c in results.columns if (m := _SLOT.match(c)))
    if not slots:
        raise UserError(
            "The results CSV has no Input.t1_id column; it does not come from a batch made by 'eval study export'."
        )
    has_json = "Answer.taskAnswers" in results
    if not has_json and not any(f"Answer.t{t}" in results for t in slots):
        raise UserError("The results CSV has no Answer.t<k> or Answer.taskAnswers columns.")
    counts = {"duplicate_assignment": 0}
    if "AssignmentId" not in results:
        results = results.assign(AssignmentId=[f"row{i}" for i in range(len(results))])
    hit_col = "Input.hit_id" if "Input.hit_id" in results else "HITId" if "HITId" in results else None
    seen_assign, seen_worker_hit, rows = set(), set(), []
    for _, r in results.iterrows():
        wh = (r["WorkerId"], r[hit_col]) if hit_col else None
        if r["AssignmentId"] in seen_assign or (wh is not None and wh in seen_worker_hit):
            counts["duplicate_assignment"] += len(slots)
            continue
        seen_assign.add(r["AssignmentId"])
        if wh is not None:
            seen_worker_hit.add(wh)
        js = _answers_from_json(r["Answer.taskAnswers"]) if has_json else {}
        for t in slots:
            ans = str(r.get(f"Answer.t{t}", "") or js.get(f"t{t}", "")).strip().lower()
            rows.append(
                {
                    "worker": r["WorkerId"],
                    "assignment": r["AssignmentId"],
                    "hit_id": r.get("Input.hit_id", ""),
                    "trial_id": r[f"Input.t{t}_id"],
                    "answer": ans,
                }
            )
    return pd.DataFrame(rows, columns=["worker", "assignment", "hit_id", "trial_id", "answer"]), counts


def analyze(
    results: pd.DataFrame, manifest: pd.DataFrame, *, min_vigilance: float = 0.8, n_boot: int = 2000, seed: int = 0
) -> tuple[pd.DataFrame, dict]:
    """``(per-baseline table, exclusion counts)``; see the module docstring."""
    from eval.study.stats import binomial_p, hierarchical_bootstrap, wilson_interval

    judg, counts = long_judgments(results)
    j = judg.merge(manifest, on="trial_id", how="left", indicator=True)
    unknown = j["_merge"] == "left_only"
    if "hit" in j and (j["hit_id"] != "").any():
        expected = j["hit"].map(lambda h: f"h{int(h):05d}" if isinstance(h, str) and h.isdigit() else None)
        unknown |= (j["hit_id"] != "") & (expected != j["hit_id"])
    counts["unknown_trial"] = int(unknown.sum())
    j = j[~unknown].copy()
    if j.empty:
        raise UserError(
            "No result matches the manifest (all trial ids unknown); check that the results belong to this study's manifest."
        )
    j["practice"] = j["practice"].astype(bool)  # object dtype after a left merge with unmatched rows
    j["vigilance"] = j["vigilance"].astype(bool)
    missing = ~j["answer"].isin(["left", "right"])
    counts["missing_answer"] = int(missing.sum())
    j = j[~missing]
    counts["practice"] = int(j["practice"].sum())
    j = j[~j["practice"]].copy()
    j["chose_ours"] = j["answer"] == j["ours_side"]
    vig = j[j["vigilance"]].groupby("worker")["chose_ours"].mean()
    bad = set(vig.index[vig < min_vigilance])
    counts["failed_vigilance_workers"] = len(bad)
    counts["failed_vigilance"] = int((j["worker"].isin(bad) & ~j["vigilance"]).sum())
    counts["vigilance_trials"] = int(j["vigilance"].sum())
    counts["workers_without_vigilance"] = int(len(set(j["worker"]) - set(vig.index)))  # kept: nothing to judge them by
    counts["workers_kept"] = int(j.loc[~j["worker"].isin(bad), "worker"].nunique())
    real = j[~j["vigilance"] & ~j["worker"].isin(bad)]
    rows = []
    for b, g in real.groupby("method_b", sort=True):
        n, k = len(g), int(g["chose_ours"].sum())
        lo, hi = wilson_interval(k, n)
        blo, bhi = hierarchical_bootstrap(
            [w["chose_ours"].to_numpy() for _, w in g.groupby("worker")], n_boot=n_boot, seed=seed
        )
        rows.append(
            {
                "baseline": b,
                "n": n,
                "ours_n": k,
                "ours_pct": 100.0 * k / n,
                "wilson_lo": 100 * lo,
                "wilson_hi": 100 * hi,
                "boot_lo": 100 * blo,
                "boot_hi": 100 * bhi,
                "p_value": binomial_p(k, n),
                "workers": int(g["worker"].nunique()),
            }
        )
    return pd.DataFrame(
        rows,
        columns=[
            "baseline",
            "n",
            "ours_n",
            "ours_pct",
            "wilson_lo",
            "wilson_hi",
            "boot_lo",
            "boot_hi",
            "p_value",
            "workers",
        ],
    ), counts


def plot(table: pd.DataFrame, path, *, ours_label: str = "Ours", title: str = "") -> None:
    """Fig. 9 / 11 style: per baseline, the share of judgments for ours vs the baseline, 95 % CI, 50 % line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from eval.report import atomic_write

    fig, ax = plt.subplots(figsize=(7.2, 0.6 + 0.55 * max(1, len(table))))
    y = np.arange(len(table))
    ours = table["ours_pct"].to_numpy()
    ax.barh(y, ours, color="#3b7dd8", label=ours_label)
    ax.barh(y, 100 - ours, left=ours, color="#c9c9c9", label="baseline")
    err = np.vstack([ours - table["wilson_lo"].to_numpy(), table["wilson_hi"].to_numpy() - ours])
    ax.errorbar(ours, y, xerr=err, fmt="none", ecolor="black", capsize=3, lw=1)
    for yi, o in zip(y, ours):
        ax.text(2, yi, f"{o:.1f}%", va="center", color="white", fontweight="bold")
        ax.text(98, yi, f"{100 - o:.1f}%", va="center", ha="right")
    ax.axvline(50, color="black", ls="--", lw=0.8)
    ax.set_yticks(y, [f"{ours_label} vs {b}" for b in table["baseline"]])
    ax.set_xlim(0, 100)
    ax.set_xlabel("judgments preferring each method (%); whiskers: Wilson 95% CI")
    ax.invert_yaxis()
    if title:
        ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8, bbox_to_anchor=(1, 1.0), ncol=2, frameon=False)
    fig.tight_layout()
    atomic_write(path, lambda p: fig.savefig(p, dpi=150, format="png"))
    plt.close(fig)


def run_analyze(results_paths, manifest_path, out, *, min_vigilance=0.8, n_boot=2000, seed=0, ours_label="Ours"):
    from eval.report import to_markdown, write_csv, write_text

    if not 0 <= min_vigilance <= 1:
        raise UserError(f"--min-vigilance must lie in [0, 1], got {min_vigilance}.")
    manifest = read_manifest(manifest_path)
    results = pd.concat([_read(p, "results") for p in results_paths], ignore_index=True)
    table, counts = analyze(results, manifest, min_vigilance=min_vigilance, n_boot=n_boot, seed=seed)
    if table.empty:
        raise UserError("No judgment is left after exclusions; see the counts with --min-vigilance 0 to investigate.")
    out = Path(out)
    write_csv(out / "results.csv", table)
    md = to_markdown(
        table.rename(columns={"ours_pct": "ours %"}),
        {"ours %": 1, "wilson_lo": 1, "wilson_hi": 1, "boot_lo": 1, "boot_hi": 1, "p_value": 4},
    )
    write_text(out / "results.md", md)
    write_csv(out / "exclusions.csv", pd.DataFrame({"reason": list(counts), "count": list(counts.values())}))
    plot(table, out / "preference.png", ours_label=ours_label)
    return table, counts
