"""The HTML report's score section: per dataset, a statistics table, a chart per score
(a histogram for numeric scores, bars for boolean and categorical ones), classification
metrics with the confusion matrix for ``label`` scores, and every aggregate on request."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from pytest_llmobs.aggregate_names import ALL_ITEMS, COUNTED_OUTCOMES, KIND_CLASH, LABEL_EXPECTED
from pytest_llmobs.reporting.html_text import esc, number, percent
from pytest_llmobs.reporting.svg import bar_chart, histogram
from pytest_llmobs.safe_stats import mean_of, percentile, std_of

NO_DATASET = "tests without a dataset"

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


def _groups(items: Sequence[Mapping[str, Any]]) -> dict[str | None, list[Mapping[str, Any]]]:
    groups: dict[str | None, list[Mapping[str, Any]]] = defaultdict(list)
    for item in items:
        groups[item.get("dataset") or None].append(item)
    named = sorted((k for k in groups if k is not None), key=str)
    return {k: groups[k] for k in [*named, *([None] if None in groups else [])]}


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


def _aggregates(run: Mapping[str, Any], group: str) -> dict[str, Mapping[str, Any]]:
    entries = (run.get("aggregates") or {}).get(group) or []
    return {str(a.get("name")): a for a in entries if isinstance(a, Mapping)}


def scores_section(run: Mapping[str, Any]) -> str:
    """Every group's scores; an empty string when no item recorded a score or generation."""
    items = list(run.get("items") or [])
    groups = _groups(items)
    parts = []
    for group, members in groups.items():
        key = group if group is not None else (ALL_ITEMS if len(groups) == 1 else None)
        aggregates = _aggregates(run, key) if key is not None else {}
        parts.append(_group(run, group, members, aggregates))
    if not any(parts):
        return ""
    return (
        '<section id="scores"><h2>Scores</h2>'
        + "".join(parts)
        + _all_aggregates(run)
        + "</section>"
    )


def _group(
    run: Mapping[str, Any],
    group: str | None,
    items: Sequence[Mapping[str, Any]],
    aggregates: Mapping[str, Mapping[str, Any]],
) -> str:
    scores = _collect(items)
    generations = aggregates.get("generations")
    if not scores and generations is None:
        return ""
    if group is None:
        title = esc(NO_DATASET)
    else:
        version = (run.get("datasets") or {}).get(group)
        title = f'dataset <span class="mono">{esc(group)}</span>'
        if version:
            title += f' <span class="muted mono">version {esc(version)}</span>'
    outcomes = Counter(str(i.get("outcome")) for i in items)
    counted = sum(outcomes[o] for o in ("passed", "failed", "error"))
    rate = f" · pass rate {percent(outcomes['passed'] / counted)}" if counted else ""
    parts = [f'<h3>{title} <span class="muted">· {len(items)} items{rate}</span></h3>']
    numeric = {n: s for n, s in scores.items() if not s.categorical}
    if numeric:
        parts.append(_stats_table(numeric, aggregates))
    charts = [_chart(name, score, group, aggregates) for name, score in scores.items()]
    if charts:
        parts.append(f'<div class="charts">{"".join(charts)}</div>')
    for name, score in scores.items():
        if score.label:
            parts.append(_classification(name, aggregates))
    if generations is not None:
        parts.append(_generation_line(aggregates))
    return "".join(parts)


def _stats_table(scores: Mapping[str, _Score], aggregates: Mapping[str, Mapping[str, Any]]) -> str:
    rows = []
    for name, score in scores.items():
        values = sorted(score.numbers())
        if not values:
            continue
        mean = mean_of(values)
        extra = (aggregates.get(f"mean_{name}") or {}).get("extra") or {}
        low, high = extra.get("ci_low"), extra.get("ci_high")
        ci = f"{number(low)} – {number(high)}" if low is not None and high is not None else "–"
        std = std_of(values, mean) if len(values) > 1 else None
        median = percentile(values, 50)
        rows.append(
            f'<tr><td class="mono">{esc(name)}</td><td>{esc(score.kind)}</td>'
            f'<td class="num">{len(values)}</td><td class="num">{number(mean)}</td>'
            f'<td class="num">{ci}</td><td class="num">{number(std) if std is not None else "–"}'
            f'</td><td class="num">{number(values[0])}</td><td class="num">{number(median)}</td>'
            f'<td class="num">{number(values[-1])}</td></tr>'
        )
    return (
        '<table class="stats"><thead><tr><th>score</th><th>type</th><th class="num">n</th>'
        '<th class="num">mean</th><th class="num">95% CI of mean</th><th class="num">sd</th>'
        '<th class="num">min</th><th class="num">median</th><th class="num">max</th></tr>'
        f"</thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _chart(
    name: str, score: _Score, group: str | None, aggregates: Mapping[str, Mapping[str, Any]]
) -> str:
    where = group if group is not None else NO_DATASET
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
            caption += f" · mean {number(mean.get('value'))}"
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


def _classification(name: str, aggregates: Mapping[str, Mapping[str, Any]]) -> str:
    suffix = "" if name == "label" else f"_{name}"
    metrics = [
        f"{metric} <b>{number((aggregates.get(metric + suffix) or {}).get('value'))}</b>"
        for metric in _CLASSIFICATION
        if metric + suffix in aggregates
    ]
    parts = (
        [f'<p><span class="mono">{esc(name)}</span>: {" · ".join(metrics)}</p>'] if metrics else []
    )
    confusion = (aggregates.get("confusion" + suffix) or {}).get("extra") or {}
    if confusion:
        parts.append(_confusion_table(confusion))
    return "".join(parts)


def _confusion_table(cells: Mapping[str, Any]) -> str:
    pairs = {tuple(key.split("->", 1)): value for key, value in cells.items() if "->" in key}
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
        '<table class="confusion" style="width:auto"><thead><tr><th>expected ↓ / predicted →'
        f"</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _generation_line(aggregates: Mapping[str, Mapping[str, Any]]) -> str:
    def value(name: str) -> float | None:
        entry = aggregates.get(name)
        return None if entry is None else entry.get("value")

    bits = [f"generations {number(value('generations'))}"]
    if value("p50_latency_ms") is not None:
        bits.append(
            f"latency p50 {number(value('p50_latency_ms'), digits=1)} ms,"
            f" p95 {number(value('p95_latency_ms'), digits=1)} ms"
        )
    counted = aggregates.get("total_input_tokens")
    if counted is None:
        bits.append("tokens unknown (no answer reported usage)")
    else:
        bits.append(
            f"tokens {number(value('total_input_tokens'))} in /"
            f" {number(value('total_output_tokens'))} out"
        )
        if counted.get("n") != value("generations"):
            bits.append(f"usage reported by {counted.get('n')} of {number(value('generations'))}")
    if value("total_cost"):
        bits.append(f"cost {number(value('total_cost'), digits=4)}")
    return f'<p class="muted">{esc(" · ".join(bits))}</p>'


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
