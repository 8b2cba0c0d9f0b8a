"""`compare_runs`: two runs (stored or exported, as plain data) → a `Comparison`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pytest_llmobs.aggregate_model import Aggregate, ItemSummary, aggregates_from_dict
from pytest_llmobs.aggregate_names import ALL_ITEMS, GENERATION_AGGREGATES, REPEAT_VARIANCE_PREFIX
from pytest_llmobs.aggregates import compute_aggregates
from pytest_llmobs.compare.changes import what_changed
from pytest_llmobs.compare.items import PASS_RATE, Case, flips, match, paired_values
from pytest_llmobs.compare.model import Comparison, MetricComparison, RunInfo
from pytest_llmobs.compare.stats import BOOTSTRAP_SEED, higher_is_better, judge, paired_test
from pytest_llmobs.safe_stats import clamp
from pytest_llmobs.store import Store


def run_aggregates(run: Mapping[str, Any]) -> dict[str, dict[str, Aggregate]]:
    """The run's stored aggregates; recomputed from its items when it has none (interrupted)."""
    stored = run.get("aggregates")
    if stored:
        return aggregates_from_dict(stored)
    return compute_aggregates(ItemSummary.from_item(i) for i in run.get("items") or [])


def run_info(run: Mapping[str, Any], *, source: str = "run", ref: str | None = None) -> RunInfo:
    return RunInfo(
        id=str(run.get("id")),
        name=str(run.get("name") or ""),
        model=run.get("model"),
        status=str(run.get("status") or "unknown"),
        source=source,
        ref=ref,
    )


def _ordered(names: set[str], tested: set[str]) -> list[str]:
    first = [PASS_RATE] if PASS_RATE in names else []
    means = sorted(n for n in names if n in tested and n != PASS_RATE)
    return first + means + sorted(names - set(first) - set(means))


def _group_metrics(
    group: str,
    before: Mapping[str, Aggregate],
    after: Mapping[str, Aggregate],
    pairs: Sequence[tuple[Case, Case]],
    *,
    max_drop: float,
    seed: int,
) -> list[MetricComparison]:
    scores = {name for pair in pairs for case in pair for name in case.scores}
    tested = {PASS_RATE} | {f"mean_{s}" for s in scores}
    rows = []
    for name in _ordered(set(before) & set(after), tested):
        old, new = before[name].value, after[name].value
        delta = clamp(new - old)
        row = MetricComparison(group, name, old, new, delta, higher_is_better(name), "not tested")
        if name in tested:
            metric = PASS_RATE if name == PASS_RATE else name.removeprefix("mean_")
            values = paired_values(pairs, metric)
            if values.baseline:
                row.higher_is_better = higher_is_better(name, pass_fail=values.boolean)
                row.test = paired_test(
                    values.baseline, values.current, binary=values.binary, seed=seed
                )
                row.verdict, row.fails_gate = judge(
                    row.test,
                    name=name,
                    delta=row.test.interval.estimate,
                    max_drop=max_drop,
                    pass_fail=values.boolean,
                )
        rows.append(row)
    return rows


def compare_runs(
    baseline: Mapping[str, Any],
    current: Mapping[str, Any],
    *,
    baseline_info: RunInfo | None = None,
    current_info: RunInfo | None = None,
    store: Store | None = None,
    max_drop: float = 0.0,
    seed: int = BOOTSTRAP_SEED,
) -> Comparison:
    """Compare ``current`` with ``baseline`` (each a run as `Store.load_run` or an export gives
    it). ``store`` supplies prompt texts and dataset snapshots for "what changed"."""
    if max_drop < 0:
        raise ValueError(f"max_drop must be >= 0, got {max_drop!r}")
    baseline_info = baseline_info or run_info(baseline)
    current_info = current_info or run_info(current)
    matching = match(list(baseline.get("items") or []), list(current.get("items") or []))
    old_aggregates, new_aggregates = run_aggregates(baseline), run_aggregates(current)
    groups = sorted(g for g in set(old_aggregates) & set(new_aggregates) if g != ALL_ITEMS)
    missing = _missing_metrics(old_aggregates, new_aggregates)
    metrics = []
    for group in [*groups, ALL_ITEMS]:
        if group not in old_aggregates or group not in new_aggregates:
            continue
        pairs = [p for p in matching.pairs if group == ALL_ITEMS or p[1].dataset == group]
        metrics += _group_metrics(
            group,
            old_aggregates[group],
            new_aggregates[group],
            pairs,
            max_drop=max_drop,
            seed=seed,
        )
    return Comparison(
        baseline=baseline_info,
        current=current_info,
        metrics=metrics,
        changes=what_changed(
            baseline, current, store=store, from_file=baseline_info.source == "file"
        ),
        flips=flips(matching.pairs),
        matched=len(matching.pairs),
        only_in_baseline=matching.only_in_baseline,
        only_in_current=matching.only_in_current,
        max_drop=max_drop,
        missing=missing,
    )


def _missing_metrics(
    before: Mapping[str, Mapping[str, Aggregate]], after: Mapping[str, Mapping[str, Aggregate]]
) -> list[tuple[str, str]]:
    """Tested metrics of the baseline that the current run lacks, per group (datasets first)."""
    groups = [*sorted(g for g in before if g != ALL_ITEMS), ALL_ITEMS]
    return [
        (group, name)
        for group in groups
        if group in before
        for name in _ordered(set(before[group]), {PASS_RATE})
        if _tested_name(name) and name not in after.get(group, {})
    ]


def _tested_name(name: str) -> bool:
    """Whether aggregate ``name`` is one the comparison tests: ``pass_rate`` or a score's mean
    (not the mean latency of generations, nor a score's variance across repeats, which a run
    without repeats lacks by design)."""
    if name == PASS_RATE:
        return True
    return (
        name.startswith("mean_")
        and name not in GENERATION_AGGREGATES
        and not name.startswith(REPEAT_VARIANCE_PREFIX)
    )
