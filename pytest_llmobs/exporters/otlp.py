"""Upload a stored run's traces to any OpenTelemetry backend: OTLP over HTTP, protobuf bodies.

Every observation becomes a span (`otlp_spans`) carrying the OpenTelemetry GenAI conventions
next to the ``langfuse.*`` names: on generations (kind CLIENT) ``gen_ai.operation.name``,
``gen_ai.provider.name``, ``gen_ai.request.*`` (model, parameters, ``stop_sequences``,
``choice.count``), ``gen_ai.response.*`` (model, id, finish reasons), ``gen_ai.usage.*``,
``gen_ai.input.messages``, ``gen_ai.output.messages`` (each with its ``finish_reason``) and
``error.type``; ``gen_ai.conversation.id`` on root spans. Each root span says which test, dataset
item and repeat it ran (``llmobs.*``), and each score rides on the span it judges as a
``gen_ai.evaluation.result`` event. Nothing waits for the backend to index what it received.

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
FINISH_REASONS = {"tool_calls": "tool_call", "function_call": "tool_call"}
"""Finish reasons as providers say them → the GenAI output messages' ``FinishReason``; others,
``stop``, ``length``, ``content_filter`` among them, are kept."""
MODEL_PROVIDERS = (("claude", "anthropic"), ("gemini", "gcp.gemini"))
"""Model name starts → ``gen_ai.provider.name`` (OpenAI's names are recognised by the provider)."""


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


def finish_reasons(obs: Mapping[str, Any]) -> list[str]:
    """The finish reasons a provider reported (metadata ``finish_reason``: one, or one per
    choice), as it said them."""
    value = (obs.get("metadata") or {}).get("finish_reason")
    return [str(v) for v in (value if isinstance(value, list) else [value]) if v]


def output_messages(obs: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A generation's output as GenAI output messages, each with the ``finish_reason`` the
    conventions require: the reported one (OpenAI's ``tool_calls`` as ``tool_call``), else
    ``error`` for a failed call, ``tool_call`` for an answer calling tools, or ``unknown``."""
    output, reasons = obs["output"], finish_reasons(obs)
    choices = output if isinstance(output, list) and len(output) == len(reasons) > 1 else [output]
    messages = []
    for index, choice in enumerate(choices):
        for message in genai_messages(choice, "assistant"):
            reason = reasons[index] if index < len(reasons) else None
            if reason is None:
                calls = any(p["type"] == "tool_call" for p in message["parts"])
                failed = obs.get("level") == "ERROR"
                reason = "error" if failed else "tool_call" if calls else "unknown"
            messages.append({**message, "finish_reason": FINISH_REASONS.get(reason, reason)})
    return messages


def provider_name(run: Mapping[str, Any], obs: Mapping[str, Any]) -> str:
    """``gen_ai.provider.name`` as best known: the prefix of the run's model when the generation
    called that model (``openai:gpt-4o`` → ``openai``), else what the model's name says (OpenAI's
    names, ``claude*``, ``gemini*``, the mock model as ``pytest-llmobs``), else ``_OTHER``."""
    from pytest_llmobs.providers.mock import MOCK_MODEL_NAME
    from pytest_llmobs.providers.openai import is_openai_model

    requested = (obs.get("metadata") or {}).get("requested_model")
    models = [str(m) for m in (requested, obs.get("model")) if m]
    prefix, colon, model = str(run.get("model") or "").partition("?")[0].partition(":")
    if colon and model.strip() in models:
        return prefix.strip()
    for name in models:
        if name == MOCK_MODEL_NAME:
            return "pytest-llmobs"
        if is_openai_model(name):
            return "openai"
        for start, provider in MODEL_PROVIDERS:
            if name.lower().startswith(start):
                return provider
    return "_OTHER"


def genai_attributes(source: SpanSource) -> dict[str, AttributeValue | None]:
    """GenAI attributes on generations (`generation_attributes`), the conversation id and the
    test context on root spans."""
    attrs: dict[str, AttributeValue | None] = {}
    if source.observation.get("type") == "generation":
        attrs.update(generation_attributes(source))
    if source.is_root:
        attrs.update(root_attributes(source))
    return attrs


def generation_attributes(source: SpanSource) -> dict[str, AttributeValue | None]:
    """What the GenAI conventions ask of a model call beyond `otlp_spans`' ``gen_ai.*`` (kept as
    they are for Langfuse, which reads them): the provider, the messages, the response's id and
    finish reasons, the model requested, stop sequences, choice count and ``error.type``; the
    parameters they replace (``gen_ai.request.stop``, ``.n``) are removed."""
    obs = source.observation
    metadata, params = obs.get("metadata") or {}, obs.get("model_parameters") or {}
    attrs: dict[str, AttributeValue | None] = {
        "gen_ai.provider.name": provider_name(source.run, obs),
        "gen_ai.request.stop": None,
        "gen_ai.request.n": None,
    }
    if obs.get("input") is not None:
        attrs["gen_ai.input.messages"] = encode_json(genai_messages(obs["input"], "user"))
    if obs.get("output") is not None:
        attrs["gen_ai.output.messages"] = encode_json(output_messages(obs))
    reasons = finish_reasons(obs)
    if reasons:
        attrs["gen_ai.response.finish_reasons"] = reasons
    if metadata.get("response_id"):
        attrs["gen_ai.response.id"] = str(metadata["response_id"])
    if metadata.get("requested_model"):  # the server answered with another (dated) name
        attrs["gen_ai.request.model"] = str(metadata["requested_model"])
    stop = params.get("stop", params.get("stop_sequences"))
    stop = [stop] if isinstance(stop, str) else stop
    if isinstance(stop, list) and stop and all(isinstance(s, str) for s in stop):
        attrs["gen_ai.request.stop_sequences"] = stop
    choices = params.get("n")
    if isinstance(choices, int) and not isinstance(choices, bool) and choices != 1:
        attrs["gen_ai.request.choice.count"] = choices
    if obs.get("level") == "ERROR":
        attrs["error.type"] = error_type(obs)
    return attrs


def error_type(obs: Mapping[str, Any]) -> str:
    """A failed call's ``error.type``: the HTTP status the provider answered (the last attempt's,
    as the ``llm`` fixture records them in ``metadata.attempts``, or ``metadata.status_code``,
    as the SDK integrations do), else the exception's class (the message starts ``Class: ...``),
    else ``_OTHER``."""
    metadata = obs.get("metadata") or {}
    attempts = metadata.get("attempts")
    last = attempts[-1] if isinstance(attempts, list) and attempts else None
    status = last.get("status") if isinstance(last, Mapping) else metadata.get("status_code")
    if isinstance(status, int) and not isinstance(status, bool):
        return str(status)
    kind = str(obs.get("status_message") or "").partition(":")[0]
    return kind if kind.replace(".", "_").isidentifier() else "_OTHER"


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
