"""pytest-xdist: one experiment run per ``pytest -n N`` session, written by the controller only,
equal to the serial run; payloads survive xdist's serialisation; crashed workers; ``-p no:xdist``.
"""

from __future__ import annotations

import json
import multiprocessing
import random
import re
from pathlib import Path
from textwrap import dedent
from typing import TYPE_CHECKING, Any

import pytest

from pytest_llmobs.aggregate_model import ItemSummary
from pytest_llmobs.aggregates import compute_aggregates
from pytest_llmobs.providers.capitals import CAPITALS as KNOWN_CAPITALS
from pytest_llmobs.store import STORE_FILENAME, Store
from pytest_llmobs.trace_model import derived_id

if TYPE_CHECKING:
    from conftest import Runs

MODEL = "--llm-model=mock-llm-v1?accuracy=0.7&seed=3"
QUIET_INI = "[pytest]\nasyncio_default_fixture_loop_scope = function\n"
"""pytest-asyncio warns in every session that leaves this unset."""


@pytest.fixture(autouse=True)
def _quiet_ini(pytester: pytest.Pytester) -> None:
    pytester.makeini(QUIET_INI)


QUESTIONS = [
    {
        "id": country.lower().replace(" ", "-"),
        "input": f"What is the capital of {country}?",
        "expected_output": capital,
    }
    for country, capital in list(KNOWN_CAPITALS.items())[:16]
]

SCORED_SUITE = """\
    import pytest

    @pytest.mark.llm_dataset("capitals", thresholds=["mean_accuracy >= 0.6"])
    def test_capital(item, llm, scorer):
        answer = llm.generate(item.input)
        correct = scorer.exact_match(answer.text, item.expected_output, name="accuracy")
        scorer.fuzzy(answer.text, item.expected_output, name="closeness")
        scorer.score("verdict", "right" if correct else "wrong")
        assert correct

    def test_plain(scorer):
        scorer.score("plain", 1.5)
    """


def write_questions(pytester: pytest.Pytester) -> None:
    pytester.makefile(
        ".jsonl", **{"datasets/capitals": "".join(json.dumps(q) + "\n" for q in QUESTIONS)}
    )


def comparable(run: dict[str, Any]) -> dict[str, Any]:
    """What must not depend on xdist: aggregates (latency aside), verdicts, counts, datasets."""
    aggregates = {
        group: {a["name"]: a for a in entries if "latency" not in a["name"]}
        for group, entries in run["aggregates"].items()
    }
    verdicts = [{k: v for k, v in t.items() if k != "source"} for t in run["thresholds"]]
    return {
        "aggregates": aggregates,
        "thresholds": verdicts,
        "counts": run["counts"],
        "datasets": run["datasets"],
        "status": run["status"],
    }


def test_n4_makes_one_run_equal_to_the_serial_run(pytester: pytest.Pytester, runs: Runs) -> None:
    write_questions(pytester)
    pytester.makepyfile(test_scored=dedent(SCORED_SUITE))

    serial = pytester.runpytest_subprocess(MODEL, "-p", "no:cacheprovider")
    parallel = pytester.runpytest_subprocess(MODEL, "-p", "no:cacheprovider", "-n", "4")

    outcomes = serial.parseoutcomes()
    assert outcomes["failed"] > 0 and outcomes["passed"] > 0  # accuracy 0.7: some wrong
    parallel.assert_outcomes(passed=outcomes["passed"], failed=outcomes["failed"])
    assert len(runs.list()) == 2  # one run per session, also with four workers
    parallel_run, serial_run = (runs.load(r["id"]) for r in runs.list())
    assert len(parallel_run["items"]) == len(serial_run["items"]) == len(QUESTIONS) + 1
    assert set(runs.items(parallel_run)) == set(runs.items(serial_run))
    assert comparable(parallel_run) == comparable(serial_run)
    capitals = runs.aggregates(parallel_run, "capitals")
    assert {"mean_accuracy", "mean_closeness", "counts_verdict"} <= set(capitals)
    (verdict,) = parallel_run["thresholds"]
    assert verdict["expression"] == "mean_accuracy >= 0.6"
    assert verdict["observed"] == capitals["mean_accuracy"]["value"]


def normalised(item: dict[str, Any]) -> dict[str, Any]:
    """An item without what differs between two runs of it (times, random observation ids)."""
    timing = {"started_at", "ended_at", "duration", "start_time", "end_time", "timestamp"}
    trace = item["trace"]
    names = {o["id"]: o["name"] for o in trace["observations"]}

    def clean(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items() if k not in timing | {"latency_ms"}}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    observations = [
        {**clean(o), "id": None, "parent_id": names.get(o["parent_id"])}
        for o in trace["observations"]
    ]
    scores = [
        {**clean(s), "observation_id": names.get(s["observation_id"])} for s in trace["scores"]
    ]
    return {
        **clean(item),
        "trace": {**clean(trace), "observations": observations, "scores": scores},
    }


PAYLOAD_SUITE = """\
    import pytest
    from pytest_llmobs import observe, propagate_attributes

    @observe
    def retrieve(question):
        return {"chunks": ["Paris est la capitale", 3, 0.25, None, True], "ünïcode": "✓"}

    @pytest.mark.llm_dataset("capitals", limit=2)
    def test_payload(item, llm, scorer):
        with propagate_attributes(tags=["ci", "ünï"], metadata={"nested": {"k": [1, 2.5]}}):
            context = retrieve(item.input)
            answer = llm.generate(f"{item.input} {context['ünïcode']}")
        scorer.score("grounded", 0.75, comment="ok – fine")
        scorer.score("label", "capital")
        assert scorer.exact_match(answer.text, item.expected_output, name="accuracy")
    """


def test_item_payload_survives_xdist_serialisation(pytester: pytest.Pytester, runs: Runs) -> None:
    write_questions(pytester)
    pytester.makepyfile(test_payload=dedent(PAYLOAD_SUITE))
    same = ("--llm-run-id=same-run", "-p", "no:cacheprovider")

    pytester.runpytest_subprocess(*same, "--llm-store=serial").assert_outcomes(passed=2)
    pytester.runpytest_subprocess(*same, "--llm-store=xdist", "-n", "2").assert_outcomes(passed=2)

    serial = runs.items(runs.latest("serial"))
    parallel = runs.items(runs.latest("xdist"))
    assert set(serial) == set(parallel)
    for node_id, item in serial.items():
        assert normalised(parallel[node_id]) == normalised(item), node_id
        assert parallel[node_id]["trace"]["id"] == item["trace"]["id"]  # from the shared run id


CRASH_SUITE = """\
    import os

    def test_before():
        pass

    def test_dies():
        os._exit(1)

    def test_one(scorer):
        scorer.score("kept", True)

    def test_two(scorer):
        scorer.score("kept", True)

    def test_three(scorer):
        scorer.score("kept", True)
    """


def test_crashed_worker_keeps_finished_items_and_stores_the_lost_test_as_failed(
    pytester: pytest.Pytester, runs: Runs
) -> None:
    pytester.makepyfile(test_crash=dedent(CRASH_SUITE))

    result = pytester.runpytest_subprocess("-n", "2", "-p", "no:cacheprovider")

    result.assert_outcomes(passed=4, failed=1)
    result.stdout.fnmatch_lines(["*replacing crashed worker gw*", "all tests: 5 items  *(4/5)"])
    (summary,) = runs.list()
    run = runs.latest()
    assert summary["items"] == 5
    items = runs.items(run)
    assert sorted(items) == [
        "test_crash.py::test_before",
        "test_crash.py::test_dies",
        "test_crash.py::test_one",
        "test_crash.py::test_three",
        "test_crash.py::test_two",
    ]
    dies = items["test_crash.py::test_dies"]
    assert dies["outcome"] == "failed"  # as xdist reports it: the pass rate counts it
    assert re.fullmatch(
        r"worker 'gw\d+' crashed while running it \(its trace and scores were lost with the "
        r"worker\)",
        dies["error"],
    )
    assert "missing" not in run  # stored, so not missing
    assert run["status"] == "failed"
    assert runs.aggregates(run, "*")["mean_kept"]["n"] == 3


@pytest.mark.parametrize("store", [[], ["--llm-no-store"]], ids=["store", "no-store"])
def test_a_dataset_item_lost_with_its_worker_counts_in_its_datasets_pass_rate(
    pytester: pytest.Pytester, store: list[str]
) -> None:
    # (its content comes from the snapshot the workers stored, else from the dataset file)
    write_questions(pytester)
    pytester.makepyfile(
        test_crash="""
        import os
        import pytest

        @pytest.mark.llm_dataset("capitals", thresholds=["pass_rate >= 1"])
        def test_capital(item, llm):
            llm.generate(item.input)
            if item.id == "albania":
                os._exit(1)
        """
    )

    result = pytester.runpytest_subprocess(
        "-n", "2", "-p", "no:cacheprovider", "--llm-json=run.json", *store
    )

    result.assert_outcomes(passed=len(QUESTIONS) - 1, failed=1)
    run = json.loads((pytester.path / "run.json").read_text(encoding="utf-8"))
    (lost,) = [i for i in run["items"] if i["node_id"] == "test_crash.py::test_capital[albania]"]
    assert (lost["dataset"], lost["item_id"], lost["outcome"]) == ("capitals", "albania", "failed")
    assert (lost["input"], lost["expected_output"]) == ("What is the capital of Albania?", "Tirana")
    (rate,) = [a for a in run["aggregates"]["capitals"] if a["name"] == "pass_rate"]
    assert (rate["value"], rate["n"]) == (pytest.approx(1 - 1 / len(QUESTIONS)), len(QUESTIONS))
    (threshold,) = run["thresholds"]
    assert not threshold["passed"]


def test_a_worker_dying_before_the_tests_setup_report_lists_it_as_missing(
    pytester: pytest.Pytester, runs: Runs
) -> None:
    pytester.makepyfile(
        test_crash="""
        import os
        import pytest

        @pytest.fixture
        def dies():
            os._exit(1)

        def test_before():
            pass

        def test_dies(dies):
            pass
        """
    )

    result = pytester.runpytest_subprocess("-n", "2", "-p", "no:cacheprovider")

    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "1 collected item missing from the run:",
            "  test_crash.py::test_dies  (worker 'gw*' crashed while running it)",
        ]
    )
    run = runs.latest()
    assert sorted(runs.items(run)) == ["test_crash.py::test_before"]
    (missing,) = run["missing"]
    assert re.fullmatch(r"worker 'gw\d+' crashed while running it", missing["reason"])


def test_ctrl_c_under_xdist_says_which_tests_were_running_not_that_they_never_ran(
    pytester: pytest.Pytester, runs: Runs
) -> None:
    pytester.makeconftest(
        """
        import pytest

        ON_CONTROLLER = []

        def pytest_configure(config):
            # (not PYTEST_XDIST_WORKER: this session may itself run in an outer xdist worker)
            if not hasattr(config, "workerinput"):
                ON_CONTROLLER.append(True)

        @pytest.hookimpl(trylast=True)  # (after the plugin noted that it runs)
        def pytest_runtest_logreport(report):
            if ON_CONTROLLER and report.when == "setup" and report.nodeid.endswith("test_slow"):
                raise KeyboardInterrupt  # Ctrl-C while a worker runs test_slow
        """
    )
    pytester.makepyfile(
        test_stop="""
        def test_slow():
            pass  # (its later reports are never read: the controller stops on its setup)
        """
    )

    result = pytester.runpytest_subprocess("-n", "1", "-p", "no:cacheprovider")

    assert result.ret == pytest.ExitCode.INTERRUPTED
    (missing,) = runs.latest()["missing"]
    assert missing == {
        "node_id": "test_stop.py::test_slow",
        "reason": "no result: the session was interrupted while gw0 ran it",
    }


def test_a_crash_rescheduled_for_a_rerun_does_not_drop_the_next_attempt(
    pytester: pytest.Pytester, runs: Runs
) -> None:
    # xdist's controller reports a crash with when "???"; pytest-rerunfailures, rescheduling the
    # test, makes that report's outcome "rerun". (A real crash is not used here: whether
    # rerunfailures reschedules it races with its own socket to the controller.)
    pytester.makeconftest(
        """
        import pytest

        @pytest.hookimpl(tryfirst=True)
        def pytest_runtest_protocol(item, nextitem):
            crash = pytest.TestReport(
                item.nodeid, item.location, {}, "failed", "worker 'gw0' crashed", "???"
            )
            crash.outcome = "rerun"
            item.config.hook.pytest_runtest_logreport(report=crash)
        """
    )
    pytester.makepyfile(
        test_crash="""
        def test_dies_once(scorer):
            scorer.score("kept", True)
        """
    )

    result = pytester.runpytest("-p", "no:cacheprovider")

    result.assert_outcomes(passed=1)
    run = runs.latest()
    # (before: the crash report marked the test superseded and its passing attempt was dropped)
    assert runs.items(run)["test_crash.py::test_dies_once"]["outcome"] == "passed"
    assert "missing" not in run


# What pytest-rerunfailures does with a test it rescheduled after its xdist worker crashed: the
# worker that runs it again counts the crashed attempt first, inside its protocol (so after the
# plugin's protocol wrapper made the test's record), and runs it once more.
RESCHEDULED_PLUGIN = """
import pytest
from _pytest.runner import runtestprotocol


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item, nextitem):
    item.execution_count = 1  # (the crashed attempt, from its status db)
    item.execution_count += 1
    item.ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
    for report in runtestprotocol(item, nextitem=nextitem, log=False):
        item.ihook.pytest_runtest_logreport(report=report)
    item.ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
    return True
"""


def test_a_test_run_again_after_its_worker_crashed_is_stored_with_its_reruns(
    pytester: pytest.Pytester, runs: Runs, xdist_args: tuple[str, ...]
) -> None:
    # (before: its record was made before pytest-rerunfailures counted the attempt, and only
    # a rerun inside one protocol got `reruns`)
    pytester.makeconftest(RESCHEDULED_PLUGIN)
    pytester.makepyfile(test_crash="def test_dies_once(scorer):\n    scorer.score('kept', True)\n")

    pytester.runpytest("-p", "no:cacheprovider", *xdist_args).assert_outcomes(passed=1)

    (item,) = runs.latest()["items"]
    assert item["outcome"] == "passed"
    assert item["trace"]["observations"][0]["metadata"]["reruns"] == 1


def test_workers_that_never_start_fail_the_run_saying_why(
    pytester: pytest.Pytester, runs: Runs
) -> None:
    # (before, the run had 0 items and status "passed": `latest` named a green run)
    pytester.makeconftest(
        """
        import pytest

        def pytest_sessionstart(session):
            if hasattr(session.config, "workerinput"):
                raise pytest.UsageError("no model server on this worker")
        """
    )
    pytester.makepyfile("def test_one(scorer):\n    scorer.score('kept', True)\n")

    result = pytester.runpytest_subprocess("-n", "2", "-p", "no:cacheprovider")

    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.re_match_lines(
        [
            r"  ERROR xdist workers (gw\d+, )+gw\d+ went down before collecting: "
            r"pytest.UsageError: no model server on this worker"
        ]
    )
    run = runs.latest()
    assert run["status"] == "failed"
    assert run["items"] == []
    (error,) = run["errors"]
    assert error.endswith(
        "went down before collecting: pytest.UsageError: no model server on this worker"
    )


def test_tests_not_run_after_x_are_listed_as_missing(
    pytester: pytest.Pytester, runs: Runs, xdist_args: tuple[str, ...]
) -> None:
    pytester.makepyfile(
        test_stop="def test_a():\n    pass\n\ndef test_b():\n    assert False\n\n"
        "def test_c():\n    pass\n"
    )

    result = pytester.runpytest("-x", *xdist_args)

    run = runs.latest()
    stored = set(runs.items(run))
    missing = {entry["node_id"] for entry in run.get("missing", [])}
    assert "test_stop.py::test_b" in stored
    assert stored | missing == {
        "test_stop.py::test_a",
        "test_stop.py::test_b",
        "test_stop.py::test_c",
    }
    assert not stored & missing
    if missing:
        result.stdout.fnmatch_lines([f"{len(missing)} collected item* missing from the run:"])


def test_plugin_runs_without_xdist(pytester: pytest.Pytester, runs: Runs) -> None:
    write_questions(pytester)
    pytester.makepyfile(test_scored=dedent(SCORED_SUITE))

    result = pytester.runpytest_subprocess(MODEL, "-p", "no:xdist", "-p", "no:cacheprovider")

    outcomes = result.parseoutcomes()
    assert outcomes["passed"] + outcomes["failed"] == len(QUESTIONS) + 1
    result.stdout.fnmatch_lines(["*llmobs experiment run*"])
    run = runs.latest()
    assert len(run["items"]) == len(QUESTIONS) + 1
    assert "missing" not in run


# --- prompt versions and dataset snapshots written by workers -----------------------------------

PROMPT_SUITE = """\
    import pytest

    @pytest.mark.parametrize("n", range(8))
    def test_prompt(n, prompt):
        assert prompt("ask").version == 1
    """


def test_workers_share_prompt_versions_in_the_store(pytester: pytest.Pytester, runs: Runs) -> None:
    pytester.makefile(
        ".json", **{"prompts/ask": json.dumps({"type": "text", "prompt": "Hi {{x}}"})}
    )
    pytester.makepyfile(test_prompt_use=dedent(PROMPT_SUITE))

    pytester.runpytest_subprocess("-n", "4", "-p", "no:cacheprovider").assert_outcomes(passed=8)

    run = runs.latest()
    assert [(p["name"], p["version"]) for p in run["prompts"]] == [("ask", 1)]
    with runs.open() as store:
        assert store.prompt_index("ask") == ([1], {"latest": 1})


def test_prompt_versions_registered_on_workers_reach_the_controller_without_a_store(
    pytester: pytest.Pytester,
) -> None:
    pytester.makefile(
        ".json", **{"prompts/ask": json.dumps({"type": "text", "prompt": "Hi {{x}}"})}
    )
    pytester.makepyfile(test_prompt_use=dedent(PROMPT_SUITE))
    pytester.makeconftest(
        dedent(
            """\
            from pytest_llmobs.stash import STATE_KEY

            def pytest_llmobs_run_finished(result, config):
                stored = config.stash[STATE_KEY].store.get_prompt("ask", version=1)
                print("controller has", stored and (stored["name"], stored["prompt"]))
            """
        )
    )

    result = pytester.runpytest_subprocess("-n", "2", "-s", "--llm-no-store")

    result.assert_outcomes(passed=8)
    result.stdout.fnmatch_lines(["*controller has ('ask', 'Hi {{x}}')"])
    assert not (pytester.path / ".llmobs").exists()


def test_prompt_labels_reach_the_controller_without_a_store(
    pytester: pytest.Pytester, xdist_args: tuple[str, ...]
) -> None:
    # (before: under xdist the run's prompt version had no labels, not even 'latest')
    pytester.makefile(
        ".json",
        **{
            "prompts/ask": json.dumps(
                {"type": "text", "prompt": "Hi {{x}}", "labels": ["production"]}
            )
        },
    )
    pytester.makepyfile(test_prompt_use=dedent(PROMPT_SUITE))

    pytester.runpytest(*xdist_args, "--llm-no-store", "--llm-json=run.json").assert_outcomes(
        passed=8
    )

    run = json.loads((pytester.path / "run.json").read_text(encoding="utf-8"))
    assert [(p["name"], p["version"], p["labels"]) for p in run["snapshots"]["prompts"]] == [
        ("ask", 1, ["latest", "production"])
    ]


def test_a_run_without_a_store_keeps_its_dataset_snapshots_and_partial_note(
    pytester: pytest.Pytester, xdist_args: tuple[str, ...]
) -> None:
    # (before: under xdist the workers' in-memory snapshots never reached the controller: the
    # export had no dataset items, and the summary no "(2 of its 4 items ran)")
    items = [{"id": f"c{i}", "input": "What is the capital of France?"} for i in range(4)]
    pytester.makefile(".jsonl", **{"datasets/caps": "\n".join(json.dumps(i) for i in items)})
    pytester.makepyfile(
        test_caps="""
        import pytest

        @pytest.mark.llm_dataset("caps")
        def test_c(item, llm):
            llm.generate(item.input)
        """
    )

    result = pytester.runpytest(
        *xdist_args, "--llm-no-store", "--llm-json=run.json", "-k", "c1 or c2"
    )

    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["dataset 'caps' *: 2 items * (2 of its 4 items ran)"])
    run = json.loads((pytester.path / "run.json").read_text(encoding="utf-8"))
    (snapshot,) = run["snapshots"]["datasets"]
    assert [item["id"] for item in snapshot["items"]] == ["c0", "c1", "c2", "c3"]


def _register_concurrently(args: tuple[str, int, Any]) -> dict[str, int]:
    path, seed, barrier = args
    barrier.wait()  # every process opens the (new) store file at the same moment
    store = Store(Path(path))
    rng = random.Random(seed)
    versions = {}
    try:
        for _ in range(25):
            text = rng.choice("abcde")
            versions[text] = store.register_prompt("p", f"h-{text}", {"prompt": text}, ["prod"])
            store.record_dataset("d", f"v-{text}", [{"id": text}])
    finally:
        store.close()
    return versions


def test_concurrent_processes_agree_on_prompt_versions(tmp_path: Path) -> None:
    path = str(tmp_path / ".llmobs" / STORE_FILENAME)
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        barrier = manager.Barrier(6)
        with context.Pool(6) as pool:
            seen = pool.map(_register_concurrently, [(path, seed, barrier) for seed in range(6)])

    agreed: dict[str, int] = {}
    for versions in seen:
        for text, version in versions.items():
            assert agreed.setdefault(text, version) == version, text
    assert sorted(agreed.values()) == list(range(1, len(agreed) + 1))
    store = Store(Path(path))
    try:
        assert store.prompt_index("p")[0] == sorted(agreed.values())
    finally:
        store.close()


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_a_lone_surrogate_is_stored_as_a_replacement_character_and_nothing_is_lost(
    pytester: pytest.Pytester, runs: Runs, workers: list[str]
) -> None:
    pytester.makepyfile(
        test_cut=r"""
        def test_a(scorer):
            scorer.score("fine", 1.0)

        def test_cut(scorer, llm):  # say, an emoji a model's answer cut in half
            scorer.label("bad \ud83d", "x", name="intent")
            scorer.score("note", "half \udc00 of a pair")

        def test_c(scorer):
            scorer.score("fine", 0.0)
        """
    )

    result = pytester.runpytest_subprocess(MODEL, "-p", "no:cacheprovider", *workers)

    result.assert_outcomes(passed=3)
    assert "INTERNALERROR" not in result.stdout.str()
    items = runs.items(runs.latest())
    assert len(items) == 3
    scores = {s["name"]: s for s in items["test_cut.py::test_cut"]["trace"]["scores"]}
    assert scores["note"]["value"] == "half \ufffd of a pair"
    assert "\ufffd" in json.dumps(scores["intent"], ensure_ascii=False)


KIND_CLASH_SUITE = """\
    import os
    import pytest

    @pytest.mark.xdist_group("numbers")
    def test_number(scorer):
        scorer.score("quality", 0.8)
        scorer.score("worker", os.environ["PYTEST_XDIST_WORKER"])

    @pytest.mark.xdist_group("words")
    def test_word(scorer):
        scorer.score("quality", "good")
        scorer.score("worker", os.environ["PYTEST_XDIST_WORKER"])
    """


def test_a_score_name_keeps_one_kind_across_workers(pytester: pytest.Pytester, runs: Runs) -> None:
    """Each worker's scorer sees one kind of 'quality'; the controller sees both. The run fails
    as the serial one does (one of the two items failed, one kind aggregated), and keeps every
    score it received."""
    pytester.makepyfile(test_kinds=dedent(KIND_CLASH_SUITE))

    result = pytester.runpytest_subprocess(
        "-n", "2", "--dist", "loadgroup", "-p", "no:cacheprovider"
    )

    result.assert_outcomes(passed=2)  # each worker's scorer accepted its own kind
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        ["*ERROR score 'quality' was * first (test_kinds.py::test_*) and * in 1 item (*)*"]
    )
    run = runs.latest()
    items = runs.items(run)
    workers = {
        score["value"]
        for item in items.values()
        for score in item["trace"]["scores"]
        if score["name"] == "worker"
    }
    assert len(workers) == 2, "the two tests ran on one worker: the clash was not across them"
    outcomes = sorted(item["outcome"] for item in items.values())
    assert outcomes == ["failed", "passed"]
    (failed,) = [item for item in items.values() if item["outcome"] == "failed"]
    assert "one name must keep one kind in a run" in failed["error"]
    assert [s["name"] for s in failed["trace"]["scores"]] == ["quality", "worker"]  # kept
    aggregates = runs.aggregates(run, "*")
    assert aggregates["pass_rate"]["value"] == 0.5
    assert ("mean_quality" in aggregates) != ("counts_quality" in aggregates)
    kept = aggregates.get("mean_quality") or aggregates["counts_quality"]
    assert kept["n"] == 1
    assert run["status"] == "failed"
    # what reads the stored items again (a killed run's figures, a comparison) agrees
    recomputed = compute_aggregates(ItemSummary.from_item(i) for i in items.values())["*"]
    assert {name: a.to_dict() for name, a in recomputed.items()} == aggregates


def test_maxfail_under_xdist_fails_the_run_it_does_not_interrupt_it(
    pytester: pytest.Pytester, runs: Runs
) -> None:
    # (before: xdist stops with its own KeyboardInterrupt, read as Ctrl-C: the run was
    # 'interrupted', so `llmobs rescore` and `compare` refused it as partial)
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize("n", range(12))
        def test_n(n):
            assert n != 0
        """
    )

    result = pytester.runpytest_subprocess("--llm-model=mock-llm-v1", "-n", "2", "--maxfail=1")

    assert result.ret != pytest.ExitCode.OK  # (xdist itself exits 2 after --maxfail)
    run = runs.latest()
    assert run["status"] == "failed"
    reasons = {entry["reason"] for entry in run.get("missing") or []}
    assert all(reason.startswith("not run: stopping after") for reason in reasons), reasons


EACH_SUITE = """\
    import pytest

    @pytest.mark.llm_dataset("capitals", limit=2)
    def test_capital(item, llm, scorer):
        scorer.exact_match(llm.generate(item.input).text, item.expected_output, name="accuracy")
    """


@pytest.mark.parametrize(
    ("extra", "copies"),
    [([], 2), (["--keep-duplicates", "test_each.py", "test_each.py"], 4)],
    ids=["each", "each-keep-duplicates"],
)
def test_dist_each_gives_each_workers_copy_of_a_test_its_own_trace(
    pytester: pytest.Pytester, runs: Runs, extra: list[str], copies: int
) -> None:
    # (before: every worker's copy was copy 0, so the copies shared their trace and score ids
    # and an upload kept one of them)
    write_questions(pytester)
    pytester.makepyfile(test_each=dedent(EACH_SUITE))

    result = pytester.runpytest("-p", "no:cacheprovider", "-n", "2", "--dist", "each", *extra)

    result.assert_outcomes(passed=2 * copies)
    run = runs.latest()
    by_test: dict[str, list[dict[str, Any]]] = {}
    for item in run["items"]:
        by_test.setdefault(item["node_id"], []).append(item)
    assert sorted(len(items) for items in by_test.values()) == [copies, copies]
    for node_id, items in by_test.items():
        expected = {derived_id(run["id"], node_id, 0, *([c] if c else [])) for c in range(copies)}
        assert {i["trace"]["id"] for i in items} == expected, node_id
        scores = [s["id"] for i in items for s in i["trace"]["scores"]]
        assert len(set(scores)) == len(scores) == copies
    assert sorted(r["repeats"] for r in run["repeats"]["items"]) == [copies, copies]
