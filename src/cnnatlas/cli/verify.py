"""`cnnatlas verify [ID ...] [--json] [--quick]`: run the claims of the notes as experiments.

Prints a table (or JSON: a list of objects with `id`, `claim`, `measured`, `expected`, `passed`,
plus `status`, `reason`, `conditions`, `values`, `seconds`, `slow`). Exit status 1 when a claim
failed, 2 for an unknown id; a skipped claim (its model is not in the zoo yet, or --quick left out
a slow one) fails nothing and is never reported as passed.
"""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..claims import ClaimResult, UnknownClaimError, get_claim, list_claims, run_claims
from ..errors import did_you_mean
from .console import NUMBER, command_console, figure_table, print_json

MARK = {"passed": "[green]✓ passed[/]", "failed": "[red]✗ failed[/]", "skipped": "[yellow]– skipped[/]"}


def results_table(results: list[ClaimResult], title: str = "The claims of the notes, measured") -> Table:
    table = Table(title=title, title_justify="left", show_lines=True)
    table.add_column("claim", no_wrap=True)
    table.add_column("result", no_wrap=True)
    table.add_column("measured", overflow="fold", ratio=3)
    table.add_column("expected", overflow="fold", ratio=2)
    table.add_column("s", **NUMBER)
    for r in results:
        measured = r.measured if r.status != "skipped" else f"[yellow]{r.reason}[/]"
        if r.status == "failed" and r.reason:
            measured = f"[red]{r.reason}[/]" if r.measured == "—" else f"{r.measured}\n[red]{r.reason}[/]"
        table.add_row(r.id, MARK[r.status], measured, r.expected, f"{r.seconds:.1f}")
    return table


def summary_line(results: list[ClaimResult]) -> str:
    counts = {s: sum(r.status == s for r in results) for s in ("passed", "failed", "skipped")}
    text = f"{counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped"
    failed = [r.id for r in results if r.status == "failed"]
    return text + (f" — failed: {', '.join(failed)}" if failed else "")


def check_ids(ids: list[str]) -> list[str]:
    """The claim ids as given, in the order given; every unknown one named in one error."""
    known = list_claims()
    unknown = [i for i in ids if i not in known]
    if unknown:
        hints = "; ".join(f"{i!r}{did_you_mean(i, known) or ''}" for i in unknown)
        raise UnknownClaimError(
            f"unknown claim id{'s' if len(unknown) > 1 else ''}: {hints} "
            f"(`cnnatlas verify --list` shows all {len(known)})"
        )
    return list(dict.fromkeys(ids)) or known


def run_with_progress(ids: list[str], quick: bool, console: Console) -> list[ClaimResult]:
    """Run the claims with a progress bar on `console` (stderr for the command line)."""
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("claims", total=len(ids))
        return run_claims(
            ids,
            quick=quick,
            on_start=lambda c: progress.update(task, description=f"measuring [bold]{c.id}[/]"),
            on_done=lambda r: progress.advance(task),
        )


def _run(args) -> int:
    if args.list:
        table = figure_table("Claims")
        for col in ("id", "claim", "slow"):
            table.add_column(col, overflow="fold")
        for cid in list_claims():
            c = get_claim(cid)
            table.add_row(cid, c.sentence, "slow" if c.slow else "")
        command_console().print(table)
        return 0
    ids = check_ids(args.ids)
    results = run_with_progress(ids, args.quick, command_console(stderr=True))
    if args.json:
        print_json([r.as_dict() for r in results], ensure_ascii=False)
    else:
        console = command_console()
        console.print(results_table(results))
        console.print(summary_line(results))
    return 1 if any(r.status == "failed" for r in results) else 0


def add_parser(sub) -> None:
    p = sub.add_parser("verify", help="run the claims of the notes as experiments; exit 1 if one fails")
    p.add_argument("ids", nargs="*", metavar="ID", help="claims to run (default: all); see --list")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--quick", action="store_true", help="leave out the claims marked slow (reported as skipped)")
    p.add_argument("--list", action="store_true", help="list the claims and run nothing")
    p.set_defaults(run=_run)


def claims_section(console: Console) -> bool:
    """The tour's section: every claim but the slow ones, measured, as a table."""
    results = run_with_progress(list_claims(), True, console)
    console.print(results_table(results))
    console.print(summary_line(results) + " (`cnnatlas verify` runs the slow ones too)")
    return not any(r.status == "failed" for r in results)
