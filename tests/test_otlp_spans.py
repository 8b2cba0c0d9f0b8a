"""A stored run as OTLP spans: ids, times, status, the langfuse.* and gen_ai.* attributes, the
hook for other backends, truncation and batching. No server involved."""

from __future__ import annotations

import json
from typing import Any

import pytest

pytest.importorskip("opentelemetry.proto.collector.trace.v1.trace_service_pb2")

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)

from pytest_llmobs.exporters.otlp import combine_hooks, genai_attributes
from pytest_llmobs.exporters.otlp_spans import (
    SpanOptions,
    SpanSource,
    export_request,
    plain_attributes,
    span_batches,
    trace_spans,
)
from pytest_llmobs.exporters.otlp_values import cut_value, fit_attributes
from pytest_llmobs.exporters.phoenix_rest import openinference_attributes

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
ROOT, GEN, EVENT = "b7ad6b7169203331", "00f067aa0ba902b7", "1111111111111111"


def make_run(output: Any = "Paris") -> dict[str, Any]:
    observations = [
        {
            "id": ROOT,
            "trace_id": TRACE_ID,
            "parent_id": None,
            "type": "span",
            "name": "test_capital[france]",
            "start_time": 1700000000.25,
            "end_time": 1700000001.5,
            "input": "Capital of France?",
            "output": output,
            "metadata": {"dataset": "capitals", "outcome": "failed", "n": 3},
            "level": "ERROR",
            "status_message": "AssertionError: nope",
        },
        {
            "id": GEN,
            "trace_id": TRACE_ID,
            "parent_id": ROOT,
            "type": "generation",
            "name": "llm.generate",
            "start_time": 1700000000.5,
            "end_time": 1700000000.75,
            "input": [{"role": "user", "content": "Capital of France?"}],
            "output": "Paris",
            "metadata": {},
            "level": "DEFAULT",
            "status_message": None,
            "model": "gpt-x",
            "model_parameters": {"temperature": 0.2, "max_tokens": 20, "stop": ["\n"]},
            "usage": {"input": 7, "output": 1, "total": 8},
            "cost": 0.0003,
            "prompt_name": "qa",
            "prompt_version": 3,
        },
        {
            "id": EVENT,
            "trace_id": TRACE_ID,
            "parent_id": GEN,
            "type": "event",
            "name": "cache-hit",
            "start_time": 1700000000.6,
            "end_time": None,
            "input": None,
            "output": None,
            "metadata": {},
            "level": "WARNING",
            "status_message": None,
        },
    ]
    trace = {
        "id": TRACE_ID,
        "name": "test_capitals.py::test_capital[france]",
        "user_id": "u-1",
        "session_id": "s-1",
        "tags": ["geo", "smoke"],
        "metadata": {"suite": "geo", "k": [1]},
        "observations": observations,
        "scores": [],
    }
    item = {
        "node_id": trace["name"],
        "dataset": "capitals",
        "item_id": "france",
        "repeat": 0,
        "outcome": "failed",
        "trace": trace,
    }
    return {"id": "run-1", "name": "nightly", "model": "gpt-x", "items": [item]}


def spans_by_id(run: dict[str, Any], options: SpanOptions) -> dict[str, Any]:
    built = trace_spans(run, run["items"][0], options)
    return {span.span_id.hex(): span for span in built.spans}


def test_ids_parents_times_and_status() -> None:
    spans = spans_by_id(make_run(), SpanOptions())
    root, gen, event = spans[ROOT], spans[GEN], spans[EVENT]
    assert {s.trace_id.hex() for s in spans.values()} == {TRACE_ID}
    assert (root.parent_span_id, gen.parent_span_id.hex(), event.parent_span_id.hex()) == (
        b"",
        ROOT,
        GEN,
    )
    assert (root.start_time_unix_nano, root.end_time_unix_nano) == (
        1700000000250000000,
        1700000001500000000,
    )
    assert event.end_time_unix_nano == event.start_time_unix_nano  # an event has no end
    assert (root.status.code, root.status.message) == (2, "AssertionError: nope")
    assert gen.status.code == 0


def test_a_generation_is_a_client_span_under_its_own_name() -> None:
    # (before: every span INTERNAL, though a generation is a call to a model)
    from opentelemetry.proto.trace.v1.trace_pb2 import Span

    spans = spans_by_id(make_run(), SpanOptions())
    assert spans[GEN].kind == Span.SPAN_KIND_CLIENT
    assert spans[ROOT].kind == spans[EVENT].kind == Span.SPAN_KIND_INTERNAL
    assert spans[GEN].name == "llm.generate"  # not "chat gpt-x": Langfuse shows span names


def test_langfuse_and_genai_attributes() -> None:
    options = SpanOptions(environment="ci", release="abc123")
    spans = spans_by_id(make_run(), options)
    root = plain_attributes(spans[ROOT].attributes)
    assert root["langfuse.observation.type"] == "span"
    assert root["langfuse.observation.level"] == "ERROR"
    assert root["langfuse.observation.status_message"] == "AssertionError: nope"
    assert json.loads(root["langfuse.observation.input"]) == "Capital of France?"
    assert root["langfuse.observation.metadata.dataset"] == "capitals"
    assert root["langfuse.observation.metadata.n"] == "3"
    assert root["langfuse.trace.name"] == "test_capitals.py::test_capital[france]"
    assert (root["user.id"], root["session.id"]) == ("u-1", "s-1")
    assert root["langfuse.trace.tags"] == ["geo", "smoke"]
    assert root["langfuse.trace.metadata.suite"] == "geo"
    assert json.loads(root["langfuse.trace.metadata.k"]) == [1]
    assert json.loads(root["langfuse.trace.metadata.llmobs"])["run_id"] == "run-1"
    assert json.loads(root["langfuse.trace.output"]) == "Paris"
    assert (root["langfuse.environment"], root["langfuse.release"]) == ("ci", "abc123")
    gen = plain_attributes(spans[GEN].attributes)
    assert gen["langfuse.observation.model.name"] == "gpt-x"
    assert json.loads(gen["langfuse.observation.model.parameters"])["stop"] == ["\n"]
    assert json.loads(gen["langfuse.observation.usage_details"]) == {
        "input": 7,
        "output": 1,
        "total": 8,
    }
    assert json.loads(gen["langfuse.observation.cost_details"]) == {"total": 0.0003}
    assert (
        gen["langfuse.observation.prompt.name"],
        gen["langfuse.observation.prompt.version"],
    ) == ("qa", 3)
    assert gen["gen_ai.operation.name"] == "chat"
    assert (gen["gen_ai.request.model"], gen["gen_ai.response.model"]) == ("gpt-x", "gpt-x")
    assert (gen["gen_ai.request.temperature"], gen["gen_ai.request.max_tokens"]) == (0.2, 20)
    assert (gen["gen_ai.usage.input_tokens"], gen["gen_ai.usage.output_tokens"]) == (7, 1)
    assert gen["gen_ai.usage.cost"] == 0.0003
    assert "langfuse.trace.name" not in gen
    event = plain_attributes(spans[EVENT].attributes)
    assert (event["langfuse.observation.type"], event["langfuse.observation.level"]) == (
        "event",
        "WARNING",
    )


def test_families_can_be_turned_off_and_a_hook_adds_overrides_and_removes() -> None:
    def hook(source: SpanSource) -> dict[str, Any]:
        extra: dict[str, Any] = {
            "openinference.span.kind": "LLM" if not source.is_root else "CHAIN"
        }
        if source.observation["type"] == "generation":
            extra["gen_ai.request.model"] = "renamed"
            extra["gen_ai.usage.cost"] = None
        return extra

    options = SpanOptions(langfuse=False, span_hook=hook, resource_attributes={"team": "qa"})
    spans = spans_by_id(make_run(), options)
    gen = plain_attributes(spans[GEN].attributes)
    assert not [k for k in gen if k.startswith("langfuse.")]
    assert gen["gen_ai.request.model"] == "renamed" and "gen_ai.usage.cost" not in gen
    assert plain_attributes(spans[ROOT].attributes)["openinference.span.kind"] == "CHAIN"
    no_genai = plain_attributes(spans_by_id(make_run(), SpanOptions(genai=False))[GEN].attributes)
    assert not [k for k in no_genai if k.startswith("gen_ai.")]
    run = make_run()
    request = export_request(list(spans.values()), run, options)
    resource = plain_attributes(request.resource_spans[0].resource.attributes)
    assert resource["team"] == "qa" and resource["llmobs.run.id"] == "run-1"
    assert request.resource_spans[0].scope_spans[0].scope.name == "pytest-llmobs"


def test_request_bytes_parse_back_as_export_trace_service_request() -> None:
    run = make_run()
    built = trace_spans(run, run["items"][0], SpanOptions())
    (batch,) = list(span_batches([built]))
    parsed = ExportTraceServiceRequest()
    parsed.ParseFromString(batch.encode(run, SpanOptions()))
    spans = parsed.resource_spans[0].scope_spans[0].spans
    assert [s.span_id.hex() for s in spans] == [ROOT, GEN, EVENT]
    assert batch.trace_ids == {TRACE_ID}


def test_an_integer_beyond_int64_is_sent_as_its_digits() -> None:
    run = make_run()
    generation = run["items"][0]["trace"]["observations"][1]
    generation["model_parameters"] = {"seed": 2**64 - 1, "max_tokens": 2**63 - 1}
    built = trace_spans(run, run["items"][0], SpanOptions())
    (batch,) = list(span_batches([built]))
    parsed = ExportTraceServiceRequest()
    parsed.ParseFromString(batch.encode(run, SpanOptions()))

    gen = plain_attributes(parsed.resource_spans[0].scope_spans[0].spans[1].attributes)
    assert gen["gen_ai.request.seed"] == str(2**64 - 1)  # int_value holds int64 only
    assert gen["gen_ai.request.max_tokens"] == 2**63 - 1


def test_an_oversized_value_is_truncated_with_a_marker() -> None:
    run = make_run(output="x" * 3_000_000)
    built = trace_spans(run, run["items"][0], SpanOptions(max_span_bytes=100_000))
    root = built.spans[0]
    assert root.ByteSize() <= 100_000
    assert built.truncated == 2  # the observation's output and the trace's output
    output = json.loads(plain_attributes(root.attributes)["langfuse.observation.output"])
    assert output.startswith("xxx") and output.endswith(" chars]")  # still a JSON string
    cut = int(output.rsplit("…[truncated ", 1)[1].split()[0])
    assert len(output) - len(f"…[truncated {cut} chars]") + cut == 3_000_000


def test_a_json_value_too_big_is_cut_inside_and_keeps_every_key() -> None:
    run = make_run()
    root = run["items"][0]["trace"]["observations"][0]
    root["input"] = {"doc": "x" * 1_500_000, "question": "What is the refund policy?"}
    root["metadata"] = {"chunk": "m" * 900_000, "source_url": "https://kb/refunds"}

    def phoenix_hook(source: SpanSource) -> dict[str, Any]:
        return openinference_attributes(source, lambda name, version: None)

    phoenix = SpanOptions(langfuse=False, span_hook=combine_hooks(genai_attributes, phoenix_hook))

    for options, keys in [
        (SpanOptions(), ["langfuse.observation.input", "langfuse.trace.input"]),
        (phoenix, ["input.value", "metadata"]),
    ]:
        span = trace_spans(run, run["items"][0], options).spans[0]
        assert span.ByteSize() <= options.max_span_bytes
        attrs = plain_attributes(span.attributes)
        values = {key: json.loads(attrs[key]) for key in keys}  # still JSON, every key kept
        for key, value in values.items():
            big = value["doc"] if "doc" in value else value["chunk"]
            assert big.startswith("x" * 1000) or big.startswith("m" * 1000), key
            assert big.endswith(" chars]") and "…[truncated " in big, key
        if options.langfuse:
            inputs = values.values()
            assert all(v["question"] == "What is the refund policy?" for v in inputs)
        else:
            assert values["input.value"]["question"] == "What is the refund policy?"
            assert values["metadata"]["source_url"] == "https://kb/refunds"
            assert attrs["input.mime_type"] == "application/json"


def test_cut_value_cuts_json_inside_and_text_as_text() -> None:
    messages = json.dumps(
        [{"role": "system", "content": "s" * 5_000}, {"role": "user", "content": "u" * 5_000}]
    )
    cut = json.loads(cut_value(messages, 2_000))
    assert [m["role"] for m in cut] == ["system", "user"]
    assert all(m["content"].endswith(" chars]") for m in cut)

    quoted = cut_value(json.dumps("q" * 5_000), 1_000)  # a JSON string stays one
    assert json.loads(quoted).startswith("qqq") and quoted.endswith(' chars]"')
    assert len(quoted.encode()) <= 1_000

    text = cut_value("{not json " + "t" * 5_000, 1_000)  # text is cut as text
    assert text.startswith("{not json ttt") and text.endswith(" chars]")
    assert len(text.encode()) <= 1_000

    many = json.dumps({f"k{n}": n for n in range(2_000)})  # nothing inside big enough to cut
    assert len(cut_value(many, 1_000).encode()) <= 1_000


def test_large_attributes_share_the_span_budget() -> None:
    attrs: dict[str, Any] = {
        "langfuse.observation.input": "i" * 60_000,
        "langfuse.observation.output": "o" * 60_000,
        "langfuse.observation.metadata.blob": "m" * 60_000,
        "gen_ai.request.model": "mock-llm-v1",
    }

    cut = fit_attributes(attrs, max_bytes=30_000)

    assert cut == 3
    kept = [len(attrs[k]) for k in list(attrs)[:3]]
    assert min(kept) > 9_000 and max(kept) - min(kept) <= 2  # a third each, none starved
    assert attrs["gen_ai.request.model"] == "mock-llm-v1"


def test_batches_stay_under_the_byte_limit() -> None:
    runs = []
    for n in range(40):
        run = make_run(output="y" * 20_000)
        trace = run["items"][0]["trace"]
        trace["id"] = f"{n + 1:032x}"
        runs.append((run, trace_spans(run, run["items"][0], SpanOptions())))
    batches = list(span_batches([t for _, t in runs], max_bytes=100_000))
    assert len(batches) > 5
    assert sum(len(b.spans) for b in batches) == 120
    for batch in batches:
        assert len(batch.encode(runs[0][0], SpanOptions())) <= 100_000
