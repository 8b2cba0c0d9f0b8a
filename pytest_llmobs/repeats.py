"""Repeats: each dataset item run N times, and how much its outcome and scores vary.

``--llm-repeat=N`` (ini ``llm_repeat``) or ``repeat=N`` on the ``llm_dataset`` marker adds a
hidden parametrized argument, so ``test_capital[france]`` becomes ``test_capital[france-r0]``,
``test_capital[france-r1]``...; the repeat index is stored on each run item.

`RepeatTracker` follows the run's items and, at the end, adds per group (dataset and ``*``):

- ``flaky_items``: items whose verdicts (passed vs failed/error) differ across their repeats;
- ``flaky_rate``: ``flaky_items`` over the items with a verdict in two or more repeats (a
  skipped, xfailed or stopped repeat has none: an item skipped every time is no item that
  held steady, as it is no item in ``pass_rate``);
- ``mean_repeat_variance_<score>``: the sample variance of a numeric or boolean score across an
  item's repeats, averaged over items;

and a per-item summary (``flakiness``: the share of repeats whose verdict differs from the item's
majority verdict).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from pytest_llmobs.aggregate_model import Aggregate, strip_repeat_id
from pytest_llmobs.aggregate_names import (
    ALL_ITEMS,
    KIND_CLASH,
    LABEL_EXPECTED,
    REPEAT_VARIANCE_PREFIX,
)
from pytest_llmobs.reporting.printable import printable
from pytest_llmobs.safe_stats import mean_of, variance_of

REPEAT_ARGNAME = "_llmobs_repeat"
"""The hidden parametrized argument holding the repeat index."""

_SHOWN_FLAKY = 5


def parametrize_repeats(metafunc: pytest.Metafunc, count: int) -> None:
    """Run the test ``count`` times per existing parameter set, with ids ``r0``, ``r1``..."""
    metafunc.fixturenames.append(REPEAT_ARGNAME)
    metafunc.parametrize(REPEAT_ARGNAME, range(count), ids=[f"r{i}" for i in range(count)])


def repeat_index(item: pytest.Item) -> int:
    callspec = getattr(item, "callspec", None)
    return int(callspec.params.get(REPEAT_ARGNAME, 0)) if callspec is not None else 0


def verdict_of(outcome: str) -> bool | None:
    """True for passed, False for failed/error, None for skipped (not counted)."""
    if outcome == "passed":
        return True
    if outcome in ("failed", "error"):
        return False
    return None


def item_verdict(item: Mapping[str, Any]) -> bool | None:
    """`verdict_of` a run item's outcome; None for the test a stopped session broke off, or
    whose xdist worker crashed (``"stopped"``): Ctrl-C, `pytest.exit` or a dead worker says
    nothing of the model, so it is no repeat's verdict and no flip."""
    if item.get("stopped"):
        return None
    return verdict_of(str(item.get("outcome")))


def item_scores(item: Mapping[str, Any]) -> dict[str, list[float]]:
    """Numeric and boolean score values of one run item by name (label scores excluded)."""
    values: dict[str, list[float]] = defaultdict(list)
    for score in (item.get("trace") or {}).get("scores", []):
        if score.get("data_type") == "CATEGORICAL":
            continue
        metadata = score.get("metadata") or {}
        if metadata.get(LABEL_EXPECTED) is not None or metadata.get(KIND_CLASH):
            continue
        value = score.get("value")
        if isinstance(value, bool | int | float):
            values[str(score["name"])].append(float(value))
    return dict(values)


@dataclass(slots=True)
class _Case:
    repeat: int
    verdict: bool | None
    scores: dict[str, tuple[float, ...]]
    """As `item_scores` gives them, frozen: kept for every item of the run (see `RepeatTracker`)."""


@dataclass
class RepeatTracker:
    """Collects each dataset item's repeats as the run's items arrive."""

    _cases: dict[tuple[str, str, str], list[_Case]] = field(default_factory=dict)

    def add(self, item: Mapping[str, Any]) -> None:
        dataset, item_id = item.get("dataset"), item.get("item_id")
        if dataset is None or item_id is None:
            return
        repeat = int(item.get("repeat") or 0)
        key = (str(dataset), str(item_id), strip_repeat_id(str(item["node_id"]), repeat))
        verdict = item_verdict(item)
        self._cases.setdefault(key, []).append(
            _Case(
                repeat,
                verdict,
                # (a skipped or xfailed repeat's scores stay out, as of the score's aggregates)
                {name: tuple(values) for name, values in item_scores(item).items()}
                if verdict is not None
                else {},
            )
        )

    @property
    def repeated(self) -> bool:
        return any(len(cases) > 1 for cases in self._cases.values())

    def items(self) -> list[dict[str, Any]]:
        """Per item with a verdict in two or more repeats: repeats, passed, failed, flakiness,
        flaky, score variances. (An item with fewer can show no flakiness nor variance: left out,
        it does not pull ``flaky_rate`` down.)"""
        rows = []
        for (dataset, item_id, node_id), cases in sorted(self._cases.items()):
            verdicts = [c.verdict for c in cases if c.verdict is not None]
            if len(verdicts) < 2:
                continue
            passed = sum(verdicts)
            failed = len(verdicts) - passed
            variances = {}
            for name in sorted({n for c in cases for n in c.scores}):
                means = [mean_of(c.scores[name]) for c in cases if c.scores.get(name)]
                if len(means) > 1:
                    variances[name] = _sample_variance(means)
            rows.append(
                {
                    "dataset": dataset,
                    "item_id": item_id,
                    "node_id": node_id,
                    "repeats": len(cases),
                    "passed": passed,
                    "failed": failed,
                    "flakiness": min(passed, failed) / len(verdicts),
                    "flaky": passed > 0 and failed > 0,
                    "variance": variances,
                }
            )
        return rows

    def summary(self) -> dict[str, Any] | None:
        """What the run summary keeps (``None`` when no item ran more than once)."""
        if not self.repeated:
            return None
        rows = self.items()
        return {
            "max_repeats": max(len(cases) for cases in self._cases.values()),
            "items": rows,
            "flaky_items": sum(r["flaky"] for r in rows),
        }

    def add_aggregates(self, aggregates: dict[str, dict[str, Aggregate]]) -> None:
        """Add the flakiness and repeat-variance aggregates to each group that has repeats."""
        rows = self.items()
        if not rows:
            return
        groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in rows:
            groups[ALL_ITEMS].append(row)
            groups[row["dataset"]].append(row)
        for group, members in groups.items():
            target = aggregates.setdefault(group, {})
            n = len(members)
            flaky = sum(r["flaky"] for r in members)
            target["flaky_items"] = Aggregate("flaky_items", float(flaky), n)
            target["flaky_rate"] = Aggregate("flaky_rate", flaky / n, n)
            by_score: dict[str, list[float]] = defaultdict(list)
            for row in members:
                for name, variance in row["variance"].items():
                    by_score[name].append(variance)
            for name, variances in sorted(by_score.items()):
                key = f"{REPEAT_VARIANCE_PREFIX}{name}"
                target[key] = Aggregate(key, mean_of(variances), len(variances))


def _sample_variance(values: list[float]) -> float:
    return variance_of(values, mean_of(values))


def repeat_lines(summary: Mapping[str, Any] | None) -> list[str]:
    """Terminal lines: how many items repeated, how many flaky, and the flakiest few."""
    if not summary:
        return []
    rows = list(summary.get("items") or [])
    flaky = [r for r in rows if r.get("flaky")]
    head = f"repeats: up to {summary.get('max_repeats')} per item, "
    lines = [
        f"{head}{len(rows)} item(s) repeated, {len(flaky)} flaky ({len(flaky) / len(rows):.1%})"
        if rows
        else f"{head}no item with a verdict in two of them (skipped, xfailed or stopped)"
    ]
    variances: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        for name, variance in (row.get("variance") or {}).items():
            variances[name].append(variance)
    if variances:
        lines.append(
            "  score variance across repeats (mean over items): "
            + ", ".join(f"{n} {mean_of(v):.3f}" for n, v in sorted(variances.items()))
        )
    flaky.sort(key=lambda r: (-r["flakiness"], r["dataset"], r["item_id"]))
    for row in flaky[:_SHOWN_FLAKY]:
        item = printable(f"{row['dataset']}/{row['item_id']}")
        lines.append(
            f"  flaky {item}: passed {row['passed']}, failed "
            f"{row['failed']} of {row['repeats']} (flakiness {row['flakiness']:.2f})"
        )
    if len(flaky) > _SHOWN_FLAKY:
        lines.append(f"  ... and {len(flaky) - _SHOWN_FLAKY} more flaky item(s)")
    return lines
