"""``run_experiment`` outside pytest: concurrency, traces per item, evaluators, timeouts and
retries, the stored run (the same shape as a pytest session's), and the event-loop rules."""

from __future__ import annotations

import asyncio
import functools
import json
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from textwrap import dedent
from typing import TYPE_CHECKING, Any

import numpy  # noqa: F401  (loaded once: in-process sessions would load it again, and fail)
import pytest

import pytest_llmobs
from pytest_llmobs import (
    EvalResult,
    arun_experiment,
    evaluator,
    observe,
    run_evaluator,
    run_experiment,
)
from pytest_llmobs.dataset_files import load_dataset
from pytest_llmobs.datasets import DatasetError, DatasetItem
from pytest_llmobs.store import Store
from pytest_llmobs.trace_model import derived_id

if TYPE_CHECKING:
    from conftest import Runs

CAPITALS = [
    {"id": "france", "input": "What is the capital of France?", "expected_output": "Paris"},
    {"id": "japan", "input": "What is the capital of Japan?", "expected_output": "Tokyo"},
    {"id": "italy", "input": "What is the capital of Italy?", "expected_output": "Rome"},
    {"id": "spain", "input": "What is the capital of Spain?", "expected_output": "Madrid"},
]


def exact(output: str, item: DatasetItem) -> bool:
    return output == item.expected_output


def length(output: str, item: DatasetItem) -> int:
    return len(output)


def verdict(output: str, item: DatasetItem) -> str:
    return "right" if output == item.expected_output else "wrong"


async def answer(item: DatasetItem, llm: pytest_llmobs.LLM) -> str:
    return (await llm.agenerate(item.input)).text


def answer_sync(item: DatasetItem, llm: pytest_llmobs.LLM) -> str:
    return llm.generate(item.input).text


def load(store_dir: Path, run_id: str) -> dict[str, Any]:
    store = Store.in_directory(store_dir)
    try:
        return store.load_run(run_id)
    finally:
        store.close()


def parent_names(item: dict[str, Any]) -> list[tuple[str, str | None]]:
    observations = item["trace"]["observations"]
    names = {o["id"]: o["name"] for o in observations}
    return [(o["name"], names.get(o["parent_id"])) for o in observations]


# --- results, scores, the stored run ------------------------------------------------------------


@pytest.mark.parametrize("task", [answer, answer_sync], ids=["async-task", "sync-task"])
def test_items_become_traces_scores_and_aggregates_in_the_store(tmp_path: Path, task: Any) -> None:
    result = run_experiment(
        name="capitals",
        dataset=CAPITALS,
        dataset_name="capitals",
        task=task,
        evaluators=[exact, length, verdict],
        model="mock-llm-v1?accuracy=0.5&seed=1",
        max_concurrency=3,
        store=tmp_path / "store",
        thresholds=["mean_exact >= 0.25", "capitals: pass_rate >= 0.9"],
    )

    assert [i.id for i in result.items] == ["france", "japan", "italy", "spain"]
    for item in result.items:
        expected = next(c["expected_output"] for c in CAPITALS if c["id"] == item.id)
        assert item.scores == {
            "exact": item.output == expected,
            "length": len(item.output),
            "verdict": "right" if item.output == expected else "wrong",
        }
        assert item.outcome == ("passed" if item.output == expected else "failed")
    right = sum(i.scores["exact"] is True for i in result.items)
    assert 0 < right < 4  # accuracy 0.5
    capitals = result.aggregates["capitals"]
    assert capitals["mean_exact"].value == right / 4
    assert capitals["counts_verdict"].extra == {"right": right, "wrong": 4 - right}
    assert [(t.threshold.expression, t.passed) for t in result.thresholds] == [
        ("mean_exact >= 0.25", True),
        ("capitals: pass_rate >= 0.9", False),
    ]
    assert not result.passed and result.status == "failed"
    # (no session ended: it said "session fails")
    assert "1 of 2 threshold(s) failed: the run did not pass" in result.summary().splitlines()

    stored = load(tmp_path / "store", result.run_id)
    assert stored["name"] == "capitals"
    assert stored["model"] == "mock-llm-v1?accuracy=0.5&seed=1"
    assert stored["params"]["accuracy"] == 0.5
    assert stored["status"] == "failed"
    assert stored["datasets"] == {"capitals": result.run.datasets["capitals"]}
    assert {a["name"]: a["value"] for a in stored["aggregates"]["capitals"]}["mean_exact"] == (
        right / 4
    )
    by_id = {item["item_id"]: item for item in stored["items"]}
    assert sorted(by_id) == ["france", "italy", "japan", "spain"]
    for item in result.items:
        trace = by_id[item.id]["trace"]
        name = task.__name__
        assert by_id[item.id]["node_id"] == f"{name}[{item.id}]"
        assert trace["id"] == item.trace_id == derived_id(result.run_id, f"{name}[{item.id}]", 0)
        assert parent_names(by_id[item.id]) == [(name, None), ("llm.generate", name)]
        root = trace["observations"][0]
        assert root["input"] == next(c["input"] for c in CAPITALS if c["id"] == item.id)
        assert root["output"] == item.output
        assert root["metadata"]["item_id"] == item.id
        assert root["metadata"]["dataset"] == "capitals"
        assert [(s["name"], s["value"]) for s in trace["scores"]] == list(item.scores.items())


def test_the_stored_run_has_the_shape_of_a_pytest_run(
    pytester: pytest.Pytester, runs: Runs, tmp_path: Path
) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makefile(
        ".jsonl", **{"datasets/capitals": "".join(json.dumps(c) + "\n" for c in CAPITALS)}
    )
    pytester.makepyfile(
        dedent(
            """\
            import pytest

            @pytest.mark.llm_dataset("capitals")
            def test_capital(item, llm, scorer):
                scorer.score("exact", llm.generate(item.input).text == item.expected_output)
            """
        )
    )
    pytester.runpytest().assert_outcomes(passed=4)
    from_pytest = runs.latest()

    result = run_experiment(
        name="capitals",
        dataset="capitals",
        datasets_dir=pytester.path / "datasets",
        task=answer_sync,
        evaluators=[exact],
        store=tmp_path,
    )
    experiment = load(tmp_path, result.run_id)

    assert set(experiment) == set(from_pytest)
    assert experiment["datasets"] == from_pytest["datasets"]
    for group in ("capitals", "*"):
        assert without_latency(experiment, group) == without_latency(from_pytest, group)
    for ours, theirs in zip(experiment["items"], from_pytest["items"], strict=True):
        assert set(ours) == set(theirs)
        assert set(ours["trace"]) == set(theirs["trace"])
        assert set(ours["trace"]["observations"][0]) == set(theirs["trace"]["observations"][0])


def without_latency(run: dict[str, Any], group: str) -> list[dict[str, Any]]:
    return [a for a in run["aggregates"][group] if "latency" not in a["name"]]


def test_evaluator_objects_eval_results_and_run_evaluators(tmp_path: Path) -> None:
    @evaluator(threshold=0.5)
    def closeness(output: str, item: DatasetItem) -> float:
        return 1.0 if output == item.expected_output else 0.25

    async def judged(output: str, item: DatasetItem) -> EvalResult:
        return EvalResult("ignored-name", output.lower() == output, True, "lowercase check")

    def skipped(output: str, item: DatasetItem) -> None:
        return None

    @run_evaluator
    def share_long(items: list[dict[str, Any]]) -> float:
        return sum(len(i["trace"]["observations"][0]["output"]) > 4 for i in items) / len(items)

    result = run_experiment(
        name="evals",
        dataset=CAPITALS,
        task=answer,
        evaluators={"closeness": closeness, "lowercase": judged, "skipped": skipped},
        run_evaluators=[share_long],
        model="mock-llm-v1",
        store=None,
        thresholds=["share_long >= 0.5"],
    )

    for item in result.items:
        assert item.scores == {"closeness": 1.0, "lowercase": False}
        assert item.outcome == "passed"
    assert result.aggregates["*"]["share_long"].value == 0.75  # Paris, Tokyo, Madrid
    assert result.passed and result.status == "passed"
    summary = result.summary()
    assert summary.splitlines()[0].startswith(
        f"run {result.run_id}  name 'evals'  model mock-llm-v1"
    )
    assert "not stored (store=None)" in summary
    assert "share_long >= 0.5  observed 0.750 (n=4)" in summary


def test_a_failing_evaluator_errors_its_item_and_the_rest_goes_on(tmp_path: Path) -> None:
    def picky(output: str, item: DatasetItem) -> bool:
        if item.id == "japan":
            raise ValueError("no opinion")
        return True

    result = run_experiment(
        name="picky", dataset=CAPITALS, task=answer, evaluators=[picky], store=None
    )

    outcomes = {i.id: (i.outcome, i.error) for i in result.items}
    assert outcomes["japan"] == ("error", "evaluator 'picky' raised ValueError: no opinion")
    assert {k: v for k, v in outcomes.items() if k != "japan"} == dict.fromkeys(
        ["france", "italy", "spain"], ("passed", None)
    )
    assert result.run.counts == {"error": 1, "passed": 3}
    # a script's `sys.exit(0 if result.passed else 1)` fails, as the pytest session would
    assert (result.status, result.passed, result.thresholds_passed) == ("failed", False, True)


# --- concurrency and nesting --------------------------------------------------------------------


def test_async_items_run_concurrently_up_to_max_concurrency() -> None:
    running = 0
    peak = 0
    full = asyncio.Event()

    async def task(item: DatasetItem) -> str:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        if running == 3:
            full.set()
        await full.wait()  # the first three wait until three run at once
        running -= 1
        return str(item.input)

    result = run_experiment(
        name="c",
        dataset=[{"input": i} for i in range(10)],
        task=task,
        max_concurrency=3,
        store=None,
    )

    assert peak == 3
    assert [i.output for i in result.items] == [str(i) for i in range(10)]


def test_sync_items_run_in_threads_up_to_max_concurrency_and_nest_their_spans() -> None:
    barrier = threading.Barrier(4, timeout=30)
    lock = threading.Lock()
    running = 0
    peak = 0

    @observe
    def step(value: Any) -> str:
        return f"step {value}"

    def task(item: DatasetItem) -> str:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        if item.input < 4:
            barrier.wait()  # the first four meet: four threads at once
        with lock:
            running -= 1
        return step(item.input)

    result = run_experiment(
        name="s",
        dataset=[{"input": i} for i in range(12)],
        task=task,
        max_concurrency=4,
        store=None,
    )

    assert peak == 4
    assert {i.outcome for i in result.items} == {"passed"}
    store_items = result.items
    assert [i.output for i in store_items] == [f"step {i}" for i in range(12)]


def test_gathered_coroutines_in_a_task_nest_under_the_item(tmp_path: Path) -> None:
    @observe
    async def branch(llm: pytest_llmobs.LLM, country: str) -> str:
        return (await llm.agenerate(f"What is the capital of {country}?")).text

    async def task(item: DatasetItem, llm: pytest_llmobs.LLM) -> list[str]:
        return list(await asyncio.gather(branch(llm, item.input), branch(llm, "Peru")))

    result = run_experiment(
        name="g",
        dataset=[{"id": "one", "input": "Chile"}],
        task=task,
        store=tmp_path,
        model="mock-llm-v1",
    )

    (item,) = load(tmp_path, result.run_id)["items"]
    observations = item["trace"]["observations"]
    ids = {o["id"]: o for o in observations}
    branches = [o for o in observations if o["name"] == "branch"]
    assert len(branches) == 2
    assert {ids[b["parent_id"]]["name"] for b in branches} == {"task"}
    for generation in (o for o in observations if o["type"] == "generation"):
        parent = ids[generation["parent_id"]]
        assert parent["name"] == "branch"
        assert parent["input"]["args"][1] in generation["input"][0]["content"]
    assert result.items[0].output == ["Santiago", "Lima"]


# --- timeouts and retries -----------------------------------------------------------------------


def test_a_task_that_keeps_failing_is_an_errored_item_and_retries_recover_others() -> None:
    attempts: dict[str, int] = {}

    async def task(item: DatasetItem) -> str:
        attempts[item.id] = attempts.get(item.id, 0) + 1
        if item.id == "japan" or (item.id == "italy" and attempts[item.id] == 1):
            raise ConnectionError(f"attempt {attempts[item.id]} failed")
        return "ok"

    result = run_experiment(name="r", dataset=CAPITALS, task=task, retries=2, store=None)

    by_id = {i.id: i for i in result.items}
    assert attempts == {"france": 1, "japan": 3, "italy": 2, "spain": 1}
    assert (by_id["japan"].outcome, by_id["japan"].error) == (
        "error",
        "ConnectionError: attempt 3 failed",
    )
    assert (by_id["italy"].outcome, by_id["italy"].attempts) == ("passed", 2)
    assert result.run.counts == {"error": 1, "passed": 3}
    assert result.status == "failed"
    assert "japan: ConnectionError: attempt 3 failed" in result.summary()


def test_an_async_task_over_its_timeout_is_cancelled_and_recorded(tmp_path: Path) -> None:
    cancelled = []

    async def task(item: DatasetItem) -> str:
        if item.id == "japan":
            try:
                await asyncio.Event().wait()  # never set: only the timeout ends it
            except asyncio.CancelledError:
                cancelled.append(item.id)
                raise
        return "ok"

    result = run_experiment(name="t", dataset=CAPITALS, task=task, timeout_s=0.05, store=tmp_path)

    by_id = {i.id: i for i in result.items}
    assert cancelled == ["japan"]
    assert by_id["japan"].error == "TaskTimeout: the task took longer than timeout_s=0.05 s"
    stored = {i["item_id"]: i for i in load(tmp_path, result.run_id)["items"]}
    assert stored["japan"]["outcome"] == "error"
    assert stored["japan"]["trace"]["observations"][0]["level"] == "ERROR"
    assert {stored[k]["outcome"] for k in ("france", "italy", "spain")} == {"passed"}


def test_a_sync_task_over_its_timeout_is_recorded_without_waiting_for_its_thread() -> None:
    release = threading.Event()
    finished = threading.Event()

    def task(item: DatasetItem) -> str:
        if item.id == "japan":
            release.wait(timeout=60)  # held until the experiment has returned
            finished.set()
        return "ok"

    try:
        result = run_experiment(
            name="t", dataset=CAPITALS, task=task, timeout_s=0.05, max_concurrency=2, store=None
        )
        assert not finished.is_set()  # returned while the timed-out thread still runs
    finally:
        release.set()

    by_id = {i.id: i for i in result.items}
    assert by_id["japan"].outcome == "error"
    assert by_id["japan"].error == "TaskTimeout: the task took longer than timeout_s=0.05 s"
    assert [by_id[k].outcome for k in ("france", "italy", "spain")] == ["passed"] * 3
    assert finished.wait(timeout=60)


# --- datasets -----------------------------------------------------------------------------------


def logged(task: Any) -> Any:
    """A plain (sync) decorator, as a user's logging or caching wrapper would be."""

    @functools.wraps(task)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return task(*args, **kwargs)

    return wrapper


def test_an_async_task_behind_a_sync_decorator_is_awaited() -> None:
    result = run_experiment(
        name="decorated", dataset=CAPITALS, task=logged(answer), evaluators=[exact], store=None
    )

    assert [item.output for item in result.items] == [c["expected_output"] for c in CAPITALS]
    assert result.status == "passed"


def test_a_sync_task_returning_a_coroutine_is_an_errored_item() -> None:
    def hidden(item: DatasetItem, llm: pytest_llmobs.LLM) -> Any:  # no functools.wraps
        return answer(item, llm)

    result = run_experiment(name="hidden", dataset=CAPITALS[:1], task=hidden, store=None)

    (item,) = result.items
    assert (item.outcome, item.output) == ("error", None)
    assert "returned coroutine" in str(item.error)
    assert "which must be awaited; make the task (or its decorator's wrapper) 'async def'" in (
        str(item.error)
    )


def test_a_limited_dataset_stores_the_whole_version_it_names(tmp_path: Path) -> None:
    lines = "".join(json.dumps(entry) + "\n" for entry in CAPITALS)
    (tmp_path / "capitals.jsonl").write_text(lines, encoding="utf-8")
    full = load_dataset("capitals", tmp_path)

    result = run_experiment(
        name="first-item", dataset=full.limit(1), task=answer, store=tmp_path / "store"
    )

    assert [item.id for item in result.items] == ["france"]
    store = Store.in_directory(tmp_path / "store")
    snapshot = store.get_dataset("capitals", full.version)  # what `llmobs compare` diffs
    store.close()
    assert snapshot is not None
    assert [entry["id"] for entry in snapshot] == [entry["id"] for entry in CAPITALS]


def test_dataset_forms(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "capitals.jsonl").write_text(
        "".join(json.dumps(c) + "\n" for c in CAPITALS), encoding="utf-8"
    )
    from_file = load_dataset("capitals", tmp_path / "data")

    def echo(item: DatasetItem) -> str:
        return str(item.expected_output)

    forms: list[Any] = [
        from_file,
        "capitals",
        tmp_path / "data" / "capitals.jsonl",
        CAPITALS,
        list(from_file),
    ]
    for form in forms:
        result = run_experiment(
            name="forms",
            dataset=form,
            task=echo,
            evaluators=[exact],
            store=None,
            datasets_dir=tmp_path / "data",
            dataset_name="capitals",
        )
        assert result.run.datasets == {"capitals": from_file.version}, form
        assert [i.id for i in result.items] == ["france", "japan", "italy", "spain"]
        assert result.passed and result.status == "passed"


def test_items_without_ids_get_stable_ids_and_bad_items_are_named() -> None:
    def echo(item: DatasetItem) -> str:
        return str(item.input)

    first = run_experiment(
        name="ids", dataset=[{"input": "a"}, {"input": "b"}], task=echo, store=None
    )
    again = run_experiment(
        name="ids", dataset=[{"input": "a"}, {"input": "b"}], task=echo, store=None
    )
    assert [i.id for i in first.items] == [i.id for i in again.items]
    assert len({i.id for i in first.items}) == 2

    with pytest.raises(
        DatasetError, match=r"dataset 'inline': item 2: missing required key 'input'"
    ):
        run_experiment(
            name="bad", dataset=[{"input": "a"}, {"expected_output": "b"}], task=echo, store=None
        )


# --- store location, event loops, arguments -----------------------------------------------------


def test_default_store_is_dot_llmobs_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    result = run_experiment(name="here", dataset=CAPITALS, task=answer)

    assert result.run.store_path == tmp_path / ".llmobs" / "llmobs.db"
    assert load(tmp_path / ".llmobs", result.run_id)["name"] == "here"
    assert "stored in " + str(tmp_path / ".llmobs" / "llmobs.db") in result.summary()


def test_store_none_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)

    run_experiment(name="memory", dataset=CAPITALS, task=answer, store=None)

    assert list(tmp_path.iterdir()) == []


def test_inside_a_running_loop_run_experiment_says_to_await_arun_experiment() -> None:
    async def main() -> str:
        with pytest.raises(RuntimeError) as raised:
            run_experiment(name="x", dataset=CAPITALS, task=answer, store=None)
        result = await arun_experiment(name="x", dataset=CAPITALS, task=answer, store=None)
        assert len(result.items) == 4
        return str(raised.value)

    assert asyncio.run(main()) == (
        "run_experiment() cannot start an event loop inside the running one; "
        "use 'await pytest_llmobs.arun_experiment(...)' here (same arguments)"
    )


def test_under_trio_arun_experiment_says_to_use_a_thread_and_that_works() -> None:
    trio = pytest.importorskip("trio")

    async def main() -> tuple[str, int]:
        with pytest.raises(RuntimeError) as raised:
            await arun_experiment(name="x", dataset=CAPITALS, task=answer, store=None)
        run = functools.partial(run_experiment, name="x", dataset=CAPITALS, task=answer, store=None)
        result = await trio.to_thread.run_sync(run)
        return str(raised.value), len(result.items)

    message, items = trio.run(main)

    assert message == (
        "arun_experiment runs on asyncio, and no asyncio event loop is running here (trio?); "
        "call run_experiment(...) in a worker thread instead, e.g. "
        "await trio.to_thread.run_sync(lambda: run_experiment(...))"
    )
    assert items == len(CAPITALS)


def _yielding(item: DatasetItem) -> Iterator[str]:
    yield "Paris"


async def _yielding_async(item: DatasetItem) -> AsyncIterator[str]:
    yield "Paris"


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"max_concurrency": 0}, ValueError, "max_concurrency must be >= 1; got 0"),
        ({"timeout_s": 0}, ValueError, "timeout_s must be a number > 0, or None; got 0"),
        ({"retries": -1}, ValueError, "retries must be an int >= 0; got -1"),
        ({"name": " "}, ValueError, "name must be a non-empty string; got ' '"),
        ({"thresholds": ["mean >> 1"]}, ValueError, "invalid threshold 'mean >> 1'"),
        ({"model": "mock-llm-v1?acuracy=1"}, ValueError, "unknown option 'acuracy'"),
        ({"evaluators": [lambda o, i: True]}, ValueError, "has no usable name"),
        ({"dataset": 42}, TypeError, "dataset must be a Dataset, a dataset name"),
        (
            {"dataset": "data/nope.jsonl"},
            DatasetError,
            "dataset file 'data/nope.jsonl' not found (relative to ",
        ),
        ({"dataset": "nope.csv"}, DatasetError, "dataset file 'nope.csv' not found"),
        (
            {"dataset": ["What is the capital of France?"]},
            DatasetError,
            "dataset 'inline': item 1: expected a JSON object with 'input'",
        ),
        (
            {"thresholds": "mean_exact >= 0.7"},
            TypeError,
            "thresholds must be a list of expressions; got the string 'mean_exact >= 0.7'",
        ),
        ({"evaluators": None}, TypeError, "evaluators must be a list of functions or a mapping"),
        ({"evaluators": "exact"}, TypeError, "evaluators must be a list of functions or a mapping"),
        ({"store": 3}, TypeError, "store must be a directory path, a Store or None; got int 3"),
        ({"task": _yielding}, TypeError, "task must return the output, not yield it"),
        ({"task": _yielding_async}, TypeError, "task must return the output, not yield it"),
        ({"run_evaluators": exact}, TypeError, "run_evaluators must be a list of functions"),
        ({"timeout_s": "5"}, ValueError, "timeout_s must be a number > 0, or None; got '5'"),
        # their scores would be pooled under one name
        ({"evaluators": [exact, exact]}, ValueError, "are both named 'exact'; pass a mapping"),
    ],
)
def test_bad_arguments_are_refused_before_anything_runs(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    kwargs: dict[str, Any],
    error: type[Exception],
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    arguments: dict[str, Any] = {"name": "bad", "dataset": CAPITALS, "task": answer, **kwargs}

    with pytest.raises(error) as raised:
        run_experiment(**arguments)

    assert message in str(raised.value)
    assert not (tmp_path / ".llmobs").exists()


def _interrupting_task(kind: str) -> Any:
    def check(item: DatasetItem) -> None:
        if item.id == "q3":
            raise KeyboardInterrupt

    if kind == "sync":
        return lambda item: check(item) or item.input

    async def task(item: DatasetItem) -> Any:
        await asyncio.sleep(0)
        check(item)
        return item.input

    return task


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_ctrl_c_in_a_task_stops_run_experiment_without_asyncio_noise(
    kind: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A KeyboardInterrupt raised in a task reaches the caller as itself, the run is stored as
    interrupted, and asyncio logs no "Task exception was never retrieved" for it."""
    import gc

    with pytest.raises(KeyboardInterrupt):
        pytest_llmobs.run_experiment(
            name="stopped",
            dataset=[{"id": f"q{i}", "input": "x"} for i in range(10)],
            task=_interrupting_task(kind),
            store=tmp_path,
            max_concurrency=2,
        )
    gc.collect()  # asyncio logs a task's unretrieved exception when the task is collected

    assert [r.getMessage() for r in caplog.records if r.name == "asyncio"] == []
    store = Store.in_directory(tmp_path)
    try:
        (run,) = store.list_runs()
    finally:
        store.close()
    assert run["status"] == "interrupted"
    assert run["items"] < 10


def test_ctrl_c_in_a_task_reaches_an_async_caller_as_itself(tmp_path: Path) -> None:
    async def main() -> str:
        try:
            await pytest_llmobs.arun_experiment(
                name="stopped",
                dataset=[{"id": f"q{i}", "input": "x"} for i in range(10)],
                task=_interrupting_task("sync"),
                store=tmp_path,
                max_concurrency=2,
            )
        except KeyboardInterrupt:
            return "caught in the caller's task"
        return "not raised"

    assert asyncio.run(main()) == "caught in the caller's task"


@pytest.mark.parametrize("timeout_s", [None, 10.0], ids=["whole-item-in-thread", "timeout"])
@pytest.mark.parametrize("exc", [KeyboardInterrupt, SystemExit])
def test_an_interrupt_in_a_sync_task_starts_no_further_item(
    tmp_path: Path, timeout_s: float | None, exc: type[BaseException]
) -> None:
    started: list[str] = []

    def task(item: DatasetItem) -> str:
        started.append(item.id)
        if item.id == "q3":
            raise exc
        return "ok"

    with pytest.raises(exc):
        run_experiment(
            name="stopped",
            dataset=[{"id": f"q{i}", "input": i} for i in range(10)],
            task=task,
            max_concurrency=1,
            timeout_s=timeout_s,
            store=tmp_path,
        )

    assert started == ["q0", "q1", "q2", "q3"]


async def _cancels_an_inner_call(item: DatasetItem) -> str:
    if item.id == "q1":
        inner = asyncio.ensure_future(asyncio.sleep(10))
        await asyncio.sleep(0)
        inner.cancel()
        return await inner  # the task's own cancelled call: CancelledError
    return "ok"


def test_a_cancelled_error_of_one_item_is_that_items_error(tmp_path: Path) -> None:
    async def evaluator_cancelled(output: str, item: DatasetItem) -> bool:
        if item.id == "q2":
            raise asyncio.CancelledError
        return True

    result = run_experiment(
        name="cancel",
        dataset=[{"id": f"q{i}", "input": i} for i in range(4)],
        task=_cancels_an_inner_call,
        evaluators=[evaluator_cancelled],
        store=tmp_path,
    )

    assert result.status == "failed"
    assert [(i.outcome, i.error) for i in result.items] == [
        ("passed", None),
        ("error", "CancelledError"),
        ("error", "evaluator 'evaluator_cancelled' raised CancelledError"),
        ("passed", None),
    ]


def test_cancelling_arun_experiment_cancels_its_items_and_stores_the_run_interrupted(
    tmp_path: Path,
) -> None:
    started: list[str] = []

    async def slow(item: DatasetItem) -> str:
        started.append(item.id)
        await asyncio.sleep(10)
        return "late"

    async def main() -> None:
        run = asyncio.ensure_future(
            arun_experiment(
                name="cancelled",
                dataset=[{"id": f"q{i}", "input": i} for i in range(4)],
                task=slow,
                store=tmp_path,
            )
        )
        while len(started) < 4:
            await asyncio.sleep(0.01)
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run

    asyncio.run(main())

    store = Store.in_directory(tmp_path)
    try:
        (run,) = store.list_runs()
    finally:
        store.close()
    assert run["status"] == "interrupted"
    assert run["items"] == 0


def test_a_dataset_object_is_checked_as_items_given_in_code_are(tmp_path: Path) -> None:
    from pytest_llmobs.datasets import Dataset

    def dataset(name: str, *items: DatasetItem) -> Dataset:
        return Dataset(name=name, version="v1", path=Path(f"{name}.jsonl"), items=items)

    result = run_experiment(
        name="hand",
        dataset=dataset("hand", DatasetItem("a", "q1"), DatasetItem("b", "q2")),
        task=lambda item: item.input,
        store=tmp_path,
    )
    assert set(result.aggregates) == {"hand", "*"}
    stored = load(tmp_path, result.run_id)["items"]
    assert [(item["dataset"], item["dataset_version"]) for item in stored] == [("hand", "v1")] * 2
    for bad, message in [
        (
            dataset("hand", DatasetItem("a", "q1"), DatasetItem("a", "q2")),
            "dataset 'hand': item 2: duplicate id 'a' (first used at item 1)",
        ),
        (dataset("empty"), "dataset 'empty' has no items"),
        (dataset("", DatasetItem("a", "q1")), "invalid dataset name ''"),
        (dataset("nan", DatasetItem("a", float("nan"))), "dataset 'nan': item 1"),
    ]:
        with pytest.raises(DatasetError) as raised:
            run_experiment(name="bad", dataset=bad, task=lambda item: "x", store=None)
        assert message in str(raised.value)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"model": 5}, TypeError, "model must be a model string"),
        ({"thresholds": None}, TypeError, "thresholds must be a list of expressions"),
        ({"thresholds": [0.9]}, TypeError, "thresholds: 0.9 is not an expression"),
        ({"dataset": "caps", "datasets_dir": 5}, TypeError, "datasets_dir must be a directory"),
        ({"timeout_s": 10**400}, ValueError, "got an integer of 401 digits"),
        ({"timeout_s": 10**5000}, ValueError, "got an integer of 5001 digits"),  # (str() fails)
        ({"name": "latest"}, ValueError, "name 'latest' is reserved"),
        ({"name": " Latest "}, ValueError, "is reserved"),
        ({"task": lambda item, other: "x"}, TypeError, "takes (item, other); expected (item)"),
        ({"task": lambda: "x"}, TypeError, "task '<lambda>' takes (); expected"),
        ({"run_evaluators": {"r": lambda: 1}}, TypeError, "run_evaluators: 'r' takes ()"),
        ({"run_evaluators": {"r": run_evaluator(name="r")(lambda: 1)}}, TypeError, "takes ()"),
        ({"run_evaluators": {"r": _cancels_an_inner_call}}, TypeError, "'r' is async"),
    ],
    ids=lambda value: None,
)
def test_more_bad_arguments_are_refused_before_any_task_runs(
    tmp_path: Path, kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    calls: list[str] = []

    def task(item: DatasetItem) -> str:
        calls.append(item.id)
        return "x"

    arguments: dict[str, Any] = {"name": "bad", "dataset": CAPITALS, "task": task, **kwargs}
    with pytest.raises(error) as raised:
        run_experiment(store=tmp_path, **arguments)

    assert message in str(raised.value)
    assert calls == []
    assert not (tmp_path / "llmobs.db").exists()


def test_a_provider_or_llm_records_the_model_string_the_same_string_would() -> None:
    from pytest_llmobs.providers.mock import MockLLM

    spec = "mock-llm-v1?accuracy=0.5&seed=3"
    models = [spec, MockLLM.from_spec(spec), pytest_llmobs.LLM(MockLLM.from_spec(spec))]

    recorded = [
        run_experiment(name="m", dataset=CAPITALS, task=answer, model=m, store=None).run.model
        for m in models
    ]

    assert recorded == [spec, spec, spec]
    plain = run_experiment(name="m", dataset=CAPITALS, task=answer, model=MockLLM(), store=None)
    assert plain.run.model == "mock-llm-v1"
