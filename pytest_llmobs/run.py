"""The experiment run: one per session. The recorder writes each finished item at once and
computes aggregates and threshold verdicts at the end."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pytest_llmobs import __version__
from pytest_llmobs.aggregate_model import Aggregate, ItemSummary, aggregates_to_dict
from pytest_llmobs.aggregate_names import ALL_ITEMS
from pytest_llmobs.aggregates import AGGREGATION, compute_aggregates
from pytest_llmobs.evaluators.custom import RunEvaluator
from pytest_llmobs.redaction import MASKING_FAILED
from pytest_llmobs.repeats import RepeatTracker
from pytest_llmobs.run_environment import new_run_id
from pytest_llmobs.run_result import RunResult, partial_datasets, partial_datasets_to_dict
from pytest_llmobs.score_kinds import ScoreKinds
from pytest_llmobs.store import Store, StoreError
from pytest_llmobs.thresholds import Threshold, evaluate, parse_threshold

NO_RESULT = "no result arrived"
"""Why an expected item is missing when nothing more is known."""


_STORE_FAILURES = (sqlite3.DatabaseError, StoreError, OSError)
"""What a store that breaks while the session runs raises (a full disk, a damaged file)."""


@dataclass
class RunRecorder:
    """Collects items of one run, writing each to the store as it arrives."""

    store: Store
    name: str
    model: str
    params: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)
    thresholds: list[Threshold] = field(default_factory=list)
    run_id: str = field(default_factory=new_run_id)
    started_at: float = field(default_factory=time.time)
    _summaries: list[ItemSummary] = field(default_factory=list)
    _counts: dict[str, int] = field(default_factory=dict)
    _datasets: dict[str, str] = field(default_factory=dict)
    _prompts: dict[tuple[str, int], str] = field(default_factory=dict)
    _seen_thresholds: set[tuple[str | None, str, str, float]] = field(default_factory=set)
    _seen_expressions: set[tuple[str | None, str]] = field(default_factory=set)
    run_evaluators: dict[str, RunEvaluator] = field(default_factory=dict)
    evaluated: dict[str, list[str]] = field(default_factory=dict)
    """The aggregates the run evaluators gave, by group (shown apart in the summary)."""
    repeats: RepeatTracker = field(default_factory=RepeatTracker)
    score_kinds: ScoreKinds = field(default_factory=ScoreKinds)
    _expected: dict[str, str] = field(default_factory=dict)
    """Collected node ids (in order) → why no result arrived, if none does."""
    _received: set[str] = field(default_factory=set)
    _dataset_items: dict[str, set[Any]] = field(default_factory=dict)
    """The ids of each dataset's items that ran."""
    outlive_store_failures: bool = False
    """Go on when the store refuses an item (a pytest session: the tests are running anyway),
    instead of raising (``run_experiment``: the caller sees the failure)."""
    store_failure: str | None = None
    """Why the store refused to write, if it did (the first error): the session goes on, the
    run's figures come from every item, and the run fails saying what was not stored."""
    failures: list[str] = field(default_factory=list)
    """What failed the session outside any test (an xdist worker that never started, say):
    each line is one of the run's errors, and the run fails."""
    _refused: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    """``(seq, item)`` of each item the store refused: kept, so that the reports lose none."""
    _finished: dict[str, Any] | None = None
    """The status, end time and summary `finish` gave the store (and `update_run` changed)."""

    def __post_init__(self) -> None:
        unique: dict[tuple[str | None, str, str, float], Threshold] = {}
        for threshold in self.thresholds:
            unique.setdefault(threshold.key, threshold)  # each gate once, first spelling
        self.thresholds = list(unique.values())
        self._seen_thresholds.update(unique)

    @property
    def header(self) -> dict[str, Any]:
        return {
            "id": self.run_id,
            "name": self.name,
            "model": self.model,
            "params": self.params,
            "started_at": self.started_at,
            "environment": self.environment,
            "plugin_version": __version__,
            # the session's own gates, so that a killed run (no summary) still has them
            "declared_thresholds": [
                {"expression": t.expression, "dataset": t.dataset, "source": t.source}
                for t in self.thresholds
            ],
        }

    def begin(self) -> None:
        self.store.begin_run(self.header)

    def add_item(self, item: Mapping[str, Any], *, governed: bool = False) -> None:
        """Store one finished item and remember what aggregation needs of it (``governed``: an
        xdist worker has already applied the store's governance to it)."""
        seq = len(self._summaries)
        if not governed and self.store.governance is not None:  # aggregates see it masked
            item = self.store.governance.item(item)
        clash = self.score_kinds.check(item)
        if clash is not None:  # (items from xdist workers, or scores that passed no scorer)
            item = clash.failed(item)
        try:
            self.store.write_item(self.run_id, seq, item, governed=True)
        except _STORE_FAILURES as exc:  # a full disk, a file damaged while the session runs
            if not self._outlived(exc):
                raise
            self._refused.append((seq, dict(item)))
        summary = ItemSummary.from_item(item)
        self._summaries.append(summary)
        self._counts[summary.outcome] = self._counts.get(summary.outcome, 0) + 1
        self._datasets.update(item.get("datasets") or {})
        dataset = summary.dataset
        if dataset is not None:
            ran = self._dataset_items.get(dataset)
            if ran is None:
                ran = self._dataset_items[dataset] = set()
            ran.add(item.get("item_id"))
        self.repeats.add(item)
        self._received.add(str(item["node_id"]))
        for prompt in item.get("prompts") or []:
            self._prompts[(prompt["name"], int(prompt["version"]))] = prompt.get("hash", "")
        for expression in item.get("thresholds") or []:
            self.add_threshold(expression, dataset=item.get("dataset"), source="llm_dataset marker")

    def add_threshold(self, expression: str, *, dataset: str | None, source: str) -> None:
        """Add a threshold once (markers repeat theirs on every item), unless the run already
        has one that checks the same thing."""
        spelled = (dataset, " ".join(expression.split()))
        if spelled in self._seen_expressions:  # the common case: no parsing per item
            return
        self._seen_expressions.add(spelled)
        threshold = parse_threshold(expression, dataset=dataset, source=source)
        if threshold.key not in self._seen_thresholds:
            self._seen_thresholds.add(threshold.key)
            self.thresholds.append(threshold)

    def expect(self, node_ids: Iterable[str], reason: str = NO_RESULT) -> None:
        """Declare collected items; those that never arrive are listed as ``missing``, also
        by a run killed before its summary (the store keeps the list)."""
        known = len(self._expected)
        for node_id in node_ids:
            self._expected.setdefault(node_id, reason)
        if len(self._expected) == known:
            return  # (every xdist worker reports the same collection)
        try:
            self.store.expect_items(self.run_id, list(self._expected))
        except _STORE_FAILURES as exc:
            if not self._outlived(exc):
                raise

    def _outlived(self, exc: Exception) -> bool:
        """Whether to go on after the store refused a write (a pytest session), remembering
        the first refusal as the run's failure; ``False``: the caller raises it."""
        if not self.outlive_store_failures:
            return False
        self.store_failure = self.store_failure or f"{self.store.path}: {exc}"
        return True

    def expect_nothing(self) -> None:
        """Forget the declared items: a session stopped by a usage error ran none of them, and
        listing each as missing would read as if they had crashed."""
        self._expected.clear()

    def note_lost(self, node_id: str, reason: str) -> None:
        """Say why an expected item has no result (a crashed worker, for one)."""
        self._expected[node_id] = reason

    @property
    def missing(self) -> list[dict[str, str]]:
        return [
            {"node_id": node_id, "reason": reason}
            for node_id, reason in self._expected.items()
            if node_id not in self._received
        ]

    @property
    def item_count(self) -> int:
        return len(self._summaries)

    @property
    def failing_count(self) -> int:
        """How many stored items failed or errored."""
        return self._counts.get("failed", 0) + self._counts.get("error", 0)

    def finish(
        self, *, interrupted: bool, tests_failed: bool, ended_at: float | None = None
    ) -> RunResult:
        """Compute aggregates and verdicts, and mark the run finished in the store."""
        missing = self.missing
        moved = self.store.moved_away()
        if moved is not None:
            self.failures.append(
                f"the store {self.store.path} {moved} while this run was recorded: its "
                f"{len(self._summaries)} item(s) went to the old file and are not in the store "
                "(an --llm-json or --llm-report file keeps them)"
            )
        aggregates = compute_aggregates(self._summaries)
        self.repeats.add_aggregates(aggregates)
        repeats = self.repeats.summary()
        # run evaluators read the stored items, which are incomplete when the store failed
        errors = self._run_evaluators(aggregates) if self.store_failure is None else []
        errors = [*self.failures, *self.score_kinds.errors(), *errors]
        verdicts = evaluate(self.thresholds, aggregates)
        prompts = [
            {"name": n, "version": v, "hash": h} for (n, v), h in sorted(self._prompts.items())
        ]
        if self.store_failure is not None:
            errors = [*errors, self._store_failure_line()]
        errors = [*errors, *self._masking_failures()]
        if interrupted:
            status = "interrupted"
        elif tests_failed or errors or not all(v.passed for v in verdicts):
            status = "failed"
        else:
            status = "passed"
        ended_at = time.time() if ended_at is None else ended_at
        partial = self._partial_datasets()
        summary = {
            "datasets": dict(sorted(self._datasets.items())),
            "prompts": prompts,
            "counts": dict(sorted(self._counts.items())),
            "aggregates": aggregates_to_dict(aggregates),
            "aggregation": AGGREGATION,
            "thresholds": [v.to_dict() for v in verdicts],
            "errors": errors,
            **({"repeats": repeats} if repeats else {}),
            **({"missing": missing} if missing else {}),
            **({"partial_datasets": partial_datasets_to_dict(partial)} if partial else {}),
            **({"run_evaluator_aggregates": self.evaluated} if self.evaluated else {}),
        }
        self._finished = {"status": status, "ended_at": ended_at, **summary}
        try:
            self.store.finish_run(self.run_id, status=status, ended_at=ended_at, summary=summary)
        except _STORE_FAILURES as exc:
            self._after_refusal(exc)
        status, errors = self.status, self._finished["errors"]
        return RunResult(
            run_id=self.run_id,
            status=status,
            aggregates=aggregates,
            thresholds=verdicts,
            counts=dict(self._counts),
            datasets=dict(self._datasets),
            prompts=prompts,
            store_path=self.store.path,
            name=self.name,
            model=self.model,
            errors=errors,
            repeats=repeats,
            missing=missing,
            partial_datasets=partial,
            run_evaluator_aggregates=self.evaluated,
        )

    def _partial_datasets(self) -> dict[str, tuple[int, int]]:
        """(ran, in the dataset) for each dataset whose snapshot holds items that did not run."""

        def size_of(name: str, version: str) -> int | None:
            try:
                return self.store.dataset_size(name, version)
            except _STORE_FAILURES:
                return None

        return partial_datasets(self._dataset_items, self._datasets, size_of)

    def _masking_failures(self) -> list[str]:
        """A line per custom masker that failed: what it hid is stored as a placeholder. The
        lines skip the custom maskers when stored: one could fail on its own line."""
        governance = self.store.governance
        if governance is None or not governance.redactor.failures:
            return []
        redactor = governance.redactor
        return [
            governance.plugin_line(
                f"masker {name} failed: {error}; {redactor.failed_texts[name]} text(s) stored "
                f"as {MASKING_FAILED} instead"
            )
            for name, error in redactor.failures.items()
        ]

    def update_run(
        self, *, status: str | None = None, summary: Mapping[str, Any] | None = None
    ) -> str | None:
        """`Store.update_run` for the finished run, kept in memory too (see `load_run`).

        Returns the line to add to the run's errors when this is the first write the store
        refuses (a session goes on; other callers get the exception)."""
        assert self._finished is not None, "update_run before finish"
        self._finished.update(summary or {})
        if status is not None:
            self._finished["status"] = status
        try:
            self.store.update_run(self.run_id, status=status, summary=summary)
        except _STORE_FAILURES as exc:
            return self._after_refusal(exc)
        return None

    def _after_refusal(self, exc: Exception) -> str | None:
        """The store refused a write of the finished run: ``exc`` is raised again unless the
        session outlives it. The first refusal adds its line to the run's errors and fails a
        run that passed; returns that line (None: the store had failed before)."""
        assert self._finished is not None, "a refused write before finish"
        first = self.store_failure is None
        if not self._outlived(exc):
            raise exc
        if not first:
            return None
        line = self._store_failure_line()
        self._finished["errors"] = [*self._finished.get("errors", []), line]
        if self._finished["status"] == "passed":
            self._finished["status"] = "failed"
        return line

    @property
    def status(self) -> str:
        """The finished run's status, as last written (or refused by the store)."""
        assert self._finished is not None, "status before finish"
        return str(self._finished["status"])

    def load_run(self) -> dict[str, Any]:
        """The finished run as `Store.load_run` gives it. When the store failed during the
        session, it is rebuilt from the items the store kept, those it refused (kept here) and
        the summary as computed, so that the comparison, the reports and the upload lose no
        item; the items the store kept but cannot give back are said in the run's errors."""
        if self.store_failure is None:
            return self.store.load_run(self.run_id)
        assert self._finished is not None, "load_run before finish"
        try:
            stored = list(self.store.item_rows(self.run_id))
            unreadable = ""
        except _STORE_FAILURES as exc:
            stored = []
            unreadable = f" ({exc})"
        items = [item for _, item in sorted([*stored, *self._refused], key=lambda row: row[0])]
        governance = self.store.governance
        header, finished = self.header, self._finished
        if governance is not None:  # as the store writes them
            header, finished = governance.value(header), governance.value(finished)
        run: dict[str, Any] = {**header, **finished, "items": items}
        lost = len(self._summaries) - len(items)
        if lost:
            run["errors"] = [
                *run.get("errors", []),
                f"this copy of the run holds {len(items)} of its {len(self._summaries)} items: "
                f"the store cannot give back the {lost} it kept{unreadable}",
            ]
        return run

    def _store_failure_line(self) -> str:
        stored = len(self._summaries) - len(self._refused)
        return (
            f"the store failed ({self.store_failure}): {stored} of {len(self._summaries)} items "
            "stored; the run's figures count them all"
            + ("; run evaluators were not run" if self.run_evaluators else "")
        )

    def _run_evaluators(self, aggregates: dict[str, dict[str, Aggregate]]) -> list[str]:
        """Add each run evaluator's aggregates per group; return the errors they raised."""
        if not self.run_evaluators:
            return []
        groups: dict[str, list[dict[str, Any]]] = {group: [] for group in aggregates}
        for item in self.store.iter_items(self.run_id):
            groups[ALL_ITEMS].append(item)
            if item.get("dataset") is not None:
                groups.setdefault(item["dataset"], []).append(item)
        errors = []
        for name, run_evaluator in self.run_evaluators.items():
            for group, items in groups.items():
                if not items:
                    continue
                try:
                    values = run_evaluator(items)
                except Exception as exc:
                    where = "the run" if group == ALL_ITEMS else f"dataset {group!r}"
                    errors.append(
                        f"run evaluator {name!r} failed on {where}: {type(exc).__name__}: {exc}"
                    )
                    continue
                where = "the run" if group == ALL_ITEMS else f"dataset {group!r}"
                for key, value in values.items():
                    if key in aggregates[group]:  # a built-in one, or another evaluator's
                        errors.append(
                            f"run evaluator {name!r} returned {key!r}, which {where} already "
                            "has (computed from the items, or by another run evaluator); "
                            f"name it differently, e.g. 'run_{key}'"
                        )
                        continue
                    aggregates[group][key] = Aggregate(key, value, len(items))
                    self.evaluated.setdefault(group, []).append(key)
        return errors
