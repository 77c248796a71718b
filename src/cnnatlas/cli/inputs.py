"""The --input flag of the analysis commands: shapes written as 1x3x224x224, several joined by commas."""

from __future__ import annotations

from typing import Any

from ..errors import InvalidArgumentError
from ..loading import LoadedModel


def parse_shape(text: str) -> tuple[int, ...]:
    """'1x3x224x224' → (1, 3, 224, 224)."""
    try:
        shape = tuple(int(p) for p in text.lower().replace("×", "x").split("x"))
    except ValueError:
        raise InvalidArgumentError(f"--input: expected sizes joined by 'x' such as 1x3x224x224; got {text!r}") from None
    if not shape or any(d < 1 for d in shape):
        raise InvalidArgumentError(f"--input: every size must be ≥ 1; got {text!r}")
    return shape


def parse_inputs(text: str | None, loaded: LoadedModel) -> list[tuple[int, ...]]:
    """The shapes of --input (comma-separated), or the model's default input."""
    if text is None:
        if loaded.input_size is None:
            raise InvalidArgumentError(
                f"{loaded.label}: no default input size is known; give one with --input 1x3x224x224"
            )
        return [loaded.input_size]
    shapes = [parse_shape(part) for part in text.split(",")]
    default = loaded.input_size
    if len(shapes) > 1 and all(len(shape) == 1 for shape in shapes):  # 1,3,64,64: sizes, not inputs of one number
        meant = tuple(shape[0] for shape in shapes)
        if default is not None and len(meant) < len(default):
            meant = completed(meant, default) or meant
        raise InvalidArgumentError(
            f"--input {text} reads as {len(shapes)} inputs of one size each; a shape's sizes are joined by x, "
            f"batch first (--input {'x'.join(map(str, meant))}), and commas separate the inputs of a model "
            "that takes several"
        )
    if len(shapes) == 1 and default is not None and len(shapes[0]) < len(default):
        whole = completed(shapes[0], default)
        raise InvalidArgumentError(
            f"--input takes the batch size first, as {loaded.label}'s default {'x'.join(map(str, default))} does"
            + (f": --input {'x'.join(map(str, whole))}" if whole else "")
            + f"; got {text}"
        )
    return shapes


def completed(given: tuple[int, ...], default: tuple[int, ...]) -> tuple[int, ...] | None:
    """A shape given short completed from the model's default: without the batch, 3x64x64 → 1x3x64x64; one
    side, 64, → 1x3x64x64 for an image (1x3x16x64x64 for a clip), 16000 → 1x1x16000 for sound. None where
    what was left out is not clear."""
    if len(given) == len(default) - 1:
        return (default[0], *given)
    if len(given) == 1:  # one side for the spatial sides of an image or a frame, or a length of samples
        return (*default[:-2], *given, *given) if len(default) >= 4 else (*default[:-1], *given)
    return None


def input_arg(shapes: list[tuple[int, ...]]) -> Any:
    """What `analyze` takes: one shape, or a list of them for a model of several inputs."""
    return shapes[0] if len(shapes) == 1 else shapes
