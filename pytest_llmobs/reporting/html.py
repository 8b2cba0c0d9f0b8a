"""A self-contained HTML report of one stored run (``--llm-report``, ``llmobs report``).

One file, readable offline and safe to attach to a CI job: the stylesheet, the script and the
SVG charts are inline, and a Content-Security-Policy forbids loading anything at all. Every
value from the run is escaped. Sections: the run (status, model, git, datasets, prompt
versions), thresholds, the comparison with a baseline when there is one, score distributions,
and the items with filters and a trace tree each (the first `MAX_TRACES`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pytest_llmobs import __version__
from pytest_llmobs.aggregate_names import ALL_ITEMS
from pytest_llmobs.file_output import write_file
from pytest_llmobs.reporting.figures import observed_figure
from pytest_llmobs.reporting.html_assets import CSS, JS, content_security_policy
from pytest_llmobs.reporting.html_compare import comparison_section
from pytest_llmobs.reporting.html_items import MAX_TRACES, items_section
from pytest_llmobs.reporting.html_repeats import repeats_section
from pytest_llmobs.reporting.html_scores import item_groups, scores_section
from pytest_llmobs.reporting.html_text import OUTCOMES, duration, esc, number, timestamp
from pytest_llmobs.reporting.terminal import group_facts, unfinished_lines
from pytest_llmobs.run_result import partial_datasets_from_dict
from pytest_llmobs.thresholds import ThresholdError, parse_threshold

__all__ = ["MAX_TRACES", "render_html", "write_html"]

MISSING_SHOWN = 500
"""Missing items listed by name; a longer list ends with a count of the rest."""

_STATUSES = ("passed", "failed", "interrupted", "running")


def render_html(run: Mapping[str, Any], *, max_traces: int = MAX_TRACES) -> str:
    """The whole page for ``run`` (a stored run as `Store.load_run` or an export returns it)."""
    name = str(run.get("name") or run.get("id") or "run")
    status = str(run.get("status") or "unknown")
    scores, repeats = scores_section(run), repeats_section(run)
    sections = [
        _header(run, scores=bool(scores), repeats=bool(repeats)),
        _summary(run),
        _thresholds(run),
        comparison_section(run.get("comparison")),
        scores,
        repeats,
        _missing(run),
        items_section(list(run.get("items") or []), max_traces=max_traces),
    ]
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{content_security_policy()}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="referrer" content="no-referrer">'
        f"<title>{esc(status)} · {esc(name)} · llmobs report</title>"
        f"<style>{CSS}</style></head><body><main>"
        + "".join(sections)
        + f"<footer>pytest-llmobs {esc(__version__)} · self-contained report: this page loads "
        "nothing from the network.</footer>"
        f"</main><script>{JS}</script></body></html>\n"
    )


def write_html(run: Mapping[str, Any], path: Path, *, max_traces: int = MAX_TRACES) -> Path:
    """Render ``run`` to ``path`` as `write_file` does: a file (its missing directories made)
    is replaced atomically, a pipe or device (/dev/stdout) written into."""
    return write_file(path, render_html(run, max_traces=max_traces))


def _header(run: Mapping[str, Any], *, scores: bool, repeats: bool) -> str:
    """The run's name, status and facts, its counts, and a link to each section it has."""
    status = str(run.get("status") or "unknown")
    css = status if status in _STATUSES else "running"
    environment = run.get("environment") or {}
    model = esc(run.get("model") or "–")
    facts: list[tuple[str, str]] = [("model", f'<span class="mono">{model}</span>')]
    started, ended = run.get("started_at"), run.get("ended_at")
    facts.append(("started", esc(timestamp(started))))
    if isinstance(started, int | float) and isinstance(ended, int | float):
        facts.append(("took", esc(duration(ended - started))))
    if environment.get("git_commit"):
        commit = str(environment["git_commit"])[:12]
        branch = environment.get("git_branch")
        dirty = " (dirty)" if environment.get("git_dirty") else ""
        git = f'<span class="mono" title="{esc(environment["git_commit"])}">{esc(commit)}</span>'
        facts.append(("git", git + (f" on {esc(branch)}" if branch else "") + esc(dirty)))
    for key in ("python", "pytest", "plugin_version"):
        if environment.get(key):
            facts.append((key.replace("_", " "), esc(environment[key])))
    counts = run.get("counts") or {}
    total = len(run.get("items") or []) or sum(int(v) for v in counts.values())
    chips = [f'<span class="badge neutral">{total} items</span>']
    for outcome in [*OUTCOMES, *sorted(set(counts) - set(OUTCOMES))]:
        if counts.get(outcome):
            chips.append(
                f'<span class="badge {esc(outcome)}">{counts[outcome]} {esc(outcome)}</span>'
            )
    nav = [("summary", "Run"), ("thresholds", "Thresholds")]
    if run.get("comparison"):
        nav.append(("comparison", "Comparison"))
    missing = _missing_entries(run)
    if missing:
        chips.append(f'<span class="badge failed">{len(missing)} missing</span>')
    if scores:
        nav.append(("scores", "Scores"))
    if repeats:
        nav.append(("repeats", "Repeats"))
    if missing:
        nav.append(("missing", "Missing"))
    nav.append(("items", "Items"))
    return (
        f'<header class="run {esc(css)}"><div class="title"><h1>{esc(run.get("name") or "")}</h1>'
        f'<span class="badge big {esc(css)}" id="run-status">{esc(status)}</span></div>'
        f'<div class="runid mono">run {esc(run.get("id", ""))}</div>'
        '<dl class="facts">'
        + "".join(f"<div><dt>{esc(k)}</dt><dd>{v}</dd></div>" for k, v in facts)
        + f'</dl><div class="counts">{"".join(chips)}</div><nav class="toc">'
        + "".join(f'<a href="#{anchor}">{label}</a>' for anchor, label in nav)
        + "</nav></header>"
    )


def _summary(run: Mapping[str, Any]) -> str:
    groups = item_groups(run)
    datasets = run.get("datasets") or {}
    partial = partial_datasets_from_dict(run.get("partial_datasets"))
    rows = []
    for name, (_, aggregates) in groups.items():
        count, rate, rest = group_facts(aggregates, partial.get(name))
        items = count.split()[0] + "".join(f" {r}" if r[0] == "(" else f", {r}" for r in rest)
        scope, version = (
            ("all tests", "")
            if name == ALL_ITEMS
            else (f'<span class="mono">{esc(name)}</span>', esc(datasets.get(name, "–")))
        )
        rows.append(
            f'<tr><td>{scope}</td><td class="mono">{version}</td><td class="num">{esc(items)}</td>'
            f'<td class="num">{esc(rate or "–")}</td></tr>'
        )
    dataset_table = (
        '<table><thead><tr><th>dataset</th><th>version</th><th class="num">items</th>'
        f'<th class="num">pass rate</th></tr></thead><tbody>{"".join(rows)}</tbody></table>'
    )
    if len(groups) == 1:
        dataset_table += '<p class="muted">No dataset was used.</p>'
    prompts = [
        f'<tr><td class="mono">{esc(p.get("name"))}</td><td class="num">{esc(p.get("version"))}'
        f'</td><td class="mono muted">{esc(p.get("hash") or "")}</td></tr>'
        for p in run.get("prompts") or []
        if isinstance(p, Mapping)
    ]
    prompt_table = (
        '<table><thead><tr><th>prompt</th><th class="num">version</th><th>hash</th></tr></thead>'
        f"<tbody>{''.join(prompts)}</tbody></table>"
        if prompts
        else '<p class="muted">No managed prompt was used.</p>'
    )
    parts = [
        '<section id="summary"><h2>Run</h2><div class="grid2">',
        f"<div><h3>Datasets</h3>{dataset_table}</div>",
        f"<div><h3>Prompt versions</h3>{prompt_table}</div></div>",
    ]
    params = run.get("params") or {}
    if params:
        shown = " · ".join(f"{k}={_param(v)}" for k, v in params.items())
        parts.append(
            '<p><span class="muted">model parameters</span> '
            f'<span class="mono">{esc(shown)}</span></p>'
        )
    if "ended_at" in run and run["ended_at"] is None:  # killed, crashed or still going
        stored = len(run.get("items") or [])
        notes = "".join(f"<div>{esc(line)}</div>" for line in unfinished_lines(run, stored))
        parts.append(f'<div class="note">{notes}</div>')
    errors = run.get("errors") or []
    if errors:
        parts.append('<h3 class="errors">Run errors</h3>')
        parts.extend(f'<div class="errmsg">{esc(error)}</div>' for error in errors)
    parts.append("</section>")
    return "".join(parts)


def _missing_entries(run: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [entry for entry in run.get("missing") or [] if isinstance(entry, Mapping)]


def _missing(run: Mapping[str, Any]) -> str:
    """Collected items with no result (a crashed xdist worker, a session stopped by ``-x``):
    what the terminal summary lists, the first `MISSING_SHOWN` of them."""
    missing = _missing_entries(run)
    if not missing:
        return ""
    count = len(missing)
    rows = [
        f'<tr><td class="mono">{esc(entry.get("node_id", ""))}</td>'
        f"<td>{esc(entry.get('reason', ''))}</td></tr>"
        for entry in missing[:MISSING_SHOWN]
    ]
    more = (
        f'<p class="muted">… and {count - MISSING_SHOWN:,} more: <code>llmobs export RUN</code> '
        "lists them all.</p>"
        if count > MISSING_SHOWN
        else ""
    )
    return (
        f'<section id="missing"><h2>Missing</h2><p class="errors"><b>{count:,} collected '
        f"item{'s' if count != 1 else ''} missing from the run</b> (no result arrived).</p>"
        "<table><thead><tr><th>test</th><th>why</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>{more}</section>"
    )


def _param(value: object) -> str:
    return number(value) if isinstance(value, int | float) else str(value)


def _thresholds(run: Mapping[str, Any]) -> str:
    entries = [t for t in run.get("thresholds") or [] if isinstance(t, Mapping)]
    if not entries:
        return (
            '<section id="thresholds"><h2>Thresholds</h2>'
            '<p class="muted">No thresholds were set for this run.</p></section>'
        )
    failed = sum(1 for t in entries if not t.get("passed"))
    verdict = (
        f'<p class="errors"><b>{failed} of {len(entries)} threshold(s) failed.</b></p>'
        if failed
        else f'<p class="muted">All {len(entries)} threshold(s) passed.</p>'
    )
    rows = []
    for entry in entries:
        passed = bool(entry.get("passed"))
        mark = (
            '<span class="badge skipped">– not evaluated</span>'
            if entry.get("evaluated") is False
            else '<span class="badge pass">✓ pass</span>'
            if passed
            else '<span class="badge fail">✗ fail</span>'
        )
        scope = entry.get("dataset") or "all tests"
        observed = esc(_observed(entry)) if entry.get("error") is None else ""
        detail = f'<div class="errmsg">{esc(entry["error"])}</div>' if entry.get("error") else ""
        rows.append(
            f'<tr class="{"" if passed else "bad"}"><td>{mark}</td><td>{esc(scope)}</td>'
            f'<td class="mono">{esc(entry.get("expression", ""))}{detail}</td>'
            f'<td class="num">{observed}</td><td class="num">{esc(entry.get("n", ""))}</td>'
            f'<td class="muted">{esc(entry.get("source") or "")}</td></tr>'
        )
    return (
        f'<section id="thresholds"><h2>Thresholds</h2>{verdict}<table><thead><tr><th>verdict</th>'
        '<th>scope</th><th>expression</th><th class="num">observed</th><th class="num">n</th>'
        f"<th>from</th></tr></thead><tbody>{''.join(rows)}</tbody></table></section>"
    )


def _observed(entry: Mapping[str, Any]) -> str:
    """The figure a threshold observed, as the terminal shows it (`figures.observed_figure`:
    every digit when the rounded one would read as the other verdict)."""
    observed = entry.get("observed")
    if not isinstance(observed, int | float) or isinstance(observed, bool):
        return number(observed)
    try:
        threshold = parse_threshold(str(entry.get("expression", "")), dataset=entry.get("dataset"))
    except ThresholdError:  # (not a run's own entry: shown as it is)
        return number(observed)
    return observed_figure(threshold, float(observed), bool(entry.get("passed")))
