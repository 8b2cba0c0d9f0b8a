"""What the sections of ``benchmarks/run.py`` share: result rows and verdicts, timing, tables,
the optional comparison SDKs, and a local HTTP server that stands in for Langfuse.

Nothing here asserts a timing: a verdict ("ok" / "MISSED") is printed, never raised.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib.util
import json
import os
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from langfuse import Langfuse

NA = "n/a (pip install langfuse opentelemetry-sdk)"
"""What a column shows when a comparison SDK is not installed."""
NA_LANGFUSE = NA if sys.version_info >= (3, 11) else "n/a (Langfuse 5 needs Python 3.11+)"
"""The same for Langfuse's columns: on Python 3.10 no installing helps."""


# --- rows and verdicts ------------------------------------------------------------------------


@dataclass(slots=True)
class Row:
    """One line of the final table."""

    benchmark: str
    measured: str
    baseline: str
    ratio: float | None
    target: str
    verdict: str
    """``ok`` / ``MISSED`` against the target, ``-`` for a reference figure, or `NA`."""

    def cells(self) -> tuple[str, ...]:
        if self.verdict.startswith("n/a"):
            ratio = self.verdict
        elif self.ratio is None:
            ratio = "-"
        else:  # 3 decimals below 2x: 1.052x must not read as a 1.05x that missed 1.05x
            ratio = f"{self.ratio:.3f}x" if self.ratio < 2 else f"{self.ratio:.2f}x"
        return (self.benchmark, self.measured, self.baseline, ratio, self.target, self.verdict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "benchmark": self.benchmark,
            "measured": self.measured,
            "baseline": self.baseline,
            "ratio": self.ratio,
            "target": self.target,
            "verdict": self.verdict,
        }


@dataclass(slots=True)
class Section:
    """What one section measured: lines printed above the final table, its rows, raw figures."""

    name: str
    title: str
    details: list[str] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)

    def say(self, line: str = "") -> None:
        """Add a detail line and print it at once, so a long run shows progress."""
        self.details.append(line)
        print(f"  {line}" if line else "", flush=True)


def subprocess_env(**overrides: str) -> dict[str, str]:
    """The environment for a measured child process.

    PYTEST_ADDOPTS would change what runs. PYTHONDONTWRITEBYTECODE is dropped because a user's
    installed package has its bytecode compiled (pip does it at install time): without it,
    every child would recompile the plugin's modules from source and the start-up rows would
    measure the compiler. The warm-up round writes the caches.
    """
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("PYTEST_ADDOPTS", "PYTHONDONTWRITEBYTECODE")
    }
    env.update(overrides)
    return env


def verdict(value: float, op: str, limit: float) -> str:
    """``ok`` when ``value op limit`` holds, else ``MISSED``."""
    checks: dict[str, Callable[[float, float], bool]] = {
        "<=": lambda a, b: a <= b,
        "<": lambda a, b: a < b,
        ">=": lambda a, b: a >= b,
        ">": lambda a, b: a > b,
    }
    return "ok" if checks[op](value, limit) else "MISSED"


def not_installed_row(benchmark: str, target: str, missing: str = NA) -> Row:
    """A row whose comparison SDK is missing (``missing``: what its columns say)."""
    return Row(benchmark, missing, missing, None, target, missing)


# --- timing and tables ------------------------------------------------------------------------


def timed(function: Callable[[], object]) -> float:
    """Wall seconds of one call, after a garbage collection so no earlier garbage is paid for."""
    gc.collect()
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def interleaved(
    variants: Mapping[str, Callable[[], object]],
    rounds: int,
    *,
    warm_up: bool = True,
    after: Mapping[str, Callable[[], object]] | None = None,
) -> dict[str, list[float]]:
    """Time every variant once per round, in turn, so drifting machine load hits all alike.

    ``after[name]`` runs untimed after each call of variant ``name`` (a flush, a reset).
    """
    after = after or {}
    if warm_up:
        for name, function in variants.items():
            function()
            if name in after:
                after[name]()
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, function in variants.items():
            times[name].append(timed(function))
            if name in after:
                after[name]()
    return times


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns separated by `` | ``, with a rule under the header."""
    table = [tuple(header), *(tuple(r) for r in rows)]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = [" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in table]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


# --- optional SDKs ----------------------------------------------------------------------------


WITHOUT_ENV = "LLMOBS_BENCH_WITHOUT"
"""Comma-separated SDKs (``langfuse``, ``otel``) to treat as not installed: tests the n/a path."""


def _pretend_missing(name: str) -> bool:
    return name in {part.strip() for part in os.environ.get(WITHOUT_ENV, "").split(",")}


def have_langfuse() -> bool:
    """Whether the langfuse SDK is importable."""
    if _pretend_missing("langfuse"):
        return False
    return importlib.util.find_spec("langfuse") is not None


def have_otel_sdk() -> bool:
    """Whether the OpenTelemetry SDK is importable."""
    if _pretend_missing("otel"):
        return False
    with contextlib.suppress(ModuleNotFoundError):
        return importlib.util.find_spec("opentelemetry.sdk") is not None
    return False


# --- a local stand-in for the Langfuse API ----------------------------------------------------

_PROJECTS = {
    "data": [
        {
            "id": "bench-project",
            "name": "bench",
            "organization": {"id": "bench-org", "name": "bench"},
            "metadata": {},
        }
    ]
}


class _Handler(BaseHTTPRequestHandler):
    server: LocalCollector

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        self.server.record(self.path, len(body))
        answer: dict[str, Any] = {}
        if self.path.startswith("/api/public/ingestion"):
            answer = {"successes": [], "errors": []}
        self._reply(answer)

    def do_GET(self) -> None:
        self.server.record(self.path, 0)
        self._reply(_PROJECTS if self.path.startswith("/api/public/projects") else {})

    def _reply(self, payload: Mapping[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the benchmark prints the request counts instead."""


class LocalCollector(ThreadingHTTPServer):
    """An HTTP server on 127.0.0.1 that answers 200 to everything and counts what it got:
    OTLP span exports (``POST /api/public/otel/v1/traces``), score ingestion, project look-ups.
    """

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self._lock = threading.Lock()
        self.requests: Counter[str] = Counter()
        self.bytes_received = 0
        self._thread = threading.Thread(target=self.serve_forever, name="collector", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def record(self, path: str, size: int) -> None:
        with self._lock:
            self.requests[path.split("?", 1)[0]] += 1
            self.bytes_received += size

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self.requests.values())

    @property
    def span_exports(self) -> int:
        with self._lock:
            return sum(n for path, n in self.requests.items() if path.endswith("/v1/traces"))

    def close(self) -> None:
        self.shutdown()
        self.server_close()


_collector: LocalCollector | None = None
_langfuse: Langfuse | None = None


def collector() -> LocalCollector:
    """The process's one local collector, started on first use."""
    global _collector
    if _collector is None:
        _collector = LocalCollector()
    return _collector


def langfuse_client() -> Langfuse:
    """The process's Langfuse client, with dummy keys, exporting to `collector`.

    The environment variables are set too, so `langfuse.observe` (which finds its client with
    ``get_client()``) uses the same client and the same local endpoint.
    """
    global _langfuse
    if _langfuse is None:
        from langfuse import Langfuse

        url = collector().url
        os.environ.update(
            LANGFUSE_PUBLIC_KEY="pk-lf-benchmark",
            LANGFUSE_SECRET_KEY="sk-lf-benchmark",
            LANGFUSE_BASE_URL=url,
            LANGFUSE_HOST=url,
        )
        _langfuse = Langfuse(
            public_key="pk-lf-benchmark", secret_key="sk-lf-benchmark", base_url=url
        )
    return _langfuse


@contextlib.contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the block, then restore what was there."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def print_section(section: Section) -> None:
    """Print a section's rows as a table (its details were printed as they were measured)."""
    header = ("benchmark", "measured", "baseline", "ratio", "target", "verdict")
    print(format_table(header, [row.cells() for row in section.rows]))


def section_main(
    run: Callable[..., Section], doc: str, quick_help: str, argv: list[str] | None
) -> None:
    """The command line of a section module run alone: ``[--quick]``, then its table."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=quick_help)
    args = parser.parse_args(argv)
    print_section(run(quick=args.quick))
