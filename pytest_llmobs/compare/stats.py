"""Paired statistics for comparing two runs item by item, and the verdict rule of the gate.

Everything here is pure maths on per-item values (numpy is imported lazily):

- `paired_bootstrap_interval`: a percentile bootstrap of the mean paired difference
  ``current - baseline``, resampling items with a fixed seed. Resampling ``n`` items with
  replacement is the same as drawing how often each distinct difference occurs from a
  multinomial, which is what it does: the cost grows with the number of distinct differences,
  not with the number of items, and the same values in any order give the same interval.
- `mcnemar_mid_p`: the two-sided McNemar mid-p test, a binomial test on the discordant pairs.
- `paired_test`: both, for one metric; `judge`: the verdict (regression, improvement, no
  significant change) and whether it breaks the gate.

`benchmarks/gate_power.py` measures the false-alarm and detection rates of exactly these
functions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pytest_llmobs.safe_stats import clamp, overflow_scale

BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0
CONFIDENCE = 0.95
ALPHA = 0.05
"""Significance level of the two-sided McNemar test (and ``1 - CONFIDENCE``)."""

MIN_CHANGED = 5
"""Fewest items that must differ between the runs before a bootstrap interval may call a
change significant: with 4, all moving the same way happens by chance 1 time in 16, yet the
percentile bootstrap already excludes 0 (it cannot see that so few items carry the change)."""

DROP_NOISE = 1e-9
"""Relative difference below which a drop counts as equal to ``--llm-max-drop``: float
arithmetic on means leaves errors near 1e-16 of the values, far below any drop one would set."""

LOWER_IS_BETTER = ("latency", "cost", "tokens")
"""An aggregate whose name contains one of these gets better as it goes down (unless it is the
share of a pass/fail score, such as ``mean_latency_ok``: true is a pass whatever the name)."""

Verdict = Literal["regression", "improvement", "no significant change", "not tested"]
VERDICTS: tuple[Verdict, ...] = ("regression", "improvement", "no significant change", "not tested")


def higher_is_better(name: str, *, pass_fail: bool = False) -> bool:
    """Direction of an aggregate: lower is better for latency, cost and token counts, except
    for the share of ``pass_fail`` values (a BOOLEAN score, the pass rate): true is a pass."""
    if pass_fail:
        return True
    lowered = name.lower()
    return not any(word in lowered for word in LOWER_IS_BETTER)


def mcnemar_mid_p(losses: int, wins: int) -> float:
    """The McNemar mid-p value, two-sided, for ``losses`` (pass -> fail) and ``wins`` (fail ->
    pass).

    Under no change each discordant pair is a loss or a win with probability 1/2. The exact
    test's p is twice the binomial tail of the rarer kind; the mid-p counts the observed count
    itself once, not twice (twice P(X < k) plus P(X = k)). The exact test keeps well under its
    nominal level with few discordant pairs; the mid-p keeps close to it (Fagerland, Lydersen
    and Laake, BMC Medical Research Methodology 13:91, 2013). 1 without discordant pairs;
    exact integers throughout.
    """
    if losses < 0 or wins < 0:
        raise ValueError(f"mcnemar_mid_p needs counts >= 0, got {losses} and {wins}")
    n = losses + wins
    if n == 0:
        return 1.0
    rarer = min(losses, wins)
    term, below = 1, 0  # C(n, 0); the sum of C(n, j) for j < k
    for k in range(rarer):
        below += term
        term = term * (n - k) // (k + 1)  # C(n, k + 1), exact
    # (2 * below + term) / 2**n, as an exact ratio of integers, then capped at 1.
    return min(1.0, (2 * below + term) / (1 << n))


@dataclass(frozen=True, slots=True)
class PairedInterval:
    """A bootstrap interval of the mean paired difference ``current - baseline``."""

    estimate: float
    low: float
    high: float
    n: int


def paired_bootstrap_interval(
    baseline: Sequence[float],
    current: Sequence[float],
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
    confidence: float = CONFIDENCE,
) -> PairedInterval:
    """Percentile bootstrap interval of ``mean(current - baseline)`` over paired items.

    Deterministic for a given ``seed``; pairs are resampled whole, so the correlation between
    the two runs (most items pass or fail in both) narrows the interval as it should.
    """
    differences = _differences(baseline, current)
    n = len(differences)
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence!r}")
    scale = overflow_scale([*baseline, *current])
    if scale != 1.0:
        scaled = paired_bootstrap_interval(
            [b / scale for b in baseline],
            [c / scale for c in current],
            resamples=resamples,
            seed=seed,
            confidence=confidence,
        )
        low, estimate, high = (clamp(v * scale) for v in (scaled.low, scaled.estimate, scaled.high))
        return PairedInterval(estimate, low, high, n)
    import numpy as np

    estimate = math.fsum(differences.tolist()) / n
    values, counts = np.unique(differences, return_counts=True)
    if len(values) == 1:  # every resample has the same mean
        return PairedInterval(estimate, estimate, estimate, n)
    generator = np.random.default_rng(seed)
    draws = generator.multinomial(n, counts / n, size=resamples)
    means = draws @ values / n
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    # The bootstrap means are sums of the same values: keep float noise from putting the
    # bounds outside the observed range.
    low = max(float(low), float(values[0]))
    high = min(float(high), float(values[-1]))
    return PairedInterval(estimate, low, high, n)


def _differences(baseline: Sequence[float], current: Sequence[float]) -> Any:
    """``current - baseline`` as a float array; unequal or empty inputs raise `ValueError`."""
    if len(baseline) != len(current):
        raise ValueError(
            f"paired values need equal lengths; got {len(baseline)} baseline and "
            f"{len(current)} current values"
        )
    if len(baseline) == 0:
        raise ValueError("paired statistics need at least one pair")
    import numpy as np

    with np.errstate(over="ignore"):  # values near the float limit: callers scale them first
        return np.asarray(current, dtype=float) - np.asarray(baseline, dtype=float)


@dataclass(frozen=True, slots=True)
class PairedTest:
    """The paired statistics of one metric over matched items.

    ``losses``/``wins``/``p_value`` are set for values that are all 0 or 1, one repeat per item
    (McNemar's mid-p); ``None`` otherwise.
    """

    interval: PairedInterval
    changed: int = 0
    """Items whose value differs between the runs."""
    losses: int | None = None
    wins: int | None = None
    p_value: float | None = None

    @property
    def n(self) -> int:
        return self.interval.n

    def to_dict(self) -> dict[str, Any]:
        return {
            "estimate": self.interval.estimate,
            "ci_low": self.interval.low,
            "ci_high": self.interval.high,
            "n": self.interval.n,
            "changed": self.changed,
            "losses": self.losses,
            "wins": self.wins,
            "p_value": self.p_value,
        }


def paired_test(
    baseline: Sequence[float],
    current: Sequence[float],
    *,
    binary: bool,
    seed: int = BOOTSTRAP_SEED,
    resamples: int = BOOTSTRAP_RESAMPLES,
) -> PairedTest:
    """Bootstrap interval for every metric, plus McNemar's mid-p when ``binary`` (pass/fail
    values, one repeat per item) and every value of both runs is exactly 0 or 1: an item's mean
    of several booleans (0.5) is no pass or fail, and those pairs get the numeric test alone."""
    interval = paired_bootstrap_interval(baseline, current, seed=seed, resamples=resamples)
    differences = _differences(baseline, current)  # inf where it overflows: still non-zero
    changed = int((differences != 0).sum())
    if not (binary and all_binary(baseline) and all_binary(current)):
        return PairedTest(interval, changed)
    import numpy as np

    before, after = np.asarray(baseline, dtype=float), np.asarray(current, dtype=float)
    losses = int(((before == 1) & (after == 0)).sum())
    wins = int(((before == 0) & (after == 1)).sum())
    return PairedTest(interval, changed, losses, wins, mcnemar_mid_p(losses, wins))


def all_binary(values: Sequence[float]) -> bool:
    """Whether every value is exactly 0 or 1 (a pass or a fail: McNemar's test applies)."""
    return all(value in (0.0, 1.0) for value in values)


def significant_change(test: PairedTest) -> int:
    """-1 for a significant decrease, +1 for a significant increase, 0 for neither.

    Binary values with single repeats (pass/fail, booleans): the McNemar mid-p value below
    `ALPHA` decides, signed by the difference (the percentile bootstrap alone, or with the
    exact test's p, could flag a change next to a printed p above 0.05). Other values: the
    bootstrap interval lies entirely on one side of 0 with at least `MIN_CHANGED` items
    changed. `benchmarks/gate_power.py` measures the false alarms and detection this gives.
    """
    estimate = test.interval.estimate
    if test.p_value is not None:
        if test.p_value >= ALPHA:
            return 0
        return -1 if estimate < 0 else 1 if estimate > 0 else 0
    trusted = test.changed >= MIN_CHANGED
    if trusted and test.interval.high < 0:
        return -1
    if trusted and test.interval.low > 0:
        return 1
    return 0


def interval_untrusted(test: PairedTest) -> bool:
    """The interval excludes 0, yet the change is not significant: too few items changed, or
    (binary values) McNemar's p is not below `ALPHA`."""
    excludes = test.interval.high < 0 or test.interval.low > 0
    return excludes and significant_change(test) == 0


def judge(
    test: PairedTest, *, name: str, delta: float, max_drop: float = 0.0, pass_fail: bool = False
) -> tuple[Verdict, bool]:
    """(verdict, fails the gate) for aggregate ``name`` changed by ``delta`` (``pass_fail``: a
    share of pass/fail values; see `higher_is_better`).

    A significant change in the worse direction is a ``regression``; it fails the gate only
    when it is also larger than ``max_drop`` (absolute, on the aggregate's scale). A drop equal
    to ``max_drop`` but for float noise is within it (0.7 - 0.8 is -0.10000000000000009).
    """
    change = significant_change(test)
    if change == 0:
        return "no significant change", False
    higher = higher_is_better(name, pass_fail=pass_fail)
    if change > 0 if higher else change < 0:
        return "improvement", False
    worse_by = -delta if higher else delta
    return "regression", beyond_drop(worse_by, max_drop)


def beyond_drop(worse_by: float, max_drop: float) -> bool:
    """Whether a drop of ``worse_by`` exceeds the tolerated ``max_drop`` by more than float
    noise (relative `DROP_NOISE`; with ``max_drop`` 0, any drop exceeds it)."""
    return worse_by > max_drop and not math.isclose(worse_by, max_drop, rel_tol=DROP_NOISE)
