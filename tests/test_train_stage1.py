"""Stage-1 training: the loss falls, checkpoints resume exactly, the CLI behaves (App. C.2)."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from elements.errors import UserError


@pytest.fixture(scope="module")
def blocks(tmp_path_factory):
    """8 generated 512² images: coloured rectangles on a flat background."""
    root = tmp_path_factory.mktemp("blocks")
    rng = np.random.default_rng(0)
    for i in range(8):
        img = np.empty((512, 512, 3), np.uint8)
        img[:] = rng.integers(0, 255, 3)
        for _ in range(4):
            x0, y0 = rng.integers(0, 400, 2)
            w, h = rng.integers(40, 200, 2)
            img[y0 : y0 + h, x0 : x0 + w] = rng.integers(0, 255, 3)
        Image.fromarray(img).save(root / f"{i}.png")
    return root


pytestmark = pytest.mark.usefixtures("fresh_accelerate_state")


def _args(data, out, *extra):
    from elements.train.stage1 import build_parser

    return build_parser("stage1").parse_args(
        [
            "--train_data",
            str(data),
            "--output_dir",
            str(out),
            "--preset",
            "tiny",
            "--backend",
            "grid",
            "--num-elements",
            "16",
            "--train_batch_size",
            "2",
            "--dataloader_num_workers",
            "0",
            "--logging_steps",
            "1",
            "--num_validation_images",
            "2",
            "--num_train_epochs",
            "100",
            *extra,
        ]
    )


def test_loss_falls(blocks):
    from accelerate import Accelerator

    from elements.data.dataset import ElementsDataset, make_dataloader
    from elements.train.common import make_optimizer
    from elements.train.stage1 import build_autoencoder, train_step

    torch.manual_seed(0)
    ds = ElementsDataset(blocks, partition={"backend": "grid", "num_elements": 16}, split="all", shuffle=False)
    batches = list(make_dataloader(ds, batch_size=2))[:2]  # 4 images: a few dozen steps can fit them
    model = build_autoencoder("tiny")
    args = _args(blocks, "unused", "--learning_rate", "2e-3")
    accelerator = Accelerator(cpu=True)
    optimizer = make_optimizer(model.parameters(), args)
    model, optimizer = accelerator.prepare(model, optimizer)
    losses = [train_step(accelerator, model, optimizer, batches[i % len(batches)]) for i in range(32)]
    first, last = np.mean(losses[:5]), np.mean(losses[-5:])
    assert np.isfinite(losses).all()
    assert last < 0.5 * first, (first, last)


def test_recipe_defaults():
    from elements.train.stage1 import build_parser

    a = build_parser("stage1").parse_args(["--train_data", "x", "--output_dir", "y"])
    assert (a.learning_rate, a.weight_decay, a.adam_beta1, a.adam_beta2) == (1e-4, 0.01, 0.9, 0.95)  # App. C.2
    assert a.num_train_epochs == 30 and a.preset == "paper" and a.report_to == "none"


def test_every_flag_has_help():
    from elements.train.stage1 import build_parser

    for action in build_parser("stage1")._actions:
        assert action.help, action.option_strings


def _weights(folder):
    from safetensors.torch import load_file

    return load_file(str(folder / "diffusion_pytorch_model.safetensors"))


def _optimizer_state(ckpt):
    return torch.load(ckpt / "optimizer.bin", weights_only=False)["state"]


def test_resume_continues_exactly(blocks, tmp_path):
    from elements.train.stage1 import run

    common = (
        "--max_train_steps",
        "6",
        "--checkpointing_steps",
        "3",
        "--validation_steps",
        "3",
        "--learning_rate",
        "1e-3",
    )
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert run(_args(blocks, straight, *common)) == 0
    assert (
        run(
            _args(
                blocks,
                split,
                "--max_train_steps",
                "3",
                "--checkpointing_steps",
                "3",
                "--validation_steps",
                "3",
                "--learning_rate",
                "1e-3",
            )
        )
        == 0
    )
    # a crashed run may have logged past its last checkpoint; resume drops those lines
    with open(split / "train_log.jsonl", "a") as f:
        f.write(json.dumps({"step": 4, "loss": 123.0}) + "\n")
    assert run(_args(blocks, split, *common, "--resume", "latest")) == 0

    for name in ("content_encoder", "light_decoder"):
        a, b = _weights(straight / name), _weights(split / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    sa, sb = _optimizer_state(straight / "checkpoint-6"), _optimizer_state(split / "checkpoint-6")
    assert sa.keys() == sb.keys() and all(torch.equal(sa[i]["exp_avg_sq"], sb[i]["exp_avg_sq"]) for i in sa)
    assert int(sa[0]["step"]) == 6
    state = json.loads((split / "checkpoint-6" / "trainer_state.json").read_text())
    assert state["step"] == 6
    log = [json.loads(line) for line in (split / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "loss" in r] == [1, 2, 3, 4, 5, 6] and all(
        r["loss"] < 100 for r in log if "loss" in r
    )
    # the epoch's sample count continues across the mid-epoch resume (it counted from the resume point before)
    ref = [json.loads(line) for line in (straight / "train_log.jsonl").read_text().splitlines()]
    assert [r["epoch_samples"] for r in log if "loss" in r] == [r["epoch_samples"] for r in ref if "loss" in r]
    # each line's window (one step of batch 2) trained on 2 samples, its throughput a positive rate
    assert all(r["samples"] == 2 and r["samples_per_s"] > 0 for r in log + ref if "loss" in r)
    assert (split / "validation" / "step-0000006.png").is_file()
    # the final folder is a loadable stage-1 checkpoint
    from elements.decoders.light import LightDecoder

    assert LightDecoder.from_pretrained(str(split)).net.config.grid_size == 16


def test_resume_restores_optimizer_state(blocks, tmp_path):
    from elements.train.checkpoints import resume_state
    from elements.train.common import make_accelerator, make_lr_scheduler, make_optimizer
    from elements.train.stage1 import build_autoencoder, run

    out = tmp_path / "run"
    assert (
        run(_args(blocks, out, "--max_train_steps", "2", "--checkpointing_steps", "2", "--validation_steps", "0")) == 0
    )
    args = _args(blocks, out, "--resume", str(out / "checkpoint-2"))
    accelerator = make_accelerator(args)
    model = build_autoencoder("tiny")
    optimizer = make_optimizer(model.parameters(), args)
    model, optimizer = accelerator.prepare(model, optimizer)
    accelerator.register_for_checkpointing(make_lr_scheduler(optimizer, args, None))
    state = resume_state(accelerator, args)
    assert state["step"] == 2 and state["rank"]["positions"] == {"0": 4}  # 2 steps x 2 images, 1 worker
    saved = _optimizer_state(out / "checkpoint-2")
    live = optimizer.state_dict()["state"]
    assert all(torch.equal(saved[i]["exp_avg"], live[i]["exp_avg"].cpu()) for i in saved)
    final = _weights(out / "light_decoder")
    assert all(
        torch.equal(final[k], v) for k, v in accelerator.unwrap_model(model).decoder.state_dict().items() if k in final
    )


def test_user_errors(blocks, tmp_path, capsys):
    from elements.cli import main

    assert (
        main(["train", "stage1", "--train_data", str(tmp_path / "missing"), "--output_dir", str(tmp_path / "o")]) == 2
    )
    assert "neither a folder" in capsys.readouterr().err
    code = main(
        [
            "train",
            "stage1",
            "--train_data",
            str(blocks),
            "--output_dir",
            str(tmp_path / "o"),
            "--preset",
            "tiny",
            "--resume",
            str(tmp_path / "nope"),
        ]
    )
    assert code == 2 and "not a checkpoint folder" in capsys.readouterr().err
    with pytest.raises(UserError, match="--train-batch-size"):
        from elements.train.stage1 import run

        run(_args(blocks, tmp_path / "o", "--train_batch_size", "0"))


@pytest.mark.gpu
def test_cuda_bf16_steps(blocks):
    """A few mixed-precision steps on CUDA: finite, falling loss (run with -m gpu)."""
    from accelerate import Accelerator

    from elements.data.dataset import ElementsDataset, make_dataloader
    from elements.train.common import make_optimizer
    from elements.train.stage1 import build_autoencoder, train_step

    torch.manual_seed(0)
    ds = ElementsDataset(blocks, partition={"backend": "grid", "num_elements": 16}, split="all", shuffle=False)
    batches = list(make_dataloader(ds, batch_size=2))[:2]
    accelerator = Accelerator(mixed_precision="bf16")
    assert accelerator.device.type == "cuda"
    model = build_autoencoder("tiny")
    optimizer = make_optimizer(model.parameters(), _args(blocks, "unused", "--learning_rate", "2e-3"))
    model, optimizer = accelerator.prepare(model, optimizer)
    losses = [train_step(accelerator, model, optimizer, batches[i % 2]) for i in range(32)]
    assert np.isfinite(losses).all() and np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])
