"""The experiment-run summary printed at the end of a session."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pytest_llmobs.aggregate_model import Aggregate
from pytest_llmobs.aggregate_names import ALL_ITEMS
from pytest_llmobs.reporting.figures import fixed, observed_figure
from pytest_llmobs.reporting.figures import format_number as format_number  # (merge.py's)
from pytest_llmobs.reporting.printable import encodable, printable
from pytest_llmobs.run_result import RunResult
from pytest_llmobs.thresholds import ThresholdResult

WriteLine = Callable[..., None]

MISSING_SHOWN = 20
"""Missing items listed by name in text output; a longer list ends with a count of the rest."""


def _marks(encoding: str | None) -> tuple[str, str]:
    try:
        "✓✗".encode(encoding or "utf-8")
    except (UnicodeEncodeError, LookupError):
        return "PASS", "FAIL"
    return "✓", "✗"


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
    for facts in (generation_facts(group), judge_facts(group)):
        if facts:
            lines.append("  " + "  ".join(facts))
    return lines


def generation_facts(group: Mapping[str, Aggregate]) -> list[str]:
    """The group's generations, latency and tokens (``["generations 7", "latency p50 0.4 ms",
    "p95 0.9 ms", "tokens 49 in / 7 out"]``); none without generations."""
    if "generations" not in group:
        return []
    count = int(group["generations"].value)
    facts = [f"generations {count}"]
    if "p50_latency_ms" in group:
        facts.append(f"latency p50 {fixed(group['p50_latency_ms'].value, 1)} ms")
        facts.append(f"p95 {fixed(group['p95_latency_ms'].value, 1)} ms")
    if "total_input_tokens" in group:
        facts.append(
            f"tokens {int(group['total_input_tokens'].value)} in"
            f" / {int(group['total_output_tokens'].value)} out"
            + _reported_by(group["total_input_tokens"].n, count)
        )
    else:
        facts.append(_UNKNOWN_TOKENS)
    return facts


def judge_facts(group: Mapping[str, Aggregate]) -> list[str]:
    """The group's calls to a judge model and their tokens; none without any."""
    if "judge_generations" not in group:
        return []
    count = int(group["judge_generations"].value)
    if "judge_total_tokens" not in group:
        return [f"judge calls {count}", _UNKNOWN_TOKENS]
    judged = group["judge_total_tokens"]
    return [f"judge calls {count}", f"tokens {int(judged.value)}" + _reported_by(judged.n, count)]


CATEGORY_CHARS = 32
"""Longest categorical value shown whole in the summary; longer ones are cut with "…"."""


_UNKNOWN_TOKENS = "tokens unknown (no answer reported usage)"


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
    shown = (
        "n/a"
        if result.observed is None
        else observed_figure(result.threshold, result.observed, result.passed)
    )
    return f"  {mark} {expression}  observed {shown} (n={result.n})"


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
    lines.append(_group_header("all tests", result, ALL_ITEMS))
    if whole_run_dataset(result.aggregates) is None:
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


def unfinished_lines(run: Mapping[str, Any], stored: int) -> list[str]:
    """What `llmobs show` and the HTML report say of a run that stored no summary (killed,
    crashed, still going), ``stored`` being how many items it stored."""
    from pytest_llmobs.store_unfinished import recorded_elsewhere

    lines = []
    host = recorded_elsewhere(run.get("process"))
    if run["status"] == "running" and host is not None:
        lines.append(
            f"run recorded on host {host!r}: this machine cannot tell whether that session still "
            "goes or died, so it reads as running until it stores its summary"
        )
    if run["status"] == "running":
        pending = run.get("pending")
        rest = (
            f"{len(pending)} collected item(s) not run yet"
            if pending is not None
            else "the items it has not run yet are not known"
        )
        lines.append(f"run still running: its {stored} stored item(s) so far are listed, {rest}")
    elif "missing" in run:  # it stored what it collected (see Store.expect_items)
        never_run = len(run["missing"])
        rest = f"the {never_run} it never ran above" if never_run else "it ran every one"
        lines.append(
            f"run {run['status']} before it finished: its {stored} stored item(s) are listed, "
            f"{rest}"
        )
    else:
        lines.append(
            f"run {run['status']} before it finished: the items it had not run yet are not "
            f"known (its {stored} stored item(s) are listed)"
        )
    return lines


def _group_header(label: str, result: RunResult, group: str) -> str:
    version = result.datasets.get(group)
    versioned = f" version {version}" if version else ""
    count, rate, rest = group_facts(
        result.aggregates.get(group, {}), result.partial_datasets.get(group)
    )
    return f"{label}{versioned}: " + "  ".join(
        [count, *([f"pass rate {rate}"] if rate else []), *rest]
    )


def group_facts(
    aggregates: Mapping[str, Aggregate], partial: tuple[int, int] | None = None
) -> tuple[str, str | None, list[str]]:
    """What the summary says of one group (a dataset, all tests), from its aggregates: its
    count (``"6 items"``), its pass rate (``"33.3% (2/6)"``, ``None`` when no item counts) and
    the rest (``"1 skipped or xfailed"``; ``"(2 of its 5 items ran)"`` for a dataset whose
    gates judged only the items that ran, ``partial`` being those and its size)."""
    count = _count(aggregates)
    rate = aggregates.get("pass_rate")
    shown = f"{rate.value:.1%} ({round(rate.value * rate.n)}/{rate.n})" if rate else None
    rest = []
    uncounted = count - (rate.n if rate else 0)  # outside the pass rate and the scores
    if uncounted > 0:
        rest.append(f"{uncounted} skipped or xfailed")
    if partial is not None:
        rest.append(f"({partial[0]} of its {partial[1]} items ran)")
    return f"{count} item{'s' if count != 1 else ''}", shown, rest


def whole_run_dataset(aggregates: Mapping[str, Mapping[str, Aggregate]]) -> str | None:
    """The one dataset holding every item of the run, if so: the run's figures are then its
    figures, shown once (under the dataset)."""
    datasets = [group for group in aggregates if group != ALL_ITEMS]
    if len(datasets) != 1:
        return None
    whole = _count(aggregates.get(ALL_ITEMS, {}))
    return datasets[0] if whole == _count(aggregates[datasets[0]]) else None


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
    encoding = terminal_encoding(terminalreporter)
    write = line_writer(terminalreporter)
    terminalreporter.write_sep("=", "llmobs experiment run")
    for line in summary_lines(result, encoding=encoding):
        stripped = line.lstrip()
        if stripped.startswith(("✓", "PASS")):
            write(line, green=True)
        elif stripped.startswith(("✗", "FAIL")) or "threshold(s) failed" in line:
            write(line, red=True, bold=True)
        else:
            write(line)
    if result.comparison is not None:
        from pytest_llmobs.compare.render import comparison_lines

        comparison = result.comparison
        label = printable(comparison.baseline.label)
        title = encodable(f"llmobs comparison vs baseline {label}", encoding)
        terminalreporter.write_sep("=", title)
        enforced = "regression" in result.fail_on
        for line in comparison_lines(comparison, enforced=enforced):
            if line.startswith("REGRESSION") or "session fails" in line:
                write(line, red=True, bold=True)
            elif line.startswith("IMPROVEMENT"):
                write(line, green=True)
            else:
                write(line)


def line_writer(terminalreporter: Any) -> WriteLine:
    """pytest's ``write_line`` (markup as keywords: ``red=True``...), each line first made
    writable in the terminal's encoding (`encodable`): what the plugin writes under its
    summary, node ids and targets included."""
    encoding = terminal_encoding(terminalreporter)

    def write(line: str, **markup: bool) -> None:
        terminalreporter.write_line(encodable(line, encoding), **markup)

    return write


def terminal_encoding(terminalreporter: Any) -> str:
    """The encoding of the stream pytest's summary goes to (its terminal writer's file, as
    pytest 6 and later keep it; ``encoding`` on older writers), UTF-8 when none is known. A line
    that encoding cannot write would come out as pytest's fallback: the whole line, colour
    codes too, as ``\\x1b[31m\\u2717``."""
    writer = getattr(terminalreporter, "_tw", None)
    for holder in (getattr(writer, "_file", None), writer):
        encoding = getattr(holder, "encoding", None)
        if isinstance(encoding, str) and encoding:
            return encoding
    return "utf-8"
