"""The trainer: schedule, defaults, a short real run with its files, determinism, divergence,
the train/eval/predict commands, and two processes under torchrun."""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import Subset, TensorDataset

from cnnatlas import InvalidArgumentError
from cnnatlas.cli import main
from cnnatlas.data import DataSplits, load_dataset
from cnnatlas.train import (
    TrainConfig,
    TrainingDivergedError,
    default_config,
    learning_rate,
    list_checkpoints,
    load_checkpoint,
    load_run,
    train,
)
from cnnatlas.train.ema import WeightAverage, ema_decay

# -- pieces ---------------------------------------------------------------------------------------


def test_learning_rate_schedules():
    cfg = TrainConfig("lenet5", epochs=8, lr=0.1, warmup_epochs=1, schedule="cosine")
    spe = 10
    assert learning_rate(0, spe, cfg) == pytest.approx(0.001)  # warm-up starts at lr/100
    assert learning_rate(5, spe, cfg) == pytest.approx(0.001 + 0.099 * 0.5)
    assert learning_rate(10, spe, cfg) == pytest.approx(0.1)  # peak after warm-up
    assert learning_rate(45, spe, cfg) == pytest.approx(0.05)  # cosine half-way between step 10 and 80
    assert learning_rate(79, spe, cfg) < 1e-3
    lrs = [learning_rate(s, spe, cfg) for s in range(10, 80)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))
    step = TrainConfig("lenet5", epochs=8, lr=0.1, warmup_epochs=0, schedule="step")
    assert [learning_rate(e * spe, spe, step) for e in range(8)] == pytest.approx([0.1] * 4 + [0.01] * 2 + [0.001] * 2)
    one = TrainConfig("lenet5", epochs=1, lr=0.1, warmup_epochs=0, schedule="step")  # no milestone inside epoch 1
    assert [learning_rate(s, spe, one) for s in range(spe)] == pytest.approx([0.1] * spe)
    two = TrainConfig("lenet5", epochs=2, lr=0.1, warmup_epochs=0, schedule="step")
    assert [learning_rate(e * spe, spe, two) for e in range(2)] == pytest.approx([0.1, 0.001])


def test_defaults_per_model_and_dataset():
    bare = default_config("lenet5")
    assert bare.data == "digits" and bare.optimizer == "sgd" and bare.epochs >= 10
    assert (
        default_config("lenet5", "fashion-mnist").epochs != bare.epochs
        or default_config("lenet5", "fashion-mnist").batch_size != bare.batch_size
    )
    assert default_config("resnet20", "fashion-mnist").lr == 0.1
    assert default_config("lenet5", epochs=3, lr=None).epochs == 3  # None means "keep the default"
    for bad in (
        {"epochs": 0},
        {"lr": -1.0},
        {"optimizer": "rmsprop"},
        {"schedule": "linear"},
        {"label_smoothing": 1.0},
        {"ema": 1.0},
        {"ema": -0.5},
        {"device": "tpu"},
    ):
        with pytest.raises(InvalidArgumentError):
            default_config("lenet5", **bad)


# -- short real runs on a slice of the digits ------------------------------------------------------


@pytest.fixture(scope="module")
def small_digits() -> DataSplits:
    d = load_dataset("digits", 32)
    return DataSplits(Subset(d.train, range(320)), Subset(d.test, range(120)), d.info, "digits, first 320/120")


def _config(tmp_path: Path, **kw) -> TrainConfig:
    settings = {"epochs": 2, "batch_size": 32, "quiet": True, "out": str(tmp_path / "run")} | kw
    return default_config("lenet5", "digits", **settings)


def test_short_run_writes_metrics_checkpoints_and_weights(tmp_path, small_digits):
    metrics = train(_config(tmp_path, epochs=3, keep_checkpoints=2), data=small_digits)
    run = tmp_path / "run"
    for key in ("test_acc", "test_top5", "train_loss", "epochs", "seconds", "images_per_s"):
        assert key in metrics
    assert json.loads((run / "metrics.json").read_text()) == metrics
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [x["epoch"] for x in lines] == [1, 2, 3]
    assert lines[-1]["test_acc"] == metrics["test_acc"] and metrics["epochs"] == 3
    assert lines[-1]["train_loss"] < lines[0]["train_loss"]  # it learns
    assert metrics["test_acc"] > 0.3 and metrics["test_top5"] >= metrics["test_acc"]  # chance is 0.1
    assert metrics["images_per_s"] > 0 and metrics["seconds"] > 0
    assert [p.name for p in list_checkpoints(run)] == ["epoch-0002", "epoch-0003"]
    loaded = load_run(run)
    ckpt = load_checkpoint(run / "checkpoints" / "epoch-0003")
    assert all(torch.equal(v, ckpt.weights[k]) for k, v in loaded.model.state_dict().items())
    assert ckpt.meta["step"] == 3 * 10 and set(ckpt.state) == {"optimizer", "scaler", "rng"}


def test_same_seed_same_weights_twice(tmp_path, small_digits):
    a = train(_config(tmp_path / "a", epochs=1, deterministic=True, seed=3), data=small_digits)
    b = train(_config(tmp_path / "b", epochs=1, deterministic=True, seed=3), data=small_digits)
    c = train(_config(tmp_path / "c", epochs=1, deterministic=True, seed=4), data=small_digits)
    wa, wb, wc = (load_run(m["run_dir"]).model.state_dict() for m in (a, b, c))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)
    assert not torch.are_deterministic_algorithms_enabled()  # the global switch is put back


def test_augmented_run_trains_and_records_its_augmentation(tmp_path):
    options = {
        "augment": "crop,flip,jitter",
        "warmup_epochs": 0.0,
        "weight_decay": 0.0,
        "model_kwargs": {"style": "modern"},
    }
    metrics = train(_config(tmp_path, epochs=1, **options))  # the augmentation is the dataset's: load it
    assert math.isfinite(metrics["train_loss"]) and metrics["test_acc"] > 0.1
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["data"]["augment"] == ["crop", "flip", "jitter"]


# -- each option takes effect: one training step against the same step written out by hand ----------


@pytest.fixture(scope="module")
def one_batch() -> DataSplits:
    """32 digits without augmentation: a batch of 32 is one step per epoch, on fixed inputs."""
    d = load_dataset("digits", 32, "none")
    x = torch.stack([d.train[i][0] for i in range(32)])
    y = torch.tensor([int(d.train[i][1]) for i in range(32)])
    return DataSplits(TensorDataset(x, y), TensorDataset(x, y), d.info, "digits, first 32")


def _hand_step(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    lr: float,
    optimizer: str = "sgd",
    weight_decay: float = 0.0,
    label_smoothing: float = 0.0,
    grad_clip: float = 0.0,
    class_weights: str = "none",
) -> tuple[dict, float]:
    """The weights after one step, written out, and the gradient norm: cross-entropy against (1 − ε)·one-hot + ε/K
    (Szegedy et al. 2016, §7); the gradient scaled by min(1, c / (‖g‖ + 1e-6)) (global norm);
    SGD's first step p − lr·(g + λp) (the momentum buffer starts as the gradient), or AdamW's first
    step p·(1 − lr·λ) − lr·g / (|g| + 1e-8) (bias-corrected m̂ = g, v̂ = g²; Loshchilov & Hutter 2019);
    λ only on weights of rank ≥ 2. Class weights w_c = median(f) / f_c from the batch's label frequencies
    (its square root for sqrt-median-frequency): the loss is Σ w_y·ℓ / Σ w_y."""
    params = dict(model.named_parameters())
    logp = torch.log_softmax(model(x), 1)
    target = (1 - label_smoothing) * F.one_hot(y, logp.shape[1]) + label_smoothing / logp.shape[1]
    w = torch.ones(len(y))
    if class_weights != "none":
        freq = {c: (y == c).float().mean().item() for c in y.unique().tolist()}
        mid = statistics.median(freq.values())
        w = torch.tensor([(mid / freq[c]) ** (0.5 if class_weights.startswith("sqrt") else 1.0) for c in y.tolist()])
    loss = (w * -(target * logp).sum(1)).sum() / w.sum()
    grads = torch.autograd.grad(loss, list(params.values()))
    norm = torch.sqrt(sum((g**2).sum() for g in grads))
    scale = min(1.0, grad_clip / (float(norm) + 1e-6)) if grad_clip else 1.0
    out = {}
    for (name, p), g in zip(params.items(), grads):
        g, wd = g * scale, (weight_decay if p.ndim > 1 else 0.0)
        out[name] = p - lr * (g + wd * p) if optimizer == "sgd" else p * (1 - lr * wd) - lr * g / (g.abs() + 1e-8)
    return {k: v.detach() for k, v in out.items()}, float(norm)


def _close(a: dict, b: dict) -> bool:
    return all(torch.allclose(a[k], b[k], rtol=1e-4, atol=1e-6) for k in a)


@pytest.mark.parametrize(
    "option, value",
    [
        ("optimizer", "adamw"),
        ("label_smoothing", 0.3),
        ("grad_clip", 0.05),
        ("weight_decay", 0.5),
        ("class_weights", "median-frequency"),
        ("class_weights", "sqrt-median-frequency"),
    ],
)
def test_each_option_changes_the_step_as_written(tmp_path, one_batch, option, value):
    from cnnatlas import create_model

    base = {"optimizer": "sgd", "weight_decay": 0.0, "label_smoothing": 0.0, "grad_clip": 0.0, "class_weights": "none"}
    lr = 1e-3 if option == "optimizer" else 0.05
    torch.manual_seed(0)
    model = create_model("lenet5")
    with torch.no_grad():  # biases start at zero, where decaying them would show no change
        for p in model.parameters():
            if p.ndim <= 1:
                p.add_(torch.randn_like(p), alpha=0.1)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    config = TrainConfig(
        "lenet5",
        data="digits",
        epochs=1,
        batch_size=32,
        lr=lr,
        warmup_epochs=0.0,
        device="cpu",  # the hand-written step runs on the CPU, in float32
        out=str(tmp_path / "run"),
        quiet=True,
        **(base | {option: value}),
    )
    train(config, data=one_batch, model=model)
    got = {k: v for k, v in model.state_dict().items()}
    x, y = one_batch.train.tensors
    fresh = create_model("lenet5")
    fresh.load_state_dict(start)
    expected, norm = _hand_step(fresh, x, y, lr=lr, **(base | {option: value}))
    without, _ = _hand_step(fresh, x, y, lr=lr, **base)
    assert _close(got, expected), f"{option}={value}: the step is not the one written out"
    assert not _close(got, without), f"{option}={value} changed nothing"
    if option == "grad_clip":
        assert norm > 2 * value  # the clip did bite
    if option == "weight_decay":  # biases are not decayed: they moved as without decay
        assert all(torch.allclose(got[k], without[k], rtol=1e-4, atol=1e-6) for k in got if got[k].ndim <= 1)


def test_bfloat16_precision_autocasts_on_the_cpu_and_evaluates_in_float32(tmp_path, small_digits):
    from cnnatlas import create_model

    model = create_model("lenet5", num_classes=10, in_channels=1)
    seen = []
    model.features[0].register_forward_hook(lambda m, a, out: seen.append((m.training, out.dtype)))
    metrics = train(_config(tmp_path, precision="bfloat16", device="cpu"), data=small_digits, model=model)
    assert {dtype for training, dtype in seen if training} == {torch.bfloat16}  # every training forward
    assert {dtype for training, dtype in seen if not training} == {torch.float32}  # evaluation: float32
    assert next(model.parameters()).dtype == torch.float32  # the weights stay float32
    assert metrics["test_acc"] > 0.3  # it learns (chance 0.1)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["train"]["precision"] == "bfloat16"
    seen.clear()
    train(_config(tmp_path / "f", epochs=1, device="cpu"), data=small_digits, model=model)  # auto: float32 on CPU
    assert {dtype for _, dtype in seen} == {torch.float32}


def test_bfloat16_on_a_cpu_without_its_instructions_says_float32_is_faster(tmp_path, monkeypatch, capsys):
    from cnnatlas import hardware

    # what PyTorch reports of the CPU decides; a CPU other than x86 is not judged
    monkeypatch.setattr(hardware.platform, "machine", lambda: "x86_64")
    for avx512_bf16, amx, emulated in ((False, False, True), (True, False, False), (False, True, False)):
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda v=avx512_bf16: v, raising=False)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda v=amx: v, raising=False)
        assert hardware.bfloat16_emulated() is emulated
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported")  # an older PyTorch that cannot say
    assert hardware.bfloat16_emulated() is False
    monkeypatch.setattr(hardware.platform, "machine", lambda: "aarch64")
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    assert hardware.bfloat16_emulated() is False

    # the trainer's announcement carries the note only for bfloat16 on such a CPU
    for emulated in (True, False):
        monkeypatch.setattr(hardware, "bfloat16_emulated", lambda v=emulated: v)
        for precision in ("bfloat16", "float32"):
            out = tmp_path / f"{emulated}-{precision}"
            argv = ["train", "lenet5", "--epochs", "1", "--batch-size", "256", "--device", "cpu"]
            assert main([*argv, "--precision", precision, "--out", str(out)]) == 0
            said = " ".join(capsys.readouterr().out.split())
            assert ("no bfloat16 instructions" in said) is (emulated and precision == "bfloat16"), said
            if emulated and precision == "bfloat16":
                assert "--precision float32 is the faster choice" in said


def test_float16_precision_needs_a_gpu(tmp_path, small_digits, capsys):
    with pytest.raises(InvalidArgumentError, match="precision float16 needs a GPU.*use bfloat16 or float32"):
        train(_config(tmp_path, precision="float16", device="cpu"), data=small_digits)
    with pytest.raises(InvalidArgumentError, match="precision must be one of 'auto', 'float32', 'bfloat16', 'float16'"):
        _config(tmp_path, precision="half")
    code = main(["train", "lenet5", "--precision", "float16", "--device", "cpu", "--out", str(tmp_path / "c")])
    assert code == 2 and "precision float16 needs a GPU" in capsys.readouterr().err


def test_init_transfers_a_classifier_into_a_segmentation_backbone(tmp_path):
    from cnnatlas import create_model
    from cnnatlas.train.checkpoint import CheckpointError, read_init_weights, save_weights, transfer_weights

    classifier = create_model("resnet20", num_classes=10, in_channels=1)
    seg = create_model("deeplabv3plus", backbone="resnet20", num_classes=11, in_channels=1)
    head_before = {k: v.clone() for k, v in seg.state_dict().items() if not k.startswith("backbone.")}
    file = tmp_path / "classifier.safetensors"
    save_weights(file, classifier.state_dict())
    loaded, total = transfer_weights(seg, read_init_weights(file), file)
    own = classifier.state_dict()
    backbone = {k: v for k, v in seg.state_dict().items() if k.startswith("backbone.")}
    assert loaded == len(backbone) == len(own) - 2 and total == len(seg.state_dict())  # all but fc.weight, fc.bias
    assert all(torch.equal(v, own[k[len("backbone.") :]]) for k, v in backbone.items())
    assert all(torch.equal(v, seg.state_dict()[k]) for k, v in head_before.items())  # the new head untouched
    with pytest.raises(CheckpointError, match=r"stem.conv.weight is 16×3×3×3 in the file but backbone.stem.conv"):
        transfer_weights(seg, create_model("resnet20", in_channels=3).state_dict(), "rgb")
    with pytest.raises(CheckpointError, match="none of its .* tensors has a place in the model"):
        transfer_weights(seg, create_model("lenet5").state_dict(), "lenet")
    with pytest.raises(CheckpointError, match="no such file or folder"):
        read_init_weights(tmp_path / "missing")
    with pytest.raises(CheckpointError, match="a folder without model.safetensors"):
        read_init_weights(tmp_path)


def test_trainer_starts_from_init_weights(tmp_path, small_digits, capsys):
    first = _config(tmp_path / "a", epochs=1, quiet=False)
    train(first, data=small_digits)
    trained = load_run(tmp_path / "a" / "run").model.state_dict()
    # a second run from the first's weights at a learning rate too small to move them: it ends where the first did
    second = _config(tmp_path / "b", epochs=1, lr=1e-12, warmup_epochs=0.0, init=str(tmp_path / "a" / "run"))
    train(second, data=small_digits)
    again = load_run(tmp_path / "b" / "run").model.state_dict()
    assert all(torch.allclose(v.float(), trained[k].float(), atol=1e-6) for k, v in again.items())
    scratch = _config(tmp_path / "c", epochs=1, lr=1e-12, warmup_epochs=0.0)
    train(scratch, data=small_digits)
    fresh = load_run(tmp_path / "c" / "run").model.state_dict()
    assert not all(torch.allclose(v.float(), trained[k].float(), atol=1e-6) for k, v in fresh.items())
    # resuming needs only the run's own checkpoint: the --init folder may be gone by then
    moved = tmp_path / "a-moved"
    (tmp_path / "a").rename(moved)
    train(_config(tmp_path / "b", epochs=2, init=str(tmp_path / "a" / "run")), data=small_digits, resume=True)
    assert json.loads((tmp_path / "b" / "run" / "metrics.json").read_text())["epochs"] == 2
    code = main(["train", "lenet5", "--init", str(tmp_path / "nowhere"), "--out", str(tmp_path / "d"), "--quiet"])
    assert code == 2 and "--init" in capsys.readouterr().err


def test_step_schedule_divides_the_rate_by_ten_at_half_and_three_quarters(tmp_path, one_batch):
    from cnnatlas import create_model

    torch.manual_seed(0)
    config = TrainConfig(
        "lenet5",
        data="digits",
        epochs=4,
        batch_size=32,
        lr=0.05,
        warmup_epochs=0.0,
        schedule="step",
        out=str(tmp_path / "run"),
        quiet=True,
    )
    train(config, data=one_batch, model=create_model("lenet5"))
    run = tmp_path / "run"
    lrs = [json.loads(line)["lr"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert lrs == pytest.approx([0.05, 0.05, 0.005, 0.0005])  # one step per epoch: the rate of each step
    saved = load_checkpoint(run / "checkpoints" / "epoch-0004").state["optimizer"]["param_groups"]
    assert [g["lr"] for g in saved] == pytest.approx([0.0005, 0.0005])


class _PoisonAfter(nn.Module):
    """Wraps a model; after `calls` training forwards its output is NaN."""

    def __init__(self, inner: nn.Module, calls: int) -> None:
        super().__init__()
        self.inner, self.calls = inner, calls

    def forward(self, x):
        if self.training:
            self.calls -= 1
        out = self.inner(x)
        return out * float("nan") if self.calls < 0 else out


def test_memory_estimate_counts_the_optimiser_state_and_the_moving_average():
    from cnnatlas.analysis import analyze
    from cnnatlas.models.base import count_params
    from cnnatlas.train.loop import memory_needed
    from cnnatlas.zoo import create_model

    model = create_model("lenet5", num_classes=10, in_channels=1)
    report = analyze(model, (16, 1, 32, 32), training=True)
    weights = count_params(model) * 4
    assert report.param_bytes == weights  # float32
    plain = default_config("lenet5", optimizer="sgd", momentum=0.0)
    step, held = memory_needed(plain, 32, 16)
    assert step == report.training_peak_bytes and held == 1797 * 32 * 32 * 4
    assert memory_needed(default_config("lenet5", optimizer="sgd", momentum=0.9), 32, 16)[0] == step + weights
    assert memory_needed(default_config("lenet5", optimizer="adamw"), 32, 16)[0] == step + 2 * weights
    averaged = memory_needed(default_config("lenet5", optimizer="adamw", ema=0.99), 32, 16)[0]
    assert averaged == step + 3 * weights + report.buffer_bytes


def test_memory_check_counts_the_images_held_where_the_step_cannot_be_estimated():
    from cnnatlas.train import MemoryEstimateError
    from cnnatlas.train.loop import check_memory, memory_needed

    config = default_config("lenet5", "fashion-mnist-scenes", train_scenes=10**10)
    step, held = memory_needed(config, 8, 16)  # LeNet-5 takes 32×32 at least: no estimate of the step
    assert step is None and held == (10**10 + 2000) * 8 * 8 * 2  # uint8 scenes and masks, 1.3 TB
    with pytest.raises(MemoryEstimateError, match="training step not estimated, images 1,192"):
        check_memory(config, 8, 16, torch.device("cpu"))


# -- the weights' moving average (--ema) ------------------------------------------------------------


def test_weight_average_follows_the_formula_and_copies_counters():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    average = WeightAverage(model, decay=0.9)
    before = {k: v.clone() for k, v in average.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    model.train()(torch.randn(8, 3))  # moves the running statistics and counts a batch
    now = model.state_dict()
    average.update(model, step=100)  # d = min(0.9, 101/110) = 0.9
    assert ema_decay(0.9, 100) == 0.9 and ema_decay(0.999, 1) == 2 / 11 and ema_decay(0.999, 5) == 6 / 15
    for k, v in average.state_dict().items():
        if v.is_floating_point():
            assert torch.allclose(v, 0.9 * before[k] + 0.1 * now[k]), k
            assert not torch.equal(v, now[k])
        else:  # num_batches_tracked: copied, not averaged
            assert int(v) == int(now[k]) == 1
    assert not average.module.training and not any(p.requires_grad for p in average.module.parameters())


def test_ema_run_evaluates_and_keeps_the_average_of_its_steps(tmp_path, one_batch):
    """Two steps of a real run: θ̄1 = d1·θ0 + (1 − d1)·θ1, θ̄2 = d2·θ̄1 + (1 − d2)·θ2 with d_n = (1 + n)/(10 + n);
    the checkpoints and the final weights hold θ̄, the checkpoints' state the stepped θ, and the test
    accuracy reported is θ̄'s."""
    from cnnatlas import create_model

    torch.manual_seed(0)
    model = create_model("lenet5")
    start = {k: v.clone() for k, v in model.state_dict().items()}
    config = TrainConfig(
        "lenet5",
        epochs=2,
        batch_size=32,
        lr=0.05,
        warmup_epochs=0.0,
        ema=0.99,
        device="cpu",
        out=str(tmp_path / "run"),
        quiet=True,
    )
    metrics = train(config, data=one_batch, model=model)
    run = tmp_path / "run"
    first, second = (load_checkpoint(run / "checkpoints" / f"epoch-000{e}") for e in (1, 2))
    assert set(second.state) == {"optimizer", "scaler", "rng", "training_weights"}
    theta1, theta2 = first.state["training_weights"], second.state["training_weights"]
    assert all(torch.equal(theta2[k], v) for k, v in model.state_dict().items())  # the model trained on
    d1, d2 = 2 / 11, 3 / 12
    mean1 = {k: d1 * start[k] + (1 - d1) * theta1[k] for k in start}
    mean2 = {k: d2 * mean1[k] + (1 - d2) * theta2[k] for k in start}
    assert _close(first.weights, mean1) and _close(second.weights, mean2)
    assert not _close(second.weights, theta2)
    final = load_run(run).model
    assert all(torch.equal(v, second.weights[k]) for k, v in final.state_dict().items())
    x, y = one_batch.test.tensors
    with torch.no_grad():
        assert metrics["test_acc"] == pytest.approx((final.eval()(x).argmax(1) == y).float().mean().item())


def test_ema_run_resumed_equals_the_run_straight_through(tmp_path, one_batch):
    from cnnatlas import create_model

    def run(out: str, epochs: int, resume: bool = False, ema: float = 0.9) -> dict:
        torch.manual_seed(0)
        config = TrainConfig(
            "lenet5",
            epochs=epochs,
            batch_size=32,
            lr=0.05,
            ema=ema,
            device="cpu",
            out=out,
            quiet=True,
            deterministic=True,
        )
        return train(config, resume=resume, data=one_batch, model=create_model("lenet5"))

    straight = run(str(tmp_path / "straight"), 4)
    run(str(tmp_path / "resumed"), 2)
    resumed = run(str(tmp_path / "resumed"), 4, resume=True)
    a, b = (load_run(m["run_dir"]).model.state_dict() for m in (straight, resumed))
    assert all(torch.equal(a[k], b[k]) for k in a), "the resumed average differs from the uninterrupted one"
    assert resumed["test_acc"] == straight["test_acc"]
    # --ema added on resume: the average starts from the weights the run had; dropped: the stepped weights go on
    run(str(tmp_path / "added"), 2, ema=0.0)
    added = run(str(tmp_path / "added"), 3, resume=True)
    run(str(tmp_path / "dropped"), 2)
    dropped = run(str(tmp_path / "dropped"), 3, resume=True, ema=0.0)
    plain = run(str(tmp_path / "plain"), 3, ema=0.0)
    wa, wd, wp = (load_run(m["run_dir"]).model.state_dict() for m in (added, dropped, plain))
    assert all(torch.equal(wd[k], wp[k]) for k in wp)  # no average left: the weights of a plain run
    assert not all(torch.equal(wa[k], wp[k]) for k in wp)


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, small_digits):
    from cnnatlas import create_model

    model = _PoisonAfter(create_model("lenet5"), calls=10 + 3)  # 10 steps per epoch: NaN in epoch 2
    with pytest.raises(TrainingDivergedError, match=r"loss became nan in epoch 2.*epoch-0001") as err:
        train(_config(tmp_path, epochs=3), data=small_digits, model=model)
    assert "not saved" in str(err.value)
    run = tmp_path / "run"
    assert [p.name for p in list_checkpoints(run)] == ["epoch-0001"]
    good = load_checkpoint(run / "checkpoints" / "epoch-0001")
    assert all(torch.isfinite(w).all() for w in good.weights.values())
    assert not (run / "metrics.json").exists() and not (run / "model.safetensors").exists()


def test_existing_run_needs_resume(tmp_path, small_digits):
    from cnnatlas.train import RunExistsError

    train(_config(tmp_path, epochs=1), data=small_digits)
    with pytest.raises(RunExistsError, match="already holds a run; continue it with --resume"):
        train(_config(tmp_path, epochs=1), data=small_digits)
    metrics = train(_config(tmp_path, epochs=2), data=small_digits, resume=True)
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert metrics["epochs"] == 2 and len(lines) == 2


# -- the commands -------------------------------------------------------------------------------


def test_train_eval_predict_commands(tmp_path, capsys):
    from torchvision.utils import save_image

    from cnnatlas.data.digits import digits_arrays

    out = tmp_path / "cli"
    assert main(["train", "lenet5", "--epochs", "1", "--batch-size", "128", "--quiet", "--out", str(out)]) == 0
    assert capsys.readouterr().out == ""  # --quiet prints nothing
    assert main(["train", "lenet5", "--epochs", "2", "--batch-size", "128", "--out", str(tmp_path / "log")]) == 0
    log = capsys.readouterr().out.splitlines()  # to a file or a pipe: the epoch lines, not the live bar's frames
    assert [line.split()[:2] for line in log if line.startswith("epoch")] == [["epoch", "1/2"], ["epoch", "2/2"]]
    assert not any("━" in line or "left" in line.split() for line in log)
    config = json.loads((out / "config.json").read_text())
    assert config["train"]["batch_size"] == 128 and config["data"]["name"] == "digits"

    assert main(["eval", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    metrics = json.loads((out / "metrics.json").read_text())
    assert report["images"] == 360 and report["test_acc"] == pytest.approx(metrics["test_acc"])
    confusion = torch.tensor(report["confusion"])
    assert confusion.shape == (10, 10) and confusion.sum() == 360
    assert confusion.diag().sum() / 360 == pytest.approx(report["test_acc"])
    assert main(["eval", str(out)]) == 0
    assert "Confusion matrix" in capsys.readouterr().out

    _, _, x_test, y_test = digits_arrays()
    paths = []
    for i in range(2):
        paths.append(str(tmp_path / f"digit{i}.png"))
        save_image(x_test[i], paths[-1])
    assert main(["predict", str(out), *paths, "--top", "2", "--json"]) == 0
    preds = json.loads(capsys.readouterr().out)
    assert [p["image"] for p in preds] == paths and all(len(p["top"]) == 2 for p in preds)
    run = load_run(out)  # the command agrees with the model run on the test set's own tensors
    expected = run.model(torch.stack([run.info.prepare(x) for x in x_test[:2]])).argmax(1).tolist()
    assert [p["top"][0]["index"] for p in preds] == expected
    # the library call behind the command gives the same; a mask or top 0 is refused in one line
    from cnnatlas.predict import run_masks, run_predictions

    assert run_predictions(run, paths, top=2) == [
        {**p, "top": [{**t, "probability": pytest.approx(t["probability"])} for t in p["top"]]} for p in preds
    ]
    with pytest.raises(InvalidArgumentError, match="classification run: run_predictions gives its top classes"):
        run_masks(run, paths)
    with pytest.raises(InvalidArgumentError, match="top must be an integer ≥ 1; got 0"):
        run_predictions(run, paths, top=0)
    assert main(["predict", str(out), *paths, "--out-dir", str(tmp_path / "masks")]) == 2
    assert "--out-dir is where masks go: it needs a segmentation run or model" in capsys.readouterr().err
    assert not (tmp_path / "masks").exists()


def test_command_errors_are_one_line(tmp_path, capsys):
    assert main(["train", "lenet5", "--optimizer", "rmsprop"]) == 2
    assert main(["train", "lenet5", "--class-weights", "inverse"]) == 2
    assert "--class-weights: invalid choice: 'inverse'" in capsys.readouterr().err
    assert main(["train", "lenet5", "--ema", "1.5"]) == 2
    assert "ema must be a decay in [0, 1)" in capsys.readouterr().err
    with pytest.raises(InvalidArgumentError, match="class_weights must be one of 'none', 'median-frequency'"):
        TrainConfig("lenet5", class_weights="inverse")
    assert main(["train", "nonet"]) == 2
    assert "unknown model 'nonet'" in capsys.readouterr().err
    assert main(["train", "lenet5", "--data", str(tmp_path / "nowhere")]) == 2
    assert "unknown dataset" in capsys.readouterr().err
    assert main(["eval", str(tmp_path)]) == 2
    assert "not a training run folder" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main(["train", "lenet5", "--device", "cuda"]) == 2
        assert "no CUDA GPU" in capsys.readouterr().err


# -- torchrun -----------------------------------------------------------------------------------


def _train_lenet5(out: Path, *flags: str, processes: int = 1) -> None:
    """`cnnatlas train lenet5 --batch-size 32 --quiet FLAGS --out OUT` on one thread per process, under
    torchrun (gloo on the CPU) where `processes` > 1."""
    launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(processes)]
    command = ["-m", "cnnatlas", "train", "lenet5", "--batch-size", "32", "--quiet", *flags, "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, *(launcher if processes > 1 else []), *command], check=True, env=env, timeout=900)


@pytest.mark.slow
def test_two_processes_under_torchrun_match_one_process(tmp_path):
    """torchrun --nproc-per-node 2 (gloo on CPU): same global batch, accuracy in the band of the
    single-process run, and only rank 0 writes."""
    _train_lenet5(tmp_path / "one", "--epochs", "6")
    _train_lenet5(tmp_path / "two", "--epochs", "6", processes=2)
    one, two = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("one", "two"))
    assert two["world_size"] == 2 and one["world_size"] == 1
    assert one["test_acc"] > 0.9 and two["test_acc"] > 0.9
    assert abs(one["test_acc"] - two["test_acc"]) <= 0.03, (one["test_acc"], two["test_acc"])
    lines = (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == list(range(1, 7))  # one writer, not two
    assert json.loads((tmp_path / "two" / "config.json").read_text())["world_size"] == 2
    assert (tmp_path / "two" / "train.lock").read_text() == ""  # rank 0 held the run folder, and let it go


@pytest.mark.slow
def test_moving_average_under_torchrun_is_what_the_run_keeps_and_reports(tmp_path, capsys):
    """--ema with two processes: rank 0 saves the average, its checkpoint carries the stepped weights
    beside it, and the accuracy the run reported (each process scoring its share of the test set with
    its own average) is the saved average's in one process: the processes' averages agree."""
    run = tmp_path / "two"
    _train_lenet5(run, "--epochs", "2", "--ema", "0.99", processes=2)
    metrics = json.loads((run / "metrics.json").read_text())
    last = load_checkpoint(list_checkpoints(run)[-1])
    final = load_run(run)
    assert metrics["world_size"] == 2 and final.config.ema == 0.99
    assert all(torch.equal(v, last.weights[k]) for k, v in final.model.state_dict().items())
    assert not all(torch.equal(last.weights[k], v) for k, v in last.state["training_weights"].items())
    assert main(["eval", str(run), "--json"]) == 0  # the saved average, evaluated again in one process
    assert json.loads(capsys.readouterr().out)["test_acc"] == pytest.approx(metrics["test_acc"])


def test_label_counts_per_image_per_pixel_and_item_by_item():
    from torch.utils.data import Subset, TensorDataset

    from cnnatlas.data.base import DatasetError, TensorImageDataset, label_counts
    from cnnatlas.data.scenes import SceneDataset

    images = torch.zeros(5, 1, 4, 4, dtype=torch.uint8)
    labels = torch.tensor([0, 2, 2, 1, 2])
    assert label_counts(TensorImageDataset(images, labels, (0.0,), (1.0,)), 4).tolist() == [1, 1, 3, 0]
    assert label_counts(TensorDataset(images.float(), labels), 3).tolist() == [1, 1, 3]  # item by item
    masks = torch.zeros(5, 4, 4, dtype=torch.uint8)
    masks[:, :2] = 3  # half of every scene's pixels are class 3
    assert label_counts(SceneDataset(images, masks, (0.0,), (1.0,)), 4).tolist() == [40, 0, 0, 40]
    # ImageFolder keeps `targets`: read there (not item by item, whose labels differ here), and a Subset's
    folder_like = type("Folder", (TensorDataset,), {"targets": [1, 1, 0, 0, 0]})(images.float(), labels)
    assert label_counts(folder_like, 3).tolist() == [3, 2, 0]
    assert label_counts(Subset(folder_like, [1, 2, 3]), 3).tolist() == [2, 1, 0]
    with pytest.raises(DatasetError, match=r"class indices 0–1; got values 0–2"):
        label_counts(TensorDataset(images.float(), labels), 2)


def test_class_weights_balance_the_frequencies():
    from cnnatlas.train.loop import class_weights

    counts = torch.tensor([10, 30, 60, 0])  # f = 0.1, 0.3, 0.6; median 0.3
    w = class_weights("median-frequency", counts)
    raw = torch.tensor([3.0, 1.0, 0.5, 0.0])  # median(f) / f_c; absent: 0
    assert torch.allclose(w, raw / (raw[:3] * torch.tensor([0.1, 0.3, 0.6])).sum())
    assert float((w[:3] * torch.tensor([0.1, 0.3, 0.6])).sum()) == pytest.approx(1.0)  # a label's mean weight is 1
    s = class_weights("sqrt-median-frequency", counts)
    assert torch.allclose(s / s[1], raw.sqrt())
    assert class_weights("none", counts) is None


def test_class_weights_flag_reaches_the_run(tmp_path):
    out = tmp_path / "run"
    flags = ["--epochs", "1", "--batch-size", "64", "--class-weights", "sqrt-median-frequency", "--quiet"]
    assert main(["train", "lenet5", *flags, "--device", "cpu", "--out", str(out)]) == 0
    saved = json.loads((out / "config.json").read_text())
    assert saved["train"]["class_weights"] == "sqrt-median-frequency"
