"""The package's imports point one way: errors → layers → models → analysis → claims / train / viz → cli
(the tour included).

Every import of a cnnatlas module is read from the source (at module level and inside functions), so
a lazy import cannot hide an upward dependency or a cycle. And no function is longer than 60 lines: a
longer one is split into named steps.
"""

from __future__ import annotations

import ast
from pathlib import Path

import cnnatlas

PACKAGE = Path(cnnatlas.__file__).parent

# The layer of each top-level module or sub-package; a module may import its own layer or lower ones.
LAYERS = {
    "errors": 0,
    "download": 0,
    "files": 0,
    "version": 0,
    "units": 0,
    "hardware": 0,
    "layers": 1,
    "reference": 1,
    "data": 1,
    "models": 2,
    "registry": 2,
    "zoo": 2,
    "weights": 2,
    "weights_timm": 2,
    "inflate": 2,
    "pretrained": 2,
    "loading": 2,
    "analysis": 3,
    "optimize": 3,
    "export": 3,
    "bench": 3,
    "windows": 3,
    "claims": 4,
    "train": 4,
    "viz": 4,
    "predict": 4,
    "cli": 5,
    "__main__": 5,
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_package(name: str) -> bool:
    return (PACKAGE.parent / name.replace(".", "/") / "__init__.py").is_file()


def exists(name: str) -> bool:
    return is_package(name) or (PACKAGE.parent / (name.replace(".", "/") + ".py")).is_file()


def imports_of(path: Path) -> list[tuple[str, int]]:
    """(imported cnnatlas module, line) for every import in the file, resolving relative ones."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names if alias.name.split(".")[0] == "cnnatlas"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "cnnatlas":
                continue
            for alias in node.names:  # `from . import x` imports the submodule x when there is one
                sub = f"{target}.{alias.name}"
                found.append((sub if exists(sub) else target, node.lineno))
    return found


def layer_of(name: str) -> int | None:
    parts = name.split(".")
    return None if len(parts) < 2 else LAYERS.get(parts[1])


SOURCES = sorted(PACKAGE.rglob("*.py"))
GRAPH = {module_name(p): imports_of(p) for p in SOURCES}


def test_every_module_has_a_layer():
    unplaced = sorted({name.split(".")[1] for name in GRAPH if "." in name and layer_of(name) is None})
    assert not unplaced, f"give these modules a layer in LAYERS: {unplaced}"


def test_imports_point_down():
    upward = []
    for name, imports in GRAPH.items():
        if name == "cnnatlas":  # the package's front door exports from every layer
            continue
        for target, line in imports:
            if target == "cnnatlas":
                upward.append(f"{name}:{line} imports the package root (import the module that defines the name)")
            elif None not in (layer_of(target), layer_of(name)) and layer_of(target) > layer_of(name):
                upward.append(f"{name}:{line} imports {target} (layer {layer_of(target)} above {layer_of(name)})")
    assert not upward, "\n".join(upward)


def test_no_import_cycles():
    edges = {name: {t for t, _ in imports if t in GRAPH and t != name} for name, imports in GRAPH.items()}
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in edges:
        if v not in index:
            visit(v)
    assert not cycles, "import cycles: " + "; ".join(" ↔ ".join(c) for c in cycles)


def test_the_checker_sees_lazy_and_relative_imports(tmp_path, monkeypatch):
    """The walk finds an import inside a function and resolves `from ..x import y` (else it could pass vacuously)."""
    assert [t for t, _ in imports_of(PACKAGE / "download.py")] == ["cnnatlas.errors"]
    probe = PACKAGE / "viz" / "_probe_for_test.py"
    probe.write_text("def f():\n    from ..cli import main\n")
    try:
        assert imports_of(probe) == [("cnnatlas.cli", 2)]
    finally:
        probe.unlink()


MAX_FUNCTION_LINES = 60


def long_functions(path: Path, text: str | None = None) -> list[str]:
    """'module:line name (n lines)' for each function or method over MAX_FUNCTION_LINES, counted from its
    `def` to its last line (docstring included, decorators not)."""
    tree = ast.parse(path.read_text(encoding="utf-8") if text is None else text)
    return [
        f"{module_name(path)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]


def test_no_function_is_longer_than_sixty_lines():
    found = [entry for path in SOURCES for entry in long_functions(path)]
    assert not found, "split these into named steps:\n" + "\n".join(found)


def test_the_length_check_counts_from_def_to_the_last_line():
    """60 lines pass and 61 fail (else the check above could pass vacuously)."""
    sixty = '    def f(self):\n        """doc"""\n' + "".join(f"        x{i} = {i}\n" for i in range(58))
    assert long_functions(PACKAGE / "probe.py", "class C:\n" + sixty) == []
    assert long_functions(PACKAGE / "probe.py", "class C:\n" + sixty + "        return x0\n") == [
        "cnnatlas.probe:2 f (61 lines)"
    ]


def test_the_commands_print_through_one_console():
    """Every command's console comes from `cli.console.command_console`, which keeps a table whole in a
    file or a pipe; a `rich.console.Console` built anywhere else in the command line would fold it at 80."""
    built = [
        f"{path.relative_to(PACKAGE)}:{node.lineno}"
        for path in sorted((PACKAGE / "cli").rglob("*.py"))
        if path.name != "console.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "Console"
    ]
    assert not built, f"build these consoles with command_console(): {built}"
