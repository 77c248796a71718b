"""Does the roofline rank the layers of a real CNN as the clock does? For ResNet-50 and MobileNet-v2 at
1×3×224×224, on this machine's CPU with one thread: the machine's peak float32 FLOP/s and memory bandwidth are
measured (`measure_machine`), with the compute ceilings of depthwise convolution, max- and avg-pooling and
element-wise operators; each leaf module's time is predicted from the analyser's records (sum of
max(FLOPs / ceiling of the operator's class, bytes / bandwidth) over its operators) and measured for real (hooks
around its forward, the median of several forward passes with random weights and input), and the two rankings
compared: Spearman's rank correlation over every leaf module that costs something, over the 10 and the 20 slowest
measured, Kendall's τ_b over the 10 slowest (layers of the same shape have the same prediction: τ_b counts such
ties neither way); how many of the 10 measured slowest are predicted among the 10 slowest (ties with the 10th
prediction count). The same measured times are also compared with the single-roof prediction (every operator at
the matmul peak), as it was before the class ceilings.

The figures hold for the machine they were measured on only (caches, vector units and the memory system change
which layers are slow).

    python benchmarks/roofline.py                          # writes benchmarks/RESULTS-roofline.md and .json
    python benchmarks/roofline.py --models resnet50 --repeats 5 --out /tmp/r
    python benchmarks/roofline.py --table benchmarks/RESULTS-roofline.json   # the README's table of a saved run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path

import torch

from cnnatlas import create_model
from cnnatlas.analysis.roofline import check_against_measured, measure_layer_times, measure_machine

HERE = Path(__file__).resolve().parent


def run(models: list[str], repeats: int) -> dict:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    machine = measure_machine(matmul_side=2048, triad_floats=1 << 25, repeats=5)
    cases, peak_only = {}, {}
    shape = (1, 3, 224, 224)
    for name in models:
        model = create_model(name).eval()
        measured = measure_layer_times(model, torch.randn(shape), repeats=repeats)
        cases[name] = check_against_measured(model, shape, machine, measured=measured)
        peak_only[name] = check_against_measured(model, shape, machine.peak_only(), measured=measured)
    return {
        "machine": {**machine.as_dict(), "cpu": platform.processor() or platform.machine(), "torch": torch.__version__},
        "repeats": repeats,
        "load_average": load,
        "cases": cases,
        "peak_only": peak_only,
    }


def _f(v) -> str:
    return "—" if v is None else f"{v:.2f}"


def _rows(cases: dict, label: str) -> list[str]:
    return [
        f"| {name} | {label} | {c['modules']} | {_f(c['spearman'])} | {_f(c['spearman_top10'])} | "
        f"{_f(c['kendall_top10'])} | {_f(c['spearman_top20'])} | {c['distinct_predictions_top10']} | "
        f"{c['top10_overlap']}/10 | {c['predicted_seconds'] * 1e3:.1f} ms | {c['measured_seconds'] * 1e3:.1f} ms |"
        for name, c in cases.items()
    ]


def report(result: dict) -> str:
    m = result["machine"]
    ceil = m["ceilings_gflops"]
    load = result.get("load_average")
    lines = [
        "# Roofline against the clock, per layer",
        "",
        (
            f"Machine: {m['cpu']}, torch {m['torch']}, 1 thread. Peak {m['peak_gflops']:.1f} GFLOP/s, bandwidth "
            f"{m['bandwidth_gbs']:.1f} GB/s, ridge {m['ridge_flops_per_byte']:.2f} FLOP/byte ({m['source']})."
        ),
        "",
        (
            f"Compute ceilings of operator classes (GFLOP/s, none above the peak): depthwise conv "
            f"{_f(ceil['depthwise'])}, max-pool {_f(ceil['max_pool'])}, avg-pool {_f(ceil['avg_pool'])}, "
            f"element-wise {_f(ceil['elementwise'])}. A record is predicted at max(FLOPs / its class's ceiling, "
            "bytes / bandwidth); dense convolutions and matrix products at the peak."
        ),
        "",
        (
            f"Each leaf module's time: median of {result['repeats']} forward passes at 1×3×224×224, after one "
            "warm-up"
            + ("" if load is None else f"; 1-minute load average {load:.1f} when the run began (shared machine)")
            + ". Figures for this machine only. The same measured times are compared with both predictions: "
            "*ceilings* (each class under its own ceiling) and *single roof* (every operator at the matmul peak, the "
            "model before the ceilings)."
        ),
        "",
        (
            "| model | prediction | leaf modules | Spearman ρ (all) | Spearman ρ (10 slowest measured) "
            "| Kendall τ_b (10 slowest) | Spearman ρ (20 slowest) | distinct predictions among the 10 slowest "
            "| top-10 overlap | predicted total | measured total |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|---|",
        *_rows(result["cases"], "ceilings"),
        *_rows(result.get("peak_only", {}), "single roof"),
        "",
        (
            "Ties: layers of the same shape get the same prediction (ResNet-50's 3×3 convolutions of every stage "
            "cost the same FLOPs and bytes), while the clock separates them by noise and cache effects; where the "
            "10 slowest have few distinct predictions, Spearman's ρ over them is dominated by those near-ties. "
            "Kendall's τ_b counts a pair tied in the prediction neither way, and ρ over the 20 slowest shows how "
            "the ranking holds a little further down."
        ),
    ]
    for name, c in result["cases"].items():
        single = {
            s["module"]: s["predicted_seconds"] for s in result.get("peak_only", {}).get(name, {}).get("slowest", [])
        }
        lines += [
            "",
            f"## {name}: the 10 slowest leaf modules measured",
            "",
            "| module | measured | predicted (ceilings) | predicted (single roof) |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {s['module']} | {s['measured_seconds'] * 1e3:.2f} ms | {s['predicted_seconds'] * 1e3:.2f} ms | "
            + ("—" if s["module"] not in single else f"{single[s['module']] * 1e3:.2f} ms")
            + " |"
            for s in c["slowest"]
        ]
    return "\n".join(lines) + "\n"


def readme_table(result: dict) -> str:
    """The README's table of a saved run (a test checks the README holds exactly this)."""
    lines = [
        (
            "| model | prediction | Spearman ρ, all | ρ, 10 slowest measured | τ_b, 10 slowest | ρ, 20 slowest "
            "| of the 10 slowest measured, predicted in the top 10 | predicted / measured total |"
        ),
        "|---|---|---|---|---|---|---|---|",
    ]
    both = [("ceilings", result["cases"]), ("single roof", result.get("peak_only", {}))]
    for name in result["cases"]:
        for label, cases in both:
            if name not in cases:
                continue
            c = cases[name]
            lines.append(
                f"| {name} | {label} | {_f(c['spearman']).replace('-', '−')} | "
                f"{_f(c['spearman_top10']).replace('-', '−')} | {_f(c['kendall_top10']).replace('-', '−')} | "
                f"{_f(c['spearman_top20']).replace('-', '−')} | {c['top10_overlap']} | "
                f"{c['predicted_seconds'] * 1e3:.1f} / {c['measured_seconds'] * 1e3:.1f} ms |"
            )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="resnet50,mobilenet_v2")
    p.add_argument("--repeats", type=int, default=11)
    p.add_argument("--out", default=str(HERE / "RESULTS-roofline"), help="path without suffix: .md and .json")
    p.add_argument("--table", metavar="JSON", help="print the README's table of a saved run, measure nothing")
    args = p.parse_args()
    if args.table:
        print(readme_table(json.loads(Path(args.table).read_text(encoding="utf-8"))))
        return
    result = run([m for m in args.models.split(",") if m], args.repeats)
    Path(args.out + ".json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    Path(args.out + ".md").write_text(report(result), encoding="utf-8")
    print(report(result))


if __name__ == "__main__":
    main()
