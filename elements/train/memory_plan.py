"""Will a training step fit in memory? The estimate, the free memory, and activation checkpointing.

A stage-1 step at the paper's size (App. C.1/C.2: 16 images × 256 elements per device) keeps
~26 GB of content-encoder activations for the backward pass, and ~5 GB of the light decoder's,
in float32: more than a 24 GB CPU machine has, where the kernel's OOM killer used to end the
run before its first step, with no message. So before training, stage 1 measures what it will
hold and compares it with what the device has free:

* **What autograd keeps** is measured, not modelled: a forward pass on a few random patches and on
  one random image (:func:`saved_bytes`, through ``torch.autograd.graph.saved_tensors_hooks``, under
  the run's autocast) gives the bytes per encoded patch and per decoded image. They scale
  linearly with the number of patches and images.
* **With activation checkpointing** (diffusers' ``enable_gradient_checkpointing`` on both models)
  autograd keeps only the inputs of the recomputed pieces, and the backward pass holds one
  piece's activations at a time: one chunk of :data:`~elements.models.content_encoder.CHECKPOINT_CHUNK`
  patches, and one decoder block for the whole batch (bounded by twice the blocks' mean).
* **Besides activations**: gradients and AdamW's two moments (3 × the trainable parameters'
  bytes; the weights themselves are already allocated), the batch, :data:`MARGIN` for the
  allocator and temporaries, and a fixed :data:`OVERHEAD`. ``bench/train_memory.py`` checks them against measured steps.
* **Free memory**: on a GPU, ``torch.cuda.mem_get_info``; on the CPU, the available memory
  (``psutil``), capped by a cgroup limit (containers, Spaces) and shared by the processes of
  this machine (``LOCAL_WORLD_SIZE``).

:func:`plan_stage1` turns checkpointing on when the step fits only with it (and says so in the log),
and refuses in one sentence, before any data is read, when it fits in neither way.

``python -m elements.train.memory_plan [--preset paper] [--batch 16] [--elements 256]`` prints the figures.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from elements.errors import UserError

GB = 1e9
#: over the estimate: the allocator's slack and the temporaries of the largest operation. Measured peak RSS
#: over the estimate on the CPU (docs/training.md, "Memory"): see the table there.
MARGIN = 1.25
#: bytes a first step adds whatever the model's size (library workspaces; on the CPU, likely freed blocks glibc does
#: not reuse). Measured with the tiny preset, whose activations are small: up to ~1 GB over them.
OVERHEAD = 1_000_000_000
#: patches of the encoder probe (its bytes per patch are exact: the encoder sees each patch alone)
PROBE_PATCHES = 16


def saved_bytes(fn, exclude=()) -> tuple[int, object]:
    """Run ``fn()``; return the bytes of the distinct storages autograd saved for the backward pass, and its result.

    Storages of the tensors in ``exclude`` (the parameters: allocated already) are not counted.
    """
    skip = {t.untyped_storage().data_ptr() for t in exclude}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        s = t.untyped_storage()
        if s.data_ptr() not in skip:
            seen[s.data_ptr()] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return sum(seen.values()), out


def _cgroup_free() -> int | None:
    """Bytes left under this process's cgroup (v2 or v1) memory limit, or None when there is none."""
    for limit, usage in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),
    ):
        try:
            text = Path(limit).read_text().strip()
            if text == "max" or int(text) >= 1 << 60:
                return None
            return int(text) - int(Path(usage).read_text().strip())
        except (OSError, ValueError):
            continue
    return None


def free_bytes(device) -> int:
    """Memory this process may still use on ``device``: a GPU's free memory, or this process's share of the CPU's."""
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    import psutil

    free = psutil.virtual_memory().available
    cgroup = _cgroup_free()
    if cgroup is not None:
        free = min(free, cgroup)
    return int(free // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))


@dataclass(frozen=True)
class Stage1Memory:
    """What a stage-1 step holds, measured on this device and dtype.

    ``per_patch``: activation bytes per encoded patch; ``per_image``: the light decoder's per image;
    ``segments``: checkpointed decoder pieces; ``carry``: bytes of one piece's input per image;
    ``state``: gradients + AdamW moments; ``patch_bytes``: one patch of the batch.
    """

    per_patch: int
    per_image: int
    segments: int
    carry: int
    state: int
    patch_bytes: int

    def held(self, batch: int, elements: int, checkpointing: bool) -> int:
        """Bytes of activations, gradients and AdamW moments a step of ``batch`` images × ``elements`` elements holds."""
        patches = batch * elements
        if checkpointing:
            from elements.models.content_encoder import CHECKPOINT_CHUNK

            acts = min(patches, CHECKPOINT_CHUNK) * self.per_patch
            acts += batch * (self.segments * self.carry + 2 * self.per_image / self.segments)
        else:
            acts = patches * self.per_patch + batch * self.per_image
        return int(acts + self.state)

    def need(self, batch: int, elements: int, checkpointing: bool) -> int:
        """What the step adds to what is allocated now: :meth:`held` with :data:`MARGIN`, :data:`OVERHEAD` and the batch."""
        return int(MARGIN * self.held(batch, elements, checkpointing) + OVERHEAD + batch * elements * self.patch_bytes)


def probe_stage1(encoder, decoder, device, autocast, elements: int) -> Stage1Memory:
    """Measure :class:`Stage1Memory` for a content encoder and light decoder on ``device`` (in training mode).

    ``autocast``: a context-manager factory (the run's ``accelerator.autocast``). Runs the encoder on
    :data:`PROBE_PATCHES` random patches and the decoder on the random tokens of one image of ``elements`` elements.
    """
    from elements.types import PATCH_SIZE

    enc, dec = encoder, decoder
    params = [*enc.parameters(), *dec.parameters()]
    gen = torch.Generator().manual_seed(0)
    patches = torch.rand(PROBE_PATCHES, 3, PATCH_SIZE, PATCH_SIZE, generator=gen).to(device)
    with autocast():
        enc_bytes, _ = saved_bytes(lambda: enc(patches), params)
        active = torch.ones(1, elements, dtype=torch.bool, device=device)
        tokens = torch.randn(1, elements, enc.token_dim, generator=gen).to(device).requires_grad_()
        content = torch.randn(1, elements, enc.content_dim, generator=gen).to(device).requires_grad_()
        dec_bytes, out = saved_bytes(lambda: dec(tokens, content, active), params)
    trainable = sum(p.numel() * p.element_size() for p in params if p.requires_grad)
    segments = len(dec.cross) + sum(len(s) for s in dec.self_attn)
    grid = dec.config.grid_size
    carry = grid * grid * dec.config.hidden_dim * out.element_size()
    return Stage1Memory(
        per_patch=enc_bytes // PROBE_PATCHES,
        per_image=dec_bytes,
        segments=segments,
        carry=carry,
        state=3 * trainable,
        patch_bytes=patches[0].nelement() * patches.element_size(),
    )


def plan_stage1(encoder, decoder, device, autocast, *, batch: int, elements: int, forced: bool, log=print) -> bool:
    """Whether stage 1 runs with activation checkpointing; UserError when a step fits in no way.

    ``forced``: ``--gradient-checkpointing`` was given. Otherwise checkpointing is turned on only when
    the step would not fit without it (one log line says so, with the figures).
    """
    mem = probe_stage1(encoder, decoder, device, autocast, elements)
    free = free_bytes(device)
    plain, ckpt = mem.need(batch, elements, False), mem.need(batch, elements, True)
    where = "the CPU" if torch.device(device).type == "cpu" else str(device)
    if not forced and plain <= free:
        return False
    if ckpt > free:
        raise UserError(
            f"A stage-1 step of {batch} images × {elements} elements needs about {ckpt / GB:.1f} GB on {where} "
            f"even with activation checkpointing, and {free / GB:.1f} GB are free; lower --train-batch-size "
            "(the paper's total batch comes back with --gradient-accumulation-steps) or use --preset tiny."
        )
    if not forced:
        log(
            f"activation checkpointing on: a step needs about {plain / GB:.1f} GB on {where} without it and "
            f"{ckpt / GB:.1f} GB with it; {free / GB:.1f} GB are free"
        )
    return True


def main(argv=None) -> int:
    """Print the figures of :class:`Stage1Memory` for a preset on this machine's CPU or GPU."""
    from contextlib import nullcontext

    from elements.models.presets import build_content_encoder, build_light_decoder

    p = argparse.ArgumentParser(prog="python -m elements.train.memory_plan", description=main.__doc__)
    p.add_argument("--preset", default="paper", choices=["paper", "tiny"])
    p.add_argument("--batch", type=int, default=16, help="images per device (default 16, App. C.2)")
    p.add_argument("--elements", type=int, default=256, help="elements per image (default 256, Sec. 3.1)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", default="fp32", choices=["fp32", "bf16", "fp16"], help="autocast dtype")
    a = p.parse_args(argv)
    encoder = build_content_encoder(a.preset).to(a.device).train()
    decoder = build_light_decoder(a.preset).to(a.device).train()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(a.dtype)

    def autocast():
        return torch.autocast(torch.device(a.device).type, dtype=dtype) if dtype else nullcontext()

    mem = probe_stage1(encoder, decoder, a.device, autocast, a.elements)
    print(
        f"preset {a.preset}, {a.dtype}, {a.device}: {mem.per_patch / 1e6:.2f} MB per patch (encoder), "
        f"{mem.per_image / 1e6:.1f} MB per image (decoder), {mem.state / GB:.2f} GB gradients + AdamW"
    )
    for ck in (False, True):
        print(
            f"  batch {a.batch} × {a.elements} elements, checkpointing {'on' if ck else 'off'}: "
            f"{mem.need(a.batch, a.elements, ck) / GB:.1f} GB"
        )
    print(f"  free now: {free_bytes(a.device) / GB:.1f} GB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
