"""The HTML report's score section: the groups of the terminal summary (each dataset, then all
tests) with its counts and pass rate, and for each a statistics table, a chart per score (a
histogram for numeric scores, bars for boolean and categorical ones), classification metrics
with the confusion matrix for ``label`` scores, its run evaluators' aggregates, generations and
judge calls; then every aggregate on request."""

from __future__ import annotations

import contextlib
import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from pytest_llmobs.aggregate_model import Aggregate
from pytest_llmobs.aggregate_names import ALL_ITEMS, COUNTED_OUTCOMES, KIND_CLASH, LABEL_EXPECTED
from pytest_llmobs.reporting.html_text import esc, number, percent
from pytest_llmobs.reporting.svg import bar_chart, histogram
from pytest_llmobs.reporting.terminal import (
    generation_facts,
    group_facts,
    judge_facts,
    whole_run_dataset,
)
from pytest_llmobs.run_result import partial_datasets_from_dict
from pytest_llmobs.safe_stats import mean_of, percentile, std_of

_CLASSIFICATION = ("accuracy", "precision_macro", "recall_macro", "f1_macro", "f1_micro")


class _Score:
    """The values one score took in the counted items of one group (as in its aggregates)."""

    def __init__(self) -> None:
        self.types: set[str] = set()
        self.values: list[Any] = []
        self.label = False
        self.item_means: list[float] = []
        """Each item's mean of its numeric values, which the aggregates count as one sample."""

    @property
    def categorical(self) -> bool:
        return "CATEGORICAL" in self.types or self.label

    @property
    def boolean(self) -> bool:
        return self.types == {"BOOLEAN"}

    @property
    def kind(self) -> str:
        if self.label:
            return "label"
        return "/".join(sorted(self.types)).lower()

    def numbers(self) -> list[float]:
        return list(self.item_means)


def _collect(items: Sequence[Mapping[str, Any]]) -> dict[str, _Score]:
    """The scores of the items the aggregates count: skipped and xfailed items' scores, and
    scores left out for changing kind, stay out here as they do there."""
    scores: dict[str, _Score] = defaultdict(_Score)
    for item in items:
        if str(item.get("outcome")) not in COUNTED_OUTCOMES:
            continue
        numbers: dict[str, list[float]] = defaultdict(list)
        for score in (item.get("trace") or {}).get("scores") or []:
            metadata = score.get("metadata") or {}
            if metadata.get(KIND_CLASH):
                continue
            name, value = str(score.get("name")), score.get("value")
            entry = scores[name]
            entry.types.add(str(score.get("data_type") or "NUMERIC"))
            entry.values.append(value)
            if LABEL_EXPECTED in metadata:
                entry.label = True
            elif isinstance(value, int | float):
                numbers[name].append(float(value))
        for name, values in numbers.items():
            scores[name].item_means.append(mean_of(values))
    return dict(sorted(scores.items()))


def stored_aggregates(run: Mapping[str, Any]) -> dict[str, dict[str, Aggregate]]:
    """The run's aggregates per group, read defensively: an entry that is no aggregate (an
    export edited by hand) is left out, not a traceback."""
    groups: dict[str, dict[str, Aggregate]] = {}
    stored = run.get("aggregates")
    for group, entries in stored.items() if isinstance(stored, Mapping) else []:
        for entry in entries if isinstance(entries, list) else []:
            with contextlib.suppress(KeyError, TypeError, ValueError, AttributeError):
                aggregate = Aggregate.from_dict(entry)
                groups.setdefault(str(group), {})[aggregate.name] = aggregate
    return groups


def item_groups(
    run: Mapping[str, Any],
) -> dict[str, tuple[list[Mapping[str, Any]], dict[str, Aggregate]]]:
    """The groups the terminal summary shows, in its order: each dataset, then all tests
    (`ALL_ITEMS`), each with its items and aggregates. A run that stored none (one still going)
    gets each group's count and pass rate from its items."""
    items = [i for i in run.get("items") or [] if isinstance(i, Mapping)]
    stored = stored_aggregates(run)
    members: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for item in items:
        if item.get("dataset"):
            members[str(item["dataset"])].append(item)
    names = sorted((set(stored) | set(members)) - {ALL_ITEMS})
    return {
        name: (group, stored.get(name) or _counted(group))
        for name, group in [*((n, members.get(n, [])) for n in names), (ALL_ITEMS, items)]
    }


def _counted(items: Sequence[Mapping[str, Any]]) -> dict[str, Aggregate]:
    """``count`` and ``pass_rate`` of ``items``, as the aggregates count them."""
    counted = [i for i in items if str(i.get("outcome")) in COUNTED_OUTCOMES]
    figures = {"count": Aggregate("count", float(len(items)), len(items))}
    if counted:
        passed = sum(1 for i in counted if i.get("outcome") == "passed")
        figures["pass_rate"] = Aggregate("pass_rate", passed / len(counted), len(counted))
    return figures


def scores_section(run: Mapping[str, Any]) -> str:
    """Each group's counts and figures, as the terminal summary shows them; an empty string
    when no group has a figure (a score, a generation, a run evaluator's aggregate)."""
    groups = item_groups(run)
    shared = whole_run_dataset({name: aggregates for name, (_, aggregates) in groups.items()})
    evaluated = run.get("run_evaluator_aggregates")
    bodies = {
        name: ""
        if name == ALL_ITEMS and shared is not None
        else _figures(
            name,
            members,
            aggregates,
            evaluated.get(name) if isinstance(evaluated, Mapping) else None,
        )
        for name, (members, aggregates) in groups.items()
    }
    if not any(bodies.values()):
        return ""
    partial = partial_datasets_from_dict(run.get("partial_datasets"))
    parts = []
    for name, (_, aggregates) in groups.items():
        parts.append(_heading(run, name, aggregates, partial.get(name)))
        if name == ALL_ITEMS and shared is not None:
            parts.append(
                f'<p class="muted">The figures of dataset <span class="mono">{esc(shared)}</span>'
                " above are the whole run's: it holds every item.</p>"
            )
        parts.append(bodies[name])
    return (
        '<section id="scores"><h2>Scores</h2>'
        + "".join(parts)
        + _all_aggregates(run)
        + "</section>"
    )


def _heading(
    run: Mapping[str, Any],
    group: str,
    aggregates: Mapping[str, Aggregate],
    partial: tuple[int, int] | None,
) -> str:
    if group == ALL_ITEMS:
        title = "all tests"
    else:
        version = (run.get("datasets") or {}).get(group)
        title = f'dataset <span class="mono">{esc(group)}</span>'
        if version:
            title += f' <span class="muted mono">version {esc(version)}</span>'
    count, rate, rest = group_facts(aggregates, partial)
    facts = [count, *([f"pass rate {rate}"] if rate else []), *rest]
    return f'<h3>{title} <span class="muted">· {esc(" · ".join(facts))}</span></h3>'


def _figures(
    group: str,
    items: Sequence[Mapping[str, Any]],
    aggregates: Mapping[str, Aggregate],
    evaluated: object,
) -> str:
    """A group's statistics table, charts, classification metrics, run evaluators' aggregates,
    generations and judge calls: the figures of its lines in the terminal summary."""
    names = (
        [str(n) for n in evaluated if str(n) in aggregates] if isinstance(evaluated, list) else []
    )
    scored = {k: v for k, v in aggregates.items() if k not in names}
    scores = _collect(items)
    parts = []
    numeric = {n: s for n, s in scores.items() if not s.categorical}
    if numeric:
        parts.append(_stats_table(numeric, scored))
    where = "all tests" if group == ALL_ITEMS else group
    charts = [_chart(name, score, where, scored) for name, score in scores.items()]
    if charts:
        parts.append(f'<div class="charts">{"".join(charts)}</div>')
    for name, score in scores.items():
        if score.label:
            parts.append(_classification(name, scored))
    if names:
        parts.append(_run_evaluators(names, aggregates))
    for facts in (generation_facts(scored), judge_facts(scored)):
        if facts:
            parts.append(f'<p class="muted">{esc(" · ".join(facts))}</p>')
    return "".join(parts)


def _stats_table(scores: Mapping[str, _Score], aggregates: Mapping[str, Aggregate]) -> str:
    """One row per numeric or boolean score: its aggregates' figures (those the terminal
    shows and thresholds judge), computed from the items for a run that stored none."""
    rows = []
    for name, score in scores.items():
        values = sorted(score.numbers())
        if not values:
            continue

        def figure(prefix: str, local: float | None, name: str = name) -> float | None:
            stored = aggregates.get(f"{prefix}_{name}")
            return local if stored is None else stored.value

        mean = aggregates.get(f"mean_{name}")
        low, high = (None, None) if mean is None else (mean.field("ci_low"), mean.field("ci_high"))
        ci = f"{number(low)} – {number(high)}" if low is not None and high is not None else "–"
        local_mean = mean_of(values)
        std = figure("std", std_of(values, local_mean) if len(values) > 1 else None)
        cells = [
            mean.n if mean is not None else len(values),
            figure("mean", local_mean),
            ci,
            "–" if std is None else number(std),
            figure("min", values[0]),
            figure("p50", percentile(values, 50)),
            figure("max", values[-1]),
        ]
        shown = "".join(
            f'<td class="num">{c if isinstance(c, str) else number(c)}</td>' for c in cells
        )
        rows.append(f'<tr><td class="mono">{esc(name)}</td><td>{esc(score.kind)}</td>{shown}</tr>')
    return (
        '<table class="stats"><thead><tr><th>score</th><th>type</th><th class="num">n</th>'
        '<th class="num">mean</th><th class="num">95% CI of mean</th><th class="num">sd</th>'
        '<th class="num">min</th><th class="num">median</th><th class="num">max</th></tr>'
        f"</thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _chart(name: str, score: _Score, where: str, aggregates: Mapping[str, Aggregate]) -> str:
    if score.categorical or score.boolean:
        counts = Counter(_category(v) for v in score.values)
        label = f"{name} in {where}: counts per value"
        chart = bar_chart(sorted(counts.items()), label=label)
        caption = f"{len(score.values)} values, {len(counts)} distinct"
        if score.boolean:
            trues, total = counts.get("true", 0), len(score.values)
            caption = f"true {trues} of {total} ({percent(trues / total)})"
            items = len(score.item_means)
            if items != total:  # some tests recorded it more than once: the table counts items
                caption = (
                    f"true {trues} of {total} values ({percent(trues / total)}), {items} items"
                )
    else:
        values = score.numbers()
        mean = aggregates.get(f"mean_{name}")
        caption = f"n={len(values)}"
        if mean is not None:
            caption += f" · mean {number(mean.value)}"
        if values and math.isinf(max(values) - min(values)):
            chart, caption = "", f"{caption} · range beyond the float limit, not charted"
        else:
            label = f"{name} in {where}: histogram of {len(values)} values"
            chart = histogram(values, label=label)
    return (
        f'<div class="card"><h4 class="mono">{esc(name)} <span class="muted">{esc(score.kind)}'
        f'</span></h4><div class="caption">{esc(caption)}</div>{chart}</div>'
    )


def _category(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _classification(name: str, aggregates: Mapping[str, Aggregate]) -> str:
    suffix = "" if name == "label" else f"_{name}"
    metrics = [
        f"{metric} <b>{number(aggregates[metric + suffix].value)}</b>"
        for metric in _CLASSIFICATION
        if metric + suffix in aggregates
    ]
    parts = (
        [f'<p><span class="mono">{esc(name)}</span>: {" · ".join(metrics)}</p>'] if metrics else []
    )
    confusion = aggregates["confusion" + suffix].extra if "confusion" + suffix in aggregates else {}
    if confusion:
        parts.append(_confusion_table(confusion))
    return "".join(parts)


def _confusion_table(cells: Mapping[str, Any]) -> str:
    """The confusion matrix, its labels as they were recorded (the keys escape ``->``), in a
    box of its own that scrolls sideways: many labels must not widen the whole page."""
    from pytest_llmobs.evaluators.run_level import split_confusion_key

    pairs = {pair: value for key, value in cells.items() if (pair := split_confusion_key(key))}
    labels = sorted({p[0] for p in pairs} | {p[1] for p in pairs})
    head = "".join(f'<th class="mono">{esc(label)}</th>' for label in labels)
    rows = []
    for expected in labels:
        cells_html = []
        for predicted in labels:
            count = pairs.get((expected, predicted), 0)
            css = "hit" if expected == predicted and count else ("miss" if count else "")
            cells_html.append(f'<td class="{css}">{number(count)}</td>')
        rows.append(f'<tr><th class="mono">{esc(expected)}</th>{"".join(cells_html)}</tr>')
    return (
        '<div class="scroll"><table class="confusion"><thead><tr><th>expected ↓ / predicted →'
        f"</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
    )


def _run_evaluators(names: Sequence[str], aggregates: Mapping[str, Aggregate]) -> str:
    rows = "".join(
        f'<tr><td class="mono">{esc(name)}</td><td class="num">{number(aggregates[name].value)}'
        f'</td><td class="num">{aggregates[name].n}</td></tr>'
        for name in names
    )
    return (
        '<table class="stats" style="width:auto"><thead><tr><th>run evaluator aggregate</th>'
        f'<th class="num">value</th><th class="num">n</th></tr></thead><tbody>{rows}</tbody>'
        "</table>"
    )


def _all_aggregates(run: Mapping[str, Any]) -> str:
    groups = run.get("aggregates") or {}
    if not groups:
        return ""
    rows = []
    for group in sorted(groups, key=lambda g: (g == ALL_ITEMS, g)):
        scope = "all tests" if group == ALL_ITEMS else group
        for entry in groups[group] or []:
            extra = entry.get("extra") or {}
            shown = ", ".join(f"{k}={number(v)}" for k, v in extra.items())
            rows.append(
                f'<tr><td>{esc(scope)}</td><td class="mono">{esc(entry.get("name"))}</td>'
                f'<td class="num">{number(entry.get("value"))}</td>'
                f'<td class="num">{number(entry.get("n"))}</td>'
                f'<td class="mono muted">{esc(shown)}</td></tr>'
            )
    return (
        "<details><summary>All aggregates (the names thresholds can use)</summary>"
        '<table><thead><tr><th>scope</th><th>aggregate</th><th class="num">value</th>'
        '<th class="num">n</th><th>fields</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></details>"
    )
