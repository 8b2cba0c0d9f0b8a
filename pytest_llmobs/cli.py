"""The ``llmobs`` command: read, compare, gate, merge and upload the runs in the store.

RUN is a saved baseline's name, a run id (or a unique prefix of one), a run name (the newest run
of that name), or ``latest`` (`RUN_HELP`). The store is found as the plugin finds it (the
rootdir's ``llm_store`` or ``.llmobs``), or given with ``--store DIR``.

This module is the entry point: the argument parser and `main`. The subcommands are in
`cli_commands` (and ``compare.commands``, ``exporters.commands``); what they share, in
`cli_common` (`CliError`, the store) and `cli_output` (tables, ``-o`` files).
"""

from __future__ import annotations

import argparse
import codecs
import contextlib
import io
import os
import sqlite3
import sys
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, NoReturn, TextIO

from pytest_llmobs import __version__
from pytest_llmobs.cli_commands import (
    RUNS_SHOWN,
    cmd_calibrate,
    cmd_export,
    cmd_merge,
    cmd_prune,
    cmd_report,
    cmd_runs,
    cmd_show,
)
from pytest_llmobs.cli_common import DIRECTORY, FILE, CliError, OpenedStores, nonempty
from pytest_llmobs.cli_output import check_output
from pytest_llmobs.reporting.printable import plain, printable
from pytest_llmobs.store import Store, StoreError

BAD_INPUT = 2
"""Exit status of a `CliError` (as argparse's usage errors): 1 stays what a gate, a comparison or
an upload says of the run, so CI can tell a failed gate from a wrong command."""

PIPE_CLOSED = 141
"""Exit status when stdout's reader went away: 128 + SIGPIPE, what a shell tool killed by it
returns."""

RUN_HELP = (
    "a saved baseline, a run id (or a unique prefix), a run name (its newest run) or 'latest'"
)
"""What a RUN argument takes, as the commands' help says it (`RunCatalog.resolve_run`)."""

RUN_OR_FILE_HELP = (
    "a saved baseline, a run id (or a unique prefix), a run name (its newest run), 'latest', "
    "or a run exported as JSON"
)
"""What a RUN argument takes where a file written by ``llmobs export`` is read too."""

DESCRIPTION = (
    f"Read, compare, gate, merge and upload the runs pytest-llmobs stored. RUN is {RUN_HELP}; "
    "the store is found as the plugin finds it (the rootdir's llm_store or .llmobs), or given "
    "with --store DIR."
)


class Parser(argparse.ArgumentParser):
    """argparse's parser (and that of each subcommand), whose refusal of an option or argument
    is a `CliError`: one ``llmobs: error:`` line naming the subcommand and its ``--help``, as
    every other bad input is, not argparse's usage line and ``llmobs export: error:`` line."""

    _intermixing = False

    def parse_known_args(
        self, args: Iterable[str] | None = None, namespace: Any = None
    ) -> tuple[Any, list[str]]:
        """As argparse's, but an argument no parser knows is refused by the subcommand's own
        parser, which argparse leaves to the top one: the line names the subcommand. A
        subcommand's options may come between its arguments: argparse alone takes ``baseline
        save b2 --force RUN`` as NAME, no RUN (it is optional), then an unknown ``RUN``."""
        if self._intermixing:  # (argparse's own passes of the intermixed parse below)
            return super().parse_known_args(args, namespace)
        args = list(sys.argv[1:] if args is None else args)
        if "--" in args or any(
            action.nargs == argparse.PARSER for action in self._get_positional_actions()
        ):  # (a parser of subcommands; `show -- -name`, read intermixed as no RUN before 3.13)
            parsed, extras = super().parse_known_args(args, namespace)
        else:
            self._intermixing = True
            try:
                parsed, extras = super().parse_known_intermixed_args(args, namespace)
            finally:
                self._intermixing = False
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed, extras

    def error(self, message: str) -> NoReturn:
        command = self.prog.removeprefix("llmobs").strip()
        where = f"{command}: " if command else ""
        helping = f"llmobs {command} --help" if command else "llmobs --help"
        raise CliError(f"{where}{printable(message)} (see '{helping}')")


def build_parser() -> argparse.ArgumentParser:
    # (the subcommands' parsers are of the same class: add_subparsers makes them so)
    parser = Parser(prog="llmobs", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    common = Parser(add_help=False)
    common.add_argument(
        "--store",
        metavar="DIR",
        type=DIRECTORY,
        help="store directory (default: as pytest finds it)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    runs = commands.add_parser("runs", parents=[common], help="list stored runs, newest first")
    runs.add_argument(
        "--limit", type=int, default=None, help=f"show at most N runs (default {RUNS_SHOWN})"
    )
    runs.add_argument("--all", action="store_true", help="show every run")
    runs.set_defaults(handler=cmd_runs)

    show = commands.add_parser("show", parents=[common], help="summary and items of one run")
    show.add_argument("run", metavar="RUN", help=RUN_HELP)
    show.set_defaults(handler=cmd_show)

    export = commands.add_parser("export", parents=[common], help="write a run as JSON")
    export.add_argument("run", metavar="RUN", help=RUN_HELP)
    export.add_argument("--format", choices=["json"], default="json", help="export format")
    export.add_argument(
        "-o", "--output", metavar="FILE", type=FILE, help="write to FILE instead of stdout"
    )
    export.set_defaults(handler=cmd_export)

    report = commands.add_parser(
        "report", parents=[common], help="write a self-contained HTML report of a run"
    )
    report.add_argument("run", metavar="RUN", help=RUN_OR_FILE_HELP)
    report.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        type=FILE,
        help="where to write (default llmobs-report-<run>.html)",
    )
    report.add_argument(
        "--max-traces",
        type=int,
        default=2000,
        metavar="N",
        help="items whose traces are included in full (0: none); the rest are summary rows "
        "(default 2000)",
    )
    report.set_defaults(handler=cmd_report)

    prune = commands.add_parser(
        "prune", parents=[common], help="delete old runs (never saved baselines)"
    )
    prune.add_argument("--keep-last", type=int, metavar="N", help="keep the newest N finished runs")
    prune.add_argument(
        "--older-than",
        metavar="AGE",
        type=nonempty("an age such as 30d, 12h or 2w"),
        help="delete finished runs older than AGE, e.g. 30d (with --keep-last: only those "
        "beyond the newest N)",
    )
    prune.set_defaults(handler=cmd_prune)

    calibrate = commands.add_parser(
        "calibrate",
        parents=[common],
        help="agreement of an automated score with human labels (accuracy, kappa, threshold)",
    )
    calibrate.add_argument("run", metavar="RUN", help=RUN_HELP)
    calibrate.add_argument(
        "--labels",
        required=True,
        metavar="CSV",
        type=FILE,
        help="CSV with 'label' and 'item_id' (or 'id' or 'node_id') columns",
    )
    calibrate.add_argument(
        "--score",
        required=True,
        metavar="NAME",
        type=nonempty("a score name"),
        help="the score to check",
    )
    calibrate.add_argument(
        "--dataset",
        metavar="NAME",
        type=nonempty("a dataset name"),
        help="only this dataset's items (an item id in several datasets needs it or a "
        "'dataset' column in the labels)",
    )
    calibrate.add_argument("--format", choices=["text", "json"], default="text")
    calibrate.set_defaults(handler=cmd_calibrate)

    merge = commands.add_parser(
        "merge",
        help="combine CI shard exports of one run (same --llm-run-id) into one run and gate it",
        description="Combine shard exports of one run into one run, recompute its aggregates "
        "and thresholds, print its summary; exit status 1 unless the merged run passed.",
    )
    merge.add_argument(
        "files", nargs="+", metavar="FILE", type=FILE, help="exports from 'llmobs export'"
    )
    merge.add_argument(
        "-o", "--output", metavar="FILE", type=FILE, help="write the merged run as JSON"
    )
    merge.add_argument(
        "--threshold",
        action="append",
        default=[],
        metavar="EXPR",
        help="another quality gate '[dataset:] aggregate op number' (repeatable)",
    )
    merge.add_argument(
        "--store", metavar="DIR", type=DIRECTORY, help="also store the merged run in DIR"
    )
    merge.set_defaults(handler=cmd_merge)
    from pytest_llmobs.compare.commands import add_commands

    add_commands(commands, common)  # baseline save|list, compare, rescore
    from pytest_llmobs.exporters.commands import add_commands as add_upload_commands

    add_upload_commands(commands, common)  # upload
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Entry point of the ``llmobs`` console script."""
    streams = [sys.stderr] if out is not None else [sys.stdout, sys.stderr]
    with contextlib.ExitStack() as undo:
        for stream in streams:
            undo.enter_context(_never_unencodable(stream))
        return _main(argv, out)


def _escape(error: UnicodeError) -> tuple[str | bytes, int]:
    """The encoding error handler of `_never_unencodable`: an undecodable byte read into a
    name (a surrogate) is written back as it was, anything else as `plain` gives it: a mark of
    ours as `PLAIN` ASCII, another character as a backslash escape (``\\u0416``)."""
    if not isinstance(error, UnicodeEncodeError):
        raise error
    try:
        return codecs.lookup_error("surrogateescape")(error)
    except UnicodeError:
        return plain(error.object[error.start : error.end]), error.end


codecs.register_error("llmobs.escape", _escape)


@contextlib.contextmanager
def _never_unencodable(stream: TextIO) -> Iterator[None]:
    """Write what ``stream``'s encoding lacks (a run name in another script, '✓' or '✅' under
    cp1252, ascii or latin-1) as plain ASCII or a backslash escape (`_escape`), not a
    UnicodeEncodeError: its traceback and exit status 1 would read as a failed gate. ``-o``
    files are UTF-8 and need none of it."""
    errors = getattr(stream, "errors", None)
    if not isinstance(stream, io.TextIOWrapper) or errors not in ("strict", "surrogateescape"):
        yield
        return
    try:
        stream.reconfigure(errors="llmobs.escape")
    except (ValueError, io.UnsupportedOperation):  # (a closed stream, say)
        yield
        return
    try:
        yield
    finally:
        with contextlib.suppress(ValueError, io.UnsupportedOperation, OSError):
            stream.reconfigure(errors=errors)


def _input_files(args: argparse.Namespace) -> list[str]:
    """The files the command reads, which its ``-o`` must not overwrite: merge's shards, and
    a RUN (compare's A and B, report's RUN) given as an export file."""
    files = [
        *getattr(args, "files", []),
        getattr(args, "baseline", ""),
        getattr(args, "current", ""),
    ]
    if args.command == "report":
        files.append(args.run)
    return [name for name in files if name]


def _main(argv: Sequence[str] | None, out: TextIO | None) -> int:
    try:
        args = build_parser().parse_args(argv)  # (--help and --version exit 0 here)
    except CliError as exc:
        print(f"llmobs: error: {exc}", file=sys.stderr)
        return BAD_INPUT
    stream = out or sys.stdout
    opened = args.opened = OpenedStores()
    try:
        if getattr(args, "output", None):
            # Every command's -o (also those registered by other modules) is checked before
            # the command does any work: a bad path is a wrong command (2), not a regression (1).
            check_output(args.output, _input_files(args))
        status = int(args.handler(args, stream))
        stream.flush()  # here, not at exit: a reader that went away is handled below
        return status
    except CliError as exc:
        print(f"llmobs: error: {exc}", file=sys.stderr)
        return BAD_INPUT
    except StoreError as exc:
        print(f"llmobs: error: {exc}", file=sys.stderr)
        return BAD_INPUT
    except sqlite3.DatabaseError as exc:
        # a damaged page shows only when it is read: the same error as a damaged header
        where = opened.last_path or "the store"
        print(f"llmobs: error: {Store.unusable_error(where, exc)}", file=sys.stderr)
        return BAD_INPUT
    except BrokenPipeError:
        # The reader stopped early (`llmobs runs | head`): stop quietly, as shell tools do.
        # What is still buffered goes to /dev/null, so the flush at exit raises nothing.
        if stream is sys.stdout:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return PIPE_CLOSED
    except OSError as exc:  # (stdout on a full disk, say): one line, not a traceback
        print(f"llmobs: error: {exc}", file=sys.stderr)
        if stream is sys.stdout:  # what could not be written is dropped, not retried at exit
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return BAD_INPUT
    finally:
        opened.close_all()


if __name__ == "__main__":  # pragma: no cover  (`python -m pytest_llmobs.cli`)
    sys.exit(main())
