"""The verdict of a finished run (`RunResult`), and the stored form of its partly run
datasets."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_llmobs.aggregate_model import Aggregate
from pytest_llmobs.thresholds import ThresholdResult


def partial_datasets(
    ran: Mapping[str, Collection[object]],
    versions: Mapping[str, str],
    size_of: Callable[[str, str], int | None],
) -> dict[str, tuple[int, int]]:
    """(ran, in the dataset) for each dataset whose snapshot holds items that did not run:
    ``ran`` maps a dataset to the ids of its items that ran, ``versions`` to the version they
    ran at, ``size_of(name, version)`` gives its snapshot's size (None: not kept)."""
    partial = {}
    for name, ids in sorted(ran.items()):
        version = versions.get(name)
        size = None if version is None else size_of(name, version)
        if size is not None and len(ids) < size:
            partial[name] = (len(ids), size)
    return partial


def partial_datasets_to_dict(partial: Mapping[str, tuple[int, int]]) -> dict[str, Any]:
    """``{name: {"ran": r, "items": n}}``: how a run stores its partly run datasets."""
    return {name: {"ran": ran, "items": size} for name, (ran, size) in partial.items()}


def partial_datasets_from_dict(stored: object) -> dict[str, tuple[int, int]]:
    """The inverse of `partial_datasets_to_dict`; what does not have that shape is left out."""
    if not isinstance(stored, Mapping):
        return {}
    partial = {}
    for name, entry in stored.items():
        ran = entry.get("ran") if isinstance(entry, Mapping) else None
        size = entry.get("items") if isinstance(entry, Mapping) else None
        if type(ran) is int and type(size) is int:
            partial[str(name)] = (ran, size)
    return partial


@dataclass(slots=True)
class RunResult:
    """The verdict of a finished run."""

    run_id: str
    status: str
    aggregates: dict[str, dict[str, Aggregate]]
    thresholds: list[ThresholdResult]
    counts: dict[str, int]
    datasets: dict[str, str]
    prompts: list[dict[str, Any]]
    store_path: Path | None
    name: str = ""
    model: str = ""
    errors: list[str] = field(default_factory=list)
    """Run evaluators that raised (the run then fails)."""
    repeats: dict[str, Any] | None = None
    """Per-item flakiness when items ran more than once (`pytest_llmobs.repeats`)."""
    comparison: Any = None
    """The `pytest_llmobs.compare.Comparison` with the baseline, when one was given."""
    gate_failed: bool = False
    """The comparison found a regression beyond ``--llm-max-drop`` (see ``--llm-fail-on``)."""
    baseline_saved: str | None = None
    """The name this run was saved under as a baseline (``--llm-save-baseline``)."""
    baseline_not_saved: str | None = None
    """Why ``--llm-save-baseline`` saved nothing (the session did not pass)."""
    fail_on: tuple[str, ...] = ("threshold", "regression")
    """What fails the session besides failing tests (``--llm-fail-on``)."""
    missing: list[dict[str, str]] = field(default_factory=list)
    """Collected items whose result never arrived: ``{"node_id", "reason"}`` (e.g. an xdist
    worker crashed while running it)."""
    partial_datasets: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Datasets of which only some items ran (``-k``, ``--lf``, ``--deselect``, ``limit=``):
    name -> (items that ran, items in the dataset). Their gates judged those items only."""
    run_evaluator_aggregates: dict[str, list[str]] = field(default_factory=dict)
    """The aggregates run evaluators gave, by group."""

    @property
    def thresholds_passed(self) -> bool:
        return all(t.passed for t in self.thresholds) and not self.errors
