"""Run-level aggregates per dataset (and over the whole run) from item outcomes and scores.

Names: ``count``, ``pass_rate``; for each numeric or boolean score ``s``: ``mean_s``, ``std_s``,
``min_s``, ``max_s``, ``p50_s``, ``p95_s``; for each categorical score ``counts_s`` whose fields
are the counts per value (``counts_user_feedback.positive``).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

ALL_ITEMS = "*"
"""The aggregate group holding every item of the run (thresholds without a dataset)."""

COUNTED_OUTCOMES = frozenset({"passed", "failed", "error"})


@dataclass(slots=True)
class Aggregate:
    """One named aggregate of one group, with its sample size and optional extra fields."""

    name: str
    value: float
    n: int
    extra: dict[str, float] = field(default_factory=dict)

    def field(self, name: str) -> float | None:
        return self.extra.get(name)

    def fields(self) -> list[str]:
        return sorted(self.extra)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "value": self.value, "n": self.n}
        if self.extra:
            data["extra"] = dict(self.extra)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Aggregate:
        return cls(
            str(data["name"]),
            float(data["value"]),
            int(data["n"]),
            {str(k): float(v) for k, v in (data.get("extra") or {}).items()},
        )


@dataclass(slots=True)
class ItemSummary:
    """What aggregation needs from one run item (kept in memory; traces are not)."""

    dataset: str | None
    outcome: str
    scores: list[tuple[str, str, Any]]
    """(name, data_type, value) for every score of the item's trace."""

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> ItemSummary:
        trace = item.get("trace") or {}
        scores = [(s["name"], s["data_type"], s["value"]) for s in trace.get("scores", [])]
        return cls(item.get("dataset"), str(item["outcome"]), scores)


def percentile(ordered: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0–100) of sorted values, interpolating linearly."""
    if not ordered:
        raise ValueError("percentile of no values")
    position = (len(ordered) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def numeric_aggregates(score: str, values: Sequence[float]) -> list[Aggregate]:
    """mean, std (sample), min, max, p50 and p95 of one score's values."""
    n = len(values)
    ordered = sorted(values)
    mean = math.fsum(ordered) / n
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in ordered) / (n - 1)) if n > 1 else 0.0
    return [
        Aggregate(f"mean_{score}", mean, n),
        Aggregate(f"std_{score}", std, n),
        Aggregate(f"min_{score}", ordered[0], n),
        Aggregate(f"max_{score}", ordered[-1], n),
        Aggregate(f"p50_{score}", percentile(ordered, 50), n),
        Aggregate(f"p95_{score}", percentile(ordered, 95), n),
    ]


def group_aggregates(items: Sequence[ItemSummary]) -> dict[str, Aggregate]:
    """The aggregates of one group of items, keyed by name."""
    result: dict[str, Aggregate] = {"count": Aggregate("count", float(len(items)), len(items))}
    counted = [i for i in items if i.outcome in COUNTED_OUTCOMES]
    if counted:
        passed = sum(1 for i in counted if i.outcome == "passed")
        result["pass_rate"] = Aggregate("pass_rate", passed / len(counted), len(counted))
    numeric: dict[str, list[float]] = defaultdict(list)
    categorical: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for item in items:
        for name, data_type, value in item.scores:
            if data_type == "CATEGORICAL":
                categorical[name][str(value)] += 1
            else:
                numeric[name].append(float(value))
    for name in sorted(numeric):
        for aggregate in numeric_aggregates(name, numeric[name]):
            result[aggregate.name] = aggregate
    for name in sorted(categorical):
        counts = categorical[name]
        total = sum(counts.values())
        result[f"counts_{name}"] = Aggregate(
            f"counts_{name}", float(total), total, {k: float(v) for k, v in sorted(counts.items())}
        )
    return result


def compute_aggregates(items: Iterable[ItemSummary]) -> dict[str, dict[str, Aggregate]]:
    """Aggregates per dataset plus the whole run under `ALL_ITEMS`."""
    groups: dict[str, list[ItemSummary]] = defaultdict(list)
    for item in items:
        groups[ALL_ITEMS].append(item)
        if item.dataset is not None:
            groups[item.dataset].append(item)
    if ALL_ITEMS not in groups:
        groups[ALL_ITEMS] = []
    return {name: group_aggregates(members) for name, members in groups.items()}


def aggregates_to_dict(
    aggregates: Mapping[str, Mapping[str, Aggregate]],
) -> dict[str, list[dict[str, Any]]]:
    return {group: [a.to_dict() for a in named.values()] for group, named in aggregates.items()}


def aggregates_from_dict(
    data: Mapping[str, Sequence[Mapping[str, Any]]],
) -> dict[str, dict[str, Aggregate]]:
    return {
        group: {a["name"]: Aggregate.from_dict(a) for a in entries}
        for group, entries in data.items()
    }
