"""What some tests need from the machine, checked in one place: Fashion-MNIST (Debian's
dataset-fashion-mnist), Graphviz's dot and Chromium, which bin/setup-env installs, and the Free Spoken
Digit Dataset beside the repository. Where one is missing, a test skips on a person's machine but
fails in CI (CI=true): there a skip would hide that the test never ran.

    @pytest.mark.needs("fashion-mnist")   # a test (tests/conftest.py reads the mark)
    require("chromium")                   # inside a test or fixture
    if available("graphviz"): ...         # an optional part of a test (fails in CI where missing)
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from browser import chromium_binary

from cnnatlas.data.fashion_mnist import default_fashion_mnist_dir

# The tests' copy of the Free Spoken Digit Dataset: $CNNATLAS_FSDD, else shared/data/fsdd in a folder above
# the tests (../shared beside the repository).
FSDD_FIXTURE = (
    Path(os.environ["CNNATLAS_FSDD"])
    if os.environ.get("CNNATLAS_FSDD")
    else next(
        (
            p / "shared" / "data" / "fsdd"
            for p in Path(__file__).resolve().parents
            if (p / "shared" / "data" / "fsdd").is_dir()
        ),
        Path(__file__).resolve().parents[2] / "shared" / "data" / "fsdd",
    )
)

NEEDS: dict[str, tuple[Callable[[], bool], str]] = {
    "fashion-mnist": (
        lambda: default_fashion_mnist_dir().is_dir(),
        "Fashion-MNIST: apt-get install dataset-fashion-mnist (bin/setup-env installs it)",
    ),
    "graphviz": (
        lambda: shutil.which("dot") is not None,
        "Graphviz's dot: apt-get install graphviz (bin/setup-env installs it)",
    ),
    "chromium": (
        lambda: chromium_binary() is not None,
        "Chromium: apt-get install chromium (bin/setup-env installs it)",
    ),
    "fsdd": (
        lambda: FSDD_FIXTURE.is_dir(),
        f"the Free Spoken Digit Dataset: no folder {FSDD_FIXTURE} (../shared/data/fsdd or $CNNATLAS_FSDD)",
    ),
}


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def available(what: str) -> bool:
    """Is `what` here? In CI a missing one fails the test instead of answering False."""
    check, hint = NEEDS[what]
    if check():
        return True
    if in_ci():
        pytest.fail(f"{hint} — missing in CI, where every test must run", pytrace=False)
    return False


def require(what: str) -> None:
    """Skip the test where `what` is missing (fail in CI)."""
    if not available(what):
        pytest.skip(f"not installed: {NEEDS[what][1]}")
