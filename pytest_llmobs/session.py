"""Per-session state: settings, model, store, prompt registry, dataset cache and recorder."""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pytest_llmobs.dataset_files import load_dataset
from pytest_llmobs.datasets import Dataset
from pytest_llmobs.evaluators.custom import EvaluatorRegistry
from pytest_llmobs.llm import LLM
from pytest_llmobs.prompts import Prompt, PromptRegistry
from pytest_llmobs.providers import Provider
from pytest_llmobs.recording import TestRecord
from pytest_llmobs.run import RunRecorder
from pytest_llmobs.run_result import RunResult
from pytest_llmobs.settings import Settings
from pytest_llmobs.store import Store, StoreError


@dataclass
class SessionState:
    """Everything the plugin keeps for one pytest session (stored in ``config.stash``)."""

    settings: Settings
    run_id: str
    provider: Provider
    store: Store
    recorder: RunRecorder | None
    """``None`` in xdist workers: only the controller records the run."""
    prompts: PromptRegistry
    llm: LLM
    judge: LLM
    """The model ``scorer.llm_judge`` asks (``--llm-judge-model``, default the run's model)."""
    evaluators: EvaluatorRegistry
    datasets: dict[str, Dataset] = field(default_factory=dict)
    result: RunResult | None = None
    started: bool = False
    interrupted: bool = False
    """Set when the session was stopped by Ctrl-C (KeyboardInterrupt) or `pytest.exit`."""
    stop_reason: str | None = None
    """Why xdist stopped the session early (``stopping after 1 failures``): not an interrupt."""
    marker_errors: list[str] = field(default_factory=list)
    """Misused ``llm_dataset`` markers, reported together as one usage error after collection."""
    markers: dict[int, tuple[Any, Any]] = field(default_factory=dict)
    """``llm_dataset`` marks read once: id(mark) -> (mark, parsed marker)."""
    governed_at: int = 0
    """The governance's `revision` the dataset snapshots stored so far were governed at."""
    prompt_hashes: dict[tuple[str, int], str] = field(default_factory=dict)
    """Every prompt version this session loaded (name, version) -> its content hash."""
    current_record: TestRecord | None = None
    """The record of the test running now (tests run one at a time in a process)."""

    def use_prompt(self, prompt: Prompt) -> None:
        """Note that the running test used ``prompt`` (outside tests, only that the session
        did); the first use of a version in the session governs its stored content again by
        the session's policy (`Store.regovern_prompt`)."""
        key = (prompt.name, prompt.version)
        if key not in self.prompt_hashes:
            self.prompt_hashes[key] = prompt.hash
            if key not in self.store.registered_prompts:  # (registering it governed it)
                self.store.regovern_prompt(*key)
        if self.current_record is not None:
            self.current_record.use_prompt(prompt)

    def regovern_snapshots(self) -> None:
        """Mask the dataset snapshots and prompt versions stored while collecting again when a
        conftest pytest loaded later added maskers (one used before that conftest loaded was
        stored without them)."""
        governance = self.store.governance
        if governance is None or governance.revision == self.governed_at:
            return
        self.governed_at = governance.revision
        store = self.store
        for name, dataset in self.datasets.items():
            self._regovern(
                f"snapshot of dataset {name!r}",
                functools.partial(store.regovern_dataset, name, dataset.version),
            )
        for name, version in sorted(self.prompt_hashes.keys() | store.registered_prompts.keys()):
            self._regovern(
                f"prompt {name!r} version {version}",
                functools.partial(store.regovern_prompt, name, version),
            )

    def _regovern(self, what: str, regovern: Callable[[], None]) -> None:
        try:
            regovern()
        except (sqlite3.DatabaseError, StoreError, OSError) as exc:  # a full disk, say
            if self.recorder is not None:
                self.recorder.failures.append(
                    f"the {what} could not be masked again with the maskers a conftest "
                    f"added ({exc}): it may hold what they hide"
                )

    def dataset(self, name: str) -> Dataset:
        """Load a dataset once per session and keep a snapshot of its version in the store
        (one stored before is governed again by the session's policy)."""
        cached = self.datasets.get(name)
        if cached is None:
            cached = load_dataset(name, self.settings.datasets_dir)
            self.store.record_dataset(name, cached.version, cached.snapshot())
            self.datasets[name] = cached
        return cached
