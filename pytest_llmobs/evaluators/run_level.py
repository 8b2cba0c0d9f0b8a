"""Run-level evaluators: confidence intervals, classification metrics, latency and tokens.

Intervals are 95% and say how they were made:

- boolean scores (a share of passes): the Wilson score interval, which stays inside 0..1 and is
  accurate at small n and at shares near 0 or 1;
- numeric scores: a percentile bootstrap of the mean, 2,000 resamples with a fixed seed (0), so
  the same values always give the same interval.

Classification metrics for ``label`` scores (predicted vs expected) come from scikit-learn,
imported only when a run has label scores.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

Z_95 = 1.959963984540054
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0


@dataclass(frozen=True, slots=True)
class Interval:
    low: float
    high: float
    method: str


def wilson_interval(successes: float, n: int, z: float = Z_95) -> Interval:
    """The Wilson score interval for a proportion of ``successes`` out of ``n`` (a share of a
    success counts: an item whose repeats passed half the time adds 0.5)."""
    if n <= 0:
        raise ValueError("wilson_interval needs n >= 1")
    if not 0 <= successes <= n:
        raise ValueError(f"wilson_interval needs 0 <= successes <= n, got {successes}/{n}")
    share = successes / n
    denominator = 1 + z * z / n
    centre = (share + z * z / (2 * n)) / denominator
    half = z * math.sqrt(share * (1 - share) / n + z * z / (4 * n * n)) / denominator
    # At 0 and n successes the bound is exactly 0 or 1; rounding would leave it just inside.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return Interval(low, high, "wilson")


def bootstrap_mean_interval(
    values: Sequence[float],
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
    confidence: float = 0.95,
) -> Interval:
    """Percentile bootstrap interval of the mean, deterministic for a given ``seed``.

    Resampling runs over the sorted values, so the same values in any order give the same
    interval.
    """
    n = len(values)
    if n == 0:
        raise ValueError("bootstrap_mean_interval needs at least one value")
    if min(values) == max(values):  # one value, or all equal: every resample has that mean
        return Interval(float(values[0]), float(values[0]), "bootstrap")
    import numpy as np

    data = np.sort(np.asarray(values, dtype=float))
    generator = np.random.default_rng(seed)
    means = np.empty(resamples)
    chunk = max(1, 2_000_000 // n)  # bound memory: at most ~2M indices at once
    for start in range(0, resamples, chunk):
        stop = min(resamples, start + chunk)
        indices = generator.integers(0, n, size=(stop - start, n))
        means[start:stop] = data[indices].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return Interval(float(low), float(high), "bootstrap")


def classification_metrics(
    expected: Sequence[str], predicted: Sequence[str]
) -> tuple[dict[str, float], dict[str, float]]:
    """(metrics, confusion counts) for label predictions.

    Metrics: accuracy, precision/recall/F1 macro and micro. Confusion counts are keyed
    `confusion_key` ``"<expected>-><predicted>"`` and include zero cells for every label pair
    seen.
    """
    if len(expected) != len(predicted) or not expected:
        raise ValueError("classification_metrics needs equally long, non-empty label lists")
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    labels = sorted(set(expected) | set(predicted))
    metrics = {"accuracy": float(accuracy_score(expected, predicted))}
    for average in ("macro", "micro"):
        precision, recall, f1, _ = precision_recall_fscore_support(
            expected, predicted, labels=labels, average=average, zero_division=0
        )
        metrics[f"precision_{average}"] = float(precision)
        metrics[f"recall_{average}"] = float(recall)
        metrics[f"f1_{average}"] = float(f1)
    # Counted here: sklearn's confusion_matrix warns when every label is the same one.
    pairs = Counter(zip(expected, predicted, strict=True))
    confusion = {
        confusion_key(want, got): float(pairs[(want, got)]) for want in labels for got in labels
    }
    return metrics, confusion


def _escape_label(label: str) -> str:
    return label.replace("\\", "\\\\").replace("->", "-\\>")


def confusion_key(expected: str, predicted: str) -> str:
    """The confusion cell of a pair: ``"<expected>-><predicted>"``, where a ``->`` inside a label
    is written ``-\\>`` (and a backslash ``\\\\``), so the first ``->`` always separates the
    two and no two pairs share a cell.

    >>> confusion_key("pos", "neg"), confusion_key("a->b", "c")
    ('pos->neg', 'a-\\\\>b->c')
    """
    return f"{_escape_label(expected)}->{_escape_label(predicted)}"


_ESCAPED = re.compile(r"\\\\|-\\>")


def split_confusion_key(key: str) -> tuple[str, str] | None:
    """The ``(expected, predicted)`` labels of a `confusion_key`, its escapes undone; ``None``
    for a key holding no ``->``.

    >>> split_confusion_key("a-\\\\>b->c"), split_confusion_key("tech\\\\\\\\login->x")
    (('a->b', 'c'), ('tech\\\\login', 'x'))
    """
    expected, arrow, predicted = key.partition("->")
    if not arrow:
        return None
    return _unescape_label(expected), _unescape_label(predicted)


def _unescape_label(text: str) -> str:
    return _ESCAPED.sub(lambda m: "\\" if m.group() == "\\\\" else "->", text)
