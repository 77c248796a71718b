"""One registry: model names → builders, and the published figures for each name.

`register_model(name, cls, family=..., input_size=..., **config)` records that `name` is `cls`
built with `config`; the keyword arguments a user may pass to `create_model` are the other
parameters of `cls.__init__`. Published figures (parameters, MACs, accuracy, with their source)
live in `published.json` beside this file, read once.
"""

from __future__ import annotations

import fnmatch
import inspect
import json
import typing
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from torch import nn

from .errors import InvalidArgumentError, UnknownModelError, did_you_mean


@dataclass(frozen=True)
class Published:
    """Figures published for a model, and where they come from. Any of them may be None.

    `params_exact` is False when the source gives a rounded figure ("60 million"); `gmacs` is in
    billions of multiply–accumulates (what torchvision's table calls GFLOPS); `top1`/`top5` are
    percentages on `dataset`, as are a segmentation model's mean IoU `miou` and `pixel_acc`.
    """

    params: int | None = None
    params_exact: bool = True
    gmacs: float | None = None
    top1: float | None = None
    top5: float | None = None
    dataset: str | None = None
    miou: float | None = None
    pixel_acc: float | None = None
    input_size: tuple[int, ...] | None = None
    source: str | None = None  # id of the source in published.json
    citation: str | None = None  # the source in full
    note: str | None = None

    @property
    def macs(self) -> int | None:
        return None if self.gmacs is None else round(self.gmacs * 1e9)

    def as_dict(self) -> dict[str, Any]:
        return {
            "params": self.params,
            "params_exact": self.params_exact,
            "macs": self.macs,
            "gmacs": self.gmacs,
            "top1": self.top1,
            "top5": self.top5,
            "miou": self.miou,
            "pixel_acc": self.pixel_acc,
            "dataset": self.dataset,
            "input_size": list(self.input_size) if self.input_size else None,
            "source": self.citation,
            "source_id": self.source,
            "note": self.note,
        }

    def params_agreement(self, measured: int) -> Agreement:
        """Does a measured parameter count agree with this figure? Exact figures must be equal;
        rounded ones (params_exact=False) agree within APPROX_TOLERANCE."""
        if self.params is None:
            return Agreement("none", "no published figure")
        diff = (measured - self.params) / self.params
        if self.params_exact:
            return (
                Agreement("exact", "exact")
                if measured == self.params
                else Agreement("differs", f"differs ({diff:+.2%})")
            )
        if abs(diff) <= APPROX_TOLERANCE:
            return Agreement("approx", f"≈ rounded figure ({diff:+.1%})")
        return Agreement("differs", f"differs from rounded figure ({diff:+.1%})")

    def macs_agreement(self, measured: int) -> Agreement:
        """Does a measured MAC count agree with the published GMACs to all its published digits?"""
        if self.gmacs is None:
            return Agreement("none", "no published figure")
        digits = len(repr(self.gmacs).split(".")[1]) if "." in repr(self.gmacs) else 0
        if round(measured / 1e9, digits) == self.gmacs:
            return Agreement("exact", f"equal to {digits} decimals")
        diff = (measured / 1e9 - self.gmacs) / self.gmacs
        return Agreement("differs", f"differs ({diff:+.2%})")


APPROX_TOLERANCE = 0.05  # a rounded published figure ("60 million") agrees within 5%


@dataclass(frozen=True)
class Agreement:
    """Outcome of comparing a measured figure with a published one."""

    status: str  # "exact", "approx", "differs" or "none"
    text: str

    @property
    def ok(self) -> bool:
        return self.status in ("exact", "approx")


@dataclass(frozen=True)
class ModelEntry:
    """A registered model name: how to build it and what is published about it."""

    name: str
    family: str
    cls: type[nn.Module]
    config: dict[str, Any]
    input_size: tuple[int, ...]  # (C, H, W), (C, T, H, W) or (C, L) of one sample
    torchvision: str | None  # torchvision's builder of the same architecture, if any
    published: Published = field(default_factory=Published)

    @property
    def summary(self) -> str:
        doc = inspect.getdoc(self.cls) or ""
        return doc.split("\n\n")[0].replace("\n", " ")

    def accepted_kwargs(self) -> dict[str, inspect.Parameter]:
        """The constructor's parameters a user may set (the name fixes the rest)."""
        params = inspect.signature(self.cls.__init__).parameters
        return {
            k: p
            for k, p in params.items()
            if k != "self" and k not in self.config and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        }

    def default_arguments(self) -> dict[str, Any]:
        """Each argument a user may set, with its default as JSON (None where it has none)."""
        return {k: (None if p.default is p.empty else _jsonable(p.default)) for k, p in self.accepted_kwargs().items()}


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(
    name: str,
    cls: type[nn.Module],
    *,
    family: str,
    input_size: tuple[int, ...],
    torchvision: str | None = None,
    **config: Any,
) -> None:
    """Register `name` as `cls(**config, **user_kwargs)`. Names are unique."""
    if name in _REGISTRY:
        raise ValueError(f"model name {name!r} is registered twice")
    _REGISTRY[name] = ModelEntry(
        name, family, cls, config, tuple(input_size), torchvision, _published_figures().get(name, Published())
    )


def _entry(name: str) -> ModelEntry:
    if not isinstance(name, str):
        raise InvalidArgumentError(f"a model name must be a string; got {type(name).__name__}")
    if name not in _REGISTRY:
        raise UnknownModelError(
            f"unknown model {name!r}.{did_you_mean(name, _REGISTRY)} "
            f"`cnnatlas models` lists all {len(_REGISTRY)} names."
        )
    return _REGISTRY[name]


def list_models(pattern: str = "*") -> list[str]:
    """Registered names matching a shell-style pattern ("resnet*", "*_bn"), sorted."""
    if not isinstance(pattern, str):
        raise InvalidArgumentError(f"list_models expects a pattern string such as 'resnet*'; got {pattern!r}")
    return sorted(n for n in _REGISTRY if fnmatch.fnmatchcase(n, pattern))


def registered_input_size(cls: type) -> tuple[int, ...] | None:
    """The input size (C, *spatial) of the first name registered for model class `cls`, None if none is."""
    return next((entry.input_size for entry in _REGISTRY.values() if entry.cls is cls), None)


def get_entry(name: str) -> ModelEntry:
    """The registry entry of `name` (builder, configuration, published figures)."""
    return _entry(name)


def build_model(name: str, **kwargs: Any) -> nn.Module:
    """The model registered as `name` with random weights; kwargs (checked against the constructor's
    parameters and type hints) override its defaults. `cnnatlas.create_model` adds pretrained weights
    and feature extraction on top."""
    entry = _entry(name)
    accepted = entry.accepted_kwargs()
    hints = _type_hints(entry.cls)
    for key, value in kwargs.items():
        if key not in accepted:
            fixed = " (fixed by the model name)" if key in entry.config else ""
            raise InvalidArgumentError(
                f"{name}: unknown keyword argument {key!r}{fixed}.{did_you_mean(key, accepted)} "
                f"Accepted: {', '.join(accepted) or 'none'}."
            )
        _check_type(name, key, value, hints.get(key))
    model = entry.cls(**entry.config, **kwargs)
    if getattr(model, "default_input_size", None) is None:  # one sample, (C, *spatial), as registered
        model.default_input_size = (getattr(model, "in_channels", entry.input_size[0]),) + entry.input_size[1:]
    return model


def _type_hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls.__init__)
    except Exception:  # unresolvable annotations: skip type checks, the constructor still validates
        return {}


_LIMIT = 2**31 - 1


def _check_type(model: str, key: str, value: Any, hint: Any) -> None:
    """Reject a value whose type contradicts a plain int/float/bool/str annotation."""
    ok = {
        int: lambda v: isinstance(v, int) and not isinstance(v, bool),
        float: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        bool: lambda v: isinstance(v, bool),
        str: lambda v: isinstance(v, str),
    }
    if hint in ok and not ok[hint](value):
        raise InvalidArgumentError(
            f"{model}: keyword argument {key!r} must be {hint.__name__}; got {value!r} ({type(value).__name__})"
        )
    if hint in (int, float) and not -_LIMIT <= value <= _LIMIT:  # past any size a tensor can take
        raise InvalidArgumentError(f"{model}: keyword argument {key!r} must be between ±{_LIMIT}; got {value!r}")


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return getattr(value, "__name__", repr(value))


@cache
def _published_figures() -> dict[str, Published]:
    text = resources.files("cnnatlas").joinpath("published.json").read_text(encoding="utf-8")
    data = json.loads(text)
    sources = data["sources"]
    figures = {}
    for name, row in data["models"].items():
        row = dict(row)
        row["citation"] = sources[row["source"]]
        if row.get("input_size") is not None:
            row["input_size"] = tuple(row["input_size"])
        figures[name] = Published(**row)
    return figures


def published_sources() -> dict[str, str]:
    """Source id → full citation, as stored in published.json."""
    text = resources.files("cnnatlas").joinpath("published.json").read_text(encoding="utf-8")
    return json.loads(text)["sources"]
