"""Command-line plumbing shared by every CLI: one partition flag set, strict parsing, old spellings as aliases."""

from __future__ import annotations

import argparse
import functools
import importlib

import pytest

from elements.cli import COMMANDS as ELEMENTS_COMMANDS
from elements.cli import command_parser
from elements.partition import Partitioner
from elements.partition.algorithm import BETA, BETA_C, ITERATIONS, NUM_ELEMENTS
from elements.partition.options import BACKEND_CHOICES, add_partition_args, partition_kwargs
from elements.train.cli import STAGES
from eval.cli import COMMANDS as EVAL_COMMANDS


@functools.cache
def _all_parsers():
    """(name, parser) for every command parser and every subparser of every command (built once per session)."""
    modules = {
        **{n: m for n, (m, _) in ELEMENTS_COMMANDS.items()},
        **{f"eval {n}": m for n, (m, _) in EVAL_COMMANDS.items()},
        **{f"train {n}": m for n, (m, _) in STAGES.items()},
    }
    found = []
    for name, module in modules.items():
        parser = command_parser(module, name)  # as `python -m elements|eval` builds it
        stack = [(name, parser)]
        while stack:
            n, p = stack.pop()
            found.append((n, p))
            for action in p._actions:
                if isinstance(action, argparse._SubParsersAction):
                    stack += [(f"{n} {k}", sub) for k, sub in action.choices.items()]
    return tuple(found)


def test_no_parser_accepts_abbreviations():
    """argparse's prefix matching silently turned ``--data`` into ``--dataloader_num_workers``."""
    lax = [name for name, p in _all_parsers() if p.allow_abbrev]
    assert not lax, f"parsers with allow_abbrev=True: {lax}"


def test_training_rejects_a_prefix_of_another_flag():
    stage1 = importlib.import_module("elements.train.stage1").build_parser("stage1")
    with pytest.raises(SystemExit):
        stage1.parse_args(["--train-data", "x", "--output-dir", "y", "--dataloader-num", "0"])


def test_every_partitioning_command_has_the_same_flags_and_defaults():
    """partition, edit, train stage1/2, eval recon and study make-edits share add_partition_args()."""
    wanted = {
        "backend": "auto",
        "num_elements": NUM_ELEMENTS,
        "beta": BETA,
        "beta_c": BETA_C,
        "iterations": ITERATIONS,
        "sam_checkpoint": None,
        "sam_model_type": None,
    }
    users = [(n, p) for n, p in _all_parsers() if any(a.dest == "num_elements" for a in p._actions)]
    assert {n for n, _ in users} >= {
        "partition",
        "edit",
        "train stage1",
        "train stage2",
        "eval recon",
        "eval study make-edits",
    }
    for name, parser in users:
        defaults = {
            a.dest: a.default for a in parser._actions if a.dest in wanted and a.default is not argparse.SUPPRESS
        }
        assert defaults == wanted, name
        backend = next(a for a in parser._actions if a.dest == "backend" and a.choices)
        assert tuple(backend.choices) == BACKEND_CHOICES, name


def test_old_spellings_are_hidden_aliases(capsys):
    p = argparse.ArgumentParser(allow_abbrev=False)
    add_partition_args(p)
    args = p.parse_args(["--partition", "grid", "--num_elements", "16", "--beta_c", "0.5", "--sam_checkpoint", "x.pth"])
    assert (args.backend, args.num_elements, args.beta_c, args.sam_checkpoint) == ("grid", 16, 0.5, "x.pth")
    err = capsys.readouterr().err
    assert "--partition is deprecated" in err and "use --backend" in err and "--num_elements is deprecated" in err
    assert "--num_elements" not in p.format_help() and "--num-elements" in p.format_help()
    # the new spelling wins over the default, and an unset alias does not clobber it
    args = p.parse_args(["--backend", "slic", "--num-elements", "9"])
    assert (args.backend, args.num_elements) == ("slic", 9)
    with pytest.raises(SystemExit):
        p.parse_args(["--partition", "nonsense"])


def test_from_args_builds_the_partitioner_the_flags_describe():
    p = argparse.ArgumentParser(allow_abbrev=False)
    add_partition_args(p)
    args = p.parse_args(["--backend", "grid", "--num-elements", "64", "--beta", "32", "--iterations", "2"])
    part = Partitioner.from_args(args)
    assert (part.backend, part.num_elements, part.beta, part.iterations) == ("grid", 64, 32.0, 2)
    assert Partitioner.from_args(args, num_elements=16).num_elements == 16
    assert partition_kwargs(args)["beta_c"] == BETA_C
    args = p.parse_args(["--backend", "grid", "--min-element-area", "64"])
    assert Partitioner.from_args(args).min_element_area == 64


def _value(action: argparse.Action) -> list[str]:
    """Command-line words that ``action`` accepts: a choice, or a number (every flag of ours takes "1")."""
    if action.nargs == 0:
        return []
    word = str(next(iter(action.choices))) if action.choices else "1"
    n = action.nargs if isinstance(action.nargs, int) else 1
    return [word] * n


def _required_words(parser: argparse.ArgumentParser, but: argparse.Action) -> list[str]:
    words = []
    for a in parser._actions:
        if a is but or isinstance(a, argparse._SubParsersAction):
            continue
        if not a.option_strings and a.nargs not in ("?", "*", argparse.REMAINDER):
            words += _value(a)
        elif a.required:
            words += [a.option_strings[0], *_value(a)]
    return words


def test_one_spelling_for_every_flag_and_the_old_one_still_parses(capsys):
    """Every flag of every command is spelled with hyphens; ``--a_b`` parses exactly like ``--a-b`` and is hidden."""
    checked = 0
    for name, parser in _all_parsers():
        if any(isinstance(a, argparse._SubParsersAction) for a in parser._actions):
            continue  # a command with sub-commands: each sub-command is checked itself
        shown = [f for a in parser._actions if a.help is not argparse.SUPPRESS for f in a.option_strings]
        assert not [f for f in shown if "_" in f], f"{name}: flags spelled with underscores"
        help_text = parser.format_help()
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            for flag in action.option_strings:
                if not flag.startswith("--") or "-" not in flag[2:]:
                    continue
                old = "--" + flag[2:].replace("-", "_")
                assert old not in help_text, f"{name}: {old} is shown in --help"
                base = _required_words(parser, action)
                new_ns = parser.parse_args([*base, flag, *_value(action)])
                old_ns = parser.parse_args([*base, old, *_value(action)])
                assert vars(old_ns) == vars(new_ns), f"{name}: {old} != {flag}"
                checked += 1
    capsys.readouterr()  # the partition flags' deprecation notes
    assert checked > 100
    # the training flags are the ones whose spelling changed (diffusers' scripts use underscores)
    stage1 = dict(_all_parsers())["train stage1"]
    old = stage1.parse_args(["--train_data", "d", "--output_dir", "o", "--max_train_steps", "7", "--laion_filter"])
    new = stage1.parse_args(["--train-data", "d", "--output-dir", "o", "--max-train-steps", "7", "--laion-filter"])
    assert vars(old) == vars(new) and (new.output_dir, new.max_train_steps, new.laion_filter) == ("o", 7, True)
