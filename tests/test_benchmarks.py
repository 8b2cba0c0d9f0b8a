"""Smoke runs of the benchmark scripts: they run and print their tables (no timing asserted)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
NUMBER = r"\d+\.\d+"


def run_script(name: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / name), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_evaluator_benchmark_prints_cost_per_item_and_fits_once() -> None:
    output = run_script("evaluators.py", "--quick")
    for row in (
        "exact_match",
        "fuzzy",
        "similarity_many, corpus (vectorised once)",
        "groundedness",
    ):
        assert re.search(rf"^{re.escape(row)}\s+[\d.]+\s+[\d.]+$", output, re.MULTILINE), row
    assert "vectoriser fits for the whole dataset: per item 1, batched 1" in output
    assert re.search(r"per-item similarity / similarity_many: [\d.]+x", output)


# --- scale-out: run_experiment, xdist, the cache -------------------------------------------


def test_experiment_concurrency_prints_a_ratio_per_backend_and_task_kind() -> None:
    output = run_script("experiment_concurrency.py", "--quick")

    assert "20 items, 20 ms per model call, max_concurrency=5" in output
    for backend in ("openai", "mock"):
        for kind in ("async", "sync"):
            row = rf"^{backend}\s+{kind}\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}x\s+{NUMBER}x"
            assert re.search(row, output, re.MULTILINE), (backend, kind, output)


def test_http_floor_prints_each_client_against_the_ideal() -> None:
    output = run_script(
        "http_floor.py", "--items", "8", "--latency-ms", "10", "--concurrency", "4", "--rounds", "1"
    )

    assert "8 requests, 10 ms each, 4 at a time, ideal 0.020 s" in output
    for client in ("httpx", "provider", "streams"):
        row = rf"^{client}\s+{NUMBER}\s+{NUMBER}x\s+{NUMBER}\s+{NUMBER}$"
        assert re.search(row, output, re.MULTILINE), (client, output)


def test_xdist_speedup_prints_both_wall_times_and_the_speedup() -> None:
    output = run_script("xdist_speedup.py", "--quick", "--backend", "mock")

    assert re.search(rf"^serial\s+{NUMBER}\s+{NUMBER}$", output, re.MULTILINE), output
    assert re.search(rf"^-n 4\s+{NUMBER}\s+{NUMBER}$", output, re.MULTILINE), output
    assert re.search(rf"^speed-up: {NUMBER}x \(serial / -n 4\)$", output, re.MULTILINE), output
    assert "runs stored: 2, items per run: [16], complete: True" in output


# --- per-test cost in instructions ------------------------------------------------------------


def test_per_test_instructions_prints_a_count_per_variant_and_the_projected_ratio() -> None:
    if shutil.which("valgrind") is None:
        reason = "per_test_instructions.py counts with valgrind (apt-get install valgrind)"
        if os.environ.get("CI"):  # .ci/run installs it
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    output = run_script("per_test_instructions.py", "--quick")

    assert "2 and 8 items per variant, under valgrind --tool=callgrind" in output
    rows = {
        match["variant"]: match
        for match in re.finditer(
            rf"^(?P<variant>plain|plugin)\s+\| (?P<per_test>{NUMBER})\s+\| (?P<extra>[+-]{NUMBER})"
            rf"\s+\| (?P<fixed>\d+)\s+\| (?P<ratio>{NUMBER})x$",
            output,
            re.MULTILINE,
        )
    }
    assert set(rows) == {"plain", "plugin"}, output
    assert float(rows["plain"]["extra"]) == 0.0 and rows["plain"]["ratio"] == "1.000"
    # the plugin records a trace and stores it: it can only add instructions to each test
    assert float(rows["plugin"]["per_test"]) > float(rows["plain"]["per_test"]) > 0
    assert float(rows["plugin"]["ratio"]) > 1.0
