"""Matching the items of two runs, their per-item values, and the items whose verdict flipped.

A case is one stored run item. Cases match on (dataset, item id, repeat index); a test without
a dataset item matches on its node id. When one dataset item is used by several tests in a run,
the test (node id without its repeat part) joins the key.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from pytest_llmobs.aggregate_model import strip_repeat_id
from pytest_llmobs.aggregate_names import KIND_CLASH, LABEL_EXPECTED
from pytest_llmobs.compare.model import FlippedItem
from pytest_llmobs.compare.stats import all_binary
from pytest_llmobs.repeats import item_verdict
from pytest_llmobs.safe_stats import mean_of

Key = tuple[Any, ...]


@dataclass(slots=True)
class Case:
    """One run item, with what comparison needs of it."""

    key: Key
    item_key: Key
    """The key without the repeat index: repeats of one item share it."""
    label: str
    dataset: str | None
    item: Mapping[str, Any]
    verdict: bool | None
    scores: dict[str, float]
    """Mean value of each numeric or boolean score on the item; none for an item the
    aggregates do not count (skipped, xfailed), whose scores stay out of the paired statistics
    as they stay out of ``mean_<score>``."""
    booleans: frozenset[str]
    """Scores whose every value on the item is a BOOLEAN."""


def _base(item: Mapping[str, Any]) -> tuple[str, str]:
    if item.get("dataset") is not None and item.get("item_id") is not None:
        return str(item["dataset"]), str(item["item_id"])
    return "", str(item["node_id"])


def _scores(item: Mapping[str, Any]) -> tuple[dict[str, float], frozenset[str]]:
    values: dict[str, list[float]] = defaultdict(list)
    not_boolean: set[str] = set()
    for score in (item.get("trace") or {}).get("scores", []):
        value = score.get("value")
        if score.get("data_type") == "CATEGORICAL" or not isinstance(value, bool | int | float):
            continue
        metadata = score.get("metadata") or {}
        if metadata.get(LABEL_EXPECTED) is not None or metadata.get(KIND_CLASH):
            continue
        name = str(score["name"])
        values[name].append(float(value))
        if score.get("data_type") != "BOOLEAN":
            not_boolean.add(name)
    means = {name: mean_of(v) for name, v in values.items()}
    return means, frozenset(set(means) - not_boolean)


def _test_of(item: Mapping[str, Any], detail: int) -> str:
    """The test part of a dataset item's key: none (0), the test function (1), or the whole
    node id, other parameters included (2: ``parametrize`` stacked on ``llm_dataset``)."""
    repeat = int(item.get("repeat") or 0)
    node = strip_repeat_id(str(item["node_id"]), repeat)
    return "" if detail == 0 else node if detail == 2 else node.partition("[")[0]


def _has_duplicates(items: Sequence[Mapping[str, Any]], detail: int) -> bool:
    counts = Counter((*_base(i), _test_of(i, detail), int(i.get("repeat") or 0)) for i in items)
    return any(count > 1 for count in counts.values())


def build_cases(items: Sequence[Mapping[str, Any]], *, detail: int) -> dict[Key, Case]:
    """The run's cases by key, ``detail`` as `_test_of`. A test run twice under one key (a test
    collected twice with ``--keep-duplicates``) gives a case per copy, matched copy for copy,
    and its copies form one item, as repeats do."""
    cases: dict[Key, Case] = {}
    copies: Counter[Key] = Counter()
    for item in items:
        dataset, ident = _base(item)
        repeat = int(item.get("repeat") or 0)
        test = _test_of(item, detail)
        item_key: Key = (dataset, ident, test) if test and dataset else (dataset, ident)
        key = (*item_key, repeat)
        copy = copies[key]
        copies[key] += 1
        label = f"{dataset}/{ident}" if dataset else ident
        if len(item_key) == 3:
            label += f" ({test})"
        if repeat:
            label += f"-r{repeat}"
        if copy:  # (the first copy keeps the key a run without duplicates has)
            key = (*key, f"copy {copy + 1}")
            label += f" (copy {copy + 1})"
        verdict = item_verdict(item)
        scores, booleans = _scores(item) if verdict is not None else ({}, frozenset())
        cases[key] = Case(
            key,
            item_key,
            label,
            str(item["dataset"]) if dataset else None,
            item,
            verdict,
            scores,
            booleans,
        )
    return cases


@dataclass(slots=True)
class Matching:
    pairs: list[tuple[Case, Case]]
    """(baseline, current) cases, in the current run's order."""
    only_in_baseline: list[str]
    only_in_current: list[str]


def match(baseline: Sequence[Mapping[str, Any]], current: Sequence[Mapping[str, Any]]) -> Matching:
    """Pair the runs' cases on (dataset, item id, repeat); with the test function too when one
    item runs in several tests, and with the whole node id when one test runs it several times
    (``parametrize`` stacked on the marker)."""
    detail = 0
    while detail < 2 and (_has_duplicates(baseline, detail) or _has_duplicates(current, detail)):
        detail += 1
    before = build_cases(baseline, detail=detail)
    after = build_cases(current, detail=detail)
    pairs = [(before[key], case) for key, case in after.items() if key in before]
    return Matching(
        pairs,
        [case.label for key, case in before.items() if key not in after],
        [case.label for key, case in after.items() if key not in before],
    )


PASS_RATE = "pass_rate"


class PairedValues(NamedTuple):
    baseline: list[float]
    current: list[float]
    boolean: bool
    """Pass/fail values (the pass rate, a BOOLEAN score): true, or a higher share, is better."""
    binary: bool
    """Boolean with one repeat per item and every value (of both runs) 0 or 1: McNemar's test
    applies. A test that records a boolean several times counts as its mean, which need not be
    (true and false: 0.5)."""


def paired_values(pairs: Iterable[tuple[Case, Case]], metric: str) -> PairedValues:
    """Per-item (baseline, current) values of ``metric`` (``pass_rate`` or a score name), each
    item's repeats averaged."""
    grouped: dict[Key, tuple[list[float], list[float]]] = {}
    boolean = True
    for before, after in pairs:
        if metric == PASS_RATE:
            b = None if before.verdict is None else float(before.verdict)
            c = None if after.verdict is None else float(after.verdict)
        else:
            b, c = before.scores.get(metric), after.scores.get(metric)
        if b is None or c is None:
            continue
        if metric != PASS_RATE:
            boolean = boolean and metric in before.booleans and metric in after.booleans
        slot = grouped.setdefault(after.item_key, ([], []))
        slot[0].append(b)
        slot[1].append(c)
    baseline = [mean_of(b) for b, _ in grouped.values()]
    current = [mean_of(c) for _, c in grouped.values()]
    single = all(len(b) == 1 for b, _ in grouped.values())
    boolean = boolean and bool(grouped)
    binary = boolean and single and all_binary(baseline) and all_binary(current)
    return PairedValues(baseline, current, boolean, binary)


def output_of(item: Mapping[str, Any]) -> Any:
    """The root observation's output, else the last generation's output."""
    observations = (item.get("trace") or {}).get("observations") or []
    root = next((o for o in observations if o.get("parent_id") is None), None)
    if root is not None and root.get("output") is not None:
        return root["output"]
    generations = [o for o in observations if o.get("type") == "generation"]
    return generations[-1].get("output") if generations else None


def _score_map(item: Mapping[str, Any]) -> dict[str, Any]:
    return {str(s["name"]): s.get("value") for s in (item.get("trace") or {}).get("scores", [])}


def passes(case: Case) -> bool | None:
    """An item passes when its test passed and none of its boolean scores is false (so suites
    that score without asserting flip too); ``None`` for a skipped test."""
    if case.verdict is None:
        return None
    return case.verdict and all(case.scores[name] == 1.0 for name in case.booleans)


def flips(pairs: Iterable[tuple[Case, Case]]) -> list[FlippedItem]:
    """Matched cases that went from pass to fail or back, or from pass to skipped (which the
    paired statistics leave out: listed so that skipping failures cannot hide them), with
    inputs, outputs and scores."""
    flipped = []
    for before, after in pairs:
        if before.item.get("stopped") or after.item.get("stopped"):
            continue  # broken off by Ctrl-C: no verdict either way (`repeats.item_verdict`)
        old_pass, new_pass = passes(before), passes(after)
        if old_pass and new_pass is None:
            direction = "pass->skipped"
        elif old_pass is None or new_pass is None or old_pass == new_pass:
            continue
        else:
            direction = "pass->fail" if old_pass else "fail->pass"
        old, new = _score_map(before.item), _score_map(after.item)
        scores = {
            name: [old.get(name), new.get(name)]
            for name in sorted(set(old) | set(new))
            if old.get(name) != new.get(name)
        }
        item = after.item
        flipped.append(
            FlippedItem(
                label=after.label,
                dataset=after.dataset,
                item_id=item.get("item_id"),
                node_id=str(item["node_id"]),
                repeat=int(item.get("repeat") or 0),
                direction=direction,
                baseline_outcome=str(before.item.get("outcome")),
                current_outcome=str(item.get("outcome")),
                input=item.get("input", before.item.get("input")),
                expected_output=item.get("expected_output", before.item.get("expected_output")),
                baseline_output=output_of(before.item),
                current_output=output_of(item),
                scores=scores,
            )
        )
    return flipped
