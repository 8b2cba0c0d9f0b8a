"""Tests for the deterministic mock model ``mock-llm-v1``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pytest_llmobs.providers.base import (
    Message,
    ModelResponse,
    Provider,
    ProviderError,
    UnknownModelError,
)
from pytest_llmobs.providers.capitals import CAPITALS
from pytest_llmobs.providers.mock import IDK_ANSWER, MOCK_MODEL_NAME, MockLLM
from pytest_llmobs.providers.retry import ATTEMPT

ROOT = Path(__file__).resolve().parents[1]

PHRASINGS = [
    "What is the capital of {}?",
    "capital of {}?",
    "{}'s capital?",
    "Which city is the capital of {}?",
    "Name the capital city of {}.",
    "The capital of {} is",
    "What's the capital city of {}?",
    "what is the capital of {}",
    "WHAT IS THE CAPITAL OF {}",
]

CONTEXT = (
    "Acme was founded in 1999 in Oslo. "
    "Refunds are accepted within 30 days of delivery. "
    "Standard shipping takes five business days."
)


REFUND_PROMPT = f"Context: {CONTEXT}\nQuestion: How long do refunds take?"
SHIPPING_PROMPT = f"How many days does shipping take?\nContext:\n{CONTEXT}"


def ask(question: str) -> list[Message]:
    return [{"role": "user", "content": question}]


def answer(model: MockLLM, question: str, **params: object) -> str:
    return model.complete(ask(question), **params).text


def test_satisfies_the_provider_protocol() -> None:
    model = MockLLM.from_spec("mock-llm-v1")
    assert isinstance(model, Provider)
    assert model.model == MOCK_MODEL_NAME == "mock-llm-v1"
    assert dict(model.options) == {
        "accuracy": 1.0,
        "latency_ms": 0.0,
        "error_rate": 0.0,
        "seed": 0,
    }
    response = model.complete(ask("What is the capital of France?"))
    assert isinstance(response, ModelResponse)
    assert response.model == "mock-llm-v1"
    assert response.metadata == {"mock": {"wrong": False, "kind": "capital"}}


def test_options_are_parsed() -> None:
    model = MockLLM.from_spec("mock-llm-v1?accuracy=0.8&latency_ms=50&error_rate=0.1&seed=7")
    assert dict(model.options) == {
        "accuracy": 0.8,
        "latency_ms": 50.0,
        "error_rate": 0.1,
        "seed": 7,
    }


@pytest.mark.parametrize("phrasing", PHRASINGS)
@pytest.mark.parametrize("country", ["France", "Japan", "Italy", "Spain", "Germany", "Kenya"])
def test_each_phrasing_answers_the_capital(phrasing: str, country: str) -> None:
    model = MockLLM.from_spec("mock-llm-v1")
    assert answer(model, phrasing.format(country)) == CAPITALS[country]


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("What is the capital of the United States?", "Washington, D.C."),
        ("capital of the USA", "Washington, D.C."),
        ("What is the capital of the United States of America?", "Washington, D.C."),
        ("What is the capital of the United Kingdom?", "London"),
        ("the UK's capital?", "London"),
        ("What is the capital of South Korea?", "Seoul"),
        ("What is the capital of the Czech Republic?", "Prague"),
        ("Czechia’s capital city?", "Prague"),
        ("Tell us the capital of Peru", "Lima"),
        ("capital of the netherlands", "Amsterdam"),
    ],
)
def test_aliases_and_case(question: str, expected: str) -> None:
    assert answer(MockLLM.from_spec("mock-llm-v1"), question) == expected


def test_knows_many_capitals() -> None:
    model = MockLLM.from_spec("mock-llm-v1")
    assert len(CAPITALS) >= 60
    answers = {answer(model, f"What is the capital of {country}?") for country in CAPITALS}
    assert answers == set(CAPITALS.values())
    assert len(answers) >= 50


def test_question_is_the_last_user_message() -> None:
    messages: list[Message] = [
        {"role": "system", "content": "You answer geography questions."},
        {"role": "user", "content": "What is the capital of France?"},
        {"role": "assistant", "content": "Paris"},
        {"role": "user", "content": "And the capital of Norway?"},
    ]
    assert MockLLM.from_spec("mock-llm-v1").complete(messages).text == "Oslo"


def test_content_parts_are_read_by_their_text() -> None:
    parts = [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        {"type": "text", "text": "What is the capital of Norway?"},
    ]
    messages: list[Message] = [{"role": "user", "content": parts}]
    assert MockLLM.from_spec("mock-llm-v1").complete(messages).text == "Oslo"
    text = "Context: Zorblat is the capital of Quux.\nQuestion: What is the capital of Quux?"
    as_text = MockLLM.from_spec("mock-llm-v1").complete([{"role": "user", "content": text}])
    as_parts = MockLLM.from_spec("mock-llm-v1").complete(
        [{"role": "user", "content": [{"type": "text", "text": text}]}]
    )
    # (before: the context line and the token count were read from the parts' Python repr)
    assert (as_parts.text, as_parts.usage) == (as_text.text, as_text.usage)
    assert as_parts.metadata["mock"]["kind"] == "context"


@pytest.mark.parametrize(
    ("messages", "expected"),
    [
        (
            [{"role": "user", "content": REFUND_PROMPT}],
            "Refunds are accepted within 30 days of delivery.",
        ),
        (
            [
                {"role": "system", "content": f"Answer from this.\n<context>{CONTEXT}</context>"},
                {"role": "user", "content": "When was Acme founded?"},
            ],
            "Acme was founded in 1999 in Oslo.",
        ),
        (
            [{"role": "user", "content": SHIPPING_PROMPT}],
            "Standard shipping takes five business days.",
        ),
    ],
)
def test_context_answer_is_extractive(messages: list[Message], expected: str) -> None:
    response = MockLLM.from_spec("mock-llm-v1").complete(messages)
    assert response.text == expected
    assert response.text in CONTEXT
    assert response.metadata["mock"] == {"wrong": False, "kind": "context"}


def test_two_equally_good_adjacent_sentences_are_returned_verbatim() -> None:
    context = (
        "Refund requests need a receipt. Refund requests close after 30 days. Shipping is free."
    )
    messages = ask(f"Context: {context}\nQuestion: How do refund requests work?")
    text = MockLLM.from_spec("mock-llm-v1").complete(messages).text
    assert text == "Refund requests need a receipt. Refund requests close after 30 days."
    assert text in context


def test_a_single_shared_word_picks_the_first_sentence_only() -> None:
    messages = ask(f"Context: {CONTEXT}\nQuestion: Where was it founded?")
    text = MockLLM.from_spec("mock-llm-v1").complete(messages).text
    assert text == "Acme was founded in 1999 in Oslo."


def test_irrelevant_context_gives_i_dont_know() -> None:
    messages = ask(f"Context: {CONTEXT}\nQuestion: What colour is the sky on Mars?")
    assert MockLLM.from_spec("mock-llm-v1").complete(messages).text == IDK_ANSWER
    assert IDK_ANSWER == "I don't know based on the provided context."


def test_context_takes_precedence_over_capital_knowledge() -> None:
    messages: list[Message] = [
        {"role": "system", "content": "<context>The sky is blue. Grass is green.</context>"},
        {"role": "user", "content": "What is the capital of France?"},
    ]
    assert MockLLM.from_spec("mock-llm-v1").complete(messages).text == IDK_ANSWER


def test_canned_answer_mentions_key_words() -> None:
    model = MockLLM.from_spec("mock-llm-v1")
    response = model.complete(ask("How do I reset my password?"))
    assert response.text.startswith("Mock answer: How do I reset my password.")
    assert "reset" in response.text and "password" in response.text
    assert response.text.count(".") <= 2
    assert response.metadata["mock"] == {"wrong": False, "kind": "canned"}
    assert model.complete(ask("How do I reset my password?")).text == response.text


def test_support_agent_greets_with_the_company() -> None:
    messages: list[Message] = [
        {"role": "system", "content": "You are a polite support agent for Acme."},
        {"role": "user", "content": "My order hasn't arrived. What should I do?"},
    ]
    text = MockLLM.from_spec("mock-llm-v1").complete(messages).text
    assert text.startswith("Thank you for contacting Acme. Mock answer:")
    assert "order" in text and "arrived" in text


def test_usage_counts_tokens() -> None:
    messages: list[Message] = [
        {"role": "system", "content": "Be brief."},  # Be, brief, .  -> 3
        {"role": "user", "content": "What is the capital of the United States?"},  # 9
    ]
    response = MockLLM.from_spec("mock-llm-v1").complete(messages)
    assert response.text == "Washington, D.C."
    assert response.usage.input == 12
    assert response.usage.output == 6  # Washington , D . C .
    assert response.usage.total == 18


def test_max_tokens_truncates() -> None:
    model = MockLLM.from_spec("mock-llm-v1")
    full = answer(model, "How do I reset my password?")
    short = model.complete(ask("How do I reset my password?"), max_tokens=3, temperature=0.7)
    assert short.text == " ".join(full.split()[:3]) == "Mock answer: How"
    assert short.usage.output == 4  # Mock, answer, :, How
    assert answer(model, "capital of France", max_tokens=5, seed=1) == "Paris"


def failing(accuracy: float, seed: int) -> set[str]:
    model = MockLLM.from_spec(f"mock-llm-v1?accuracy={accuracy}&seed={seed}")
    wrong = set()
    for country, capital in CAPITALS.items():
        response = model.complete(ask(f"What is the capital of {country}?"))
        assert response.metadata["mock"]["wrong"] == (response.text != capital)
        if response.text != capital:
            assert response.text in CAPITALS.values()
            wrong.add(country)
    return wrong


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_lower_accuracy_fails_a_superset(seed: int) -> None:
    high, mid, low = (failing(acc, seed) for acc in (0.9, 0.7, 0.5))
    assert high <= mid <= low
    for accuracy, failed in ((0.9, high), (0.7, mid), (0.5, low)):
        share = len(failed) / len(CAPITALS)
        assert abs(share - (1 - accuracy)) <= 0.15, (accuracy, share)
    assert failing(1.0, seed) == set()
    assert failing(0.0, seed) == set(CAPITALS)


def test_wrong_context_answer_is_another_sentence() -> None:
    question = "How long do refunds take?"
    expected = "Refunds are accepted within 30 days of delivery."
    messages = ask(f"Context: {CONTEXT}\nQuestion: {question}")
    response = MockLLM.from_spec("mock-llm-v1?accuracy=0").complete(messages)
    assert response.metadata["mock"] == {"wrong": True, "kind": "context"}
    assert response.text != expected and response.text in CONTEXT
    single = ask(f"Context: {expected}\nQuestion: {question}")
    assert MockLLM.from_spec("mock-llm-v1?accuracy=0").complete(single).text == IDK_ANSWER


DETERMINISM_SCRIPT = """
import json
from pytest_llmobs.providers.capitals import CAPITALS
from pytest_llmobs.providers.mock import MockLLM

model = MockLLM.from_spec("mock-llm-v1?accuracy=0.5&error_rate=0.3&seed=3")
out = []
for country in CAPITALS:
    for question in (f"capital of {country}?", f"Tell me about {country}."):
        try:
            out.append(model.complete([{"role": "user", "content": question}]).text)
        except Exception as exc:
            out.append(f"{type(exc).__name__}: {exc}")
print(json.dumps(out))
"""


def run_script(hash_seed: str) -> list[str]:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", DETERMINISM_SCRIPT],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        cwd=ROOT,
    )
    result: list[str] = json.loads(done.stdout)
    return result


def test_deterministic_across_processes_and_hash_seeds() -> None:
    first, second = run_script("1"), run_script("2")
    assert first == second
    assert any(text.startswith("ProviderError") for text in first)
    assert len(set(first)) > len(CAPITALS)  # answers really vary


def test_latency_waits_at_least_the_configured_time() -> None:
    model = MockLLM.from_spec("mock-llm-v1?latency_ms=50")
    start = time.perf_counter()
    response = model.complete(ask("capital of France"))
    assert (time.perf_counter() - start) * 1000 >= 50
    assert response.latency_ms >= 50
    assert MockLLM.from_spec("mock-llm-v1").complete(ask("hi")).latency_ms >= 0


def test_async_calls_wait_and_overlap() -> None:
    model = MockLLM.from_spec("mock-llm-v1?latency_ms=100")

    async def main() -> tuple[list[ModelResponse], float]:
        start = time.perf_counter()
        questions = [f"What is the capital of {c}?" for c in list(CAPITALS)[:10]]
        responses = await asyncio.gather(*(model.acomplete(ask(q)) for q in questions))
        return list(responses), (time.perf_counter() - start) * 1000

    responses, elapsed_ms = asyncio.run(main())
    assert [r.text for r in responses] == list(CAPITALS.values())[:10]
    assert all(r.latency_ms >= 100 for r in responses)
    assert elapsed_ms < 10 * 100  # the ten waits overlapped


def attempted(model: MockLLM, question: str, number: int) -> str:
    """The model's answer to ``question`` as attempt ``number`` of a call (as the retry loop
    that runs every provider call numbers it)."""
    token = ATTEMPT.set(number)
    try:
        return answer(model, question)
    finally:
        ATTEMPT.reset(token)


def test_error_rate_raises_retryable_errors_and_retry_succeeds() -> None:
    model = MockLLM.from_spec("mock-llm-v1?error_rate=0.5&seed=1")
    errors: list[ProviderError] = []
    for country in CAPITALS:
        question = f"What is the capital of {country}?"
        for number in range(1, 51):
            try:
                assert attempted(model, question, number) == CAPITALS[country]
                break
            except ProviderError as exc:
                errors.append(exc)
        else:
            pytest.fail(f"no retry succeeded for {question!r}")
    assert errors
    assert {e.status for e in errors} == {429, 500}
    for error in errors:
        assert error.retryable
        assert "mock-llm-v1" in str(error) and "simulated" in str(error)
        assert "error_rate=0.5" in str(error)
        if error.status == 429:
            assert error.retry_after == 0.0 and "429 Too Many Requests" in str(error)
        else:
            assert "500 Internal Server Error" in str(error)


def test_errors_are_drawn_by_question_and_attempt_whatever_ran_before() -> None:
    """A call fails the same way in any process, after any other calls (``-k``, xdist): the
    draw depended on how often the process had asked the question before."""

    def outcomes(model: MockLLM) -> list[str]:
        result = []
        for number in range(1, 21):
            try:
                result.append(attempted(model, "What is the capital of Chile?", number))
            except ProviderError as exc:
                result.append(str(exc.status))
        return result

    fresh = outcomes(MockLLM.from_spec("mock-llm-v1?error_rate=0.4&seed=5"))
    used = MockLLM.from_spec("mock-llm-v1?error_rate=0.4&seed=5")
    for _ in range(7):  # earlier calls of the same question, each a first attempt
        with contextlib.suppress(ProviderError):
            attempted(used, "What is the capital of Chile?", 1)
    assert outcomes(used) == fresh
    assert "Santiago" in fresh and any(o in ("429", "500") for o in fresh)


def test_async_errors_too() -> None:
    model = MockLLM.from_spec("mock-llm-v1?error_rate=1")
    with pytest.raises(ProviderError) as info:
        asyncio.run(model.acomplete(ask("capital of France")))
    assert info.value.status in {429, 500} and info.value.retryable


def test_error_rate_zero_never_raises() -> None:
    model = MockLLM.from_spec("mock-llm-v1?error_rate=0&seed=9")
    for _ in range(3):
        for country in CAPITALS:
            assert answer(model, f"capital of {country}") == CAPITALS[country]


KNOWN = "known options: accuracy (0..1), latency_ms (>= 0), error_rate (0..1), seed (int)"


@pytest.mark.parametrize(
    ("spec", "named"),
    [
        ("mock-llm-v1?acuracy=0.8", "'acuracy'"),
        ("mock-llm-v1?temperature=0", "'temperature'"),
        ("mock-llm-v1?accuracy=high", "'accuracy'"),
        ("mock-llm-v1?accuracy=", "'accuracy'"),
        ("mock-llm-v1?accuracy=1.5", "'accuracy'"),
        ("mock-llm-v1?accuracy=-0.1", "'accuracy'"),
        ("mock-llm-v1?accuracy=nan", "'accuracy'"),
        ("mock-llm-v1?error_rate=2", "'error_rate'"),
        ("mock-llm-v1?latency_ms=-5", "'latency_ms'"),
        ("mock-llm-v1?latency_ms=inf", "'latency_ms'"),
        ("mock-llm-v1?seed=1.5", "'seed'"),
        ("mock-llm-v1?seed=abc", "'seed'"),
        ("mock-llm-v1?seed=1&seed=2", "'seed'"),
        ("mock-llm-v1?accuracy", "'accuracy'"),
    ],
)
def test_bad_options_raise_unknown_model_error(spec: str, named: str) -> None:
    with pytest.raises(UnknownModelError) as info:
        MockLLM.from_spec(spec)
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert named in message
    assert message.startswith("mock-llm-v1: ")
    assert message.endswith(KNOWN)
    assert "\n" not in message


@pytest.mark.parametrize("spec", ["mock-llm-v2", "gpt-4o?accuracy=1", "mock-llm"])
def test_other_model_names_are_rejected(spec: str) -> None:
    with pytest.raises(UnknownModelError, match="mock-llm-v1"):
        MockLLM.from_spec(spec)


def test_constructor_validates_too() -> None:
    with pytest.raises(UnknownModelError, match="'error_rate'"):
        MockLLM(error_rate=1.2)
    assert MockLLM(accuracy=0.5, seed=2).options["accuracy"] == 0.5
