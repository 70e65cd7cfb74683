"""Stage 1: train the content encoder with the light transformer decoder (Sec. 3.2, App. C.2).

    python -m elements train stage1 --train-data DATA --output-dir runs/stage1 [--preset paper]
    accelerate launch -m elements train stage1 --train-data DATA --output-dir runs/stage1

Objective (Sec. 3.2): ``E*, D* = argmin || x - D_light({(E(a_n), p_n)}) ||²``, all elements
present (no element dropout in this stage, App. C.2). Recipe (App. C.2): AdamW, lr 1e-4,
weight decay 0.01, betas (0.9, 0.95), MSE, 30 epochs, total batch 128 (8 GPUs × 16).
The output folder (and each ``checkpoint-<step>``) holds ``content_encoder/`` and
``light_decoder/``, loadable with :class:`elements.decoders.light.LightDecoder` (the ``light`` decoder).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch
import torch.nn.functional as F

from elements.cli import accept_old_spellings
from elements.data import add_data_args, filters_from_args, partition_from_args, resolve_source
from elements.data.dataset import ElementsDataset
from elements.data.prepare import prepare_for_training
from elements.decoders.light import load_stage1
from elements.errors import UserError
from elements.models.content_encoder import CONTENT_ENCODER_DIR
from elements.models.light_decoder import LIGHT_DECODER_DIR
from elements.models.presets import build_content_encoder, build_light_decoder
from elements.train import validation
from elements.train.common import (
    add_common_args,
    check_common_args,
    make_accelerator,
    make_lr_scheduler,
    make_optimizer,
)
from elements.train.loop import run_training
from elements.train.memory_plan import plan_stage1

LEARNING_RATE = 1e-4  # App. C.2
WEIGHT_DECAY = 0.01  # App. C.2
BETAS = (0.9, 0.95)  # App. C.2
EPOCHS = 30  # App. C.2
PER_DEVICE_BATCH = 16  # total 128 on 8 GPUs, App. C.2

logger = logging.getLogger("elements.train.stage1")


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        allow_abbrev=False,
        description="Stage 1: train the content encoder and the light transformer "
        "decoder to reconstruct images from their elements with an MSE loss (Sec. 3.2, App. C.2).",
    )
    add_common_args(
        p,
        learning_rate=LEARNING_RATE,
        adam_beta1=BETAS[0],
        adam_beta2=BETAS[1],
        weight_decay=WEIGHT_DECAY,
        train_batch_size=PER_DEVICE_BATCH,
    )
    p.set_defaults(num_train_epochs=EPOCHS)
    add_data_args(p)
    g = p.add_argument_group("stage 1")
    g.add_argument(
        "--preset",
        default="paper",
        choices=["paper", "tiny"],
        help="model sizes: paper (App. C.1) or tiny (tests and CPU smoke runs)",
    )
    g.add_argument(
        "--init-from",
        default=None,
        help="start from the weights of a stage-1 folder (content_encoder/ + light_decoder/) instead of random",
    )
    g.add_argument(
        "--max-elements",
        type=int,
        default=None,
        help="pad every batch to at least this many elements (near-static shapes); default: the batch's largest N",
    )
    g.add_argument(
        "--gradient-checkpointing",
        action="store_true",
        help="recompute activations in the backward pass (much less memory; a step takes ~1.33x as long on a CPU); "
        "without it, it is turned on only when a step would not fit in the free memory (elements/train/memory_plan.py)",
    )
    g.add_argument(
        "--num-validation-images",
        type=int,
        default=4,
        help="held-out images reconstructed at each validation (training images if the data has no held-out ones)",
    )
    return accept_old_spellings(p)  # --output_dir etc., the spelling before hyphens everywhere


# --- the model container and the inner step -------------------------------------------------
class Stage1Autoencoder(torch.nn.Module):
    """Encoder + light decoder as one module, so DDP and the optimizer see one set of parameters."""

    def __init__(self, encoder, decoder) -> None:
        super().__init__()
        self.encoder, self.decoder = encoder, decoder

    def forward(self, elements):
        """``ElementBatch`` -> ``(B, 3, S, S)`` reconstruction in [-1, 1]."""
        content, tokens = self.encoder.encode_batch(elements)
        return self.decoder(tokens, content, elements.active)


def build_autoencoder(preset: str = "paper", init_from: str | None = None):
    """A fresh (or ``init_from``-initialised) encoder/decoder pair wrapped in one module."""
    if init_from:
        encoder, decoder = load_stage1(init_from)
        encoder, decoder = encoder.train(), decoder.train()
    else:
        encoder, decoder = build_content_encoder(preset), build_light_decoder(preset)
    return Stage1Autoencoder(encoder, decoder)


def compute_loss(model, batch: dict):
    """MSE between the reconstruction and ``batch["pixel_values"]`` (both in [-1, 1]), Sec. 3.2."""
    target = batch["pixel_values"]
    pred = model(batch["elements"].to(target.device))
    return F.mse_loss(pred.float(), target.float())


def train_step(accelerator, model, optimizer, batch: dict, *, max_grad_norm: float = 1.0, lr_scheduler=None) -> float:
    """One micro-step: forward, backward, and (when the accumulation window closes) clip, step, zero.

    ``batch`` as made by :func:`elements.data.dataset.collate` (on any device). Returns the
    micro-step loss. The optimizer and ``lr_scheduler`` step only when
    ``accelerator.sync_gradients`` is True.
    """
    batch = {**batch, "pixel_values": batch["pixel_values"].to(accelerator.device)}
    with accelerator.accumulate(model):
        loss = compute_loss(model, batch)
        accelerator.backward(loss)
        if accelerator.sync_gradients and max_grad_norm > 0:
            accelerator.clip_grad_norm_(model.parameters(), max_grad_norm)
        optimizer.step()
        if accelerator.sync_gradients and lr_scheduler is not None:
            lr_scheduler.step()
        optimizer.zero_grad(set_to_none=True)
    return float(loss.detach())


# --- main ---------------------------------------------------------------------------------------
def run(args) -> int:
    check_common_args(args)
    if args.num_validation_images < 0 or (args.max_elements is not None and args.max_elements < 1):
        raise UserError("--num-validation-images must not be negative and --max-elements must be at least 1.")

    source = resolve_source(args.train_data)  # fail on a bad path before any model is built
    out = Path(args.output_dir)
    existed = out.exists()
    accelerator = make_accelerator(args)
    logging.basicConfig(
        level=logging.INFO if accelerator.is_main_process else logging.WARNING,
        format="%(asctime)s %(name)s: %(message)s",
    )
    try:
        model = build_autoencoder(args.preset, args.init_from)
        if model.decoder.config.image_size != args.image_size:
            raise UserError(
                f"--image-size {args.image_size} does not match the light decoder's output "
                f"{model.decoder.config.image_size}."
            )
        model.to(accelerator.device).train()
        checkpointing = plan_stage1(
            model.encoder,
            model.decoder,
            accelerator.device,
            accelerator.autocast,
            batch=args.train_batch_size,
            elements=max(args.num_elements, args.max_elements or 0),
            forced=args.gradient_checkpointing,
            log=logger.info,
        )
    except UserError:
        if not existed and accelerator.is_main_process and out.is_dir() and not any(out.iterdir()):
            out.rmdir()  # a refused run leaves nothing behind
        raise
    if checkpointing:
        model.encoder.enable_gradient_checkpointing()
        model.decoder.enable_gradient_checkpointing()
    source = prepare_for_training(args)  # a SAM partition runs once per image, here, never in a data worker
    optimizer = make_optimizer(model.parameters(), args)
    lr_scheduler = make_lr_scheduler(optimizer, args, args.max_train_steps)
    model, optimizer = accelerator.prepare(model, optimizer)
    accelerator.register_for_checkpointing(lr_scheduler)

    def setup(start_step: int):
        val, val_split = (
            validation.validation_set(args, source, args.num_validation_images)
            if accelerator.is_main_process
            else ([], "none")
        )
        dataset = ElementsDataset(
            source,
            partition=partition_from_args(args),
            split="train",
            filters=filters_from_args(args),
            image_size=args.image_size,
            cache_dir=args.partition_cache,
            rank=accelerator.process_index,
            world_size=accelerator.num_processes,
            shuffle=not args.no_shuffle,
            seed=args.seed,
        )
        total_batch = args.train_batch_size * accelerator.num_processes * args.gradient_accumulation_steps
        logger.info(
            "stage 1: preset %s%s, %d process(es), total batch %d, data %s (%d %s), validation on %d %s images, "
            "from step %d",
            args.preset,
            " with activation checkpointing" if checkpointing else "",
            accelerator.num_processes,
            total_batch,
            args.train_data,
            len(source),
            "shards" if source.kind == "webdataset" else "files",
            len(val),
            val_split,
            start_step,
        )

        def validate(step: int) -> dict:
            return {"val_mse": validation.reconstruction(accelerator, model, val, out, step), "val_split": val_split}

        return dataset, validate

    def step(batch: dict) -> float:
        return train_step(
            accelerator, model, optimizer, batch, max_grad_norm=args.max_grad_norm, lr_scheduler=lr_scheduler
        )

    run_training(
        accelerator,
        args,
        stage="stage 1",
        lr_scheduler=lr_scheduler,
        named_models=_named(accelerator, model),
        setup=setup,
        step=step,
    )
    return 0


def _named(accelerator, model) -> dict:
    net = accelerator.unwrap_model(model)
    return {CONTENT_ENCODER_DIR: net.encoder, LIGHT_DECODER_DIR: net.decoder}
