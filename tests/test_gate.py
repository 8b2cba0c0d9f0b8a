"""The regression gate in a real session: ``--llm-baseline``, ``--llm-save-baseline``,
``--llm-max-drop``, ``--llm-fail-on``, the comparison section and what the run stores."""

from __future__ import annotations

import glob
import json
import math
import subprocess
import sys
from io import StringIO
from pathlib import Path
from textwrap import dedent
from typing import TYPE_CHECKING, Any

import numpy  # noqa: F401  (numpy loads once per process: here, not in an inner session)
import pytest

import pytest_llmobs.compare.gate
import pytest_llmobs.compare.render  # noqa: F401
from pytest_llmobs import cli
from pytest_llmobs.compare.stats import paired_bootstrap_interval
from pytest_llmobs.providers.capitals import CAPITALS
from pytest_llmobs.settings_read import parse_fail_on

if TYPE_CHECKING:
    from conftest import Runs

COUNTRIES = sorted(CAPITALS)[:40]
DEGRADED = "mock-llm-v1?accuracy=0.5&seed=7"

SCORED_SUITE = """\
    import pytest

    @pytest.mark.llm_dataset("capitals")
    def test_capital(item, llm, scorer):
        # Scored, not asserted: only the gate can fail this session.
        scorer.exact_match(llm.generate(item.input).text, item.expected_output, name="accuracy")
    """


def write_capitals(pytester: pytest.Pytester, countries: list[str] = COUNTRIES) -> None:
    lines = [
        json.dumps(
            {
                "id": country.lower().replace(" ", "-"),
                "input": f"What is the capital of {country}?",
                "expected_output": CAPITALS[country],
            }
        )
        for country in countries
    ]
    pytester.makefile(".jsonl", **{"datasets/capitals": "\n".join(lines) + "\n"})


def exact(line: str) -> str:
    return glob.escape(line)


def mcnemar(losses: int, wins: int) -> float:
    """Two-sided McNemar mid-p value, straight from the binomial distribution."""
    n = losses + wins
    if n == 0:
        return 1.0
    rarer = min(losses, wins)
    below: float = sum(math.comb(n, k) for k in range(rarer)) / 2**n
    return min(1.0, 2 * below + math.comb(n, rarer) / 2**n)


def p_text(p: float) -> str:
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def accuracy(run: dict[str, Any]) -> dict[str, float]:
    return {
        item["item_id"]: float(next(s["value"] for s in item["trace"]["scores"]))
        for item in run["items"]
    }


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeini("[pytest]\n")
    write_capitals(pytester)
    pytester.makepyfile(test_capitals=dedent(SCORED_SUITE))
    return pytester


def save_main(suite: pytest.Pytester, *args: str) -> pytest.RunResult:
    result = suite.runpytest("--llm-save-baseline=main", *args)
    result.assert_outcomes(passed=len(COUNTRIES))
    return result


# --- the gate ------------------------------------------------------------------------------------


def test_degraded_model_against_a_saved_baseline_fails_naming_metric_and_interval(
    suite: pytest.Pytester, runs: Runs, xdist_args: tuple[str, ...]
) -> None:
    save_main(suite, *xdist_args).stdout.fnmatch_lines(["saved as baseline 'main'"])
    with runs.open() as store:
        baseline_id = store.get_baseline("main")
    assert baseline_id == runs.latest()["id"]

    result = suite.runpytest("--llm-baseline=main", f"--llm-model={DEGRADED}", *xdist_args)

    result.assert_outcomes(passed=len(COUNTRIES))  # every test passed; the gate fails the run
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    current = runs.latest()
    current_label = f"{current['name']!r} (run {current['id']})"
    before, after = accuracy(runs.load(str(baseline_id))), accuracy(current)
    losses = sum(1 for k in before if before[k] and not after[k])
    wins = sum(1 for k in before if after[k] and not before[k])
    assert losses >= 6  # enough for the exact test to see the drop
    items = sorted(before)
    interval = paired_bootstrap_interval([before[k] for k in items], [after[k] for k in items])
    old, new = sum(before.values()) / len(items), sum(after.values()) / len(items)
    details = (
        f"(delta {new - old:+.3f}, 95% CI {interval.low:+.3f}..{interval.high:+.3f}, "
        f"McNemar mid-p={p_text(mcnemar(losses, wins))}, n={len(items)})"
    )
    result.stdout.fnmatch_lines(
        [
            f"*= llmobs comparison vs baseline 'main' (run {baseline_id}) =*",
            f"baseline 'main' (run {baseline_id})  model mock-llm-v1",
            exact(f"current  {current_label}  model {DEGRADED}"),
            f"matched {len(items)} case(s); only in baseline: 0; only in current: 0",
            "what changed:",
            exact(f"  model: mock-llm-v1 -> {DEGRADED}"),
            "  param accuracy: 1.0 -> 0.5",
            "  param seed: 0 -> 7",
        ],
        consecutive=True,
    )
    result.stdout.fnmatch_lines(
        [
            f"flipped items: {losses} pass -> fail, {wins} fail -> pass (showing 5)",
            exact(f"REGRESSION capitals: mean_accuracy {old:.3f} -> {new:.3f} {details}"),
            exact(f"REGRESSION all tests: mean_accuracy {old:.3f} -> {new:.3f} {details}"),
            "2 significant regression(s) beyond --llm-max-drop 0: session fails",
        ],
        consecutive=False,
    )
    run = runs.latest()
    assert run["status"] == "failed"
    comparison = run["comparison"]
    assert comparison["verdict"] == "regression" and comparison["regressions"] == 2
    assert comparison["baseline"]["id"] == baseline_id
    assert comparison["baseline"]["source"] == "saved baseline"
    row = next(
        m for m in comparison["metrics"] if (m["group"], m["name"]) == ("capitals", "mean_accuracy")
    )
    assert (row["losses"], row["wins"], row["n"]) == (losses, wins, len(items))
    assert row["p_value"] == pytest.approx(mcnemar(losses, wins))
    assert (row["ci_low"], row["ci_high"]) == (interval.low, interval.high)
    assert row["verdict"] == "regression" and row["fails_gate"] is True
    assert len(comparison["flips"]) == losses + wins  # all flips stored, 5 shown
    with runs.open() as store:
        assert store.get_baseline("main") == baseline_id  # a failed run is not saved


def test_identical_rerun_passes_with_no_significant_change(
    suite: pytest.Pytester, runs: Runs
) -> None:
    save_main(suite)

    result = suite.runpytest("--llm-baseline=main")

    result.assert_outcomes(passed=len(COUNTRIES))
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        [
            "what changed: nothing (model, params, prompts, datasets, plugin version)",
            "metrics (95% CI and p of the paired difference current - baseline):",
            "  scope *metric *baseline *current *delta *95% CI *p *n *verdict",
            "  capitals *pass_rate *1.000 *1.000 *+0.000 *+0.000..+0.000 *1.000 *40 *"
            "no significant change",
            "  capitals *mean_accuracy *1.000 *1.000 *+0.000 *+0.000..+0.000 *1.000 *40 *"
            "no significant change",
        ]
    )
    result.stdout.fnmatch_lines(
        ["flipped items: none", "no significant change in 4 tested metric(s): gate passes"],
        consecutive=True,
    )
    run = runs.latest()
    assert run["status"] == "passed"
    assert run["comparison"]["verdict"] == "passed"
    assert {m["verdict"] for m in run["comparison"]["metrics"] if m["n"]} == {
        "no significant change"
    }


def test_fail_on_threshold_does_not_fail_on_a_regression(
    suite: pytest.Pytester, runs: Runs
) -> None:
    save_main(suite)

    result = suite.runpytest(
        "--llm-baseline=main", f"--llm-model={DEGRADED}", "--llm-fail-on=threshold"
    )

    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        [
            "REGRESSION capitals: mean_accuracy *",
            "2 significant regression(s) beyond --llm-max-drop 0: not failing the session "
            "(--llm-fail-on)",
        ]
    )
    run = runs.latest()
    assert run["status"] == "passed"
    assert run["comparison"]["verdict"] == "regression"  # still recorded
    assert (run["fail_on"], run["comparison"]["enforced"]) == (["threshold"], False)
    # the HTML report, read later, says what the session said
    page = suite.path / "report.html"
    assert cli.main(["report", "latest", "-o", str(page), "--store", ".llmobs"], StringIO()) == 0
    html = page.read_text(encoding="utf-8")
    assert "2 beyond the tolerated drop, not enforced" in html
    assert "fail the gate" not in html and "fails the gate" not in html


def test_fail_on_regression_does_not_fail_on_a_threshold(
    suite: pytest.Pytester, runs: Runs
) -> None:
    result = suite.runpytest(
        "--llm-fail-on=regression",
        "--llm-threshold=capitals: mean_accuracy >= 0.99",
        f"--llm-model={DEGRADED}",
    )

    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        ["  ✗ capitals: mean_accuracy >= 0.99 *", "1 of 1 threshold(s) failed: not failing *"]
    )
    assert runs.latest()["status"] == "passed"
    shown = StringIO()  # and `llmobs show`, later, says it too
    assert cli.main(["show", "latest", "--store", str(suite.path / ".llmobs")], shown) == 0
    assert "1 of 1 threshold(s) failed: not failing (--llm-fail-on)" in shown.getvalue()


def test_fail_on_none_reports_but_fails_on_nothing(suite: pytest.Pytester) -> None:
    save_main(suite)
    result = suite.runpytest(
        "--llm-baseline=main",
        f"--llm-model={DEGRADED}",
        "--llm-fail-on=none",
        "--llm-threshold=capitals: mean_accuracy >= 0.99",
    )
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["REGRESSION capitals: mean_accuracy *"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(
            ["--llm-fail-on=threshold,regresion"],
            "ERROR: 'threshold,regresion' is not a valid --llm-fail-on policy. Valid policies: "
            "threshold, regression (comma-separated), or none.",
            id="fail-on",
        ),
        pytest.param(
            ["--llm-max-drop=-0.1"],
            "ERROR: --llm-max-drop must be a number >= 0 on the aggregate's scale, e.g. 0.02; "
            "got '-0.1'",
            id="max-drop",
        ),
        pytest.param(
            ["--llm-repeat=0"],
            "ERROR: --llm-repeat must be a positive integer; got '0'",
            id="repeat",
        ),
    ],
)
def test_bad_gate_options_are_usage_errors(
    suite: pytest.Pytester, args: list[str], message: str
) -> None:
    result = suite.runpytest(*args)

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([exact(message)])


def test_fail_on_in_the_ini_file(suite: pytest.Pytester) -> None:
    suite.makeini("[pytest]\nllm_fail_on = bogus\n")
    result = suite.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: 'bogus' is not a valid --llm-fail-on policy. *"])


@pytest.mark.parametrize(
    ("value", "policies"),
    [
        ("THRESHOLD", {"threshold"}),
        ("Threshold, Regression", {"threshold", "regression"}),
        ("NONE", set()),
    ],
)
def test_fail_on_policies_are_read_in_any_case(value: str, policies: set[str]) -> None:
    # as --llm-cache=READ and --llm-redact=STRICT are (before, only lower case was a policy)
    assert parse_fail_on(value) == policies


def test_max_drop_tolerates_a_significant_drop_within_it(
    suite: pytest.Pytester, runs: Runs
) -> None:
    save_main(suite)

    result = suite.runpytest("--llm-baseline=main", f"--llm-model={DEGRADED}", "--llm-max-drop=0.9")

    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        [
            "  capitals *mean_accuracy * regression (within max drop 0.9)",
            "REGRESSION capitals: mean_accuracy * within --llm-max-drop 0.9)",
            "2 regression(s) within --llm-max-drop 0.9: gate passes",
        ]
    )
    assert runs.latest()["comparison"]["max_drop"] == 0.9


def test_max_drop_and_baseline_from_the_ini_file(suite: pytest.Pytester, runs: Runs) -> None:
    save_main(suite)
    suite.makeini("[pytest]\nllm_baseline = main\nllm_max_drop = 0.9\n")

    result = suite.runpytest(f"--llm-model={DEGRADED}")

    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["2 regression(s) within --llm-max-drop 0.9: gate passes"])


ENV_SCORED_SUITE = """\
    import os
    import pytest

    @pytest.mark.llm_dataset("capitals")
    def test_capital(item, scorer):
        for value in os.environ["SCORES"].split():  # "1 0": the boolean ok, twice
            if value in ("0", "1"):
                scorer.score("ok", value == "1")
            else:
                scorer.score("q", float(value))
    """


@pytest.mark.parametrize(
    ("before", "after", "line", "status"),
    [
        pytest.param(  # (before: "no significant change (mid-p 1.000)": the gate passed)
            "1 1", "1 0",
            "REGRESSION capitals: mean_ok 1.000 -> 0.500 (delta -0.500, 95% CI "
            "-0.500..-0.500, n=40)",
            pytest.ExitCode.TESTS_FAILED,
            id="boolean-twice-every-item-halved",
        ),
        pytest.param(  # (before: "beyond --llm-max-drop 0.1", as 0.7 - 0.8 is -0.10000000000000009)
            "0.8", "0.7",
            "REGRESSION capitals: mean_q 0.800 -> 0.700 (delta -0.100, 95% CI -0.100..-0.100, "
            "n=40, within --llm-max-drop 0.1)",
            pytest.ExitCode.OK,
            id="drop-equal-to-max-drop",
        ),
    ],
)  # fmt: skip
def test_the_gate_judges_each_items_mean_and_a_drop_equal_to_the_tolerance(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    before: str,
    after: str,
    line: str,
    status: pytest.ExitCode,
) -> None:
    pytester.makeini("[pytest]\n")
    write_capitals(pytester)
    pytester.makepyfile(test_capitals=dedent(ENV_SCORED_SUITE))
    monkeypatch.setenv("SCORES", before)
    save_main(pytester)
    monkeypatch.setenv("SCORES", after)

    result = pytester.runpytest("--llm-baseline=main", "--llm-max-drop=0.1")

    assert result.ret == status
    result.stdout.fnmatch_lines([exact(line)])
    assert "McNemar" not in result.stdout.str()


# --- what changed, flips, unmatched --------------------------------------------------------------

PROMPT_SUITE = """\
    import pytest

    @pytest.mark.llm_dataset("capitals")
    def test_capital(item, llm, prompt, scorer):
        answer = llm.generate(prompt("ask").compile(question=item.input))
        assert scorer.exact_match(answer.text, item.expected_output, name="accuracy")
    """


def write_prompt(pytester: pytest.Pytester, text: str) -> None:
    pytester.makefile(".json", **{"prompts/ask": json.dumps({"type": "text", "prompt": text})})


def test_what_changed_lists_prompt_diff_dataset_versions_and_unmatched_items(
    pytester: pytest.Pytester, runs: Runs
) -> None:
    pytester.makeini("[pytest]\n")
    write_capitals(pytester, COUNTRIES[:6])
    write_prompt(pytester, "Answer briefly.\n{{question}}")
    pytester.makepyfile(test_capitals=dedent(PROMPT_SUITE))
    pytester.runpytest("--llm-run-name=before").assert_outcomes(passed=6)
    old_version = runs.latest()["datasets"]["capitals"]
    write_capitals(pytester, COUNTRIES[1:8])  # one item gone, two new
    write_prompt(pytester, "Answer in one word.\n{{question}}")

    result = pytester.runpytest("--llm-baseline=before")

    result.assert_outcomes(passed=7)
    new_version = runs.latest()["datasets"]["capitals"]
    gone = COUNTRIES[0].lower().replace(" ", "-")
    added = [c.lower().replace(" ", "-") for c in COUNTRIES[6:8]]
    result.stdout.fnmatch_lines(
        [
            "matched 5 case(s); only in baseline: 1; only in current: 2",
            f"  only in baseline: capitals/{gone}",
            f"  only in current: capitals/{added[0]}, capitals/{added[1]}",
            "what changed:",
            "  prompt ask: 1 -> 2",
            "    --- ask version 1",
            "    +++ ask version 2",
            "    @@ -1,2 +1,2 @@",
            "    -Answer briefly.",
            "    +Answer in one word.",
            "     {{question}}",
            f"  dataset capitals: {old_version} -> {new_version} (2 item(s) added, 1 removed, "
            "0 changed)",
        ],
        consecutive=True,
    )
    changes = runs.latest()["comparison"]["changes"]
    assert [(c["kind"], c["name"]) for c in changes] == [("prompt", "ask"), ("dataset", "capitals")]
    assert runs.latest()["comparison"]["unmatched"] == {
        "only_in_baseline": [f"capitals/{gone}"],
        "only_in_current": [f"capitals/{a}" for a in added],
    }


FLIP_SUITE = """\
    import pytest

    @pytest.mark.llm_dataset("capitals")
    def test_capital(item, llm, scorer):
        answer = llm.generate(item.input)
        assert scorer.exact_match(answer.text, item.expected_output, name="accuracy")
    """


def test_flipped_items_show_input_expected_both_outputs_and_score_changes(
    pytester: pytest.Pytester, runs: Runs
) -> None:
    pytester.makeini("[pytest]\n")
    write_capitals(pytester)
    pytester.makepyfile(test_capitals=dedent(FLIP_SUITE))
    pytester.runpytest("--llm-run-name=good")

    result = pytester.runpytest("--llm-baseline=good", f"--llm-model={DEGRADED}")

    current = runs.latest()
    failed = [i for i in current["items"] if i["outcome"] == "failed"]
    assert len(failed) > 5
    first = failed[0]
    answer = next(o for o in first["trace"]["observations"] if o["type"] == "generation")
    country = next(c for c in COUNTRIES if c.lower().replace(" ", "-") == first["item_id"])
    result.stdout.fnmatch_lines(
        [
            f"flipped items: {len(failed)} pass -> fail, 0 fail -> pass (showing 5)",
            exact(
                f"  pass -> fail  capitals/{first['item_id']}: input {first['input']!r}"
                f"  expected {CAPITALS[country]!r}"
            ),
            exact(
                f"      output {CAPITALS[country]!r} -> {answer['output']!r}"
                "  scores: accuracy true -> false"
            ),
        ],
        consecutive=True,
    )
    flips = current["comparison"]["flips"]
    assert [f["item_id"] for f in flips] == [i["item_id"] for i in failed]
    assert flips[0] | {"label": None} == {
        "label": None,
        "dataset": "capitals",
        "item_id": first["item_id"],
        "node_id": first["node_id"],
        "repeat": 0,
        "direction": "pass->fail",
        "baseline_outcome": "passed",
        "current_outcome": "failed",
        "input": first["input"],
        "expected_output": CAPITALS[country],
        "baseline_output": CAPITALS[country],
        "current_output": answer["output"],
        "scores": {"accuracy": [True, False]},
    }


def export(directory: Path, ref: str, target: Path) -> None:
    cli.main(["export", ref, "--store", str(directory / ".llmobs"), "-o", str(target)], StringIO())


def test_baseline_from_an_export_file_in_another_store_says_the_old_prompt_text_is_missing(
    pytester: pytest.Pytester, runs: Runs
) -> None:
    pytester.makeini("[pytest]\n")
    write_capitals(pytester, COUNTRIES[:4])
    write_prompt(pytester, "Answer briefly.\n{{question}}")
    pytester.makepyfile(test_capitals=dedent(PROMPT_SUITE))
    pytester.runpytest("--llm-run-name=ci").assert_outcomes(passed=4)
    baseline = runs.latest()
    export(pytester.path, "ci", pytester.path / "baseline.json")
    write_prompt(pytester, "Answer in one word.\n{{question}}")

    # A fresh store numbers the changed prompt 1 and has never seen the baseline's text.
    result = pytester.runpytest("--llm-baseline=baseline.json", "--llm-store=fresh")

    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(
        [
            f"*= llmobs comparison vs baseline baseline.json (run {baseline['id']}) =*",
            "what changed:",
            "  prompt ask: 1 -> 1 (the baseline came from a file; the store has no text of "
            "baseline version 1)",
        ]
    )
    stored = runs.latest("fresh")["comparison"]
    assert stored["baseline"]["source"] == "file"
    assert stored["baseline"]["path"] == "baseline.json"


def test_benchmark_smoke_prints_the_table_and_interpretation() -> None:
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "gate_power.py"
    done = subprocess.run(
        [sys.executable, str(script), "--quick"],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("errors"))
    assert lines[header].split() == [
        "errors",
        "n",
        "false",
        "alarms",
        "detect",
        "-2pt",
        "detect",
        "-5pt",
        "detect",
        "-10pt",
    ]
    rows = [line.split() for line in lines[header + 2 : header + 8]]
    assert [(r[0], r[1]) for r in rows] == [
        (model, n) for model in ("correlated", "independent") for n in ("50", "200", "1000")
    ]
    assert all(cell.endswith("%") for r in rows for cell in r[2:])
    assert any(line.startswith("items needed for 80% detection") for line in lines)
    assert "interpretation:" in lines
