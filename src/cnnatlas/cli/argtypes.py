"""Argument types shared by the sub-commands: each checks one flag's value when it is parsed, so a bad
value ends as one line naming the flag, what it expects and what came (argparse adds "argument --FLAG:"),
and exit 2 — before any model is built or any file written.

    p.add_argument("--samples", type=integer(1), default=8)
    p.add_argument("--fraction", type=FRACTION, default=0.95)
    p.add_argument("--out", type=out_file, required=True)
"""

from __future__ import annotations

import argparse
import ast
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable

from ..errors import InvalidArgumentError

# Sizes, channels, counts: a CNN never needs more, and every product of a few of them stays within a float
# (the ratios the calculators print), so a hostile 10**400 cannot end in an OverflowError.
MAX_INT = 2**31 - 1


MODEL_HELP = "registry name, torchvision:NAME, timm:NAME, path/to/file.py:factory, or a training run folder"


def model_arg(text: str) -> tuple[str, Any]:
    """KEY=VALUE → (KEY, VALUE), VALUE read as a Python literal where it parses as one (8, 0.5, True,
    (1, 2)), else kept as the string (mobilenet_v2)."""
    key, sep, value = text.partition("=")
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, KEY a keyword argument's name; got {text!r}")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return key, value


def model_args(pairs: list[tuple[str, Any]] | None) -> dict[str, Any]:
    """The --model-arg pairs as keyword arguments (a key given twice: the last value)."""
    return dict(pairs or [])


def add_model_arg(parser, builds: str = "the model") -> None:
    """--model-arg KEY=VALUE (repeatable): a keyword argument of `builds`'s constructor."""
    parser.add_argument(
        "--model-arg",
        action="append",
        type=model_arg,
        metavar="KEY=VALUE",
        help=f"keyword argument {builds} is built with (repeatable), e.g. num_classes=10 or backbone=mobilenet_v2",
    )


def names_a_zoo_model(run_or_model: str) -> bool:
    """Whether a RUN_DIR|MODEL argument (`eval`, `predict`) names a zoo model: a registered name that is
    not a folder here (a run folder of that name wins)."""
    from ..registry import list_models

    return not Path(run_or_model).is_dir() and run_or_model in list_models()


def _range_text(minimum: float | None, maximum: float | None, open_min: bool = False) -> str:
    low = None if minimum is None else f"{'>' if open_min else '≥'} {minimum:g}"
    high = None if maximum is None else f"≤ {maximum:g}"
    return " and ".join(t for t in (low, high) if t)


def integer(minimum: int | None = 1, maximum: int = MAX_INT) -> Callable[[str], int]:
    """A whole number in [minimum, maximum] (minimum None: any down to −maximum)."""
    low = -maximum if minimum is None else minimum
    expected = f"a whole number from {low} to {maximum}" if maximum != MAX_INT else f"a whole number ≥ {low}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}; got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"expected {expected}; got {text!r}")
        if value > maximum:
            raise argparse.ArgumentTypeError(f"expected a whole number from {low} to {maximum}; got {text!r}")
        return value

    parse.__name__ = "integer"
    return parse


def number(
    minimum: float | None = None, maximum: float | None = None, *, open_min: bool = False
) -> Callable[[str], float]:
    """A finite number (no nan, no inf) in the range given; open_min excludes the minimum itself."""
    expected = f"a finite number {_range_text(minimum, maximum, open_min)}".rstrip()

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}; got {text!r}") from None
        if (
            not math.isfinite(value)
            or (minimum is not None and (value <= minimum if open_min else value < minimum))
            or (maximum is not None and value > maximum)
        ):
            raise argparse.ArgumentTypeError(f"expected {expected}; got {text!r}")
        return value

    parse.__name__ = "number"
    return parse


FRACTION = number(0, 1, open_min=True)  # a share of a whole, in (0, 1]


def nonempty(what: str) -> Callable[[str], str]:
    """Any text but an empty one (an empty path would silently mean the current folder)."""

    def parse(text: str) -> str:
        if not text.strip():
            raise argparse.ArgumentTypeError(f"expected {what}; got {text!r}")
        return text

    parse.__name__ = "text"
    return parse


PATH = nonempty("a path")


def _nearest_existing(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _writable_folder(text: str, path: Path) -> None:
    """`path` is a writable folder, or the folders missing on the way to it can be made: the nearest
    existing one is a writable folder."""
    base = _nearest_existing(path)
    if not base.is_dir():
        raise argparse.ArgumentTypeError(f"expected a path under a folder; got {text!r}, but {str(base)!r} is a file")
    if not os.access(base, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(
            f"expected a place this user can write to; got {text!r}, but the folder {str(base)!r} is not writable"
        )


def _path_type(check: Callable[[str], None], name: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        try:
            check(text)
        except (OSError, ValueError) as err:  # a name too long, a NUL byte: not a path this system takes
            raise argparse.ArgumentTypeError(f"expected a usable path; got {text!r} ({err})") from None
        return text

    parse.__name__ = name
    return parse


def _out_dir(text: str) -> None:
    """An output folder: an existing writable folder, or one that can be made."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a folder; got an empty path")
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"expected a folder; got {text!r}, which is a file")
    _writable_folder(text, path)


def _out_file(text: str) -> None:
    """An output file: a new file in a folder that exists or can be made, or an existing writable file."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a file name; got an empty path")
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"expected a file name; got {text!r}, which is a folder")
    if path.exists() and not os.access(path, os.W_OK):
        raise argparse.ArgumentTypeError(f"expected a file this user can write; got {text!r}, which is read-only")
    if not path.exists():
        _writable_folder(text, path)


out_dir = _path_type(_out_dir, "out_dir")
out_file = _path_type(_out_file, "out_file")


@contextmanager
def writing(out: str, what: str = "file") -> Iterator[None]:
    """Around the writing of --out: a write the system refuses there (/proc, a full disk) ends as one line
    naming --out; any other OSError (a file read) goes on to main, which also prints one line."""
    try:
        yield
    except OSError as err:
        where, target = Path(os.fsdecode(err.filename or "")).absolute(), Path(out).absolute()
        if not err.filename or not (where.is_relative_to(target) or target.is_relative_to(where)):  # nor a parent
            raise
        raise InvalidArgumentError(
            f"--out: expected a {what} this user can write; could not write "
            f"{os.fsdecode(err.filename)!r} ({err.strerror or err})"
        ) from None
