"""``llmobs upload [RUN] --to langfuse [--pending] [--legacy]``: ship stored runs later.

``--to`` takes comma-separated targets and may be repeated (``--to langfuse --to otlp``): every
target named is uploaded to, in order, each with its own report.

Exit status 0 when everything reached the target, 1 when something is still pending (listed per
kind with the first error, or pending for another server or project of the target), so CI can
retry with ``--pending``; 2 when a configuration value is malformed (`ConfigError`): every
target's configuration is checked, and the runs to send found, before anything is sent; 130
(`INTERRUPTED`) after Ctrl-C, with one line saying how to resume (what was delivered is recorded
as it goes).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any, TextIO

from pytest_llmobs.exporters import (
    DEFAULT_TARGET,
    EXPORTERS,
    ConfigError,
    ExporterOptions,
    ExportError,
    create_exporter,
    parse_targets,
)
from pytest_llmobs.exporters.http_options import HttpOptions

INTERRUPTED = 130
"""Exit status after Ctrl-C: 128 + SIGINT, what a shell tool stopped by it returns."""


def add_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    from pytest_llmobs.cli import RUN_HELP  # (cli imports this module when it runs)

    upload = commands.add_parser(
        "upload",
        parents=[common],
        help="upload a run to Langfuse, Phoenix or an OTLP backend; resumable",
        description="Upload a stored run; with --pending, send only what earlier uploads did "
        "not deliver. Exit status 1 while anything is still pending.",
    )
    upload.add_argument(
        "run",
        nargs="?",
        metavar="RUN",
        help=f"{RUN_HELP} (default: latest; with --pending: every run with something pending)",
    )
    upload.add_argument(
        "--to",
        action="extend",  # repeated, it adds targets: the last one alone would drop the others
        metavar="TARGETS",
        type=upload_targets,
        help=f"comma-separated targets: {', '.join(EXPORTERS)}; repeatable "
        f"(default {DEFAULT_TARGET})",
    )
    upload.add_argument(
        "--pending", action="store_true", help="send only objects not yet delivered"
    )
    upload.add_argument(
        "--legacy",
        action="store_true",
        help="Langfuse: ingestion events and dataset-run-items (older self-hosted servers)",
    )
    upload.add_argument("--json", action="store_true", help="print the reports as JSON")
    upload.set_defaults(handler=cmd_upload)


def upload_targets(value: str) -> list[str]:
    """``--to``'s targets (an argparse ``type=``): an unknown one, or none (an empty value, an
    unset variable, a lone comma), is a usage error, not an upload that sends nothing."""
    try:
        targets = parse_targets(value)
    except ExportError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if not targets:
        unset = "" if value.strip() else " (an unset variable?)"
        raise argparse.ArgumentTypeError(
            f"{value!r} names no target{unset}; expected one or more of "
            f"{', '.join(EXPORTERS)}, comma-separated"
        )
    return targets


def cmd_upload(args: argparse.Namespace, out: TextIO) -> int:
    from pytest_llmobs.cli_common import CliError, open_store
    from pytest_llmobs.store import StoreError

    targets = given_targets(args.to)
    if args.legacy and "langfuse" not in targets:  # (it would be ignored without a word)
        raise CliError("--legacy: applies to --to langfuse only (older self-hosted servers)")
    store = open_store(args)
    store_hint = store_option(store.path.parent, Path.cwd()) if store.path else ""
    options = ExporterOptions(
        store=store, environ=os.environ, pending_only=args.pending, legacy=args.legacy
    )
    try:  # everything checked first: a malformed value or an unknown run sends nothing anywhere
        exporters = [create_exporter(target, options) for target in targets]
        for exporter in exporters:
            check_configuration(exporter)
        HttpOptions.from_env(os.environ)
        plans = [
            _runs_to_send(args, target, exporter, store, out, store_hint)
            for target, exporter in zip(targets, exporters, strict=True)
        ]
    except (ExportError, StoreError) as exc:
        raise CliError(str(exc)) from None
    reports: list[Any] = []
    for index, (exporter, (run_ids, _)) in enumerate(zip(exporters, plans, strict=True)):
        for run_id in run_ids:
            try:
                reports.append(exporter.export(store.load_run(run_id)))
            except KeyboardInterrupt:  # one line saying how to resume, not a traceback
                _print_reports(args, reports, store_hint, out)
                line = interrupted_line(args, run_id, targets[index:], store_hint)
                print(line, file=sys.stderr)
                return INTERRUPTED
    _print_reports(args, reports, store_hint, out)
    elsewhere = [line for _, lines in plans for line in lines]
    for line in elsewhere:
        print(line, file=sys.stderr if args.json else out)
    return 0 if all(r.ok for r in reports) and not elsewhere else 1


def _print_reports(
    args: argparse.Namespace, reports: list[Any], store_hint: str, out: TextIO
) -> None:
    for report in reports:
        report.store_option = store_hint
    if args.json:
        print(json.dumps([r.to_dict() for r in reports], indent=2), file=out)
    else:
        for report in reports:
            for line in report.lines():
                print(line, file=out)


def interrupted_line(
    args: argparse.Namespace, run_id: str, targets: list[str], store_hint: str = ""
) -> str:
    """The line Ctrl-C leaves when it stopped the upload of ``run_id`` to ``targets[0]``
    (``targets[1:]`` not started): what was delivered is recorded as it went, so ``--pending``
    sends the rest; a target not started was sent nothing, unless ``--pending`` was given."""
    target, later = targets[0], targets[1:]

    def command(words: str, to: list[str]) -> str:
        parts = [words]
        if to != [DEFAULT_TARGET]:
            parts.append(f"--to {','.join(to)}")
        if args.legacy and "langfuse" in to:
            parts.append("--legacy")
        return " ".join([*parts, store_hint] if store_hint else parts)

    resume = command("llmobs upload --pending", targets if args.pending else [target])
    line = (
        f"llmobs: upload of run {run_id} to {target} interrupted: what it delivered is "
        f"recorded; `{resume}` sends the rest"
    )
    if later and not args.pending:
        line += f"; not started: `{command(f'llmobs upload {run_id}', later)}`"
    return line


def given_targets(value: list[str] | str | None) -> list[str]:
    """The targets of ``--to`` (each ``--to``'s list, joined), each once in the order given;
    `DEFAULT_TARGET` when none was given."""
    if value is None:
        return [DEFAULT_TARGET]
    return list(dict.fromkeys(value if isinstance(value, list) else upload_targets(value)))


def store_option(directory: Path, cwd: Path) -> str:
    """``--store DIR`` for an ``llmobs`` command run in ``cwd`` to use the store in
    ``directory``; empty when ``llmobs`` finds that store by itself there (`find_store_dir`).
    DIR is relative to ``cwd`` when inside it, and quoted for a shell."""
    from pytest_llmobs.locate import find_store_dir

    directory = directory.resolve()
    try:
        found = find_store_dir(cwd).resolve()
    except (OSError, ValueError, RuntimeError):  # (an unreadable directory): name the store
        found = None
    if found == directory:
        return ""
    try:
        shown = str(directory.relative_to(cwd.resolve()))
    except ValueError:
        shown = str(directory)
    return f"--store {shlex.quote(shown)}"


def _runs_to_send(
    args: argparse.Namespace,
    target: str,
    exporter: Any,
    store: Any,
    out: TextIO,
    store_hint: str = "",
) -> tuple[list[str], list[str]]:
    """(the run ids to upload to ``target``, lines about runs pending elsewhere)."""
    if args.run is not None or not args.pending:
        from pytest_llmobs.cli_commands import stored_run_id

        run_id = stored_run_id(store, args.run or "latest", "upload")
        if store.running_here(run_id):
            raise ExportError(
                f"run {run_id} is still running: upload it once its session has ended (a "
                "session with --llm-upload uploads its run when it ends)"
            )
        return [run_id], []
    run_ids = pending_runs(exporter, store)
    running = [r for r in run_ids if store.running_here(r)]
    stranded = runs_pending_elsewhere(exporter, store)
    if not run_ids and not stranded:
        print(f"{target}: nothing pending", file=out)
    lines = [_elsewhere_line(target, *entry, store_hint=store_hint) for entry in stranded]
    lines += [
        f"{target}: run {r} is still running: not sent until its session ends" for r in running
    ]
    return [r for r in run_ids if r not in running], lines


def check_configuration(exporter: Any) -> None:
    """Raise the exporter's `ConfigError` (a malformed value: exit 2) before anything is sent;
    a missing setting is left to the upload, which reports the run pending."""
    configuration = getattr(exporter, "configuration", None)
    if configuration is None:
        return
    try:
        configuration()
    except ConfigError:
        raise
    except ExportError:
        pass


def runs_pending_elsewhere(exporter: Any, store: Any) -> list[tuple[str, str]]:
    """(run, target) for runs partly delivered to another server or project of the exporter."""
    finder = getattr(exporter, "pending_elsewhere", None)
    return list(finder(store)) if finder is not None else []


def _elsewhere_line(name: str, run_id: str, target: str, *, store_hint: str = "") -> str:
    store = f" {store_hint}" if store_hint else ""
    return (
        f"{name}: run {run_id} is still pending for {target}, which holds part of it: not sent "
        f"to the configured target. Send all of it here with `llmobs upload {run_id} --to "
        f"{name}{store}`, or configure that target again and run `llmobs upload --pending --to "
        f"{name}{store}`"
    )


def pending_runs(exporter: Any, store: Any) -> list[str]:
    """Runs the exporter still has something to send for (exporters without upload state:
    none)."""
    finder = getattr(exporter, "pending_runs", None)
    return list(finder(store)) if finder is not None else []
