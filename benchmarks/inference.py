"""Inference speed against torchvision, measured in one run.

For resnet50, mobilenet_v2, efficientnet_b0 and vgg16 at batch 1 and 16 (eval): our plain model,
torchvision's default, torchvision with channels_last, and ours through cnnatlas.optimize — timed
alternately so that machine noise hits all four alike. Also the machine's matrix-multiply rate and
each row's achieved multiply–accumulate rate as a fraction of it.

On the CPU everything runs in float32. With `--device cuda` (the default when a GPU is present) the
models run on the GPU under float16 autocast, inputs and weights stay float32, each timed call ends
with a synchronisation, and the GEMM rate is that of float16 products on the GPU.

Images/s come from each variant's median latency; each ratio is the median over rounds of the
per-round ratio of times (a round runs every variant once, in random order). Targets at batch 16:
ours plain ≥ 0.97× torchvision default; optimize ≥ 1.3× torchvision default,
and ≥ 1.05× torchvision with channels_last for resnet50 and mobilenet_v2.

    python benchmarks/inference.py [--models resnet50,vgg16] [--batches 1,16] [--repeats 10]
                                   [--device auto|cpu|cuda] [--json out.json]
    python benchmarks/inference.py --table out.json     # the README's Markdown table from a saved run
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
import torchvision

import cnnatlas
from cnnatlas.bench import inference_runner, summarize, time_alternately
from cnnatlas.optimize import optimize

TARGET_PLAIN, TARGET_OPTIMIZED, TARGET_VS_CHANNELS_LAST = 0.97, 1.3, 1.05
CHANNELS_LAST_TARGET_MODELS = ("resnet50", "mobilenet_v2")


def gemm_macs_per_s(device: torch.device, dtype: torch.dtype, n: int = 2048, seconds: float = 2.0) -> float:
    """Measured matrix-multiply rate on `device` in `dtype`: n³ multiply–accumulates per n×n product."""
    if device.type == "cuda":
        n = 8192
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(2):
        a @ b
    _sync(device)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        count += 1
        _sync(device)
    return count * n**3 / (time.perf_counter() - start)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def macs_per_image(model: torch.nn.Module, size: tuple[int, ...]) -> int:
    """Multiply–accumulates of one image, counted by cnnatlas's analyser (FlopCounterMode if absent)."""
    if hasattr(cnnatlas, "analyze"):
        return int(cnnatlas.analyze(model, (1, *size)).macs)
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.randn(1, *size))
    return counter.get_total_flops() // 2


def paired_ratio(peer_seconds: list[float], seconds: list[float]) -> float:
    """How many times faster than the peer: the median over rounds of peer time / our time, each
    pair timed in the same round (every round runs each variant once), so that slow drifts of a
    shared machine cancel."""
    return statistics.median(p / s for p, s in zip(peer_seconds, seconds))


def markdown_table(run: dict) -> str:
    """One row per model and batch: images/s of each variant, its ratio to torchvision's default,
    optimize's ratio to torchvision with channels_last and its share of the measured GEMM rate."""
    lines = [
        "| model | batch | cnnatlas | torchvision | torchvision channels_last | cnnatlas optimize "
        "| optimize vs channels_last | optimize, share of GEMM rate |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    groups: dict[tuple[str, int], dict[str, dict]] = {}
    for row in run["rows"]:
        groups.setdefault((row["model"], row["batch"]), {})[row["variant"]] = row
    for (model, batch), v in groups.items():

        def cell(name: str, v: dict[str, dict] = v) -> str:
            r = v[name]
            return f"{r['images_per_s']:.1f} img/s" + (
                "" if name == "torchvision" else f" ({r['ratio_vs_torchvision']:.2f}×)"
            )

        opt = v["cnnatlas optimize"]
        lines.append(
            f"| {model} | {batch} | {cell('cnnatlas')} | {cell('torchvision')} | "
            f"{cell('torchvision channels_last')} | {cell('cnnatlas optimize')} | "
            f"{opt['ratio_vs_torchvision_channels_last']:.2f}× | "
            f"{opt['fraction_of_gemm']:.{0 if opt['fraction_of_gemm'] >= 0.1 else 1}%} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="resnet50,mobilenet_v2,efficientnet_b0,vgg16")
    parser.add_argument("--batches", default="1,16")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--json", help="also write the rows to this file")
    parser.add_argument("--table", metavar="JSON", help="print the Markdown table of a saved run and exit")
    args = parser.parse_args()
    if args.table:
        print(markdown_table(json.loads(open(args.table).read())))
        return

    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA GPU is visible to torch")
    device = torch.device(
        "cuda" if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available()) else "cpu"
    )
    # On a GPU the models run under float16 autocast; on the CPU in float32.
    autocast = torch.float16 if device.type == "cuda" else None
    gemm = gemm_macs_per_s(device, autocast or torch.float32)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(
        f"torch {torch.__version__}, {where}; {'float16 autocast' if autocast else 'float32'}; "
        f"{'float16' if autocast else 'float32'} GEMM rate measured here: {gemm / 1e9:.1f} GMAC/s"
    )
    rows, verdicts = [], []
    for name in args.models.split(","):
        torch.manual_seed(0)
        size = cnnatlas.get_entry(name).input_size
        theirs = getattr(torchvision.models, name)().eval()
        ours = cnnatlas.load_torchvision_weights(cnnatlas.create_model(name), theirs.state_dict()).eval()
        theirs_cl = getattr(torchvision.models, name)().eval()
        theirs_cl.load_state_dict(theirs.state_dict())
        macs = macs_per_image(ours, size)
        theirs, ours, theirs_cl = theirs.to(device), ours.to(device), theirs_cl.to(device)
        theirs_cl = theirs_cl.to(memory_format=torch.channels_last)
        fast = optimize(ours, example_input=torch.randn(1, *size, device=device))
        for batch in (int(b) for b in args.batches.split(",")):
            x = torch.randn(batch, *size, device=device)
            x_cl = x.contiguous(memory_format=torch.channels_last)
            runners = {
                "cnnatlas": inference_runner(ours, x, autocast=autocast),
                "torchvision": inference_runner(theirs, x, autocast=autocast),
                "torchvision channels_last": inference_runner(theirs_cl, x_cl, autocast=autocast),
                "cnnatlas optimize": inference_runner(fast, x, autocast=autocast),
            }
            times = time_alternately(runners, warmup=2, repeats=args.repeats)
            print(f"\n{name}, batch {batch}, {macs / 1e9:.3f} GMACs per image")
            print(f"  {'variant':28s} {'images/s':>9s} {'p50 ms':>8s} {'p95 ms':>8s} {'vs tv':>6s} {'of GEMM':>8s}")
            for variant, secs in times.items():
                t = summarize(variant, batch, secs)
                ratio = paired_ratio(times["torchvision"], secs)
                share = t.images_per_s * macs / gemm
                print(
                    f"  {variant:28s} {t.images_per_s:9.1f} {t.latency_ms_p50:8.1f} {t.latency_ms_p95:8.1f} "
                    f"{ratio:5.2f}× {share:7.1%}"
                )
                rows.append(
                    {
                        "model": name,
                        "variant": variant,
                        "batch": batch,
                        "device": device.type,
                        "images_per_s": t.images_per_s,
                        "latency_ms_p50": t.latency_ms_p50,
                        "latency_ms_p95": t.latency_ms_p95,
                        "ratio_vs_torchvision": ratio,
                        "ratio_vs_torchvision_channels_last": paired_ratio(times["torchvision channels_last"], secs),
                        "fraction_of_gemm": share,
                    }
                )
                if batch == 16 and variant == "cnnatlas":
                    verdicts.append((name, "plain", "torchvision", ratio, TARGET_PLAIN))
                if batch == 16 and variant == "cnnatlas optimize":
                    verdicts.append((name, "optimize", "torchvision", ratio, TARGET_OPTIMIZED))
                    if name in CHANNELS_LAST_TARGET_MODELS:
                        verdicts.append(
                            (
                                name,
                                "optimize",
                                "torchvision channels_last",
                                paired_ratio(times["torchvision channels_last"], secs),
                                TARGET_VS_CHANNELS_LAST,
                            )
                        )
    if verdicts:
        print("\nTargets at batch 16 (ratios measured in this run):")
        for name, variant, peer, ratio, target in verdicts:
            print(
                f"  {name:16s} {variant:9s} vs {peer:26s} {ratio:5.2f}× (target ≥ {target}×) "
                f"{'met' if ratio >= target else 'NOT met'}"
            )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"device": device.type, "gemm_macs_per_s": gemm, "rows": rows}, fh, indent=1)


if __name__ == "__main__":
    main()
