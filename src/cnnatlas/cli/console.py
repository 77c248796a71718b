"""Where the commands print: `command_console()` for standard output, `command_console(stderr=True)` for progress.

In a terminal a table is laid out to the terminal's width, its figures whole (`NUMBER` columns never
wrap: the text columns give way first). Written to a file or a pipe, rich would assume 80 columns and
fold every wider table, splitting names and numbers across lines; there (no terminal and no COLUMNS set)
a table keeps its natural width instead, up to `FILE_TABLE_WIDTH` columns (past it, prose cells wrap), so
`cnnatlas summary resnet18 > summary.txt` reads as it does on a wide screen. Text still wraps at 80
columns; COLUMNS, where set, is the width of both.
"""

from __future__ import annotations

import json
import os
from typing import Any

from rich import box
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

NUMBER: dict[str, Any] = {"justify": "right", "no_wrap": True}  # a figure is never split across lines
FILE_TABLE_WIDTH = 160  # the widest a table is printed to a file or a pipe


class CommandConsole(Console):
    """A rich Console that prints a table at its natural width (at most `FILE_TABLE_WIDTH`) where no
    terminal sets one."""

    def _free_width(self) -> bool:
        return not self.is_terminal and not os.environ.get("COLUMNS")

    def print(self, *objects: Any, **kwargs: Any) -> None:
        tables = [o for o in objects if isinstance(o, Table)]
        if not tables or not self._free_width():
            super().print(*objects, **kwargs)
            return
        options = self.options.update_width(FILE_TABLE_WIDTH)
        natural = max(Measurement.get(self, options, t).maximum for t in tables)
        text_width = self.width
        self.width = max(text_width, natural)
        try:
            super().print(*objects, **kwargs)
        finally:
            self.width = text_width


def figure_table(title: str, **kwargs: Any) -> Table:
    """A table of figures as the commands print them: the title above on the left, a rule under the
    header and no frame (the frame's columns are better spent on the figures in an 80-column terminal)."""
    return Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, **kwargs)


def command_console(stderr: bool = False) -> Console:
    """The console a command prints to (standard output, or standard error for progress and notes)."""
    return CommandConsole(stderr=stderr)


def json_text(value: Any, ensure_ascii: bool = True) -> str:
    """`value` as JSON indented one space per level, as `json.dumps(value, indent=1)` writes it, except that
    an array of scalars stays on one line: a 1000×1000 confusion matrix is 1000 lines, not a million."""

    def encode(v: Any, depth: int) -> str:
        nested = isinstance(v, dict) or (
            isinstance(v, (list, tuple)) and any(isinstance(e, (dict, list, tuple)) for e in v)
        )
        if not v or not nested:
            return json.dumps(v, ensure_ascii=ensure_ascii)
        inner = "\n" + " " * (depth + 1)
        if isinstance(v, dict):
            items = [
                f"{json.dumps(_json_key(k), ensure_ascii=ensure_ascii)}: {encode(e, depth + 1)}" for k, e in v.items()
            ]
            return "{" + inner + ("," + inner).join(items) + "\n" + " " * depth + "}"
        return "[" + inner + ("," + inner).join(encode(e, depth + 1) for e in v) + "\n" + " " * depth + "]"

    return encode(value, 0)


def _json_key(key: Any) -> str:
    """An object key as `json.dumps` writes it: a string as it is, a number or a literal as its JSON text."""
    return key if isinstance(key, str) else json.dumps(key)


def print_json(value: Any, ensure_ascii: bool = True) -> None:
    """Print a command's --json answer (see `json_text`)."""
    print(json_text(value, ensure_ascii=ensure_ascii))
