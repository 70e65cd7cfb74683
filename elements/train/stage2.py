"""Stage 2: fine-tune SD-1.5 with element cross-attention (Sec. 3.3, App. C.2).

    python -m elements train stage2 --train-data DATA --stage1 runs/stage1 --output-dir runs/stage2
    accelerate launch -m elements train stage2 --train-data DATA --stage1 runs/stage1 --output-dir runs/stage2

Objective (Eq. 5): ``|| ε − 𝒰(z_t, t, C, S; θ_U, θ_S) ||²`` with the SD noise schedule. The VAE,
the text encoder and the content encoder are frozen; the UNet θ_U and the new element layers
θ_S are trained (Sec. 3.3). Recipe (App. C.2): AdamW, lr 6.4e-5, weight decay 0.01, betas
(0.9, 0.999), total batch 64 (8 GPUs × 8), ~180k iterations. Classifier-free-guidance dropout
(App. C.2): only C = ∅ for 30 % of samples, only S = ∅ for 10 %, both for 10 %; ∅ switches the
branch off (Alg. 1). Element dropout by random partition (Sec. 3.3): see ``elements.train.masks``.

Table-1 ablations: ``--joint`` (no stage 1: the content encoder starts random and trains
here), ``--unfreeze-content-encoder`` (stage-1 encoder, trained here), ``--no-random-partition``.
The output folder and every ``checkpoint-<step>`` are stage-2 checkpoints (``unet/``,
``element_adapter/``, ``content_encoder/``) for :meth:`ElementsPipeline.from_elements_checkpoint`.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
from transformers import CLIPTextModel, CLIPTokenizer

from elements import defaults
from elements.cli import accept_old_spellings
from elements.data import add_data_args, filters_from_args, partition_from_args, resolve_source
from elements.data.prepare import prepare_for_training
from elements.decoders import sampler_defaults
from elements.decoders.pipeline import model_folder
from elements.errors import UserError
from elements.models.content_encoder import CONTENT_ENCODER_DIR, ContentEncoder
from elements.models.element_unet import ADAPTER_DIR, UNET_DIR, ElementUNet
from elements.models.presets import build_content_encoder
from elements.train import validation
from elements.train.common import (
    add_common_args,
    check_common_args,
    make_accelerator,
    make_lr_scheduler,
    make_optimizer,
    trainable_parameters,
)
from elements.train.loop import run_training
from elements.train.masks import ElementDropoutDataset

LEARNING_RATE = 6.4e-5  # App. C.2
WEIGHT_DECAY = 0.01  # App. C.2
BETAS = (0.9, 0.999)  # App. C.2
PER_DEVICE_BATCH = 8  # total 64 on 8 GPUs, App. C.2
DROP_TEXT, DROP_ELEMENTS, DROP_BOTH = 0.3, 0.1, 0.1  # CFG dropout, App. C.2
# How often a sample gets element dropout is not stated in the paper; half keeps plain
# reconstruction (the unedited case) and hole filling (the edited case) equally represented.
ELEMENT_DROPOUT = 0.5

logger = logging.getLogger("elements.train.stage2")


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        allow_abbrev=False,
        description="Stage 2: fine-tune Stable Diffusion 1.5 with cross-attention on "
        "image elements (Sec. 3.3, App. C.2).",
    )
    add_common_args(
        p,
        learning_rate=LEARNING_RATE,
        adam_beta1=BETAS[0],
        adam_beta2=BETAS[1],
        weight_decay=WEIGHT_DECAY,
        train_batch_size=PER_DEVICE_BATCH,
    )
    add_data_args(p)
    g = p.add_argument_group("stage 2")
    g.add_argument(
        "--sd-base",
        default=None,
        help=f"SD-1.5 base model folder or Hub id (default ${defaults.SD_BASE.env} or {defaults.SD_BASE.value})",
    )
    g.add_argument(
        "--stage1",
        default=None,
        help=f"stage-1 checkpoint folder with content_encoder/ (default ${defaults.STAGE1_CHECKPOINT.env}); "
        "not used with --joint",
    )
    g.add_argument(
        "--joint",
        action="store_true",
        help="Table-1 ablation: no stage 1; a random content encoder (--content-preset) trains jointly here",
    )
    g.add_argument(
        "--content-preset", default="paper", choices=["paper", "tiny"], help="content-encoder size for --joint"
    )
    g.add_argument(
        "--unfreeze-content-encoder",
        action="store_true",
        help="Table-1 ablation: train the stage-1 content encoder here instead of freezing it",
    )
    g.add_argument(
        "--no-random-partition",
        action="store_true",
        help="Table-1 ablation: element dropout on the image's own partition (no random partition)",
    )
    g.add_argument(
        "--element-dropout-prob",
        type=float,
        default=ELEMENT_DROPOUT,
        help=f"fraction of samples given element dropout (default {ELEMENT_DROPOUT}; not stated in the paper)",
    )
    g.add_argument(
        "--dropout-masks",
        default="auto",
        choices=["auto", "sam", "random"],
        help="object masks for element dropout: SAM automatic masks (needs --sam-checkpoint or the default "
        "SAM), random blobs/polygons, or auto = SAM when available",
    )
    g.add_argument("--drop-text", type=float, default=DROP_TEXT, help="fraction with only C = ∅ (App. C.2: 0.3)")
    g.add_argument(
        "--drop-elements", type=float, default=DROP_ELEMENTS, help="fraction with only S = ∅ (App. C.2: 0.1)"
    )
    g.add_argument("--drop-both", type=float, default=DROP_BOTH, help="fraction with C = S = ∅ (App. C.2: 0.1)")
    g.add_argument(
        "--adapter-init",
        default="random",
        choices=["random", "zero_out"],
        help="new layers: random (Sec. 3.3) or zero output projections (start exactly at the base model)",
    )
    g.add_argument("--gradient-checkpointing", action="store_true", help="recompute UNet activations (less memory)")
    g.add_argument(
        "--max-elements", type=int, default=None, help="pad every batch to this many elements (static shapes)"
    )
    g.add_argument(
        "--num-validation-images",
        type=int,
        default=4,
        help="held-out images decoded at each validation (training images if none is held out)",
    )
    g.add_argument("--validation-prompt", default="", help="prompt for validation images ('' = no text, C = ∅)")
    paper = sampler_defaults("diffusion")  # the diffusion decoder's own: 50 DDIM steps, w = 3 (App. C.2)
    g.add_argument(
        "--validation-inference-steps",
        type=int,
        default=paper.steps,
        help=f"DDIM steps for validation images (default {paper.steps}, the diffusion decoder's; App. C.2)",
    )
    g.add_argument(
        "--validation-guidance",
        type=float,
        default=paper.guidance,
        help=f"guidance w for validation images (default {paper.guidance:g}, the diffusion decoder's; App. C.2)",
    )
    return accept_old_spellings(p)  # --output_dir etc., the spelling before hyphens everywhere


# --- conditioning dropout --------------------------------------------------------------------
def cfg_dropout(
    batch_size: int,
    *,
    text: float = DROP_TEXT,
    elements: float = DROP_ELEMENTS,
    both: float = DROP_BOTH,
    generator=None,
    device=None,
):
    """Per-sample switches ``(text_on, elements_on)``, each ``(B,) bool`` (App. C.2).

    One uniform draw per sample: ``[0, text)`` → only C = ∅; ``[text, text+elements)`` → only
    S = ∅; ``[text+elements, text+elements+both)`` → both ∅; otherwise both kept.
    """
    if min(text, elements, both) < 0 or text + elements + both > 1:
        raise UserError("--drop-text, --drop-elements and --drop-both must be non-negative and sum to at most 1.")
    u = torch.rand(batch_size, generator=generator).to(device)
    elements_off = (u >= text) & (u < text + elements + both)
    text_off = (u < text) | ((u >= text + elements) & (u < text + elements + both))
    return ~text_off, ~elements_off


# --- models --------------------------------------------------------------------------------------
class Stage2Model(torch.nn.Module):
    """Content encoder + element UNet as one module (one DDP wrapper sees every forward)."""

    def __init__(self, element_unet, content_encoder) -> None:
        super().__init__()
        self.element_unet, self.content_encoder = element_unet, content_encoder

    def forward(self, noisy, timesteps, text, elements, *, text_mask, element_mask):
        """``(B, 4, h, w)`` latents, ``(B,)`` timesteps, ``(B, 77, C)`` text states, :class:`ElementBatch` -> ε̂."""
        train_encoder = bool(trainable_parameters(self.content_encoder))
        with torch.set_grad_enabled(train_encoder and torch.is_grad_enabled()):
            tokens = self.content_encoder.tokens(elements)
        return self.element_unet(
            noisy, timesteps, text, tokens, elements.active, text_mask=text_mask, element_mask=element_mask
        )


@dataclass
class Frozen:
    """The parts stage 2 never trains (Sec. 3.3): VAE, text encoder + tokenizer, and the noise schedule."""

    vae: object
    text_encoder: object
    tokenizer: object
    noise_scheduler: object


def build_models(
    *,
    sd_base: str | None,
    stage1: str | None,
    joint: bool = False,
    content_preset: str = "paper",
    unfreeze_content_encoder: bool = False,
    adapter_init: str = "random",
):
    """Load the base model and the content encoder, attach fresh element layers, set what trains.

    Returns ``(Stage2Model, Frozen)``. Frozen modules have ``requires_grad_(False)`` and are in eval mode.
    """
    base = str(model_folder(defaults.SD_BASE, sd_base))
    try:
        unet = UNet2DConditionModel.from_pretrained(base, subfolder=UNET_DIR)
        vae = AutoencoderKL.from_pretrained(base, subfolder="vae")
        text_encoder = CLIPTextModel.from_pretrained(base, subfolder="text_encoder")
        tokenizer = CLIPTokenizer.from_pretrained(base, subfolder="tokenizer")
        noise_scheduler = DDPMScheduler.from_pretrained(base, subfolder="scheduler")
    except (OSError, ValueError) as err:
        raise UserError(
            f"'{base}' is not a complete Stable Diffusion folder ({' '.join(str(err).split())[:160]})."
        ) from err
    if joint:
        encoder = build_content_encoder(content_preset)
    else:
        root = model_folder(defaults.STAGE1_CHECKPOINT, stage1)
        if not (root / CONTENT_ENCODER_DIR).is_dir():
            raise UserError(f"The stage-1 checkpoint '{root}' has no {CONTENT_ENCODER_DIR}/ folder.")
        encoder = ContentEncoder.from_pretrained(str(root), subfolder=CONTENT_ENCODER_DIR)
    train_encoder = joint or unfreeze_content_encoder
    for m in (vae, text_encoder):
        m.requires_grad_(False).eval()
    encoder.requires_grad_(train_encoder).train(train_encoder)
    element_unet = ElementUNet.from_base(unet, token_dim=encoder.token_dim, init=adapter_init).train()
    return Stage2Model(element_unet, encoder), Frozen(vae, text_encoder, tokenizer, noise_scheduler)


# --- the inner step ------------------------------------------------------------------------------
def compute_loss(model, frozen: Frozen, batch: dict, *, drop=(DROP_TEXT, DROP_ELEMENTS, DROP_BOTH), generator=None):
    """Eq. 5 on one batch (made by :func:`elements.data.dataset.collate`), with CFG dropout.

    ``pixel_values (B, 3, S, S)`` in [-1, 1] → VAE latents; captions → CLIP states (an empty
    caption counts as C = ∅); noise and timesteps ~ U{0..T-1} from ``generator`` (CPU) or the
    global RNG. Returns the scalar MSE (float32) against ε (or v for v-prediction bases).
    """
    sched = frozen.noise_scheduler
    device = next(frozen.vae.parameters()).device
    weight_dtype = frozen.vae.dtype
    pixels = batch["pixel_values"].to(device, weight_dtype)
    with torch.no_grad():
        latents = frozen.vae.encode(pixels).latent_dist.sample(generator=generator) * frozen.vae.config.scaling_factor
        ids = frozen.tokenizer(
            list(batch["captions"]),
            padding="max_length",
            truncation=True,
            max_length=frozen.tokenizer.model_max_length,
            return_tensors="pt",
        ).input_ids
        text = frozen.text_encoder(ids.to(device))[0]
    b = latents.shape[0]
    text_on, elements_on = cfg_dropout(
        b, text=drop[0], elements=drop[1], both=drop[2], generator=generator, device=device
    )
    text_on &= torch.tensor([bool(c) for c in batch["captions"]], device=device)
    noise = torch.randn(latents.shape, generator=generator).to(device, latents.dtype)
    t = torch.randint(0, sched.config.num_train_timesteps, (b,), generator=generator).to(device)
    noisy = sched.add_noise(latents, noise, t)
    target = noise if sched.config.prediction_type == "epsilon" else sched.get_velocity(latents, noise, t)
    elements = batch["elements"].to(device)
    pred = model(noisy.float(), t, text.float(), elements, text_mask=text_on, element_mask=elements_on)
    return F.mse_loss(pred.float(), target.float())


def train_step(
    accelerator,
    model,
    frozen: Frozen,
    optimizer,
    batch: dict,
    *,
    max_grad_norm: float = 1.0,
    lr_scheduler=None,
    drop=(DROP_TEXT, DROP_ELEMENTS, DROP_BOTH),
) -> float:
    """One micro-step: forward, backward, and (at the end of an accumulation window) clip, step, zero."""
    with accelerator.accumulate(model):
        loss = compute_loss(model, frozen, batch, drop=drop)
        accelerator.backward(loss)
        if accelerator.sync_gradients and max_grad_norm > 0:
            accelerator.clip_grad_norm_(trainable_parameters(model), max_grad_norm)
        optimizer.step()
        if accelerator.sync_gradients and lr_scheduler is not None:
            lr_scheduler.step()
        optimizer.zero_grad(set_to_none=True)
    return float(loss.detach())


# --- data with element dropout --------------------------------------------------------------------
def make_dataset(args, source, *, rank: int, world_size: int):
    """The streaming dataset with element dropout applied to each sample's partition (in the workers)."""
    return ElementDropoutDataset(
        source,
        partition=partition_from_args(args),
        split="train",
        filters=filters_from_args(args),
        image_size=args.image_size,
        cache_dir=args.partition_cache,
        rank=rank,
        world_size=world_size,
        shuffle=not args.no_shuffle,
        seed=args.seed,
        dropout_prob=args.element_dropout_prob,
        random_partition=not args.no_random_partition,
        mask_source=args.dropout_masks,
        sam_checkpoint=args.sam_checkpoint,
    )


# --- main -----------------------------------------------------------------------------------------
def check_args(args) -> None:
    check_common_args(args)
    if not 0 <= args.element_dropout_prob <= 1:
        raise UserError(f"--element-dropout-prob must lie in [0, 1], got {args.element_dropout_prob}.")
    if args.joint and args.stage1:
        raise UserError("--joint trains the content encoder from scratch; do not also pass --stage1.")
    if args.num_validation_images < 0 or args.validation_inference_steps < 1:
        raise UserError("--num-validation-images must not be negative and --validation-inference-steps must be >= 1.")
    if args.max_elements is not None and args.max_elements < 1:
        raise UserError("--max-elements must be at least 1.")
    cfg_dropout(1, text=args.drop_text, elements=args.drop_elements, both=args.drop_both)


def run(args) -> int:
    check_args(args)

    source = resolve_source(args.train_data)
    accelerator = make_accelerator(args)
    logging.basicConfig(
        level=logging.INFO if accelerator.is_main_process else logging.WARNING,
        format="%(asctime)s %(name)s: %(message)s",
    )
    source = prepare_for_training(args)  # a SAM partition runs once per image, here, never in a data worker
    model, frozen = build_models(
        sd_base=args.sd_base,
        stage1=args.stage1,
        joint=args.joint,
        content_preset=args.content_preset,
        unfreeze_content_encoder=args.unfreeze_content_encoder,
        adapter_init=args.adapter_init,
    )
    if args.gradient_checkpointing:
        model.element_unet.unet.enable_gradient_checkpointing()
    weight_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(accelerator.mixed_precision, torch.float32)
    for module in (frozen.vae, frozen.text_encoder):
        module.to(accelerator.device)
        if weight_dtype != torch.float32:  # frozen parts run in the autocast precision, as diffusers' scripts do
            module.to(dtype=weight_dtype)
    optimizer = make_optimizer(trainable_parameters(model), args)
    lr_scheduler = make_lr_scheduler(optimizer, args, args.max_train_steps)
    model, optimizer = accelerator.prepare(model, optimizer)
    accelerator.register_for_checkpointing(lr_scheduler)
    drop = (args.drop_text, args.drop_elements, args.drop_both)

    def setup(start_step: int):
        val, val_split = (
            validation.validation_set(args, source, args.num_validation_images)
            if accelerator.is_main_process
            else ([], "none")
        )
        dataset = make_dataset(args, source, rank=accelerator.process_index, world_size=accelerator.num_processes)
        n_train = sum(p.numel() for p in trainable_parameters(model))
        logger.info(
            "stage 2: %.1fM trainable parameters, %d process(es), total batch %d, validation on %d %s images, "
            "from step %d",
            n_train / 1e6,
            accelerator.num_processes,
            args.train_batch_size * accelerator.num_processes * args.gradient_accumulation_steps,
            len(val),
            val_split,
            start_step,
        )

        def validate(step: int) -> None:
            validation.decoding(accelerator, model, frozen, val, args, step)

        return dataset, validate

    def step(batch: dict) -> float:
        return train_step(
            accelerator,
            model,
            frozen,
            optimizer,
            batch,
            max_grad_norm=args.max_grad_norm,
            lr_scheduler=lr_scheduler,
            drop=drop,
        )

    run_training(
        accelerator,
        args,
        stage="stage 2",
        lr_scheduler=lr_scheduler,
        named_models=_named(accelerator, model),
        setup=setup,
        step=step,
    )
    return 0


def _named(accelerator, model) -> dict:
    net = accelerator.unwrap_model(model)
    return {
        UNET_DIR: net.element_unet.unet,
        ADAPTER_DIR: net.element_unet.adapter,
        CONTENT_ENCODER_DIR: net.content_encoder,
    }
