"""Scores as Phoenix span annotations (``POST /v1/span_annotations``), on the span each judges.

Annotations go in batches; a batch Phoenix refuses as a whole (400 or 422: one entry it does not
accept) is split in halves and resent, so one bad score never holds back the others. A score
named like a name Phoenix reserves (``note``) is sent under another name
(`phoenix_rest.RESERVED_ANNOTATION_NAMES`) and the upload report says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pytest_llmobs.exporters import phoenix_rest as rest
from pytest_llmobs.exporters.batching import encode_json, halves
from pytest_llmobs.exporters.http import HttpError, HttpSender, PayloadTooLarge
from pytest_llmobs.exporters.otlp_send import sent_id
from pytest_llmobs.exporters.state import Ledger

ANNOTATIONS_PER_REQUEST = 100
SPLIT_STATUSES = frozenset({400, 422})
"""Statuses that refuse a batch for what one of its entries holds: split to find it."""


def send_annotations(
    ledger: Ledger, sender: HttpSender, items: Sequence[dict[str, Any]], id_salt: str | None
) -> None:
    """Every score of ``items`` whose trace was sent, as a span annotation identified by the
    score id (Phoenix upserts it) on the span as sent (its id derived with ``id_salt``); scores
    of traces not sent fail."""
    sent_traces = ledger.state.sent("trace")
    entries: dict[str, dict[str, Any]] = {}
    renamed: dict[str, str] = {}
    """Score id → the reserved name it had."""
    for item in items:
        trace = item["trace"]
        for score in trace.get("scores") or []:
            span_id = score.get("observation_id") or trace["observations"][0]["id"]
            if trace["id"] in sent_traces:
                sent_span = sent_id(id_salt, str(span_id))
                entries[str(score["id"])] = rest.span_annotation(score, sent_span)
                if str(score["name"]) in rest.RESERVED_ANNOTATION_NAMES:
                    renamed[str(score["id"])] = str(score["name"])
            else:
                message = f"score {score['id']}: its trace {trace['id']} was not sent"
                ledger.failed("score", "scores", [str(score["id"])], message)
    todo = ledger.todo("score", "scores", list(entries))
    for start in range(0, len(todo), ANNOTATIONS_PER_REQUEST):
        _post(ledger, sender, todo[start : start + ANNOTATIONS_PER_REQUEST], entries)
    _note_renamed(ledger, {k: renamed[k] for k in todo if k in renamed})


def _post(
    ledger: Ledger, sender: HttpSender, keys: list[str], entries: dict[str, dict[str, Any]]
) -> None:
    body = {"data": [entries[k] for k in keys]}
    try:
        sender.request(
            "POST", "/v1/span_annotations", json_body=encode_json(body).encode(), expect="json"
        )
    except HttpError as exc:
        splittable = isinstance(exc, PayloadTooLarge) or exc.status in SPLIT_STATUSES
        parts = halves(keys) if splittable else []
        for part in parts:
            _post(ledger, sender, part, entries)
        if not parts:
            ledger.failed("score", "scores", keys, str(exc))
        return
    ledger.done("score", "scores", keys)


def _note_renamed(ledger: Ledger, renamed: dict[str, str]) -> None:
    """Say in the report which scores were sent under another name than their own."""
    sent = ledger.state.sent("score")
    for reserved, name in rest.RESERVED_ANNOTATION_NAMES.items():
        count = sum(1 for k, old in renamed.items() if old == reserved and k in sent)
        if count:
            ledger.report.notes.append(
                f"{count} score(s) named {reserved!r} sent as span annotation {name!r} "
                f"(Phoenix reserves {reserved!r} for span notes)"
            )
