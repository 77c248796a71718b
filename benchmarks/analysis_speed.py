"""How fast is a full cnnatlas analysis (shapes, parameters, MACs, memory, receptive field) against
the counters people use instead — fvcore, ptflops, thop, torchinfo, torchscan and
torch.utils.flop_counter.FlopCounterMode — and where do their numbers differ from ours, and why?

The ratios time `analyze(model, shape, training_memory=False)` and read every receptive field: the
peers' scope (shapes, parameters, MACs) and more, but not the estimate of what autograd saves for a
training step, which no peer makes and which needs autograd running through the trace. The time of
the default analysis, that estimate included, is reported beside it.

Everything is measured in this one run, on this machine: each tool analyses the same model object
at the same input; the time is the best of a few calls after one warm-up call, each call after a
full garbage collection (the peers' real forwards leave garbage whose collection would otherwise
land in whichever call comes next). Peers run as their
documentation shows (a real forward on CPU tensors). Two of them can also run on the meta device
(torchscan's `device="meta"`, FlopCounterMode with meta tensors); those rows are labelled "(meta)".

Their MAC counts are compared with ours, and each difference is explained by matching it against
the element counts of the operators we count apart (bias additions, normalisation, activations,
pooling, element-wise sums and products): "= BN + act" means the peer's extra MACs are exactly one per
batch-norm element plus one per activation element.

    pip install 'cnnatlas[bench]'                             # the peers: fvcore ptflops thop torchinfo torchscan
    python benchmarks/analysis_speed.py                       # all four cases, a few minutes on 2 cores
    python benchmarks/analysis_speed.py --cases resnet50 --markdown RESULTS.md
    python benchmarks/analysis_speed.py --json benchmarks/analysis_results.json   # also save the figures
    python benchmarks/analysis_speed.py --table benchmarks/analysis_results.json  # the README's table of a saved run
    python benchmarks/analysis_speed.py --from-markdown RESULTS.md --json out.json  # the figures of a saved report
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import itertools
import json
import logging
import os
import platform
import re
import time
import warnings
from collections.abc import Callable

import torch
import torchvision

from cnnatlas import analyze

warnings.filterwarnings("ignore")
logging.disable(logging.WARNING)

CASES = {
    "resnet50": (lambda: torchvision.models.resnet50(), (1, 3, 224, 224)),
    "densenet161": (lambda: torchvision.models.densenet161(), (1, 3, 224, 224)),
    "efficientnet_b7": (lambda: torchvision.models.efficientnet_b7(), (1, 3, 600, 600)),
    "r3d_18": (lambda: torchvision.models.video.r3d_18(), (1, 3, 16, 112, 112)),
}


# -- the tools: each returns (MACs as that tool reports them, parameters) ----------------------------


def ours(model, shape, training_memory=False):
    r = analyze(model, shape, training_memory=training_memory)
    _ = r.receptive_field, [rec.receptive_field for rec in r.layers]  # the full analysis, fields included
    return r.macs, r.params


def fvcore(model, shape):
    from fvcore.nn import FlopCountAnalysis, parameter_count

    fca = FlopCountAnalysis(model, torch.randn(shape)).unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    return fca.total(), parameter_count(model)[""]


def ptflops(model, shape):
    from ptflops import get_model_complexity_info

    with contextlib.redirect_stdout(io.StringIO()):
        macs, params = get_model_complexity_info(
            model, tuple(shape[1:]), as_strings=False, print_per_layer_stat=False, verbose=False
        )
    return macs, params


def thop(model, shape):
    from thop import profile

    with contextlib.redirect_stdout(io.StringIO()):
        macs, params = profile(model, inputs=(torch.randn(shape),), verbose=False)
    _strip_thop(model)
    return int(macs), int(params)


def _strip_thop(model):
    """thop leaves total_ops/total_params buffers on every module; remove them so the next tool sees the
    model as it was."""
    for m in model.modules():
        for key in ("total_ops", "total_params"):
            m._buffers.pop(key, None)


def torchinfo(model, shape):
    from torchinfo import summary

    s = summary(model, input_size=shape, verbose=0)
    return s.total_mult_adds, s.total_params


def torchscan(model, shape, device="cpu"):
    from torchscan import crawl_module

    info = crawl_module(model, tuple(shape[1:]), device=device)
    totals = info["totals"]
    # "value" is None when some layer has no formula ("partial"); "known_value" is what it could count
    return totals["macs"]["known_value"], totals["parameters"]["value"]


def flop_counter(model, shape, device="cpu"):
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.randn(shape) if device == "cpu" else torch.empty(shape, device="meta"))
    return counter.get_total_flops() // 2, sum(p.numel() for p in model.parameters())


PEERS: dict[str, Callable] = {
    "fvcore": fvcore,
    "ptflops": ptflops,
    "thop": thop,
    "torchinfo": torchinfo,
    "torchscan": torchscan,
    "FlopCounterMode": flop_counter,
}
META_PEERS: dict[str, Callable] = {
    "torchscan (meta)": lambda m, s: torchscan(m, s, device="meta"),
    "FlopCounterMode (meta)": lambda m, s: flop_counter(m, s, device="meta"),
}


def best_time(fn: Callable, repeat: int) -> tuple[float, object]:
    result = fn()  # warm-up: imports, caches, first-call allocations
    times = []
    for _ in range(repeat):
        t, result = _timed(fn)
        times.append(t)
    return min(times), result


# -- explaining the differences -----------------------------------------------------------------------

_ACT = {
    "relu",
    "relu_",
    "silu",
    "silu_",
    "sigmoid",
    "sigmoid_",
    "hardswish",
    "hardswish_",
    "hardsigmoid",
    "hardsigmoid_",
    "gelu",
    "hardtanh",
    "hardtanh_",
    "tanh",
    "leaky_relu",
    "leaky_relu_",
}


def components(model, shape) -> dict[str, int]:
    """Element counts of what we keep out of MACs, read from our per-operator records."""
    r = analyze(model, shape)
    comp = dict.fromkeys(
        (
            "bias",
            "BN",
            "BN params",
            "act",
            "maxpool in",
            "maxpool window",
            "maxpool out",
            "avgpool in",
            "avgpool out",
            "add",
            "mul",
        ),
        0,
    )
    for rec in r.layers:
        out = 1
        for d in rec.output_shape:
            out *= d
        inp = 1
        for d in rec.input_shapes[0] if rec.input_shapes else ():
            inp *= d
        if rec.op in ("convolution", "addmm"):
            comp["bias"] += rec.other_flops
        elif rec.op in ("native_batch_norm", "_native_batch_norm_legit_no_training"):
            comp["BN"] += out
            comp["BN params"] += rec.params
        elif rec.op in _ACT:
            comp["act"] += out
        elif rec.op.startswith("max_pool"):
            comp["maxpool in"] += inp
            comp["maxpool window"] += rec.other_flops
            comp["maxpool out"] += out
        elif "pool" in rec.op or rec.op == "mean":
            comp["avgpool in"] += inp
            comp["avgpool out"] += out
        elif rec.op in ("add", "add_"):
            comp["add"] += out
        elif rec.op in ("mul", "mul_"):
            comp["mul"] += out
    return {k: v for k, v in comp.items() if v}


def explain(diff: int, comp: dict[str, int]) -> str:
    """Which multiples (0, 1, 2 or 4) of our uncounted components add up to the difference?"""
    if diff == 0:
        return "same"
    names = list(comp)
    values = [comp[n] for n in names]
    best = None
    for coeffs in itertools.product((0, 1, 2, 4), repeat=len(names)):
        err = abs(diff - sum(c * v for c, v in zip(coeffs, values)))
        if best is None or err < best[0] or (err == best[0] and sum(coeffs) < sum(best[1])):
            best = (err, coeffs)
    err, coeffs = best
    terms = " + ".join(f"{c}·{n}" if c > 1 else n for c, n in zip(coeffs, names) if c) or "nothing"
    if err == 0:
        return f"= {terms}"
    return f"{diff:+,} MACs, no exact decomposition (their convention below)"


NOTES = {
    "fvcore": "a torch.jit trace with per-operator handles; counts one 'flop' per multiply-add (so MACs) of conv, "
    "matmul, linear and einsum, and adds batch norm (1 per element, 2 with affine) and adaptive average "
    "pooling (1 per input element); element-wise operators (add_, mul, silu, sigmoid) are skipped with a warning",
    "ptflops": "module hooks plus patched torch.nn.functional calls (pytorch backend): adds Linear biases, batch norm "
    "(1 per element, 2 with affine), activations (1 per element) and pooling (1 per input element) to the "
    "'MACs' — and a module whose forward calls the patched function (nn.ReLU → F.relu, pooling) is counted "
    "twice, by its hook and by the patch",
    "thop": "module hooks: batch norm 2 per element, doubled with affine (4); adaptive average pooling "
    "(kernel + 1) per output; ReLU and max-pooling 0; functional calls (x + y, torch.cat, F.relu, x * s) are "
    "not seen",
    "torchinfo": "module hooks on leaf layers: conv and linear mult-adds including their bias additions; other layers "
    "with parameters add their parameter count (batch norm: 2·C)",
    "torchscan": "per-module formulas: besides conv/linear (with bias) its 'macs' include normalisation, activation "
    "and pooling layers",
    "FlopCounterMode": "dispatch-level like cnnatlas: conv, mm, addmm, bmm and attention at 2 FLOPs per MAC, nothing "
    "else; it gives no shapes per module path, parameters, memory or receptive field",
}


def _timed(fn: Callable) -> tuple[float, object]:
    gc.collect()  # each call starts from a collected heap: no tool pays for another's garbage
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def run(case: str, repeat: int, peer_repeat: int) -> dict:
    """Each peer is timed in rounds alternating with cnnatlas (its default analysis too), so that a
    change of load on the machine hits both sides of a ratio alike; a ratio is the best peer time
    over the best cnnatlas time of the same rounds. The peers on meta tensors go first: a real forward
    grows the process by gigabytes, after which every tool, ours and theirs, runs slower on this
    machine for a while."""
    build, shape = CASES[case]
    torch.manual_seed(0)
    model = build().eval()
    with torch.device("meta"):
        meta_model = build().eval()  # for the peers that can run on the meta device
    analysis = lambda: ours(model, shape)  # noqa: E731
    default = lambda: ours(model, shape, training_memory=True)  # noqa: E731
    t_ours, (macs, params) = best_time(analysis, repeat)
    t_full, _ = best_time(default, repeat)
    # analysis time against input size, the sizes interleaved (ours only: the peers' grows with the arithmetic)
    sizes: dict[str, list[float]] = {}
    bigs = [shape[:-2] + (shape[-2] * k, shape[-1] * k) for k in (1, 2, 4)]
    for _ in range(repeat):
        for big in bigs:
            sizes.setdefault("×".join(map(str, big)), []).append(_timed(lambda big=big: analyze(model, big))[0])
    comp = components(model, shape)
    rows = {}
    for name, fn in list(META_PEERS.items()) + list(PEERS.items()):
        target = meta_model if name in META_PEERS else model
        try:
            fn(target, shape)  # warm-up
            peer_times, our_times, full_times = [], [], []
            for _ in range(peer_repeat):
                our_times.append(_timed(analysis)[0])
                full_times.append(_timed(default)[0])
                t, (pm, pp) = _timed(lambda fn=fn, target=target: fn(target, shape))
                peer_times.append(t)
        except ImportError as err:  # a peer that is not installed
            rows[name] = (
                name,
                None,
                None,
                None,
                f"{err.name or err} is not installed: pip install 'cnnatlas[bench]'",
                None,
                None,
            )
            continue
        except Exception as err:  # noqa: BLE001 — a peer that cannot run this model
            rows[name] = (
                name,
                None,
                None,
                None,
                f"failed: {type(err).__name__}: {str(err).splitlines()[0][:80]}",
                None,
                None,
            )
            continue
        if pm is None:
            rows[name] = (name, None, None, None, "reported no MAC total", None, None)
            continue
        t_ours, t_full = min(t_ours, *our_times), min(t_full, *full_times)
        rows[name] = (
            name,
            min(peer_times),
            int(pm),
            int(pp),
            explain(int(pm) - macs, comp),
            min(peer_times) / min(our_times),
            min(peer_times) / min(full_times),
        )
    peers = [rows[name] for name in list(PEERS) + list(META_PEERS)]  # the table lists them as documented first
    table = [
        ("cnnatlas", t_ours, macs, params, "", None, None),  # the best of all its timed calls
        ("cnnatlas, training memory too", t_full, macs, params, "", None, None),
    ] + peers
    timed = [r for r in peers if r[1] is not None]
    documented = [r for r in timed if "(meta)" not in r[0]]
    fastest = min(documented, key=lambda r: r[1]) if documented else None
    fastest_any = min(timed, key=lambda r: r[1]) if timed else None
    best = lambda r: None if r is None else {"tool": r[0], "ms": r[1] * 1000, "faster": r[5]}  # noqa: E731
    return {
        "case": case,
        "shape": list(shape),
        "macs": macs,
        "params": params,
        "components": comp,
        "rows": [
            {"tool": name, "ms": None if t is None else t * 1000, "faster": ratio, "macs": m, "params": p, "why": why}
            for name, t, m, p, why, ratio, _ in table
        ],
        "fastest": best(fastest),
        "fastest_any": best(fastest_any),
        "default": {"ms": t_full * 1000, "faster": None if fastest_any is None else fastest_any[6]},
        "sizes_ms": {k: min(v) * 1000 for k, v in sizes.items()},
    }


def machine_line() -> str:
    return (
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU threads, torch "
        f"{torch.__version__}, {torch.get_num_threads()} intra-op threads. "
        "Times: best of several calls after a warm-up."
    )


def report(results: list[dict], machine: str | None = None) -> str:
    """The Markdown report of run() results (as saved by --json): per case, every tool's time, ratio,
    MACs and the decomposition of its difference from ours."""
    lines = [machine or machine_line(), ""]
    for res in results:
        lines.append(f"### {res['case']} at {'×'.join(map(str, res['shape']))}")
        lines.append(
            f"ours: {res['macs']:,} MACs, {res['params']:,} parameters. Uncounted components (elements): "
            + ", ".join(f"{k} {v:,}" for k, v in res["components"].items())
        )
        lines.append("")
        lines.append(
            "| tool | time | cnnatlas is … faster | MACs reported | params "
            "| MACs vs ours, and the components that make up the difference |"
        )
        lines.append("|---|---:|---:|---:|---:|---|")
        for row in res["rows"]:
            if row["ms"] is None:
                lines.append(f"| {row['tool']} | — | — | — | — | {row['why']} |")
                continue
            faster = "—" if row["faster"] is None else f"{row['faster']:.1f}×"
            diff = "" if row["faster"] is None else f"{(row['macs'] - res['macs']) / res['macs']:+.2%} {row['why']}"
            lines.append(
                f"| {row['tool']} | {row['ms']:.0f} ms | {faster} | {row['macs']:,} | {row['params']:,} | {diff} |"
            )
        lines.append("")
        for label, best in (
            ("Fastest peer as documented (real forward)", res["fastest"]),
            ("Fastest peer of all", res["fastest_any"]),
        ):
            if best is not None:
                lines.append(f"{label}: {best['tool']}, {best['ms']:.0f} ms → cnnatlas {best['faster']:.2f}× faster.")
        if res["fastest_any"] is not None:
            lines.append(
                f"With the training-memory estimate (the default analysis): {res['default']['ms']:.0f} ms, "
                f"{res['default']['faster']:.2f}× faster than the fastest peer of all (in the same rounds)."
            )
        lines.append(
            "The default analysis's time against input size: "
            + ", ".join(f"{k}: {v:.0f} ms" for k, v in res["sizes_ms"].items())
        )
        lines.append("")
    lines.append(
        "The last column decomposes each difference into our per-operator element counts (bias additions, "
        "batch-norm elements and parameters, activation elements, pooling inputs/windows/outputs, element-wise "
        "sums and products) with coefficients 0, 1, 2 or 4 — the simplest combination that fits; where two "
        "components happen to be equal, another combination may fit as well. The conventions, read in each "
        "tool's source:"
    )
    for name, note in NOTES.items():
        lines.append(f"- {name}: {note}.")
    return "\n".join(lines)


def _count(text: str) -> int:
    """argparse type: a whole number of calls, at least 1 (the best of none is no time at all)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number ≥ 1; got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number ≥ 1; got {value}")
    return value


def parse_report(text: str) -> dict:
    """The figures of a report written by report() (--markdown), as --json saves them — to the
    precision the report prints (times in whole ms, ratios to 1 or 2 decimals)."""
    lines = text.splitlines()
    cases: list[dict] = []
    for line in lines[1:]:
        if m := re.fullmatch(r"### (\S+) at ([\d×]+)", line):
            res = {
                "case": m[1],
                "shape": [int(d) for d in m[2].split("×")],
                "rows": [],
                "fastest": None,
                "fastest_any": None,
                "default": {"ms": None, "faster": None},
            }
            cases.append(res)
        elif m := re.fullmatch(
            r"ours: ([\d,]+) MACs, ([\d,]+) parameters\. "
            r"Uncounted components \(elements\): (.*)",
            line,
        ):
            res["macs"], res["params"] = _int(m[1]), _int(m[2])
            res["components"] = {k: _int(v) for k, v in (c.rsplit(" ", 1) for c in m[3].split(", "))}
        elif line.startswith("| ") and not line.startswith("| tool |"):
            tool, ms, faster, macs, params, why = (c.strip() for c in line[1:-1].split("|"))
            timed = ms != "—"
            ratio = None if faster == "—" else float(faster.removesuffix("×"))
            res["rows"].append(
                {
                    "tool": tool,
                    "ms": int(ms.removesuffix(" ms")) if timed else None,
                    "faster": ratio,
                    "macs": _int(macs) if timed else None,
                    "params": _int(params) if timed else None,
                    "why": why if not timed else (why.split(" ", 1)[1] if ratio is not None else ""),
                }
            )
        elif m := re.fullmatch(
            r"(Fastest peer as documented \(real forward\)|Fastest peer of all): (.+), (\d+) ms "
            r"→ cnnatlas ([\d.]+)× faster\.",
            line,
        ):
            key = "fastest" if m[1].startswith("Fastest peer as") else "fastest_any"
            res[key] = {"tool": m[2], "ms": int(m[3]), "faster": float(m[4])}
        elif m := re.fullmatch(
            r"With the training-memory estimate \(the default analysis\): (\d+) ms, ([\d.]+)× "
            r"faster than the fastest peer of all \(in the same rounds\)\.",
            line,
        ):
            res["default"] = {"ms": int(m[1]), "faster": float(m[2])}
        elif line.startswith("The default analysis's time against input size: "):
            sizes = line.split(": ", 1)[1].split(", ")
            res["sizes_ms"] = {k: int(v.removesuffix(" ms")) for k, v in (x.split(": ") for x in sizes)}
    return {"machine": lines[0], "cases": cases}


def _int(text: str) -> int:
    return int(text.replace(",", ""))


def readme_table(saved: dict) -> str:
    """The README's table ("## The analyser") of a saved run: per case the ratio to the fastest peer as
    documented and to the fastest in any mode, the default analysis against the latter, and the
    default analysis's time at 1×, 2× and 4× the input side."""

    def peer(best: dict | None) -> str:
        return f"{best['faster']:.2f}× ({best['tool'].replace(' (meta)', ' on meta')})" if best else "—"

    lines = [
        "| case | faster than the fastest peer as documented | than the fastest peer in any mode | the default "
        "analysis against that peer | default analysis at 1×, 2×, 4× the input side |",
        "|---|---|---|---|---|",
    ]
    for res in saved["cases"]:
        default = "—" if res["default"]["faster"] is None else f"{res['default']['faster']:.2f}×"
        sizes = " / ".join(f"{v:.0f}" for v in res["sizes_ms"].values())
        lines.append(
            f"| {res['case']}, {'×'.join(map(str, res['shape']))} | {peer(res['fastest'])} | "
            f"{peer(res['fastest_any'])} | {default} | {sizes} ms |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    parser.add_argument("--repeat", type=_count, default=5, help="timed calls of cnnatlas (best is kept)")
    parser.add_argument(
        "--peer-repeat", type=_count, default=3, help="timed rounds of each peer against cnnatlas (best is kept)"
    )
    parser.add_argument("--markdown", help="also write the results to this Markdown file")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    parser.add_argument("--table", metavar="JSON", help="print the README's Markdown table of a saved run and exit")
    parser.add_argument(
        "--from-markdown",
        metavar="MD",
        help="read the figures of a report written by --markdown instead of measuring (with --json: save them)",
    )
    args = parser.parse_args()
    if args.table:
        with open(args.table, encoding="utf-8") as fh:
            print(readme_table(json.load(fh)))
        return
    if args.from_markdown:
        with open(args.from_markdown, encoding="utf-8") as fh:
            saved = {
                "source": f"the figures of the report {args.from_markdown}, as it prints them",
                **parse_report(fh.read()),
            }
    else:
        results = []
        for case in args.cases:
            print(f"… {case}", flush=True)
            results.append(run(case, args.repeat, args.peer_repeat))
            print(report(results[-1:]), flush=True)
        saved = {"source": "measured by benchmarks/analysis_speed.py", "machine": machine_line(), "cases": results}
        text = report(results, saved["machine"])
        if args.markdown:
            with open(args.markdown, "w", encoding="utf-8") as fh:
                fh.write(text + "\n")
        print("\n" + text)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(saved, fh, indent=1, ensure_ascii=False)
            fh.write("\n")
    else:
        print(readme_table(saved))


if __name__ == "__main__":
    main()
