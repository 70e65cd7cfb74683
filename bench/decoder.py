"""Diffusion-decoder benchmark (issue 4). Prints the cost of element cross-attention and of the pipeline.

    python bench/decoder.py [--repeats 3] [--skip-sd15] [--steps 10]

Reports (random weights, nothing downloaded, CPU unless --device cuda):
* forward time of the element-conditioned UNet / the vanilla UNet with the same weights, batch 2,
  77 text tokens and N = 256 element tokens (Sec. 3.1), two ways: both branches on both samples
  (training's cost per sample) and a CFG pair as the pipeline runs it (the ∅ half skips both
  cross-attentions, Alg. 1; the vanilla UNet still attends to the empty prompt there):
  - a mid-size SD-shaped config (channels 128/256/512, width 768 text/element context, 256² images);
  - the SD-1.5 UNet config (320/640/1280/1280, 768, 512² images), once;
* the end-to-end ElementsPipeline time per step against the sum of its parts
  (steps × element-UNet forward at batch 2 + VAE decode), mid-size UNet + tiny VAE/CLIP.

Targets: UNet overhead <= 1.15x; pipeline overhead beyond its parts <= 5 %.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

NUM_ELEMENTS = 256  # Sec. 3.1
TEXT_TOKENS = 77  # CLIP context of SD-1.5
TOKEN_DIM = 32 + 4 * (1 + 2 * 8)  # content 32 + box embedding with 8 frequencies (paper preset)
MID_CHANNELS = (128, 256, 512)  # SD-1.5's layout at 0.4x width, 3 levels: runs in seconds on a CPU


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def mid_unet():
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=32, block_out_channels=MID_CHANNELS, layers_per_block=1, cross_attention_dim=768,
        attention_head_dim=8, down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"))


def sd15_unet():
    from diffusers import UNet2DConditionModel

    # stable-diffusion-v1-5/unet/config.json, built with random weights
    return UNet2DConditionModel(
        sample_size=64, in_channels=4, out_channels=4, block_out_channels=(320, 640, 1280, 1280), layers_per_block=2,
        cross_attention_dim=768, attention_head_dim=8, norm_num_groups=32,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3)


def unet_ratio(unet, latent: int, repeats: int, device: str, dtype) -> tuple[float, float, float]:
    """Seconds for one batch-2 forward, best of ``repeats``, same weights:
    (vanilla, element with both branches on both samples, element on a CFG pair with the ∅ half skipped)."""
    import torch

    from elements.models.element_unet import ElementUNet

    vanilla = unet.to(device, dtype).eval()
    element = ElementUNet.from_base(copy.deepcopy(vanilla), token_dim=TOKEN_DIM).to(device, dtype).eval()
    g = torch.Generator().manual_seed(0)
    z = torch.randn(2, 4, latent, latent, generator=g).to(device, dtype)
    t = torch.tensor([500, 500], device=device)
    text = torch.randn(2, TEXT_TOKENS, vanilla.config.cross_attention_dim, generator=g).to(device, dtype)
    tokens = torch.randn(2, NUM_ELEMENTS, TOKEN_DIM, generator=g).to(device, dtype)
    cfg = {"text_mask": torch.tensor([False, True]), "element_mask": torch.tensor([False, True])}

    def sync():
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    def run_vanilla():
        vanilla(z, t, encoder_hidden_states=text)
        sync()

    def run_element():
        element(z, t, text, tokens)
        sync()

    def run_cfg():
        element(z, t, text, tokens, **cfg)
        sync()

    with torch.no_grad():
        run_vanilla(), run_element(), run_cfg()  # warm-up
        times = [[], [], []]
        for _ in range(repeats):  # interleaved, so load changes on a shared machine hit all alike
            for i, fn in enumerate((run_vanilla, run_element, run_cfg)):
                times[i].append(best_of(fn, 1))
    return tuple(min(t) for t in times)


def pipeline_overhead(steps: int, repeats: int, device: str) -> None:
    import numpy as np
    import torch
    from skimage import data
    from transformers import CLIPTextConfig, CLIPTextModel

    from elements.models.element_attention import ElementAdapter
    from elements.models.presets import build_content_encoder
    from elements.partition import Partitioner
    from elements.pipeline import ElementsPipeline
    from elements.tiny_base import build_tiny_components

    parts = build_tiny_components(seed=0)
    parts["unet"] = mid_unet()
    tcfg = parts["text_encoder"].config.to_dict()  # the tiny CLIP, widened to the mid UNet's 768 context
    tcfg.update(hidden_size=768, intermediate_size=64, num_attention_heads=8)
    parts["text_encoder"] = CLIPTextModel(CLIPTextConfig(**tcfg))
    encoder = build_content_encoder("tiny")
    adapter = ElementAdapter.from_unet(parts["unet"], token_dim=encoder.token_dim)
    pipe = ElementsPipeline(content_encoder=encoder, element_adapter=adapter, **parts).to(device)
    pipe.set_progress_bar_config(disable=True)
    el = Partitioner("slic")(data.astronaut())
    size = 256
    kw = dict(prompt="a photo", num_inference_steps=steps, height=size, width=size, output_type="np")

    stamps: list[float] = []

    def on_step(p, i, t, tensors):
        stamps.append(time.perf_counter())
        return tensors

    with torch.no_grad():
        pipe(el, **{**kw, "num_inference_steps": 1})  # warm-up
        t_pipe = best_of(lambda: pipe(el, generator=torch.Generator().manual_seed(0), callback_on_step_end=on_step, **kw),
                         repeats)
        # the parts, measured on the same inputs the pipeline builds
        text = pipe.encode_prompt(["a photo"], device)
        tokens, active = pipe.encode_elements([el], device)
        ctx = pipe.element_adapter.project(tokens, active)
        z = torch.randn(2, 4, size // 8, size // 8, device=device)
        ukw = {"element_tokens": torch.cat([ctx, ctx]), "element_mask": torch.tensor([False, True], device=device),
               "text_mask": torch.tensor([False, True], device=device)}
        t_unet = best_of(lambda: pipe.unet(z, 500, encoder_hidden_states=torch.cat([text, text]),
                                           cross_attention_kwargs=ukw), repeats * steps)
        t_vae = best_of(lambda: pipe.vae.decode(z[:1] / 0.18215), repeats)
        t_text = best_of(lambda: pipe.encode_prompt(["a photo"], device), repeats)
        t_elem = best_of(lambda: pipe.encode_elements([el], device), repeats)
    step_times = np.diff(stamps)
    t_step = float(np.min(step_times[np.arange(len(step_times)) % steps != steps - 1]))  # skip gaps between runs
    parts_sum = steps * t_unet + t_vae
    print(f"pipeline, {steps} DDIM steps, {size}² (mid UNet, tiny VAE/CLIP, {el.num_elements} elements):")
    print(f"  one sampler step (UNet + guidance + scheduler): {t_step * 1000:.1f} ms vs UNet(batch 2) {t_unet * 1000:.1f} ms"
          f" -> {100 * (t_step / t_unet - 1):+.1f} %")
    print(f"  end to end: {t_pipe:.3f} s ({t_pipe / steps * 1000:.1f} ms/step); steps x UNet + VAE decode "
          f"({t_vae * 1000:.1f} ms): {parts_sum:.3f} s; text + element encoding: {(t_text + t_elem) * 1000:.1f} ms")
    print(f"  overhead beyond the parts: {100 * (t_pipe / parts_sum - 1):+.1f} %  (target <= 5 %); "
          f"excluding the encoders: {100 * ((t_pipe - t_text - t_elem) / parts_sum - 1):+.1f} %")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5, help="runs per measurement; the best is reported")
    ap.add_argument("--steps", type=int, default=10, help="sampler steps for the pipeline measurement")
    ap.add_argument("--skip-sd15", action="store_true", help="skip the SD-1.5-sized UNet (slow on CPU)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    args = ap.parse_args()

    import torch

    dtype = torch.float16 if args.device.startswith("cuda") else torch.float32
    print(f"device {args.device}, dtype {dtype}, torch threads {torch.get_num_threads()}, best of {args.repeats}")
    torch.manual_seed(0)

    def report(name, t):
        tv, te, tc = t
        unit, k = ("s", 1) if tv > 5 else ("ms", 1000)
        print(f"{name}, batch 2: vanilla {tv * k:.1f} {unit}; element, all samples {te * k:.1f} {unit} "
              f"-> {te / tv:.3f}x; element, CFG pair {tc * k:.1f} {unit} -> {tc / tv:.3f}x  (target <= 1.15x)")

    report(f"mid-size UNet ({'/'.join(map(str, MID_CHANNELS))}, ctx 768, 256² image)",
           unet_ratio(mid_unet(), 32, args.repeats, args.device, dtype))
    if not args.skip_sd15:
        report("SD-1.5 UNet config (512² image)",
               unet_ratio(sd15_unet(), 64, 1 if args.device == "cpu" else args.repeats, args.device, dtype))
    pipeline_overhead(args.steps, args.repeats, args.device)


if __name__ == "__main__":
    main()
