"""Plots and diagrams: every kind writes a valid, non-blank picture with the axes and labels a reader
expects, and what it draws is what cnnatlas measured (analyser records, gradients, run files)."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import torch
from needs import available
from PIL import Image

from cnnatlas import analyze, create_model
from cnnatlas.cli import main
from cnnatlas.errors import InvalidArgumentError
from cnnatlas.files import png_software, with_png_software
from cnnatlas.models.base import count_params
from cnnatlas.train import default_config, load_run, train
from cnnatlas.viz import (
    GraphvizMissingError,
    equivariance_data,
    pareto_points,
    plot_confusion,
    plot_diagram,
    plot_equivariance,
    plot_erf,
    plot_feature_maps,
    plot_filters,
    plot_pareto,
    plot_rf_growth,
    plot_training,
    rf_growth_data,
    run_confusion,
)
from cnnatlas.viz.common import PICTURE_SOFTWARE, resolve_model
from cnnatlas.viz.diagram import build_diagram, model_diagram, render, representative_blocks

SVG = "{http://www.w3.org/2000/svg}"


needs_dot = pytest.mark.needs("graphviz")


def assert_png(path: Path, min_size: int = 200) -> np.ndarray:
    """A PNG that decodes, is large enough and is not blank: many colours, real contrast."""
    assert path.is_file() and path.stat().st_size > 2000, path
    with Image.open(path) as img:
        img.verify()
    with Image.open(path) as img:
        assert img.format == "PNG" and min(img.size) >= min_size, img.size
        rgb = np.asarray(img.convert("RGB"))
    assert rgb.std() > 10, "blank image"
    assert len(np.unique(rgb.reshape(-1, 3), axis=0)) > 30, "too few colours for a plot"
    return rgb


def svg_texts(path: Path) -> list[str]:
    """An SVG that parses, with its text elements (matplotlib keeps text as text; dot too)."""
    assert path.is_file() and path.stat().st_size > 1000, path
    root = ET.parse(path).getroot()
    assert root.tag == f"{SVG}svg"
    assert len(list(root.iter(f"{SVG}path"))) + len(list(root.iter(f"{SVG}polygon"))) > 5, "nothing drawn"
    return ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]


# -- receptive-field growth, Pareto front, effective field ------------------------------------------


def test_rf_growth_follows_the_analyser(tmp_path):
    names = ["lenet5", "resnet20", "plain20"]
    fig = plot_rf_growth(names, out=tmp_path / "rf.svg")
    ax = fig.axes[0]
    assert ax.get_yscale() == "log" and "depth" in ax.get_xlabel() and "receptive field" in ax.get_ylabel()
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    for name in names:
        model, _, size = resolve_model(name)
        report = analyze(model, size)
        points = rf_growth_data(report)
        depths, fields = zip(*points)
        assert list(depths) == list(range(1, len(depths) + 1))
        assert all(a <= b for a, b in zip(fields, fields[1:])), "a field never shrinks with depth"
        assert fields[-1] == max(report.receptive_field.size)  # the curve ends at the model's field
        assert any(label.startswith(name + " ") for label in labels)
    # LeNet-5: 5×5 conv, 2×2 pool, 5×5 conv, 2×2 pool → 5, 6, 14, 16 (FORMULAS.md recurrence)
    lenet, _, size = resolve_model("lenet5")
    assert [f for _, f in rf_growth_data(analyze(lenet, size))][:4] == [5, 6, 14, 16]
    texts = svg_texts(tmp_path / "rf.svg")
    assert any("Receptive field growth" in t for t in texts) and any("resnet20" in t for t in texts)
    plot_rf_growth(["lenet5"], out=tmp_path / "rf.png")
    assert_png(tmp_path / "rf.png")


def test_pareto_front_and_labels(tmp_path):
    names = ["alexnet", "mobilenet_v2", "resnet18", "resnet50", "vgg11", "efficientnet_b0", "lenet5"]
    points = pareto_points(names)
    assert {p.name for p in points} == set(names) - {"lenet5"}  # lenet5's top-1 is on MNIST, not ImageNet
    model, _, size = resolve_model("resnet50")
    assert next(p for p in points if p.name == "resnet50").macs == analyze(model, size).macs
    for p in points:
        dominated = any(q.macs <= p.macs and q.top1 > p.top1 for q in points if q is not p)
        assert p.on_front == (not dominated), p
    assert {p.name for p in points if p.on_front} >= {"mobilenet_v2", "efficientnet_b0"}
    fig = plot_pareto(names, out=tmp_path / "pareto.png", macs={p.name: p.macs for p in points})
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and "MACs" in ax.get_xlabel() and "top-1" in ax.get_ylabel()
    labelled = {t.get_text() for t in ax.texts}
    assert labelled >= {p.name for p in points}
    assert "Pareto front" in [t.get_text() for t in ax.get_legend().get_texts()]
    assert_png(tmp_path / "pareto.png")


def test_erf_heat_map_against_the_analytic_square(tmp_path):
    model = create_model("resnet20")
    fig = plot_erf(model, (1, 3, 32, 32), samples=2, out=tmp_path / "erf.png")
    heat = next(ax for ax in fig.axes if ax.get_title().startswith("heat map"))
    profile = next(ax for ax in fig.axes if ax.get_title() == "horizontal profile")
    grad = heat.images[0].get_array()
    assert grad.shape == (32, 32) and float(np.sum(grad)) == pytest.approx(1.0, rel=1e-4)
    # what it draws: mean over the 2 Gaussian inputs (torch.Generator seeded 0) of |∂(Σ_c y_c)/∂x| at the
    # centre unit of the last feature map, summed over input channels, normalised to sum 1 — done here
    layer = analyze(model, (1, 3, 32, 32)).receptive_field_layer
    x = torch.randn((2, 3, 32, 32), generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    seen = []
    handle = dict(model.named_modules())[layer].register_forward_hook(lambda m, a, out: seen.append(out))
    model.eval()(x)
    handle.remove()
    y = seen[0]
    (dx,) = torch.autograd.grad(y[:, :, y.shape[2] // 2, y.shape[3] // 2].sum(), x)
    expected = dx.abs().sum(1).mean(0)
    np.testing.assert_allclose(np.asarray(grad), (expected / expected.sum()).numpy(), rtol=1e-4, atol=1e-8)
    legend = " ".join(t.get_text() for t in heat.get_legend().get_texts())
    assert "analytic field 81×81" in legend and "of the mass" in legend  # resnet20's field: 81 (analyser)
    assert heat.get_xlabel() == "input x (pixels)" and profile.get_ylabel() == "relative gradient"
    assert_png(tmp_path / "erf.png")


# -- inside the network: feature maps, filters, equivariance ----------------------------------------


def test_feature_maps_of_a_photograph(tmp_path):
    model = create_model("resnet20")
    model.default_input_size = (3, 32, 32)
    fig = plot_feature_maps(model, channels=4, out=tmp_path / "fm.png")
    stages = [f.name for f in model.feature_info]
    rows = [ax.get_ylabel().split("\n")[0] for ax in fig.axes if ax.get_ylabel()]
    assert rows == stages
    assert sum(ax.get_title().startswith("channel") for ax in fig.axes) == 4 * len(stages)
    first_map = fig.axes[1].images[0].get_array()
    assert first_map.shape == (32, 32) and float(np.ptp(first_map)) > 0
    # what it draws: the stage outputs for the photograph, computed here with hooks of our own on the
    # same input (matplotlib's sample photograph, cropped square, resized, ImageNet-normalised)
    from cnnatlas.viz.common import load_image

    arr = torch.from_numpy(load_image(None, (32, 32), 3)).permute(2, 0, 1)
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])  # ImageNet's
    x = (arr - mean[:, None, None]) / std[:, None, None]
    outputs, modules = {}, dict(model.named_modules())
    handles = [modules[n].register_forward_hook(lambda m, a, out, n=n: outputs.__setitem__(n, out[0])) for n in stages]
    with torch.no_grad():
        model.eval()(x[None])
    for h in handles:
        h.remove()
    grid = np.array(fig.axes[: len(stages) * 5]).reshape(len(stages), 5)
    for row, name in zip(grid, stages):
        y = outputs[name]
        spread = y.flatten(1).std(1, correction=0)
        shown = [int(ax.get_title().split()[1]) for ax in row[1:]]
        assert shown == torch.argsort(spread, descending=True)[:4].tolist(), name  # the 4 most varied
        for ax, c in zip(row[1:], shown):
            np.testing.assert_allclose(np.asarray(ax.images[0].get_array()), y[c].numpy(), rtol=1e-5, atol=1e-6)
    assert_png(tmp_path / "fm.png")
    with pytest.raises(InvalidArgumentError, match="no module"):
        plot_feature_maps(model, layers=["stages.9"])
    with pytest.raises(InvalidArgumentError, match="has no module 'nosuch'. `cnnatlas rf MODEL` lists the path"):
        plot_feature_maps(model, layers=["nosuch"])
    with pytest.raises(InvalidArgumentError, match="no file"):
        plot_feature_maps(model, image=tmp_path / "missing.jpg")


def test_feature_maps_leave_out_a_stage_of_single_values_unless_asked():
    """LeNet-5's stages are C1, C3 and C5, whose 120 maps are 1×1 each: no picture, so left out by default."""
    lenet = create_model("lenet5")
    assert [f.name for f in lenet.feature_info] == ["features.c1", "features.c3", "features.c5"]
    rows = [ax.get_ylabel().split("\n")[0] for ax in plot_feature_maps(lenet, channels=2).axes if ax.get_ylabel()]
    assert rows == ["features.c1", "features.c3"]
    asked = plot_feature_maps(lenet, layers=["features.c5"], channels=2)
    assert [ax.get_ylabel() for ax in asked.axes if ax.get_ylabel()] == ["features.c5\n120×1×1"]


def test_equivariance_exact_with_circular_padding_border_only_with_zeros(tmp_path):
    d = equivariance_data(shift=(5, 7))
    circ, zero = d["circular"], d["zeros"]
    assert circ["max_error"] <= 1e-5 * circ["scale"]  # f(Tx) = T f(x) exactly, up to float rounding
    assert zero["max_error"] > 1e-2 * zero["scale"]  # zero padding breaks it ...
    err = zero["error"]
    inner = err.clone()  # ... but only within the field radius (2 + 1 = 3 px) of the borders and seams
    for rows in (slice(0, 4), slice(-4, None), slice(5 - 4, 5 + 4)):
        inner[rows, :] = 0
    for cols in (slice(0, 4), slice(-4, None), slice(7 - 4, 7 + 4)):
        inner[:, cols] = 0
    assert float(inner.max()) <= 1e-5 * zero["scale"]
    assert torch.allclose(circ["gx"], circ["gtx"], atol=1e-5)  # pooled output: invariant
    fig = plot_equivariance(shift=(5, 7), out=tmp_path / "eq.svg")
    titles = " ".join(ax.get_title() for ax in fig.axes)
    assert "shifted input" in titles and "circular padding" in titles and "zero padding" in titles
    assert any("Convolution is translation-equivariant" in t for t in svg_texts(tmp_path / "eq.svg"))
    with pytest.raises(InvalidArgumentError):
        equivariance_data(shift=(1,))


# -- a training run: curves, confusion matrix, trained filters ---------------------------------------


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "lenet5-digits"
    train(default_config("lenet5", "digits", epochs=2, quiet=True, out=str(out), seed=0))
    return out


def test_training_curves_from_metrics_jsonl(run_dir, tmp_path):
    fig = plot_training(run_dir, out=tmp_path / "train.png")
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    loss_ax, acc_ax = fig.axes
    lines = {line.get_label(): line for line in acc_ax.get_lines()}
    assert list(lines["test top-1"].get_ydata()) == pytest.approx([100 * r["test_acc"] for r in rows])
    assert list(lines["test top-1"].get_xdata()) == [r["epoch"] for r in rows]
    assert {line.get_label() for line in loss_ax.get_lines()} == {"training loss", "test loss"}
    assert loss_ax.get_xlabel() == "epoch" and acc_ax.get_ylabel() == "accuracy (%)"
    assert_png(tmp_path / "train.png")
    first = tmp_path / "first-epoch"  # one epoch: its one whole tick, not fractions of an epoch
    first.mkdir()
    for name in ("config.json", "metrics.jsonl"):
        lines = (run_dir / name).read_text().splitlines(keepends=True)
        (first / name).write_text("".join(lines[:1]) if name == "metrics.jsonl" else "".join(lines))
    fig = plot_training(first)
    for ax in fig.axes:
        lo, hi = ax.get_xlim()
        assert [t for t in ax.get_xticks() if lo <= t <= hi] == [1], (ax.get_xticks(), lo, hi)
    assert fig.get_suptitle().startswith("lenet5 on digits: 1 epoch (")


def test_confusion_matrix_of_the_run(run_dir, tmp_path):
    result = run_confusion(run_dir)
    m = result["confusion"]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert m.shape == (10, 10) and m.sum() == result["count"] == 360  # the digits test split
    assert np.trace(m) / m.sum() == pytest.approx(metrics["test_acc"], abs=1e-9)  # same weights, same test set
    fig = plot_confusion(run_dir, out=tmp_path / "confusion.svg", result=result)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "predicted class" and ax.get_ylabel() == "true class"
    assert [t.get_text() for t in ax.get_xticklabels()] == [str(d) for d in range(10)]
    counts = sorted(int(t.get_text()) for t in ax.texts)
    assert sum(counts) == 360
    assert any("test accuracy" in t for t in svg_texts(tmp_path / "confusion.svg"))


def test_filters_are_the_trained_first_layer(run_dir, tmp_path):
    fig = plot_filters(run_dir, out=tmp_path / "filters.png")
    weight = load_run(run_dir).model.features.c1.conv.weight.detach()  # LeNet-5's C1: 6 filters 5×5
    shown = [ax.images[0].get_array() for ax in fig.axes if ax.images]
    assert len(shown) == 6
    for i, img in enumerate(shown):
        np.testing.assert_allclose(np.asarray(img), weight[i, 0].numpy(), rtol=1e-6)
    assert "trained weights" in fig.get_suptitle()
    assert_png(tmp_path / "filters.png", min_size=150)


# -- diagrams from the traced graph ------------------------------------------------------------------


def _diagram(name: str, block: str | None = None):
    model, _, size = resolve_model(name)
    report = analyze(model, size)
    return model_diagram(model, block=block, report=report, label=name), report, model


def _by_title(diagram, text):
    return [n for n in diagram.nodes if text in n.title]


def _in_edges(diagram, node):
    return [a for a, b in diagram.edges if b == node.id]


def test_inception_module_four_branches_into_one_concatenation():
    d, _, _ = _diagram("googlenet", "InceptionModule")
    (cat,) = _by_title(d, "concatenate")
    assert len(_in_edges(d, cat)) == 4 and cat.shape == (1, 256, 28, 28)
    nodes = {n.id: n for n in d.nodes}
    big = [n for n in d.nodes if n.title.startswith(("conv 3×3", "conv 5×5"))]
    assert len(big) == 2
    for n in big:  # the 1×1 reductions come BEFORE the expensive convolutions
        (src,) = _in_edges(d, n)
        assert nodes[src].title.startswith("conv 1×1, 192→")
    (inp,) = [n for n in d.nodes if n.title == "input"]
    assert len([b for a, b in d.edges if a == inp.id]) == 4


def test_bottleneck_skip_and_numbers_on_nodes():
    d, report, model = _diagram("resnet50", "Bottleneck")
    (add,) = _by_title(d, "add (+)")
    sources = {n.id: n for n in d.nodes}
    assert {sources[a].path for a in _in_edges(d, add)} == {"stages.0.0.conv3", "stages.0.0.shortcut"}
    conv2 = next(n for n in d.nodes if n.path == "stages.0.0.conv2")
    assert conv2.title.startswith("conv 3×3, 64→64") and conv2.params == 3 * 3 * 64 * 64 + 2 * 64
    assert conv2.macs == 56 * 56 * 64 * 3 * 3 * 64  # H·W·C_out·K²·C_in (FORMULAS.md)
    whole = build_diagram(report, model, depth=3)
    block = next(n for n in whole.nodes if n.path == "stages.0.0")
    assert block.title == "Bottleneck" and block.params == count_params(model.stages[0][0])


def test_dense_block_concatenates_every_layer():
    d, _, _ = _diagram("densenet121", "DenseBlock")
    cats = _by_title(d, "concatenate")
    assert [c.shape[1] for c in cats] == [64 + 32 * k for k in range(1, 7)]  # k0 + k·l channels
    layers = [n for n in d.nodes if n.kind == "unit"]
    assert len(layers) == 6 and all("BN → ReLU → conv 1×1" in n.title for n in layers)


def test_squeeze_excite_block_order():
    d, _, _ = _diagram("seresnet50", "SqueezeExcite")
    order = [n.title for n in d.nodes if n.kind != "io"]
    assert order == ["global average pool", "conv 1×1, 256→16", "ReLU", "conv 1×1, 16→256", "sigmoid", "multiply (×)"]
    (mul,) = _by_title(d, "multiply")
    assert len(_in_edges(d, mul)) == 2  # the gate and the block's own input


def test_inverted_residual_expand_depthwise_project():
    d, _, _ = _diagram("mobilenet_v2", "stages.1.1")
    titles = [n.title for n in d.nodes if n.kind == "unit"]
    assert titles == [
        "conv 1×1, 24→144 → BN → ReLU6",
        "conv 3×3, 144→144, depthwise → BN → ReLU6",
        "conv 1×1, 144→24 → BN",
    ]  # linear bottleneck: no activation after the projection
    assert len(_by_title(d, "add (+)")) == 1


def test_i3d_inflated_inception_module_has_3d_kernels():
    d, _, _ = _diagram("i3d", "InceptionModule")
    titles = " ".join(n.title for n in d.nodes)
    assert "conv 1×1×1" in titles and "conv 3×3×3" in titles and "max pool 3×3×3" in titles
    (cat,) = _by_title(d, "concatenate")
    assert len(cat.shape) == 5 and len(_in_edges(d, cat)) == 4


def test_whole_model_diagram_stays_readable():
    for name in ("resnet50", "densenet121", "efficientnet_b0", "vgg16", "googlenet"):
        d, report, _ = _diagram(name)
        assert 5 <= len(d.nodes) <= 48, (name, len(d.nodes))
        assert sum(n.params for n in d.nodes) == report.params - report.unused_params
        assert sum(n.macs for n in d.nodes) == report.macs
    model, _, size = resolve_model("efficientnet_b0")
    assert representative_blocks(analyze(model, size)) == ["stages.0.0.se", "stages.1.1"]


@needs_dot
def test_diagram_files(tmp_path):
    d = plot_diagram("googlenet", "inception3a", out=tmp_path / "inception.svg")
    texts = svg_texts(tmp_path / "inception.svg")
    assert "concatenate" in texts and "features.inception3a.branch2.1" in texts
    assert any(t.startswith("params ") for t in texts) and "128×28×28" in texts
    render(d, tmp_path / "inception.png")
    assert_png(tmp_path / "inception.png")
    # the PNG is dot's own, with the mark of a cnnatlas picture added and its image data as dot wrote them
    own = subprocess.run(["dot", "-Tpng", "-Gdpi=96"], input=d.to_dot().encode(), capture_output=True, check=True)
    marked = (tmp_path / "inception.png").read_bytes()
    assert len(marked) > len(own.stdout) and marked.replace(_chunk(marked, b"tEXt"), b"") == own.stdout
    (tmp_path / "dot.png").write_bytes(own.stdout)
    assert png_software(tmp_path / "inception.png") == PICTURE_SOFTWARE and png_software(tmp_path / "dot.png") is None
    with Image.open(tmp_path / "inception.png") as a, Image.open(io.BytesIO(own.stdout)) as b:
        assert np.array_equal(np.asarray(a), np.asarray(b)) and a.info.get("dpi") == b.info.get("dpi")
    with pytest.raises(ValueError, match="not a PNG file"):
        with_png_software(b"<svg/>", PICTURE_SOFTWARE)
    render(d, tmp_path / "inception.dot")
    assert (tmp_path / "inception.dot").read_text().startswith("digraph")


def _chunk(png: bytes, kind: bytes) -> bytes:
    """The first chunk of `kind` in a PNG file, whole: length, type, data and CRC."""
    at = png.index(kind) - 4
    return png[at : at + 12 + int.from_bytes(png[at : at + 4], "big")]


def test_missing_graphviz_is_a_clear_error(tmp_path, monkeypatch):
    d, _, _ = _diagram("lenet5")
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(GraphvizMissingError, match="apt-get install graphviz"):
        render(d, tmp_path / "lenet.svg")
    render(d, tmp_path / "lenet.dot")  # the DOT source needs no Graphviz
    assert main(["plot", "diagram", "lenet5", "--out", str(tmp_path / "x.svg")]) == 2


def test_unknown_block_names_the_candidates():
    with pytest.raises(InvalidArgumentError, match="Bottleneck"):
        _diagram("resnet50", "Botleneck")


# -- the command line ---------------------------------------------------------------------------------


def test_plot_command(tmp_path, run_dir, capsys):
    assert main(["plot", "training", str(run_dir), "--out", str(tmp_path / "t.svg")]) == 0
    assert "wrote" in capsys.readouterr().out
    svg_texts(tmp_path / "t.svg")
    assert main(["plot", "rf-growth", "lenet5", "resnet20", "--out", str(tmp_path / "rf.png")]) == 0
    assert_png(tmp_path / "rf.png")
    assert main(["plot", "filters", str(run_dir), "--out", str(tmp_path / "f.png")]) == 0
    if available("graphviz"):  # fails in CI where missing
        assert main(["plot", "diagram", "resnet20", "--block", "BasicBlock", "--out", str(tmp_path / "b.svg")]) == 0
        assert "add (+)" in svg_texts(tmp_path / "b.svg")
    capsys.readouterr()
    for argv in (
        ["plot", "erf", "lenet5", "--out", str(tmp_path / "x.jpg")],  # not .png/.svg
        ["plot", "training", str(tmp_path), "--out", str(tmp_path / "x.png")],  # not a run folder
        ["plot", "pareto", "--models", "nosuchnet*", "--out", str(tmp_path / "x.png")],
        ["plot"],
        ["plot", "diagram", "--out", str(tmp_path / "x.svg")],
    ):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("cnnatlas: error:") and "\n" not in err and "Traceback" not in err


# -- the atlas, without a browser (tests/test_atlas_browser.py opens it in Chromium) ----------------


@pytest.mark.slow
def test_report_writes_the_atlas_and_reuses_its_pictures(tmp_path, run_dir, capsys):
    claims = tmp_path / "claims.json"  # the shape of `cnnatlas verify --json`; contents only need to show up
    claims.write_text(
        json.dumps(
            [
                {
                    "id": "conv-params",
                    "claim": "c1",
                    "measured": "m1",
                    "expected": "e1",
                    "passed": True,
                    "status": "passed",
                },
                {
                    "id": "vit-tokens",
                    "claim": "c2",
                    "measured": "—",
                    "expected": "e2",
                    "passed": False,
                    "status": "skipped",
                    "reason": "no ViT in the zoo",
                },
            ]
        )
    )
    out = tmp_path / "site"
    argv = [
        "report",
        "--out",
        str(out),
        "--models",
        "lenet5,resnet2*",
        "--runs",
        str(run_dir.parent),
        "--claims",
        str(claims),
        "--erf-size",
        "32",
        "--erf-samples",
        "1",
    ]
    assert main(argv) == 0
    first = capsys.readouterr()
    assert first.out.strip() == str(out / "index.html") and "drew resnet20" in first.err
    index = (out / "index.html").read_text()
    model, _, size = resolve_model("resnet20")
    assert f">{analyze(model, size).params:,}<" in index  # the analyser's count, in the table
    assert index.count('<tr><td data-sort="') == 2 and "lenet5.html" in index and "resnet20.html" in index
    page = (out / "models" / "resnet20.html").read_text()
    for asset in ("diagram.svg", "block-0.svg", "rf-growth.svg", "erf.png"):
        assert f"resnet20/{asset}" in page
        if asset.endswith(".png"):
            assert_png(out / "models" / "resnet20" / asset)
        elif "rf-growth" in asset or available("graphviz"):
            svg_texts(out / "models" / "resnet20" / asset)
    claims_page = (out / "claims.html").read_text()
    assert "conv-params" in claims_page and "badge passed" in claims_page and "no ViT in the zoo" in claims_page
    runs = (out / "runs.html").read_text()
    assert "lenet5-digits" in runs and "runs/lenet5-digits/confusion.svg" in runs
    assert "http://" not in index + page + runs and "https://" not in index + page + runs
    assert main(argv + ["--no-claims"]) == 0  # again: the pictures are reused
    assert "pictures unchanged (cached)" in capsys.readouterr().err
    assert main(["report", "--out", str(out), "--models", "nosuchnet"]) == 2


def test_the_atlas_says_top_3_for_a_run_of_three_classes(tmp_path, colour_folder):
    """test_top5 of a 3-class run counts the top 3 (`train.top_k`): the runs table says so beside the figure."""
    import re

    from cnnatlas.viz.atlas import build_atlas

    run = tmp_path / "runs" / "three"
    metrics = train(default_config("lenet5", str(colour_folder), epochs=1, out=str(run), quiet=True))
    build_atlas(tmp_path / "atlas", models="lenet5", runs=tmp_path / "runs", claims="none", erf=False, diagrams=False)
    row = re.search(r'<tr><td><a href="#three">.*?</tr>', (tmp_path / "atlas" / "runs.html").read_text()).group(0)
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row)
    assert cells[5] == f"{100 * metrics['test_top5']:.2f} (top-3)", cells


def test_plot_replaces_only_a_picture_cnnatlas_drew(tmp_path, capsys):
    """--out naming a photograph of the user's (a mistake for --image) is refused and the photograph kept; a
    picture plot drew before, PNG or SVG, a diagram's PNG, SVG or DOT source, is replaced."""
    from cnnatlas.viz.common import is_cnnatlas_picture

    photo = tmp_path / "cat.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(photo)
    kept = photo.read_bytes()
    assert main(["plot", "equivariance", "--out", str(photo)]) == 2
    err = capsys.readouterr().err
    assert "cat.png: a file that is not a picture cnnatlas drew (a photograph of yours? --image takes" in err
    assert photo.read_bytes() == kept and not is_cnnatlas_picture(photo)
    svg = tmp_path / "mine.svg"
    svg.write_text('<svg xmlns="http://www.w3.org/2000/svg"></svg>')
    assert main(["plot", "equivariance", "--out", str(svg)]) == 2
    assert svg.read_text() == '<svg xmlns="http://www.w3.org/2000/svg"></svg>'
    drawn = [("equivariance", "eq.png"), ("equivariance", "eq.svg")]
    if available("graphviz"):
        drawn += [("diagram", "d.png"), ("diagram", "d.svg"), ("diagram", "d.dot")]
    for kind, name in drawn:
        extra = ["lenet5"] if kind == "diagram" else []
        for _ in range(2):  # the second time over the first's picture
            assert main(["plot", kind, *extra, "--out", str(tmp_path / name)]) == 0, name
        assert is_cnnatlas_picture(tmp_path / name), name
    capsys.readouterr()


def test_the_atlas_replaces_no_file_of_the_users(tmp_path, capsys):
    """report --out a folder of the user's (an index.html of theirs among other files) writes nothing and
    names what is there; a new or empty folder, an earlier atlas (marked, or known by its index.html from
    before the mark) is written to."""
    from cnnatlas.viz.atlas import ATLAS_MARKER

    quick = ["--models", "lenet5", "--no-claims", "--no-erf", "--no-diagrams", "--quiet"]
    home = tmp_path / "home"
    home.mkdir()
    (home / "index.html").write_text("<h1>my own page</h1>")
    (home / "notes.txt").write_text("mine")
    assert main(["report", "--out", str(home), *quick]) == 2
    err = capsys.readouterr().err
    assert "holds files (index.html, notes.txt) and is not an atlas cnnatlas wrote" in err
    assert sorted(p.name for p in home.iterdir()) == ["index.html", "notes.txt"]
    assert (home / "index.html").read_text() == "<h1>my own page</h1>"

    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["report", "--out", str(empty), *quick]) == 0
    assert (empty / ATLAS_MARKER).is_file() and "Generated by cnnatlas" in (empty / "index.html").read_text()
    assert main(["report", "--out", str(empty), *quick]) == 0  # an atlas is rebuilt in place
    (empty / ATLAS_MARKER).unlink()  # an atlas written before the mark existed: known by its index.html
    assert main(["report", "--out", str(empty), *quick]) == 0
    assert (empty / ATLAS_MARKER).is_file()
