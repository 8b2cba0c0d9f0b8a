"""The ``llmobs`` command: read, compare, gate, merge and upload the runs in the store.

RUN is a run id (or a unique prefix of one), a run name (the newest run of that name), or
``latest``. The store is found as the plugin finds it (the rootdir's ``llm_store`` or
``.llmobs``), or given with ``--store DIR``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import re
import sqlite3
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO

from pytest_llmobs import __version__
from pytest_llmobs.exports import dump_run, result_from_run, with_snapshots
from pytest_llmobs.locate import find_store_dir
from pytest_llmobs.reporting.printable import printable
from pytest_llmobs.reporting.terminal import missing_lines, summary_lines
from pytest_llmobs.store import STORE_FILENAME, Store, StoreError
from pytest_llmobs.store_schema import SCHEMA_VERSION
from pytest_llmobs.store_unfinished import recorded_elsewhere

BAD_INPUT = 2
"""Exit status of a `CliError` (as argparse's usage errors): 1 stays what a gate, a comparison or
an upload says of the run, so CI can tell a failed gate from a wrong command."""

PIPE_CLOSED = 141
"""Exit status when stdout's reader went away: 128 + SIGPIPE, what a shell tool killed by it
returns."""

DESCRIPTION = (
    "Read, compare, gate, merge and upload the runs pytest-llmobs stored. RUN is a run id (or a "
    "unique prefix), a run name (its newest run) or 'latest'; the store is found as the plugin "
    "finds it (the rootdir's llm_store or .llmobs), or given with --store DIR."
)


class CliError(Exception):
    """A user-facing error: printed as one line, exit status `BAD_INPUT` (2)."""


class Parser(argparse.ArgumentParser):
    """argparse's parser (and that of each subcommand), whose refusal of an option or argument
    is a `CliError`: one ``llmobs: error:`` line naming the subcommand and its ``--help``, as
    every other bad input is, not argparse's usage line and ``llmobs export: error:`` line."""

    def parse_known_args(
        self, args: Iterable[str] | None = None, namespace: Any = None
    ) -> tuple[Any, list[str]]:
        """As argparse's, but an argument no parser knows is refused by the subcommand's own
        parser, which argparse leaves to the top one: the line names the subcommand."""
        parsed, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed, extras

    def error(self, message: str) -> NoReturn:
        command = self.prog.removeprefix("llmobs").strip()
        where = f"{command}: " if command else ""
        helping = f"llmobs {command} --help" if command else "llmobs --help"
        raise CliError(f"{where}{printable(message)} (see '{helping}')")


def _when(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    return dt.datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S")


_OPENED: list[Path] = []
"""The store files a command opened, to name in an SQLite error met while reading them."""
_STORES: list[Store] = []
"""The stores a command opened, closed when it ends (Python 3.13 warns of an unclosed one)."""


def open_store(option: str | None, *, read_only: bool = False) -> Store:
    """The store of ``--store DIR`` (or found as pytest finds it); ``read_only`` for commands
    that only read: a file that is not a store is then refused, not given the schema."""
    directory = Path(option) if option else find_store_dir(Path.cwd())
    if option and directory.is_file():
        hint = (
            f" (give its directory, {str(directory.parent)!r})"
            if directory.name == STORE_FILENAME
            else ""
        )
        raise CliError(
            f"--store {option}: is a file; expected the store directory holding {STORE_FILENAME}"
            + hint
        )
    path = directory / STORE_FILENAME
    if not path.is_file():
        raise CliError(
            f"no llmobs store at {path}; run pytest with the plugin first, or pass --store DIR"
        )
    _OPENED.append(path)
    try:
        store = Store(path, read_only=read_only)
    except StoreError as exc:
        raise CliError(str(exc)) from None
    _STORES.append(store)
    if store.upgraded_from is not None:  # said: versions that knew only the old one refuse it
        print(
            f"llmobs: upgraded the store at {path} from schema {store.upgraded_from} to "
            f"{SCHEMA_VERSION}; pytest-llmobs versions that read only schema "
            f"{store.upgraded_from} can no longer open it",
            file=sys.stderr,
        )
    return store


def check_count(value: int, option: str, *, minimum: int = 0) -> int:
    """``value`` of a count option when it is at least ``minimum``; otherwise a `CliError`."""
    if value < minimum:
        why = "negative" if value < 0 else "too small"
        raise CliError(f"{option}: {value} is {why}; expected N >= {minimum}")
    return value


def cmd_runs(args: argparse.Namespace, out: TextIO) -> int:
    if args.limit is not None:
        check_count(args.limit, "--limit", minimum=1)
    store = open_store(args.store, read_only=True)
    runs = store.list_runs(limit=args.limit)
    if not runs:
        print(f"no runs in {store.path}", file=out)
        return 0
    rows = [("RUN ID", "NAME", "MODEL", "STATUS", "ITEMS", "STARTED")]
    rows += [
        (
            table_cell(r["id"]),
            table_cell(r["name"]),
            table_cell(r["model"] or "-"),
            r["status"],
            str(r["items"]),
            _when(r["started_at"]),
        )
        for r in runs
    ]
    print_table(rows, out)
    print(f"store: {store.path} ({_size(store.size_bytes())})", file=out)
    return 0


def print_table(rows: Sequence[Sequence[str]], out: TextIO) -> None:
    """Rows as columns padded to their widest cell."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        print("  ".join(cells).rstrip(), file=out)


CELL_WIDTH = 48
"""The widest a name is shown in a table; longer ones end in '…' (`llmobs show` has it all)."""


def table_cell(text: str) -> str:
    """``text`` for one table cell: a newline, tab or other control character is shown
    escaped (``\\n``), as the terminal summary shows the run name, so it cannot break the row;
    past `CELL_WIDTH` characters it is cut, ending in '…'."""
    shown = printable(text)
    return shown if len(shown) <= CELL_WIDTH else shown[: CELL_WIDTH - 1] + "…"


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{count} B"


_AGE = re.compile(r"^(\d+)\s*([dhw])$")


def parse_age(text: str) -> float:
    """``30d``, ``12h``, ``2w`` as seconds; anything else raises `CliError`."""
    match = _AGE.match(text.strip())
    if match is None:
        raise CliError(f"--older-than: {text!r} is not an age; expected e.g. 30d, 12h or 2w")
    return int(match.group(1)) * {"h": 3600, "d": 86400, "w": 604800}[match.group(2)]


def cmd_prune(args: argparse.Namespace, out: TextIO) -> int:
    if args.keep_last is None and args.older_than is None:
        raise CliError("prune needs --keep-last N and/or --older-than AGE")
    if args.keep_last is not None:
        check_count(args.keep_last, "--keep-last")
    store = open_store(args.store)
    before = store.size_bytes()
    older = time.time() - parse_age(args.older_than) if args.older_than else None
    deleted = store.prune(keep_last=args.keep_last, older_than=older)
    print(
        f"deleted {len(deleted)} run(s); saved baselines kept; store {_size(before)} -> "
        f"{_size(store.size_bytes())}",
        file=out,
    )
    for run_id in deleted[:PRUNED_SHOWN]:
        print(f"  {run_id}", file=out)
    if len(deleted) > PRUNED_SHOWN:
        print(f"  ... and {len(deleted) - PRUNED_SHOWN} more", file=out)
    return 0


PRUNED_SHOWN = 20
"""The most deleted run ids `llmobs prune` lists (a long history could delete thousands)."""


REASON_WIDTH = 120
"""The most of a failed item's error `llmobs show` prints on its line (`llmobs export` and
`llmobs report` have it all)."""


def short_reason(error: str, width: int = REASON_WIDTH) -> str:
    """An item's error as pytest's short summary shows it: its first line (an assertion's
    explanation follows on the next ones), cut at ``width`` characters, ending in '…'."""
    first = printable(error.strip().splitlines()[0].strip()) if error.strip() else ""
    return first if len(first) <= width else first[: width - 1] + "…"


def _item_line(item: dict[str, Any]) -> str:
    scores = ", ".join(
        f"{s['name']}={s['value']}" for s in (item.get("trace") or {}).get("scores", [])
    )
    line = printable(
        f"  {item['outcome']:<8} {item['node_id']}" + (f"  [{scores}]" if scores else "")
    )
    error, skipped = item.get("error"), item.get("skip_reason")
    if item["outcome"] in ("failed", "error") and isinstance(error, str) and error.strip():
        line += f" - {short_reason(error)}"  # as pytest's "FAILED node - reason"
    elif item["outcome"] == "skipped" and isinstance(skipped, str) and skipped.strip():
        line += f" - {short_reason(skipped)}"  # "xfail: <reason>" for an xfailed test
    return line


def cmd_show(args: argparse.Namespace, out: TextIO) -> int:
    store = open_store(args.store, read_only=True)
    try:
        run = store.load_run(store.resolve_run(args.run))
    except StoreError as exc:
        raise CliError(str(exc)) from None
    environment = run.get("environment") or {}
    print(f"started {_when(run.get('started_at'))}, ended {_when(run.get('ended_at'))}", file=out)
    if environment.get("git_commit"):
        dirty = " (dirty)" if environment.get("git_dirty") else ""
        print(f"git {environment['git_commit'][:12]}{dirty}", file=out)
    for prompt in run.get("prompts") or []:
        print(f"prompt {prompt['name']} version {prompt['version']}", file=out)
    if "aggregates" in run:
        for line in summary_lines(result_from_run(run, store.path), encoding=out.encoding):
            print(line, file=out)
    else:
        print(f"run {run['id']}  name {run['name']!r}  -> {run['status']}", file=out)
    for line in missing_lines(run.get("missing") or []):
        print(line, file=out)
    items = run.get("items") or []
    if run.get("ended_at") is None:  # killed, crashed or still going: it stored no summary
        for line in _unfinished_lines(run, len(items)):
            print(line, file=out)
    print(f"items ({len(items)}):", file=out)
    for item in items:
        print(_item_line(item), file=out)
    return 0


def _unfinished_lines(run: dict[str, Any], stored: int) -> list[str]:
    """What `llmobs show` says of a run that stored no summary (killed, crashed, still going)."""
    lines = []
    host = recorded_elsewhere(run.get("process"))
    if run["status"] == "running" and host is not None:
        lines.append(
            f"run recorded on host {host!r}: this machine cannot tell whether that session still "
            "goes or died, so it reads as running until it stores its summary"
        )
    if run["status"] == "running":
        pending = run.get("pending")
        rest = (
            f"{len(pending)} collected item(s) not run yet"
            if pending is not None
            else "the items it has not run yet are not known"
        )
        lines.append(f"run still running: its {stored} stored item(s) so far are listed, {rest}")
    elif "missing" in run:  # it stored what it collected (see Store.expect_items)
        never_run = len(run["missing"])
        rest = f"the {never_run} it never ran above" if never_run else "it ran every one"
        lines.append(
            f"run {run['status']} before it finished: its {stored} stored item(s) are listed, "
            f"{rest}"
        )
    else:
        lines.append(
            f"run {run['status']} before it finished: the items it had not run yet are not "
            f"known (its {stored} stored item(s) are listed)"
        )
    return lines


def check_output(value: str) -> Path:
    """``-o``'s path when a file can be written there: a directory, or a place under a file,
    is a `CliError`. Nothing is created yet (the command may still fail)."""
    path = Path(value)
    if path.is_dir():
        raise CliError(f"-o {value}: is a directory; give a file name")
    if os.path.basename(value) in ("", ".", ".."):  # Path("out/") is "out": it would be a file
        raise CliError(f"-o {value}: names a directory; give a file name")
    if path.exists():
        if not os.access(path, os.W_OK):
            raise CliError(f"-o {value}: the file is not writable")
        return path
    for parent in path.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise CliError(f"-o {value}: {parent} is a file, not a directory")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise CliError(f"-o {value}: cannot create a file in {parent} (not writable)")
            break
    return path


def writable_output(value: str) -> Path:
    """``-o``'s path, its directory created; a directory or an unwritable place is a
    `CliError` (raised before the command does anything that cannot be undone)."""
    path = check_output(value)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CliError(f"-o {value}: cannot create its directory ({exc})") from None
    return path


def write_output(value: str, text: str) -> None:
    """Write ``-o``'s file; a failure (a full disk) is a `CliError`, not a traceback."""
    path = writable_output(value)
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror or exc}") from None


def cmd_export(args: argparse.Namespace, out: TextIO) -> int:
    store = open_store(args.store, read_only=True)
    try:
        run = with_snapshots(store.load_run(store.resolve_run(args.run)), store)
    except StoreError as exc:
        raise CliError(str(exc)) from None
    text = dump_run(run)
    if args.output:
        write_output(args.output, text + "\n")
        print(f"wrote run {run['id']} ({len(run['items'])} items) to {args.output}", file=out)
    else:
        print(text, file=out)
    return 0


def _load_for_report(args: argparse.Namespace) -> dict[str, Any]:
    """A stored run, or a run exported to a JSON file (``llmobs export``, ``--llm-json``),
    read as ``compare`` and ``rescore`` read a RUN."""
    from pytest_llmobs.compare.commands import _resolve, _store

    run: dict[str, Any] = _resolve(args.run, _store(args.store, [args.run]), "run").run
    return run


def cmd_report(args: argparse.Namespace, out: TextIO) -> int:
    from pytest_llmobs.reporting.html import write_html

    check_count(args.max_traces, "--max-traces")
    run = _load_for_report(args)
    path = writable_output(args.output or f"llmobs-report-{run['id']}.html")
    try:
        write_html(run, path, max_traces=args.max_traces)
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc}") from None
    items = len(run.get("items") or [])
    print(f"wrote the HTML report of run {run['id']} ({items} items) to {path}", file=out)
    return 0


def cmd_merge(args: argparse.Namespace, out: TextIO) -> int:
    from pytest_llmobs.compare.commands import cli_wording
    from pytest_llmobs.merge import MergeError, merge_files, summary_header

    store_dir = Path(args.store) if args.store else None
    if args.output:
        check_output(args.output)  # before anything is stored
    try:
        merged = merge_files(
            [Path(f) for f in args.files], thresholds=args.threshold, store_dir=store_dir
        )
    except MergeError as exc:
        raise CliError(str(exc)) from None
    print(summary_header(merged), file=out)
    store_path = merged.result.store_path
    for line in summary_lines(result_from_run(merged.run, store_path), encoding=out.encoding):
        if line == "not stored (--llm-no-store)":
            line = "not stored (--store DIR keeps it)"
        print(cli_wording(line), file=out)
    for line in [*missing_lines(merged.result.missing), *merged.notes]:
        print(line, file=out)
    if args.output:
        write_output(args.output, dump_run(merged.run) + "\n")
        print(f"wrote merged run {merged.result.run_id} to {args.output}", file=out)
    return 0 if merged.result.status == "passed" else 1


def cmd_calibrate(args: argparse.Namespace, out: TextIO) -> int:
    from pytest_llmobs.calibration import CalibrationError, calibrate

    store = open_store(args.store, read_only=True)
    try:
        run = store.load_run(store.resolve_run(args.run))
        report = calibrate(run["items"], Path(args.labels), args.score)
    except (StoreError, CalibrationError) as exc:
        raise CliError(str(exc)) from None
    if args.format == "json":
        print(json.dumps(report.to_dict(), indent=2), file=out)
    else:
        for line in report.lines():
            print(line, file=out)
    return 0


def build_parser() -> argparse.ArgumentParser:
    # (the subcommands' parsers are of the same class: add_subparsers makes them so)
    parser = Parser(prog="llmobs", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    common = Parser(add_help=False)
    common.add_argument(
        "--store", metavar="DIR", help="store directory (default: as pytest finds it)"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    runs = commands.add_parser("runs", parents=[common], help="list stored runs, newest first")
    runs.add_argument("--limit", type=int, default=None, help="show at most N runs")
    runs.set_defaults(handler=cmd_runs)

    show = commands.add_parser("show", parents=[common], help="summary and items of one run")
    show.add_argument("run", metavar="RUN", help="run id or name, saved baseline, or 'latest'")
    show.set_defaults(handler=cmd_show)

    export = commands.add_parser("export", parents=[common], help="write a run as JSON")
    export.add_argument("run", metavar="RUN", help="run id or name, saved baseline, or 'latest'")
    export.add_argument("--format", choices=["json"], default="json", help="export format")
    export.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    export.set_defaults(handler=cmd_export)

    report = commands.add_parser(
        "report", parents=[common], help="write a self-contained HTML report of a run"
    )
    report.add_argument(
        "run",
        metavar="RUN",
        help="run id or name, saved baseline, 'latest', or a run exported as JSON",
    )
    report.add_argument(
        "-o", "--output", metavar="FILE", help="where to write (default llmobs-report-<run>.html)"
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
    prune.add_argument("--keep-last", type=int, metavar="N", help="keep the newest N runs")
    prune.add_argument("--older-than", metavar="AGE", help="delete runs older than e.g. 30d")
    prune.set_defaults(handler=cmd_prune)

    calibrate = commands.add_parser(
        "calibrate",
        parents=[common],
        help="agreement of an automated score with human labels (accuracy, kappa, threshold)",
    )
    calibrate.add_argument(
        "run", metavar="RUN", help="run id, run name, saved baseline, or 'latest'"
    )
    calibrate.add_argument(
        "--labels",
        required=True,
        metavar="CSV",
        help="CSV with 'label' and 'item_id' (or 'id' or 'node_id') columns",
    )
    calibrate.add_argument("--score", required=True, metavar="NAME", help="the score to check")
    calibrate.add_argument("--format", choices=["text", "json"], default="text")
    calibrate.set_defaults(handler=cmd_calibrate)

    merge = commands.add_parser(
        "merge",
        help="combine CI shard exports of one run (same --llm-run-id) into one run and gate it",
        description="Combine shard exports of one run into one run, recompute its aggregates "
        "and thresholds, print its summary; exit status 1 unless the merged run passed.",
    )
    merge.add_argument("files", nargs="+", metavar="FILE", help="exports from 'llmobs export'")
    merge.add_argument("-o", "--output", metavar="FILE", help="write the merged run as JSON")
    merge.add_argument(
        "--threshold",
        action="append",
        default=[],
        metavar="EXPR",
        help="another quality gate '[dataset:] aggregate op number' (repeatable)",
    )
    merge.add_argument("--store", metavar="DIR", help="also store the merged run in DIR")
    merge.set_defaults(handler=cmd_merge)
    from pytest_llmobs.compare.commands import add_commands

    add_commands(commands, common)  # baseline save|list, compare, rescore
    from pytest_llmobs.exporters.commands import add_commands as add_upload_commands

    add_upload_commands(commands, common)  # upload
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Entry point of the ``llmobs`` console script."""
    try:
        args = build_parser().parse_args(argv)  # (--help and --version exit 0 here)
    except CliError as exc:
        print(f"llmobs: error: {exc}", file=sys.stderr)
        return BAD_INPUT
    stream = out or sys.stdout
    _OPENED.clear()
    try:
        if getattr(args, "output", None):
            # Every command's -o (also those registered by other modules) is checked before
            # the command does any work: a bad path is a wrong command (2), not a regression (1).
            check_output(args.output)
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
        where = _OPENED[-1] if _OPENED else "the store"
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
        while _STORES:
            with contextlib.suppress(sqlite3.Error):  # the command's own outcome stands
                _STORES.pop().close()


if __name__ == "__main__":  # pragma: no cover
    # `python -m pytest_llmobs.cli`: run the imported module's main, so that the commands of
    # other modules raise the `CliError` it catches (not one of this `__main__` copy)
    from pytest_llmobs.cli import main as _main

    sys.exit(_main())
