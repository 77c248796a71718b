"""A finished (or interrupted) run folder, read back for `cnnatlas eval`, `cnnatlas predict` and the
pictures of a run (`TrainedRun.evaluate`: the one evaluation of a run on a test set that they share).

RUN/config.json says what was trained on what, and where that data was (`data_origin`: the dataset's
name and folder; `TrainedRun.data_spec` finds it again on this machine); the weights come from
RUN/model.safetensors (the end of training, checked against its recorded SHA-256) or, for a run that
has not finished, its newest checkpoint (checked against its meta.json).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data import DataInfo, DataSplits, data_spec_for_eval
from ..errors import CnnAtlasError, InvalidArgumentError
from ..loading import LoadedModel, load_model
from .checkpoint import (
    FINAL_WEIGHTS,
    CheckpointError,
    fit_weights,
    load_checkpoint,
    load_final_weights,
    load_latest_checkpoint,
)
from .config import TrainConfig
from .folder import is_run_folder, read_run_config
from .loop import EvalResult, build_model, evaluate

EVAL_BATCH = 256  # test images per forward when a run is evaluated


@dataclass
class TrainedRun:
    path: Path
    config: TrainConfig
    info: DataInfo
    model: nn.Module
    weights_from: Path
    data_origin: dict | None = None  # where the training data was read from (None: a run that did not record it)

    @property
    def data_spec(self) -> str:
        """The --data that reads this run's data here: its recorded folder where present, else the dataset's
        own lookup and download."""
        return data_spec_for_eval(self.data_origin, self.config.data)

    def shift_averaged(self) -> nn.Module:
        """The model with its softmax averaged over the input as it is and moved one pixel down, right and
        both, each prediction moved back (`ShiftAveraged` over ONE_PIXEL_SHIFTS): a segmentation run only."""
        from ..models.segmentation import ONE_PIXEL_SHIFTS, ShiftAveraged

        if self.info.task != "segmentation":
            raise InvalidArgumentError(
                f"--shift-average averages a per-pixel prediction: it needs a segmentation run; "
                f"{self.path} is a {self.info.task} run"
            )
        return ShiftAveraged(self.model, ONE_PIXEL_SHIFTS)

    def test_data(self, data: str | None = None) -> DataSplits:
        """The splits of `data` (a --data spec; default the run's own, `data_spec`) at the run's input size
        and channels (recordings at its rate and companding, clips of its frames), refused unless they have
        the run's classes, in its order; the test set normalised with the mean and std of the run's training
        data, as its inputs were."""
        from ..data import DatasetError, TensorImageDataset, dataset_kind, load_dataset
        from ..data.fsdd import WaveformDataset
        from ..data.scenes import SceneDataset

        spec = data or self.data_spec
        kind = dataset_kind(spec)
        seen: dict[str, Any] = {}  # the recordings as the run heard them, the clips as long as it saw them
        if kind == "fsdd":
            seen = {"sample_rate": self.sample_rate, "mu_law": self.mu_law}
        if kind == "moving-fashion-mnist" and self.info.frames:
            seen = {"frames": self.info.frames}
        splits = load_dataset(spec, self.info.image_size, "none", self.info.in_channels, **seen)
        if splits.info.num_classes != self.info.num_classes:
            raise DatasetError(
                f"{spec} has {splits.info.num_classes} classes; the run was trained on {self.info.num_classes}"
            )
        differ = [(i, a, b) for i, (a, b) in enumerate(zip(splits.info.classes, self.info.classes)) if a != b]
        if differ:  # label i must mean what it meant in training
            i, theirs, ours = differ[0]
            named = (
                " (a folder of a named dataset's IDX files reads with its names as NAME:DIR, e.g. fashion-mnist:DIR)"
            )
            raise DatasetError(
                f"{spec}'s classes are not the run's: its class {i} is {theirs!r} where the run's is {ours!r}; "
                f"expected the classes it was trained on, in that order ({_listed(self.info.classes)})"
                + (named if kind == "idx" else "")
            )
        if isinstance(splits.test, (TensorImageDataset, SceneDataset)):
            mean, std = self.info.mean, self.info.std
            splits.test.mean, splits.test.std = (torch.tensor(v).view(-1, 1, 1) for v in (mean, std))
        if isinstance(splits.test, WaveformDataset):
            splits.test.mean, splits.test.std = self.info.mean[0], self.info.std[0]
        return splits

    @property
    def sample_rate(self) -> int | None:
        """The rate a run on sound was trained at: its data's record, or for a run older than that record,
        the rate its data source states ("… samples at 4 kHz"), else FSDD's own 8 kHz; None for a run on
        images or clips."""
        import re

        from ..data.fsdd import FSDD_SAMPLE_RATE

        if self.info.sample_rate:
            return self.info.sample_rate
        if getattr(self.model, "dims", 2) != 1:  # a model on images or clips
            return None
        said = re.search(r"samples at ([\d.]+) kHz", (self.data_origin or {}).get("source", ""))
        return round(float(said.group(1)) * 1000) if said else FSDD_SAMPLE_RATE

    @property
    def mu_law(self) -> bool:
        """Whether a run on sound heard its recordings μ-law companded."""
        return "mu-law" in self.info.augment

    def evaluate(self, data: str | None = None, *, shift_average: bool = False) -> tuple[EvalResult, DataSplits]:
        """Loss, accuracy, top-5 and confusion matrix of the run's model on the test set of `data` (default
        its own; `test_data`), in order, on the CPU; for a segmentation run every pixel is one prediction
        (`EvalResult.miou`, `.iou`). `shift_average`: the prediction of `shift_averaged()`."""
        from torch.utils.data import DataLoader

        model = self.shift_averaged() if shift_average else self.model
        splits = self.test_data(data)
        torch.manual_seed(0)
        loader = DataLoader(splits.test, batch_size=EVAL_BATCH)
        return evaluate(model, loader, self.info.num_classes, torch.device("cpu")), splits

    @property
    def input_size(self) -> tuple[int, ...]:
        """One input as the run was fed (no batch): (C, side, side) for images, (C, samples) for sound,
        (C, frames, side, side) for clips (the frames its data recorded, else the registry's, else moving
        Fashion-MNIST's)."""
        from ..data.moving_fashion import MOVING_FASHION_FRAMES
        from ..registry import get_entry

        info, dims = self.info, getattr(self.model, "dims", 2)
        if dims != 3:
            return (info.in_channels, *(info.image_size,) * dims)
        registered = get_entry(self.config.model).input_size
        frames = info.frames or (registered[1] if len(registered) == 4 else MOVING_FASHION_FRAMES)
        return (info.in_channels, frames, info.image_size, info.image_size)

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """Class probabilities (N, classes) for float images (N, C, H, W) in [0, 1], any size."""
        x = torch.stack([self.info.prepare(img) for img in images])
        return self.model(x).softmax(dim=1)


def _listed(names, shown: int = 6) -> str:
    """'a, b, c' or, past `shown` names, 'a, b, … (12)'."""
    names = list(names)
    return ", ".join(names) if len(names) <= shown else f"{', '.join(names[:shown])}, … ({len(names)})"


def load_run(run_dir: str | Path, checkpoint: str | Path | None = None) -> TrainedRun:
    """The run's model in eval mode with its final weights (or `checkpoint`'s), every file verified:
    the final weights against RUN/model.safetensors.sha256, a checkpoint against its meta.json."""
    run_dir = Path(run_dir)
    if run_dir.is_file():
        raise CheckpointError(f"{run_dir}: a file; expected a training run folder (`cnnatlas train --out DIR`)")
    config, info, saved = read_run_config(run_dir)
    if checkpoint is not None:
        ckpt = load_checkpoint(checkpoint)
        weights, source = ckpt.weights, ckpt.path
    elif (run_dir / FINAL_WEIGHTS).is_file():
        weights, source = load_final_weights(run_dir)
    else:
        ckpt = load_latest_checkpoint(run_dir)
        weights, source = ckpt.weights, ckpt.path
    try:
        model = build_model(config, info)
    except CnnAtlasError as err:
        raise CheckpointError(f"{run_dir / 'config.json'}: its model cannot be built ({err})") from None
    fit_weights(
        model,
        weights,
        source,
        f"{config.model} ({info.num_classes} classes, {info.in_channels} channel{'s' if info.in_channels > 1 else ''})",
    )
    return TrainedRun(run_dir, config, info, model.eval(), source, saved.get("data_origin"))


def load_run_model(run_dir: str | Path) -> LoadedModel:
    """A run folder as the analyser, the pictures and export take a model (`cnnatlas summary RUN_DIR`): its
    model built for its data with its trained weights (`load_run`), labelled "MODEL (folder)", with one
    input of the size it was trained at (`TrainedRun.input_size`)."""
    run = load_run(run_dir)
    size = run.input_size
    return LoadedModel(run.model, f"{run.config.model} ({Path(run_dir).name})", (1, *size), trained=True)


def load_run_or_model(spec: str, meta: bool = True, model_args: dict | None = None) -> LoadedModel:
    """MODEL as the analyser, the pictures and `bench` take it: a training run folder as it was trained
    (`load_run_model`), else a registry name, torchvision:NAME, timm:NAME or path/to/file.py:factory
    built with `model_args` (`cnnatlas.loading.load_model`, on the meta device where `meta` allows it)."""
    if is_run_folder(spec):
        if model_args:
            raise InvalidArgumentError(
                f"--model-arg builds a model anew; {spec} is a training run folder, built as it was trained"
            )
        return load_run_model(spec)
    return load_model(spec, meta=meta, model_args=model_args)
