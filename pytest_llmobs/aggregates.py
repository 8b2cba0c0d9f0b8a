"""Run-level aggregates per dataset (and over the whole run) from item outcomes and scores.

Names:

- ``count``, ``pass_rate`` (with a Wilson 95% interval in ``.ci_low``/``.ci_high``);
- for each numeric or boolean score ``s``: ``mean_s`` (with ``.ci_low``/``.ci_high``: Wilson for
  boolean scores, a seeded bootstrap for numeric ones), ``std_s``, ``min_s``, ``max_s``,
  ``p50_s`` (the median), ``p95_s``, over the counted items, each item's values of ``s``
  averaged first (``n`` counts items, not values); values however large (finite) aggregate
  without overflow, a result beyond the float limit (a spread near it) being clamped to it;
- with repeats (``--llm-repeat``) the intervals of ``pass_rate`` and ``mean_s`` are over the
  items, each item's repeats averaged first (Wilson's for ``pass_rate`` and boolean scores, a
  bootstrap for numeric ones): running an item again adds no new item, so it must not narrow
  the interval as if it did;
- a bootstrap needs `MIN_BOOTSTRAP_SAMPLES` items: from fewer, the aggregate has no
  ``.ci_low``/``.ci_high`` (Wilson's interval is defined from one);
- for each categorical score ``s``: ``counts_s`` whose fields count each value
  (``counts_user_feedback.positive``);
- for ``label`` scores (predicted vs expected): ``accuracy``, ``precision_macro``,
  ``recall_macro``, ``f1_macro``, the ``_micro`` twins and ``confusion`` (fields
  ``"<expected>-><predicted>"``), suffixed ``_<name>`` for a label score not named ``label``;
- from generations: ``mean_latency_ms``, ``p50_latency_ms``, ``p95_latency_ms``,
  ``max_latency_ms``, ``generations``, ``total_input_tokens``, ``total_output_tokens``,
  ``total_tokens`` (over the generations whose answer reported usage; their ``n`` counts them)
  and ``total_cost`` (over those whose cost is known), over the generations of the model
  under test; the judge model's calls (``llm_judge``) are counted apart, in
  ``judge_generations``, ``judge_total_tokens`` and ``judge_total_cost``.
"""

from __future__ import annotations

import functools
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from pytest_llmobs.aggregate_model import Aggregate, ItemSummary, aggregates_to_dict
from pytest_llmobs.aggregate_names import ALL_ITEMS, COUNTED_OUTCOMES, COUNTS_PREFIX
from pytest_llmobs.evaluators.run_level import (
    Interval,
    bootstrap_mean_interval,
    classification_metrics,
    wilson_interval,
)
from pytest_llmobs.generation_stats import generation_aggregates, judge_aggregates
from pytest_llmobs.safe_stats import mean_of, overflow_scale, percentile, std_of


def _bootstrap(values: Sequence[float]) -> Interval | None:
    """`bootstrap_mean_interval` of finite values, however large; None for fewer than
    `MIN_BOOTSTRAP_SAMPLES` (resampling one value says nothing of its spread)."""
    if len(values) < MIN_BOOTSTRAP_SAMPLES:
        return None
    scale = overflow_scale(values)
    if scale == 1.0:
        return bootstrap_mean_interval(values)
    scaled = bootstrap_mean_interval([v / scale for v in values])
    low, high = min(values), max(values)
    return Interval(
        min(high, max(low, scaled.low * scale)),
        min(high, max(low, scaled.high * scale)),
        scaled.method,
    )


MIN_BOOTSTRAP_SAMPLES = 2
"""Samples (items, or test cases under repeats) a bootstrap interval needs: from one, every
resample is that value and the interval would have no width (``ci_low`` = the mean)."""


def _interval_fields(interval: Interval | None) -> dict[str, float]:
    return {} if interval is None else {"ci_low": interval.low, "ci_high": interval.high}


def numeric_aggregates(
    score: str,
    values: Sequence[float],
    *,
    boolean: bool = False,
    case_means: Sequence[float] | None = None,
) -> list[Aggregate]:
    """mean (with a 95% interval), std (sample), min, max, p50 and p95 of one score's values
    (one per item: each item's mean of the score).

    ``boolean``: the values are booleans (an item's mean of several may lie between 0 and 1):
    the interval is Wilson's, over the items, each counting its mean as its share of a success.
    ``case_means``: with repeats, the mean of each test case's values; the interval is then over
    them (the cases are the independent samples, not the repeats): Wilson's for a boolean, else
    a bootstrap. (A bootstrap of averaged booleans, nearly all 1, was narrower than Wilson's
    interval of the same run without repeats: repeating made `ci_low` gates easier.)"""
    n = len(values)
    ordered = sorted(values)
    mean = mean_of(ordered)
    std = std_of(ordered, mean)
    cases = ordered if case_means is None else case_means
    interval = wilson_interval(math.fsum(cases), len(cases)) if boolean else _bootstrap(cases)
    return [
        Aggregate(f"mean_{score}", mean, n, _interval_fields(interval)),
        Aggregate(f"std_{score}", std, n),
        Aggregate(f"min_{score}", ordered[0], n),
        Aggregate(f"max_{score}", ordered[-1], n),
        Aggregate(f"p50_{score}", percentile(ordered, 50), n),
        Aggregate(f"p95_{score}", percentile(ordered, 95), n),
    ]


def group_aggregates(items: Sequence[ItemSummary]) -> dict[str, Aggregate]:
    """The aggregates of one group of items, keyed by name."""
    result: dict[str, Aggregate] = {"count": Aggregate("count", float(len(items)), len(items))}
    repeated = _repeated(items)
    counted = [i for i in items if i.outcome in COUNTED_OUTCOMES]
    if counted:
        passed = sum(1 for i in counted if i.outcome == "passed")
        cases = _case_means(counted, lambda i: [float(i.outcome == "passed")]) if repeated else []
        interval = (
            wilson_interval(math.fsum(cases), len(cases))  # (over test cases, as numeric_aggr.)
            if repeated
            else wilson_interval(passed, len(counted))
        )
        result["pass_rate"] = Aggregate(
            "pass_rate", passed / len(counted), len(counted), _interval_fields(interval)
        )
    numeric: dict[str, list[float]] = defaultdict(list)
    not_boolean: set[str] = set()  # a Wilson interval only when every value is a boolean
    categorical: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    labels: dict[str, tuple[list[str], list[str]]] = defaultdict(lambda: ([], []))
    # Scores and labels of skipped and xfailed items stay out, as they do of the pass rate:
    # a known failure marked xfail must not pull mean_accuracy under its gate.
    item_means = [_item_means(item) for item in counted]
    for item, means in zip(counted, item_means, strict=True):
        for name, data_type, value in item.scores:
            if data_type == "CATEGORICAL":
                categorical[name][str(value)] += 1
            elif data_type != "BOOLEAN":
                not_boolean.add(name)
        for name, mean in means.items():
            numeric[name].append(mean)
        for name, expected, predicted in item.labels:
            labels[name][0].append(expected)
            labels[name][1].append(predicted)
    by_item = (
        {id(item): means for item, means in zip(counted, item_means, strict=True)}
        if repeated
        else {}
    )
    for name in sorted(numeric):
        case_means = (
            _case_means(counted, functools.partial(_score_mean, by_item=by_item, name=name))
            if repeated
            else None
        )
        if case_means is not None and len(case_means) == len(numeric[name]):
            case_means = None  # no test that records it was repeated: its items are its cases
        for aggregate in numeric_aggregates(
            name, numeric[name], boolean=name not in not_boolean, case_means=case_means
        ):
            result[aggregate.name] = aggregate
    for name in sorted(labels):
        for aggregate in label_aggregates(name, *labels[name]):
            result[aggregate.name] = aggregate
    for aggregate in generation_aggregates(g for item in items for g in item.generations):
        result[aggregate.name] = aggregate
    for aggregate in judge_aggregates(g for item in items for g in item.judge_generations):
        result[aggregate.name] = aggregate
    for name in sorted(categorical):
        counts = categorical[name]
        total = sum(counts.values())
        result[f"{COUNTS_PREFIX}{name}"] = Aggregate(
            f"{COUNTS_PREFIX}{name}",
            float(total),
            total,
            {k: float(v) for k, v in sorted(counts.items())},
        )
    return result


def _repeated(items: Sequence[ItemSummary]) -> bool:
    """Whether some test case ran more than once in ``items`` (``--llm-repeat``)."""
    cases = [item.case for item in items if item.case is not None]
    return len(set(cases)) < len(cases)


def _item_means(item: ItemSummary) -> dict[str, float]:
    """The item's mean of each numeric or boolean score: a test that records one score several
    times is still one sample, or a single item would look like many and narrow the interval."""
    scores = item.scores
    if len(scores) == 1:  # the usual case: one score, its own mean
        name, data_type, value = scores[0]
        return {} if data_type == "CATEGORICAL" else {name: float(value)}
    values: dict[str, list[float]] = defaultdict(list)
    for name, data_type, value in scores:
        if data_type != "CATEGORICAL":
            values[name].append(float(value))
    return {name: v[0] if len(v) == 1 else mean_of(v) for name, v in values.items()}


def _score_mean(
    item: ItemSummary, by_item: Mapping[int, Mapping[str, float]], name: str
) -> list[float]:
    mean = by_item[id(item)].get(name)
    return [] if mean is None else [mean]


def _case_means(
    items: Sequence[ItemSummary], values_of: Callable[[ItemSummary], list[float]]
) -> list[float]:
    """The mean of each test case's values, over its repeats (cases without values left out)."""
    by_case: dict[object, list[float]] = defaultdict(list)
    for item in items:
        by_case[item.case if item.case is not None else id(item)].extend(values_of(item))
    return [mean_of(values) for values in by_case.values() if values]


def label_aggregates(name: str, expected: list[str], predicted: list[str]) -> list[Aggregate]:
    """Classification metrics and the confusion matrix of one label score."""
    metrics, confusion = classification_metrics(expected, predicted)
    suffix = "" if name == "label" else f"_{name}"
    n = len(expected)
    return [Aggregate(f"{k}{suffix}", v, n) for k, v in metrics.items()] + [
        Aggregate(f"confusion{suffix}", float(n), n, confusion)
    ]


def compute_aggregates(items: Iterable[ItemSummary]) -> dict[str, dict[str, Aggregate]]:
    """Aggregates per dataset plus the whole run under `ALL_ITEMS`."""
    groups: dict[str, list[ItemSummary]] = defaultdict(list)
    for item in items:
        groups[ALL_ITEMS].append(item)
        if item.dataset is not None:
            groups[item.dataset].append(item)
    whole = group_aggregates(groups.pop(ALL_ITEMS, []))
    run_size = int(whole["count"].value)
    result = {ALL_ITEMS: whole}
    for name, members in groups.items():
        # a dataset holding every item of the run (the usual case) has the run's aggregates
        result[name] = dict(whole) if len(members) == run_size else group_aggregates(members)
    return result


AGGREGATION = 4
"""How a run's item aggregates were computed, stored in its summary as ``aggregation``: 4, a
boolean's and ``pass_rate``'s interval is Wilson's under repeats too, and a mean lies within
its values; 3, a bootstrap interval needs two samples (before, one sample gave ``ci_low`` =
``ci_high``); 2, each test's mean of a score is one sample; without it (runs stored before),
each recorded value was."""


def upgrade_aggregates(run: dict[str, Any]) -> None:
    """Recompute, in place, the item aggregates of a run stored before `AGGREGATION`, so that
    it reads (shows, compares, rescores) as a run stored today: a test that recorded a score
    several times is one sample. Aggregates its items cannot give (a run evaluator's, repeats')
    stay as stored."""
    stored = run.get("aggregates")
    if run.get("aggregation") == AGGREGATION or not stored or not run.get("items"):
        return
    fresh = aggregates_to_dict(compute_aggregates(ItemSummary.from_item(i) for i in run["items"]))
    upgraded: dict[str, list[dict[str, Any]]] = {}
    for group, entries in stored.items():
        recomputed = {entry["name"]: entry for entry in fresh.get(group, [])}
        upgraded[group] = [recomputed.pop(e["name"], e) for e in entries]
        upgraded[group] += recomputed.values()
    upgraded.update((group, entries) for group, entries in fresh.items() if group not in stored)
    run["aggregates"] = upgraded
    run["aggregation"] = AGGREGATION
