"""Request bodies for Langfuse's REST API, built from stored runs (no I/O here).

Ids are deterministic so every upload of a run sends the same objects: score ids, trace and span
ids come from the run; dataset item ids derive from dataset name + item id; ingestion event ids
derive from the event type and the entity id; experiment ids as Langfuse derives them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

MAX_ITEM_ID = 255
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def iso(timestamp: float | None) -> str | None:
    """Unix seconds → ISO 8601 UTC with microseconds (``2026-11-27T20:44:33.123456Z``)."""
    if timestamp is None:
        return None
    when = dt.datetime.fromtimestamp(float(timestamp), tz=dt.timezone.utc)
    return when.isoformat(timespec="microseconds").replace("+00:00", "Z")


def _digest(*parts: object) -> str:
    return hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()


def event_id(event_type: str, entity_id: str) -> str:
    """A UUID-shaped id unique per (event type, entity) and the same on every upload."""
    h = _digest(event_type, entity_id)[:32]
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) % 4]}{h[17:20]}-{h[20:32]}"


def dataset_item_id(dataset: str, item_id: str) -> str:
    """Langfuse dataset item ids are unique per project: readable prefix + hash, <= 255 chars."""
    readable = _UNSAFE.sub("-", f"{dataset}-{item_id}").strip("-")[:200]
    return f"{readable}-{_digest(dataset, item_id)[:16]}"


def experiment_name(run: Mapping[str, Any], repeat: int, repeats: bool) -> str:
    """The experiment (dataset run) name of one repeat index: the run's name.

    Langfuse shows one result per dataset item and experiment, so when the run repeats items each
    repeat index becomes its own experiment, named ``<run name> [repeat k]``.
    """
    name = str(run.get("name") or run["id"])
    return f"{name} [repeat {repeat}]" if repeats else name


def run_description(run: Mapping[str, Any]) -> str:
    """The experiment's description: the run and its model."""
    return f"pytest-llmobs run {run.get('id')} (model {run.get('model') or '-'})"


def stable_experiment_id(project_id: str, dataset_id: str, run_name: str) -> str:
    """The id Langfuse gives the experiment ``run_name`` on a dataset: the first 16 hex digits
    of SHA-256 over ``JSON.stringify(["langfuse-experiment-v1", projectId, datasetId, runName])``,
    as the server and its SDKs derive it (runs of one name on one dataset are one experiment)."""
    seed = json.dumps(
        ["langfuse-experiment-v1", project_id, dataset_id, run_name],
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(seed.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def score_value(score: Mapping[str, Any]) -> float | int | str:
    """BOOLEAN as 1/0, CATEGORICAL as a string, NUMERIC as the number."""
    value = score["value"]
    kind = score.get("data_type")
    if kind == "BOOLEAN":
        return 1 if value else 0
    if kind == "CATEGORICAL":
        return str(value)
    return value  # type: ignore[no-any-return]


def score_event(score: Mapping[str, Any], *, environment: str | None) -> dict[str, Any]:
    """A ``score-create`` ingestion event carrying the score's own id (the upsert key)."""
    body: dict[str, Any] = {
        "id": score["id"],
        "traceId": score["trace_id"],
        "name": score["name"],
        "value": score_value(score),
        "dataType": score.get("data_type") or "NUMERIC",
    }
    if score.get("observation_id"):
        body["observationId"] = score["observation_id"]
    if score.get("comment"):
        body["comment"] = str(score["comment"])
    metadata = dict(score.get("metadata") or {})
    if score.get("source"):
        metadata.setdefault("source", score["source"])
    if metadata:
        body["metadata"] = metadata
    if environment:
        body["environment"] = environment
    return {
        "id": event_id("score-create", score["id"]),
        "timestamp": iso(score.get("timestamp")) or iso(0),
        "type": "score-create",
        "body": body,
    }


def without_nul(value: Any) -> Any:
    """``value`` with every U+0000 in its texts (keys too) replaced by U+FFFD.

    Langfuse keeps dataset items, datasets, prompts and (on servers without OTLP) traces in
    Postgres, whose ``jsonb`` and text columns cannot hold U+0000: a body holding one is refused
    with a bare HTTP 500, which reads as an outage and keeps the whole upload pending.
    """
    kind = type(value)
    if kind is str:
        return value.replace("\x00", "\ufffd") if "\x00" in value else value
    if kind is dict:
        return {without_nul(k): without_nul(v) for k, v in value.items()}
    if kind is list or kind is tuple:
        return [without_nul(v) for v in value]
    return value


def dataset_body(
    name: str, version: str | None, *, run_id: str | None, run_started_at: str | None
) -> dict[str, Any]:
    """``POST /api/public/v2/datasets``; its metadata says which content version the items
    hold and the run (id, start time) they come from, so that an older run sent later does not
    replace them (`langfuse_inventory.ServerDataset`)."""
    metadata = {
        "source": "pytest-llmobs",
        "version": version,
        "run_id": run_id,
        "run_started_at": run_started_at,
    }
    body = {"name": name, "description": "Uploaded by pytest-llmobs", "metadata": metadata}
    return without_nul(body)  # type: ignore[no-any-return]


def dataset_item_body(
    dataset: str, item_id: str, item: Mapping[str, Any], metadata: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "datasetName": dataset,
        "id": dataset_item_id(dataset, item_id),
        "input": item.get("input"),
        "expectedOutput": item.get("expected_output"),
    }
    if metadata:
        body["metadata"] = metadata
    return without_nul(body)  # type: ignore[no-any-return]


def prompt_body(stored: Mapping[str, Any]) -> dict[str, Any]:
    """``POST /api/public/v2/prompts`` for a stored version (text or chat shape).

    Without the local labels: a label on the server is what applications fetch (``production``
    by default), and an upload of test results must not move it to the version under test.
    The server puts ``latest`` on the version it creates by itself."""
    body: dict[str, Any] = {
        "name": stored["name"],
        "type": stored.get("type") or "text",
        "prompt": stored["prompt"],
        "config": stored.get("config") or {},
        "commitMessage": (
            f"pytest-llmobs: local version {stored['version']} ({stored.get('hash', '')})"
        ),
    }
    if body["type"] == "chat":
        body["prompt"] = [
            {"role": str(m["role"]), "content": str(m["content"])} for m in stored["prompt"]
        ]
    return without_nul(body)  # type: ignore[no-any-return]


_COMMIT_MESSAGE = re.compile(r"pytest-llmobs: local version \d+ \(([0-9a-f]{1,64})\)")


def commit_hash(message: Any) -> str | None:
    """The local content hash named by a commit message `prompt_body` wrote, else ``None``."""
    found = _COMMIT_MESSAGE.fullmatch(message) if isinstance(message, str) else None
    return found.group(1) if found else None


def same_prompt(server: Any, stored: Mapping[str, Any]) -> bool:
    """Whether a server's prompt version has the stored version's type, template and config
    (as uploaded: see `without_nul`)."""
    if not isinstance(server, Mapping) or server.get("type") != (stored.get("type") or "text"):
        return False
    remote, local = server.get("prompt"), without_nul(stored.get("prompt"))
    if isinstance(remote, list) and isinstance(local, list):
        remote = [(m.get("role"), m.get("content")) for m in remote if isinstance(m, Mapping)]
        local = [(m.get("role"), m.get("content")) for m in local]
    config = without_nul(stored.get("config") or {})
    return bool(remote == local and (server.get("config") or {}) == config)


def _map_value(value: Any) -> Any:
    """A model parameter as the spec's MapValue (scalar or list of strings), else JSON text."""
    import json

    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def legacy_trace_event(
    run: Mapping[str, Any],
    item: Mapping[str, Any],
    *,
    environment: str | None,
    release: str | None,
) -> dict[str, Any]:
    """``trace-create`` for an older server (no OTLP endpoint)."""
    trace = item["trace"]
    root = (trace.get("observations") or [{}])[0]
    metadata = dict(trace.get("metadata") or {})
    metadata["llmobs"] = {
        "run_id": run.get("id"),
        "run_name": run.get("name"),
        "node_id": item.get("node_id"),
        "outcome": item.get("outcome"),
        "repeat": item.get("repeat", 0),
    }
    body: dict[str, Any] = {
        "id": trace["id"],
        "timestamp": iso(trace.get("start_time")),
        "name": trace.get("name"),
        "input": root.get("input"),
        "output": root.get("output"),
        "metadata": metadata,
        "tags": list(trace.get("tags") or []),
    }
    for key, value in (("userId", trace.get("user_id")), ("sessionId", trace.get("session_id"))):
        if value:
            body[key] = value
    if environment:
        body["environment"] = environment
    if release:
        body["release"] = release
    return {
        "id": event_id("trace-create", trace["id"]),
        "timestamp": iso(trace.get("start_time")),
        "type": "trace-create",
        "body": body,
    }


def legacy_observation_event(
    obs: Mapping[str, Any],
    *,
    environment: str | None,
    prompt_version: int | None,
) -> dict[str, Any]:
    """``span-create`` / ``generation-create`` / ``event-create`` for one observation."""
    kind = obs.get("type") or "span"
    body: dict[str, Any] = {
        "id": obs["id"],
        "traceId": obs["trace_id"],
        "name": obs.get("name"),
        "startTime": iso(obs.get("start_time")),
        "input": obs.get("input"),
        "output": obs.get("output"),
        "metadata": obs.get("metadata") or None,
        "level": obs.get("level") or "DEFAULT",
    }
    if obs.get("parent_id"):
        body["parentObservationId"] = obs["parent_id"]
    if obs.get("status_message"):
        body["statusMessage"] = str(obs["status_message"])
    if kind != "event":
        body["endTime"] = iso(obs.get("end_time") or obs.get("start_time"))
    if environment:
        body["environment"] = environment
    if kind == "generation":
        if obs.get("model"):
            body["model"] = obs["model"]
        if obs.get("model_parameters"):
            body["modelParameters"] = {
                str(k): _map_value(v) for k, v in obs["model_parameters"].items()
            }
        if obs.get("usage"):
            body["usageDetails"] = {
                str(k): int(v) for k, v in obs["usage"].items() if isinstance(v, (int, float))
            }
        if obs.get("cost") is not None:
            body["costDetails"] = {"total": float(obs["cost"])}
        if obs.get("prompt_name") and prompt_version is not None:
            body["promptName"] = obs["prompt_name"]
            body["promptVersion"] = prompt_version
    event_type = f"{kind}-create" if kind in ("span", "generation", "event") else "span-create"
    return {
        "id": event_id(event_type, obs["id"]),
        "timestamp": iso(obs.get("start_time")),
        "type": event_type,
        "body": body,
    }


def dataset_run_item_body(
    *,
    run_name: str,
    description: str,
    dataset_item: str,
    trace_id: str,
    root_observation_id: str | None,
    metadata: Mapping[str, Any],
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "runName": run_name,
        "runDescription": description,
        "metadata": dict(metadata),
        "datasetItemId": dataset_item,
        "traceId": trace_id,
    }
    if root_observation_id:
        body["observationId"] = root_observation_id
    return body
