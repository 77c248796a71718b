"""The README is tested: its Python examples run as written, its `cnnatlas …` command lines run from a
temporary folder, and every `cnnatlas.X` it names is exported by the package.

The examples are found in the README itself (fenced ```python, ```text with `>>>`, and ```sh blocks),
so a new example is tested without touching this file. What a command line needs to run here is
decided per line by the rules in one place below — SKIP_PREFIXES (lines that are not a `cnnatlas`
command), PLACEHOLDER and CHOICE (lines a reader must fill in), LONG_SKIPS (lines left out for their
cost, with the reason) and `plan` (the reduced-cost substitutions, each spelt out). Optional parts in
brackets (`[--json]`) are dropped and the rest runs. Nothing here reaches the network: downloads go
to $CNNATLAS_MIRROR on a closed local port, and a line that needs one is skipped, saying so.
"""

from __future__ import annotations

import importlib
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

import cnnatlas

README = Path(__file__).resolve().parents[1] / "README.md"
TEXT = README.read_text(encoding="utf-8")

# Names the package must export whether or not today's README shows them.
REQUIRED_NAMES = ("optimize", "load_timm_weights")

# Lines that are not a `cnnatlas` command: their first word, and why they do not run here.
SKIP_PREFIXES = {
    "bin/": "creates .venv and installs packages on first use (and bin/test would run this suite inside itself); "
    "the tests run in the environment it made",
    "torchrun": "several processes, or several machines (HOST, R): tests/test_train.py runs two processes "
    "under torchrun on one machine",
    "python benchmarks/": "a benchmark, minutes to hours by design; its measured output is in benchmarks/RESULTS-*.md",
    "pip": "installs packages from an index; tests/test_wheel.py builds the wheel and installs it instead",
}
# A reader fills these in: an upper-case word (PATTERN, NAME, DIR, HOST, R, FILE …) …
PLACEHOLDER = re.compile(r"(?<![\w-])[A-Z][A-Z0-9_]*(?![\w-])")
# … or picks one of several values (auto|cpu|cuda) or continues a list (...).
CHOICE = re.compile(r"\||\.\.\.|…")
# cnnatlas lines left out for their cost: (regular expression on the line, reason).
README_SCENES = 500  # training scenes at most, for a line with --train-scenes
LONG_SKIPS = [
    (
        r"^cnnatlas tour$",
        "the whole tour runs every section, the training included (minutes); "
        "test_cli.py and test_wheel.py run `cnnatlas tour --section models`",
    ),
]
# Input files (and frame folders) a line names and the reader is expected to have: made here from the
# embedded digits.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
INPUT_FOLDER_COMMANDS, FRAMES = ("predict",), 16  # `predict MODEL clip/`: a folder of frames, made as digits
OUTPUT_FLAGS = ("--out", "--onnx", "--torchscript", "--json-out")
FASHION_MNIST_DIR = Path(os.environ.get("CNNATLAS_FASHION_MNIST", "/usr/share/datasets/fashion-mnist"))
FASHION_SUBSET = (1024, 256)  # train / test images of the reduced Fashion-MNIST


# -- finding the examples --------------------------------------------------------------------------


def fenced(lang: str) -> list[tuple[int, str]]:
    """(line number, body) of every ```lang block of the README."""
    found = []
    for m in re.finditer(r"^```(\w*)[ \t]*\n(.*?)^```", TEXT, re.M | re.S):
        if m.group(1) == lang:
            found.append((TEXT.count("\n", 0, m.start()) + 1, m.group(2)))
    return found


def sh_lines() -> list[tuple[int, int, str]]:
    """(block line, line number, command) of every command line of the ```sh blocks: continuation
    lines joined, comments dropped."""
    lines = []
    for block, body in fenced("sh"):
        pending, start = "", 0
        for i, raw in enumerate(body.splitlines()):
            line = re.split(r"(?:^|\s)#\s", raw, maxsplit=1)[0].rstrip()
            if not pending:
                start = block + 1 + i
            if line.endswith("\\"):
                pending += line[:-1].rstrip() + " "
                continue
            command = " ".join((pending + line).split())
            pending = ""
            if command:
                lines.append((block, start, command))
    return lines


@dataclass
class Plan:
    """How one README line runs here: the argv after `cnnatlas`, the changes made to the line as
    written (each stated), a reason when it does not run, and for `--resume` the run to make first."""

    line: str
    argv: list[str] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)
    skip: str | None = None
    resume: tuple[list[str], str | None, int] | None = None  # (the line without --resume, run folder, epochs)


def _set_flag(argv: list[str], flag: str, value: str) -> list[str]:
    if flag in argv:
        i = argv.index(flag)
        return argv[: i + 1] + [value] + argv[i + 2 :]
    return argv + [flag, value]


def plan(line: str) -> Plan:
    """The rules, in order. Each change to the line as written is recorded in `Plan.changes`."""
    p = Plan(line)
    for prefix, reason in SKIP_PREFIXES.items():
        if line.startswith(prefix):
            p.skip = f"not a cnnatlas command: {reason}"
            return p
    if not line.startswith("cnnatlas"):
        p.skip = f"not a cnnatlas command ({line.split()[0]})"
        return p
    required = " ".join(re.sub(r"\[[^\]]*\]", " ", line).split())
    if required != line:
        p.changes.append("optional [..] parts dropped")
    if PLACEHOLDER.search(required) or CHOICE.search(required):
        p.skip = "has a placeholder for the reader to fill in (an upper-case word, a | choice or …)"
        return p
    for pattern, reason in LONG_SKIPS:
        if re.search(pattern, required):
            p.skip = f"long-running: {reason}"
            return p
    argv = shlex.split(required)[1:]
    command = argv[0] if argv else ""
    if command == "train":
        if "--data" in argv and argv[argv.index("--data") + 1] == "fashion-mnist":
            argv = _set_flag(argv, "--data", "{fashion_subset}")
            p.changes.append(
                f"--data fashion-mnist → the first {FASHION_SUBSET[0]}/{FASHION_SUBSET[1]} "
                "Fashion-MNIST images as a folder of IDX files (60,000 images an epoch otherwise)"
            )
        if "--train-scenes" in argv and int(argv[argv.index("--train-scenes") + 1]) > README_SCENES:
            argv = _set_flag(argv, "--train-scenes", str(README_SCENES))
            p.changes.append(f"--train-scenes {README_SCENES} (the scenes of one epoch take minutes per 10,000)")
        if "--resume" in argv:
            i = argv.index("--resume")
            value = argv[i + 1] if i + 1 < len(argv) and not argv[i + 1].startswith("-") else None
            base = argv[:i] + argv[i + 1 + (value is not None) :]
            base = [a for j, a in enumerate(base) if a != "--epochs" and (j == 0 or base[j - 1] != "--epochs")]
            m = re.fullmatch(r"(.+)/checkpoints/epoch-(\d+)/?", value or "")
            run = m.group(1) if m else value or (base[base.index("--out") + 1] if "--out" in base else None)
            epochs = int(m.group(2)) if m else 1
            p.resume = (base, run, epochs)
            argv = _set_flag(argv, "--epochs", str(epochs + 1))
            p.changes.append(
                f"the run to resume is first brought to {epochs} epoch(s) (the line without --resume, "
                f"or resumed to that many), then resumed to --epochs {epochs + 1}"
            )
        else:
            argv = _set_flag(argv, "--epochs", "1")
            p.changes.append(
                "--epochs 1 (full training takes from half a minute to hours; one epoch runs the same code)"
            )
    elif command == "bench":
        argv = _set_flag(_set_flag(_set_flag(argv, "--batch", "1"), "--repeats", "1"), "--warmup", "0")
        p.changes.append(
            "--batch 1 --repeats 1 --warmup 0 (a benchmark's rounds take minutes; one round times the same code)"
        )
    elif command == "report" and "--models" not in argv:
        argv = argv + ["--models", "lenet5", "--no-claims"]
        p.changes.append(
            "--models lenet5 --no-claims (the whole zoo and its claims take about 10 minutes; one "
            "model builds every kind of page)"
        )
    p.argv = argv
    return p


SH = sh_lines()
PLANS = {(block, lineno): plan(command) for block, lineno, command in SH}


def test_readme_examples_are_found():
    """The extraction itself: the README has examples of each kind, and a line the rules skip says why."""
    assert fenced("python") and SH
    assert any(p.argv for p in PLANS.values()), "no cnnatlas command line of the README would run"
    for p in PLANS.values():
        assert p.skip or p.argv, p.line


def test_rules_on_known_lines():
    """The rules decide as documented on lines of each kind."""
    assert plan("cnnatlas info NAME [--json]").skip.startswith("has a placeholder")
    assert plan("cnnatlas models [PATTERN] [--json]").argv == ["models"]
    assert "--epochs" in plan("cnnatlas train lenet5").argv
    scenes = plan("cnnatlas train deeplabv3 --data fashion-mnist-scenes --train-scenes 86000").argv
    assert scenes[scenes.index("--train-scenes") + 1] == str(README_SCENES)
    assert plan("cnnatlas train deeplabv3 --train-scenes 50").argv[2:4] == ["--train-scenes", "50"]
    assert plan("torchrun --nproc-per-node 2 -m cnnatlas train lenet5").skip.startswith("not a cnnatlas command")
    assert plan("cnnatlas bench m --device auto|cpu|cuda").skip.startswith("has a placeholder")
    resume = plan("cnnatlas train lenet5 --out runs/a --resume")
    assert resume.resume == (["train", "lenet5", "--out", "runs/a"], "runs/a", 1)
    assert resume.argv[-2:] == ["--epochs", "2"]
    checkpoint = plan("cnnatlas train lenet5 --resume runs/a/checkpoints/epoch-0005 --epochs 30")
    assert checkpoint.resume == (["train", "lenet5"], "runs/a", 5)
    assert checkpoint.argv == ["train", "lenet5", "--resume", "runs/a/checkpoints/epoch-0005", "--epochs", "6"]
    evaluate = [k for k, p in PLANS.items() if p.argv[:2] == ["eval", "runs/a"]]
    if evaluate:  # today's README: `cnnatlas eval runs/a` follows the run that writes runs/a
        assert [PLANS[k].argv[:2] for k in _needs(*evaluate[0])] == [["train", "lenet5"]]


# -- `cnnatlas.X` names ----------------------------------------------------------------------------


def readme_names() -> dict[str, bool]:
    """Every X of `cnnatlas.X` in the README, with whether the README calls it (`cnnatlas.X(`)."""
    names: dict[str, bool] = {}
    for m in re.finditer(r"(?<![\w/.-])cnnatlas\.([a-z_]+)(\()?", TEXT):
        names[m.group(1)] = names.get(m.group(1), False) or bool(m.group(2))
    return names


@pytest.mark.parametrize("name,called", sorted({**readme_names(), **{n: True for n in REQUIRED_NAMES}}.items()))
def test_readme_names_are_exported(name, called):
    """A name the README calls is a callable attribute of the package; any other name is an
    attribute or an importable submodule."""
    if called:
        assert callable(getattr(cnnatlas, name, None)), f"cnnatlas.{name} is not a callable export of cnnatlas"
    elif not hasattr(cnnatlas, name):
        importlib.import_module(f"cnnatlas.{name}")


PYTHON_PRELUDE = "import torch\nimport cnnatlas\n"


# What a download that the tests' closed mirror refused looks like (cnnatlas.download's offline message).
NO_NETWORK = (
    "needs a download, and the tests reach no network (downloads are tested against a local server in test_download.py)"
)


def _needs_download(stderr: str) -> bool:
    return "could not download" in stderr and "$CNNATLAS_MIRROR" in stderr


# -- Python examples -------------------------------------------------------------------------------


def _env(tmp: Path) -> dict[str, str]:
    """The worktree's package first; data and downloads inside `tmp` (a mirror on a closed port:
    nothing leaves the machine)."""
    env = dict(os.environ)
    src = str(Path(cnnatlas.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([src] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    env["CNNATLAS_DATA"] = str(tmp / ".data")
    env["CNNATLAS_MIRROR"] = "http://127.0.0.1:9/mirror"
    env["TORCH_HOME"] = str(tmp / ".torch")  # no weights cached on this machine are used either
    env["HF_HOME"] = str(tmp / ".hf")
    env["MPLBACKEND"] = "Agg"
    return env


@pytest.mark.slow
@pytest.mark.parametrize("lineno,code", fenced("python"), ids=lambda v: f"line{v}" if isinstance(v, int) else "")
def test_python_block_runs(lineno, code, tmp_path):
    """Each ```python block runs as written, as a script of its own in an empty folder, after the
    imports the README's first example makes (a later block continues it)."""
    done = subprocess.run(
        [sys.executable, "-c", PYTHON_PRELUDE + code],
        cwd=tmp_path,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0 and _needs_download(done.stderr):
        pytest.skip(f"the block at README line {lineno}: {NO_NETWORK}")
    assert done.returncode == 0, f"README line {lineno}:\n{done.stderr[-3000:]}"


def doctest_examples() -> list[tuple[int, str, str]]:
    """(line, statement, expected output) of each `>>>` line of the ```text blocks."""
    found = []
    for lineno, body in fenced("text"):
        lines = body.splitlines()
        for i, line in enumerate(lines):
            if line.startswith(">>> "):
                expected = []
                for nxt in lines[i + 1 :]:
                    if nxt.startswith(">>> "):
                        break
                    expected.append(nxt)
                found.append((lineno + 1 + i, line[4:], "\n".join(expected).strip()))
    return found


@pytest.mark.parametrize("lineno,statement,expected", doctest_examples())
def test_interactive_example(lineno, statement, expected):
    """A `>>>` line prints what the README shows under it: the value's repr, or `Type: message`."""
    namespace = {"torch": torch, "cnnatlas": cnnatlas}
    try:
        got = repr(eval(statement, namespace))
    except Exception as err:  # noqa: BLE001 — the README shows the error as the answer
        got = f"{type(err).__name__}: {err}"
    assert got == expected, f"README line {lineno}"


# -- command lines ---------------------------------------------------------------------------------


def _fashion_subset(folder: Path) -> Path:
    """The first images of each Fashion-MNIST split, written as a folder of IDX files."""
    from cnnatlas.data.fashion_mnist import IDX_FILES, find_idx_file
    from cnnatlas.data.idx import read_idx, write_idx

    if not FASHION_MNIST_DIR.is_dir():
        pytest.skip("Debian package dataset-fashion-mnist not installed (apt-get install dataset-fashion-mnist)")
    folder.mkdir(parents=True, exist_ok=True)
    for (_split, (images, labels)), n in zip(IDX_FILES.items(), FASHION_SUBSET):
        for stem in (images, labels):
            write_idx(folder / stem, read_idx(find_idx_file(FASHION_MNIST_DIR, stem))[:n])
    return folder


def _make_image(path: Path) -> None:
    """A digit of the embedded set, 32×32, grey (.png) or RGB (.jpg)."""
    from PIL import Image

    from cnnatlas.data.digits import digits_arrays

    image = digits_arrays()[2][0, 0]
    pixels = torch.nn.functional.interpolate(image[None, None], size=(32, 32), mode="bilinear")[0, 0]
    img = Image.fromarray((pixels.clamp(0, 1) * 255).to(torch.uint8).numpy(), mode="L")
    path.parent.mkdir(parents=True, exist_ok=True)
    (img if path.suffix.lower() == ".png" else img.convert("RGB")).save(path)


class _Folders:
    """One empty folder per ```sh block, its lines run in order in it; a line that reads what an
    earlier one writes (`cnnatlas eval runs/a` after `… --out runs/a`) runs that one first if it has
    not run yet (selected alone, or on another pytest worker)."""

    def __init__(self, factory):
        self.factory, self.folders, self.done = factory, {}, {}

    def folder(self, block: int) -> Path:
        if block not in self.folders:
            self.folders[block] = self.factory.mktemp(f"readme-sh-{block}")
        return self.folders[block]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    return _Folders(tmp_path_factory)


def _outputs(argv: list[str]) -> set[str]:
    return {argv[i + 1].rstrip("/") for i, a in enumerate(argv[:-1]) if a in OUTPUT_FLAGS}


def _needs(block: int, lineno: int) -> list[tuple[int, int]]:
    """The earlier lines of the block that write a path (their --out …) this line names, or a path inside it."""
    args = [a.rstrip("/") for a in PLANS[block, lineno].argv]
    return [
        k
        for k in PLANS
        if k[0] == block
        and k[1] < lineno
        and any(a == out or a.startswith(out + "/") for out in _outputs(PLANS[k].argv) for a in args)
    ]


def _prepare_resume(base: list[str], run: str | None, epochs: int, cwd: Path, fill: dict, lineno: int) -> None:
    """Make the state a `--resume` line continues from: RUN trained to `epochs` epochs (trained anew,
    or resumed when an earlier line left it with fewer), unless that checkpoint is already there."""
    if run is not None and (cwd / run / "checkpoints" / f"epoch-{epochs:04d}").is_dir():
        return
    argv = [a.format(**fill) if a == "{fashion_subset}" else a for a in base]
    if run is not None:
        argv = _set_flag(argv, "--out", run) + (["--resume"] if (cwd / run).is_dir() else [])
    done = _run(argv + ["--epochs", str(epochs)], cwd)
    assert done.returncode == 0, f"before README line {lineno}: cnnatlas {shlex.join(argv)}\n{done.stderr[-3000:]}"


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cnnatlas", *argv], cwd=cwd, env=_env(cwd), capture_output=True, text=True, timeout=600
    )


def _run_line(block: int, lineno: int, folders: _Folders) -> subprocess.CompletedProcess | None:
    p, cwd = PLANS[block, lineno], folders.folder(block)
    if p.skip:
        return None
    if (block, lineno) in folders.done:
        return folders.done[block, lineno]
    for earlier in _needs(block, lineno):
        _run_line(*earlier, folders)  # the lines above it that write what it reads, as a reader runs them
    fill = {"fashion_subset": str(_fashion_subset(cwd / "fashion-subset"))} if "{fashion_subset}" in p.argv else {}
    argv = [a.format(**fill) if a == "{fashion_subset}" else a for a in p.argv]
    command = argv[0] if argv else ""
    for i, arg in enumerate(argv):
        is_output = i > 0 and argv[i - 1] in OUTPUT_FLAGS
        if is_output or (cwd / arg).exists():
            continue
        if arg.lower().endswith(IMAGE_SUFFIXES):
            _make_image(cwd / arg)
        elif arg.endswith("/") and command in INPUT_FOLDER_COMMANDS:
            for frame in range(FRAMES):  # a folder of frames, as a video model reads them
                _make_image(cwd / arg / f"frame-{frame:03d}.png")
    if p.resume:
        _prepare_resume(*p.resume, cwd, fill, lineno)
    folders.done[block, lineno] = _run(argv, cwd)
    return folders.done[block, lineno]


@pytest.mark.slow
@pytest.mark.parametrize("block,lineno", list(PLANS), ids=[f"line{k[1]}" for k in PLANS])
def test_command_line(block, lineno, folders):
    """A README command line exits 0 in an empty folder and writes the files it names; the reason it
    does not run here otherwise (see the module docstring for the rules)."""
    p = PLANS[block, lineno]
    if p.skip:
        pytest.skip(f"{p.line!r}: {p.skip}")
    done = _run_line(block, lineno, folders)
    changes = "; ".join(p.changes) or "as written"
    if done.returncode == 3 and _needs_download(done.stderr):  # exit 3: unavailable now, not a usage error
        pytest.skip(f"{p.line!r}: {NO_NETWORK}")
    assert done.returncode == 0, (
        f"README line {lineno}: {p.line}\nran: cnnatlas {shlex.join(p.argv)} ({changes})\n{done.stderr[-3000:]}"
    )
    assert done.stdout.strip() or done.stderr.strip(), f"README line {lineno}: {p.line} printed nothing"
    cwd = folders.folder(block)
    for i, arg in enumerate(p.argv[:-1]):
        if arg in OUTPUT_FLAGS:
            assert (cwd / p.argv[i + 1]).exists(), f"README line {lineno}: {p.line} wrote no {p.argv[i + 1]}"
