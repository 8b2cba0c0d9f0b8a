"""Wall time of ``run_experiment`` against the ideal, for an async and a sync task.

Run ``python benchmarks/experiment_concurrency.py [--items N] [--latency-ms L]
[--concurrency C] [--rounds R] [--backend openai|mock|both] [--quick]``.

Each item makes one model call that waits ``L`` ms; with ``C`` items at a time the ideal wall
time is ``ceil(N / C) * L``. Backends:

- ``openai``: the OpenAI-compatible provider over real HTTP to ``benchmarks/latency_server.py``
  (the wire format of ``tests/fake_openai.py`` on one asyncio loop), run in its own process on
  127.0.0.1 and answering after ``L`` ms;
- ``mock``: ``mock-llm-v1?latency_ms=L`` (``asyncio.sleep`` / ``time.sleep``).

For each backend and task kind it prints the median of ``R`` rounds (after one warm-up round)
of: the same calls made directly (an asyncio semaphore, or a thread pool, no tracing, no store),
and ``run_experiment`` with one evaluator and the default on-disk store (a temporary directory).
Ratios are against the ideal and against the direct calls. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import math
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_llmobs import LLM, run_experiment
from pytest_llmobs.datasets import DatasetItem
from pytest_llmobs.providers import default_registry
from pytest_llmobs.providers.client_pool import shared_async_clients

TESTS = Path(__file__).resolve().parents[1] / "tests"


@contextlib.contextmanager
def fake_openai_server(latency_s: float) -> Iterator[dict[str, str]]:
    """Start ``benchmarks/latency_server.py`` (the chat completions wire format of
    ``tests/fake_openai.py`` on one asyncio loop) in its own process; yield the environment that
    points the OpenAI provider at it."""
    server = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("latency_server.py")), str(latency_s)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        if not url.startswith("http://"):
            raise RuntimeError(f"the OpenAI-compatible server did not start (got {url!r})")
        yield {"OPENAI_BASE_URL": url, "OPENAI_API_KEY": "sk-benchmark"}
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(timeout=30)


def dataset(items: int) -> list[dict[str, Any]]:
    return [
        {
            "id": f"q{i}",
            "input": f"What is the capital of France? (#{i})",
            "expected_output": "Paris",
        }
        for i in range(items)
    ]


async def answer(item: DatasetItem, llm: LLM) -> str:
    return (await llm.agenerate(str(item.input))).text


def answer_sync(item: DatasetItem, llm: LLM) -> str:
    return llm.generate(str(item.input)).text


def exact(output: str, item: DatasetItem) -> bool:
    return output == item.expected_output


def direct_async(model: str, items: list[dict[str, Any]], concurrency: int) -> None:
    provider = default_registry().resolve(model)

    async def main() -> None:
        gate = asyncio.Semaphore(concurrency)

        async def one(item: dict[str, Any]) -> None:
            async with gate:
                await provider.acomplete([{"role": "user", "content": item["input"]}])

        async with shared_async_clients():  # kept-alive connections, as run_experiment has
            await asyncio.gather(*(one(item) for item in items))

    asyncio.run(main())


def direct_sync(model: str, items: list[dict[str, Any]], concurrency: int) -> None:
    provider = default_registry().resolve(model)
    with ThreadPoolExecutor(concurrency) as pool:
        list(
            pool.map(lambda i: provider.complete([{"role": "user", "content": i["input"]}]), items)
        )


def median_time(function: Callable[[], object], rounds: int) -> tuple[float, list[float]]:
    """Median wall time of ``rounds`` calls after a warm-up; each call starts from a quiet
    process (see `join_threads_started_by`)."""
    join_threads_started_by(function)  # warm-up: imports, connection pools, first store
    times = []
    for _ in range(rounds):
        times.append(join_threads_started_by(function))
    return statistics.median(times), times


def join_threads_started_by(function: Callable[[], object]) -> float:
    """Wall seconds of ``function()``; then, untimed, wait for the non-daemon threads it left
    running (the store's deferred WAL checkpoint, idle pool threads exiting), as a script's
    exit would. Without it each round would pay the previous one's clean-up: back-to-back
    calls on one store do, by a few milliseconds. A garbage collection first, as in
    `bench_common.timed`, so no round pays for the garbage of earlier ones (or of Langfuse's
    rounds in the same process)."""
    gc.collect()
    before = set(threading.enumerate())
    started = time.perf_counter()
    function()
    elapsed = time.perf_counter() - started
    for thread in set(threading.enumerate()) - before:
        if not thread.daemon:
            thread.join()
    return elapsed


@dataclass(frozen=True, slots=True)
class Timing:
    """Wall seconds of one backend and task kind: ideal, direct calls and ``run_experiment``."""

    backend: str
    kind: str
    ideal: float
    direct: float
    ours: float
    rounds: list[float]


def ideal_seconds(items: int, concurrency: int, latency_ms: float) -> float:
    """``ceil(items / concurrency)`` waves of one model call each."""
    return math.ceil(items / concurrency) * latency_ms / 1000.0


def time_backend(
    backend: str,
    model: str,
    *,
    items: int,
    latency_ms: float,
    concurrency: int,
    rounds: int,
    store: Path,
) -> list[Timing]:
    """Median wall time of the direct calls and of ``run_experiment``, async then sync."""
    entries = dataset(items)
    ideal = ideal_seconds(items, concurrency, latency_ms)
    timings = []
    for kind, task, direct in (
        ("async", answer, direct_async),
        ("sync", answer_sync, direct_sync),
    ):
        base, _ = median_time(lambda d=direct: d(model, entries, concurrency), rounds)

        def experiment(task: Callable[..., Any] = task, kind: str = kind) -> None:
            result = run_experiment(
                name=f"bench-{backend}-{kind}",
                dataset=entries,
                task=task,
                evaluators=[exact],
                model=model,
                max_concurrency=concurrency,
                store=store,
            )
            if len(result.items) != len(entries) or result.status != "passed":
                raise RuntimeError(f"unexpected result: {result.summary()}")

        ours, all_rounds = median_time(experiment, rounds)
        timings.append(Timing(backend, kind, ideal, base, ours, all_rounds))
    return timings


def measure(
    backend: str, model: str, args: argparse.Namespace, store: Path
) -> list[tuple[str, ...]]:
    timings = time_backend(
        backend,
        model,
        items=args.items,
        latency_ms=args.latency_ms,
        concurrency=args.concurrency,
        rounds=args.rounds,
        store=store,
    )
    return [
        (
            t.backend,
            t.kind,
            f"{t.ideal:.3f}",
            f"{t.direct:.3f}",
            f"{t.ours:.3f}",
            f"{t.ours / t.ideal:.3f}x",
            f"{t.ours / t.direct:.3f}x",
            " ".join(f"{r:.3f}" for r in t.rounds),
        )
        for t in timings
    ]


def load_parser(description: str) -> argparse.ArgumentParser:
    """Options of the load: ``--items``, ``--latency-ms``, ``--concurrency``, ``--rounds``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = load_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["openai", "mock", "both"], default="both")
    parser.add_argument("--quick", action="store_true", help="20 items, 20 ms, 1 round (smoke)")
    args = parser.parse_args(argv)
    if args.quick:
        args.items, args.latency_ms, args.concurrency, args.rounds = 20, 20.0, 5, 1
    print(
        f"{args.items} items, {args.latency_ms:g} ms per model call, max_concurrency="
        f"{args.concurrency}, median of {args.rounds} round(s) after a warm-up; "
        f"{os.cpu_count()} CPUs"
    )
    header = ("backend", "task", "ideal s", "direct s", "run_experiment s", "vs ideal", "vs direct")
    rows: list[tuple[str, ...]] = [(*header, "rounds s")]
    with tempfile.TemporaryDirectory() as scratch:
        store = Path(scratch) / ".llmobs"
        if args.backend in ("openai", "both"):
            with fake_openai_server(args.latency_ms / 1000.0) as env:
                os.environ.update(env)
                rows += measure("openai", "openai:fake-model", args, store)
        if args.backend in ("mock", "both"):
            rows += measure("mock", f"mock-llm-v1?latency_ms={args.latency_ms:g}", args, store)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )


if __name__ == "__main__":
    main()
