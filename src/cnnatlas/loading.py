"""Any model by name, for the analyser and the pictures: a registry name (`resnet50`), `torchvision:NAME`,
`timm:NAME` or `path/to/file.py:factory` (a function returning an nn.Module), built on the meta device
where its constructor allows it, with the input shape it expects."""

from __future__ import annotations

import importlib.util
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import CnnAtlasError, InvalidArgumentError, UnknownModelError, did_you_mean, require
from .registry import get_entry, list_models
from .zoo import create_model

_VIDEO_TV = {"r3d_18", "mc3_18", "r2plus1d_18", "s3d", "mvit_v1_b", "mvit_v2_s", "swin3d_t", "swin3d_s", "swin3d_b"}


@dataclass
class LoadedModel:
    model: torch.nn.Module
    label: str
    input_size: tuple[int, ...] | None  # full input shape with batch 1, when known
    registry_name: str | None = None
    trained: bool = False  # a training run's weights (`cnnatlas.train.load_run_model`), not those as built


INIT_SEED = 0  # the seed of every model built here with real, initialised weights


def build_on_meta(factory, label: str, meta: bool = True) -> torch.nn.Module:
    """Build on the meta device (no memory, no initialisation); fall back to the CPU if the
    constructor needs real values. meta=False builds with real weights, initialised from seed
    `INIT_SEED` every time (an effective receptive field or a picture of an untrained model is the
    same on each run), the caller's random state left as it was. A constructor that fails either way
    is named in one line (InvalidArgumentError)."""
    if meta:
        try:
            with torch.device("meta"):
                return factory()
        except CnnAtlasError:
            raise
        except Exception:  # noqa: BLE001 — some constructors compute with tensor values: try on the CPU
            pass
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(INIT_SEED)
            return factory()
    except CnnAtlasError:
        raise
    except Exception as err:  # noqa: BLE001 — the user's code: say where it failed, in one line
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise InvalidArgumentError(f"{label}: building the model failed: {type(err).__name__}: {first}") from None


def model_args_text(model_args: dict) -> str:
    """{"backbone": "mobilenet_v2", "output_stride": 8} → "backbone='mobilenet_v2', output_stride=8"."""
    return ", ".join(f"{key}={value!r}" for key, value in model_args.items())


def load_model(spec: str, meta: bool = True, model_args: dict | None = None) -> LoadedModel:
    """Resolve MODEL: registry name, torchvision:NAME, timm:NAME or path/to/file.py:factory, built with
    the keyword arguments `model_args` where given (the model's own constructor, torchvision's
    `get_model`, timm's `create_model` or the factory takes them). meta=True builds on the meta device
    where the constructor allows it. A registry model built with arguments is no longer the one its
    published figures describe: it has no `registry_name`, and its input is what it says it takes."""
    kwargs = dict(model_args or {})
    if spec.startswith("torchvision:"):
        return _torchvision(spec.split(":", 1)[1], meta, kwargs)
    if spec.startswith("timm:"):
        return _timm(spec.split(":", 1)[1], meta, kwargs)
    if re.search(r"\.py:[A-Za-z_][A-Za-z0-9_]*$", spec):
        return _from_file(spec, meta, kwargs)
    if spec not in list_models():
        raise UnknownModelError(
            f"unknown model {spec!r}.{did_you_mean(spec, list_models())} Use a registry name (`cnnatlas models`), "
            "torchvision:NAME, timm:NAME or path/to/file.py:factory."
        )
    entry = get_entry(spec)
    if kwargs:
        label = _labelled(spec, kwargs)
        model = build_on_meta(lambda: create_model(spec, **kwargs), label, meta)
        return LoadedModel(model, label, (1, *model.default_input_size))
    pub = entry.published
    size = pub.input_size if pub.input_size and len(pub.input_size) == len(entry.input_size) else entry.input_size
    return LoadedModel(build_on_meta(lambda: create_model(spec), spec, meta), spec, (1,) + tuple(size), spec)


def _labelled(label: str, kwargs: dict) -> str:
    return f"{label}({model_args_text(kwargs)})" if kwargs else label


def _torchvision(name: str, meta: bool, kwargs: dict) -> LoadedModel:
    import torchvision

    available = torchvision.models.list_models()
    if name not in available:
        raise UnknownModelError(f"torchvision has no model {name!r}.{did_you_mean(name, available)}")
    label = _labelled(f"torchvision:{name}", kwargs)
    model = build_on_meta(lambda: torchvision.models.get_model(name, **kwargs), label, meta)
    size: tuple[int, ...] = (1, 3, 224, 224)
    try:
        weights = torchvision.models.get_model_weights(name).DEFAULT
        crop = weights.transforms().crop_size
        crop = list(crop) * (2 // len(crop)) if len(crop) < 2 else list(crop)
        size = (1, 3, 16, *crop) if name in _VIDEO_TV else (1, 3, *crop)
    except Exception:  # noqa: BLE001 — no weights metadata: keep the ImageNet default
        if name in _VIDEO_TV:
            size = (1, 3, 16, 112, 112)
    return LoadedModel(model, label, size)


def _timm(name: str, meta: bool, kwargs: dict) -> LoadedModel:
    timm = require("timm", "timm", "timm:NAME")
    if name not in timm.list_models():
        raise UnknownModelError(f"timm has no model {name!r}.{did_you_mean(name, timm.list_models())}")
    label = _labelled(f"timm:{name}", kwargs)
    model = build_on_meta(lambda: timm.create_model(name, pretrained=False, **kwargs), label, meta)
    cfg = getattr(model, "pretrained_cfg", None) or {}
    size = (1, *cfg["input_size"]) if cfg.get("input_size") else None
    return LoadedModel(model, label, size)


def _from_file(spec: str, meta: bool, kwargs: dict) -> LoadedModel:
    path_str, factory_name = spec.rsplit(":", 1)
    path = Path(path_str)
    if not path.is_file():
        raise InvalidArgumentError(f"{spec}: no file {path_str!r}")
    module_spec = importlib.util.spec_from_file_location(f"_cnnatlas_user_{path.stem}", path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_spec.name] = module
    try:
        module_spec.loader.exec_module(module)
    except Exception as err:  # noqa: BLE001 — the user's file: say where it failed
        raise InvalidArgumentError(f"{spec}: importing {path_str} failed: {type(err).__name__}: {err}") from err
    factory = getattr(module, factory_name, None)
    if not callable(factory):
        names = [n for n in vars(module) if callable(vars(module)[n]) and not n.startswith("_")]
        raise InvalidArgumentError(
            f"{spec}: {path_str} has no callable {factory_name!r}.{did_you_mean(factory_name, names)}"
        )
    label = _labelled(spec, kwargs)
    model = build_on_meta(lambda: factory(**kwargs), label, meta)
    if not isinstance(model, torch.nn.Module):
        raise InvalidArgumentError(f"{spec}: {factory_name}() returned {type(model).__name__}, not an nn.Module")
    size = getattr(module, "INPUT_SIZE", None)
    return LoadedModel(model, label, tuple(size) if size else None)
