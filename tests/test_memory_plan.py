"""Stage 1 fits its step into the free memory: exact activation checkpointing, the measured estimate, the refusal."""

import pytest
import torch

from elements.errors import UserError

pytestmark = pytest.mark.usefixtures("fresh_accelerate_state")


def _batch(b, n, seed=0):
    from elements.models.tokens import ElementBatch

    g = torch.Generator().manual_seed(seed)
    return ElementBatch(
        torch.rand(b, n, 3, 32, 32, generator=g), torch.rand(b, n, 4, generator=g), torch.rand(b, n, generator=g) > 0.1
    )


def _step(model, batch):
    model.zero_grad()
    out = model(batch)
    out.square().mean().backward()
    return out.detach(), {k: p.grad.clone() for k, p in model.named_parameters()}


def test_checkpointing_gives_the_same_output_and_gradients():
    """More active patches than one checkpoint chunk, so several chunks are recomputed."""
    from elements.models.content_encoder import CHECKPOINT_CHUNK
    from elements.train.stage1 import build_autoencoder

    torch.manual_seed(0)
    model = build_autoencoder("tiny").train()
    batch = _batch(2, 200)
    assert int(batch.active.sum()) > CHECKPOINT_CHUNK
    plain, grads = _step(model, batch)
    model.encoder.enable_gradient_checkpointing()
    model.decoder.enable_gradient_checkpointing()
    assert model.encoder.gradient_checkpointing and model.decoder.gradient_checkpointing
    assert not model.encoder.encoder.gradient_checkpointing  # chunks are recomputed whole, blocks not again
    ckpt, ckpt_grads = _step(model, batch)
    torch.testing.assert_close(ckpt, plain, rtol=0, atol=1e-6)
    for k in grads:
        torch.testing.assert_close(ckpt_grads[k], grads[k], rtol=1e-4, atol=1e-6)
    model.encoder.disable_gradient_checkpointing()
    assert not model.encoder.gradient_checkpointing
    with torch.no_grad():  # no recomputation without gradients
        torch.testing.assert_close(model(batch), plain)


def test_checkpointing_keeps_less():
    from elements.train.memory_plan import saved_bytes
    from elements.train.stage1 import build_autoencoder

    model = build_autoencoder("tiny").train()
    batch = _batch(2, 64)
    plain, _ = saved_bytes(lambda: model(batch), list(model.parameters()))
    model.encoder.enable_gradient_checkpointing()
    model.decoder.enable_gradient_checkpointing()
    ckpt, _ = saved_bytes(lambda: model(batch), list(model.parameters()))
    assert ckpt < 0.2 * plain, (ckpt, plain)


def test_saved_bytes_leaves_out_parameters_and_scales_with_patches():
    from elements.train.memory_plan import saved_bytes
    from elements.train.stage1 import build_autoencoder

    enc = build_autoencoder("tiny").encoder.train()
    params = list(enc.parameters())
    x8, x16 = torch.rand(8, 3, 32, 32), torch.rand(16, 3, 32, 32)
    b8, _ = saved_bytes(lambda: enc(x8), params)
    b16, _ = saved_bytes(lambda: enc(x16), params)
    assert b16 == 2 * b8  # activations only: exactly linear
    with_params, _ = saved_bytes(lambda: enc(x8))
    assert with_params > b8
    with torch.no_grad():
        assert saved_bytes(lambda: enc(x8))[0] == 0


def _probe(**over):
    from elements.train.memory_plan import Stage1Memory

    base = dict(per_patch=6_400_000, per_image=311_000_000, segments=12, carry=2_097_152, state=700_000_000)
    return Stage1Memory(**{**base, "patch_bytes": 12288, **over})


def test_need_grows_with_the_batch_and_checkpointing_needs_less():
    mem = _probe()
    for ck in (False, True):
        assert mem.need(16, 256, ck) > mem.need(8, 256, ck) > mem.need(1, 256, ck)
    assert mem.need(16, 256, True) < 0.2 * mem.need(16, 256, False)
    # the paper's step (16 × 256, fp32) does not fit a 24 GB CPU machine; with checkpointing it does
    assert mem.need(16, 256, False) > 24e9 > 8e9 > mem.need(16, 256, True)


@pytest.mark.parametrize(
    ("free", "forced", "expect", "logged"),
    [(1e12, False, False, False), (1e12, True, True, False), (8e9, False, True, True), (1e9, False, "refuse", False)],
)
def test_plan_decides(monkeypatch, free, forced, expect, logged):
    from contextlib import nullcontext

    from elements.train import memory_plan

    monkeypatch.setattr(memory_plan, "probe_stage1", lambda *a: _probe())
    monkeypatch.setattr(memory_plan, "free_bytes", lambda device: int(free))
    lines = []
    kw = dict(batch=16, elements=256, forced=forced, log=lines.append)
    if expect == "refuse":
        with pytest.raises(UserError, match=r"--train-batch-size") as err:
            memory_plan.plan_stage1(None, None, "cpu", nullcontext, **kw)
        msg = str(err.value)
        assert "16 images × 256 elements" in msg and "1.0 GB are free" in msg and "\n" not in msg
        return
    assert memory_plan.plan_stage1(None, None, "cpu", nullcontext, **kw) is expect
    assert bool(lines) == logged
    if logged:
        assert "activation checkpointing on" in lines[0] and "8.0 GB are free" in lines[0]


def test_probe_measures_the_tiny_models():
    from contextlib import nullcontext

    from elements.train.memory_plan import probe_stage1
    from elements.train.stage1 import build_autoencoder

    model = build_autoencoder("tiny").train()
    mem = probe_stage1(model.encoder, model.decoder, "cpu", nullcontext, 64)
    assert mem.per_patch > 0 and mem.per_image > 0 and mem.segments == 4
    n = sum(p.numel() for p in model.parameters())
    assert mem.state == 3 * 4 * n
    assert all(p.grad is None for p in model.parameters())  # a probe, not a step


def test_free_bytes_is_shared_by_local_processes(monkeypatch):
    from elements.train.memory_plan import free_bytes

    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    one = free_bytes("cpu")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    four = free_bytes("cpu")
    assert 0 < four and abs(four * 4 - one) < 0.25 * one  # the machine's memory moves a little in between


def test_cli_refuses_in_one_sentence_and_leaves_nothing(monkeypatch, tmp_path, capsys):
    """The default preset and batch on a machine with too little memory: exit 2, one line, no output folder."""
    from PIL import Image

    from elements.cli import main
    from elements.train import memory_plan

    data = tmp_path / "data"
    data.mkdir()
    Image.new("RGB", (64, 64), (200, 30, 30)).save(data / "a.png")
    monkeypatch.setattr(memory_plan, "free_bytes", lambda device: 10**9)
    out = tmp_path / "run"
    code = main(["train", "stage1", "--train-data", str(data), "--output-dir", str(out), "--backend", "grid"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.count("\n") == 0 and "even with activation checkpointing" in err and "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_plan_under_the_runs_bf16_autocast(device):
    """The probe runs under the accelerator's autocast on its device (bf16 on a GPU is the paper-scale setting)."""
    from contextlib import nullcontext

    from accelerate import Accelerator

    from elements.train.memory_plan import free_bytes, plan_stage1, probe_stage1
    from elements.train.stage1 import build_autoencoder

    acc = Accelerator(cpu=device == "cpu", mixed_precision="bf16")
    assert acc.device.type == device
    model = build_autoencoder("tiny").to(acc.device).train()
    fp32 = probe_stage1(model.encoder, model.decoder, acc.device, nullcontext, 64)
    bf16 = probe_stage1(model.encoder, model.decoder, acc.device, acc.autocast, 64)
    assert fp32.per_patch > 0 and bf16.per_patch > 0 and bf16.per_patch != fp32.per_patch  # autocast did apply
    assert free_bytes(acc.device) > 0
    assert not plan_stage1(model.encoder, model.decoder, acc.device, acc.autocast, batch=2, elements=64, forced=False)


def test_running_out_of_memory_in_a_step_is_one_sentence(monkeypatch, tmp_path, capsys):
    """Should the estimate be wrong (another process took the memory): exit 2 and what to change, no traceback."""
    from PIL import Image

    from elements.cli import main
    from elements.train import stage1

    data = tmp_path / "data"
    data.mkdir()
    for i in range(2):
        Image.new("RGB", (64, 64), (200, 30 * i, 30)).save(data / f"{i}.png")

    def oom(*a, **k):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB (a long message)")

    monkeypatch.setattr(stage1, "train_step", oom)
    args = ["--train-data", str(data), "--output-dir", str(tmp_path / "run"), "--preset", "tiny", "--backend", "grid"]
    code = main(["train", "stage1", *args, "--dataloader-num-workers", "0", "--train-batch-size", "2"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "Traceback" not in err
    assert "stage 1 ran out of memory on cpu at step 1 with a batch of 2 images" in err
    assert "--gradient-checkpointing" in err
