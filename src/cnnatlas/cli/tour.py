"""`cnnatlas tour`: the main job — every capability of cnnatlas, one section each."""

from __future__ import annotations

from ..tour import SECTIONS, run_tour


def add_parser(sub) -> None:
    p = sub.add_parser("tour", help="a guided run through everything cnnatlas measures")
    p.add_argument(
        "--section", action="append", choices=[s.name for s in SECTIONS], help="run only this section (repeatable)"
    )
    p.set_defaults(run=lambda args: run_tour(args.section))
