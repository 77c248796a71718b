"""The errors cnnatlas raises: one base class, each message naming what was expected and what came."""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterable
from types import ModuleType


class CnnAtlasError(Exception):
    """Base class of every error cnnatlas raises on purpose."""


class UnknownModelError(CnnAtlasError, KeyError):
    """A model name that is not in the registry."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class InvalidArgumentError(CnnAtlasError, ValueError):
    """A keyword argument that is unknown, of the wrong type or out of range."""


class InputShapeError(CnnAtlasError, ValueError):
    """An input tensor whose rank, channels or size the model cannot take."""


class WeightsError(CnnAtlasError, ValueError):
    """A state dict that does not fit the model it is loaded into."""


class MissingDependencyError(CnnAtlasError, ImportError):
    """An optional package that a feature needs and that is not installed."""


class UnavailableError(CnnAtlasError):
    """Something the call needs and cannot have now, through no fault of its arguments: a download that
    failed (no network, a server's error, a file that is not the published one), a run folder another
    process holds. The command line exits 3 for it, not 2, so a script can tell it from a usage error."""


def require(module: str, extra: str, feature: str) -> ModuleType:
    """Import the optional `module`, or raise `MissingDependencyError` in one line naming what is missing
    and the pip command that installs it (the extra of cnnatlas's pyproject.toml that lists it)."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        missing = (getattr(err, "name", None) or module).split(".")[0]
        why = "which is not installed" if missing == module.split(".")[0] else f"which failed to import ({err})"
        raise MissingDependencyError(
            f"{feature} needs the {module} package, {why}: pip install 'cnnatlas[{extra}]'"
        ) from None


def closest(name: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    """The candidates that look most like `name` (for "did you mean" hints)."""
    candidates = list(candidates)
    found = difflib.get_close_matches(name, candidates, n=n, cutoff=0.5)
    if not found:  # fall back on a shared prefix: "vgg" -> vgg11, vgg13, ...
        found = [c for c in candidates if c.startswith(name[:3])][:n]
    return found


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """A ' Did you mean ...?' suffix, or '' when nothing is close."""
    found = closest(name, candidates)
    return f" Did you mean {', '.join(repr(c) for c in found)}?" if found else ""
