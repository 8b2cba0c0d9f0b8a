"""Cost per item of the built-in evaluators over a synthetic, deterministic dataset.

Run ``python benchmarks/evaluators.py [--items N] [--rounds R] [--quick]``. Prints a table of
microseconds per item (the median of the rounds, timed with `time.perf_counter`), how much a
per-item ``similarity(..., corpus=...)`` costs next to one ``similarity_many`` call, and how many
times the TF-IDF vectoriser was fitted for the whole dataset (1). Nothing is asserted.
"""

from __future__ import annotations

import argparse
import importlib
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

from pytest_llmobs.evaluators.basic import exact_match
from pytest_llmobs.evaluators.groundedness import groundedness
from pytest_llmobs.evaluators.similarity import similarity, similarity_many
from pytest_llmobs.evaluators.tfidf import cached_tfidf, clear_tfidf_cache

SEED = 20240601
SYLLABLES = ["ka", "lo", "mi", "ren", "tsu", "va", "dor", "el", "qui", "zan", "bo", "rha"]
RELATIONS = [
    ("capital", "The capital of {e} is {v}."),
    ("founder", "{e} was founded by {v}."),
    ("river", "The longest river in {e} is the {v}."),
    ("language", "People in {e} mostly speak {v}."),
    ("dish", "The national dish of {e} is {v} stew."),
]
PARAPHRASES = {
    "capital": "{v} is the capital city of {e}.",
    "founder": "{v} founded {e}.",
    "river": "The {v} is the longest river of {e}.",
    "language": "{v} is the main language spoken in {e}.",
    "dish": "{v} stew is the national dish of {e}.",
}
FILLER = [
    "Tourism grew steadily over the last decade.",
    "The climate is mild near the coast and colder inland.",
    "Its museums attract many visitors every summer.",
    "Rail lines connect the largest towns.",
]


@dataclass(frozen=True, slots=True)
class Item:
    question: str
    answer: str
    reference: str
    context: str


def _name(rng: random.Random) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 3))).capitalize()


def make_items(count: int, *, seed: int = SEED) -> list[Item]:
    """``count`` items: exact, paraphrased, partly hallucinated and wrong answers in equal parts."""
    rng = random.Random(seed)
    items = []
    for n in range(count):
        entity, fact_value = _name(rng), _name(rng)
        relation, template = RELATIONS[n % len(RELATIONS)]
        reference = template.format(e=entity, v=fact_value)
        context = " ".join([*rng.sample(FILLER, 2), reference, rng.choice(FILLER)])
        kind = n % 4
        if kind == 0:
            answer = reference
        elif kind == 1:
            answer = PARAPHRASES[relation].format(e=entity, v=fact_value)
        elif kind == 2:
            settlers, year = _name(rng), rng.randint(900, 1900)
            answer = f"{reference} It was first settled by {settlers} traders in {year}."
        else:
            answer = template.format(e=entity, v=_name(rng))
        items.append(Item(f"What is the {relation} of {entity}?", answer, reference, context))
    return items


def _fuzzy() -> tuple[str, Callable[[str, str], object]]:
    try:
        module = importlib.import_module("pytest_llmobs.evaluators.fuzzy")
        evaluator: Callable[[str, str], object] = module.fuzzy
    except (ImportError, AttributeError):
        from rapidfuzz import fuzz

        return "fuzzy (rapidfuzz.fuzz.ratio)", fuzz.ratio
    return "fuzzy", evaluator


def _median_us(rounds: int, count: int, run: Callable[[], object]) -> tuple[float, float]:
    """The median of ``rounds`` timings of ``run``: (microseconds per item, milliseconds total)."""
    timings = []
    for _ in range(rounds):
        start = time.perf_counter()
        run()
        timings.append(time.perf_counter() - start)
    median = statistics.median(timings)
    return median / count * 1e6, median * 1e3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--items", type=int, default=None, help="dataset size (default 1000)")
    parser.add_argument("--rounds", type=int, default=None, help="timed rounds (default 5)")
    parser.add_argument("--quick", action="store_true", help="smoke test: 50 items, 1 round")
    args = parser.parse_args(argv)
    count = args.items or (50 if args.quick else 1000)
    rounds = args.rounds or (1 if args.quick else 5)

    items = make_items(count)
    pairs = [(item.answer, item.reference) for item in items]
    corpus = [text for item in items for text in (item.question, item.reference, item.context)]
    fuzzy_label, fuzzy = _fuzzy()

    def per_item_similarity() -> list[object]:
        clear_tfidf_cache()  # each round pays for its one fit
        return [similarity(answer, reference, corpus=corpus) for answer, reference in pairs]

    def batched_similarity() -> list[object]:
        clear_tfidf_cache()
        return list(similarity_many(pairs, corpus=corpus))

    cases: list[tuple[str, Callable[[], object]]] = [
        ("exact_match", lambda: [exact_match(a, r) for a, r in pairs]),
        (fuzzy_label, lambda: [fuzzy(a, r) for a, r in pairs]),
        (
            "similarity, per item, no corpus (fit per pair)",
            lambda: [similarity(a, r) for a, r in pairs],
        ),
        ("similarity, per item, corpus (cached vectoriser)", per_item_similarity),
        ("similarity_many, corpus (vectorised once)", batched_similarity),
        ("groundedness", lambda: [groundedness(item.answer, item.context) for item in items]),
    ]
    similarity("warm up", "import scikit-learn before timing anything")

    print(f"{count} items, median of {rounds} round(s)")
    width = max(len(label) for label, _ in cases)
    print(f"{'evaluator':<{width}}  {'µs/item':>10}  {'ms total':>10}")
    print(f"{'-' * width}  {'-' * 10}  {'-' * 10}")
    per_item: dict[str, float] = {}
    for label, run in cases:
        micros, millis = _median_us(rounds, count, run)
        per_item[label] = micros
        print(f"{label:<{width}}  {micros:>10.1f}  {millis:>10.1f}")

    ratio = per_item[cases[3][0]] / per_item[cases[4][0]]
    print(f"\nper-item similarity / similarity_many: {ratio:.1f}x")

    clear_tfidf_cache()
    singles = [similarity(answer, reference, corpus=corpus) for answer, reference in pairs]
    per_item_fits = cached_tfidf(corpus).fit_count
    clear_tfidf_cache()
    batch = similarity_many(pairs, corpus=corpus)
    batch_fits = cached_tfidf(corpus).fit_count
    drift = max(abs(float(a) - float(b)) for a, b in zip(singles, batch, strict=True))
    print(f"vectoriser fits for the whole dataset: per item {per_item_fits}, batched {batch_fits}")
    print(f"largest per-item vs batched difference: {drift:.1e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
