"""Tests for the scorer, the item evaluators and the traced LLM client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from textwrap import dedent
from typing import Any

import pytest

import pytest_llmobs
from pytest_llmobs import evaluators
from pytest_llmobs.evaluators import EvalResult
from pytest_llmobs.llm import LLM, LLMResult, to_messages
from pytest_llmobs.observe_decorator import observe
from pytest_llmobs.prompts import Prompt
from pytest_llmobs.providers import ProviderError, default_registry
from pytest_llmobs.score_model import ScoreError
from pytest_llmobs.scorer import NoActiveTraceError, Scorer
from pytest_llmobs.trace_model import Observation, Trace
from pytest_llmobs.tracing import activate, set_standalone_sink, start_span

CAPITAL_PROMPT = Prompt(
    name="capital",
    version=3,
    type="chat",
    template=[
        {"role": "system", "content": "Answer with the city name only."},
        {"role": "user", "content": "What is the capital of {{country}}?"},
    ],
    config={"temperature": 0.3, "max_tokens": 20, "owner": "team-a"},
)


@pytest.fixture
def root() -> Iterator[Observation]:
    trace = Trace("t")
    with activate(Observation(trace, "root")) as observation:
        yield observation


@pytest.fixture
def scorer() -> Scorer:
    return Scorer()


def llm_for(spec: str = "mock-llm-v1") -> LLM:
    return LLM(default_registry().resolve(spec))


def generations(trace: Trace) -> list[Observation]:
    return [o for o in trace.observations if o.type == "generation"]


# --- Scorer.score ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "data_type"),
    [(True, "BOOLEAN"), (0.9, "NUMERIC"), (4, "NUMERIC"), ("relevant", "CATEGORICAL")],
)
def test_score_records_on_the_active_trace_with_its_type(
    root: Observation, scorer: Scorer, value: object, data_type: str
) -> None:
    score = scorer.score("quality", value, "a comment")
    assert root.trace.scores == [score]
    assert (score.name, score.value, score.data_type) == ("quality", value, data_type)
    assert score.comment == "a comment"
    assert score.trace_id == root.trace.id
    assert score.observation_id is None


def test_score_inside_a_span_still_targets_the_trace(root: Observation, scorer: Scorer) -> None:
    with start_span("step"):
        score = scorer.score("s", 1)
    assert score in root.trace.scores


def test_score_on_a_given_observation(root: Observation, scorer: Scorer) -> None:
    with start_span("retrieve") as span:
        pass
    score = scorer.score("recall", 0.5, observation=span, source="custom", metadata={"k": 3})
    assert score.observation_id == span.id
    assert (score.source, score.metadata) == ("custom", {"k": 3})


def test_score_outside_any_trace_raises(scorer: Scorer) -> None:
    with pytest.raises(NoActiveTraceError) as excinfo:
        scorer.score("quality", 1.0)
    assert str(excinfo.value) == (
        "score 'quality': no active trace; record scores inside a test or a traced span"
    )
    with pytest.raises(NoActiveTraceError, match="score 'exact_match': no active trace"):
        scorer.exact_match("a", "a")


def test_score_inside_a_standalone_span_records_on_that_trace(scorer: Scorer) -> None:
    received: list[Trace] = []
    previous = set_standalone_sink(received.append)
    try:

        @observe
        def job() -> None:
            scorer.score("done", True)

        job()
    finally:
        set_standalone_sink(previous)
    (trace,) = received
    assert [(s.name, s.value) for s in trace.scores] == [("done", True)]


@pytest.mark.parametrize("value", [float("nan"), None, [1]])
def test_invalid_score_values_are_rejected(
    root: Observation, scorer: Scorer, value: object
) -> None:
    with pytest.raises(ScoreError, match="score 'bad'"):
        scorer.score("bad", value)
    assert root.trace.scores == []


def test_an_integer_too_large_for_a_score_is_named_by_its_size(
    root: Observation, scorer: Scorer
) -> None:
    for value in (10**5000, -(10**5000)):  # (the minus sign was counted as a digit)
        with pytest.raises(ScoreError) as caught:
            scorer.score("big", value)
        assert str(caught.value) == (
            "score 'big': value must be a finite number (at most about 1.8e308); "
            "got an integer of 5001 digits"
        )


# --- exact_match ---------------------------------------------------------------------------------


def test_exact_match_pass_records_a_boolean_score(root: Observation, scorer: Scorer) -> None:
    result = scorer.exact_match(" Paris\n", "Paris")
    assert result
    assert result.passed is True
    (score,) = root.trace.scores
    assert (score.name, score.value, score.data_type) == ("exact_match", True, "BOOLEAN")
    assert score.source == "exact_match"
    assert score.comment is None


def test_exact_match_failure_is_recorded_and_falsy(root: Observation, scorer: Scorer) -> None:
    result = scorer.exact_match("Lyon", "Paris")
    assert not result
    (score,) = root.trace.scores
    assert (score.name, score.value, score.data_type) == ("exact_match", False, "BOOLEAN")
    assert score.comment == "expected 'Paris', got 'Lyon'"


def test_exact_match_name_overrides_the_score_name(root: Observation, scorer: Scorer) -> None:
    result = scorer.exact_match("a", "b", name="capital_correct")
    assert result.name == "capital_correct"
    (score,) = root.trace.scores
    assert score.name == "capital_correct"
    assert score.source == "exact_match"


def test_exact_match_options(root: Observation, scorer: Scorer) -> None:
    assert scorer.exact_match("PARIS", "paris", case_sensitive=False)
    assert not scorer.exact_match("PARIS", "paris")
    assert not scorer.exact_match(" Paris ", "Paris", strip=False)
    assert scorer.exact_match(42, "42")
    assert [s.value for s in root.trace.scores] == [True, False, False, True]


def test_exact_match_compares_a_dict_by_value(root: Observation, scorer: Scorer) -> None:
    expected = {"city": "Paris", "country": "France"}
    assert scorer.exact_match({"country": "France", "city": "Paris"}, expected)
    assert scorer.exact_match('{"country": "France", "city": "Paris"}', expected)
    assert not scorer.exact_match({"country": "France", "city": "Lyon"}, expected)
    assert [s.value for s in root.trace.scores] == [True, True, False]
    assert root.trace.scores[-1].comment == (
        "expected {'city': 'Paris', 'country': 'France'}, got {'country': 'France', 'city': "
        "'Lyon'}; at $.city: expected 'Paris', got 'Lyon'"
    )


def test_repeated_scores_get_distinct_ids(root: Observation, scorer: Scorer) -> None:
    first = scorer.exact_match("a", "a")
    second = scorer.exact_match("a", "b")
    assert bool(first) and not second
    ids = [s.id for s in root.trace.scores]
    assert len(set(ids)) == 2


def test_exact_match_repr_shows_expected_and_actual() -> None:
    failed = evaluators.exact_match("Lyon", "Paris")
    assert repr(failed) == "<exact_match FAILED value=False: expected 'Paris', got 'Lyon'>"
    assert repr(evaluators.exact_match("x", "x")) == "<exact_match passed value=True>"


def test_exact_match_repr_shortens_long_values() -> None:
    failed = evaluators.exact_match("y" * 500, "x" * 500)
    assert len(repr(failed)) < 250
    assert "expected 'xxx" in repr(failed) and "got 'yyy" in repr(failed)


def test_failed_assert_prints_expected_and_actual(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        dedent(
            """\
            from pytest_llmobs.scorer import Scorer
            from pytest_llmobs.trace_model import Observation, Trace
            from pytest_llmobs.tracing import activate

            def test_capital():
                with activate(Observation(Trace("t"), "root")):
                    assert Scorer().exact_match("Lyon", "Paris")
            """
        )
    )
    result = pytester.runpytest("-p", "no:llmobs")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*assert <exact_match FAILED value=False: expected 'Paris', got 'Lyon'>"]
    )


# --- char_length and EvalResult ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "bounds", "passed", "reason"),
    [
        ("hello", {}, True, ""),
        ("hello", {"min": 5, "max": 5}, True, ""),
        ("hello", {"min": 6}, False, "length 5 outside [6, ]"),
        ("hello", {"max": 4}, False, "length 5 outside [, 4]"),
        ("", {"min": 1, "max": 3}, False, "length 0 outside [1, 3]"),
    ],
)
def test_char_length(
    root: Observation,
    scorer: Scorer,
    text: str,
    bounds: dict[str, Any],
    passed: bool,
    reason: str,
) -> None:
    result = scorer.char_length(text, **bounds)
    assert bool(result) is passed
    assert result.value == len(text)
    assert result.reason == reason
    (score,) = root.trace.scores
    assert (score.name, score.value, score.data_type) == ("char_length", len(text), "NUMERIC")
    assert score.comment == (reason or None)


def test_char_length_with_a_custom_name(root: Observation, scorer: Scorer) -> None:
    scorer.char_length("abc", max=10, name="answer_length")
    (score,) = root.trace.scores
    assert (score.name, score.source) == ("answer_length", "char_length")


def test_eval_results_compare_with_numbers() -> None:
    length = evaluators.char_length("abcd")
    assert length >= 4
    assert length > 3.5
    assert length <= 4
    assert length < 5
    assert length == 4
    assert length != 3
    assert 3 < length  # noqa: SIM300 - the reflected comparison is the point
    assert float(length) == 4.0
    assert length >= evaluators.char_length("abc")
    match = evaluators.exact_match("a", "a")
    assert match >= 1
    assert match == 1.0
    assert match > 0.5
    assert not evaluators.exact_match("a", "b") >= 0.5


def test_eval_results_work_with_pytest_approx_and_round() -> None:
    result = EvalResult("fuzzy", 10 / 11, True)  # fuzzy("Pariss", "Paris")
    assert result == pytest.approx(0.909, abs=0.01)
    assert result != pytest.approx(0.5)
    assert float(result) == pytest.approx(0.909, abs=0.01)
    assert round(result, 2) == 0.91
    assert round(evaluators.char_length("abc")) == 3
    assert evaluators.exact_match("a", "a") == pytest.approx(1.0)
    with pytest.raises(TypeError, match=r"^cannot round the result of label: its value 'x' is"):
        round(EvalResult("label", "x", True))


def test_a_failed_approx_assertion_on_an_eval_result_shows_both(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        dedent(
            """\
            import pytest
            from pytest_llmobs.evaluators.fuzzy import fuzzy

            def test_close():
                assert fuzzy("Pariss", "Paris") == pytest.approx(0.909, abs=0.01)

            def test_far():
                assert fuzzy("Pariss", "Paris") == pytest.approx(0.5, abs=0.01)
            """
        )
    )
    result = pytester.runpytest("-p", "no:llmobs")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*assert <fuzzy passed value=0.9091> == 0.5 ± 0.01*"])


def test_eval_result_compared_with_text_is_an_error() -> None:
    with pytest.raises(TypeError, match="cannot compare an evaluator result with str"):
        _ = evaluators.char_length("ab") < "x"
    assert evaluators.char_length("ab") != "2"


def test_eval_result_is_hashable_and_public() -> None:
    result = EvalResult("x", 0.5, True)
    assert {result: 1}[result] == 1
    assert pytest_llmobs.EvalResult is EvalResult
    assert repr(EvalResult("fuzzy", 0.123456, False, "too far")) == (
        "<fuzzy FAILED value=0.1235: too far>"
    )


# --- LLM with the mock provider ----------------------------------------------------------------


def test_generate_records_a_generation(root: Observation) -> None:
    llm = llm_for()
    result = llm.generate("What is the capital of France?", temperature=0)
    assert isinstance(result, LLMResult)
    assert result.text == "Paris"
    assert str(result) == "Paris"
    assert result.model == "mock-llm-v1"
    (generation,) = generations(root.trace)
    assert generation.name == "llm.generate"
    assert generation.parent_id == root.id
    assert generation.input == [{"role": "user", "content": "What is the capital of France?"}]
    assert generation.output == "Paris"
    assert generation.model == "mock-llm-v1"
    assert generation.model_parameters == {"temperature": 0}
    usage = generation.usage
    assert usage is not None
    assert usage["input"] > 0 and usage["output"] > 0
    assert usage["total"] == usage["input"] + usage["output"]
    assert result.usage.to_dict() == usage
    assert generation.metadata["latency_ms"] == result.latency_ms
    assert result.latency_ms >= 0
    assert generation.end_time is not None
    assert generation.level == "DEFAULT"
    assert result.observation_id == generation.id
    assert (result.prompt_name, result.prompt_version) == (None, None)
    data = json.loads(json.dumps(root.trace.to_dict()))
    assert data["observations"][1]["usage"] == usage


def test_generate_with_a_compiled_prompt_links_it_and_uses_its_config(
    root: Observation,
) -> None:
    compiled = CAPITAL_PROMPT.compile(country="Japan")
    result = llm_for().generate(compiled)
    assert result.text == "Tokyo"
    assert (result.prompt_name, result.prompt_version) == ("capital", 3)
    (generation,) = generations(root.trace)
    assert generation.name == "capital"
    assert generation.input == compiled.messages
    assert (generation.prompt_name, generation.prompt_version) == ("capital", 3)
    # Only model parameters come from the config; other keys are not sent to the model.
    assert generation.model_parameters == {"temperature": 0.3, "max_tokens": 20}
    data = generation.to_dict()
    assert (data["prompt_name"], data["prompt_version"]) == ("capital", 3)


def test_call_parameters_override_the_prompt_config(root: Observation) -> None:
    llm_for().generate(CAPITAL_PROMPT.compile(country="Japan"), temperature=0.9, seed=1)
    (generation,) = generations(root.trace)
    assert generation.model_parameters == {"temperature": 0.9, "max_tokens": 20, "seed": 1}


def test_prompt_version_links_hand_built_messages(root: Observation) -> None:
    messages = [{"role": "user", "content": "What is the capital of Italy?"}]
    result = llm_for().generate(messages, prompt_version=CAPITAL_PROMPT, name="custom")
    assert result.text == "Rome"
    (generation,) = generations(root.trace)
    assert generation.name == "custom"
    assert generation.input == messages
    assert (generation.prompt_name, generation.prompt_version) == ("capital", 3)
    assert generation.model_parameters == {"temperature": 0.3, "max_tokens": 20}


@pytest.mark.parametrize("link", [2, "capital"])
def test_prompt_version_given_a_number_or_a_name_says_what_it_takes(
    root: Observation, link: object
) -> None:
    with pytest.raises(TypeError) as excinfo:
        llm_for().generate("Capital of Italy?", prompt_version=link)  # type: ignore[arg-type]
    assert str(excinfo.value) == (
        "prompt_version= takes the prompt the messages came from: a Prompt (prompt(name)) or a "
        f"CompiledPrompt (.compile(...)); got {type(link).__name__} {link!r}"
    )
    assert generations(root.trace) == []  # nothing was called or recorded


def test_generation_nests_under_the_current_span(root: Observation) -> None:
    llm = llm_for()

    @observe
    def answer(country: str) -> str:
        return llm.generate(f"What is the capital of {country}?").text

    assert answer("Peru") == "Lima"
    spans = {o.name: o for o in root.trace.observations}
    assert spans["llm.generate"].parent_id == spans["answer"].id


def test_provider_error_marks_the_generation_and_propagates(root: Observation) -> None:
    llm = llm_for("mock-llm-v1?error_rate=1")
    with pytest.raises(ProviderError) as excinfo:
        llm.generate("What is the capital of France?")
    (generation,) = generations(root.trace)
    assert generation.level == "ERROR"
    assert generation.status_message == f"ProviderError: {excinfo.value}"
    assert "simulated" in str(generation.status_message)
    assert generation.end_time is not None
    assert generation.output is None


def test_agenerate_under_asyncio_run(root: Observation) -> None:
    llm = llm_for()

    async def main() -> list[str]:
        results = await asyncio.gather(
            llm.agenerate("What is the capital of Kenya?"),
            llm.agenerate(CAPITAL_PROMPT.compile(country="Chile")),
        )
        return [r.text for r in results]

    assert asyncio.run(main()) == ["Nairobi", "Santiago"]
    recorded = generations(root.trace)
    assert [g.output for g in recorded] == ["Nairobi", "Santiago"]
    assert {g.parent_id for g in recorded} == {root.id}
    assert recorded[1].prompt_name == "capital"
    assert all(g.usage and g.usage["total"] > 0 for g in recorded)


def test_agenerate_error_marks_the_generation(root: Observation) -> None:
    llm = llm_for("mock-llm-v1?error_rate=1")
    with pytest.raises(ProviderError):
        asyncio.run(llm.agenerate("hi"))
    (generation,) = generations(root.trace)
    assert generation.level == "ERROR"
    assert generation.status_message is not None
    assert generation.status_message.startswith("ProviderError: ")


def test_generate_outside_a_trace_starts_a_standalone_trace() -> None:
    received: list[dict[str, Any]] = []
    previous = set_standalone_sink(lambda trace: received.append(trace.to_dict()))
    try:
        llm_for().generate("What is the capital of Spain?")
    finally:
        set_standalone_sink(previous)
    (trace,) = received
    (generation,) = trace["observations"]
    assert generation["type"] == "generation"
    assert generation["output"] == "Madrid"
    assert generation["usage"]["total"] > 0


def test_generate_rejects_bad_prompts(root: Observation) -> None:
    llm = llm_for()
    with pytest.raises(TypeError, match="expects a string, a compiled prompt or a list"):
        llm.generate(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="message 0: expected a mapping with 'role' and 'content'"):
        llm.generate([{"text": "hi"}])
    with pytest.raises(TypeError, match="message 0: 'content' is None; only an assistant"):
        llm.generate([{"role": "user", "content": None}])
    # the mock answered these; a real server refuses them
    with pytest.raises(ValueError) as caught:
        llm.generate([{"role": "system", "content": "s"}, {"role": "User", "content": "hi"}])
    assert str(caught.value) == (
        "message 1: unknown role 'User'; expected one of system, developer, user, assistant, "
        "tool, function"
    )
    with pytest.raises(ValueError, match=r"^generate\(\) got no messages; expected a string or"):
        llm.generate([])
    assert generations(root.trace) == []


def test_to_messages_normalises_inputs() -> None:
    assert to_messages("hi") == [{"role": "user", "content": "hi"}]
    assert to_messages([{"role": "system", "content": "s"}]) == [{"role": "system", "content": "s"}]
    compiled = Prompt(name="p", version=1, type="text", template="x").compile()
    assert to_messages(compiled) == [{"role": "user", "content": "x"}]
    assert to_messages([{"role": "user", "content": 42}]) == [{"role": "user", "content": "42"}]
    given = [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    copied = to_messages(given)
    given[0]["content"][0]["text"] = "changed later"  # type: ignore[index]
    assert copied == [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    parts = ({"type": "text", "text": "hi"},)  # a tuple of parts: sent as parts, not a repr
    assert to_messages([{"role": "user", "content": parts}]) == copied
    assert repr(llm_for()) == "LLM(model='mock-llm-v1')"


@pytest.mark.parametrize(
    ("returned", "value", "data_type", "passed"),
    [
        pytest.param("float32", 0.5, "NUMERIC", True, id="float32"),
        pytest.param("float64-low", 0.25, "NUMERIC", False, id="float64-below-threshold"),
        pytest.param("int64", 3, "NUMERIC", True, id="int64"),
        pytest.param("bool-true", True, "BOOLEAN", True, id="bool_-true"),
        pytest.param("bool-false", False, "BOOLEAN", False, id="bool_-false"),
    ],
)
def test_a_custom_evaluator_may_return_numpy_scalars(
    root: Observation, returned: str, value: object, data_type: str, passed: bool
) -> None:
    import numpy as np

    values: dict[str, Any] = {
        "float32": np.float32(0.5),
        "float64-low": np.float64(0.25),
        "int64": np.int64(3),
        "bool-true": np.bool_(True),
        "bool-false": np.bool_(False),
    }

    @pytest_llmobs.evaluator(threshold=0.4)
    def numpy_valued(output: str) -> Any:
        return values[output]

    result = numpy_valued(returned)

    assert (result.value, type(result.value), result.passed) == (value, type(value), passed)
    (score,) = root.trace.scores
    assert (score.value, score.data_type) == (value, data_type)


def test_a_custom_evaluator_returning_a_numpy_array_is_still_rejected() -> None:
    import numpy as np

    from pytest_llmobs.evaluators.custom import EvaluatorError

    @pytest_llmobs.evaluator
    def vector(output: str) -> Any:
        return np.array([0.5])

    with pytest.raises(EvaluatorError) as caught:
        vector("x")

    assert str(caught.value) == (
        "evaluator 'vector' returned ndarray array([0.5]); "
        "expected bool, int, float (numpy scalars too), str or EvalResult"
    )


def test_scorer_text_evaluators_fail_a_none_output(root: Observation, scorer: Scorer) -> None:
    results = [
        scorer.exact_match(None, "None"),
        scorer.contains(None, "none"),
        scorer.fuzzy(None, "None"),
        scorer.label(None, "None"),
        scorer.similarity(None, "None"),
        scorer.groundedness(None, "None"),
    ]

    assert not any(results)
    recorded = [(s.name, s.value, s.comment) for s in root.trace.scores]
    reason = "output is None, not text"
    assert recorded == [
        ("exact_match", False, reason),
        ("contains", False, reason),
        ("fuzzy", 0.0, reason),
        ("label", "(none)", reason),
        ("similarity", 0.0, reason),
        ("groundedness", 0.0, reason),
    ]


# --- what a score may be recorded with -----------------------------------------------------------


@pytest.mark.parametrize(
    ("comment", "shown"),
    [(123, "int 123"), ({"checked": "2026-01-01"}, "dict {'checked': '2026-01-01'}")],
)
def test_a_comment_that_is_not_text_is_refused_at_record_time(
    root: Observation, scorer: Scorer, comment: object, shown: str
) -> None:
    with pytest.raises(ScoreError) as caught:
        scorer.score("x", 1, comment)  # type: ignore[arg-type]
    assert str(caught.value) == f"score 'x': comment must be a str or None; got {shown}"
    assert root.trace.scores == []


def test_a_custom_evaluator_reason_that_is_not_text_is_refused(root: Observation) -> None:
    @pytest_llmobs.evaluator
    def odd(output: str) -> EvalResult:
        return EvalResult("odd", 1.0, True, 7)  # type: ignore[arg-type]

    with pytest.raises(ScoreError, match=r"comment must be a str or None; got int 7"):
        odd("x")
    assert root.trace.scores == []


def test_a_score_whose_aggregates_take_a_built_in_aggregate_name_is_refused(
    root: Observation, scorer: Scorer
) -> None:
    with pytest.raises(ScoreError) as caught:
        scorer.score("latency_ms", 5000.0)
    assert str(caught.value) == (
        "score 'latency_ms': its aggregates mean_latency_ms, max_latency_ms, p50_latency_ms,"
        " p95_latency_ms would take the names of the run's own aggregates (from generations,"
        " count, pass_rate); use another score name"
    )
    assert root.trace.scores == []
    scorer.score("latency_ms", "slow")  # a categorical one gives counts_latency_ms: no clash
    assert [s.name for s in root.trace.scores] == ["latency_ms"]


def test_a_score_name_keeps_one_kind_in_a_session(root: Observation, scorer: Scorer) -> None:
    scorer.score("quality", 0.2)
    scorer.score("quality", True)  # booleans aggregate as numbers: the same kind
    with pytest.raises(ScoreError) as caught:
        scorer.score("quality", "excellent")
    assert str(caught.value) == (
        "score 'quality' is a string ('excellent') but was recorded as a number (or bool) before"
        " in this session; one name must keep one kind, so record this one under another name"
    )
    scorer.label("positive", "positive", name="sentiment")
    with pytest.raises(ScoreError, match=r"'sentiment' is a string .* recorded as a label"):
        scorer.score("sentiment", "positive")
    assert [s.name for s in root.trace.scores] == ["quality", "quality", "sentiment"]


@pytest.mark.parametrize("name", ["a\nb", "tab\there", "zero\u200bwidth", "bell\x07"])
def test_a_score_name_with_control_characters_is_refused(
    root: Observation, scorer: Scorer, name: str
) -> None:
    with pytest.raises(ScoreError, match=r"holds a control or invisible character") as caught:
        scorer.score(name, 1.0)
    assert "\n" not in str(caught.value)
    assert root.trace.scores == []


def test_a_bad_comment_fails_its_test_and_the_session_records_the_others(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini("[pytest]\nllm_model = mock-llm-v1\n")
    pytester.makepyfile(
        test_c=dedent(
            """\
            import datetime

            def test_a(scorer):
                scorer.score("y", 1, comment={"checked": datetime.date(2026, 1, 1)})

            def test_b(scorer):
                scorer.score("z", 1)
            """
        )
    )
    result = pytester.runpytest("--llm-json=out.json")
    result.assert_outcomes(failed=1, passed=1)
    assert "INTERNALERROR" not in result.stdout.str()
    result.stdout.fnmatch_lines(
        ["*ScoreError: score 'y': comment must be a str or None; got dict*"]
    )
    stored = json.loads((pytester.path / "out.json").read_text(encoding="utf-8"))
    assert "mean_z" in {a["name"] for a in stored["aggregates"]["*"]}
