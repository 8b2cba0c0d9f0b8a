"""``llm_judge``: parsing judge answers, the mock model's deterministic judge mode, and the link
from a judge generation to its rubric's prompt version."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from pytest_llmobs.evaluators.judge import (
    JudgeError,
    llm_judge,
    parse_judgement,
    rubric_settings,
)
from pytest_llmobs.llm import LLM
from pytest_llmobs.prompts import BUILTIN_PROMPTS_DIR, PromptRegistry
from pytest_llmobs.providers import ModelResponse, default_registry
from pytest_llmobs.scorer import Scorer
from pytest_llmobs.store import Store
from pytest_llmobs.trace_model import Observation, Trace
from pytest_llmobs.tracing import activate

RUBRICS = ["judge/correctness", "judge/groundedness", "judge/relevance"]

# --- parse_judgement ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "scale", "score", "reasoning"),
    [
        pytest.param(
            "Score: 0.8\nReasoning: States the capital correctly.",
            (0.0, 1.0),
            0.8,
            "States the capital correctly.",
            id="score-and-reasoning-lines",
        ),
        pytest.param("score = 4/5", (0.0, 1.0), 4 / 5, "", id="fraction"),
        pytest.param(
            '{"score": 3, "reasoning": "x"}', (1.0, 5.0), (3 - 1) / (5 - 1), "x", id="json-1-to-5"
        ),
        pytest.param("**Score:** 0.7", (0.0, 1.0), 0.7, "", id="markdown-bold"),
        pytest.param(
            'Here is my verdict:\n```json\n{"score": 8, "reason": "mostly right"}\n```',
            (0.0, 10.0),
            8 / 10,
            "mostly right",
            id="fenced-json-with-reason",
        ),
        pytest.param(
            'I weighed {style, facts}. {"score": 0.6, "reasoning": "ok"}',
            (0.0, 1.0),
            0.6,
            "ok",
            id="json-after-braces-in-prose",
        ),
        pytest.param(
            "Reasoning: One claim is unsupported.\nScore: 0.5",
            (0.0, 1.0),
            0.5,
            "One claim is unsupported.",
            id="reasoning-before-score",
        ),
        pytest.param("SCORE: 5\nREASONING: perfect", (1.0, 5.0), 1.0, "perfect", id="upper-case"),
        pytest.param("Score: 0", (0.0, 1.0), 0.0, "", id="zero-is-a-score"),
        pytest.param(
            "Reasoning: this deserves score: 2 at most.\nScore: 5",
            (1.0, 5.0),
            1.0,
            "this deserves score: 2 at most.",
            id="a-score-in-the-reasoning-is-not-the-score-line",
        ),
        pytest.param(
            "Score: 4\nReasoning: better than score: 2",
            (1.0, 5.0),
            0.75,
            "better than score: 2",
            id="a-score-in-a-later-reasoning-is-not-the-score-line",
        ),
        pytest.param("Score: 2\n**Score:** 4", (1.0, 5.0), 0.75, "", id="the-last-score-line"),
        pytest.param("I'd say score: 2, final score: 4", (1.0, 5.0), 0.75, "", id="no-line"),
        pytest.param("Score: 4/5", (1.0, 5.0), 0.75, "", id="denominator-is-the-scale-top"),
        pytest.param("Score: 8/10", (0.0, 1.0), 0.8, "", id="denominator-replaces-the-top"),
        pytest.param("Score: 4. Good answer.", (1.0, 5.0), 0.75, "Good answer.", id="after-a-dot"),
        pytest.param("Score: 4/5, as asked", (1.0, 5.0), 0.75, "as asked", id="after-a-comma"),
        pytest.param(
            'Score: 1\n{"score": 4, "reasoning": "json"}',
            (1.0, 5.0),
            0.75,
            "json",
            id="json-comes-before-the-score-line",
        ),
        pytest.param(
            '{"score": "4", "reasoning": "quoted"}',
            (1.0, 5.0),
            0.75,
            "quoted",
            id="json-score-as-a-numeric-string",
        ),
    ],
)
def test_parse_judgement(
    answer: str, scale: tuple[float, float], score: float, reasoning: str
) -> None:
    value, why = parse_judgement(answer, scale=scale)

    assert value == pytest.approx(score)
    assert why == reasoning


@pytest.mark.parametrize(
    ("answer", "scale", "message"),
    [
        (
            "Score: 7",
            (0.0, 1.0),
            "judge score 7 in the answer 'Score: 7' is outside the rubric's scale 0..1",
        ),
        (
            "Score: 6/5",
            (0.0, 1.0),
            "judge score 6/5 in the answer 'Score: 6/5' is outside the scale it names, 0..5",
        ),
        (
            "Score: 6/5",
            (1.0, 5.0),
            "judge score 6/5 in the answer 'Score: 6/5' is outside the scale it names, 1..5",
        ),
        (
            '{"score": NaN}',
            (0.0, 1.0),
            """judge score nan in the answer '{"score": NaN}' is not a finite number; """
            "expected a number on the rubric's scale 0..1",
        ),
        (
            "Score: 0/0",
            (1.0, 5.0),
            "judge score 0/0 in the answer 'Score: 0/0': the denominator must be above the "
            "rubric's lowest score 1; expected 'Score: <number>' on the rubric's scale 1..5",
        ),
        (
            "Score: 3/1",
            (1.0, 5.0),
            "judge score 3/1 in the answer 'Score: 3/1': the denominator must be above the "
            "rubric's lowest score 1; expected 'Score: <number>' on the rubric's scale 1..5",
        ),
        (
            '{"score": 0}',
            (1.0, 5.0),
            """judge score 0 in the answer '{"score": 0}' is outside the rubric's scale 1..5""",
        ),
        (
            "Score: -0.5",
            (0.0, 1.0),
            "judge score -0.5 in the answer 'Score: -0.5' is outside the rubric's scale 0..1",
        ),
    ],
)
def test_a_score_outside_the_scale_or_not_a_number_is_an_error(
    answer: str, scale: tuple[float, float], message: str
) -> None:
    with pytest.raises(JudgeError) as caught:
        parse_judgement(answer, scale=scale)

    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("answer", "shown"),
    [
        ("Score: 4/5/6", "'4/5/6'"),
        ("Score: 4 / 5 / 6\nReasoning: fine", "'4 / 5 / 6'"),
        ("Score: 4.5.6", "'4.5.6'"),
        ("Score: 4,5", "'4,5'"),
        ("Score: 3\nScore: 2/5/6", "'2/5/6'"),
    ],
)
def test_a_score_running_on_is_an_error_not_its_first_number(answer: str, shown: str) -> None:
    # (before: "Score: 4/5/6" was 4/5 with the reasoning "/6", "Score: 4.5.6" 4.5)
    with pytest.raises(JudgeError) as caught:
        parse_judgement(answer, scale=(1.0, 5.0))
    assert str(caught.value) == (
        f"judge score {shown} in the answer {answer!r} is not a number; expected "
        "'Score: <number>' or 'Score: <number>/<top of scale>'"
    )


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ("Score: 1e2", "judge score 1e2 in the answer 'Score: 1e2' is outside the rubric's"),
        ("Score: 1e999", "judge score 1e999 in the answer 'Score: 1e999' is not a finite number"),
        ('{"score": ' + "9" * 400 + "}", "judge score 99999"),
    ],
    ids=["exponent", "overflowing-exponent", "400-digit-json-score"],
)
def test_a_score_written_with_an_exponent_or_too_large_is_out_of_scale(
    answer: str, message: str
) -> None:
    # (before: "1e2" and "1e999" were read as 1, a full mark; the long integer an OverflowError)
    with pytest.raises(JudgeError) as caught:
        parse_judgement(answer)
    assert str(caught.value).startswith(message)
    assert parse_judgement("Score: 5e-1") == (0.5, "")


@pytest.mark.parametrize(
    "answer",
    [
        "looks fine to me",
        "I would score it highly.",
        '{"score": "high", "reasoning": "x"}',
        '{"score": true}',
        "",
    ],
)
def test_an_answer_without_a_score_is_an_error_showing_the_answer(answer: str) -> None:
    with pytest.raises(JudgeError) as caught:
        parse_judgement(answer)

    assert str(caught.value) == (
        f"no score in the judge's answer {answer!r}; expected a line 'Score: <number>' "
        "or a JSON object with a numeric 'score'"
    )


def test_a_long_answer_without_a_score_is_shortened_in_the_error() -> None:
    answer = "This output is reasonable. " * 40

    with pytest.raises(JudgeError) as caught:
        parse_judgement(answer)

    shown = repr(answer[:197] + "...")
    assert f"no score in the judge's answer {shown};" in str(caught.value)


def test_a_long_answer_with_a_score_outside_the_scale_is_shortened_in_the_error() -> None:
    answer = "This output is reasonable. " * 40 + "\nScore: 9"

    with pytest.raises(JudgeError) as caught:
        parse_judgement(answer, scale=(1.0, 5.0))

    shown = repr(answer[:197] + "...")
    assert str(caught.value) == (
        f"judge score 9 in the answer {shown} is outside the rubric's scale 1..5"
    )


def test_an_x_over_n_score_agrees_with_the_bare_score_on_the_rubric_scale() -> None:
    for score in range(1, 6):
        bare = parse_judgement(f"Score: {score}", scale=(1.0, 5.0))
        assert parse_judgement(f"Score: {score}/5", scale=(1.0, 5.0)) == bare


@pytest.mark.parametrize(
    ("config", "threshold", "message"),
    [
        ({"scale": [3, 3]}, None, "r: config 'scale' [3, 3] is not valid; "),
        ({"scale": [5, 1]}, None, "r: config 'scale' [5, 1] is not valid; "),
        ({"scale": [5]}, None, "r: config 'scale' [5] is not valid; "),
        ({"scale": "1-5"}, None, "r: config 'scale' '1-5' is not valid; "),
        ({"scale": [True, 5]}, None, "r: config 'scale' [True, 5] is not valid; "),
        ({"scale": [0, float("inf")]}, None, "r: config 'scale' [0, inf] is not valid; "),
        ({"threshold": "high"}, None, "r: config 'threshold' 'high' is not valid; "),
        ({}, 1.5, "r: threshold=1.5 is not valid; "),
    ],
)
def test_a_bad_rubric_config_is_a_judge_error_saying_what_is_expected(
    config: dict[str, Any], threshold: float | None, message: str
) -> None:
    with pytest.raises(JudgeError) as caught:
        rubric_settings(config, where="r", threshold=threshold)

    expected = (
        "expected [low, high], two numbers with low < high, e.g. [1, 5]"
        if "scale" in message
        else "expected a number from 0 to 1 (compared with the score mapped to 0..1)"
    )
    assert str(caught.value) == message + expected


def test_rubric_settings_defaults_and_the_threshold_argument() -> None:
    assert rubric_settings({}, where="r") == ((0.0, 1.0), 0.5)
    assert rubric_settings({"scale": [1, 5], "threshold": 0.7}, where="r") == ((1.0, 5.0), 0.7)
    assert rubric_settings({"threshold": 0.7}, where="r", threshold=0.2) == ((0.0, 1.0), 0.2)


# --- the mock judge through llm_judge -----------------------------------------------------------


@pytest.fixture
def root() -> Iterator[Observation]:
    with activate(Observation(Trace("t"), "root")) as observation:
        yield observation


@pytest.fixture
def prompts(tmp_path: Path) -> Iterator[PromptRegistry]:
    store = Store(None)
    yield PromptRegistry(tmp_path / "prompts", store)
    store.close()


def judge_llm(spec: str = "mock-llm-v1") -> LLM:
    return LLM(default_registry().resolve(spec))


def judge_generations(root: Observation) -> list[Observation]:
    return [
        o
        for o in root.trace.observations
        if o.type == "generation" and o.name.startswith("llm_judge:")
    ]


CORRECTNESS: dict[str, Any] = {"input": "What is the capital of France?", "reference": "Paris"}
CONTEXT = (
    "The Eiffel Tower stands on the Champ de Mars in Paris. "
    "It was completed in 1889 for the World's Fair."
)


def judge(
    prompts: PromptRegistry, rubric: str, output: str, llm: LLM | None = None, **variables: Any
) -> tuple[float, bool, str]:
    result = llm_judge(rubric, output, llm=llm or judge_llm(), prompts=prompts, **variables)
    return float(result.value), result.passed, result.reason


def test_mock_judge_grades_a_right_answer_above_a_wrong_one(
    root: Observation, prompts: PromptRegistry
) -> None:
    right = judge(prompts, "judge/correctness", "The capital of France is Paris.", **CORRECTNESS)
    wrong = judge(prompts, "judge/correctness", "The capital of France is Lyon.", **CORRECTNESS)

    assert right[0] > wrong[0]
    assert (right[1], wrong[1]) == (True, False)  # the rubric's threshold lies between them
    assert 0.0 <= wrong[0] < right[0] <= 1.0


def test_mock_judge_grades_an_extractive_answer_more_grounded_than_a_hallucinated_one(
    root: Observation, prompts: PromptRegistry
) -> None:
    extractive = judge(prompts, "judge/groundedness", "It was completed in 1889.", context=CONTEXT)
    invented = judge(
        prompts, "judge/groundedness", "Gustave Eiffel designed it in 1901.", context=CONTEXT
    )

    assert extractive[0] > invented[0]
    assert (extractive[1], invented[1]) == (True, False)


def test_mock_judge_grades_an_on_topic_answer_more_relevant_than_an_off_topic_one(
    root: Observation, prompts: PromptRegistry
) -> None:
    question = "What is the capital of France?"
    on_topic = judge(prompts, "judge/relevance", "The capital of France is Paris.", input=question)
    off_topic = judge(prompts, "judge/relevance", "I enjoy chess on weekends.", input=question)

    assert on_topic[0] > off_topic[0]
    assert (on_topic[1], off_topic[1]) == (True, False)


def test_mock_judge_is_deterministic(root: Observation, prompts: PromptRegistry) -> None:
    output = "Paris is the capital, on the Seine."

    first = judge(prompts, "judge/correctness", output, **CORRECTNESS)
    again = judge(prompts, "judge/correctness", output, **CORRECTNESS)
    other_instance = judge(prompts, "judge/correctness", output, judge_llm(), **CORRECTNESS)

    assert first == again == other_instance
    answers = {g.output for g in judge_generations(root)}
    assert len(answers) == 1


def test_judge_reasoning_is_the_reason_and_a_failure_names_the_threshold(
    root: Observation, prompts: PromptRegistry
) -> None:
    value, passed, reason = judge(
        prompts, "judge/correctness", "Lyon.", threshold=0.9, **CORRECTNESS
    )

    (generation,) = judge_generations(root)
    _, reasoning = parse_judgement(str(generation.output))
    assert not passed
    assert reason == f"judge score {value:.2f} < 0.9: {reasoning}"


class Says:
    """A provider whose judge always gives one answer."""

    options: ClassVar[dict[str, Any]] = {}

    def __init__(self, text: str) -> None:
        self.text = text
        self.model = "says"

    def complete(self, messages: list[dict[str, str]], **params: Any) -> ModelResponse:
        return ModelResponse(text=self.text, model=self.model)

    async def acomplete(self, messages: list[dict[str, str]], **params: Any) -> ModelResponse:
        return self.complete(messages, **params)


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ("Score: 0", "judge score 0.00 < 0.5"),
        ("Score: 0\nReasoning: wrong city", "judge score 0.00 < 0.5: wrong city"),
        ("Score: 1", ""),
    ],
)
def test_a_judge_failure_without_reasoning_ends_at_the_threshold(
    root: Observation, prompts: PromptRegistry, answer: str, reason: str
) -> None:
    result = llm_judge(
        "judge/correctness", "Lyon", llm=LLM(Says(answer)), prompts=prompts, **CORRECTNESS
    )
    assert result.reason == reason


def test_judge_threshold_argument_beats_the_rubric_threshold(
    root: Observation, prompts: PromptRegistry
) -> None:
    half_right: dict[str, Any] = {
        "input": "Where is the capital of France?",
        "reference": "Paris, Seine",
    }
    rubric_threshold = prompts.get("judge/correctness").config["threshold"]

    default = llm_judge(
        "judge/correctness", "Paris", llm=judge_llm(), prompts=prompts, **half_right
    )
    strict = llm_judge(
        "judge/correctness",
        "Paris",
        llm=judge_llm(),
        prompts=prompts,
        threshold=float(default.value) + 0.1,
        **half_right,
    )

    assert strict.value == default.value >= rubric_threshold
    assert (default.passed, strict.passed) == (True, False)


# --- the judge generation and its rubric's prompt version ---------------------------------------


@pytest.mark.parametrize("rubric", RUBRICS)
def test_judge_generation_links_the_rubric_prompt_version(
    root: Observation, prompts: PromptRegistry, rubric: str
) -> None:
    variables: dict[str, Any] = {
        "input": "What is the capital of France?",
        "reference": "Paris",
        "context": "x",
    }
    rubric_prompt = prompts.get(rubric)
    needed = {k: v for k, v in variables.items() if k in rubric_prompt.variables}

    result = llm_judge(rubric, "Paris", llm=judge_llm(), prompts=prompts, **needed)

    (generation,) = judge_generations(root)
    assert generation.name == f"llm_judge:{rubric}"
    assert (generation.prompt_name, generation.prompt_version) == (rubric, 1)
    assert generation.model == "mock-llm-v1"
    assert generation.model_parameters == {"temperature": 0}  # threshold, scale: not call params
    assert generation.input == rubric_prompt.compile(output="Paris", **needed).messages
    assert generation.level == "DEFAULT"
    assert result.name == "judge_" + rubric.rsplit("/", 1)[-1]


def test_a_changed_rubric_override_is_a_new_version_of_the_same_prompt(
    tmp_path: Path, root: Observation
) -> None:
    builtin = json.loads((BUILTIN_PROMPTS_DIR / "judge" / "relevance.json").read_text())
    store = Store(None)
    try:
        first = PromptRegistry(tmp_path / "prompts", store)
        llm_judge("judge/relevance", "Paris", llm=judge_llm(), prompts=first, input="Capital?")
        override = tmp_path / "prompts" / "judge" / "relevance.json"
        override.parent.mkdir(parents=True)
        builtin["prompt"][0]["content"] += "\nBe strict."
        override.write_text(json.dumps(builtin), encoding="utf-8")
        second = PromptRegistry(tmp_path / "prompts", store)  # the next session's registry
        llm_judge("judge/relevance", "Paris", llm=judge_llm(), prompts=second, input="Capital?")
    finally:
        store.close()

    linked = [(g.prompt_name, g.prompt_version) for g in judge_generations(root)]
    assert linked == [("judge/relevance", 1), ("judge/relevance", 2)]
    assert str(judge_generations(root)[1].input[0]["content"]).endswith("Be strict.")


class Unsure:
    """A provider that never gives a score."""

    model = "unsure"
    options: ClassVar[dict[str, Any]] = {}

    def complete(self, messages: list[dict[str, str]], **params: Any) -> ModelResponse:
        return ModelResponse(text="looks fine to me", model=self.model)

    async def acomplete(self, messages: list[dict[str, str]], **params: Any) -> ModelResponse:
        return self.complete(messages, **params)


def test_an_unparsable_judge_answer_raises_and_marks_the_judge_generation(
    root: Observation, prompts: PromptRegistry
) -> None:
    scorer = Scorer(judge=LLM(Unsure()), prompts=prompts)

    with pytest.raises(JudgeError) as caught:
        scorer.llm_judge("judge/correctness", "Paris", **CORRECTNESS)

    detail = (
        "no score in the judge's answer 'looks fine to me'; expected a line 'Score: <number>' "
        "or a JSON object with a numeric 'score'"
    )
    assert str(caught.value) == f"llm_judge 'judge/correctness': {detail}"
    (generation,) = judge_generations(root)
    assert generation.level == "ERROR"
    assert generation.status_message == f"JudgeError: {detail}"
    assert generation.output == "looks fine to me"
    assert root.trace.scores == []  # never a silent 0


class Overshoots:
    """A provider whose judge answers above a 1..5 scale."""

    model = "overshoots"
    options: ClassVar[dict[str, Any]] = {}

    def complete(self, messages: list[dict[str, str]], **params: Any) -> ModelResponse:
        return ModelResponse(text="Score: 9\nReasoning: flawless", model=self.model)

    async def acomplete(self, messages: list[dict[str, str]], **params: Any) -> ModelResponse:
        return self.complete(messages, **params)


def test_a_judge_score_outside_the_rubric_scale_raises_showing_the_answer(
    tmp_path: Path, root: Observation, prompts: PromptRegistry
) -> None:
    rubric = tmp_path / "prompts" / "judge" / "r15.json"
    rubric.parent.mkdir(parents=True)
    rubric.write_text(
        json.dumps({"type": "text", "prompt": "Grade: {{output}}", "config": {"scale": [1, 5]}}),
        encoding="utf-8",
    )
    scorer = Scorer(judge=LLM(Overshoots()), prompts=prompts)

    with pytest.raises(JudgeError) as caught:
        scorer.llm_judge("judge/r15", "x")

    detail = (
        "judge score 9 in the answer 'Score: 9\\nReasoning: flawless' is outside the rubric's "
        "scale 1..5"
    )
    assert str(caught.value) == f"llm_judge 'judge/r15': {detail}"
    (generation,) = judge_generations(root)
    assert generation.level == "ERROR"
    assert generation.status_message == f"JudgeError: {detail}"
    assert root.trace.scores == []


@pytest.mark.parametrize(
    ("output", "reference", "reason"),
    [
        (None, "None", "output is None, not text"),
        ("Paris", None, "expected is None: the item has no expected output to compare with"),
    ],
)
def test_a_none_output_or_reference_fails_without_asking_the_judge(
    root: Observation,
    prompts: PromptRegistry,
    output: str | None,
    reference: str | None,
    reason: str,
) -> None:
    result = llm_judge(
        "judge/correctness",
        output,
        llm=judge_llm(),
        prompts=prompts,
        input="What did the tool return?",
        reference=reference,
    )

    assert (result.name, result.value, result.passed, result.reason) == (
        "judge_correctness",
        0.0,
        False,
        reason,
    )
    assert judge_generations(root) == []
