"""The benchmark figures the README quotes come from the saved runs, not from copying by hand."""

from __future__ import annotations

import importlib.util
import inspect
import json
from pathlib import Path

import pytest
import torch

from cnnatlas.data import load_scene_splits

ROOT = Path(__file__).resolve().parent.parent


def _benchmark(name: str):
    spec = importlib.util.spec_from_file_location(f"{name}_benchmark", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _readme_table(first_header: str) -> str:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(first_header))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return "\n".join(lines[start:end])


def test_readme_analysis_speed_table_is_the_one_generated_from_the_saved_run():
    bench = _benchmark("analysis_speed")
    saved = json.loads((ROOT / "benchmarks" / "analysis_results.json").read_text(encoding="utf-8"))
    assert _readme_table("| case | faster than the fastest peer") == bench.readme_table(saved)


def test_saved_analysis_run_holds_exactly_the_figures_of_its_report():
    """analysis_results.json is benchmarks/RESULTS-analysis.md read back, and writing it out again gives that
    report byte for byte: no figure was changed, added or left out."""
    bench = _benchmark("analysis_speed")
    saved = json.loads((ROOT / "benchmarks" / "analysis_results.json").read_text(encoding="utf-8"))
    text = (ROOT / "benchmarks" / "RESULTS-analysis.md").read_text(encoding="utf-8")
    assert "RESULTS-analysis.md" in saved["source"]
    assert bench.parse_report(text) == {"machine": saved["machine"], "cases": saved["cases"]}
    assert bench.report(saved["cases"], saved["machine"]) + "\n" == text


def test_a_measured_run_saves_what_its_report_prints(monkeypatch):
    """A real (small) run: its report read back gives its figures as printed (whole ms, rounded ratios),
    and the README table is made from them."""
    bench = _benchmark("analysis_speed")
    import torchvision

    monkeypatch.setattr(bench, "CASES", {"resnet18": (lambda: torchvision.models.resnet18(), (1, 3, 64, 64))})
    monkeypatch.setattr(bench, "PEERS", {"FlopCounterMode": bench.PEERS["FlopCounterMode"]})
    monkeypatch.setattr(bench, "META_PEERS", {"FlopCounterMode (meta)": bench.META_PEERS["FlopCounterMode (meta)"]})
    res = json.loads(json.dumps(bench.run("resnet18", repeat=1, peer_repeat=1)))  # as --json saves it
    back = bench.parse_report(bench.report([res], "Machine: test"))["cases"][0]
    assert res["macs"] == back["macs"] > 0 and res["components"] == back["components"]
    assert [r["tool"] for r in back["rows"]] == [
        "cnnatlas",
        "cnnatlas, training memory too",
        "FlopCounterMode",
        "FlopCounterMode (meta)",
    ]
    for got, want in zip(back["rows"], res["rows"]):
        assert got["ms"] == round(want["ms"]) and got["macs"] == want["macs"] == res["macs"]  # same MACs as ours
        assert got["faster"] == (None if want["faster"] is None else round(want["faster"], 1))
    assert back["fastest_any"]["faster"] == round(res["fastest_any"]["faster"], 2)
    assert list(back["sizes_ms"]) == ["1×3×64×64", "1×3×128×128", "1×3×256×256"]
    assert bench.readme_table({"cases": [res]}).splitlines()[2].startswith("| resnet18, 1×3×64×64 | ")


@pytest.mark.parametrize("lean", [False, True])
def test_readme_dense_command_line_is_the_measured_recipe(lean):
    """The `cnnatlas train` lines the README gives for the dense recipe and for it with the lean model
    (the one whose model args name the backbone's blocks) ask for the runs benchmarks/segmentation.py
    measures: the same model, scenes and training settings."""
    import shlex

    from cnnatlas.cli import build_parser
    from cnnatlas.cli.train import config_from_args

    bench = _benchmark("segmentation")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    lines = [x for x in readme.splitlines() if x.startswith("cnnatlas train deeplabv3plus") and "--train-scenes" in x]
    (line,) = [x for x in lines if ("blocks" in x) == lean]
    config = config_from_args(build_parser().parse_args(shlex.split(line)[1:]))
    recipe = bench.DENSE
    assert (config.model, config.data, config.model_kwargs) == (
        recipe["model"],
        "fashion-mnist-scenes",
        bench.LEAN if lean else recipe["model_kwargs"],
    )
    assert config.train_scenes == recipe["data"]["train_scenes"]
    assert {key: getattr(config, key) for key in recipe["train"]} == recipe["train"]
    # the scenes' other settings are the dataset's defaults, which the command line uses
    defaults = inspect.signature(load_scene_splits).parameters
    assert all(defaults[k].default == v for k, v in recipe["data"].items() if k != "train_scenes")


def test_ema_item_measures_the_average_and_the_stepped_weights_of_one_run(monkeypatch):
    """The `ema` item, on a few scenes: each epoch has the average's mean IoU (what the run reports) and
    the stepped weights' (from the checkpoint's state), and the report's table shows both."""
    bench = _benchmark("segmentation")
    small = {
        **bench.DENSE,
        "data": {**bench.DENSE["data"], "train_scenes": 96, "test_scenes": 32},
        "train": {**bench.DENSE["train"], "epochs": 2, "precision": "float32"},
    }
    monkeypatch.setattr(bench, "DENSE", small)
    record = bench.run_dense(bench.EMA)
    curve = record["curve"]
    assert [c["epoch"] for c in curve] == [1, 2] and record["ema"] == bench.EMA_DECAY
    assert record["test_miou"] == curve[-1]["test_miou"]
    assert all(0 <= c["stepped_miou"] <= 1 for c in curve)
    assert any(c["stepped_miou"] != c["test_miou"] for c in curve)  # two different sets of weights
    text = bench.render({bench.EMA: json.loads(json.dumps(record))})
    assert "## Moving average of the weights" in text
    last = curve[-1]
    assert f"| 2 | {last['minutes']:.1f} | {last['stepped_miou']:.4f} | {last['test_miou']:.4f} |" in text


def test_pretrained_item_trains_the_backbone_first_and_counts_both_stages(monkeypatch, tmp_path):
    """A PRETRAINED_RUNS item, on a few scenes and digits for the first stage: the classifier's run
    starts the dense run (--init, recorded in its config), the record keeps the first stage and its
    minutes count in the total and in the curve, and the report says so."""
    bench = _benchmark("segmentation")
    small = {
        **bench.DENSE,
        "data": {**bench.DENSE["data"], "train_scenes": 96, "test_scenes": 32},
        "train": {**bench.DENSE["train"], "epochs": 1, "precision": "float32"},
    }
    first = {**bench.PRETRAIN, "data": "digits", "train": {**bench.PRETRAIN["train"], "precision": "float32"}}
    monkeypatch.setattr(bench, "DENSE", small)
    monkeypatch.setattr(bench, "PRETRAIN", first)
    monkeypatch.setattr(bench, "PRETRAINED_SCENES", 64)
    item = next(iter(bench.PRETRAINED_RUNS))
    record = bench.run_dense(item, keep=str(tmp_path))
    backbone = tmp_path / f"{item}-backbone"
    config = json.loads((tmp_path / item / "config.json").read_text())["train"]
    assert config["init"] == str(backbone) and config["train_scenes"] == 64
    assert json.loads((backbone / "config.json").read_text())["train"]["model"] == "resnet20"
    assert record["data"]["train_scenes"] == 64 and record["seed"] == bench.PRETRAINED_RUNS[item]
    stage = record["pretrain"]
    assert 0 < stage["test_acc"] <= 1 and stage["minutes"] > 0
    dense_seconds = json.loads((tmp_path / item / "metrics.jsonl").read_text().splitlines()[-1])["seconds"]
    assert record["minutes"] == pytest.approx(stage["minutes"] + dense_seconds / 60)
    assert record["curve"][-1]["minutes"] == pytest.approx(record["minutes"])
    text = bench.render({item: json.loads(json.dumps(record))})
    assert bench.PRETRAINED_TITLE in text and f"test accuracy {stage['test_acc']:.2%}" in text


@pytest.mark.parametrize("kind", ["shifted", "short", "lean"])
def test_shifted_item_judges_the_target_on_the_averaged_prediction_and_counts_its_time(monkeypatch, tmp_path, kind):
    """A SHIFTED_RUNS item (or a SHORT_RUNS one: the same on SHORT_SCENES training scenes; or a LEAN_RUNS
    one: the lean model), on a few scenes: the record keeps the run as trained and its test prediction
    averaged over SHIFTS (as `evaluate` gives it on the kept run), the minutes count that evaluation, and
    the report shows both figures."""
    bench = _benchmark("segmentation")
    monkeypatch.setattr(bench, "SHORT_SCENES", 64)
    from cnnatlas.models.segmentation import ShiftAveraged
    from cnnatlas.train import evaluate, load_run, mean_iou

    small = {
        **bench.DENSE,
        "data": {**bench.DENSE["data"], "train_scenes": 96, "test_scenes": 32},
        "train": {**bench.DENSE["train"], "epochs": 1, "precision": "float32"},
    }
    monkeypatch.setattr(bench, "DENSE", small)
    runs = {"shifted": bench.SHIFTED_RUNS, "short": bench.SHORT_RUNS, "lean": bench.LEAN_RUNS}[kind]
    item = next(iter(runs))
    record = bench.run_dense(item, keep=str(tmp_path))
    averaged = record["shift_averaged"]
    assert record["seed"] == runs[item] and averaged["shifts"] == [list(s) for s in bench.SHIFTS]
    assert record["data"]["train_scenes"] == (64 if kind == "short" else 96)
    run = load_run(tmp_path / item)
    lean = kind == "lean"
    assert record["model_kwargs"] == (bench.LEAN if lean else small["model_kwargs"])
    assert run.model.backbone.blocks == ((1, 3, 5) if lean else (3, 3, 3))
    assert run.model.head.aspp.out_channels == (32 if lean else 64)
    assert record["params"] == sum(p.numel() for p in run.model.parameters())
    test = load_scene_splits(**{**small["data"], "train_scenes": 1}).test
    test.mean, test.std = (torch.tensor(v).view(-1, 1, 1) for v in (run.info.mean, run.info.std))
    loader = torch.utils.data.DataLoader(test, batch_size=8)
    cpu = torch.device("cpu")
    assert mean_iou(evaluate(run.model, loader, 11, cpu).confusion) == pytest.approx(record["test_miou"])
    model = ShiftAveraged(run.model, bench.SHIFTS)
    assert mean_iou(evaluate(model, loader, 11, cpu).confusion) == pytest.approx(averaged["test_miou"])
    assert averaged["minutes"] > 0
    dense_seconds = json.loads((tmp_path / item / "metrics.jsonl").read_text().splitlines()[-1])["seconds"]
    assert record["minutes"] == pytest.approx(dense_seconds / 60 + averaged["minutes"])
    assert record["passed"] == (averaged["test_miou"] >= bench.TARGET_MIOU and record["minutes"] <= 30)
    text = bench.render({item: json.loads(json.dumps(record))})
    assert bench.SHIFTED_TITLE in text and (", on 64 training scenes, test prediction" in text) == (kind == "short")
    assert (bench.LEAN_TITLE in text) == lean and ("### Training seed 1, lean model" in text) == lean
    assert f"{record['test_miou']:.4f}; averaged over shifts **{averaged['test_miou']:.4f}**" in text


def test_speed_item_projects_the_recipe_and_the_lean_model_from_one_short_epoch_each(monkeypatch):
    """The `speed` item, on a few scenes: scenes per second of training and of evaluation, measured from
    one epoch of the recipe and one of the lean model (and the lean model's shift-averaged evaluation), the
    minutes they project for the whole runs, and one record per machine: a machine's new measurement
    replaces its own and keeps the others' (one measured before the lean model shows none for it); the
    report's table shows each."""
    bench = _benchmark("segmentation")
    small = {**bench.DENSE, "train": {**bench.DENSE["train"], "precision": "float32"}}
    monkeypatch.setattr(bench, "DENSE", small)
    monkeypatch.setattr(bench, "SPEED_SCENES", {"train_scenes": 64, "test_scenes": 32})
    trained = []
    real_train = __import__("cnnatlas.train", fromlist=["train"]).train

    def spy(config, **kwargs):
        trained.append(config)
        return real_train(config, **kwargs)

    monkeypatch.setattr("cnnatlas.train.train", spy)
    other = {
        **{"cpu": "another CPU", "cpu_capability": "AVX512", "threads": 2, "gpu": None, "date": "2026-01-01"},
        **{"train_scenes_per_s": 50.0, "test_scenes_per_s": 400.0, "projected_minutes": 130.1},
        "load_average": [0.0, 0.0],
    }
    this = bench.machine()
    mine_before = {**{k: this[k] for k in ("cpu", "threads", "gpu")}, "projected_minutes": 2.0}
    record = bench.run_speed([other, mine_before])
    recipe, lean = trained
    assert recipe.model_kwargs == small["model_kwargs"] and lean.model_kwargs == bench.LEAN
    for config in trained:
        assert config.epochs == 1 and config.train_scenes == 64
        assert {k: getattr(config, k) for k in small["train"] if k != "epochs"} == {
            k: v for k, v in small["train"].items() if k != "epochs"
        }
    assert record["machines"][0] is other and len(record["machines"]) == 2  # its own earlier one replaced
    m = record["machines"][1]
    epochs, scenes = small["train"]["epochs"], small["data"]
    for speeds in (m, m["lean"]):
        assert speeds["train_scenes_per_s"] > 0 and speeds["test_scenes_per_s"] > 0
    full = epochs * (scenes["train_scenes"] / m["train_scenes_per_s"] + scenes["test_scenes"] / m["test_scenes_per_s"])
    assert m["projected_minutes"] == pytest.approx(full / 60) and "shift_averaged_scenes_per_s" not in m
    lean_speeds = m["lean"]
    lean_full = epochs * (
        scenes["train_scenes"] / lean_speeds["train_scenes_per_s"]
        + scenes["test_scenes"] / lean_speeds["test_scenes_per_s"]
    )
    lean_full += scenes["test_scenes"] / lean_speeds["shift_averaged_scenes_per_s"]
    assert lean_speeds["projected_minutes"] == pytest.approx(lean_full / 60)
    text = bench.render({bench.SPEED: json.loads(json.dumps(record))})
    assert "## Speed of the recipe, per machine" in text
    assert (
        f"| {m['train_scenes_per_s']:.0f} | {m['test_scenes_per_s']:.0f} | {m['projected_minutes']:.1f} | "
        f"{lean_speeds['train_scenes_per_s']:.0f} | {lean_speeds['projected_minutes']:.1f} |"
    ) in text
    assert "| another CPU (AVX512) | 2 | 50 | 400 | 130.1 | — | — | 0.0→0.0 | 2026-01-01 |" in text


def test_readme_dense_figures_are_the_saved_runs():
    """Each dense run's row in the README (wall and CPU minutes, pixel accuracy, mean IoU), those of the
    runs with a pretrained backbone and with the shift-averaged test prediction (both mean IoUs), the
    moving-average comparison and each machine's speed of the recipe are the figures
    benchmarks/segmentation.py saved."""
    bench = _benchmark("segmentation")
    records = json.loads((ROOT / "benchmarks" / "segmentation_results.json").read_text(encoding="utf-8"))
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    runs = [records[item] for item in bench.DENSE_ITEMS if item in records]
    assert len(runs) >= 3
    for d in runs:
        miou = f"{d['test_miou']:.4f}"
        if "shift_averaged" in d:
            miou += f"; averaged over shifts {d['shift_averaged']['test_miou']:.4f}"
        row = f"| {d['minutes']:.1f} | {d['cpu_minutes']:.1f} | {d['test_pixel_acc']:.1%} | {miou} |"
        assert row in readme, f"{d['item']}: no README row {row}"
    flat = " ".join(readme.split())
    curve = records[bench.EMA]["curve"]
    gains = [f"{c['test_miou'] - c['stepped_miou']:.2g}" for c in curve[:-1]]
    assert f"by {', '.join(gains[:-1])} and {gains[-1]} mean IoU after epochs 1–{len(gains)}" in flat
    assert f"{curve[-1]['test_miou']:.4f} against {curve[-1]['stepped_miou']:.4f}" in flat
    for m in records[bench.SPEED]["machines"]:  # each machine's speed and the minutes it projects
        speeds = f"{m['train_scenes_per_s']:.0f} training and {m['test_scenes_per_s']:.0f} test scenes a second"
        assert f"{speeds}, which projects {m['projected_minutes']:.1f} minutes" in flat, m["cpu"]
        if "lean" in m:
            lean = m["lean"]
            assert (
                f"{lean['train_scenes_per_s']:.0f} training scenes a second there and projects "
                f"{lean['projected_minutes']:.1f} minutes"
            ) in flat, m["cpu"]


def test_the_dense_recipe_is_not_timed_where_bfloat16_is_emulated(monkeypatch):
    """The recipe autocasts to bfloat16: on a CPU without its instructions the benchmark stops before training
    and says why, unless --even-without-bf16; a claim, which trains in float32, runs either way."""
    import argparse

    from cnnatlas import hardware

    bench = _benchmark("segmentation")
    trained = []
    monkeypatch.setattr(bench, "run_dense", lambda item, keep: trained.append(item) or {"item": item})
    monkeypatch.setattr(bench, "run_claim_item", lambda item: {"item": item})
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(hardware, "bfloat16_emulated", lambda: True)
    args = argparse.Namespace(keep=None, even_without_bf16=False)
    with pytest.raises(SystemExit, match="no bfloat16 instructions .* pass --even-without-bf16"):
        bench._run_item("dense-seed1", args)
    assert trained == [] and bench._run_item("gap-dense", args) == {"item": "gap-dense"}
    assert bench._run_item("dense-seed1", argparse.Namespace(keep=None, even_without_bf16=True)) == {
        "item": "dense-seed1"
    }
    monkeypatch.setattr(hardware, "bfloat16_emulated", lambda: False)
    assert bench._run_item("dense", args) == {"item": "dense"} and trained == ["dense-seed1", "dense"]
