"""Per-test cost: dataset items through the plugin next to plain ``pytest.mark.parametrize``.

Run ``python benchmarks/bench_per_test.py [--quick]`` (or ``benchmarks/run.py --only per_test``).

Two suites are generated in a temporary directory, over the same items (capital-city questions
that ``mock-llm-v1`` answers right):

- ``plugin``: ``@pytest.mark.llm_dataset("bench")`` with the ``item``, ``llm`` and ``scorer``
  fixtures (``llm.generate`` then ``assert scorer.exact_match(...)``), the store on (its default
  ``.llmobs/`` under the suite, emptied before each round);
- ``plain``: ``@pytest.mark.parametrize`` over the same JSONL file, calling the same mock model
  directly (`pytest_llmobs.providers`) and checking the answer with a plain ``assert``.

Each round runs ``python -m pytest -q -p no:cacheprovider`` on both, in turn, as subprocesses:
wall seconds from process start to exit. Both must pass every test.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench_common import (
    Row,
    Section,
    interleaved,
    median,
    section_main,
    subprocess_env,
    verdict,
)

from pytest_llmobs.providers.capitals import CAPITALS

TARGET_RATIO = 1.25

PLUGIN_TEST = """\
import pytest


@pytest.mark.llm_dataset("bench")
def test_answer(item, llm, scorer):
    answer = llm.generate(item.input)
    assert scorer.exact_match(answer.text, item.expected_output, name="accuracy")
"""

PLAIN_TEST = """\
import json
from pathlib import Path

import pytest

from pytest_llmobs.providers import default_registry

ITEMS = [
    json.loads(line)
    for line in (Path(__file__).parent / "datasets" / "bench.jsonl").read_text().splitlines()
]
MODEL = default_registry().resolve("mock-llm-v1")


@pytest.mark.parametrize("item", ITEMS, ids=[entry["id"] for entry in ITEMS])
def test_answer(item):
    answer = MODEL.complete([{"role": "user", "content": item["input"]}])
    assert answer.text.strip() == item["expected_output"].strip()
"""


def write_items(path: Path, count: int) -> None:
    """``count`` capital-city questions, cycling through the countries the mock model knows."""
    countries = sorted(CAPITALS.items())
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for n in range(count):
            country, capital = countries[n % len(countries)]
            entry = {
                "id": f"q{n}",
                "input": f"What is the capital of {country}? (question {n})",
                "expected_output": capital,
            }
            out.write(json.dumps(entry) + "\n")


def make_suite(root: Path, test_code: str, items: int) -> Path:
    root.mkdir(parents=True)
    (root / "pytest.ini").write_text("[pytest]\n")  # its own rootdir: no outer config applies
    write_items(root / "datasets" / "bench.jsonl", items)
    (root / "test_bench.py").write_text(test_code)
    return root


def pytest_env() -> dict[str, str]:
    """The environment of both runs.

    Third-party plugins are kept out of both runs alike: PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 loads
    no entry point at all, and the plugin run names ``-p pytest_llmobs.plugin`` (the module the
    ``llmobs`` entry point names) explicitly. So both sessions load exactly pytest's built-in
    plugins, plus ours in one of them, whatever else is installed (xdist, pytest-asyncio, anyio,
    hypothesis, langsmith... each would add its own start-up and hook cost to both runs).
    """
    return subprocess_env(PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")


def runner(
    directory: Path, args: list[str], items: int, before: Callable[[], None] | None = None
) -> Callable[[], None]:
    """A function that runs pytest in ``directory`` and checks that every item passed."""
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args]
    env = pytest_env()

    def run() -> None:
        if before is not None:
            before()
        done = subprocess.run(
            command, cwd=directory, env=env, capture_output=True, text=True, check=False
        )
        if done.returncode != 0 or f"{items} passed" not in done.stdout:
            raise RuntimeError(
                f"pytest in {directory} did not pass {items} tests:\n{done.stdout[-3000:]}"
                f"\n{done.stderr[-3000:]}"
            )

    return run


def stored_items(store_dir: Path) -> int:
    """Items of the one run in the plugin suite's store (proof the store was on)."""
    db = sqlite3.connect(store_dir / "llmobs.db")
    try:
        return int(db.execute("SELECT COUNT(*) FROM items").fetchone()[0])
    finally:
        db.close()


def run(quick: bool = False) -> Section:
    """Time both suites; one row: plugin / plain, with the ms per test of each."""
    items, rounds = (100, 2) if quick else (2_000, 5)
    section = Section(
        "per_test", "per-test cost: llm_dataset + llm + scorer + store vs parametrize"
    )
    section.say(
        f"{items:,} items, median of {rounds} rounds after a warm-up; wall time of "
        "`python -m pytest -q -p no:cacheprovider` (PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 in both)"
    )
    with tempfile.TemporaryDirectory(prefix="llmobs-bench-") as scratch:
        plugin_dir = make_suite(Path(scratch) / "plugin", PLUGIN_TEST, items)
        plain_dir = make_suite(Path(scratch) / "plain", PLAIN_TEST, items)
        store_dir = plugin_dir / ".llmobs"

        def fresh_store() -> None:
            shutil.rmtree(store_dir, ignore_errors=True)

        variants = {
            "plugin": runner(
                plugin_dir,
                ["-p", "pytest_llmobs.plugin", "--llm-model=mock-llm-v1"],
                items,
                before=fresh_store,
            ),
            "plain": runner(plain_dir, ["-p", "no:llmobs"], items),
        }
        started = time.perf_counter()
        times = interleaved(variants, rounds)
        stored = stored_items(store_dir)
        elapsed = time.perf_counter() - started
    plugin, plain = median(times["plugin"]), median(times["plain"])
    ratio = plugin / plain
    overhead_ms = (plugin - plain) / items * 1000
    for name, value in (("plugin", plugin), ("plain", plain)):
        rounds_s = " ".join(f"{t:.2f}" for t in times[name])
        section.say(
            f"{name:<7} {value:7.2f} s  {value / items * 1000:6.3f} ms/test   rounds: {rounds_s}"
        )
    section.say(f"overhead: {overhead_ms:.3f} ms per test; the plugin run stored {stored} items")
    section.say(f"(section took {elapsed:.0f} s)")
    section.figures = {
        "items": items,
        "rounds": rounds,
        "plugin_s": plugin,
        "plain_s": plain,
        "plugin_ms_per_test": plugin / items * 1000,
        "plain_ms_per_test": plain / items * 1000,
        "overhead_ms_per_test": overhead_ms,
        "stored_items": stored,
        "plugin_rounds_s": times["plugin"],
        "plain_rounds_s": times["plain"],
    }
    section.rows.append(
        Row(
            f"per-test: {items:,} llm_dataset items / parametrize",
            f"{plugin:.2f} s ({plugin / items * 1000:.2f} ms/test)",
            f"{plain:.2f} s ({plain / items * 1000:.2f} ms/test)",
            ratio,
            f"<= {TARGET_RATIO:g}x",
            verdict(ratio, "<=", TARGET_RATIO),
        )
    )
    return section


def main(argv: list[str] | None = None) -> None:
    section_main(run, __doc__, "100 items, 2 rounds (smoke)", argv)


if __name__ == "__main__":
    main()
