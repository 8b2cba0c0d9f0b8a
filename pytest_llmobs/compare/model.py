"""The comparison of a run with its baseline, as plain dataclasses with ``to_dict()``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pytest_llmobs.aggregate_names import ALL_ITEMS
from pytest_llmobs.compare.stats import PairedTest, Verdict


def group_label(group: str) -> str:
    return "all tests" if group == ALL_ITEMS else group


def fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def fmt_p(p: float) -> str:
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


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
        details = [f"delta {self.delta:+.3f}"]
        if self.test is not None and abs(self.test.interval.estimate - self.delta) > 5e-4:
            # Items in one run only (or uneven repeats) move the aggregate; the gate judges the
            # difference over matched items.
            details.append(f"paired delta {self.test.interval.estimate:+.3f}")
        if self.test is not None:
            details.append(f"95% CI {self.test.interval.low:+.3f}..{self.test.interval.high:+.3f}")
            if self.test.p_value is not None:
                details.append(f"McNemar mid-p={fmt_p(self.test.p_value)}")
            details.append(f"n={self.test.n}")
        if tolerance is not None and self.verdict == "regression" and not self.fails_gate:
            details.append(f"within --llm-max-drop {tolerance:g}")
        return (
            f"{word} {group_label(self.group)}: {self.name} {fmt(self.baseline)} -> "
            f"{fmt(self.current)} ({', '.join(details)})"
        )

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
