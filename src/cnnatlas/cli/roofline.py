"""`cnnatlas roofline`: this machine's peak compute and memory bandwidth, the two roofs of the roofline
model, measured (a float32 matmul, a triad; best of a few repeats) or as given."""

from __future__ import annotations

import json

from .argtypes import integer, number


def _run(args) -> int:
    from ..analysis.roofline import Machine, measure_machine

    if args.peak_gflops is not None and args.bandwidth_gbs is not None:
        machine = Machine(args.peak_gflops * 1e9, args.bandwidth_gbs * 1e9, "given (--peak-gflops, --bandwidth-gbs)")
    else:
        m = measure_machine(threads=args.threads, repeats=args.repeats)
        machine = Machine(
            m.peak_flops if args.peak_gflops is None else args.peak_gflops * 1e9,
            m.bandwidth if args.bandwidth_gbs is None else args.bandwidth_gbs * 1e9,
            m.source + ("; one value as given" if args.peak_gflops or args.bandwidth_gbs else ""),
            m.threads,
        )
    if args.json:
        print(json.dumps(machine.as_dict(), indent=1))
        return 0
    print(f"peak compute: {machine.peak_flops / 1e9:.1f} GFLOP/s")
    print(f"memory bandwidth: {machine.bandwidth / 1e9:.1f} GB/s")
    print(f"ridge point: {machine.ridge:.2f} FLOPs per byte (operators below it are memory-bound)")
    print(f"how: {machine.source}")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("roofline", help="this machine's peak FLOP/s and memory bandwidth (the roofline's two roofs)")
    p.add_argument("--peak-gflops", type=number(0, open_min=True), metavar="GFLOPS", help="peak compute, not measured")
    p.add_argument(
        "--bandwidth-gbs", type=number(0, open_min=True), metavar="GBS", help="bandwidth in GB/s, not measured"
    )
    p.add_argument("--threads", type=integer(1, 1024), help="torch threads for the measurement (default: torch's)")
    p.add_argument("--repeats", type=integer(1, 100), default=5, help="repeats, the best kept (default 5)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=_run)
