"""``python -m elements tiny-base``: an SD-1.5-shaped random base that loads with stock diffusers calls."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from elements.errors import UserError
from elements.tiny_base import build_tokenizer_files, bytes_to_unicode, write_tiny_base


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return write_tiny_base(tmp_path_factory.mktemp("tiny") / "base", seed=0)


def test_layout_and_stock_loading(base):
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    index = json.loads((base / "model_index.json").read_text())
    assert {"unet", "vae", "text_encoder", "tokenizer", "scheduler"} <= set(index)
    for sub in ("unet", "vae", "text_encoder"):
        assert list((base / sub).glob("*.safetensors")), sub
    assert (base / "tokenizer" / "vocab.json").is_file() and (base / "tokenizer" / "merges.txt").is_file()
    unet = UNet2DConditionModel.from_pretrained(base, subfolder="unet")
    vae = AutoencoderKL.from_pretrained(base, subfolder="vae")
    text = CLIPTextModel.from_pretrained(base, subfolder="text_encoder")
    tok = CLIPTokenizer.from_pretrained(base, subfolder="tokenizer")
    sched = DDIMScheduler.from_pretrained(base, subfolder="scheduler")
    # SD-1.5 shapes where the code depends on them
    assert tuple(unet.config.block_out_channels) == (32, 64) and unet.config.cross_attention_dim == 32
    assert 2 ** (len(vae.config.block_out_channels) - 1) == 8 and vae.config.latent_channels == 4
    assert vae.config.scaling_factor == 0.18215 and text.config.hidden_size == unet.config.cross_attention_dim
    assert tok.model_max_length == 77 and sched.config.beta_schedule == "scaled_linear"
    pipe = StableDiffusionPipeline.from_pretrained(base)
    pipe.set_progress_bar_config(disable=True)
    out = pipe(
        "a dog on a beach",
        num_inference_steps=2,
        height=64,
        width=64,
        output_type="np",
        generator=torch.Generator().manual_seed(0),
    ).images
    assert out.shape == (1, 64, 64, 3) and np.isfinite(out).all()


def test_built_tokenizer_is_a_working_clip_bpe(base):
    from transformers import CLIPTokenizer

    tok = CLIPTokenizer.from_pretrained(base, subfolder="tokenizer")
    vocab, merges = build_tokenizer_files()
    assert len(bytes_to_unicode()) == 256 and len(set(bytes_to_unicode().values())) == 256
    ids = tok("A photo of the mountains").input_ids
    assert ids[0] == vocab["<|startoftext|>"] and ids[-1] == vocab["<|endoftext|>"]
    assert len(ids) < len("a photo of the mountains") + 2  # merges give multi-character tokens
    assert tok.decode(ids, skip_special_tokens=True) == "a photo of the mountains"
    odd = "naïve café ☕"  # any text encodes (byte-level): nothing maps to the unknown token
    odd_ids = tok(odd).input_ids
    assert vocab["<|endoftext|>"] not in odd_ids[1:-1]
    assert tok.decode(odd_ids, skip_special_tokens=True) == odd
    padded = tok(["hi"], padding="max_length", max_length=77).input_ids
    assert len(padded[0]) == 77


def test_deterministic_per_seed(tmp_path, base):
    from safetensors.torch import load_file

    again = write_tiny_base(tmp_path / "again", seed=0)
    other = write_tiny_base(tmp_path / "other", seed=1)
    a = load_file(base / "unet" / "diffusion_pytorch_model.safetensors")
    b = load_file(again / "unet" / "diffusion_pytorch_model.safetensors")
    c = load_file(other / "unet" / "diffusion_pytorch_model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_cli_refuses_non_empty_folder(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep.txt").write_text("mine")
    with pytest.raises(UserError, match="not empty"):
        write_tiny_base(tmp_path / "x")
    assert (tmp_path / "x" / "keep.txt").read_text() == "mine"
    proc = subprocess.run(
        [sys.executable, "-m", "elements", "tiny-base", "--out", str(tmp_path / "x")], capture_output=True, text=True
    )
    assert proc.returncode == 2 and proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr
    write_tiny_base(tmp_path / "x", overwrite=True)
    assert not (tmp_path / "x" / "keep.txt").exists() and (tmp_path / "x" / "model_index.json").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folder left behind
