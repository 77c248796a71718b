"""The roofline (arithmetic intensity, bound, predicted time per record), its check against measured time,
`cnnatlas roofline`, `summary --roofline`, `plot roofline` and the per-record CSV of `summary --csv`."""

from __future__ import annotations

import csv
import json
import math

import pytest
import torch
from torch import nn

from cnnatlas import analyze
from cnnatlas.analysis.roofline import (
    Machine,
    check_against_measured,
    layer_bytes,
    layer_flops,
    measure_machine,
    roofline,
    spearman,
)
from cnnatlas.cli import main
from cnnatlas.errors import InvalidArgumentError


def _conv_report():
    model = nn.Sequential(nn.Conv2d(8, 16, 3, padding=1, bias=False))
    return analyze(model, (1, 8, 32, 32))


def test_intensity_bound_and_time_of_one_convolution_by_hand():
    rec = _conv_report().layers[0]
    assert rec.op == "convolution"
    flops = 2 * 16 * 32 * 32 * 8 * 9  # 2 × (output elements × C_in × k²)
    moved = (8 * 32 * 32 + 16 * 8 * 9 + 16 * 32 * 32) * 4  # input, weight, output in float32
    assert layer_flops(rec) == flops == 2_359_296 and layer_bytes(rec, 4) == moved == 102_912
    report = _conv_report()
    fast_memory = roofline(report, Machine(1e10, 1e9))[0]  # ridge 10 FLOP/byte < 22.9: compute-bound
    assert fast_memory.bound == "compute" and math.isclose(fast_memory.intensity, flops / moved)
    assert math.isclose(fast_memory.seconds, flops / 1e10)
    slow_memory = roofline(report, Machine(1e11, 1e9))[0]  # ridge 100 > 22.9: memory-bound
    assert slow_memory.bound == "memory" and math.isclose(slow_memory.seconds, moved / 1e9)
    half = analyze(nn.Sequential(nn.Conv2d(8, 16, 3, padding=1, bias=False)), (1, 8, 32, 32), dtype=torch.float16)
    assert roofline(half, Machine(1e11, 1e9))[0].bytes == moved // 2


class _Concat(nn.Module):
    def forward(self, x):
        return torch.cat([x, x], dim=1)


def test_data_movement_is_memory_bound_at_zero_intensity():
    report = analyze(_Concat(), (1, 4, 8, 8))
    (rec,), (p,) = report.layers, roofline(report, Machine(1e9, 1e9))
    assert rec.op == "cat" and p.flops == 0 and p.bytes == (4 + 4 + 8) * 64 * 4  # 2 inputs read, 1 output written
    assert p.intensity == 0 and p.bound == "memory" and math.isclose(p.seconds, p.bytes / 1e9)


def test_machine_rejects_nonsense():
    for peak, bw in ((0, 1), (1, -1), (float("nan"), 1), (1, float("inf"))):
        with pytest.raises(InvalidArgumentError):
            Machine(peak, bw)


def test_spearman_against_scipy():
    stats = pytest.importorskip("scipy.stats")
    a = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0]
    b = [2.0, 7.0, 1.0, 8.0, 2.0, 8.0, 1.0, 8.0]
    assert math.isclose(spearman(a, b), stats.spearmanr(a, b).statistic)
    assert spearman([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    assert spearman([1, 1, 1], [1, 2, 3]) is None


def test_measure_machine_says_what_it_measured():
    m = measure_machine(matmul_side=256, triad_floats=1 << 20, repeats=2, threads=1)
    assert m.peak_flops > 1e8 and m.bandwidth > 1e8 and m.threads == 1
    assert "256×256 matmul" in m.source and "triad" in m.source and "best of 2" in m.source


def test_predicted_ranking_agrees_with_measured_time_on_resnet20():
    """resnet20 on one thread: the roofline's predicted time per leaf module ranks them as the measured time
    does (Spearman ρ ≈ 0.75 on the machine this was written on; the bound is kept modest for noisy machines)."""
    from cnnatlas import create_model

    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        machine = measure_machine(matmul_side=512, triad_floats=1 << 22, repeats=3)
        result = check_against_measured(create_model("resnet20").eval(), (1, 3, 32, 32), machine, repeats=7)
    finally:
        torch.set_num_threads(saved)
    assert result["modules"] >= 40
    assert result["spearman"] > 0.5, result


def test_summary_roofline_json_and_table(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # the whole table on one line per row
    assert main(["summary", "resnet20", "--roofline", "--peak-gflops", "100", "--bandwidth-gbs", "20", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["roofline"]["peak_gflops"] == 100 and d["roofline"]["bandwidth_gbs"] == 20
    assert d["roofline"]["ridge_flops_per_byte"] == pytest.approx(5.0)
    conv = d["layers"][0]
    assert conv["op"] == "convolution" and conv["bound"] in ("compute", "memory")
    assert conv["flops"] == 2 * conv["macs"] + conv["other_flops"]
    assert conv["arithmetic_intensity"] == pytest.approx(conv["flops"] / conv["bytes_moved"])
    assert conv["predicted_seconds"] == pytest.approx(max(conv["flops"] / 100e9, conv["bytes_moved"] / 20e9))
    assert d["roofline"]["predicted_seconds"] == pytest.approx(sum(x["predicted_seconds"] for x in d["layers"]))
    assert main(["summary", "resnet20", "--depth", "1", "--peak-gflops", "100", "--bandwidth-gbs", "20"]) == 0
    out = capsys.readouterr().out
    assert "FLOP/byte" in out and "bound" in out and "pred. time" in out and "ridge 5.00 FLOP/byte" in out
    stage = next(line for line in out.splitlines() if line.split()[:1] == ["stages"])
    assert "compute" in stage and ("µs" in stage or "ms" in stage)


def test_roofline_command(capsys):
    assert main(["roofline", "--peak-gflops", "1", "--bandwidth-gbs", "2", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["ridge_flops_per_byte"] == pytest.approx(0.5) and d["source"].startswith("given")
    assert main(["roofline", "--repeats", "1", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "GFLOP/s" in out and "GB/s" in out and "matmul" in out and "1 thread" in out


@pytest.mark.parametrize(
    "argv",
    [
        ["summary", "lenet5", "--peak-gflops", "0"],
        ["summary", "lenet5", "--bandwidth-gbs", "nan"],
        ["summary", "lenet5", "--roofline", "--sweep", "32,64"],
        ["roofline", "--repeats", "0"],
    ],
)
def test_bad_roofline_flags_one_line_exit_2(capsys, argv):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("cnnatlas: error:") and err.count("\n") == 1


def test_plot_roofline(tmp_path, capsys):
    out = tmp_path / "r.svg"
    argv = ["plot", "roofline", "resnet20", "--peak-gflops", "50", "--bandwidth-gbs", "20", "--out", str(out)]
    assert main(argv) == 0
    text = out.read_text()
    assert "ridge 2.5 FLOP/byte" in text and "compute-bound" in text and "memory-bound" in text


def _decode(row: dict) -> dict:
    shape = lambda s: [int(x) for x in s.split("x")] if s else []
    num = lambda s: None if s == "" else (int(float(s)) if float(s).is_integer() else float(s))
    return {
        "name": row["layer"],
        "module_type": row["type"],
        "op": row["op"],
        "input_shapes": [shape(s) for s in row["input_shapes"].split(";")] if row["input_shapes"] else [],
        "output_shape": shape(row["output_shape"]),
        "params": int(row["params"]),
        "macs": int(row["macs"]),
        "other_flops": int(row["other_flops"]),
        "activation_bytes": int(row["activation_bytes"]),
        "rf": None
        if not row["rf_size"]
        else (
            [num(x) for x in row["rf_size"].split("x")],
            [num(x) for x in row["rf_stride"].split("x")],
            [num(x) for x in row["rf_start"].split("x")],
            row["rf_exact"] == "True",
            row["rf_global"] == "True",
        ),
    }


@pytest.mark.parametrize("model", ["resnet20", "vgg11"])
def test_summary_csv_reads_back_as_the_records(tmp_path, capsys, model):
    path = tmp_path / "sub" / "layers.csv"
    assert main(["summary", model, "--csv", str(path), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(d["layers"]) and [int(r["index"]) for r in rows] == list(range(len(rows)))
    for row, layer in zip(rows, d["layers"]):
        got = _decode(row)
        rf = layer["receptive_field"]
        want = {
            k: layer[k]
            for k in (
                "name",
                "module_type",
                "op",
                "input_shapes",
                "output_shape",
                "params",
                "macs",
                "other_flops",
                "activation_bytes",
            )
        }
        want["rf"] = None if rf is None else (rf["size"], rf["stride"], rf["start"], rf["exact"], rf["global_context"])
        assert got == want


def test_summary_csv_with_roofline_columns(tmp_path, capsys):
    path = tmp_path / "l.csv"
    assert main(["summary", "lenet5", "--csv", str(path), "--peak-gflops", "10", "--bandwidth-gbs", "10"]) == 0
    assert "wrote" in capsys.readouterr().out
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert {"arithmetic_intensity", "bound", "predicted_seconds", "bytes_moved", "flops"} <= set(rows[0])
    assert rows[0]["bound"] in ("compute", "memory") and float(rows[0]["predicted_seconds"]) > 0


def test_summary_csv_refused_path_is_one_line(tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    assert main(["summary", "lenet5", "--csv", str(tmp_path / "afile" / "x.csv")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cnnatlas: error:") and "--csv" in err and err.count("\n") == 1


def test_summary_csv_replaces_only_an_earlier_table(tmp_path, capsys):
    """--csv over a CSV of the user's is refused and the file kept; over an earlier --csv table (with or
    without the roofline columns) it is replaced, and no partial file is left."""
    mine = tmp_path / "data.csv"
    mine.write_text("name,score\nada,3\n")
    assert main(["summary", "lenet5", "--csv", str(mine)]) == 2
    assert "data.csv: a file that is not a table summary wrote (a file of yours?)" in capsys.readouterr().err
    assert mine.read_text() == "name,score\nada,3\n"
    table = tmp_path / "t.csv"
    assert main(["summary", "lenet5", "--csv", str(table), "--peak-gflops", "10", "--bandwidth-gbs", "10"]) == 0
    assert main(["summary", "resnet20", "--csv", str(table)]) == 0
    with open(table, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert "bound" not in rows[0] and len(rows) > 12  # resnet20's table, not lenet5's
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.csv", "t.csv"]
    capsys.readouterr()


def test_readme_roofline_table_is_the_saved_run():
    """The README quotes benchmarks/RESULTS-roofline.json (written by benchmarks/roofline.py), not numbers
    copied by hand; the saved report is that run written out."""
    import importlib.util
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("roofline_benchmark", root / "benchmarks" / "roofline.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    saved = json.loads((root / "benchmarks" / "RESULTS-roofline.json").read_text(encoding="utf-8"))
    assert bench.readme_table(saved) in (root / "README.md").read_text(encoding="utf-8")
    assert bench.report(saved) == (root / "benchmarks" / "RESULTS-roofline.md").read_text(encoding="utf-8")
    assert set(saved["cases"]) == {"resnet50", "mobilenet_v2"}


class _Classes(nn.Module):
    """One record of each class: dense conv, depthwise conv, max-pool, avg-pool, addition."""

    def __init__(self):
        super().__init__()
        self.dense = nn.Conv2d(4, 8, 3, padding=1, bias=False)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False)
        self.grouped = nn.Conv2d(8, 8, 3, padding=1, groups=2, bias=False)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.avgpool = nn.AvgPool2d(2)

    def forward(self, x):
        y = self.grouped(self.dw(self.dense(x)))
        return self.avgpool(self.maxpool(y + y))


_CEILINGS = {"depthwise_flops": 2e9, "max_pool_flops": 1e8, "avg_pool_flops": 4e8, "elementwise_flops": 3e9}


def _class_records():
    report = analyze(_Classes(), (1, 4, 16, 16))
    return report, {rec.name or rec.op: rec for rec in report.layers}


def test_operator_class_of_each_record():
    from cnnatlas.analysis.roofline import operator_class

    _, recs = _class_records()
    got = {name: operator_class(rec) for name, rec in recs.items()}
    assert got == {
        "dense": "dense",
        "dw": "depthwise",
        "grouped": "dense",  # groups 2 < 8 input channels: not depthwise
        "add": "elementwise",
        "maxpool": "max_pool",
        "avgpool": "avg_pool",
    }, got


def test_prediction_uses_the_class_ceiling():
    report, recs = _class_records()
    machine = Machine(1e10, 1e12, **_CEILINGS)  # memory so fast that every record is compute-bound
    points = {rec.name or rec.op: p for rec, p in zip(report.layers, roofline(report, machine))}
    want = {
        "dense": ("compute", 1e10),
        "grouped": ("compute", 1e10),
        "dw": ("compute (depthwise)", 2e9),
        "maxpool": ("compute (max-pool)", 1e8),
        "avgpool": ("compute (avg-pool)", 4e8),
        "add": ("compute (element-wise)", 3e9),
    }
    for name, (bound, ceiling) in want.items():
        p = points[name]
        assert p.bound == bound and math.isclose(p.seconds, layer_flops(recs[name]) / ceiling), (name, p)
    mp = recs["maxpool"]
    assert layer_flops(mp) == 9 * 8 * 8 * 8  # one FLOP per window element per output, as analysis/flops.py counts
    slow_memory = roofline(report, Machine(1e10, 1e6, **_CEILINGS))  # now memory binds everything
    assert {p.bound for p in slow_memory} == {"memory"}
    single = roofline(report, Machine(1e10, 1e12))  # no ceilings given: every class at the peak, plain "compute"
    assert {p.bound for p in single} == {"compute"}
    assert all(math.isclose(p.seconds, p.flops / 1e10) for p in single)
    assert Machine(1e10, 1e12, **_CEILINGS).peak_only() == Machine(1e10, 1e12)


def test_a_ceiling_is_never_above_the_peak_and_must_be_positive():
    assert Machine(1e9, 1e9, depthwise_flops=5e9).ceiling("depthwise") == 1e9
    assert Machine(1e9, 1e9, max_pool_flops=5e8).ceiling("max_pool") == 5e8
    assert Machine(1e9, 1e9).ceiling("max_pool") == 1e9 and Machine(1e9, 1e9).ceiling("dense") == 1e9
    for bad in (0, -1.0, float("nan")):
        with pytest.raises(InvalidArgumentError, match="max_pool ceiling"):
            Machine(1e9, 1e9, max_pool_flops=bad)


def test_row_roofline_names_the_bound_with_most_time():
    from cnnatlas.analysis.roofline import row_roofline

    report, _ = _class_records()
    points = roofline(report, Machine(1e10, 1e12, **_CEILINGS))
    row = row_roofline(points)
    assert row["bound"] == "compute (max-pool)"  # the max-pool, at 0.1 GFLOP/s, takes most of the time
    assert math.isclose(row["predicted_seconds"], sum(p.seconds for p in points))


def test_kendall_tau_b_against_scipy():
    from cnnatlas.analysis.roofline import kendall_tau_b

    stats = pytest.importorskip("scipy.stats")
    a = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0]
    b = [2.0, 7.0, 1.0, 8.0, 2.0, 8.0, 1.0, 8.0]
    assert math.isclose(kendall_tau_b(a, b), stats.kendalltau(a, b).statistic)
    assert kendall_tau_b([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert kendall_tau_b([1, 1, 1], [1, 2, 3]) is None


def test_measure_machine_measures_the_class_ceilings():
    m = measure_machine(matmul_side=128, triad_floats=1 << 18, repeats=1, threads=1)
    ceilings = m.as_dict()["ceilings_gflops"]
    assert set(ceilings) == {"depthwise", "max_pool", "avg_pool", "elementwise"}
    assert all(v > 0 for v in ceilings.values()) and "class ceilings" in m.source
    bare = measure_machine(matmul_side=128, triad_floats=1 << 18, repeats=1, threads=1, ceilings=False)
    assert set(bare.as_dict()["ceilings_gflops"].values()) == {None} and "class ceilings" not in bare.source


def test_ceiling_flags(capsys):
    argv = ["roofline", "--peak-gflops", "10", "--bandwidth-gbs", "5", "--max-pool-gflops", "0.5", "--json"]
    assert main(argv) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["peak_gflops"] == 10 and d["ceilings_gflops"]["max_pool"] == 0.5
    assert d["ceilings_gflops"]["depthwise"] is None and "--max-pool-gflops" in d["source"]
    argv = ["summary", "resnet18", "--peak-gflops", "100", "--bandwidth-gbs", "1000", "--max-pool-gflops", "1"]
    assert main([*argv, "--json"]) == 0
    layers = json.loads(capsys.readouterr().out)["layers"]
    pool = next(x for x in layers if "max_pool" in x["op"])
    assert pool["bound"] == "compute (max-pool)" and pool["operator_class"] == "max_pool"
    assert pool["predicted_seconds"] == pytest.approx(pool["flops"] / 1e9)
    assert main(["summary", "lenet5", "--avg-pool-gflops", "0"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
