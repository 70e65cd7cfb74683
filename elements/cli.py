"""``python -m elements COMMAND ...``: dispatches to one module per command.

Each command module defines ``build_parser(prog) -> argparse.ArgumentParser`` and
``run(args) -> int``; heavy imports happen inside ``run`` so ``--help`` is instant. A
:class:`~elements.errors.UserError` becomes one ``error: ...`` line on stderr and exit 2.

Every flag is spelled with hyphens (``--output-dir``); the underscore spelling the training
commands used before (``--output_dir``, as in diffusers' scripts) is accepted by every command as
a hidden alias (:func:`accept_old_spellings`).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from elements.errors import UserError

#: command -> (module, one-line description)
COMMANDS = {
    "partition": ("elements.partition.cli", "split an image into image elements (Alg. 2)"),
    "edit": ("elements.edit_cli", "apply an edit spec to an image and decode it"),
    "prepare": ("elements.data.prepare", "partition a training set once into webdataset shards (sharded, resumable)"),
    "train": ("elements.train.cli", "train stage 1 (encoder + light decoder) or stage 2 (diffusion decoder)"),
    "tiny-base": ("elements.tiny_base", "write a tiny random SD-1.5-shaped base model for offline smoke tests"),
}


def accept_old_spellings(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Let ``parser`` also take ``--a_b`` for each of its ``--a-b`` flags, without listing it in ``--help``.

    The old spelling is registered as one more name of the same action, so it parses, checks
    ``required`` and conflicts exactly as the new one does. Returns ``parser``.
    """
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):  # e.g. ``eval study make-edits``
            for sub in action.choices.values():
                accept_old_spellings(sub)
        for flag in action.option_strings:
            if flag.startswith("--") and "-" in flag[2:]:
                parser._option_string_actions.setdefault("--" + flag[2:].replace("-", "_"), action)
    return parser


def command_parser(module: str, prog: str) -> argparse.ArgumentParser:
    """The parser of command module ``module`` (its ``build_parser(prog)``), old spellings accepted."""
    return accept_old_spellings(importlib.import_module(module).build_parser(prog))


def dispatch(commands: dict, argv: list[str], prog: str) -> int:
    """Run ``commands[argv[0]]`` (``{name: (module, description)}``) with the rest of ``argv``.

    Shared by ``python -m elements`` and ``python -m eval``. Returns the exit status.
    """
    if not argv or argv[0] in {"-h", "--help"}:
        lines = [f"usage: {prog} COMMAND [ARGS]", "", "commands:"]
        width = max(len(n) for n in commands)
        lines += [f"  {name:<{width}}  {desc}" for name, (_, desc) in commands.items()]
        lines += ["", f"Run '{prog} COMMAND --help' for a command's options."]
        print("\n".join(lines))
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in commands:
        print(f"error: unknown command '{name}'; choose one of {', '.join(commands)}.", file=sys.stderr)
        return 2
    module = importlib.import_module(commands[name][0])
    parser = command_parser(commands[name][0], f"{prog} {name}")
    args = parser.parse_args(rest)  # argparse itself exits 2 with a one-line message on bad flags
    try:
        return int(module.run(args) or 0)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("error: interrupted.", file=sys.stderr)
        return 130


def main(argv: list[str] | None = None) -> int:
    return dispatch(COMMANDS, list(sys.argv[1:] if argv is None else argv), "python -m elements")
