"""The sending steps of a Langfuse upload: datasets and their items, OTLP span batches,
ingestion event batches (scores, and traces in legacy mode) with their 207 answers, and legacy
``dataset-run-items``.

Each step records per object whether it reached the server; a batch the server finds too large
(413) is split in halves and resent, and a refused event counts as a failure of its object.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from pytest_llmobs.exporters import langfuse_payloads as payloads
from pytest_llmobs.exporters.batching import batches, encode_json, fit_json, halves, json_batch
from pytest_llmobs.exporters.http import HttpError, PayloadTooLarge
from pytest_llmobs.exporters.langfuse_inventory import ServerDataset, held_items
from pytest_llmobs.exporters.state import SENT

if TYPE_CHECKING:
    from pytest_llmobs.exporters.langfuse import Upload
    from pytest_llmobs.exporters.otlp_spans import SpanBatch, SpanOptions, SpanSource, TraceSpans

INGESTION = "/api/public/ingestion"
OTEL_TRACES = "/api/public/otel/v1/traces"
DATASET_RUN_ITEMS = "/api/public/dataset-run-items"
EVENT_STATUSES = 'a JSON object with "successes" and "errors" lists'


# --- datasets -----------------------------------------------------------------------------------


def datasets(upload: Upload) -> None:
    """Each dataset of the run, read from the server first when anything of it is to be sent
    (its items, or in OTLP mode a trace whose experiment id needs the server's ids)."""
    upload.items_todo = upload.todo("dataset_item", "dataset items", list(upload.inv.dataset_items))
    todo = upload.todo("dataset", "datasets", list(upload.inv.datasets))
    wanted = {*todo, *(upload.inv.dataset_items[k][0] for k in upload.items_todo)}
    if not upload.options.legacy:
        sent = upload.state.sent("trace") if upload.pending_only else set()
        traced = [i for i in upload.inv.items if i.get("dataset")]
        wanted.update(i["dataset"] for i in traced if i["trace"]["id"] not in sent)
    for name in upload.inv.datasets:
        remote = upload.state.remote_id("dataset", name)
        if remote is not None:
            upload.dataset_ids[name] = remote
        if name in wanted:
            _sync_dataset(upload, name, send=name in todo)


def _sync_dataset(upload: Upload, name: str, *, send: bool) -> None:
    """Read the dataset from the server; create or update it when ``send``, unless the server
    holds a later version of it: then it is left as it is (`dataset_items`)."""
    version = upload.inv.datasets[name]
    started = payloads.iso(upload.run.get("started_at"))
    try:
        answer = upload.sender.request(
            "GET",
            f"/api/public/v2/datasets/{quote(name, safe='')}",
            accept_statuses=[404],
            expect="json",
        )
        server = ServerDataset.from_answer(answer) if answer.status == 200 else None
        if server is not None:
            upload.dataset_ids[name] = server.id
            upload.project_id = server.project_id or upload.project_id
            if server.holds_later(version, started):
                upload.linked[name] = server
                if send:
                    upload.state.record("dataset", [name], SENT, remote_id=server.id)
                return
        if not send:
            return
        run_id = str(upload.run["id"])
        if server is not None:
            run_id, started = server.stamp(version, run_id, started)
        body = payloads.dataset_body(name, version, run_id=run_id, run_started_at=started)
        created = ServerDataset.from_answer(
            upload.sender.request(
                "POST",
                "/api/public/v2/datasets",
                json_body=encode_json(body).encode(),
                expect="json",
            )
        )
    except HttpError as exc:
        upload.dataset_ids.pop(name, None)
        upload.dataset_errors[name] = str(exc)
        if send:
            upload.failed("dataset", "datasets", [name], str(exc))
        return
    upload.dataset_ids[name] = created.id
    upload.project_id = created.project_id or upload.project_id
    upload.done("dataset", "datasets", [name], remote_id=created.id)


def dataset_items(upload: Upload) -> None:
    """The run's dataset items, upserted by their deterministic ids. Of a dataset the server
    holds a later version of, the items it holds are linked (recorded as on the server), not
    overwritten, and those it lacks are created (noted, with how many of each)."""
    settled: set[str] = set()
    notes = {name: _link_held(upload, name, settled) for name in upload.linked}
    created = dict.fromkeys(upload.linked, 0)
    for key in upload.items_todo:
        if key in settled:
            continue
        dataset, item_id, item, metadata = upload.inv.dataset_items[key]
        if dataset not in upload.dataset_ids:
            why = upload.dataset_errors.get(dataset, "it was not sent")
            message = f"dataset item {item_id!r} not sent: dataset {dataset!r}: {why}"
            upload.failed("dataset_item", "dataset items", [key], message)
            continue
        body = payloads.dataset_item_body(dataset, item_id, item, metadata)
        body, encoded, cut = fit_json(body)
        upload.report.truncated_fields += cut
        try:
            upload.sender.request(
                "POST", "/api/public/dataset-items", json_body=encoded.encode(), expect="json"
            )
        except HttpError as exc:
            upload.failed("dataset_item", "dataset items", [key], str(exc))
            continue
        upload.done("dataset_item", "dataset items", [key])
        created[dataset] = created.get(dataset, 0) + 1
    for name, note in notes.items():
        if note is not None:
            lacked = f"; {created[name]} item(s) it lacked, created" if created[name] else ""
            upload.report.notes.append(note + lacked)


def _link_held(upload: Upload, dataset: str, settled: set[str]) -> str | None:
    """Of the items to send of ``dataset`` (the server holds a later version of it), record
    those the server holds as sent, linked by id, and add them to ``settled``; return the note
    saying so. ``None`` when the server cannot say which it holds: then all of them fail."""
    keys = [k for k in upload.items_todo if upload.inv.dataset_items[k][0] == dataset]
    server = upload.linked[dataset]
    try:
        held = held_items(upload.sender, dataset, keys) if keys else set()
    except HttpError as exc:
        settled.update(keys)
        message = (
            f"dataset {dataset!r}: {len(keys)} item(s) not sent: which of them the server's "
            f"later version {server.version} holds could not be read: {exc}"
        )
        upload.failed("dataset_item", "dataset items", keys, message)
        return None
    linked = [k for k in keys if k in held]
    settled.update(linked)
    upload.state.record("dataset_item", linked, SENT)
    return (
        f"dataset {dataset!r}: the server holds version {server.version}, from a later run "
        f"({server.run_id or '?'}), not this run's {upload.inv.datasets[dataset]}: "
        f"{len(linked)} item(s) linked to it by id, not overwritten"
    )


# --- OTLP ---------------------------------------------------------------------------------------


def otlp_traces(upload: Upload) -> None:
    """Every ready trace as OTLP spans, with the experiment link on its root span."""
    from pytest_llmobs.exporters.otlp_spans import SpanOptions, span_batches, trace_spans

    ready = upload.ready_items("trace", "observations")

    def hook(source: SpanSource) -> dict[str, Any]:
        return experiment_attributes(upload, source.item, source.observation, source.is_root)

    options = SpanOptions(
        environment=upload.config.environment, release=upload.release, span_hook=hook
    )

    def traces() -> Iterator[TraceSpans]:
        for item in ready:
            spans = trace_spans(upload.run, item, options)
            upload.report.truncated_fields += spans.truncated
            yield spans

    outcome: dict[str, bool] = {}
    for batch in span_batches(traces()):
        _post_spans(upload, batch, options, outcome)
    upload.record_traces(
        {i["trace"]["id"]: len(i["trace"]["observations"]) for i in ready}, outcome
    )


def _post_spans(
    upload: Upload, batch: SpanBatch, options: SpanOptions, outcome: dict[str, bool]
) -> None:
    from pytest_llmobs.exporters.otlp_send import rejection
    from pytest_llmobs.exporters.otlp_spans import SpanBatch

    trace_ids = batch.trace_ids
    try:
        answer = upload.sender.request(
            "POST",
            OTEL_TRACES,
            content=batch.encode(upload.run, options),
            content_type="application/x-protobuf",
            headers={"x-langfuse-ingestion-version": "4"},
            expect="otlp",
        )
    except PayloadTooLarge as exc:
        parts = halves(batch.spans)
        if not parts:
            _mark(upload, trace_ids, str(exc), outcome)
        for part in parts:
            _post_spans(upload, SpanBatch(part), options, outcome)
        return
    except HttpError as exc:
        _mark(upload, trace_ids, str(exc), outcome)
        return
    rejected = rejection(answer)
    if rejected is not None:
        _mark(upload, trace_ids, upload.sender.scrub(f"{answer.where}: {rejected}"), outcome)
        return
    for trace_id in trace_ids:
        outcome.setdefault(trace_id, True)


def _mark(
    upload: Upload, keys: Iterator[str] | set[str], message: str, outcome: dict[str, bool]
) -> None:
    for key in keys:
        outcome[key] = False
        upload.errors.setdefault(key, message)


def experiment_attributes(
    upload: Upload, item: Mapping[str, Any], obs: Mapping[str, Any], is_root: bool
) -> dict[str, Any]:
    """The server's prompt version on generations; on the root span of a dataset item's trace,
    ``langfuse.experiment.*`` tying it to the item and to the run's experiment on that dataset
    (one per dataset and repeat). A test outside a dataset is in no experiment."""
    attrs: dict[str, Any] = {}
    name, version = obs.get("prompt_name"), obs.get("prompt_version")
    if name and version is not None:
        remote = upload.prompt_versions.get((str(name), int(version)))
        if remote is not None:
            attrs["langfuse.observation.prompt.version"] = remote
        else:  # a version not on the server (not in this store): no link, not a wrong one
            attrs["langfuse.observation.prompt.name"] = None
            attrs["langfuse.observation.prompt.version"] = None
    dataset = item.get("dataset")
    if not is_root or not dataset or item.get("item_id") is None:
        return attrs
    run = upload.run
    repeat = int(item.get("repeat") or 0)
    experiment_name = payloads.experiment_name(run, repeat, upload.inv.repeats)
    experiment_id = upload.experiment_id(dataset, experiment_name)
    if experiment_id is None:  # (such a trace waits: `Upload.ready_items`)
        return attrs
    attrs["langfuse.experiment.id"] = experiment_id
    attrs["langfuse.experiment.name"] = experiment_name
    attrs["langfuse.experiment.description"] = payloads.run_description(run)
    metadata: dict[str, Any] = {
        "run_id": run.get("id"),
        "model": run.get("model"),
        "repeat": repeat,
        "dataset": dataset,
        "dataset_version": item.get("dataset_version"),
    }
    attrs["langfuse.experiment.metadata"] = encode_json(metadata)
    attrs["langfuse.experiment.dataset.id"] = upload.dataset_ids[dataset]
    attrs["langfuse.experiment.item.id"] = payloads.dataset_item_id(dataset, str(item["item_id"]))
    attrs["langfuse.experiment.item.root_observation_id"] = str(obs["id"])
    attrs["langfuse.experiment.item.expected_output"] = encode_json(item.get("expected_output"))
    return attrs


# --- ingestion events ----------------------------------------------------------------------------


@dataclass
class Event:
    """One encoded ingestion event and the object (kind, key) it belongs to."""

    id: str
    type: str
    encoded: str
    size: int
    key: str


def encode_event(upload: Upload, event: dict[str, Any], key: str) -> Event:
    """Encode once (truncating an oversized field with a marker) and remember the size."""
    event, encoded, cut = fit_json(payloads.without_nul(event))
    upload.report.truncated_fields += cut
    return Event(event["id"], event["type"], encoded, len(encoded.encode()), key)


def send_events(upload: Upload, events: list[Event]) -> dict[str, bool]:
    """Post events in size-limited batches. Per object key: True only if every one of its
    events is in the 207 answer's ``successes``; False if any is in ``errors`` or went unsent."""
    outcome: dict[str, bool] = {}
    for batch in batches(events, lambda e: e.size):
        _post_events(upload, batch, outcome)
    return outcome


def _post_events(upload: Upload, batch: list[Event], outcome: dict[str, bool]) -> None:
    try:
        answer = upload.sender.request(
            "POST", INGESTION, json_body=json_batch([e.encoded for e in batch]), expect="json"
        )
        body = answer.json_object(EVENT_STATUSES)
        successes, errors = body.get("successes") or [], body.get("errors") or []
        if not isinstance(successes, list) or not isinstance(errors, list):
            raise answer.malformed(EVENT_STATUSES)
    except PayloadTooLarge as exc:
        parts = halves(batch)
        if not parts:
            _mark(upload, {e.key for e in batch}, str(exc), outcome)
        for part in parts:
            _post_events(upload, part, outcome)
        return
    except HttpError as exc:
        _mark(upload, {e.key for e in batch}, str(exc), outcome)
        return
    accepted = {str(s.get("id")) for s in successes if isinstance(s, Mapping)}
    refused = {str(e.get("id")): e for e in errors if isinstance(e, Mapping)}
    where = f"POST {upload.sender.host}{INGESTION}"
    for event in batch:
        if event.id in refused:
            err = refused[event.id]
            detail = err.get("message") or err.get("error") or ""
            message = (
                f"{where}: {event.type} {event.key} refused with status {err.get('status')}: "
                f"{detail if isinstance(detail, str) else encode_json(detail)}"[:400]
            )
            _mark(upload, {event.key}, message, outcome)
        elif event.id in accepted:
            outcome.setdefault(event.key, True)
        else:
            _mark(upload, {event.key}, f"{where}: no status for {event.type} {event.key}", outcome)


# --- legacy mode ---------------------------------------------------------------------------------


def legacy_traces(upload: Upload) -> None:
    """Traces and observations as ``trace-create`` / ``*-create`` ingestion events."""
    ready = upload.ready_items("trace", "observations")
    environment = upload.config.environment
    events: list[Event] = []
    counts: dict[str, int] = {}
    for item in ready:
        trace_id = item["trace"]["id"]
        counts[trace_id] = len(item["trace"]["observations"])
        raw = [
            payloads.legacy_trace_event(
                upload.run, item, environment=environment, release=upload.release
            )
        ]
        for obs in item["trace"]["observations"]:
            version = obs.get("prompt_version")
            if obs.get("prompt_name") and version is not None:
                version = upload.prompt_versions.get((obs["prompt_name"], int(version)))
            raw.append(
                payloads.legacy_observation_event(
                    obs, environment=environment, prompt_version=version
                )
            )
        events.extend(encode_event(upload, e, trace_id) for e in raw)
    upload.record_traces(counts, send_events(upload, events))


def dataset_run_items(upload: Upload) -> None:
    """Link each dataset item's trace to the run (per repeat) with ``dataset-run-items``."""
    ready = upload.ready_items("run_item", "run items", datasets_only=True)
    sent_traces = upload.state.sent("trace")
    for item in ready:
        trace_id = item["trace"]["id"]
        if trace_id not in sent_traces:
            upload.failed(
                "run_item", "run items", [trace_id], f"run item {trace_id}: its trace was not sent"
            )
            continue
        repeat = int(item.get("repeat") or 0)
        body = payloads.dataset_run_item_body(
            run_name=payloads.experiment_name(upload.run, repeat, upload.inv.repeats),
            description=payloads.run_description(upload.run),
            dataset_item=payloads.dataset_item_id(item["dataset"], str(item["item_id"])),
            trace_id=trace_id,
            root_observation_id=item["trace"]["observations"][0]["id"],
            metadata={"run_id": upload.run.get("id"), "model": upload.run.get("model")},
        )
        try:
            upload.sender.request(
                "POST", DATASET_RUN_ITEMS, json_body=encode_json(body).encode(), expect="json"
            )
        except HttpError as exc:
            upload.failed("run_item", "run items", [trace_id], str(exc))
            continue
        upload.done("run_item", "run items", [trace_id])
