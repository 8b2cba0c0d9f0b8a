"""The HTML report's repeats section (``--llm-repeat``): what the terminal summary says of the
repeats (how many items repeated, how many flaky, score variance across repeats), and every
flaky item in a table, flakiest first."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from pytest_llmobs.reporting.html_text import esc, number

MAX_FLAKY = 500
"""Flaky items listed by name; a longer list ends with a count of the rest."""


def repeats_section(run: Mapping[str, Any]) -> str:
    """The section, or an empty string for a run without repeats."""
    from pytest_llmobs.repeats import repeat_lines

    summary = run.get("repeats")
    if not isinstance(summary, Mapping) or not summary:
        return ""
    lines = []
    with contextlib.suppress(KeyError, TypeError, ValueError, ZeroDivisionError):  # (hand-made)
        for line in repeat_lines(summary):
            if line.startswith("  flaky "):  # the terminal's few flakiest: all of them below
                break
            lines.append(line.strip().removeprefix("repeats: "))
    flaky = [r for r in summary.get("items") or [] if isinstance(r, Mapping) and r.get("flaky")]
    flaky.sort(key=lambda r: (-r.get("flakiness", 0), str(r.get("dataset")), str(r.get("item_id"))))
    parts = ['<section id="repeats"><h2>Repeats</h2>']
    parts.extend(f"<p>{esc(line)}</p>" for line in lines)
    if flaky:
        rows = [
            f'<tr class="bad"><td class="mono">{esc(r.get("dataset", ""))}</td>'
            f'<td class="mono">{esc(r.get("item_id", ""))}</td>'
            f'<td class="num">{number(r.get("passed"))}</td>'
            f'<td class="num">{number(r.get("failed"))}</td>'
            f'<td class="num">{number(r.get("repeats"))}</td>'
            f'<td class="num">{number(r.get("flakiness"), digits=2)}</td></tr>'
            for r in flaky[:MAX_FLAKY]
        ]
        parts.append(
            '<table><thead><tr><th>dataset</th><th>item</th><th class="num">passed</th>'
            '<th class="num">failed</th><th class="num">repeats</th>'
            f'<th class="num">flakiness</th></tr></thead><tbody>{"".join(rows)}</tbody></table>'
        )
        if len(flaky) > MAX_FLAKY:
            parts.append(
                f'<p class="muted">… and {len(flaky) - MAX_FLAKY:,} more flaky items: '
                "<code>llmobs export RUN</code> lists them all.</p>"
            )
    parts.append("</section>")
    return "".join(parts)
