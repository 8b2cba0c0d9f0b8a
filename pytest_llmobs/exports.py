"""The portable JSON form of a run (CI artifacts, baselines in git, shard merges)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_llmobs.aggregate_model import aggregates_from_dict
from pytest_llmobs.run_result import RunResult, partial_datasets_from_dict
from pytest_llmobs.settings import FAIL_POLICIES
from pytest_llmobs.thresholds import Threshold, ThresholdResult

if TYPE_CHECKING:
    from pytest_llmobs.store import Store

EXPORT_FORMAT = "pytest-llmobs/run"
EXPORT_VERSION = 1
SNAPSHOTS = "snapshots"
"""Export key: ``{"prompts": [stored prompt versions], "datasets": [{"name", "version",
"items"}]}``, the prompt versions and dataset snapshots the run used, so that a run merged or
uploaded where its store is not still has them."""


def export_run(run: Mapping[str, Any]) -> dict[str, Any]:
    """The stored run (header, summary, items) tagged with its format and version."""
    return {"format": EXPORT_FORMAT, "format_version": EXPORT_VERSION, **run}


def with_snapshots(run: Mapping[str, Any], store: Store) -> dict[str, Any]:
    """``run`` with the prompt versions and dataset snapshots it used, as ``store`` keeps them
    (those it lacks are left out)."""
    wanted = {(str(p["name"]), int(p["version"])) for p in run.get("prompts") or []}
    for item in run.get("items") or []:
        wanted.update((str(p["name"]), int(p["version"])) for p in item.get("prompts") or [])
    prompts = [store.get_prompt(name, version=version) for name, version in sorted(wanted)]
    datasets = []
    for name, version in sorted((run.get("datasets") or {}).items()):
        items = store.get_dataset(name, version)
        if items is not None:
            datasets.append({"name": name, "version": version, "items": items})
    snapshots = {"prompts": [p for p in prompts if p is not None], "datasets": datasets}
    return {**run, SNAPSHOTS: snapshots}


def import_snapshots(run: Mapping[str, Any], store: Store) -> None:
    """Keep an exported run's prompt versions and dataset snapshots in ``store`` (those it has
    already are governed again by its policy, and keep their content)."""
    snapshots = run.get(SNAPSHOTS) or {}
    for prompt in snapshots.get("prompts") or []:
        store.import_prompt_version(prompt)
    for dataset in snapshots.get("datasets") or []:
        name, version = str(dataset["name"]), str(dataset["version"])
        store.record_dataset(name, version, list(dataset["items"]))


def dump_run(run: Mapping[str, Any], *, indent: int | None = 2) -> str:
    return json.dumps(export_run(run), ensure_ascii=False, indent=indent)


def result_from_run(run: Mapping[str, Any], store_path: Path | None = None) -> RunResult:
    """Rebuild the verdict of a stored or exported run, for display."""
    verdicts = []
    for entry in run.get("thresholds") or []:
        threshold = Threshold(
            expression=entry["expression"],
            dataset=entry.get("dataset"),
            aggregate=entry["aggregate"],
            op=entry["op"],
            limit=float(entry["limit"]),
            source=entry.get("source", ""),
        )
        verdicts.append(
            ThresholdResult(
                threshold,
                entry.get("observed"),
                int(entry.get("n", 0)),
                bool(entry["passed"]),
                entry.get("error"),
            )
        )
    return RunResult(
        run_id=str(run["id"]),
        status=str(run.get("status", "unknown")),
        aggregates=aggregates_from_dict(run.get("aggregates") or {}),
        thresholds=verdicts,
        counts=dict(run.get("counts") or {}),
        datasets=dict(run.get("datasets") or {}),
        prompts=list(run.get("prompts") or []),
        store_path=store_path,
        name=str(run.get("name", "")),
        model=str(run.get("model", "")),
        errors=list(run.get("errors") or []),
        missing=[dict(entry) for entry in run.get("missing") or []],
        fail_on=tuple(run.get("fail_on", FAIL_POLICIES)),  # stored when not the default
        partial_datasets=partial_datasets_from_dict(run.get("partial_datasets")),
        repeats=run.get("repeats") if isinstance(run.get("repeats"), dict) else None,
        run_evaluator_aggregates={
            str(group): [str(name) for name in names]
            for group, names in (run.get("run_evaluator_aggregates") or {}).items()
            if isinstance(names, list)
        },
    )
