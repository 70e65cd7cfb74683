"""``python -m eval table RUN_DIR... --out OUT``: merge runs into one Table 1/2-style table.

Each ``RUN_DIR`` holds the ``summary.csv`` written by ``eval metrics`` or ``eval recon`` (one
row). The table has one row per run, the metric columns in the paper's order and precision
(MSE 4 decimals, PSNR 2, SSIM 4, LPIPS 4, FID 2; Tables 1-2), plus N, and is written as
``OUT/table.csv``, ``OUT/table.md`` and ``OUT/table.tex`` (booktabs, best value in bold).

``--rows rows.csv`` adds descriptive columns, Table 1 / Table 2 style: a CSV with a ``run_dir``
column (as given on the command line) or a ``run`` column (the run name) and any other columns
("Staged Training", "Supervision", "Bottleneck", ...), which are placed before the metrics.
``--preference results.csv`` (from ``eval study analyze``) adds Table 1's "Preference VS ours":
for a run whose name is a study baseline, 100 - (preference for ours).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from elements.errors import UserError
from eval.report import read_csv

#: column -> (header, decimals, better) in the paper's order (Tables 1-2).
METRIC_COLUMNS = {
    "mse": ("MSE ↓", 4, "min"),
    "psnr": ("PSNR ↑", 2, "max"),
    "ssim": ("SSIM ↑", 4, "max"),
    "lpips": ("LPIPS ↓", 4, "min"),
    "fid": ("FID ↓", 2, "min"),
    "kid": ("KID ↓", 4, "min"),
}
PREFERENCE_HEADER = "Preference VS ours ↑"


def read_run(run_dir) -> dict:
    d = Path(run_dir)
    f = d / "summary.csv"
    if not f.is_file():
        raise UserError(f"'{d}' holds no summary.csv; pass folders written by 'eval metrics' or 'eval recon'.")
    df = read_csv(f, what="summary")
    if len(df) != 1 or "run" not in df or "n" not in df:
        raise UserError(f"'{f}' must hold exactly one row with 'run' and 'n' columns (found {len(df)} rows).")
    row = df.iloc[0].to_dict()
    row["run_dir"] = str(run_dir)
    return row


def build_table(run_dirs, *, rows_csv=None, preference_csv=None, warn=None) -> pd.DataFrame:
    """The merged table with raw (unformatted) values; columns: descriptive..., metrics..., N."""
    warn = warn or (lambda m: print(m, file=sys.stderr))
    runs = [read_run(d) for d in run_dirs]
    names = [r["run"] for r in runs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise UserError(
            f"Run name(s) {', '.join(map(str, dupes))} appear more than once; re-run with distinct --name values."
        )
    ns = {int(r["n"]) for r in runs}
    if len(ns) > 1:
        warn(
            f"warning: runs were computed on different numbers of images ({sorted(ns)}); their numbers are not comparable."
        )
    table = pd.DataFrame({"Method": names})
    if rows_csv:
        extra = read_csv(rows_csv, what="--rows")
        key = "run_dir" if "run_dir" in extra else "run" if "run" in extra else None
        if key is None:
            raise UserError(f"--rows CSV '{rows_csv}' needs a 'run_dir' or 'run' column to match runs.")
        lookup = {str(k): rec for k, rec in zip(extra[key].astype(str), extra.drop(columns=[key]).to_dict("records"))}
        ids = [r["run_dir"] if key == "run_dir" else str(r["run"]) for r in runs]
        missing = [i for i in ids if i not in lookup]
        if missing:
            raise UserError(f"--rows CSV '{rows_csv}' has no row for {len(missing)} run(s) (first: {missing[0]}).")
        for col in extra.columns.drop(key):
            table[col] = [lookup[i][col] for i in ids]
    for m, (header, _, _) in METRIC_COLUMNS.items():
        if any(m in r and not pd.isna(r[m]) for r in runs):
            table[header] = [r.get(m, float("nan")) for r in runs]
    if preference_csv:
        pref = read_csv(preference_csv, what="--preference")
        if not {"baseline", "ours_pct"} <= set(pref.columns):
            raise UserError(
                f"--preference CSV '{preference_csv}' needs 'baseline' and 'ours_pct' columns (from eval study analyze)."
            )
        by = dict(zip(pref["baseline"].astype(str), pref["ours_pct"]))
        table[PREFERENCE_HEADER] = [100.0 - by[n] if n in by else float("nan") for n in map(str, names)]
    table["N"] = [int(r["n"]) for r in runs]
    if any("fid_n" in r and not pd.isna(r["fid_n"]) for r in runs):
        table["FID N"] = [int(r["fid_n"]) if not pd.isna(r.get("fid_n", float("nan"))) else None for r in runs]
    return table


def formats(table: pd.DataFrame) -> dict[str, int]:
    f = {header: d for header, d, _ in METRIC_COLUMNS.values()}
    f[PREFERENCE_HEADER] = 1
    return f


def write_table(table: pd.DataFrame, out, *, caption: str = "") -> list[Path]:
    from eval.report import to_latex, to_markdown, write_csv, write_text

    out = Path(out)
    f = formats(table)
    bold = {h: better for h, _, better in METRIC_COLUMNS.values() if h in table}
    if PREFERENCE_HEADER in table:
        bold[PREFERENCE_HEADER] = "max"
    tex = to_latex(table, f, caption=caption, bold=bold)
    return [
        write_csv(out / "table.csv", table),
        write_text(out / "table.md", to_markdown(table, f)),
        write_text(out / "table.tex", tex),
    ]


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        allow_abbrev=False,
        description="Merge eval runs into one table in the format of the paper's Tables 1-2.",
    )
    p.add_argument(
        "runs", nargs="+", help="run folders, each holding a summary.csv from 'eval metrics' or 'eval recon'"
    )
    p.add_argument("--out", required=True, help="folder for table.csv, table.md and table.tex")
    p.add_argument(
        "--rows",
        default=None,
        help="CSV of descriptive columns keyed by run_dir or run (e.g. Table 1's design choices)",
    )
    p.add_argument(
        "--preference", default=None, help="results.csv of 'eval study analyze' to add Table 1's 'Preference VS ours'"
    )
    p.add_argument("--caption", default="", help="LaTeX caption")
    return p


def run(args) -> int:
    from eval.report import to_markdown

    table = build_table(args.runs, rows_csv=args.rows, preference_csv=args.preference)
    write_table(table, args.out, caption=args.caption)
    print(to_markdown(table, formats(table)), end="")
    return 0
