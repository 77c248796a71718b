"""The atlas as a person sees it: built by `cnnatlas report`, opened from disk in headless Chromium
(Debian's `chromium`, installed by bin/setup-env), every page visited with no console error, no
failed load and no link leaving the atlas or pointing nowhere; screenshots of the index and a model
page; the models table sorts and filters.

Set CNNATLAS_SCREENSHOTS=DIR to keep the screenshots (docs/atlas-index.png, docs/atlas-model.png).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import deque
from pathlib import Path
from urllib.parse import unquote, urlsplit

import numpy as np
import pytest
from browser import Chromium
from needs import require
from PIL import Image

from cnnatlas.cli import COMMANDS, main
from cnnatlas.train import default_config, train

pytestmark = pytest.mark.slow

MODELS = "lenet5,resnet20,googlenet,mobilenet_v2"


@pytest.fixture(scope="module")
def atlas(tmp_path_factory) -> Path:
    require("chromium")
    require("graphviz")
    root = tmp_path_factory.mktemp("atlas")
    runs = root / "runs"
    train(default_config("lenet5", "digits", epochs=1, quiet=True, out=str(runs / "lenet5-digits"), seed=0))
    claims = "none"
    if "verify" in COMMANDS:  # two quick claims, measured now by `cnnatlas verify --json`
        done = subprocess.run(
            [sys.executable, "-m", "cnnatlas", "verify", "conv-params", "output-size", "--json"],
            capture_output=True,
            text=True,
            timeout=600,
        )
        if done.stdout.strip().startswith("["):
            (root / "claims.json").write_text(done.stdout)
            claims = str(root / "claims.json")
    out = root / "site"
    assert (
        main(
            [
                "report",
                "--out",
                str(out),
                "--models",
                MODELS,
                "--runs",
                str(runs),
                "--erf-size",
                "32",
                "--erf-samples",
                "2",
                "--quiet",
            ]
            + (["--no-claims"] if claims == "none" else ["--claims", claims])
        )
        == 0
    )
    return out


@pytest.fixture(scope="module")
def browser():
    with Chromium() as b:
        yield b


def _links(page) -> list[str]:
    return page.evaluate("""Array.from(document.querySelectorAll('a[href], img[src], link[href], script[src]'))
                            .map(e => e.href || e.src)""")


def test_every_page_loads_cleanly_and_every_link_resolves(atlas, browser):
    start = (atlas / "index.html").as_uri()
    page = browser.open(start)
    seen, queue, checked = set(), deque([start]), 0
    while queue:
        url = queue.popleft()
        if url in seen:
            continue
        seen.add(url)
        page.goto(url)
        assert page.problems == [], (url, page.problems)
        broken_images = page.evaluate(
            "Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)"
        )
        assert broken_images == [], (url, broken_images)
        for link in _links(page):
            parts = urlsplit(link)
            assert parts.scheme == "file", f"{url} links outside the atlas: {link}"
            target = Path(unquote(parts.path))
            assert target.is_file() and atlas in target.parents, f"{url}: broken link {link}"
            checked += 1
            if parts.fragment:
                ids = (
                    json.loads(
                        page.evaluate("JSON.stringify(Array.from(document.querySelectorAll('[id]')).map(e => e.id))")
                    )
                    if target.as_uri() == url.split("#")[0]
                    else None
                )
                if ids is not None:
                    assert parts.fragment in ids, f"{url}: no anchor #{parts.fragment}"
            if target.suffix == ".html":
                queue.append(target.as_uri())
    pages = {Path(urlsplit(u).path).name for u in seen}
    assert {"index.html", "claims.html", "runs.html", "lenet5.html", "googlenet.html"} <= pages
    assert checked > 40


def _assert_screenshot(path: Path) -> None:
    with Image.open(path) as img:
        assert img.size == (1280, 900)
        rgb = np.asarray(img.convert("RGB"))
    assert rgb.std() > 20 and len(np.unique(rgb.reshape(-1, 3), axis=0)) > 200, "a blank page"


def test_screenshots_of_the_index_and_a_model_page(atlas, browser, tmp_path):
    keep = os.environ.get("CNNATLAS_SCREENSHOTS")
    folder = Path(keep) if keep else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    page = browser.open((atlas / "index.html").as_uri())
    assert page.evaluate("document.querySelectorAll('#models tbody tr').length") == len(MODELS.split(","))
    _assert_screenshot(page.screenshot(folder / "atlas-index.png"))
    page.goto((atlas / "models" / "googlenet.html").as_uri())
    headings = page.evaluate("Array.from(document.querySelectorAll('h2')).map(h => h.textContent)")
    assert headings[:2] == ["Architecture", "Receptive field"]
    figures = page.evaluate("Array.from(document.querySelectorAll('figure img')).map(i => i.getAttribute('src'))")
    assert {
        "../models/googlenet/diagram.svg",
        "../models/googlenet/block-0.svg",
        "../models/googlenet/rf-growth.svg",
        "../models/googlenet/erf.png",
    } <= set(figures)
    page.evaluate("document.querySelectorAll('figure')[1].scrollIntoView()")  # the Inception module
    _assert_screenshot(page.screenshot(folder / "atlas-model.png"))
    assert page.problems == []


def _column(page, index: int) -> list[str]:
    return page.evaluate(
        f"Array.from(document.querySelectorAll('#models tbody tr'))"
        f".map(r => r.cells[{index}].getAttribute('data-sort'))"
    )


def test_the_models_table_sorts_and_filters(atlas, browser):
    page = browser.open((atlas / "index.html").as_uri())
    headers = page.evaluate("Array.from(document.querySelectorAll('#models thead th')).map(h => h.textContent)")
    col = headers.index("parameters")
    page.evaluate(f"document.querySelectorAll('#models thead th')[{col}].click()")
    values = [float(v) for v in _column(page, col)]
    assert values == sorted(values) and len(set(values)) > 1
    page.evaluate(f"document.querySelectorAll('#models thead th')[{col}].click()")
    values = [float(v) for v in _column(page, col)]
    assert values == sorted(values, reverse=True)
    assert (
        page.evaluate(f"document.querySelectorAll('#models thead th')[{col}].getAttribute('aria-sort')") == "descending"
    )
    top1 = headers.index("published top-1 %")
    page.evaluate(f"document.querySelectorAll('#models thead th')[{top1}].click()")
    scores = [float(v) for v in _column(page, top1) if v]
    assert scores == sorted(scores)
    name = headers.index("model")
    page.evaluate(f"document.querySelectorAll('#models thead th')[{name}].click()")
    assert _column(page, name) == sorted(MODELS.split(","))
    page.evaluate(
        "const f = document.querySelector('input.filter'); f.value = 'resnet';f.dispatchEvent(new Event('input'))"
    )
    shown = page.evaluate(
        "Array.from(document.querySelectorAll('#models tbody tr'))"
        ".filter(r => r.style.display !== 'none').map(r => r.cells[0].textContent)"
    )
    assert shown == ["resnet20"]
    assert page.problems == []
