"""What both training stages share: flags, the Accelerator, the optimizer and schedule, JSONL logging.

Layout of ``OUTPUT_DIR`` (diffusers ``train_text_to_image.py`` style)::

    train_log.jsonl                 one JSON object per logged step: {"step", "loss", "lr", ...}
    checkpoint-<step>/              an exact resume point (:mod:`elements.train.checkpoints`)
    <model name>/                   final save_pretrained after training
    validation/step-<step>*.png     validation images (:mod:`elements.train.validation`)

The loop itself is :func:`elements.train.loop.run_training`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path

from elements.errors import UserError


def add_common_args(
    parser: argparse.ArgumentParser,
    *,
    learning_rate: float,
    adam_beta2: float,
    weight_decay: float = 1e-2,
    adam_beta1: float = 0.9,
    train_batch_size: int = 16,
) -> None:
    """Add the flags every stage has; the optimizer defaults are the stage's recipe (App. C.2)."""
    g = parser.add_argument_group("training")
    g.add_argument(
        "--output-dir", required=True, help="folder for checkpoints, logs, validation images and the final models"
    )
    g.add_argument("--seed", type=int, default=0, help="random seed (model init, shuffling, dropout)")
    g.add_argument(
        "--train-batch-size",
        type=int,
        default=train_batch_size,
        help="images per device per micro-step (the paper's total is the sum over devices x accumulation)",
    )
    g.add_argument("--gradient-accumulation-steps", type=int, default=1, help="micro-steps per optimizer step")
    g.add_argument(
        "--num-train-epochs",
        type=int,
        default=1,
        help="passes over the training data (ignored if --max-train-steps ends sooner)",
    )
    g.add_argument(
        "--max-train-steps", type=int, default=None, help="stop after this many optimizer steps (overrides epochs)"
    )
    g.add_argument(
        "--learning-rate",
        type=float,
        default=learning_rate,
        help=f"AdamW learning rate (default {learning_rate:g}, App. C.2)",
    )
    g.add_argument(
        "--weight-decay",
        type=float,
        default=weight_decay,
        help=f"AdamW weight decay (default {weight_decay:g}, App. C.2)",
    )
    g.add_argument(
        "--adam-beta1", type=float, default=adam_beta1, help=f"AdamW beta1 (default {adam_beta1:g}, App. C.2)"
    )
    g.add_argument(
        "--adam-beta2", type=float, default=adam_beta2, help=f"AdamW beta2 (default {adam_beta2:g}, App. C.2)"
    )
    g.add_argument("--adam-epsilon", type=float, default=1e-8, help="AdamW epsilon")
    g.add_argument(
        "--max-grad-norm", type=float, default=1.0, help="clip gradients to this global norm (0 = no clipping)"
    )
    g.add_argument(
        "--lr-scheduler",
        default="constant",
        choices=["constant", "constant_with_warmup", "linear", "cosine", "cosine_with_restarts", "polynomial"],
        help="learning-rate schedule (diffusers get_scheduler); the paper states none, so constant",
    )
    g.add_argument("--lr-warmup-steps", type=int, default=0, help="warm-up optimizer steps for the schedule")
    g.add_argument(
        "--mixed-precision",
        default=None,
        choices=["no", "fp16", "bf16"],
        help="autocast precision (default: whatever `accelerate config` says, else fp32)",
    )
    g.add_argument(
        "--allow-tf32", action="store_true", help="allow TF32 matmuls on Ampere+ GPUs (faster, slightly less exact)"
    )
    g.add_argument(
        "--checkpointing-steps", type=int, default=1000, help="save a resumable checkpoint every K optimizer steps"
    )
    g.add_argument(
        "--checkpoints-total-limit", type=int, default=None, help="keep at most this many checkpoints (oldest deleted)"
    )
    g.add_argument(
        "--resume",
        default=None,
        help="continue from a checkpoint folder, or 'latest' for the newest checkpoint-<step> in --output-dir",
    )
    g.add_argument(
        "--validation-steps", type=int, default=500, help="save validation images every K optimizer steps (0 = never)"
    )
    g.add_argument("--logging-steps", type=int, default=10, help="write a train_log.jsonl line every K optimizer steps")
    g.add_argument(
        "--report-to",
        default="none",
        choices=["none", "tensorboard", "wandb", "comet_ml", "all"],
        help="accelerate tracker for metrics besides train_log.jsonl",
    )
    g.add_argument("--tracker-project-name", default="editable-image-elements", help="project name for the tracker")
    g.add_argument(
        "--dataloader-num-workers",
        type=int,
        default=None,
        help="DataLoader worker processes per device (0 = main process; default: this machine's usable CPUs "
        "divided among its processes, at most 8)",
    )


def check_common_args(args) -> None:
    """Raise UserError for flag values that cannot work."""
    for name in (
        "train_batch_size",
        "gradient_accumulation_steps",
        "num_train_epochs",
        "checkpointing_steps",
        "logging_steps",
    ):
        if getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}.")
    for name in ("max_train_steps", "checkpoints_total_limit"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}.")
    if (args.dataloader_num_workers or 0) < 0 or args.validation_steps < 0 or args.lr_warmup_steps < 0:
        raise UserError("--dataloader-num-workers, --validation-steps and --lr-warmup-steps must not be negative.")
    if not (args.learning_rate > 0 and math.isfinite(args.learning_rate)):
        raise UserError(f"--learning-rate must be a positive number, got {args.learning_rate}.")
    if Path(args.output_dir).exists() and not Path(args.output_dir).is_dir():
        raise UserError(f"--output-dir '{args.output_dir}' exists and is not a folder.")


def make_accelerator(args):
    """An ``accelerate.Accelerator`` configured from the common flags, seeded; trackers not yet started."""
    import torch
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration, set_seed

    out = Path(args.output_dir)
    accelerator = Accelerator(
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        mixed_precision=args.mixed_precision,
        log_with=None if args.report_to == "none" else args.report_to,
        project_config=ProjectConfiguration(project_dir=str(out), logging_dir=str(out / "logs")),
    )
    if args.allow_tf32:
        torch.backends.cuda.matmul.allow_tf32 = True
    set_seed(args.seed)
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
    accelerator.wait_for_everyone()
    return accelerator


def trainable_parameters(module) -> list:
    """The parameters of ``module`` with ``requires_grad``: what the optimizer, gradient clipping and the
    logged count see (stage 2: θ_U ∪ θ_S, plus the content encoder when it is unfrozen, Sec. 3.3)."""
    return [p for p in module.parameters() if p.requires_grad]


def make_optimizer(params, args):
    """AdamW with the stage's recipe (App. C.2)."""
    import torch

    return torch.optim.AdamW(
        params,
        lr=args.learning_rate,
        betas=(args.adam_beta1, args.adam_beta2),
        weight_decay=args.weight_decay,
        eps=args.adam_epsilon,
    )


class JsonlLogger:
    """Appends ``{"step": ..., "loss": ..., "lr": ..., ...}`` lines to ``OUTPUT_DIR/train_log.jsonl`` (main process only).

    On resume from step ``s``, lines with ``step > s`` (written after that checkpoint by the run
    being resumed) are dropped first, so the file reads as one uninterrupted run.
    """

    def __init__(self, output_dir, *, is_main_process: bool = True, resume_step: int | None = None) -> None:
        self.path = Path(output_dir) / "train_log.jsonl"
        self.enabled = is_main_process
        if self.enabled and resume_step is not None and self.path.is_file():
            kept = [line for line in self.path.read_text().splitlines() if _step_of(line) <= resume_step]
            tmp = self.path.with_suffix(".jsonl.tmp")
            tmp.write_text("".join(line + "\n" for line in kept))
            os.replace(tmp, self.path)
        elif self.enabled and resume_step is None and self.path.is_file():
            self.path.unlink()  # a fresh run starts a fresh log

    def log(self, step: int, **values) -> None:
        if not self.enabled:
            return
        record = {"step": int(step), **{k: _jsonable(v) for k, v in values.items()}}
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()

    def read(self) -> list[dict]:
        return (
            [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]
            if self.path.is_file()
            else []
        )


def _step_of(line: str) -> float:
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return math.inf  # unreadable tail of a crashed write: drop it


def _jsonable(v):
    if hasattr(v, "item"):
        v = v.item()
    return round(v, 8) if isinstance(v, float) else v


def make_lr_scheduler(optimizer, args, num_training_steps: int | None):
    """diffusers ``get_scheduler`` from the flags; step counts are in optimizer steps.

    Do not pass it to ``accelerator.prepare`` (which would step it once per process); call
    ``accelerator.register_for_checkpointing(scheduler)`` and step it after each optimizer step.
    """
    from diffusers.optimization import get_scheduler

    needs_total = args.lr_scheduler not in ("constant", "constant_with_warmup")
    if needs_total and not num_training_steps:
        raise UserError(
            f"--lr-scheduler {args.lr_scheduler} needs --max-train-steps (streamed data has no known length)."
        )
    return get_scheduler(
        args.lr_scheduler,
        optimizer=optimizer,
        num_warmup_steps=args.lr_warmup_steps,
        num_training_steps=num_training_steps,
    )


def start_trackers(accelerator, args) -> None:
    """Start the ``--report-to`` tracker with the run's flags as its config (scalars only)."""
    if args.report_to == "none":
        return
    config = {k: v for k, v in vars(args).items() if isinstance(v, (int, float, str, bool))}
    accelerator.init_trackers(args.tracker_project_name, config=config)
