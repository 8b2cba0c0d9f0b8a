"""The HTML report's comparison with a baseline run (the run summary's ``"comparison"``).

The shape is `pytest_llmobs.compare.Comparison.to_dict()`: the baseline run, the verdict, metric
rows (group, name, baseline, current, delta, estimate and ci_low/ci_high of the paired change,
p_value, verdict, fails_gate), what changed (model, params, prompt versions with diffs,
datasets), flipped items and unmatched ones. It is read defensively: a missing key drops its
part, an unknown key is still shown (as a generic table), and other row shapes fall back to the
generic table.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from pytest_llmobs.compare.model import Figures, MetricComparison, fmt_p
from pytest_llmobs.compare.render import PAIRED_NOTE
from pytest_llmobs.compare.stats import VERDICTS, PairedInterval, PairedTest
from pytest_llmobs.reporting.figures import LARGE, signed_change
from pytest_llmobs.reporting.html_text import as_text, clipped, esc, marked, number, short
from pytest_llmobs.reporting.svg import interval_mark

_MAX_ROWS = 500

_BAD = frozenset(
    {"regressed", "regression", "worse", "fail", "failed", "degraded", "lost", "incomplete run"}
)
_GOOD = frozenset({"improved", "improvement", "better", "pass", "passed", "gained", "fixed"})


def verdict_class(verdict: object) -> str:
    """``regressed``, ``improved`` or ``neutral``: the CSS class of a verdict word (for a
    direction such as ``pass->fail``, of where it ends)."""
    word = str(verdict or "").lower().strip()
    if "->" in word:
        word = word.rsplit("->", 1)[1].strip()
    if word in _BAD or word.startswith(("regress", "worse")):
        return "regressed"
    if word in _GOOD or word.startswith(("improv", "better")):
        return "improved"
    return "neutral"


def comparison_section(comparison: object) -> str:
    """The section, or an empty string when the run has no comparison."""
    if not isinstance(comparison, Mapping) or not comparison:
        return ""
    known = {
        "baseline", "current", "verdict", "regressions", "matched", "max_drop",
        "metrics", "changes", "flips", "flipped", "unmatched", "enforced", "tested",
        "incomplete",
    }  # fmt: skip
    parts = ['<section id="comparison"><h2>Comparison with baseline</h2>', _headline(comparison)]
    metrics = comparison.get("metrics")
    if metrics:
        enforced, tolerance = comparison.get("enforced") is not False, comparison.get("max_drop")
        parts.append(_metrics(metrics, enforced=enforced, tolerance=_num(tolerance)))
    changes = comparison.get("changes")
    if changes:
        parts.append(f"<h3>What changed</h3>{_changes(changes)}")
    flips = comparison.get("flips") or comparison.get("flipped")
    if flips:
        parts.append(f"<h3>Flipped items</h3>{_flips(flips)}")
    unmatched = comparison.get("unmatched")
    if unmatched:
        parts.append(f"<h3>Unmatched items</h3>{_unmatched(unmatched)}")
    for key, value in comparison.items():
        if key not in known and value not in (None, "", [], {}):
            parts.append(f"<h3>{esc(str(key).replace('_', ' '))}</h3>{generic(value)}")
    parts.append("</section>")
    return "".join(parts)


def _headline(comparison: Mapping[str, Any]) -> str:
    pairs = []
    if comparison.get("baseline") is not None:
        pairs.append(("baseline", _run_info(comparison["baseline"])))
    verdict = comparison.get("verdict")
    if verdict is not None:
        css = verdict_class(verdict)
        pairs.append(("verdict", f'<span class="badge {css}">{esc(verdict)}</span>'))
    incomplete = comparison.get("incomplete")
    if isinstance(incomplete, list) and incomplete:  # why no gate passes on it
        pairs.append(("incomplete", "<br>".join(marked(str(note)) for note in incomplete)))
    regressions = comparison.get("regressions")
    if isinstance(regressions, int) and not isinstance(regressions, bool):
        if comparison.get("enforced") is False:  # --llm-fail-on left regressions out
            css, said = "muted", f"{regressions} beyond the tolerated drop, not enforced"
        else:
            css, said = ("errors" if regressions else "muted"), f"{regressions} fail the gate"
        pairs.append(("regressions", f'<span class="{css}">{esc(said)}</span>'))
    if comparison.get("matched") is not None:
        pairs.append(("matched", f"{esc(_scalar(comparison['matched']))} cases in both runs"))
    if comparison.get("max_drop") is not None:
        pairs.append(("tolerated drop", esc(_scalar(comparison["max_drop"]))))
    if not pairs:
        return ""
    return '<dl class="kv">' + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in pairs) + "</dl>"


def _run_info(value: object) -> str:
    if not isinstance(value, Mapping):
        return f'<span class="mono">{esc(_scalar(value))}</span>'
    name, run_id = value.get("name"), value.get("id")
    shown = " · ".join(str(v) for v in (name, run_id) if v)
    extra = [str(value[k]) for k in ("model", "status") if value.get(k)]
    if value.get("source"):
        extra.append(f"from {value['source']}" + (f" {value['ref']}" if value.get("ref") else ""))
    tail = f' <span class="muted">({esc(", ".join(extra))})</span>' if extra else ""
    return f'<span class="mono">{esc(shown or "?")}</span>{tail}'


def _metric_rows(metrics: object) -> list[Mapping[str, Any]]:
    if isinstance(metrics, Mapping):
        rows: list[Mapping[str, Any]] = []
        for name, row in metrics.items():
            rows.append({"name": name, **row} if isinstance(row, Mapping) else {"name": name})
        return rows
    if isinstance(metrics, list):
        return [row for row in metrics if isinstance(row, Mapping)]
    return []


def _interval(row: Mapping[str, Any]) -> tuple[float | None, float | None]:
    low, high = row.get("ci_low"), row.get("ci_high")
    interval = row.get("interval") or row.get("ci")
    if low is None and isinstance(interval, list | tuple) and len(interval) == 2:
        low, high = interval
    elif low is None and isinstance(interval, Mapping):
        low, high = interval.get("low"), interval.get("high")
    return _num(low), _num(high)


def _severity(row: Mapping[str, Any]) -> int:
    if row.get("fails_gate"):
        return 0
    return {"regressed": 1, "improved": 2}.get(verdict_class(row.get("verdict")), 3)


def _metrics(metrics: object, *, enforced: bool = True, tolerance: float | None = None) -> str:
    """Metrics with a paired interval or a verdict first (worst first), the rest folded;
    ``enforced``: whether a metric beyond the tolerated drop fails the run; ``tolerance``: that
    drop (``--llm-max-drop``), against which a regression's figures must read as judged."""
    rows = _metric_rows(metrics)
    if not rows:
        return generic(metrics)
    rows = sorted(rows, key=_severity)  # stable: the comparison's own order within a rank
    tested = [r for r in rows if _interval(r)[0] is not None or _severity(r) < 3]
    rest = [r for r in rows if not (_interval(r)[0] is not None or _severity(r) < 3)]
    html = _metrics_table(tested, enforced=enforced, tolerance=tolerance) if tested else ""
    if rest:
        html += (
            f"<details><summary>{len(rest)} more aggregate(s) without a paired test</summary>"
            f"{_metrics_table(rest, enforced=enforced, tolerance=tolerance)}</details>"
        )
    return html


def _metrics_table(
    rows: Sequence[Mapping[str, Any]], *, enforced: bool, tolerance: float | None
) -> str:
    body, paired = [], False
    for row in rows[:_MAX_ROWS]:
        name = row.get("name") or row.get("metric") or row.get("aggregate") or "?"
        group = row.get("group", row.get("dataset"))
        scope = "all tests" if group in (None, "*") else str(group)
        baseline, current = _num(row.get("baseline")), _num(row.get("current"))
        delta = _num(row.get("delta"))
        if delta is None and baseline is not None and current is not None:
            delta = current - baseline
        low, high = _interval(row)
        verdict = row.get("verdict") or ""
        css = verdict_class(verdict)
        figures, estimate = _figures(row, delta, tolerance), _num(row.get("estimate"))
        paired = paired or figures.paired is not None
        signed = figures.delta + ("" if figures.paired is None else f" (paired {figures.paired})")
        bounds = figures.interval.split("..") if figures.interval != "-" else []
        ci = " … ".join(bounds) or "–"
        label = f"paired delta {figures.paired}" if figures.paired else f"delta {figures.delta}"
        label += f", interval {bounds[0]} to {bounds[1]}" if bounds else ""
        point = estimate if estimate is not None and bounds else delta  # what the interval is of
        stats = _stats(row)
        extra = f'<div class="muted">{esc(" ".join(stats))}</div>' if stats else ""
        badge = f'<span class="badge {css}">{esc(verdict)}</span>' if verdict else ""
        if row.get("fails_gate"):
            said = "fails the gate" if enforced else "beyond the tolerated drop, not enforced"
            badge += f' <span class="badge regressed">{said}</span>'
        bad = row.get("fails_gate") or css == "regressed"
        body.append(
            f'<tr class="{"bad" if bad else ""}"><td>{esc(scope)}</td>'
            f'<td class="mono">{esc(name)}</td>'
            f'<td class="num">{esc(number(baseline))}</td>'
            f'<td class="num">{esc(number(current))}</td>'
            f'<td class="num">{esc(signed)}</td><td class="num">{esc(ci)}{extra}</td>'
            f"<td>{interval_mark(point, low, high, css_class=css, label=label)}</td>"
            f"<td>{badge}</td></tr>"
        )
    note = esc(PAIRED_NOTE).replace("*paired*", "<em>paired</em>", 1)
    return (
        '<table class="metrics"><thead><tr><th>scope</th><th>metric</th><th class="num">baseline'
        '</th><th class="num">current</th><th class="num">delta</th><th class="num">95% CI of'
        f" the change</th><th>change vs 0</th><th>verdict</th></tr></thead><tbody>{''.join(body)}"
        f"</tbody></table>{_more(len(rows))}" + (f'<p class="muted">{note}</p>' if paired else "")
    )


def _figures(row: Mapping[str, Any], delta: float | None, tolerance: float | None) -> Figures:
    """The row's change as the terminal and markdown show it: `MetricComparison.figures` of the
    row rebuilt (the delta, the paired delta where the two differ, the interval; a regression's
    with the digits that read as judged against ``tolerance``). A row without paired statistics,
    of another shape, or with figures past `LARGE` gets `signed_change` ones."""
    estimate, (low, high) = _num(row.get("estimate")), _interval(row)
    if (
        delta is not None
        and estimate is not None
        and low is not None
        and high is not None
        and all(math.isfinite(v) and abs(v) < LARGE for v in (delta, estimate, low, high))
    ):
        metric = MetricComparison(
            group=str(row.get("group")),
            name=str(row.get("name")),
            baseline=_num(row.get("baseline")) or 0.0,
            current=_num(row.get("current")) or 0.0,
            delta=delta,
            higher_is_better=row.get("higher_is_better") is not False,
            verdict=next((v for v in VERDICTS if v == row.get("verdict")), "not tested"),
            fails_gate=bool(row.get("fails_gate")),
            test=PairedTest(PairedInterval(estimate, low, high, n=0)),  # (n is not shown)
        )
        return metric.figures(tolerance if "higher_is_better" in row else None)
    paired = None
    if estimate is not None and delta is not None and abs(estimate - delta) > 5e-4:
        paired = signed_change(estimate)
    bounds = "-" if low is None or high is None else f"{signed_change(low)}..{signed_change(high)}"
    return Figures("–" if delta is None else signed_change(delta), paired, bounds)


def _changes(changes: object) -> str:
    if not isinstance(changes, list) or not all(isinstance(c, Mapping) for c in changes):
        return generic(changes)
    rows = []
    for change in changes[:_MAX_ROWS]:
        diff = change.get("diff")
        detail = (
            f"<details><summary>diff</summary><pre>{clipped(str(diff))}</pre></details>"
            if diff
            else ""
        )
        note = f'<div class="muted">{esc(change["note"])}</div>' if change.get("note") else ""
        rows.append(
            f"<tr><td>{esc(_scalar(change.get('kind')))}</td>"
            f'<td class="mono">{esc(_scalar(change.get("name")))}</td>'
            f'<td class="mono">{esc(_scalar(change.get("baseline")))}</td>'
            f'<td class="mono">{esc(_scalar(change.get("current")))}</td>'
            f"<td>{note}{detail}</td></tr>"
        )
    return (
        "<table><thead><tr><th>what</th><th>name</th><th>baseline</th><th>current</th>"
        f"<th>notes</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
        f"{_more(len(changes))}"
    )


def _flips(flips: object) -> str:
    if not isinstance(flips, list) or not all(isinstance(f, Mapping) for f in flips):
        return generic(flips)
    ordered = sorted(flips, key=lambda f: verdict_class(f.get("direction")) != "regressed")
    rows = []
    for flip in ordered[:_MAX_ROWS]:
        direction = flip.get("direction") or (
            f"{flip.get('baseline_outcome')}->{flip.get('current_outcome')}"
        )
        case = flip.get("label") or flip.get("node_id") or flip.get("item_id") or "?"
        scores = flip.get("scores") if isinstance(flip.get("scores"), Mapping) else {}
        changed = "; ".join(f"{name}: {_pair(values)}" for name, values in (scores or {}).items())
        rows.append(
            f'<tr><td><span class="badge {verdict_class(direction)}">{esc(direction)}</span></td>'
            f'<td class="mono" title="{esc(flip.get("node_id") or "")}">{esc(case)}</td>'
            f"<td>{_cell(flip.get('input'))}</td><td>{_cell(flip.get('expected_output'))}</td>"
            f"<td>{_cell(flip.get('baseline_output'))}</td>"
            f"<td>{_cell(flip.get('current_output'))}</td>"
            f'<td class="mono">{esc(changed)}</td></tr>'
        )
    return (
        "<table><thead><tr><th>flip</th><th>case</th><th>input</th><th>expected</th>"
        "<th>baseline output</th><th>current output</th><th>scores</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>{_more(len(flips))}"
    )


def _pair(values: object) -> str:
    if isinstance(values, list | tuple) and len(values) == 2:
        return f"{_scalar(values[0])} → {_scalar(values[1])}"
    return _scalar(values)


def _cell(value: object) -> str:
    if value is None:
        return '<span class="muted">–</span>'
    text = as_text(value)
    return f'<span title="{esc(short(text, 2000))}">{esc(short(text, 160))}</span>'


def _unmatched(unmatched: object) -> str:
    if not isinstance(unmatched, Mapping):
        return generic(unmatched)
    if not any(unmatched.values()):
        return '<p class="muted">Every case ran in both runs.</p>'
    lines = []
    for key, value in unmatched.items():
        cases = value if isinstance(value, list) else [value]
        label = str(key).replace("_", " ")
        shown = ", ".join(_scalar(c) for c in cases[:200]) or "none"
        more = f" … and {len(cases) - 200} more" if len(cases) > 200 else ""
        lines.append(
            f'<dt>{esc(label)} ({len(cases)})</dt><dd class="mono">{esc(shown + more)}</dd>'
        )
    return f'<dl class="kv">{"".join(lines)}</dl>'


def generic(value: object, depth: int = 0) -> str:
    """Any JSON-like value as markup: a list of records as a table, a mapping as a definition
    list, a list of scalars as a comma-separated line."""
    if depth > 4:
        return f'<span class="mono">{esc(short(str(value), 300))}</span>'
    if isinstance(value, Mapping):
        pairs = "".join(
            f"<dt>{esc(k)}</dt><dd>{generic(v, depth + 1)}</dd>" for k, v in value.items()
        )
        return f'<dl class="kv">{pairs}</dl>'
    if isinstance(value, list):
        if value and all(isinstance(v, Mapping) for v in value):
            return _records(value, depth)
        return esc(", ".join(_scalar(v) for v in value[:_MAX_ROWS])) + _more(len(value))
    return esc(_scalar(value))


def _records(records: list[Mapping[str, Any]], depth: int) -> str:
    columns: list[str] = []
    for record in records[:_MAX_ROWS]:
        columns += [str(k) for k in record if str(k) not in columns]
    head = "".join(f"<th>{esc(c.replace('_', ' '))}</th>" for c in columns[:12])
    rows = []
    for record in records[:_MAX_ROWS]:
        cells = []
        for column in columns[:12]:
            value = record.get(column)
            css = ""
            if column in ("verdict", "status", "change", "direction"):
                css = f' class="{verdict_class(value)}"'
                value_html = (
                    f'<span class="badge {verdict_class(value)}">{esc(_scalar(value))}</span>'
                )
            elif isinstance(value, Mapping | list):
                value_html = generic(value, depth + 1)
            else:
                value_html = esc(_scalar(value))
                if column in ("node_id", "item_id", "id", "trace_id"):
                    value_html = f'<span class="mono">{value_html}</span>'
            cells.append(f"<td{css}>{value_html}</td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return (
        f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        f"{_more(len(records))}"
    )


def _more(total: int) -> str:
    if total <= _MAX_ROWS:
        return ""
    return f'<p class="muted">… and {total - _MAX_ROWS:,} more not shown.</p>'


def _scalar(value: object) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool | int | float):
        return number(value)
    return short(str(value), 500)


def _stats(row: Mapping[str, Any]) -> list[str]:
    """``n=10 p=1.2e-04``: the p-value in the terminal's notation, so a tiny one is not 0.000."""
    n, p = _num(row.get("n")), _num(row.get("p_value"))
    return ([f"n={number(row['n'])}"] if n is not None else []) + (
        [f"p={fmt_p(p)}"] if p is not None else []
    )


def _num(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)
