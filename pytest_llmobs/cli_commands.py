"""The store's own ``llmobs`` subcommands, each ``cmd_*(args, out) -> exit status``: runs,
prune, show, export, report, merge and calibrate (baseline, compare and rescore are in
``compare.commands``; upload, in ``exporters.commands``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

from pytest_llmobs.cli_common import CliError, check_count, open_store
from pytest_llmobs.cli_output import (
    check_output,
    print_table,
    table_cell,
    writable_output,
    write_output,
)
from pytest_llmobs.exports import dump_run, result_from_run, with_snapshots
from pytest_llmobs.reporting.printable import printable
from pytest_llmobs.reporting.terminal import missing_lines, summary_lines, unfinished_lines
from pytest_llmobs.store import StoreError


def _when(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    return dt.datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S")


RUNS_SHOWN = 50
"""Runs `llmobs runs` lists without ``--limit`` or ``--all``: the newest."""


def cmd_runs(args: argparse.Namespace, out: TextIO) -> int:
    if args.limit is not None and args.all:
        raise CliError("--limit and --all: give one of them")
    wanted = RUNS_SHOWN if args.limit is None else args.limit
    limit = None if args.all else check_count(wanted, "--limit", minimum=1)
    store = open_store(args, read_only=True)
    # (one more than shown tells whether there are more; a limit past SQLite's integers is all)
    fetch = None if limit is None or limit >= 2**62 else limit + 1
    runs = store.list_runs(limit=fetch)
    more = limit is not None and len(runs) > limit
    runs = runs[:limit]
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
    if more:
        print(f"(the newest {limit} runs; older ones: --limit N or --all)", file=out)
    print(f"store: {store.path} ({_size(store.size_bytes())})", file=out)
    return 0


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
    seconds = int(match.group(1)) * {"h": 3600, "d": 86400, "w": 604800}[match.group(2)]
    return float(min(seconds, 2**53))  # (older than 285 million years: no run; still a float)


def cmd_prune(args: argparse.Namespace, out: TextIO) -> int:
    if args.keep_last is None and args.older_than is None:
        raise CliError("prune needs --keep-last N and/or --older-than AGE")
    if args.keep_last is not None:
        check_count(args.keep_last, "--keep-last")
    store = open_store(args)
    before = store.size_bytes()
    older = time.time() - parse_age(args.older_than) if args.older_than else None
    pruned = store.prune(keep_last=args.keep_last, older_than=older)
    deleted = pruned.runs
    what = f"deleted {len(deleted)} run(s)"
    if pruned.snapshots:
        what += f" and {len(pruned.snapshots)} dataset snapshot(s) no kept run used"
    what += "; saved baselines kept"
    if pruned.unused_kept:
        what += f"; {pruned.unused_kept} unused dataset snapshot(s) kept: a run is still going"
    print(f"{what}; store {_size(before)} -> {_size(store.size_bytes())}", file=out)
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


def stored_run_id(store: Any, ref: str, command: str) -> str:
    """The id of the stored run ``ref`` names; a `CliError` when none does, which says so of
    an export file: ``command`` reads runs from the store only."""
    try:
        return str(store.resolve_run(ref))
    except StoreError as exc:
        if ref.strip() and Path(ref).is_file():
            raise CliError(
                f"{ref}: is a file; 'llmobs {command}' reads runs from the store (a run id, a "
                "run name, a saved baseline or 'latest'); compare, rescore and report read "
                "export files"
            ) from None
        raise CliError(str(exc)) from None


def cmd_show(args: argparse.Namespace, out: TextIO) -> int:
    store = open_store(args, read_only=True)
    run = store.load_run(stored_run_id(store, args.run, "show"))
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
    for line in stored_comparison_lines(run.get("comparison")):
        print(line, file=out)
    for line in missing_lines(run.get("missing") or []):
        print(line, file=out)
    items = run.get("items") or []
    if run.get("ended_at") is None:  # killed, crashed or still going: it stored no summary
        for line in unfinished_lines(run, len(items)):
            print(line, file=out)
    print(f"items ({len(items)}):", file=out)
    for item in items:
        print(_item_line(item), file=out)
    return 0


def stored_comparison_lines(comparison: object) -> list[str]:
    """The baseline comparison a session stored with its run (`compare.gate`), as the session
    concluded it: which baseline, the gate's verdict (`compare.render.gate_line`'s words),
    and each metric that failed the gate."""
    if not isinstance(comparison, Mapping) or not comparison:
        return []
    from pytest_llmobs.compare.model import RunInfo, fmt, fmt_signed, group_label

    baseline = comparison.get("baseline")
    label = "?"
    if isinstance(baseline, Mapping):
        text = {key: str(baseline.get(key) or "") for key in ("id", "name", "source", "ref")}
        label = RunInfo(text["id"], text["name"], None, "", text["source"], text["ref"]).label
    rows = [m for m in comparison.get("metrics") or [] if isinstance(m, Mapping)]
    failing = [m for m in rows if m.get("fails_gate")]
    max_drop = comparison.get("max_drop")
    drop = f"{max_drop:g}" if isinstance(max_drop, int | float) else "?"
    within = sum(m.get("verdict") == "regression" and not m.get("fails_gate") for m in rows)
    better = sum(m.get("verdict") == "improvement" for m in rows)
    if comparison.get("incomplete"):
        verdict = "session fails: a run it compares is incomplete"
    elif failing:
        enforced = comparison.get("enforced") is not False
        tail = "session fails" if enforced else "not failing the session (--llm-fail-on)"
        verdict = f"{len(failing)} significant regression(s) beyond --llm-max-drop {drop}: {tail}"
    elif comparison.get("verdict") == "nothing tested":
        verdict = "no metric could be tested: the gate checked nothing"
    elif within or better:
        parts = [f"{better} improvement(s)"] if better else []
        parts += [f"{within} regression(s) within --llm-max-drop {drop}"] if within else []
        verdict = ", ".join(parts) + ": gate passes"
    else:
        verdict = (
            f"no significant change in {comparison.get('tested')} tested metric(s): gate passes"
        )
    lines = [f"compared with baseline {label}: {verdict}"]
    incomplete = comparison.get("incomplete")
    lines += [f"  {note}" for note in incomplete] if isinstance(incomplete, list) else []
    for m in failing:
        values = [m.get(k) for k in ("baseline", "current", "delta")]
        numbers = [float(n) for n in values if isinstance(n, int | float)]
        if len(numbers) == 3:
            before, after, delta = numbers
            change = f"{fmt(before)} -> {fmt(after)} (delta {fmt_signed(delta)})"
            lines.append(
                f"  REGRESSION {group_label(str(m.get('group')))}: {m.get('name')} {change}"
            )
    return [printable(line) for line in lines]


def cmd_export(args: argparse.Namespace, out: TextIO) -> int:
    store = open_store(args, read_only=True)
    run_id = stored_run_id(store, args.run, "export")
    try:
        run = with_snapshots(store.load_run(run_id), store)
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
    from pytest_llmobs.compare.commands import resolve_ref, store_for_refs

    run: dict[str, Any] = resolve_ref(args.run, store_for_refs(args, [args.run]), "run").run
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
    from pytest_llmobs.merge import merge_files, summary_header
    from pytest_llmobs.shard_checks import MergeError

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

    store = open_store(args, read_only=True)
    run_id = stored_run_id(store, args.run, "calibrate")
    try:
        run = store.load_run(run_id)
        report = calibrate(run["items"], Path(args.labels), args.score, args.dataset)
    except (StoreError, CalibrationError) as exc:
        raise CliError(str(exc)) from None
    if args.format == "json":
        print(json.dumps(report.to_dict(), indent=2), file=out)
    else:
        for line in report.lines():
            print(line, file=out)
    return 0
