"""Run-level aggregates per dataset (and over the whole run) from item outcomes and scores.

Names:

- ``count``, ``pass_rate`` (with a Wilson 95% interval in ``.ci_low``/``.ci_high``);
- for each numeric or boolean score ``s``: ``mean_s`` (with ``.ci_low``/``.ci_high``: Wilson for
  boolean scores, a seeded bootstrap for numeric ones), ``std_s``, ``min_s``, ``max_s``,
  ``p50_s`` (the median), ``p95_s``, over the counted items, each item's values of ``s``
  averaged first (``n`` counts items, not values); values however large (finite) aggregate
  without overflow, a result beyond the float limit (a spread near it) being clamped to it;
- with repeats (``--llm-repeat``) the intervals of ``pass_rate`` and ``mean_s`` come from a
  bootstrap over the items, each item's repeats averaged first: running an item again adds no
  new item, so it must not narrow the interval as if it did;
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
import sys
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pytest_llmobs.evaluators.run_level import (
    Interval,
    bootstrap_mean_interval,
    classification_metrics,
    wilson_interval,
)

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


GenerationFigures = tuple[float | None, int | None, int | None, float | None]
"""A generation's latency in ms, input and output tokens, and cost; None where unknown (tokens:
the server's answer held no usage)."""

JUDGE_GENERATION_PREFIX = "llm_judge:"
"""Names an ``llm_judge`` call's generation (``llm_judge:<rubric>``): an evaluator's call, kept
out of the figures of the model under test."""


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


COUNTS_PREFIX = "counts_"
"""Prefix of a categorical score's aggregate, whose fields are the values seen and their counts."""

NUMERIC_PREFIXES = ("mean_", "std_", "min_", "max_", "p50_", "p95_")
"""Prefixes of a numeric or boolean score's aggregates (`numeric_aggregates`)."""

LABEL_METRICS = (
    "accuracy",
    "precision_macro",
    "recall_macro",
    "f1_macro",
    "precision_micro",
    "recall_micro",
    "f1_micro",
    "confusion",
)
"""Aggregates of a ``label`` score (`label_aggregates`), suffixed ``_<name>`` unless ``label``."""

GENERATION_AGGREGATES = frozenset(
    {
        "generations",
        "mean_latency_ms",
        "p50_latency_ms",
        "p95_latency_ms",
        "max_latency_ms",
        "total_input_tokens",
        "total_output_tokens",
        "total_tokens",
        "total_cost",
        "judge_generations",
        "judge_total_tokens",
        "judge_total_cost",
    }
)
"""Names `generation_aggregates` and `judge_aggregates` may give."""

BUILTIN_AGGREGATES = frozenset({"count", "pass_rate"}) | GENERATION_AGGREGATES
"""Aggregates every run may have whatever its scores: a score's aggregate must not take one."""


def score_aggregate_names(name: str, kind: str) -> list[str]:
    """The aggregate names a score ``name`` of ``kind`` gives: ``"number"`` (numeric or
    boolean), ``"string"`` (categorical) or ``"label"``.

    >>> score_aggregate_names("quality", "string")
    ['counts_quality']
    """
    if kind == "number":
        return [f"{prefix}{name}" for prefix in NUMERIC_PREFIXES]
    if kind == "string":
        return [f"{COUNTS_PREFIX}{name}"]
    suffix = "" if name == "label" else f"_{name}"
    return [f"{metric}{suffix}" for metric in LABEL_METRICS]


LABEL_EXPECTED = "label_expected"
"""Score metadata key that marks a ``label`` score and holds the expected label."""
KIND_CLASH = "llmobs_kind_clash"
"""Score metadata key that marks a score whose kind differs from the run's first score of that
name (see `pytest_llmobs.score_kinds`): stored, but left out of every aggregate."""


def _generation_figures(
    observation: Mapping[str, Any],
) -> GenerationFigures:
    latency = (observation.get("metadata") or {}).get("latency_ms")
    if latency is None and observation.get("end_time") is not None:
        latency = (observation["end_time"] - observation["start_time"]) * 1000.0
    usage = observation.get("usage") or {}
    cost = observation.get("cost")
    unreported = (observation.get("metadata") or {}).get("usage_reported") is False
    if not usage or unreported:  # unknown, not 0 (however recorded): totals leave it out
        tokens_in = tokens_out = None
    else:
        tokens_in, tokens_out = int(usage.get("input", 0) or 0), int(usage.get("output", 0) or 0)
    return (
        None if latency is None else float(latency),
        tokens_in,
        tokens_out,
        None if cost is None else float(cost),
    )


def percentile(ordered: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0–100) of sorted values, interpolating linearly."""
    if not ordered:
        raise ValueError("percentile of no values")
    position = (len(ordered) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    gap = ordered[high] - ordered[low]
    if math.isinf(gap):  # two values near the float limit, of opposite signs
        return ordered[low] * (1 - (position - low)) + ordered[high] * (position - low)
    return ordered[low] + gap * (position - low)


LARGEST = sys.float_info.max
_LARGE = 2.0**400
"""Above this magnitude, sums of values and of squared deviations could overflow: such values
are scaled by a power of two first (exact), so that any finite scores aggregate."""


def overflow_scale(values: Sequence[float]) -> float:
    """A power of two bringing every value below 2 when some is beyond `_LARGE`, else 1."""
    top = max(max(values), -min(values)) if values else 0.0
    return 2.0 ** (math.frexp(top)[1] - 1) if top > _LARGE else 1.0


def clamp(value: float) -> float:
    """``value`` within the finite floats: an aggregate too large to represent (the spread of
    values near the float limit) is stored as the largest float, never as ``Infinity``, which
    JSON cannot hold."""
    return max(-LARGEST, min(LARGEST, value))


def mean_of(values: Sequence[float]) -> float:
    """The mean of finite ``values``, without overflow however large they are."""
    scale = overflow_scale(values)
    return clamp(math.fsum(v / scale for v in values) / len(values) * scale)


def total_of(values: Sequence[float]) -> float:
    """The sum of finite ``values``; a sum beyond the float limit is clamped to it."""
    scale = overflow_scale(values)
    return clamp(math.fsum(v / scale for v in values) * scale)


def std_of(values: Sequence[float], mean: float) -> float:
    """The sample standard deviation (0 for one value), without overflow."""
    if len(values) < 2:
        return 0.0
    scale = overflow_scale(values)
    centre = mean / scale
    squares = math.fsum((v / scale - centre) ** 2 for v in values)
    return clamp(math.sqrt(squares / (len(values) - 1)) * scale)


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

    ``boolean``: the values are booleans; the interval is Wilson's when every value is 0 or 1
    (an item's mean of several booleans may lie between: a bootstrap then).
    ``case_means``: with repeats, the mean of each test case's values; the interval is then a
    bootstrap over them (the cases are the independent samples, not the repeats)."""
    n = len(values)
    ordered = sorted(values)
    mean = mean_of(ordered)
    std = std_of(ordered, mean)
    interval: Interval | None
    if case_means is not None:
        interval = _bootstrap(case_means)
    elif boolean and all(v in (0.0, 1.0) for v in ordered):
        interval = wilson_interval(round(math.fsum(ordered)), n)
    else:
        interval = _bootstrap(ordered)
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
        interval = (
            _bootstrap(_case_means(counted, lambda i: [float(i.outcome == "passed")]))
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


def judge_aggregates(generations: Iterable[GenerationFigures]) -> list[Aggregate]:
    """The judge model's calls, apart from the model under test's: their count, tokens, cost."""
    figures = list(generations)
    if not figures:
        return []
    n = len(figures)
    counted = _counted(figures)
    tokens = [Aggregate("judge_total_tokens", float(sum(i + o for i, o in counted)), len(counted))]
    return [
        Aggregate("judge_generations", float(n), n),
        *(tokens if counted else []),
        *_total_cost("judge_total_cost", figures),
    ]


def _counted(figures: Sequence[GenerationFigures]) -> list[tuple[int, int]]:
    """(input, output) tokens of the generations whose usage is known."""
    return [(f[1], f[2]) for f in figures if f[1] is not None and f[2] is not None]


def _total_cost(name: str, figures: Sequence[GenerationFigures]) -> list[Aggregate]:
    """The summed cost of the generations whose cost is known (none: no aggregate)."""
    costs = [f[3] for f in figures if f[3] is not None]
    return [Aggregate(name, total_of(costs), len(costs))] if costs else []


def generation_aggregates(generations: Iterable[GenerationFigures]) -> list[Aggregate]:
    """Latency percentiles and token (and cost) totals over generations."""
    figures = list(generations)
    if not figures:
        return []
    n = len(figures)
    result = [Aggregate("generations", float(n), n)]
    latencies = sorted(f[0] for f in figures if f[0] is not None)
    if latencies:
        m = len(latencies)
        result += [
            Aggregate("mean_latency_ms", mean_of(latencies), m),
            Aggregate("p50_latency_ms", percentile(latencies, 50), m),
            Aggregate("p95_latency_ms", percentile(latencies, 95), m),
            Aggregate("max_latency_ms", latencies[-1], m),
        ]
    counted = _counted(figures)
    if counted:  # n: the generations whose usage is known
        tokens_in = sum(i for i, _ in counted)
        tokens_out = sum(o for _, o in counted)
        m = len(counted)
        result += [
            Aggregate("total_input_tokens", float(tokens_in), m),
            Aggregate("total_output_tokens", float(tokens_out), m),
            Aggregate("total_tokens", float(tokens_in + tokens_out), m),
        ]
    return [*result, *_total_cost("total_cost", figures)]


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


AGGREGATION = 3
"""How a run's item aggregates were computed, stored in its summary as ``aggregation``: 3, a
bootstrap interval needs two samples (before, one sample gave ``ci_low`` = ``ci_high``); 2, each
test's mean of a score is one sample; without it (runs stored before), each recorded value was."""


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
