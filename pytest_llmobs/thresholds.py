"""Quality gates: ``[dataset:] aggregate op number``, parsed early and evaluated at session end."""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pytest_llmobs.aggregates import ALL_ITEMS, COUNTS_PREFIX, Aggregate

_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
    "==": operator.eq,
}
_EXPRESSION = re.compile(
    r"""^\s*(?:(?P<dataset>[^:\s][^:]*?)\s*:\s*)?
        (?P<aggregate>[A-Za-z_](?:[\w\- ]*[\w\-])?(?:\.[\w\-]+?(?:->[\w\-]+)?)?)\s*
        (?P<op>>=|<=|==|>|<)\s*
        (?P<number>[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?)\s*$""",  # ASCII digits
    re.VERBOSE,
)


class ThresholdError(ValueError):
    """A threshold expression is malformed or names an aggregate that does not exist."""


@dataclass(frozen=True, slots=True)
class Threshold:
    """A parsed threshold; ``dataset`` is ``None`` for the whole run."""

    expression: str
    dataset: str | None
    aggregate: str
    op: str
    limit: float
    source: str = ""

    @property
    def group(self) -> str:
        return self.dataset if self.dataset is not None else ALL_ITEMS

    @property
    def key(self) -> tuple[str | None, str, str, float]:
        """What the threshold checks: two spelled differently (``x>=0.90``, ``x >= 0.9``, with
        the dataset as a prefix or from a marker) are one gate."""
        return (self.dataset, self.aggregate, self.op, self.limit)


@dataclass(frozen=True, slots=True)
class ThresholdResult:
    """The verdict of one threshold against the run's aggregates."""

    threshold: Threshold
    observed: float | None
    n: int
    passed: bool
    error: str | None = None
    """Why the threshold could not be evaluated (it then counts as failed)."""

    def to_dict(self) -> dict[str, Any]:
        t = self.threshold
        return {
            "expression": t.expression,
            "dataset": t.dataset,
            "aggregate": t.aggregate,
            "op": t.op,
            "limit": t.limit,
            "source": t.source,
            "observed": self.observed,
            "n": self.n,
            "passed": self.passed,
            "error": self.error,
        }


def parse_threshold(expression: str, *, dataset: str | None = None, source: str = "") -> Threshold:
    """Parse ``[dataset:] aggregate op number``; ``dataset`` applies when none is written."""
    match = _EXPRESSION.match(expression)
    if match is None:
        where = f" (from {source})" if source else ""
        raise ThresholdError(
            f"invalid threshold {expression!r}{where}: expected '[dataset:] aggregate op number' "
            "with op one of >=, >, <=, <, ==, e.g. 'capitals: mean_accuracy >= 0.9'"
        )
    written = match.group("dataset")
    limit = float(match.group("number"))
    if not math.isfinite(limit):
        raise ThresholdError(f"invalid threshold {expression!r}: limit must be a finite number")
    return Threshold(
        expression=" ".join(expression.split()),
        dataset=written.strip() if written else dataset,
        aggregate=match.group("aggregate"),
        op=match.group("op"),
        limit=limit,
        source=source,
    )


def lookup(
    aggregates: Mapping[str, Mapping[str, Aggregate]], threshold: Threshold
) -> tuple[float, int]:
    """The observed value and n for ``threshold``; unknown names raise `ThresholdError`."""
    group = aggregates.get(threshold.group)
    label = "the run" if threshold.dataset is None else f"dataset {threshold.dataset!r}"
    if group is None:
        known_groups = ", ".join(sorted(g for g in aggregates if g != ALL_ITEMS)) or "(none)"
        raise ThresholdError(
            f"{threshold.expression!r}: no dataset {threshold.dataset!r} in this run; "
            f"datasets: {known_groups}"
        )
    name, _, field = threshold.aggregate.partition(".")
    aggregate = group.get(name)
    if aggregate is None:
        raise ThresholdError(
            f"{threshold.expression!r}: no aggregate {name!r} for {label}; "
            f"known: {', '.join(sorted(group))}"
        )
    if not field:
        return aggregate.value, aggregate.n
    value = aggregate.field(field)
    if value is None and name.startswith(COUNTS_PREFIX):
        return 0.0, aggregate.n  # a value no item had: "at most 2 negative" holds with none
    if value is None:
        raise ThresholdError(
            f"{threshold.expression!r}: aggregate {name!r} has no field {field!r}; "
            f"known: {', '.join(aggregate.fields()) or '(none)'}"
        )
    return value, aggregate.n


def evaluate(
    thresholds: list[Threshold], aggregates: Mapping[str, Mapping[str, Aggregate]]
) -> list[ThresholdResult]:
    """Evaluate every threshold; one naming a missing aggregate fails with an ``error``."""
    results = []
    for threshold in thresholds:
        try:
            observed, n = lookup(aggregates, threshold)
        except ThresholdError as exc:
            results.append(ThresholdResult(threshold, None, 0, passed=False, error=str(exc)))
            continue
        passed = _OPERATORS[threshold.op](observed, threshold.limit)
        results.append(ThresholdResult(threshold, observed, n, passed))
    return results
