"""Run-level evaluators: the Wilson interval against its closed form, the seeded bootstrap,
classification metrics against scikit-learn, and `compute_aggregates` over synthetic items."""

from __future__ import annotations

import math
import random
import statistics
import warnings
from collections import Counter
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

from pytest_llmobs.aggregate_model import Aggregate, ItemSummary
from pytest_llmobs.aggregate_names import ALL_ITEMS
from pytest_llmobs.aggregates import compute_aggregates
from pytest_llmobs.evaluators.run_level import (
    BOOTSTRAP_RESAMPLES,
    Z_95,
    bootstrap_mean_interval,
    classification_metrics,
    wilson_interval,
)

Z = statistics.NormalDist().inv_cdf(0.975)
"""The two-sided 95% normal quantile, computed here rather than read from the module."""


def wilson(successes: int, n: int) -> tuple[float, float]:
    """The Wilson score interval, written out from its textbook formula."""
    p = successes / n
    root = Z * math.sqrt(p * (1 - p) / n + Z**2 / (4 * n**2))
    denominator = 1 + Z**2 / n
    return (p + Z**2 / (2 * n) - root) / denominator, (p + Z**2 / (2 * n) + root) / denominator


# --- Wilson interval ----------------------------------------------------------------------------


def test_z_is_the_95_percent_normal_quantile() -> None:
    assert pytest.approx(Z, rel=1e-12) == Z_95


@pytest.mark.parametrize(
    ("successes", "n"), [(8, 10), (1, 2), (3, 7), (45, 50), (1, 100), (500, 1000), (2, 3)]
)
def test_wilson_interval_matches_the_closed_form(successes: int, n: int) -> None:
    low, high = wilson(successes, n)

    interval = wilson_interval(successes, n)

    assert interval.method == "wilson"
    assert interval.low == pytest.approx(low, rel=1e-12)
    assert interval.high == pytest.approx(high, rel=1e-12)


def test_wilson_interval_of_8_out_of_10_is_the_published_one() -> None:
    # Reference values, e.g. Newcombe (1998), Statistics in Medicine 17:857, method 3.
    interval = wilson_interval(8, 10)

    assert round(interval.low, 3) == 0.490
    assert round(interval.high, 3) == 0.943


@pytest.mark.parametrize("n", [1, 3, 6, 7, 10, 37, 1000])
def test_wilson_interval_reaches_exactly_zero_and_one_at_the_extremes(n: int) -> None:
    none, every = wilson_interval(0, n), wilson_interval(n, n)

    assert none.low == 0.0
    assert every.high == 1.0
    assert none.high == pytest.approx(wilson(0, n)[1], rel=1e-12)
    assert every.low == pytest.approx(wilson(n, n)[0], rel=1e-12)


def test_wilson_interval_narrows_with_more_data() -> None:
    intervals = [wilson_interval(8 * k, 10 * k) for k in (1, 10, 100)]

    widths = [i.high - i.low for i in intervals]
    assert widths[0] > widths[1] > widths[2]


@pytest.mark.parametrize(
    ("successes", "n", "message"),
    [
        (0, 0, "wilson_interval needs n >= 1"),
        (11, 10, "wilson_interval needs 0 <= successes <= n, got 11/10"),
        (-1, 10, "wilson_interval needs 0 <= successes <= n, got -1/10"),
    ],
)
def test_wilson_interval_rejects_impossible_counts(successes: int, n: int, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}$"):
        wilson_interval(successes, n)


@given(st.lists(st.booleans(), min_size=1, max_size=300))
def test_wilson_interval_holds_the_share_and_stays_in_0_1(flags: list[bool]) -> None:
    share = statistics.fmean(map(float, flags))

    interval = wilson_interval(sum(flags), len(flags))

    assert 0.0 <= interval.low <= share <= interval.high <= 1.0


# --- bootstrap interval -------------------------------------------------------------------------

SAMPLE = [random.Random(seed).uniform(0.0, 1.0) for seed in range(40)]


def test_bootstrap_is_deterministic() -> None:
    first = bootstrap_mean_interval(SAMPLE)

    assert bootstrap_mean_interval(list(SAMPLE)) == first
    assert first.method == "bootstrap"


def test_bootstrap_does_not_depend_on_the_order_of_the_values() -> None:
    shuffled = SAMPLE[:]
    random.Random(3).shuffle(shuffled)

    assert bootstrap_mean_interval(shuffled) == bootstrap_mean_interval(SAMPLE)
    assert bootstrap_mean_interval(SAMPLE[::-1]) == bootstrap_mean_interval(SAMPLE)


def test_bootstrap_seed_and_resamples_are_parameters() -> None:
    default = bootstrap_mean_interval(SAMPLE)

    assert bootstrap_mean_interval(SAMPLE, seed=0, resamples=BOOTSTRAP_RESAMPLES) == default
    assert bootstrap_mean_interval(SAMPLE, seed=1) != default


def test_bootstrap_contains_the_mean_and_narrows_with_more_data() -> None:
    small = SAMPLE[:10]
    large = [random.Random(1000 + seed).uniform(0.0, 1.0) for seed in range(1000)]

    narrow, wide = bootstrap_mean_interval(large), bootstrap_mean_interval(small)

    assert wide.low <= statistics.fmean(small) <= wide.high
    assert narrow.low <= statistics.fmean(large) <= narrow.high
    assert narrow.high - narrow.low < wide.high - wide.low


def test_bootstrap_width_is_about_the_normal_one() -> None:
    # For 1,000 uniform values, the interval is close to mean ± z·s/√n.
    values = [random.Random(5000 + seed).uniform(0.0, 1.0) for seed in range(1000)]
    half = Z * statistics.stdev(values) / math.sqrt(len(values))

    interval = bootstrap_mean_interval(values)

    assert interval.high - interval.low == pytest.approx(2 * half, rel=0.15)


def test_bootstrap_of_equal_values_is_that_value() -> None:
    assert bootstrap_mean_interval([0.25] * 7) == bootstrap_mean_interval([0.25])
    assert (bootstrap_mean_interval([0.25]).low, bootstrap_mean_interval([0.25]).high) == (
        0.25,
        0.25,
    )


def test_a_lower_value_never_raises_the_interval_above_that_of_all_perfect_ones() -> None:
    # a gate on ci_low must not pass a worse run that it fails for a perfect one
    perfect = bootstrap_mean_interval([1.0] * 10)
    for worst in (0.999, 0.99, 0.9, 0.5):
        assert bootstrap_mean_interval([worst] + [1.0] * 9).low <= perfect.low


def test_bootstrap_of_no_values_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"^bootstrap_mean_interval needs at least one value$"):
        bootstrap_mean_interval([])


finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)


@settings(deadline=None)  # numpy work: no per-example deadline on a busy machine
@given(st.lists(finite, min_size=1, max_size=60))
def test_bootstrap_holds_the_mean(values: list[float]) -> None:
    mean = statistics.fmean(values)
    slack = 1e-9 * max(1.0, max(abs(v) for v in values))

    interval = bootstrap_mean_interval(values)

    assert interval.low - slack <= mean <= interval.high + slack
    assert min(values) - slack <= interval.low <= interval.high <= max(values) + slack


# --- classification metrics ---------------------------------------------------------------------

LABEL_CASES = [
    pytest.param(
        ["pos", "neg", "pos", "neu", "neg", "pos", "neu", "pos"],
        ["pos", "pos", "pos", "neu", "neg", "neg", "neg", "pos"],
        id="three-classes",
    ),
    pytest.param(["a", "a", "b"], ["a", "a", "b"], id="perfect"),
    pytest.param(["a", "a", "a"], ["b", "c", "b"], id="all-wrong-with-unseen-predictions"),
    pytest.param(["yes"], ["yes"], id="one"),
]


@pytest.mark.parametrize(("expected", "predicted"), LABEL_CASES)
def test_classification_metrics_equal_sklearn(expected: list[str], predicted: list[str]) -> None:
    labels = sorted(set(expected) | set(predicted))
    wanted = {"accuracy": accuracy_score(expected, predicted)}
    for average in ("macro", "micro"):
        precision, recall, f1, _ = precision_recall_fscore_support(
            expected, predicted, labels=labels, average=average, zero_division=0
        )
        wanted |= {f"precision_{average}": precision, f"recall_{average}": recall}
        wanted[f"f1_{average}"] = f1

    metrics, _ = classification_metrics(expected, predicted)

    assert metrics == pytest.approx(wanted)


@pytest.mark.parametrize(("expected", "predicted"), LABEL_CASES)
def test_confusion_counts_every_pair_and_sum_to_n(
    expected: list[str], predicted: list[str]
) -> None:
    labels = sorted(set(expected) | set(predicted))
    with warnings.catch_warnings():  # sklearn warns about a 1x1 matrix
        warnings.simplefilter("ignore", UserWarning)
        matrix = confusion_matrix(expected, predicted, labels=labels)
    pairs = Counter(zip(expected, predicted, strict=True))

    _, confusion = classification_metrics(expected, predicted)

    assert sum(confusion.values()) == len(expected)
    assert sorted(confusion) == sorted(f"{a}->{b}" for a in labels for b in labels)
    for i, want in enumerate(labels):
        for j, got in enumerate(labels):
            assert confusion[f"{want}->{got}"] == pairs[(want, got)] == matrix[i][j]


@pytest.mark.parametrize(("expected", "predicted"), [([], []), (["a"], ["a", "b"])])
def test_classification_metrics_need_equal_non_empty_lists(
    expected: list[str], predicted: list[str]
) -> None:
    with pytest.raises(ValueError, match="needs equally long, non-empty label lists"):
        classification_metrics(expected, predicted)


# --- compute_aggregates over synthetic items ----------------------------------------------------


def summary(
    dataset: str | None = "qa",
    outcome: str = "passed",
    *,
    scores: list[tuple[str, str, Any]] | None = None,
    labels: list[tuple[str, str, str]] | None = None,
    generations: list[tuple[float | None, int, int, float | None]] | None = None,
) -> ItemSummary:
    return ItemSummary(dataset, outcome, scores or [], labels or [], generations or [])


def interval_of(aggregate: Aggregate) -> tuple[float | None, float | None]:
    return aggregate.field("ci_low"), aggregate.field("ci_high")


def test_boolean_scores_get_a_wilson_interval() -> None:
    flags = [True, True, False, True, True, True, False, True, True, True]
    items = [summary(scores=[("grounded", "BOOLEAN", flag)]) for flag in flags]

    named = compute_aggregates(items)["qa"]

    mean = named["mean_grounded"]
    assert (mean.value, mean.n) == (statistics.fmean(map(float, flags)), len(flags))
    assert interval_of(mean) == pytest.approx(wilson(sum(flags), len(flags)))
    assert mean.fields() == ["ci_high", "ci_low"]


def test_numeric_scores_get_a_bootstrap_interval() -> None:
    values = [0.2, 0.9, 0.4, 0.75, 0.6, 0.1, 0.95]
    items = [summary(scores=[("relevance", "NUMERIC", v)]) for v in values]

    named = compute_aggregates(items)["qa"]

    expected = bootstrap_mean_interval(values)
    assert interval_of(named["mean_relevance"]) == (expected.low, expected.high)
    assert interval_of(named["mean_relevance"]) != pytest.approx(wilson(3, 7))
    assert named["p50_relevance"].value == statistics.median(values)


def test_a_score_with_booleans_and_numbers_is_treated_as_numeric() -> None:
    items = [
        summary(scores=[("coverage", "NUMERIC", 0.4)]),
        summary(scores=[("coverage", "NUMERIC", 0.4)]),
        summary(scores=[("coverage", "BOOLEAN", True)]),
    ]

    mean = compute_aggregates(items)["qa"]["mean_coverage"]

    expected = bootstrap_mean_interval([0.4, 0.4, 1.0])
    assert interval_of(mean) == (expected.low, expected.high)


def test_pass_rate_has_a_wilson_interval_over_counted_outcomes() -> None:
    outcomes = ["passed"] * 6 + ["failed", "error", "skipped"]
    items = [summary(outcome=o) for o in outcomes]

    rate = compute_aggregates(items)["qa"]["pass_rate"]

    assert (rate.value, rate.n) == (6 / 8, 8)
    assert interval_of(rate) == pytest.approx(wilson(6, 8))


def test_labels_give_accuracy_f1_and_confusion() -> None:
    expected = ["pos", "neg", "pos", "neu", "neg", "pos"]
    predicted = ["pos", "pos", "pos", "neu", "neg", "neg"]
    items = [
        summary(labels=[("label", want, got)])
        for want, got in zip(expected, predicted, strict=True)
    ]
    labels = sorted(set(expected) | set(predicted))

    named = compute_aggregates(items)["qa"]

    assert named["accuracy"].value == pytest.approx(accuracy_score(expected, predicted))
    for average in ("macro", "micro"):
        precision, recall, f1, _ = precision_recall_fscore_support(
            expected, predicted, labels=labels, average=average, zero_division=0
        )
        assert named[f"precision_{average}"].value == pytest.approx(precision)
        assert named[f"recall_{average}"].value == pytest.approx(recall)
        assert named[f"f1_{average}"].value == pytest.approx(f1)
        assert named[f"f1_{average}"].n == len(expected)
    confusion = named["confusion"]
    assert (confusion.value, confusion.n) == (len(expected), len(expected))
    assert sum(confusion.extra.values()) == len(expected)
    assert confusion.field("neg->pos") == 1.0
    assert "mean_label" not in named


def test_a_label_score_not_named_label_suffixes_its_metrics() -> None:
    items = [
        summary(labels=[("intent", "refund", "refund"), ("label", "a", "b")]),
        summary(labels=[("intent", "refund", "billing"), ("label", "a", "a")]),
    ]

    named = compute_aggregates(items)["qa"]

    assert named["accuracy_intent"].value == 0.5
    assert named["accuracy"].value == 0.5
    assert named["confusion_intent"].extra == {
        "billing->billing": 0.0,
        "billing->refund": 0.0,
        "refund->billing": 1.0,
        "refund->refund": 1.0,
    }
    suffixed = {n for n in named if n.endswith("_intent")}
    assert suffixed == {
        f"{metric}_intent"
        for metric in (
            "accuracy",
            "precision_macro",
            "recall_macro",
            "f1_macro",
            "precision_micro",
            "recall_micro",
            "f1_micro",
            "confusion",
        )
    }


def test_generations_give_latency_percentiles_and_token_totals() -> None:
    figures: list[tuple[float | None, int, int, float | None]] = [
        (120.0, 10, 3, None),
        (80.0, 12, 5, None),
        (None, 7, 2, None),
        (300.0, 20, 9, None),
        (95.0, 5, 1, None),
    ]
    items = [summary(generations=figures[:2]), summary(generations=figures[2:])]
    latencies = [f[0] for f in figures if f[0] is not None]
    cut_points = statistics.quantiles(latencies, n=20, method="inclusive")

    named = compute_aggregates(items)["qa"]

    assert (named["generations"].value, named["generations"].n) == (5, 5)
    assert named["mean_latency_ms"].value == pytest.approx(statistics.fmean(latencies))
    assert named["p50_latency_ms"].value == pytest.approx(statistics.median(latencies))
    assert named["p95_latency_ms"].value == pytest.approx(cut_points[18])
    assert named["max_latency_ms"].value == max(latencies)
    assert named["p95_latency_ms"].n == len(latencies)
    assert named["total_input_tokens"].value == sum(f[1] for f in figures)
    assert named["total_output_tokens"].value == sum(f[2] for f in figures)
    assert named["total_tokens"].value == sum(f[1] + f[2] for f in figures)
    assert "total_cost" not in named  # no generation had a known cost


def test_total_cost_sums_the_known_costs() -> None:
    items = [summary(generations=[(1.0, 1, 1, 0.25), (2.0, 1, 1, None), (3.0, 1, 1, 0.5)])]

    cost = compute_aggregates(items)["qa"]["total_cost"]

    assert (cost.value, cost.n) == (0.75, 2)


def test_items_without_generations_have_no_latency_or_token_aggregates() -> None:
    named = compute_aggregates([summary(scores=[("x", "NUMERIC", 1.0)])])["qa"]

    assert not {n for n in named if "latency" in n or "tokens" in n or n == "generations"}


def test_one_numeric_value_has_no_interval_one_repeated_boolean_case_has_wilsons() -> None:
    one = compute_aggregates([summary(scores=[("s", "NUMERIC", 0.9)])])["qa"]
    repeats = [
        ItemSummary("qa", "passed", [("ok", "BOOLEAN", False)], case="t.py::t[a]") for _ in "ab"
    ]
    repeated = compute_aggregates(repeats)["qa"]

    assert one["mean_s"].fields() == []
    # one case, as without repeats: Wilson's interval from one item
    assert interval_of(repeated["mean_ok"]) == pytest.approx(wilson(0, 1))
    assert interval_of(repeated["pass_rate"]) == pytest.approx(wilson(1, 1))
    two = compute_aggregates([summary(scores=[("s", "NUMERIC", v)]) for v in (0.8, 1.0)])["qa"]
    assert two["mean_s"].fields() == ["ci_high", "ci_low"]


def test_a_score_no_repeated_test_records_keeps_its_interval_in_a_repeated_run() -> None:
    repeats = [
        ItemSummary("qa", "passed", [("a", "NUMERIC", v)], case="t.py::t[x]") for v in (1, 0)
    ]
    plain = ItemSummary("qa", "passed", [("b", "BOOLEAN", True)], case="t.py::u")

    named = compute_aggregates([*repeats, plain])["qa"]

    # (before: --llm-repeat made every score's interval a bootstrap over cases, and a test
    # it did not repeat lost the Wilson interval it has without the option)
    assert interval_of(named["mean_b"]) == pytest.approx(wilson(1, 1))
    assert named["mean_a"].fields() == []  # one case, repeated: no bootstrap from one


def test_whole_run_group_holds_every_dataset() -> None:
    items = [
        summary("a", scores=[("s", "NUMERIC", 1.0)]),
        summary("b", scores=[("s", "NUMERIC", 3.0)]),
        summary(None, scores=[("s", "NUMERIC", 5.0)]),
    ]

    groups = compute_aggregates(items)

    assert sorted(groups) == [ALL_ITEMS, "a", "b"]
    assert groups[ALL_ITEMS]["mean_s"].value == 3.0
    assert groups[ALL_ITEMS]["mean_s"].n == 3


@settings(deadline=None)  # numpy work: no per-example deadline on a busy machine
@given(st.lists(finite, min_size=1, max_size=60))
def test_stored_numeric_interval_holds_the_mean_and_p50_is_the_median(values: list[float]) -> None:
    items = [summary(scores=[("s", "NUMERIC", v)]) for v in values]
    mean = statistics.fmean(values)
    slack = 1e-9 * max(1.0, max(abs(v) for v in values))

    named = compute_aggregates(items)["qa"]

    low, high = interval_of(named["mean_s"])
    if len(values) == 1:  # a bootstrap of one value has no interval
        assert low is None and high is None
    else:
        assert low is not None and high is not None
        assert low - slack <= mean <= high + slack
    # interpolating between -1e6 and 1e6 loses ~1e-10 to rounding: compare at the values' scale
    assert named["p50_s"].value == pytest.approx(statistics.median(values), rel=1e-12, abs=slack)


@given(st.lists(st.booleans(), min_size=1, max_size=200))
def test_stored_boolean_interval_holds_the_share(flags: list[bool]) -> None:
    items = [summary(scores=[("ok", "BOOLEAN", flag)]) for flag in flags]

    mean = compute_aggregates(items)["qa"]["mean_ok"]

    low, high = interval_of(mean)
    assert low is not None and high is not None
    assert 0.0 <= low <= mean.value <= high <= 1.0
    assert mean.value == statistics.fmean(map(float, flags))


# --- the terminal summary of categorical scores -------------------------------------------------


def test_a_categorical_score_with_many_values_is_capped_in_the_summary(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_free="import pytest\n\n@pytest.mark.parametrize('i', range(300))\n"
        "def test_free(i, scorer):\n"
        "    scorer.score('free_text', ('common' if i < 5 else f'answer number {i} ') + 'x' * 50)\n"
        "    scorer.score('tone', 'curt' if i % 3 else 'friendly')\n"
    )

    result = pytester.runpytest("-p", "no:randomly", "--llm-report=r.html")

    result.assert_outcomes(passed=300)
    (line,) = (line for line in result.outlines if line.startswith("  free_text "))
    assert len(line) < 500
    assert line.startswith("  free_text  common" + "x" * 25 + "…: 5, answer number 10 ")
    assert line.endswith(", other (285 values): 285  n=300")
    assert line.count(": 1,") == 10  # 11 shown values and "other": the chart's 12 bars
    page = (pytester.path / "r.html").read_text(encoding="utf-8")
    assert "other (285 values): 285</title>" in page
    result.stdout.fnmatch_lines(["  tone       curt: 200, friendly: 100  n=300"])
