"""The `needs` mark: `@pytest.mark.needs("fashion-mnist")` skips a test where that is missing, and
fails it in CI (tests/needs.py)."""

from __future__ import annotations

import os

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
