"""Calibration: how well an automated evaluator agrees with human labels on a stored run.

The labels file is CSV with a ``label`` column and a key column: ``item_id`` (or ``id``, the
dataset item id) or ``node_id`` (the pytest node id). For boolean and numeric scores, human
labels are pass/fail (``1/0``, ``true/false``, ``yes/no``, ``pass/fail``, ``good/bad``,
``correct/incorrect``); for categorical scores they are compared as strings. For a numeric score
the report includes the threshold ``score >= t`` that best matches the labels (highest accuracy,
then highest kappa, then the lowest such threshold). The candidates are every score seen (the
lowest passes every item) and one just above the highest, which fails every item: the highest
score plus a step one digit finer than the scores' spread, rounded to that step (``1.01`` for
scores from 0.1 to 1.0, ``51`` for 3 to 50).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_llmobs.reporting.printable import printable

_TRUE = frozenset({"1", "true", "yes", "y", "pass", "passed", "good", "correct", "t"})
_FALSE = frozenset({"0", "false", "no", "n", "fail", "failed", "bad", "incorrect", "f"})
_KEY_COLUMNS = ("item_id", "id", "node_id")


class CalibrationError(ValueError):
    """The labels file or the score cannot be used; the message says which line or value."""


@dataclass(frozen=True, slots=True)
class HumanLabel:
    key: str
    label: str
    line: int


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

    def to_dict(self) -> dict[str, Any]:
        return {
            "score": self.score,
            "data_type": self.data_type,
            "n": self.n,
            "accuracy": self.accuracy,
            "kappa": self.kappa,
            "confusion": self.confusion,
            "threshold": self.threshold,
            "auc": self.auc,
            "unmatched_labels": self.unmatched_labels,
            "unlabelled_items": self.unlabelled_items,
        }

    def lines(self) -> list[str]:
        lines = [
            f"calibration of score {self.score!r} ({self.data_type}) against {self.n} human labels"
        ]
        if self.threshold is not None:
            lines.append(f"best threshold: {printable(self.score)} >= {self.threshold:g}")
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
        if self.unmatched_labels:
            lines.append(
                f"{len(self.unmatched_labels)} label(s) match no item: "
                + _first_ten(self.unmatched_labels)
            )
        if self.unlabelled_items:
            lines.append(
                f"{len(self.unlabelled_items)} scored item(s) have no label: "
                + _first_ten(self.unlabelled_items)
            )
        return lines


def _first_ten(names: list[str]) -> str:
    more = f" and {len(names) - 10} more" if len(names) > 10 else ""
    return ", ".join(printable(name) for name in names[:10]) + more


def read_labels(path: Path) -> tuple[str, list[HumanLabel]]:
    """The key column used and the labels of a CSV file."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise CalibrationError(f"{path}: cannot read labels ({exc})") from None
    reader = csv.DictReader(text.splitlines())
    header = [h.strip() for h in reader.fieldnames or []]
    key = next((k for k in _KEY_COLUMNS if k in header), None)
    if key is None or "label" not in header:
        raise CalibrationError(
            f"{path}:1: expected a 'label' column and one of {', '.join(_KEY_COLUMNS)}; "
            f"got {', '.join(header) or '(no header)'}"
        )
    labels = []
    first_line: dict[str, int] = {}
    for row in reader:
        values = {k.strip(): (v or "").strip() for k, v in row.items() if k is not None}
        line = reader.line_num
        if not values.get(key) or not values.get("label"):
            raise CalibrationError(f"{path}:{line}: empty {key!r} or 'label'")
        earlier = first_line.setdefault(values[key], line)
        if earlier != line:  # counted twice, two labels would weigh one item double
            raise CalibrationError(
                f"{path}:{line}: a second label for {key} {values[key]!r} (the first is on "
                f"line {earlier}); give one label per item"
            )
        labels.append(HumanLabel(values[key], values["label"], line))
    if not labels:
        raise CalibrationError(f"{path}: no labels")
    return key, labels


def _binary(value: str, where: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise CalibrationError(
        f"{where}: label {value!r} is not pass/fail; use one of 1/0, true/false, yes/no, "
        "pass/fail, good/bad, correct/incorrect"
    )


def _scores(items: Iterable[Mapping[str, Any]], score: str, key: str) -> dict[str, tuple[Any, str]]:
    found: dict[str, tuple[Any, str]] = {}
    for item in items:
        item_key = item.get("node_id") if key == "node_id" else item.get("item_id")
        if item_key is None:
            continue
        for entry in (item.get("trace") or {}).get("scores", []):
            if entry["name"] == score:
                found.setdefault(str(item_key), (entry["value"], entry["data_type"]))
                break
    return found


def calibrate(
    items: Sequence[Mapping[str, Any]], labels_path: Path, score: str
) -> CalibrationReport:
    """Compare the run's ``score`` per item with the human labels in ``labels_path``."""
    key, labels = read_labels(labels_path)
    scored = _scores(items, score, key)
    if not scored:
        known = sorted({s["name"] for i in items for s in (i.get("trace") or {}).get("scores", [])})
        raise CalibrationError(
            f"no item with a {key} has a score {score!r} (labels are matched by {key}; use "
            f"node_id to match plain tests); scores in the run: {', '.join(known) or '(none)'}"
        )
    data_types = {t for _, t in scored.values()}
    if len(data_types) > 1:
        raise CalibrationError(f"score {score!r} has mixed data types: {sorted(data_types)}")
    data_type = data_types.pop()
    matched = [(label, scored[label.key][0]) for label in labels if label.key in scored]
    if not matched:
        raise CalibrationError(
            f"none of the {len(labels)} labels in {labels_path} matches an item by {key}; "
            f"item {key}s look like: {', '.join(list(scored)[:3])}"
        )
    labelled = {label.key for label in labels}
    report_extra = {
        "unmatched_labels": [lab.key for lab in labels if lab.key not in scored],
        "unlabelled_items": [k for k in scored if k not in labelled],
    }
    from sklearn.metrics import accuracy_score, cohen_kappa_score, roc_auc_score

    if data_type == "CATEGORICAL":
        human = [label.label for label, _ in matched]
        auto = [str(value) for _, value in matched]
        threshold = auc = None
    else:
        truth = [_binary(label.label, f"{labels_path}:{label.line}") for label, _ in matched]
        values = [float(value) for _, value in matched]
        threshold, auc = None, None
        if data_type == "NUMERIC":
            threshold = _best_threshold(truth, values)
            predicted = [v >= threshold for v in values]
            if len(set(truth)) == 2:
                auc = float(roc_auc_score(truth, values))
        else:
            predicted = [bool(v) for v in values]
        human = ["pass" if t else "fail" for t in truth]
        auto = ["pass" if p else "fail" for p in predicted]
    confusion: dict[str, dict[str, int]] = {}
    for want, got in zip(human, auto, strict=True):
        confusion.setdefault(want, {}).setdefault(got, 0)
        confusion[want][got] += 1
    return CalibrationReport(
        score=score,
        data_type=data_type,
        n=len(matched),
        accuracy=float(accuracy_score(human, auto)),
        kappa=_kappa(human, auto, cohen_kappa_score),
        confusion=confusion,
        threshold=threshold,
        auc=auc,
        **report_extra,
    )


def _kappa(human: list[str], auto: list[str], cohen_kappa_score: Any) -> float:
    if len(set(human) | set(auto)) < 2:  # one class everywhere: perfect agreement, kappa undefined
        return 1.0
    return float(cohen_kappa_score(human, auto))


def _best_threshold(truth: list[bool], values: list[float]) -> float:
    from sklearn.metrics import cohen_kappa_score

    best: tuple[float, float, float] | None = None
    for candidate in [*sorted(set(values)), _above(values)]:
        predicted = [v >= candidate for v in values]
        accuracy = sum(p == t for p, t in zip(predicted, truth, strict=True)) / len(truth)
        kappa = (
            float(cohen_kappa_score(truth, predicted))
            if len(set(truth) | set(predicted)) > 1
            else 1.0
        )
        key = (accuracy, kappa, -candidate)
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
