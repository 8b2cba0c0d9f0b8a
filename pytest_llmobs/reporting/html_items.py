"""The HTML report's item table (filterable) and each item's trace tree.

Every item is one row; an item with its trace shown is a ``<details>`` element whose body holds
its error, input/output, scores and the trace: observations nested by ``parent_id``, each one
expanding to its input, output, metadata, model, usage and prompt version.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pytest_llmobs.providers.base import is_chat_message
from pytest_llmobs.reporting.html_text import (
    OUTCOMES,
    as_text,
    clipped,
    duration,
    esc,
    marked,
    number,
    score_value,
    short,
)

MAX_TRACES = 2000
"""Items whose traces are written in full; the rest are summary rows."""

_SEARCH_CHARS = 400
"""How much of an item's input, output and error its search text holds."""


def traced_items(items: Sequence[Mapping[str, Any]], limit: int) -> set[int]:
    """Indexes of the items whose traces the page shows: failed and errored first, then the
    others in run order, ``limit`` in all."""
    if len(items) <= limit:
        return set(range(len(items)))
    bad = [i for i, item in enumerate(items) if item.get("outcome") in ("failed", "error")]
    chosen = set(bad[:limit])
    for index in range(len(items)):
        if len(chosen) >= limit:
            break
        chosen.add(index)
    return chosen


def items_section(items: Sequence[Mapping[str, Any]], *, max_traces: int = MAX_TRACES) -> str:
    """The filter bar, an optional note about omitted traces, and one row per item."""
    shown = traced_items(items, max_traces)
    outcomes = Counter(str(item.get("outcome")) for item in items)
    datasets = sorted({str(item["dataset"]) for item in items if item.get("dataset")})
    parts = ['<section id="items"><h2>Items</h2>']
    if len(shown) < len(items):
        parts.append(
            f'<p class="note">This run has {len(items):,} items: traces are included for '
            f"{len(shown):,} of them (failed and errored items first, then in run order); the "
            f"other {len(items) - len(shown):,} are summary rows. The full data is in the store: "
            "<code>llmobs export RUN</code>.</p>"
        )
    parts.append(_filters(outcomes, datasets, any(not i.get("dataset") for i in items)))
    parts.append('<div class="items"><div class="row items-head"><span>outcome</span>')
    parts.append("<span>test</span><span>dataset · item</span><span>scores</span>")
    parts.append('<span class="num">duration</span></div>')
    for index, item in enumerate(items):
        parts.append(_item(item, with_trace=index in shown))
    if not items:
        parts.append('<p class="muted" style="padding:8px 12px">No items were recorded.</p>')
    parts.append("</div></section>")
    return "".join(parts)


def _filters(outcomes: Counter[str], datasets: list[str], undatasetted: bool) -> str:
    options = ['<option value="">all outcomes</option>']
    for outcome in [*OUTCOMES, *sorted(set(outcomes) - set(OUTCOMES))]:
        if outcomes.get(outcome):
            options.append(
                f'<option value="{esc(outcome)}">{esc(outcome)} ({outcomes[outcome]})</option>'
            )
    sets = ['<option value="">all datasets</option>']
    sets += [f'<option value="d:{esc(name)}">{esc(name)}</option>' for name in datasets]
    if undatasetted and datasets:
        sets.append('<option value="none">tests without a dataset</option>')
    return (
        '<div class="filters">'
        '<input id="f-text" type="search" placeholder="Filter by test id, item, input, output,'
        ' score…" aria-label="Filter items by text">'
        f'<select id="f-outcome" aria-label="Outcome">{"".join(options)}</select>'
        f'<select id="f-dataset" aria-label="Dataset">{"".join(sets)}</select>'
        '<button type="button" id="f-expand">Expand all</button>'
        '<button type="button" id="f-collapse">Collapse all</button>'
        f'<span id="f-count">{sum(outcomes.values())} items</span></div>'
    )


def _scores(item: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return list((item.get("trace") or {}).get("scores") or [])


def _root(item: Mapping[str, Any]) -> Mapping[str, Any]:
    observations = (item.get("trace") or {}).get("observations") or []
    roots = [o for o in observations if not o.get("parent_id")]
    return roots[0] if roots else {}


def _search_text(item: Mapping[str, Any]) -> str:
    root = _root(item)
    fields: list[object] = [
        item.get("node_id"),
        item.get("dataset"),
        item.get("item_id"),
        item.get("outcome"),
        item.get("error"),
        item.get("skip_reason"),
    ]
    fields += [f"{s.get('name')}={score_value(s.get('value'))}" for s in _scores(item)]
    for value in (item.get("input"), item.get("expected_output"), root.get("output")):
        if value is not None:
            fields.append(short(as_text(value), _SEARCH_CHARS))
    return " ".join(str(f) for f in fields if f not in (None, "")).lower()


def _chip(score: Mapping[str, Any]) -> str:
    value = score.get("value")
    low = value is False or (
        isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < 0.5
    )
    text = f"{score.get('name')}={score_value(value)}"
    css = ' class="chip false"' if low else ' class="chip"'
    return f'<span{css} title="{esc(text)}">{esc(short(text, 40))}</span>'


def _row(item: Mapping[str, Any]) -> str:
    outcome = str(item.get("outcome", "unknown"))
    place = '<span class="muted">–</span>'
    if item.get("dataset"):
        repeat = f" · repeat {item['repeat']}" if item.get("repeat") else ""
        place = (
            f'<span class="mono">{marked(item.get("item_id") or "")}{esc(repeat)}</span>'
            f'<span class="place-set">{marked(item["dataset"])}</span>'
        )
    chips = "".join(_chip(s) for s in _scores(item))
    return (
        f'<span><span class="badge {esc(outcome)}">{esc(outcome)}</span></span>'
        f'<span class="nodeid mono">{marked(item.get("node_id", ""))}</span>'
        f'<span class="place">{place}</span>'
        f'<span class="chips">{chips}</span>'
        f'<span class="num">{duration(_float(item.get("duration")))}</span>'
    )


def _item(item: Mapping[str, Any], *, with_trace: bool) -> str:
    outcome = str(item.get("outcome", "unknown"))
    dataset = item.get("dataset")
    attributes = (
        f'class="item {esc(outcome)}" data-outcome="{esc(outcome)}"'
        f' data-dataset="{esc("d:" + str(dataset)) if dataset else "none"}"'
        f' data-search="{esc(_search_text(item))}"'
    )
    if not with_trace:
        return f'<div {attributes}><div class="row">{_row(item)}</div></div>'
    return (
        f'<details {attributes}><summary class="row">{_row(item)}</summary>'
        f'<div class="item-body">{_item_body(item)}</div></details>'
    )


def _item_body(item: Mapping[str, Any]) -> str:
    parts = []
    if item.get("error"):
        parts.append(f'<div class="errmsg">{clipped(str(item["error"]))}</div>')
    if item.get("skip_reason"):
        parts.append(f'<p class="skipmsg">skipped: {marked(item["skip_reason"])}</p>')
    trace = item.get("trace") or {}
    facts: list[tuple[str, str]] = []
    if item.get("input") is not None:
        facts.append(("input", _pre(item["input"])))
    if item.get("expected_output") is not None:
        facts.append(("expected", _pre(item["expected_output"])))
    output = _root(item).get("output")
    if output is not None:
        facts.append(("output", _pre(output)))
    facts.append(("trace id", f'<span class="mono">{esc(trace.get("id", "–"))}</span>'))
    for key in ("user_id", "session_id"):
        if trace.get(key):
            facts.append((key.replace("_", " "), f'<span class="mono">{esc(trace[key])}</span>'))
    if trace.get("tags"):
        facts.append(
            ("tags", "".join(f'<span class="chip">{marked(t)}</span> ' for t in trace["tags"]))
        )
    if trace.get("metadata"):
        facts.append(("metadata", _flat(trace["metadata"])))
    if item.get("prompts"):
        facts.append(("prompts", esc(", ".join(_prompt_label(p) for p in item["prompts"]))))
    parts.append(_kv(facts))
    scores = _scores(item)
    if scores:
        parts.append(_score_table(scores))
    observations = trace.get("observations") or []
    if observations:
        parts.append("<h4>Trace</h4>")
        parts.append(trace_tree(observations, scores))
    return "".join(parts)


def _prompt_label(prompt: Mapping[str, Any]) -> str:
    return f"{prompt.get('name')} v{prompt.get('version')}"


def _kv(pairs: Iterable[tuple[str, str]]) -> str:
    """A definition list; values are already-escaped markup."""
    body = "".join(f"<dt>{esc(key)}</dt><dd>{value}</dd>" for key, value in pairs)
    return f'<dl class="kv">{body}</dl>'


def _flat(value: object) -> str:
    """A small mapping of scalars on one line (``temperature=0 · max_tokens=200``), else as
    `_pre` shows it."""
    if (
        isinstance(value, Mapping)
        and 0 < len(value) <= 6
        and all(v is None or isinstance(v, str | int | float) for v in value.values())
        and sum(len(str(k)) + len(str(v)) for k, v in value.items()) < 160
    ):
        text = " · ".join(f"{k}={score_value(v)}" for k, v in value.items())
        return f'<span class="mono">{marked(text)}</span>'
    return _pre(value)


def _pre(value: object) -> str:
    if _is_messages(value):
        messages = []
        for message in value:  # type: ignore[attr-defined]
            role = esc(message.get("role", ""))
            content = message.get("content")
            text = "" if content is None else f"<pre>{clipped(as_text(content))}</pre>"
            # an assistant's tool_calls, a tool result's tool_call_id, a name...
            fields = {k: v for k, v in message.items() if k not in ("role", "content")}
            if fields:
                text += f'<pre class="muted">{clipped(as_text(fields))}</pre>'
            messages.append(f'<div class="msg"><span class="role">{role}</span>{text}</div>')
        return "".join(messages)
    return f"<pre>{clipped(as_text(value))}</pre>"


def _is_messages(value: object) -> bool:
    return isinstance(value, list) and bool(value) and all(is_chat_message(m) for m in value)


def _score_table(scores: Sequence[Mapping[str, Any]]) -> str:
    rows = []
    for score in scores:
        rows.append(
            f'<tr><td class="mono">{esc(score.get("name", ""))}</td>'
            f'<td class="mono">{clipped(score_value(score.get("value")), 2000)}</td>'
            f"<td>{esc(score.get('data_type') or '')}</td>"
            f"<td>{esc(score.get('source') or '')}</td>"
            f"<td>{clipped(str(score.get('comment') or ''), 4000)}</td></tr>"
        )
    return (
        "<table><thead><tr><th>score</th><th>value</th><th>type</th><th>source</th>"
        f"<th>comment</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def trace_tree(
    observations: Sequence[Mapping[str, Any]], scores: Sequence[Mapping[str, Any]] = ()
) -> str:
    """Observations nested by ``parent_id`` (an unknown parent makes a root), in start order."""
    ids = {o.get("id") for o in observations}
    children: dict[object, list[Mapping[str, Any]]] = {}
    for observation in sorted(observations, key=lambda o: _float(o.get("start_time")) or 0.0):
        parent = observation.get("parent_id")
        children.setdefault(parent if parent in ids else None, []).append(observation)
    starts = [t for t in (_float(o.get("start_time")) for o in observations) if t is not None]
    ends = [t for t in (_float(o.get("end_time")) for o in observations) if t is not None]
    window = (min(starts), max(ends)) if starts and ends else None
    by_observation: dict[object, list[Mapping[str, Any]]] = {}
    for score in scores:
        if score.get("observation_id"):
            by_observation.setdefault(score["observation_id"], []).append(score)
    seen: set[object] = set()

    def branch(parent: object) -> str:
        nodes = []
        for observation in children.get(parent, []):
            key = observation.get("id")
            if key in seen:  # a malformed trace must not loop
                continue
            seen.add(key)
            sub = branch(key) if key is not None else ""
            node = _observation(observation, window, by_observation.get(key, []))
            nodes.append(f"<li>{node}{sub}</li>")
        return f"<ul>{''.join(nodes)}</ul>" if nodes else ""

    nested = branch(None)
    return '<ul class="tree">' + nested.removeprefix("<ul>") if nested else ""


def _observation(
    observation: Mapping[str, Any],
    window: tuple[float, float] | None,
    scores: Sequence[Mapping[str, Any]],
) -> str:
    kind = str(observation.get("type") or "span")
    start, end = _float(observation.get("start_time")), _float(observation.get("end_time"))
    seconds = end - start if start is not None and end is not None else None
    failed = str(observation.get("level") or "").upper() == "ERROR"
    meta = []
    if kind == "generation":
        if observation.get("model"):
            meta.append(str(observation["model"]))
        if observation.get("prompt_name"):
            meta.append(f"prompt {observation['prompt_name']} v{observation.get('prompt_version')}")
        usage = observation.get("usage") or {}
        if usage:
            meta.append(f"{usage.get('input', 0)} → {usage.get('output', 0)} tokens")
    if failed:
        meta.append("ERROR")
    timeline = ""
    if window is not None and start is not None and seconds is not None:
        total = max(window[1] - window[0], 1e-9)
        left = min(max((start - window[0]) / total * 100, 0.0), 100.0)
        width = min(max(seconds / total * 100, 0.0), 100.0 - left)
        timeline = (
            f'<span class="tl"><span style="left:{left:.2f}%;width:{width:.2f}%"></span></span>'
        )
    summary = (
        f'<span class="kind {esc(kind)}">{esc(kind)}</span>'
        f'<span class="obs-name">{marked(observation.get("name") or "(unnamed)")}</span>'
        f'<span class="obs-meta">{esc(" · ".join(meta))}</span>'
        f'{timeline}<span class="dur">{duration(seconds)}</span>'
    )
    css = "obs err" if failed else "obs"
    body = _observation_body(observation, scores)
    return f'<details class="{css}"><summary>{summary}</summary>{body}</details>'


def _observation_body(observation: Mapping[str, Any], scores: Sequence[Mapping[str, Any]]) -> str:
    parts = []
    if observation.get("status_message"):
        parts.append(f'<div class="errmsg">{clipped(str(observation["status_message"]))}</div>')
    facts: list[tuple[str, str]] = []
    for key in ("input", "output"):
        if observation.get(key) is not None:
            facts.append((key, _pre(observation[key])))
    if observation.get("model"):
        facts.append(("model", f'<span class="mono">{esc(observation["model"])}</span>'))
    if observation.get("model_parameters"):
        facts.append(("parameters", _flat(observation["model_parameters"])))
    usage = observation.get("usage") or {}
    if usage:
        text = ", ".join(f"{k} {number(v)}" for k, v in usage.items())
        facts.append(("usage", esc(text)))
    if observation.get("cost"):
        facts.append(("cost", esc(number(observation["cost"], digits=6))))
    if observation.get("prompt_name"):
        label = f"{observation['prompt_name']} version {observation.get('prompt_version')}"
        facts.append(("prompt", esc(label)))
    if observation.get("metadata"):
        facts.append(("metadata", _flat(observation["metadata"])))
    facts.append(("id", f'<span class="mono">{esc(observation.get("id", "–"))}</span>'))
    parts.append(_kv(facts))
    if scores:
        parts.append(_score_table(scores))
    return f'<div class="obs-body">{"".join(parts)}</div>'


def _float(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)
