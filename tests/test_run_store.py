"""The experiment run in the store: header, environment, datasets, prompts, counts and status,
items written as each test finishes, and what an interrupted or crashed session leaves."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import sys
from pathlib import Path
from textwrap import dedent
from typing import TYPE_CHECKING, Any

import pytest
from git_repo import git

from pytest_llmobs import __version__
from pytest_llmobs.dataset_files import load_dataset
from pytest_llmobs.run_environment import git_environment
from pytest_llmobs.store import Store
from pytest_llmobs.store_unfinished import KILLED_BEFORE_IT
from pytest_llmobs.trace_model import derived_id

if TYPE_CHECKING:
    from conftest import Runs

ASK_PROMPT = {"type": "text", "prompt": "Answer briefly. {{question}}", "config": {}}

RUN_SUITE = """\
    import pytest

    @pytest.mark.llm_dataset("capitals")
    def test_capital(item, llm, prompt, scorer):
        answer = llm.generate(prompt("ask").compile(question=item.input))
        assert scorer.exact_match(answer.text, item.expected_output, name="accuracy")

    def test_plain():
        pass
    """


def node_ids(run: dict[str, Any]) -> list[str]:
    return [item["node_id"] for item in run["items"]]


def test_run_holds_header_datasets_prompts_counts_and_status(
    pytester: pytest.Pytester,
    runs: Runs,
    capitals: list[dict[str, Any]],
    xdist_args: tuple[str, ...],
) -> None:
    pytester.makefile(".json", **{"prompts/ask": json.dumps(ASK_PROMPT)})
    pytester.makepyfile(test_run=dedent(RUN_SUITE))

    result = pytester.runpytest("--llm-run-name=nightly", *xdist_args)

    result.assert_outcomes(passed=len(capitals) + 1)
    (listed,) = runs.list()
    run = runs.load(listed["id"])
    assert run["id"] == listed["id"] == runs.latest()["id"]
    assert (run["name"], run["model"], run["status"]) == ("nightly", "mock-llm-v1", "passed")
    assert listed["items"] == len(run["items"]) == len(capitals) + 1
    assert run["started_at"] <= run["ended_at"]
    assert listed["started_at"] == run["started_at"]
    assert run["params"] == {"accuracy": 1.0, "latency_ms": 0.0, "error_rate": 0.0, "seed": 0}
    environment = run["environment"]
    assert environment["plugin_version"] == __version__
    assert environment["pytest"] == pytest.__version__
    assert {"python", "platform"} <= set(environment)
    version = load_dataset("capitals", pytester.path / "datasets").version
    assert run["datasets"] == {"capitals": version}
    (used,) = run["prompts"]
    assert (used["name"], used["version"]) == ("ask", 1)
    assert len(used["hash"]) == 16
    assert run["counts"] == {"passed": len(capitals) + 1}
    assert run["thresholds"] == []


def test_stored_items_are_not_kept_on_pytest_reports(
    pytester: pytest.Pytester,
    runs: Runs,
    capitals: list[dict[str, Any]],
    xdist_args: tuple[str, ...],
) -> None:
    # pytest keeps every report to the end of the session: a payload left on each would grow
    # a long session's memory by kilobytes per test
    pytester.makeconftest(
        """\
        def pytest_terminal_summary(terminalreporter):
            reports = [r for kept in terminalreporter.stats.values() for r in kept]
            carrying = [r for r in reports if hasattr(r, "llmobs_item")]
            terminalreporter.write_line(f"reports={len(reports)} carrying={len(carrying)}")
        """
    )
    pytester.makefile(".json", **{"prompts/ask": json.dumps(ASK_PROMPT)})
    pytester.makepyfile(test_run=dedent(RUN_SUITE))

    result = pytester.runpytest(*xdist_args)

    result.assert_outcomes(passed=len(capitals) + 1)
    result.stdout.fnmatch_lines([f"reports={3 * (len(capitals) + 1)} carrying=0"])
    assert len(runs.latest()["items"]) == len(capitals) + 1


def test_a_failing_test_fails_the_run(pytester: pytest.Pytester, runs: Runs) -> None:
    pytester.makepyfile(
        dedent(
            """\
            import pytest

            def test_passes():
                pass

            def test_fails():
                assert False

            @pytest.mark.skip(reason="not today")
            def test_skipped():
                pass

            @pytest.fixture
            def broken():
                raise RuntimeError("no database")

            def test_errors(broken):
                pass
            """
        )
    )

    result = pytester.runpytest()

    result.assert_outcomes(passed=1, failed=1, skipped=1, errors=1)
    run = runs.latest()
    assert run["status"] == "failed"
    assert run["counts"] == {"error": 1, "failed": 1, "passed": 1, "skipped": 1}
    items = runs.items(run)
    assert items["test_a_failing_test_fails_the_run.py::test_skipped"]["skip_reason"] == (
        "Skipped: not today"
    )
    errored = items["test_a_failing_test_fails_the_run.py::test_errors"]
    assert errored["error"] == "RuntimeError: no database"


def test_two_sessions_are_two_runs_newest_first(pytester: pytest.Pytester, runs: Runs) -> None:
    pytester.makepyfile("def test_one():\n    pass\n")

    pytester.runpytest("--llm-run-name=first").assert_outcomes(passed=1)
    pytester.runpytest("--llm-run-name=second").assert_outcomes(passed=1)

    listed = runs.list()
    assert [run["name"] for run in listed] == ["second", "first"]
    assert listed[0]["id"] != listed[1]["id"]
    assert runs.load("first")["id"] == listed[1]["id"]


def test_collect_only_records_no_run_and_creates_no_store(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_one():\n    pass\n")

    for flags in (["--collect-only"], ["--fixtures"], ["--markers"]):
        assert pytester.runpytest(*flags).ret == 0

    assert not (pytester.path / ".llmobs").exists()


# --- environment --------------------------------------------------------------------------------


def test_environment_holds_git_commit_branch_and_dirty_flag_in_a_repository(
    pytester: pytest.Pytester, runs: Runs
) -> None:
    test_file = pytester.makepyfile("def test_one():\n    pass\n")
    git(pytester.path, "init", "-q", "--initial-branch=trunk")
    git(pytester.path, "add", test_file.name)
    git(pytester.path, "commit", "-q", "-m", "first")
    commit = git(pytester.path, "rev-parse", "HEAD")

    pytester.runpytest().assert_outcomes(passed=1)

    environment = runs.latest()["environment"]
    assert environment["git_commit"] == commit
    assert environment["git_branch"] == "trunk"
    assert environment["git_dirty"] is False

    test_file.write_text("def test_one():\n    assert True\n", encoding="utf-8")
    pytester.runpytest().assert_outcomes(passed=1)

    environment = runs.latest()["environment"]
    assert environment["git_commit"] == commit
    assert environment["git_dirty"] is True


def test_environment_of_a_repository_without_commits_and_of_a_detached_head(
    tmp_path: Path,
) -> None:
    git(tmp_path, "init", "-q", "--initial-branch=trunk")
    assert git_environment(tmp_path) == {}  # nothing committed yet

    (tmp_path / "a.txt").write_text("a\n", encoding="utf-8")
    git(tmp_path, "add", "a.txt")
    git(tmp_path, "commit", "-q", "-m", "first")
    git(tmp_path, "checkout", "-q", "--detach")

    assert git_environment(tmp_path) == {
        "git_commit": git(tmp_path, "rev-parse", "HEAD"),
        "git_branch": "HEAD",  # what `git rev-parse --abbrev-ref HEAD` says when detached
        "git_dirty": False,
    }


def test_environment_has_no_git_fields_outside_a_repository(
    pytester: pytest.Pytester, runs: Runs, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(pytester.path.parent))
    pytester.makepyfile("def test_one():\n    pass\n")

    pytester.runpytest().assert_outcomes(passed=1)

    environment = runs.latest()["environment"]
    assert not {"git_commit", "git_branch", "git_dirty"} & set(environment)
    assert environment["plugin_version"] == __version__


# --- trace ids ----------------------------------------------------------------------------------


def test_trace_ids_derive_from_the_run_id_also_under_xdist(
    pytester: pytest.Pytester,
    runs: Runs,
    capitals: list[dict[str, Any]],
    xdist_args: tuple[str, ...],
) -> None:
    pytester.makepyfile(
        test_ids=dedent(
            """\
            import pytest

            @pytest.mark.llm_dataset("capitals")
            def test_capital(item, scorer):
                scorer.score("seen", True)
            """
        )
    )

    pytester.runpytest(*xdist_args).assert_outcomes(passed=len(capitals))

    run = runs.latest()
    for item in run["items"]:
        trace = item["trace"]
        assert trace["id"] == derived_id(run["id"], item["node_id"], 0), item["node_id"]
        assert {s["trace_id"] for s in trace["scores"]} == {trace["id"]}


# --- written as each test finishes --------------------------------------------------------------

INCREMENTAL_SUITE = """\
    from pathlib import Path

    from pytest_llmobs.store import Store

    def test_one():
        pass

    def test_two():
        pass

    def test_three(request):
        store = Store(Path(str(request.config.rootpath), ".llmobs", "llmobs.db"))
        try:
            run_id = store.resolve_run("latest")
            stored = [item["node_id"] for item in store.iter_items(run_id)]
            status = store.list_runs()[0]["status"]
        finally:
            store.close()
        assert stored == ["test_incremental.py::test_one", "test_incremental.py::test_two"]
        assert status == "running"
    """


def test_items_are_in_the_store_as_soon_as_each_test_finishes(
    pytester: pytest.Pytester, runs: Runs
) -> None:
    pytester.makepyfile(test_incremental=dedent(INCREMENTAL_SUITE))

    pytester.runpytest().assert_outcomes(passed=3)

    assert runs.latest()["status"] == "passed"


def test_keyboard_interrupt_keeps_finished_items_and_marks_the_run_interrupted(
    pytester: pytest.Pytester, runs: Runs
) -> None:
    pytester.makepyfile(
        test_interrupt=dedent(
            """\
            def test_one():
                pass

            def test_two():
                pass

            def test_three(llm):
                llm.generate("What is the capital of France?")
                raise KeyboardInterrupt

            def test_four():
                pass
            """
        )
    )

    result = pytester.runpytest_subprocess()

    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["run *  -> interrupted"])
    (listed,) = runs.list()
    assert (listed["status"], listed["items"]) == ("interrupted", 3)
    run = runs.load(listed["id"])
    assert run["status"] == "interrupted"
    assert run["ended_at"] is not None
    assert node_ids(run) == [
        "test_interrupt.py::test_one",
        "test_interrupt.py::test_two",
        "test_interrupt.py::test_three",
    ]
    assert run["counts"] == {"passed": 2, "error": 1}
    # the test the session stopped in keeps what it recorded (before, it was lost)
    stopped = run["items"][2]
    assert stopped["error"] == "KeyboardInterrupt: the session stopped while it ran"
    (generation,) = [o for o in stopped["trace"]["observations"] if o["type"] == "generation"]
    assert generation["output"] == "Paris"
    assert [m["node_id"] for m in run["missing"]] == ["test_interrupt.py::test_four"]


def test_hard_crash_keeps_finished_items_and_the_run_reads_as_interrupted(
    pytester: pytest.Pytester, runs: Runs
) -> None:
    pytester.makepyfile(
        test_crash=dedent(
            """\
            import os

            def test_one(llm):
                llm.generate("What is the capital of France?")

            def test_two():
                pass

            def test_three():
                os._exit(1)

            def test_four():
                pass
            """
        )
    )

    result = pytester.runpytest_subprocess()

    assert result.ret == 1
    result.stdout.no_fnmatch_line("*llmobs experiment run*")
    (listed,) = runs.list()
    assert (listed["status"], listed["items"], listed["ended_at"]) == ("interrupted", 2, None)
    run = runs.load(listed["id"])
    assert run["status"] == "interrupted"
    assert node_ids(run) == ["test_crash.py::test_one", "test_crash.py::test_two"]
    assert [item["outcome"] for item in run["items"]] == ["passed", "passed"]
    (generation,) = [
        o for o in run["items"][0]["trace"]["observations"] if o["type"] == "generation"
    ]
    assert generation["output"] == "Paris"
    # it never stored a summary: its figures so far come from its items
    assert run["counts"] == {"passed": 2}
    assert runs.aggregates(run, "*")["pass_rate"]["value"] == 1.0
    # the collected items it never ran (the store kept the list when collection ended)
    assert run["missing"] == [
        {"node_id": f"test_crash.py::{name}", "reason": KILLED_BEFORE_IT}
        for name in ("test_three", "test_four")
    ]
    shown = pytester.run(sys.executable, "-m", "pytest_llmobs.cli", "show", "latest")
    shown.stdout.fnmatch_lines([f"run {listed['id']}  name *  model mock-llm-v1  -> interrupted"])
    shown.stdout.fnmatch_lines(
        [
            "all tests: 2 items  pass rate 100.0% (2/2)",
            "2 collected items missing from the run:",
            f"  test_crash.py::test_three  ({KILLED_BEFORE_IT})",
            f"  test_crash.py::test_four  ({KILLED_BEFORE_IT})",
            "run interrupted before it finished: its 2 stored item(s) are listed, the 2 it never "
            "ran above",
        ]
    )


def test_xfail_keeps_its_reason_and_a_strict_xpass_its_failure(
    pytester: pytest.Pytester, runs: Runs
) -> None:
    pytester.makepyfile(
        test_x=dedent(
            """\
            import pytest

            def test_known_bad():
                pytest.xfail("japan known bad")

            @pytest.mark.xfail(reason="expected to fail", strict=True)
            def test_unexpectedly_good():
                pass
            """
        )
    )

    result = pytester.runpytest()

    result.assert_outcomes(xfailed=1, failed=1)
    items = runs.items(runs.latest())
    known = items["test_x.py::test_known_bad"]
    assert (known["outcome"], known["skip_reason"]) == ("skipped", "xfail: japan known bad")
    xpass = items["test_x.py::test_unexpectedly_good"]
    assert (xpass["outcome"], xpass["error"]) == ("failed", "[XPASS(strict)] expected to fail")
    root = xpass["trace"]["observations"][0]
    assert (root["level"], root["status_message"]) == ("ERROR", xpass["error"])


# --- sessions that end before running tests -----------------------------------------------------


def test_a_collection_error_fails_the_run_rather_than_interrupting_it(
    pytester: pytest.Pytester, runs: Runs
) -> None:
    pytester.makepyfile(
        test_ok="def test_ok():\n    pass\n",
        test_broken="import no_such_module_anywhere\n",
    )

    result = pytester.runpytest()

    assert result.ret == pytest.ExitCode.INTERRUPTED  # pytest's code for collection errors
    result.stdout.fnmatch_lines(["run *  -> failed"])
    assert runs.latest()["status"] == "failed"


def test_a_marker_usage_error_stores_no_run_and_latest_stays_the_last_real_one(
    pytester: pytest.Pytester, runs: Runs, capitals: list[dict[str, Any]]
) -> None:
    pytester.makepyfile(test_fine="def test_fine(llm):\n    llm.generate('hi')\n")
    pytester.runpytest().assert_outcomes(passed=1)
    real = runs.latest()["id"]
    pytester.makepyfile(
        test_typo=dedent(
            """\
            import pytest

            @pytest.mark.llm_dataset("capitals", limit=0)
            def test_capital(item):
                pass
            """
        )
    )

    result = pytester.runpytest()

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: test_typo.py::test_capital: @pytest.mark.llm_dataset: "
            "limit must be a positive integer; got 0"
        ]
    )
    assert [run["id"] for run in runs.list()] == [real]  # `latest` is still the real run
    result.stdout.no_fnmatch_line("*missing from the run*")
    result.stdout.no_fnmatch_line("*llmobs experiment run*")


def test_a_dataset_version_is_snapshotted_once_across_runs(
    pytester: pytest.Pytester, runs: Runs, capitals: list[dict[str, Any]]
) -> None:
    pytester.makefile(".json", **{"prompts/ask": json.dumps(ASK_PROMPT)})
    pytester.makepyfile(test_run=dedent(RUN_SUITE))
    first = load_dataset("capitals", pytester.path / "datasets").version

    for _ in range(2):
        pytester.runpytest().assert_outcomes(passed=len(capitals) + 1)
    (pytester.path / "datasets" / "capitals.jsonl").write_text(
        "".join(json.dumps(item) + "\n" for item in capitals[:2])
    )
    pytester.runpytest().assert_outcomes(passed=3)

    second = load_dataset("capitals", pytester.path / "datasets").version
    with runs.open() as store:
        assert store.has_dataset("capitals", first) and store.has_dataset("capitals", second)
        snapshot = store.get_dataset("capitals", first)
    assert snapshot is not None and [item["id"] for item in snapshot] == [
        item["id"] for item in capitals
    ]
    with contextlib.closing(sqlite3.connect(runs.db())) as db:
        rows = db.execute("SELECT name, version FROM datasets").fetchall()
    assert sorted(rows) == sorted([("capitals", first), ("capitals", second)])


def test_pruning_leaves_the_store_smaller_on_disk(tmp_path: Path) -> None:
    store = Store(tmp_path / "llmobs.db")
    try:
        for n in range(4):
            run_id = f"r{n}"
            store.begin_run({"id": run_id, "name": run_id, "started_at": float(n)})
            for seq in range(50):
                item = {"node_id": f"t{seq}", "outcome": "passed", "input": "x" * 2000}
                store.write_item(run_id, seq, item)
            store.finish_run(run_id, status="passed", ended_at=float(n) + 0.5, summary={})
        before = store.size_bytes()

        deleted = store.prune(keep_last=1)

        after = store.size_bytes()
        wal = (tmp_path / "llmobs.db-wal").stat().st_size
    finally:
        store.close()
    assert deleted.runs == ["r2", "r1", "r0"]
    assert wal == 0  # VACUUM's copy of the database in the WAL is folded back into the file
    assert after < before / 2


def _snapshot_run(store: Store, run_id: str, version: str, *, finish: bool = True) -> None:
    """A run of dataset ``d`` at ``version``: its summary names it, or (unfinished) its item."""
    store.record_dataset("d", version, [{"id": "a", "input": "ann@example.org"}])
    store.begin_run({"id": run_id, "name": run_id, "started_at": float(len(run_id))})
    item = {"node_id": "t", "outcome": "passed", "dataset": "d", "datasets": {"d": version}}
    store.write_item(run_id, 0, item)
    if finish:
        summary = {"datasets": {"d": version}}
        store.finish_run(run_id, status="passed", ended_at=9.0, summary=summary)


def _snapshots(store: Store) -> list[str]:
    return [v for _, v in store._db.execute("SELECT name, version FROM datasets ORDER BY 2")]


def test_pruning_deletes_the_dataset_snapshots_no_remaining_run_uses(tmp_path: Path) -> None:
    # (before: the snapshots of deleted runs stayed, with the personal data they hold)
    store = Store(tmp_path / "llmobs.db")
    try:
        store.register_prompt("ask", "h1", {"prompt": "x", "type": "text"}, ["production"])
        _snapshot_run(store, "r", "v1")
        _snapshot_run(store, "rr", "v2")
        _snapshot_run(store, "rrr", "v3")
        _snapshot_run(store, "rrrr", "v4", finish=False)  # interrupted: its items name it
        store._db.execute("UPDATE runs SET status = 'interrupted' WHERE id = 'rrrr'")
        store.save_baseline("kept", "r")
        store.record_dataset("d", "v0", [{"id": "a", "input": "collected, never run"}])

        pruned = store.prune(keep_last=1)  # keeps rrrr (the newest finished) and r (baseline)

        assert (pruned.runs, pruned.snapshots, pruned.unused_kept) == (
            ["rrr", "rr"],
            [("d", "v0"), ("d", "v2"), ("d", "v3")],
            0,
        )
        assert _snapshots(store) == ["v1", "v4"]
        assert store.get_prompt("ask", label="production") is not None  # a registry: kept
    finally:
        store.close()


def test_pruning_keeps_unused_snapshots_while_a_run_is_going(tmp_path: Path) -> None:
    """A session going on may use a snapshot none of its items names yet (it found the
    version stored while collecting): deleting it would lose it for that run."""
    store = Store(tmp_path / "llmobs.db")
    try:
        _snapshot_run(store, "old", "v1")
        _snapshot_run(store, "going", "v2", finish=False)  # this process: still going
        store.record_dataset("d", "v3", [{"id": "a", "input": "found by the going run"}])

        pruned = store.prune(keep_last=0)

        assert (pruned.runs, pruned.snapshots, pruned.unused_kept) == (["old"], [], 2)
        assert _snapshots(store) == ["v1", "v2", "v3"]
    finally:
        store.close()


@pytest.mark.parametrize("reserved", ["latest", "LATEST"])
def test_latest_is_not_a_run_id(pytester: pytest.Pytester, runs: Runs, reserved: str) -> None:
    pytester.makepyfile(test_fine="def test_fine():\n    pass\n")

    result = pytester.runpytest(f"--llm-run-id={reserved}")

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            f"ERROR: --llm-run-id: {reserved!r} is reserved: `llmobs show latest` names the "
            "newest run; pick another id, e.g. 'ci-4242.1'"
        ]
    )
    assert not runs.db().exists()  # refused before any store was opened


def test_a_run_evaluator_cannot_replace_an_aggregate_the_items_gave(
    pytester: pytest.Pytester, runs: Runs, capitals: list[dict[str, Any]]
) -> None:
    pytester.makeconftest(
        dedent(
            """\
            import pytest_llmobs

            @pytest_llmobs.run_evaluator
            def pass_rate(items):
                return 0.0

            def pytest_llmobs_register_evaluators(registry, config):
                registry.add_run(pass_rate)
            """
        )
    )
    pytester.makepyfile(
        test_capitals=dedent(
            """\
            import pytest

            @pytest.mark.llm_dataset("capitals", thresholds=["pass_rate >= 0.5"])
            def test_capital(item, llm):
                llm.generate(item.input)
            """
        )
    )

    result = pytester.runpytest()

    result.assert_outcomes(passed=len(capitals))
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # the clash is an error, said once a group
    result.stdout.fnmatch_lines(
        [
            "  ERROR run evaluator 'pass_rate' returned 'pass_rate', which dataset 'capitals' "
            "already has (computed from the items, or by another run evaluator); name it "
            "differently, e.g. 'run_pass_rate'"
        ]
    )
    run = runs.latest()
    assert runs.aggregates(run, "capitals")["pass_rate"]["value"] == 1.0  # the items' own value
    assert [t["passed"] for t in run["thresholds"]] == [True]


def test_a_store_that_breaks_mid_session_fails_the_run_without_losing_the_session(
    pytester: pytest.Pytester,
) -> None:
    # the second test makes the store unusable for items, as a damaged file or a full disk would
    pytester.makepyfile(
        test_break="""
        import sqlite3

        def test_first(scorer):
            scorer.score("accuracy", 1.0)

        def test_breaks_the_store(scorer, request):
            db = request.config.rootpath / ".llmobs" / "llmobs.db"
            connection = sqlite3.connect(db)
            with connection:  # (commits; closing is separate)
                connection.execute("ALTER TABLE items RENAME TO items_gone")
            connection.close()
            scorer.score("accuracy", 0.5)

        def test_after(scorer):
            scorer.score("accuracy", 0.0)
        """
    )

    result = pytester.runpytest_subprocess(
        "--llm-model=mock-llm-v1", "-p", "no:cacheprovider", "--llm-json=run.json"
    )

    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(
        [
            "*accuracy  mean 0.500*n=3*",
            "*ERROR the store failed (*llmobs.db: no such table: items): 1 of 3 items stored;"
            " the run's figures count them all",
        ]
    )
    # the file holds the items the store refused, and says which it cannot give back
    written = json.loads((pytester.path / "run.json").read_text("utf-8"))
    assert [item["node_id"].split("::")[1] for item in written["items"]] == [
        "test_breaks_the_store",
        "test_after",
    ]
    assert written["errors"][1] == (
        "this copy of the run holds 2 of its 3 items: the store cannot give back the 1 it kept "
        "(no such table: items)"
    )


def test_the_run_rebuilt_after_a_store_failure_is_masked_as_the_store_would_mask_it() -> None:
    from pytest_llmobs.governance import build_governance
    from pytest_llmobs.run import RunRecorder

    store = Store(None, governance=build_governance(mode="default"))
    recorder = RunRecorder(store=store, name="r", model="m", outlive_store_failures=True)
    recorder.begin()
    store._db.execute("DROP TABLE items")  # every item is refused from now on
    recorder.add_item({"node_id": "t.py::t", "outcome": "passed", "trace": {"scores": []}})
    recorder.failures.append("worker gw0 went down: ask ann@example.com")
    recorder.finish(interrupted=False, tests_failed=False)

    run = recorder.load_run()
    store.close()

    assert [item["node_id"] for item in run["items"]] == ["t.py::t"]
    assert run["errors"][0] == "worker gw0 went down: ask <EMAIL>"  # (before: in clear)


def test_a_store_that_refuses_only_the_summary_fails_the_run_saying_so(
    pytester: pytest.Pytester,
) -> None:
    # every item is stored; the store breaks as the session ends, before the run's summary
    pytester.makeconftest(
        """
        import sqlite3

        import pytest

        @pytest.hookimpl(tryfirst=True)
        def pytest_sessionfinish(session):
            db = session.config.rootpath / ".llmobs" / "llmobs.db"
            connection = sqlite3.connect(db)
            with connection:
                connection.execute("ALTER TABLE runs RENAME TO runs_gone")
            connection.close()
        """
    )
    pytester.makepyfile(
        test_ok="""
        def test_one(scorer):
            scorer.score("accuracy", 1.0)

        def test_two(scorer):
            scorer.score("accuracy", 0.5)
        """
    )

    result = pytester.runpytest_subprocess("--llm-model=mock-llm-v1", "-p", "no:cacheprovider")

    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "*accuracy  mean 0.750*n=2*",
            "*ERROR the store failed (*llmobs.db: no such table: runs): 2 of 2 items stored;"
            " the run's figures count them all",
        ]
    )


def test_pruning_with_keep_last_and_older_than_keeps_the_newest_however_old(
    tmp_path: Path,
) -> None:
    # (before: either option chose a run, so `--keep-last 3 --older-than 30d` on a store whose
    # runs were all older than 30 days deleted the newest 3 too)
    store = Store(tmp_path / "llmobs.db")
    try:
        for n in range(6):  # r0 (oldest) .. r5 (newest), each started at time n
            store.begin_run({"id": f"r{n}", "name": f"r{n}", "started_at": float(n)})
            store.finish_run(f"r{n}", status="passed", ended_at=n + 0.5, summary={})
        store.save_baseline("kept", "r0")

        all_old = store.prune(keep_last=3, older_than=100.0)
        some_old = store.prune(keep_last=1, older_than=2.0)
        neither = store.prune()

        assert all_old.runs == ["r2", "r1"]  # beyond the newest 3 and old; r0 a baseline
        assert some_old.runs == []  # r4 and r3 are beyond the newest 1 but not older than 2
        assert neither.runs == []
        assert [run["id"] for run in store.list_runs()] == ["r5", "r4", "r3", "r0"]
        assert store.prune(keep_last=1, older_than=4.0).runs == ["r3"]
    finally:
        store.close()
