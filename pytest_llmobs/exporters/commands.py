"""``llmobs upload [RUN] --to langfuse [--pending] [--legacy]``: ship stored runs later.

Exit status 0 when everything reached the target, 1 when something is still pending (listed per
kind with the first error), so CI can retry with ``--pending``.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any, TextIO

from pytest_llmobs.exporters import (
    EXPORTERS,
    ExporterOptions,
    ExportError,
    create_exporter,
    parse_targets,
)


def add_commands(commands: Any, common: argparse.ArgumentParser) -> None:
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
        help="run id, run name, or 'latest' (default: latest; with --pending: every run "
        "with something pending)",
    )
    upload.add_argument(
        "--to",
        default="langfuse",
        metavar="TARGETS",
        help=f"comma-separated targets: {', '.join(EXPORTERS)} (default langfuse)",
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


def cmd_upload(args: argparse.Namespace, out: TextIO) -> int:
    from pytest_llmobs.cli import CliError, open_store
    from pytest_llmobs.store import StoreError

    try:
        targets = parse_targets(args.to)
    except ExportError as exc:
        raise CliError(f"--to: {exc}") from None
    store = open_store(args.store)
    reports = []
    for target in targets:
        options = ExporterOptions(
            store=store, environ=os.environ, pending_only=args.pending, legacy=args.legacy
        )
        try:
            exporter = create_exporter(target, options)
            if args.run is None and args.pending:
                run_ids = pending_runs(exporter, store)
                if not run_ids:
                    print(f"{target}: nothing pending", file=out)
            else:
                run_ids = [store.resolve_run(args.run or "latest")]
        except (ExportError, StoreError) as exc:
            raise CliError(str(exc)) from None
        for run_id in run_ids:
            reports.append(exporter.export(store.load_run(run_id)))
    if args.json:
        print(json.dumps([r.to_dict() for r in reports], indent=2), file=out)
    else:
        for report in reports:
            for line in report.lines():
                print(line, file=out)
    return 0 if all(r.ok for r in reports) else 1


def pending_runs(exporter: Any, store: Any) -> list[str]:
    """Runs the exporter still has something to send for (exporters without upload state:
    none)."""
    finder = getattr(exporter, "pending_runs", None)
    return list(finder(store)) if finder is not None else []
