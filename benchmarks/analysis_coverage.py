"""Coverage of the analyser: every model of timm and torchvision, built on the meta device, analysed by
cnnatlas and counted by torch.utils.flop_counter.FlopCounterMode at the same input; the MAC totals
compared, the parameter count checked, failures grouped by cause, the two times set side by side.

    python benchmarks/analysis_coverage.py                          # all of them: tens of minutes on 2 cores
    python benchmarks/analysis_coverage.py --sample 30 --output /tmp/cov.md   # a seeded sample of 30
    python benchmarks/analysis_coverage.py --models timm:resnet18 tv:fasterrcnn_resnet50_fpn

Inputs: timm's `default_cfg["input_size"]`; torchvision 224×224 (inception_v3 299, video 16×112×112,
MViT, Swin3D and S3D 16×224×224, optical flow two 1×3×128×128 frames). cnnatlas runs its default analysis
(the training-memory estimate included); a model whose operators size their output from values
(detection) is run once on the CPU (`report.sizing`), where FlopCounterMode on meta tensors cannot run
at all. A model whose constructor reads tensor values (torchvision's RegNets) is built on
the CPU instead. FlopCounterMode runs on the same model under no_grad, and again with autograd where
its module tracker fails under no_grad. Times are one call of each, wall clock (the first model's include
one-off set-up), so the ratio of a single model is noisy; the median is not.
Writes a Markdown table (default benchmarks/RESULTS-coverage.md) and, with --json, every row.
"""

from __future__ import annotations

import argparse
import inspect
import json
import logging
import platform
import random
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch
import torchvision
from torch.utils.flop_counter import FlopCounterMode

from cnnatlas import analyze

warnings.filterwarnings("ignore")
logging.disable(logging.WARNING)

HERE = Path(__file__).resolve().parent


def all_models() -> list[str]:
    names = [f"tv:{n}" for n in torchvision.models.list_models()]
    try:
        import timm
    except ImportError:
        print("timm is not installed (pip install 'cnnatlas[timm]'): torchvision only", file=sys.stderr)
    else:
        names += [f"timm:{n}" for n in timm.list_models()]
    return names


def build(spec: str, device: str = "meta"):
    """(model on `device`, input shapes) for 'tv:NAME' or 'timm:NAME'."""
    source, name = spec.split(":", 1)
    with torch.device(device):
        if source == "timm":
            import timm

            model = timm.create_model(name)
            return model.eval(), [(1, *model.default_cfg["input_size"])]
        kw = {"weights": None}
        if "weights_backbone" in inspect.signature(torchvision.models.get_model_builder(name)).parameters:
            kw["weights_backbone"] = None  # nothing downloads
        model = torchvision.models.get_model(name, **kw).eval()
    if name in torchvision.models.list_models(module=torchvision.models.optical_flow):
        return model, [(1, 3, 128, 128), (1, 3, 128, 128)]
    if name in torchvision.models.list_models(module=torchvision.models.video):
        side = 224 if name.startswith(("mvit", "swin3d", "s3d")) else 112
        return model, [(1, 3, 16, side, side)]
    return model, [(1, 3, 299 if "inception" in name else 224, 299 if "inception" in name else 224)]


def flop_counter(model, shapes) -> tuple[int, float]:
    """FlopCounterMode's total FLOPs at these meta inputs, and its time."""
    device = next((p.device for p in model.parameters()), torch.device("meta"))
    inputs = [torch.empty(s, device="meta") if device.type == "meta" else torch.rand(s) for s in shapes]
    for grad in (False, True):
        start = time.perf_counter()
        try:
            with torch.set_grad_enabled(grad), FlopCounterMode(display=False) as counter:
                model(*inputs)
        except Exception:  # noqa: BLE001 — its module tracker may assert under no_grad: try once with autograd
            if grad:
                raise
            continue
        return counter.get_total_flops(), time.perf_counter() - start
    raise AssertionError("unreachable")


def cause(err: BaseException) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return f"{type(err).__name__}: {text[:110]}"


def measure(spec: str) -> dict:
    row: dict = {"model": spec}
    try:
        model, shapes = build(spec)
        row["built_on"] = "meta"
    except Exception:  # noqa: BLE001 — a constructor that computes with tensor values (RegNet's widths)
        try:
            model, shapes = build(spec, "cpu")
            row["built_on"] = "cpu"
        except Exception as err:  # noqa: BLE001
            row["build_error"] = cause(err)
            return row
    row["input"] = shapes
    try:
        report = analyze(model, shapes[0] if len(shapes) == 1 else shapes)
    except Exception as err:  # noqa: BLE001
        row["error"] = cause(err)
    else:
        row.update(
            macs=report.macs,
            seconds=report.seconds,
            sizing=report.sizing,
            unsupported=report.unsupported_ops,
            params_exact=report.params == sum(p.numel() for p in model.parameters()),
        )
    try:
        flops, seconds = flop_counter(model, shapes)
    except Exception as err:  # noqa: BLE001
        row["peer_error"] = cause(err)
    else:
        row.update(peer_macs=flops // 2, peer_seconds=seconds)
    return row


def summarise(rows: list[dict], scope: str, elapsed: float) -> str:
    built = [r for r in rows if "build_error" not in r]
    ok = [r for r in built if "error" not in r]
    both = [r for r in ok if "peer_macs" in r]
    equal = [r for r in both if r["macs"] == r["peer_macs"]]
    differ = [r for r in both if r["macs"] != r["peer_macs"]]
    peer_only_fails = [r for r in ok if "peer_error" in r]
    cpu = [r for r in ok if r["sizing"]]
    ratios = sorted(r["peer_seconds"] / r["seconds"] for r in both if r["seconds"] > 0)
    failures: dict[str, list[str]] = {}
    for r in built:
        if "error" in r:
            failures.setdefault(r["error"], []).append(r["model"])
    peer_failures: dict[str, list[str]] = {}
    for r in peer_only_fails:
        peer_failures.setdefault(r["peer_error"], []).append(r["model"])
    unsupported: dict[str, int] = {}
    for r in ok:
        for op in r["unsupported"]:
            unsupported[op] = unsupported.get(op, 0) + 1

    def q(p: float) -> float:
        return ratios[min(len(ratios) - 1, int(p * len(ratios)))]

    lines = [
        "# Analyser coverage: timm and torchvision on the meta device",
        "",
        f"Written by `benchmarks/analysis_coverage.py` ({scope}); torch {torch.__version__}, torchvision "
        f"{torchvision.__version__}"
        + (f", timm {sys.modules['timm'].__version__}" if "timm" in sys.modules else "")
        + f"; {platform.machine()}, {elapsed / 60:.1f} minutes.",
        "",
        "| measure | count |",
        "|---|---:|",
        f"| models tried | {len(rows)} |",
        f"| built on meta | {sum(r.get('built_on') == 'meta' for r in built)} |",
        f"| built on the CPU instead (the constructor reads tensor values) | "
        f"{sum(r.get('built_on') == 'cpu' for r in built)} |",
        f"| analysed by cnnatlas | {len(ok)} of {len(built)} |",
        f"| … of which run once on the CPU (output sizes depend on values) | {len(cpu)} |",
        f"| … with every parameter counted (total equal to the model's) | {sum(r['params_exact'] for r in ok)} |",
        f"| … with no unsupported operator | {sum(not r['unsupported'] for r in ok)} |",
        f"| counted by FlopCounterMode too | {len(both)} |",
        f"| MACs equal to FlopCounterMode's (2 FLOPs a MAC) | {len(equal)} of {len(both)} |",
        f"| MACs differ | {len(differ)} |",
        f"| analysed by cnnatlas where FlopCounterMode fails | {len(peer_only_fails)} |",
    ]
    if ratios:
        lines += [
            "",
            f"FlopCounterMode's time over cnnatlas's (both on meta tensors, cnnatlas's default analysis): "
            f"median {statistics.median(ratios):.1f}×, middle 80% {q(0.1):.1f}–{q(0.9):.1f}×, "
            f"over {len(ratios)} models.",
        ]
    if failures:
        lines += ["", "## cnnatlas failures by cause", "", "| cause | models |", "|---|---|"]
        lines += [
            f"| {c.replace('|', '/')} | {len(m)}: {', '.join(m[:6])}{' …' if len(m) > 6 else ''} |"
            for c, m in sorted(failures.items(), key=lambda kv: -len(kv[1]))
        ]
    if differ:
        lines += [
            "",
            "## MACs that differ from FlopCounterMode's",
            "",
            "| model | cnnatlas | FlopCounterMode |",
            "|---|---:|---:|",
        ]
        lines += [f"| {r['model']} | {r['macs']:,} | {r['peer_macs']:,} |" for r in differ]
    if peer_failures:
        lines += ["", "## FlopCounterMode failures (cnnatlas analysed these)", "", "| cause | models |", "|---|---|"]
        lines += [
            f"| {c.replace('|', '/')} | {len(m)}: {', '.join(m[:6])}{' …' if len(m) > 6 else ''} |"
            for c, m in sorted(peer_failures.items(), key=lambda kv: -len(kv[1]))
        ]
    if unsupported:
        lines += ["", "## Operators without a formula (models that use each)", ""]
        lines += [f"- `{op}`: {n}" for op, n in sorted(unsupported.items(), key=lambda kv: -kv[1])]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="*", help="tv:NAME or timm:NAME (default: every model of both)")
    ap.add_argument("--sample", type=int, help="a seeded random sample of this many models")
    ap.add_argument("--output", default=str(HERE / "RESULTS-coverage.md"), help="the Markdown results file")
    ap.add_argument("--json", help="also write every row to this JSON file")
    ap.add_argument(
        "--every",
        type=int,
        default=50,
        help="rewrite the results after this many models (a run "
        "stopped early leaves a table of a random sample: the models go in a seeded random order)",
    )
    args = ap.parse_args(argv)
    names = args.models or all_models()
    scope = f"{len(names)} named models" if args.models else f"all {len(names)} models of timm and torchvision"
    if not args.models:
        random.Random(0).shuffle(names)  # any prefix of the run is a random sample
    if args.sample and args.sample < len(names):
        names = sorted(random.Random(0).sample(names, args.sample))
        scope = f"a seeded random sample of {len(names)} models of timm and torchvision"
    start = time.perf_counter()
    rows = []
    for i, spec in enumerate(names):
        row = measure(spec)
        rows.append(row)
        state = (
            row.get("error")
            or row.get("build_error")
            or (f"{row['macs']:,} MACs" + ("" if row.get("peer_macs") in (None, row["macs"]) else " ≠ FlopCounterMode"))
        )
        print(f"[{i + 1}/{len(names)}] {spec}: {state}", flush=True)
        if (i + 1) % args.every == 0 and i + 1 < len(names):
            partial = f"a partial run: the first {i + 1} of {scope}, in a seeded random order"
            Path(args.output).write_text(summarise(rows, partial, time.perf_counter() - start))
    text = summarise(rows, scope, time.perf_counter() - start)
    Path(args.output).write_text(text)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1, default=str))
    print(text)
    return {"rows": rows, "markdown": text}


if __name__ == "__main__":
    main()
