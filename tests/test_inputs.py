"""Bad input, named: each probe of a hostile user gets one line naming what was expected and what came, exit 2
on the command line (a CnnAtlasError in the library) — flag values, output paths, shapes, quantized models."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import warnings

import pytest
import torch
from torch import nn

import cnnatlas
from cnnatlas import InvalidArgumentError
from cnnatlas.analysis import AnalysisError
from cnnatlas.analysis import formulas as F
from cnnatlas.cli import build_parser, main
from cnnatlas.cli.argtypes import out_dir, out_file


def usage_error(capsys, *args: str) -> str:
    """Run `cnnatlas ARGS`; it must exit 2 with one line on stderr, which is returned."""
    assert main(list(args)) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith("cnnatlas: error: ")
    return err.strip()


CH = ["--in-channels", "3", "--out-channels", "3"]


@pytest.mark.parametrize(
    "args, expected",
    [
        (["compound-scaling", "--phi", "1e308"], "phi must be a finite number with |phi| < 1077"),
        (["compound-scaling", "--phi", "nan"], "argument --phi: expected a finite number; got 'nan'"),
        (["compound-scaling", "--phi", "inf"], "argument --phi: expected a finite number; got 'inf'"),
        (["compound-scaling", "--phi", "2", "--alpha", "nan"], "argument --alpha: expected a finite number ≥ 1"),
        (["conv-params", "--dims", "0", *CH], "argument --dims: expected a whole number from 1 to 3; got '0'"),
        (["conv-params", "--kernel", "3,3,3", "--dims", "2", *CH], "gives 3 sizes, one per axis, but --dims"),
        (["conv-params", "--kernel", "3,a", *CH], "--kernel: expected whole numbers separated by commas; got '3,a'"),
        (["dense-params", "--height", "0", "--width", "2", *CH], "argument --height: expected a whole number ≥ 1"),
        (["dense-params", "--height", "99999999999", "--width", "2", *CH], "from 1 to 2147483647; got '99999999999'"),
        (["stacked-vs-single", "--n", "0", "--channels", "8"], "argument --n: expected a whole number ≥ 1; got '0'"),
        (["conv-macs", "--output", "4,4", "--groups", "0", *CH], "argument --groups: expected a whole number ≥ 1"),
        (
            ["conv-output", "--input", "8", "--kernel", "3", "--padding", "-1"],
            "argument --padding: expected a whole number ≥ 0; got '-1'",
        ),
        (["dilation", "--kernel", "3", "--dilation", "2", "--dims", "7"], "argument --dims: expected a whole number"),
    ],
)
def test_calc_refuses_nonsense(capsys, args, expected):
    assert expected in usage_error(capsys, "calc", *args)


def test_calc_kernel_per_axis_sets_the_dimensions(capsys):
    assert main(["calc", "--json", "conv-params", "--kernel", "3,3,3", *CH]) == 0
    assert '"value": 246' in capsys.readouterr().out  # (27·3 + 1)·3: three axes from the kernel
    assert main(["calc", "--json", "conv-params", "--kernel", "3", "--dims", "3", *CH]) == 0
    assert '"value": 246' in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, expected",
    [
        (["rf", "lenet5", "--erf", "--fraction", "-1"], "argument --fraction: expected a finite number > 0 and ≤ 1"),
        (["rf", "lenet5", "--erf", "--fraction", "nan"], "argument --fraction: expected a finite number > 0 and ≤ 1"),
        (["rf", "lenet5", "--erf", "--samples", "0"], "argument --samples: expected a whole number ≥ 1; got '0'"),
        (["rf", "lenet5", "--depth", "0"], "argument --depth: expected a whole number ≥ 1; got '0'"),
        (["summary", "lenet5", "--depth", "-1"], "argument --depth: expected a whole number ≥ 0; got '-1'"),
        (["summary", "lenet5", "--sweep", ""], "--sweep: expected sizes separated by commas"),
        (["models", "nosuch*"], "expected a pattern matching a registered model"),
        (["report", "--out", "x", "--erf-samples", "nan"], "argument --erf-samples: expected a whole number ≥ 1"),
        (
            ["plot", "erf", "lenet5", "--out", "x.png", "--max-size", "0"],
            "argument --max-size: expected a whole number",
        ),
        (
            ["plot", "equivariance", "--out", "x.png", "--shift", "1", "1e3"],
            "argument --shift: expected a whole number",
        ),
        (["plot", "training", "", "--out", "x.png"], "argument RUN_DIR: expected a path; got ''"),
    ],
)
def test_neighbouring_flags_refuse_nonsense(capsys, tmp_path, monkeypatch, args, expected):
    monkeypatch.chdir(tmp_path)
    assert expected in usage_error(capsys, *args)
    assert list(tmp_path.iterdir()) == []  # refused before anything was written


def test_every_numeric_flag_of_the_analysis_commands_is_checked(capsys):
    """nan and inf (and 10**20 for a whole number) are refused, by the flag's name, for every number a command of
    this area takes, before the rest of the line is looked at."""
    checked = 0
    for path, parser in _parsers(build_parser()):
        if path[:1] not in (("calc",), ("rf",), ("summary",), ("plot",), ("report",), ("bench",)):
            continue
        for action in parser._actions:
            if action.type in (int, float) or getattr(action.type, "__name__", "") in ("integer", "number"):
                flag = max(action.option_strings, key=len)
                ours = getattr(action.type, "__name__", "") == "integer"  # argtypes also bounds whole numbers
                for bad in ("nan", "inf", "99999999999999999999" if ours else "-inf"):
                    err = usage_error(
                        capsys, *path, flag, *[bad] * (action.nargs if isinstance(action.nargs, int) else 1)
                    )
                    assert f"argument {flag}" in err or f"{action.dest} must be" in err, err
                checked += 1
    assert checked >= 40


def _parsers(parser, path=()):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, path + (name,))


# -- --out ---------------------------------------------------------------------------------------


def test_out_on_a_file_or_under_a_file(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "file.txt").write_text("keep me")
    (tmp_path / "folder").mkdir()
    err = usage_error(capsys, "report", "--out", "file.txt", "--models", "lenet5", "--no-claims")
    assert "argument --out: expected a folder; got 'file.txt', which is a file" in err
    err = usage_error(capsys, "report", "--out", "file.txt/atlas", "--models", "lenet5", "--no-claims")
    assert "expected a path under a folder" in err and "file.txt' is a file" in err
    err = usage_error(capsys, "plot", "rf-growth", "lenet5", "--out", "folder")
    assert "argument --out: expected a file name; got 'folder', which is a folder" in err
    err = usage_error(capsys, "plot", "rf-growth", "lenet5", "--out", "file.txt/x.png")
    assert "see 'cnnatlas plot rf-growth --help'" in err
    assert (tmp_path / "file.txt").read_text() == "keep me" and list((tmp_path / "folder").iterdir()) == []


@pytest.mark.skipif(
    not os.path.isdir("/proc") or os.access("/proc", os.W_OK) and os.path.exists("/proc/self/x.png"),
    reason="needs Linux /proc, where a file cannot be created",
)
def test_out_where_the_system_refuses_the_write(capsys):
    """/proc passes the up-front checks for root (who may write anywhere) but refuses the file itself."""
    err = usage_error(capsys, "plot", "rf-growth", "lenet5", "--out", "/proc/cnnatlas-test/x.png")
    assert "--out: expected a file this user can write" in err or "not writable" in err
    err = usage_error(
        capsys,
        "report",
        "--out",
        "/proc/cnnatlas-test",
        "--models",
        "lenet5",
        "--no-claims",
        "--no-erf",
        "--no-diagrams",
        "--quiet",
    )
    assert "--out: expected a folder this user can write" in err or "not writable" in err


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root may write into read-only folders")
def test_out_in_a_read_only_folder(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        for parse in (out_dir, out_file):
            with pytest.raises(argparse.ArgumentTypeError, match="is not writable"):
                parse(str(locked / "x.png"))
    finally:
        locked.chmod(0o700)


def test_out_types_take_what_can_be_written(tmp_path):
    assert out_file(str(tmp_path / "new" / "deeper" / "x.png")) == str(tmp_path / "new" / "deeper" / "x.png")
    assert out_dir(str(tmp_path)) == str(tmp_path)
    assert not (tmp_path / "new").exists()  # checked, not made
    for bad in ("", "x" * 5000):
        with pytest.raises(argparse.ArgumentTypeError, match="expected"):
            out_file(bad)


# -- the parser's messages -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, helper",
    [
        (["calc", "conv-params", *CH, "--bogus"], "see 'cnnatlas calc conv-params --help'"),
        (["summary", "lenet5", "--bogus"], "see 'cnnatlas summary --help'"),
        (["plot", "training", "run", "--out", "x.png", "--zz"], "see 'cnnatlas plot training --help'"),
        (["calc", "--zz"], "see 'cnnatlas calc --help'"),
        (["--zz", "models"], "see 'cnnatlas --help'"),
    ],
)
def test_an_unknown_flag_points_to_its_sub_commands_help(capsys, args, helper):
    err = usage_error(capsys, *args)
    assert "unrecognized arguments:" in err and helper in err


def test_no_command_or_formula_is_one_line_too(capsys):
    assert main([]) == 2
    captured = capsys.readouterr()
    assert "usage: cnnatlas" in captured.out and captured.err.count("\n") == 1 and "expected a COMMAND" in captured.err
    assert "calc needs a FORMULA: conv-params" in usage_error(capsys, "calc")


def test_in_a_subprocess_no_traceback():
    proc = subprocess.run(
        [sys.executable, "-m", "cnnatlas", "calc", "compound-scaling", "--phi", "1e308"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and len(proc.stderr.splitlines()) == 1


# -- the library ---------------------------------------------------------------------------------


def test_compound_scaling_stays_finite():
    with pytest.raises(InvalidArgumentError, match=r"phi must be a finite number with \|phi\| < 1077"):
        F.compound_scaling(1e308)
    with pytest.raises(InvalidArgumentError, match="phi must be a finite number; got nan"):
        F.compound_scaling(float("nan"))
    with pytest.raises(InvalidArgumentError, match="alpha must be a finite number ≥ 1"):
        F.compound_scaling(1, 10**400)
    assert F.compound_scaling(-1000).flops > 0 and F.compound_scaling(1000).flops < float("inf")


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: F.conv_params(3, 3, 3, dims=0), "dims must be an integer ≥ 1; got 0"),
        (lambda: F.dense_params(0, 2, 3, 3), "height must be an integer ≥ 1; got 0"),
        (lambda: F.stacked_vs_single(8, 3, 0), "n must be an integer ≥ 1; got 0"),
        (lambda: F.conv_macs((4, 4), 3, 3, 3, groups=0), "groups must be an integer ≥ 1; got 0"),
        (lambda: F.receptive_field_stack(3), "layers must be a list of"),
        (lambda: F.conv_params(None, 3, 3), "kernel_size must be an integer or one integer per spatial axis"),
    ],
)
def test_calculators_refuse_nonsense(call, message):
    with pytest.raises(InvalidArgumentError, match=message):
        call()


def test_analyze_names_a_shape_that_is_not_whole():
    model = nn.Sequential(nn.Conv2d(3, 4, 3))
    with pytest.raises(InvalidArgumentError, match=r"got \(1, 3, 16.5, 16\), in which 16.5 is not a whole number"):
        cnnatlas.analyze(model, (1, 3, 16.5, 16))
    with pytest.raises(InvalidArgumentError, match=r"input 1: .* got \(1, 'a'\), in which 'a' is not a whole number"):
        cnnatlas.analyze(model, [(1, 3, 8, 8), (1, "a")])
    with pytest.raises(InvalidArgumentError, match="too large"):
        cnnatlas.analyze(model, (1, 3, 2**40, 2**40))
    np = pytest.importorskip("numpy")
    assert cnnatlas.analyze(model, (1, 3, np.int64(8), 8)).output_shapes == [(1, 4, 6, 6)]
    with pytest.raises(InvalidArgumentError, match=r"got str 'resnet18': build the model first, analyze\(create_model"):
        cnnatlas.analyze("resnet18", (1, 3, 8, 8))


def _quantized():
    engines = [e for e in ("fbgemm", "x86", "qnnpack") if e in torch.backends.quantized.supported_engines]
    if not engines:
        pytest.skip("no quantized engine in this torch build")
    torch.backends.quantized.engine = engines[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import torch.ao.quantization as tq

        float_model = nn.Sequential(tq.QuantStub(), nn.Conv2d(3, 4, 3), nn.ReLU(), tq.DeQuantStub()).eval()
        float_model.qconfig = tq.get_default_qconfig(engines[0])
        prepared = tq.prepare(float_model)
        prepared(torch.randn(2, 3, 8, 8))
        return tq.convert(prepared)


def test_analyze_refuses_a_quantized_model_as_such():
    """An int8 model once blamed `.item()`; it is now named for what it is."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantized = _quantized()
        with pytest.raises(AnalysisError, match="analyze expects a floating-point model; got a quantized one") as err:
            cnnatlas.analyze(quantized, (1, 3, 8, 8))
    assert "analyse the model before quantization" in str(err.value) and "\n" not in str(err.value)


def test_analyze_names_the_inputs_dtype_when_it_clashes_with_the_weights():
    with pytest.raises(AnalysisError, match="The inputs are int8: give the dtype the model computes in"):
        cnnatlas.analyze(cnnatlas.create_model("lenet5"), (1, 1, 32, 32), dtype=torch.int8)


def test_effective_receptive_field_checks_before_working():
    model = cnnatlas.create_model("lenet5")
    for kwargs, message in (
        ({"fraction": "0.5"}, "fraction must be a number in"),
        ({"samples": 1.5}, "samples must"),
        ({"seed": -1}, "seed must be an integer ≥ 0"),
        ({"layer": 3}, "layer must be a module"),
        ({"unit": "centre"}, "unit must be a tuple of integers"),
    ):
        with pytest.raises(InvalidArgumentError, match=message):
            cnnatlas.effective_receptive_field(model, (1, 1, 32, 32), **kwargs)
    with pytest.raises(InvalidArgumentError, match="input_size must be"):
        cnnatlas.effective_receptive_field(model, 32)


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--warmup", "99999999999999999999"], "both at most 10000"),
        (["--repeats", "10001"], "both at most 10000"),
        (["--batch", "1,99999999999"], "expected at most 16 GiB of input"),
        (["--batch", "1", "--input", "99999x99999"], "expected at most 16 GiB of input"),
    ],
)
def test_bench_refuses_what_would_never_end_or_fit(capsys, args, expected):
    assert expected in usage_error(capsys, "bench", "lenet5", *args)


@pytest.mark.skipif(not hasattr(os, "sysconf"), reason="needs the machine's memory size")
def test_effective_receptive_field_refuses_an_input_past_the_machines_memory(capsys):
    err = usage_error(capsys, "rf", "lenet5", "--erf", "--input", "1x1x99999x99999")
    assert "needs about" in err and "GiB" in err and "this machine's" in err


@pytest.mark.parametrize("command", [["summary"], ["rf"], ["rf", "--erf"], ["plot", "rf-growth"]])
def test_a_model_file_whose_factory_raises_is_one_line(capsys, tmp_path, command):
    path = tmp_path / "mine.py"
    path.write_text("def build():\n    raise RuntimeError('the constructor broke\\non two lines')\n")
    args = (
        [*command, f"{path}:build"]
        if command[0] != "plot"
        else [*command, f"{path}:build", "--out", str(tmp_path / "rf.png")]
    )
    if command == ["rf", "--erf"]:
        args = ["rf", f"{path}:build", "--erf"]
    err = usage_error(capsys, *args)
    assert err.endswith(f"{path}:build: building the model failed: RuntimeError: the constructor broke")
