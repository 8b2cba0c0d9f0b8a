"""Small inline SVG charts for the HTML report: histograms, bar charts, interval marks.

Pure functions from numbers to markup; colours come from CSS classes in the page, labels are
escaped, and nothing refers to anything outside the document.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from pytest_llmobs.reporting.html_text import compact, esc, number, short

_WIDTH = 300
BAR_ROWS = 12
"""Most categories drawn as their own bar; the rest are summed into one "other" bar."""
_BAR_CHART_WIDTH = 340
_LABEL_CHARS = 20
"""Longest category label drawn whole; a longer one is cut with "…" (its tooltip has it all)."""
_LABEL_WIDTH = 150
"""Room for a label right-aligned 6 px before its bar: `_LABEL_CHARS` of the 11 px monospace
tick font (about 6.6 px per character) fit with a margin."""


def top_categories(
    counts: Sequence[tuple[str, int]], *, rows: int = BAR_ROWS
) -> list[tuple[str, int]]:
    """``(value, count)`` pairs, largest first; beyond ``rows`` pairs, the smallest are summed
    into one ``("other (N values)", total)`` pair (the HTML charts and the terminal agree)."""
    ordered = sorted(counts, key=lambda pair: (-pair[1], pair[0]))
    if len(ordered) <= rows:
        return ordered
    rest = ordered[rows - 1 :]
    return [*ordered[: rows - 1], (f"other ({len(rest)} values)", sum(c for _, c in rest))]


def _svg(width: int, height: int, label: str, body: str) -> str:
    return (
        f'<svg class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}"'
        f' role="img" aria-label="{esc(label)}"><title>{esc(label)}</title>{body}</svg>'
    )


def histogram_bins(values: Sequence[float]) -> list[tuple[float, float, int]]:
    """(low, high, count) bins: tenths of [0, 1] for values in that range, one bin per integer
    for a few distinct integers, otherwise between ``sqrt(n)`` and 20 equal bins over the range."""
    if not values:
        return []
    low, high = min(values), max(values)
    if low == high:
        return [(low, high, len(values))]
    if low >= 0 and high <= 1:
        low, high, count = 0.0, 1.0, 10
    elif all(float(v).is_integer() for v in values) and high - low < 20:
        low, high, count = low - 0.5, high + 0.5, int(high - low) + 1
    else:
        count = min(20, max(5, math.ceil(math.sqrt(len(values)))))
    width = (high - low) / count
    counts = [0] * count
    for value in values:
        counts[min(count - 1, max(0, _bin_index((value - low) / width)))] += 1
    return [(low + i * width, low + (i + 1) * width, c) for i, c in enumerate(counts)]


def _bin_index(position: float) -> int:
    """The bin of a value ``position`` bin widths from the first bin's start. A value on a
    bin's start, up to float noise, is in that bin: ``(0.3 - 0) / 0.1`` is 2.9999999999999996,
    yet 0.3 belongs to the bin 0.3-0.4, where it is drawn."""
    nearest = round(position)
    if math.isclose(position, nearest, rel_tol=1e-9, abs_tol=1e-9):
        return int(nearest)
    return math.floor(position)


def histogram(values: Sequence[float], *, label: str) -> str:
    """A histogram of numeric score values, with the range on the x axis."""
    bins = histogram_bins(values)
    height, left, bottom, top = 130, 30, 20, 8
    plot_w, plot_h = _WIDTH - left - 8, height - bottom - top
    if not bins:
        return _svg(_WIDTH, height, label, "")
    peak = max(c for _, _, c in bins)
    step = plot_w / len(bins)
    inset = plot_w * 0.4 if len(bins) == 1 else 1.0  # one value: a bar, not a wall
    parts = []
    for i, (lo, hi, count) in enumerate(bins):
        bar_h = plot_h * count / peak if peak else 0
        span = compact(lo) if lo == hi else f"{compact(lo)}–{compact(hi)}"
        parts.append(
            f'<rect class="bar" x="{left + i * step + inset:.1f}" y="{top + plot_h - bar_h:.1f}"'
            f' width="{max(step - 2 * inset, 1):.1f}" height="{bar_h:.1f}">'
            f"<title>{esc(span)}: {count} item{'s' if count != 1 else ''}</title></rect>"
        )
    base = top + plot_h
    first, last = bins[0][0], bins[-1][1]
    parts.append(f'<line class="axis" x1="{left}" y1="{base}" x2="{left + plot_w}" y2="{base}"/>')
    parts.append(f'<line class="axis" x1="{left}" y1="{top}" x2="{left}" y2="{base}"/>')
    parts.append(f'<text class="tick" x="{left - 4}" y="{top + 8}" text-anchor="end">{peak}</text>')
    parts.append(f'<text class="tick" x="{left - 4}" y="{base}" text-anchor="end">0</text>')
    if first == last:
        parts.append(
            f'<text class="tick" x="{left + plot_w / 2:.1f}" y="{height - 4}"'
            f' text-anchor="middle">{esc(compact(first))}</text>'
        )
    else:
        parts.append(f'<text class="tick" x="{left}" y="{height - 4}">{esc(compact(first))}</text>')
        parts.append(
            f'<text class="tick" x="{left + plot_w}" y="{height - 4}" text-anchor="end">'
            f"{esc(compact(last))}</text>"
        )
    return _svg(_WIDTH, height, label, "".join(parts))


def bar_chart(counts: Sequence[tuple[str, int]], *, label: str) -> str:
    """Horizontal bars, one per category (largest first), the count at each bar's end."""
    ordered = top_categories(counts)
    row, label_w, count_w = 20, _LABEL_WIDTH, 34
    height = max(row * len(ordered) + 8, 28)
    plot_w = _BAR_CHART_WIDTH - label_w - count_w
    peak = max((c for _, c in ordered), default=0)
    parts = []
    for i, (name, count) in enumerate(ordered):
        y = 4 + i * row
        bar_w = plot_w * count / peak if peak else 0
        parts.append(
            f'<g><title>{esc(name)}</title><text class="tick cat" x="{label_w - 6}" y="{y + 13}"'
            f' text-anchor="end">{esc(short(name, _LABEL_CHARS))}</text></g>'
            f'<rect class="bar" x="{label_w}" y="{y + 2}" width="{max(bar_w, 1):.1f}"'
            f' height="{row - 6}"><title>{esc(name)}: {count}</title></rect>'
            f'<text class="tick" x="{label_w + bar_w + 4:.1f}" y="{y + 13}">{count}</text>'
        )
    return _svg(_BAR_CHART_WIDTH, height, label, "".join(parts))


def interval_mark(
    point: float | None,
    low: float | None,
    high: float | None,
    *,
    css_class: str = "",
    label: str | None = None,
) -> str:
    """A change and its interval drawn around a zero line: where the change lies, and whether
    its interval crosses zero; ``label`` (its title) names them, by default as numbers."""
    width, height, pad = 150, 18, 6
    values = [abs(v) for v in (point, low, high) if v is not None and math.isfinite(v)]
    reach = max(values, default=0.0) * 1.15 or 1.0

    def x(value: float) -> float:
        return pad + (value + reach) / (2 * reach) * (width - 2 * pad)

    parts = [f'<line class="zero" x1="{x(0):.1f}" y1="2" x2="{x(0):.1f}" y2="{height - 2}"/>']
    if low is not None and high is not None and math.isfinite(low) and math.isfinite(high):
        parts.append(
            f'<line class="ci" x1="{x(low):.1f}" y1="9" x2="{x(high):.1f}" y2="9"/>'
            f'<line class="ci" x1="{x(low):.1f}" y1="5" x2="{x(low):.1f}" y2="13"/>'
            f'<line class="ci" x1="{x(high):.1f}" y1="5" x2="{x(high):.1f}" y2="13"/>'
        )
    if point is not None and math.isfinite(point):
        parts.append(f'<circle class="point" cx="{x(point):.1f}" cy="9" r="3.5"/>')
    if label is None:
        label = f"delta {number(point)}, interval {number(low)} to {number(high)}"
    return (
        f'<svg class="interval {esc(css_class)}" width="{width}" height="{height}"'
        f' viewBox="0 0 {width} {height}" role="img" aria-label="{esc(label)}">'
        f"<title>{esc(label)}</title>{''.join(parts)}</svg>"
    )
