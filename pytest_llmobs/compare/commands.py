"""The ``llmobs`` commands of the regression gate: ``baseline save|list``, ``compare`` and
``rescore``. None of them calls a model: they read stored runs and export files."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
from pathlib import Path
from typing import Any, TextIO

from pytest_llmobs.compare.model import status_note
from pytest_llmobs.store import Store


def add_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    """Register the commands on the ``llmobs`` subparsers."""
    from pytest_llmobs.cli_common import FILE

    baseline = commands.add_parser("baseline", help="save or list named baselines")
    actions = baseline.add_subparsers(dest="action", required=True, metavar="ACTION")
    save = actions.add_parser("save", parents=[common], help="save a run as baseline NAME")
    save.add_argument("name", metavar="NAME")
    save.add_argument("run", metavar="RUN", nargs="?", default="latest", help="default: latest")
    save.add_argument(
        "--force",
        action="store_true",
        help="save a run that did not pass (failed, interrupted, still running)",
    )
    save.set_defaults(handler=cmd_baseline_save)
    listing = actions.add_parser("list", parents=[common], help="list saved baselines")
    listing.set_defaults(handler=cmd_baseline_list)

    from pytest_llmobs.cli import RUN_OR_FILE_HELP  # (cli imports this module when it runs)

    compare = commands.add_parser(
        "compare",
        parents=[common],
        help="compare run B with baseline A (paired statistics, what changed, flipped items)",
    )
    compare.add_argument("baseline", metavar="A", help="baseline: run, saved baseline or file")
    compare.add_argument("current", metavar="B", help="run to judge: run, saved baseline or file")
    compare.add_argument(
        "--max-drop", type=float, default=0.0, metavar="X", help="tolerated drop (default 0.0)"
    )
    compare.add_argument("--format", choices=["text", "json", "markdown"], default="text")
    compare.add_argument(
        "-o", "--output", metavar="FILE", type=FILE, help="write to FILE instead of stdout"
    )
    compare.set_defaults(handler=cmd_compare)

    rescore = commands.add_parser(
        "rescore", parents=[common], help="evaluate thresholds on a stored run (no model calls)"
    )
    rescore.add_argument("run", metavar="RUN", help=RUN_OR_FILE_HELP)
    rescore.add_argument(
        "--threshold",
        action="append",
        default=[],
        metavar="EXPR",
        help="'[dataset:] aggregate op number' (repeatable; default: the run's own thresholds)",
    )
    rescore.set_defaults(handler=cmd_rescore)


def store_for_refs(args: argparse.Namespace, refs: list[str]) -> Store | None:
    """The store; ``None`` when there is none and every reference is an existing file."""
    from pytest_llmobs.cli_common import CliError, open_store

    try:
        return open_store(args, read_only=True)
    except CliError:
        if all(Path(ref).is_file() for ref in refs):
            return None
        raise


def resolve_ref(ref: str, store: Store | None, what: str) -> Any:
    from pytest_llmobs.baselines import BaselineError, resolve_baseline
    from pytest_llmobs.cli_common import CliError

    try:
        return resolve_baseline(ref, store=store, what=what)
    except BaselineError as exc:
        raise CliError(str(exc)) from None


def cmd_baseline_save(args: argparse.Namespace, out: TextIO) -> int:
    from pytest_llmobs.baselines import BaselineError, save_baseline
    from pytest_llmobs.cli_common import CliError, open_store

    store = open_store(args)
    previous = store.get_baseline(args.name)
    try:
        run_id = save_baseline(store, args.name, args.run, force=args.force)
    except BaselineError as exc:
        raise CliError(str(exc)) from None
    run = store.load_run(run_id)
    replacing = f", replacing run {previous}" if previous not in (None, run_id) else ""
    print(f"saved baseline {args.name!r}: run {run_id} ({run.get('name')!r}){replacing}", file=out)
    if run["status"] != "passed":
        print(
            f"note: run {run_id} did not pass (status {run['status']}); saved (--force)", file=out
        )
    return 0


def cmd_baseline_list(args: argparse.Namespace, out: TextIO) -> int:
    from pytest_llmobs.cli_common import open_store
    from pytest_llmobs.cli_output import print_table, table_cell

    store = open_store(args, read_only=True)
    saved = store.list_baselines()
    if not saved:
        print(f"no saved baselines in {store.path}", file=out)
        return 0
    rows = [("NAME", "RUN ID", "RUN NAME", "SAVED")]
    rows += [
        (
            table_cell(b["name"]),
            table_cell(b["run_id"]),
            table_cell(b["run_name"] or "-"),
            dt.datetime.fromtimestamp(b["saved_at"]).strftime("%Y-%m-%d %H:%M:%S"),
        )
        for b in saved
    ]
    print_table(rows, out)
    return 0


def cli_wording(text: str) -> str:
    """The comparison text as the CLI states it: its option is --max-drop, and no session
    fails, the command does (exit status 1)."""
    return text.replace("--llm-max-drop", "--max-drop").replace(
        "session fails", "gate fails (exit status 1)"
    )


def cmd_compare(args: argparse.Namespace, out: TextIO) -> int:
    from pytest_llmobs.cli_common import CliError
    from pytest_llmobs.cli_output import write_output
    from pytest_llmobs.compare.core import compare_runs, run_info
    from pytest_llmobs.compare.render import comparison_lines, markdown

    if not (args.max_drop >= 0 and math.isfinite(args.max_drop)):
        raise CliError(f"--max-drop: {args.max_drop!r} is not a finite number >= 0")
    store = store_for_refs(args, [args.baseline, args.current])
    baseline = resolve_ref(args.baseline, store, "baseline")
    current = resolve_ref(args.current, store, "run")
    comparison = compare_runs(
        baseline.run,
        current.run,
        baseline_info=run_info(baseline.run, source=baseline.source, ref=baseline.ref),
        current_info=run_info(current.run, source=current.source, ref=current.ref),
        store=store,
        max_drop=args.max_drop,
    )
    notes = [status_note(baseline.run, "baseline"), status_note(current.run, "compared")]
    partial = [line for line, incomplete in notes if incomplete and line]
    comparison.incomplete = partial
    passed = comparison.gate_passed and not partial
    if args.format == "json":  # every format states the verdict the exit status gives
        text = json.dumps(comparison.to_dict(), indent=2, ensure_ascii=False)
    elif args.format == "markdown":
        text = cli_wording(markdown(comparison).rstrip("\n"))
    else:
        text = cli_wording("\n".join(comparison_lines(comparison, full=True)))
    if args.output:
        write_output(args.output, text + "\n")
        print(f"wrote the comparison ({comparison.verdict}) to {args.output}", file=out)
    else:
        print(text, file=out)
    return 0 if passed else 1


def cmd_rescore(args: argparse.Namespace, out: TextIO) -> int:
    from pytest_llmobs.cli_common import CliError
    from pytest_llmobs.compare.core import run_aggregates
    from pytest_llmobs.reporting.terminal import threshold_line
    from pytest_llmobs.run_result import partial_datasets_from_dict
    from pytest_llmobs.thresholds import ThresholdError, evaluate, parse_threshold

    store = store_for_refs(args, [args.run])
    run = resolve_ref(args.run, store, "run").run
    try:
        if args.threshold:
            thresholds = [parse_threshold(t, source="--threshold") for t in args.threshold]
        else:
            thresholds = [
                parse_threshold(
                    t["expression"], dataset=t.get("dataset"), source=t.get("source", "")
                )
                for t in run.get("thresholds") or []
            ]
    except ThresholdError as exc:
        raise CliError(str(exc)) from None
    if not thresholds:
        raise CliError(f"run {run['id']} has no thresholds; give some with --threshold EXPR")
    verdicts = evaluate(thresholds, run_aggregates(run))
    print(f"run {run['id']}  name {run.get('name')!r}  model {run.get('model')}", file=out)
    note, incomplete = status_note(run)
    if note is not None:
        print(note, file=out)
    for name, (ran, size) in partial_datasets_from_dict(run.get("partial_datasets")).items():
        print(
            f"dataset {name!r}: {ran} of its {size} items ran; its gates judge those only", file=out
        )
    marks = ("✓", "✗") if (out.encoding or "utf-8").lower().startswith("utf") else ("PASS", "FAIL")
    for verdict in verdicts:
        print(threshold_line(verdict, marks), file=out)
    failed = sum(not v.passed for v in verdicts)
    if failed:
        print(f"{failed} of {len(verdicts)} threshold(s) failed", file=out)
        return 1
    if incomplete:
        print(
            f"all {len(verdicts)} threshold(s) passed on the items stored, but the run is "
            "incomplete: not a pass (exit status 1)",
            file=out,
        )
        return 1
    print(f"all {len(verdicts)} threshold(s) passed", file=out)
    return 0
