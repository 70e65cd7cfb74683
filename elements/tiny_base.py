"""``python -m elements tiny-base --out DIR``: a tiny random Stable-Diffusion-1.5-shaped base model.

The folder has the layout of ``stable-diffusion-v1-5/stable-diffusion-v1-5`` (``model_index.json``,
``unet/``, ``vae/``, ``text_encoder/``, ``tokenizer/``, ``scheduler/``) and loads with
``StableDiffusionPipeline.from_pretrained`` or each component's ``from_pretrained``. Shapes follow
SD-1.5 where it matters to the code paths (VAE downsampling ×8 with 4 latent channels, scaling
factor 0.18215, CLIP text states of width ``cross_attention_dim``, 77 tokens, DDIM with SD's
noise schedule) but every width is tiny and every weight random: images are noise. It exists so
that tests, smoke runs and a fresh cluster can run the whole stack without downloading gigabytes.

The CLIP tokenizer cannot be downloaded either, so it is built here: the 256 byte-level symbols
(with and without the ``</w>`` end-of-word mark), a few hundred BPE merges learnt from a small
built-in word list, and CLIP's two special tokens.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import tempfile
from pathlib import Path

from elements.errors import UserError

# Words the tiny BPE is learnt from: enough to give multi-character tokens for typical captions.
_CORPUS = """
a photo of the an and with in on at by for from to is are dog cat man woman person people
child car tree trees sky cloud clouds water sea beach mountain mountains road street house
building city room table chair window door flower flowers grass field forest river lake
bird birds horse sun sunset light red green blue white black yellow orange brown small large
old young standing sitting walking running painting picture portrait close up view landscape
astronaut coffee cup cheese fruit food plate bowl sofa bed wall floor garden park bridge boat
"""
NUM_MERGES = 300
MAX_LENGTH = 77  # CLIP context length used by SD-1.5


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog, allow_abbrev=False, description="Write a tiny random SD-1.5-shaped base model (offline smoke tests)."
    )
    p.add_argument("--out", required=True, help="output folder (must not exist or be empty unless --overwrite)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    p.add_argument("--overwrite", action="store_true", help="replace an existing non-empty output folder")
    return p


def run(args) -> int:
    out = write_tiny_base(args.out, seed=args.seed, overwrite=args.overwrite)
    print(f"wrote tiny base model to {out}")
    return 0


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP byte -> printable unicode symbol table (256 entries)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def build_tokenizer_files(num_merges: int = NUM_MERGES) -> tuple[dict[str, int], list[str]]:
    """CLIP-format ``vocab`` (token -> id) and ``merges`` ("a b" strings, in rank order)."""
    symbols = list(bytes_to_unicode().values())
    vocab_list = symbols + [s + "</w>" for s in symbols]
    # Plain BPE on the corpus: words are symbol tuples with "</w>" fused to the last symbol, as CLIP does.
    words = collections.Counter(_CORPUS.split())
    seqs = {w: tuple(w[:-1]) + (w[-1] + "</w>",) for w in words}
    merges: list[str] = []
    for _ in range(num_merges):
        pairs = collections.Counter()
        for w, seq in seqs.items():
            for a, b in zip(seq, seq[1:]):
                pairs[a, b] += words[w]
        if not pairs:
            break
        (a, b), _ = min(pairs.items(), key=lambda kv: (-kv[1], kv[0]))  # most frequent, ties broken stably
        merges.append(f"{a} {b}")
        vocab_list.append(a + b)
        for w, seq in seqs.items():
            merged, i = [], 0
            while i < len(seq):
                if i + 1 < len(seq) and seq[i] == a and seq[i + 1] == b:
                    merged.append(a + b)
                    i += 2
                else:
                    merged.append(seq[i])
                    i += 1
            seqs[w] = tuple(merged)
    vocab_list += ["<|startoftext|>", "<|endoftext|>"]
    return {tok: i for i, tok in enumerate(vocab_list)}, merges


def build_tiny_components(seed: int = 0) -> dict:
    """Seeded tiny SD-1.5-shaped components: ``unet, vae, text_encoder, tokenizer, scheduler``."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    vocab, merges = build_tokenizer_files()
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[tuple(m.split(" ")) for m in merges], model_max_length=MAX_LENGTH)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=2,
        sample_size=64,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=4,
        norm_num_groups=32,
    )
    torch.manual_seed(seed + 1)
    # Four blocks -> downsampling ×8 and 4 latent channels, as SD's VAE (512² canvas -> 64² latent).
    vae = AutoencoderKL(
        block_out_channels=(8, 16, 32, 32),
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        layers_per_block=1,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        norm_num_groups=8,
        sample_size=512,
        scaling_factor=0.18215,
    )
    torch.manual_seed(seed + 2)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(vocab),
            hidden_size=32,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=MAX_LENGTH,
            bos_token_id=vocab["<|startoftext|>"],
            eos_token_id=vocab["<|endoftext|>"],
            pad_token_id=vocab["<|endoftext|>"],
            projection_dim=32,
        )
    )
    # SD-1.5's noise schedule with the DDIM sampler used by the paper (App. C.2).
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
        num_train_timesteps=1000,
        prediction_type="epsilon",
    )
    return {"unet": unet, "vae": vae, "text_encoder": text_encoder, "tokenizer": tokenizer, "scheduler": scheduler}


def write_tiny_base(out, *, seed: int = 0, overwrite: bool = False) -> Path:
    """Write the tiny base model folder; the folder appears complete or not at all (temp dir + rename)."""
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise UserError(f"--out '{out}' exists and is not a folder.")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise UserError(f"--out '{out}' is not empty; choose another folder or pass --overwrite.")
    from diffusers import StableDiffusionPipeline  # seconds of imports: after the refusals

    out.parent.mkdir(parents=True, exist_ok=True)
    parts = build_tiny_components(seed)
    pipe = StableDiffusionPipeline(**parts, safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        pipe.save_pretrained(tmp, safe_serialization=True)
        vocab, merges = build_tokenizer_files()
        # The slow-tokenizer files too, so older transformers versions load the tokenizer as well.
        (tmp / "tokenizer" / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
        (tmp / "tokenizer" / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
        (tmp / "README.md").write_text(
            "Tiny random Stable-Diffusion-1.5-shaped base model written by `python -m elements tiny-base`.\n"
            f"Random weights (seed {seed}); for offline smoke tests only.\n"
        )
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
