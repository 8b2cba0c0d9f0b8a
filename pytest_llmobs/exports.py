"""The portable JSON form of a run (CI artifacts, baselines in git, shard merges)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pytest_llmobs.aggregates import aggregates_from_dict
from pytest_llmobs.run import RunResult
from pytest_llmobs.settings import FAIL_POLICIES
from pytest_llmobs.thresholds import Threshold, ThresholdResult

EXPORT_FORMAT = "pytest-llmobs/run"
EXPORT_VERSION = 1


def export_run(run: Mapping[str, Any]) -> dict[str, Any]:
    """The stored run (header, summary, items) tagged with its format and version."""
    return {"format": EXPORT_FORMAT, "format_version": EXPORT_VERSION, **run}


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
    )
