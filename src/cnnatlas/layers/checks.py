"""Argument checks for the public constructors of layers and models: each raises one
InvalidArgumentError line naming the owner, the argument, what was expected and what came.

They run where users pass arguments (a model's constructor, `create_model`, a public block), not
again in every block a model builds from arguments it has already checked.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..errors import InvalidArgumentError


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_int(owner: str, name: str, value: object, minimum: int = 1) -> int:
    """An int ≥ minimum (bool is refused)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise InvalidArgumentError(f"{owner}: {name} must be an integer ≥ {minimum}; got {value!r}")
    return value


def check_positive_ints(owner: str, **values: object) -> None:
    """Each named value a positive int: channel counts, depths, growth rates."""
    for name, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise InvalidArgumentError(f"{owner}: {name} must be a positive integer; got {value!r}")


def check_rate(owner: str, name: str, value: object) -> float:
    """A probability 0 ≤ value < 1 (dropout and drop-path rates)."""
    if not _is_number(value) or not 0 <= value < 1:
        raise InvalidArgumentError(f"{owner}: {name} must be a number in [0, 1); got {value!r}")
    return float(value)


def check_number(owner: str, name: str, value: object, low: float, high: float) -> float:
    """A number in the closed range [low, high]."""
    if not _is_number(value) or not low <= value <= high:
        raise InvalidArgumentError(f"{owner}: {name} must be a number in [{low:g}, {high:g}]; got {value!r}")
    return float(value)


def check_multiplier(owner: str, name: str, value: object) -> float:
    """A multiplier (α, ρ, width_mult …): a number > 0."""
    if not _is_number(value) or not value > 0:
        raise InvalidArgumentError(f"{owner}: {name} must be a number > 0; got {value!r}")
    return float(value)


def check_choice(owner: str, name: str, value: object, choices: Iterable[str]) -> str:
    """One of `choices`."""
    choices = tuple(choices)
    if value not in choices:
        raise InvalidArgumentError(f"{owner}: {name} must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return value


def check_bool(owner: str, name: str, value: object) -> bool:
    """True or False, not a truthy stand-in."""
    if not isinstance(value, bool):
        raise InvalidArgumentError(f"{owner}: {name} must be True or False; got {value!r}")
    return value


def check_dims(dims: object) -> int:
    """Spatial dimensions of a block: 1 (audio), 2 (image) or 3 (video)."""
    if dims not in (1, 2, 3):
        raise InvalidArgumentError(f"dims must be 1, 2 or 3 (audio, image, video); got {dims!r}")
    return dims
