"""The experiment-run summary printed at the end of a session."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pytest_llmobs.aggregate_model import Aggregate
from pytest_llmobs.aggregate_names import ALL_ITEMS
from pytest_llmobs.reporting.printable import printable
from pytest_llmobs.run_result import RunResult
from pytest_llmobs.thresholds import ThresholdResult, holds

WriteLine = Callable[..., None]

MISSING_SHOWN = 20
"""Missing items listed by name in text output; a longer list ends with a count of the rest."""


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
    return fixed(value)


def fixed(value: float) -> str:
    """Three decimals, as the summary shows figures; past 1e12, four significant digits with an
    exponent (a score of 1e300 would otherwise print 300 digits)."""
    return f"{value:.3f}" if abs(value) < 1e12 else f"{value:.4g}"


def _interval(aggregate: Aggregate) -> str:
    low, high = aggregate.field("ci_low"), aggregate.field("ci_high")
    return "" if low is None or high is None else f" (95% CI {fixed(low)}–{fixed(high)})"


def score_lines(group: Mapping[str, Aggregate]) -> list[str]:
    """One line per score: mean with its interval, sd and range for numbers, counts per value
    for categories, classification metrics for labels; then latency and tokens."""
    lines = []
    labels = sorted(
        n.removeprefix("f1_macro").lstrip("_") or "label" for n in group if n.startswith("f1_macro")
    )
    names = [
        n[5:]
        for n in group
        if n.startswith("mean_")
        and n != "mean_latency_ms"
        and not n.startswith("mean_repeat_variance_")  # shown with the repeats
    ]
    names += [n[7:] for n in group if n.startswith("counts_")] + labels
    width = max((len(n) for n in names), default=0)
    for name in sorted(names):
        if f"mean_{name}" in group:
            mean, std = group[f"mean_{name}"], group.get(f"std_{name}")
            low, high = group.get(f"min_{name}"), group.get(f"max_{name}")
            spread = f"  sd {fixed(std.value)}" if std is not None else ""
            bounds = (
                f"  range {format_number(low.value)}–{format_number(high.value)}"
                if low is not None and high is not None
                else ""
            )
            lines.append(
                f"  {name:<{width}}  mean {fixed(mean.value)}{_interval(mean)}{spread}{bounds}"
                f"  n={mean.n}"
            )
        elif f"counts_{name}" in group:
            counts = group[f"counts_{name}"]
            shown = _category_counts(counts.extra)
            lines.append(f"  {name:<{width}}  {shown}  n={counts.n}")
        else:
            suffix = "" if name == "label" else f"_{name}"
            metrics = "  ".join(
                f"{metric} {group[metric + suffix].value:.3f}"
                for metric in ("accuracy", "f1_macro", "f1_micro")
                if metric + suffix in group
            )
            lines.append(f"  {name:<{width}}  {metrics}  n={group['f1_macro' + suffix].n}")
    if "generations" in group:
        latency = ""
        if "p50_latency_ms" in group:
            latency = (
                f"  latency p50 {group['p50_latency_ms'].value:.1f} ms"
                f"  p95 {group['p95_latency_ms'].value:.1f} ms"
            )
        count = int(group["generations"].value)
        tokens = _UNKNOWN_TOKENS
        if "total_input_tokens" in group:
            tokens = (
                f"  tokens {int(group['total_input_tokens'].value)} in"
                f" / {int(group['total_output_tokens'].value)} out"
            ) + _reported_by(group["total_input_tokens"].n, count)
        lines.append(f"  generations {count}{latency}{tokens}")
    if "judge_generations" in group:
        count = int(group["judge_generations"].value)
        tokens = _UNKNOWN_TOKENS
        if "judge_total_tokens" in group:
            judged = group["judge_total_tokens"]
            tokens = f"  tokens {int(judged.value)}" + _reported_by(judged.n, count)
        lines.append(f"  judge calls {count}{tokens}")
    return lines


CATEGORY_CHARS = 32
"""Longest categorical value shown whole in the summary; longer ones are cut with "…"."""


_UNKNOWN_TOKENS = "  tokens unknown (no answer reported usage)"


def _reported_by(counted: int, generations: int) -> str:
    """Says how many answers the token totals cover, when some held no usage."""
    return "" if counted == generations else f" (usage reported by {counted} of {generations})"


def _category_counts(counts: Mapping[str, float]) -> str:
    """``value: count`` pairs in the stored order; with more values than the HTML chart has
    bars, its top values and one "other (N values)" count, as the chart shows them."""
    from pytest_llmobs.reporting.html_text import short
    from pytest_llmobs.reporting.svg import BAR_ROWS, top_categories

    pairs = [(str(k), int(v)) for k, v in counts.items()]
    if len(pairs) > BAR_ROWS:
        pairs = top_categories(pairs)
    return ", ".join(f"{short(printable(k), CATEGORY_CHARS)}: {v}" for k, v in pairs)


def threshold_line(result: ThresholdResult, marks: tuple[str, str]) -> str:
    mark = marks[0] if result.passed else marks[1]
    threshold = result.threshold
    expression = threshold.expression
    if threshold.dataset and not expression.startswith(threshold.dataset):
        expression = f"{threshold.dataset}: {expression}"
    if result.error is not None:  # the line already shows the expression the error starts with
        error = result.error.removeprefix(f"{threshold.expression!r}: ")
        if not result.evaluated:  # every item of its dataset skipped: neither pass nor fail
            return f"  {'–' if mark == '✓' else '-'} {expression}  {error}"
        return f"  {mark} {expression}  ERROR: {error}"
    shown = format_number(result.observed)
    if result.observed is not None and _reads_otherwise(result, shown):
        shown = repr(result.observed)  # 0.5476 shown as 0.548 failing `>= 0.548`: every digit
    return f"  {mark} {expression}  observed {shown} (n={result.n})"


def _reads_otherwise(result: ThresholdResult, shown: str) -> bool:
    """Whether the rounded figure shown would meet the threshold the other way."""
    try:
        return holds(result.threshold, float(shown)) != result.passed
    except ValueError:
        return False


def summary_lines(result: RunResult, *, encoding: str | None = "utf-8") -> list[str]:
    """The whole summary as lines of text."""
    marks = _marks(encoding)
    lines = [
        f"run {result.run_id}  name {result.name!r}  model {printable(result.model) or '(none)'}"
        f"  -> {result.status}"
    ]
    lines.append(
        f"stored in {result.store_path}"
        if result.store_path is not None
        else "not stored (--llm-no-store)"
    )
    datasets = sorted(g for g in result.aggregates if g != ALL_ITEMS)
    for dataset in datasets:
        lines.append(_group_header(f"dataset {dataset!r}", result, dataset))
        lines.extend(_group_lines(result, dataset))
    whole = result.aggregates.get(ALL_ITEMS, {})
    lines.append(_group_header("all tests", result, ALL_ITEMS))
    if len(datasets) != 1 or _count(whole) != _count(result.aggregates[datasets[0]]):
        lines.extend(_group_lines(result, ALL_ITEMS))
    from pytest_llmobs.repeats import repeat_lines

    lines.extend(repeat_lines(result.repeats))
    if result.thresholds:
        lines.append("thresholds:")
        lines.extend(threshold_line(t, marks) for t in result.thresholds)
    lines.extend(f"  ERROR {printable(error)}" for error in result.errors)
    failed = [t for t in result.thresholds if not t.passed]
    if failed:
        consequence = (
            "session fails" if "threshold" in result.fail_on else "not failing (--llm-fail-on)"
        )
        lines.append(
            f"{len(failed)} of {len(result.thresholds)} threshold(s) failed: {consequence}"
        )
    if result.baseline_saved:
        lines.append(f"saved as baseline {result.baseline_saved!r}")
    elif result.baseline_not_saved:
        lines.append(printable(result.baseline_not_saved))
    return lines


def missing_lines(missing: Sequence[Mapping[str, str]], *, limit: int = MISSING_SHOWN) -> list[str]:
    """The lines naming collected items that have no result in the run (a crashed xdist
    worker, a session stopped by ``-x``), the first ``limit`` of them."""
    if not missing:
        return []
    count = len(missing)
    lines = [f"{count} collected item{'s' if count != 1 else ''} missing from the run:"]
    lines += [f"  {entry['node_id']}  ({entry['reason']})" for entry in missing[:limit]]
    if count > limit:
        lines.append(f"  ... and {count - limit} more ('llmobs export RUN' lists them all)")
    return lines


def _group_header(label: str, result: RunResult, group: str) -> str:
    aggregates = result.aggregates.get(group, {})
    count = _count(aggregates)
    version = result.datasets.get(group)
    versioned = f" version {version}" if version else ""
    rate = aggregates.get("pass_rate")
    passed = f"  pass rate {rate.value:.1%} ({round(rate.value * rate.n)}/{rate.n})" if rate else ""
    uncounted = count - (rate.n if rate else 0)  # outside the pass rate and the scores
    if uncounted > 0:
        passed += f"  {uncounted} skipped or xfailed"
    partial = ""
    if group in result.partial_datasets:  # its gates judged these items only
        ran, total = result.partial_datasets[group]
        partial = f"  ({ran} of its {total} items ran)"
    return f"{label}{versioned}: {count} item{'s' if count != 1 else ''}{passed}{partial}"


def _group_lines(result: RunResult, group: str) -> list[str]:
    """The scores of ``group``, then the aggregates its run evaluators gave (apart: a
    ``mean_answer_chars`` of theirs is no score ``answer_chars``)."""
    aggregates = result.aggregates.get(group, {})
    names = [n for n in result.run_evaluator_aggregates.get(group, []) if n in aggregates]
    width = max((len(printable(n)) for n in names), default=0)
    scores = {k: v for k, v in aggregates.items() if k not in names}
    return score_lines(scores) + [
        f"  {printable(n):<{width}}  {format_number(aggregates[n].value)}  n={aggregates[n].n}"
        "  (run evaluator)"
        for n in names
    ]


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
    if result.comparison is not None:
        from pytest_llmobs.compare.render import comparison_lines

        comparison = result.comparison
        label = printable(comparison.baseline.label)
        writer.write_sep("=", f"llmobs comparison vs baseline {label}")
        enforced = "regression" in result.fail_on
        for line in comparison_lines(comparison, enforced=enforced):
            if line.startswith("REGRESSION") or "session fails" in line:
                writer.write_line(line, red=True, bold=True)
            elif line.startswith("IMPROVEMENT"):
                writer.write_line(line, green=True)
            else:
                writer.write_line(line)
