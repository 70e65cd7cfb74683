"""Command-line plumbing shared by every CLI: one partition flag set, strict parsing, old spellings as aliases."""

from __future__ import annotations

import argparse
import importlib

import pytest

from elements.cli import COMMANDS as ELEMENTS_COMMANDS
from elements.partition import Partitioner
from elements.partition.algorithm import BETA, BETA_C, ITERATIONS, NUM_ELEMENTS
from elements.partition.options import BACKEND_CHOICES, add_partition_args, partition_kwargs
from elements.train.cli import STAGES
from eval.cli import COMMANDS as EVAL_COMMANDS


def _all_parsers():
    """(name, parser) for every command parser and every subparser of every command."""
    modules = {
        **{n: m for n, (m, _) in ELEMENTS_COMMANDS.items()},
        **{f"eval {n}": m for n, (m, _) in EVAL_COMMANDS.items()},
        **{f"train {n}": m for n, (m, _) in STAGES.items()},
    }
    found = []
    for name, module in modules.items():
        parser = importlib.import_module(module).build_parser(name)
        stack = [(name, parser)]
        while stack:
            n, p = stack.pop()
            found.append((n, p))
            for action in p._actions:
                if isinstance(action, argparse._SubParsersAction):
                    stack += [(f"{n} {k}", sub) for k, sub in action.choices.items()]
    return found


def test_no_parser_accepts_abbreviations():
    """argparse's prefix matching silently turned ``--data`` into ``--dataloader_num_workers``."""
    lax = [name for name, p in _all_parsers() if p.allow_abbrev]
    assert not lax, f"parsers with allow_abbrev=True: {lax}"


def test_training_rejects_a_prefix_of_another_flag():
    stage1 = importlib.import_module("elements.train.stage1").build_parser("stage1")
    with pytest.raises(SystemExit):
        stage1.parse_args(["--train_data", "x", "--output_dir", "y", "--dataloader_num", "0"])


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
