"""The comparison of a run with its baseline, as plain dataclasses with ``to_dict()``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from pytest_llmobs.aggregate_names import ALL_ITEMS
from pytest_llmobs.compare.stats import ALPHA, PairedTest, Verdict, beyond_drop
from pytest_llmobs.reporting.figures import LARGE, fixed


def group_label(group: str) -> str:
    return "all tests" if group == ALL_ITEMS else group


def fmt(value: float | None) -> str:
    return "n/a" if value is None else fixed(value)


def fmt_p(p: float) -> str:
    """``0.031``, ``9.8e-04``; with more digits when three would put p on the other side of
    `ALPHA` from its verdict (0.0498 is significant, 0.050 would not read so)."""
    if p < 0.001:
        return f"{p:.1e}"
    return fmt_reading(p, lambda shown: (shown < ALPHA) == (p < ALPHA), sign="")


def fmt_signed(value: float, places: int = 3) -> str:
    """``+0.123`` (``places`` decimals); a value that is not 0 never reads as 0 (``-0.0004``,
    not ``-0.000``)."""
    return fmt_reading(value, lambda shown: shown != 0 or value == 0, places=places)


def fmt_reading(
    value: float, reads: Callable[[float], bool], *, sign: str = "+", places: int = 3
) -> str:
    """``value`` to ``places`` decimals, or as many more as it takes for the figure shown to
    read as the verdict beside it says (``reads(shown)``): every digit at worst. Past `LARGE`,
    four significant digits with an exponent (decimals of 1e300 tell nothing)."""
    if abs(value) >= LARGE:
        return fixed(value, signed=sign == "+")
    for decimals in range(places, 18):
        shown = f"{value:{sign}.{decimals}f}"
        if reads(float(shown)):
            return shown
    return f"{value:{sign}}"


def _places(shown: str) -> int:
    """Decimals of a fixed-point figure (0 for one in exponent notation)."""
    return 0 if "e" in shown else len(shown.partition(".")[2])


class Figures(NamedTuple):
    """A metric's change as shown (`MetricComparison.figures`)."""

    delta: str
    paired: str | None
    """The paired delta, when it is to be shown beside ``delta``."""
    interval: str
    """``-0.120..-0.024``; ``-`` without paired statistics."""


@dataclass(slots=True)
class RunInfo:
    """One side of the comparison: which run, and how it was named (``source``: ``run``,
    ``saved baseline`` or ``file``; ``ref``: the name or path given)."""

    id: str
    name: str
    model: str | None
    status: str
    source: str = "run"
    ref: str | None = None

    @property
    def label(self) -> str:
        """How messages name it: the saved baseline, the file, or the run's name and id."""
        if self.source == "saved baseline":
            return f"{self.ref!r} (run {self.id})"
        if self.source == "file":
            return f"{self.ref} (run {self.id})"
        return f"{self.name!r} (run {self.id})" if self.name else f"run {self.id}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "model": self.model,
            "status": self.status,
            "source": self.source,
            "ref": self.ref,
            "path": self.ref if self.source == "file" else None,
        }


@dataclass(slots=True)
class MetricComparison:
    """One aggregate of one group in both runs.

    ``delta`` is ``current - baseline`` of the stored aggregates. ``test`` holds the paired
    statistics over matched items (``None`` for aggregates without them: verdict
    ``not tested``). ``fails_gate``: a significant regression larger than the tolerance.
    """

    group: str
    name: str
    baseline: float
    current: float
    delta: float
    higher_is_better: bool
    verdict: Verdict
    fails_gate: bool = False
    test: PairedTest | None = None

    def message(self, tolerance: float | None = None) -> str:
        """``REGRESSION capitals: mean_accuracy 1.000 -> 0.700 (delta -0.300, 95% CI ...)``."""
        word = {"regression": "REGRESSION", "improvement": "IMPROVEMENT"}.get(
            self.verdict, self.verdict
        )
        figures = self.figures(tolerance)
        details = [f"delta {figures.delta}"]
        if figures.paired is not None:
            details.append(f"paired delta {figures.paired}")
        if self.test is not None:
            details.append(f"95% CI {figures.interval}")
            if self.test.p_value is not None:
                details.append(f"McNemar mid-p={fmt_p(self.test.p_value)}")
            details.append(f"n={self.test.n}")
        if tolerance is not None and self.verdict == "regression" and not self.fails_gate:
            details.append(f"within --llm-max-drop {tolerance:g}")
        return (
            f"{word} {group_label(self.group)}: {self.name} {fmt(self.baseline)} -> "
            f"{fmt(self.current)} ({', '.join(details)})"
        )

    def figures(self, tolerance: float | None = None) -> Figures:
        """The change as shown: the delta, the paired delta beside it when it differs (items in
        one run only, or uneven repeats, move the aggregate, not the matched items' change that
        the interval, p and verdict are of), and the interval. A figure that rounded would read
        against ``tolerance`` (the tolerated drop) the other way from the verdict, or as 0 when
        it is not, gets the digits that show it, and the interval as many."""
        delta = fmt_signed(self.delta)
        if self.test is None:
            return Figures(delta, None, "-")
        estimate = self.test.interval.estimate
        reads = self._reads_as_judged(estimate, tolerance)
        paired = None
        if abs(estimate - self.delta) > 5e-4:
            paired = fmt_reading(estimate, reads)
        elif not reads(float(delta)):  # the same change: its own digits, if they show it
            delta = fmt_reading(self.delta, reads)
            if not reads(float(delta)):  # (the two straddle the tolerance)
                delta, paired = fmt_signed(self.delta), fmt_reading(estimate, reads)
        places = max(_places(paired or delta), 3)
        interval = self.test.interval
        low, high = fmt_signed(interval.low, places), fmt_signed(interval.high, places)
        return Figures(delta, paired, f"{low}..{high}")

    def _reads_as_judged(self, value: float, tolerance: float | None) -> Callable[[float], bool]:
        """The test that a figure shown for ``value`` reads as the verdict: not 0 unless
        ``value`` is, and a regression's drop beyond ``tolerance`` exactly when it fails the
        gate."""

        def reads(shown: float) -> bool:
            if shown == 0 and value != 0:
                return False
            if self.verdict != "regression" or tolerance is None:
                return True
            return beyond_drop(-shown if self.higher_is_better else shown, tolerance) == (
                self.fails_gate
            )

        return reads

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "group": self.group,
            "name": self.name,
            "baseline": self.baseline,
            "current": self.current,
            "delta": self.delta,
            "higher_is_better": self.higher_is_better,
            "verdict": self.verdict,
            "fails_gate": self.fails_gate,
        }
        stats = self.test.to_dict() if self.test is not None else {}
        data.update(
            estimate=stats.get("estimate"),
            ci_low=stats.get("ci_low"),
            ci_high=stats.get("ci_high"),
            n=stats.get("n"),
            p_value=stats.get("p_value"),
            losses=stats.get("losses"),
            wins=stats.get("wins"),
        )
        return data


@dataclass(slots=True)
class Change:
    """Something that differs between the runs: ``kind`` is ``model``, ``param``, ``prompt``,
    ``dataset`` or ``plugin_version``; ``diff`` is a unified diff of prompt text; ``note`` says
    what else is known (items added/removed, text not in the store)."""

    kind: str
    name: str
    baseline: Any
    current: Any
    note: str = ""
    diff: str | None = None

    def describe(self) -> str:
        before = "(none)" if self.baseline is None else str(self.baseline)
        after = "(none)" if self.current is None else str(self.current)
        subject = self.kind
        if self.kind not in ("model", "plugin_version"):
            subject = f"{self.kind} {self.name}"
        return f"{subject}: {before} -> {after}" + (f" ({self.note})" if self.note else "")

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "baseline": self.baseline,
            "current": self.current,
            "note": self.note,
            "diff": self.diff,
        }


@dataclass(slots=True)
class FlippedItem:
    """A matched case whose verdict changed: ``direction`` is ``pass->fail``, ``fail->pass`` or
    ``pass->skipped``.
    ``scores`` maps each score that changed to ``[baseline, current]`` (``None`` when absent)."""

    label: str
    dataset: str | None
    item_id: str | None
    node_id: str
    repeat: int
    direction: str
    baseline_outcome: str
    current_outcome: str
    input: Any
    expected_output: Any
    baseline_output: Any
    current_output: Any
    scores: dict[str, list[Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "dataset": self.dataset,
            "item_id": self.item_id,
            "node_id": self.node_id,
            "repeat": self.repeat,
            "direction": self.direction,
            "baseline_outcome": self.baseline_outcome,
            "current_outcome": self.current_outcome,
            "input": self.input,
            "expected_output": self.expected_output,
            "baseline_output": self.baseline_output,
            "current_output": self.current_output,
            "scores": {k: list(v) for k, v in self.scores.items()},
        }


@dataclass(slots=True)
class Comparison:
    """A run compared with its baseline; what the gate, the terminal and the reports read.

    - ``baseline`` / ``current``: `RunInfo` of each side;
    - ``metrics``: a `MetricComparison` per aggregate both runs have, per dataset group and the
      whole run (group ``"*"``), tested metrics (``pass_rate``, ``mean_<score>``) first;
    - ``changes``: `Change` entries (model, params, prompt versions with text diffs, dataset
      versions, plugin version);
    - ``flips``: every `FlippedItem` (pass -> fail and back), in item order;
    - ``matched``: matched cases (dataset item or test x repeat); ``only_in_baseline`` /
      ``only_in_current``: labels of the unmatched ones;
    - ``max_drop``: the tolerance the gate used;
    - ``missing``: tested metrics of the baseline the current run does not have.

    ``to_dict()`` gives plain JSON-able data: the keys above plus ``verdict`` (``incomplete
    run`` when a compared run is, ``regression`` when the gate fails, ``nothing tested`` when no
    metric could be tested, else ``passed``), ``tested`` (how many metrics were),
    ``regressions`` (how many fail the gate), ``unmatched`` (``{"only_in_baseline": [...],
    "only_in_current": [...]}``) and, for an incomplete run, ``incomplete``; metric rows are
    flat (``group``, ``name``, ``baseline``, ``current``, ``delta``, ``ci_low``, ``ci_high``,
    ``p_value``, ``n``, ``verdict``, ``fails_gate``...). The run summary stores it under
    ``"comparison"``.
    """

    baseline: RunInfo
    current: RunInfo
    metrics: list[MetricComparison]
    changes: list[Change]
    flips: list[FlippedItem]
    matched: int
    only_in_baseline: list[str]
    only_in_current: list[str]
    max_drop: float = 0.0
    missing: list[tuple[str, str]] = field(default_factory=list)
    """(group, name) of tested metrics (``pass_rate``, ``mean_<score>``) the baseline has and
    the current run lacks: a score renamed or no longer recorded, which nothing could test."""
    incomplete: list[str] = field(default_factory=list)
    """Why a compared run is incomplete (`status_note`): no gate passes on such a comparison,
    whatever its metrics say."""

    @property
    def regressions(self) -> list[MetricComparison]:
        """Metrics that fail the gate (significant and beyond ``max_drop``)."""
        return [m for m in self.metrics if m.fails_gate]

    @property
    def gate_passed(self) -> bool:
        return not self.regressions

    @property
    def tested(self) -> int:
        """Metrics the paired statistics tested: with none (no matched items, say) the gate
        checked nothing, which passes it (exit status 0) but is no pass to report."""
        return sum(m.test is not None for m in self.metrics)

    @property
    def verdict(self) -> str:
        """``incomplete run``, ``regression``, ``nothing tested`` or ``passed``."""
        if self.incomplete:
            return "incomplete run"
        if not self.gate_passed:
            return "regression"
        return "passed" if self.tested else "nothing tested"

    def to_dict(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline.to_dict(),
            "current": self.current.to_dict(),
            "verdict": self.verdict,
            "tested": self.tested,
            "regressions": len(self.regressions),
            "max_drop": self.max_drop,
            "matched": self.matched,
            "metrics": [m.to_dict() for m in self.metrics],
            "changes": [c.to_dict() for c in self.changes],
            "flips": [f.to_dict() for f in self.flips],
            "unmatched": {
                "only_in_baseline": list(self.only_in_baseline),
                "only_in_current": list(self.only_in_current),
            },
            "missing_metrics": [{"group": g, "name": n} for g, n in self.missing],
        } | ({"incomplete": list(self.incomplete)} if self.incomplete else {})


INCOMPLETE = ("interrupted", "running")
"""Statuses of a run that did not run all its items: no gate passes on it."""


def status_note(run: dict[str, Any], role: str = "") -> tuple[str | None, bool]:
    """A line on ``run``'s status when it did not finish, and whether the run is incomplete."""
    status = str(run.get("status", "unknown"))
    if status == "passed":
        return None, False
    items = len(run.get("items") or [])
    if status in INCOMPLETE:
        why = "still running" if status == "running" else "interrupted (Ctrl-C, killed or crashed)"
        return (
            f"{role + ' ' if role else ''}run {run.get('id')} is incomplete: {why}, "
            f"{items} item(s) stored; a partial run passes no gate",
            True,
        )
    return None, False  # failed, but complete: what it scored is what it is
