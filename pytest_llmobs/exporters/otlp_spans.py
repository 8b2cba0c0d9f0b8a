"""A stored run as OTLP spans (``ExportTraceServiceRequest`` protobuf), backend-neutral.

Each observation becomes one span with the same ids (trace 32 hex, span 16 hex, parent span), its
times in Unix nanoseconds, ERROR status where the observation errored and kind CLIENT for a
generation (a model call; INTERNAL otherwise). The span keeps the observation's name (the GenAI
conventions' ``chat <model>`` would replace the name Langfuse and Phoenix show and filter by).
Attributes follow the names Langfuse maps (``langfuse.trace.*``, ``langfuse.observation.*``,
``langfuse.environment``, ``langfuse.release``) and the OpenTelemetry GenAI conventions
(``gen_ai.*``); either family can be turned off. Backends that need more (an experiment link,
OpenInference names) add resource attributes and a per-span hook: its values override the
built-in ones and ``None`` removes one.

Values that are not strings, numbers, booleans or lists of strings are sent as JSON text; input,
output and model parameters always are (so a string stays a string). A span over the size limit
has its largest attribute values truncated with the marker ``…[truncated N chars]``, a JSON value
inside, so that it stays valid JSON with every key (`otlp_values`).

Requires ``opentelemetry-proto`` (``pip install 'pytest-llmobs[otel]'``), imported on first use.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Union

from pytest_llmobs import __version__
from pytest_llmobs.exporters import ExportError
from pytest_llmobs.exporters.batching import BATCH_MAX_BYTES, EVENT_MAX_BYTES, encode_json
from pytest_llmobs.exporters.otlp_values import fit_attributes

if TYPE_CHECKING:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
    from opentelemetry.proto.trace.v1.trace_pb2 import Span

AttributeValue = Union[str, bool, int, float, Sequence[str]]  # noqa: UP007 (runtime alias)
OTEL_EXTRA_HINT = "pip install 'pytest-llmobs[otel]'"


@dataclass(frozen=True, slots=True)
class SpanSource:
    """What one span is made from, handed to `SpanOptions.span_hook`."""

    run: Mapping[str, Any]
    item: Mapping[str, Any]
    observation: Mapping[str, Any]
    is_root: bool

    @property
    def trace(self) -> Mapping[str, Any]:
        trace: Mapping[str, Any] = self.item["trace"]
        return trace


SpanHook = Callable[[SpanSource], Mapping[str, Union[AttributeValue, None]]]  # noqa: UP007


@dataclass(frozen=True, kw_only=True)
class SpanOptions:
    scope_name: str = "pytest-llmobs"
    scope_version: str = __version__
    environment: str | None = None
    release: str | None = None
    resource_attributes: Mapping[str, AttributeValue] = field(default_factory=dict)
    langfuse: bool = True
    """Emit ``langfuse.*`` attributes."""
    genai: bool = True
    """Emit ``gen_ai.*`` attributes on generations."""
    span_hook: SpanHook | None = None
    max_span_bytes: int = EVENT_MAX_BYTES


def require_otel() -> None:
    """Raise `ExportError` with the install hint when ``opentelemetry-proto`` is missing."""
    try:
        import opentelemetry.proto.collector.trace.v1.trace_service_pb2  # noqa: F401
    except ImportError:
        raise ExportError(
            f"uploading spans needs the 'otel' extra (opentelemetry-proto): {OTEL_EXTRA_HINT}"
        ) from None


def _json(value: Any) -> str:
    return encode_json(value)


def _flat(value: Any) -> AttributeValue:
    """A metadata value as an attribute: strings as they are, everything else as JSON."""
    return value if isinstance(value, str) else _json(value)


def resource_attributes(run: Mapping[str, Any], options: SpanOptions) -> dict[str, AttributeValue]:
    attributes: dict[str, AttributeValue] = {
        "service.name": "pytest-llmobs",
        "telemetry.sdk.name": "pytest-llmobs",
        "telemetry.sdk.language": "python",
        "telemetry.sdk.version": __version__,
        "llmobs.run.id": str(run["id"]),
        "llmobs.run.name": str(run.get("name") or ""),
    }
    if run.get("model"):
        attributes["llmobs.run.model"] = str(run["model"])
    attributes.update(options.resource_attributes)
    return attributes


def span_attributes(source: SpanSource, options: SpanOptions) -> dict[str, AttributeValue]:
    """The attributes of one observation's span (trace-level ones on the root span)."""
    obs = source.observation
    attrs: dict[str, AttributeValue] = {}
    if options.langfuse:
        attrs["langfuse.observation.type"] = str(obs.get("type") or "span")
        attrs["langfuse.observation.level"] = str(obs.get("level") or "DEFAULT")
        if obs.get("status_message"):
            attrs["langfuse.observation.status_message"] = str(obs["status_message"])
        if obs.get("input") is not None:
            attrs["langfuse.observation.input"] = _json(obs["input"])
        if obs.get("output") is not None:
            attrs["langfuse.observation.output"] = _json(obs["output"])
        for key, value in (obs.get("metadata") or {}).items():
            attrs[f"langfuse.observation.metadata.{key}"] = _flat(value)
        if options.environment:
            attrs["langfuse.environment"] = options.environment
        if options.release:
            attrs["langfuse.release"] = options.release
        if obs.get("type") == "generation":
            attrs.update(_langfuse_generation(obs))
        if source.is_root:
            attrs.update(_langfuse_trace(source))
    if options.genai and obs.get("type") == "generation":
        attrs.update(_genai_generation(obs))
    if options.span_hook is not None:
        for key, value in options.span_hook(source).items():
            if value is None:
                attrs.pop(key, None)
            else:
                attrs[key] = value
    return attrs


def _langfuse_generation(obs: Mapping[str, Any]) -> dict[str, AttributeValue]:
    attrs: dict[str, AttributeValue] = {}
    if obs.get("model"):
        attrs["langfuse.observation.model.name"] = str(obs["model"])
    if obs.get("model_parameters"):
        attrs["langfuse.observation.model.parameters"] = _json(obs["model_parameters"])
    if obs.get("usage"):
        attrs["langfuse.observation.usage_details"] = _json(usage_details(obs["usage"]))
    if obs.get("cost") is not None:
        attrs["langfuse.observation.cost_details"] = _json({"total": obs["cost"]})
    if obs.get("prompt_name") and obs.get("prompt_version") is not None:
        attrs["langfuse.observation.prompt.name"] = str(obs["prompt_name"])
        attrs["langfuse.observation.prompt.version"] = int(obs["prompt_version"])
    return attrs


def usage_details(usage: Mapping[str, Any]) -> dict[str, int]:
    """Token counts by Langfuse usage type (input, output, total, and any others recorded)."""
    return {str(k): int(v) for k, v in usage.items() if isinstance(v, (int, float))}


def _langfuse_trace(source: SpanSource) -> dict[str, AttributeValue]:
    trace, item, run, obs = source.trace, source.item, source.run, source.observation
    attrs: dict[str, AttributeValue] = {"langfuse.trace.name": str(trace.get("name") or "")}
    if trace.get("user_id"):
        attrs["user.id"] = str(trace["user_id"])
    if trace.get("session_id"):
        attrs["session.id"] = str(trace["session_id"])
    if trace.get("tags"):
        attrs["langfuse.trace.tags"] = [str(t) for t in trace["tags"]]
    for key, value in (trace.get("metadata") or {}).items():
        attrs[f"langfuse.trace.metadata.{key}"] = _flat(value)
    context = {
        "run_id": run.get("id"),
        "run_name": run.get("name"),
        "node_id": item.get("node_id"),
        "outcome": item.get("outcome"),
        "repeat": item.get("repeat", 0),
    }
    if item.get("dataset"):
        context.update(dataset=item["dataset"], item_id=item.get("item_id"))
    attrs["langfuse.trace.metadata.llmobs"] = _json(context)
    if obs.get("input") is not None:
        attrs["langfuse.trace.input"] = _json(obs["input"])
    if obs.get("output") is not None:
        attrs["langfuse.trace.output"] = _json(obs["output"])
    return attrs


def _genai_generation(obs: Mapping[str, Any]) -> dict[str, AttributeValue]:
    attrs: dict[str, AttributeValue] = {"gen_ai.operation.name": "chat"}
    if obs.get("model"):
        attrs["gen_ai.request.model"] = str(obs["model"])
        attrs["gen_ai.response.model"] = str(obs["model"])
    for key, value in (obs.get("model_parameters") or {}).items():
        if isinstance(value, (str, bool, int, float)):
            attrs[f"gen_ai.request.{key}"] = value
    usage = obs.get("usage") or {}
    if isinstance(usage.get("input"), int):
        attrs["gen_ai.usage.input_tokens"] = usage["input"]
    if isinstance(usage.get("output"), int):
        attrs["gen_ai.usage.output_tokens"] = usage["output"]
    if obs.get("cost") is not None:
        attrs["gen_ai.usage.cost"] = float(obs["cost"])
    return attrs


def unix_nanos(seconds: Any) -> int:
    """Unix seconds (float) → integer nanoseconds, exact for the whole seconds part."""
    if seconds is None:
        return 0
    whole = int(seconds)
    return whole * 1_000_000_000 + round((float(seconds) - whole) * 1e9)


@dataclass
class TraceSpans:
    """The spans of one stored item's trace."""

    trace_id: str
    spans: list[Span]
    truncated: int = 0


def trace_spans(
    run: Mapping[str, Any], item: Mapping[str, Any], options: SpanOptions
) -> TraceSpans:
    """One span per observation of ``item``'s trace; the first observation is the root."""
    require_otel()
    from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

    trace = item["trace"]
    spans = []
    truncated = 0
    for index, obs in enumerate(trace.get("observations") or []):
        source = SpanSource(run=run, item=item, observation=obs, is_root=index == 0)
        attrs = span_attributes(source, options)
        truncated += fit_attributes(attrs, options.max_span_bytes)
        start = unix_nanos(obs.get("start_time"))
        end = unix_nanos(obs.get("end_time")) or start
        generation = obs.get("type") == "generation"
        span = Span(
            trace_id=bytes.fromhex(trace["id"]),
            span_id=bytes.fromhex(obs["id"]),
            name=str(obs.get("name") or ""),
            kind=Span.SPAN_KIND_CLIENT if generation else Span.SPAN_KIND_INTERNAL,
            start_time_unix_nano=start,
            end_time_unix_nano=max(end, start),
            attributes=key_values(attrs),
        )
        if obs.get("parent_id"):
            span.parent_span_id = bytes.fromhex(obs["parent_id"])
        if obs.get("level") == "ERROR":
            span.status.CopyFrom(
                Status(code=Status.STATUS_CODE_ERROR, message=str(obs.get("status_message") or ""))
            )
        spans.append(span)
    return TraceSpans(trace_id=str(trace["id"]), spans=spans, truncated=truncated)


def any_value(value: AttributeValue) -> AnyValue:
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue

    if isinstance(value, str):
        return AnyValue(string_value=value)
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        if -(2**63) <= value < 2**63:
            return AnyValue(int_value=value)
        return AnyValue(string_value=str(value))  # (a seed of 2**64 - 1: int_value is int64)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    return AnyValue(array_value=ArrayValue(values=[AnyValue(string_value=str(v)) for v in value]))


def key_values(attrs: Mapping[str, AttributeValue]) -> list[KeyValue]:
    from opentelemetry.proto.common.v1.common_pb2 import KeyValue

    return [KeyValue(key=key, value=any_value(value)) for key, value in attrs.items()]


def plain_value(value: AnyValue) -> Any:
    """An ``AnyValue`` back as Python (for readers such as tests and fake servers)."""
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [plain_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: plain_value(kv.value) for kv in value.kvlist_value.values}
    return None if kind is None else getattr(value, kind)


def plain_attributes(attrs: Iterable[KeyValue]) -> dict[str, Any]:
    return {kv.key: plain_value(kv.value) for kv in attrs}


def export_request(
    spans: Sequence[Span], run: Mapping[str, Any], options: SpanOptions
) -> ExportTraceServiceRequest:
    """One ``ExportTraceServiceRequest``: one resource (the run), one scope, ``spans``."""
    require_otel()
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )
    from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
    from opentelemetry.proto.resource.v1.resource_pb2 import Resource
    from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans

    return ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=Resource(attributes=key_values(resource_attributes(run, options))),
                scope_spans=[
                    ScopeSpans(
                        scope=InstrumentationScope(
                            name=options.scope_name, version=options.scope_version
                        ),
                        spans=list(spans),
                    )
                ],
            )
        ]
    )


@dataclass
class SpanBatch:
    """Spans sent in one request, and which traces they belong to."""

    spans: list[Span]

    @property
    def trace_ids(self) -> set[str]:
        return {span.trace_id.hex() for span in self.spans}

    def encode(self, run: Mapping[str, Any], options: SpanOptions) -> bytes:
        return bytes(export_request(self.spans, run, options).SerializeToString())


def span_batches(
    traces: Iterable[TraceSpans], *, max_bytes: int = BATCH_MAX_BYTES, max_spans: int = 2_000
) -> Iterator[SpanBatch]:
    """Spans grouped in order into batches whose encoded size stays under ``max_bytes`` (a
    trace's spans may straddle two batches)."""
    batch: list[Span] = []
    used = 1024  # resource and scope
    for trace in traces:
        for span in trace.spans:
            size = span.ByteSize() + 8
            if batch and (used + size > max_bytes or len(batch) >= max_spans):
                yield SpanBatch(batch)
                batch, used = [], 1024
            batch.append(span)
            used += size
    if batch:
        yield SpanBatch(batch)
