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


# --- 7. the project's configuration: governance, model, datasets, retries -----------------------

MASKING_INI = """\
[pytest]
pythonpath = src
llm_redact = strict
llm_redact_maskers = exp_masking_pkg.masking:customer_ids
"""


def _masking_project(root: Path) -> None:
    package = root / "src" / "exp_masking_pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "masking.py").write_text(
        "import re\n\n"
        "def customer_ids(text):\n    return re.sub(r'CUST-\\d+', '<CUSTOMER>', text)\n"
    )


def _stored_input(root: Path, store_dir: str = ".llmobs") -> Any:
    from conftest import Runs

    (item,) = Runs(root).latest(store_dir)["items"]
    return item["input"]


def test_the_config_files_redaction_applies_to_experiments_as_to_pytest(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    _masking_project(pytester.path)
    pytester.makeini(MASKING_INI)
    text = "customer CUST-4242 account 12345678"
    pytester.mkdir("datasets").joinpath("pii.jsonl").write_text(
        json.dumps({"id": "a", "input": text}) + "\n"
    )
    pytester.makepyfile(
        test_pii="""
        import pytest

        @pytest.mark.llm_dataset("pii")
        def test_pii(item):
            pass
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)
    from_pytest = _stored_input(pytester.path)
    monkeypatch.chdir(pytester.mkdir("scripts"))  # the masker is found by the ini's pythonpath

    run_experiment(name="pii", dataset=[{"id": "a", "input": text}], task=echo)

    assert _stored_input(pytester.path) == from_pytest == "customer <CUSTOMER> account <NUMBER>"


def test_a_store_given_as_a_path_follows_the_project_policy_a_store_object_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytest_llmobs.governance import Governance
    from pytest_llmobs.redaction import Redactor
    from pytest_llmobs.store import Store

    _masking_project(tmp_path)
    (tmp_path / "pytest.ini").write_text(MASKING_INI)
    monkeypatch.chdir(tmp_path)
    items = [{"id": "a", "input": "CUST-1 ann@example.org"}]

    run_experiment(name="path", dataset=items, task=echo, store="elsewhere")
    own = Store.in_directory(tmp_path / "own", governance=Governance(Redactor("off")))
    try:
        run_experiment(name="own", dataset=items, task=echo, store=own)
    finally:
        own.close()

    assert _stored_input(tmp_path, "elsewhere") == "<CUSTOMER> <EMAIL>"
    assert _stored_input(tmp_path, "own") == "CUST-1 ann@example.org"


def test_the_summary_shows_item_errors_as_the_store_holds_them_masked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no config file: the default policy

    def task(item: DatasetItem) -> int:
        if item.id == "i1":
            raise ValueError("always bad sk-LEAKKEYLEAKKEY123456789")
        return item.input

    def ev(output: int, item: DatasetItem) -> bool:
        if item.id == "i2":
            raise RuntimeError("call +1 415 555 0100")
        return True

    result = run_experiment(name="leak", dataset=ITEMS, task=task, evaluators=[ev])

    summary = result.summary().splitlines()
    stored = {i["item_id"]: i["error"] for i in load(tmp_path / ".llmobs", result.run_id)["items"]}
    assert summary[-3:] == [
        "2 item(s) errored:",
        "  i1: ValueError: always bad <SECRET>",
        "  i2: evaluator 'ev' raised RuntimeError: call <PHONE>",
    ]
    assert f"  i1: {stored['i1']}" in summary and f"  i2: {stored['i2']}" in summary
    # the objects the caller holds keep their real values
    assert result.items[1].error == "ValueError: always bad sk-LEAKKEYLEAKKEY123456789"


@pytest.mark.parametrize(
    ("ini", "addopts", "message"),
    [
        (
            "llm_redact = strikt",
            "",
            "llm_redact in {ini}: 'strikt' is not a redaction mode; valid: off, default, strict",
        ),
        (
            "llm_redact_maskers = no_such_pkg.m:f",
            "",
            "llm_redact_maskers in {ini}: masker 'no_such_pkg.m:f' cannot be imported",
        ),
        ("llm_max_field_chars = 5", "", "llm_max_field_chars in {ini}: 5 is too small"),
        ("llm_trace_sample = half", "", "llm_trace_sample in {ini}: 'half' is not a number"),
        ("", "--llm-redact=none", "--llm-redact in PYTEST_ADDOPTS: 'none' is not a redaction"),
        ("addopts = -o llm_max_retries=-1", "", "-o llm_max_retries in addopts must be an integer"),
    ],
    ids=["redact", "masker", "max-field-chars", "trace-sample", "flag", "max-retries"],
)
def test_a_bad_project_option_is_refused_naming_it_before_any_task_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ini: str, addopts: str, message: str
) -> None:
    (tmp_path / "pytest.ini").write_text(f"[pytest]\n{ini}\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYTEST_ADDOPTS", addopts)
    calls: list[str] = []

    def task(item: DatasetItem, llm: pytest_llmobs.LLM) -> str:
        calls.append(item.id)
        return "x"

    with pytest.raises(ValueError) as raised:
        run_experiment(name="bad", dataset=ITEMS, task=task)

    assert message.format(ini=tmp_path / "pytest.ini") in str(raised.value)
    assert calls == []
    assert not (tmp_path / ".llmobs").exists()


def test_model_and_datasets_dir_default_to_the_config_files_from_a_subdirectory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\nllm_model = mock-llm-v1?accuracy=0.0\nllm_datasets_dir = data\n"
    )
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "caps.jsonl").write_text(
        '{"id": "fr", "input": "What is the capital of France?", "expected_output": "Paris"}\n'
    )
    (tmp_path / "scripts").mkdir()
    monkeypatch.chdir(tmp_path / "scripts")

    def task(item: DatasetItem, llm: pytest_llmobs.LLM) -> str:
        return llm.generate(item.input).text

    result = run_experiment(name="caps", dataset="caps", task=task, store=None)
    explicit = run_experiment(
        name="caps",
        dataset="caps",
        task=task,
        model="mock-llm-v1",
        store=None,
        datasets_dir=tmp_path / "data",
    )

    assert result.run.model == "mock-llm-v1?accuracy=0.0"
    assert result.items[0].output != "Paris"  # accuracy 0: always wrong
    assert explicit.run.model == "mock-llm-v1"
    assert explicit.items[0].output == "Paris"


class _FailsOnce:
    """A custom provider whose first call to each prompt fails with a retryable error."""

    model = "flaky"

    def __init__(self) -> None:
        self.options: dict[str, Any] = {}
        self.seen: set[str] = set()

    def _answer(self, messages: list[Any]) -> Any:
        from pytest_llmobs.providers.base import ModelResponse, ProviderError

        prompt = str(messages[-1]["content"])
        if prompt not in self.seen:
            self.seen.add(prompt)
            raise ProviderError("503 busy", status=503, retryable=True, retry_after=0.0)
        return ModelResponse(text="ok", model=self.model)

    def complete(self, messages: list[Any], **params: Any) -> Any:
        return self._answer(messages)

    async def acomplete(self, messages: list[Any], **params: Any) -> Any:
        return self._answer(messages)


@pytest.mark.parametrize("retries", [None, "0"])
def test_model_errors_are_retried_as_the_llm_fixture_retries_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, retries: str | None
) -> None:
    if retries is not None:
        (tmp_path / "pytest.ini").write_text(f"[pytest]\nllm_max_retries = {retries}\n")
    monkeypatch.chdir(tmp_path)

    def task(item: DatasetItem, llm: pytest_llmobs.LLM) -> str:
        return llm.generate(f"q{item.input}").text

    result = run_experiment(name="r", dataset=ITEMS, task=task, model=_FailsOnce(), store=None)

    outcomes = {i.outcome for i in result.items}
    assert outcomes == ({"passed"} if retries is None else {"error"})


def _generation(root: Path) -> dict[str, Any]:
    from conftest import Runs

    (item,) = Runs(root).latest()["items"]
    (generation,) = [o for o in item["trace"]["observations"] if o["type"] == "generation"]
    return dict(generation)


def test_model_calls_are_priced_as_the_llm_fixture_prices_them(pytester: pytest.Pytester) -> None:
    pytester.path.joinpath("prices.json").write_text(
        json.dumps({"mock-llm-v1": {"input": 1_000_000, "output": 2_000_000}})
    )
    pytester.makeini("[pytest]\nllm_prices = prices.json\n")
    question = "What is the capital of France?"
    pytester.mkdir("datasets").joinpath("caps.jsonl").write_text(
        json.dumps({"id": "fr", "input": question}) + "\n"
    )
    pytester.makepyfile(
        test_caps="""
        import pytest

        @pytest.mark.llm_dataset("caps")
        def test_caps(item, llm):
            llm.generate(item.input)
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)
    from_pytest = _generation(pytester.path)

    def task(item: DatasetItem, llm: pytest_llmobs.LLM) -> str:
        return llm.generate(item.input).text

    run_experiment(name="caps", dataset=[{"id": "fr", "input": question}], task=task)
    from_script = _generation(pytester.path)

    usage = from_pytest["usage"]
    assert from_pytest["cost"] == usage["input"] * 1.0 + usage["output"] * 2.0 > 0
    assert from_script["cost"] == from_pytest["cost"]


def test_the_config_files_cache_records_and_replays_experiment_calls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    def task(item: DatasetItem, llm: pytest_llmobs.LLM) -> str:
        return llm.generate(f"What is the capital of {item.input}?").text

    def run(mode: str, countries: list[str]) -> list[Any]:
        (tmp_path / "pytest.ini").write_text(f"[pytest]\nllm_cache = {mode}\n")
        items = [{"id": c, "input": c} for c in countries]
        result = run_experiment(name="c", dataset=items, task=task, store=None)
        return [(i.outcome, i.output, i.error) for i in result.items]

    recorded = run("write", ["France"])
    replayed = run("read", ["France", "Peru"])

    assert recorded == [("passed", "Paris", None)]
    assert len(list((tmp_path / "llm-cache").rglob("*.json"))) == 1
    assert replayed[0] == ("passed", "Paris", None)
    assert replayed[1][0] == "error"
    assert "cache miss" in str(replayed[1][2]).lower()


@pytest.mark.parametrize(
    ("ini", "message"),
    [
        ("llm_cache = sometimes", "llm_cache in {ini}: 'sometimes' is not a valid mode"),
        ("llm_prices = nowhere.json", "llm_prices in {ini}: cannot read"),
    ],
    ids=["cache-mode", "prices"],
)
def test_a_bad_cache_mode_or_price_file_is_refused_naming_where_it_was_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ini: str, message: str
) -> None:
    (tmp_path / "pytest.ini").write_text(f"[pytest]\n{ini}\n")
    monkeypatch.chdir(tmp_path)

    with pytest.raises(ValueError) as raised:
        run_experiment(name="bad", dataset=ITEMS, task=echo, model="mock-llm-v1", store=None)

    assert str(raised.value).startswith(message.format(ini=tmp_path / "pytest.ini"))


def test_replaying_from_the_cache_an_openai_model_needs_no_api_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\nllm_cache = read\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)

    def task(item: DatasetItem, llm: pytest_llmobs.LLM) -> str:
        return llm.generate(str(item.input)).text

    result = run_experiment(
        name="r", dataset=ITEMS[:1], task=task, model="openai:gpt-4o-mini", store=None
    )

    (item,) = result.items
    assert item.outcome == "error"
    assert str(item.error).startswith("CacheMissError: llm cache miss (--llm-cache=read)")


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_task_or_evaluator_changing_its_item_changes_it_for_no_attempt_and_no_record(
    kind: str,
) -> None:
    given = {"id": "c", "input": {"messages": [{"role": "user", "content": "hi"}]}}
    seen: list[int] = []

    def change(item: DatasetItem) -> None:
        seen.append(len(item.input["messages"]))
        item.input["messages"].append({"role": "assistant", "content": "x"})
        item.metadata["touched"] = True

    def sync_task(item: DatasetItem) -> str:
        change(item)
        if len(seen) == 1:
            raise RuntimeError("first attempt fails")
        return "ok"

    async def async_task(item: DatasetItem) -> str:
        return sync_task(item)

    def evaluator(output: str, item: DatasetItem) -> bool:
        change(item)
        return True

    result = run_experiment(
        name="copies",
        dataset=[given],
        task=sync_task if kind == "sync" else async_task,
        evaluators={"one": evaluator, "two": evaluator},
        retries=1,
        store=None,
    )

    (item,) = result.items
    assert item.outcome == "passed"
    assert seen == [1, 1, 1, 1]  # two attempts, two evaluators: each saw the item as given
    assert item.input == {"messages": [{"role": "user", "content": "hi"}]}
    assert given["input"] == {"messages": [{"role": "user", "content": "hi"}]}
