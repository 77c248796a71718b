"""`cnnatlas summary`, `cnnatlas rf` and `cnnatlas calc` as a user runs them."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap

import pytest

from cnnatlas.cli import calc, main


def run_json(capsys, *args) -> dict:
    assert main(list(args)) == 0
    return json.loads(capsys.readouterr().out)


def test_summary_json_keys_and_published_check(capsys):
    d = run_json(capsys, "summary", "resnet50", "--json")
    for key in (
        "params",
        "trainable_params",
        "macs",
        "flops",
        "other_flops",
        "param_bytes",
        "activation_bytes",
        "receptive_field",
        "layers",
        "unsupported_ops",
    ):
        assert key in d, key
    assert d["params"] == 25_557_032 and round(d["macs"] / 1e9, 3) == 4.089 and d["flops"] == 2 * d["macs"]
    rf = d["receptive_field"]
    assert rf["size"] == [427, 427] and rf["stride"] == [32, 32] and rf["start"] == [0, 0]
    layer = d["layers"][0]
    assert set(layer) >= {"name", "op", "output_shape", "params", "macs", "receptive_field"}
    assert layer["op"] == "convolution" and layer["output_shape"] == [1, 64, 112, 112]
    assert layer["receptive_field"]["size"] == [7, 7]
    assert d["unsupported_ops"] == {}
    assert d["published"]["macs_agreement"] == "exact" and d["published"]["params_agreement"] == "exact"


def test_summary_table_with_depth(capsys):
    assert main(["summary", "vgg11", "--depth", "1"]) == 0
    out = capsys.readouterr().out
    assert "features" in out and "7.609 G" in out and "receptive field" in out and "equal to 3 decimals" in out


def test_summary_torchvision_timm_and_file(capsys, tmp_path):
    d = run_json(capsys, "summary", "torchvision:mobilenet_v3_small", "--json")
    assert d["params"] == 2_542_856 and round(d["macs"] / 1e9, 3) == 0.057
    d = run_json(capsys, "summary", "timm:resnet18", "--json", "--input", "2x3x64x64")
    assert d["input_shapes"] == [[2, 3, 64, 64]] and d["params"] == 11_689_512
    path = tmp_path / "mine.py"
    path.write_text(
        textwrap.dedent("""
        import torch
        from torch import nn

        class TwoInputs(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(3, 8, 3)
                self.fc = nn.Linear(4, 8)

            def forward(self, image, extra):
                return self.conv(image).mean((2, 3)) + self.fc(extra)

        def build():
            return TwoInputs()
    """)
    )
    d = run_json(capsys, "summary", f"{path}:build", "--json", "--input", "1x3x10x10,1x4")
    assert d["input_shapes"] == [[1, 3, 10, 10], [1, 4]]
    assert d["macs"] == 8 * 8 * 8 * 27 + 4 * 8


def test_model_arg_builds_the_model_that_every_command_takes(capsys, tmp_path):
    """--model-arg KEY=VALUE: summary, rf (with --output-stride too), bench, export and the pictures take the
    model built with those keyword arguments, for a registry name, torchvision:NAME and a file's factory;
    such a model is no longer the one its published figures describe."""
    import torch
    import torchvision

    from cnnatlas import create_model
    from cnnatlas.models.base import count_params

    mobile = create_model("deeplabv3", backbone="mobilenet_v2")
    assert count_params(mobile) != count_params(create_model("deeplabv3"))
    d = run_json(capsys, "summary", "deeplabv3", "--model-arg", "backbone=mobilenet_v2", "--json")
    assert d["params"] == count_params(mobile) and d["model"] == "deeplabv3(backbone='mobilenet_v2')"
    assert d["input_shapes"] == [[1, 3, 64, 64]] and d["output_shapes"] == [[1, 21, 64, 64]]
    d = run_json(capsys, "summary", "resnet50", "--model-arg", "num_classes=10", "--json")
    assert d["params"] == count_params(create_model("resnet50", num_classes=10)) and d["published"] is None
    d = run_json(capsys, "summary", "lenet5", "--model-arg", "in_channels=3", "--json")  # its input follows
    assert d["input_shapes"] == [[1, 3, 32, 32]]
    d = run_json(capsys, "summary", "torchvision:resnet18", "--model-arg", "num_classes=10", "--json")
    assert d["params"] == sum(p.numel() for p in torchvision.models.resnet18(num_classes=10).parameters())
    path = tmp_path / "mine.py"
    path.write_text("from torch import nn\n\ndef build(width=4):\n    return nn.Conv2d(3, width, 3)\n")
    d = run_json(capsys, "summary", f"{path}:build", "--model-arg", "width=6", "--input", "1x3x8x8", "--json")
    assert d["params"] == 3 * 6 * 9 + 6 and d["model"] == f"{path}:build(width=6)"

    args = ["deeplabv3", "--model-arg", "backbone=mobilenet_v2", "--output-stride", "8,16", "--json"]
    d = run_json(capsys, "rf", *args)
    assert d["model"] == "deeplabv3" and d["model_args"] == {"backbone": "mobilenet_v2"}
    for row in d["output_strides"]:
        built = create_model("deeplabv3", backbone="mobilenet_v2", output_stride=row["output_stride"])
        assert row["params"] == count_params(built)
    assert main(["summary", "resnet50", "--output-stride", "8", "--model-arg", "output_stride=8"]) == 2
    assert "give the output stride once" in capsys.readouterr().err

    bench = ["bench", "lenet5", "--model-arg", "in_channels=3", "--batch", "1", "--repeats", "1"]
    assert run_json(capsys, *bench, "--json")[0]["model"] == "lenet5(in_channels=3)"
    assert main(bench) == 0 and "input 3×32×32" in capsys.readouterr().out  # the input the model was built for
    scripted = tmp_path / "lenet.pt"
    assert main(["export", "lenet5", "--model-arg", "in_channels=3", "--torchscript", str(scripted)]) == 0
    capsys.readouterr()
    assert torch.jit.load(scripted)(torch.zeros(1, 3, 32, 32)).shape == (1, 10)
    default, built = tmp_path / "default.dot", tmp_path / "mobile.dot"
    assert main(["plot", "diagram", "deeplabv3", "--out", str(default)]) == 0
    assert main(["plot", "diagram", "deeplabv3", "--model-arg", "backbone=mobilenet_v2", "--out", str(built)]) == 0
    capsys.readouterr()
    assert "InvertedResidual" in built.read_text() and "InvertedResidual" not in default.read_text()
    assert main(["summary", "resnet50", "--model-arg", "nosuch=1"]) == 2
    assert "resnet50: unknown keyword argument 'nosuch'" in capsys.readouterr().err
    assert main(["summary", "resnet50", "--model-arg", "nosuch"]) == 2
    assert "argument --model-arg: expected KEY=VALUE" in capsys.readouterr().err


def test_summary_sweep(capsys):
    d = run_json(capsys, "summary", "resnet18", "--sweep", "64,128", "--json")
    a, b = d["sweep"]
    assert a["input"] == [[1, 3, 64, 64]] and b["input"] == [[1, 3, 128, 128]]
    fc = 512 * 1000  # the classifier's MACs do not depend on the input size; the convolutions' grow as H·W
    assert b["macs"] - fc == 4 * (a["macs"] - fc) and b["activation_bytes"] > 3 * a["activation_bytes"]
    d = run_json(capsys, "summary", "torchvision:r3d_18", "--sweep", "64,112", "--json")
    assert [row["input"] for row in d["sweep"]] == [[[1, 3, 16, 64, 64]], [[1, 3, 16, 112, 112]]]  # time stays
    assert main(["summary", "resnet18", "--sweep", "64,128"]) == 0
    assert "cost against input size" in capsys.readouterr().out


def test_rf_layer_by_layer(capsys):
    d = run_json(capsys, "rf", "vgg16", "--json", "--depth", "1")
    assert d["receptive_field"]["size"] == [212, 212] and d["receptive_field"]["padding"] == [90, 90]
    names = [row["name"] for row in d["layers"]]
    assert "features" in names
    assert main(["rf", "resnet18", "--depth", "2"]) == 0
    out = capsys.readouterr().out
    assert "435" in out and "stride" in out


def test_rf_effective(capsys):
    d = run_json(capsys, "rf", "lenet5", "--json", "--erf", "--samples", "2")
    erf = d["effective_receptive_field"]
    assert erf["theoretical"]["size"] == d["receptive_field"]["size"]
    assert all(0 < s <= t for s, t in zip(erf["size"], erf["theoretical"]["size"]))


def test_a_model_built_with_real_weights_is_the_same_on_every_run(capsys):
    """What `rf --erf` and the pictures measure on an untrained model is reproducible: it is built from
    one seed each time, and the caller's random state is left as it was."""
    import torch

    from cnnatlas.loading import load_model

    state = torch.random.get_rng_state()
    first, second = (load_model("resnet20", meta=False).model.state_dict() for _ in range(2))
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(torch.equal(first[k], second[k]) for k in first)
    runs = [run_json(capsys, "rf", "resnet20", "--erf", "--samples", "1", "--json") for _ in range(2)]
    assert runs[0]["effective_receptive_field"] == runs[1]["effective_receptive_field"]


@pytest.mark.parametrize(
    "args, key, value",
    [
        (["conv-params", "--in-channels", "64", "--out-channels", "128"], "value", 73_856),
        (["conv-output", "--input", "224", "--kernel", "7", "--stride", "2", "--padding", "3"], "value", 112),
        (["same-padding", "--kernel", "3", "--dilation", "2"], "value", 2),
        (
            ["conv-macs", "--output", "112,112", "--kernel", "7", "--in-channels", "3", "--out-channels", "64"],
            "value",
            118_013_952,
        ),
        (["stacked-rf", "--n", "5"], "value", 11),
        (["dilation", "--kernel", "3", "--dilation", "2"], "value", 5),
        (["se", "--channels", "256", "--no-bias"], "value", 8192),
        (["densenet-channels", "--initial", "64", "--growth", "32", "--layer", "6"], "value", 224),
        (["vit-tokens", "--image", "224", "--patch", "16"], "value", 197),
        (["dense-params", "--height", "2", "--width", "2", "--in-channels", "1", "--out-channels", "1"], "value", 16),
    ],
)
def test_calc_values(capsys, args, key, value):
    assert run_json(capsys, "calc", "--json", *args)[key] == value


def test_calc_comparisons(capsys):
    d = run_json(capsys, "calc", "separable", "--in-channels", "256", "--out-channels", "256", "--json")
    assert d["value"]["standard"] == 589_824 and d["value"]["separable"] == 67_840
    d = run_json(capsys, "calc", "stacked-vs-single", "--channels", "10", "--json")
    assert d["value"] == {"one_5x5": 2500, "2_stacked_3x3": 1800, "ratio": 0.72, "saving": pytest.approx(0.28)}
    d = run_json(capsys, "calc", "rf-stack", "--layer", "7,2,3", "--layer", "3,2,1", "--json")
    assert d["value"] == {"size": 11, "stride": 4, "start": 0}
    d = run_json(capsys, "calc", "compound-scaling", "--phi", "2", "--json")
    assert d["value"]["depth"] == pytest.approx(1.44)
    d = run_json(
        capsys,
        "calc",
        "inflation",
        "--time",
        "3",
        "--kernel",
        "3",
        "--in-channels",
        "4",
        "--out-channels",
        "4",
        "--json",
    )
    assert d["value"]["ratio"] == 3
    d = run_json(capsys, "calc", "pointwise", "--in-channels", "8", "--out-channels", "8", "--no-bias", "--json")
    assert d["value"]["ratio"] == pytest.approx(1 / 9)


def test_calc_text(capsys):
    assert main(["calc", "conv-params", "--in-channels", "64", "--out-channels", "128"]) == 0
    out = capsys.readouterr().out
    assert "73,856" in out and "formula" in out


@pytest.mark.parametrize("formula", [name for name, *_ in calc.COMMANDS])
def test_every_calculator_says_what_each_argument_is(capsys, formula):
    with pytest.raises(SystemExit):
        main(["calc", formula, "--help"])
    options = capsys.readouterr().out.split("options:")[1]
    described = re.findall(r"^  (--[\w-]+)(?: [A-Z_]+)?(?: {2,}|\n {3,})(?!-)(\S.*)$", options, re.M)
    flags = re.findall(r"^  (--[\w-]+)", options, re.M)
    assert flags and [flag for flag, _ in described] == flags, options


@pytest.mark.parametrize(
    "args, message",
    [
        (["summary", "resnet5O"], "unknown model 'resnet5O'"),
        (["summary", "torchvision:resnet5"], "torchvision has no model 'resnet5'"),
        (["summary", "resnet18", "--input", "1x3xbig"], "--input: expected sizes"),
        (["summary", "resnet18", "--sweep", "a,b"], "--sweep: expected sizes"),
        (["summary", "no/such/file.py:build"], "no file"),
        (["summary", "vgg16", "--input", "1x3x8x8"], "smallest input"),
        (  # a shape without the batch: the same shape with it, named
            ["summary", "efficientnet_b0", "--input", "3x64x64"],
            "--input takes the batch size first, as efficientnet_b0's default 1x3x224x224 does: --input 1x3x64x64",
        ),
        (["rf", "lenet5", "--input", "1x32x32"], "--input 1x1x32x32; got 1x32x32"),
        (["summary", "resnet18", "--input", "64"], "default 1x3x224x224 does: --input 1x3x64x64; got 64"),
        (["summary", "r3d_18", "--input", "3x112x112"], "default 1x3x16x112x112 does; got 3x112x112"),
        (["summary", "r3d_18", "--input", "3x8x112x112"], "--input 1x3x8x112x112; got 3x8x112x112"),
        (["summary", "r3d_18", "--input", "64"], "--input 1x3x16x64x64; got 64"),
        (["summary", "wavenet", "--input", "4000"], "--input 1x1x4000; got 4000"),
        (  # sizes joined by commas read as inputs of one number each: the shape they meant, named
            ["summary", "resnet18", "--input", "1,3,64,64"],
            "--input 1,3,64,64 reads as 4 inputs of one size each; a shape's sizes are joined by x, batch first "
            "(--input 1x3x64x64)",
        ),
        (["rf", "resnet18", "--input", "3,64,64"], "reads as 3 inputs of one size each; a shape's sizes are joined"),
        (["summary", "r3d_18", "--input", "3,8,112,112"], "(--input 1x3x8x112x112)"),
        (["calc", "conv-output", "--input", "2", "--kernel", "7"], "does not fit"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(capsys, args, message):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_usage_error_in_a_subprocess_prints_no_traceback():
    proc = subprocess.run(
        [sys.executable, "-m", "cnnatlas", "summary", "resnet18", "--input", "1x3xbig"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 2 and "--input: expected sizes" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_tour_analysis_section(capsys):
    """Every registered model traced; every torchvision figure reproduced; the RF table rows agree."""
    assert main(["tour", "--section", "analysis"]) == 0
    out = capsys.readouterr().out
    assert "Every MAC count torchvision publishes is reproduced" in out
    assert out.count("agrees") == 4
