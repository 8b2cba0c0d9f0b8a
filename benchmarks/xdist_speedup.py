"""Speed-up of a dataset suite under ``pytest -n 4`` against a serial session.

Run ``python benchmarks/xdist_speedup.py [--items N] [--latency-ms L] [--workers W]
[--rounds R] [--backend openai|mock] [--quick]``.

It writes a suite with one ``llm_dataset`` test over ``N`` generated items; each item makes one
model call that waits ``L`` ms. Backends: ``openai`` (default) calls ``tests/fake_openai.py``
over real HTTP (its own process on 127.0.0.1, answering after ``L`` ms); ``mock`` uses
``mock-llm-v1?latency_ms=L``. Serial and ``-n W`` sessions run as subprocesses (``python -m
pytest``, timed from start to exit, so worker start-up counts) with only the xdist and llmobs
plugins loaded; it prints the median wall time of ``R`` rounds of each, the speed-up, and checks
that both runs stored every item. The work is waiting, so more workers than CPUs still help.
Nothing is asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from experiment_concurrency import fake_openai_server

from pytest_llmobs.store import Store

PLUGINS = ("-p", "xdist.plugin", "-p", "pytest_llmobs.plugin")
"""The only plugins loaded (``PYTEST_DISABLE_PLUGIN_AUTOLOAD=1``): this repository's development
environment also installs hypothesis, pytest-asyncio and anyio, whose import in every worker
would be measured otherwise (about 1 s of CPU per worker for hypothesis alone)."""

SUITE = """\
import pytest

@pytest.mark.llm_dataset("items")
def test_item(item, llm, scorer):
    answer = llm.generate(item.input)
    assert scorer.exact_match(answer.text, item.expected_output, name="accuracy")
"""


def write_suite(directory: Path, items: int) -> None:
    (directory / "datasets").mkdir()
    rows = [
        {
            "id": f"q{i}",
            "input": f"What is the capital of France? (#{i})",
            "expected_output": "Paris",
        }
        for i in range(items)
    ]
    (directory / "datasets" / "items.jsonl").write_text(
        "".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8"
    )
    (directory / "test_suite.py").write_text(SUITE, encoding="utf-8")
    (directory / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")


def session(directory: Path, model: str, env: dict[str, str], *extra: str) -> float:
    """Run pytest once in ``directory``; its wall time in seconds."""
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *PLUGINS]
    command += [f"--llm-model={model}", *extra]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=directory, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"pytest failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return elapsed


def stored_items(directory: Path) -> list[int]:
    """Items of each stored run, oldest first."""
    store = Store.in_directory(directory / ".llmobs")
    try:
        return [run["items"] for run in reversed(store.list_runs())]
    finally:
        store.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=400)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--backend", choices=["openai", "mock"], default="openai")
    parser.add_argument("--quick", action="store_true", help="16 items, 20 ms, 1 round (smoke)")
    args = parser.parse_args(argv)
    if args.quick:
        args.items, args.latency_ms, args.rounds = 16, 20.0, 1
    print(
        f"{args.items} dataset items, {args.latency_ms:g} ms per model call ({args.backend}), "
        f"serial vs -n {args.workers}, median of {args.rounds} round(s); {os.cpu_count()} CPUs; "
        "plugins: xdist, llmobs"
    )
    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch)
        write_suite(directory, args.items)
        env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
        model = f"mock-llm-v1?latency_ms={args.latency_ms:g}"
        with contextlib.ExitStack() as stack:
            if args.backend == "openai":
                env.update(stack.enter_context(fake_openai_server(args.latency_ms / 1000.0)))
                model = "openai:fake-model"
            serial = [session(directory, model, env) for _ in range(args.rounds)]
            parallel = [
                session(directory, model, env, "-n", str(args.workers)) for _ in range(args.rounds)
            ]
        counts = stored_items(directory)
    serial_s, parallel_s = statistics.median(serial), statistics.median(parallel)
    ideal = args.items * args.latency_ms / 1000.0
    print(f"{'session':<10}{'wall s':>9}{'waiting s':>11}")
    print(f"{'serial':<10}{serial_s:>9.2f}{ideal:>11.2f}")
    print(f"{'-n ' + str(args.workers):<10}{parallel_s:>9.2f}{ideal / args.workers:>11.2f}")
    print(f"speed-up: {serial_s / parallel_s:.2f}x (serial / -n {args.workers})")
    complete = all(count == args.items for count in counts) and len(counts) == 2 * args.rounds
    print(f"runs stored: {len(counts)}, items per run: {sorted(set(counts))}, complete: {complete}")


if __name__ == "__main__":
    main()
