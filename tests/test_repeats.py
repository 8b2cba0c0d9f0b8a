"""Repeats: ``--llm-repeat`` and ``repeat=`` on the marker, the stored repeat indices, flakiness,
score variance across repeats, and how the comparison averages repeats per item."""

from __future__ import annotations

import glob
import json
import statistics
from collections import defaultdict
from textwrap import dedent
from typing import TYPE_CHECKING, Any

import numpy  # noqa: F401  (numpy loads once per process: here, not in an inner session)
import pytest

import pytest_llmobs.compare.gate  # noqa: F401  (loaded once here, not inside inner sessions)
from pytest_llmobs.aggregate_model import strip_repeat_id
from pytest_llmobs.compare.stats import paired_bootstrap_interval

if TYPE_CHECKING:
    from conftest import Runs

SUITE = """\
    import pytest

    @pytest.mark.llm_dataset("capitals"{marker})
    def test_capital(item, llm, scorer):
        assert scorer.exact_match(llm.generate(item.input).text, item.expected_output)
    """


def suite(pytester: pytest.Pytester, marker: str = "") -> None:
    pytester.makeini("[pytest]\n")
    pytester.makepyfile(test_capitals=dedent(SUITE.format(marker=marker)))


def by_item(run: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for item in run["items"]:
        grouped[item["item_id"]].append(item)
    return grouped


@pytest.mark.parametrize(
    ("marker", "args", "count"),
    [
        pytest.param("", ["--llm-repeat=3"], 3, id="option"),
        pytest.param(", repeat=2", [], 2, id="marker"),
        pytest.param(", repeat=2", ["--llm-repeat=3"], 2, id="marker-beats-option"),
        pytest.param("", [], 1, id="default"),
    ],
)
def test_repeats_make_n_cases_per_item_with_distinct_stored_indices(
    pytester: pytest.Pytester,
    runs: Runs,
    capitals: list[dict[str, Any]],
    marker: str,
    args: list[str],
    count: int,
) -> None:
    suite(pytester, marker)

    result = pytester.runpytest("-v", *args)

    result.assert_outcomes(passed=count * len(capitals))
    suffixes = [f"-r{i}" for i in range(count)] if count > 1 else [""]
    result.stdout.fnmatch_lines(
        [
            glob.escape(f"test_capitals.py::test_capital[{item['id']}{suffix}] PASSED") + "*"
            for item in capitals
            for suffix in suffixes
        ]
    )
    run = runs.latest()
    grouped = by_item(run)
    assert sorted(grouped) == sorted(item["id"] for item in capitals)
    for cases in grouped.values():
        assert sorted(case["repeat"] for case in cases) == list(range(count))
        assert len({case["trace"]["id"] for case in cases}) == count
    assert runs.aggregates(run, "capitals")["count"]["value"] == count * len(capitals)
    if count > 1:
        assert run["repeats"]["max_repeats"] == count
    else:
        assert "repeats" not in run and "flaky_rate" not in runs.aggregates(run, "capitals")


def test_repeats_under_xdist_store_every_case(
    pytester: pytest.Pytester, runs: Runs, capitals: list[dict[str, Any]]
) -> None:
    suite(pytester)
    pytester.runpytest("-n", "2", "--llm-repeat=2").assert_outcomes(passed=2 * len(capitals))
    pairs = sorted((i["item_id"], i["repeat"]) for i in runs.latest()["items"])
    assert pairs == sorted((c["id"], r) for c in capitals for r in (0, 1))


def test_bad_repeat_on_the_marker_is_a_usage_error(
    pytester: pytest.Pytester, capitals: list[dict[str, Any]]
) -> None:
    suite(pytester, ", repeat=0")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: test_capitals.py::test_capital: @pytest.mark.llm_dataset: repeat must be a "
            "positive integer; got 0"
        ]
    )


FLAKY_SUITE = """\
    import collections
    import pytest

    SEEN = collections.Counter()
    QUALITY = {0: 0.2, 1: 0.5, 2: 0.8}

    @pytest.mark.llm_dataset("capitals", repeat=3)
    def test_capital(item, scorer):
        SEEN[item.id] += 1
        scorer.score("quality", QUALITY[SEEN[item.id] - 1] if item.id == "japan" else 0.5)
        # france fails on its second run only; spain on every run (not flaky).
        assert not (item.id == "france" and SEEN[item.id] == 2)
        assert item.id != "spain"
    """


def test_flakiness_and_score_variance_across_repeats(
    pytester: pytest.Pytester, runs: Runs, capitals: list[dict[str, Any]]
) -> None:
    pytester.makeini("[pytest]\n")
    pytester.makepyfile(test_capitals=dedent(FLAKY_SUITE))

    result = pytester.runpytest()

    result.assert_outcomes(passed=3 * 4 - 1 - 3, failed=4)
    run = runs.latest()
    rows = {row["item_id"]: row for row in run["repeats"]["items"]}
    assert {k: (r["passed"], r["failed"], r["flaky"]) for k, r in rows.items()} == {
        "france": (2, 1, True),
        "japan": (3, 0, False),
        "italy": (3, 0, False),
        "spain": (0, 3, False),
    }
    assert rows["france"]["flakiness"] == pytest.approx(1 / 3)
    assert rows["spain"]["flakiness"] == 0.0
    japan_variance = statistics.variance([0.2, 0.5, 0.8])
    assert rows["japan"]["variance"] == {"quality": pytest.approx(japan_variance)}
    aggregates = runs.aggregates(run, "capitals")
    assert aggregates["flaky_items"]["value"] == 1
    assert aggregates["flaky_rate"]["value"] == pytest.approx(1 / len(capitals))
    assert aggregates["flaky_rate"]["n"] == len(capitals)
    mean_variance = aggregates["mean_repeat_variance_quality"]
    assert mean_variance["value"] == pytest.approx(japan_variance / len(capitals))
    result.stdout.fnmatch_lines(
        [
            f"repeats: up to 3 per item, {len(capitals)} item(s) repeated, 1 flaky "
            f"({1 / len(capitals):.1%})",
            f"  score variance across repeats (mean over items): quality "
            f"{japan_variance / len(capitals):.3f}",
            "  flaky capitals/france: passed 2, failed 1 of 3 (flakiness 0.33)",
        ],
        consecutive=True,
    )
    assert "repeat_variance_quality  mean" not in result.stdout.str()


def test_flaky_rate_can_be_gated_by_a_threshold(
    pytester: pytest.Pytester, capitals: list[dict[str, Any]]
) -> None:
    pytester.makeini("[pytest]\n")
    pytester.makepyfile(test_capitals=dedent(FLAKY_SUITE))
    result = pytester.runpytest("--llm-threshold=capitals: flaky_rate <= 0")
    result.stdout.fnmatch_lines(
        [f"  ✗ capitals: flaky_rate <= 0  observed {1 / len(capitals):.3f} (n={len(capitals)})"]
    )


REPEATED_SCORES = """\
    import pytest

    @pytest.mark.llm_dataset("capitals")
    def test_capital(item, llm, scorer):
        scorer.exact_match(llm.generate(item.input).text, item.expected_output, name="accuracy")
    """


def test_comparison_averages_repeats_per_item_and_resamples_items(
    pytester: pytest.Pytester, runs: Runs, capitals: list[dict[str, Any]]
) -> None:
    pytester.makeini("[pytest]\n")
    pytester.makepyfile(test_capitals=dedent(REPEATED_SCORES))
    pytester.runpytest("--llm-repeat=2", "--llm-run-name=base").assert_outcomes(passed=8)

    pytester.runpytest(
        "--llm-repeat=2", "--llm-baseline=base", "--llm-model=mock-llm-v1?accuracy=0.5&seed=7"
    ).assert_outcomes(passed=8)

    before, after = runs.load("base"), runs.latest()

    def per_item(run: dict[str, Any]) -> dict[str, float]:
        values: dict[str, list[float]] = defaultdict(list)
        for item in run["items"]:
            values[item["item_id"]].append(float(item["trace"]["scores"][0]["value"]))
        return {k: statistics.fmean(v) for k, v in values.items()}

    old, new = per_item(before), per_item(after)
    keys = [c["id"] for c in capitals]
    interval = paired_bootstrap_interval([old[k] for k in keys], [new[k] for k in keys])
    row = next(
        m
        for m in after["comparison"]["metrics"]
        if (m["group"], m["name"]) == ("capitals", "mean_accuracy")
    )
    assert row["n"] == len(capitals)  # items, not the 8 cases
    assert row["p_value"] is None  # no McNemar on averaged repeats
    assert (row["ci_low"], row["ci_high"]) == (interval.low, interval.high)
    assert after["comparison"]["matched"] == 2 * len(capitals)


@pytest.mark.parametrize(
    ("node_id", "repeat", "expected"),
    [
        ("t.py::test_x[france-r1]", 1, "t.py::test_x[france]"),
        ("t.py::test_x[r0]", 0, "t.py::test_x"),
        ("t.py::test_x[new-york-r2-r2]", 2, "t.py::test_x[new-york-r2]"),
        ("t.py::test_x[france]", 0, "t.py::test_x[france]"),
        ("t.py::test_x", 0, "t.py::test_x"),
    ],
)
def test_strip_repeat_id(node_id: str, repeat: int, expected: str) -> None:
    assert strip_repeat_id(node_id, repeat) == expected


def test_a_repeat_the_session_stopped_in_is_no_verdict_on_the_model(
    pytester: pytest.Pytester,
    runs: Runs,
    capitals: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ctrl-C (here `pytest.exit`) in a repeat made its item flaky and a pass -> fail flip;
    the stopped test is kept, as an error, but tells nothing of the model."""
    pytester.makeini("[pytest]\n")
    pytester.makepyfile(
        test_capitals=dedent(
            """\
            import os
            import pytest

            @pytest.mark.llm_dataset("capitals", repeat=3, thresholds=["flaky_rate <= 0"])
            def test_capital(item, llm, scorer, request):
                assert scorer.exact_match(llm.generate(item.input).text, item.expected_output)
                if request.node.name == os.environ.get("STOP_IN"):
                    pytest.exit("stopping for the day")
            """
        )
    )
    pytester.runpytest("--llm-save-baseline=main").assert_outcomes(passed=3 * len(capitals))
    last = runs.latest()["items"][-1]
    monkeypatch.setenv("STOP_IN", f"test_capital[{last['item_id']}-r2]")

    result = pytester.runpytest("--llm-baseline=main")

    assert result.ret == pytest.ExitCode.INTERRUPTED
    run = runs.latest()
    (stopped,) = [i for i in run["items"] if i["outcome"] == "error"]
    assert (stopped["item_id"], stopped["repeat"], stopped["stopped"]) == (last["item_id"], 2, True)
    result.stdout.fnmatch_lines(["*flaky_rate <= 0  observed 0 (n=*)"])
    assert "flaky capitals/" not in result.stdout.str()
    assert run["comparison"]["flips"] == []


def test_a_repeat_lost_with_its_xdist_worker_is_failed_but_no_verdict_on_the_model(
    pytester: pytest.Pytester, runs: Runs, capitals: list[dict[str, Any]]
) -> None:
    """A crashed worker made its item flaky (passed 2, failed 1 of 3) and failed
    ``flaky_rate <= 0``: its test stays a failed item (pytest's outcome, the pass rate), but a
    dead worker says no more of the model than a Ctrl-C does."""
    pytester.makeini("[pytest]\n")
    pytester.makepyfile(
        test_capitals=dedent(
            """\
            import os
            import pytest

            @pytest.mark.llm_dataset("capitals", repeat=3, thresholds=["flaky_rate <= 0"])
            def test_capital(item, llm, scorer, request):
                assert scorer.exact_match(llm.generate(item.input).text, item.expected_output)
                if request.node.name == "test_capital[france-r1]":
                    os._exit(1)  # the worker dies (the OOM killer, a C extension's segfault)
            """
        )
    )

    result = pytester.runpytest_subprocess("-n", "2", "-p", "no:cacheprovider")

    result.assert_outcomes(passed=3 * len(capitals) - 1, failed=1)
    run = runs.latest()
    (lost,) = [i for i in run["items"] if i["outcome"] == "failed"]
    assert (lost["item_id"], lost["repeat"], lost["stopped"]) == ("france", 1, True)
    assert runs.aggregates(run, "capitals")["pass_rate"]["n"] == 3 * len(capitals)
    result.stdout.fnmatch_lines(["*capitals: flaky_rate <= 0  observed 0 (n=*)"])
    assert "flaky capitals/france" not in result.stdout.str()


def test_a_skipped_or_xfailed_repeats_scores_stay_out_of_the_repeat_variance(
    pytester: pytest.Pytester, runs: Runs, capitals: list[dict[str, Any]]
) -> None:
    pytester.makeini("[pytest]\n")
    pytester.makepyfile(
        test_capitals=dedent(
            """\
            import pytest

            @pytest.mark.llm_dataset("capitals", repeat=2)
            def test_capital(item, scorer, request):
                if request.node.name.endswith("-r1]"):
                    scorer.score("q", 0.0)
                    pytest.xfail("a known failure")
                scorer.score("q", 1.0)
            """
        )
    )

    pytester.runpytest()

    group = runs.aggregates(runs.latest(), "capitals")
    assert group["mean_q"]["value"] == 1.0  # the xfailed repeats' scores stay out, as here
    # no item has two counted repeats: no variance (it was 0.5, from the xfailed ones)
    assert "mean_repeat_variance_q" not in group


def test_llmobs_show_lists_the_repeats_as_the_session_did(
    pytester: pytest.Pytester, runs: Runs, capitals: list[dict[str, Any]]
) -> None:
    from io import StringIO

    from pytest_llmobs import cli

    suite(pytester)
    session = pytester.runpytest("--llm-repeat=2")
    out = StringIO()

    assert cli.main(["show", "latest", "--store", str(pytester.path / ".llmobs")], out) == 0

    repeats = [line for line in session.stdout.lines if line.startswith("repeats:")]
    assert repeats and repeats[0] in out.getvalue().splitlines()  # (show left it out)


def test_flaky_rate_is_over_items_with_a_verdict_in_two_repeats(
    pytester: pytest.Pytester, runs: Runs, capitals: list[dict[str, Any]]
) -> None:
    # (before: spain, skipped every time, and italy, skipped but once, counted as steady items:
    # "4 item(s) repeated, 1 flaky (25.0%)", flaky_rate 0.25)
    pytester.makeini("[pytest]\n")
    pytester.makepyfile(
        test_capitals=dedent(
            """\
            import pytest

            @pytest.mark.llm_dataset("capitals", repeat=2)
            def test_capital(item, request):
                repeat = request.node.callspec.params["_llmobs_repeat"]
                if item.id == "spain" or (item.id == "italy" and repeat == 1):
                    pytest.skip("not applicable")
                assert item.id != "france" or repeat == 0
            """
        )
    )

    result = pytester.runpytest("--llm-threshold=capitals: flaky_rate <= 0.5")

    group = runs.aggregates(runs.latest(), "capitals")
    assert (group["flaky_rate"]["value"], group["flaky_rate"]["n"]) == (0.5, 2)
    assert group["flaky_items"]["value"] == 1
    assert [r["item_id"] for r in runs.latest()["repeats"]["items"]] == ["france", "japan"]
    result.stdout.fnmatch_lines(
        [
            "repeats: up to 2 per item, 2 item(s) repeated, 1 flaky (50.0%)",
            "  ✓ capitals: flaky_rate <= 0.5  observed 0.500 (n=2)",
        ]
    )


def test_a_flaky_threshold_on_a_dataset_skipped_every_time_is_not_evaluated(
    pytester: pytest.Pytester, capitals: list[dict[str, Any]]
) -> None:
    # (after flaky_rate stopped counting items without two verdicts, such a dataset has none:
    # the threshold must read as not evaluated, not as "exists only with --llm-repeat")
    pytester.makeini("[pytest]\n")
    pytester.makepyfile(
        test_capitals=dedent(
            """\
            import pytest

            @pytest.mark.llm_dataset("capitals", repeat=2)
            def test_capital(item):
                pytest.skip("not applicable")
            """
        )
    )

    result = pytester.runpytest("--llm-threshold=capitals: flaky_rate <= 0.5")

    result.stdout.fnmatch_lines(["*capitals: flaky_rate <= 0.5*not evaluated*no item*counted*"])
    result.stdout.no_fnmatch_line("*only with --llm-repeat*")
    assert result.ret == 0


def test_repeats_skipped_every_time_say_so() -> None:
    from pytest_llmobs.repeats import RepeatTracker, repeat_lines

    tracker = RepeatTracker()
    for repeat in range(3):
        node = f"t.py::t[a-r{repeat}]"
        tracker.add({"dataset": "d", "item_id": "a", "repeat": repeat, "node_id": node,
                     "outcome": "skipped"})  # fmt: skip
    aggregates: dict[str, Any] = {}
    tracker.add_aggregates(aggregates)

    assert aggregates == {}  # (before: flaky_rate 0 of 1 item)
    assert repeat_lines(tracker.summary()) == [
        "repeats: up to 3 per item, no item with a verdict in two of them (skipped, xfailed or "
        "stopped)"
    ]


def test_a_mock_errors_outcome_does_not_depend_on_what_else_the_process_ran(
    pytester: pytest.Pytester, runs: Runs, capitals: list[dict[str, Any]]
) -> None:
    """With ``error_rate``, a test's outcome depended on how often its process had asked the
    question before: ``-k`` selecting one repeat, or another xdist layout, changed it."""
    suite(pytester)
    model = "--llm-model=mock-llm-v1?error_rate=0.6&seed=5"

    def outcomes(*args: str) -> dict[str, str]:
        pytester.runpytest("--llm-no-store", "--llm-json=run.json", "--llm-repeat=3", model, *args)
        run = json.loads((pytester.path / "run.json").read_text(encoding="utf-8"))
        return {i["node_id"]: i["outcome"] for i in run["items"]}

    everything = outcomes()
    assert "passed" in everything.values() and set(everything.values()) != {"passed"}
    for repeat in ("r1", "r2"):
        alone = outcomes("-k", repeat)
        assert alone and alone == {k: v for k, v in everything.items() if k in alone}
