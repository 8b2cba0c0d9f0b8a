"""The experiment-run summary printed at the end of a session."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pytest_llmobs.aggregates import ALL_ITEMS, Aggregate
from pytest_llmobs.run import RunResult
from pytest_llmobs.thresholds import ThresholdResult

WriteLine = Callable[..., None]


def _marks(encoding: str | None) -> tuple[str, str]:
    try:
        "✓✗".encode(encoding or "utf-8")
    except (UnicodeEncodeError, LookupError):
        return "PASS", "FAIL"
    return "✓", "✗"


def format_number(value: float | None) -> str:
    if value is None:
        return "n/a"
    if value == int(value) and abs(value) < 1e12:
        return str(int(value))
    return f"{value:.3f}"


def score_lines(group: Mapping[str, Aggregate]) -> list[str]:
    """One line per score: mean ± std [min, max] for numbers, counts per value for categories."""
    lines = []
    width = max((len(n) - 5 for n in group if n.startswith("mean_")), default=0)
    width = max(width, *(len(n) - 7 for n in group if n.startswith("counts_")), 8)

    def score_of(name: str) -> str:
        return name.partition("_")[2]

    for name in sorted(group, key=score_of):
        if name.startswith("mean_"):
            score = name[5:]
            mean, std = group[name], group.get(f"std_{score}")
            low, high = group.get(f"min_{score}"), group.get(f"max_{score}")
            spread = f" ± {std.value:.3f}" if std is not None else ""
            bounds = (
                f"  [min {format_number(low.value)}, max {format_number(high.value)}]"
                if low is not None and high is not None
                else ""
            )
            lines.append(f"  {score:<{width}}  mean {mean.value:.3f}{spread}{bounds}  n={mean.n}")
        elif name.startswith("counts_"):
            counts = ", ".join(f"{k}: {int(v)}" for k, v in group[name].extra.items())
            lines.append(f"  {name[7:]:<{width}}  {counts}  n={group[name].n}")
    return lines


def threshold_line(result: ThresholdResult, marks: tuple[str, str]) -> str:
    mark = marks[0] if result.passed else marks[1]
    threshold = result.threshold
    expression = threshold.expression
    if threshold.dataset and not expression.startswith(threshold.dataset):
        expression = f"{threshold.dataset}: {expression}"
    if result.error is not None:  # the line already shows the expression the error starts with
        error = result.error.removeprefix(f"{threshold.expression!r}: ")
        return f"  {mark} {expression}  ERROR: {error}"
    return f"  {mark} {expression}  observed {format_number(result.observed)} (n={result.n})"


def summary_lines(result: RunResult, *, encoding: str | None = "utf-8") -> list[str]:
    """The whole summary as lines of text."""
    marks = _marks(encoding)
    lines = [f"run {result.run_id}  name {result.name!r}  model {result.model}  -> {result.status}"]
    lines.append(
        f"stored in {result.store_path}"
        if result.store_path is not None
        else "not stored (--llm-no-store)"
    )
    datasets = sorted(g for g in result.aggregates if g != ALL_ITEMS)
    for dataset in datasets:
        lines.append(_group_header(f"dataset {dataset!r}", result, dataset))
        lines.extend(score_lines(result.aggregates[dataset]))
    whole = result.aggregates.get(ALL_ITEMS, {})
    lines.append(_group_header("all tests", result, ALL_ITEMS))
    if len(datasets) != 1 or _count(whole) != _count(result.aggregates[datasets[0]]):
        lines.extend(score_lines(whole))
    if result.thresholds:
        lines.append("thresholds:")
        lines.extend(threshold_line(t, marks) for t in result.thresholds)
    failed = [t for t in result.thresholds if not t.passed]
    if failed:
        lines.append(
            f"{len(failed)} of {len(result.thresholds)} threshold(s) failed: session fails"
        )
    return lines


def _group_header(label: str, result: RunResult, group: str) -> str:
    aggregates = result.aggregates.get(group, {})
    count = _count(aggregates)
    version = result.datasets.get(group)
    versioned = f" version {version}" if version else ""
    rate = aggregates.get("pass_rate")
    passed = f"  pass rate {rate.value:.1%} ({round(rate.value * rate.n)}/{rate.n})" if rate else ""
    return f"{label}{versioned}: {count} item{'s' if count != 1 else ''}{passed}"


def _count(group: Mapping[str, Aggregate]) -> int:
    return int(group["count"].value) if "count" in group else 0


def write_summary(terminalreporter: Any, result: RunResult) -> None:
    """Print the summary under its own separator, thresholds in green or red."""
    writer = terminalreporter
    writer.write_sep("=", "llmobs experiment run")
    encoding = getattr(getattr(writer, "_tw", None), "encoding", None) or "utf-8"
    for line in summary_lines(result, encoding=encoding):
        stripped = line.lstrip()
        if stripped.startswith(("✓", "PASS")):
            writer.write_line(line, green=True)
        elif stripped.startswith(("✗", "FAIL")) or "threshold(s) failed" in line:
            writer.write_line(line, red=True, bold=True)
        else:
            writer.write_line(line)
