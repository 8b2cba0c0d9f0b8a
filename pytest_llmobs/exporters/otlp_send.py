"""Sending a run's traces to an OTLP/HTTP endpoint and recording, per trace, whether they got
there (shared by the ``otlp`` and ``phoenix`` exporters).

A batch the server finds too large (413) is split in halves and resent; an answer reporting
rejected spans (``partial_success``) fails the traces of its batch. Outcomes go to the upload
state through a `Ledger`, so ``--pending`` resends exactly the traces that did not get through.

A backend that keeps a trace where it first arrived (Phoenix: in its first project) gets ids
derived from the stored ones and a salt (`sent_id`); the upload state keeps the stored ids.
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pytest_llmobs.exporters import ExportReport
from pytest_llmobs.exporters.batching import halves
from pytest_llmobs.exporters.http import HttpError, HttpSender, PayloadTooLarge, Response
from pytest_llmobs.exporters.state import Ledger

if TYPE_CHECKING:
    from pytest_llmobs.exporters.otlp_spans import SpanBatch, SpanOptions, TraceSpans

PROTOBUF = "application/x-protobuf"
EventAdder = Callable[["TraceSpans", Mapping[str, Any]], int]
"""Adds span events to one item's spans (scores as evaluation events); returns how many."""


def sent_id(salt: str | None, stored: str) -> str:
    """The id a backend gets for a stored trace or span id (hex): the id itself without a salt,
    else as many hex digits of SHA-256 over the salt and the id, so the same salt always gives
    the same id (uploads stay idempotent) and another salt another one."""
    if salt is None:
        return stored
    return hashlib.sha256(f"{salt}\0{stored}".encode()).hexdigest()[: len(stored)]


def salt_ids(spans: TraceSpans, salt: str | None) -> None:
    """Replace the trace, span and parent span ids of ``spans`` by their `sent_id`."""
    if salt is None:
        return
    for span in spans.spans:
        span.trace_id = bytes.fromhex(sent_id(salt, span.trace_id.hex()))
        span.span_id = bytes.fromhex(sent_id(salt, span.span_id.hex()))
        if span.parent_span_id:
            span.parent_span_id = bytes.fromhex(sent_id(salt, span.parent_span_id.hex()))


def traced_items(run: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The run's items that have a trace with at least one observation."""
    return [i for i in run.get("items") or [] if (i.get("trace") or {}).get("observations")]


@dataclass
class TraceSend:
    """Trace spans to one OTLP/HTTP endpoint; 413 splits a batch, a partial success fails the
    traces of its batch. ``outcome`` says per trace id sent whether every span got through."""

    sender: HttpSender
    path: str
    run: Mapping[str, Any]
    options: SpanOptions
    report: ExportReport
    compression: str | None = None
    id_salt: str | None = None
    """Send ids derived with this salt (`sent_id`) instead of the stored ones."""
    outcome: dict[str, bool] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def send(self, traces: Iterable[TraceSpans]) -> None:
        from pytest_llmobs.exporters.otlp_spans import span_batches

        for batch in span_batches(traces):
            self._post(batch)

    def _post(self, batch: SpanBatch) -> None:
        from pytest_llmobs.exporters.otlp_spans import SpanBatch

        body = batch.encode(self.run, self.options)
        headers = {"Accept": PROTOBUF}
        if self.compression == "gzip":
            body = gzip.compress(body)
            headers["Content-Encoding"] = "gzip"
        try:
            answer = self.sender.request(
                "POST",
                self.path,
                content=body,
                content_type=PROTOBUF,
                headers=headers,
                expect="otlp",
            )
        except PayloadTooLarge as exc:
            parts = halves(batch.spans)
            if not parts:
                self._mark(batch.trace_ids, str(exc))
            for part in parts:
                self._post(SpanBatch(part))
            return
        except HttpError as exc:
            self._mark(batch.trace_ids, str(exc))
            return
        rejected = rejection(answer)
        if rejected is not None:
            self._mark(batch.trace_ids, self.sender.scrub(f"{answer.where}: {rejected}"))
            return
        for trace_id in batch.trace_ids:
            self.outcome.setdefault(trace_id, True)

    def _mark(self, trace_ids: Iterable[str], message: str) -> None:
        for trace_id in trace_ids:
            self.outcome[trace_id] = False
            self.errors.setdefault(trace_id, message)


PARTIAL_SUCCESS_TAG = 0x0A
"""The first byte of a protobuf ``ExportTraceServiceResponse`` that has a ``partial_success``
(field 1, length-delimited)."""


def rejection(answer: Response) -> str | None:
    """Why an OTLP 2xx answer means that spans did not get through, or ``None`` when it
    accepted them all.

    A protobuf ``ExportTraceServiceResponse`` is read from the answer's bytes, a JSON one from
    its ``partialSuccess``. An answer that cannot be decoded counts as accepted, unless it
    plainly starts as a ``partial_success`` (protobuf) or has a ``partialSuccess`` whose count is
    not a number (JSON): then the spans may have been rejected, so they are not counted as sent.
    """
    content_type = answer.headers.get("content-type", "").lower()
    if isinstance(answer.body, Mapping) and "protobuf" not in content_type:
        return _json_rejection(answer.body)
    if not answer.content:
        return None
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceResponse,
    )

    try:
        decoded = ExportTraceServiceResponse.FromString(answer.content)
    except Exception:  # protobuf's DecodeError (google.protobuf has no type stubs here)
        if answer.content[0] != PARTIAL_SUCCESS_TAG:
            return None  # not protobuf at all (e.g. a bare "OK"): a 2xx answer is an accept
        return (
            f"the answer starts as a partial success but is not a valid "
            f"ExportTraceServiceResponse ({len(answer.content)} bytes): spans may be rejected"
        )
    partial = decoded.partial_success
    if partial.rejected_spans:
        return _with_message(f"{partial.rejected_spans} span(s) rejected", partial.error_message)
    return None


def _json_rejection(body: Mapping[str, Any]) -> str | None:
    partial = body.get("partialSuccess") or {}
    if not isinstance(partial, Mapping):
        return None
    message = str(partial.get("errorMessage") or "")
    try:
        rejected = int(partial.get("rejectedSpans") or 0)
    except (TypeError, ValueError):
        return _with_message(
            "partialSuccess.rejectedSpans is not a number: spans may be rejected", message
        )
    return _with_message(f"{rejected} span(s) rejected", message) if rejected else None


def _with_message(problem: str, message: str) -> str:
    """``problem``, then the server's ``message`` when it gave one."""
    return f"{problem}: {message}" if message else problem


def send_traces(
    ledger: Ledger,
    send: TraceSend,
    items: list[dict[str, Any]],
    *,
    add_events: EventAdder | None = None,
) -> dict[str, bool]:
    """Send the traces of ``items`` still to send; record traces (weighted by observations, and
    by scores when they travel as events). Returns the outcome per stored trace id."""
    from pytest_llmobs.exporters.otlp_spans import trace_spans

    by_trace = {i["trace"]["id"]: i for i in items}
    observations = {t: len(i["trace"]["observations"]) for t, i in by_trace.items()}
    scores = {t: len(i["trace"].get("scores") or []) for t, i in by_trace.items()}
    todo = ledger.todo("trace", "observations", list(by_trace), observations.__getitem__)
    report = ledger.report
    report.count(report.skipped, "traces", len(by_trace) - len(todo))
    if add_events is not None and ledger.pending_only:
        report.count(report.skipped, "scores", sum(scores[t] for t in by_trace if t not in todo))

    def traces() -> Iterator[TraceSpans]:
        for trace_id in todo:
            spans = trace_spans(send.run, by_trace[trace_id], send.options)
            report.truncated_fields += spans.truncated
            if add_events is not None:
                add_events(spans, by_trace[trace_id])
            salt_ids(spans, send.id_salt)
            yield spans

    send.send(traces())
    sent = {t: sent_id(send.id_salt, t) for t in todo}
    for trace_id in todo:
        weight = observations[trace_id]
        if send.outcome.get(sent[trace_id]) is True:
            ledger.done("trace", "observations", [trace_id], weight=weight)
            report.count(report.sent, "traces")
            if add_events is not None:
                report.count(report.sent, "scores", scores[trace_id])
        else:
            message = send.errors.get(sent[trace_id], f"trace {trace_id}: no answer")
            ledger.failed("trace", "observations", [trace_id], message, weight=weight)
            report.count(report.failed, "traces")
            if add_events is not None:
                report.count(report.failed, "scores", scores[trace_id])
    return {t: send.outcome.get(sent[t]) is True for t in todo}
