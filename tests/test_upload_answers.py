"""What an upload makes of the answers it gets, and what its error lines say: an OTLP collector
answering a plain-text ``OK``, the URL requested under a base URL with a path, a transport error
in words, the way out of a Langfuse server without the OTLP endpoint, and Ctrl-C during
``llmobs upload``."""

from __future__ import annotations

import argparse
import contextlib
import http.server
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from conftest import Runs
from fake_langfuse import FakeLangfuse
from phoenix_server import free_port

from pytest_llmobs.cli import main as llmobs
from pytest_llmobs.exporters.commands import interrupted_line
from pytest_llmobs.exporters.http_errors import transport_problem
from pytest_llmobs.exporters.http_options import HttpOptions

SUITE = "def test_a(llm, scorer):\n    llm.generate('hi')\n    scorer.score('x', 1)\n"
FAST = {"LLMOBS_UPLOAD_BACKOFF": "0.01", "LLMOBS_UPLOAD_MAX_ATTEMPTS": "2"}


@dataclass
class Answering:
    """A server answering every request with ``status``, ``content_type`` and ``body``; with
    ``hold``, it waits for that event before answering (``arrived`` is set meanwhile)."""

    status: int = 200
    content_type: str = "text/plain"
    body: bytes = b"OK"
    hold: threading.Event | None = None
    arrived: threading.Event = field(default_factory=threading.Event)
    paths: list[str] = field(default_factory=list)
    url: str = ""

    @contextlib.contextmanager
    def running(self) -> Iterator[Answering]:
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                server.paths.append(self.path)
                server.arrived.set()
                if server.hold is not None:
                    server.hold.wait(timeout=30)
                with contextlib.suppress(OSError):  # (a client gone after Ctrl-C)
                    self.send_response(server.status)
                    self.send_header("Content-Type", server.content_type)
                    self.send_header("Content-Length", str(len(server.body)))
                    self.end_headers()
                    self.wfile.write(server.body)

        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{httpd.server_address[1]}"
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            if self.hold is not None:
                self.hold.set()
            httpd.shutdown()
            httpd.server_close()
            thread.join(timeout=10)


@pytest.fixture
def stored(pytester: pytest.Pytester, runs: Runs, monkeypatch: pytest.MonkeyPatch) -> str:
    """A stored run of a one-test suite (a generation and a score); returns the store dir."""
    for key in list(os.environ):
        if key.startswith(("LANGFUSE_", "PHOENIX_", "OTEL_", "LLMOBS_UPLOAD_")):
            monkeypatch.delenv(key)
    for key, value in FAST.items():
        monkeypatch.setenv(key, value)
    pytester.makepyfile(test_suite=SUITE)
    pytester.runpytest().assert_outcomes(passed=1)
    return str(runs.directory / ".llmobs")


def upload(store: str, *args: str) -> int:
    return llmobs(["upload", *args, "--store", store])


@pytest.mark.parametrize(
    ("content_type", "body"), [("text/plain", b"OK"), ("text/plain; charset=utf-8", b"ok\n")]
)
def test_a_collector_answering_a_plain_text_ok_has_the_traces_delivered(
    stored: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    content_type: str,
    body: bytes,
) -> None:
    # (before: "HTTP 200 answer is not an OTLP answer (protobuf or JSON) (got text/plain: OK)",
    # and the traces stayed pending forever though the collector had them)
    with Answering(200, content_type, body).running() as collector:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url)
        assert upload(stored, "--to", "otlp") == 0
        assert "sent 1 traces, 2 observations, 1 scores" in capsys.readouterr().out
        assert upload(stored, "--pending", "--to", "otlp") == 0
    assert capsys.readouterr().out == "otlp: nothing pending\n"
    assert collector.paths == ["/v1/traces"]


def test_a_web_page_answering_otlp_is_still_an_error(
    stored: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    page = b"<html><body>Welcome</body></html>"
    with Answering(200, "text/plain", page).running() as server:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", server.url)
        assert upload(stored, "--to", "otlp") == 1
    assert (
        f"first error: POST {server.url}/v1/traces: HTTP 200 answer is not an OTLP answer "
        f"(protobuf or JSON) (got text/plain: {page.decode()})"
    ) in capsys.readouterr().out


@pytest.mark.parametrize(
    ("target", "variable", "prefix", "api_path"),
    [
        ("langfuse", "LANGFUSE_BASE_URL", "/langfuse", "/api/public/otel/v1/traces"),
        ("phoenix", "PHOENIX_COLLECTOR_ENDPOINT", "/phoenix", "/v1/traces"),
    ],
)
def test_an_error_line_names_the_url_requested_under_a_base_url_with_a_path(
    stored: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    target: str,
    variable: str,
    prefix: str,
    api_path: str,
) -> None:
    # (before: "POST http://127.0.0.1:PORT/api/public/otel/v1/traces", the base URL's path lost)
    monkeypatch.setenv("LANGFUSE_PUBLIC_KEY", "pk-lf-1")
    monkeypatch.setenv("LANGFUSE_SECRET_KEY", "sk-lf-1")
    with Answering(503, "application/json", b'{"message": "maintenance"}').running() as server:
        monkeypatch.setenv(variable, server.url + prefix)
        assert upload(stored, "--to", target) == 1
    assert server.paths[0] == prefix + api_path
    assert (
        f'first error: POST {server.url}{prefix}{api_path}: HTTP 503 {{"message": "maintenance"}} '
        "after 2 attempt(s)"
    ) in capsys.readouterr().out


@contextlib.contextmanager
def closing_server() -> Iterator[str]:
    """A server that reads each request and closes the connection without an answer."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)

    def serve() -> None:
        with contextlib.suppress(OSError):
            while True:
                connection, _ = listener.accept()
                _read_request(connection)  # all of it: unread bytes would make the close a reset
                connection.close()

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()


def _read_request(connection: socket.socket) -> None:
    """Read one HTTP request, its head and its ``Content-Length`` body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65536)
        if not chunk:
            return
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        (
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        ),
        0,
    )
    while len(body) < length:
        chunk = connection.recv(65536)
        if not chunk:
            return
        body += chunk


@pytest.mark.parametrize(
    ("server", "problem"),
    [
        ("closes", "server disconnected without sending a response (RemoteProtocolError)"),
        ("refuses", "connection refused (ConnectError)"),
    ],
)
def test_a_transport_error_is_said_in_words(
    stored: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    server: str,
    problem: str,
) -> None:
    # (before: "RemoteProtocolError after 2 attempt(s)", "ConnectError after 2 attempt(s)")
    with contextlib.ExitStack() as stack:
        url = (
            stack.enter_context(closing_server())
            if server == "closes"
            else f"http://127.0.0.1:{free_port()}"  # nothing listens there
        )
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", url)
        assert upload(stored, "--to", "otlp") == 1
    out = capsys.readouterr().out
    assert f"first error: POST {url}/v1/traces: {problem} after 2 attempt(s)" in out


def raised(exc: Exception, cause: BaseException | None = None) -> Exception:
    """``exc`` as raised from ``cause``, its ``__cause__`` set as ``raise ... from`` does."""
    try:
        raise exc from cause
    except Exception as caught:
        return caught


def test_transport_problems_in_words() -> None:
    options = HttpOptions(timeout=30.0, connect_timeout=10.0)
    gaierror = socket.gaierror(-2, "Name or service not known")
    certificate = ssl.SSLCertVerificationError(1, "certificate verify failed: self-signed")
    cases = {
        "no answer within 30 s (ReadTimeout)": httpx.ReadTimeout("timed out"),
        "no connection within 10 s (ConnectTimeout)": httpx.ConnectTimeout("handshake"),
        "host not found (name or service not known) (ConnectError)": raised(
            httpx.ConnectError("[Errno -2] Name or service not known"), gaierror
        ),
        "connection reset by the server (ReadError)": raised(
            httpx.ReadError("[Errno 104] Connection reset by peer"), ConnectionResetError(104, "")
        ),
        "TLS failed (certificate verify failed: self-signed) (ConnectError)": raised(
            httpx.ConnectError("certificate"), certificate
        ),
        "connection failed (ConnectError)": httpx.ConnectError(""),
    }
    for words, exc in cases.items():
        assert transport_problem(exc, options) == words


def test_a_langfuse_server_without_otlp_points_to_legacy(
    stored: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # (before: "HTTP 404 {"message": "Not Found"}" alone, and `--pending` could never succeed)
    with FakeLangfuse() as langfuse:
        for key, value in langfuse.env().items():
            monkeypatch.setenv(key, value)
        langfuse.fail("/api/public/otel", 404, times=None, body={"message": "Not Found"})
        assert upload(stored, "--to", "langfuse") == 1
        assert (
            f"first error: POST {langfuse.url}/api/public/otel/v1/traces: HTTP 404 "
            '{"message": "Not Found"}; this Langfuse server has no OTLP endpoint (an older '
            "self-hosted version?): send the traces with --legacy (`llmobs upload --pending "
            "--legacy`; pytest: --llm-langfuse-legacy)"
        ) in capsys.readouterr().out
        assert upload(stored, "--pending", "--legacy") == 0  # what the hint says works
        assert "sent 1 traces, 2 observations" in capsys.readouterr().out


def test_ctrl_c_during_llmobs_upload_says_how_to_resume_in_one_line(
    stored: str, runs: Runs, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # (before: a KeyboardInterrupt traceback of some 70 lines)
    run_id = runs.latest()["id"]
    with Answering(hold=threading.Event()).running() as collector:
        environ = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url}
        command = [sys.executable, "-m", "pytest_llmobs.cli", "upload", "--to", "otlp"]
        process = subprocess.Popen(
            [*command, "--store", stored],
            cwd=runs.directory,  # where the store is found by itself: no --store in the hint
            env=environ,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert collector.arrived.wait(timeout=60), "the upload sent nothing"
            process.send_signal(signal.SIGINT)  # while it waits for the answer
            out, err = process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert (out, err.splitlines(), process.returncode) == (
        "",
        [
            f"llmobs: upload of run {run_id} to otlp interrupted: what it delivered is recorded; "
            "`llmobs upload --pending --to otlp` sends the rest"
        ],
        130,
    )
    with Answering().running() as collector:  # what it says works: the run is pending
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url)
        assert upload(stored, "--pending", "--to", "otlp") == 0
    assert "sent 1 traces, 2 observations, 1 scores" in capsys.readouterr().out


def test_the_interrupted_line_names_what_resumes_each_target() -> None:
    targets = ["phoenix", "otlp", "langfuse"]
    once = argparse.Namespace(pending=False, legacy=True)
    assert interrupted_line(once, "R", targets, "--store s") == (
        "llmobs: upload of run R to phoenix interrupted: what it delivered is recorded; "
        "`llmobs upload --pending --to phoenix --store s` sends the rest; not started: "
        "`llmobs upload R --to otlp,langfuse --legacy --store s`"
    )
    pending = argparse.Namespace(pending=True, legacy=False)
    assert interrupted_line(pending, "R", targets[2:]).endswith(
        "`llmobs upload --pending` sends the rest"  # langfuse, the default target
    )
