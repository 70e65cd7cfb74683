"""What both training stages share: flags, the Accelerator, JSONL logging, checkpoints, resume.

Layout of ``OUTPUT_DIR`` (diffusers ``train_text_to_image.py`` style)::

    train_log.jsonl                 one JSON object per logged step: {"step", "loss", "lr", ...}
    checkpoint-<step>/              accelerator.save_state (models, optimizer, scheduler, RNG, scaler)
        trainer_state.json          {"step", "epoch", ...} written by the main process
        trainer_state_rank<r>.json  per-process data position, so --resume continues the epoch
        <model name>/               save_pretrained of every trained model (loadable on its own)
    <model name>/                   final save_pretrained after training
    validation/step-<step>*.png     validation images

Checkpoints are written to a hidden temporary folder and renamed when complete, so
``--resume latest`` never picks up a half-written one.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

from elements.errors import UserError

CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
STATE_FILE = "trainer_state.json"

logger = logging.getLogger("elements.train.common")


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
            raise UserError(f"--{name} must be at least 1, got {getattr(args, name)}.")
    for name in ("max_train_steps", "checkpoints_total_limit"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise UserError(f"--{name} must be at least 1, got {getattr(args, name)}.")
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


def list_checkpoints(output_dir) -> list[Path]:
    """``checkpoint-<step>`` folders in ``output_dir``, oldest first."""
    d = Path(output_dir)
    if not d.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in d.iterdir() if p.is_dir() and (m := CHECKPOINT_RE.match(p.name))]
    return [p for _, p in sorted(found)]


def save_checkpoint(
    accelerator, output_dir, step: int, models: dict, *, state: dict | None = None, rank_state: dict | None = None
) -> Path:
    """Write ``OUTPUT_DIR/checkpoint-<step>``: ``accelerator.save_state`` (exact resume) plus each model's
    ``save_pretrained`` into ``<name>/``. ``state`` (main process) and ``rank_state`` (this process)
    are JSON dicts stored beside it (step and data position). All processes must call this.
    """
    final = Path(output_dir) / f"checkpoint-{step}"
    tmp = Path(output_dir) / f".checkpoint-{step}.tmp"
    if accelerator.is_main_process and tmp.exists():
        shutil.rmtree(tmp)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    (tmp / f"trainer_state_rank{accelerator.process_index}.json").write_text(json.dumps(rank_state or {}))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        for name, model in models.items():
            accelerator.unwrap_model(model).save_pretrained(tmp / name)
        (tmp / STATE_FILE).write_text(json.dumps({"step": int(step), **(state or {})}, indent=2))
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    accelerator.wait_for_everyone()
    return final


def prune_checkpoints(output_dir, total_limit: int | None) -> list[Path]:
    """Delete the oldest ``checkpoint-<step>`` folders beyond ``total_limit``; returns the deleted paths."""
    if not total_limit:
        return []
    ckpts = list_checkpoints(output_dir)
    doomed = ckpts[: max(0, len(ckpts) - total_limit)]
    for p in doomed:
        shutil.rmtree(p, ignore_errors=True)
    return doomed


def find_checkpoint(output_dir, resume: str | None) -> Path | None:
    """Resolve ``--resume``: ``None`` -> None; ``latest`` -> newest checkpoint (None if there is none); else that folder."""
    if not resume:
        return None
    if resume == "latest":
        ckpts = list_checkpoints(output_dir)
        return ckpts[-1] if ckpts else None
    path = Path(resume).expanduser()
    if not (path / STATE_FILE).is_file():
        raise UserError(
            f"--resume '{resume}' is not a checkpoint folder (no {STATE_FILE}); pass a checkpoint-<step> folder or 'latest'."
        )
    return path


def resume_state(accelerator, args) -> dict:
    """Load the checkpoint ``--resume`` names into the prepared objects (models, optimizer, scheduler, RNG).

    Returns the saved trainer state with this process's data position under ``"rank"``:
    ``{"step": int, "epoch": int, ..., "rank": {...}}``; ``{"step": 0}`` when not resuming
    (or ``--resume latest`` finds no checkpoint yet, so a job script can always pass it).
    """
    path = find_checkpoint(args.output_dir, args.resume)
    if path is None:
        if args.resume and args.resume != "latest":
            raise UserError(f"--resume '{args.resume}' does not exist.")
        return {"step": 0}
    accelerator.load_state(str(path))
    state = json.loads((path / STATE_FILE).read_text())
    rank_file = path / f"trainer_state_rank{accelerator.process_index}.json"
    state["rank"] = json.loads(rank_file.read_text()) if rank_file.is_file() else {}
    state["path"] = str(path)
    return state


def resume_step(accelerator, args) -> int:
    """The optimizer step to continue from (0 for a fresh run); loads the checkpoint like :func:`resume_state`."""
    return int(resume_state(accelerator, args)["step"])


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


def run_training(
    accelerator,
    args,
    *,
    stage: str,
    lr_scheduler,
    named_models: dict,
    setup: Callable[[int], tuple[object, Callable[[int], dict | None]]],
    step: Callable[[dict], float],
    data_fields: Callable[[dict], dict],
) -> int:
    """The training loop both stages share: resume, epochs, logging, checkpoints, validation, final models.

    Call it after ``accelerator.prepare`` and ``register_for_checkpointing(lr_scheduler)``. In order, it
    loads ``--resume`` (:func:`resume_state`), opens ``train_log.jsonl`` and the tracker, calls
    ``setup(start_step)``, then runs micro-steps until ``--max-train-steps`` or ``--num-train-epochs``,
    and finally writes each of ``named_models`` to ``OUTPUT_DIR/<name>/``. Returns the last step.

    - ``stage``: name for log messages (``"stage 1"``).
    - ``named_models``: ``{folder name: unwrapped module}`` saved in every checkpoint and at the end.
    - ``setup(start_step) -> (dataset, validate)``: builds what needs the resumed state (validation
      samples, the streaming dataset with ``set_epoch`` / ``set_start_positions``, as in
      :class:`elements.data.dataset.ElementsDataset`). It runs after the checkpoint's RNG is restored.
      ``validate(step)`` runs on the main process every ``--validation-steps`` and returns the
      fields to log at ``step`` (numeric ones also go to the tracker), or None.
    - ``step(batch) -> loss``: one micro-step on a batch of :func:`elements.data.dataset.collate`
      (the optimizer and ``lr_scheduler`` step when ``accelerator.sync_gradients``).
    - ``data_fields(stats) -> dict``: extra log fields from this process's data counters
      (:func:`elements.data.dataset.total_stats`); called on every process, so it may reduce.

    Batches come from :func:`elements.data.dataset.make_dataloader` with ``--train-batch-size``,
    ``--dataloader-num-workers`` and ``args.max_elements``.
    """
    import numpy as np
    import torch

    from elements.data.dataset import default_num_workers, make_dataloader, total_stats
    from elements.data.sources import DataStats

    if args.dataloader_num_workers is None:
        args.dataloader_num_workers = default_num_workers(accelerator.num_processes)
    state = resume_state(accelerator, args)
    global_step, epoch = int(state["step"]), int(state.get("epoch", 0))
    positions = {int(k): v for k, v in state.get("rank", {}).get("positions", {}).items()}
    # each worker's counters up to the checkpoint: a resumed reader counts from its start position,
    # so the epoch's figures (epoch_samples, ...) are these plus what it counts after the resume
    base_stats = {int(k): v for k, v in state.get("rank", {}).get("stats", {}).items()}
    if positions and state["rank"].get("num_workers") != args.dataloader_num_workers:
        logger.warning(
            "--dataloader-num-workers changed since the checkpoint; restarting epoch %d from its start", epoch
        )
        positions, base_stats = {}, {}

    out = Path(args.output_dir)
    log = JsonlLogger(
        out, is_main_process=accelerator.is_main_process, resume_step=global_step if "path" in state else None
    )
    start_trackers(accelerator, args)
    dataset, validate = setup(global_step)

    max_steps = args.max_train_steps or math.inf
    window: list[float] = []
    worker_stats: dict[int, dict] = {}
    elements_by: list[str] = []  # what made the elements seen so far (logged once, and into train_log.jsonl)
    pending: dict = {}
    done = global_step >= max_steps or epoch >= args.num_train_epochs
    while not done:
        dataset.set_epoch(epoch)
        dataset.set_start_positions(positions)
        epoch_positions = dict(positions)
        batches = iter(make_dataloader(dataset, args.train_batch_size, args.dataloader_num_workers, args.max_elements))
        epoch_done = False
        while True:
            batch = next(batches, None)
            # stop every process together when any runs out of data (parts may differ by a few samples)
            if accelerator.num_processes > 1:
                empty = accelerator.reduce(torch.tensor(float(batch is None), device=accelerator.device), "max")
                epoch_done = bool(empty.item())
            else:
                epoch_done = batch is None
            if epoch_done:
                break
            for made_by in batch.get("elements_by", []):
                if made_by not in elements_by:  # say once what made the elements (prepared shards or which backend)
                    elements_by.append(made_by)
                    logger.info("%s: elements %s", stage, made_by)
                    pending["elements_by"] = "; ".join(elements_by)
            epoch_positions[batch["worker"]] = batch["position"]
            w = batch["worker"]
            worker_stats[w] = (
                DataStats.total([base_stats.get(w, {}), batch["stats"]]) if w in base_stats else batch["stats"]
            )
            window.append(step(batch))
            if not accelerator.sync_gradients:
                continue
            global_step += 1
            if global_step % args.logging_steps == 0 or global_step == max_steps:
                loss = accelerator.reduce(torch.tensor(np.mean(window), device=accelerator.device), "mean").item()
                window = []
                record = {"loss": loss, "lr": lr_scheduler.get_last_lr()[0], "epoch": epoch}
                fields = data_fields(total_stats(worker_stats))  # on every process: it may reduce
                log.log(global_step, **record, **fields, **pending)
                pending = {}
                accelerator.log(record, step=global_step)
            if global_step % args.checkpointing_steps == 0 or global_step == max_steps:
                save_checkpoint(
                    accelerator,
                    out,
                    global_step,
                    named_models,
                    state={"epoch": epoch},
                    rank_state={
                        "positions": epoch_positions,
                        "num_workers": args.dataloader_num_workers,
                        "stats": {**base_stats, **worker_stats},
                    },
                )
                if accelerator.is_main_process:
                    prune_checkpoints(out, args.checkpoints_total_limit)
            if (
                accelerator.is_main_process
                and args.validation_steps
                and (global_step % args.validation_steps == 0 or global_step == max_steps)
            ):
                fields = validate(global_step)
                if fields:
                    log.log(global_step, **fields)
                    accelerator.log({k: v for k, v in fields.items() if isinstance(v, (int, float))}, step=global_step)
            if global_step >= max_steps:
                done = True
                break
        if epoch_done:
            epoch, positions, base_stats, worker_stats = epoch + 1, {}, {}, {}
            done = done or epoch >= args.num_train_epochs
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        for name, module in named_models.items():
            module.save_pretrained(out / name)
        logger.info("%s done at step %d; models in %s", stage, global_step, out)
    accelerator.end_training()
    return global_step
