"""Per-test cost in CPU instructions counted by valgrind, where wall time is too noisy to compare.

Run ``python benchmarks/per_test_instructions.py [--items N] [--quick]`` (needs ``valgrind``).

The per-test row of ``run.py`` times whole pytest sessions; on a shared 2-core VM its rounds
spread by 20% or more, so a change of a few percent cannot be seen. Here each suite runs under
``valgrind --tool=callgrind``, which counts the instructions the process executes: the same
count on every run, whatever else the machine does. Each variant runs at two sizes, ``N / 4``
and ``N`` items, so that the cost per test (the slope) is told apart from the fixed cost of a
session (imports, the store's set-up, the summary):

    per test = (count(N) - count(N / 4)) / (N - N / 4),   fixed = count(N / 4) - N / 4 * per test

Variants (the two suites of ``bench_per_test.py``, two cut-down copies of the plugin's suite,
and two of the suites run another way):

- ``plain``: ``@pytest.mark.parametrize`` calling the mock model directly: the baseline;
- ``plugin``: ``@pytest.mark.llm_dataset`` with ``llm.generate`` and ``scorer.exact_match``, the
  store on disk: the per-test row's suite;
- ``plugin, model called directly``: the same fixtures requested, the test body of ``plain``;
- ``plugin, item fixture only``: no ``llm`` or ``scorer`` fixture;
- ``plugin, --llm-redact=off``: the full suite without masking;
- ``plain suite, plugin loaded``: the baseline's suite with the plugin on, which makes each of
  its tests a trace too (what a suite's other tests pay).

Differences between the variants price the parts: the fixtures, the generation and its score,
redaction. The last column projects each variant and the plain suite to 2,000 items (the
per-test row's size), as a ratio. Counts leave out the kernel's work (the store's file writes),
which wall time includes: read them as a lower bound of the wall-time ratio. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from bench_common import format_table
from bench_per_test import PLAIN_TEST, PLUGIN_TEST, make_suite, pytest_env, runner

PROJECTED_ITEMS = 2_000
"""The size of the per-test row's suites."""

DIRECT_CALL_TEST = """\
import pytest

from pytest_llmobs.providers import default_registry

MODEL = default_registry().resolve("mock-llm-v1")


@pytest.mark.llm_dataset("bench")
def test_answer(item, llm, scorer):
    answer = MODEL.complete([{"role": "user", "content": item.input}])
    assert answer.text.strip() == item.expected_output.strip()
"""

ITEM_ONLY_TEST = DIRECT_CALL_TEST.replace("(item, llm, scorer)", "(item)")

PLUGIN_ARGS = ("-p", "pytest_llmobs.plugin", "--llm-model=mock-llm-v1")


@dataclass(frozen=True, slots=True)
class Variant:
    name: str
    test_code: str
    args: tuple[str, ...]


VARIANTS = (
    Variant("plain", PLAIN_TEST, ("-p", "no:llmobs")),
    Variant("plugin", PLUGIN_TEST, PLUGIN_ARGS),
    Variant("plugin, model called directly", DIRECT_CALL_TEST, PLUGIN_ARGS),
    Variant("plugin, item fixture only", ITEM_ONLY_TEST, PLUGIN_ARGS),
    Variant("plugin, --llm-redact=off", PLUGIN_TEST, (*PLUGIN_ARGS, "--llm-redact=off")),
    Variant("plain suite, plugin loaded", PLAIN_TEST, PLUGIN_ARGS),
)
QUICK_VARIANTS = VARIANTS[:2]

_COLLECTED = re.compile(r"==\d+== Collected : (\d+)")


@dataclass(frozen=True, slots=True)
class Count:
    """A variant's instructions per test and fixed instructions per session."""

    variant: Variant
    per_test: float
    fixed: float

    def projected(self, items: int) -> float:
        return self.fixed + items * self.per_test


def instructions(directory: Path, args: Sequence[str], items: int) -> int:
    """Instructions executed by ``python -m pytest`` in ``directory``, all ``items`` passing."""
    shutil.rmtree(directory / ".llmobs", ignore_errors=True)  # a fresh store, as in run.py
    command = [
        "valgrind",
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        *args,
    ]
    env = {**pytest_env(), "PYTHONHASHSEED": "0"}  # the same dict layouts, the same count
    done = subprocess.run(
        command, cwd=directory, env=env, capture_output=True, text=True, check=False
    )
    found = _COLLECTED.search(done.stderr)
    if done.returncode != 0 or f"{items} passed" not in done.stdout or found is None:
        raise RuntimeError(
            f"pytest under valgrind in {directory} did not pass {items} tests:\n"
            f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        )
    return int(found.group(1))


def count(variants: Sequence[Variant], items: int, scratch: Path) -> list[Count]:
    """Run every variant at ``items // 4`` and ``items`` items, on every CPU at once."""
    small = max(items // 4, 1)
    jobs = []
    for index, variant in enumerate(variants):
        for size in (small, items):
            directory = make_suite(scratch / f"v{index}-{size}", variant.test_code, size)
            # one run without valgrind writes the bytecode caches (as pip does at install)
            runner(directory, list(variant.args), size)()
            jobs.append((variant, size, directory))
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        totals = list(pool.map(lambda job: instructions(job[2], job[0].args, job[1]), jobs))
    by_job = {(job[0].name, job[1]): total for job, total in zip(jobs, totals, strict=True)}
    counts = []
    for variant in variants:
        per_test = (by_job[variant.name, items] - by_job[variant.name, small]) / (items - small)
        counts.append(Count(variant, per_test, by_job[variant.name, small] - small * per_test))
    return counts


def report(counts: Sequence[Count], items: int) -> str:
    """The table of counts and the ratio projected to the per-test row's size."""
    plain = counts[0]
    rows = [
        (
            c.variant.name,
            f"{c.per_test / 1e6:.3f}",
            f"{(c.per_test - plain.per_test) / 1e6:+.3f}",
            f"{c.fixed / 1e6:.0f}",
            f"{c.projected(PROJECTED_ITEMS) / plain.projected(PROJECTED_ITEMS):.3f}x",
        )
        for c in counts
    ]
    header = ("variant", "M instr/test", "vs plain", "fixed M instr", f"at {PROJECTED_ITEMS:,}")
    return (
        f"{items // 4:,} and {items:,} items per variant, under valgrind --tool=callgrind "
        "(instructions in the pytest process; the kernel's work is not counted)\n\n"
        + format_table(header, rows)
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=400, help="the larger size (default 400)")
    parser.add_argument(
        "--quick", action="store_true", help="8 items, plain and plugin only (smoke)"
    )
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (Debian: apt-get install valgrind)")
    items, variants = (8, QUICK_VARIANTS) if args.quick else (args.items, VARIANTS)
    if items < 2:
        sys.exit(f"--items must be >= 2; got {items}")
    with tempfile.TemporaryDirectory(prefix="llmobs-instructions-") as scratch:
        print(report(count(variants, items, Path(scratch)), items))


if __name__ == "__main__":
    main()
