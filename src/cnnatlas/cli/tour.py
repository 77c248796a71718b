"""`cnnatlas tour`, the main job: one section per capability of cnnatlas, run in order.

A section is a named function that prints to a rich console and returns True when everything it
checked agreed. New capabilities add a `Section` to SECTIONS.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rich.console import Console

from .console import command_console


@dataclass(frozen=True)
class Section:
    name: str
    title: str
    run: Callable[[Console], bool]


def _models(console: Console) -> bool:
    from ..registry import get_entry, list_models
    from .models import measured_params, params_table

    names = list_models()
    console.print(params_table(names))
    disagree = [n for n in names if get_entry(n).published.params_agreement(measured_params(n)).status == "differs"]
    console.print(
        f"{len(names)} models; parameter counts measured on each built model. "
        + (
            f"[red]Disagreeing with the published figure: {', '.join(disagree)}[/]"
            if disagree
            else "[green]None disagrees with its published figure.[/]"
        )
    )
    return not disagree


def _analysis(console: Console) -> bool:
    from .tour_analysis import analysis_section

    return analysis_section(console)


def _claims(console: Console) -> bool:
    from .verify import claims_section

    return claims_section(console)


def _train(console: Console) -> bool:
    from ..train.demo import lenet_digits_demo

    return lenet_digits_demo(console)


SECTIONS: list[Section] = [
    Section("models", "The zoo: parameters measured vs published", _models),
    Section("analysis", "The analyser: MACs and receptive field of every model, measured vs published", _analysis),
    Section("claims", "The claims of the notes, measured (cnnatlas verify --quick)", _claims),
    Section("train", "Training: LeNet-5 learns the digits", _train),  # keep last: the tour ends with training
]


def run_tour(only: list[str] | None = None, console: Console | None = None) -> int:
    """Run the tour's sections (all, or those named); exit status 1 if any section found a disagreement."""
    console = console or command_console()
    ok = True
    for section in SECTIONS:
        if only and section.name not in only:
            continue
        console.rule(f"[bold]{section.title}")
        ok = section.run(console) and ok
    return 0 if ok else 1


def add_parser(sub) -> None:
    p = sub.add_parser("tour", help="a guided run through everything cnnatlas measures")
    p.add_argument(
        "--section", action="append", choices=[s.name for s in SECTIONS], help="run only this section (repeatable)"
    )
    p.set_defaults(run=lambda args: run_tour(args.section))
