"""pytest-xdist support: hooks registered only when xdist is present (its hook names are unknown
to pytest otherwise), so the plugin also runs without it and with ``-p no:xdist``.

How a ``pytest -n 4`` session becomes one experiment run:

- controller → worker: the run id travels in ``workerinput`` (`pytest_configure_node`), so
  trace ids derive from the controller's run id on every worker; under ``--dist each``, where
  every worker runs every test, so does the worker's slot (`copy_slot`): each worker's copy of a
  test is a run of its own (its own trace and score ids), counted as a repeat of the test as
  ``--keep-duplicates`` copies are; a crashed worker's replacement takes its slot;
- worker → controller, per test: the finished item rides on its teardown report
  (``report_attributes.PAYLOAD_ATTRIBUTE``, plain builtins that xdist serialises), and the
  controller's `RunRecorder` writes it as it arrives; workers never write runs or items;
- worker → controller, run-wide: the prompt versions a worker registered go in ``workeroutput``
  at its session end; the controller copies them into its own store when that store lacks them
  (an in-memory store with ``--llm-no-store``, or a worker on another host). Workers that share
  the controller's store file register versions in it directly: each registration is one
  ``BEGIN IMMEDIATE`` transaction on a WAL database with a 30 s busy timeout, so concurrent
  workers agree on every version number. The custom maskers that failed on a worker's texts
  go in ``workeroutput`` too, so that the run fails as a serial one would;
- a worker that goes down before collecting (a usage error on the worker, say) fails the run
  with its reason: a session whose every worker died collected nothing, which is no pass;
- lost items: the controller learns every collected node id from
  `pytest_xdist_node_collection_finished`; a test whose worker crashed is reported by xdist as
  failed (`pytest_handlecrashitem`): the controller stores it as a failed item from what its
  setup report carried (`report_attributes.STARTED_ATTRIBUTE`: its dataset item's ids, repeat,
  thresholds) and the dataset's snapshot, so the pass rate counts it as pytest does; its trace
  went down with the worker. It is marked ``"stopped"``, as the test a Ctrl-C broke off: a
  worker's death says nothing of the model, so it is no repeat's verdict (flakiness) and no
  flip against a baseline.
  A test whose worker died before its setup report arrived (in a fixture; under
  pytest-rerunfailures, which sends an attempt's reports when it ends), and the tests never
  run, are listed as ``missing`` (with the reason); one pytest-rerunfailures runs again counts
  by its last attempt. The worker's finished items stay stored.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pytest

from pytest_llmobs.report_attributes import STARTED_ATTRIBUTE
from pytest_llmobs.stash import WORKER_RUN_ID, built_state, is_xdist_worker, session_state

if TYPE_CHECKING:
    from pytest_llmobs.datasets import DatasetItem
    from pytest_llmobs.session import SessionState

WORKER_OUTPUT = "llmobs"
"""Key of the plugin's run-wide data in a worker's ``workeroutput``."""
WORKER_COPY = "llmobs_copy"
"""Key of ``[slot, slots]`` in a worker's ``workerinput`` under ``--dist each`` (`copy_slot`)."""


class XdistHooks:
    """xdist-only hooks (controller and workers); registered when xdist is present."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.collected_on: set[str] = set()
        """The workers that reported their collection."""
        self.down_early: dict[str, list[str]] = {}
        """Why workers went down before collecting → their ids (xdist replaces each, up to
        its limit, so one mistake usually takes down several)."""
        self.running: dict[tuple[str, str], Any] = {}
        """The tests the workers are running (set up, no teardown report yet): (worker, node
        id) → its `TestRecord.started`, stored as a failed item if its worker dies (a node
        id alone can run on two workers at once: ``--dist each``, ``--keep-duplicates``)."""
        self.each = config.getoption("dist", None) == "each"  # (a worker's says "no")
        self.slots: dict[str, int] = {}
        """Under ``--dist each``: each worker's slot (which copy of every test it runs)."""
        self.free_slots: list[int] = []
        """The slots of crashed workers, for the workers xdist starts in their place."""

    @property
    def state(self) -> SessionState:
        return session_state(self.config)

    # --- controller ---------------------------------------------------------------------------

    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput[WORKER_RUN_ID] = self.state.run_id
        if self.each:  # (a replacement runs what its crashed worker had left: its copies)
            slot = self.free_slots.pop() if self.free_slots else len(self.slots)
            self.slots[_worker_id(node)] = slot
            node.workerinput[WORKER_COPY] = [slot, int(node.workerinput["workercount"])]

    def pytest_xdist_node_collection_finished(self, node: Any, ids: Sequence[str]) -> None:
        self.collected_on.add(_worker_id(node))
        if self.state.recorder is not None:
            self.state.recorder.expect(ids)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        started = getattr(report, STARTED_ATTRIBUTE, None)
        if started is not None and not is_xdist_worker(self.config):  # (a worker sends it on)
            delattr(report, STARTED_ATTRIBUTE)  # (pytest keeps every report to the end)
            self.running[_worker_of(report), report.nodeid] = started
        elif report.when == "teardown" and self.running:
            self.running.pop((_worker_of(report), report.nodeid), None)

    @pytest.hookimpl(trylast=True)  # after pytest-rerunfailures decided to run it again or not
    def pytest_handlecrashitem(self, crashitem: str, report: pytest.TestReport) -> None:
        recorder = self.state.recorder
        worker = _worker_of(report)
        started = self.running.pop((worker, crashitem), None)
        if recorder is None or str(report.outcome) == "rerun":  # (the last attempt counts)
            return
        named = f"worker {worker!r}" if worker != "?" else "its worker"
        reason = f"{named} crashed while running it"
        if started is None:  # (it died before the test's setup report: nothing to store)
            recorder.note_lost(crashitem, reason)
            return
        from pytest_llmobs.recording import lost_with_its_worker

        item = _dataset_item(self.state, started)
        payload = lost_with_its_worker(started, item, self.state.run_id, reason)
        payload["stopped"] = True  # (failed, but no verdict on the model: repeats.item_verdict)
        recorder.add_item(payload)

    def pytest_testnodedown(self, node: Any, error: object) -> None:
        if error is not None and _worker_id(node) in self.slots:  # (xdist replaces it next)
            self.free_slots.append(self.slots[_worker_id(node)])
        if error is not None and _worker_id(node) not in self.collected_on:
            # (a worker that fails at start-up, on a usage error say, runs none of the tests:
            # with every worker down the session collected nothing, which is no pass)
            lines = [line.strip() for line in str(error).splitlines() if line.strip()]
            self.down_early.setdefault(lines[-1] if lines else "no reason given", []).append(
                _worker_id(node)
            )
        output = getattr(node, "workeroutput", None) or {}
        data = output.get(WORKER_OUTPUT)
        if isinstance(data, dict):
            merge_worker_output(self.state, data)

    # --- both -------------------------------------------------------------------------------

    @pytest.hookimpl(tryfirst=True)  # the controller's before the run is finished with them
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        config = session.config
        state = built_state(config)
        if state is None:
            return
        if is_xdist_worker(config):
            config.workeroutput[WORKER_OUTPUT] = worker_output(state)  # type: ignore[attr-defined]
        elif state.recorder is not None:  # (every worker is down by now)
            state.recorder.failures.extend(
                f"xdist worker{'s' if len(ids) > 1 else ''} {', '.join(ids)} went down before "
                f"collecting: {why}"
                for why, ids in self.down_early.items()
            )
            if state.interrupted:  # (not "not run", which the others that had no result read)
                for worker, node_id in self.running:
                    state.recorder.note_lost(
                        node_id, f"no result: the session was interrupted while {worker} ran it"
                    )


def copy_slot(config: pytest.Config) -> tuple[int, int]:
    """``(slot, slots)``: which copy of every test this session runs, of how many. (0, 1) but
    on a worker of ``--dist each``, where each worker runs every test: copy ``n`` of a test
    collected there (``--keep-duplicates``) is then the run's copy ``n * slots + slot``."""
    given = getattr(config, "workerinput", {}).get(WORKER_COPY)
    if not given:
        return 0, 1
    slot, slots = given
    return int(slot), int(slots)


def xdist_stop(stop: BaseException) -> str | None:
    """Why xdist's controller stopped the session when a worker stopped for ``-x`` or
    ``--maxfail`` (it raises its own `Interrupted`, a KeyboardInterrupt), else ``None``."""
    kind = type(stop)
    if kind.__name__ != "Interrupted" or not kind.__module__.startswith("xdist"):
        return None
    reason = str(stop)
    return None if "keyboard-interrupt" in reason else reason


def _dataset_item(state: SessionState, started: dict[str, Any]) -> DatasetItem | None:
    """The dataset item a lost test ran, from the snapshot of its version the worker stored
    (or the dataset file, at that version); its ids alone when neither holds it."""
    name, item_id, version = started["dataset"], started["item_id"], started["dataset_version"]
    if name is None or item_id is None:
        return None
    from pytest_llmobs.datasets import DatasetError, DatasetItem

    rows = state.store.get_dataset(name, version) if version is not None else None
    if rows is None:  # (an in-memory store of the controller's own: --llm-no-store)
        try:
            dataset = state.dataset(name)
        except DatasetError:
            dataset = None
        rows = dataset.snapshot() if dataset is not None and dataset.version == version else []
    for row in rows:
        if row.get("id") == item_id:
            metadata = row.get("metadata")
            return DatasetItem(
                id=item_id,
                input=row.get("input"),
                expected_output=row.get("expected_output"),
                metadata=metadata if isinstance(metadata, dict) else {},
                dataset=name,
            )
    return DatasetItem(id=item_id, input=None, dataset=name)


def _worker_of(report: pytest.TestReport) -> str:
    """The worker a report came from (xdist sets ``report.node`` on the controller)."""
    return _worker_id(getattr(report, "node", None))


def _worker_id(node: Any) -> str:
    return str(getattr(getattr(node, "gateway", None), "id", "?"))


def worker_output(state: SessionState) -> dict[str, Any]:
    """A worker's run-wide data, as plain builtins: the prompt versions it registered, the
    snapshots of the datasets it loaded when its store is its own (``--llm-no-store``: kept in
    memory, which the controller does not see) and its maskers' failures (name → [first error,
    texts left masked as a placeholder])."""
    prompts = []
    for name, version in sorted(state.store.registered_prompts):
        stored = state.store.get_prompt(name, version=version)
        if stored is not None:
            prompts.append(stored)
    datasets = []
    if state.settings.store_dir is None:
        for name, dataset in sorted(state.datasets.items()):
            items = state.store.get_dataset(name, dataset.version)
            if items is not None:
                datasets.append({"name": name, "version": dataset.version, "items": items})
    failures = {}
    if state.store.governance is not None:
        redactor = state.store.governance.redactor
        failures = {
            name: [error, redactor.failed_texts[name]] for name, error in redactor.failures.items()
        }
    return {
        "prompts": prompts,
        "datasets": datasets,
        "masking_failures": failures,
        "run_evaluators": sorted(state.evaluators.run),
    }


def merge_worker_output(state: SessionState, data: dict[str, Any]) -> None:
    """Keep the prompt versions a worker registered and the dataset snapshots it sent in the
    controller's store, count its maskers' failures as the controller's own, and fail the run
    on run evaluators only the worker knows (a conftest the controller, which collects nothing,
    never loads)."""
    for prompt in data.get("prompts") or []:
        state.store.import_prompt_version(prompt)
    for dataset in data.get("datasets") or []:
        state.store.record_dataset(dataset["name"], dataset["version"], dataset["items"])
    failures = data.get("masking_failures") or {}
    if failures and state.store.governance is not None:
        redactor = state.store.governance.redactor
        for name, (error, texts) in failures.items():
            redactor.note_failure(name, error, texts)
    recorder = state.recorder
    for name in data.get("run_evaluators") or []:
        problem = (
            f"run evaluator {name!r} was registered on xdist's workers only (by a conftest below "
            "the directories given to pytest, which the controller does not load), so it was "
            "not run: register it in the rootdir's conftest.py or in a plugin"
        )
        known = name in state.evaluators.run
        if not known and recorder is not None and problem not in recorder.failures:
            recorder.failures.append(problem)
