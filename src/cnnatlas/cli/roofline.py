"""`cnnatlas roofline`: this machine's peak compute and memory bandwidth, the two roofs of the roofline
model, and the compute ceilings of operator classes that run below the peak (depthwise convolution, max- and
avg-pooling, element-wise), measured (a float32 matmul, a triad, one small kernel per class; best of a few
repeats) or as given."""

from __future__ import annotations

from .argtypes import integer, number
from .console import print_json

# the flag giving each class's ceiling (GFLOP/s), by class of analysis.roofline.CEILING_CLASSES
CEILING_FLAGS = {
    "depthwise": "--depthwise-gflops",
    "max_pool": "--max-pool-gflops",
    "avg_pool": "--avg-pool-gflops",
    "elementwise": "--elementwise-gflops",
}


def add_ceiling_args(p) -> None:
    """The optional class ceilings, in GFLOP/s (`--depthwise-gflops` …)."""
    for cls, flag in CEILING_FLAGS.items():
        p.add_argument(
            flag,
            type=number(0, open_min=True),
            metavar="GFLOPS",
            help=f"compute ceiling of {cls.replace('_', '-')} operators (default: measured, or the peak where "
            "--peak-gflops and --bandwidth-gbs are both given)",
        )


def add_machine_args(p, peak_help: str, bandwidth_help: str) -> None:
    """--peak-gflops, --bandwidth-gbs (each command words its own help) and the class ceilings."""
    p.add_argument("--peak-gflops", type=number(0, open_min=True), metavar="GFLOPS", help=peak_help)
    p.add_argument("--bandwidth-gbs", type=number(0, open_min=True), metavar="GBS", help=bandwidth_help)
    add_ceiling_args(p)


def machine_from_args(args, **measure):
    """The roofline's machine: --peak-gflops, --bandwidth-gbs and the class ceilings as given; where peak or
    bandwidth is missing, everything not given is measured here (`measure`: arguments of measure_machine). With
    peak and bandwidth both given nothing is measured, and a class without its flag is taken at the peak."""
    from ..analysis.roofline import Machine, measure_machine

    peak, bw = getattr(args, "peak_gflops", None), getattr(args, "bandwidth_gbs", None)
    ceilings = {c: getattr(args, c + "_gflops", None) for c in CEILING_FLAGS}
    given_ceilings = {f"{c}_flops": v * 1e9 for c, v in ceilings.items() if v is not None}
    flags = [f for f, v in (("--peak-gflops", peak), ("--bandwidth-gbs", bw)) if v is not None]
    flags += [CEILING_FLAGS[c] for c, v in ceilings.items() if v is not None]
    if peak is not None and bw is not None:
        return Machine(peak * 1e9, bw * 1e9, f"given ({', '.join(flags)})", **given_ceilings)
    m = measure_machine(**measure)
    measured = {f"{c}_flops": getattr(m, f"{c}_flops") for c in CEILING_FLAGS}
    return Machine(
        m.peak_flops if peak is None else peak * 1e9,
        m.bandwidth if bw is None else bw * 1e9,
        m.source + (f"; {', '.join(flags)} as given" if flags else ""),
        m.threads,
        **{**measured, **given_ceilings},
    )


def _run(args) -> int:
    from ..analysis.roofline import CEILING_CLASSES

    machine = machine_from_args(args, threads=args.threads, repeats=args.repeats)
    if args.json:
        print_json(machine.as_dict())
        return 0
    print(f"peak compute: {machine.peak_flops / 1e9:.1f} GFLOP/s")
    print(f"memory bandwidth: {machine.bandwidth / 1e9:.1f} GB/s")
    print(f"ridge point: {machine.ridge:.2f} FLOPs per byte (operators below it are memory-bound)")
    for cls, word in CEILING_CLASSES.items():
        own = getattr(machine, f"{cls}_flops")
        if own is not None:
            print(f"ceiling of {word} operators: {own / 1e9:.2f} GFLOP/s")
    print(f"how: {machine.source}")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("roofline", help="this machine's peak FLOP/s and memory bandwidth (the roofline's two roofs)")
    add_machine_args(p, "peak compute, not measured", "bandwidth in GB/s, not measured")
    p.add_argument("--threads", type=integer(1, 1024), help="torch threads for the measurement (default: torch's)")
    p.add_argument("--repeats", type=integer(1, 100), default=5, help="repeats, the best kept (default 5)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=_run)
