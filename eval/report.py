"""CSV tables in and out, and plain Markdown / LaTeX rendering of pandas tables.

Every CSV that ``eval`` reads goes through :func:`read_csv` (one sentence when it is missing or
unreadable). Every output file is written to a temporary name in its folder and renamed into
place, so a killed run leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from elements.atomic import atomic_write, write_text  # noqa: F401  (re-exported for eval modules)
from elements.errors import UserError


def read_csv(path, *, what: str, **kwargs) -> pd.DataFrame:
    """``pd.read_csv(path, **kwargs)``; a missing or unreadable file is a UserError naming the ``what`` file."""
    try:
        return pd.read_csv(path, **kwargs)
    except FileNotFoundError as err:
        raise UserError(f"The {what} file '{path}' does not exist.") from err
    except (OSError, ValueError) as err:  # pandas' ParserError / EmptyDataError and UnicodeDecodeError are ValueErrors
        raise UserError(f"The {what} file '{path}' is not a readable CSV ({type(err).__name__}).") from err


def write_csv(path, df: pd.DataFrame) -> Path:
    return atomic_write(path, lambda p: df.to_csv(p, index=False))


def fmt(value, digits: int = 4) -> str:
    """A table cell: floats to ``digits`` decimals, None/NaN as an en dash."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def to_markdown(df: pd.DataFrame, formats: dict[str, int] | None = None) -> str:
    """GitHub Markdown table; ``formats`` maps column -> decimals (default 4 for floats)."""
    formats = formats or {}
    cols = list(df.columns)
    lines = ["| " + " | ".join(map(str, cols)) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for _, row in df.iterrows():
        lines.append("| " + " | ".join(fmt(row[c], formats.get(c, 4)) for c in cols) + " |")
    return "\n".join(lines) + "\n"


_TEX_ESCAPE = {
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "\\": r"\textbackslash{}",
    "↓": r"$\downarrow$",
    "↑": r"$\uparrow$",
    "✓": r"\checkmark",
    "×": r"$\times$",
    "–": "--",
}


def tex_escape(text: str) -> str:
    return "".join(_TEX_ESCAPE.get(ch, ch) for ch in str(text))


def to_latex(
    df: pd.DataFrame,
    formats: dict[str, int] | None = None,
    *,
    caption: str = "",
    label: str = "",
    bold: dict[str, str] | None = None,
) -> str:
    """A booktabs ``table`` environment; ``bold`` maps column -> "min"/"max" to bold the best value."""
    formats = formats or {}
    bold = bold or {}
    cols = list(df.columns)
    best = {}
    for c, how in bold.items():
        vals = pd.to_numeric(df[c], errors="coerce")
        if vals.notna().any():
            best[c] = vals.min() if how == "min" else vals.max()
    align = "l" + "r" * (len(cols) - 1)
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        rf"\begin{{tabular}}{{{align}}}",
        r"\toprule",
        " & ".join(tex_escape(c) for c in cols) + r" \\",
        r"\midrule",
    ]
    for _, row in df.iterrows():
        cells = []
        for c in cols:
            cell = tex_escape(fmt(row[c], formats.get(c, 4)))
            if c in best and isinstance(row[c], (int, float)) and not pd.isna(row[c]) and row[c] == best[c]:
                cell = rf"\textbf{{{cell}}}"
            cells.append(cell)
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    if caption:
        lines.append(rf"\caption{{{tex_escape(caption)}}}")
    if label:
        lines.append(rf"\label{{{label}}}")
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"
