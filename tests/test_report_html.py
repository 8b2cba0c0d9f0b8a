"""The HTML report: written after a real session (``--llm-report``, ini ``llm_report``) and by
``llmobs report``; self-contained, escaped, with thresholds, comparison, charts, items and
trace trees, and a cap on trace detail for large runs."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from textwrap import dedent
from typing import TYPE_CHECKING, Any

import numpy  # noqa: F401  (loaded once here: in-process sessions must not import it anew)
import pytest

from pytest_llmobs.cli import main as llmobs_main
from pytest_llmobs.compare.model import MetricComparison
from pytest_llmobs.compare.render import PAIRED_NOTE
from pytest_llmobs.compare.stats import PairedInterval, PairedTest
from pytest_llmobs.exports import dump_run
from pytest_llmobs.reporting.html import render_html
from pytest_llmobs.reporting.html_assets import JS
from pytest_llmobs.reporting.html_items import trace_tree
from pytest_llmobs.reporting.html_text import esc, marked, short
from pytest_llmobs.reporting.svg import histogram_bins

if TYPE_CHECKING:
    from conftest import Runs

HOSTILE = "<script>alert('owned')</script>\"><img src=x onerror=alert(1)>"
"""Text a model could return: it must reach the page as text, never as markup."""

SUITE = """\
    import pytest
    from pytest_llmobs import start_span

    @pytest.mark.llm_dataset("capitals", thresholds=["mean_accuracy >= 0.9"])
    def test_capital(item, llm, scorer):
        with start_span("lookup", input=item.input) as span:
            with start_span("retrieve-context", input={"k": 2}):
                pass
            answer = llm.generate(item.input)
            span.update(output=answer.text)
        scorer.score("confidence", 0.25 if item.id == "spain" else 0.9)
        scorer.score("tone", "curt" if item.id == "japan" else "friendly")
        expected = "Lisbon" if item.id == "spain" else item.expected_output
        assert scorer.exact_match(answer.text, expected, name="accuracy")

    def test_hostile_output(scorer):
        with start_span("render", input=HOSTILE) as span:
            span.update(output=HOSTILE)
        scorer.score("verdict", HOSTILE, comment=HOSTILE)

    def test_crashes():
        with start_span("explode"):
            raise RuntimeError("kaput: the tool call failed")

    @pytest.mark.skip(reason="not today")
    def test_skipped():
        pass

    @pytest.fixture
    def broken():
        raise ValueError("fixture broke")

    def test_setup_error(broken):
        pass
    """
"""A session with every outcome (4 passed, 2 failed, 1 skipped, 1 error), nested spans, numeric,
categorical and boolean scores, a failed threshold and hostile text."""

SUITE_OUTCOMES = {"passed": 4, "failed": 2, "skipped": 1, "errors": 1}


def write_suite(pytester: pytest.Pytester, capitals: list[dict[str, Any]]) -> None:
    """The `SUITE` test file (``capitals`` must already be written by its fixture)."""
    assert [c["id"] for c in capitals] == ["france", "japan", "italy", "spain"]
    pytester.makepyfile(test_suite=f"HOSTILE = {HOSTILE!r}\n" + dedent(SUITE))


class _Page(HTMLParser):
    """What the tests check about a page's markup: tags with their attributes, and text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def count(self, tag: str, css_class: str | None = None) -> int:
        return sum(
            1
            for name, attrs in self.tags
            if name == tag
            and (css_class is None or css_class in (attrs.get("class") or "").split())
        )


def parse(page: str) -> _Page:
    parser = _Page()
    parser.feed(page)
    parser.close()
    return parser


# --- written after a session ---------------------------------------------------------------------


def test_report_option_writes_the_run_as_one_html_file(
    pytester: pytest.Pytester,
    runs: Runs,
    capitals: list[dict[str, Any]],
    xdist_args: tuple[str, ...],
) -> None:
    write_suite(pytester, capitals)

    result = pytester.runpytest("--llm-report=out/report.html", *xdist_args)

    result.assert_outcomes(**SUITE_OUTCOMES)
    path = pytester.path / "out" / "report.html"
    result.stdout.fnmatch_lines([f"llmobs: HTML report written to {path}"])
    run = runs.latest()
    page = path.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert f"run {run['id']}" in page
    assert '<span class="badge big failed" id="run-status">failed</span>' in page
    parsed = parse(page)
    assert parsed.count("details", "item") == 8
    assert parsed.count("div", "item") == 0
    assert "mean_accuracy &gt;= 0.9" in page  # the failed threshold
    assert '<span class="badge fail">✗ fail</span>' in page
    assert run["datasets"]["capitals"] in page
    for node_id in (item["node_id"] for item in run["items"]):
        assert f'<span class="nodeid mono">{node_id}</span>' in page
    assert 'class="obs err"' in page  # the span that raised
    assert "RuntimeError: kaput: the tool call failed" in page


def test_report_in_the_ini_file_is_relative_to_it(pytester: pytest.Pytester) -> None:
    pytester.makefile(".ini", **{"conf/pytest": "[pytest]\nllm_report = reports/run.html\n"})
    pytester.makepyfile("def test_one():\n    pass\n")

    result = pytester.runpytest("-c", "conf/pytest.ini", f"--rootdir={pytester.path}")

    result.assert_outcomes(passed=1)
    assert (pytester.path / "conf" / "reports" / "run.html").is_file()


def test_report_without_a_store_is_built_from_the_in_memory_run(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile("def test_one(scorer):\n    scorer.score('quality', 0.5)\n")

    result = pytester.runpytest("--llm-no-store", "--llm-report=report.html")

    result.assert_outcomes(passed=1)
    page = (pytester.path / "report.html").read_text(encoding="utf-8")
    assert "test_report_without_a_store_is_built_from_the_in_memory_run.py::test_one" in page
    assert not (pytester.path / ".llmobs").exists()


def test_report_path_that_is_a_directory_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.mkdir("reports")
    pytester.makepyfile("def test_one():\n    pass\n")

    result = pytester.runpytest("--llm-report=reports")

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    reports = str(pytester.path / "reports")
    result.stderr.fnmatch_lines(
        [f"ERROR: --llm-report: {reports!r} is a directory; expected a file path"]
    )


@pytest.mark.parametrize("flag", ["--llm-report", "--llm-json"])
def test_an_unwritable_report_path_is_a_usage_error_before_any_test_runs(
    pytester: pytest.Pytester, flag: str
) -> None:
    pytester.makefile(".txt", blocker="a file where a directory should be")
    pytester.makepyfile("def test_one():\n    pass\n")

    result = pytester.runpytest(f"{flag}=blocker.txt/sub/report.out")

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    target, blocker = (
        pytester.path / "blocker.txt" / "sub" / "report.out",
        pytester.path / "blocker.txt",
    )
    result.stderr.fnmatch_lines(
        [
            f"ERROR: {flag}: cannot write {str(target)!r}: "
            f"{str(blocker)!r} is a file, not a directory"
        ]
    )
    result.stdout.no_fnmatch_line("*test_one*")


@pytest.mark.parametrize("flag", ["--llm-report", "--llm-json"])
def test_a_directory_that_refuses_files_is_a_usage_error_before_any_test_runs(
    pytester: pytest.Pytester, flag: str
) -> None:
    # (before: the suite ran, then the report failed at the end; /sys refuses new files even to
    # root, as a directory without write permission does to a user)
    if not Path("/sys").is_dir():
        pytest.skip("needs Linux's /sys, a directory where no file can be created")
    pytester.makepyfile("def test_one():\n    pass\n")

    result = pytester.runpytest(f"{flag}=/sys/report.out")

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"ERROR: {flag}: cannot write '/sys/report.out': Permission denied ('/sys')"]
    )
    result.stdout.no_fnmatch_line("*test_one*")


def test_checking_report_paths_leaves_nothing_behind(pytester: pytest.Pytester) -> None:
    # (before: the check made the reports' directories, even for a session that writes none)
    pytester.makepyfile("def test_one():\n    pass\n")

    result = pytester.runpytest("--co", "--llm-json=out/deep/run.json", "--llm-report=rep/x.html")

    assert result.ret == pytest.ExitCode.OK
    assert sorted(p.name for p in pytester.path.iterdir()) == [
        "test_checking_report_paths_leaves_nothing_behind.py"
    ]


def test_no_report_is_written_unless_asked(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_one():\n    pass\n")

    result = pytester.runpytest()

    result.assert_outcomes(passed=1)
    assert not list(pytester.path.rglob("*.html"))
    result.stdout.no_fnmatch_line("*report written*")


# --- the page ------------------------------------------------------------------------------------


@pytest.fixture
def suite_run(pytester: pytest.Pytester, runs: Runs, capitals: list[dict[str, Any]]) -> Any:
    write_suite(pytester, capitals)
    pytester.runpytest().assert_outcomes(**SUITE_OUTCOMES)
    return runs.latest()


def test_page_loads_nothing_from_anywhere(suite_run: dict[str, Any]) -> None:
    page = render_html(suite_run)
    parsed = parse(page)

    assert not re.search(r"https?:|//[a-z]", page.replace(HOSTILE_ESCAPED, ""))
    assert all("src" not in attrs for _, attrs in parsed.tags)
    assert [attrs.get("href", "#")[0] for _, attrs in parsed.tags if "href" in attrs] == ["#"] * 4
    assert parsed.count("link") == 0
    assert parsed.count("script") == 1
    assert parsed.count("style") == 1
    policy = next(
        attrs["content"]
        for tag, attrs in parsed.tags
        if tag == "meta" and attrs.get("http-equiv") == "Content-Security-Policy"
    )
    assert policy is not None
    assert "default-src 'none'" in policy
    digest = base64.b64encode(hashlib.sha256(JS.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in policy
    assert f"<script>{JS}</script>" in page


HOSTILE_ESCAPED = (
    "&lt;script&gt;alert(&#x27;owned&#x27;)&lt;/script&gt;&quot;&gt;&lt;img src=x"
    " onerror=alert(1)&gt;"
)


def test_untrusted_text_is_escaped_everywhere(suite_run: dict[str, Any]) -> None:
    page = render_html(suite_run)

    assert "<img" not in page
    assert page.count("<script>") == 1
    assert "alert(1)>" not in page
    assert HOSTILE_ESCAPED in page  # the span's input and output, the score, its comment
    parsed = parse(page)
    assert parsed.count("img") == 0
    hostile = next(
        attrs
        for tag, attrs in parsed.tags
        if tag == "details" and "test_hostile_output" in (attrs.get("data-search") or "")
    )
    assert "verdict=<script>alert('owned')</script>" in (hostile["data-search"] or "")


HIDDEN_ITEMS = [
    {"id": "nul", "input": "What is the capital of France?", "expected_output": "Par\u0000is"},
    {
        "id": "bidi",
        "input": "Capital of Italy? \u202eenoR\u202c \u2066x\u2069",
        "expected_output": "Rome",
    },
]
"""Items whose text the HTML parser would drop (NUL) or display reordered (bidi controls)."""

HIDDEN_SUITE = """\
    import pytest

    @pytest.mark.llm_dataset("hidden")
    def test_answer(item, llm, scorer):
        answer = llm.generate(item.input)
        scorer.exact_match(answer.text, item.expected_output, name="accuracy")
        scorer.score("label", "a\\x1fb\\x85c")
    """

RAW_HIDDEN = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)
"""Characters that must never reach the page as they are."""


def write_hidden_suite(pytester: pytest.Pytester) -> None:
    """`HIDDEN_SUITE` as ``test_hidden.py``, over the dataset ``hidden`` of `HIDDEN_ITEMS`."""
    lines = "".join(json.dumps(item) + "\n" for item in HIDDEN_ITEMS)
    pytester.makefile(".jsonl", **{"datasets/hidden": lines})
    pytester.makepyfile(test_hidden=dedent(HIDDEN_SUITE))


def test_control_and_bidi_characters_are_shown_as_escapes(
    pytester: pytest.Pytester, runs: Runs
) -> None:
    # (before: the raw NUL went into the page and the browser dropped it, so the item read
    # "expected Paris, output Paris" next to accuracy=false; bidi overrides went in raw too)
    write_hidden_suite(pytester)
    pytester.runpytest("--llm-report=r.html").assert_outcomes(passed=2)

    page = (pytester.path / "r.html").read_text(encoding="utf-8")

    assert RAW_HIDDEN.findall(page) == []
    assert '<dt>expected</dt><dd><pre>Par<span class="esc">\\x00</span>is</pre></dd>' in page
    assert "<dt>output</dt><dd><pre>Paris</pre></dd>" in page
    assert (
        'Capital of Italy? <span class="esc">\\u202e</span>enoR<span class="esc">\\u202c</span>'
        ' <span class="esc">\\u2066</span>x<span class="esc">\\u2069</span>'
    ) in page
    assert 'expected_output=Par<span class="esc">\\x00</span>is' in page  # the root's metadata
    # attributes, chips and chart labels hold no markup: the escape as plain text
    parsed = parse(page)
    search = [a["data-search"] or "" for t, a in parsed.tags if "data-search" in a]
    assert any("par\\x00is" in s for s in search)
    assert any("\\u202eenor\\u202c" in s for s in search)
    assert 'title="label=a\\x1fb\\x85c">label=a\\x1fb\\x85c</span>' in page
    assert "<title>a\\x1fb\\x85c: 2</title>" in page
    assert render_html(runs.latest()) == page  # `llmobs report` shows the same


def test_escaping_keeps_layout_characters_and_marks_only_in_element_content() -> None:
    text = "<a>\t\r\n\x00\x1b\x7f\x85\u200f\u202e\u2069 👩\u200d💻 é\u00a0x"

    assert esc(text) == (
        "&lt;a&gt;\t\r\n\\x00\\x1b\\x7f\\x85\\u200f\\u202e\\u2069 👩\u200d💻 é\u00a0x"
    )
    assert marked(text) == (
        '&lt;a&gt;\t\r\n<span class="esc">\\x00\\x1b\\x7f\\x85\\u200f\\u202e\\u2069</span>'
        " 👩\u200d💻 é\u00a0x"
    )
    assert short("a\x1f b \x0b\n c", 40) == "a\x1f b \x0b c"  # esc shows what short keeps


def test_summary_lists_datasets_prompts_thresholds_and_counts(
    suite_run: dict[str, Any],
) -> None:
    text = " ".join(" ".join(parse(render_html(suite_run)).text).split())

    assert f"run {suite_run['id']}" in text
    assert f"capitals {suite_run['datasets']['capitals']} 4 75.0%" in text
    assert "8 items 4 passed 2 failed 1 error 1 skipped" in text
    assert "1 of 1 threshold(s) failed." in text
    assert "✗ fail capitals mean_accuracy >= 0.9 0.750 4 llm_dataset marker" in text
    assert "No managed prompt was used." in text


def test_token_totals_say_how_many_answers_reported_usage(suite_run: dict[str, Any]) -> None:
    def summary(run: dict[str, Any]) -> str:
        return " ".join(" ".join(parse(render_html(run)).text).split())

    everyone = {**suite_run, "aggregates": {g: list(a) for g, a in suite_run["aggregates"].items()}}
    tokens = ("total_input_tokens", "total_output_tokens", "total_tokens")
    for group, entries in everyone["aggregates"].items():
        everyone["aggregates"][group] = [
            {**a, "n": a["n"] - 1} if a["name"] in tokens else a for a in entries
        ]
    assert "tokens 28 in / 4 out (usage reported by 3 of 4)" in summary(everyone)  # as printed
    nobody = {
        **suite_run,
        "aggregates": {
            g: [a for a in entries if a["name"] not in tokens]
            for g, entries in suite_run["aggregates"].items()
        },
    }
    assert "tokens unknown (no answer reported usage)" in summary(nobody)
    assert "usage reported by" not in summary(suite_run)


def test_scores_get_a_chart_each_per_dataset(suite_run: dict[str, Any]) -> None:
    page = render_html(suite_run)

    for label in (
        "accuracy in capitals: counts per value",
        "confidence in capitals: histogram of 4 values",
        "tone in capitals: counts per value",
        "verdict in all tests: counts per value",
    ):
        assert f'aria-label="{label}"' in page
    assert "<title>0.9–1: 3 items</title>" in page
    assert "<title>0.2–0.3: 1 item</title>" in page
    assert "<title>friendly: 3</title>" in page
    assert "<title>curt: 1</title>" in page


def test_items_have_filters_and_a_row_each(suite_run: dict[str, Any]) -> None:
    parsed = parse(render_html(suite_run))
    options = [(attrs.get("value"), tag) for tag, attrs in parsed.tags if tag == "option"]

    assert [value for value, _ in options] == [
        "",
        "passed",
        "failed",
        "error",
        "skipped",
        "",
        "d:capitals",
        "none",
    ]
    rows = [attrs for tag, attrs in parsed.tags if tag == "details" and "data-outcome" in attrs]
    assert sorted(r["data-outcome"] or "" for r in rows) == [
        "error", "failed", "failed", "passed", "passed", "passed", "passed", "skipped"
    ]  # fmt: skip
    assert [r["data-dataset"] for r in rows].count("d:capitals") == 4
    japan = next(r for r in rows if "[japan]" in (r["data-search"] or ""))
    search = japan["data-search"] or ""
    assert "tone=curt" in search
    assert "what is the capital of japan?" in search  # the input, lowercased for the filter


def test_trace_tree_nests_spans_by_parent(suite_run: dict[str, Any]) -> None:
    item = next(i for i in suite_run["items"] if i["item_id"] == "france")
    tree = trace_tree(item["trace"]["observations"])

    names = re.findall(r'<span class="obs-name">([^<]*)</span>|(<ul>|</ul>)', tree)
    shape = [name or marker for name, marker in names]
    assert shape == [
        "test_capital[france]",
        "<ul>",
        "lookup",
        "<ul>",
        "retrieve-context",
        "llm.generate",
        "</ul>",
        "</ul>",
        "</ul>",
    ]
    assert "prompt" not in tree or "v" in tree
    assert "mock-llm-v1 · 7 → 1 tokens" in tree


def test_a_tool_conversation_shows_its_calls_and_call_ids() -> None:
    # (before: the assistant's message read "null" and the calls and ids were nowhere)
    calls = [{"id": "call_1", "type": "function", "function": {"name": "get_weather"}}]
    generation = {
        "id": "g1",
        "parent_id": None,
        "type": "generation",
        "name": "llm.generate",
        "start_time": 0.0,
        "end_time": 1.0,
        "input": [
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "tool_calls": calls},  # (the OpenAI SDK leaves content out)
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        ],
        "output": "Sunny.",
    }

    tree = trace_tree([generation])
    text = " ".join(parse(tree).text)

    assert tree.count('<span class="role">') == 3  # three turns, not one blob of JSON
    assert "get_weather" in text and "call_1" in text
    assert "null" not in text


def test_trace_tree_survives_orphans_and_cycles() -> None:
    observations = [
        {"id": "a", "parent_id": "b", "name": "first", "start_time": 1.0, "end_time": 2.0},
        {"id": "b", "parent_id": "a", "name": "second", "start_time": 1.5, "end_time": 2.0},
        {"id": "c", "parent_id": "gone", "name": "orphan", "start_time": 3.0, "end_time": 4.0},
    ]

    tree = trace_tree(observations)

    assert re.findall(r'obs-name">([^<]*)<', tree) == ["orphan"]  # a cycle has no root
    assert trace_tree([]) == ""


def _synthetic_run(count: int, failed: set[int]) -> dict[str, Any]:
    items = []
    for index in range(count):
        observation = {
            "id": f"{index:016x}",
            "parent_id": None,
            "type": "span",
            "name": f"span-{index}",
            "start_time": 0.0,
            "end_time": 1.0,
        }
        items.append(
            {
                "node_id": f"test_big.py::test_case[{index}]",
                "outcome": "failed" if index in failed else "passed",
                "trace": {"id": f"{index:032x}", "observations": [observation], "scores": []},
            }
        )
    return {"id": "big", "name": "big", "status": "failed", "items": items}


def test_large_runs_keep_traces_for_the_first_items_failures_first() -> None:
    run = _synthetic_run(10, failed={8})

    page = render_html(run, max_traces=3)

    parsed = parse(page)
    assert parsed.count("details", "item") == 3
    assert parsed.count("div", "item") == 7
    assert re.findall(r'obs-name">(span-\d+)<', page) == ["span-0", "span-1", "span-8"]
    text = " ".join(" ".join(parsed.text).split())
    assert (
        "This run has 10 items: traces are included for 3 of them (failed and errored items"
        " first, then in run order); the other 7 are summary rows."
    ) in text


def test_long_values_are_cut_with_a_note() -> None:
    run = _synthetic_run(1, failed=set())
    run["items"][0]["trace"]["observations"][0]["output"] = "x" * 25_000

    page = render_html(run)

    assert "x" * 20_000 + '<span class="cut">… 5,000 more characters not shown</span>' in page
    assert "x" * 20_001 not in page


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        pytest.param([0.5, 0.5], [(0.5, 0.5, 2)], id="one-value"),
        pytest.param([0.05, 0.95, 1.0], [(0.0, 0.1, 1)] + [(0.0, 0.0, 0)] * 8 + [(0.9, 1.0, 2)],
                     id="unit-range"),
        pytest.param([1, 3, 3], [(0.5, 1.5, 1), (1.5, 2.5, 0), (2.5, 3.5, 2)], id="integers"),
        # (before: 0.3 / 0.1 is 2.9999999999999996, so 0.3, 0.6 and 0.7 were drawn a bar early)
        pytest.param([0.2, 0.3, 0.6, 0.7, 0.448],
                     [(0.0, 0.0, 0)] * 2 + [(0.2, 0.3, 1), (0.3, 0.4, 1), (0.4, 0.5, 1)]
                     + [(0.0, 0.0, 0), (0.6, 0.7, 1), (0.7, 0.8, 1)] + [(0.0, 0.0, 0)] * 2,
                     id="on-bar-starts"),
    ],
)  # fmt: skip
def test_histogram_bins(values: list[float], expected: list[tuple[float, float, int]]) -> None:
    bins = histogram_bins(values)

    assert [c for _, _, c in bins] == [c for _, _, c in expected]
    for (low, high, _), (want_low, want_high, count) in zip(bins, expected, strict=True):
        if count:
            assert (low, high) == pytest.approx((want_low, want_high))


# --- comparison ----------------------------------------------------------------------------------


COMPARISON = {
    "baseline": {
        "id": "20261101T000000-aaaaaa",
        "name": "release-1.2",
        "model": "mock-llm-v0",
        "status": "passed",
        "source": "baseline",
        "ref": "release-1.2",
        "path": None,
    },
    "current": {"id": "20261127T000000-bbbbbb", "name": "now", "status": "failed"},
    "verdict": "regression",
    "regressions": 1,
    "max_drop": 0.0,
    "matched": 4,
    "metrics": [
        {
            "group": "*",
            "name": "pass_rate",
            "baseline": 0.9,
            "current": 0.92,
            "delta": 0.02,
            "ci_low": -0.04,
            "ci_high": 0.08,
            "n": 4,
            "p_value": 1.0,
            "verdict": "no significant change",
            "fails_gate": False,
        },
        {
            "group": "capitals",
            "name": "mean_accuracy",
            "baseline": 0.95,
            "current": 0.75,
            "delta": -0.2,
            "ci_low": -0.35,
            "ci_high": -0.05,
            "n": 4,
            "p_value": 0.03,
            "verdict": "regression",
            "fails_gate": True,
        },
        {
            "group": "capitals",
            "name": "std_accuracy",
            "baseline": 0.1,
            "current": 0.4,
            "delta": 0.3,
            "verdict": "not tested",
            "fails_gate": False,
        },
    ],
    "changes": [
        {
            "kind": "model",
            "name": "model",
            "baseline": "mock-llm-v0",
            "current": "mock-llm-v1",
            "note": "",
            "diff": None,
        },
        {
            "kind": "prompt",
            "name": "ask",
            "baseline": 1,
            "current": 2,
            "note": "",
            "diff": "-Answer briefly.\n+Answer <b>at length</b>.",
        },
    ],
    "flips": [
        {
            "label": "capitals/spain",
            "dataset": "capitals",
            "item_id": "spain",
            "node_id": "test_a.py::test_x[spain]",
            "direction": "pass->fail",
            "baseline_outcome": "passed",
            "current_outcome": "failed",
            "input": "What is the capital of Spain?",
            "expected_output": "Madrid",
            "baseline_output": "Madrid",
            "current_output": "Lisbon",
            "scores": {"accuracy": [True, False]},
        },
        {
            "label": "capitals/peru",
            "node_id": "test_a.py::test_x[peru]",
            "direction": "fail->pass",
            "scores": {},
        },
    ],
    "unmatched": {"only_in_baseline": ["test_old.py::test_gone"], "only_in_current": []},
    "future_field": {"something": "new"},
}


def test_comparison_shows_deltas_intervals_and_what_changed() -> None:
    run = {**_synthetic_run(1, failed=set()), "comparison": COMPARISON}

    page = render_html(run)
    text = " ".join(" ".join(parse(page).text).split())

    assert '<section id="comparison">' in page
    assert "baseline release-1.2 · 20261101T000000-aaaaaa (mock-llm-v0, passed, from" in text
    assert "verdict regression regressions 1 fail the gate matched 4 cases in both runs" in text
    # worst first; the untested aggregate is folded away
    assert (
        "capitals mean_accuracy 0.950 0.750 -0.200 -0.350 … -0.050 n=4 p=0.030"
        " delta -0.200, interval -0.350 to -0.050 regression fails the gate"
        " all tests pass_rate 0.900 0.920 +0.020 -0.040 … +0.080 n=4 p=1.000"
        " delta +0.020, interval -0.040 to +0.080 no significant change"
        " 1 more aggregate(s) without a paired test"
    ) in text
    assert '<svg class="interval regressed"' in page
    assert '<span class="badge neutral">no significant change</span>' in page
    assert "model model mock-llm-v0 mock-llm-v1" in text
    assert "+Answer &lt;b&gt;at length&lt;/b&gt;." in page
    assert (
        "pass->fail capitals/spain What is the capital of Spain? Madrid Madrid Lisbon"
        " accuracy: true → false fail->pass capitals/peru"
    ) in text
    assert '<span class="badge improved">fail-&gt;pass</span>' in page
    assert "only in baseline (1) test_old.py::test_gone only in current (0) none" in text
    assert "future field something new" in text  # unknown keys are still shown


def test_an_incomplete_comparison_reads_as_a_failed_gate_saying_why() -> None:
    note = "compared run x is incomplete: interrupted (Ctrl-C, killed or crashed), 2 item(s) stored"
    comparison = {**COMPARISON, "verdict": "incomplete run", "regressions": 0, "incomplete": [note]}
    run = {**_synthetic_run(1, failed=set()), "comparison": comparison}

    page = render_html(run)
    text = " ".join(" ".join(parse(page).text).split())

    assert '<span class="badge regressed">incomplete run</span>' in page
    assert f"verdict incomplete run incomplete {note} regressions 0 fail the gate" in text


def test_comparison_p_values_read_as_in_the_terminal() -> None:
    """A significant p-value is ``p=1.2e-04`` (as ``McNemar p=1.2e-04`` in the terminal), not
    ``p=0.000``."""
    regression = {**COMPARISON["metrics"][1], "p_value": 0.00012}
    run = {**_synthetic_run(1, failed=set()), "comparison": {**COMPARISON, "metrics": [regression]}}

    text = " ".join(" ".join(parse(render_html(run)).text).split())

    assert "-0.350 … -0.050 n=4 p=1.2e-04 delta" in text


def metric_row(
    baseline: float,
    current: float,
    paired: tuple[float, float, float],
    *,
    fails_gate: bool = True,
) -> dict[str, Any]:
    """A regression's row as `Comparison.to_dict` writes it: mean_q of dataset d, with the
    paired change's (estimate, low, high) over 25 matched items."""
    return MetricComparison(
        group="d",
        name="mean_q",
        baseline=baseline,
        current=current,
        delta=current - baseline,
        higher_is_better=True,
        verdict="regression",
        fails_gate=fails_gate,
        test=PairedTest(PairedInterval(*paired, n=25)),
    ).to_dict()


PAIRED_MOVED = metric_row(0.8, 0.6066666666666667, (-0.072, -0.12, -0.024))
"""5 items removed, 5 new ones scoring 0, 6 matched items 0.8 -> 0.5: the aggregate's delta
(-0.193) is not the matched items' change (-0.072) that the interval and verdict are of."""


def compared(*rows: dict[str, Any], max_drop: float = 0.0) -> str:
    """The HTML report of a run compared with a baseline in ``rows``."""
    comparison = {**COMPARISON, "max_drop": max_drop, "metrics": list(rows)}
    return render_html({**_synthetic_run(1, failed=set()), "comparison": comparison})


def test_comparison_shows_the_paired_delta_its_interval_is_of() -> None:
    # (before: "-0.193" beside "-0.120 … -0.024", its point drawn outside the interval, no note)
    page = compared(PAIRED_MOVED)

    text = section_text(page, "comparison")
    assert "d mean_q 0.800 0.607 -0.193 (paired -0.072) -0.120 … -0.024 n=25 regression" in text
    (mark,) = re.findall(r'<svg class="interval.*?</svg>', page)
    assert 'aria-label="paired delta -0.072, interval -0.120 to -0.024"' in mark
    point = float(re.findall(r'<circle class="point" cx="([\d.]+)"', mark)[0])
    ends = [float(x) for x in re.findall(r'<line class="ci" x1="([\d.]+)"', mark)]
    assert min(ends) < point < max(ends)
    assert PAIRED_NOTE.partition("*paired*")[2] in text
    unmoved = compared(metric_row(0.8, 0.72, (-0.08, -0.12, -0.04)))
    assert "(paired" not in unmoved and "paired delta" not in unmoved
    assert PAIRED_NOTE.partition("*paired*")[2] not in unmoved
    assert 'aria-label="delta -0.080, interval -0.120 to -0.040"' in unmoved


def test_comparison_figures_read_as_the_verdict_beside_them() -> None:
    # A drop beyond --llm-max-drop 0.1 that rounds to it, and a non-zero bound that rounds to 0
    # (before: "-0.100" beside "fails the gate", and "-0.000"), as the terminal and markdown
    # print them (`MetricComparison.figures`).
    beyond = metric_row(0.9, 0.7996, (-0.1004, -0.1004, -0.1004))
    near_zero = metric_row(0.9, 0.88, (-0.02, -0.04, -0.0004), fails_gate=False)

    text = section_text(compared(beyond, near_zero, max_drop=0.1), "comparison")

    assert "mean_q 0.900 0.800 -0.1004 -0.1004 … -0.1004 n=25 regression fails the gate" in text
    assert "mean_q 0.900 0.880 -0.020 -0.040 … -0.0004 n=25 regression" in text
    assert "-0.000 " not in text


def test_comparison_from_a_real_baseline(
    pytester: pytest.Pytester, capitals: list[dict[str, Any]]
) -> None:
    pytester.makepyfile(
        dedent(
            """\
            import pytest

            @pytest.mark.llm_dataset("capitals")
            def test_capital(item, llm, scorer):
                answer = llm.generate(item.input)
                assert scorer.exact_match(answer.text, item.expected_output, name="accuracy")
            """
        )
    )
    pytester.runpytest("--llm-run-name=base").assert_outcomes(passed=4)

    result = pytester.runpytest(
        "--llm-model=mock-llm-v1?accuracy=0.5&seed=3", "--llm-baseline=base", "--llm-report=r.html"
    )

    page = (pytester.path / "r.html").read_text(encoding="utf-8")
    text = " ".join(" ".join(parse(page).text).split())
    assert '<a href="#comparison">Comparison</a>' in page
    assert "Comparison with baseline baseline base · " in text
    assert "capitals mean_accuracy 1 " in text
    assert "param accuracy 1 0.500" in text
    failed = result.parseoutcomes().get("failed", 0)
    assert text.count("pass->fail capitals/") == failed > 0


def test_no_comparison_no_section() -> None:
    page = render_html(_synthetic_run(1, failed=set()))

    assert 'id="comparison"' not in page
    assert 'href="#comparison"' not in page


@pytest.mark.parametrize(
    "comparison",
    [
        pytest.param({"metrics": {"mean_accuracy": {"baseline": 1, "current": 0.5}}}, id="dict"),
        pytest.param({"metrics": "not a table"}, id="scalar"),
        pytest.param({"metrics": [{"interval": [-1, 1]}, 3]}, id="odd-rows"),
        pytest.param({"metrics": [{"name": "x", "ci": {"low": -1, "high": 1}}]}, id="ci-dict"),
    ],
)
def test_comparison_of_another_shape_still_renders(comparison: dict[str, Any]) -> None:
    page = render_html({**_synthetic_run(1, failed=set()), "comparison": comparison})

    assert '<section id="comparison">' in page


# --- llmobs report ------------------------------------------------------------------------------


def test_cli_report_renders_a_stored_run(
    suite_run: dict[str, Any], pytester: pytest.Pytester
) -> None:
    out = io.StringIO()
    target = pytester.path / "later.html"

    code = llmobs_main(
        ["report", "latest", "--store", str(pytester.path / ".llmobs"), "-o", str(target)], out
    )

    assert code == 0
    assert out.getvalue() == (
        f"wrote the HTML report of run {suite_run['id']} (8 items) to {target}\n"
    )
    assert target.read_text(encoding="utf-8") == render_html(suite_run)


def test_cli_report_renders_an_exported_run(suite_run: dict[str, Any], tmp_path: Path) -> None:
    exported = tmp_path / "run.json"
    exported.write_text(dump_run(suite_run), encoding="utf-8")
    target = tmp_path / "from-export.html"

    code = llmobs_main(
        ["report", str(exported), "-o", str(target), "--max-traces", "2"], io.StringIO()
    )

    assert code == 0
    page = target.read_text(encoding="utf-8")
    assert parse(page).count("details", "item") == 2
    assert f"run {suite_run['id']}" in page


def test_cli_report_rejects_a_json_file_that_is_no_export(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"hello": "world"}), encoding="utf-8")

    code = llmobs_main(["report", str(other)], io.StringIO())

    assert code == 2
    assert capsys.readouterr().err == (
        f"llmobs: error: run file {str(other)!r} is not a pytest-llmobs run export (expected "
        "\"format\": 'pytest-llmobs/run'; write one with 'llmobs export RUN -o FILE')\n"
    )


# --- missing items ------------------------------------------------------------------------------


def test_report_lists_the_items_a_stopped_session_never_ran(
    pytester: pytest.Pytester, runs: Runs
) -> None:
    pytester.makepyfile(
        test_stop="def test_a():\n    assert False\n\ndef test_b():\n    pass\n\n"
        "def test_c():\n    pass\n"
    )

    result = pytester.runpytest("-x", "--llm-report=r.html")

    result.assert_outcomes(failed=1)
    run = runs.latest()
    missing = [entry["node_id"] for entry in run["missing"]]
    assert missing == ["test_stop.py::test_b", "test_stop.py::test_c"]
    page = (pytester.path / "r.html").read_text(encoding="utf-8")
    assert '<span class="badge failed">2 missing</span>' in page
    assert '<a href="#missing">Missing</a>' in page
    text = " ".join(" ".join(parse(page).text).split())
    assert "2 collected items missing from the run (no result arrived)." in text
    for entry in run["missing"]:
        assert f"{entry['node_id']} {entry['reason']}" in text
    assert render_html(run) == page  # as `llmobs report` writes it later


def test_a_long_missing_list_is_cut_with_a_count_of_the_rest() -> None:
    run = _synthetic_run(1, failed=set())
    run["missing"] = [
        {"node_id": f"test_big.py::test_lost[{index}]", "reason": "no result arrived"}
        for index in range(503)
    ]

    page = render_html(run)

    assert page.count("test_big.py::test_lost[") == 500
    assert "test_big.py::test_lost[499]" in page and "test_big.py::test_lost[500]" not in page
    text = " ".join(" ".join(parse(page).text).split())
    assert "503 collected items missing from the run" in text
    assert "… and 3 more: llmobs export RUN lists them all." in text


def test_a_run_without_missing_items_has_no_missing_section(suite_run: dict[str, Any]) -> None:
    page = render_html(suite_run)

    assert 'id="missing"' not in page and "missing</span>" not in page


# --- the terminal's figures ---------------------------------------------------------------------


def section_text(page: str, section: str) -> str:
    """The words of one section of ``page`` (its charts' titles left out), on one line."""
    start = page.index(f'<section id="{section}">')
    body = re.sub(r"<svg.*?</svg>", "", page[start : page.index("</section>", start)], flags=re.S)
    return " ".join(" ".join(parse(body).text).split())


def test_a_threshold_shows_the_figure_the_terminal_shows(
    pytester: pytest.Pytester, runs: Runs
) -> None:
    pytester.makepyfile(
        test_close="import pytest\n\n@pytest.mark.parametrize('v', [0.9, 0.9, 0.8988])\n"
        "def test_a(scorer, v):\n    scorer.score('similarity', v)\n"
    )

    result = pytester.runpytest("--llm-threshold=mean_similarity >= 0.9")

    # (before: the page said "✗ fail ... 0.900", a figure that meets the threshold)
    result.stdout.fnmatch_lines(["  ✗ mean_similarity >= 0.9  observed 0.8996000000000001 (n=3)"])
    text = section_text(render_html(runs.latest()), "thresholds")
    assert "✗ fail all tests mean_similarity >= 0.9 0.8996000000000001 3" in text


def test_huge_figures_are_written_with_an_exponent_as_on_the_terminal(
    pytester: pytest.Pytester, runs: Runs
) -> None:
    pytester.makepyfile(
        test_big="import pytest\n\n@pytest.mark.parametrize('v', [1e300, 3e300])\n"
        "def test_a(scorer, v):\n    scorer.score('big', v)\n"
    )

    result = pytester.runpytest("--llm-threshold=mean_big >= 0")

    result.stdout.fnmatch_lines(["  big  mean 2e+300 (95% CI 1e+300–3e+300)  sd 1.414e+300*"])
    page = render_html(runs.latest())
    # (before: cells of 301 and 613 digits, a page 16,942 px wide)
    assert max(len(cell) for cell in re.findall(r'<td class="num">([^<]*)</td>', page)) < 20
    assert "✓ pass all tests mean_big >= 0 2e+300 2" in section_text(page, "thresholds")
    stats = section_text(page, "scores")
    assert "big numeric 2 2e+300 1e+300 – 3e+300 1.414e+300 1e+300 2e+300 3e+300" in stats
    metric = {**COMPARISON["metrics"][0], "delta": 2e300, "ci_low": -1e299, "ci_high": 4e300}
    compared = render_html({**runs.latest(), "comparison": {**COMPARISON, "metrics": [metric]}})
    assert "+2e+300" in compared and "-1e+299 … +4e+300" in compared


@pytest.mark.parametrize(
    "labels",
    [
        pytest.param(["billing->refund", "billing->invoice", "tech\\login"], id="escaped-keys"),
        pytest.param(["-", ">", "a-", "\\", "\\->", "-\\>"], id="arrow-halves"),
    ],
)
def test_confusion_matrix_labels_read_as_recorded(
    pytester: pytest.Pytester, runs: Runs, labels: list[str]
) -> None:
    pytester.makepyfile(
        test_labels=f"import pytest\n\n@pytest.mark.parametrize('label', {labels!r})\n"
        "def test_l(scorer, label):\n    scorer.label(label, label, name='intent')\n"
    )
    pytester.runpytest().assert_outcomes(passed=len(labels))

    page = render_html(runs.latest())

    table = page[page.index('<table class="confusion"') :]
    table = table[: table.index("</table>")]
    # (before: the keys' escaped form, "billing-\>invoice" and "tech\\login")
    headers = [html_unescape(h) for h in re.findall(r'<th class="mono">([^<]*)</th>', table)]
    assert headers == sorted(labels) * 2
    assert table.count('class="hit"') == len(labels)


@pytest.mark.parametrize(
    "pair", [("a->b", "c"), ("tech\\login", "x"), ("-", ">"), ("a-", "->"), ("\\", "-\\>")]
)
def test_a_confusion_key_splits_into_the_labels_it_was_made_of(pair: tuple[str, str]) -> None:
    from pytest_llmobs.evaluators.run_level import confusion_key, split_confusion_key

    assert split_confusion_key(confusion_key(*pair)) == pair
    assert split_confusion_key("no arrow") is None


def html_unescape(text: str) -> str:
    import html

    return html.unescape(text)


def test_every_link_of_the_page_has_its_section(suite_run: dict[str, Any]) -> None:
    page = render_html(suite_run)

    links = re.findall(r'<a href="#([^"]+)"', page)
    assert links == ["summary", "thresholds", "scores", "items"]
    assert all(f' id="{anchor}"' in page for anchor in links)


@pytest.mark.parametrize(
    "suite",
    [
        pytest.param("def test_a():\n    pass\n", id="no-score"),
        pytest.param(
            "import pytest\n\n@pytest.mark.skip\ndef test_a(scorer):\n    scorer.score('x', 1)\n",
            id="all-skipped",
        ),
    ],
)
def test_a_run_without_scores_has_no_scores_section_nor_link(
    pytester: pytest.Pytester, runs: Runs, suite: str
) -> None:
    pytester.makepyfile(test_plain=suite)
    pytester.runpytest()

    page = render_html(runs.latest())

    # (before: a "Scores" link to a section the page did not have)
    assert 'id="scores"' not in page and 'href="#scores"' not in page
    links = re.findall(r'<a href="#([^"]+)"', page)
    assert all(f' id="{anchor}"' in page for anchor in links)
    counted = "1 100.0% (1/1)" if "skip" not in suite else "1, 1 skipped or xfailed –"
    assert f"all tests {counted}" in section_text(page, "summary")  # the run's pass rate


MIXED = """\
import pytest

@pytest.mark.llm_dataset("capitals")
def test_ds(item, llm, scorer):
    assert scorer.exact_match(llm.generate(item.input).text, item.expected_output)

@pytest.mark.parametrize("i", range(6))
def test_plain(llm, scorer, i):
    llm.generate("What is the capital of Peru?")
    scorer.score("ok", i != 0)
"""


def test_the_scores_show_the_groups_and_figures_of_the_terminal_summary(
    pytester: pytest.Pytester, runs: Runs, capitals: list[dict[str, Any]]
) -> None:
    pytester.makepyfile(test_mixed=MIXED)

    result = pytester.runpytest()

    lines = result.outlines
    whole = lines.index("all tests: 10 items  pass rate 100.0% (10/10)")
    generations = next(line for line in lines[whole:] if line.startswith("  generations 10"))
    assert "  ok           mean 0.833 (95% CI 0.436–0.970)  sd 0.408  range 0–1  n=6" in lines
    text = section_text(render_html(runs.latest()), "scores")
    # (before: a group "tests without a dataset" with no interval and no generations, and no
    # group of all tests)
    assert "dataset capitals version" in text and "· 4 items · pass rate 100.0% (4/4)" in text
    assert "all tests · 10 items · pass rate 100.0% (10/10)" in text
    assert "tests without a dataset" not in text
    all_tests = text[text.index("all tests · 10 items") :]
    assert "ok boolean 6 0.833 0.436 – 0.970 0.408 0 1 1" in all_tests
    assert " · ".join(generations.strip().split("  ")) in all_tests


def test_a_run_of_one_dataset_shows_its_figures_once(
    pytester: pytest.Pytester, runs: Runs, capitals: list[dict[str, Any]]
) -> None:
    pytester.makepyfile(test_ds=MIXED.split("@pytest.mark.parametrize")[0])
    pytester.runpytest().assert_outcomes(passed=4)

    text = section_text(render_html(runs.latest()), "scores")

    assert (
        "all tests · 4 items · pass rate 100.0% (4/4) The figures of dataset capitals above "
        "are the whole run's: it holds every item."
    ) in text
    assert text.count("exact_match boolean 4") == 1  # (as the terminal: "all tests" alone)


def test_repeats_and_flaky_items_are_shown_as_on_the_terminal(
    pytester: pytest.Pytester, runs: Runs, capitals: list[dict[str, Any]]
) -> None:
    pytester.makepyfile(
        test_flaky=dedent("""\
        import pytest

        calls = {}

        @pytest.mark.llm_dataset("capitals")
        def test_ds(item, scorer):
            calls[item.id] = calls.get(item.id, 0) + 1
            scorer.score("q", calls[item.id] / 10)
            assert item.id != "japan" or calls[item.id] != 2
        """)
    )

    result = pytester.runpytest("--llm-repeat=3")

    result.stdout.fnmatch_lines(
        [
            "repeats: up to 3 per item, 4 item(s) repeated, 1 flaky (25.0%)",
            "  score variance across repeats (mean over items): q 0.010",
            "  flaky capitals/japan: passed 2, failed 1 of 3 (flakiness 0.33)",
        ]
    )
    page = render_html(runs.latest())
    # (before: nothing of the repeats on the page)
    assert '<a href="#repeats">Repeats</a>' in page
    assert section_text(page, "repeats") == (
        "Repeats up to 3 per item, 4 item(s) repeated, 1 flaky (25.0%) score variance across "
        "repeats (mean over items): q 0.010 dataset item passed failed repeats flakiness "
        "capitals japan 2 1 3 0.33"
    )
