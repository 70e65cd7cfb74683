"""The training loop both stages share: resume, epochs, logging, checkpoints, validation, final models.

:func:`run_training` is the whole run; it is built from three concepts, each a small piece:

* :class:`DataPosition` — where every data worker of this process stands in the epoch, so a
  resumed run continues the epoch instead of restarting it;
* :meth:`_Loop.batches` — the epoch's batches, stopping every process together;
* :meth:`_Loop.after_optimizer_step` — what happens every K optimizer steps (log line, checkpoint,
  validation).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from elements.errors import UserError
from elements.train.checkpoints import prune_checkpoints, resume_state, save_checkpoint
from elements.train.common import JsonlLogger, start_trackers

logger = logging.getLogger("elements.train.loop")


@dataclass
class DataPosition:
    """This process's place in the epoch's data, per DataLoader worker (saved in every checkpoint).

    ``positions``: worker -> position of the last batch it gave (``set_start_positions`` resumes there).
    ``base_stats``: worker -> its data counters up to the checkpoint resumed from (a resumed reader
    counts from its start position, so the epoch's figures are these plus what it counts after).
    ``worker_stats``: worker -> its counters for the whole epoch so far, for the workers that gave a batch since the
    start or resume (:meth:`epoch_stats` adds the others' ``base_stats``).
    """

    positions: dict = field(default_factory=dict)
    base_stats: dict = field(default_factory=dict)
    worker_stats: dict = field(default_factory=dict)

    @classmethod
    def resumed(cls, state: dict, num_workers: int) -> DataPosition:
        """From :func:`~elements.train.checkpoints.resume_state`; a fresh epoch start if the worker count changed."""
        rank = state.get("rank", {})
        positions = {int(k): v for k, v in rank.get("positions", {}).items()}
        base_stats = {int(k): v for k, v in rank.get("stats", {}).items()}
        if positions and rank.get("num_workers") != num_workers:
            logger.warning(
                "--dataloader-num-workers changed since the checkpoint; restarting epoch %d from its start",
                int(state.get("epoch", 0)),
            )
            return cls()
        return cls(positions, base_stats)

    def record(self, batch: dict) -> None:
        """Note where ``batch``'s worker stands and its counters."""
        from elements.data.sources import DataStats

        w = batch["worker"]
        self.positions[w] = batch["position"]
        base = self.base_stats.get(w)
        self.worker_stats[w] = DataStats.total([base, batch["stats"]]) if base is not None else batch["stats"]

    def epoch_stats(self) -> dict:
        """worker -> its counters for the epoch so far, those of workers that gave no batch since the resume included."""
        return {**self.base_stats, **self.worker_stats}

    def rank_state(self, num_workers: int) -> dict:
        """What a checkpoint stores for this process."""
        return {"positions": dict(self.positions), "num_workers": num_workers, "stats": self.epoch_stats()}


class _Loop:
    """One run's loop state: the loss window, what made the elements, the pending log fields."""

    def __init__(self, accelerator, args, log, stage, lr_scheduler, named_models, step) -> None:
        self.accelerator, self.args, self.stage = accelerator, args, stage
        self.lr_scheduler, self.named_models = lr_scheduler, named_models
        self.step, self.log = step, log
        self.out = Path(args.output_dir)
        self.max_steps = args.max_train_steps or math.inf
        self.window: list[float] = []  # micro-step losses since the last log line
        self.window_samples = 0  # this process's samples since the last log line (short batches count as they are)
        self.window_start = time.perf_counter()  # when that window began (its first includes worker start-up)
        self.elements_by: list[str] = []  # what made the elements seen so far (logged once each)
        self.pending: dict = {}  # fields for the next log line
        self.validate: Callable[[int], dict | None] = lambda step: None

    def batches(self, dataset, data: DataPosition) -> Iterator[dict]:
        """The epoch's batches, from ``data.positions``; every process stops when any runs out of data
        (their parts may differ by a few samples)."""
        import torch

        from elements.data.dataset import make_dataloader

        acc, args = self.accelerator, self.args
        dataset.set_start_positions(dict(data.positions))
        it = iter(make_dataloader(dataset, args.train_batch_size, args.dataloader_num_workers, args.max_elements))
        while True:
            batch = next(it, None)
            if acc.num_processes > 1:
                empty = acc.reduce(torch.tensor(float(batch is None), device=acc.device), "max")
                if bool(empty.item()):
                    return
            elif batch is None:
                return
            yield batch

    def note_elements_by(self, batch: dict) -> None:
        for made_by in batch.get("elements_by", []):
            if made_by not in self.elements_by:  # say once what made the elements (prepared shards or a backend)
                self.elements_by.append(made_by)
                logger.info("%s: elements %s", self.stage, made_by)
                self.pending["elements_by"] = "; ".join(self.elements_by)

    def run_epoch(self, dataset, epoch: int, step_no: int, data: DataPosition) -> tuple[int, bool]:
        """Micro-steps over one epoch from ``data``; returns (the step reached, whether the data ran out).

        Running out of memory in a step is said in one sentence (UserError) with what to change.
        """
        import torch

        dataset.set_epoch(epoch)
        for batch in self.batches(dataset, data):
            self.note_elements_by(batch)
            data.record(batch)
            try:
                self.window.append(self.step(batch))
            except (torch.OutOfMemoryError, MemoryError):  # in one process; the others wait at their next collective
                dev = self.accelerator.device
                raise UserError(
                    f"{self.stage} ran out of memory on {dev} at step {step_no + 1} with a batch of "
                    f"{len(batch['keys'])} images; lower --train-batch-size or pass --gradient-checkpointing "
                    "(the last checkpoint resumes with --resume latest)."
                ) from None
            self.window_samples += len(batch["keys"])
            if not self.accelerator.sync_gradients:
                continue
            step_no += 1
            self.after_optimizer_step(step_no, epoch, data)
            if step_no >= self.max_steps:
                return step_no, False
        return step_no, True

    def after_optimizer_step(self, step_no: int, epoch: int, data: DataPosition) -> None:
        """Every ``--logging-steps``: a log line; every ``--checkpointing-steps``: a checkpoint; every
        ``--validation-steps`` (main process): validation. All of them at the last step.

        The log line's ``samples`` (all processes) and ``samples_per_s`` cover the training steps of its window, data
        waits included, checkpoints and validation excluded; the first window also holds the workers' start-up.
        """
        import numpy as np
        import torch

        from elements.data.dataset import total_stats

        acc, args, last = self.accelerator, self.args, step_no == self.max_steps
        logged = step_no % args.logging_steps == 0 or last
        if logged:
            loss = acc.reduce(torch.tensor(np.mean(self.window), device=acc.device), "mean").item()
            seconds = time.perf_counter() - self.window_start
            stats = total_stats(data.epoch_stats())  # this process's epoch so far
            counts = acc.reduce(  # summed over processes, in one collective
                torch.tensor(
                    [self.window_samples, stats["yielded"], stats["corrupt"] + stats["corrupt_shards"]],
                    device=acc.device,
                ),
                "sum",
            ).tolist()
            self.window, self.window_samples = [], 0
            record = {"loss": loss, "lr": self.lr_scheduler.get_last_lr()[0], "epoch": epoch}
            fields = {
                "epoch_samples": int(counts[1]),
                "epoch_corrupt": int(counts[2]),
                "samples": int(counts[0]),
                "samples_per_s": round(counts[0] / max(seconds, 1e-9), 2),
            }
            self.log.log(step_no, **record, **fields, **self.pending)
            self.pending = {}
            acc.log(record, step=step_no)
        if step_no % args.checkpointing_steps == 0 or last:
            rank_state = data.rank_state(args.dataloader_num_workers)
            save_checkpoint(acc, self.out, step_no, self.named_models, state={"epoch": epoch}, rank_state=rank_state)
            if acc.is_main_process:
                prune_checkpoints(self.out, args.checkpoints_total_limit)
        if acc.is_main_process and args.validation_steps and (step_no % args.validation_steps == 0 or last):
            fields = self.validate(step_no)
            if fields:
                self.log.log(step_no, **fields)
                acc.log({k: v for k, v in fields.items() if isinstance(v, (int, float))}, step=step_no)
        if logged:  # the next window's clock starts after checkpoint and validation
            self.window_start = time.perf_counter()

    def save_final(self, step_no: int) -> None:
        self.accelerator.wait_for_everyone()
        if self.accelerator.is_main_process:
            for name, module in self.named_models.items():
                module.save_pretrained(self.out / name)
            logger.info("%s done at step %d; models in %s", self.stage, step_no, self.out)
        self.accelerator.end_training()


def run_training(
    accelerator,
    args,
    *,
    stage: str,
    lr_scheduler,
    named_models: dict,
    setup: Callable[[int], tuple[object, Callable[[int], dict | None]]],
    step: Callable[[dict], float],
) -> int:
    """The training loop both stages share: resume, epochs, logging, checkpoints, validation, final models.

    Call it after ``accelerator.prepare`` and ``register_for_checkpointing(lr_scheduler)``. In order, it
    loads ``--resume`` (:func:`~elements.train.checkpoints.resume_state`), opens ``train_log.jsonl`` and
    the tracker, calls ``setup(start_step)``, then runs micro-steps until ``--max-train-steps`` or
    ``--num-train-epochs``, and finally writes each of ``named_models`` to ``OUTPUT_DIR/<name>/``.
    Returns the last step.

    - ``stage``: name for log messages (``"stage 1"``).
    - ``named_models``: ``{folder name: unwrapped module}`` saved in every checkpoint and at the end.
    - ``setup(start_step) -> (dataset, validate)``: builds what needs the resumed state (validation
      samples, the streaming dataset with ``set_epoch`` / ``set_start_positions``, as in
      :class:`elements.data.dataset.ElementsDataset`). It runs after the checkpoint's RNG is restored.
      ``validate(step)`` runs on the main process every ``--validation-steps`` and returns the
      fields to log at ``step`` (numeric ones also go to the tracker), or None.
    - ``step(batch) -> loss``: one micro-step on a batch of :func:`elements.data.dataset.collate`
      (the optimizer and ``lr_scheduler`` step when ``accelerator.sync_gradients``).

    Each log line holds the loss, the learning rate, the epoch, the epoch's sample and corrupt-record counts
    (``epoch_samples``, ``epoch_corrupt``) and the window's ``samples`` and ``samples_per_s``, all summed over processes.

    Batches come from :func:`elements.data.dataset.make_dataloader` with ``--train-batch-size``,
    ``--dataloader-num-workers`` and ``args.max_elements``.
    """
    from elements.data.dataset import default_num_workers

    if args.dataloader_num_workers is None:
        args.dataloader_num_workers = default_num_workers(accelerator.num_processes)
    state = resume_state(accelerator, args)
    step_no, epoch = int(state["step"]), int(state.get("epoch", 0))
    data = DataPosition.resumed(state, args.dataloader_num_workers)
    log = JsonlLogger(
        args.output_dir, is_main_process=accelerator.is_main_process, resume_step=step_no if "path" in state else None
    )
    start_trackers(accelerator, args)
    loop = _Loop(accelerator, args, log, stage, lr_scheduler, named_models, step)
    dataset, loop.validate = setup(step_no)
    done = step_no >= loop.max_steps or epoch >= args.num_train_epochs
    while not done:
        step_no, ran_out = loop.run_epoch(dataset, epoch, step_no, data)
        if ran_out:
            epoch, data = epoch + 1, DataPosition()
        done = not ran_out or epoch >= args.num_train_epochs
    loop.save_final(step_no)
    return step_no


__all__ = ["DataPosition", "run_training"]
