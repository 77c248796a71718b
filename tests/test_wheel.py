"""Packaging: every third-party import of the package is declared, a missing optional one is named in
one line with its pip command, and the built wheel installs and runs from any folder."""

from __future__ import annotations

import ast
import importlib.metadata
import os
import re
import shutil
import site
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli", reason="reading pyproject.toml on Python 3.10 needs tomli")

from cnnatlas.cli import main
from cnnatlas.errors import MissingDependencyError, require

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "cnnatlas"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_names(requirements: list[str]) -> set[str]:
    return {_normalise(re.match(r"[A-Za-z0-9_.\-]+", r).group(0)) for r in requirements}


def _imports() -> dict[str, list[str]]:
    """Top-level third-party modules imported anywhere in src/cnnatlas → the files importing them,
    plus the modules `require(module, extra, …)` loads, keyed as `module@extra`."""
    found: dict[str, list[str]] = {}
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "require"
                and len(node.args) >= 2
                and all(isinstance(a, ast.Constant) for a in node.args[:2])
            ):
                names = [f"{node.args[0].value}@{node.args[1].value}"]
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top != "cnnatlas":
                    found.setdefault(name if "@" in name else top, []).append(str(path.relative_to(ROOT)))
    return found


def test_every_third_party_import_is_declared():
    """An import of src/ comes from a required dependency or an optional extra; a module loaded through
    `require(module, extra, …)` is listed in that very extra."""
    modules_to_dists = importlib.metadata.packages_distributions()
    required = _requirement_names(PYPROJECT["project"]["dependencies"])
    extras = {k: _requirement_names(v) for k, v in PYPROJECT["project"]["optional-dependencies"].items()}
    declared = required.union(*extras.values())
    imports = _imports()
    assert "PIL" in imports and "torch" in imports  # the walk finds what is there
    undeclared = []
    for module, files in sorted(imports.items()):
        module, _, extra = module.partition("@")
        dists = {_normalise(d) for d in modules_to_dists.get(module.split(".")[0], [module])}
        if extra:
            assert extra in extras, f"require({module!r}, {extra!r}) in {files[0]}: pyproject.toml has no extra {extra}"
            assert dists & extras[extra], f"{module} is not in the {extra} extra ({files[0]})"
        elif not dists & declared:
            undeclared.append(f"{module} ({', '.join(sorted(dists))}) in {files[0]}")
    assert not undeclared, f"imported but not declared in pyproject.toml: {undeclared}"


def test_extras_and_test_needs():
    """The extras the README names exist; the test extra keeps what the tests import."""
    extras = {k: _requirement_names(v) for k, v in PYPROJECT["project"]["optional-dependencies"].items()}
    assert extras["export"] == {"onnx", "onnxruntime", "onnxscript"}
    assert extras["timm"] == {"timm"}
    assert {"fvcore", "ptflops", "thop", "torchinfo", "torchscan"} <= extras["bench"]
    assert {"pytest", "hypothesis", "timm", "onnx", "onnxruntime", "onnxscript", "setuptools"} <= extras["test"]


# -- a missing optional package: one line, with the pip command -----------------------------------------


def test_require_names_the_missing_package_and_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now fails as if it were not installed
    with pytest.raises(MissingDependencyError) as err:
        require("onnx", "export", "ONNX export")
    assert str(err.value) == (
        "ONNX export needs the onnx package, which is not installed: pip install 'cnnatlas[export]'"
    )
    assert isinstance(err.value, ImportError)
    assert require("json", "none", "anything").dumps([1]) == "[1]"  # present: the module itself


@pytest.mark.parametrize(
    "module,argv,extra",
    [
        ("onnx", ["export", "lenet5", "--onnx", "{tmp}/lenet5.onnx"], "export"),
        ("timm", ["summary", "timm:resnet18"], "timm"),
    ],
)
def test_cli_without_an_optional_package(module, argv, extra, monkeypatch, capsys, tmp_path):
    """`cnnatlas export --onnx` without onnx (and timm:NAME without timm): exit 2, one line naming
    the package and the pip command, nothing written."""
    monkeypatch.setitem(sys.modules, module, None)
    assert main([a.format(tmp=tmp_path) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"the {module} package" in err and f"pip install 'cnnatlas[{extra}]'" in err, err
    assert not list(tmp_path.iterdir())


# -- the wheel --------------------------------------------------------------------------------------


def _package_data() -> set[str]:
    """The package's files other than Python sources, as wheel paths (cnnatlas/…)."""
    return {
        str(p.relative_to(SRC.parent)).replace(os.sep, "/")
        for p in SRC.rglob("*")
        if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts
    }


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built without build isolation from a copy of the source (so the checkout gets no
    build/ or egg-info folders)."""
    pytest.importorskip("setuptools", minversion="77", reason="the build backend (pip install 'setuptools>=77')")
    tmp = tmp_path_factory.mktemp("wheel")
    tree = tmp / "source"
    tree.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, tree / name)
    shutil.copytree(SRC, tree / "src" / "cnnatlas", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            str(tree),
            "-w",
            str(tmp / "dist"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    (built,) = (tmp / "dist").glob("cnnatlas-*.whl")
    return built


@pytest.mark.slow
def test_wheel_contents(wheel):
    """Package data, the licence, the entry point and the metadata are in the wheel."""
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        meta = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        entry = z.read(next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()
    assert "cnnatlas/published.json" in names and "cnnatlas/__init__.py" in names
    assert not _package_data() - names, f"package files missing from the wheel: {sorted(_package_data() - names)}"
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert {f"cnnatlas/{p.relative_to(SRC)}".replace(os.sep, "/") for p in SRC.rglob("*.py")} <= names
    assert "cnnatlas = cnnatlas.cli:main" in entry
    assert "License-Expression: MIT" in meta
    for extra in ("export", "timm", "bench", "test"):
        assert f"Provides-Extra: {extra}" in meta
    assert re.search(r"Requires-Dist: pillow", meta, re.I) and "Requires-Dist: onnx" in meta


@pytest.mark.slow
def test_wheel_installs_and_runs_from_any_folder(wheel, tmp_path):
    """Installed into a fresh virtual environment (the dependencies from this one), the wheel's
    `cnnatlas` command runs from an empty folder, and it is the wheel's package that runs."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=300)
    bindir = venv / ("Scripts" if os.name == "nt" else "bin")
    python = bindir / ("python.exe" if os.name == "nt" else "python")
    purelib = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    # this environment's packages (torch, …) after the venv's own: a path line, so no .pth of theirs runs
    # (in particular not an editable install of cnnatlas)
    ours = [sysconfig.get_path("purelib"), sysconfig.get_path("platlib"), *site.getsitepackages()]
    (purelib / "_dependencies.pth").write_text("\n".join(dict.fromkeys(ours)) + "\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", str(wheel)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]

    work = tmp_path / "empty"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
    env.update(CNNATLAS_DATA=str(tmp_path / "data"), CNNATLAS_MIRROR="http://127.0.0.1:9/mirror", MPLBACKEND="Agg")

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(list(args), cwd=work, env=env, capture_output=True, text=True, timeout=600)

    where = run(
        str(python),
        "-c",
        "import cnnatlas, importlib.metadata as m; print(cnnatlas.__file__); print(m.version('cnnatlas'))",
    )
    assert where.returncode == 0, where.stderr
    file, version = where.stdout.split()
    assert Path(file).resolve().is_relative_to(venv.resolve()), f"cnnatlas imported from {file}, not the venv"
    assert version == PYPROJECT["project"]["version"]

    command = str(bindir / "cnnatlas")
    models = run(command, "tour", "--section", "models")
    assert models.returncode == 0, models.stderr[-3000:]
    assert "resnet50" in models.stdout and "exact" in models.stdout

    train = run(command, "train", "lenet5", "--epochs", "1")
    assert train.returncode == 0, train.stderr[-3000:]
    assert re.search(r"test accuracy|accuracy", train.stdout + train.stderr, re.I), train.stdout[-2000:]
    runs = [p for p in (work / "runs").iterdir() if p.is_dir()]
    assert runs and any(runs[0].rglob("*.safetensors")), f"no run folder with weights in {work}"

    usage = run(command, "train", "nosuchmodel")
    assert usage.returncode == 2 and usage.stderr.count("\n") == 1 and "Traceback" not in usage.stderr
