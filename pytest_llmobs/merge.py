"""Combining CI shards: the exports (``llmobs export``) of one run, recorded in parts by several
machines sharing ``--llm-run-id``, become that one run again.

The merge goes through a `RunRecorder`, as a pytest session does: items are written in file
order, aggregates are recomputed from every item, and thresholds are evaluated once over the
whole run (the shards' own verdicts only saw their part). Each item's data is kept as stored.

Refused, with the files named: what `shard_checks` refuses before anything is stored (a file
that is not a valid export, threshold expressions included; one file given twice, by any path;
two files holding the same shard; shards of different runs or models; a dataset at different
versions; a prompt version with different content), and the same item (node id and repeat)
with different results in two shards (or recorded twice: a retried shard). An item in two files
with the same results (a merged run merged again with one of its shards) is kept once, and a
note says how many were.

Prompt versions are numbered per store: one content numbered differently by two shards (or by
the store given) gets one number (`shard_checks.prompt_numbers`), and the items' links are
rewritten to it, with a note. What the merge stores passes through the project's data
governance (`experiment_config.ProjectConfig`: redaction, sampling, size limits), as a pytest
session started in the current directory would store it.

A shard whose session failed for a reason its items do not show (a collection error, a crashed
xdist worker: collected items missing) fails the merged run, with a note naming the shard and
why; its missing items stay listed in the merged run. A shard that failed only on its own
thresholds does not: they are evaluated again over the whole run.
Aggregates that run evaluators added in the shards are not recomputed (they need the suite's
code); they are reported as dropped, and the shards' thresholds on them are not evaluated (nor
failed; their line gives the shards' own verdicts). A ``--threshold`` on one is refused.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pytest_llmobs.aggregate_names import ALL_ITEMS, score_aggregate_names
from pytest_llmobs.exports import SNAPSHOTS, import_snapshots, with_snapshots
from pytest_llmobs.reporting.terminal import format_number
from pytest_llmobs.run import RunRecorder
from pytest_llmobs.run_result import RunResult
from pytest_llmobs.score_kinds import KIND_SHOWN
from pytest_llmobs.shard_checks import (
    MergeError,
    Shard,
    check_compatible,
    distinct_files,
    load_shard,
    prompt_numbers,
    renumbered,
    same_but_ids_and_times,
)
from pytest_llmobs.store import Store, StoreError
from pytest_llmobs.thresholds import Threshold, ThresholdError, parse_threshold

MERGE_THRESHOLD_SOURCE = "llmobs merge --threshold"
FAILED_OUTCOMES = frozenset({"failed", "error"})


@dataclass(slots=True)
class MergeOutcome:
    """The merged run (stored shape), its verdict, and notes for the reader."""

    result: RunResult
    run: dict[str, Any]
    shards: list[Shard]
    notes: list[str] = field(default_factory=list)


def _items(shards: Sequence[Shard]) -> tuple[list[dict[str, Any]], int]:
    """Every item once, in file order, and how many items were in more than one file with the
    same results (kept once); the same item with different data is refused."""
    seen: dict[tuple[str, int, int], tuple[str, Shard]] = {}
    items = []
    again = 0
    for shard in shards:
        copies: Counter[tuple[str, int]] = Counter()  # a test collected twice: two items
        for item in shard.run["items"]:
            test = (str(item["node_id"]), int(item.get("repeat") or 0))
            key = (*test, copies[test])
            copies[test] += 1
            text = json.dumps(item, sort_keys=True)
            earlier = seen.get(key)
            if earlier is None:
                seen[key] = (text, shard)
                items.append(item)
            elif earlier[0] != text:
                repeat = f" (repeat {key[1]})" if key[1] else ""
                if same_but_ids_and_times(json.loads(earlier[0]), item):
                    raise MergeError(
                        f"cannot merge: item {key[0]!r}{repeat} is recorded twice, in "
                        f"{earlier[1].label} and in {shard.label} (the same results in "
                        "different traces: a retried shard? keep one export)"
                    )
                raise MergeError(
                    f"cannot merge: item {key[0]!r}{repeat} is in {earlier[1].label} and in "
                    f"{shard.label} with different results; shards must not run the same tests"
                )
            else:
                again += 1
    return items, again


def shard_failure(shard: Shard) -> str | None:
    """Why ``shard``'s session failed where its items and thresholds do not show it, or None.

    The merge evaluates items and thresholds again; a failure outside them (a collection
    error, a crashed worker) would otherwise vanish from the merged run. A shard that failed
    only on its thresholds, those its items could not satisfy and those a selection that ran
    nothing left without an aggregate, does not fail the merge."""
    run = shard.run
    missing = run.get("missing") or []
    if missing:
        count = len(missing)
        return f"{count} collected item{'s' if count != 1 else ''} missing"
    if run.get("status") != "failed":
        return None
    items = run["items"]
    if any(item.get("outcome") in FAILED_OUTCOMES for item in items):
        return None  # the merged run has those items
    errors = run.get("errors") or []  # (a collection error is one: pytest counted a failure)
    if errors:
        if not items:
            return "its session failed with no items (a collection error?)"
        return str(errors[0])
    comparison = run.get("comparison") or {}
    if comparison.get("verdict") == "regression" and comparison.get("enforced") is not False:
        return "it regressed against its baseline"
    if any(not entry.get("passed", True) for entry in run.get("thresholds") or []):
        return None  # evaluated again over the whole run
    if not items:
        return "its session failed with no items (a collection error?)"
    return "its session failed although its items passed (a collection error?)"


def _thresholds(shards: Sequence[Shard], extra: Sequence[str]) -> list[Threshold]:
    """The shards' stored thresholds (each once), then ``extra``; a bad one raises. A shard's
    on a run evaluator's aggregate is not judged (`Threshold.unjudged`); ``extra``'s is refused."""
    found: list[Threshold] = []
    verdicts: dict[tuple[str | None, str, str, float], list[tuple[str, Mapping[str, Any]]]] = {}
    evaluators = {
        str(name)
        for shard in shards
        for names in (shard.run.get("run_evaluator_aggregates") or {}).values()
        for name in names
    }

    def add(threshold: Threshold) -> None:
        if threshold.key not in verdicts:
            verdicts[threshold.key] = []
            found.append(threshold)

    try:
        for shard in shards:
            for entry in shard.run.get("thresholds") or []:
                threshold = parse_threshold(
                    str(entry["expression"]),
                    dataset=entry.get("dataset"),
                    source=str(entry.get("source") or shard.label),
                )
                add(threshold)
                verdicts[threshold.key].append((shard.label, entry))
        for expression in extra:
            threshold = parse_threshold(expression, source=MERGE_THRESHOLD_SOURCE)
            name = threshold.aggregate.partition(".")[0]
            if name in evaluators:
                raise MergeError(
                    f"--threshold {expression!r}: {name!r} is a run evaluator's aggregate in the "
                    "shards, which llmobs merge does not recompute (run evaluators need the "
                    "suite's code); --threshold gates the aggregates merge computes from the items"
                )
            add(threshold)
    except ThresholdError as exc:
        raise MergeError(str(exc)) from None
    return [
        replace(t, unjudged=_not_recomputed(t, verdicts[t.key]))
        if t.aggregate.partition(".")[0] in evaluators
        else t
        for t in found
    ]


def _not_recomputed(threshold: Threshold, verdicts: Sequence[tuple[str, Mapping[str, Any]]]) -> str:
    """Why the merge leaves a threshold on a run evaluator's aggregate unjudged, with what each
    shard's session found over its own items (failed ones first)."""
    name = threshold.aggregate.partition(".")[0]
    why = (
        f"{name!r} is a run evaluator's aggregate, which llmobs merge does not recompute (run "
        "evaluators need the suite's code)"
    )
    found: dict[str, list[str]] = {}
    for label, entry in verdicts:
        observed = entry.get("observed")
        if entry.get("evaluated") is False:
            verdict = "not evaluated"
        elif entry.get("passed"):
            verdict = "passed"
        else:
            verdict = (
                "failed" if observed is None else f"failed (observed {format_number(observed)})"
            )
        found.setdefault(verdict, []).append(label)
    if not found:
        return why
    order = sorted(found, key=lambda verdict: (not verdict.startswith("failed"), verdict))
    said = [f"{verdict} in {_some(found[verdict])}" for verdict in order]
    return f"{why}; each shard's session judged its own items: {', '.join(said)}"


def _some(labels: Sequence[str], shown: int = 3) -> str:
    more = len(labels) - shown
    return ", ".join(labels[:shown]) + (f" and {more} more" if more > 0 else "")


def _import_snapshots(shards: Sequence[Shard], store: Store) -> None:
    """Keep the shards' prompt versions and dataset snapshots in ``store``; a prompt version it
    ends up keeping with other content (another process writing it meanwhile) raises."""
    for shard in shards:
        import_snapshots(shard.run, store)
        for prompt in (shard.run.get(SNAPSHOTS) or {}).get("prompts") or []:
            name, version = str(prompt["name"]), int(prompt["version"])
            kept = store.get_prompt(name, version=version)
            if kept is None or kept["hash"] != prompt["hash"]:
                raise MergeError(
                    f"cannot merge into {store.path}: prompt {name!r} version {version} of "
                    f"{shard.label} (hash {prompt['hash']!r}) could not be kept there; "
                    "was the store written meanwhile?"
                )


def _dropped_aggregates(
    shards: Sequence[Shard], result: RunResult, clashing: Iterable[str] = ()
) -> list[str]:
    """Names of aggregates the shards had (run evaluators') that the merge cannot recompute;
    not those of ``clashing`` score names, which the merged run leaves out on purpose."""
    left_out = {
        aggregate
        for name in clashing
        for kind in KIND_SHOWN
        for aggregate in score_aggregate_names(name, kind)
    }
    dropped: set[str] = set()
    for shard in shards:
        for group, entries in (shard.run.get("aggregates") or {}).items():
            known = result.aggregates.get(group if group in result.aggregates else ALL_ITEMS, {})
            dropped.update(str(a["name"]) for a in entries if a["name"] not in known)
    return sorted(dropped - left_out)


def merge_shards(
    shards: Sequence[Shard], *, thresholds: Sequence[str] = (), store: Store
) -> MergeOutcome:
    """Combine ``shards`` into one run recorded in ``store`` (which must not hold it yet)."""
    if not shards:
        raise MergeError("nothing to merge: give the shard exports written by 'llmobs export'")
    check_compatible(shards)
    changes, renumbering = prompt_numbers(shards, store)
    shards = [
        Shard(shard.path, renumbered(shard.run, changed))
        for shard, changed in zip(shards, changes, strict=True)
    ]
    items, again = _items(shards)
    checks = _thresholds(shards, thresholds)
    run_id = str(shards[0].run["id"])
    if store.has_run(run_id):
        raise MergeError(
            f"run {run_id!r} is already in {store.path}; store the merged run elsewhere"
        )
    first = min(shards, key=lambda s: float(s.run.get("started_at") or 0.0))
    ends = [float(s.run["ended_at"]) for s in shards if s.run.get("ended_at") is not None]
    recorder = RunRecorder(
        store=store,
        name=str(first.run.get("name") or ""),
        model=str(first.run.get("model") or ""),
        params=dict(first.run.get("params") or {}),
        environment=dict(first.run.get("environment") or {}),
        thresholds=checks,
        run_id=run_id,
        started_at=float(first.run.get("started_at") or 0.0),
    )
    _import_snapshots(shards, store)  # before the run: a store that refuses them keeps no half-run
    recorder.begin()
    for item in items:
        recorder.add_item(item)
    for shard in shards:
        for entry in shard.run.get("missing") or []:
            recorder.note_lost(str(entry["node_id"]), f"{entry['reason']}; in {shard.label}")
    unfinished = [s for s in shards if s.run.get("status") in ("interrupted", "running")]
    failures: dict[str, str] = {}  # label -> why
    for shard in shards:
        why = shard_failure(shard)
        if why is not None and shard not in unfinished:
            failures.setdefault(shard.label, why)
    result = recorder.finish(
        interrupted=bool(unfinished),
        tests_failed=bool(failures) or any(i.get("outcome") in FAILED_OUTCOMES for i in items),
        ended_at=max(ends) if ends else None,
    )
    notes = [f"shard {s.label} did not finish (status {s.run['status']})" for s in unfinished]
    failed_shards = [f"shard {label} failed: {why}" for label, why in failures.items()]
    if failed_shards:  # among the run's errors (the summary shows them once), and stored
        result = replace(result, errors=[*result.errors, *failed_shards])
        store.update_run(run_id, summary={"errors": result.errors})
    notes += renumbering
    if again:
        were = "item was" if again == 1 else "items were"
        notes.append(f"{again} {were} in more than one file with the same results: counted once")
    dropped = _dropped_aggregates(shards, result, recorder.score_kinds.clashing)
    if dropped:
        notes.append("not recomputed (run evaluators need the suite's code): " + ", ".join(dropped))
    return MergeOutcome(result, with_snapshots(store.load_run(run_id), store), list(shards), notes)


def merge_files(
    paths: Sequence[Path], *, thresholds: Sequence[str] = (), store_dir: Path | None = None
) -> MergeOutcome:
    """Load and merge shard exports; with ``store_dir`` the merged run is stored there too.
    What is stored (in ``store_dir`` or in memory, for the summary and ``-o``) is governed by
    the policy a pytest session started in the current directory has."""
    distinct_files(paths)  # before reading: a file given twice is named, not read twice
    shards = [load_shard(path) for path in paths]
    if shards:
        check_compatible(shards)  # before the store is created: a refusal leaves nothing behind
    from pytest_llmobs.experiment_config import ProjectConfig

    try:  # the policy every write to a store goes through, as a session started here has it
        governance = ProjectConfig(Path.cwd()).governance()
    except ValueError as exc:  # (GovernanceError: a bad llm_redact, a masker not importable)
        raise MergeError(f"cannot merge: {exc}") from None
    try:
        store = (
            Store.in_directory(store_dir, governance=governance)
            if store_dir is not None
            else Store(None, governance=governance)
        )
    except StoreError as exc:
        raise MergeError(f"--store: {exc}") from None
    try:
        return merge_shards(shards, thresholds=thresholds, store=store)
    finally:
        store.close()


def summary_header(outcome: MergeOutcome) -> str:
    items = len(outcome.run["items"])
    count = len(outcome.shards)
    return (
        f"merged {count} shard{'s' if count != 1 else ''} of run {outcome.result.run_id}: "
        f"{items} item{'s' if items != 1 else ''}"
    )
