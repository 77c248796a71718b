"""The command line under a fuzzer: every sub-command of `cnnatlas --help`, driven by hypothesis with argument
lists built from its own parser (each flag with values valid and not), plus stray tokens.

Whatever comes in, what reaches the user is exit 0, 1 (a failed run), 2 or 3 (a download the closed mirror
refused) with one line on stderr — never a
traceback — and no file changes in the working folder except under the --out (--onnx, --torchscript, --csv) given.
The CLI runs in-process (`cnnatlas.cli.main(argv)`), in a temporary working folder. Slow sub-commands are kept
to cheap shapes: tiny models, one-model atlases, claims by id with --quick, training pointed at a missing data
folder (its flags parsed and checked, no epoch run), the tour to its argument checks.
Examples are derandomized (the same in every CI run); CNNATLAS_FUZZ_RANDOM=1 draws new ones.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import traceback
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnnatlas.cli import build_parser, main

SETTINGS = dict(
    deadline=None,
    derandomize=not os.environ.get("CNNATLAS_FUZZ_RANDOM"),
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
)

RUN = "run"  # a real training run, made once (lenet5, one epoch on the digits)
PROC = ["/proc/cnnatlas-fuzz/x.png", "/proc/cnnatlas-fuzz"] if Path("/proc").is_dir() else []

# Each pool: values that make sense, then values that do not.
NUMBERS = (
    ["1", "2", "3", "4", "16", "64"],
    ["0", "-1", "0.5", "nan", "inf", "-inf", "1e308", "-1e308", "99999999999999999999", "x", ""],
)
SHAPES = (
    ["1x1x32x32", "1x3x32x32", "2x1x28x28", "1x3x16x16"],
    ["1x3xbig", "0x1x32x32", "1x1x32x32,1x4", "", "32", "3x32x32", "1x32", "1x1x4x4", "1x1x32x32x32"],
)
MODELS = (["lenet5", "resnet20", RUN], ["nosuchnet", "", "torchvision:nosuch", "nofile.py:build", "afile.txt:build"])
PATTERNS = (["lenet5", "lenet*", "resnet2?", "lenet5,resnet20"], ["nosuch", "", ",", "[", "*5"])
PATHS = ([RUN, "image.png", f"{RUN}/checkpoints/epoch-0001"], ["nosuch", "afile.txt", "adir", "", "claims.json", "."])
OUT_FILES = (
    ["out/a.png", "out/b.svg", "out/sub/c.dot"],
    ["out/d.txt", "afile.txt", "afile.txt/x.png", "adir", "", "out", *PROC[:1]],
)
OUT_DIRS = (["out/atlas", "adir/atlas"], ["afile.txt", "afile.txt/sub", "", *PROC[1:]])
INTS = (["3", "3,3", "7,2,3", "3,2,1,1", "3x3"], ["3,3,3", "0", "3,x", "", "-1", "99999999999"])
NAMES = (["conv1", "features.0", "Bottleneck"], ["stages.0", "nosuch", "", ",", "conv1,nosuch"])
CLAIMS = (
    ["conv-params", "same-padding", "stacked-3x3", "one-by-one", "dilation", "vit-tokens", "degradation"],
    ["nosuch-claim", ""],
)

# Values by (command, flag) or flag; other flags by their type or choices.
POOLS: dict[object, tuple[list[str], list[str]]] = {
    "--input": SHAPES,
    "--models": PATTERNS,
    "--layer": NAMES,
    "--layers": NAMES,
    "--block": NAMES,
    "--sweep": (["32,64", "64"], ["0", "a,b", "", "1,x"]),
    "--batch": (["1", "1,2"], ["0", "a", "", "-3"]),
    "--data": (["digits"], ["nosuch-folder", "adir", "", "fashion-mnist"]),
    "--model-arg": (["num_classes=3"], ["x", "=1", "nosuch=1"]),
    "--augment": (["none", "crop,flip"], ["nope", ""]),
    "--onnx": (["out/m.onnx"], ["adir", "", "afile.txt/x.onnx"]),
    "--torchscript": (["out/m.pt"], ["adir", ""]),
    "--weights": PATHS,
    "--resume": (PATHS[0] + ["latest"], PATHS[1]),
    ("calc", "--kernel"): INTS,
    ("calc", "--output"): INTS,
    ("calc", "--layer"): INTS,
    ("plot", "--out"): OUT_FILES,
    ("report", "--out"): OUT_DIRS,
    ("train", "--out"): OUT_DIRS,
    ("plot", "--models"): (["lenet5"], ["alexnet", "nosuch", "", ","]),
    "--csv": (["out/l.csv", "out/sub/m.csv"], ["adir", "", "afile.txt/x.csv", *PROC[:1]]),
}
POSITIONALS = {
    "model": MODELS,
    "name": MODELS,
    "models": (MODELS[0][:2], MODELS[1]),
    "pattern": PATTERNS,
    "run_dir": PATHS,
    "images": PATHS,
    "image": PATHS,
    "ids": CLAIMS,
}
# Flags placed before the generated ones (which may override them) and after (which win): cheap shapes.
BEFORE = {
    ("bench",): ["--batch", "1", "--repeats", "1", "--warmup", "0"],
    ("report",): ["--models", "lenet5", "--no-claims", "--no-erf", "--no-diagrams", "--quiet"],
    ("plot", "pareto"): ["--models", "lenet5"],
}
AFTER = {("train",): ["--data", "nosuch-folder"], ("verify",): ["--quick"], ("tour",): ["--section", "nope"]}
JUNK = st.one_of(
    st.sampled_from(["--", "-", "-h", "--nope", "--json", "=", "--quick", "-x", "--depth", "1"]),
    st.text(alphabet="abcxyz0123456789-=,", max_size=6),
)  # no '/', '.', '~': stays in the folder


def _leaves(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """(command path, parser) for every parser reachable from the top one, the top one and groups included."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _leaves(sub, path + (name,))


PARSERS = [(path, p) for path, p in _leaves(build_parser())]


def _pool(path: tuple[str, ...], action: argparse.Action) -> tuple[list[str], list[str]]:
    if action.choices:
        return [str(c) for c in action.choices], ["nope"]
    if action.type in (int, float) or getattr(action.type, "__name__", "") in ("integer", "number"):
        return NUMBERS
    flag = max(action.option_strings, key=len) if action.option_strings else action.dest
    if not action.option_strings:
        return POSITIONALS.get(action.dest, MODELS)
    return POOLS.get(path[:1] + (flag,)) or POOLS.get(flag) or (PATHS[0] + MODELS[0], PATHS[1] + MODELS[1])


@st.composite
def argv(draw, paths: list[tuple[str, ...]] | None = None) -> list[str]:
    """A command line: a sub-command path, its positionals, some of its flags with values; in a messy line
    also missing positionals or required flags, flags in any order and stray tokens."""
    candidates = [(path, p) for path, p in PARSERS if paths is None or path in paths]
    command = draw(st.sampled_from(sorted({path[:1] for path, _ in candidates})))  # each command alike
    path, parser = draw(st.sampled_from([(path, p) for path, p in candidates if path[:1] == command]))
    messy = draw(st.booleans())
    groups: list[list[str]] = []  # a positional's values, or a flag with its values
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction)):
            continue
        good, bad = _pool(path, action)
        pool = (
            st.sampled_from(bad) if not good or draw(st.integers(0, 9)) < (5 if messy else 1) else st.sampled_from(good)
        )  # a clean line: mostly sensible values
        if not action.option_strings:  # a positional: one or two values, now and then none
            low = 0 if action.nargs in ("?", "*") and path not in (("models",), ("verify",)) else 1
            n = draw(st.integers(low, 2 if action.nargs in ("*", "+") else 1))
            if messy and low and path not in (("models",), ("verify",)) and draw(st.integers(0, 4)) == 0:
                n = 0
            groups.append(draw(st.lists(pool, min_size=n, max_size=n)))
            continue
        if not (action.required and not (messy and draw(st.integers(0, 4)) == 0)) and not draw(st.booleans()):
            continue
        flag = draw(st.sampled_from(action.option_strings))
        if action.nargs == 0:
            groups.append([flag])
            continue
        n = action.nargs if isinstance(action.nargs, int) else draw(st.integers(0 if action.nargs == "?" else 1, 1))
        values = draw(st.lists(pool, min_size=n, max_size=n))
        groups.append([f"{flag}={values[0]}"] if n == 1 and draw(st.integers(0, 4)) == 0 else [flag, *values])
    if messy:
        groups = draw(st.permutations(groups))
        for _ in range(draw(st.integers(0, 2))):
            groups.insert(draw(st.integers(0, len(groups))), [draw(JUNK)])
    return [*path, *BEFORE.get(path, []), *(t for g in groups for t in g), *AFTER.get(path, [])]


def _outputs(args: list[str]) -> list[Path]:
    """The outputs a command line names, as the parser reads them (abbreviated flags included)."""
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            ns, _ = build_parser().parse_known_args(args)
    except BaseException:  # noqa: BLE001 — a line that does not parse runs nothing
        return []
    return [
        Path(v).absolute()
        for key in ("out", "onnx", "torchscript", "csv")
        if isinstance(v := getattr(ns, key, None), str) and v
    ]


def _snapshot(root: Path) -> dict[Path, tuple]:
    found = {}
    for folder, _dirs, files in os.walk(root):
        found[Path(folder)] = ("dir",)
        for f in files:
            st_ = (Path(folder) / f).stat()
            found[Path(folder) / f] = (st_.st_size, st_.st_mtime_ns)
    return found


def _allowed(path: Path, outputs: list[Path]) -> bool:
    return any(path == o or o in path.parents or path in o.parents for o in outputs)


def run_cli(args: list[str]) -> tuple[int, str, str]:
    """`cnnatlas ARGS` in-process: exit status, stdout, stderr; an exception that escapes main fails the test."""
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(args)
    except SystemExit as exit_:  # --help, --version
        code = exit_.code or 0
    except BaseException:  # noqa: BLE001 — what the user would see as a traceback
        pytest.fail(f"cnnatlas {' '.join(map(repr, args))} raised:\n{traceback.format_exc()}")
    return code, out.getvalue(), err.getvalue()


def check(args: list[str], root: Path) -> None:
    before = _snapshot(root)
    code, out, err = run_cli(args)
    where = f"cnnatlas {' '.join(map(repr, args))} → exit {code}, stderr {err[-2000:]!r}"
    assert code in (0, 1, 2, 3), where
    assert "Traceback" not in err and "Traceback" not in out, where
    if code == 3:  # unavailable now: here only a download, the mirror being a closed port
        assert "could not download" in err, where
    if code in (2, 3):
        errors = [line for line in err.splitlines() if line.startswith("cnnatlas: error:")]
        assert len(errors) == 1 and err.rstrip().splitlines()[-1] == errors[0], where
    after = _snapshot(root)
    outputs = _outputs(args)
    changed = {p for p in before.keys() | after.keys() if before.get(p) != after.get(p)}
    stray = sorted(str(p.relative_to(root)) for p in changed if not _allowed(p, outputs))
    assert not stray, f"{where}: changed outside --out {outputs}: {stray}"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A working folder with a trained run, an image, a file and a folder to point flags at; data and
    downloads kept out of it (CNNATLAS_DATA elsewhere, the mirror a closed port: nothing leaves the machine)."""
    from PIL import Image

    root = tmp_path_factory.mktemp("fuzz") / "work"
    root.mkdir()
    env = {"CNNATLAS_DATA": str(root.parent / "data"), "CNNATLAS_MIRROR": "http://127.0.0.1:9"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    cwd = os.getcwd()
    os.chdir(root)
    try:
        assert main(["train", "lenet5", "--epochs", "1", "--out", RUN, "--quiet", "--seed", "0"]) == 0
        (root / "afile.txt").write_text("not a run, not a model\n")
        (root / "adir").mkdir()
        (root / "claims.json").write_text("[{]")
        Image.new("RGB", (20, 16), (200, 30, 30)).save(root / "image.png")
        yield root
    finally:
        os.chdir(cwd)
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


def test_every_sub_command_is_covered():
    names = {path[0] for path, _ in PARSERS if path}  # `cnnatlas --help` lists each
    assert names >= {
        "tour",
        "models",
        "info",
        "train",
        "eval",
        "predict",
        "summary",
        "rf",
        "calc",
        "bench",
        "export",
        "plot",
        "report",
        "verify",
    }


@settings(max_examples=300, **SETTINGS)
@given(args=argv([path for path, _ in PARSERS if path[:1] in (("calc",), ("summary",), ("info",), ("models",), ())]))
def test_fuzz_calc_summary_info(workdir, args):
    check(args, workdir)


@settings(max_examples=150, **SETTINGS)
@given(args=argv([path for path, _ in PARSERS if path[:1] not in (("calc",), ("summary",), ("info",), ("models",))]))
def test_fuzz_every_other_sub_command(workdir, args):
    check(args, workdir)


def test_the_checks_fail_on_a_traceback_and_on_a_stray_file(workdir, monkeypatch):
    """The fuzzer's checks can fail: an exception escaping a sub-command, a file written beside --out."""
    import cnnatlas.cli.calc as calc

    def explode(args):
        raise ZeroDivisionError("deep inside")

    monkeypatch.setattr(calc, "COMMANDS", [(n, h, explode if n == "se" else f, s) for n, h, f, s in calc.COMMANDS])
    with pytest.raises(pytest.fail.Exception, match="ZeroDivisionError"):
        check(["calc", "se", "--channels", "8"], workdir)

    def stray(args):
        (workdir / "stray.txt").write_text("written beside --out")
        return {"value": 1, "formula": "1"}

    monkeypatch.setattr(calc, "COMMANDS", [(n, h, stray if n == "se" else f, s) for n, h, f, s in calc.COMMANDS])
    try:
        with pytest.raises(AssertionError, match="stray.txt"):
            check(["calc", "se", "--channels", "8"], workdir)
    finally:
        (workdir / "stray.txt").unlink(missing_ok=True)
