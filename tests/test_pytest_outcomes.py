"""A stored test's outcome, error and duration agree with what pytest reports: subtests, a
teardown failing after the test, and a session pytest fails outside the stored tests (also one
stopped by -x)."""

from __future__ import annotations

import io
import json
from textwrap import dedent
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import Runs

SUBTESTS = """\
    def test_capitals(subtests, scorer):
        for country, answer in [("France", "Paris"), ("Peru", "Berlin")]:
            with subtests.test(msg=country):
                assert scorer.exact_match(answer, "Paris", name="acc")

    def test_other():
        pass
    """

UNITTEST_SUBTESTS = """\
    import unittest

    class TestNumbers(unittest.TestCase):
        def test_small(self):
            for i in range(3):
                with self.subTest(i=i):
                    self.assertLess(i, 1)
    """


@pytest.mark.skipif(
    not hasattr(pytest, "Subtests"), reason="pytest's own subtests fixture came with pytest 9"
)
@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_a_test_with_a_failed_subtest_is_stored_failed_as_pytest_reports_it(
    pytester: pytest.Pytester, runs: Runs, xdist: list[str]
) -> None:
    # (before: stored passed, the pass rate 100% and a `pass_rate >= 1` gate green, while
    # pytest said "FAILED ... contains 1 failed subtest")
    pytester.makepyfile(test_sub=dedent(SUBTESTS))

    result = pytester.runpytest("--llm-model=mock-llm-v1", "--llm-threshold=pass_rate >= 1", *xdist)

    result.stdout.fnmatch_lines(["*FAILED test_sub.py::test_capitals - contains 1 failed subtest*"])
    result.stdout.fnmatch_lines(["*pass_rate >= 1  observed 0.500 (n=2)*"])
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    items = {item["node_id"]: item for item in runs.latest()["items"]}
    failed = items["test_sub.py::test_capitals"]
    assert failed["outcome"] == "failed"
    assert failed["error"].startswith("AssertionError")
    assert [s["value"] for s in failed["trace"]["scores"]] == [True, False]
    assert items["test_sub.py::test_other"]["outcome"] == "passed"


def test_unittest_subtest_failures_fail_the_stored_test(
    pytester: pytest.Pytester, runs: Runs
) -> None:
    pytester.makepyfile(test_unit=dedent(UNITTEST_SUBTESTS))

    result = pytester.runpytest("--llm-model=mock-llm-v1")

    assert result.ret == pytest.ExitCode.TESTS_FAILED
    (item,) = runs.latest()["items"]
    assert item["outcome"] == "failed"
    assert item["error"] == "AssertionError: 1 not less than 1"


def test_a_subtest_skipped_in_a_passing_test_leaves_it_passed_without_a_skip_reason(
    pytester: pytest.Pytester, runs: Runs
) -> None:
    pytester.makepyfile(
        test_skip="""
        import pytest

        def test_some(subtests):
            with subtests.test(msg="later"):
                pytest.skip("not yet")
            with subtests.test(msg="now"):
                pass
        """
    )

    result = pytester.runpytest("--llm-model=mock-llm-v1")

    assert result.ret == pytest.ExitCode.OK
    (item,) = runs.latest()["items"]
    assert (item["outcome"], item["skip_reason"], item["error"]) == ("passed", None, None)


def test_a_teardown_failing_after_the_test_failed_is_kept_in_the_error(
    pytester: pytest.Pytester, runs: Runs
) -> None:
    # (before: pytest reported the failure and the teardown's error; the item kept the first
    # only, and "teardown boom" was nowhere in the run)
    pytester.makepyfile(
        test_td="""
        import pytest

        @pytest.fixture
        def resource():
            yield
            raise RuntimeError("teardown boom")

        def test_fails(resource):
            assert 1 == 2, "wrong sum"
        """
    )

    result = pytester.runpytest("--llm-model=mock-llm-v1")

    result.assert_outcomes(failed=1, errors=1)
    (item,) = runs.latest()["items"]
    assert item["outcome"] == "error"
    first_line = item["error"].splitlines()[0]
    assert first_line == (
        "AssertionError: wrong sum (then its teardown failed: RuntimeError: teardown boom)"
    )


def test_a_run_pytest_fails_outside_its_tests_says_why(
    pytester: pytest.Pytester, runs: Runs
) -> None:
    # (before: stored "failed", every test passed, every gate green, and no reason anywhere)
    pytester.makepyfile(test_good="def test_good():\n    pass\n")
    pytester.makepyfile(test_broken="import nonexistent_module_for_this_test\n")

    result = pytester.runpytest("--llm-model=mock-llm-v1", "--continue-on-collection-errors")

    result.assert_outcomes(passed=1, errors=1)
    reason = (
        "pytest counted 1 failure(s) outside the tests stored in this run (a collection error, "
        "say): see its summary"
    )
    result.stdout.fnmatch_lines([f"*ERROR {reason}"])
    run = runs.latest()
    assert run["status"] == "failed"
    assert run["errors"] == [reason]


@pytest.mark.parametrize(
    "modules",
    [["test_broken.py"], ["test_broken.py", "test_good.py"]],
    ids=["collected-to-the-end", "stopped-while-collecting"],
)
def test_a_collection_error_under_x_is_an_error_of_the_run_and_fails_a_merge(
    pytester: pytest.Pytester, capsys: pytest.CaptureFixture[str], modules: list[str]
) -> None:
    # (before: -x made it a "stopped" session: no errors, nothing missing, only the ini
    # threshold failed, and `llmobs merge` took it for a shard whose selection ran nothing)
    from pytest_llmobs.cli import main

    pytester.makeini("[pytest]\nllm_threshold = pass_rate >= 1\n")
    pytester.makepyfile(test_good="def test_good():\n    pass\n")
    pytester.makepyfile(test_broken="def test_broken(:\n    pass\n")
    common = ["--llm-model=mock-llm-v1", "--llm-run-id=ci-1"]
    pytester.runpytest(*common, "--llm-store=good", "--llm-json=good.json", "test_good.py")
    stopped = pytester.runpytest(*common, "--llm-store=broken", "-x", *modules)
    assert stopped.ret in (pytest.ExitCode.INTERRUPTED, pytest.ExitCode.TESTS_FAILED)
    capsys.readouterr()

    assert main(["export", "ci-1", "--store=broken", "-o", "broken.json"]) == 0

    broken = json.loads((pytester.path / "broken.json").read_text(encoding="utf-8"))
    reason = (
        "pytest counted 1 failure(s) outside the tests stored in this run (a collection error, "
        "say): see its summary"
    )
    assert (broken["status"], broken["items"], broken["errors"]) == ("failed", [], [reason])
    capsys.readouterr()
    assert main(["merge", "good.json", "broken.json"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert (
        "  ERROR shard broken.json failed: its session failed with no items (a collection "
        "error?)" in out
    )


@pytest.mark.parametrize("replace", [False, True], ids=["deleted", "replaced"])
def test_a_store_deleted_or_replaced_while_the_session_runs_fails_the_run_saying_so(
    pytester: pytest.Pytester, replace: bool
) -> None:
    # (before: "-> passed", "stored in .llmobs/llmobs.db" and exit 0, with the run in no file)
    pytester.makepyfile(
        test_store=f"""
        import os, sqlite3

        def test_first(scorer):
            scorer.score("ok", True)

        def test_removes_the_store():
            for suffix in ("", "-wal", "-shm"):
                if os.path.exists(".llmobs/llmobs.db" + suffix):
                    os.remove(".llmobs/llmobs.db" + suffix)
            if {replace}:
                sqlite3.connect(".llmobs/llmobs.db").execute("CREATE TABLE other (x)")
        """
    )

    result = pytester.runpytest("--llm-model=mock-llm-v1")

    result.assert_outcomes(passed=2)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    moved = "was replaced by another file" if replace else "was deleted"
    store = pytester.path / ".llmobs" / "llmobs.db"
    result.stdout.fnmatch_lines(
        [
            f"*ERROR the store {store} {moved} while this run was recorded: its 2 item(s) went "
            "to the old file and are not in the store (an --llm-json or --llm-report file keeps "
            "them)"
        ]
    )


DUPLICATES = """\
    import os

    SEEN = set()

    def test_twice(scorer):
        second = "x" in SEEN
        SEEN.add("x")
        scorer.score("ok", not (second and os.environ.get("BREAK_SECOND")))
    """


def test_the_gate_compares_each_copy_of_a_test_collected_twice(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # (before: the second copy was dropped from the comparison: its flip was never seen)
    pytester.makepyfile(test_dup=dedent(DUPLICATES))
    twice = ["--llm-model=mock-llm-v1", "test_dup.py", "test_dup.py", "--keep-duplicates"]
    pytester.runpytest_subprocess(*twice, "--llm-run-name=base").assert_outcomes(passed=2)

    monkeypatch.setenv("BREAK_SECOND", "1")
    result = pytester.runpytest_subprocess(*twice, "--llm-baseline=base")

    result.stdout.fnmatch_lines(
        [
            "matched 2 case(s); only in baseline: 0; only in current: 0",
            "flipped items: 1 pass -> fail, 0 fail -> pass",
            "  pass -> fail  test_dup.py::test_twice (copy 2): *",
            "*scores: ok true -> false",
        ]
    )


def test_an_export_of_a_test_collected_twice_merges_with_both_copies(
    pytester: pytest.Pytester,
) -> None:
    # (before: "item ... is in dup.json and in dup.json with different results")
    from pytest_llmobs.cli import main

    pytester.makepyfile(test_dup=dedent(DUPLICATES))
    twice = ["--llm-model=mock-llm-v1", "test_dup.py", "test_dup.py", "--keep-duplicates"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BREAK_SECOND", "1")  # the copies differ
        pytester.runpytest_subprocess(*twice, "--llm-json=dup.json").assert_outcomes(passed=2)

    merged = pytester.path / "merged.json"
    out = io.StringIO()
    code = main(["merge", str(pytester.path / "dup.json"), "-o", str(merged)], out)

    assert code == 0, out.getvalue()
    items = json.loads(merged.read_text())["items"]
    assert [s["value"] for i in items for s in i["trace"]["scores"]] == [True, False]


@pytest.mark.parametrize(
    ("stop", "scope"),
    [("raise KeyboardInterrupt", "function"), ('pytest.exit("bye")', "session")],
    ids=["ctrl-c", "pytest.exit-session-fixture"],
)
def test_a_fixture_scoring_in_teardown_after_a_stop_leaves_the_run_interrupted(
    pytester: pytest.Pytester, runs: Runs, stop: str, scope: str
) -> None:
    # (before: a NoActiveTraceError traceback, exit 1, no summary: pytest tears the stopped
    # test's fixtures down when the session ends, with no trace active)
    pytester.makepyfile(
        test_stop=f"""
        import pytest

        @pytest.fixture(scope="{scope}")
        def judged(scorer):
            yield
            scorer.score("judged", 1.0)

        def test_a(judged):
            pass

        def test_b(judged):
            {stop}

        def test_c(judged):
            pass
        """
    )

    result = pytester.runpytest_subprocess()

    assert result.ret == pytest.ExitCode.INTERRUPTED
    assert "NoActiveTraceError" not in result.stdout.str() + result.stderr.str()
    result.stdout.fnmatch_lines(
        [
            "*UserWarning: score 'judged' dropped: the session stopped (*) in "
            "test_stop.py::test_b, which is stored already; a fixture torn down "
            "after the stop has no test to score into",
            "run *  -> interrupted",
        ]
    )
    run = runs.latest()
    assert run["status"] == "interrupted"
    scores = {i["node_id"]: [s["name"] for s in i["trace"]["scores"]] for i in run["items"]}
    judged_a = ["judged"] if scope == "function" else []  # (a session fixture's: at the end)
    assert scores == {"test_stop.py::test_a": judged_a, "test_stop.py::test_b": []}
    assert [m["node_id"] for m in run["missing"]] == ["test_stop.py::test_c"]


def test_after_a_stopped_session_a_score_without_a_trace_raises_again(
    pytester: pytest.Pytester,
) -> None:
    from pytest_llmobs.scorer import NoActiveTraceError, Scorer

    pytester.makepyfile(test_exit="import pytest\ndef test_a():\n    pytest.exit('bye')\n")
    assert pytester.runpytest().ret == pytest.ExitCode.INTERRUPTED

    with pytest.raises(NoActiveTraceError):
        Scorer().score("outside", 1.0)


def test_makereport_hooks_record_into_the_test_and_a_later_hook_is_told_it_has_no_trace(
    pytester: pytest.Pytester, runs: Runs
) -> None:
    # (before: the teardown report's score and generation were dropped silently, and a score
    # in pytest_runtest_logreport went into the stored trace, lost as silently)
    pytester.makeconftest(
        """
        import pytest
        from pytest_llmobs.scorer import NoActiveTraceError, Scorer

        @pytest.hookimpl(wrapper=True)
        def pytest_runtest_makereport(item, call):
            report = yield
            if "scorer" in item.funcargs:
                item.funcargs["scorer"].score(f"phase_{call.when}", 1.0)
                if call.when == "teardown":
                    item.funcargs["llm"].generate("What is the capital of Peru?", name="late")
            return report

        def pytest_runtest_logreport(report):
            if report.when == "teardown":
                try:
                    Scorer().score("too_late", 1.0)
                except NoActiveTraceError as exc:
                    with open("late.txt", "w") as out:
                        out.write(str(exc))
        """
    )
    pytester.makepyfile(test_hooks='def test_a(llm, scorer):\n    scorer.score("body", 1.0)\n')

    pytester.runpytest("--llm-model=mock-llm-v1").assert_outcomes(passed=1)

    (item,) = runs.latest()["items"]
    assert [s["name"] for s in item["trace"]["scores"]] == [
        "phase_setup",
        "body",
        "phase_call",
        "phase_teardown",
    ]
    assert [o["name"] for o in item["trace"]["observations"] if o["type"] == "generation"] == [
        "late"
    ]
    assert item["trace"]["observations"][0]["output"] is None  # (a hook's, not the answer)
    assert (pytester.path / "late.txt").read_text() == (
        "score 'too_late': no active trace; record scores inside a test or a traced span"
    )


def test_a_failed_doctest_stores_the_example_expected_and_got(
    pytester: pytest.Pytester, runs: Runs
) -> None:
    # (before: "doctest.DocTestFailure: <DocTest test_kinds.add from ...:2 (2 examples)>")
    pytester.makepyfile(
        test_kinds='''
        def add(a, b):
            """
            >>> add(1, 2)
            3
            >>> add(1, 1)
            3
            """
            return a + b

        def boom():
            """
            >>> boom()
            1
            """
            raise ValueError("nope")
        '''
    )

    pytester.runpytest("--llm-model=mock-llm-v1", "--doctest-modules").assert_outcomes(failed=2)

    errors = {i["node_id"]: i["error"] for i in runs.latest()["items"]}
    add, boom = errors["test_kinds.py::test_kinds.add"], errors["test_kinds.py::test_kinds.boom"]
    assert add.splitlines()[0] == "doctest test_kinds.add line 5: add(1, 1) expected 3, got 2"
    assert "Expected:\n    3\nGot:\n    2" in add
    assert boom.splitlines()[0] == (
        "doctest test_kinds.boom line 12: boom() raised ValueError: nope"
    )
    assert 'raise ValueError("nope")' in boom
    assert len(add) <= 4000
