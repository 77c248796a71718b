"""`cnnatlas report --out DIR [--runs DIR]`: the static HTML atlas of the zoo (open DIR/index.html
from disk; nothing is fetched)."""

from __future__ import annotations

import sys

from .argtypes import PATH, integer, out_dir, writing


def _run(args) -> int:
    from ..viz.atlas import build_atlas

    log = None if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    claims = "none" if args.no_claims else (args.claims if args.claims is not None else "auto")
    with writing(args.out, "folder"):
        index = build_atlas(
            args.out,
            models=args.models,
            runs=args.runs,
            claims=claims,
            erf=not args.no_erf,
            erf_cap=args.erf_size,
            erf_samples=args.erf_samples,
            diagrams=not args.no_diagrams,
            quick_claims=args.quick_claims,
            log=log,
        )
    print(index)
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser(
        "report",
        help="write the HTML atlas: every model, its diagram and receptive fields, the claims, training runs",
        description="Write a static HTML atlas to DIR (open DIR/index.html; it works from disk). "
        "Per-model pictures are cached in DIR/.cache and redrawn only when needed.",
    )
    p.add_argument("--out", type=out_dir, required=True, metavar="DIR", help="folder to write the atlas into")
    p.add_argument("--runs", type=PATH, metavar="DIR", help="training run folders to show (a run, or a folder of runs)")
    p.add_argument("--models", metavar="PATTERN", help="models to include: a pattern or comma list (default: all)")
    p.add_argument(
        "--claims",
        type=PATH,
        metavar="FILE",
        help="claims from `cnnatlas verify --json > FILE` instead of running them now",
    )
    p.add_argument("--no-claims", action="store_true", help="do not run the claims")
    p.add_argument("--quick-claims", action="store_true", help="leave out the claims marked slow (shown as skipped)")
    p.add_argument("--no-erf", action="store_true", help="skip the effective receptive fields (real gradients)")
    p.add_argument(
        "--erf-size",
        type=integer(1),
        default=128,
        metavar="PX",
        help="cap on each image side for the effective receptive field (default 128)",
    )
    p.add_argument("--erf-samples", type=integer(1), default=4, metavar="N", help="random inputs per ERF (default 4)")
    p.add_argument("--no-diagrams", action="store_true", help="skip the Graphviz diagrams")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(run=_run)
