"""A real OpenAI-compatible chat completions server on 127.0.0.1, in a thread, scripted per test.

It speaks ``POST /v1/chat/completions`` over real HTTP/1.1 (keep-alive), records every request
it gets, and answers from a queue of scripted replies, then from a responder (default: an echo
of the last user message with token usage)::

    from fake_openai import FakeOpenAI, answer, error, openai_env  # a fixture, as is fake_openai

    def test_retry(openai_env: FakeOpenAI) -> None:  # OPENAI_API_KEY, OPENAI_BASE_URL are set
        openai_env.queue(error(429, retry_after=2), answer("Paris", prompt_tokens=12))
        ...                                                # call the model
        assert [r.path for r in openai_env.requests] == ["/v1/chat/completions"] * 2

Replies: `answer` (200 with usage), `error` (any status; ``retry_after=`` sets ``Retry-After``),
`slow` (holds the response until `FakeOpenAI.release` or close, then sends another reply),
`malformed` (200 with a body that is not a chat completion), `trickle` (an answer sent a byte
at a time, a gateway that never stalls long enough for a read timeout) and `drop` (closes the
connection without answering). `closed_url` gives a base URL where nothing listens (connection
refused).
A request with ``"stream": true`` gets its `answer` as server-sent events, one chunk a word, as the
real API sends them (the usage chunk only with ``stream_options.include_usage``); `broken_stream`
sends some chunks and then an error event.
Nothing here sleeps: a held reply waits on an event, `wait_for_requests` on a condition (a
trickled one paces its bytes by the same event's timeout).
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import urlsplit

import pytest

__all__ = [
    "FAKE_API_KEY",
    "FakeOpenAI",
    "RecordedRequest",
    "Reply",
    "answer",
    "broken_stream",
    "closed_url",
    "drop",
    "error",
    "fake_openai",
    "malformed",
    "openai_env",
    "openai_sdk_loaded",
    "slow",
    "trickle",
]

FAKE_API_KEY = "sk-fake-LEAKCHECK-7f3a9c2e1b"
"""The key `openai_env` sets: recognisable, so a test can search outputs for it."""

_HOLD_LIMIT = 60.0
"""Longest a `slow` reply holds its response when nobody releases it (a safety net only)."""


@dataclass(frozen=True)
class Reply:
    """What the server does with one request (build it with `answer`, `error`, ...)."""

    kind: Literal["answer", "error", "malformed", "slow", "drop", "broken_stream", "trickle"]
    status: int = 200
    text: str = ""
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    model: str | None = None
    finish_reason: str = "stop"
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None
    then: Reply | None = None
    hold: threading.Event | None = None
    tool_calls: tuple[tuple[str, str], ...] = ()


def answer(
    text: str,
    *,
    prompt_tokens: int | None = None,
    completion_tokens: int | None = None,
    model: str | None = None,
    finish_reason: str = "stop",
    tool_calls: Sequence[tuple[str, str]] = (),
) -> Reply:
    """A 200 chat completion; token counts default to word counts, model to the requested one.
    ``tool_calls`` are (function name, JSON arguments) pairs the answer calls (ids ``call_<i>``)."""
    return Reply(
        "answer",
        text=text,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        model=model,
        finish_reason=finish_reason,
        tool_calls=tuple(tool_calls),
    )


def error(
    status: int,
    message: str | None = None,
    *,
    retry_after: float | str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Reply:
    """An error status with OpenAI's body ``{"error": {"message": ...}}``."""
    extra = dict(headers or {})
    if retry_after is not None:
        extra["Retry-After"] = str(retry_after)
    return Reply("error", status=status, text=message or f"fake error {status}", headers=extra)


def malformed(body: str = '{"choices": [ this is not json') -> Reply:
    """A 200 whose body is not a chat completion."""
    return Reply("malformed", body=body.encode("utf-8"))


def slow(then: Reply | None = None) -> Reply:
    """Hold the response until `FakeOpenAI.release` (or close), then send ``then``."""
    return Reply("slow", then=then, hold=threading.Event())


_TRICKLE_PACE = 0.02
"""Seconds between the bytes of a `trickle` reply: far below any read timeout a test sets."""


def trickle(text: str = "slowly") -> Reply:
    """A 200 answer of ``text`` sent one byte every `_TRICKLE_PACE` seconds (the rest at once on
    `FakeOpenAI.release`): each read gets a byte long before a read timeout, the whole answer
    takes seconds."""
    return Reply("trickle", text=text, hold=threading.Event())


def drop() -> Reply:
    """Close the connection without sending a response."""
    return Reply("drop")


def broken_stream(text: str = "partial", message: str = "the stream broke") -> Reply:
    """To a streaming request: the chunks of ``text``, then an error event with ``message``.
    To any other request: a 500 error with ``message``."""
    return Reply("broken_stream", text=text, status=500, body=message.encode("utf-8"))


@dataclass(frozen=True)
class RecordedRequest:
    """One request the server received."""

    method: str
    path: str
    headers: Mapping[str, str]
    """Lower-cased names."""
    body: bytes
    client: tuple[str, int] | None = None
    """The client's address and port: one per TCP connection."""

    @property
    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    @property
    def messages(self) -> list[dict[str, Any]]:
        data = self.json
        return list(data.get("messages", [])) if isinstance(data, dict) else []

    @property
    def params(self) -> dict[str, Any]:
        """The body without ``model`` and ``messages``: the call parameters."""
        data = self.json
        if not isinstance(data, dict):
            return {}
        return {k: v for k, v in data.items() if k not in ("model", "messages")}


def _words(text: str) -> int:
    return len(text.split())


def echo(request: RecordedRequest) -> Reply:
    """The default responder: ``echo: <last user message>``."""
    last = next(
        (str(m.get("content", "")) for m in reversed(request.messages) if m.get("role") == "user"),
        "",
    )
    return answer(f"echo: {last}")


def _completion(reply: Reply, request: RecordedRequest, count: int) -> dict[str, Any]:
    """The chat completion body answering ``request`` with ``reply``."""
    data = request.json if isinstance(request.json, dict) else {}
    prompt = sum(_words(str(m.get("content", ""))) for m in request.messages)
    completion = _words(reply.text) if reply.completion_tokens is None else reply.completion_tokens
    usage = {
        "prompt_tokens": prompt if reply.prompt_tokens is None else reply.prompt_tokens,
        "completion_tokens": completion,
    }
    usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    message: dict[str, Any] = {"role": "assistant", "content": reply.text}
    if reply.tool_calls:
        message["content"] = reply.text or None
        message["tool_calls"] = [
            {"id": f"call_{i}", "type": "function", "function": {"name": n, "arguments": a}}
            for i, (n, a) in enumerate(reply.tool_calls)
        ]
    return {
        "id": f"chatcmpl-fake-{count}",
        "object": "chat.completion",
        "created": 0,
        "model": reply.model or data.get("model") or "fake-model",
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": reply.finish_reason,
            }
        ],
        "usage": usage,
    }


def _stream_events(
    completion: dict[str, Any], reply: Reply, request: RecordedRequest
) -> list[bytes]:
    """``completion`` as server-sent events: a role chunk, a chunk a word, two chunks a tool
    call, a finish chunk, the usage chunk if ``stream_options.include_usage``, ``[DONE]``."""
    head = {k: completion[k] for k in ("id", "created", "model")}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return {**head, "object": "chat.completion.chunk", "choices": [choice]}

    def event(data: dict[str, Any]) -> bytes:
        return f"data: {json.dumps(data)}\n\n".encode()

    events = [event(chunk({"role": "assistant", "content": ""}))]
    events += [event(chunk({"content": word})) for word in re.findall(r"\S+\s*", reply.text)]
    for index, (name, arguments) in enumerate(reply.tool_calls):
        half = len(arguments) // 2
        function = {"name": name, "arguments": arguments[:half]}
        call = {"index": index, "id": f"call_{index}", "type": "function", "function": function}
        rest = {"index": index, "function": {"arguments": arguments[half:]}}
        events += [event(chunk({"tool_calls": [call]})), event(chunk({"tool_calls": [rest]}))]
    if reply.kind == "broken_stream":
        message = (reply.body or b"").decode("utf-8")
        return [*events, event({"error": {"message": message, "type": "fake_error"}})]
    events.append(event(chunk({}, reply.finish_reason)))
    options = request.json.get("stream_options") or {}
    if isinstance(options, dict) and options.get("include_usage"):
        usage = {**head, "object": "chat.completion.chunk", "choices": []}
        events.append(event({**usage, "usage": completion["usage"]}))
    return [*events, b"data: [DONE]\n\n"]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    # socketserver's default backlog of 5 drops connects when 20+ calls open at once; the
    # client then reconnects after a SYN retry (~1 s), which tests would read as slowness.
    request_queue_size = 128
    fake: FakeOpenAI


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as two writes
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        request = RecordedRequest(
            method=self.command,
            path=self.path,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            client=(str(self.client_address[0]), int(self.client_address[1])),
        )
        fake = self.server.fake
        reply = fake._record(request)
        if not urlsplit(self.path).path.rstrip("/").endswith("/chat/completions"):
            reply = error(404, f"no route {self.path}")
        try:
            self._send(reply, request)
        except OSError:  # the client gave up (timeout) and closed its end
            self.close_connection = True

    def _send(self, reply: Reply, request: RecordedRequest) -> None:
        if reply.kind == "slow":
            assert reply.hold is not None
            reply.hold.wait(_HOLD_LIMIT)
            reply = reply.then or echo(request)
        if reply.kind == "trickle":
            assert reply.hold is not None
            self._trickle(
                json.dumps(_completion(answer(reply.text), request, 0)).encode(), reply.hold
            )
            return
        if reply.kind == "drop":
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        if reply.kind == "malformed":
            self._write(200, reply.body or b"", {"Content-Type": "application/json"})
            return
        streaming = isinstance(request.json, dict) and request.json.get("stream") is True
        if reply.kind == "broken_stream" and not streaming:
            reply = error(500, (reply.body or b"").decode("utf-8"))
        if reply.kind == "error":
            payload: dict[str, Any] = {
                "error": {"message": reply.text, "type": "fake_error", "code": reply.status}
            }
            headers = {"Content-Type": "application/json", **reply.headers}
            self._write(reply.status, json.dumps(payload).encode(), headers)
            return
        completion = _completion(reply, request, self.server.fake.request_count)
        if streaming:
            events = _stream_events(completion, reply, request)
            headers = {"Content-Type": "text/event-stream", **reply.headers}
            self._write(200, b"".join(events), headers)
            return
        headers = {"Content-Type": "application/json", **reply.headers}
        self._write(200, json.dumps(completion).encode(), headers)

    def _trickle(self, body: bytes, released: threading.Event) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        for index in range(len(body)):
            if released.wait(_TRICKLE_PACE):
                self.wfile.write(body[index:])
                break
            self.wfile.write(body[index : index + 1])
            self.wfile.flush()
        self.wfile.flush()

    def _write(self, status: int, body: bytes, headers: Mapping[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()


class FakeOpenAI:
    """The server (a context manager; `fake_openai` is the fixture)."""

    def __init__(self) -> None:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.02},  # how soon `close` is noticed
            name="fake-openai",
            daemon=True,
        )
        self._changed = threading.Condition()
        self._queue: deque[Reply] = deque()
        self._requests: list[RecordedRequest] = []
        self._holds: list[threading.Event] = []
        self.responder: Callable[[RecordedRequest], Reply] = echo
        """Answers requests once the queue is empty."""

    # --- lifecycle ---

    def start(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def close(self) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- addresses ---

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``."""
        address, port = self._server.server_address[:2]
        return f"{address!s}:{port}"

    @property
    def url(self) -> str:
        """The base URL clients use: ``http://127.0.0.1:PORT/v1``."""
        return f"http://{self.host}/v1"

    # --- script ---

    def queue(self, *replies: Reply) -> FakeOpenAI:
        """Answer the next requests with ``replies``, in order."""
        with self._changed:
            self._queue.extend(replies)
        return self

    def respond_with(self, responder: Callable[[RecordedRequest], Reply]) -> FakeOpenAI:
        """Answer requests with ``responder(request)`` once the queue is empty."""
        self.responder = responder
        return self

    def release(self) -> None:
        """Let every held `slow` reply answer."""
        with self._changed:
            holds = list(self._holds)
        for hold in holds:
            hold.set()

    # --- what was received ---

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._changed:
            return list(self._requests)

    @property
    def request_count(self) -> int:
        with self._changed:
            return len(self._requests)

    def wait_for_requests(self, count: int, timeout: float = 10.0) -> list[RecordedRequest]:
        """Block until ``count`` requests arrived (AssertionError after ``timeout`` seconds)."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self._requests) >= count, timeout):
                raise AssertionError(
                    f"fake OpenAI server got {len(self._requests)} requests; expected {count}"
                )
            return list(self._requests)

    def _record(self, request: RecordedRequest) -> Reply:
        with self._changed:
            self._requests.append(request)
            reply = self._queue.popleft() if self._queue else None
            if reply is not None and reply.hold is not None:
                self._holds.append(reply.hold)
            self._changed.notify_all()
        return reply if reply is not None else self.responder(request)


def closed_url() -> str:
    """A base URL on 127.0.0.1 where nothing listens (connections are refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    """A started `FakeOpenAI`, closed after the test."""
    with FakeOpenAI() as server:
        yield server


@pytest.fixture(scope="module")
def openai_sdk_loaded() -> None:
    """Load the ``openai`` SDK's whole request path (client, HTTP transport, response and stream
    parsing, connection errors) in this process before a module's tests run.

    In-process ``pytester`` sessions drop the modules first imported inside them; an SDK module
    dropped that way and imported again leaves its exception classes out of step with the copies
    other modules kept, so a connection error would escape as an ``httpcore`` error.
    """
    import openai

    with FakeOpenAI() as server:
        client = openai.OpenAI(base_url=server.url, api_key=FAKE_API_KEY, max_retries=0)
        client.chat.completions.create(model="warm-up", messages=[])
        list(client.chat.completions.create(model="warm-up", messages=[], stream=True))
        client.base_url = closed_url()
        with contextlib.suppress(openai.APIConnectionError):
            client.chat.completions.create(model="warm-up", messages=[])
        client.close()


@pytest.fixture
def openai_env(fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> FakeOpenAI:
    """`fake_openai`, with ``OPENAI_BASE_URL`` pointing at it and ``OPENAI_API_KEY`` set to
    `FAKE_API_KEY` (``LLMOBS_PRICES`` unset)."""
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_API_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.url)
    monkeypatch.delenv("LLMOBS_PRICES", raising=False)
    return fake_openai
