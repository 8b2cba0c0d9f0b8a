"""Replaying recorded generations (``--llm-cache=read``) next to generating them on the mock model.

Run ``python benchmarks/cache_replay.py [--items N] [--rounds R] [--quick]``. Each row times N
distinct generations through the ``llm`` client (`pytest_llmobs.llm.LLM`, tracing included) with
`time.perf_counter` and prints milliseconds per item (the median of the rounds):

- ``mock-llm-v1 (no cache)``: the mock model answers every prompt;
- ``cache write (record)``: the mock model answers and each answer is written to its JSON file;
- ``cache replay (read)``: every answer is read back from the files; no model is called.

The cache lives in a fresh temporary directory. Nothing is asserted; ``--quick`` is a smoke run.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from pytest_llmobs.llm import LLM
from pytest_llmobs.providers import default_registry
from pytest_llmobs.providers.cache import CacheMode, ResponseCache
from pytest_llmobs.providers.capitals import CAPITALS
from pytest_llmobs.trace_model import Observation, Trace
from pytest_llmobs.tracing import activate

PHRASINGS = (
    "What is the capital of {}?",
    "Which city is the capital of {}?",
    "Name the capital city of {}.",
    "{}'s capital?",
)


def prompts(count: int) -> list[str]:
    """``count`` distinct capital-city prompts (numbered, so each has its own cache entry)."""
    countries = sorted(CAPITALS)
    return [
        f"Question {i}: "
        + PHRASINGS[i % len(PHRASINGS)].format(countries[(i // len(PHRASINGS)) % len(countries)])
        for i in range(count)
    ]


def per_item_ms(run: Callable[[], object], items: int, rounds: int) -> float:
    timings = []
    for _ in range(rounds):
        started = time.perf_counter()
        run()
        timings.append((time.perf_counter() - started) * 1000.0 / items)
    return statistics.median(timings)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="50 items, 1 round (smoke test)")
    args = parser.parse_args(argv)
    items, rounds = (50, 1) if args.quick else (args.items, args.rounds)
    questions = prompts(items)
    mock = default_registry().resolve("mock-llm-v1")

    with tempfile.TemporaryDirectory(prefix="llm-cache-") as tmp:
        directory = Path(tmp)
        plain = LLM(mock)
        writer = LLM(mock, cache=ResponseCache(directory, CacheMode.WRITE))
        reader = LLM(mock, cache=ResponseCache(directory, CacheMode.READ))
        with activate(Observation(Trace("benchmark"), "root")):

            def generate(llm: LLM) -> Callable[[], object]:
                return lambda: [llm.generate(q, temperature=0) for q in questions]

            rows = [
                ("mock-llm-v1 (no cache)", per_item_ms(generate(plain), items, rounds)),
                ("cache write (record)", per_item_ms(generate(writer), items, 1)),
                ("cache replay (read)", per_item_ms(generate(reader), items, rounds)),
            ]
        check = Trace("check")
        with activate(Observation(check, "root")):
            replayed = [reader.generate(q, temperature=0).text for q in questions]
        hits = sum(1 for o in check.observations if o.metadata.get("cache") == "hit")
        same = replayed == [plain.generate(q, temperature=0).text for q in questions]
        files = sum(1 for _ in directory.rglob("*.json"))
        size = sum(p.stat().st_size for p in directory.rglob("*.json"))

    print(f"{items:,} generations, median of {rounds} round(s)")
    print(f"{'':<26}{'ms/item':>10}")
    for name, value in rows:
        print(f"{name:<26}{value:>10.3f}")
    print(f"replayed from the cache: {hits}/{items}  (answers identical to the model's: {same})")
    print(f"cache files: {files:,}  ({size / files / 1024:.1f} KiB each on average)")


if __name__ == "__main__":
    main()
