"""The benchmark figures the README quotes come from the saved runs, not from copying by hand."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _benchmark(name: str):
    spec = importlib.util.spec_from_file_location(f"{name}_benchmark", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _readme_table(first_header: str) -> str:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(first_header))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return "\n".join(lines[start:end])


def test_readme_analysis_speed_table_is_the_one_generated_from_the_saved_run():
    bench = _benchmark("analysis_speed")
    saved = json.loads((ROOT / "benchmarks" / "analysis_results.json").read_text(encoding="utf-8"))
    assert _readme_table("| case | faster than the fastest peer") == bench.readme_table(saved)


def test_saved_analysis_run_holds_exactly_the_figures_of_its_report():
    """analysis_results.json is benchmarks/RESULTS-analysis.md read back, and writing it out again gives that
    report byte for byte: no figure was changed, added or left out."""
    bench = _benchmark("analysis_speed")
    saved = json.loads((ROOT / "benchmarks" / "analysis_results.json").read_text(encoding="utf-8"))
    text = (ROOT / "benchmarks" / "RESULTS-analysis.md").read_text(encoding="utf-8")
    assert "RESULTS-analysis.md" in saved["source"]
    assert bench.parse_report(text) == {"machine": saved["machine"], "cases": saved["cases"]}
    assert bench.report(saved["cases"], saved["machine"]) + "\n" == text
