"""Quality gates: ``[dataset:] aggregate op number``, parsed early and evaluated at session end."""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pytest_llmobs.aggregate_model import Aggregate
from pytest_llmobs.aggregate_names import (
    ALL_ITEMS,
    COUNTS_PREFIX,
    FLAKY_AGGREGATES,
    GENERATION_AGGREGATES,
    LABEL_METRICS,
    NUMERIC_PREFIXES,
    REPEAT_VARIANCE_PREFIX,
)
from pytest_llmobs.aggregates import MIN_BOOTSTRAP_SAMPLES

_INTERVAL_FIELDS = frozenset({"ci_low", "ci_high"})


def holds(threshold: Threshold, value: float) -> bool:
    """Whether ``value`` meets ``threshold``'s comparison."""
    return _OPERATORS[threshold.op](value, threshold.limit)


def _unscored(name: str, group: Mapping[str, Any]) -> str:
    """`` (no item recorded a score 'accuracy')`` when ``name`` is an aggregate of a score of
    which the group has none (a run stopped before any item scored, or a misspelt name)."""
    if name in GENERATION_AGGREGATES:
        return " (no generation was recorded)"
    if name in FLAKY_AGGREGATES or name.startswith(REPEAT_VARIANCE_PREFIX):
        return _unrepeated(name, group)
    prefix = next((p for p in (*NUMERIC_PREFIXES, COUNTS_PREFIX) if name.startswith(p)), None)
    score = name.removeprefix(prefix) if prefix else ""
    if not score:
        return ""
    shapes = [*NUMERIC_PREFIXES, COUNTS_PREFIX]
    if any(f"{p}{score}" in group for p in shapes) or any(
        f"{m}_{score}" in group for m in LABEL_METRICS
    ):
        return ""  # recorded, of another kind (mean_ of a categorical score, say)
    return f" (no item recorded a score {score!r})"


def _unrepeated(name: str, group: Mapping[str, Any]) -> str:
    """Why a repeat aggregate (`repeats`) is missing: no item ran more than once, or (one of
    ``mean_repeat_variance_<score>``) no repeated item recorded the score in two repeats."""
    if not any(flaky in group for flaky in FLAKY_AGGREGATES):
        return " (it exists only with --llm-repeat / repeat=: no item ran more than once)"
    score = name.removeprefix(REPEAT_VARIANCE_PREFIX)
    return f" (no item recorded a score {score!r} in two of its repeats)"


def _has_interval(name: str) -> bool:
    """Whether aggregate ``name`` carries a 95% interval when it has enough samples."""
    return name == "pass_rate" or (name.startswith("mean_") and name not in GENERATION_AGGREGATES)


_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
    "==": operator.eq,
}
_EXPRESSION = re.compile(
    r"""^\s*(?:(?P<dataset>[^:\s][^:]*?)\s*:\s*)?
        (?P<aggregate>[A-Za-z_](?:[^\x00-\x1f\x7f<>=]|->|\\>)*?)\s*  # (a label: "a b->c/d")
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
    unjudged: str | None = None
    """Why this run cannot judge it (``llmobs merge``: a run evaluator's aggregate, which the
    merge does not recompute): `evaluate` says so, and it neither passes nor fails."""

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
    """Why the threshold could not be evaluated: it then counts as failed, unless ``passed``
    (see `evaluated`)."""

    @property
    def evaluated(self) -> bool:
        """False for a threshold left unjudged without failing (``passed`` with an ``error``):
        its dataset's items were all skipped or xfailed, so no aggregate of theirs exists. The
        stored form (``passed`` true, the reason in ``error``) reads the same in older readers."""
        return self.error is None or not self.passed

    def to_dict(self) -> dict[str, Any]:
        """Plain data; ``"evaluated": false`` only for a threshold not evaluated (absent, as in
        runs stored before it existed, means evaluated)."""
        t = self.threshold
        data = {
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
        return data if self.evaluated else {**data, "evaluated": False}


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
    name, field = _name_and_field(threshold.aggregate, group)
    aggregate = group.get(name)
    if aggregate is None:
        raise ThresholdError(
            f"{threshold.expression!r}: no aggregate {name!r} for {label}{_unscored(name, group)}"
            f"; known: {', '.join(sorted(group))}"
        )
    if not field:
        return aggregate.value, aggregate.n
    value = aggregate.field(field)
    if value is None and name.startswith(COUNTS_PREFIX):
        return 0.0, aggregate.n  # a value no item had: "at most 2 negative" holds with none
    if value is None and field in _INTERVAL_FIELDS and _has_interval(name):
        raise ThresholdError(
            f"{threshold.expression!r}: aggregate {name!r} has no 95% interval: its bootstrap "
            f"needs at least {MIN_BOOTSTRAP_SAMPLES} items (the repeats of one item count once)"
        )
    if value is None:
        raise ThresholdError(
            f"{threshold.expression!r}: aggregate {name!r} has no field {field!r}; "
            f"known: {', '.join(aggregate.fields()) or '(none)'}"
        )
    return value, aggregate.n


def _name_and_field(written: str, group: Mapping[str, Aggregate]) -> tuple[str, str]:
    """``aggregate[.field]`` split where the group has that aggregate: scores and labels may
    have dots of their own (``mean_rouge.l``, ``counts_tone.v1.2``); else at the first dot."""
    if written in group:
        return written, ""
    dots = [i for i, char in enumerate(written) if char == "."]
    for dot in reversed(dots):
        if written[:dot] in group:
            return written[:dot], written[dot + 1 :]
    name, _, field = written.partition(".")
    return name, field


def _uncounted(
    aggregates: Mapping[str, Mapping[str, Aggregate]], threshold: Threshold
) -> str | None:
    """Why ``threshold`` cannot be judged though its name is not a typo: every item of its group
    was skipped or xfailed (none counted, so no ``pass_rate`` nor score aggregate exists) and it
    names an aggregate counted items would give. None otherwise."""
    group = aggregates.get(threshold.group) or {}
    count = group.get("count")
    if count is None or count.n == 0 or "pass_rate" in group:
        return None
    name = threshold.aggregate.partition(".")[0]
    if not _counted_items_name(name):
        return None
    where = "the run" if threshold.dataset is None else f"dataset {threshold.dataset!r}"
    return (
        f"{threshold.expression!r}: not evaluated: no item of {where} was counted "
        f"({count.n} skipped or xfailed)"
    )


def _counted_items_name(name: str) -> bool:
    """Whether ``name`` is an aggregate only counted items give: ``pass_rate`` or a score's
    (`score_aggregate_names`); a name of no such shape is a typo whatever ran."""
    if name == "pass_rate" or name in FLAKY_AGGREGATES:  # (items with verdicts in two repeats)
        return True
    if name in GENERATION_AGGREGATES:  # from generations, which skipped items count too
        return False
    prefixes = (*NUMERIC_PREFIXES, COUNTS_PREFIX)
    if any(name.startswith(prefix) and len(name) > len(prefix) for prefix in prefixes):
        return True
    return any(name == metric or name.startswith(f"{metric}_") for metric in LABEL_METRICS)


def evaluate(
    thresholds: list[Threshold], aggregates: Mapping[str, Mapping[str, Aggregate]]
) -> list[ThresholdResult]:
    """Evaluate every threshold; one naming a missing aggregate fails with an ``error``, except
    when its group's items were all skipped or xfailed: not evaluated then, and not failed (nor
    is one the run cannot judge: `Threshold.unjudged`)."""
    results = []
    for threshold in thresholds:
        if threshold.unjudged is not None:
            unjudged = f"{threshold.expression!r}: not evaluated: {threshold.unjudged}"
            results.append(ThresholdResult(threshold, None, 0, passed=True, error=unjudged))
            continue
        try:
            observed, n = lookup(aggregates, threshold)
        except ThresholdError as exc:
            reason = _uncounted(aggregates, threshold)
            if reason is not None:
                results.append(ThresholdResult(threshold, None, 0, passed=True, error=reason))
                continue
            results.append(ThresholdResult(threshold, None, 0, passed=False, error=str(exc)))
            continue
        passed = holds(threshold, observed)
        results.append(ThresholdResult(threshold, observed, n, passed))
    return results
