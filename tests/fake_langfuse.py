"""A fake Langfuse server: real HTTP on 127.0.0.1 in a thread, checking every request against
Langfuse's published contract and keeping what it accepted for tests to read back.

Contract checks (``validate=True``):

- every REST request is validated with openapi-core against ``langfuse-openapi.yml`` read from
  ``$LLMOBS_CONTRACTS_DIR`` (never copied into this repository): path, method, query, Basic auth
  and body. The spec marks 64 optional fields as nullable in a form OpenAPI 3.0 validators ignore
  (``nullable`` beside ``$ref``), and its ``MapValue`` is a ``oneOf`` whose integer and number
  branches both match an integer; the loaded spec is adjusted for both (see `adjust_spec`), as
  the server accepts that traffic (NOTES.md);
- every OTLP body must parse as an ``ExportTraceServiceRequest`` (opentelemetry-proto), carry
  ``x-langfuse-ingestion-version: 4``, and its OTLP/JSON form must validate against the spec;
- the fake's own answers are validated against the spec too, so it cannot drift from it.

A request that breaks the contract is answered 400 and recorded in ``violations``; the
``fake_langfuse`` fixture (import ``fake_langfuse_fixture`` into a test module to use it) fails
the test if any was recorded. Faults are scripted per test:
`FakeLangfuse.fail` (any status, optionally with ``Retry-After``; a ``bytes`` body is sent as it
is, e.g. an HTML page answered 200 by a web server at a wrong URL), `delay` (client timeouts),
`max_body_bytes` (413), `reject_events` (207 with per-event errors) and `heal`.

Without ``LLMOBS_CONTRACTS_DIR`` the fixture skips, except under CI (``CI`` set), where it fails.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import functools
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest

CONTRACTS_ENV = "LLMOBS_CONTRACTS_DIR"
SPEC_FILE = "langfuse-openapi.yml"
OTEL_PATH = "/api/public/otel/v1/traces"
NULLABLE_REFS_IN_SPEC = 64
"""How many ``$ref`` + ``nullable`` fields the spec has (NOTES.md); a different count means the
spec changed and the adjustment needs a look."""


def contracts_dir() -> Path:
    """The contracts directory, or skip (fail under CI) when it is not configured."""
    value = os.environ.get(CONTRACTS_ENV)
    if value and (Path(value) / SPEC_FILE).is_file():
        return Path(value)
    reason = (
        f"{CONTRACTS_ENV} is not set to a directory holding {SPEC_FILE} (got {value!r}); "
        f"contract tests need it, e.g. {CONTRACTS_ENV}=../shared/contracts"
    )
    if os.environ.get("CI"):
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def adjust_spec(spec: dict[str, Any]) -> int:
    """Make the spec say what the server accepts: a ``$ref`` with ``nullable: true`` beside it
    becomes ``anyOf: [$ref, null]``, and ``MapValue``'s ``oneOf`` becomes ``anyOf``. Returns how
    many nullable references were rewritten."""
    rewritten = 0

    def walk(node: Any) -> None:
        nonlocal rewritten
        if isinstance(node, dict):
            if "$ref" in node and node.get("nullable") is True:
                ref = node.pop("$ref")
                del node["nullable"]
                node["anyOf"] = [{"$ref": ref}, {"nullable": True, "enum": [None]}]
                rewritten += 1
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(spec)
    map_value = spec["components"]["schemas"]["MapValue"]
    map_value["anyOf"] = map_value.pop("oneOf")
    return rewritten


@functools.lru_cache(maxsize=2)
def load_openapi(directory: str) -> Any:
    """The adjusted spec as an openapi-core ``OpenAPI`` (spec self-validation is off: the
    published file uses a few keywords OpenAPI 3.0 lacks, such as ``const``)."""
    import yaml
    from openapi_core import Config, OpenAPI

    with open(Path(directory) / SPEC_FILE, encoding="utf-8") as handle:
        spec = yaml.load(handle, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    count = adjust_spec(spec)
    assert count == NULLABLE_REFS_IN_SPEC, f"spec has {count} nullable $refs, expected 64"
    return OpenAPI.from_dict(spec, config=Config(spec_validator_cls=None))


def _now() -> str:
    return (
        dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


@dataclass
class Fault:
    """A scripted answer for requests whose path starts with ``path``."""

    path: str
    status: int | None = None
    """Answer with this status instead of handling the request (None: handle it after delay)."""
    times: int | None = 1
    """How many requests it applies to; None = until `FakeLangfuse.heal`."""
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    method: str | None = None


@dataclass
class RequestLog:
    method: str
    path: str
    status: int
    size: int
    events: int = 0
    spans: int = 0


@dataclass
class StoredSpan:
    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    start: int
    end: int
    attributes: dict[str, Any]
    status_code: int
    status_message: str
    resource: dict[str, Any]
    scope: str


class FakeLangfuse:
    """The server. Use as a context manager, or through the ``fake_langfuse`` fixture."""

    def __init__(
        self,
        *,
        public_key: str = "pk-lf-fake-public",
        secret_key: str = "sk-lf-fake-secret",
        validate: bool = True,
        spec_dir: Path | None = None,
        accept_legacy_events: bool = True,
    ) -> None:
        self.public_key = public_key
        self.secret_key = secret_key
        self.openapi = load_openapi(str(spec_dir or contracts_dir())) if validate else None
        self.accept_legacy_events = accept_legacy_events
        self.lock = threading.RLock()
        self.faults: list[Fault] = []
        self.max_body: int | None = None
        self.event_filter: Callable[[dict[str, Any]], tuple[int, str] | None] | None = None
        self.violations: list[str] = []
        self.requests: list[RequestLog] = []
        self.bodies: list[bytes] = []
        """Every request body as received (to search for what must never be sent)."""
        self.spans: dict[tuple[str, str], StoredSpan] = {}
        self.traces: dict[str, dict[str, Any]] = {}
        self.observations: dict[str, dict[str, Any]] = {}
        self.scores: dict[str, dict[str, Any]] = {}
        self.event_ids: set[str] = set()
        self.datasets: dict[str, dict[str, Any]] = {}
        self.dataset_items: dict[str, dict[str, Any]] = {}
        self.prompts: dict[str, list[dict[str, Any]]] = {}
        self.run_items: dict[tuple[str, str, str], dict[str, Any]] = {}
        self._last_spans = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ----------------------------------------------------------------------------

    def __enter__(self) -> FakeLangfuse:
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        assert self._server is not None and self._thread is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def env(self, **extra: str) -> dict[str, str]:
        """The environment variables that point an uploader here."""
        return {
            "LANGFUSE_PUBLIC_KEY": self.public_key,
            "LANGFUSE_SECRET_KEY": self.secret_key,
            "LANGFUSE_BASE_URL": self.url,
            **extra,
        }

    # --- scripting ----------------------------------------------------------------------------

    def fail(
        self,
        path: str = "/",
        status: int = 503,
        *,
        times: int | None = 1,
        retry_after: float | None = None,
        body: Any = None,
        method: str | None = None,
        content_type: str | None = None,
    ) -> None:
        headers = {} if retry_after is None else {"Retry-After": f"{retry_after:g}"}
        if content_type is not None:
            headers["Content-Type"] = content_type
        fault = Fault(path, status, times, 0.0, headers, body, method)
        with self.lock:
            self.faults.append(fault)

    def delay(self, path: str = "/", seconds: float = 1.0, *, times: int | None = 1) -> None:
        with self.lock:
            self.faults.append(Fault(path, None, times, seconds))

    def max_body_bytes(self, limit: int | None) -> None:
        """Answer 413 to any body over ``limit`` bytes."""
        self.max_body = limit

    def reject_events(self, check: Callable[[dict[str, Any]], tuple[int, str] | None]) -> None:
        """``check(event)`` → (status, message) puts that event in the 207 ``errors``."""
        self.event_filter = check

    def heal(self) -> None:
        with self.lock:
            self.faults.clear()
            self.max_body = None
            self.event_filter = None

    def _fault_for(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if path.startswith(fault.path) and fault.method in (None, method):
                    if fault.times is not None:
                        fault.times -= 1
                        if fault.times <= 0:
                            self.faults.remove(fault)
                    return fault
        return None

    # --- read back ----------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Everything stored, as comparable plain data (for idempotency checks)."""
        with self.lock:
            return copy.deepcopy(
                {
                    "spans": {k: vars(v) for k, v in self.spans.items()},
                    "traces": self.traces,
                    "observations": self.observations,
                    "scores": self.scores,
                    "datasets": {k: _strip_times(v) for k, v in self.datasets.items()},
                    "dataset_items": {k: _strip_times(v) for k, v in self.dataset_items.items()},
                    "prompts": {k: [_strip_times(p) for p in v] for k, v in self.prompts.items()},
                    "run_items": {k: _strip_times(v) for k, v in self.run_items.items()},
                }
            )

    def count(self, method: str, path_prefix: str) -> int:
        return sum(
            1 for r in self.requests if r.method == method and r.path.startswith(path_prefix)
        )

    # --- handling -----------------------------------------------------------------------------

    def handle(
        self, method: str, raw_path: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, dict[str, str], Any]:
        parts = urlsplit(raw_path)
        path, query = parts.path, dict(parse_qsl(parts.query))
        fault = self._fault_for(method, path)
        if fault is not None:
            if fault.delay:
                time.sleep(fault.delay)
            if fault.status is not None:
                return fault.status, dict(fault.headers), fault.body or {"message": "scripted"}
        if self.max_body is not None and len(body) > self.max_body:
            return 413, {}, {"message": f"body of {len(body)} bytes is over {self.max_body}"}
        expected = (
            "Basic " + base64.b64encode(f"{self.public_key}:{self.secret_key}".encode()).decode()
        )
        if headers.get("authorization") != expected:
            return 401, {}, {"message": "Invalid credentials"}
        if path == OTEL_PATH:
            return self._otel(headers, body)
        problem = self._validate(method, path, query, headers, body)
        if problem is not None:
            return 400, {}, {"message": problem}
        data = json.loads(body) if body else None
        if method == "POST" and path in POSTGRES_PATHS and _holds_nul(data):
            # Postgres (jsonb and text) refuses U+0000; the server answers a bare 500
            return (
                500,
                {},
                {"message": "Internal Server Error", "error": "An unknown error occurred"},
            )
        return self._route(method, path, query, data)

    def _violation(self, message: str) -> str:
        with self.lock:
            self.violations.append(message)
        return message

    def _validate(
        self,
        method: str,
        path: str,
        query: Mapping[str, str],
        headers: Mapping[str, str],
        body: bytes,
        content_type: str | None = None,
    ) -> str | None:
        if self.openapi is None:
            return None
        from openapi_core.testing import MockRequest

        request = MockRequest(
            "http://127.0.0.1",
            method.lower(),
            path,
            args=dict(query),
            headers=dict(headers),
            data=body,
            content_type=content_type or headers.get("content-type", ""),
        )
        try:
            self.openapi.validate_request(request)
        except Exception as exc:
            details = [
                str(e).split("\n", 1)[0] for e in getattr(exc.__cause__, "schema_errors", ())
            ]
            return self._violation(f"{method} {path}: {type(exc).__name__}: {exc} {details}"[:2000])
        return None

    def _check_response(self, method: str, path: str, status: int, body: Any) -> None:
        if self.openapi is None:
            return
        from openapi_core.testing import MockRequest, MockResponse

        request = MockRequest(
            "http://127.0.0.1",
            method.lower(),
            path,
            headers={"Authorization": "Basic eDp5"},
            data=b"{}",
        )
        data = b"" if body is None else json.dumps(body).encode()
        try:
            self.openapi.validate_response(request, MockResponse(data, status_code=status))
        except Exception as exc:
            self._violation(f"fake server answer to {method} {path} ({status}): {exc}"[:2000])

    def _otel(self, headers: Mapping[str, str], body: bytes) -> tuple[int, dict[str, str], Any]:
        from google.protobuf import json_format
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )

        from pytest_llmobs.exporters.otlp_spans import plain_attributes

        if headers.get("x-langfuse-ingestion-version") != "4":
            message = "x-langfuse-ingestion-version must be 4"
            return 400, {}, {"message": self._violation(f"POST {OTEL_PATH}: {message}")}
        if headers.get("content-type") != "application/x-protobuf":
            message = f"content-type {headers.get('content-type')!r}, sent protobuf expected"
            return 400, {}, {"message": self._violation(f"POST {OTEL_PATH}: {message}")}
        request = ExportTraceServiceRequest()
        try:
            request.ParseFromString(body)
        except Exception as exc:
            return 400, {}, {"message": self._violation(f"POST {OTEL_PATH}: not OTLP: {exc}")}
        as_json = otlp_json(json_format.MessageToDict(request, use_integers_for_enums=True))
        problem = self._validate(
            "POST", OTEL_PATH, {}, headers, json.dumps(as_json).encode(), "application/json"
        )
        if problem is not None:
            return 400, {}, {"message": problem}
        count = 0
        with self.lock:
            for resource_spans in request.resource_spans:
                resource = plain_attributes(resource_spans.resource.attributes)
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        count += 1
                        stored = StoredSpan(
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_id=span.parent_span_id.hex() or None,
                            name=span.name,
                            start=span.start_time_unix_nano,
                            end=span.end_time_unix_nano,
                            attributes=plain_attributes(span.attributes),
                            status_code=span.status.code,
                            status_message=span.status.message,
                            resource=resource,
                            scope=scope_spans.scope.name,
                        )
                        self.spans[(stored.trace_id, stored.span_id)] = stored
        self._last_spans = count
        self._check_response("POST", OTEL_PATH, 200, {})
        return 200, {}, {}

    def _route(
        self, method: str, path: str, query: Mapping[str, str], data: Any
    ) -> tuple[int, dict[str, str], Any]:
        if method == "POST" and path == "/api/public/ingestion":
            status, body = self._ingestion(data)
        elif method == "POST" and path == "/api/public/v2/datasets":
            status, body = self._dataset(data)
        elif method == "GET" and path.startswith("/api/public/v2/datasets/"):
            status, body = self._get_dataset(unquote(path.rsplit("/", 1)[1]))
        elif method == "POST" and path == "/api/public/dataset-items":
            status, body = self._dataset_item(data)
        elif method == "GET" and path == "/api/public/dataset-items":
            status, body = self._list_dataset_items(query)
        elif method == "GET" and path.startswith("/api/public/dataset-items/"):
            status, body = self._get_dataset_item(unquote(path.rsplit("/", 1)[1]))
        elif method == "POST" and path == "/api/public/dataset-run-items":
            status, body = self._run_item(data)
        elif method == "POST" and path == "/api/public/v2/prompts":
            status, body = self._create_prompt(data)
        elif method == "GET" and path.startswith("/api/public/v2/prompts/"):
            status, body = self._get_prompt(unquote(path.rsplit("/", 1)[1]), query)
        else:
            return 404, {}, {"message": self._violation(f"{method} {path}: not faked")}
        self._check_response(method, path, status, body)
        return status, {}, body

    def _ingestion(self, data: dict[str, Any]) -> tuple[int, Any]:
        successes, errors = [], []
        with self.lock:
            for event in data["batch"]:
                refusal = self.event_filter(event) if self.event_filter else None
                kind = event["type"]
                if refusal is None and kind != "score-create" and not self.accept_legacy_events:
                    refusal = (400, f"{kind} is not accepted by this server (events-only mode)")
                if refusal is not None:
                    errors.append({"id": event["id"], "status": refusal[0], "message": refusal[1]})
                    continue
                self.event_ids.add(event["id"])
                body = event["body"]
                if kind == "score-create":
                    self.scores[body["id"]] = body
                elif kind == "trace-create":
                    self.traces[body["id"]] = body
                else:
                    self.observations[body["id"]] = {"type": kind.split("-")[0], **body}
                successes.append({"id": event["id"], "status": 201})
        return 207, {"successes": successes, "errors": errors}

    def _dataset(self, data: dict[str, Any]) -> tuple[int, Any]:
        with self.lock:
            now = _now()
            existing = self.datasets.get(data["name"])
            dataset = {
                "id": existing["id"] if existing else f"ds-{len(self.datasets) + 1}",
                "name": data["name"],
                "description": data.get("description"),
                "metadata": data.get("metadata") or {},
                "inputSchema": None,
                "expectedOutputSchema": None,
                "projectId": "project-fake",
                "createdAt": existing["createdAt"] if existing else now,
                "updatedAt": now,
            }
            self.datasets[data["name"]] = dataset
        return 200, dataset

    def _get_dataset(self, name: str) -> tuple[int, Any]:
        with self.lock:
            dataset = copy.deepcopy(self.datasets.get(name))
        if dataset is None:
            return 404, {"message": f"dataset {name!r} not found"}
        return 200, dataset

    def _dataset_item(self, data: dict[str, Any]) -> tuple[int, Any]:
        with self.lock:
            dataset = self.datasets.get(data["datasetName"])
            if dataset is None:
                return 404, {"message": f"dataset {data['datasetName']!r} not found"}
            item_id = data.get("id") or f"item-{len(self.dataset_items) + 1}"
            existing = self.dataset_items.get(item_id)
            if existing is not None and existing["datasetName"] != data["datasetName"]:
                return 400, {"message": f"id {item_id!r} is used in another dataset"}
            now = _now()
            item = {
                "id": item_id,
                "status": data.get("status") or "ACTIVE",
                "input": data.get("input"),
                "expectedOutput": data.get("expectedOutput"),
                "metadata": data.get("metadata"),
                "sourceTraceId": data.get("sourceTraceId"),
                "sourceObservationId": data.get("sourceObservationId"),
                "datasetId": dataset["id"],
                "datasetName": data["datasetName"],
                "createdAt": existing["createdAt"] if existing else now,
                "updatedAt": now,
                "mediaReferences": [],
            }
            self.dataset_items[item_id] = item
        return 200, item

    def _list_dataset_items(self, query: Mapping[str, str]) -> tuple[int, Any]:
        """One page of the items (of ``datasetName``, if given), in the order they were made."""
        page, limit = int(query.get("page") or 1), int(query.get("limit") or 50)
        with self.lock:
            items = [
                copy.deepcopy(item)
                for item in self.dataset_items.values()
                if query.get("datasetName") in (None, item["datasetName"])
            ]
        meta = {
            "page": page,
            "limit": limit,
            "totalItems": len(items),
            "totalPages": -(-len(items) // limit),
        }
        return 200, {"data": items[(page - 1) * limit : page * limit], "meta": meta}

    def _get_dataset_item(self, item_id: str) -> tuple[int, Any]:
        with self.lock:
            item = copy.deepcopy(self.dataset_items.get(item_id))
        if item is None:
            return 404, {"message": f"dataset item {item_id!r} not found"}
        return 200, item

    def _run_item(self, data: dict[str, Any]) -> tuple[int, Any]:
        with self.lock:
            item = self.dataset_items.get(data["datasetItemId"])
            if item is None:
                return 404, {"message": f"dataset item {data['datasetItemId']!r} not found"}
            key = (data["runName"], data["datasetItemId"], data.get("traceId") or "")
            now = _now()
            run_item = {
                "id": f"dri-{len(self.run_items) + 1}",
                "datasetRunId": f"run-{data['runName']}",
                "datasetRunName": data["runName"],
                "datasetItemId": data["datasetItemId"],
                "traceId": data.get("traceId") or "",
                "observationId": data.get("observationId"),
                "createdAt": now,
                "updatedAt": now,
            }
            self.run_items.setdefault(key, run_item)
        return 200, self.run_items[key]

    def _create_prompt(self, data: dict[str, Any]) -> tuple[int, Any]:
        with self.lock:
            versions = self.prompts.setdefault(data["name"], [])
            labels = [label for label in data.get("labels") or [] if label != "latest"]
            for other in versions:
                other["labels"] = [
                    label for label in other["labels"] if label not in labels and label != "latest"
                ]
            prompt = {
                "name": data["name"],
                "version": len(versions) + 1,
                "type": data.get("type") or "text",
                "prompt": data["prompt"],
                "config": data.get("config") if data.get("config") is not None else {},
                "labels": [*labels, "latest"],
                "tags": list(data.get("tags") or []),
                "commitMessage": data.get("commitMessage"),
            }
            versions.append(prompt)
        return 200, prompt

    def _get_prompt(self, name: str, query: Mapping[str, str]) -> tuple[int, Any]:
        with self.lock:
            versions = self.prompts.get(name, [])
            if "version" in query:
                found = [p for p in versions if p["version"] == int(query["version"])]
            else:
                label = query.get("label", "production")
                found = [p for p in versions if label in p["labels"]]
        if not found:
            return 404, {"message": f"prompt {name!r} not found for {dict(query)}"}
        return 200, found[0]


POSTGRES_PATHS = frozenset(
    {
        "/api/public/v2/datasets",
        "/api/public/dataset-items",
        "/api/public/dataset-run-items",
        "/api/public/v2/prompts",
    }
)
"""Bodies the real server keeps in Postgres rather than ClickHouse."""


def _holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds_nul(v) for v in value)
    return False


def otlp_json(message: dict[str, Any]) -> dict[str, Any]:
    """protobuf's JSON mapping → OTLP/JSON: ids as hex, ``intValue`` as a number."""

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            out = {}
            for key, value in node.items():
                if key in ("traceId", "spanId", "parentSpanId") and isinstance(value, str):
                    out[key] = base64.b64decode(value).hex()
                elif key == "intValue" and isinstance(value, str):
                    out[key] = int(value)
                else:
                    out[key] = walk(value)
            return out
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    result: dict[str, Any] = walk(message)
    return result


def _strip_times(record: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in ("createdAt", "updatedAt")}


class _Handler(BaseHTTPRequestHandler):
    fake: FakeLangfuse
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes: without this, Nagle's algorithm and the
        # client's delayed ACK add ~40 ms to every answer on a kept-alive connection.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        fake = self.fake
        fake._last_spans = 0
        try:
            status, extra, payload = fake.handle(self.command, self.path, headers, body)
        except Exception as exc:  # a bug in the fake: make it loud
            fake._violation(f"fake server crashed on {self.command} {self.path}: {exc!r}")
            status, extra, payload = 500, {}, {"message": "fake server error"}
        if isinstance(payload, bytes):  # a scripted raw answer
            data = payload
        else:
            data = b"" if payload is None else json.dumps(payload).encode()
        events = 0
        if self.path.startswith("/api/public/ingestion") and body:
            try:
                events = len(json.loads(body).get("batch") or [])
            except ValueError:
                events = 0
        with fake.lock:
            fake.requests.append(
                RequestLog(self.command, self.path, status, len(body), events, fake._last_spans)
            )
            fake.bodies.append(body)
        try:
            self.send_response(status)
            for key, value in extra.items():
                self.send_header(key, value)
            if "Content-Type" not in extra:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout): nothing to answer

    do_GET = _serve
    do_POST = _serve


@pytest.fixture(name="fake_langfuse")
def fake_langfuse_fixture() -> Iterator[FakeLangfuse]:
    """A contract-validating fake Langfuse server; the test fails on any contract violation."""
    with FakeLangfuse(spec_dir=contracts_dir()) as server:
        yield server
        assert not server.violations, "contract violations:\n" + "\n".join(server.violations)
