"""Run aggregates: percentiles and spreads against the `statistics` module, categorical counts,
groups per dataset and for the whole run, and the aggregates a session stores."""

from __future__ import annotations

import json
import math
import statistics
from textwrap import dedent
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_llmobs.aggregate_model import (
    Aggregate,
    GenerationFigures,
    ItemSummary,
    aggregates_from_dict,
    aggregates_to_dict,
)
from pytest_llmobs.aggregate_names import ALL_ITEMS
from pytest_llmobs.aggregates import compute_aggregates, group_aggregates, numeric_aggregates
from pytest_llmobs.evaluators.run_level import wilson_interval
from pytest_llmobs.safe_stats import percentile

if TYPE_CHECKING:
    from conftest import Runs

# --- percentile ---------------------------------------------------------------------------------


def test_percentile_interpolates_linearly_between_ranks() -> None:
    ordered = [10.0, 20.0, 30.0, 40.0]  # ranks 0..3; q% sits at rank 3 * q / 100

    assert percentile(ordered, 0) == 10.0
    assert percentile(ordered, 100) == 40.0
    assert percentile(ordered, 50) == 25.0  # rank 1.5
    assert percentile(ordered, 95) == pytest.approx(30.0 + (40.0 - 30.0) * 0.85)  # rank 2.85
    assert percentile(ordered, 25) == pytest.approx(17.5)  # rank 0.75


@pytest.mark.parametrize(
    "values",
    [[3.0, 1.0, 2.0], [5.0, 1.0, 4.0, 2.0], [0.1, 0.9, 0.4, 0.4, 0.7, 0.2], list(range(21))],
)
def test_percentile_agrees_with_statistics_inclusive_quantiles(values: list[float]) -> None:
    ordered = sorted(map(float, values))
    cut_points = statistics.quantiles(ordered, n=100, method="inclusive")  # 1st..99th

    for q in (5, 25, 50, 75, 95):
        assert percentile(ordered, q) == pytest.approx(cut_points[q - 1])
    assert percentile(ordered, 50) == pytest.approx(statistics.median(ordered))


def test_percentile_of_one_value_is_that_value() -> None:
    assert percentile([7.5], 50) == 7.5
    assert percentile([7.5], 95) == 7.5


def test_percentile_of_no_values_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"^percentile of no values$"):
        percentile([], 50)


# --- numeric and categorical aggregates ---------------------------------------------------------


def test_numeric_aggregates_match_statistics() -> None:
    values = [0.2, 0.9, 0.4, 0.4, 1.0]
    ordered = sorted(values)

    named = {a.name: a for a in numeric_aggregates("accuracy", values)}

    assert list(named) == [
        "mean_accuracy",
        "std_accuracy",
        "min_accuracy",
        "max_accuracy",
        "p50_accuracy",
        "p95_accuracy",
    ]
    assert named["mean_accuracy"].value == pytest.approx(statistics.fmean(values))
    assert named["std_accuracy"].value == pytest.approx(statistics.stdev(values))  # sample std
    assert named["min_accuracy"].value == min(values)
    assert named["max_accuracy"].value == max(values)
    assert named["p50_accuracy"].value == statistics.median(values)
    rank = (len(values) - 1) * 0.95
    low = math.floor(rank)
    p95 = ordered[low] + (ordered[low + 1] - ordered[low]) * (rank - low)
    assert named["p95_accuracy"].value == pytest.approx(p95)
    assert {a.n for a in named.values()} == {len(values)}


def test_std_of_one_value_is_zero() -> None:
    named = {a.name: a for a in numeric_aggregates("latency", [12.0])}

    assert named["std_latency"].value == 0.0
    assert named["mean_latency"].value == 12.0


def item(dataset: str | None, outcome: str, *scores: tuple[str, str, Any]) -> ItemSummary:
    return ItemSummary(dataset, outcome, scores)


def test_repeats_do_not_narrow_intervals_without_new_items() -> None:
    verdicts = [True, False, False, True, False]  # five items, each run three times alike

    def summary(index: int, passed: bool, repeat: int) -> ItemSummary:
        outcome = "passed" if passed else "failed"
        score = ("accuracy", "BOOLEAN", passed)
        node = f"test_x.py::test_x[q{index}-r{repeat}]"
        return ItemSummary.from_item(
            {
                "node_id": node,
                "repeat": repeat,
                "dataset": "qa",
                "outcome": outcome,
                "trace": {"scores": [{"name": score[0], "data_type": score[1], "value": passed}]},
            }
        )

    once = group_aggregates([summary(i, v, 0) for i, v in enumerate(verdicts)])
    thrice = group_aggregates([summary(i, v, r) for r in range(3) for i, v in enumerate(verdicts)])

    per_item = wilson_interval(2, 5)  # over the five items, whatever their repeats
    for name in ("pass_rate", "mean_accuracy"):
        assert thrice[name].value == once[name].value == 0.4
        assert thrice[name].n == 15  # every value is still counted
        for run in (once, thrice):
            low, high = run[name].field("ci_low"), run[name].field("ci_high")
            assert (low, high) == (per_item.low, per_item.high)


def test_group_counts_outcomes_and_pass_rate_ignores_skipped() -> None:
    items = [
        item("qa", "passed"),
        item("qa", "failed"),
        item("qa", "error"),
        item("qa", "passed"),
        item("qa", "skipped"),
    ]

    named = group_aggregates(items)

    assert (named["count"].value, named["count"].n) == (5.0, 5)
    assert (named["pass_rate"].value, named["pass_rate"].n) == (0.5, 4)


def test_scores_of_skipped_and_xfailed_items_stay_out_like_their_pass_rate() -> None:
    items = [
        item("qa", "passed", ("accuracy", "NUMERIC", 1.0), ("tone", "CATEGORICAL", "kind")),
        item("qa", "failed", ("accuracy", "NUMERIC", 0.5)),
        item("qa", "xfailed", ("accuracy", "NUMERIC", 0.0), ("tone", "CATEGORICAL", "rude")),
        item("qa", "skipped", ("accuracy", "NUMERIC", 0.0)),
    ]

    named = group_aggregates(items)

    assert (named["mean_accuracy"].value, named["mean_accuracy"].n) == (0.75, 2)
    assert named["counts_tone"].extra == {"kind": 1.0}
    assert named["count"].value == 4.0  # the items themselves are all counted


def test_group_of_only_skipped_items_has_no_pass_rate() -> None:
    named = group_aggregates([item("qa", "skipped")])

    assert sorted(named) == ["count"]


def test_boolean_scores_aggregate_as_zero_and_one() -> None:
    flags = [True, False, True, True]
    items = [item("qa", "passed", ("grounded", "BOOLEAN", flag)) for flag in flags]

    named = group_aggregates(items)

    assert named["mean_grounded"].value == 0.75
    assert (named["min_grounded"].value, named["max_grounded"].value) == (0.0, 1.0)
    assert named["std_grounded"].value == pytest.approx(statistics.stdev(map(float, flags)))


def test_categorical_scores_count_each_value() -> None:
    feedback = ["positive", "negative", "positive", "neutral", "positive"]
    items = [item("qa", "passed", ("user_feedback", "CATEGORICAL", v)) for v in feedback]

    named = group_aggregates(items)

    counts = named["counts_user_feedback"]
    assert (counts.value, counts.n) == (5.0, 5)
    assert counts.extra == {"negative": 1.0, "neutral": 1.0, "positive": 3.0}
    assert counts.fields() == ["negative", "neutral", "positive"]
    assert counts.field("positive") == 3.0
    assert counts.field("angry") is None
    assert "mean_user_feedback" not in named


def test_aggregates_per_dataset_and_for_the_whole_run() -> None:
    items = [
        item("qa", "passed", ("accuracy", "NUMERIC", 1.0)),
        item("qa", "failed", ("accuracy", "NUMERIC", 0.0)),
        item("capitals", "passed", ("accuracy", "NUMERIC", 1.0)),
        item(None, "passed", ("latency", "NUMERIC", 3)),
    ]

    groups = compute_aggregates(items)

    assert sorted(groups) == [ALL_ITEMS, "capitals", "qa"]
    assert groups["qa"]["mean_accuracy"].value == 0.5
    assert groups["capitals"]["mean_accuracy"].value == 1.0
    assert "mean_latency" not in groups["qa"]
    whole = groups[ALL_ITEMS]
    assert (whole["count"].value, whole["pass_rate"].value) == (4.0, 0.75)
    assert whole["mean_accuracy"].value == pytest.approx(statistics.fmean([1.0, 0.0, 1.0]))
    assert (whole["mean_latency"].value, whole["mean_latency"].n) == (3.0, 1)


def test_a_dataset_holding_the_whole_run_has_the_runs_aggregates() -> None:
    items = [item("qa", "passed", ("accuracy", "NUMERIC", 1.0)), item("qa", "failed")]

    groups = compute_aggregates(items)

    assert list(groups) == [ALL_ITEMS, "qa"]
    assert groups["qa"] == groups[ALL_ITEMS] == group_aggregates(items)
    assert groups["qa"] is not groups[ALL_ITEMS]  # each group's own mapping (run evaluators add)


def test_a_run_without_items_has_a_whole_run_count_of_zero() -> None:
    groups = compute_aggregates([])

    assert list(groups) == [ALL_ITEMS]
    assert {name: a.value for name, a in groups[ALL_ITEMS].items()} == {"count": 0.0}


def test_item_summary_reads_a_stored_item() -> None:
    payload = {
        "dataset": "qa",
        "outcome": "passed",
        "trace": {"scores": [{"name": "tone", "data_type": "CATEGORICAL", "value": "calm"}]},
    }

    assert ItemSummary.from_item(payload) == item("qa", "passed", ("tone", "CATEGORICAL", "calm"))


def test_aggregates_round_trip_through_plain_data() -> None:
    groups = {
        "qa": {
            "pass_rate": Aggregate("pass_rate", 0.5, 4),
            "counts_tone": Aggregate("counts_tone", 2.0, 2, {"calm": 2.0}),
        }
    }

    data = json.loads(json.dumps(aggregates_to_dict(groups)))

    assert aggregates_from_dict(data) == groups


# --- property: agreement with the statistics module ---------------------------------------------

finite = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False, allow_infinity=False)


@given(st.lists(finite, min_size=1, max_size=60))
def test_mean_min_max_p50_agree_with_statistics(values: list[float]) -> None:
    named = {a.name: a for a in numeric_aggregates("s", values)}

    assert named["mean_s"].value == pytest.approx(statistics.fmean(values), rel=1e-9, abs=1e-6)
    assert named["min_s"].value == min(values)
    assert named["max_s"].value == max(values)
    assert named["p50_s"].value == pytest.approx(statistics.median(values), rel=1e-9, abs=1e-6)
    assert min(values) <= named["p95_s"].value <= max(values)
    if len(values) > 1:
        assert named["std_s"].value == pytest.approx(statistics.stdev(values), rel=1e-6, abs=1e-6)


# --- the aggregates a session stores ------------------------------------------------------------

REVIEWS: list[dict[str, Any]] = [
    {"id": "r1", "input": "q1", "metadata": {"relevance": 0.9, "grounded": True, "tone": "calm"}},
    {"id": "r2", "input": "q2", "metadata": {"relevance": 0.4, "grounded": False, "tone": "curt"}},
    {"id": "r3", "input": "q3", "metadata": {"relevance": 0.7, "grounded": True, "tone": "calm"}},
    {"id": "r4", "input": "q4", "metadata": {"relevance": 0.8, "grounded": True, "tone": "calm"}},
]
CHECKS: list[dict[str, Any]] = [
    {"id": "k1", "input": "q5", "metadata": {"relevance": 0.1, "grounded": False, "tone": "curt"}},
    {"id": "k2", "input": "q6", "metadata": {"relevance": 0.3, "grounded": True, "tone": "warm"}},
]


def expected_numeric(values: list[float]) -> dict[str, float]:
    return {
        "mean": statistics.fmean(values),
        "min": min(values),
        "max": max(values),
        "p50": statistics.median(values),
        "p95": statistics.quantiles(values, n=20, method="inclusive")[18],
        "std": statistics.stdev(values),
    }


def test_session_stores_aggregates_per_dataset_and_for_the_whole_run(
    pytester: pytest.Pytester, runs: Runs, xdist_args: tuple[str, ...]
) -> None:
    pytester.makefile(
        ".jsonl",
        **{
            "datasets/reviews": "\n".join(map(json.dumps, REVIEWS)),
            "datasets/checks": "\n".join(map(json.dumps, CHECKS)),
        },
    )
    pytester.makepyfile(
        test_scored=dedent(
            """\
            import pytest

            def record(item, scorer):
                scorer.score("relevance", item.metadata["relevance"])
                scorer.score("grounded", item.metadata["grounded"])
                scorer.score("tone", item.metadata["tone"])
                assert item.metadata["relevance"] >= 0.5  # items below 0.5 fail

            @pytest.mark.llm_dataset("reviews")
            def test_review(item, scorer):
                record(item, scorer)

            @pytest.mark.llm_dataset("checks")
            def test_check(item, scorer):
                record(item, scorer)

            def test_plain():
                pass
            """
        )
    )

    result = pytester.runpytest(*xdist_args)

    result.assert_outcomes(passed=4, failed=3)
    run = runs.latest()
    assert sorted(run["aggregates"]) == [ALL_ITEMS, "checks", "reviews"]
    for group, rows, extra in (
        ("reviews", REVIEWS, 0),
        ("checks", CHECKS, 0),
        (ALL_ITEMS, REVIEWS + CHECKS, 1),
    ):
        stored = runs.aggregates(run, group)
        relevance = [r["metadata"]["relevance"] for r in rows]
        grounded = [float(r["metadata"]["grounded"]) for r in rows]
        passed = sum(1 for value in relevance if value >= 0.5) + extra
        assert stored["count"] == {
            "name": "count",
            "value": len(rows) + extra,
            "n": len(rows) + extra,
        }
        assert stored["pass_rate"]["value"] == pytest.approx(passed / (len(rows) + extra))
        assert stored["pass_rate"]["n"] == len(rows) + extra
        for score, values in (("relevance", relevance), ("grounded", grounded)):
            for stat, value in expected_numeric(values).items():
                assert stored[f"{stat}_{score}"]["value"] == pytest.approx(value), (group, stat)
                assert stored[f"{stat}_{score}"]["n"] == len(values)
        tones: dict[str, float] = {}
        for row in rows:
            tones[row["metadata"]["tone"]] = tones.get(row["metadata"]["tone"], 0.0) + 1.0
        assert stored["counts_tone"] == {
            "name": "counts_tone",
            "value": float(len(rows)),
            "n": len(rows),
            "extra": dict(sorted(tones.items())),
        }


def test_the_names_scores_are_checked_against_are_the_names_aggregation_gives() -> None:
    from pytest_llmobs.aggregate_names import (
        BUILTIN_AGGREGATES,
        GENERATION_AGGREGATES,
        score_aggregate_names,
    )
    from pytest_llmobs.aggregates import label_aggregates
    from pytest_llmobs.generation_stats import generation_aggregates, judge_aggregates

    figures = [(1.0, 2, 3, 0.5), (2.0, 1, 1, 0.1)]
    generated = {a.name for a in [*generation_aggregates(figures), *judge_aggregates(figures)]}
    assert generated == GENERATION_AGGREGATES
    item = ItemSummary(None, "passed", [("s", "NUMERIC", 1.0), ("c", "CATEGORICAL", "x")])
    named = set(group_aggregates([item])) - BUILTIN_AGGREGATES
    assert named == set(score_aggregate_names("s", "number") + score_aggregate_names("c", "string"))
    for name in ("label", "intent"):
        given = {a.name for a in label_aggregates(name, ["a", "b"], ["a", "a"])}
        assert given == set(score_aggregate_names(name, "label"))


def test_generations_without_reported_usage_stay_out_of_the_token_totals() -> None:
    from pytest_llmobs.generation_stats import generation_aggregates, judge_aggregates

    unknown: GenerationFigures = (1.0, None, None, None)
    counted = {a.name: a for a in generation_aggregates([(1.0, 2, 3, 0.5), unknown])}
    assert (counted["total_tokens"].value, counted["total_tokens"].n) == (5.0, 1)
    assert counted["generations"].n == 2
    assert "total_tokens" not in {a.name for a in generation_aggregates([unknown])}
    assert "judge_total_tokens" not in {a.name for a in judge_aggregates([unknown])}
    # flagged by the provider (0s stored before the flag), or recorded without usage at all
    # (the OpenAI SDK's streams, LangChain, a hand-made generation)
    flagged = {"usage": {"input": 0, "output": 0}, "metadata": {"usage_reported": False}}
    for stored in (flagged, {"usage": None}, {}):
        observation = {"type": "generation", **stored}
        (figures,) = ItemSummary.from_item(
            {"outcome": "passed", "trace": {"observations": [observation]}}
        ).generations
        assert figures[1:3] == (None, None), stored


@pytest.mark.parametrize(
    "stored",
    [
        {"usage": {"input": "n/a", "output": 3}},
        {"usage": {"input": math.inf, "output": 3}},
        {"usage": {"input": 2**64, "output": 3}, "cost": 10**400},
        {"metadata": {"latency_ms": "fast"}, "cost": "free"},
        {"metadata": {"latency_ms": math.nan}, "cost": -1.0},
    ],
)
def test_stored_figures_that_are_not_counts_are_unknown_not_a_crash(
    stored: dict[str, Any],
) -> None:
    """`Observation.update` refuses these; a run recorded before it did (or a hand-made item)
    still aggregates, with the odd figure left out."""
    observation = {"type": "generation", "start_time": 10.0, "end_time": 10.25, **stored}
    (figures,) = ItemSummary.from_item(
        {"outcome": "passed", "trace": {"observations": [observation]}}
    ).generations
    latency, tokens_in, tokens_out, cost = figures
    assert (tokens_in, tokens_out) == (None, None)
    assert cost is None
    assert latency == 250.0  # the span's own times, when the recorded latency is not one


@pytest.mark.parametrize(("value", "count"), [(0.9, 9), (0.7, 3), (0.7, 6), (0.1, 43), (0.2, 6)])
def test_the_mean_of_equal_scores_is_that_score_and_their_spread_is_zero(
    value: float, count: int
) -> None:
    """fsum(values) / n rounded nine 0.9s to 0.8999999999999999: `mean >= 0.9` failed beside
    `min >= 0.9`, outside its own interval."""
    named = {a.name: a for a in numeric_aggregates("q", [value] * count)}

    assert named["mean_q"].value == value
    assert named["std_q"].value == 0.0


def test_a_variance_is_not_a_rounded_square() -> None:
    from pytest_llmobs.safe_stats import variance_of

    assert variance_of([1.0, 0.0], 0.5) == 0.5  # (std squared gave 0.5000000000000001)
