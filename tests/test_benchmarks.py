"""Smoke runs of the benchmark scripts: they run and print their tables (no timing asserted)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def run_script(name: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / name), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
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
