"""The `needs` mark: `@pytest.mark.needs("fashion-mnist")` skips a test where that is missing, and
fails it in CI (tests/needs.py); and `colour_folder`, a tiny image folder of three classes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from needs import FSDD_FIXTURE, NEEDS, require


def pytest_configure(config: pytest.Config) -> None:
    if FSDD_FIXTURE.is_dir():  # `--data fsdd` finds the tests' copy instead of downloading it
        os.environ.setdefault("CNNATLAS_FSDD", str(FSDD_FIXTURE))
    config.addinivalue_line("markers", f"needs(what): the test needs one of {', '.join(NEEDS)} (tests/needs.py)")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    for mark in item.iter_markers("needs"):
        for what in mark.args:
            require(what)


@pytest.fixture
def colour_folder(tmp_path) -> Path:
    """An image folder of three classes (red, green, blue: 16×16 RGB squares), 6 training and 3 test images
    each, in train/ and test/."""
    from PIL import Image

    root = tmp_path / "rgb"
    for c, colour in enumerate(("red", "green", "blue")):
        for split, n in (("train", 6), ("test", 3)):
            (root / split / colour).mkdir(parents=True)
            for i in range(n):
                Image.new("RGB", (16, 16), tuple(200 * (j == c) + 10 * i for j in range(3))).save(
                    root / split / colour / f"{i}.png"
                )
    return root
