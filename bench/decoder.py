"""Diffusion-decoder benchmark (issue 4). Prints the cost of element cross-attention and of the pipeline.

    python bench/decoder.py [--repeats 3] [--skip-sd15] [--steps 10]

Reports (random weights, nothing downloaded, CPU unless --device cuda):
* forward time of the element-conditioned UNet / the vanilla UNet with the same weights, batch 2,
  77 text tokens and N = 256 element tokens (Sec. 3.1), two ways: both branches on both samples
  (training's cost per sample) and a CFG pair as the pipeline runs it (the ∅ half skips both
  cross-attentions, Alg. 1; the vanilla UNet still attends to the empty prompt there):
  - a mid-size SD-shaped config (channels 128/256/512, width 768 text/element context, 256² images);
  - the SD-1.5 UNet config (320/640/1280/1280, 768, 512² images), once;
* the end-to-end ElementsPipeline time against the sum of its parts (steps × element-UNet
  forward on the CFG pair + VAE decode), mid-size UNet + tiny VAE/CLIP, each repeat timing the
  pipeline and its parts back to back; the median is reported.

FLOPs are counted on the meta device (exact and unaffected by other processes); times are the
best of --repeats on this machine, which may be shared, so read them with the FLOPs.

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
        sample_size=32,
        block_out_channels=MID_CHANNELS,
        layers_per_block=1,
        cross_attention_dim=768,
        attention_head_dim=8,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    )


def sd15_unet():
    from diffusers import UNet2DConditionModel

    # stable-diffusion-v1-5/unet/config.json, built with random weights
    return UNet2DConditionModel(
        sample_size=64,
        in_channels=4,
        out_channels=4,
        block_out_channels=(320, 640, 1280, 1280),
        layers_per_block=2,
        cross_attention_dim=768,
        attention_head_dim=8,
        norm_num_groups=32,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
    )


def _inputs(unet, latent: int, device, dtype):
    import torch

    g = torch.Generator().manual_seed(0)
    z = torch.randn(2, 4, latent, latent, generator=g).to(device, dtype)
    t = torch.tensor([500, 500], device=device)
    text = torch.randn(2, TEXT_TOKENS, unet.config.cross_attention_dim, generator=g).to(device, dtype)
    tokens = torch.randn(2, NUM_ELEMENTS, TOKEN_DIM, generator=g).to(device, dtype)
    return z, t, text, tokens


def _calls(vanilla, element, z, t, text, tokens, sync=lambda: None):
    """The three forwards compared: vanilla; element with both branches on both samples; a CFG pair (∅ half skipped)."""
    import torch

    cfg = {"text_mask": torch.tensor([False, True]), "element_mask": torch.tensor([False, True])}

    def run_vanilla():
        vanilla(z, t, encoder_hidden_states=text)
        sync()

    def run_element():
        element(z, t, text, tokens)
        sync()

    def run_cfg():
        element(z, t, text, tokens, **cfg)
        sync()

    return run_vanilla, run_element, run_cfg


def flop_ratio(build, latent: int) -> list[float]:
    """FLOPs of the three forwards (batch 2), counted on the meta device: exact, instant, load-independent."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from elements.models.element_unet import ElementUNet

    with torch.device("meta"):
        vanilla = build().eval()
        element = ElementUNet.from_base(copy.deepcopy(vanilla), token_dim=TOKEN_DIM).eval()
        inputs = _inputs(vanilla, latent, "meta", torch.float32)
    flops = []
    with torch.no_grad():
        for fn in _calls(vanilla, element, *inputs):
            with FlopCounterMode(display=False) as counter:
                fn()
            flops.append(counter.get_total_flops())
    return flops


def time_ratio(build, latent: int, repeats: int, device: str, dtype) -> list[float]:
    """Seconds of the three forwards (batch 2, random weights), best of ``repeats``, interleaved."""
    import torch

    from elements.models.element_unet import ElementUNet

    torch.manual_seed(0)
    vanilla = build().to(device).eval()
    if dtype != torch.float32:
        vanilla.to(dtype=dtype)
    element = ElementUNet.from_base(copy.deepcopy(vanilla), token_dim=TOKEN_DIM).to(device=device, dtype=dtype).eval()
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    fns = _calls(vanilla, element, *_inputs(vanilla, latent, device, dtype), sync=sync)
    with torch.no_grad():
        for fn in fns:  # warm-up
            fn()
        times = [[], [], []]
        for _ in range(repeats):  # interleaved, so load changes on a shared machine hit all alike
            for i, fn in enumerate(fns):
                times[i].append(best_of(fn, 1))
    return [min(t) for t in times]


def pipeline_overhead(steps: int, repeats: int, device: str) -> None:
    import numpy as np
    import torch
    from skimage import data
    from transformers import CLIPTextConfig, CLIPTextModel

    from elements.decoders.pipeline import ElementsPipeline
    from elements.models.element_attention import ElementAdapter
    from elements.models.presets import build_content_encoder
    from elements.partition import Partitioner
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

    def timed(fn) -> float:
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0

    with torch.no_grad():
        text = pipe.encode_prompt(["a photo"], device)
        tokens, active = pipe.encode_elements([el], device)
        ctx = pipe.element_adapter.project(tokens, active)
        z = torch.randn(2, 4, size // 8, size // 8, device=device)
        off_on = torch.tensor([False, True])  # the pipeline's CFG pair: ∅/∅ then C/S
        ukw = {"element_tokens": torch.cat([ctx, ctx]), "element_mask": off_on, "text_mask": off_on}
        pipe(el, **{**kw, "num_inference_steps": 1})  # warm-up
        rows = []
        for _ in range(repeats):  # each repeat times the pipeline and then its parts, back to back
            t_pipe = timed(lambda: pipe(el, generator=torch.Generator().manual_seed(0), **kw))
            t_unet = timed(
                lambda: [
                    pipe.unet(z, 500, encoder_hidden_states=torch.cat([text, text]), cross_attention_kwargs=ukw)
                    for _ in range(steps)
                ]
            )
            t_vae = timed(lambda: pipe.vae.decode(z[:1] / pipe.vae.config.scaling_factor))
            t_enc = timed(lambda: (pipe.encode_prompt(["a photo"], device), pipe.encode_elements([el], device)))
            rows.append((t_pipe, t_unet, t_vae, t_enc))
    t_pipe, t_unet, t_vae, t_enc = np.median(np.array(rows), axis=0)
    with_enc = float(np.median([p / (u + v) - 1 for p, u, v, _ in rows]))
    without = float(np.median([(p - e) / (u + v) - 1 for p, u, v, e in rows]))
    print(
        f"pipeline, {steps} DDIM steps, {size}² (mid UNet, tiny VAE/CLIP, {el.num_elements} elements), median of {repeats}:"
    )
    print(
        f"  end to end {t_pipe:.3f} s ({t_pipe / steps * 1000:.1f} ms/step); parts: {steps} x UNet(batch 2) "
        f"{t_unet:.3f} s + VAE decode {t_vae * 1000:.1f} ms; text + element encoding {t_enc * 1000:.1f} ms"
    )
    print(
        f"  overhead beyond steps x UNet + VAE decode: {100 * with_enc:+.1f} %  (target <= 5 %); "
        f"of which not the text/element encoders: {100 * without:+.1f} %"
    )


def main() -> None:
    ap = argparse.ArgumentParser(
        allow_abbrev=False, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--repeats", type=int, default=5, help="runs per measurement; the best is reported")
    ap.add_argument("--steps", type=int, default=20, help="sampler steps for the pipeline measurement")
    ap.add_argument(
        "--skip-sd15",
        action="store_true",
        help="skip timing the SD-1.5-sized UNet (slow on CPU; FLOPs are still counted)",
    )
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    args = ap.parse_args()

    import torch

    dtype = torch.float16 if args.device.startswith("cuda") else torch.float32
    print(f"device {args.device}, dtype {dtype}, torch threads {torch.get_num_threads()}, best of {args.repeats}")

    def report(name, build, latent, repeats):
        fv, fe, fc = flop_ratio(build, latent)
        print(f"{name}, batch 2")
        print(
            f"  FLOPs:  vanilla {fv / 1e9:.1f} G; element, all samples {fe / fv:.3f}x; "
            f"element, CFG pair {fc / fv:.3f}x  (target <= 1.15x)"
        )
        if repeats:
            tv, te, tc = time_ratio(build, latent, repeats, args.device, dtype)
            print(
                f"  time:   vanilla {tv * 1000:.0f} ms; element, all samples {te * 1000:.0f} ms -> {te / tv:.3f}x; "
                f"element, CFG pair {tc * 1000:.0f} ms -> {tc / tv:.3f}x"
            )

    report(f"mid-size UNet ({'/'.join(map(str, MID_CHANNELS))}, ctx 768, 256² image)", mid_unet, 32, args.repeats)
    sd_repeats = 0 if args.skip_sd15 else (1 if args.device == "cpu" else args.repeats)
    report("SD-1.5 UNet config (320/640/1280/1280, ctx 768, 512² image)", sd15_unet, 64, sd_repeats)
    pipeline_overhead(args.steps, args.repeats, args.device)


if __name__ == "__main__":
    main()
