"""``run_experiment``'s edges: evaluator values, names and signatures, values in items, where
the run is stored, retried attempts, generators left early, and sync tasks past their timeout."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from textwrap import dedent
from typing import Any

import pytest
from test_experiment import load

import pytest_llmobs
from pytest_llmobs import EvalResult, observe, run_experiment, start_span
from pytest_llmobs.cli import main
from pytest_llmobs.datasets import DatasetError, DatasetItem

ITEMS = [{"id": f"i{n}", "input": n} for n in range(4)]


def echo(item: DatasetItem) -> Any:
    return item.input


# --- 1. evaluator values that cannot be scores ---------------------------------------------------


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (float("nan"), "an EvalResult of value nan; expected a finite number"),
        (float("inf"), "an EvalResult of value inf; expected a finite number"),
        (10**400, "an EvalResult of value an integer of 401 digits; expected a finite number"),
        ({"a": 1}, "an EvalResult of value dict {'a': 1}; expected bool, int, float or str"),
        ([1], "an EvalResult of value list [1]; expected bool, int, float or str"),
        (None, "an EvalResult of value NoneType None; expected bool, int, float or str"),
    ],
    ids=["nan", "inf", "huge-int", "dict", "list", "None"],
)
def test_an_eval_result_that_cannot_be_a_score_errors_its_item_and_the_run_goes_on(
    value: Any, problem: str
) -> None:
    def ev(output: int, item: DatasetItem) -> EvalResult:
        return EvalResult("ev", value if item.id == "i2" else 1.0, True, "")

    result = run_experiment(name="odd", dataset=ITEMS, task=echo, evaluators=[ev], store=None)

    assert result.status == "failed"
    assert [i.outcome for i in result.items] == ["passed", "passed", "error", "passed"]
    assert (
        result.items[2].error
        == f"evaluator 'ev' raised EvaluatorError: evaluator 'ev' returned {problem}"
    )
    assert result.aggregates["*"]["mean_ev"].value == 1.0


def test_an_eval_result_whose_reason_is_not_text_errors_its_item() -> None:
    def ev(output: int, item: DatasetItem) -> EvalResult:
        return EvalResult("ev", 1.0, True, 7 if item.id == "i1" else "")  # type: ignore[arg-type]

    result = run_experiment(name="odd", dataset=ITEMS, task=echo, evaluators=[ev], store=None)

    assert [i.outcome for i in result.items] == ["passed", "error", "passed", "passed"]
    assert result.items[1].error == (
        "evaluator 'ev' raised ScoreError: score 'ev': comment must be a str or None; got int 7"
    )


# --- 2. evaluator names, checked before any task runs --------------------------------------------


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (
            "latency_ms",
            "evaluators: score 'latency_ms': its aggregates mean_latency_ms, max_latency_ms, "
            "p50_latency_ms, p95_latency_ms would take the names of the run's own aggregates "
            "(from generations, count, pass_rate); use another score name",
        ),
        (
            "bad\nname",
            "evaluators: score name 'bad\\nname' holds a control or invisible character; "
            "expected printable text (it names aggregates and thresholds)",
        ),
    ],
    ids=["built-in-aggregate", "control-character"],
)
def test_a_bad_evaluator_name_is_refused_before_any_task_runs(
    tmp_path: Path, name: str, message: str
) -> None:
    calls: list[str] = []

    def task(item: DatasetItem) -> int:
        calls.append(item.id)
        return 1

    def number(output: int, item: DatasetItem) -> float:
        return 0.5

    with pytest.raises(ValueError) as raised:
        run_experiment(
            name="n", dataset=ITEMS, task=task, evaluators={name: number}, store=tmp_path / "s"
        )

    assert str(raised.value) == message
    assert calls == []
    assert not (tmp_path / "s").exists()


# --- 4. and 7. values in items given in code or in files -----------------------------------------


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            {"id": "a", "input": float("nan")},
            "dataset 'inline': item 1 (id 'a'): 'input' is nan",
        ),
        (
            {"id": "a", "input": 1, "expected_output": float("inf")},
            "dataset 'inline': item 1 (id 'a'): 'expected_output' is inf",
        ),
        (
            {"input": 1, "metadata": {"score": [1, float("-inf")]}},
            "dataset 'inline': item 1: 'metadata'['score'][1] is -inf",
        ),
        (
            DatasetItem(id="x", input=float("nan")),
            "dataset 'inline': item 1 (id 'x'): 'input' is nan",
        ),
    ],
    ids=["input", "expected_output", "metadata", "DatasetItem"],
)
def test_nan_or_infinity_in_an_item_given_in_code_is_refused_before_the_run(
    tmp_path: Path, entry: Any, message: str
) -> None:
    with pytest.raises(DatasetError) as raised:
        run_experiment(name="nan", dataset=[entry], task=echo, store=tmp_path / "s")

    assert str(raised.value) == (
        f"{message}, which a dataset file cannot hold (JSON has no NaN or Infinity); "
        "use null or a string"
    )
    assert not (tmp_path / "s").exists()


def test_integers_of_thousands_of_digits_in_items_are_kept_and_stored_as_digits(
    tmp_path: Path,
) -> None:
    huge = 10**5000 + 7
    digits = "1" + "0" * 4999 + "7"
    (tmp_path / "big.jsonl").write_text(
        f'{{"id": "f", "input": {digits}, "metadata": {{"n": -{digits}}}}}\n', encoding="utf-8"
    )

    for dataset in ([{"id": "b", "input": huge}], tmp_path / "big.jsonl"):
        result = run_experiment(name="big", dataset=dataset, task=echo, store=tmp_path / "s")

        assert result.status == "passed"
        assert result.items[0].input == huge  # the task got the integer itself
        stored = load(tmp_path / "s", result.run_id)["items"][0]
        assert stored["input"] == digits
        json.dumps(stored, allow_nan=False)  # what `llmobs export` writes: valid JSON


# --- 6. evaluators are called with the arguments they take ---------------------------------------


@pytest_llmobs.evaluator(threshold=0.5)
def politeness(output: str) -> float:  # the docs' example: output only
    return 1.0 if "please" in output.lower() else 0.0


async def is_text(output: str) -> bool:
    return isinstance(output, str)


def matches(output: str, item: DatasetItem) -> bool:
    return output == item.expected_output


def short(output: str, *, limit: int = 20) -> bool:
    return len(output) <= limit


def test_evaluators_taking_the_output_alone_or_with_the_item_both_work() -> None:
    def task(item: DatasetItem) -> str:
        return "please" if item.id == "a" else "no"

    result = run_experiment(
        name="signatures",
        dataset=[{"id": "a", "input": 1, "expected_output": "please"}, {"id": "b", "input": 2}],
        task=task,
        evaluators=[politeness, is_text, matches, short],
        store=None,
    )

    assert [(i.outcome, i.scores) for i in result.items] == [
        ("passed", {"politeness": 1.0, "is_text": True, "matches": True, "short": True}),
        ("failed", {"politeness": 0.0, "is_text": True, "matches": False, "short": True}),
    ]


def test_an_evaluator_that_takes_neither_output_nor_output_and_item_is_refused_up_front() -> None:
    calls: list[str] = []

    def task(item: DatasetItem) -> int:
        calls.append(item.id)
        return 1

    def three(output: int, item: DatasetItem, extra: int) -> int:
        return 1

    with pytest.raises(TypeError) as raised:
        run_experiment(name="s", dataset=ITEMS, task=task, evaluators=[three], store=None)

    assert str(raised.value) == (
        "evaluators: 'three' takes (output, item, extra); "
        "expected (output, item) or (output), with any other parameter optional"
    )
    assert calls == []


# --- 3. the default store is the one pytest and `llmobs` use -------------------------------------


def test_by_default_scripts_pytest_and_llmobs_share_one_store(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makefile(".toml", pyproject='[project]\nname = "p"\nversion = "0"\n')
    pytester.makepyfile(
        test_one=dedent(
            """\
            def test_one(scorer):
                scorer.score("ok", True)
            """
        )
    )
    pytester.runpytest("--llm-run-name=from-pytest").assert_outcomes(passed=1)
    scripts = pytester.mkdir("scripts")
    monkeypatch.chdir(scripts)

    result = run_experiment(name="from-script", dataset=ITEMS, task=echo)

    assert result.run.store_path == pytester.path / ".llmobs" / "llmobs.db"
    assert not (scripts / ".llmobs").exists()
    out = io.StringIO()
    with contextlib.redirect_stderr(io.StringIO()):
        assert main(["runs"], out) == 0
    assert "from-pytest" in out.getvalue()
    assert "from-script" in out.getvalue()


def test_by_default_the_store_follows_llm_store_in_the_config_file(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makefile(".toml", pyproject='[tool.pytest.ini_options]\nllm_store = "runs"\n')
    monkeypatch.chdir(pytester.mkdir("scripts"))

    result = run_experiment(name="configured", dataset=ITEMS, task=echo)

    assert result.run.store_path == pytester.path / "runs" / "llmobs.db"


# --- 5. retried attempts -------------------------------------------------------------------------


def _flaky(tries: dict[str, int], item: DatasetItem) -> str:
    tries[item.id] = tries.get(item.id, 0) + 1
    with start_span("attempt") as span:
        span.score("quality", 0.0 if tries[item.id] == 1 else 1.0)
        if tries[item.id] == 1:
            raise ConnectionError("transient")
    return "ok"


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_scores_of_a_failed_attempt_do_not_count_but_its_spans_stay(
    tmp_path: Path, kind: str
) -> None:
    tries: dict[str, int] = {}

    def task(item: DatasetItem) -> str:
        return _flaky(tries, item)

    async def atask(item: DatasetItem) -> str:
        return _flaky(tries, item)

    result = run_experiment(
        name="retry",
        dataset=[{"id": "a", "input": 1}],
        task=task if kind == "sync" else atask,
        retries=1,
        store=tmp_path,
    )

    assert (result.items[0].outcome, result.items[0].attempts) == ("passed", 2)
    assert result.aggregates["*"]["mean_quality"].value == 1.0
    trace = load(tmp_path, result.run_id)["items"][0]["trace"]
    assert [s["value"] for s in trace["scores"]] == [1.0]
    spans = [o for o in trace["observations"] if o["name"] == "attempt"]
    assert [o["level"] for o in spans] == ["ERROR", "DEFAULT"]  # each attempt visible
    root = trace["observations"][0]
    assert root["metadata"]["retried_scores"] == [
        {
            "attempt": 1,
            "name": "quality",
            "value": 0.0,
            "comment": None,
            "observation_id": spans[0]["id"],
        }
    ]


def test_an_item_whose_every_attempt_fails_keeps_the_last_attempts_scores(tmp_path: Path) -> None:
    tries: dict[str, int] = {}

    def task(item: DatasetItem) -> str:
        tries[item.id] = tries.get(item.id, 0) + 1
        with start_span("attempt") as span:
            span.score("quality", float(tries[item.id]))
            raise ConnectionError(f"attempt {tries[item.id]}")

    result = run_experiment(
        name="retry", dataset=[{"id": "a", "input": 1}], task=task, retries=1, store=tmp_path
    )

    assert (result.items[0].outcome, result.items[0].error) == (
        "error",
        "ConnectionError: attempt 2",
    )
    trace = load(tmp_path, result.run_id)["items"][0]["trace"]
    assert [s["value"] for s in trace["scores"]] == [2.0]
    retried = trace["observations"][0]["metadata"]["retried_scores"]
    assert [(s["attempt"], s["name"], s["value"]) for s in retried] == [(1, "quality", 1.0)]


# --- 8. observed generators left early -----------------------------------------------------------


@observe
def counted() -> Iterator[int]:
    yield from range(100)


@observe
async def acounted() -> AsyncIterator[int]:
    for n in range(100):
        yield n


async def stops_early(item: DatasetItem) -> str:
    for n in counted():
        if n == 2:
            break
    async for n in acounted():
        if n == 2:
            break
    return "done"


def test_observed_generators_left_early_record_what_they_yielded(tmp_path: Path) -> None:
    result = run_experiment(
        name="gen", dataset=[{"id": "a", "input": 1}], task=stops_early, store=tmp_path
    )

    observations = load(tmp_path, result.run_id)["items"][0]["trace"]["observations"]
    outputs = {o["name"]: o["output"] for o in observations[1:]}
    assert outputs == {"counted": [0, 1, 2], "acounted": [0, 1, 2]}


# --- 9. a sync task's model call cut off by the timeout ------------------------------------------


def test_a_sync_model_call_cut_off_by_the_timeout_is_stored_as_abandoned(tmp_path: Path) -> None:
    def slow(item: DatasetItem, llm: pytest_llmobs.LLM) -> str:
        return llm.generate(str(item.input)).text

    result = run_experiment(
        name="cut",
        dataset=[{"id": "a", "input": 1}],
        task=slow,
        model="mock-llm-v1?latency_ms=400",
        timeout_s=0.05,
        store=tmp_path,
    )

    assert result.items[0].outcome == "error"
    observations = load(tmp_path, result.run_id)["items"][0]["trace"]["observations"]
    generation = next(o for o in observations if o["type"] == "generation")
    assert (generation["level"], generation["status_message"], generation["output"]) == (
        "ERROR",
        "abandoned: the task timed out (timeout_s=0.05)",
        None,
    )
