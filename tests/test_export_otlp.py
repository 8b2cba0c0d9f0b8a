"""Uploading runs to any OpenTelemetry backend (``--llm-upload=otlp``): configuration from the
OpenTelemetry SDK's variables, the GenAI attributes and evaluation events, and delivery — to a
recording OTLP receiver, and to a real Phoenix server (which accepts OTLP on ``/v1/traces``)."""

from __future__ import annotations

import contextlib
import gzip
import http.server
import json
import os
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from textwrap import dedent
from typing import Any

import pytest

pytest.importorskip("opentelemetry.proto.collector.trace.v1.trace_service_pb2")

from conftest import CAPITALS, Runs, jsonl
from fake_openai import FakeOpenAI, error, fake_openai, openai_env
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from phoenix_server import (
    PhoenixServer,
    phoenix_server_fixture,  # noqa: F401 (the phoenix_server fixture)
    wait_for,
)

from pytest_llmobs.cli import main as llmobs
from pytest_llmobs.exporters import ExporterOptions, ExportError, create_exporter, parse_targets
from pytest_llmobs.exporters.otlp import genai_attributes, genai_messages
from pytest_llmobs.exporters.otlp_config import OtlpConfig, parse_pairs
from pytest_llmobs.exporters.otlp_spans import (
    SpanOptions,
    plain_attributes,
    trace_spans,
    unix_nanos,
)

__all__ = ["fake_openai", "openai_env"]  # fixtures used here, imported from fake_openai

SUITE = """
    import pytest
    from pytest_llmobs import propagate_attributes, start_span


    @pytest.mark.llm_dataset("capitals")
    def test_capital(item, llm, scorer):
        with propagate_attributes(session_id="session-3"):
            answer = llm.generate(item.input, temperature=0.0, max_tokens=20)
        scorer.score("accuracy", item.expected_output in answer.text)
        scorer.score("quality", 0.75, comment="fixed")
        scorer.score("verdict", "ok")


    def test_plain_fails(llm):
        with start_span("step", input={"n": 1}) as span:
            span.update(output={"answer": 42})
            span.score("step_ok", True)
        assert False, "boom"
"""
FAST = {"LLMOBS_UPLOAD_BACKOFF": "0.01", "LLMOBS_UPLOAD_MAX_ATTEMPTS": "2"}
OTEL_VARIABLES = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_EXPORTER_OTLP_COMPRESSION",
    "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
    "OTEL_EXPORTER_OTLP_TIMEOUT",
    "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
)


@pytest.fixture
def suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    for key in OTEL_VARIABLES:
        monkeypatch.delenv(key, raising=False)
    for key, value in FAST.items():
        monkeypatch.setenv(key, value)
    pytester.makefile(".jsonl", **{"datasets/capitals": jsonl(CAPITALS[:3])})
    pytester.makepyfile(test_suite=dedent(SUITE))
    return pytester


# --- a recording OTLP/HTTP receiver --------------------------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    size: int
    request: ExportTraceServiceRequest


@dataclass
class OtlpReceiver:
    """Records every export; refuses bodies over ``max_bytes`` (413), rejects spans, answers
    every request with ``down`` (an outage), with ``echo`` (that status and a JSON error
    repeating the request's headers, as some servers do), with ``echo_path`` (that status and a
    text error repeating the path and query) or with ``answer`` (status, content type, body:
    e.g. a web server's HTML page)."""

    max_bytes: int | None = None
    reject_spans: int = 0
    down: int | None = None
    echo: int | None = None
    echo_path: int | None = None
    answer: tuple[int, str, bytes] | None = None
    received: list[Received] = field(default_factory=list)
    refused: int = 0
    url: str = ""

    def spans(self) -> dict[str, Any]:
        return {
            span.span_id.hex(): span
            for r in self.received
            for rs in r.request.resource_spans
            for ss in rs.scope_spans
            for span in ss.spans
        }

    @contextlib.contextmanager
    def running(self) -> Iterator[OtlpReceiver]:
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if receiver.down is not None:
                    self._answer(receiver.down, b"down")
                    return
                if receiver.echo is not None:
                    shown = ("Authorization", "X-Honeycomb-Team", "X-Team")
                    echoed = {k: self.headers[k] for k in shown if k in self.headers}
                    self._answer(receiver.echo, json.dumps(echoed).encode(), "application/json")
                    return
                if receiver.echo_path is not None:
                    self._answer(
                        receiver.echo_path, f"no route for {self.path}".encode(), "text/plain"
                    )
                    return
                if receiver.answer is not None:
                    status, content_type, content = receiver.answer
                    self._answer(status, content, content_type)
                    return
                if receiver.max_bytes is not None and len(body) > receiver.max_bytes:
                    receiver.refused += 1
                    self._answer(413, b"too large")
                    return
                raw = gzip.decompress(body) if self.headers.get("Content-Encoding") else body
                request = ExportTraceServiceRequest.FromString(raw)
                headers = {k.lower(): v for k, v in self.headers.items()}
                receiver.received.append(Received(self.path, headers, len(body), request))
                answer = ExportTraceServiceResponse()
                if receiver.reject_spans:
                    answer.partial_success.rejected_spans = receiver.reject_spans
                    answer.partial_success.error_message = "no thanks"
                self._answer(200, answer.SerializeToString())

            def _answer(
                self, status: int, content: bytes, content_type: str = "application/x-protobuf"
            ) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=10)


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver().running() as running:
        yield running


def expected_evaluation(score: dict[str, Any]) -> dict[str, Any]:
    event: dict[str, Any] = {
        "gen_ai.evaluation.name": score["name"],
        "llmobs.score.id": score["id"],
        "llmobs.score.data_type": score["data_type"],
    }
    value = score["value"]
    if score["data_type"] == "BOOLEAN":
        event.update({"gen_ai.evaluation.score.value": 1.0 if value else 0.0})
        event["gen_ai.evaluation.score.label"] = "true" if value else "false"
    elif score["data_type"] == "CATEGORICAL":
        event["gen_ai.evaluation.score.label"] = value
    else:
        event["gen_ai.evaluation.score.value"] = float(value)
    if score["comment"]:
        event["gen_ai.evaluation.explanation"] = score["comment"]
    return event


def assert_genai(attrs: dict[str, Any], obs: dict[str, Any]) -> None:
    """The GenAI semantic-convention attributes of one generation span (the mock model's)."""
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.provider.name"] == "pytest-llmobs"
    assert attrs["gen_ai.request.model"] == obs["model"]
    assert attrs["gen_ai.request.temperature"] == obs["model_parameters"]["temperature"]
    assert attrs["gen_ai.request.max_tokens"] == obs["model_parameters"]["max_tokens"]
    assert attrs["gen_ai.usage.input_tokens"] == obs["usage"]["input"]
    assert attrs["gen_ai.usage.output_tokens"] == obs["usage"]["output"]
    assert json.loads(attrs["gen_ai.input.messages"]) == genai_messages(obs["input"], "user")
    assert json.loads(attrs["gen_ai.output.messages"]) == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": obs["output"]}],
            "finish_reason": "unknown",  # the mock model reports none
        }
    ]


def generation_span(
    run_model: str = "openai:gpt-4o-mini", **fields: Any
) -> tuple[int, dict[str, Any]]:
    """The span kind and attributes the OTLP exporter sends for one generation with ``fields``
    (by default an OpenAI answer as the ``llm`` fixture records it)."""
    observation = {
        "id": "00f067aa0ba902b7",
        "type": "generation",
        "name": "llm.generate",
        "start_time": 1.0,
        "end_time": 2.0,
        "input": [{"role": "user", "content": "2+2?"}],
        "output": "4",
        "model": "gpt-4o-mini-2024-07-18",
        "model_parameters": {"temperature": 0.1, "stop": "\n", "n": 1},
        "metadata": {
            "finish_reason": "stop",
            "response_id": "chatcmpl-1",
            "requested_model": "gpt-4o-mini",
        },
        "level": "DEFAULT",
        **fields,
    }
    item = {"trace": {"id": "0af7651916cd43dd8448eb211c80319c", "observations": [observation]}}
    run = {"id": "run-1", "model": run_model, "items": [item]}
    (span,) = trace_spans(run, item, SpanOptions(span_hook=genai_attributes)).spans
    return span.kind, plain_attributes(span.attributes)


def test_generation_spans_carry_what_the_genai_conventions_require() -> None:
    # (before: no gen_ai.provider.name, output messages without finish_reason, the finish
    # reasons, response id and stop sequences unmapped, and kind INTERNAL)
    kind, attrs = generation_span()
    assert kind == 3  # SPAN_KIND_CLIENT: a call to a model
    assert attrs["gen_ai.provider.name"] == "openai"
    assert json.loads(attrs["gen_ai.output.messages"]) == [
        {"role": "assistant", "parts": [{"type": "text", "content": "4"}], "finish_reason": "stop"}
    ]
    assert attrs["gen_ai.response.finish_reasons"] == ["stop"]
    assert attrs["gen_ai.response.id"] == "chatcmpl-1"
    assert attrs["gen_ai.request.model"] == "gpt-4o-mini"  # asked for; the server's dated name:
    assert attrs["gen_ai.response.model"] == "gpt-4o-mini-2024-07-18"
    assert attrs["gen_ai.request.stop_sequences"] == ["\n"]
    assert "gen_ai.request.stop" not in attrs and "gen_ai.request.n" not in attrs
    assert "gen_ai.request.choice.count" not in attrs and "error.type" not in attrs

    # a tool call: OpenAI's "tool_calls" is the conventions' "tool_call" in the message
    calls = [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
    answer = {"role": "assistant", "content": None, "tool_calls": calls}
    _, attrs = generation_span(output=answer, metadata={"finish_reason": "tool_calls"})
    (message,) = json.loads(attrs["gen_ai.output.messages"])
    assert message["finish_reason"] == "tool_call"
    assert attrs["gen_ai.response.finish_reasons"] == ["tool_calls"]

    # two choices, one reason each
    _, attrs = generation_span(
        output=["4", "four"],
        model_parameters={"n": 2, "stop": ["\n", "."]},
        metadata={"finish_reason": ["stop", "length"]},
    )
    messages = json.loads(attrs["gen_ai.output.messages"])
    assert [(m["parts"][0]["content"], m["finish_reason"]) for m in messages] == [
        ("4", "stop"),
        ("four", "length"),
    ]
    assert attrs["gen_ai.request.choice.count"] == 2
    assert attrs["gen_ai.request.stop_sequences"] == ["\n", "."]

    # no reported reason: a failed call's is "error", with error.type
    failed = {"level": "ERROR", "status_message": "RateLimitError: slow down"}
    _, attrs = generation_span(**failed, metadata={})
    assert json.loads(attrs["gen_ai.output.messages"])[0]["finish_reason"] == "error"
    assert attrs["error.type"] == "RateLimitError"
    assert generation_span(**failed, metadata={"status_code": 429})[1]["error.type"] == "429"


def test_error_type_is_the_last_attempts_http_status_else_the_exception_class() -> None:
    failed = {"level": "ERROR", "status_message": "CallError: openai:gpt-4o-mini: 503 ..."}

    def error_type(metadata: dict[str, Any]) -> Any:
        return generation_span(**failed, metadata=metadata)[1]["error.type"]

    tries = [{"attempt": 1, "status": 503}, {"attempt": 2, "status": 429}]
    assert error_type({"attempts": tries}) == "429"  # the llm fixture's record
    assert error_type({"status_code": 500}) == "500"  # an SDK integration's
    timed_out = [{"attempt": 1, "status": 503}, {"attempt": 2, "status": None}]
    assert error_type({"attempts": timed_out}) == "CallError"  # no answer: the class
    assert error_type({}) == "CallError"


def test_a_failed_model_call_sends_its_http_status_as_error_type(
    pytester: pytest.Pytester,
    openai_env: FakeOpenAI,
    receiver: OtlpReceiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for key in OTEL_VARIABLES:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    openai_env.queue(error(503, "overloaded"), error(502, "bad gateway"))
    pytester.makepyfile("def test_fail(llm):\n    llm.generate('hello')\n")
    model = "--llm-model=openai:gpt-4o-mini?max_retries=1&backoff=0"
    pytester.runpytest(model, "--llm-upload=otlp").assert_outcomes(failed=1)

    (client,) = [s for s in receiver.spans().values() if s.kind == s.SPAN_KIND_CLIENT]
    assert "502 Bad Gateway" in client.status.message
    assert plain_attributes(client.attributes)["error.type"] == "502"


def test_the_provider_name_comes_from_the_run_model_or_the_model_name() -> None:
    def provider(model: str, run_model: str = "mock-llm-v1") -> str:
        attrs = generation_span(run_model, model=model, metadata={})[1]
        return str(attrs["gen_ai.provider.name"])

    assert provider("gpt-4o", "openai:gpt-4o?timeout=30") == "openai"
    assert provider("o3-mini") == "openai"
    assert provider("claude-3-5-sonnet-latest") == "anthropic"
    assert provider("gemini-2.0-flash") == "gcp.gemini"
    assert provider("mock-llm-v1") == "pytest-llmobs"
    assert provider("house-model", "acme:house-model") == "acme"  # a registered provider
    assert provider("llama-3-8b") == "_OTHER"


def test_langfuse_spans_keep_their_genai_attributes() -> None:
    # the Langfuse exporter sends the span family's own gen_ai.* without the OTLP hook
    item = {"trace": {"id": "0af7651916cd43dd8448eb211c80319c", "observations": [{
        "id": "00f067aa0ba902b7", "type": "generation", "name": "llm.generate",
        "start_time": 1.0, "end_time": 2.0, "model": "gpt-4o",
        "model_parameters": {"stop": "\n"}, "metadata": {"finish_reason": "stop"},
    }]}}  # fmt: skip
    (span,) = trace_spans({"id": "r"}, item, SpanOptions()).spans
    attrs = plain_attributes(span.attributes)
    assert attrs["gen_ai.request.stop"] == "\n"
    assert not {"gen_ai.provider.name", "gen_ai.response.finish_reasons"} & set(attrs)


# --- delivery ------------------------------------------------------------------------------------


def test_tool_calls_results_and_content_parts_become_genai_parts() -> None:
    # (before: one text part each, the tool calls lost and the parts sent as their JSON)
    calls = [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "What?"}, image]},
        {"role": "assistant", "content": None, "tool_calls": calls},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
    ]
    assert genai_messages(messages, "user") == [
        {"role": "user", "parts": [{"type": "text", "content": "What?"}, image]},
        {
            "role": "assistant",
            "parts": [{"type": "tool_call", "id": "c1", "name": "f", "arguments": "{}"}],
        },
        {
            "role": "tool",
            "parts": [{"type": "tool_call_response", "id": "c1", "response": "sunny"}],
        },
    ]
    assert genai_messages([1, 2], "user") == [
        {"role": "user", "parts": [{"type": "text", "content": "[1,2]"}]}
    ]
    assert genai_messages(
        [{"role": "user", "content": ["bare", {"type": "text", "text": "x"}]}], "user"
    ) == [
        {
            "role": "user",
            "parts": [{"type": "text", "content": "bare"}, {"type": "text", "content": "x"}],
        }
    ]

    # the OpenAI SDK leaves content out of a tool-calling turn; LangChain records name and args
    langchain_call = {"name": "g", "args": {"x": 1}, "id": "c2", "type": "tool_call"}
    assert genai_messages([{"role": "assistant", "tool_calls": [langchain_call]}], "user") == [
        {
            "role": "assistant",
            "parts": [{"type": "tool_call", "id": "c2", "name": "g", "arguments": {"x": 1}}],
        }
    ]


def test_upload_sends_every_span_with_genai_attributes_and_evaluation_events(
    suite: pytest.Pytester,
    runs: Runs,
    receiver: OtlpReceiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url + "/")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "Authorization=Bearer%20tok%3D1,x-team=llm")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "capitals-evals")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=ci,team=a%20b")
    result = suite.runpytest("--llm-upload=otlp")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(
        [
            f"upload to otlp {receiver.url}/v1/traces: run *: "
            "sent 4 traces, 8 observations, 10 scores"
        ]
    )
    (request,) = receiver.received
    assert request.path == "/v1/traces"
    assert request.headers["authorization"] == "Bearer tok=1"
    assert request.headers["x-team"] == "llm"
    assert request.headers["content-type"] == "application/x-protobuf"
    assert request.headers["content-encoding"] == "gzip"
    (resource_spans,) = request.request.resource_spans
    resource = plain_attributes(resource_spans.resource.attributes)
    assert resource["service.name"] == "capitals-evals"
    assert (resource["deployment.environment"], resource["team"]) == ("ci", "a b")
    run = runs.latest()
    assert resource["llmobs.run.id"] == run["id"]
    spans = receiver.spans()
    assert len(spans) == sum(len(i["trace"]["observations"]) for i in run["items"])
    for item in run["items"]:
        trace = item["trace"]
        for index, obs in enumerate(trace["observations"]):
            span = spans[obs["id"]]
            attrs = plain_attributes(span.attributes)
            assert span.trace_id.hex() == trace["id"]
            assert span.parent_span_id.hex() == (obs["parent_id"] or "")
            assert span.start_time_unix_nano == unix_nanos(obs["start_time"])
            assert span.status.code == (2 if obs["level"] == "ERROR" else 0)
            if obs["type"] == "generation":
                assert_genai(attrs, obs)
            if index == 0:
                assert attrs["llmobs.test.node_id"] == item["node_id"]
                assert attrs["llmobs.test.outcome"] == item["outcome"]
                assert attrs.get("llmobs.dataset.item_id") == item["item_id"]
                assert attrs.get("gen_ai.conversation.id") == trace["session_id"]
        for score in trace["scores"]:
            target = spans[score["observation_id"] or trace["observations"][0]["id"]]
            events = [plain_attributes(e.attributes) for e in target.events]
            assert expected_evaluation(score) in events
            assert all(e.name == "gen_ai.evaluation.result" for e in target.events)


def test_a_batch_too_large_is_split_and_partial_success_is_a_failure(
    suite: pytest.Pytester, runs: Runs, receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", receiver.url + "/custom/traces")
    suite.runpytest().assert_outcomes(passed=3, failed=1)
    receiver.max_bytes = 3000
    with runs.open() as store:
        options = ExporterOptions(store=store, environ=dict(FAST, **_otel_env()))
        report = create_exporter("otlp", options).export(runs.latest())
    assert report.ok, report.lines()
    assert receiver.refused >= 1 and len(receiver.received) >= 2
    assert {r.path for r in receiver.received} == {"/custom/traces"}
    assert max(r.size for r in receiver.received) <= 3000
    assert len(receiver.spans()) == 8

    receiver.max_bytes, receiver.reject_spans = None, 2
    with runs.open() as store:
        options = ExporterOptions(store=store, environ=dict(FAST, **_otel_env()))
        report = create_exporter("otlp", options).export(runs.latest())
    assert report.failed == {"traces": 4, "observations": 8, "scores": 10}
    assert report.first_error is not None
    assert report.first_error.endswith("/custom/traces: 2 span(s) rejected: no thanks")


def _otel_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k.startswith("OTEL_")}


def test_pending_resends_only_the_traces_that_failed(
    suite: pytest.Pytester,
    runs: Runs,
    receiver: OtlpReceiver,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    receiver.reject_spans = 1
    result = suite.runpytest("--llm-upload=otlp")
    result.stdout.fnmatch_lines(["*NOT SENT*: 4 traces, 8 observations, 10 scores"])
    receiver.reject_spans = 0
    receiver.received.clear()
    store_dir = str(runs.directory / ".llmobs")
    assert llmobs(["upload", "--pending", "--to", "otlp", "--store", store_dir]) == 0
    assert "sent 4 traces, 8 observations, 10 scores" in capsys.readouterr().out
    assert len(receiver.spans()) == 8
    assert llmobs(["upload", "--pending", "--to", "otlp", "--store", store_dir]) == 0
    assert "otlp: nothing pending" in capsys.readouterr().out


def test_a_run_still_running_is_not_uploaded_in_part(
    suite: pytest.Pytester,
    runs: Runs,
    receiver: OtlpReceiver,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Sent while its session ran, the items finished later were never pending: lost."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    receiver.reject_spans = 1
    suite.runpytest("--llm-upload=otlp").stdout.fnmatch_lines(["*NOT SENT*"])
    receiver.reject_spans = 0
    receiver.received.clear()
    run_id = runs.latest()["id"]
    db = sqlite3.connect(runs.db())
    with db:  # as while its session (this process) runs
        db.execute(
            "UPDATE runs SET status = 'running', pid = ? WHERE id = ?", (os.getpid(), run_id)
        )
    db.close()  # (a connection's `with` commits; it does not close)
    store_dir = str(runs.directory / ".llmobs")

    assert llmobs(["upload", "latest", "--to", "otlp", "--store", store_dir]) == 2
    assert capsys.readouterr().err.strip() == (
        f"llmobs: error: run {run_id} is still running: upload it once its session has ended "
        "(a session with --llm-upload uploads its run when it ends)"
    )
    assert llmobs(["upload", "--pending", "--to", "otlp", "--store", store_dir]) == 1
    assert f"otlp: run {run_id} is still running: not sent until its session ends" in (
        capsys.readouterr().out
    )
    assert not receiver.received

    # recorded on another machine (a CI job's store, the job killed): nothing here can tell
    # whether it goes on, and it would never be sent
    db = sqlite3.connect(runs.db())
    with db:
        db.execute(
            "UPDATE runs SET header = json_set(header, '$.process.host', 'ci-runner-7')"
            " WHERE id = ?",
            (run_id,),
        )
    db.close()
    assert llmobs(["upload", "latest", "--to", "otlp", "--store", store_dir]) == 0
    assert receiver.spans()


def test_a_run_sent_before_whose_upload_again_fails_is_pending_until_sent(
    suite: pytest.Pytester,
    runs: Runs,
    receiver: OtlpReceiver,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    result = suite.runpytest("--llm-upload=otlp")
    result.stdout.fnmatch_lines(["*: sent 4 traces, 8 observations, 10 scores"])
    upload = ["upload", "--to", "otlp", "--store", str(runs.directory / ".llmobs")]
    receiver.down = 503

    assert llmobs(upload) == 1
    assert "NOT SENT (pending; retry with `llmobs upload --pending --to otlp`): 4 traces" in (
        capsys.readouterr().out
    )
    assert llmobs([*upload, "--pending"]) == 1  # still down: still pending, nothing skipped
    out = capsys.readouterr().out
    assert "NOT SENT (pending" in out and "skipped" not in out

    receiver.down = None
    receiver.received.clear()
    assert llmobs([*upload, "--pending"]) == 0
    assert "sent 4 traces, 8 observations, 10 scores" in capsys.readouterr().out
    assert len(receiver.spans()) == 8
    assert llmobs([*upload, "--pending"]) == 0
    assert "otlp: nothing pending" in capsys.readouterr().out


SECRETS = ("OTLPSECRETTOKEN", "honeycomb-key-0042")


def test_credentials_a_server_repeats_are_hidden_in_output_and_store(
    suite: pytest.Pytester, runs: Runs, receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    monkeypatch.setenv(
        "OTEL_EXPORTER_OTLP_HEADERS",
        f"Authorization=Bearer%20{SECRETS[0]},x-honeycomb-team={SECRETS[1]},x-team=llm",
    )
    receiver.echo = 400  # {"Authorization": "Bearer OTLPSECRETTOKEN", ...}
    result = suite.runpytest("--llm-upload=otlp")
    result.stdout.fnmatch_lines(
        [
            f"*first error: POST {receiver.url}/v1/traces: HTTP 400 *"
            '{"Authorization": "***", "X-Honeycomb-Team": "***", "X-Team": "llm"}'
        ]
    )
    store_bytes = b"".join(p.read_bytes() for p in (runs.directory / ".llmobs").glob("llmobs.db*"))
    for secret in SECRETS:
        assert secret not in str(result.stdout) + str(result.stderr)
        assert secret.encode() not in store_bytes
    with contextlib.closing(sqlite3.connect(runs.db())) as db:
        details = {r[0] for r in db.execute("SELECT detail FROM upload_state WHERE kind = 'trace'")}
    assert len(details) == 1 and '"Authorization": "***"' in details.pop()


@pytest.mark.parametrize(
    ("content_type", "body"),
    [("text/html", b"<html><body>Welcome to nginx!</body></html>"), ("application/json", b"{no")],
)
def test_a_success_that_is_no_otlp_answer_is_an_upload_error_and_stays_pending(
    suite: pytest.Pytester,
    runs: Runs,
    receiver: OtlpReceiver,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    content_type: str,
    body: bytes,
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    receiver.answer = (200, content_type, body)
    result = suite.runpytest("--llm-upload=otlp")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*NOT SENT (pending; retry with `llmobs upload --pending --to otlp`): 4 traces, "
            "8 observations, 10 scores",
            f"*first error: POST {receiver.url}/v1/traces: HTTP 200 answer is not an OTLP answer "
            f"(protobuf or JSON) (got {content_type}: {body.decode()})",
        ]
    )
    assert "Traceback" not in str(result.stdout) + str(result.stderr)
    receiver.answer = None
    receiver.received.clear()
    store_dir = str(runs.directory / ".llmobs")
    assert llmobs(["upload", "--pending", "--to", "otlp", "--store", store_dir]) == 0
    assert "sent 4 traces, 8 observations, 10 scores" in capsys.readouterr().out
    assert len(receiver.spans()) == 8


def partial_success_answer(rejected: int, message: str) -> bytes:
    answer = ExportTraceServiceResponse()
    answer.partial_success.rejected_spans = rejected
    answer.partial_success.error_message = message
    return answer.SerializeToString()


@pytest.mark.parametrize(
    ("rejected", "message"),
    [(200, "quota"), (3, "spans dropped: quota exceeded for this project; " * 3)],
    ids=["count over 127", "message over 127 characters"],
)
def test_a_protobuf_partial_success_is_read_from_the_answers_bytes(
    suite: pytest.Pytester,
    runs: Runs,
    receiver: OtlpReceiver,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    rejected: int,
    message: str,
) -> None:
    suite.runpytest().assert_outcomes(passed=3, failed=1)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    body = partial_success_answer(rejected, message)
    assert any(byte >= 0x80 for byte in body)  # not UTF-8 text: lost when decoded as text
    receiver.answer = (200, "application/x-protobuf", body)
    store_dir = str(runs.directory / ".llmobs")
    assert llmobs(["upload", "latest", "--to", "otlp", "--store", store_dir]) == 1
    out = capsys.readouterr().out
    assert "NOT SENT (pending; retry with `llmobs upload --pending --to otlp`): 4 traces" in out
    assert f"first error: POST {receiver.url}/v1/traces: {rejected} span(s) rejected: " in out
    assert message.strip() in out


@pytest.mark.parametrize(
    ("content_type", "body", "sent"),
    [
        ("application/x-protobuf", partial_success_answer(200, "quota " * 40)[:-9], False),
        ("application/x-protobuf", b"\x0a\xff", False),
        ("", b"OK", True),
    ],
    ids=["truncated partial success", "broken partial success", "no protobuf"],
)
def test_an_undecodable_answer_counts_as_sent_unless_it_starts_as_a_partial_success(
    suite: pytest.Pytester,
    runs: Runs,
    receiver: OtlpReceiver,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    content_type: str,
    body: bytes,
    sent: bool,
) -> None:
    suite.runpytest().assert_outcomes(passed=3, failed=1)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    receiver.answer = (200, content_type, body)
    store_dir = str(runs.directory / ".llmobs")
    assert llmobs(["upload", "latest", "--to", "otlp", "--store", store_dir]) == (0 if sent else 1)
    out = capsys.readouterr().out
    if sent:
        assert "sent 4 traces, 8 observations, 10 scores" in out
    else:
        assert (
            f"first error: POST {receiver.url}/v1/traces: the answer starts as a partial success "
            f"but is not a valid ExportTraceServiceResponse ({len(body)} bytes): spans may be "
            "rejected"
        ) in out


QUERY_SECRET = "QUERYSECRET-7781"


def test_a_token_in_the_endpoints_query_is_sent_but_never_shown_or_stored(
    suite: pytest.Pytester,
    runs: Runs,
    receiver: OtlpReceiver,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    endpoint = f"{receiver.url}/v1/traces?api_key={QUERY_SECRET}&team=a"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", endpoint)
    result = suite.runpytest("--llm-upload=otlp")
    result.stdout.fnmatch_lines([f"upload to otlp {receiver.url}/v1/traces: run *: sent 4 traces*"])
    assert {r.path for r in receiver.received} == {f"/v1/traces?api_key={QUERY_SECRET}&team=a"}

    capsys.readouterr()
    receiver.echo_path = 400  # "no route for /v1/traces?api_key=..."
    store_dir = str(runs.directory / ".llmobs")
    assert llmobs(["upload", "latest", "--to", "otlp", "--store", store_dir, "--json"]) == 1
    out = capsys.readouterr().out
    (report,) = json.loads(out)
    assert report["target"] == f"otlp {receiver.url}/v1/traces"
    assert report["first_error"] == (
        f"POST {receiver.url}/v1/traces: HTTP 400 no route for /v1/traces?api_key=***&team=a"
    )
    store_bytes = b"".join(p.read_bytes() for p in (runs.directory / ".llmobs").glob("llmobs.db*"))
    assert QUERY_SECRET not in str(result.stdout) + out
    assert QUERY_SECRET.encode() not in store_bytes


@pytest.mark.parametrize(
    ("headers", "problem"),
    [
        (
            "x-team=llm,Authorization=Bearer \u00c4TOKEN",
            "header 'Authorization' has a non-ASCII character in its value (HTTP header values "
            "must be ASCII)",
        ),
        (
            "api-key=abc%0Adef",
            "header 'api-key' has a control character in its value (a line break, e.g. from %0A "
            "or %0D, cannot be sent)",
        ),
    ],
)
def test_a_header_http_cannot_carry_is_a_configuration_error(
    suite: pytest.Pytester,
    runs: Runs,
    receiver: OtlpReceiver,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    headers: str,
    problem: str,
) -> None:
    suite.runpytest().assert_outcomes(passed=3, failed=1)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", headers)
    store_dir = str(runs.directory / ".llmobs")
    assert llmobs(["upload", "latest", "--to", "otlp", "--store", store_dir]) == 2
    captured = capsys.readouterr()
    assert captured.err == f"llmobs: error: OTEL_EXPORTER_OTLP_HEADERS: {problem}\n"
    assert "TOKEN" not in captured.err and "def" not in captured.err
    assert receiver.received == []  # not sent, not retried

    result = suite.runpytest("--llm-upload=otlp")  # the session reports it in one line
    assert result.ret == 1  # test_plain_fails
    result.stdout.fnmatch_lines([f"*first error: not sent: OTEL_EXPORTER_OTLP_HEADERS: {problem}"])
    assert receiver.received == []


ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT"
URL_EXAMPLE = "expected an http(s) URL, e.g. http://localhost:4318"
CREDENTIALS = (
    "holds credentials (user:password@ before the host): they would be sent as Basic auth and "
    "shown with the URL; put them in a header in OTEL_EXPORTER_OTLP_HEADERS "
    "(e.g. Authorization=Basic%20...)"
)
TIMEOUT = "expected milliseconds > 0, e.g. 10000"


@pytest.mark.parametrize(
    ("variable", "value", "error"),
    [
        (
            ENDPOINT,
            "http://127.0.0.1:99999",
            f"{ENDPOINT}='http://127.0.0.1:99999' is not a valid URL (Port out of range "
            f"0-65535); {URL_EXAMPLE}",
        ),
        (
            ENDPOINT,
            "http://127.0.0.1:80x",
            f"{ENDPOINT}='http://127.0.0.1:80x' is not a valid URL (Port could not be cast to "
            f"integer value as '80x'); {URL_EXAMPLE}",
        ),
        (
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://[::1",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT='http://[::1' is not a valid URL (Invalid IPv6 "
            f"URL); {URL_EXAMPLE}",
        ),
        (
            ENDPOINT,
            "http://admin:pw-SECRET-9@127.0.0.1:4318",
            f"{ENDPOINT} {CREDENTIALS}; got 'http://***@127.0.0.1:4318'",
        ),
        *(
            (
                "OTEL_EXPORTER_OTLP_TIMEOUT",
                value,
                f"OTEL_EXPORTER_OTLP_TIMEOUT={value!r}: {TIMEOUT}",
            )
            for value in ("-5", "nan", "inf", "1e400", "0")
        ),
        (
            "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
            "brotli",
            "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION='brotli': expected 'gzip' or 'none'",
        ),
        (
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "grpc",
            "OTEL_EXPORTER_OTLP_PROTOCOL='grpc': only 'http/protobuf' is supported (point the "
            "endpoint at the collector's OTLP/HTTP port, usually 4318)",
        ),
        ("LLMOBS_UPLOAD_TIMEOUT", "-3", "LLMOBS_UPLOAD_TIMEOUT='-3': expected seconds > 0"),
    ],
)
def test_a_malformed_setting_is_a_configuration_error_and_sends_nothing(
    suite: pytest.Pytester,
    runs: Runs,
    receiver: OtlpReceiver,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    variable: str,
    value: str,
    error: str,
) -> None:
    suite.runpytest().assert_outcomes(passed=3, failed=1)
    capsys.readouterr()
    monkeypatch.setenv(ENDPOINT, receiver.url)
    monkeypatch.setenv(variable, value)
    store_dir = str(runs.directory / ".llmobs")
    assert llmobs(["upload", "latest", "--to", "otlp", "--store", store_dir]) == 2
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", f"llmobs: error: {error}\n")
    assert "SECRET" not in captured.err
    assert receiver.received == []


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (
            "http://127.0.0.1:99999",
            f"{ENDPOINT}='http://127.0.0.1:99999' is not a valid URL (Port out of range "
            f"0-65535); {URL_EXAMPLE}",
        ),
        ("http://admin:pw-SECRET-9@{host}", f"{ENDPOINT} {CREDENTIALS}; got 'http://***@{{host}}'"),
    ],
)
def test_a_malformed_endpoint_is_reported_by_the_session_in_one_line(
    suite: pytest.Pytester,
    runs: Runs,
    receiver: OtlpReceiver,
    monkeypatch: pytest.MonkeyPatch,
    value: str,
    error: str,
) -> None:
    host = receiver.url.removeprefix("http://")
    monkeypatch.setenv(ENDPOINT, value.format(host=host))
    result = suite.runpytest("--llm-upload=otlp")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(
        [
            "upload to otlp: run *: sent nothing",
            "*NOT SENT (pending; retry with `llmobs upload --pending --to otlp`): 4 traces, *",
            f"*first error: not sent: {error.format(host=host)}",
        ]
    )
    output = str(result.stdout) + str(result.stderr)
    assert "SECRET" not in output and "Traceback" not in output
    assert receiver.received == []
    with contextlib.closing(sqlite3.connect(runs.db())) as db:
        assert "SECRET" not in str(db.execute("SELECT * FROM upload_state").fetchall())


def test_a_run_not_stored_is_not_called_pending_when_its_upload_fails(
    suite: pytest.Pytester, receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENDPOINT, receiver.url)
    receiver.down = 503
    result = suite.runpytest("--llm-no-store", "--llm-upload=otlp")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*NOT SENT (the run was not stored (--llm-no-store), so it cannot be retried): "
            "4 traces, 8 observations, 10 scores",
            f"*first error: POST {receiver.url}/v1/traces: HTTP 503 down after 2 attempt(s)",
        ]
    )
    assert "--pending" not in str(result.stdout)


def test_strict_upload_says_the_upload_failed_the_session(
    suite: pytest.Pytester, receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    suite.makepyfile(test_suite="def test_ok(llm): llm.generate('hi')")
    receiver.down = 503
    result = suite.runpytest("--llm-upload=otlp", "--llm-upload-strict")
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        [
            "*NOT SENT (pending*): 1 traces, 2 observations",
            f"--llm-upload-strict: the upload to otlp {receiver.url}/v1/traces did not deliver "
            "everything (NOT SENT above): the session fails (exit status 1)",
        ]
    )
    assert "--llm-upload-strict" not in str(suite.runpytest("--llm-upload=otlp").stdout)


# --- configuration -------------------------------------------------------------------------------


def test_missing_endpoint_is_reported_and_does_not_fail_the_tests(suite: pytest.Pytester) -> None:
    suite.makepyfile(test_suite="def test_ok(): pass")
    result = suite.runpytest("--llm-upload=otlp")
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "upload to otlp: run *: sent nothing",
            "*NOT SENT*: 1 traces, 1 observations",
            "*first error: not sent: OTEL_EXPORTER_OTLP_ENDPOINT not set: export the collector's "
            "OTLP/HTTP base URL, e.g. OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 "
            "(/v1/traces is appended), or the full URL in OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        ]
    )
    assert suite.runpytest("--llm-upload=otlp", "--llm-upload-strict").ret == 1


def test_a_run_not_sent_for_want_of_an_endpoint_is_sent_by_pending_once_there_is_one(
    suite: pytest.Pytester,
    runs: Runs,
    receiver: OtlpReceiver,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    suite.runpytest("--llm-upload=otlp").stdout.fnmatch_lines(["*NOT SENT (pending; retry*"])
    store_dir = str(runs.directory / ".llmobs")

    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    assert llmobs(["upload", "--pending", "--to", "otlp", "--store", store_dir]) == 0

    assert "sent 4 traces, 8 observations, 10 scores" in capsys.readouterr().out
    assert len(receiver.spans()) == 8
    assert llmobs(["upload", "--pending", "--to", "otlp", "--store", store_dir]) == 0
    assert "otlp: nothing pending" in capsys.readouterr().out


def test_pending_sends_all_that_an_upload_without_endpoint_left_pending_even_if_sent_before(
    suite: pytest.Pytester,
    runs: Runs,
    receiver: OtlpReceiver,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    suite.runpytest("--llm-upload=otlp").stdout.fnmatch_lines(["*: sent 4 traces, *"])
    upload = ["upload", "--to", "otlp", "--store", str(runs.directory / ".llmobs")]
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT")
    assert llmobs(upload) == 1
    assert "NOT SENT (pending; retry with `llmobs upload --pending --to otlp`): 4 traces" in (
        capsys.readouterr().out
    )

    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    receiver.received.clear()
    assert llmobs([*upload, "--pending"]) == 0
    out = capsys.readouterr().out
    assert "sent 4 traces, 8 observations, 10 scores" in out and "skipped" not in out
    assert len(receiver.spans()) == 8
    assert llmobs([*upload, "--pending"]) == 0
    assert "otlp: nothing pending" in capsys.readouterr().out


def test_llmobs_upload_to_otlp_without_endpoint_exits_1(
    suite: pytest.Pytester, runs: Runs, capsys: pytest.CaptureFixture[str]
) -> None:
    suite.runpytest().assert_outcomes(passed=3, failed=1)
    store_dir = str(runs.directory / ".llmobs")
    assert llmobs(["upload", "latest", "--to", "otlp", "--store", store_dir]) == 1
    assert "OTEL_EXPORTER_OTLP_ENDPOINT not set" in capsys.readouterr().out


def test_endpoint_rules() -> None:
    base = {"OTEL_EXPORTER_OTLP_ENDPOINT": "https://otel.example.com:4318/"}
    assert OtlpConfig.from_env(base).url == "https://otel.example.com:4318/v1/traces"
    prefixed = {"OTEL_EXPORTER_OTLP_ENDPOINT": "https://gw.example.com/otlp"}
    assert OtlpConfig.from_env(prefixed).url == "https://gw.example.com/otlp/v1/traces"
    specific = {**base, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/ingest?x=1"}
    config = OtlpConfig.from_env(specific)
    assert config.url == "http://c:4318/ingest?x=1"
    assert (config.base_url, config.path) == ("http://c:4318", "/ingest?x=1")
    with pytest.raises(ExportError, match="OTEL_EXPORTER_OTLP_ENDPOINT='otel:4318' is not an"):
        OtlpConfig.from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "otel:4318"})
    with pytest.raises(ExportError, match="only 'http/protobuf' is supported"):
        OtlpConfig.from_env({**base, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})
    with pytest.raises(ExportError, match="OTEL_EXPORTER_OTLP_COMPRESSION='zstd': expected"):
        OtlpConfig.from_env({**base, "OTEL_EXPORTER_OTLP_COMPRESSION": "zstd"})
    timed = OtlpConfig.from_env({**base, "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "2500"})
    assert timed.timeout == 2.5


def test_headers_are_url_decoded_and_never_shown() -> None:
    value = "Authorization=Basic%20dXNlcjpzZWNyZXQ%3D , x-team = a%2Cb,,empty="
    assert parse_pairs(value, "OTEL_EXPORTER_OTLP_HEADERS") == {
        "Authorization": "Basic dXNlcjpzZWNyZXQ=",
        "x-team": "a,b",
        "empty": "",
    }
    with pytest.raises(ExportError) as bad:
        parse_pairs("api-key=s3cret,oops", "OTEL_EXPORTER_OTLP_HEADERS")
    assert str(bad.value) == (
        "OTEL_EXPORTER_OTLP_HEADERS: entry 2 is not 'key=value' (expected k=v,k2=v2 with "
        "URL-encoded values)"
    )
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_EXPORTER_OTLP_HEADERS": value}
    specific = {**env, "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "x-only=1"}
    assert dict(OtlpConfig.from_env(specific).headers) == {"x-only": "1"}
    assert "dXNlcjpzZWNyZXQ" not in repr(OtlpConfig.from_env(env))


def test_all_targets_are_known() -> None:
    assert parse_targets("langfuse, OTLP,phoenix,otlp") == ["langfuse", "otlp", "phoenix"]
    with pytest.raises(ExportError, match=r"Valid targets: langfuse, otlp, phoenix\."):
        parse_targets("datadog")


# --- against a real Phoenix ----------------------------------------------------------------------


@pytest.mark.phoenix
def test_otlp_upload_to_phoenix(
    suite: pytest.Pytester,
    runs: Runs,
    phoenix_server: PhoenixServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    project = f"otlp-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", phoenix_server.url)
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", f"openinference.project.name={project}")
    result = suite.runpytest("--llm-upload=otlp")
    result.stdout.fnmatch_lines(
        [
            f"upload to otlp {phoenix_server.url}/v1/traces: run *: sent 4 traces, "
            "8 observations, 10 scores"
        ]
    )
    run = runs.latest()
    count = sum(len(i["trace"]["observations"]) for i in run["items"])

    def spans() -> dict[str, dict[str, Any]] | None:
        found = {s["context"]["span_id"]: s for s in phoenix_server.spans(project)}
        return found if len(found) >= count else None

    found = wait_for(spans, what=f"{count} spans in project {project!r}")
    assert len(found) == count
    for item in run["items"]:
        trace = item["trace"]
        for obs in trace["observations"]:
            span = found[obs["id"]]
            assert span["context"]["trace_id"] == trace["id"]
            assert span["parent_id"] == obs["parent_id"]
            assert span["name"] == obs["name"]
            assert span["status_code"] == ("ERROR" if obs["level"] == "ERROR" else "UNSET")
            if obs["type"] == "generation":
                assert_genai(span["attributes"], obs)
        for score in trace["scores"]:
            target = found[score["observation_id"] or trace["observations"][0]["id"]]
            events = [e["attributes"] for e in target["events"]]
            assert {"gen_ai.evaluation.result"} == {e["name"] for e in target["events"]}
            assert expected_evaluation(score) in events
