"""The command line as a user runs it: JSON keys, one-line errors, exit codes."""

import json
import subprocess
import sys

import pytest

import cnnatlas
from cnnatlas.cli import main


def run(*args):
    """Run `python -m cnnatlas ARGS` in a subprocess: what a user sees, tracebacks included."""
    proc = subprocess.run([sys.executable, "-m", "cnnatlas", *args], capture_output=True, text=True, timeout=600)
    return proc.returncode, proc.stdout, proc.stderr


def test_models_json_lists_every_model_with_measured_and_published_params(capsys):
    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == cnnatlas.list_models()
    by_name = {r["name"]: r for r in rows}
    for row in rows:
        assert set(row) == {"name", "family", "params", "reference"}
        assert set(row["reference"]) == {"params", "macs", "top1", "top5", "source"}
    assert by_name["vgg16"]["params"] == by_name["vgg16"]["reference"]["params"] == 138_357_544
    assert by_name["lenet5"]["params"] == 61_706
    assert by_name["alexnet"]["reference"]["macs"] == 714_000_000


def test_models_pattern_and_table(capsys):
    assert main(["models", "vgg1?"]) == 0
    out = capsys.readouterr().out
    assert "vgg11" in out and "vgg19" in out and "alexnet" not in out and "exact" in out


def test_info(capsys):
    assert main(["info", "alexnet_2012", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["measured_params"] == 60_965_224 and info["published"]["params_exact"] is False
    assert main(["info", "vgg16"]) == 0
    out = capsys.readouterr().out
    assert "138,357,544" in out and "source:" in out


def test_version():
    code, out, _ = run("--version")
    assert code == 0 and out.strip() == f"cnnatlas {cnnatlas.__version__}"


@pytest.mark.parametrize(
    "args, message",
    [
        (["info", "vgg61"], "unknown model 'vgg61'. Did you mean"),
        (["models", "--nope"], "unrecognized arguments: --nope"),
        (["no-such-command"], "invalid choice: 'no-such-command'"),
        (["info"], "the following arguments are required: name"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(args, message):
    code, out, err = run(*args)
    assert code == 2
    assert message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_tour_models_section(capsys):
    assert main(["tour", "--section", "models"]) == 0
    out = capsys.readouterr().out
    assert "measured" in out and "published" in out and "None disagrees" in out
