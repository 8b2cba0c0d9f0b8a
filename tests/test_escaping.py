"""User-derived text on the terminal and in the markdown comment: control characters escaped
(``\\x1b``, ``\\r``, ``\\n``, ``\\x00``), and no raw HTML, broken code span or table cell."""

from __future__ import annotations

import json
from collections.abc import Sequence
from io import StringIO
from textwrap import dedent
from typing import Any

import pytest

import pytest_llmobs.compare.gate  # noqa: F401  (loaded once here, not inside inner sessions)
from pytest_llmobs import cli
from pytest_llmobs.calibration import CalibrationReport
from pytest_llmobs.compare.model import Change, Comparison, FlippedItem, RunInfo
from pytest_llmobs.compare.render import comparison_lines, markdown
from pytest_llmobs.repeats import repeat_lines

RAW = ("\x1b", "\r", "\x00")
"""Characters that must never reach the terminal as they are."""


def llmobs(pytester: pytest.Pytester, *args: str) -> str:
    out = StringIO()
    cli.main([*args, "--store", str(pytester.path / ".llmobs")], out)
    return out.getvalue()


def assert_no_raw_controls(text: str) -> None:
    assert not [c for c in RAW if c in text]


def flip(label: str, **values: Any) -> FlippedItem:
    return FlippedItem(
        label=label,
        dataset="md",
        item_id=label.partition("/")[2],
        node_id=f"test_md.py::test_item[{label}]",
        repeat=0,
        direction="pass->fail",
        baseline_outcome="passed",
        current_outcome="failed",
        input=values.get("input", "q"),
        expected_output=values.get("expected_output", "z"),
        baseline_output=None,
        current_output=None,
    )


def comparison(
    *,
    flips: Sequence[FlippedItem] = (),
    changes: Sequence[Change] = (),
    only_in_current: Sequence[str] = (),
) -> Comparison:
    return Comparison(
        baseline=RunInfo("20260101T000000-aaaaaa", "base", "mock-llm-v1", "passed"),
        current=RunInfo("20260101T000001-bbbbbb", "cur", "mock-llm-v1", "failed"),
        metrics=[],
        changes=list(changes),
        flips=list(flips),
        matched=len(flips),
        only_in_baseline=[],
        only_in_current=list(only_in_current),
    )


# --- terminal -----------------------------------------------------------------------------------


def test_a_categorical_score_value_is_escaped_in_the_summary_and_in_llmobs_show(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini("[pytest]\n")
    pytester.makepyfile(
        test_label="""
        def test_label(scorer):
            scorer.score("verdict", "ok\\x1b[2K\\rFAKE LINE\\x1b[8m\\x00")
        """
    )
    escaped = "ok\\x1b[2K\\rFAKE LINE\\x1b[8m\\x00"

    result = pytester.runpytest()

    result.assert_outcomes(passed=1)
    assert f"  verdict  {escaped}: 1  n=1" in result.outlines
    assert_no_raw_controls(result.stdout.str())
    shown = llmobs(pytester, "show", "latest")
    assert f"  verdict  {escaped}: 1  n=1" in shown.splitlines()
    assert f"  passed   test_label.py::test_label  [verdict={escaped}]" in shown.splitlines()
    assert_no_raw_controls(shown)


def test_a_run_evaluator_error_is_escaped_in_the_summary(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\n")
    pytester.makeconftest(
        """
        import pytest_llmobs

        @pytest_llmobs.run_evaluator
        def broken(items):
            raise ValueError("bad \\x1b[2J\\rvalue")

        def pytest_llmobs_register_evaluators(registry, config):
            registry.add_run(broken)
        """
    )
    pytester.makepyfile(test_one="def test_one(llm):\n    llm.generate('hi')\n")

    result = pytester.runpytest()

    line = "  ERROR run evaluator 'broken' failed on the run: ValueError: bad \\x1b[2J\\rvalue"
    assert line in result.outlines
    assert_no_raw_controls(result.stdout.str())


FLIPPING_SUITE = """\
    import os
    import pytest

    @pytest.mark.llm_dataset("inj")
    def test_item(item, scorer):
        ok = os.environ.get("FLIP") != "1"
        scorer.score("good", ok)
        assert ok
    """


def test_flipped_item_ids_are_escaped_in_the_session_comparison_and_llmobs_compare(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeini("[pytest]\n")
    ids = ["\x1b[31mred\x1b[0m", "new\nline"]
    rows = [json.dumps({"id": i, "input": "x", "expected_output": "y"}) for i in ids]
    pytester.makefile(".jsonl", **{"datasets/inj": "\n".join(rows)})
    pytester.makepyfile(test_flip=dedent(FLIPPING_SUITE))
    pytester.runpytest("--llm-save-baseline=before").assert_outcomes(passed=2)
    monkeypatch.setenv("FLIP", "1")
    expected = [
        "  pass -> fail  inj/\\x1b[31mred\\x1b[0m: input 'x'  expected 'y'",
        "  pass -> fail  inj/new\\nline: input 'x'  expected 'y'",
    ]

    result = pytester.runpytest("--llm-baseline=before")

    result.assert_outcomes(failed=2)
    assert [line for line in result.outlines if line.startswith("  pass -> fail")] == expected
    assert_no_raw_controls(result.stdout.str())
    text = llmobs(pytester, "compare", "before", "latest")
    assert [line for line in text.splitlines() if line.startswith("  pass -> fail")] == expected
    assert_no_raw_controls(text)


def test_the_flaky_list_escapes_item_ids() -> None:
    row = {"passed": 1, "failed": 1, "repeats": 2, "flakiness": 0.5, "flaky": True}
    summary = {
        "max_repeats": 2,
        "items": [{"dataset": "f", "item_id": "new\nline\x1b[31mRED\r", **row}],
    }

    lines = repeat_lines(summary)

    item = "f/new\\nline\\x1b[31mRED\\r"
    assert lines[-1] == f"  flaky {item}: passed 1, failed 1 of 2 (flakiness 0.50)"
    assert_no_raw_controls("\n".join(lines))


def test_calibration_escapes_labels_verdicts_and_item_ids() -> None:
    report = CalibrationReport(
        score="cat",
        data_type="CATEGORICAL",
        n=1,
        accuracy=0.0,
        kappa=0.0,
        confusion={"\x1b[31mred": {"\x1b[2J": 1}},
        unmatched_labels=["new\nline"],
        unlabelled_items=["\x1b[31mred\x1b[0m", "new"],
    )

    lines = report.lines()

    assert lines[-4:] == [
        "  human \\ auto   \\x1b[2J",
        "  \\x1b[31mred          1",
        "1 label(s) match no item: new\\nline",
        "2 scored item(s) have no label: \\x1b[31mred\\x1b[0m, new",
    ]


PROMPT_DIFF = "\n".join(
    [
        "--- chat version 1",
        "+++ chat version 2",
        "@@ -1 +1 @@",
        "-old",
        "+\x1b[2J\x1b[31mNEW\x00",
        "+```",
        "+<img src=x>",
    ]
)


def test_the_prompt_diff_is_escaped_on_the_terminal() -> None:
    change = Change("prompt", "chat", "1", "2", diff=PROMPT_DIFF)

    lines = comparison_lines(comparison(changes=[change]))

    assert "    +\\x1b[2J\\x1b[31mNEW\\x00" in lines
    assert_no_raw_controls("\n".join(lines))


# --- markdown -----------------------------------------------------------------------------------


def test_markdown_cells_escape_html_pipes_and_code_span_fences() -> None:
    flips = [
        flip(
            "md/a`<img src=x onerror=alert(1)>`|b",
            input="<!-- hide",
            expected_output="<img src=https://evil.example/p.png>|x & [y](z)",
        ),
        flip("md/c\\|<b>d"),
    ]

    lines = markdown(comparison(flips=flips, only_in_current=["`x`"])).splitlines()

    assert lines[lines.index("|---|---|---|---|---|---|---|") + 1 :][:2] == [
        "| ``md/a`<img src=x onerror=alert(1)>`\\|b`` | pass → fail | '&lt;!-- hide' "
        "| '&lt;img src=https://evil.example/p.png&gt;\\|x &amp; \\[y\\](z)' | null | null |  |",
        "| `md/c\\\\\\|<b>d` | pass → fail | 'q' | 'z' | null | null |  |",
    ]
    assert "- only in current (1): `` `x` ``" in lines


def test_markdown_prompt_diff_gets_a_fence_no_line_of_it_closes() -> None:
    change = Change("prompt", "chat<i>", "1", "2", diff=PROMPT_DIFF)

    text = markdown(comparison(changes=[change]))

    assert "- prompt chat&lt;i&gt;: 1 -> 2\n\n  ````diff\n" in text
    assert "  +\\x1b[2J\\x1b[31mNEW\\x00\n  +```\n  +<img src=x>\n  ````\n" in text
    assert_no_raw_controls(text)
