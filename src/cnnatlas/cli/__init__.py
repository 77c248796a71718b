"""The `cnnatlas` command line. Each sub-command lives in its own module of this package and
registers itself through `add_parser(subparsers)`; the module list is COMMANDS below.

Exit codes: 0 success, 1 a check failed (a claim, a mismatch), 2 a usage error or bad input (bad flag,
unknown model, invalid value), 3 something the command needs is unavailable now (a download that failed,
a run folder another process holds: `UnavailableError`), so running it again later may succeed. Errors
print one line, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from ..errors import CnnAtlasError, UnavailableError

# Sub-command modules, in the order `cnnatlas --help` lists them.
COMMANDS = [
    "tour",
    "models",
    "train",
    "evaluate",
    "predict",
    "summary",
    "roofline",
    "rf",
    "calc",
    "bench",
    "export",
    "plot",
    "report",
    "verify",
]


class UsageError(CnnAtlasError):
    """A command line that cannot be run as written (exit status 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (argparse prints the whole usage)
        raise UsageError(f"{message} (see '{self.prog} --help')")

    def parse_known_args(self, args=None, namespace=None):
        namespace, extras = super().parse_known_args(args, namespace)
        # the innermost sub-command parser returns first: remember the first that found an unknown
        # argument, so it is reported against that sub-command's --help rather than the top-level one
        if extras:
            vars(namespace).setdefault("_parser", self)
        return namespace, extras

    def parse_args(self, args=None, namespace=None):
        namespace, extras = self.parse_known_args(args, namespace)
        if extras:
            parser = vars(namespace).pop("_parser", self)
            parser.error(f"unrecognized arguments: {' '.join(extras)}")
        vars(namespace).pop("_parser", None)
        return namespace


def build_parser() -> argparse.ArgumentParser:
    from ..version import __version__

    parser = _Parser(
        prog="cnnatlas", description="The classic CNNs, an analyser, and the claims of the notes, measured."
    )
    parser.add_argument("--version", action="version", version=f"cnnatlas {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "run", None):
            parser.print_help()
            raise UsageError("expected a COMMAND, one of those listed above; got none (see 'cnnatlas --help')")
        return int(args.run(args) or 0)
    except CnnAtlasError as err:  # usage errors and bad input exit 2, what is unavailable now 3: one line
        print(f"cnnatlas: error: {err}", file=sys.stderr)
        return 3 if isinstance(err, UnavailableError) else 2
    except KeyboardInterrupt:
        print("cnnatlas: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `cnnatlas models | head`
        return 0
    except OSError as err:  # a file or folder the system refused (/proc, a full disk, no permission): one line
        where = f"{err.filename}: " if err.filename else ""
        print(f"cnnatlas: error: {where}{err.strerror or err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
