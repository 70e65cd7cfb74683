"""``python -m elements train {stage1,stage2} ...`` (also ``accelerate launch -m elements train ...``)."""

from __future__ import annotations

import argparse
import importlib
import sys

from elements.cli import command_parser

STAGES = {
    "stage1": ("elements.train.stage1", "content encoder + light transformer decoder (Sec. 3.2, App. C.2)"),
    "stage2": ("elements.train.stage2", "element-conditioned SD-1.5 UNet (Sec. 3.3, App. C.2)"),
}


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog, allow_abbrev=False, description="Train one stage of the model.", add_help=False
    )
    p.add_argument("stage", nargs="?", choices=list(STAGES), help="; ".join(f"{k}: {v[1]}" for k, v in STAGES.items()))
    p.add_argument("rest", nargs=argparse.REMAINDER, help="the stage's own options (see 'train STAGE --help')")
    p.add_argument("-h", "--help", action="store_true", help="show this help")
    p.prog_name = prog
    return p


def run(args) -> int:
    if args.stage is None:
        build_parser("python -m elements train").print_help()
        return 0 if args.help else 2
    module = importlib.import_module(STAGES[args.stage][0])
    parser = command_parser(STAGES[args.stage][0], f"python -m elements train {args.stage}")
    rest = list(args.rest) + (["--help"] if args.help else [])
    return int(module.run(parser.parse_args(rest)) or 0)


if __name__ == "__main__":
    sys.exit(run(build_parser("train").parse_args()))
