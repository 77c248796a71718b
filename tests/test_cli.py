"""The command line as a user runs it: JSON keys, one-line errors, exit codes."""

import argparse
import json
import subprocess
import sys

import pytest

import cnnatlas
from cnnatlas.cli import build_parser, main
from cnnatlas.cli.console import json_text


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


def test_a_table_in_a_file_keeps_its_rows_whole_and_in_a_narrow_terminal_its_figures(capsys, monkeypatch):
    """Written to a pipe or a file (no terminal, no COLUMNS) a table takes its natural width, not rich's
    80 columns; in an 80-column terminal the text columns give way and no figure is split or cut."""
    from cnnatlas.cli.console import FILE_TABLE_WIDTH

    monkeypatch.delenv("COLUMNS", raising=False)
    assert main(["summary", "resnet18"]) == 0
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines() if line.strip()}
    assert rows["stem_pool"][:3] == ["stem_pool", "MaxPool2d", "1×64×56×56"]  # not folded at 80 columns
    assert rows["2"][:6] == ["2", "Sequential", "1×256×14×14", "2,099,712", "411.04", "M"]
    assert main(["verify", "--list"]) == 0  # a long prose column still wraps, at FILE_TABLE_WIDTH
    lines = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in lines) == FILE_TABLE_WIDTH

    monkeypatch.setenv("COLUMNS", "80")  # a terminal of 80 columns
    assert main(["summary", "resnet18"]) == 0
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 80
    for figure in ("2,099,712", "8,393,728", "411.04 M", "802.82 k", "435/32"):
        assert figure in out, figure
    assert main(["models", "--pretrained", "resnet*"]) == 0
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 80
    assert "80.858" in out and "95.434" in out  # resnet50's IMAGENET1K_V2 top-1 and top-5, whole


def test_json_answers_keep_arrays_of_figures_on_one_line():
    value = {"confusion": [[3, 0], [1, 2]], "names": ["a", "é"], "n": 1.5, 7: None, "empty": {}, "rows": [{"x": []}]}
    text = json_text(value)
    assert json.loads(text) == json.loads(json.dumps(value))
    assert text.splitlines() == [
        "{",
        ' "confusion": [',
        "  [3, 0],",
        "  [1, 2]",
        " ],",
        ' "names": ["a", "\\u00e9"],',
        ' "n": 1.5,',
        ' "7": null,',
        ' "empty": {},',
        ' "rows": [',
        "  {",
        '   "x": []',
        "  }",
        " ]",
        "}",
    ]
    assert '"é"' in json_text(value, ensure_ascii=False)


def test_every_option_of_every_command_says_what_it_is():
    def undescribed(parser: argparse.ArgumentParser, command: str) -> list[str]:
        found = []
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    found += undescribed(sub, f"{command} {name}")
            elif action.help is None:
                found.append(f"{command} {'/'.join(action.option_strings) or action.dest}")
        return found

    assert undescribed(build_parser(), "cnnatlas") == []


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
        (["info"], "the following arguments are required: MODEL"),
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
