"""``python -m eval COMMAND ...``: one module per command, same contract as ``elements.cli``.

Each module defines ``build_parser(prog)`` and ``run(args) -> int`` and imports heavy libraries
inside ``run``. A :class:`~elements.errors.UserError` becomes one ``error: ...`` line and exit 2.
"""

from __future__ import annotations

import sys

from elements.cli import dispatch

COMMANDS = {
    "split": ("eval.manifest", "write the held-out manifest (keys, sha256, rule) and 512² PNG references"),
    "metrics": ("eval.run_metrics", "MSE/PSNR/SSIM/LPIPS/FID between two image folders"),
    "recon": ("eval.recon", "reconstruction benchmark on the held-out split (resumable, sharded)"),
    "table": ("eval.table", "merge run folders into a Table 1/2-style table (CSV, Markdown, LaTeX)"),
    "study": ("eval.study.cli", "2AFC user study: make-edits, render, export, analyze"),
}


def main(argv: list[str] | None = None) -> int:
    return dispatch(COMMANDS, list(sys.argv[1:] if argv is None else argv), "python -m eval")
