"""``python -m elements COMMAND ...``: dispatches to one module per command.

Each command module defines ``build_parser(prog) -> argparse.ArgumentParser`` and
``run(args) -> int``; heavy imports happen inside ``run`` so ``--help`` is instant. A
:class:`~elements.errors.UserError` becomes one ``error: ...`` line on stderr and exit 2.
"""

from __future__ import annotations

import importlib
import sys

from elements.errors import UserError

#: command -> (module, one-line description)
COMMANDS = {
    "partition": ("elements.partition.cli", "split an image into image elements (Alg. 2)"),
    "edit": ("elements.edit_cli", "apply an edit spec to an image and decode it"),
    "train": ("elements.train.cli", "train stage 1 (encoder + light decoder) or stage 2 (diffusion decoder)"),
    "tiny-base": ("elements.tiny_base", "write a tiny random SD-1.5-shaped base model for offline smoke tests"),
}


def _usage() -> str:
    lines = ["usage: python -m elements COMMAND [ARGS]", "", "commands:"]
    lines += [f"  {name:<10} {desc}" for name, (_, desc) in COMMANDS.items()]
    lines += ["", "Run 'python -m elements COMMAND --help' for a command's options."]
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
    parser = module.build_parser(f"python -m elements {name}")
    args = parser.parse_args(rest)  # argparse itself exits 2 with a one-line message on bad flags
    try:
        return int(module.run(args) or 0)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("error: interrupted.", file=sys.stderr)
        return 130
