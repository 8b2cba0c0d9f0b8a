"""A `Comparison` as text (terminal, ``llmobs compare``) and as markdown (a pull-request
comment)."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import Any

from pytest_llmobs.compare.model import (
    Change,
    Comparison,
    MetricComparison,
    fmt,
    fmt_p,
    group_label,
)
from pytest_llmobs.compare.stats import interval_untrusted
from pytest_llmobs.reporting.printable import printable

SHOWN_FLIPS = 5
_CELL = 60


def short(value: Any, limit: int = _CELL) -> str:
    """A value on one line: strings quoted, others as JSON, control characters escaped, cut at
    ``limit`` characters."""
    if isinstance(value, float):
        text = f"{value:.4g}"
    elif isinstance(value, str):
        text = repr(value)
    else:
        text = json.dumps(value, ensure_ascii=False)
    text = printable(" ".join(text.split()))
    return text if len(text) <= limit else text[: limit - 1] + "…"


HEADER = ["baseline", "current", "delta", "95% CI", "p", "n"]


def _cells(row: MetricComparison, max_drop: float) -> list[str]:
    """A row's `HEADER` cells; the delta with the paired delta the interval and p are of where
    the two differ (items in one run only move the aggregate, not the paired difference)."""
    figures = row.figures(max_drop)
    p = row.test.p_value if row.test else None
    return [
        fmt(row.baseline),
        fmt(row.current),
        figures.delta + ("" if figures.paired is None else f" (paired {figures.paired})"),
        figures.interval,
        "-" if p is None else fmt_p(p),
        str(row.test.n) if row.test else "-",
    ]


def _verdict(row: MetricComparison, max_drop: float) -> str:
    if row.verdict == "regression" and not row.fails_gate:
        return f"regression (within max drop {max_drop:g})"
    if row.test is not None and interval_untrusted(row.test):
        p, changed = row.test.p_value, row.test.changed  # (the interval alone excludes 0)
        why = f"mid-p {fmt_p(p)}" if p is not None else f"only {changed} item(s) changed"
        return f"{row.verdict} ({why})"
    return row.verdict


def metric_table(comparison: Comparison, rows: list[MetricComparison]) -> list[str]:
    table = [["scope", "metric", *HEADER, "verdict"]]
    for row in rows:
        table.append(
            [
                printable(group_label(row.group)),
                printable(row.name),
                *_cells(row, comparison.max_drop),
                _verdict(row, comparison.max_drop),
            ]
        )
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    return [
        "  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in table
    ]


def gate_line(comparison: Comparison, *, enforced: bool = True) -> str:
    """The conclusion: regressions that fail the gate, or that nothing significant changed."""
    failing = comparison.regressions
    if comparison.incomplete:
        return "session fails: a run it compares is incomplete"
    if failing:
        tail = "session fails" if enforced else "not failing the session (--llm-fail-on)"
        return (
            f"{len(failing)} significant regression(s) beyond --llm-max-drop "
            f"{comparison.max_drop:g}: {tail}"
        )
    tested = [m for m in comparison.metrics if m.test is not None]
    within = sum(m.verdict == "regression" for m in tested)
    better = sum(m.verdict == "improvement" for m in tested)
    missing = (
        f"; {len(comparison.missing)} metric(s) of the baseline are missing from this run and "
        "were not tested"
        if comparison.missing
        else ""
    )
    if not tested:
        why = (
            "no matched items"
            if not comparison.matched
            else f"none of the {comparison.matched} matched item(s) passed or failed in both runs"
        )
        return f"no metric could be tested ({why}): the gate checked nothing" + missing
    if within or better:
        parts = ([f"{better} improvement(s)"] if better else []) + (
            [f"{within} regression(s) within --llm-max-drop {comparison.max_drop:g}"]
            if within
            else []
        )
        return ", ".join(parts) + ": gate passes" + missing
    return f"no significant change in {len(tested)} tested metric(s): gate passes" + missing


def comparison_lines(
    comparison: Comparison, *, full: bool = False, enforced: bool = True
) -> list[str]:
    """The comparison as text. ``full`` lists every aggregate and flip; otherwise the tested
    metrics, up to `SHOWN_FLIPS` flips and a count of the rest."""
    base, cur = comparison.baseline, comparison.current
    lines = [
        f"baseline {printable(base.label)}  model {printable(str(base.model))}",
        f"current  {printable(cur.label)}  model {printable(str(cur.model))}",
        f"matched {comparison.matched} case(s); only in baseline: "
        f"{len(comparison.only_in_baseline)}; only in current: {len(comparison.only_in_current)}",
    ]
    for title, labels in (
        ("only in baseline", comparison.only_in_baseline),
        ("only in current", comparison.only_in_current),
    ):
        if labels:
            shown = labels if full else labels[:10]
            more = f", ... ({len(labels) - len(shown)} more)" if len(shown) < len(labels) else ""
            lines.append(f"  {title}: {', '.join(map(printable, shown))}{more}")
    if comparison.changes:
        lines.append("what changed:")
        for change in comparison.changes:
            lines.append(f"  {printable(change.describe())}")
            if change.diff:
                lines.extend(f"    {printable(line)}" for line in change.diff.splitlines())
    else:
        lines.append("what changed: nothing (model, params, prompts, datasets, plugin version)")
    tested = [m for m in comparison.metrics if m.test is not None]
    others = [m for m in comparison.metrics if m.test is None]
    changed = [m for m in others if m.delta != 0]
    lines.append("metrics (95% CI and p of the paired difference current - baseline):")
    lines.extend(metric_table(comparison, [*tested, *changed] if full else tested))
    if comparison.missing:
        lines.append(f"  missing from this run: {missing_metrics(comparison)}")
    unchanged = len(others) - len(changed)
    if full and unchanged:
        lines.append(f"  + {unchanged} unchanged aggregate(s) without paired statistics")
    elif not full and others:
        lines.append(f"  + {len(others)} other aggregate(s) compared by delta only (not tested)")
    lines.extend(flip_lines(comparison, limit=None if full else SHOWN_FLIPS))
    lines.extend(
        printable(m.message(comparison.max_drop))
        for m in comparison.metrics
        if m.verdict == "regression"
    )
    lines.extend(printable(note) for note in comparison.incomplete)
    lines.append(gate_line(comparison, enforced=enforced))
    return lines


def missing_metrics(comparison: Comparison) -> str:
    """``mean_accuracy (capitals), pass_rate (all tests)``: what `Comparison.missing` lists."""
    return printable(
        ", ".join(f"{name} ({group_label(group)})" for group, name in comparison.missing)
    )


def flip_counts(comparison: Comparison, arrow: str = "->") -> str:
    """``3 pass -> fail, 1 fail -> pass`` (and ``, 2 pass -> skipped`` when some were)."""
    counts = {d: 0 for d in ("pass->fail", "fail->pass", "pass->skipped")}
    for flip in comparison.flips:
        counts[flip.direction] += 1
    return ", ".join(
        f"{n} {d.replace('->', f' {arrow} ')}"
        for d, n in counts.items()
        if n or d != "pass->skipped"
    )


def flip_lines(comparison: Comparison, *, limit: int | None) -> list[str]:
    flips = comparison.flips
    if not flips:
        return ["flipped items: none"]
    shown = flips if limit is None else flips[:limit]
    lines = [
        f"flipped items: {flip_counts(comparison)}"
        + (f" (showing {len(shown)})" if len(shown) < len(flips) else "")
    ]
    for flip in shown:
        scores = ", ".join(
            f"{k} {short(v[0], 20)} -> {short(v[1], 20)}" for k, v in flip.scores.items()
        )
        lines.append(
            f"  {flip.direction.replace('->', ' -> ')}  {printable(flip.label)}: "
            f"input {short(flip.input)}"
            f"  expected {short(flip.expected_output)}"
        )
        lines.append(
            f"      output {short(flip.baseline_output)} -> {short(flip.current_output)}"
            + (f"  scores: {scores}" if scores else "")
        )
    return lines


# --- markdown -----------------------------------------------------------------------------------


# User values (item ids, inputs, outputs, names) end up in a pull-request comment, where raw
# HTML, a link or an image would render: text gets character references for the HTML
# characters and backslash escapes for the markdown ones; code spans get a fence that nothing
# inside can close. Either way control characters are escaped, as on the terminal.
_TEXT_ESCAPES = str.maketrans(
    {
        "&": "&amp;",
        "<": "&lt;",
        ">": "&gt;",
        "\\": "\\\\",
        "`": "\\`",
        "[": "\\[",
        "]": "\\]",
        "|": "\\|",
    }
)


def _text(value: str) -> str:
    """``value`` as literal markdown text, also in a table cell."""
    return printable(value).translate(_TEXT_ESCAPES)


def _backticks(text: str) -> int:
    """The length of the longest run of backticks in ``text``."""
    return max((len(run) for run in re.findall("`+", text)), default=0)


def _code(value: str, *, cell: bool = False) -> str:
    """``value`` as one code span; ``cell``: in a table cell, where a pipe needs its escape."""
    text = printable(value)
    fence = "`" * (_backticks(text) + 1)
    if text[:1] in ("`", " ") or text[-1:] in ("`", " "):
        text = f" {text} "  # the padding CommonMark strips, so an edge backtick stays content
    if cell:
        # The table splits cells before code spans are read, and any "\|" escapes the pipe:
        # a backslash before a pipe would otherwise pair with that escape and end the cell.
        text = re.sub(r"(\\*)\|", lambda m: m.group(1) * 2 + "\\|", text)
    return f"{fence}{text}{fence}"


def _row(cells: list[str]) -> str:
    """A table row of cells that are already markdown (`_text`, ``_code(cell=True)``)."""
    return "| " + " | ".join(cells) + " |"


def _described(change: Change) -> str:
    """``change.describe()`` with its values as markdown text (not its own ``->``)."""

    def shown(value: Any) -> Any:
        return None if value is None else _text(str(value))

    escaped = replace(
        change,
        name=_text(change.name),
        baseline=shown(change.baseline),
        current=shown(change.current),
        note=_text(change.note),
    )
    return escaped.describe()


def _diff_block(diff: str) -> list[str]:
    """A fenced ``diff`` block, indented under its list item, that no line of it can close."""
    lines = [printable(line) for line in diff.splitlines()]
    fence = "`" * max([3, *(_backticks(line) + 1 for line in lines)])
    return ["", f"  {fence}diff", *(f"  {line}" for line in lines), f"  {fence}"]


PAIRED_NOTE = (
    "*paired*: the mean change of the items both runs have, which the 95% CI, p and verdict "
    "are of; delta compares the aggregates, items in one run only included."
)
_ICONS = {"regression": "🔴", "improvement": "🟢", "no significant change": "⚪", "not tested": ""}


def _metric_rows(comparison: Comparison, rows: list[MetricComparison]) -> list[str]:
    lines = [
        _row(["scope", "metric", *HEADER, "verdict"]),
        "|---|---|--:|--:|--:|--:|--:|--:|---|",
    ]
    for row in rows:
        verdict = f"{_ICONS.get(row.verdict, '')} {_verdict(row, comparison.max_drop)}".strip()
        name = _code(row.name, cell=True)
        cells = [_text(group_label(row.group)), name, *_cells(row, comparison.max_drop), verdict]
        lines.append(_row(cells))
    return lines


def markdown(comparison: Comparison, *, enforced: bool = True) -> str:
    """A pull-request comment: verdict, metric table, what changed, flipped items."""
    base, cur, incomplete = comparison.baseline, comparison.current, comparison.incomplete
    head = "❌" if comparison.regressions or incomplete else "✅" if comparison.tested else "⚠️"
    verdict = gate_line(comparison, enforced=enforced)
    out = [
        f"## llmobs comparison: {_text(cur.label)} vs baseline {_text(base.label)}",
        "",
        f"{head} **{verdict}**",
        "",
        *(f"- {_text(line)}" for line in incomplete),
        *([""] if incomplete else []),
        f"Models: baseline {_code(str(base.model))}, current {_code(str(cur.model))}. "
        f"Matched {comparison.matched} "
        f"case(s); only in baseline: {len(comparison.only_in_baseline)}; only in current: "
        f"{len(comparison.only_in_current)}.",
        "",
    ]
    tested = [m for m in comparison.metrics if m.test is not None]
    others = [m for m in comparison.metrics if m.test is None and m.delta != 0]
    if tested:
        out += [*_metric_rows(comparison, tested), ""]
    if any(m.figures(comparison.max_drop).paired is not None for m in tested):
        out += [PAIRED_NOTE, ""]
    if others:
        out += [
            f"<details><summary>{len(others)} other aggregate(s) changed (delta only, not "
            "tested)</summary>",
            "",
            *_metric_rows(comparison, others),
            "",
            "</details>",
            "",
        ]
    out += ["### What changed", ""]
    if not comparison.changes:
        out += ["Nothing: same model, params, prompt versions, dataset versions and plugin.", ""]
    for change in comparison.changes:
        out.append(f"- {_described(change)}")
        if change.diff:
            out += _diff_block(change.diff)
    out.append("")
    flips = comparison.flips
    out += [f"### Flipped items ({flip_counts(comparison, '→')})", ""]
    if flips:
        out.append(
            _row(
                [
                    "item",
                    "change",
                    "input",
                    "expected",
                    "baseline output",
                    "current output",
                    "scores",
                ]
            )
        )
        out.append("|---|---|---|---|---|---|---|")
        for flip in flips:
            scores = ", ".join(
                f"{k}: {short(v[0], 20)} → {short(v[1], 20)}" for k, v in flip.scores.items()
            )
            out.append(
                _row(
                    [
                        _code(flip.label, cell=True),
                        flip.direction.replace("->", " → "),
                        _text(short(flip.input)),
                        _text(short(flip.expected_output)),
                        _text(short(flip.baseline_output)),
                        _text(short(flip.current_output)),
                        _text(scores),
                    ]
                )
            )
    else:
        out.append("None.")
    if comparison.only_in_baseline or comparison.only_in_current:
        out += ["", "### Unmatched items", ""]
        for title, labels in (
            ("only in baseline", comparison.only_in_baseline),
            ("only in current", comparison.only_in_current),
        ):
            if labels:
                out.append(f"- {title} ({len(labels)}): " + ", ".join(map(_code, labels)))
    return "\n".join(out) + "\n"
