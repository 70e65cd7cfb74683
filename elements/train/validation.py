"""Validation during training: a few held-out images, decoded every ``--validation-steps`` and saved.

Both stages write ``OUTPUT_DIR/validation/step-<step>.png``, one row per image: the input canvas,
then what the stage's model made of its elements (stage 1: the light decoder's reconstruction;
stage 2: the element-conditioned SD decoder's sample, with the ``diffusion`` decoder's sampler).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from elements.data import filters_from_args, partition_from_args
from elements.data.dataset import SampleElements
from elements.data.sources import iter_samples
from elements.image_io import save_png
from elements.models.tokens import collate
from elements.pixels import SIGNED, from_uint8, to_uint8
from elements.train.common import trainable_parameters


def validation_set(args, source, k: int):
    """Up to ``k`` samples ``(key, canvas (S, S, 3) uint8, ImageElements)``: held-out first, training otherwise.

    ``source``: the training data (:func:`~elements.data.prepare.prepare_for_training`). Prepared shards give
    their stored elements; raw images (slic, grid) are partitioned here, in the main process.
    Returns ``(samples, split)`` with ``split`` = ``"heldout"``, ``"train"`` or ``"none"``.
    """
    if k <= 0:
        return [], "none"
    elements_of = SampleElements(partition_from_args(args), args.image_size, args.partition_cache)
    for split in ("heldout", "train"):
        out = []
        for s in iter_samples(source, split=split, filters=filters_from_args(args)):
            canvas, el = elements_of(s)
            if el.num_elements:
                out.append((s.key, canvas, el))
            if len(out) == k:
                break
        if out:
            return out, split
    return [], "none"


def save_rows(output_dir, step: int, samples, made: np.ndarray) -> Path:
    """``validation/step-<step>.png``: per sample a row of its canvas | ``made`` (``(B, S, S, 3) uint8``)."""
    rows = [np.concatenate([canvas, m], axis=1) for (_, canvas, _), m in zip(samples, made)]
    folder = Path(output_dir) / "validation"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"step-{step:07d}.png"
    save_png(path, np.concatenate(rows, axis=0))
    return path


def reconstruction(accelerator, model, samples, output_dir, step: int) -> float:
    """Stage 1: save the light decoder's reconstructions (:func:`save_rows`); returns the mean MSE in [-1, 1] units."""
    if not samples:
        return float("nan")
    net = accelerator.unwrap_model(model)
    was_training = net.training
    net.eval()
    with torch.no_grad():
        batch = collate([el for _, _, el in samples]).to(accelerator.device)
        pred = net(batch).float().clamp(-1, 1)
    net.train(was_training)
    target = torch.stack([from_uint8(c).permute(2, 0, 1) for _, c, _ in samples]).to(pred.device)
    mse = float(torch.mean((pred - target) ** 2))
    save_rows(output_dir, step, samples, to_uint8(pred, SIGNED).permute(0, 2, 3, 1).cpu().numpy())
    return mse


def decoding(accelerator, model, frozen, samples, args, step: int) -> None:
    """Stage 2: decode each sample from all its elements with ``--validation-prompt``,
    ``--validation-inference-steps`` DDIM steps and guidance ``--validation-guidance`` (:func:`save_rows`). ``frozen``: VAE, text encoder,
    tokenizer and noise schedule (:class:`elements.train.stage2.Frozen`)."""
    from diffusers import DDIMScheduler

    from elements.decoders.pipeline import ElementsPipeline

    if not samples:
        return
    net = accelerator.unwrap_model(model)
    was_training = net.training
    net.eval()
    pipe = ElementsPipeline(
        vae=frozen.vae,
        text_encoder=frozen.text_encoder,
        tokenizer=frozen.tokenizer,
        unet=net.element_unet.unet,
        scheduler=DDIMScheduler.from_config(frozen.noise_scheduler.config),
        content_encoder=net.content_encoder,
        element_adapter=net.element_unet.adapter,
    )
    pipe.set_progress_bar_config(disable=True)
    images = pipe(
        [el for _, _, el in samples],
        prompt=args.validation_prompt,
        output_type="np",
        num_inference_steps=args.validation_inference_steps,
        guidance_scale=args.validation_guidance,
        generator=torch.Generator().manual_seed(args.seed),
    ).images
    net.train(was_training)
    net.content_encoder.train(was_training and bool(trainable_parameters(net.content_encoder)))
    save_rows(args.output_dir, step, samples, to_uint8(images))


__all__ = ["decoding", "reconstruction", "save_rows", "validation_set"]
