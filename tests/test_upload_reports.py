"""What upload reports say, for every target: the retry command (target and store named when
``llmobs`` would not use them by itself), the notes on a run pending at another server (said
after the upload, as it turned out), redirects, and ``--to`` given more than once.

A small local HTTP server stands in for every target (it answers 200, 413 over a size, or a
redirect); a port where nothing listens stands for a server that is down. An exporter that
crashes midway says what it sent before.
"""

from __future__ import annotations

import contextlib
import http.server
import os
import shlex
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from textwrap import dedent
from typing import Any

import httpcore  # noqa: F401  (one copy for all in-process pytester runs; httpx imports it lazily)
import pytest
from conftest import Runs

# Loaded here, every exporter module outlives the in-process sessions, which drop what they
# imported: a module imported again after one would meet another copy of the errors it catches.
import pytest_llmobs.exporters.langfuse
import pytest_llmobs.exporters.otlp_spans
import pytest_llmobs.exporters.phoenix
import pytest_llmobs.locate  # noqa: F401
from pytest_llmobs.cli import main as llmobs
from pytest_llmobs.exporters import ExporterOptions, ExportReport, create_exporter, reports_made
from pytest_llmobs.exporters.commands import given_targets, runs_pending_elsewhere, store_option

SUITE = """
    def test_small(llm, scorer):
        llm.generate("hi")
        scorer.score("s", 1.0)


    def test_big(llm):
        llm.generate("x" * 20000)
"""
ENDPOINTS = {
    "otlp": "OTEL_EXPORTER_OTLP_ENDPOINT",
    "phoenix": "PHOENIX_COLLECTOR_ENDPOINT",
    "langfuse": "LANGFUSE_BASE_URL",
}


@dataclass
class Server:
    """Answers every request: ``redirect_to`` + the path with a 308, 413 for a body over
    ``max_bytes``, else 200 with no body (an OTLP collector's accept)."""

    max_bytes: int | None = None
    redirect_to: str | None = None
    requests: list[tuple[str, str, int]] = field(default_factory=list)
    url: str = ""

    @contextlib.contextmanager
    def running(self) -> Iterator[Server]:
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _answer(self) -> None:
                size = len(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                server.requests.append((self.command, self.path, size))
                if server.redirect_to is not None:
                    self.send_response(308)
                    self.send_header("Location", server.redirect_to + self.path)
                elif server.max_bytes is not None and size > server.max_bytes:
                    self.send_response(413)
                else:
                    self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = do_PUT = _answer

        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{httpd.server_address[1]}"
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            httpd.shutdown()
            httpd.server_close()


def dead_url() -> str:
    """A URL where nothing listens (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture
def suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """Two tests (one with a big input), and an environment where only what a test sets is
    configured: one attempt per request, no waiting."""
    pytester.makepyfile(test_suite=dedent(SUITE))
    for variable in (
        *ENDPOINTS.values(),
        "LANGFUSE_HOST",
        "LANGFUSE_PUBLIC_KEY",
        "LANGFUSE_SECRET_KEY",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "PHOENIX_API_KEY",
        "PHOENIX_PROJECT_NAME",
    ):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("LLMOBS_UPLOAD_MAX_ATTEMPTS", "1")
    monkeypatch.setenv("LLMOBS_UPLOAD_BACKOFF", "0")
    return pytester


def retry_hint(output: str) -> str:
    """The command of the ``NOT SENT (pending; retry with `...`)`` line."""
    line = next(line for line in output.splitlines() if "NOT SENT (pending; retry with" in line)
    return line.split("`")[1]


def run_hint(command: str) -> int:
    """Run an ``llmobs`` command as a user would paste it."""
    words = shlex.split(command)
    assert words[0] == "llmobs", command
    return llmobs(words[1:])


def uploads(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("upload to ")]


# --- the retry command ---------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["otlp", "phoenix"])
def test_the_retry_command_names_a_target_other_than_the_default(
    suite: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    target: str,
) -> None:
    pytest.importorskip("opentelemetry.proto.trace.v1.trace_pb2")
    monkeypatch.setenv(ENDPOINTS[target], dead_url())
    output = suite.runpytest(f"--llm-upload={target}").stdout.str()
    # (before: `llmobs upload --pending`, which uploads to langfuse and asked for its keys)
    assert retry_hint(output) == f"llmobs upload --pending --to {target}"
    capsys.readouterr()

    assert run_hint(retry_hint(output)) == 1  # still down: pending, and said for that target
    out = capsys.readouterr().out
    assert uploads(out) and all(line.startswith(f"upload to {target} ") for line in uploads(out))
    assert f"retry with `llmobs upload --pending --to {target}`" in out


def test_the_retry_command_works_once_the_target_is_up(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("opentelemetry.proto.trace.v1.trace_pb2")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", dead_url())
    hint = retry_hint(suite.runpytest("--llm-upload=otlp").stdout.str())
    with Server().running() as collector:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url)
        capsys.readouterr()
        assert run_hint(hint) == 0
        assert collector.requests
        assert "sent 2 traces" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("store", "shown"),
    [
        pytest.param("OUTSIDE", "OUTSIDE", id="outside the project"),
        pytest.param("runs/my store", "'runs/my store'", id="inside, relative, quoted"),
    ],
)
def test_the_retry_command_names_a_store_llmobs_would_not_find(
    suite: pytest.Pytester,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    store: str,
    shown: str,
) -> None:
    pytest.importorskip("opentelemetry.proto.trace.v1.trace_pb2")
    if store == "OUTSIDE":
        store = shown = str(tmp_path_factory.mktemp("elsewhere") / "store")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", dead_url())
    output = suite.runpytest(f"--llm-store={store}", "--llm-upload=otlp").stdout.str()
    # (before: `llmobs upload --pending`, which looked in ./.llmobs: no store, or nothing pending)
    assert retry_hint(output) == f"llmobs upload --pending --to otlp --store {shown}"

    with Server().running() as collector:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url)
        capsys.readouterr()
        assert run_hint(retry_hint(output)) == 0
        assert "sent 2 traces" in capsys.readouterr().out


def test_the_retry_command_leaves_out_a_store_llmobs_finds_by_itself(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    suite.makeini("[pytest]\nllm_store = custom\n")
    monkeypatch.setenv("LANGFUSE_PUBLIC_KEY", "pk-lf-x")
    monkeypatch.setenv("LANGFUSE_SECRET_KEY", "sk-lf-x")
    monkeypatch.setenv("LANGFUSE_BASE_URL", dead_url())
    output = suite.runpytest("--llm-upload=langfuse").stdout.str()
    assert retry_hint(output) == "llmobs upload --pending"
    assert (suite.path / "custom").is_dir()


def test_llmobs_upload_names_its_store_when_run_from_elsewhere(
    suite: pytest.Pytester,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    suite.runpytest()
    store_dir = suite.path / ".llmobs"
    monkeypatch.setenv("PHOENIX_COLLECTOR_ENDPOINT", dead_url())
    capsys.readouterr()
    assert llmobs(["upload", "latest", "--to", "phoenix", "--store", str(store_dir)]) == 1
    assert retry_hint(capsys.readouterr().out) == "llmobs upload --pending --to phoenix"

    monkeypatch.chdir(tmp_path_factory.mktemp("somewhere"))
    assert llmobs(["upload", "latest", "--to", "phoenix", "--store", str(store_dir)]) == 1
    hint = retry_hint(capsys.readouterr().out)
    assert hint == f"llmobs upload --pending --to phoenix --store {store_dir}"


def test_retry_command_and_store_option(tmp_path: Path) -> None:
    report = ExportReport(target="langfuse https://cloud.langfuse.com", run_id="r")
    assert report.retry_command == "llmobs upload --pending"
    report = ExportReport(target="otlp", run_id="r", store_option="--store 'a b'")
    assert report.retry_command == "llmobs upload --pending --to otlp --store 'a b'"
    report.failed["traces"] = 1
    assert report.lines()[1].startswith(
        "  NOT SENT (pending; retry with `llmobs upload --pending --to otlp --store 'a b'`)"
    )

    assert store_option(tmp_path / ".llmobs", tmp_path) == ""  # where llmobs looks
    assert store_option(tmp_path / "x y", tmp_path) == "--store 'x y'"
    assert store_option(tmp_path / "s", tmp_path / "sub") == f"--store {tmp_path / 's'}"


# --- a run pending at another server -----------------------------------------------------------


def test_a_failed_upload_leaves_a_run_pending_where_it_was_partly_delivered(
    suite: pytest.Pytester,
    runs: Runs,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    pytest.importorskip("opentelemetry.proto.trace.v1.trace_pb2")
    with Server(max_bytes=8000).running() as first, Server().running() as second:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", first.url)
        result = suite.runpytest("--llm-upload=otlp")
        result.stdout.fnmatch_lines(["*: sent 1 traces, *", "*NOT SENT*: 1 traces, *"])
        down = dead_url()
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", down)
        capsys.readouterr()

        assert llmobs(["upload", "latest", "--to", "otlp"]) == 1
        out = capsys.readouterr().out
        assert "sent nothing" in out
        # (before: "... holds part of it: uploaded here in full, no longer pending there", and
        # the first server's pending state was dropped though nothing was sent)
        assert (
            f"  still pending for otlp {first.url}/v1/traces, which holds part of it: not all of "
            "it was delivered here, so it stays pending there too"
        ) in out.splitlines()
        with runs.open() as store:
            exporter = create_exporter("otlp", ExporterOptions(store=store, environ=os.environ))
            assert runs_pending_elsewhere(exporter, store) == [
                (runs.latest()["id"], f"otlp {first.url}/v1/traces")
            ]
        store_dir = suite.path / ".llmobs"
        monkeypatch.chdir(tmp_path_factory.mktemp("somewhere"))  # its commands name the store
        assert llmobs(["upload", "--pending", "--to", "otlp", "--store", str(store_dir)]) == 1
        listed = capsys.readouterr().out
        assert "which holds part of it: not sent to the configured target" in listed
        assert f"--to otlp --store {store_dir}`, or configure that target again" in listed
        monkeypatch.chdir(suite.path)

        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", second.url)  # all of it, elsewhere
        assert llmobs(["upload", "latest", "--to", "otlp"]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert (
            f"  was pending for otlp {first.url}/v1/traces, which holds part of it: uploaded "
            "here in full, no longer pending there"
        ) in lines
        assert (
            f"  was pending for otlp {down}/v1/traces, which received none of it: uploaded here "
            "instead"
        ) in lines
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", first.url)
        assert llmobs(["upload", "--pending", "--to", "otlp"]) == 0
        assert capsys.readouterr().out == "otlp: nothing pending\n"


def test_a_run_that_reached_no_server_stays_pending_at_each_until_one_gets_it_all(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("opentelemetry.proto.trace.v1.trace_pb2")
    first, second = dead_url(), dead_url()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", first)
    suite.runpytest("--llm-upload=otlp").stdout.fnmatch_lines(["*: sent nothing"])
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", second)
    capsys.readouterr()

    assert llmobs(["upload", "latest", "--to", "otlp"]) == 1
    # (before: "... received none of it: uploaded here instead", though it was not)
    assert (
        f"  still pending for otlp {first}/v1/traces, which received none of it: not all of it "
        "was delivered here, so it stays pending there too"
    ) in capsys.readouterr().out.splitlines()

    with Server().running() as collector:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url)
        assert llmobs(["upload", "--pending", "--to", "otlp"]) == 0
        lines = capsys.readouterr().out.splitlines()
        for url in (first, second):
            assert (
                f"  was pending for otlp {url}/v1/traces, which received none of it: uploaded "
                "here instead"
            ) in lines
        assert llmobs(["upload", "--pending", "--to", "otlp"]) == 0
        assert capsys.readouterr().out == "otlp: nothing pending\n"


def test_langfuse_a_failed_upload_keeps_a_project_that_holds_part_of_the_run_pending(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The QA case: project A refused a score; an upload to a server that is down said the run
    was uploaded in full and dropped A's pending state."""
    fake_langfuse = pytest.importorskip("fake_langfuse")
    pytest.importorskip("opentelemetry.proto.trace.v1.trace_pb2")
    with fake_langfuse.FakeLangfuse(spec_dir=fake_langfuse.contracts_dir()) as server:
        server.reject_events(lambda event: (400, "refused"))
        for key, value in server.env().items():
            monkeypatch.setenv(key, value)
        result = suite.runpytest("--llm-upload=langfuse")
        result.stdout.fnmatch_lines(["*NOT SENT (pending; retry with `llmobs upload --pending`)*"])
        monkeypatch.setenv("LANGFUSE_BASE_URL", dead_url())
        capsys.readouterr()

        assert llmobs(["upload", "latest"]) == 1
        out = capsys.readouterr().out
        assert f"  still pending for langfuse {server.url} project#" in out
        assert "which holds part of it: not all of it was delivered here" in out
        assert "no longer pending there" not in out

        server.reject_events(lambda event: None)
        monkeypatch.setenv("LANGFUSE_BASE_URL", server.url)
        assert llmobs(["upload", "--pending"]) == 0
        assert "sent 1 scores" in capsys.readouterr().out


# --- an exporter that crashes midway -------------------------------------------------------------

MALFORMED_STORE = """
    import json, sqlite3

    def pytest_llmobs_run_finished(result, config):
        # a store edited by hand: the first item's first observation starts "soon"
        db = sqlite3.connect(".llmobs/llmobs.db")
        seq, data = db.execute(
            "SELECT seq, data FROM items WHERE run_id = ? ORDER BY seq LIMIT 1", (result.run_id,)
        ).fetchone()
        item = json.loads(data)
        item["trace"]["observations"][0]["start_time"] = "soon"
        db.execute("UPDATE items SET data = ? WHERE seq = ?", (json.dumps(item), seq))
        db.commit()
        db.close()
"""


def test_an_exporter_crashing_midway_says_what_it_sent_before(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Langfuse exporter sends the dataset and its items, then chokes on a stored start
    time it cannot read (a bug: it should say so as an upload error)."""
    fake_langfuse = pytest.importorskip("fake_langfuse")
    pytest.importorskip("opentelemetry.proto.trace.v1.trace_pb2")
    pytester.makefile(".jsonl", **{"datasets/caps": '{"id": "a", "input": "x"}\n'})
    pytester.makeconftest(dedent(MALFORMED_STORE))
    pytester.makepyfile(
        test_caps=dedent(
            """
            import pytest

            @pytest.mark.llm_dataset("caps")
            def test_caps(item, llm):
                llm.generate(item.input)
            """
        )
    )
    monkeypatch.setenv("LLMOBS_UPLOAD_MAX_ATTEMPTS", "1")
    with fake_langfuse.FakeLangfuse(spec_dir=fake_langfuse.contracts_dir()) as server:
        for key, value in server.env().items():
            monkeypatch.setenv(key, value)
        result = pytester.runpytest("--llm-model=mock-llm-v1", "--llm-upload=langfuse")
        assert server.datasets and server.dataset_items  # delivered before the crash

    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.OK  # (without --llm-upload-strict)
    lines = result.stdout.lines
    # (before: "upload to langfuse: run ...: sent nothing")
    head = next(line for line in lines if line.startswith("upload to "))
    assert head.startswith(f"upload to langfuse {server.url}: run ")
    assert head.endswith(": sent 1 datasets, 1 dataset items")
    assert "  NOT SENT (pending; retry with `llmobs upload --pending`): 1 run" in lines
    assert (
        "  first error: upload stopped by an unexpected ValueError: invalid literal for int() "
        "with base 10: 'soon' (a bug: report it)"
    ) in lines
    assert "Traceback" not in str(result.stdout) + str(result.stderr)


def test_reports_made_collects_the_reports_made_in_its_block() -> None:
    ExportReport(target="otlp", run_id="before")
    with reports_made() as made:
        inside = ExportReport(target="otlp", run_id="r")
        with reports_made() as inner:
            nested = ExportReport(target="phoenix", run_id="r")
    ExportReport(target="otlp", run_id="after")
    assert [id(r) for r in made] == [id(inside)] and [id(r) for r in inner] == [id(nested)]


# --- redirects -----------------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["langfuse", "otlp", "phoenix"])
def test_a_redirect_names_where_it_points_and_the_base_url_to_set(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, target: str
) -> None:
    pytest.importorskip("opentelemetry.proto.trace.v1.trace_pb2")
    with Server(redirect_to="https://elsewhere.example").running() as server:
        monkeypatch.setenv(ENDPOINTS[target], server.url)
        monkeypatch.setenv("LANGFUSE_PUBLIC_KEY", "pk-lf-x")
        monkeypatch.setenv("LANGFUSE_SECRET_KEY", "sk-lf-x")
        output = suite.runpytest(f"--llm-upload={target}").stdout.str()
    first_error = next(line for line in output.splitlines() if "first error:" in line)
    method, path = server.requests[0][:2]
    # (before: "POST http://127.0.0.1:PORT/...: HTTP 308", nothing more)
    assert first_error == (
        f"  first error: {method} {server.url}{path}: HTTP 308: the server redirects to "
        f"https://elsewhere.example{path}; set the base URL to https://elsewhere.example"
    )
    assert [r[1] for r in server.requests].count(path) == 1  # neither followed nor retried


# --- --to given more than once -------------------------------------------------------------------


def test_every_target_of_a_repeated_to_is_uploaded_each_once(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    suite.runpytest()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", dead_url())
    monkeypatch.setenv("PHOENIX_COLLECTOR_ENDPOINT", dead_url())
    capsys.readouterr()
    # (before: only the last --to, phoenix, was uploaded to)
    assert llmobs(["upload", "latest", "--to", "otlp", "--to", "phoenix,otlp"]) == 1
    targets = [line.split()[2] for line in uploads(capsys.readouterr().out)]
    assert targets == ["otlp", "phoenix"]


def test_given_targets() -> None:
    assert given_targets(None) == ["langfuse"]
    assert given_targets(["otlp", "langfuse", "otlp"]) == ["otlp", "langfuse"]
    assert given_targets("phoenix, otlp") == ["phoenix", "otlp"]
