"""Training checkpoints: writing, pruning, finding and loading ``OUTPUT_DIR/checkpoint-<step>``.

Each checkpoint holds::

    checkpoint-<step>/
        (accelerator.save_state)    models, optimizer, scheduler, RNG, scaler: an exact resume
        trainer_state.json          {"step", "epoch", ...} written by the main process
        trainer_state_rank<r>.json  per-process data position, so --resume continues the epoch
        <model name>/               save_pretrained of every trained model (loadable on its own)

It is written to a hidden temporary folder and renamed when complete, so ``--resume latest``
never picks up a half-written one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from elements.errors import UserError

CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
STATE_FILE = "trainer_state.json"


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
