"""Which items and values the statistics count: skipped and xfailed items out of the gate's
paired statistics, of the thresholds and of the HTML report's scores, as they are out of the
aggregates; one sample per item however often it records a score; and any finite score
aggregated and compared without overflow."""

from __future__ import annotations

import contextlib
import json
import math
import re
import sqlite3
import sys
from io import StringIO
from textwrap import dedent
from typing import TYPE_CHECKING, Any

import pytest

from pytest_llmobs import cli
from pytest_llmobs.aggregate_model import Aggregate, ItemSummary
from pytest_llmobs.aggregates import group_aggregates, numeric_aggregates
from pytest_llmobs.compare.items import match, paired_values
from pytest_llmobs.compare.stats import paired_test
from pytest_llmobs.evaluators.run_level import bootstrap_mean_interval, wilson_interval
from pytest_llmobs.safe_stats import percentile
from pytest_llmobs.thresholds import evaluate, parse_threshold

if TYPE_CHECKING:
    from conftest import Runs

LARGEST = sys.float_info.max

CAPS = {
    "france": ("France", "Paris"),
    "peru": ("Peru", "Lima"),
    "japan": ("Japan", "Tokyo"),
    "spain": ("Spain", "Madrid"),
    "italy": ("Italy", "Rome"),
    "chile": ("Chile", "Santiago"),
    "egypt": ("Egypt", "Cairo"),
    "kenya": ("Kenya", "Nairobi"),
    "norway": ("Norway", "Oslo"),
    "greece": ("Greece", "Athens"),
}
LEFT_OUT = "france,peru,japan,spain,italy,chile"


def write_caps(pytester: pytest.Pytester, ids: list[str] | None = None) -> None:
    lines = [
        json.dumps(
            {"id": key, "input": f"What is the capital of {country}?", "expected_output": city}
        )
        for key, (country, city) in CAPS.items()
        if ids is None or key in ids
    ]
    pytester.makefile(".jsonl", **{"datasets/caps": "\n".join(lines) + "\n"})


def summary(outcome: str, *scores: tuple[str, str, Any]) -> ItemSummary:
    return ItemSummary("qa", outcome, scores)


# --- huge but finite scores ------------------------------------------------------------------


@pytest.mark.parametrize(
    "values", [[0.0, 1e155], [-LARGEST, LARGEST], [LARGEST, LARGEST, 1.0], [1e-300, 1e300]]
)
def test_finite_scores_of_any_size_aggregate_to_finite_values(values: list[float]) -> None:
    aggregates = numeric_aggregates("loss", values)

    numbers = [a.value for a in aggregates] + [v for a in aggregates for v in a.extra.values()]
    assert all(math.isfinite(v) for v in numbers)
    named = {a.name: a for a in aggregates}
    assert (named["min_loss"].value, named["max_loss"].value) == (min(values), max(values))
    assert min(values) <= named["mean_loss"].value <= max(values)


def test_huge_scores_keep_their_mean_and_spread() -> None:
    named = {a.name: a for a in numeric_aggregates("loss", [0.0, 1e155])}

    assert named["mean_loss"].value == pytest.approx(5e154)
    assert named["std_loss"].value == pytest.approx(1e155 / math.sqrt(2))
    assert named["p95_loss"].value == pytest.approx(9.5e154)


def test_a_spread_beyond_the_float_limit_is_stored_as_the_largest_float() -> None:
    named = {a.name: a for a in numeric_aggregates("loss", [-LARGEST, LARGEST])}

    assert named["std_loss"].value == LARGEST
    assert named["mean_loss"].value == 0.0
    assert percentile([-LARGEST, LARGEST], 75) == pytest.approx(LARGEST / 2)


def test_paired_statistics_of_values_near_the_float_limit_stay_finite() -> None:
    test = paired_test([-LARGEST] * 6, [LARGEST] * 6, binary=False)

    bounds = (test.interval.estimate, test.interval.low, test.interval.high)
    assert all(math.isfinite(v) for v in bounds)
    assert test.changed == 6


HUGE_SUITE = """\
    import pytest

    @pytest.mark.parametrize("value", [0.0, 1e155, -1.7976931348623157e308, 1.7976931348623157e308])
    def test_score(value, scorer):
        scorer.score("loss", value)
    """


def test_a_session_with_huge_scores_finishes_and_every_reader_reads_it(
    pytester: pytest.Pytester, runs: Runs
) -> None:
    pytester.makepyfile(test_huge=dedent(HUGE_SUITE))

    result = pytester.runpytest("--llm-threshold=max_loss >= 0")

    result.assert_outcomes(passed=4)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*max_loss >= 0  observed * (n=4)"])
    # figures past 1e12 with an exponent, not 309 digits
    result.stdout.fnmatch_lines(
        ["  loss  mean 2.5e+154 (95% CI *)  sd 1.468e+308  range -1.798e+308–1.798e+308  n=4"]
    )
    run = runs.latest()
    assert run["status"] == "passed"
    store = str(pytester.path / ".llmobs")
    out = StringIO()
    for command in (
        ["show", "latest"],
        ["export", "latest", "-o", str(pytester.path / "run.json")],
        ["report", "latest", "-o", str(pytester.path / "run.html")],
        ["rescore", "latest", "--threshold", "std_loss >= 0"],
    ):
        assert cli.main([*command, "--store", store], out) == 0, out.getvalue()
    exported = (pytester.path / "run.json").read_text()
    assert "Infinity" not in exported and "NaN" not in exported


# --- skipped and xfailed items in the gate -----------------------------------------------------

XFAIL_SUITE = """\
    import os, pytest
    LEFT_OUT = set(filter(None, os.environ.get("LEFT_OUT", "").split(",")))

    @pytest.mark.llm_dataset("caps", thresholds=["mean_acc >= 0.9"])
    def test_caps(item, llm, scorer, request):
        expected = item.expected_output
        if item.id in LEFT_OUT:  # known-bad items, marked xfail
            request.applymarker(pytest.mark.xfail(reason="known bad"))
            expected = "WRONG"
        assert scorer.exact_match(llm.generate(item.input).text, expected, name="acc")
    """

SKIP_SUITE = """\
    import os, pytest
    LEFT_OUT = set(filter(None, os.environ.get("LEFT_OUT", "").split(",")))

    @pytest.mark.llm_dataset("caps")
    def test_caps(item, llm, scorer):
        answer = llm.generate(item.input).text
        wrong = item.id in LEFT_OUT
        ok = scorer.exact_match(answer, "?" if wrong else item.expected_output, name="acc")
        if wrong:
            pytest.skip("provider quota: skipping")  # scored first, then skipped
        assert ok
    """


@pytest.mark.parametrize("suite", [XFAIL_SUITE, SKIP_SUITE], ids=["xfail", "skip-after-score"])
def test_skipped_and_xfailed_items_stay_out_of_the_paired_statistics(
    pytester: pytest.Pytester,
    runs: Runs,
    monkeypatch: pytest.MonkeyPatch,
    suite: str,
    xdist_args: tuple[str, ...],
) -> None:
    write_caps(pytester)
    pytester.makepyfile(test_caps=dedent(suite))
    pytester.runpytest("--llm-save-baseline=main", *xdist_args).assert_outcomes(passed=10)
    monkeypatch.setenv("LEFT_OUT", LEFT_OUT)

    result = pytester.runpytest("--llm-baseline=main", *xdist_args)

    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            "  caps *mean_acc *1.000 *1.000 *+0.000 *+0.000..+0.000 *1.000 *4 *"
            "no significant change",
            "flipped items: 0 pass -> fail, 0 fail -> pass, 6 pass -> skipped (showing 5)",
        ]
    )
    result.stdout.no_fnmatch_line("*REGRESSION*")
    rows = runs.latest()["comparison"]["metrics"]
    row = next(m for m in rows if (m["group"], m["name"]) == ("caps", "mean_acc"))
    assert (row["n"], row["estimate"], row["verdict"]) == (4, 0.0, "no significant change")


def stored(item_id: str, outcome: str, value: bool) -> dict[str, Any]:
    score = {"name": "acc", "data_type": "BOOLEAN", "value": value}
    return {
        "dataset": "caps",
        "item_id": item_id,
        "node_id": f"test_caps[{item_id}]",
        "outcome": outcome,
        "trace": {"scores": [score]},
    }


@pytest.mark.parametrize("outcome", ["skipped", "xfailed"])
def test_an_item_left_out_on_the_baseline_side_is_not_paired_either(outcome: str) -> None:
    baseline = [stored("a", "passed", True), *(stored(k, outcome, False) for k in "bcdefg")]
    current = [stored(k, "passed", True) for k in "abcdefg"]

    values = paired_values(match(baseline, current).pairs, "acc")

    assert (values.baseline, values.current) == ([1.0], [1.0])


# --- thresholds of a dataset whose items were all skipped or xfailed ----------------------------

ALL_XFAIL_SUITE = """\
    import pytest

    @pytest.mark.xfail(reason="model not ready")
    @pytest.mark.llm_dataset("caps", thresholds=["mean_acc >= 0.9", "pass_rate >= 0.9"])
    def test_caps(item, llm, scorer):
        assert scorer.exact_match(llm.generate(item.input).text, "x", name="acc")

    def test_other():
        pass
    """


def test_thresholds_of_a_dataset_with_no_counted_item_are_not_evaluated_and_do_not_fail(
    pytester: pytest.Pytester, runs: Runs
) -> None:
    write_caps(pytester, ["france", "peru", "japan"])
    pytester.makepyfile(test_caps=dedent(ALL_XFAIL_SUITE))

    result = pytester.runpytest()

    result.assert_outcomes(passed=1, xfailed=3)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        [
            "  – caps: mean_acc >= 0.9  not evaluated: no item of dataset 'caps' was counted"
            " (3 skipped or xfailed)",
            "  – caps: pass_rate >= 0.9  not evaluated: no item of dataset 'caps' was counted"
            " (3 skipped or xfailed)",
        ]
    )
    result.stdout.no_fnmatch_line("*threshold(s) failed*")
    run = runs.latest()
    assert run["status"] == "passed"
    verdicts = {t["aggregate"]: t for t in run["thresholds"]}
    assert verdicts["mean_acc"]["passed"] is True and verdicts["mean_acc"]["evaluated"] is False
    assert verdicts["mean_acc"]["observed"] is None
    report = pytester.path / "report.html"
    pytester.runpytest(f"--llm-report={report}")
    assert report.read_text(encoding="utf-8").count("– not evaluated</span>") == 2

    misspelt = pytester.runpytest("--llm-threshold=caps: pas_rate >= 0.9")

    assert misspelt.ret == pytest.ExitCode.TESTS_FAILED
    misspelt.stdout.fnmatch_lines(
        [
            "*caps: pas_rate >= 0.9  ERROR: no aggregate 'pas_rate' for dataset 'caps'; known: *",
            "1 of 3 threshold(s) failed: session fails",
        ]
    )


def test_only_names_counted_items_would_give_go_unevaluated() -> None:
    counted_items_names = [
        "mean_acc >= 0.9",
        "pass_rate.ci_low >= 0.9",
        "counts_tone.kind >= 1",
        "f1_macro_intent >= 0.5",
    ]
    # (a generation aggregate is no score's: skipped items' generations count too)
    typos = ["pas_rate >= 0.9", "total_tokens <= 10", "mean_ >= 1", "mean_latency_ms <= 100"]
    count = Aggregate("count", 3.0, 3)
    aggregates = {"*": {"count": count}, "caps": {"count": count}}
    thresholds = [parse_threshold(e, dataset="caps") for e in counted_items_names + typos]

    results = evaluate(thresholds, aggregates)

    assert [r.evaluated for r in results] == [False] * 4 + [True] * 4
    assert [r.passed for r in results] == [True] * 4 + [False] * 4
    assert all(r.error is not None for r in results)
    assert [r.to_dict().get("evaluated", True) for r in results] == [False] * 4 + [True] * 4


# --- the HTML report counts the items the aggregates count ----------------------------------

REPORT_SUITE = """\
    import pytest

    @pytest.mark.llm_dataset("caps")
    def test_caps(item, llm, scorer, request):
        answer = llm.generate(item.input).text
        if item.id == "peru":
            request.applymarker(pytest.mark.xfail(reason="bad expected"))
            assert scorer.exact_match(answer, "WRONG", name="acc")
        if item.id == "spain":
            scorer.score("acc", False)
            pytest.skip("flaky item")
        assert scorer.exact_match(answer, item.expected_output, name="acc")
    """


def stats_rows(page: str) -> list[list[str]]:
    table = page[page.index('<table class="stats">') :]
    body = table[table.index("<tbody>") : table.index("</tbody>")]
    return [re.findall(r"<td[^>]*>([^<]*)</td>", row) for row in body.split("</tr>") if row]


def test_the_reports_score_table_counts_the_items_the_aggregates_count(
    pytester: pytest.Pytester,
) -> None:
    write_caps(pytester, ["france", "peru", "japan", "spain"])
    pytester.makepyfile(test_caps=dedent(REPORT_SUITE))

    result = pytester.runpytest("--llm-report=r.html")

    result.assert_outcomes(passed=2, skipped=1, xfailed=1)
    page = (pytester.path / "r.html").read_text()
    (row,) = stats_rows(page)
    assert row[:4] == ["acc", "boolean", "2", "1"]  # name, type, n, mean
    assert "true 2 of 2 (100.0%)" in page


def test_the_summary_says_how_many_items_the_pass_rate_leaves_out(
    pytester: pytest.Pytester,
) -> None:
    write_caps(pytester, ["france", "peru", "japan", "spain"])
    pytester.makepyfile(test_caps=dedent(REPORT_SUITE))

    result = pytester.runpytest()

    result.assert_outcomes(passed=2, skipped=1, xfailed=1)
    result.stdout.fnmatch_lines(
        [
            "dataset 'caps' version *: 4 items  pass rate 100.0% (2/2)  2 skipped or xfailed",
            "all tests: 4 items  pass rate 100.0% (2/2)  2 skipped or xfailed",
        ]
    )


def test_the_reports_boolean_chart_says_values_when_tests_recorded_several(
    pytester: pytest.Pytester,
) -> None:
    write_caps(pytester, ["france", "japan"])
    pytester.makepyfile(
        test_caps="""
        import pytest

        @pytest.mark.llm_dataset("caps")
        def test_caps(item, scorer):
            for _ in range(3 if item.id == "france" else 1):
                scorer.score("acc", item.id == "france")
        """
    )

    pytester.runpytest("--llm-report=r.html")

    page = (pytester.path / "r.html").read_text()
    (row,) = stats_rows(page)
    assert row[:4] == ["acc", "boolean", "2", "0.500"]  # two items, one sample each
    assert "true 3 of 4 values (75.0%), 2 items" in page


# --- one sample per item -----------------------------------------------------------------------


def test_a_score_recorded_several_times_in_one_item_is_one_sample() -> None:
    items = [summary("passed", *[("acc", "BOOLEAN", True)] * 30)]

    mean = group_aggregates(items)["mean_acc"]

    interval = wilson_interval(1, 1)
    assert (mean.value, mean.n) == (1.0, 1)
    assert (mean.extra["ci_low"], mean.extra["ci_high"]) == (interval.low, interval.high)


def test_each_items_mean_is_the_sample_of_numeric_scores() -> None:
    items = [
        summary("passed", ("quality", "NUMERIC", 0.0), ("quality", "NUMERIC", 1.0)),
        summary("passed", ("quality", "NUMERIC", 1.0)),
        summary("passed", ("quality", "NUMERIC", 0.25)),
    ]

    named = group_aggregates(items)

    assert (named["mean_quality"].value, named["mean_quality"].n) == (0.5833333333333334, 3)
    assert (named["min_quality"].value, named["p50_quality"].value) == (0.25, 0.5)
    interval = bootstrap_mean_interval([0.25, 0.5, 1.0])
    extra = named["mean_quality"].extra
    assert (extra["ci_low"], extra["ci_high"]) == (interval.low, interval.high)


def test_booleans_averaged_to_a_fraction_count_as_shares_in_wilsons_interval() -> None:
    items = [
        summary("passed", ("acc", "BOOLEAN", True), ("acc", "BOOLEAN", False)),
        summary("passed", ("acc", "BOOLEAN", True)),
        summary("passed", ("acc", "BOOLEAN", False)),
    ]

    mean = group_aggregates(items)["mean_acc"]

    interval = wilson_interval(1.5, 3)  # (a bootstrap of such shares was narrower)
    assert (mean.value, mean.n) == (0.5, 3)
    assert (mean.extra["ci_low"], mean.extra["ci_high"]) == (interval.low, interval.high)


REPEATED_SCORE_SUITE = """\
    def test_one_item(llm, scorer):
        answer = llm.generate("What is the capital of France?").text
        for _ in range(30):
            scorer.exact_match(answer, "Paris", name="acc")
    """


def test_one_item_scoring_thirty_times_does_not_pass_an_interval_gate(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_multi=dedent(REPEATED_SCORE_SUITE))

    result = pytester.runpytest("--llm-threshold=mean_acc.ci_low >= 0.85")

    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*mean_acc.ci_low >= 0.85  observed 0.207 (n=1)"])


# --- runs stored before per-item aggregation read as today's ------------------------------------

SEVERAL_SCORES = """\
    import pytest

    @pytest.mark.parametrize("right", [True, False])
    def test_answer(right, scorer):
        for _ in range(1 if right else 3):  # a wrong answer records its score three times
            scorer.score("quality", 1.0 if right else 0.0)
    """


def test_a_run_stored_before_per_item_aggregation_reads_as_a_run_stored_today(
    pytester: pytest.Pytester, runs: Runs
) -> None:
    # (before: show, rescore, report and compare used the old per-value mean of such a run,
    # 0.25 here, while merge and new runs gave the per-item 0.5: two verdicts on one set of items)
    pytester.makepyfile(test_several=dedent(SEVERAL_SCORES))
    pytester.runpytest("--llm-model=mock-llm-v1").assert_outcomes(passed=2)
    run_id = runs.latest()["id"]
    with contextlib.closing(sqlite3.connect(runs.db())) as db, db:  # as the old version stored it
        (summary,) = db.execute("SELECT summary FROM runs WHERE id = ?", (run_id,)).fetchone()
        old = json.loads(summary)
        del old["aggregation"]
        mean = next(a for a in old["aggregates"]["*"] if a["name"] == "mean_quality")
        mean.update(value=0.25, n=4)
        db.execute("UPDATE runs SET summary = ? WHERE id = ?", (json.dumps(old), run_id))

    store = str(pytester.path / ".llmobs")
    out = StringIO()
    rescore = ["rescore", run_id, "--threshold", "mean_quality >= 0.4", "--store", store]
    assert cli.main(rescore, out) == 0, out.getvalue()
    assert "  ✓ mean_quality >= 0.4  observed 0.500 (n=2)" in out.getvalue().splitlines()
    export = pytester.path / "old.json"
    assert cli.main(["export", run_id, "-o", str(export), "--store", store], StringIO()) == 0
    data = json.loads(export.read_text())
    data.pop("aggregation")  # an export the old version wrote
    next(a for a in data["aggregates"]["*"] if a["name"] == "mean_quality").update(value=0.25)
    export.write_text(json.dumps(data))
    from_file = StringIO()
    assert cli.main(["rescore", str(export), "--threshold", "mean_quality >= 0.4"], from_file) == 0
    assert "observed 0.500 (n=2)" in from_file.getvalue()
