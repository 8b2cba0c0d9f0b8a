"""``--llm-json`` (the run as ``llmobs export`` writes it) and scores as JUnit XML properties
(``--junitxml``), with and without xdist."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from textwrap import dedent
from typing import TYPE_CHECKING, Any

import numpy  # noqa: F401  (loaded once here: in-process sessions must not import it anew)
import pytest

from pytest_llmobs.exports import export_run
from pytest_llmobs.reporting.junit import junit_properties

if TYPE_CHECKING:
    from conftest import Runs

SCORED_SUITE = """\
    import pytest

    @pytest.mark.llm_dataset("capitals")
    def test_capital(item, llm, scorer):
        answer = llm.generate(item.input)
        scorer.score("confidence", 0.123456789)
        scorer.score("tone", "friendly")
        assert scorer.exact_match(answer.text, item.expected_output, name="accuracy")

    def test_plain(scorer):
        scorer.score("resolved", False)

    def test_unscored():
        pass
    """


# --- --llm-json ----------------------------------------------------------------------------------


def test_json_option_writes_the_run_in_the_export_format(
    pytester: pytest.Pytester,
    runs: Runs,
    capitals: list[dict[str, Any]],
    xdist_args: tuple[str, ...],
) -> None:
    pytester.makepyfile(dedent(SCORED_SUITE))

    result = pytester.runpytest("--llm-json=artifacts/run.json", *xdist_args)

    result.assert_outcomes(passed=len(capitals) + 2)
    path = pytester.path / "artifacts" / "run.json"
    result.stdout.fnmatch_lines([f"llmobs: JSON run written to {path}"])
    written = json.loads(path.read_text(encoding="utf-8"))
    snapshots = written.pop("snapshots")
    assert written == json.loads(json.dumps(export_run(runs.latest())))
    (dataset,) = snapshots["datasets"]  # what a merge or upload where the store is not needs
    assert (dataset["name"], dataset["version"]) == ("capitals", written["datasets"]["capitals"])
    assert [i["id"] for i in dataset["items"]] == [c["id"] for c in capitals]
    assert written["format"] == "pytest-llmobs/run"
    assert written["status"] == "passed"
    assert len(written["items"]) == len(capitals) + 2


def test_json_in_the_ini_file_and_next_to_a_report(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nllm_json = out/run.json\nllm_report = out/run.html\n")
    pytester.makepyfile("def test_one():\n    pass\n")

    result = pytester.runpytest()

    result.assert_outcomes(passed=1)
    assert json.loads((pytester.path / "out" / "run.json").read_text("utf-8"))["items"]
    assert (pytester.path / "out" / "run.html").is_file()
    result.stdout.fnmatch_lines(
        ["llmobs: HTML report written to *", "llmobs: JSON run written to *"]
    )


def test_json_and_report_are_written_for_a_failed_run(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_one():\n    assert False\n")

    result = pytester.runpytest("--llm-json=run.json")

    result.assert_outcomes(failed=1)
    written = json.loads((pytester.path / "run.json").read_text("utf-8"))
    assert written["status"] == "failed"
    assert written["items"][0]["outcome"] == "failed"


def test_a_report_that_cannot_be_written_fails_the_session(pytester: pytest.Pytester) -> None:
    # the place checked at start-up is taken while the tests run
    pytester.makepyfile(
        """
        import shutil

        def test_one(request):
            taken = request.config.rootpath / "taken"
            shutil.rmtree(taken, ignore_errors=True)
            taken.write_text("a file, not a directory", encoding="utf-8")
        """
    )

    result = pytester.runpytest("--llm-json=taken/run.json", "--llm-report=run.html")

    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # a CI job must not pass without it
    result.stdout.fnmatch_lines(
        [
            "llmobs: HTML report written to *run.html",
            "llmobs: could not write the JSON run to *taken/run.json: *",
            "llmobs: a report was not written: the session fails",
        ]
    )


STORE_REFUSING_ITEMS = """\
    import os
    import sqlite3

    def test_first(scorer):
        scorer.score("accuracy", 1.0)

    def test_fills_the_store(scorer, request):
        if os.environ.get("FILL_THE_STORE"):  # every later item is refused, as on a full disk
            db = sqlite3.connect(request.config.rootpath / ".llmobs" / "llmobs.db")
            with db:
                db.execute(
                    "CREATE TRIGGER full BEFORE INSERT ON items"
                    " BEGIN SELECT RAISE(FAIL, 'database or disk is full'); END"
                )
            db.close()
        scorer.score("accuracy", 0.5)

    def test_after(scorer):
        scorer.score("accuracy", 0.0)
    """


def test_reports_and_the_comparison_hold_the_items_a_failing_store_refused(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_store=dedent(STORE_REFUSING_ITEMS))
    args = ("--llm-model=mock-llm-v1", "-p", "no:cacheprovider")
    baseline = pytester.runpytest_subprocess(*args, "--llm-json=baseline.json")
    baseline.assert_outcomes(passed=3)
    monkeypatch.setenv("FILL_THE_STORE", "1")

    result = pytester.runpytest_subprocess(
        *args, "--llm-json=run.json", "--llm-report=run.html", "--llm-baseline=baseline.json"
    )

    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    result.assert_outcomes(passed=3)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    written = json.loads((pytester.path / "run.json").read_text("utf-8"))
    assert [item["node_id"] for item in written["items"]] == [
        "test_store.py::test_first",
        "test_store.py::test_fills_the_store",
        "test_store.py::test_after",
    ]
    assert written["status"] == "failed"
    assert written["errors"] == [
        f"the store failed ({pytester.path / '.llmobs' / 'llmobs.db'}: database or disk is "
        "full): 1 of 3 items stored; the run's figures count them all"
    ]
    assert written["comparison"]["matched"] == 3
    assert "test_store.py::test_after" in (pytester.path / "run.html").read_text("utf-8")


# --- JUnit properties ----------------------------------------------------------------------------


def case_properties(path: Path) -> dict[str, list[tuple[str, str]]]:
    """``classname.name`` of each testcase → its (property name, value) pairs, in order."""
    root = ET.parse(path).getroot()
    cases = {}
    for case in root.iter("testcase"):
        key = f"{case.get('classname')}.{case.get('name')}"
        cases[key] = [
            (str(p.get("name")), str(p.get("value"))) for p in case.iterfind("properties/property")
        ]
    return cases


def test_scores_become_junit_properties(
    pytester: pytest.Pytester,
    runs: Runs,
    capitals: list[dict[str, Any]],
    xdist_args: tuple[str, ...],
) -> None:
    pytester.makepyfile(test_scored=dedent(SCORED_SUITE))

    result = pytester.runpytest("--junitxml=junit.xml", *xdist_args)

    result.assert_outcomes(passed=len(capitals) + 2)
    cases = case_properties(pytester.path / "junit.xml")
    traces = {item["node_id"]: item["trace"]["id"] for item in runs.latest()["items"]}
    assert len(cases) == len(capitals) + 2
    for capital in capitals:
        node_id = f"test_scored.py::test_capital[{capital['id']}]"
        assert cases[f"test_scored.test_capital[{capital['id']}]"] == [
            ("llmobs.trace_id", traces[node_id]),
            ("llmobs.dataset", "capitals"),
            ("llmobs.item_id", capital["id"]),
            ("llmobs.score.confidence", "0.123456789"),
            ("llmobs.score.tone", "friendly"),
            ("llmobs.score.accuracy", "true"),
        ]
    assert cases["test_scored.test_plain"] == [
        ("llmobs.trace_id", traces["test_scored.py::test_plain"]),
        ("llmobs.score.resolved", "false"),
    ]
    assert cases["test_scored.test_unscored"] == [
        ("llmobs.trace_id", traces["test_scored.py::test_unscored"])
    ]


def test_junit_properties_are_masked_as_the_store_is(
    pytester: pytest.Pytester, runs: Runs, xdist_args: tuple[str, ...]
) -> None:
    # (before, a serial session wrote the raw e-mail address into junit.xml)
    pytester.makepyfile(
        test_masked="def test_one(scorer):\n    scorer.score('fb', 'mail carol@example.com')\n"
    )

    result = pytester.runpytest("--junitxml=junit.xml", *xdist_args)

    result.assert_outcomes(passed=1)
    properties = dict(case_properties(pytester.path / "junit.xml")["test_masked.test_one"])
    assert properties["llmobs.score.fb"] == "mail <EMAIL>"
    (item,) = runs.latest()["items"]
    assert item["trace"]["scores"][0]["value"] == "mail <EMAIL>"


def test_junit_properties_sit_next_to_record_property(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\njunit_family = xunit1\n")
    pytester.makepyfile(
        test_both=dedent(
            """\
            def test_both(record_property, scorer):
                record_property("owner", "search-team")
                scorer.score("quality", 1)
            """
        )
    )

    result = pytester.runpytest("--junitxml=junit.xml")

    result.assert_outcomes(passed=1)
    names = [
        name for name, _ in case_properties(pytester.path / "junit.xml")["test_both.test_both"]
    ]
    assert names == ["owner", "llmobs.trace_id", "llmobs.score.quality"]


def test_no_junit_properties_without_junitxml(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        dedent(
            """\
            SEEN = []

            def pytest_runtest_logreport(report):
                if report.when == "teardown":
                    SEEN.append(list(report.user_properties))

            def pytest_sessionfinish(session):
                assert SEEN == [[]], SEEN
            """
        )
    )
    pytester.makepyfile("def test_one(scorer):\n    scorer.score('quality', 1)\n")

    result = pytester.runpytest()

    assert result.ret == pytest.ExitCode.OK


@pytest.mark.parametrize(
    ("value", "shown"),
    [(True, "true"), (False, "false"), (3, "3"), (0.1, "0.1"), ("a <b>", "a <b>")],
)
def test_property_values(value: object, shown: str) -> None:
    payload = {"trace": {"id": "t", "scores": [{"name": "s", "value": value}]}}

    assert junit_properties(payload) == [("llmobs.trace_id", "t"), ("llmobs.score.s", shown)]
