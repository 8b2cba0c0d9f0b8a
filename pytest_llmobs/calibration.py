"""Calibration: how well an automated evaluator agrees with human labels on a stored run.

The labels (`pytest_llmobs.calibration_labels`) name items by ``item_id`` (or ``id``) or
``node_id``, optionally with a ``dataset``; they are pass/fail for boolean and numeric scores
(see `binary_label`), compared as strings for categorical ones.

Each labelled item is one test case: its score is the mean of every value it recorded, over its
repeats (``--llm-repeat``), each repeat's values averaged first, as the run's aggregates average
them. A boolean item whose values disagree has a mean between 0 and 1 (the share of true
values): the items' means are then compared with the best threshold, as a numeric score's are.
A categorical item is compared by its most common value; a tie leaves it out (reported). An
item id that several datasets (or test cases) score is ambiguous: a ``dataset`` column or
``--dataset`` picks the dataset, node ids the test case.

The best threshold ``score >= t`` has the highest accuracy, then the highest kappa, then is the
lowest. The candidates are every score seen (the lowest passes every item) and one just above the
highest, which fails every item: the highest score plus a step one digit finer than the scores'
spread, rounded to that step (``1.01`` for scores from 0.1 to 1.0, ``51`` for 3 to 50).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pytest_llmobs.aggregate_model import strip_repeat_id
from pytest_llmobs.aggregate_names import KIND_CLASH
from pytest_llmobs.calibration_labels import (
    CalibrationError,
    HumanLabel,
    binary_label,
    read_labels,
)
from pytest_llmobs.repeats import item_scores, item_verdict
from pytest_llmobs.reporting.printable import printable
from pytest_llmobs.safe_stats import mean_of

__all__ = ["CalibrationError", "CalibrationReport", "HumanLabel", "calibrate", "read_labels"]


@dataclass(slots=True)
class CalibrationReport:
    score: str
    data_type: str
    n: int
    accuracy: float
    kappa: float
    confusion: dict[str, dict[str, int]]
    """human label → automated verdict → count."""
    threshold: float | None = None
    auc: float | None = None
    unmatched_labels: list[str] = field(default_factory=list)
    unlabelled_items: list[str] = field(default_factory=list)
    averaged_items: int = 0
    """Labelled items with several values (repeats, or the score recorded more than once)."""
    disagreeing_items: list[str] = field(default_factory=list)
    """Labelled boolean or categorical items whose values differ."""
    tied_items: list[str] = field(default_factory=list)
    """Labelled categorical items left out: their most common values tie."""
    dataset: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        of = "" if self.dataset is None else f" of dataset {printable(self.dataset)}"
        lines = [
            f"calibration of score {self.score!r} ({self.data_type}){of} against {self.n} "
            "human labels"
        ]
        if self.threshold is not None:
            lines.append(f"best threshold: {printable(self.score)} >= {_exact(self.threshold)}")
        lines.append(
            f"accuracy {self.accuracy:.3f}  Cohen's kappa {self.kappa:.3f}"
            + (f"  ROC AUC {self.auc:.3f}" if self.auc is not None else "")
        )
        verdicts = sorted({v for row in self.confusion.values() for v in row})
        humans = [(printable(h), h) for h in sorted(self.confusion)]
        width = max([len("human \\ auto"), *(len(shown) for shown, _ in humans)])
        lines.append("confusion (rows: human, columns: automated):")
        lines.append(
            "  " + "human \\ auto".ljust(width) + "".join(f"  {printable(v):>8}" for v in verdicts)
        )
        for shown, human in humans:
            row = self.confusion[human]
            lines.append(
                "  " + shown.ljust(width) + "".join(f"  {row.get(v, 0):>8}" for v in verdicts)
            )
        return lines + self._notes()

    def _notes(self) -> list[str]:
        categorical = self.data_type == "CATEGORICAL"
        notes = []
        if self.averaged_items:
            notes.append(
                f"{self.averaged_items} item(s) have several values (repeats, or the score "
                "recorded more than once): each is compared by "
                + ("its most common value" if categorical else "its mean")
            )
        for names, what in (
            (
                self.disagreeing_items,
                "item(s) have values that disagree ("
                + (
                    "their most common value is compared"
                    if categorical
                    else "their share of true values is compared with the best threshold"
                )
                + ")",
            ),
            (self.tied_items, "labelled item(s) left out, their most common values tie"),
            (self.unmatched_labels, "label(s) match no item"),
            (self.unlabelled_items, "scored item(s) have no label"),
        ):
            if names:
                notes.append(f"{len(names)} {what}: {_first_ten(names)}")
        return notes


def _exact(value: float) -> str:
    """``0.5``, ``51``: the shortest figure that is ``value`` itself (2/3 as
    ``0.6666666666666666``: a rounded 0.666667 would fail the items it was chosen to pass)."""
    short = f"{value:g}"
    return short if float(short) == value else repr(value)


def _first_ten(names: list[str]) -> str:
    more = f" and {len(names) - 10} more" if len(names) > 10 else ""
    return ", ".join(printable(name) for name in names[:10]) + more


@dataclass(slots=True)
class _Case:
    """One scored test case and its values of the score, over its runs (repeats)."""

    dataset: str | None
    item_id: str | None
    case_id: str
    """The node id without the repeat part."""
    node_ids: list[str] = field(default_factory=list)
    """The node id of each run of the case."""
    means: list[float] = field(default_factory=list)
    """Each run's mean of a numeric or boolean score."""
    values: list[str] = field(default_factory=list)
    """Every value of a categorical score, over the runs."""
    count: int = 0
    """Values recorded, over the runs."""
    name: str = ""
    """How the report names it."""

    @property
    def node_id(self) -> str:
        """The node id a label names: a repeated case's, else the test's own."""
        return self.node_ids[0] if len(self.node_ids) == 1 else self.case_id

    def key(self, column: str) -> str:
        return self.node_id if column == "node_id" else str(self.item_id)

    def most_common(self) -> str | None:
        """The most common categorical value; None for a tie."""
        ranked = Counter(self.values).most_common(2)
        return None if len(ranked) > 1 and ranked[0][1] == ranked[1][1] else ranked[0][0]


def _cases(
    items: Iterable[Mapping[str, Any]], score: str, key: str
) -> tuple[list[_Case], set[str]]:
    """The test cases that recorded ``score`` (with an item id unless keyed by node id) and
    the score's data types."""
    cases: dict[tuple[str | None, str | None, str], _Case] = {}
    data_types: set[str] = set()
    for item in items:
        entries = [
            entry
            for entry in (item.get("trace") or {}).get("scores", [])
            if entry.get("name") == score and not (entry.get("metadata") or {}).get(KIND_CLASH)
        ]
        item_id = None if item.get("item_id") is None else str(item["item_id"])
        if not entries or (item_id is None and key != "node_id") or item_verdict(item) is None:
            continue  # (skipped, xfailed, stopped: out of the aggregates, and out of here)
        values = item_scores(item).get(score)
        categories = [str(e["value"]) for e in entries if e.get("data_type") == "CATEGORICAL"]
        if not values and not categories:
            continue
        data_types.update(str(entry.get("data_type")) for entry in entries)
        dataset = None if item.get("dataset") is None else str(item["dataset"])
        node_id = str(item.get("node_id"))
        case_id = strip_repeat_id(node_id, int(item.get("repeat") or 0))
        # keyed as `RepeatTracker` keys an item's repeats
        case = cases.setdefault((dataset, item_id, case_id), _Case(dataset, item_id, case_id))
        case.node_ids.append(node_id)
        case.count += len(entries)
        if values:
            case.means.append(mean_of(values))
        case.values += categories
    datasets = {case.dataset for case in cases.values()}
    for case in cases.values():
        case.name = case.key(key)
        if key != "node_id" and len(datasets) > 1:
            case.name = f"{case.dataset}/{case.name}"
    return list(cases.values()), data_types


def _match(
    labels: Sequence[HumanLabel], cases: Sequence[_Case], key: str, path: Path
) -> list[tuple[HumanLabel, _Case]]:
    """Each label with the one test case it names; a label naming none is left out."""
    matched: list[tuple[HumanLabel, _Case]] = []
    first_line: dict[int, int] = {}
    named: dict[str, list[_Case]] = defaultdict(list)
    for case in cases:
        named[case.key(key)].append(case)
    repeat_of = {n: c.case_id for c in cases if len(c.node_ids) > 1 for n in c.node_ids}
    for label in labels:
        where = f"{path}:{label.line}"
        if key == "node_id" and label.key not in named and label.key in repeat_of:
            raise CalibrationError(
                f"{where}: node_id {label.key!r} is one repeat of {repeat_of[label.key]!r}; "
                "label the test case by that node id (the mean of its repeats is compared)"
            )
        found = [
            case
            for case in named.get(label.key, [])
            if label.dataset is None or case.dataset == label.dataset
        ]
        datasets = sorted({str(case.dataset) for case in found})
        if len(datasets) > 1:
            raise CalibrationError(
                f"{where}: {key} {label.key!r} is in datasets {', '.join(datasets)} of the run; "
                "add a 'dataset' column to the labels or pass --dataset NAME"
            )
        if len(found) > 1:
            raise CalibrationError(
                f"{where}: {key} {label.key!r} is scored by {len(found)} test cases "
                f"({', '.join(case.case_id for case in found)}); label them by node_id"
            )
        if not found:
            continue
        earlier = first_line.setdefault(id(found[0]), label.line)
        if earlier != label.line:
            raise CalibrationError(
                f"{where}: a second label for {key} {found[0].name!r} (the first is on line "
                f"{earlier}); give one label per item"
            )
        matched.append((label, found[0]))
    return matched


def calibrate(
    items: Sequence[Mapping[str, Any]],
    labels_path: Path,
    score: str,
    dataset: str | None = None,
) -> CalibrationReport:
    """Compare the run's ``score`` per item with the human labels in ``labels_path``;
    ``dataset``: only that dataset's items."""
    key, labels = read_labels(labels_path)
    if dataset is not None:
        known = sorted({str(i["dataset"]) for i in items if i.get("dataset") is not None})
        if dataset not in known:
            raise CalibrationError(
                f"--dataset {dataset!r}: the run has no such dataset; its datasets: "
                f"{', '.join(known) or '(none)'}"
            )
        items = [item for item in items if item.get("dataset") == dataset]
    cases, data_types = _cases(items, score, key)
    if not cases:
        known = sorted({s["name"] for i in items for s in (i.get("trace") or {}).get("scores", [])})
        raise CalibrationError(
            f"no item with a {key} has a score {score!r} (labels are matched by {key}; use "
            f"node_id to match plain tests); scores in the run: {', '.join(known) or '(none)'}"
        )
    if len(data_types) > 1:
        raise CalibrationError(f"score {score!r} has mixed data types: {sorted(data_types)}")
    data_type = data_types.pop()
    matched = _match(labels, cases, key, labels_path)
    if not matched:
        raise CalibrationError(
            f"none of the {len(labels)} labels in {labels_path} matches an item by {key}; "
            f"item {key}s look like: {', '.join(c.key(key) for c in cases[:3])}"
        )
    labelled, used = {id(case) for _, case in matched}, {label for label, _ in matched}
    report = CalibrationReport(
        score, data_type, len(matched), 0.0, 0.0, {}, dataset=dataset,
        unmatched_labels=[label.name for label in labels if label not in used],
        unlabelled_items=list(dict.fromkeys(c.name for c in cases if id(c) not in labelled)),
        averaged_items=sum(case.count > 1 for _, case in matched),
    )  # fmt: skip
    if data_type == "CATEGORICAL":
        _compare_categories(report, matched)
    else:
        _compare_verdicts(report, matched, labels_path)
    return report


def _compare_categories(
    report: CalibrationReport, matched: Sequence[tuple[HumanLabel, _Case]]
) -> None:
    human, auto = [], []
    for label, case in matched:
        if len(set(case.values)) > 1:
            report.disagreeing_items.append(case.name)
        value = case.most_common()
        if value is None:
            report.tied_items.append(case.name)
        else:
            human.append(label.label)
            auto.append(value)
    if not human:
        raise CalibrationError(
            f"score {report.score!r}: every labelled item's most common values tie; nothing to "
            "compare"
        )
    report.n = len(human)
    _agreement(report, human, auto)


def _compare_verdicts(
    report: CalibrationReport, matched: Sequence[tuple[HumanLabel, _Case]], path: Path
) -> None:
    truth = [binary_label(label.label, f"{path}:{label.line}") for label, _ in matched]
    values = [mean_of(case.means) for _, case in matched]
    if report.data_type == "BOOLEAN":
        report.disagreeing_items = [
            case.name for (_, case), v in zip(matched, values, strict=True) if 0.0 < v < 1.0
        ]
    if report.data_type == "BOOLEAN" and not report.disagreeing_items:
        predicted = [v == 1.0 for v in values]
    else:  # numeric, or the share of true values of booleans that disagree
        from sklearn.metrics import roc_auc_score

        report.threshold = _best_threshold(truth, values)
        predicted = [v >= report.threshold for v in values]
        if len(set(truth)) == 2:
            report.auc = float(roc_auc_score(truth, values))
    verdict = {True: "pass", False: "fail"}
    _agreement(report, [verdict[t] for t in truth], [verdict[p] for p in predicted])


def _agreement(report: CalibrationReport, human: list[str], auto: list[str]) -> None:
    from sklearn.metrics import accuracy_score

    for want, got in zip(human, auto, strict=True):
        report.confusion.setdefault(want, {}).setdefault(got, 0)
        report.confusion[want][got] += 1
    report.accuracy = float(accuracy_score(human, auto))
    report.kappa = _kappa(human, auto)


def _kappa(human: Sequence[object], auto: Sequence[object]) -> float:
    from sklearn.metrics import cohen_kappa_score

    if len(set(human) | set(auto)) < 2:  # one class everywhere: perfect agreement, kappa undefined
        return 1.0
    return float(cohen_kappa_score(human, auto))


def _best_threshold(truth: list[bool], values: list[float]) -> float:
    best: tuple[float, float, float] | None = None
    for candidate in [*sorted(set(values)), _above(values)]:
        predicted = [v >= candidate for v in values]
        accuracy = sum(p == t for p, t in zip(predicted, truth, strict=True)) / len(truth)
        key = (accuracy, _kappa(truth, predicted), -candidate)
        if best is None or key > best:
            best = key
    assert best is not None
    return -best[2]


def _above(values: list[float]) -> float:
    """A round threshold just above ``max(values)``, so that every value falls below it.

    >>> _above([0.1, 0.5, 1.0]), _above([3.0, 50.0]), _above([0.0])
    (1.01, 51.0, 0.1)
    """
    top = max(values)
    spread = top - min(values) or abs(top) or 1.0
    exponent = math.floor(math.log10(spread)) - 1
    return round(top + 10.0**exponent, max(-exponent, 0))
