"""The aggregation data model: `ItemSummary` (what aggregation keeps of one run item) and
`Aggregate` (one named figure of a group), with their plain-data forms."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pytest_llmobs.aggregate_names import JUDGE_GENERATION_PREFIX, KIND_CLASH, LABEL_EXPECTED
from pytest_llmobs.providers.base import MAX_TOKEN_COUNT, cost_value, token_count


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


GenerationFigures = tuple[float | None, int | None, int | None, float | None]
"""A generation's latency in ms, input and output tokens, and cost; None where unknown (tokens:
the server's answer held no usage)."""


@dataclass(slots=True)
class ItemSummary:
    """What aggregation needs from one run item (kept in memory; traces are not)."""

    dataset: str | None
    outcome: str
    scores: Sequence[tuple[str, str, Any]]
    """(name, data_type, value) for every score of the item's trace."""
    labels: Sequence[tuple[str, str, str]] = ()
    """(score name, expected, predicted) for every ``label`` score."""
    generations: Sequence[GenerationFigures] = ()
    """(latency ms, input tokens, output tokens, cost) for every generation of the model under
    test."""
    case: str | None = None
    """The test case the item is a repeat of (its node id without the repeat part); None: its
    own case."""
    judge_generations: Sequence[GenerationFigures] = ()
    """The same figures for the judge model's generations (``llm_judge``)."""

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> ItemSummary:
        trace = item.get("trace") or {}
        scores, labels = [], []
        for score in trace.get("scores", []):
            metadata = score.get("metadata") or {}
            if metadata.get(KIND_CLASH):
                continue
            expected = metadata.get(LABEL_EXPECTED)
            if expected is not None:
                labels.append((score["name"], str(expected), str(score["value"])))
            else:
                scores.append((score["name"], score["data_type"], score["value"]))
        generations: list[GenerationFigures] = []
        judged: list[GenerationFigures] = []
        for observation in trace.get("observations", []):
            if observation.get("type") == "generation":
                name = observation.get("name")
                judge = isinstance(name, str) and name.startswith(JUDGE_GENERATION_PREFIX)
                (judged if judge else generations).append(_generation_figures(observation))
        # Tuples, not lists: a run keeps one summary per item, and the garbage collector stops
        # tracking tuples of plain values, so a long session's collections do not revisit them.
        node_id = item.get("node_id")
        repeat = item.get("repeat")
        case = None if node_id is None else strip_repeat_id(str(node_id), int(repeat or 0))
        return cls(
            item.get("dataset"),
            str(item["outcome"]),
            tuple(scores),
            tuple(labels),
            tuple(generations),
            case,
            tuple(judged),
        )


def strip_repeat_id(node_id: str, repeat: int) -> str:
    """``test_x[france-r1]`` → ``test_x[france]``; a node id without that part is unchanged."""
    head, bracket, params = node_id.partition("[")
    if not bracket or not params.endswith("]"):
        return node_id
    parts = params[:-1].split("-")
    marker = f"r{repeat}"
    if marker not in parts:
        return node_id
    del parts[len(parts) - 1 - parts[::-1].index(marker)]
    return f"{head}[{'-'.join(parts)}]" if parts else head


def _generation_figures(
    observation: Mapping[str, Any],
) -> GenerationFigures:
    latency = _latency((observation.get("metadata") or {}).get("latency_ms"))
    if latency is None and observation.get("end_time") is not None:
        latency = (observation["end_time"] - observation["start_time"]) * 1000.0
    usage = observation.get("usage") or {}
    cost = observation.get("cost")
    unreported = (observation.get("metadata") or {}).get("usage_reported") is False
    tokens_in = tokens_out = None  # unknown, not 0 (however recorded): totals leave it out
    if usage and not unreported:
        tokens_in, tokens_out = _count(usage.get("input")), _count(usage.get("output"))
        if tokens_in is None or tokens_out is None:
            tokens_in = tokens_out = None
    return (
        latency,
        tokens_in,
        tokens_out,
        _cost(cost),
    )


def _latency(value: object) -> float | None:
    """The latency a provider measured (``metadata.latency_ms``); None for anything else a
    test may have put under that key ("fast"), so the span's own times count instead."""
    if type(value) is float:  # (what the providers record: no call for it)
        return value if 0.0 <= value < math.inf else None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            latency = float(value)
        except OverflowError:
            return None
        return latency if math.isfinite(latency) and latency >= 0 else None
    return None


def _count(value: object) -> int | None:
    """A stored token count, or None (unknown) for what is not one: `Observation.update`
    refuses such counts, but a run recorded by an older version may hold one."""
    if type(value) is int and 0 <= value <= MAX_TOKEN_COUNT:  # (the common case, at once)
        return value
    try:
        return token_count(value, "usage")
    except ValueError:
        return None


def _cost(value: object) -> float | None:
    if value is None or (type(value) is float and 0.0 <= value < math.inf):
        return value
    try:
        return cost_value(value, "cost")
    except ValueError:
        return None


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
