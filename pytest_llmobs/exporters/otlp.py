"""Upload a stored run's traces to any OpenTelemetry backend: OTLP over HTTP, protobuf bodies.

Every observation becomes a span (`otlp_spans`) carrying the OpenTelemetry GenAI conventions
(``gen_ai.operation.name``, ``gen_ai.request.*``, ``gen_ai.usage.*``, ``gen_ai.input.messages``,
``gen_ai.output.messages``, ``gen_ai.conversation.id``) next to the ``langfuse.*`` names; each
root span says which test, dataset item and repeat it ran (``llmobs.*``), and each score rides on
the span it judges as a ``gen_ai.evaluation.result`` event. Nothing waits for the backend to
index what it received.

Configuration is the OpenTelemetry SDK's environment:

- ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` (used as it is) or ``OTEL_EXPORTER_OTLP_ENDPOINT`` (the
  base URL: ``/v1/traces`` is appended); one of them is required;
- ``OTEL_EXPORTER_OTLP_TRACES_HEADERS`` or ``OTEL_EXPORTER_OTLP_HEADERS``: ``k=v,k2=v2`` with
  URL-encoded values (``Authorization=Bearer%20abc``);
- ``OTEL_EXPORTER_OTLP_[TRACES_]COMPRESSION`` (``gzip`` or ``none``), ``..._TIMEOUT`` (ms,
  > 0), ``..._PROTOCOL`` (only ``http/protobuf``);
- ``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES`` (``k=v,...``) for the resource.

A malformed value is a `ConfigError` naming the variable: among them an endpoint holding
``user:password@`` (credentials go in a header). A query in the endpoint is sent, but never shown.
The settings are read by `otlp_config`.

The sending itself (`otlp_send`) is shared with the Phoenix exporter, which speaks OTLP too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from pytest_llmobs.exporters import ExporterOptions, ExportError, ExportReport
from pytest_llmobs.exporters.batching import encode_json
from pytest_llmobs.exporters.http import HttpSender
from pytest_llmobs.exporters.http_options import HttpOptions
from pytest_llmobs.exporters.otlp_config import OtlpConfig
from pytest_llmobs.exporters.otlp_send import TraceSend, send_traces, traced_items
from pytest_llmobs.exporters.state import (
    Ledger,
    note_not_started,
    note_started,
    pending_elsewhere,
    pending_for,
    state_store,
)
from pytest_llmobs.exporters.urls import query_values
from pytest_llmobs.providers.base import is_chat_message, part_text, tool_call_fields
from pytest_llmobs.store import Store

if TYPE_CHECKING:
    from opentelemetry.proto.trace.v1.trace_pb2 import Span

    from pytest_llmobs.exporters.otlp_spans import AttributeValue, SpanSource, TraceSpans

EVALUATION_EVENT = "gen_ai.evaluation.result"


# --- GenAI attributes and evaluation events -----------------------------------------------------


def _text(value: Any) -> str:
    """A message's content as text (none, as an assistant's tool calls have: empty)."""
    if value is None:
        return ""
    return value if isinstance(value, str) else encode_json(value)


def genai_messages(value: Any, default_role: str) -> list[dict[str, Any]]:
    """A recorded input/output as GenAI messages (``role`` + text ``parts``): chat message lists
    keep their roles, anything else is one message of ``default_role``."""
    items = value if isinstance(value, list) else [value]
    if not all(is_chat_message(m) for m in items):
        return [{"role": default_role, "parts": [{"type": "text", "content": _text(value)}]}]
    return [{"role": str(m["role"]), "parts": _parts(m)} for m in items]


def _parts(message: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A chat message's GenAI parts: text, a tool result, tool calls, other content parts."""
    content = message.get("content")
    if message.get("role") == "tool" and "tool_call_id" in message:
        response = {"id": str(message["tool_call_id"]), "response": _text(content)}
        return [{"type": "tool_call_response", **response}]
    parts: list[dict[str, Any]] = []
    if isinstance(content, list):
        for part in content:
            text = part_text(part)  # (LangChain allows bare strings among the parts)
            if text is not None:
                parts.append({"type": "text", "content": text})
            elif isinstance(part, Mapping):  # an image, audio...: kept as the API gave it
                parts.append({**part, "type": str(part.get("type", "unknown"))})
    elif content is not None:
        parts.append({"type": "text", "content": _text(content)})
    calls = message.get("tool_calls")
    for fields in map(tool_call_fields, calls if isinstance(calls, list) else []):
        if fields is not None:
            call_id, name, arguments = fields
            parts.append({"type": "tool_call", "id": call_id, "name": name, "arguments": arguments})
    return parts or [{"type": "text", "content": ""}]


def genai_attributes(source: SpanSource) -> dict[str, AttributeValue | None]:
    """GenAI messages on generations, the conversation id and the test context on root spans."""
    obs = source.observation
    attrs: dict[str, AttributeValue | None] = {}
    if obs.get("type") == "generation":
        if obs.get("input") is not None:
            attrs["gen_ai.input.messages"] = encode_json(genai_messages(obs["input"], "user"))
        if obs.get("output") is not None:
            attrs["gen_ai.output.messages"] = encode_json(
                genai_messages(obs["output"], "assistant")
            )
    if source.is_root:
        attrs.update(root_attributes(source))
    return attrs


def root_attributes(source: SpanSource) -> dict[str, AttributeValue]:
    """Which test, outcome, dataset item and repeat a root span belongs to."""
    item, trace = source.item, source.trace
    attrs: dict[str, AttributeValue] = {
        "llmobs.test.node_id": str(item.get("node_id") or ""),
        "llmobs.test.outcome": str(item.get("outcome") or ""),
        "llmobs.repeat": int(item.get("repeat") or 0),
    }
    if item.get("dataset"):
        attrs["llmobs.dataset.name"] = str(item["dataset"])
        attrs["llmobs.dataset.version"] = str(item.get("dataset_version") or "")
        attrs["llmobs.dataset.item_id"] = str(item.get("item_id"))
    if trace.get("session_id"):
        attrs["gen_ai.conversation.id"] = str(trace["session_id"])
    return attrs


def combine_hooks(
    *hooks: Callable[[SpanSource], Mapping[str, AttributeValue | None]],
) -> Callable[[SpanSource], dict[str, AttributeValue | None]]:
    """One span hook applying ``hooks`` in order (later ones win)."""

    def hook(source: SpanSource) -> dict[str, AttributeValue | None]:
        attrs: dict[str, AttributeValue | None] = {}
        for each in hooks:
            attrs.update(each(source))
        return attrs

    return hook


def score_parts(score: Mapping[str, Any]) -> tuple[float | None, str | None]:
    """A score as (numeric value, label): BOOLEAN → 1.0/0.0 and "true"/"false", CATEGORICAL →
    label only, NUMERIC → value only."""
    value, kind = score.get("value"), score.get("data_type") or "NUMERIC"
    if kind == "BOOLEAN":
        return (1.0 if value else 0.0), ("true" if value else "false")
    if kind == "CATEGORICAL":
        return None, str(value)
    return (float(value) if isinstance(value, (int, float)) else None), None


def evaluation_event_attributes(score: Mapping[str, Any]) -> dict[str, AttributeValue]:
    number, label = score_parts(score)
    attrs: dict[str, AttributeValue] = {"gen_ai.evaluation.name": str(score["name"])}
    if number is not None:
        attrs["gen_ai.evaluation.score.value"] = number
    if label is not None:
        attrs["gen_ai.evaluation.score.label"] = label
    if score.get("comment"):
        attrs["gen_ai.evaluation.explanation"] = str(score["comment"])
    attrs["llmobs.score.id"] = str(score["id"])
    attrs["llmobs.score.data_type"] = str(score.get("data_type") or "NUMERIC")
    if score.get("source"):
        attrs["llmobs.score.source"] = str(score["source"])
    return attrs


def add_evaluation_events(spans: TraceSpans, item: Mapping[str, Any]) -> int:
    """Attach each score of ``item`` to the span it judges (the root for trace scores) as a
    ``gen_ai.evaluation.result`` event; returns how many were attached."""
    from pytest_llmobs.exporters.otlp_spans import key_values, unix_nanos

    by_id: dict[str, Span] = {span.span_id.hex(): span for span in spans.spans}
    if not by_id:
        return 0
    root = spans.spans[0]
    attached = 0
    for score in (item.get("trace") or {}).get("scores") or []:
        span = by_id.get(str(score.get("observation_id") or ""), root)
        when = unix_nanos(score.get("timestamp")) or span.end_time_unix_nano
        span.events.add(
            name=EVALUATION_EVENT,
            time_unix_nano=when,
            attributes=key_values(evaluation_event_attributes(score)),
        )
        attached += 1
    return attached


# --- the exporter --------------------------------------------------------------------------------


class OtlpExporter:
    """The ``otlp`` upload target (see the module docstring)."""

    name = "otlp"

    def __init__(self, options: ExporterOptions) -> None:
        self.options = options

    def configuration(self) -> OtlpConfig:
        return OtlpConfig.from_env(self.options.environ)

    def pending_runs(self, store: Store) -> list[str]:
        return pending_for(store, self.name, [state_target(self.configuration())])

    def pending_elsewhere(self, store: Store) -> list[tuple[str, str]]:
        return pending_elsewhere(store, self.name, [state_target(self.configuration())])

    def export(self, run: Mapping[str, Any]) -> ExportReport:
        from pytest_llmobs.exporters.otlp_spans import SpanOptions, require_otel

        environ = self.options.environ
        items = traced_items(run)
        target = "otlp"
        try:
            config = OtlpConfig.from_env(environ)
            target = f"otlp {config.display}"
            require_otel()
            http = self.options.http or HttpOptions.from_env(environ)
        except ExportError as exc:
            note_not_started(self.options.store, self.name, str(run["id"]))
            return _not_sent(run, items, target, exc)
        report = ExportReport(target=target, run_id=str(run["id"]))
        options = note_started(
            self.options, self.name, str(run["id"]), target=state_target(config), report=report
        )
        if config.timeout is not None and options.http is None:
            http = dataclasses.replace(http, timeout=config.timeout)
        with state_store(options.store) as store:
            sender = HttpSender(
                base_url=config.base_url,
                headers=config.headers,
                options=http,
                hidden=query_values(config.url),
            )
            ledger = Ledger(
                store,
                state_target(config),
                str(run["id"]),
                report,
                pending_only=options.pending_only,
                scrub=sender.scrub,
            )
            span_options = SpanOptions(
                resource_attributes=dict(config.resource),
                span_hook=genai_attributes,
                release=(run.get("environment") or {}).get("git_commit"),
            )
            send = TraceSend(sender, config.path, run, span_options, report, config.compression)
            ledger.state.begin()
            try:
                send_traces(ledger, send, items, add_events=add_evaluation_events)
            finally:
                sender.close()
                report.requests = sender.requests
                report.bytes_sent = sender.bytes_sent
            ledger.state.finish(complete=report.ok)
            return report


def state_target(config: OtlpConfig) -> str:
    return f"otlp {config.display}"


def _not_sent(
    run: Mapping[str, Any], items: list[dict[str, Any]], target: str, exc: ExportError
) -> ExportReport:
    report = ExportReport(target=target, run_id=str(run["id"]))
    report.error(f"not sent: {exc}")
    report.count(report.failed, "traces", len(items))
    report.count(report.failed, "observations", sum(len(i["trace"]["observations"]) for i in items))
    report.count(report.failed, "scores", sum(len(i["trace"].get("scores") or []) for i in items))
    return report
