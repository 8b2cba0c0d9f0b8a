"""Comparing a run with a baseline: paired statistics, what changed, flipped items, the gate.

- `stats`: paired bootstrap intervals, exact McNemar, the verdict rule (pure maths);
- `items`: matching items across runs, per-item values, flipped items;
- `changes`: model, params, prompt (with text diffs), dataset and plugin version changes;
- `core`: `compare_runs` → `Comparison` (dataclasses in `model`, each with ``to_dict()``);
- `render`: text and markdown; `gate`: the end of a session with a baseline.
"""

from __future__ import annotations

from pytest_llmobs.compare.core import compare_runs, run_info
from pytest_llmobs.compare.model import (
    Change,
    Comparison,
    FlippedItem,
    MetricComparison,
    RunInfo,
)

__all__ = [
    "Change",
    "Comparison",
    "FlippedItem",
    "MetricComparison",
    "RunInfo",
    "compare_runs",
    "run_info",
]
