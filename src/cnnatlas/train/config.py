"""What a training run is: one frozen `TrainConfig`, and the per-model/dataset defaults that make a
bare `cnnatlas train lenet5` do the right thing on the digits.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from ..errors import InvalidArgumentError
from ..layers.checks import check_choice

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("cosine", "step")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "float32", "bfloat16", "float16")
# the loss's class weights: none, median frequency balancing (Eigen & Fergus 2015), or its square root
CLASS_WEIGHTS = ("none", "median-frequency", "sqrt-median-frequency")
RESERVED_MODEL_KWARGS = ("num_classes", "in_channels")  # set from the data, never by --model-arg


def _is_count(v: Any) -> bool:
    """An integer ≥ 1 (not a bool)."""
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


def _is_number(v: Any) -> bool:
    """A finite int or float (not a bool)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


@dataclass(frozen=True)
class TrainConfig:
    """One training run. `batch_size` is global: torchrun's N processes each take batch_size / N."""

    model: str
    data: str = "digits"
    epochs: int = 10
    batch_size: int = 128
    lr: float = 0.05
    optimizer: str = "sgd"  # SGD with Nesterov-free momentum, or AdamW (Loshchilov & Hutter 2019)
    momentum: float = 0.9
    weight_decay: float = 5e-4  # applied to weights of rank ≥ 2 only (not biases or norm scales)
    schedule: str = "cosine"  # cosine: SGDR without restarts; step: ÷10 at 50% and 75% (He et al. 2016)
    warmup_epochs: float = 1.0  # linear warm-up from lr/100 (Goyal et al. 2017)
    label_smoothing: float = 0.0  # Szegedy et al. 2016, §7
    class_weights: str = "none"  # one of CLASS_WEIGHTS, from the training labels' class frequencies
    grad_clip: float = 0.0  # max global gradient norm; 0 = off
    ema: float = 0.0  # decay of the moving average of the weights that is evaluated and kept; 0 = off
    seed: int = 0
    deterministic: bool = False
    device: str = "auto"
    # auto: mixed precision on a GPU (bfloat16, or float16 with loss scaling), float32 on the CPU;
    # bfloat16: autocast to bfloat16 on the CPU too (about 1.6× faster where the CPU has AVX-512 BF16)
    precision: str = "auto"
    image_size: int | None = None  # None: the model's input if ≤ 64, else what it needs at least
    augment: str = "auto"  # 'auto', 'none', or a comma list of crop, flip, jitter
    train_scenes: int | None = None  # --data fashion-mnist-scenes: training scenes drawn (None: TRAIN_SCENES)
    sample_rate: int | None = None  # --data fsdd: samples per second, 8000 divided by a whole number (None: 8000)
    mu_law: bool = False  # --data fsdd: each recording μ-law companded (WaveNet §2.2)
    frames: int | None = None  # --data moving-fashion-mnist: frames per clip (None: MOVING_FASHION_FRAMES)
    workers: int | None = None  # DataLoader worker processes; None: 0 on CPU, 4 on a GPU
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    inflate: bool = False  # a 2-D model made 3-D for video clips by I3D inflation (cnnatlas.inflate)
    init: str | None = None  # start from these weights (a run, a checkpoint or a .safetensors file): transfer
    out: str | None = None
    keep_checkpoints: int = 2
    quiet: bool = False

    def __post_init__(self) -> None:
        def check(ok: bool, what: str) -> None:
            if not ok:
                raise InvalidArgumentError(f"train: {what}")

        for name in ("epochs", "batch_size", "keep_checkpoints"):
            v = getattr(self, name)
            check(_is_count(v), f"{name} must be an integer ≥ 1; got {v!r}")
        for name in ("image_size", "train_scenes", "sample_rate", "frames"):  # None: the model's or the data's choice
            v = getattr(self, name)
            check(v is None or _is_count(v), f"{name} must be a positive integer; got {v!r}")
        for name in ("lr", "momentum", "weight_decay", "warmup_epochs", "label_smoothing", "grad_clip", "ema"):
            v = getattr(self, name)
            check(_is_number(v), f"{name} must be a finite number; got {v!r}")
        check(self.lr > 0, f"lr must be a number > 0; got {self.lr!r}")
        check(isinstance(self.model, str) and self.model != "", f"model must be a model name; got {self.model!r}")
        check(
            isinstance(self.data, str) and self.data.strip() != "",
            f"data must name a dataset (digits, fashion-mnist, … or a folder); got {self.data!r}",
        )
        check(
            self.out is None or (isinstance(self.out, str) and self.out.strip() != ""),
            f"out must name a folder (or be left unset for runs/MODEL-DATA); got {self.out!r}",
        )
        check(isinstance(self.mu_law, bool), f"mu_law must be True or False; got {self.mu_law!r}")
        check(isinstance(self.model_kwargs, dict), f"model_kwargs must be a dict; got {self.model_kwargs!r}")
        for key in RESERVED_MODEL_KWARGS:
            check(
                key not in self.model_kwargs,
                f"model argument {key}={self.model_kwargs.get(key)!r} is not accepted: the data sets it "
                f"(expected other model arguments; pick data with --data)",
            )
        for name, choices in (
            ("optimizer", OPTIMIZERS),
            ("precision", PRECISIONS),
            ("class_weights", CLASS_WEIGHTS),
            ("schedule", SCHEDULES),
        ):
            check_choice("train", name, getattr(self, name), choices)
        check(
            self.device in DEVICES or self.device.startswith("cuda:"),
            f"device must be one of {', '.join(DEVICES)}; got {self.device!r}",
        )
        check(0 <= self.momentum < 1, f"momentum must be in [0, 1); got {self.momentum!r}")
        check(self.weight_decay >= 0, f"weight_decay must be ≥ 0; got {self.weight_decay!r}")
        check(self.warmup_epochs >= 0, f"warmup_epochs must be ≥ 0; got {self.warmup_epochs!r}")
        check(0 <= self.label_smoothing < 1, f"label_smoothing must be in [0, 1); got {self.label_smoothing!r}")
        check(self.grad_clip >= 0, f"grad_clip must be ≥ 0 (0 = off); got {self.grad_clip!r}")
        check(0 <= self.ema < 1, f"ema must be a decay in [0, 1) (0 = off, e.g. 0.999); got {self.ema!r}")
        check(
            isinstance(self.seed, int) and not isinstance(self.seed, bool) and -(2**63) <= self.seed < 2**63,
            f"seed must be an integer of at most 63 bits (−2**63 ≤ seed < 2**63, torch's range); got {self.seed!r}",
        )
        check(self.workers is None or self.workers >= 0, f"workers must be ≥ 0; got {self.workers!r}")
        check(isinstance(self.inflate, bool), f"inflate must be true or false; got {self.inflate!r}")
        check(
            self.init is None or (isinstance(self.init, str) and self.init.strip() != ""),
            f"init must name a run folder, a checkpoint folder or a .safetensors file; got {self.init!r}",
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


# Per family, then per (family, dataset): what trains well in few epochs on 2 CPU cores.
# LeNet-5 on the digits: SGD 0.05, batch 32, random crops and label smoothing 0.1 pass 98% in 20
# epochs of 1,437 images (benchmarks/RESULTS-training.md).
# CIFAR-style ResNets (resnet20…): SGD 0.1, momentum 0.9, weight decay 5e-4/1e-4 (He et al. 2016 §4.2).
FAMILY_DEFAULTS: dict[str, dict[str, Any]] = {
    "lenet": {"optimizer": "sgd", "lr": 0.05, "weight_decay": 1e-4, "batch_size": 64},
    "alexnet": {"optimizer": "sgd", "lr": 0.01, "weight_decay": 5e-4},
    "vgg": {"optimizer": "sgd", "lr": 0.01, "weight_decay": 5e-4},
    "resnet": {"optimizer": "sgd", "lr": 0.1, "weight_decay": 5e-4},
    "plain": {"optimizer": "sgd", "lr": 0.1, "weight_decay": 5e-4},  # ResNet's plain baselines, same recipe
    # The recipes of benchmarks/video_audio.py (its results are in RESULTS-video-audio.md):
    "spectrogram_cnn": {"optimizer": "sgd", "lr": 0.05, "weight_decay": 5e-4, "batch_size": 32, "warmup_epochs": 0.5},
    "wavenet": {"optimizer": "adamw", "lr": 2e-3, "weight_decay": 5e-4, "batch_size": 16, "warmup_epochs": 0.5},
}
DATASET_DEFAULTS: dict[tuple[str, str], dict[str, Any]] = {
    ("*", "digits"): {"epochs": 30},
    ("*", "fashion-mnist"): {"epochs": 15},
    ("*", "fsdd"): {"epochs": 30},
    ("*", "moving-fashion-mnist"): {"epochs": 12, "batch_size": 32},
    # dense models on the 64×64 scenes: AdamW converges in few epochs where SGD 0.1 needs many
    ("*", "fashion-mnist-scenes"): {
        "epochs": 8,
        "batch_size": 32,
        "optimizer": "adamw",
        "lr": 2e-3,
        "weight_decay": 1e-4,
        "augment": "none",
        "warmup_epochs": 0.5,
    },
    ("wavenet", "fsdd"): {"epochs": 10},
    ("lenet", "moving-fashion-mnist"): {
        "epochs": 12,
        "batch_size": 32,
        "lr": 0.02,
        "weight_decay": 5e-4,
        "warmup_epochs": 0.5,
    },
    ("lenet", "digits"): {"epochs": 20, "batch_size": 32, "label_smoothing": 0.1},
    # 61k parameters underfit Fashion-MNIST more than they overfit it in 12 epochs: no augmentation
    ("lenet", "fashion-mnist"): {"epochs": 12, "label_smoothing": 0.1, "augment": "none"},
    ("resnet", "fashion-mnist"): {"epochs": 30, "label_smoothing": 0.1},
    ("plain", "fashion-mnist"): {"epochs": 30, "label_smoothing": 0.1},
}


def default_config(model: str, data: str = "digits", **overrides: Any) -> TrainConfig:
    """The run `cnnatlas train MODEL --data DATA` does, with `overrides` (None values ignored) on top."""
    from ..data import dataset_kind
    from ..registry import get_entry

    entry = get_entry(model)
    family = entry.family
    kind = dataset_kind(data)
    settings: dict[str, Any] = {}
    if kind == "moving-fashion-mnist" and len(entry.input_size) == 3:  # clips for an image model: inflate it
        settings["inflate"] = True
    settings.update(FAMILY_DEFAULTS.get(family, {}))
    settings.update(DATASET_DEFAULTS.get(("*", kind), {}))
    settings.update(DATASET_DEFAULTS.get((family, kind), {}))
    settings.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig(model=model, data=data, **settings)


def with_overrides(config: TrainConfig, **overrides: Any) -> TrainConfig:
    """`config` with the non-None `overrides` replaced."""
    return replace(config, **{k: v for k, v in overrides.items() if v is not None})
