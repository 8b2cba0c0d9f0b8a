"""A real Arize Phoenix server for the export tests, and a proxy in front of it that can fail.

The server comes from its own virtualenv (Phoenix pins far more than this project): env
``LLMOBS_PHOENIX_BIN`` is the path to that venv's ``phoenix`` executable (``.ci/run`` sets it).
Without it the tests marked ``phoenix`` skip, except under CI (``CI`` set), where they fail.

One server serves the whole test session: ``phoenix serve`` on 127.0.0.1 with free HTTP and gRPC
ports and a temporary working directory (SQLite); it is stopped when the session ends. Phoenix
ingests spans and annotations asynchronously, so readers poll with `PhoenixServer.wait_for` (a
bounded loop on a condition) before comparing.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
import pytest

BIN_ENV = "LLMOBS_PHOENIX_BIN"
START_TIMEOUT = 120.0
"""Seconds to wait for the server to answer (it starts in about 8-20 s, migrations included)."""
T = TypeVar("T")


def phoenix_binary() -> str:
    """The ``phoenix`` executable, or skip (fail under CI) when it is not configured."""
    configured = os.environ.get(BIN_ENV, "")
    path = shutil.which(configured) if configured else None
    if path is None:
        reason = (
            f"{BIN_ENV} is not set to a phoenix executable ({configured!r}): install Phoenix in "
            f"its own venv (python3 -m venv /work/phoenix-venv && /work/phoenix-venv/bin/pip "
            f"install arize-phoenix) and export {BIN_ENV}=/work/phoenix-venv/bin/phoenix"
        )
        if os.environ.get("CI"):
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(
    condition: Callable[[], T | None], *, what: str, timeout: float = 30.0, every: float = 0.1
) -> T:
    """Poll ``condition`` until it returns something truthy (returned), at most ``timeout``
    seconds; then fail saying what was awaited."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


@dataclass
class PhoenixServer:
    """A running ``phoenix serve`` and a small reader of its REST API."""

    url: str
    grpc_port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def start(
        cls, binary: str, workdir: Path, *, env: dict[str, str] | None = None
    ) -> PhoenixServer:
        port, grpc_port = free_port(), free_port()
        environment = {k: v for k, v in os.environ.items() if not k.startswith("PHOENIX_")}
        environment.update(
            PHOENIX_HOST="127.0.0.1",
            PHOENIX_PORT=str(port),
            PHOENIX_GRPC_PORT=str(grpc_port),
            PHOENIX_WORKING_DIR=str(workdir),
            PHOENIX_TELEMETRY_ENABLED="false",
            **(env or {}),
        )
        workdir.mkdir(parents=True, exist_ok=True)
        log_path = workdir / "phoenix.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [binary, "serve"], env=environment, stdout=log, stderr=subprocess.STDOUT
            )
        server = cls(f"http://127.0.0.1:{port}", grpc_port, process, log_path)
        try:
            wait_for(server.ready, what=f"Phoenix at {server.url}", timeout=START_TIMEOUT)
        except BaseException:
            server.stop()
            raise
        return server

    def ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(
                f"phoenix serve exited with {self.process.returncode}:\n{self.log_tail()}"
            )
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1.0).status_code == 200
        except httpx.TransportError:
            return False

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def env(self) -> dict[str, str]:
        return {"PHOENIX_COLLECTOR_ENDPOINT": self.url}

    # --- reading back -------------------------------------------------------------------------

    def get(self, path: str, **params: Any) -> Any:
        answer = httpx.get(f"{self.url}{path}", params=params, headers=self.headers, timeout=30)
        assert answer.status_code == 200, f"GET {path}: {answer.status_code} {answer.text[:300]}"
        return answer.json()

    def pages(self, path: str, **params: Any) -> list[dict[str, Any]]:
        """Every ``data`` entry of a cursor-paginated list."""
        entries: list[dict[str, Any]] = []
        cursor = None
        while True:
            body = self.get(path, **params, **({"cursor": cursor} if cursor else {}))
            entries.extend(body["data"])
            cursor = body.get("next_cursor")
            if not cursor:
                return entries

    def has_project(self, project: str) -> bool:
        """Whether the project exists (Phoenix creates it with the first span it ingests)."""
        path = f"{self.url}/v1/projects/{quote(project, safe='')}"
        return httpx.get(path, headers=self.headers, timeout=30).status_code == 200

    def spans(self, project: str) -> list[dict[str, Any]]:
        """The project's spans (none while the project does not exist yet)."""
        if not self.has_project(project):
            return []
        return self.pages(f"/v1/projects/{quote(project, safe='')}/spans", limit=1000)

    def span_annotations(self, project: str, span_ids: list[str]) -> list[dict[str, Any]]:
        """The annotations of ``span_ids``; none while Phoenix has ingested none of the spans
        (it ingests asynchronously, and answers 404 for span ids it does not know yet)."""
        if not self.has_project(project):
            return []
        path = f"/v1/projects/{quote(project, safe='')}/span_annotations"
        first = httpx.get(
            f"{self.url}{path}",
            params={"span_ids": span_ids, "limit": 1},
            headers=self.headers,
            timeout=30,
        )
        if first.status_code == 404 and "span_ids exist" in first.text:
            return []
        return self.pages(path, span_ids=span_ids, limit=1000)

    def dataset(self, name: str) -> dict[str, Any]:
        (dataset,) = self.get("/v1/datasets", name=name)["data"]
        return dict(dataset)

    def examples(self, dataset_id: str, version_id: str | None = None) -> list[dict[str, Any]]:
        params = {"version_id": version_id} if version_id else {}
        return list(self.get(f"/v1/datasets/{dataset_id}/examples", **params)["data"]["examples"])

    def experiments(self, dataset_id: str) -> list[dict[str, Any]]:
        return self.pages(f"/v1/datasets/{dataset_id}/experiments")

    def experiment_runs(self, experiment_id: str) -> list[dict[str, Any]]:
        return list(self.get(f"/v1/experiments/{experiment_id}/runs")["data"])

    def experiment_results(self, experiment_id: str) -> list[dict[str, Any]]:
        """Runs with their evaluations (``annotations``), from the experiment's JSON download."""
        answer = httpx.get(f"{self.url}/v1/experiments/{experiment_id}/json", timeout=30)
        assert answer.status_code == 200, answer.text[:300]
        return list(json.loads(answer.text))


PHOENIX_KEY = pytest.StashKey[PhoenixServer]()


@pytest.fixture(name="phoenix_server")
def phoenix_server_fixture(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> PhoenixServer:
    """The session's Phoenix server (started on first use, stopped when the session ends)."""
    config = request.config
    server = config.stash.get(PHOENIX_KEY, None)
    if server is None or server.process.poll() is not None:
        binary = phoenix_binary()
        server = PhoenixServer.start(binary, tmp_path_factory.mktemp("phoenix"))
        config.add_cleanup(server.stop)
        config.stash[PHOENIX_KEY] = server
    return server


# --- a proxy that fails on demand ----------------------------------------------------------------


@dataclass
class FailingProxy:
    """Forwards to ``target``, except requests whose path starts with a prefix in ``failing``:
    those get ``status`` (an outage, one endpoint refusing, or a 200 that is no API answer) with
    the text ``proxy says no``, or with ``echo`` a JSON error repeating the request's
    ``Authorization`` header, as some servers do."""

    target: str
    failing: dict[str, int] = field(default_factory=dict)
    seen: list[tuple[str, str, int]] = field(default_factory=list)
    url: str = ""
    echo: bool = False

    def fail(self, prefix: str = "/", status: int = 503, *, echo: bool = False) -> None:
        self.failing[prefix] = status
        self.echo = echo

    def heal(self) -> None:
        self.failing.clear()

    @contextlib.contextmanager
    def running(self) -> Iterator[FailingProxy]:
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                status = next(
                    (s for p, s in proxy.failing.items() if self.path.startswith(p)), None
                )
                if status is None:
                    skip = {"host", "content-length", "connection", "accept-encoding"}
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in skip}
                    answer = httpx.request(
                        self.command,
                        proxy.target + self.path,
                        content=body,
                        headers=headers,
                        timeout=30,
                    )
                    status, content = answer.status_code, answer.content
                    content_type = answer.headers.get("content-type", "application/json")
                elif proxy.echo:
                    auth = self.headers.get("Authorization", "")
                    message = {"message": f"invalid credentials (header {auth})"}
                    content, content_type = json.dumps(message).encode(), "application/json"
                else:
                    content, content_type = b"proxy says no", "text/plain"
                proxy.seen.append((self.command, self.path.split("?")[0], status))
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

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
