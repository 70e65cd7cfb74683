"""``python -m eval COMMAND ...``: one module per command, same contract as ``elements.cli``.

Each module defines ``build_parser(prog)`` and ``run(args) -> int`` and imports heavy libraries
inside ``run``. A :class:`~elements.errors.UserError` becomes one ``error: ...`` line and exit 2.
"""

from __future__ import annotations

import importlib
import sys

from elements.errors import UserError

COMMANDS = {
    "split": ("eval.manifest", "write the held-out manifest (keys, sha256, rule) and 512² PNG references"),
    "metrics": ("eval.run_metrics", "MSE/PSNR/SSIM/LPIPS/FID between two image folders"),
    "recon": ("eval.recon", "reconstruction benchmark on the held-out split (resumable, sharded)"),
    "table": ("eval.table", "merge run folders into a Table 1/2-style table (CSV, Markdown, LaTeX)"),
    "study": ("eval.study.cli", "2AFC user study: make-edits, render, export, analyze"),
}


def _usage() -> str:
    lines = ["usage: python -m eval COMMAND [ARGS]", "", "commands:"]
    lines += [f"  {name:<8} {desc}" for name, (_, desc) in COMMANDS.items()]
    lines += ["", "Run 'python -m eval COMMAND --help' for a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help"}:
        print(_usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"error: unknown command '{name}'; choose one of {', '.join(COMMANDS)}.", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    parser = module.build_parser(f"python -m eval {name}")
    args = parser.parse_args(rest)
    try:
        return int(module.run(args) or 0)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("error: interrupted.", file=sys.stderr)
        return 130
