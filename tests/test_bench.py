"""`cnnatlas bench` and the timing helpers: JSON keys, ratios, clear usage errors."""

import json

import pytest
import torch

from cnnatlas.bench import inference_runner, summarize, time_alternately
from cnnatlas.cli import main

KEYS = {"model", "batch", "images_per_s", "latency_ms_p50", "latency_ms_p95", "threads", "repeats"}


def test_bench_json_rows_per_batch(capsys):
    assert (
        main(["bench", "lenet5", "--batch", "1,4", "--repeats", "3", "--warmup", "1", "--json", "--device", "cpu"]) == 0
    )
    rows = json.loads(capsys.readouterr().out)
    assert [(r["model"], r["batch"]) for r in rows] == [("lenet5", 1), ("lenet5", 4)]
    for r in rows:
        assert set(r) == KEYS
        assert r["repeats"] == 3 and r["images_per_s"] > 0
        assert 0 < r["latency_ms_p50"] <= r["latency_ms_p95"]
        assert r["images_per_s"] == pytest.approx(r["batch"] / (r["latency_ms_p50"] / 1000))


def test_bench_vs_torchvision_gives_the_ratio_of_the_same_run(capsys):
    args = [
        "bench",
        "mobilenet_v2",
        "--input",
        "64",
        "--batch",
        "2",
        "--repeats",
        "3",
        "--warmup",
        "1",
        "--vs",
        "torchvision",
        "--optimize",
        "--json",
    ]
    assert main(args) == 0
    ours, theirs = json.loads(capsys.readouterr().out)
    assert ours["model"] == "mobilenet_v2 (optimized)" and theirs["model"] == "torchvision mobilenet_v2"
    assert set(ours) == KEYS | {"ratio_vs"} and "ratio_vs" not in theirs
    assert ours["ratio_vs"] == pytest.approx(ours["images_per_s"] / theirs["images_per_s"])


def test_bench_table(capsys):
    assert main(["bench", "lenet5", "--batch", "2", "--repeats", "2", "--warmup", "0"]) == 0
    out = capsys.readouterr().out
    assert "lenet5" in out and "images/s" in out and "measured here" in out


def test_bench_times_any_model_the_analyser_takes(tmp_path, capsys):
    """torchvision:NAME at the size its weights were published for, unless --input says otherwise; a file's
    factory, which says nothing of its input, only with --input's channels and sizes."""
    assert (
        main(["bench", "torchvision:squeezenet1_0", "--input", "64", "--repeats", "2", "--batch", "1", "--json"]) == 0
    )
    (row,) = json.loads(capsys.readouterr().out)
    assert row["model"] == "torchvision:squeezenet1_0" and row["images_per_s"] > 0
    assert main(["bench", "torchvision:squeezenet1_0", "--input", "3x2x2"]) == 2
    assert "torchvision:squeezenet1_0 does not run on a 3×2×2 input: RuntimeError: Calculated padded input size" in (
        capsys.readouterr().err
    )
    factory = tmp_path / "tiny.py"
    factory.write_text("import torch\ndef build():\n    return torch.nn.Conv1d(2, 4, 3)\n")
    assert main(["bench", f"{factory}:build", "--repeats", "2"]) == 2
    assert "does not say what input it takes; give one sample's channels and sizes, e.g. --input 3x224x224" in (
        capsys.readouterr().err
    )
    assert main(["bench", f"{factory}:build", "--input", "2x50", "--batch", "3", "--repeats", "2", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["model"] == f"{factory}:build" and row["batch"] == 3


@pytest.mark.parametrize(
    "args, message",
    [
        (["--batch", "0"], "--batch must be positive"),
        (["--batch", "a,b"], "--batch must be comma-separated integers"),
        (["--repeats", "0"], "--repeats must be ≥ 1"),
        (
            ["--input", "3x2x2x2"],
            "one sample's size here, without the batch (--batch gives it): --input 2x2x2 --batch 3",
        ),
        (["--input", "1x1x32x32x32"], "--input '1x1x32x32x32' has 5 sizes; this model takes 2 spatial sizes"),
        (["--input", "3x2"], "too small"),
        (["--vs", "torchvision"], "no torchvision counterpart"),
    ],
)
def test_bench_usage_errors_exit_2(args, message, capsys):
    assert main(["bench", "lenet5", *args]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message given where no GPU is present")
def test_bench_cuda_without_a_gpu_is_a_usage_error(capsys):
    assert main(["bench", "lenet5", "--device", "cuda"]) == 2
    assert "no CUDA GPU" in capsys.readouterr().err


def test_time_alternately_takes_turns():
    calls = []
    runners = {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}
    times = time_alternately(runners, warmup=1, repeats=3)
    assert calls[:4] == ["a", "b", "a", "b"]  # warm-up, then the first round in the given order
    assert all(sorted(calls[i : i + 2]) == ["a", "b"] for i in range(2, 8, 2))  # every round runs each once
    assert {k: len(v) for k, v in times.items()} == {"a": 3, "b": 3}
    t = summarize("a", 8, [0.5, 1.0, 2.0])
    assert t.images_per_s == 8.0 and t.latency_ms_p50 == 1000.0


def test_inference_runner_runs_without_autograd_in_eval_mode():
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Dropout(0.5)).train()
    x = torch.ones(4, 3)
    out = inference_runner(model, x)()
    assert not model.training and not out.requires_grad
    assert torch.equal(out, inference_runner(model, x)())  # dropout off: the same output twice
