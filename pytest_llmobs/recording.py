"""One test's record: its trace, the dataset item it ran, and the payload sent when it ends.

The payload is plain builtins so it can ride on the teardown report (also across xdist).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import pytest

from pytest_llmobs.aggregate_names import JUDGE_GENERATION_PREFIX
from pytest_llmobs.datasets import DatasetItem
from pytest_llmobs.prompts import Prompt
from pytest_llmobs.serialize import snapshot
from pytest_llmobs.trace_model import Observation, Trace, derived_id
from pytest_llmobs.tracing import pending_attributes

_MAX_ERROR_CHARS = 4000
_DOCTEST_MODULES = frozenset({"doctest", "_pytest.doctest"})
"""Where doctest failures' exceptions (`DocTestFailure`, `UnexpectedException`, pytest's
`MultipleDoctestFailures`) come from."""


class TestRecord:
    """What the plugin learns about one test between its setup and its teardown."""

    __test__ = False  # not a test class, whatever pytest's collection thinks of the name

    def __init__(
        self,
        *,
        run_id: str,
        node_id: str,
        name: str,
        item: DatasetItem | None = None,
        dataset_version: str | None = None,
        repeat: int = 0,
        thresholds: tuple[str, ...] = (),
        copy: int = 0,
    ) -> None:
        """``copy`` tells apart the runs of a test collected more than once."""
        self.node_id = node_id
        self.name = name
        self.copy = copy
        self.item = item
        self.dataset_version = dataset_version
        self.repeat = repeat
        self.thresholds = thresholds
        ids = (run_id, node_id, repeat, copy) if copy else (run_id, node_id, repeat)
        self.trace = Trace(node_id, id=derived_id(*ids))
        pending_attributes(self.trace)  # a session fixture's propagate_attributes block
        self.root = Observation(self.trace, name, input=snapshot(item.input) if item else None)
        if item is not None:
            self.root.metadata.update(
                dataset=item.dataset, item_id=item.id, expected_output=item.expected_output
            )
        self.prompts: dict[tuple[str, int], str] = {}
        self.known_prompts: Mapping[tuple[str, int], str] = {}
        """The prompt versions the session loaded -> their hashes: one an observation links to
        is the test's too (loaded by a module's fixture while another test ran, say)."""
        self.datasets: dict[str, str] = {}
        if item is not None and dataset_version is not None:
            self.datasets[item.dataset] = dataset_version
        self.phases: dict[str, str] = {}
        self.error: str | None = None
        self.skip_reason: str | None = None
        self.duration = 0.0
        self._durations: dict[str, float] = {}
        """Each phase's duration as last reported."""
        self._error_phase: str | None = None
        self.started_at = time.time()
        self.teardown_from: int | None = None
        """How many observations the trace had when the test body ended: those after are
        its fixtures' teardown, never the answer under test."""

    def use_prompt(self, prompt: Prompt) -> None:
        self.prompts[(prompt.name, prompt.version)] = prompt.hash

    def use_dataset(self, name: str, version: str) -> None:
        self.datasets[name] = version

    def observe_report(self, report: pytest.TestReport, call: pytest.CallInfo[None]) -> None:
        """Note one phase's outcome and, for the first failure, its message.

        pytest's subtests report each subtest as a "call" of the test, before the test's own
        call report (which spans them): a failed subtest fails the test, as pytest says, and
        the phase's last report gives its duration."""
        when = report.when
        self.duration += report.duration - self._durations.get(when, 0.0)
        self._durations[when] = report.duration
        if when == "call" or (when == "setup" and not report.passed):
            self.teardown_from = len(self.trace.observations)  # (no body runs after a bad setup)
        if hasattr(report, "wasxfail"):
            outcome = "skipped" if report.skipped else "passed"
            if report.skipped and self.skip_reason is None:
                self.skip_reason = f"xfail: {report.wasxfail}" if report.wasxfail else "xfail"
        else:
            outcome = report.outcome
        if self.phases.get(when) != "failed":
            self.phases[when] = outcome
        if report.failed:
            self._note_failure(when, _failure_text(report, call))
        if report.skipped and self.skip_reason is None:
            longrepr = report.longrepr
            if isinstance(longrepr, tuple) and len(longrepr) == 3:
                self.skip_reason = str(longrepr[2])

    def _note_failure(self, when: str, failure: str) -> None:
        """The first failure is the error; a teardown failing after it is added to it (pytest
        reports both: the test failed, and then its teardown)."""
        if self.error is None:
            self.error = failure[:_MAX_ERROR_CHARS]
            self._error_phase = when
        elif when != self._error_phase and when == "teardown":
            teardown = failure.splitlines()[0] if failure.strip() else "(no message)"
            also = f" (then its teardown failed: {teardown})"[: _MAX_ERROR_CHARS // 2]
            first, newline, rest = self.error.partition("\n")  # on the line reports show
            self.error = (first + also + newline + rest)[:_MAX_ERROR_CHARS]
            self._error_phase = when

    @property
    def outcome(self) -> str:
        """passed | failed (the test body) | error (setup/teardown) | skipped."""
        if self.phases.get("setup") == "failed" or self.phases.get("teardown") == "failed":
            return "error"
        if self.phases.get("call") == "failed":
            return "failed"
        if "skipped" in self.phases.values():
            return "skipped"
        return "passed"

    def finish(self) -> dict[str, Any]:
        """Close the trace and return the item payload (plain builtins)."""
        outcome = self.outcome
        if self.error is not None:
            self.root.fail(self.error)
        self.root.end()
        # first: a generation still open (a stream the test stopped reading) records its
        # answer as the trace ends, and that answer may be the test's output below
        self.trace.finish()
        if self.root.output is None:
            generations = [  # the answer under test: not a judge's call, not a teardown's
                o
                for o in self.trace.observations[: self.teardown_from]
                if o.type == "generation" and not o.name.startswith(JUDGE_GENERATION_PREFIX)
            ]
            if generations:
                self.root.output = generations[-1].output
        self.root.metadata["outcome"] = outcome
        if self.known_prompts:
            self._note_linked_prompts()
        item = self.item
        return {
            "node_id": self.node_id,
            "dataset": item.dataset if item else None,
            "dataset_version": self.dataset_version,
            "item_id": item.id if item else None,
            "repeat": self.repeat,
            "input": item.input if item else None,
            "expected_output": item.expected_output if item else None,
            "outcome": outcome,
            "error": self.error,
            "skip_reason": self.skip_reason if outcome in ("skipped", "error") else None,
            "duration": self.duration,
            "started_at": self.started_at,
            "ended_at": self.trace.end_time,
            "trace": self.trace.to_dict(),
            "prompts": [
                {"name": name, "version": version, "hash": digest}
                for (name, version), digest in sorted(self.prompts.items())
            ],
            "datasets": dict(self.datasets),
            "thresholds": list(self.thresholds),
        }

    def _note_linked_prompts(self) -> None:
        """Add the known prompt versions the trace's observations link to (a link to a version
        the session never loaded, an object of the user's given to `attach_prompt`, is no
        prompt of the store's)."""
        known, prompts = self.known_prompts, self.prompts
        for observation in self.trace.observations:
            name, version = observation.prompt_name, observation.prompt_version
            if name is not None and version is not None:
                key = (name, version)
                if key not in prompts and key in known:
                    prompts[key] = known[key]

    def started(self) -> dict[str, Any]:
        """What the controller needs to store this test, as plain builtins, should its xdist
        worker die while running it (`lost_with_its_worker`)."""
        item = self.item
        return {  # (ids only: the controller reads the item from the dataset's snapshot)
            "node_id": self.node_id,
            "name": self.name,
            "copy": self.copy,
            "dataset": None if item is None else item.dataset,
            "item_id": None if item is None else item.id,
            "dataset_version": self.dataset_version,
            "repeat": self.repeat,
            "thresholds": list(self.thresholds),
            "started_at": self.started_at,
        }


def _failure_text(report: pytest.TestReport, call: pytest.CallInfo[None]) -> str:
    """What failed: the exception's one line; for a doctest, pytest's report (the example, what
    was expected and what it got), as its exception's text says none of that; with no
    exception (a strict XPASS), the report's "[XPASS(strict)] <reason>"."""
    excinfo = call.excinfo
    if excinfo is None:
        return str(report.longrepr)
    if type(excinfo.value).__module__ in _DOCTEST_MODULES:
        return f"{_doctest_line(excinfo.value)}\n{report.longrepr}"[:_MAX_ERROR_CHARS]
    return excinfo.exconly()


def _doctest_line(failure: BaseException) -> str:
    """One line on a doctest's (first) failing example: where, and what it gave instead."""
    failure = getattr(failure, "failures", [failure])[0]  # (pytest's MultipleDoctestFailures)
    test, example = getattr(failure, "test", None), getattr(failure, "example", None)
    if test is None or example is None:
        return f"{type(failure).__name__}: {failure}"
    where = f"doctest {test.name} line {(test.lineno or 0) + example.lineno + 1}"
    source = " ".join(example.source.split())
    exc_info = getattr(failure, "exc_info", None)
    if exc_info is not None:  # UnexpectedException
        return f"{where}: {source} raised {exc_info[0].__name__}: {exc_info[1]}"
    got = " ".join(str(getattr(failure, "got", "")).split())
    return f"{where}: {source} expected {' '.join(example.want.split())}, got {got}"


def lost_with_its_worker(
    started: Mapping[str, Any], item: DatasetItem | None, run_id: str, reason: str
) -> dict[str, Any]:
    """The payload of a test whose xdist worker died while running it (``started`` is its
    `TestRecord.started`, ``item`` its dataset item): failed, as xdist reports it, so that the
    run counts it as pytest does; what it recorded went down with the worker."""
    record = TestRecord(
        run_id=run_id,
        node_id=str(started["node_id"]),
        name=str(started["name"]),
        item=item,
        dataset_version=started.get("dataset_version"),
        repeat=int(started.get("repeat") or 0),
        thresholds=tuple(started.get("thresholds") or ()),
        copy=int(started.get("copy") or 0),
    )
    record.started_at = float(started.get("started_at") or record.started_at)
    record.phases["call"] = "failed"
    record.error = f"{reason} (its trace and scores were lost with the worker)"
    return record.finish()


def is_payload(value: object) -> bool:
    return isinstance(value, Mapping) and "node_id" in value and "trace" in value
