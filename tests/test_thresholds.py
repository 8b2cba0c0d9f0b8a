"""Quality gates: parsing and evaluating ``[dataset:] aggregate op number``, and the session's
verdict when thresholds come from the marker, the ini file and the command line."""

from __future__ import annotations

import glob
import json
from textwrap import dedent
from typing import TYPE_CHECKING, Any

import pytest

from pytest_llmobs.aggregate_model import Aggregate
from pytest_llmobs.aggregate_names import ALL_ITEMS
from pytest_llmobs.thresholds import ThresholdError, evaluate, lookup, parse_threshold

if TYPE_CHECKING:
    from conftest import Runs

SYNTAX = (
    "expected '[dataset:] aggregate op number' with op one of >=, >, <=, <, ==, "
    "e.g. 'capitals: mean_accuracy >= 0.9'"
)

# --- parse_threshold ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "dataset", "aggregate", "op", "limit"),
    [
        ("mean_accuracy >= 0.9", None, "mean_accuracy", ">=", 0.9),
        ("pass_rate>1", None, "pass_rate", ">", 1.0),
        ("  p95_latency_ms <= 1500 ", None, "p95_latency_ms", "<=", 1500.0),
        ("std_accuracy < .25", None, "std_accuracy", "<", 0.25),
        ("count == 10", None, "count", "==", 10.0),
        ("capitals: mean_accuracy >= 0.9", "capitals", "mean_accuracy", ">=", 0.9),
        ("capital-cities v2 :pass_rate>=-1e-3", "capital-cities v2", "pass_rate", ">=", -0.001),
        ("qa: counts_user_feedback.positive >= 2", "qa", "counts_user_feedback.positive", ">=", 2),
        # score names may hold spaces and hyphens (Langfuse allows any name)
        ("mean_exact match >= 0.5", None, "mean_exact match", ">=", 0.5),
        ("qa: mean_exact-match>0", "qa", "mean_exact-match", ">", 0.0),
    ],
)
def test_parse_threshold(
    expression: str, dataset: str | None, aggregate: str, op: str, limit: float
) -> None:
    threshold = parse_threshold(expression, source="test")

    assert (threshold.dataset, threshold.aggregate, threshold.op) == (dataset, aggregate, op)
    assert threshold.limit == limit
    assert threshold.expression == " ".join(expression.split())
    assert threshold.source == "test"
    assert threshold.group == (dataset if dataset is not None else ALL_ITEMS)


def test_parse_threshold_default_dataset_applies_only_when_none_is_written() -> None:
    assert parse_threshold("pass_rate >= 1", dataset="capitals").dataset == "capitals"
    assert parse_threshold("qa: pass_rate >= 1", dataset="capitals").dataset == "qa"


@pytest.mark.parametrize(
    "expression",
    [
        "mean_accuracy => 0.9",
        "mean_accuracy = 0.9",
        "mean_accuracy != 0.9",
        "mean_accuracy >= high",
        "mean_accuracy >= nan",
        ">= 0.9",
        "mean_accuracy",
        "",
        "mean_accuracy >= \u0660.\u0669",  # Arabic-Indic digits, which float() reads
    ],
)
def test_parse_threshold_rejects_malformed_expressions(expression: str) -> None:
    with pytest.raises(ThresholdError) as excinfo:
        parse_threshold(expression, source="--llm-threshold")

    assert str(excinfo.value) == (
        f"invalid threshold {expression!r} (from --llm-threshold): {SYNTAX}"
    )


def test_parse_threshold_rejects_a_limit_that_is_not_finite() -> None:
    with pytest.raises(ThresholdError) as excinfo:
        parse_threshold("mean_accuracy >= 1e999")

    assert str(excinfo.value) == (
        "invalid threshold 'mean_accuracy >= 1e999': limit must be a finite number"
    )


# --- evaluate -----------------------------------------------------------------------------------


def aggregates() -> dict[str, dict[str, Aggregate]]:
    capitals = {
        "count": Aggregate("count", 4.0, 4),
        "pass_rate": Aggregate("pass_rate", 0.75, 4, {"ci_low": 0.3, "ci_high": 0.95}),
        "mean_accuracy": Aggregate("mean_accuracy", 0.75, 4),
        "counts_tone": Aggregate("counts_tone", 4.0, 4, {"calm": 3.0, "curt": 1.0}),
    }
    whole = {
        "count": Aggregate("count", 5.0, 5),
        "pass_rate": Aggregate("pass_rate", 0.8, 5),
    }
    return {"capitals": capitals, ALL_ITEMS: whole}


@pytest.mark.parametrize(
    ("expression", "passed"),
    [
        ("capitals: mean_accuracy >= 0.75", True),
        ("capitals: mean_accuracy > 0.75", False),
        ("capitals: mean_accuracy <= 0.75", True),
        ("capitals: mean_accuracy < 0.75", False),
        ("capitals: mean_accuracy == 0.75", True),
        ("capitals: mean_accuracy == 0.7", False),
        ("capitals: mean_accuracy >= 0.9", False),
        ("pass_rate >= 0.8", True),
        ("pass_rate > 0.8", False),
    ],
)
def test_evaluate_compares_observed_with_limit(expression: str, passed: bool) -> None:
    (result,) = evaluate([parse_threshold(expression)], aggregates())

    assert result.passed is passed
    assert result.error is None
    group = "capitals" if expression.startswith("capitals") else ALL_ITEMS
    name = result.threshold.aggregate
    assert result.observed == aggregates()[group][name].value
    assert result.n == aggregates()[group][name].n


def test_evaluate_reads_a_field_of_a_categorical_aggregate() -> None:
    (result,) = evaluate([parse_threshold("capitals: counts_tone.calm >= 3")], aggregates())

    assert (result.passed, result.observed, result.n) == (True, 3.0, 4)


def test_unknown_aggregate_fails_listing_the_known_ones() -> None:
    (result,) = evaluate([parse_threshold("capitals: mean_acc >= 0.9")], aggregates())

    assert not result.passed
    assert (result.observed, result.n) == (None, 0)
    assert result.error == (
        "'capitals: mean_acc >= 0.9': no aggregate 'mean_acc' for dataset 'capitals' (no item "
        "recorded a score 'acc'); known: count, counts_tone, mean_accuracy, pass_rate"
    )


def test_an_aggregate_of_a_score_recorded_as_another_kind_is_only_unknown() -> None:
    (result,) = evaluate([parse_threshold("capitals: mean_tone >= 0.9")], aggregates())

    assert result.error == (  # (tone is categorical: counts_tone, no mean)
        "'capitals: mean_tone >= 0.9': no aggregate 'mean_tone' for dataset 'capitals'; "
        "known: count, counts_tone, mean_accuracy, pass_rate"
    )


def test_unknown_aggregate_of_the_whole_run_fails_listing_the_known_ones() -> None:
    (result,) = evaluate([parse_threshold("mean_accuracy >= 0.9")], aggregates())

    assert not result.passed
    assert result.error == (
        "'mean_accuracy >= 0.9': no aggregate 'mean_accuracy' for the run (no item recorded a "
        "score 'accuracy'); known: count, pass_rate"
    )


def test_unknown_dataset_fails_listing_the_datasets_of_the_run() -> None:
    (result,) = evaluate([parse_threshold("capitls: pass_rate >= 0.9")], aggregates())

    assert not result.passed
    assert result.error == (
        "'capitls: pass_rate >= 0.9': no dataset 'capitls' in this run; datasets: capitals"
    )


def test_unknown_field_fails_listing_the_known_fields() -> None:
    with pytest.raises(ThresholdError) as excinfo:
        lookup(aggregates(), parse_threshold("capitals: pass_rate.ci_lo >= 0.5"))

    assert str(excinfo.value) == (
        "'capitals: pass_rate.ci_lo >= 0.5': aggregate 'pass_rate' has no field 'ci_lo'; "
        "known: ci_high, ci_low"
    )


def test_an_interval_one_item_cannot_give_fails_saying_why() -> None:
    groups = {ALL_ITEMS: {"mean_sim": Aggregate("mean_sim", 0.9, 1)}}

    (result,) = evaluate([parse_threshold("mean_sim.ci_low >= 0.8")], groups)

    assert not result.passed
    assert result.error == (
        "'mean_sim.ci_low >= 0.8': aggregate 'mean_sim' has no 95% interval: its bootstrap "
        "needs at least 2 items (the repeats of one item count once)"
    )
    groups[ALL_ITEMS]["std_sim"] = Aggregate("std_sim", 0.0, 2)
    (other,) = evaluate([parse_threshold("std_sim.ci_low >= 0")], groups)
    assert other.error == "'std_sim.ci_low >= 0': aggregate 'std_sim' has no field 'ci_low'; " + (
        "known: (none)"
    )


def test_a_categorical_value_no_item_had_counts_zero() -> None:
    # "at most 2 angry answers" holds when there were none
    (at_most,) = evaluate([parse_threshold("capitals: counts_tone.angry <= 2")], aggregates())
    (at_least,) = evaluate([parse_threshold("capitals: counts_tone.angry >= 1")], aggregates())

    assert (at_most.passed, at_most.observed, at_most.n, at_most.error) == (True, 0.0, 4, None)
    assert (at_least.passed, at_least.observed) == (False, 0.0)


def test_evaluate_keeps_the_order_and_a_bad_threshold_does_not_hide_the_others() -> None:
    thresholds = [
        parse_threshold("pass_rate >= 0.5"),
        parse_threshold("nope >= 1"),
        parse_threshold("capitals: pass_rate >= 0.9"),
    ]

    results = evaluate(thresholds, aggregates())

    assert [r.threshold for r in results] == thresholds
    assert [r.passed for r in results] == [True, False, False]
    assert [r.error is None for r in results] == [True, False, True]
    assert results[0].to_dict() == {
        "expression": "pass_rate >= 0.5",
        "dataset": None,
        "aggregate": "pass_rate",
        "op": ">=",
        "limit": 0.5,
        "source": "",
        "observed": 0.8,
        "n": 5,
        "passed": True,
        "error": None,
    }


# --- thresholds in a session --------------------------------------------------------------------

GRADED: list[dict[str, Any]] = [
    {"id": "a", "input": "q1", "metadata": {"quality": 0.5}},
    {"id": "b", "input": "q2", "metadata": {"quality": 0.6}},
    {"id": "c", "input": "q3", "metadata": {"quality": 0.7}},
]


def graded_suite(pytester: pytest.Pytester, thresholds: list[str] | None = None) -> None:
    """Every test passes; each item scores its ``quality`` (mean 0.6)."""
    pytester.makefile(".jsonl", **{"datasets/graded": "\n".join(map(json.dumps, GRADED))})
    marker_args = f", thresholds={thresholds!r}" if thresholds else ""
    pytester.makepyfile(
        test_graded=dedent(
            f"""\
            import pytest

            @pytest.mark.llm_dataset("graded"{marker_args})
            def test_graded(item, scorer):
                scorer.score("quality", item.metadata["quality"])
            """
        )
    )


def verdicts(run: dict[str, Any]) -> list[tuple[str, str, bool, float | None, int]]:
    return [
        (t["expression"], t["source"], t["passed"], t["observed"], t["n"])
        for t in run["thresholds"]
    ]


def test_failed_marker_threshold_fails_the_session_although_every_test_passed(
    pytester: pytest.Pytester, runs: Runs, xdist_args: tuple[str, ...]
) -> None:
    graded_suite(pytester, ["mean_quality >= 0.9", "pass_rate >= 1"])

    result = pytester.runpytest(*xdist_args)

    result.assert_outcomes(passed=3)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "thresholds:",
            "  ✗ graded: mean_quality >= 0.9  observed 0.600 (n=3)",
            "  ✓ graded: pass_rate >= 1  observed 1 (n=3)",
            "1 of 2 threshold(s) failed: session fails",
        ],
        consecutive=True,
    )
    run = runs.latest()
    assert run["status"] == "failed"
    assert run["counts"] == {"passed": 3}
    assert verdicts(run) == [
        ("mean_quality >= 0.9", "llm_dataset marker", False, pytest.approx(0.6), 3),
        ("pass_rate >= 1", "llm_dataset marker", True, 1.0, 3),
    ]
    assert {t["dataset"] for t in run["thresholds"]} == {"graded"}


def test_passing_thresholds_keep_the_session_green(pytester: pytest.Pytester, runs: Runs) -> None:
    graded_suite(pytester, ["mean_quality >= 0.5"])

    result = pytester.runpytest("--llm-threshold=graded: min_quality >= 0.5")

    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        [
            "  ✓ graded: min_quality >= 0.5  observed 0.500 (n=3)",
            "  ✓ graded: mean_quality >= 0.5  observed 0.600 (n=3)",
        ]
    )
    assert runs.latest()["status"] == "passed"


def test_thresholds_from_ini_list_and_command_line_all_apply(
    pytester: pytest.Pytester, runs: Runs
) -> None:
    pytester.makeini(
        dedent(
            """\
            [pytest]
            llm_threshold =
                graded: max_quality <= 0.7
                pass_rate >= 0.5
            """
        )
    )
    graded_suite(pytester)

    result = pytester.runpytest("--llm-threshold=graded: p50_quality > 0.6")

    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert verdicts(runs.latest()) == [
        ("graded: max_quality <= 0.7", "ini llm_threshold", True, pytest.approx(0.7), 3),
        ("pass_rate >= 0.5", "ini llm_threshold", True, 1.0, 3),
        ("graded: p50_quality > 0.6", "--llm-threshold", False, pytest.approx(0.6), 3),
    ]
    result.stdout.fnmatch_lines(["  ✗ graded: p50_quality > 0.6  observed 0.600 (n=3)"])


def test_a_gate_given_twice_in_different_spellings_is_evaluated_once(
    pytester: pytest.Pytester, runs: Runs
) -> None:
    pytester.makeini("[pytest]\nllm_threshold = graded: mean_quality>=0.50\n")
    graded_suite(pytester, ["mean_quality >= 0.5", "max_quality <= 0.7"])

    result = pytester.runpytest(
        "--llm-threshold=graded: mean_quality >= 0.5", "--llm-threshold=graded: max_quality<=.7"
    )

    assert result.ret == pytest.ExitCode.OK
    assert verdicts(runs.latest()) == [  # the first spelling of each gate, where it came from
        ("graded: mean_quality>=0.50", "ini llm_threshold", True, pytest.approx(0.6), 3),
        ("graded: max_quality<=.7", "--llm-threshold", True, pytest.approx(0.7), 3),
    ]
    result.stdout.fnmatch_lines(["thresholds:", "  ✓ *", "  ✓ *", "=*passed*"], consecutive=True)


def test_threshold_on_a_missing_aggregate_fails_the_session_listing_known_aggregates(
    pytester: pytest.Pytester, runs: Runs
) -> None:
    graded_suite(pytester)

    result = pytester.runpytest("--llm-threshold=graded: mean_qualty >= 0.5")

    result.assert_outcomes(passed=3)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    known = (
        "count, max_quality, mean_quality, min_quality, p50_quality, p95_quality, pass_rate, "
        "std_quality"
    )
    result.stdout.fnmatch_lines(
        [
            "  ✗ graded: mean_qualty >= 0.5  ERROR: no aggregate 'mean_qualty' for dataset "
            f"'graded' (no item recorded a score 'qualty'); known: {known}",
            "1 of 1 threshold(s) failed: session fails",
        ],
        consecutive=True,
    )
    (stored,) = runs.latest()["thresholds"]
    assert stored["passed"] is False
    assert stored["error"] == (
        f"'graded: mean_qualty >= 0.5': no aggregate 'mean_qualty' for dataset 'graded' (no item "
        f"recorded a score 'qualty'); known: {known}"
    )


def test_threshold_on_a_dataset_the_run_did_not_use_fails_the_session(
    pytester: pytest.Pytester,
) -> None:
    graded_suite(pytester)

    result = pytester.runpytest("--llm-threshold=capitals: pass_rate >= 0.5")

    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "  ✗ capitals: pass_rate >= 0.5  ERROR: no dataset 'capitals' in this run; "
            "datasets: graded"
        ]
    )


def test_threshold_in_a_run_without_tests_fails_the_session(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("")

    result = pytester.runpytest("--llm-threshold=pass_rate >= 0.5")

    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        ["  ✗ pass_rate >= 0.5  ERROR: no aggregate 'pass_rate' for the run; known: count"]
    )


def test_failing_tests_and_a_failed_threshold_exit_with_tests_failed(
    pytester: pytest.Pytester, runs: Runs
) -> None:
    pytester.makepyfile("def test_fails():\n    assert False\n")

    result = pytester.runpytest("--llm-threshold=pass_rate >= 0.5")

    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["  ✗ pass_rate >= 0.5  observed 0 (n=1)"])
    assert runs.latest()["status"] == "failed"


def test_malformed_threshold_on_the_command_line_is_a_usage_error(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile("def test_nothing():\n    pass\n")

    result = pytester.runpytest("--llm-threshold=mean_accuracy => 0.9")

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            glob.escape(
                f"ERROR: invalid threshold 'mean_accuracy => 0.9' (from --llm-threshold): {SYNTAX}"
            )
        ]
    )
    assert not (pytester.path / ".llmobs").exists()


def test_malformed_threshold_in_the_ini_file_is_a_usage_error(pytester: pytest.Pytester) -> None:
    ini = pytester.makeini("[pytest]\nllm_threshold = pass_rate >= most\n")
    pytester.makepyfile("def test_nothing():\n    pass\n")

    result = pytester.runpytest()

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            glob.escape(
                f"ERROR: invalid threshold 'pass_rate >= most' (from llm_threshold in {ini}): "
                f"{SYNTAX}"
            )
        ]
    )


def test_malformed_threshold_in_the_marker_is_a_usage_error_and_stores_no_run(
    pytester: pytest.Pytester, runs: Runs
) -> None:
    graded_suite(pytester, ["mean_quality => 0.9"])

    result = pytester.runpytest()

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            glob.escape(
                "ERROR: test_graded.py::test_graded: invalid threshold 'mean_quality => 0.9' "
                f"(from llm_dataset marker): {SYNTAX}"
            )
        ]
    )
    assert runs.list() == []


def test_a_marker_threshold_on_another_dataset_is_a_usage_error_at_collection(
    pytester: pytest.Pytester, runs: Runs
) -> None:
    # (before: accepted, then failed at session end with "no dataset 'other' in this run")
    graded_suite(pytester, ["other: pass_rate >= 1"])

    result = pytester.runpytest()

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            glob.escape(
                "ERROR: test_graded.py::test_graded: @pytest.mark.llm_dataset('graded'): "
                "threshold 'other: pass_rate >= 1' names dataset 'other'; thresholds are scoped "
                "to dataset 'graded'; leave out the prefix or write 'graded: ...'"
            )
        ]
    )
    assert runs.list() == []


def test_a_marker_threshold_prefixed_with_its_own_dataset_is_accepted(
    pytester: pytest.Pytester, runs: Runs
) -> None:
    graded_suite(pytester, ["graded : pass_rate >= 1"])

    result = pytester.runpytest()

    result.assert_outcomes(passed=3)
    assert result.ret == pytest.ExitCode.OK
    assert verdicts(runs.latest()) == [
        ("graded : pass_rate >= 1", "llm_dataset marker", True, 1.0, 3)
    ]


def test_a_verdict_the_rounded_figure_would_contradict_shows_every_digit() -> None:
    from pytest_llmobs.reporting.terminal import threshold_line
    from pytest_llmobs.thresholds import ThresholdResult

    threshold = parse_threshold("labs: f1_macro >= 0.548")
    failed = ThresholdResult(threshold, 0.5476, 8, passed=False)
    clear = ThresholdResult(threshold, 0.3, 8, passed=False)

    assert threshold_line(failed, ("✓", "✗")).endswith("observed 0.5476 (n=8)")  # not 0.548
    assert threshold_line(clear, ("✓", "✗")).endswith("observed 0.300 (n=8)")


def test_a_threshold_on_a_generation_figure_of_a_run_without_generations_says_so() -> None:
    (result,) = evaluate([parse_threshold("mean_latency_ms <= 500")], aggregates())

    assert result.error is not None and "(no generation was recorded)" in result.error


@pytest.mark.parametrize(
    "expression",
    ["capitals: mean_repeat_variance_accuracy <= 0.1", "flaky_rate <= 0", "flaky_items == 0"],
)
def test_a_repeat_aggregate_in_a_run_without_repeats_says_it_needs_repeats(
    expression: str,
) -> None:
    # (before: "(no item recorded a score 'repeat_variance_accuracy')", or no hint at all)
    (result,) = evaluate([parse_threshold(expression)], aggregates())

    assert not result.passed
    assert result.error is not None
    assert "(it exists only with --llm-repeat / repeat=: no item ran more than once)" in (
        result.error
    )
    assert "a score 'repeat_variance" not in result.error


def test_a_repeat_variance_of_a_score_no_repeat_recorded_twice_says_so() -> None:
    groups = aggregates()
    groups["capitals"]["flaky_rate"] = Aggregate("flaky_rate", 0.0, 4)

    (result,) = evaluate([parse_threshold("capitals: mean_repeat_variance_tone <= 1")], groups)

    assert result.error is not None
    assert "(no item recorded a score 'tone' in two of its repeats)" in result.error


def test_a_threshold_the_run_cannot_judge_is_not_evaluated_and_does_not_fail() -> None:
    from dataclasses import replace

    from pytest_llmobs.reporting.terminal import threshold_line

    threshold = replace(parse_threshold("short_rate >= 0.5"), unjudged="a run evaluator's")

    (result,) = evaluate([threshold], aggregates())

    assert (result.passed, result.evaluated, result.observed) == (True, False, None)
    assert result.to_dict()["evaluated"] is False
    assert threshold_line(result, ("✓", "✗")) == (
        "  – short_rate >= 0.5  not evaluated: a run evaluator's"
    )


def test_aggregates_of_names_and_labels_with_dots_spaces_and_arrows_can_be_gated(
    pytester: pytest.Pytester, runs: Runs
) -> None:
    pytester.makepyfile(
        test_names="""
        import pytest

        @pytest.mark.parametrize("case", [1, 2])
        def test_names(scorer, case):
            scorer.score("tone", "very positive")
            scorer.label("out of scope", "billing")
            scorer.label("x->y", "x->y", name="arrow")
            scorer.score("rouge.l", 0.5)
            scorer.score("q/a", 0.5)
        """
    )
    gates = [
        "counts_tone.very positive >= 1",
        "confusion.billing->out of scope == 2",
        "confusion_arrow.x-\\>y->x-\\>y >= 1",
        "mean_rouge.l >= 0.5",
        "mean_rouge.l.ci_low <= 0.5",
        "mean_q/a == 0.5",
    ]

    result = pytester.runpytest(*(f"--llm-threshold={gate}" for gate in gates))

    result.assert_outcomes(passed=2)
    assert result.ret == 0, result.stdout.str()
    stored = runs.latest()["thresholds"]
    assert [(t["expression"], t["passed"], t["error"]) for t in stored] == [
        (gate, True, None) for gate in gates
    ]
