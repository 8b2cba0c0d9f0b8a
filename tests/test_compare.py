"""The comparison's statistics and matching as plain functions, and ``llmobs compare`` /
``llmobs rescore`` on stored runs."""

from __future__ import annotations

import json
import math
import random
from io import StringIO
from pathlib import Path
from textwrap import dedent
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_llmobs import cli
from pytest_llmobs.compare import compare_runs
from pytest_llmobs.compare.render import comparison_lines, gate_line
from pytest_llmobs.compare.stats import (
    MIN_CHANGED,
    higher_is_better,
    judge,
    mcnemar_mid_p,
    paired_bootstrap_interval,
    paired_test,
)
from pytest_llmobs.reporting.terminal import format_number

if TYPE_CHECKING:
    from conftest import Runs


def binomial_mcnemar(losses: int, wins: int) -> float:
    """Two-sided McNemar mid-p from the binomial distribution, written out with math.comb:
    twice P(X < k) plus P(X = k), k the rarer count."""
    n = losses + wins
    if n == 0:
        return 1.0
    k = min(losses, wins)
    below = sum(math.comb(n, i) * 0.5**n for i in range(k))
    return min(1.0, 2 * below + math.comb(n, k) * 0.5**n)


# --- statistics ---------------------------------------------------------------------------------


@pytest.mark.parametrize("losses", [0, 1, 2, 5, 6, 9, 17, 40])
@pytest.mark.parametrize("wins", [0, 1, 3, 8, 40])
def test_mcnemar_mid_p_matches_the_binomial_distribution(losses: int, wins: int) -> None:
    assert mcnemar_mid_p(losses, wins) == pytest.approx(binomial_mcnemar(losses, wins), rel=1e-12)
    assert mcnemar_mid_p(losses, wins) == mcnemar_mid_p(wins, losses)


def test_mcnemar_mid_p_stays_exact_for_many_discordant_pairs() -> None:
    # 0.5**2000 underflows a float; the exact integers do not.
    p = mcnemar_mid_p(1050, 950)
    below = sum(math.comb(2000, i) for i in range(950))
    assert p == pytest.approx(min(1.0, (2 * below + math.comb(2000, 950)) / 2**2000), rel=1e-12)
    assert mcnemar_mid_p(6, 0) == pytest.approx(1 / 2**6)


def test_mcnemar_rejects_negative_counts() -> None:
    with pytest.raises(ValueError, match="counts >= 0"):
        mcnemar_mid_p(-1, 2)


def test_bootstrap_is_deterministic_for_a_seed_and_order_free() -> None:
    rng = random.Random(3)
    before = [rng.random() for _ in range(60)]
    after = [b + rng.gauss(-0.05, 0.1) for b in before]
    first = paired_bootstrap_interval(before, after, seed=11)
    assert paired_bootstrap_interval(before, after, seed=11) == first
    pairs = list(zip(before, after, strict=True))
    rng.shuffle(pairs)
    shuffled = paired_bootstrap_interval([b for b, _ in pairs], [a for _, a in pairs], seed=11)
    assert (shuffled.low, shuffled.high) == pytest.approx((first.low, first.high), abs=1e-12)
    assert paired_bootstrap_interval(before, after, seed=12) != first


def test_bootstrap_matches_resampling_items_by_index() -> None:
    # Drawing counts of each distinct difference from a multinomial is the item bootstrap: the
    # percentiles agree with a naive index resampling (many resamples, so sampling noise is small).
    rng = np.random.default_rng(5)
    before = (rng.random(80) < 0.85).astype(float)
    after = np.where(rng.random(80) < 0.15, 1 - before, before)
    diffs = after - before
    means = diffs[rng.integers(0, 80, size=(40_000, 80))].mean(axis=1)
    naive_low, naive_high = np.percentile(means, [2.5, 97.5])
    ours = paired_bootstrap_interval(before.tolist(), after.tolist(), resamples=40_000, seed=1)
    assert ours.low == pytest.approx(naive_low, abs=0.0126)  # one item's worth is 1/80
    assert ours.high == pytest.approx(naive_high, abs=0.0126)


pairs = st.lists(
    st.tuples(
        st.floats(min_value=-100, max_value=100, allow_nan=False),
        st.floats(min_value=-100, max_value=100, allow_nan=False),
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(pairs)
def test_bootstrap_interval_contains_the_observed_difference(
    data: list[tuple[float, float]],
) -> None:
    before, after = [b for b, _ in data], [a for _, a in data]
    differences = [a - b for b, a in data]
    interval = paired_bootstrap_interval(before, after, resamples=400)
    observed = math.fsum(differences) / len(differences)
    slack = 1e-9 * (1 + max(abs(d) for d in differences))
    assert interval.low - slack <= observed <= interval.high + slack
    assert min(differences) - slack <= interval.low <= interval.high <= max(differences) + slack


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.integers(-50, 50), st.integers(-50, 50)), min_size=1, max_size=40),
    st.integers(-20, 20),
)
def test_bootstrap_interval_shifts_with_the_difference(
    data: list[tuple[int, int]], shift: int
) -> None:
    # Whole numbers keep every difference exact, so shifting them changes nothing else.
    before, after = [float(b) for b, _ in data], [float(a) for _, a in data]
    interval = paired_bootstrap_interval(before, after, resamples=400)
    moved = paired_bootstrap_interval(before, [a + shift for a in after], resamples=400)
    assert moved.low == pytest.approx(interval.low + shift, abs=1e-9)
    assert moved.high == pytest.approx(interval.high + shift, abs=1e-9)


@settings(max_examples=15, deadline=None)
@given(st.integers(min_value=0, max_value=2**31 - 1), st.sampled_from([-0.15, -0.05, 0.0, 0.1]))
def test_bootstrap_interval_covers_the_true_difference_most_of_the_time(
    seed: int, true_difference: float
) -> None:
    # Per-item scores with a known mean difference between the runs: a 95% interval must hold
    # it in (about) 95% of samples; 60 samples of 120 items each, so >= 50 is a loose bound.
    rng = np.random.default_rng(seed)
    covered = 0
    for _ in range(60):
        before = rng.normal(0.7, 0.2, size=120)
        after = before + true_difference + rng.normal(0, 0.15, size=120)
        interval = paired_bootstrap_interval(before.tolist(), after.tolist(), resamples=500)
        covered += interval.low <= true_difference <= interval.high
    assert covered >= 50


def test_paired_test_counts_losses_wins_and_changes() -> None:
    before = [1.0] * 30 + [0.0] * 10
    after = [1.0] * 22 + [0.0] * 8 + [1.0] * 2 + [0.0] * 8
    test = paired_test(before, after, binary=True)
    assert (test.losses, test.wins, test.changed, test.n) == (8, 2, 10, 40)
    assert test.p_value == pytest.approx(binomial_mcnemar(8, 2))
    assert test.interval.estimate == pytest.approx(-6 / 40)
    numeric = paired_test(before, after, binary=False)
    assert (numeric.losses, numeric.wins, numeric.p_value) == (None, None, None)


@pytest.mark.parametrize(
    ("name", "higher"),
    [
        ("mean_accuracy", True),
        ("pass_rate", True),
        ("mean_latency_ms", False),
        ("total_cost", False),
        ("mean_output_tokens", False),
    ],
)
def test_direction_of_metrics(name: str, higher: bool) -> None:
    assert higher_is_better(name) is higher


def test_judge_verdicts_direction_and_tolerance() -> None:
    worse = paired_test([1.0] * 40, [1.0] * 30 + [0.0] * 10, binary=True)
    assert judge(worse, name="mean_accuracy", delta=-0.25) == ("regression", True)
    assert judge(worse, name="mean_accuracy", delta=-0.25, max_drop=0.3) == ("regression", False)
    # A latency score going down is an improvement.
    assert judge(worse, name="mean_latency_score", delta=-0.25) == ("improvement", False)
    same = paired_test([1.0] * 40, [1.0] * 40, binary=True)
    assert judge(same, name="mean_accuracy", delta=0.0) == ("no significant change", False)


def test_too_few_changed_items_are_never_significant() -> None:
    # Four losses out of 40: the percentile bootstrap interval excludes 0, but four items all
    # moving the same way happens by chance once in 16 (two-sided p = 0.125).
    before, after = [1.0] * 40, [1.0] * 36 + [0.0] * 4
    for binary in (True, False):
        test = paired_test(before, after, binary=binary)
        assert test.interval.high < 0 and test.changed == MIN_CHANGED - 1
        assert judge(test, name="mean_x", delta=-0.1)[0] == "no significant change"
    numeric = paired_test([0.5] * 3, [0.1] * 3, binary=False)  # all equal changes, n=3
    assert judge(numeric, name="mean_x", delta=-0.4)[0] == "no significant change"


def test_paired_statistics_reject_unpaired_input() -> None:
    with pytest.raises(ValueError, match="equal lengths"):
        paired_bootstrap_interval([1.0], [1.0, 0.0])
    with pytest.raises(ValueError, match="at least one pair"):
        paired_bootstrap_interval([], [])


# --- matching (plain data, no session) ----------------------------------------------------------


def item(
    node: str, outcome: str, *, dataset: str | None = None, repeat: int = 0, **scores: Any
) -> dict[str, Any]:
    item_id = node.rpartition("[")[2].rstrip("]").split("-r")[0] if dataset else None
    kinds = {bool: "BOOLEAN", float: "NUMERIC", int: "NUMERIC", str: "CATEGORICAL"}
    return {
        "node_id": node,
        "dataset": dataset,
        "item_id": item_id,
        "repeat": repeat,
        "outcome": outcome,
        "input": f"q-{item_id}",
        "expected_output": "a",
        "trace": {
            "observations": [{"parent_id": None, "type": "span", "output": f"{node}-{outcome}"}],
            "scores": [
                {"name": n, "value": v, "data_type": kinds[type(v)]} for n, v in scores.items()
            ],
        },
    }


def run(run_id: str, items: list[dict[str, Any]], **header: Any) -> dict[str, Any]:
    return {
        "id": run_id,
        "name": run_id,
        "model": "m",
        "status": "passed",
        "items": items,
        **header,
    }


def test_unmatched_items_are_reported_and_flips_go_both_ways() -> None:
    baseline = run(
        "a",
        [
            item("t.py::t[x]", "passed", dataset="d", ok=True),
            item("t.py::t[y]", "failed", dataset="d", ok=False),
            item("t.py::t[gone]", "passed", dataset="d", ok=True),
            item("t.py::plain", "passed"),
            item("t.py::skipped", "skipped"),
        ],
    )
    current = run(
        "b",
        [
            item("t.py::t[x]", "failed", dataset="d", ok=False),
            item("t.py::t[y]", "passed", dataset="d", ok=True),
            item("t.py::t[new]", "passed", dataset="d", ok=True),
            item("t.py::plain", "passed"),
            item("t.py::skipped", "passed"),
        ],
    )

    comparison = compare_runs(baseline, current)

    assert comparison.matched == 4
    assert comparison.only_in_baseline == ["d/gone"]
    assert comparison.only_in_current == ["d/new"]
    assert [(f.label, f.direction) for f in comparison.flips] == [
        ("d/x", "pass->fail"),
        ("d/y", "fail->pass"),
    ]
    assert comparison.flips[0].scores == {"ok": [True, False]}
    assert comparison.flips[0].baseline_output == "t.py::t[x]-passed"
    rows = {(m.group, m.name): m for m in comparison.metrics}
    dataset_test, run_test = rows[("d", "pass_rate")].test, rows[("*", "pass_rate")].test
    assert dataset_test is not None and run_test is not None
    assert dataset_test.n == 2  # matched items only
    assert run_test.n == 3  # the plain test too; the skipped one is not counted
    assert rows[("d", "count")].verdict == "not tested" and rows[("d", "count")].test is None
    data = json.loads(json.dumps(comparison.to_dict()))  # plain JSON all the way down
    assert data["unmatched"] == {"only_in_baseline": ["d/gone"], "only_in_current": ["d/new"]}


def test_passing_items_skipped_now_are_listed_as_flips() -> None:
    # skipping what fails would otherwise leave the paired statistics with only what passes
    baseline = run("a", [item(f"t.py::t[{n}]", "passed", dataset="d", ok=True) for n in "xyz"])
    current = run(
        "b",
        [
            item("t.py::t[x]", "passed", dataset="d", ok=True),
            item("t.py::t[y]", "skipped", dataset="d"),
            item("t.py::t[z]", "skipped", dataset="d"),
        ],
    )

    comparison = compare_runs(baseline, current)

    assert [(f.label, f.direction) for f in comparison.flips] == [
        ("d/y", "pass->skipped"),
        ("d/z", "pass->skipped"),
    ]
    text = "\n".join(comparison_lines(comparison))
    assert "flipped items: 0 pass -> fail, 0 fail -> pass, 2 pass -> skipped" in text


def test_metrics_the_current_run_lacks_are_listed_and_the_gate_says_so() -> None:
    baseline = run("a", [item(f"t.py::t[{n}]", "passed", dataset="d", accuracy=True) for n in "xy"])
    renamed = run("b", [item(f"t.py::t[{n}]", "failed", dataset="d", acc=False) for n in "xy"])
    elsewhere = run("c", [item(f"t.py::u[{n}]", "failed", dataset="e", acc=False) for n in "xy"])

    comparison = compare_runs(baseline, renamed)
    nothing = compare_runs(baseline, elsewhere)

    assert comparison.missing == [("d", "mean_accuracy"), ("*", "mean_accuracy")]
    text = "\n".join(comparison_lines(comparison))
    assert "  missing from this run: mean_accuracy (d), mean_accuracy (all tests)" in text
    assert gate_line(comparison).endswith(
        ": gate passes; 2 metric(s) of the baseline are missing from this run and were not tested"
    )
    assert comparison.to_dict()["missing_metrics"][0] == {"group": "d", "name": "mean_accuracy"}
    assert gate_line(nothing).startswith(
        "no metric could be tested (no matched items): the gate checked nothing; 3 metric(s)"
    )


def test_aggregates_only_repeats_or_generations_give_are_not_listed_as_missing() -> None:
    # (before: "missing from this run: mean_repeat_variance_q (d), mean_latency_ms (d) ...",
    # metrics no comparison ever tests)
    repeated = [
        item(f"t.py::t[{n}-r{r}]", "passed", dataset="d", repeat=r, q=0.5 + r / 4)
        for n in "xy"
        for r in (0, 1)
    ]
    for entry in repeated:
        entry["trace"]["observations"].append(
            {"parent_id": "root", "type": "generation", "metadata": {"latency_ms": 5.0}}
        )
    once = [item(f"t.py::t[{n}]", "passed", dataset="d", q=0.5) for n in "xy"]

    comparison = compare_runs(run("a", repeated), run("b", once))

    assert comparison.missing == []


def test_a_boolean_score_named_after_latency_or_cost_regresses_when_it_turns_false() -> None:
    # true is a pass whatever the name: before, mean_latency_ok going 1 -> 0.33 was an improvement
    names = [f"i{k}" for k in range(12)]

    def items(ok: Any) -> list[dict[str, Any]]:
        return [
            item(f"t.py::t[{n}]", "passed", dataset="d", latency_ok=ok(k), cost_usd=float(k))
            for k, n in enumerate(names)
        ]

    baseline = run("a", items(lambda k: True))
    current = run("b", items(lambda k: k % 3 == 0))

    rows = {(m.group, m.name): m for m in compare_runs(baseline, current).metrics}

    latency_ok = rows[("d", "mean_latency_ok")]
    assert (latency_ok.verdict, latency_ok.fails_gate) == ("regression", True)
    assert latency_ok.higher_is_better is True
    assert rows[("d", "mean_cost_usd")].higher_is_better is False  # a number: lower is better


def test_the_gate_line_says_why_matched_items_tested_nothing() -> None:
    # (before: "Matched 1 case(s)" and then "no matched items")
    skipped = run("a", [item("t.py::t[x]", "skipped", dataset="d")])
    again = run("b", [item("t.py::t[x]", "skipped", dataset="d")])

    comparison = compare_runs(skipped, again)

    assert comparison.matched == 1
    assert gate_line(comparison) == (
        "no metric could be tested (none of the 1 matched item(s) passed or failed in both "
        "runs): the gate checked nothing"
    )


def test_regression_message_shows_the_paired_delta_when_unmatched_items_move_the_mean() -> None:
    names = [f"i{k}" for k in range(12)]
    baseline = run("a", [item(f"t.py::t[{n}]", "passed", dataset="d", ok=True) for n in names])
    current = run(
        "b",
        [item(f"t.py::t[{n}]", "passed", dataset="d", ok=k >= 8) for k, n in enumerate(names)]
        + [item("t.py::t[extra]", "passed", dataset="d", ok=False)],
    )

    row = next(m for m in compare_runs(baseline, current).metrics if m.name == "mean_ok")

    assert row.verdict == "regression" and row.fails_gate
    assert row.test is not None
    p = binomial_mcnemar(8, 0)
    assert row.message() == (
        f"REGRESSION d: mean_ok 1.000 -> {4 / 13:.3f} (delta {4 / 13 - 1:+.3f}, paired delta "
        f"{-8 / 12:+.3f}, 95% CI {row.test.interval.low:+.3f}..{row.test.interval.high:+.3f}, "
        f"McNemar mid-p={p:.3f}, n=12)"
    )


def test_one_dataset_item_in_two_tests_is_matched_per_test() -> None:
    items = [
        item("t.py::a[x]", "passed", dataset="d", ok=True),
        item("t.py::b[x]", "passed", dataset="d", ok=True),
    ]
    changed = [
        item("t.py::a[x]", "passed", dataset="d", ok=True),
        item("t.py::b[x]", "failed", dataset="d", ok=False),
    ]
    comparison = compare_runs(run("a", items), run("b", changed))
    assert comparison.matched == 2
    assert [f.label for f in comparison.flips] == ["d/x (t.py::b)"]


def test_parametrize_stacked_on_a_dataset_matches_each_case_by_its_node_id() -> None:
    def case(variant: str, item_id: str, ok: bool) -> dict[str, Any]:
        stored = item(f"t.py::p[{item_id}-{variant}]", "passed", dataset="d", ok=ok)
        stored["item_id"] = item_id  # both variants run the same dataset item
        return stored

    ids = [f"q{n}" for n in range(6)]
    baseline = run("a", [case(v, i, True) for i in ids for v in "ab"])
    current = run("b", [case(v, i, v == "a") for i in ids for v in "ab"])

    comparison = compare_runs(baseline, current)

    assert comparison.matched == 12  # not 6: one variant dropped as a duplicate
    assert [f.label for f in comparison.flips][:2] == [
        "d/q0 (t.py::p[q0-b])",
        "d/q1 (t.py::p[q1-b])",
    ]
    assert len(comparison.flips) == 6
    row = next(m for m in comparison.metrics if (m.group, m.name) == ("d", "mean_ok"))
    assert row.verdict == "regression"


def test_what_changed_lists_model_params_datasets_and_plugin_version() -> None:
    baseline = run(
        "a",
        [],
        model="m?accuracy=1",
        params={"accuracy": 1.0, "seed": 0},
        datasets={"d": "v1", "old": "v0"},
        plugin_version="0.1.0",
    )
    current = run(
        "b",
        [],
        model="m?accuracy=0.5",
        params={"accuracy": 0.5, "seed": 0},
        datasets={"d": "v2"},
        plugin_version="0.2.0",
    )
    changes = [c.describe() for c in compare_runs(baseline, current).changes]
    assert changes == [
        "model: m?accuracy=1 -> m?accuracy=0.5",
        "param accuracy: 1.0 -> 0.5",
        "dataset d: v1 -> v2",
        "dataset old: v0 -> (none)",
        "plugin_version: 0.1.0 -> 0.2.0",
    ]


# --- llmobs compare / rescore -------------------------------------------------------------------

SUITE = """\
    import pytest

    @pytest.mark.llm_dataset("capitals")
    def test_capital(item, llm, scorer):
        scorer.exact_match(llm.generate(item.input).text, item.expected_output, name="accuracy")
        assert item.id != "spain"
    """


@pytest.fixture
def recorded(pytester: pytest.Pytester, capitals: list[dict[str, Any]]) -> Path:
    """Runs 'good' (mock-llm-v1) and 'bad' (every answer wrong) of four capitals."""
    pytester.makeini("[pytest]\n")
    pytester.makepyfile(test_capitals=dedent(SUITE))
    pytester.runpytest("--llm-run-name=good")
    pytester.runpytest("--llm-run-name=bad", "--llm-model=mock-llm-v1?accuracy=0")
    return pytester.path


def llmobs(directory: Path, *args: str) -> tuple[int, str]:
    out = StringIO()
    code = cli.main([*args, "--store", str(directory / ".llmobs")], out)
    return code, out.getvalue()


def test_compare_text_lists_every_metric_flip_and_change(recorded: Path, runs: Runs) -> None:
    good, bad = runs.load("good"), runs.load("bad")

    code, text = llmobs(recorded, "compare", "good", "bad")

    assert code == 0  # three flips: too few to be significant
    lines = text.splitlines()
    assert lines[:3] == [
        f"baseline 'good' (run {good['id']})  model mock-llm-v1",
        f"current  'bad' (run {bad['id']})  model mock-llm-v1?accuracy=0",
        "matched 4 case(s); only in baseline: 0; only in current: 0",
    ]
    assert "  model: mock-llm-v1 -> mock-llm-v1?accuracy=0" in lines
    assert "flipped items: 3 pass -> fail, 0 fail -> pass" in lines
    assert sum(line.startswith("  pass -> fail  capitals/") for line in lines) == 3
    assert lines[-1] == "no significant change in 4 tested metric(s): gate passes"


def test_compare_exits_1_on_a_regression_and_writes_json(
    pytester: pytest.Pytester, runs: Runs, capitals: list[dict[str, Any]]
) -> None:
    many = [
        {"id": f"c{i}", "input": f"What is the capital of {c}?", "expected_output": capital}
        for i, (c, capital) in enumerate(
            [("France", "Paris"), ("Japan", "Tokyo"), ("Italy", "Rome"), ("Spain", "Madrid")] * 3
        )
    ]
    pytester.makefile(".jsonl", **{"datasets/capitals": "\n".join(json.dumps(i) for i in many)})
    pytester.makeini("[pytest]\n")
    pytester.makepyfile(test_capitals=dedent(SUITE.replace('item.id != "spain"', "True")))
    pytester.runpytest("--llm-run-name=good")
    pytester.runpytest("--llm-run-name=bad", "--llm-model=mock-llm-v1?accuracy=0")
    out = pytester.path / "comparison.json"

    code, text = llmobs(pytester.path, "compare", "good", "bad", "--format", "json", "-o", str(out))

    assert code == 1
    assert text == f"wrote the comparison (regression) to {out}\n"
    data = json.loads(out.read_text())
    row = next(m for m in data["metrics"] if (m["group"], m["name"]) == ("*", "mean_accuracy"))
    assert (row["losses"], row["wins"]) == (12, 0)
    assert row["p_value"] == pytest.approx(binomial_mcnemar(12, 0))
    assert row["verdict"] == "regression" and data["verdict"] == "regression"
    assert len(data["flips"]) == 12
    code, _ = llmobs(pytester.path, "compare", "good", "bad", "--max-drop", "1")
    assert code == 0


def test_compare_markdown_is_a_pull_request_comment(recorded: Path, runs: Runs) -> None:
    code, text = llmobs(recorded, "compare", "good", "bad", "--format", "markdown")

    assert code == 0
    lines = text.splitlines()
    assert lines[0].startswith("## llmobs comparison: 'bad' (run ")
    assert "✅ **no significant change in 4 tested metric(s): gate passes**" in lines
    header = lines.index(
        "| scope | metric | baseline | current | delta | 95% CI | p | n | verdict |"
    )
    assert lines[header + 1] == "|---|---|--:|--:|--:|--:|--:|--:|---|"
    assert lines[header + 2].startswith("| capitals | `pass_rate` | 0.750 | 0.750 | +0.000 |")
    assert lines[header + 3].startswith("| capitals | `mean_accuracy` | 1.000 | 0.000 | -1.000 |")
    assert "### What changed" in lines
    assert "- model: mock-llm-v1 -> mock-llm-v1?accuracy=0" in lines
    assert "### Flipped items (3 pass → fail, 0 fail → pass)" in lines
    flips = [line for line in lines if line.startswith("| `capitals/")]
    assert len(flips) == 3 and all("| pass → fail |" in line for line in flips)


def test_compare_reads_export_files_without_a_store(
    recorded: Path, runs: Runs, tmp_path: Path
) -> None:
    for name in ("good", "bad"):
        assert llmobs(recorded, "export", name, "-o", str(tmp_path / f"{name}.json"))[0] == 0
    out = StringIO()
    code = cli.main(
        [
            "compare",
            str(tmp_path / "good.json"),
            str(tmp_path / "bad.json"),
            "--store",
            str(tmp_path / "none"),
        ],
        out,
    )
    assert code == 0
    assert out.getvalue().splitlines()[0] == (
        f"baseline {tmp_path / 'good.json'} (run {runs.load('good')['id']})  model mock-llm-v1"
    )


def test_compare_unknown_reference_is_a_clear_error(
    recorded: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = llmobs(recorded, "compare", "good", "nope")
    assert code == 2
    err = capsys.readouterr().err  # the run to compare, not the baseline
    assert err.startswith("llmobs: error: unknown run 'nope': not a file, a saved baseline")
    assert "recent runs: bad (" in err
    code, _ = llmobs(recorded, "compare", "nope", "good")
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("llmobs: error: unknown baseline 'nope': not a file, a saved baseline")


def test_rescore_evaluates_new_thresholds_without_calling_a_model(
    recorded: Path, runs: Runs
) -> None:
    bad = runs.load("bad")
    mean = runs.aggregates(bad, "capitals")["mean_accuracy"]["value"]
    rate = runs.aggregates(bad, "*")["pass_rate"]["value"]
    assert mean < 0.5 <= rate

    code, text = llmobs(
        recorded,
        "rescore",
        "bad",
        "--threshold",
        "capitals: mean_accuracy >= 0.5",
        "--threshold",
        "pass_rate >= 0.5",
    )

    assert code == 1
    assert text.splitlines() == [
        f"run {bad['id']}  name 'bad'  model mock-llm-v1?accuracy=0",
        f"  ✗ capitals: mean_accuracy >= 0.5  observed {format_number(mean)} (n=4)",
        f"  ✓ pass_rate >= 0.5  observed {format_number(rate)} (n=4)",
        "1 of 2 threshold(s) failed",
    ]
    assert runs.list()[0]["id"] == bad["id"]  # nothing new was run or stored
    code, text = llmobs(recorded, "rescore", "bad", "--threshold", "pass_rate >= 0.5")
    assert (code, text.splitlines()[-1]) == (0, "all 1 threshold(s) passed")


def test_rescore_defaults_to_the_runs_own_thresholds_and_reports_unknown_aggregates(
    recorded: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = llmobs(recorded, "rescore", "good")
    assert code == 2
    assert "has no thresholds" in capsys.readouterr().err

    code, text = llmobs(recorded, "rescore", "good", "--threshold", "capitals: mean_acc >= 0.5")
    assert code == 1
    assert (
        "ERROR: no aggregate 'mean_acc' for dataset 'capitals' (no item recorded a score " in text
    )

    code, _ = llmobs(recorded, "rescore", "good", "--threshold", "mean_accuracy >>= 1")
    assert code == 2
    assert "invalid threshold 'mean_accuracy >>= 1'" in capsys.readouterr().err


def test_a_comparison_that_tested_nothing_says_so_in_json_and_markdown() -> None:
    from pytest_llmobs.compare.render import markdown

    baseline = run("a", [item("t.py::t[x]", "passed", dataset="d", ok=True)])
    current = run("b", [item("t.py::t[y]", "passed", dataset="d", ok=True)])

    comparison = compare_runs(baseline, current)

    assert comparison.matched == 0 and comparison.gate_passed  # (exit status 0 stays)
    data = comparison.to_dict()
    assert (data["verdict"], data["tested"]) == ("nothing tested", 0)
    head = markdown(comparison).splitlines()[2]
    assert head.startswith("⚠️ **no metric could be tested (no matched items)")
    tested = compare_runs(baseline, baseline)
    assert tested.to_dict()["verdict"] == "passed" and tested.tested > 0
    assert markdown(tested).splitlines()[2].startswith("✅ ")


@pytest.mark.parametrize(
    ("losses", "wins", "verdict"),
    [
        (4, 0, "no significant change"),  # mid-p 0.0625 (the interval excludes 0)
        (6, 1, "no significant change"),  # mid-p 0.070 (so does this one's)
        (5, 0, "regression"),  # mid-p 0.031 (the exact test's p 0.0625 read beside a regression)
        (7, 1, "regression"),  # mid-p 0.039
    ],
)
def test_mcnemar_decides_a_pass_fail_change(losses: int, wins: int, verdict: str) -> None:
    same = 30
    baseline = [1.0] * losses + [0.0] * wins + [1.0] * same
    current = [0.0] * losses + [1.0] * wins + [1.0] * same
    test = paired_test(baseline, current, binary=True)

    got, fails = judge(test, name="pass_rate", delta=(wins - losses) / len(baseline))

    assert (got, fails) == (verdict, verdict == "regression")
    assert (test.p_value < 0.05) == (verdict == "regression")  # the verdict agrees with its p


# --- what the figures read (QA statistics pass) ---------------------------------------------------


def scored(name: str, outcome: str, score: str, values: list[Any]) -> dict[str, Any]:
    """A dataset item of test t.py::t whose test recorded ``score`` once per value."""
    stored = item(f"t.py::t[{name}]", outcome, dataset="d")
    kind = "BOOLEAN" if all(isinstance(v, bool) for v in values) else "NUMERIC"
    stored["trace"]["scores"] = [{"name": score, "value": v, "data_type": kind} for v in values]
    return stored


def ok_twice(pairs: list[tuple[bool, bool]]) -> dict[str, Any]:
    return run("r", [scored(f"i{k:02d}", "passed", "ok", list(p)) for k, p in enumerate(pairs)])


def test_a_boolean_recorded_twice_per_test_is_compared_by_its_mean_not_by_mcnemar() -> None:
    # An item recording (True, False) scores 0.5: no pass, no fail, so McNemar's test does not
    # apply. (before: every item 1.0 -> 0.5 was "no significant change (mid-p 1.000)", and the
    # second case a regression at mid-p 9.8e-04, as a change from 0.5 counted as a loss.)
    every_item_halved = compare_runs(ok_twice([(True, True)] * 30), ok_twice([(True, False)] * 30))
    mixed = compare_runs(
        ok_twice([(True, False)] * 30),
        ok_twice([(False, False)] * 10 + [(True, True)] * 8 + [(True, False)] * 12),
    )

    halved = next(m for m in every_item_halved.metrics if (m.group, m.name) == ("d", "mean_ok"))
    assert halved.test is not None and halved.test.p_value is None
    assert (halved.verdict, halved.fails_gate) == ("regression", True)
    assert not every_item_halved.gate_passed
    row = next(m for m in mixed.metrics if (m.group, m.name) == ("d", "mean_ok"))
    assert row.test is not None and row.test.p_value is None
    assert (row.test.losses, row.test.wins) == (None, None)
    assert row.verdict == "no significant change" and mixed.gate_passed
    assert "McNemar" not in halved.message()


def test_paired_test_uses_mcnemar_only_when_every_value_is_0_or_1() -> None:
    halves = paired_test([0.5] * 30, [0.0] * 10 + [1.0] * 8 + [0.5] * 12, binary=True)
    assert (halves.losses, halves.wins, halves.p_value) == (None, None, None)
    passes = paired_test([1.0] * 20, [0.0] * 6 + [1.0] * 14, binary=True)
    assert (passes.losses, passes.wins) == (6, 0)


@pytest.mark.parametrize(("before", "after"), [(0.8, 0.7), (0.9, 0.8), (0.3, 0.2)])
def test_a_drop_equal_to_max_drop_but_for_float_noise_is_within_it(
    before: float, after: float
) -> None:
    # 0.7 - 0.8 is -0.10000000000000009 (before: beyond --llm-max-drop 0.1; 0.9 -> 0.8 within)
    names = [f"i{k:02d}" for k in range(30)]
    baseline = run("a", [scored(n, "passed", "q", [before]) for n in names])
    current = run("b", [scored(n, "passed", "q", [after]) for n in names])

    comparison = compare_runs(baseline, current, max_drop=0.1)

    row = next(m for m in comparison.metrics if (m.group, m.name) == ("d", "mean_q"))
    assert (row.verdict, row.fails_gate) == ("regression", False)
    assert comparison.gate_passed
    assert row.message(0.1).endswith("(delta -0.100, 95% CI -0.100..-0.100, n=30, within "
                                     "--llm-max-drop 0.1)")  # fmt: skip


def test_a_drop_beyond_max_drop_that_rounds_to_it_is_printed_with_the_digits_that_show_it() -> None:
    names = [f"i{k:02d}" for k in range(30)]
    baseline = run("a", [scored(n, "passed", "q", [0.9]) for n in names])
    current = run("b", [scored(n, "passed", "q", [0.7996]) for n in names])

    comparison = compare_runs(baseline, current, max_drop=0.1)

    row = next(m for m in comparison.metrics if (m.group, m.name) == ("d", "mean_q"))
    assert (row.verdict, row.fails_gate) == ("regression", True)
    # (before: "delta -0.100, 95% CI -0.100..-0.100" beside "beyond --llm-max-drop 0.1")
    assert row.message(0.1).endswith("(delta -0.1004, 95% CI -0.1004..-0.1004, n=30)")
    table = "\n".join(comparison_lines(comparison))
    assert "  d          mean_q     0.900     0.800    -0.1004  -0.1004..-0.1004  -  " in table
    assert "beyond --llm-max-drop 0.1: session fails" in table


def test_markdown_shows_the_paired_delta_its_interval_and_p_are_of() -> None:
    # 5 items gone, 5 new ones scoring 0, 6 matched items 0.8 -> 0.5: the aggregate's delta
    # (-0.193) lay outside the interval of the matched items' change printed beside it.
    from pytest_llmobs.compare.render import PAIRED_NOTE, markdown

    kept = [f"i{k:02d}" for k in range(25)]
    baseline = run("a", [scored(n, "passed", "q", [0.8]) for n in [*kept, *"vwxyz"]])
    current = run(
        "b",
        [scored(n, "passed", "q", [0.5 if k < 6 else 0.8]) for k, n in enumerate(kept)]
        + [scored(f"n{k}", "passed", "q", [0.0]) for k in range(5)],
    )

    comparison = compare_runs(baseline, current)

    row = next(m for m in comparison.metrics if (m.group, m.name) == ("d", "mean_q"))
    assert row.test is not None and round(row.test.interval.estimate, 3) == -0.072
    lines = markdown(comparison).splitlines()
    assert "| d | `mean_q` | 0.800 | 0.607 | -0.193 (paired -0.072) | -0.120..-0.024 |" in (
        "\n".join(lines)
    )
    assert PAIRED_NOTE in lines
    unmoved = compare_runs(baseline, baseline)
    assert PAIRED_NOTE not in markdown(unmoved) and "(paired" not in markdown(unmoved)


def test_a_p_value_just_under_alpha_is_not_printed_as_0_050() -> None:
    # 41 pass -> fail, 25 fail -> pass: mid-p 0.0498 beside REGRESSION (before: "mid-p=0.050")
    def verdicts(passing: Any) -> dict[str, Any]:
        return run("r", [item(f"t.py::t[i{k:02d}]", passing(k), dataset="d") for k in range(70)])

    comparison = compare_runs(
        verdicts(lambda k: "passed" if k < 41 or k >= 66 else "failed"),
        verdicts(lambda k: "passed" if k >= 41 else "failed"),
    )

    row = next(m for m in comparison.metrics if (m.group, m.name) == ("d", "pass_rate"))
    assert row.test is not None and row.test.p_value == pytest.approx(0.0498, abs=5e-5)
    assert row.verdict == "regression"
    assert "McNemar mid-p=0.0498, n=70)" in row.message()
    assert "  0.0498  70  regression" in "\n".join(comparison_lines(comparison))


@pytest.mark.parametrize(
    ("p", "shown"),
    [(0.0498, "0.0498"), (0.04999, "0.04999"), (0.0501, "0.050"), (0.05, "0.050"),
     (0.031, "0.031"), (0.5, "0.500"), (0.00098, "9.8e-04")],
)  # fmt: skip
def test_p_values_read_on_the_side_of_alpha_they_are(p: float, shown: str) -> None:
    from pytest_llmobs.compare.model import fmt_p

    assert fmt_p(p) == shown


@pytest.mark.parametrize(
    ("value", "shown"),
    [(-0.0004, "-0.0004"), (0.0, "+0.000"), (-0.12, "-0.120"), (2e-20, "+2e-20")],
)
def test_an_interval_bound_that_is_not_0_never_reads_as_0(value: float, shown: str) -> None:
    from pytest_llmobs.compare.model import fmt_signed

    assert fmt_signed(value) == shown


def test_huge_scores_are_compared_with_exponents_not_300_digits() -> None:
    # (before: the delta and its interval printed every digit of 2e300 in the text and markdown)
    from pytest_llmobs.compare.render import markdown

    baseline = run("a", [item(f"t.py::t[{n}]", "passed", dataset="d", q=1e300) for n in "vwxyz"])
    current = run("b", [item(f"t.py::t[{n}]", "passed", dataset="d", q=3e300) for n in "vwxyz"])

    comparison = compare_runs(baseline, current)
    text = "\n".join(comparison_lines(comparison)) + markdown(comparison)

    assert "+2e+300" in text
    assert max(len(line) for line in text.splitlines()) < 200
