"""The OpenAI-compatible provider against a real HTTP server on 127.0.0.1 (`fake_openai`).

Waits between attempts go through an injected sleep, so the tests read the *requested* waits
(Retry-After honoured, backoff bounded) without waiting for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import random
import re
import socket
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from textwrap import dedent
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import pytest
from fake_openai import (
    FAKE_API_KEY,
    FakeOpenAI,
    RecordedRequest,
    Reply,
    answer,
    closed_url,
    drop,
    error,
    fake_openai,
    malformed,
    openai_env,
    slow,
    trickle,
)

import pytest_llmobs
from pytest_llmobs.llm import LLM
from pytest_llmobs.prompts import Prompt
from pytest_llmobs.providers import (
    ConfigError,
    ProviderError,
    UnknownModelError,
    default_registry,
)
from pytest_llmobs.providers.openai import OpenAIProvider
from pytest_llmobs.providers.openai_errors import looks_like_credential
from pytest_llmobs.providers.openai_response import Overdue, within_deadline
from pytest_llmobs.providers.pricing import PriceError, PriceTable
from pytest_llmobs.providers.retry import CallError, RetryPolicy
from pytest_llmobs.trace_model import Observation, Trace
from pytest_llmobs.tracing import activate

if TYPE_CHECKING:
    from conftest import Runs

__all__ = ["fake_openai", "openai_env"]  # fixtures used here, imported from fake_openai

USAGE_ERROR = pytest.ExitCode.USAGE_ERROR
MINI_INPUT, MINI_OUTPUT = 0.15, 0.60  # USD per 1M tokens, gpt-4o-mini in the built-in table


class Waits:
    """An injectable sleep: records each requested wait and returns at once."""

    def __init__(self) -> None:
        self.requested: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.requested.append(seconds)

    async def asleep(self, seconds: float) -> None:
        self.requested.append(seconds)


@pytest.fixture
def waits() -> Waits:
    return Waits()


def make_provider(
    url: str,
    waits: Waits,
    *,
    model: str = "gpt-4o-mini",
    timeout: float = 10.0,
    max_retries: int = 3,
    key: str = FAKE_API_KEY,
) -> OpenAIProvider:
    policy = RetryPolicy(
        max_retries=max_retries, rng=random.Random(7), sleep=waits.sleep, asleep=waits.asleep
    )
    return OpenAIProvider(model, api_key=key, base_url=url, timeout=timeout, retry=policy)


@pytest.fixture
def provider(fake_openai: FakeOpenAI, waits: Waits) -> Iterator[OpenAIProvider]:
    model = make_provider(fake_openai.url, waits)
    yield model
    model.close()


def ask(question: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": question}]


def failure_from_spec(env: dict[str, str]) -> str:
    """The message of the error a call of ``OpenAIProvider.from_spec("gpt-4o-mini", env=env)``
    raises (the server's queued reply must be an error)."""
    provider = OpenAIProvider.from_spec("gpt-4o-mini", env=env)
    with contextlib.closing(provider), pytest.raises(ProviderError) as excinfo:
        provider.complete(ask("hi"))
    return str(excinfo.value)


# --- answers, parameters, usage, cost -----------------------------------------------------------


def test_chat_answer_with_usage_and_cost(fake_openai: FakeOpenAI, provider: OpenAIProvider) -> None:
    fake_openai.queue(
        answer("Paris", prompt_tokens=12, completion_tokens=3, model="gpt-4o-mini-2024-07-18")
    )
    messages = [{"role": "system", "content": "Be brief."}, *ask("Capital of France?")]

    response = provider.complete(messages)

    assert response.text == "Paris"
    assert response.model == "gpt-4o-mini-2024-07-18"
    assert (response.usage.input, response.usage.output, response.usage.total) == (12, 3, 15)
    assert response.cost == pytest.approx((12 * MINI_INPUT + 3 * MINI_OUTPUT) / 1e6)
    assert response.metadata["finish_reason"] == "stop"
    (request,) = fake_openai.requests
    assert (request.method, request.path) == ("POST", "/v1/chat/completions")
    assert request.headers["authorization"] == f"Bearer {FAKE_API_KEY}"
    assert request.json == {"model": "gpt-4o-mini", "messages": messages}


def test_call_parameters_are_forwarded(fake_openai: FakeOpenAI, provider: OpenAIProvider) -> None:
    params: dict[str, Any] = {
        "temperature": 0.2,
        "max_tokens": 50,
        "seed": 11,
        "top_p": 0.9,
        "stop": ["\n\n"],
        "response_format": {"type": "json_object"},
    }
    provider.complete(ask("hi"), **params)
    assert fake_openai.requests[0].params == params


def test_reasoning_models_get_max_completion_tokens(fake_openai: FakeOpenAI, waits: Waits) -> None:
    model = make_provider(fake_openai.url, waits, model="o3-mini")
    try:
        model.complete(ask("hi"), max_tokens=64)
    finally:
        model.close()
    assert fake_openai.requests[0].params == {"max_completion_tokens": 64}


PROMPT_CALL_PARAMS: dict[str, Any] = {
    "max_completion_tokens": 300,
    "reasoning_effort": "low",
    "tools": [{"type": "function", "function": {"name": "lookup", "parameters": {}}}],
    "tool_choice": "auto",
    "parallel_tool_calls": False,
    "service_tier": "flex",
    "user": "eval-suite",
}


def test_a_prompt_configs_chat_completion_parameters_are_sent_and_its_app_settings_are_not(
    fake_openai: FakeOpenAI, waits: Waits
) -> None:
    config = {**PROMPT_CALL_PARAMS, "team": "support", "threshold": 0.5}
    prompt = Prompt(name="ask", version=1, type="text", template="{{q}}", config=config)
    model = make_provider(fake_openai.url, waits, model="o3-mini")
    trace = Trace("t")
    try:
        with activate(Observation(trace, "root")):
            LLM(model).generate(prompt.compile(q="Capital of France?"), seed=5)
    finally:
        model.close()

    assert fake_openai.requests[0].params == {**PROMPT_CALL_PARAMS, "seed": 5}
    (generation,) = [o for o in trace.observations if o.type == "generation"]
    assert generation.model_parameters == {**PROMPT_CALL_PARAMS, "seed": 5}


def test_an_unpriced_model_costs_none(fake_openai: FakeOpenAI, waits: Waits) -> None:
    model = make_provider(fake_openai.url, waits, model="llama3.1:8b")
    try:
        assert model.complete(ask("hi")).cost is None
    finally:
        model.close()


def test_a_null_content_reads_as_empty_text(
    fake_openai: FakeOpenAI, provider: OpenAIProvider
) -> None:
    fake_openai.queue(answer("", finish_reason="length"))
    assert provider.complete(ask("hi")).text == ""


# --- retries ------------------------------------------------------------------------------------


def test_429_waits_what_retry_after_says(
    fake_openai: FakeOpenAI, provider: OpenAIProvider, waits: Waits
) -> None:
    fake_openai.queue(error(429, "Rate limit reached", retry_after=2), answer("Paris"))

    response = provider.complete(ask("Capital of France?"))

    assert response.text == "Paris"
    assert waits.requested == [2.0]
    host = fake_openai.host
    assert response.metadata["attempts"] == [
        {
            "attempt": 1,
            "status": 429,
            "error": f"openai:gpt-4o-mini: 429 Too Many Requests (host {host}): Rate limit reached",
            "wait_s": 2.0,
        },
        {"attempt": 2, "status": 200, "error": None, "wait_s": None},
    ]
    assert fake_openai.request_count == 2


def test_retry_after_ms_wins_over_retry_after(
    fake_openai: FakeOpenAI, provider: OpenAIProvider, waits: Waits
) -> None:
    fake_openai.queue(error(429, retry_after=30, headers={"retry-after-ms": "1500"}), answer("ok"))
    provider.complete(ask("hi"))
    assert waits.requested == [1.5]


def test_500_then_success_backs_off_with_jitter(
    fake_openai: FakeOpenAI, provider: OpenAIProvider, waits: Waits
) -> None:
    fake_openai.queue(error(500), error(503), answer("fine"))

    response = provider.complete(ask("hi"))

    assert response.text == "fine"
    assert [a["status"] for a in response.metadata["attempts"]] == [500, 503, 200]
    first, second = waits.requested
    assert 0 <= first <= provider.retry.backoff
    assert 0 <= second <= provider.retry.backoff * 2
    again = RetryPolicy(rng=random.Random(7))  # the same seed gives the same waits
    assert [again.wait(1), again.wait(2)] == waits.requested


def test_a_slow_response_times_out_and_is_retried(fake_openai: FakeOpenAI, waits: Waits) -> None:
    model = make_provider(fake_openai.url, waits, timeout=0.5)
    fake_openai.queue(slow(), answer("second try"))
    try:
        response = model.complete(ask("hi"))
    finally:
        fake_openai.release()
        model.close()

    assert response.text == "second try"
    first, second = response.metadata["attempts"]
    assert first["status"] is None
    assert first["error"] == (
        f"openai:gpt-4o-mini: read timeout (ReadTimeout) (host {fake_openai.host})"
    )
    assert second["status"] == 200
    assert fake_openai.request_count == 2


@pytest.mark.parametrize("way", ["sync", "async"])
def test_an_answer_trickling_past_the_timeout_times_out_and_is_retried(
    fake_openai: FakeOpenAI, waits: Waits, way: str
) -> None:
    # (before: httpx's timeout bounds each read, and a byte every 20 ms never trips it: the
    # call took as long as the server liked)
    model = make_provider(fake_openai.url, waits, timeout=1.0)
    fake_openai.queue(trickle("x " * 200), answer("second try"))
    try:
        if way == "sync":
            response = model.complete(ask("hi"))
        else:
            response = asyncio.run(model.acomplete(ask("hi")))
    finally:
        fake_openai.release()
        model.close()

    assert response.text == "second try"
    first, second = response.metadata["attempts"]
    assert first["error"] == (
        f"openai:gpt-4o-mini: timeout (no whole answer within timeout=1 s) "
        f"(host {fake_openai.host})"
    )
    assert second["status"] == 200


@contextlib.contextmanager
def paced_server(body: bytes, *waits: float) -> Iterator[str]:
    """A base URL on 127.0.0.1 whose one answer (200, ``body``) is sent in steps, each after
    its wait (seconds): the headers after the first, then ``body`` in as many pieces as
    remain."""
    listener = socket.create_server(("127.0.0.1", 0))
    head = (
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    size = -(-len(body) // (len(waits) - 1))
    pieces = [head, *(body[i : i + size] for i in range(0, len(body), size))]

    def serve() -> None:
        connection, _ = listener.accept()
        with connection:
            received = b""
            while b"\r\n\r\n" not in received:
                received += connection.recv(65536)
            head_end = received.index(b"\r\n\r\n") + 4
            length = re.search(rb"(?i)content-length: *(\d+)", received[:head_end])
            while len(received) < head_end + int(length[1] if length else 0):
                received += connection.recv(65536)  # (read whole: closing on unread data resets)
            for wait, piece in zip(waits, pieces, strict=True):
                time.sleep(wait)
                connection.sendall(piece)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
    finally:
        listener.close()
        thread.join(10)


@pytest.mark.parametrize("way", ["sync", "async"])
def test_the_whole_answer_gets_its_timeout_from_its_headers_and_is_kept_once_whole(
    waits: Waits, way: str
) -> None:
    # (before: the deadline ran from the request, so headers sent late made a body arriving
    # in time overdue; and a body already whole was dropped if its last piece came late. Both
    # were paid for again.) Headers at 0.7 s, half the body 0.5 s later, the rest 0.7 s after:
    # each read waits < 1 s, the whole body arrives 1.2 s after its headers.
    completion = {
        "choices": [{"message": {"content": "Paris"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1},
    }
    with paced_server(json.dumps(completion).encode(), 0.7, 0.5, 0.7) as url:
        model = make_provider(url, waits, timeout=1.0, max_retries=0)
        with contextlib.closing(model):
            if way == "sync":
                response = model.complete(ask("hi"))
            else:
                response = asyncio.run(model.acomplete(ask("hi")))

    assert response.text == "Paris"


def test_a_body_received_whole_is_never_overdue() -> None:
    def last_piece_late() -> Iterator[bytes]:
        yield b"ab"
        time.sleep(0.05)
        yield b"cd"

    def deadline() -> float:
        return time.perf_counter() + 0.02

    assert list(within_deadline(last_piece_late(), deadline(), 4)) == [b"ab", b"cd"]
    with pytest.raises(Overdue):
        list(within_deadline(last_piece_late(), deadline(), 5))  # (more to come)
    with pytest.raises(Overdue):
        list(within_deadline(last_piece_late(), deadline()))  # (no length: no telling)


def test_a_dropped_connection_is_retried(fake_openai: FakeOpenAI, provider: OpenAIProvider) -> None:
    fake_openai.queue(drop(), answer("after the drop"))
    response = provider.complete(ask("hi"))
    assert response.text == "after the drop"
    first = response.metadata["attempts"][0]
    assert first["status"] is None
    assert "connection failed (RemoteProtocolError)" in first["error"]


def test_malformed_json_is_a_clear_error_and_not_retried(
    fake_openai: FakeOpenAI, provider: OpenAIProvider
) -> None:
    fake_openai.queue(malformed())

    with pytest.raises(ProviderError) as excinfo:
        provider.complete(ask("hi"))

    assert str(excinfo.value) == (
        f"openai:gpt-4o-mini: malformed response (host {fake_openai.host}): expected chat "
        "completion JSON with choices[0].message (JSONDecodeError: Expecting value: line 1 "
        "column 15 (char 14)); body starts "
        "'{\"choices\": [ this is not json'"
    )
    assert fake_openai.request_count == 1


@pytest.mark.parametrize(
    ("usage", "reason"),
    [
        (
            '{"prompt_tokens": 1e999}',
            "usage.prompt_tokens is inf; expected a whole number from 0 to 2**53",
        ),
        ('{"completion_tokens": -50}', "usage.completion_tokens is -50; expected a whole"),
        # (1e30 passed as a whole number and priced at 1.5e23 USD)
        ('{"prompt_tokens": 1e30}', "usage.prompt_tokens is 1e+30; expected a whole number from"),
        ('{"prompt_tokens": "12"}', "usage.prompt_tokens is str '12', not a number"),
    ],
)
def test_impossible_token_counts_are_a_malformed_response(
    fake_openai: FakeOpenAI, provider: OpenAIProvider, usage: str, reason: str
) -> None:
    # (an infinite count crashed with OverflowError; a negative one made the run's totals negative)
    fake_openai.queue(
        malformed('{"choices": [{"message": {"content": "Paris"}}], "usage": ' + usage + "}")
    )

    with pytest.raises(ProviderError) as excinfo:
        provider.complete(ask("hi"))

    assert str(excinfo.value).startswith(
        f"openai:gpt-4o-mini: malformed response (host {fake_openai.host}): expected chat "
        f"completion JSON with choices[0].message (ValueError: {reason}"
    )


def test_an_answer_without_usage_has_an_unknown_cost_and_says_so(
    fake_openai: FakeOpenAI, provider: OpenAIProvider
) -> None:
    # (before: 0 tokens priced as a cost of $0.00, as if the call had been free)
    fake_openai.queue(malformed('{"choices": [{"message": {"content": "Paris"}}]}'))

    answer = provider.complete(ask("hi"))

    assert (answer.text, answer.usage.total, answer.cost) == ("Paris", 0, None)
    assert answer.metadata["usage_reported"] is False
    assert answer.usage.reported is False
    fake_openai.queue(
        malformed('{"choices": [{"message": {"content": "Paris"}}], "usage": {"prompt_tokens": 9}}')
    )
    counted = provider.complete(ask("hi"))
    assert counted.cost is not None and "usage_reported" not in counted.metadata
    assert counted.usage.reported is True


@pytest.mark.parametrize(
    "usage",
    [
        '{"total_tokens": 10}',
        '{"prompt_tokens": null, "completion_tokens": null, "total_tokens": null}',
        "{}",
    ],
    ids=["total-only", "all-null", "empty"],
)
def test_a_usage_without_readable_counts_is_unreported_not_zero(
    fake_openai: FakeOpenAI, provider: OpenAIProvider, usage: str
) -> None:
    # (before: 0 tokens in and out, and a cost of $0.00)
    fake_openai.queue(
        malformed('{"choices": [{"message": {"content": "Paris"}}], "usage": ' + usage + "}")
    )

    answer = provider.complete(ask("hi"))

    assert (answer.usage.reported, answer.cost) == (False, None)
    assert answer.metadata["usage_reported"] is False


def test_responses_api_count_names_are_read_too(
    fake_openai: FakeOpenAI, provider: OpenAIProvider
) -> None:
    usage = '{"input_tokens": 12, "output_tokens": 3, "total_tokens": 15}'
    fake_openai.queue(
        malformed('{"choices": [{"message": {"content": "Paris"}}], "usage": ' + usage + "}")
    )

    answer = provider.complete(ask("hi"))

    assert (answer.usage.input, answer.usage.output, answer.usage.reported) == (12, 3, True)
    assert answer.cost == pytest.approx((12 * MINI_INPUT + 3 * MINI_OUTPUT) / 1e6)
    fake_openai.queue(
        malformed('{"choices": [{"message": {"content": "x"}}], "usage": {"input_tokens": -1}}')
    )
    with pytest.raises(ProviderError, match=r"\(ValueError: usage.input_tokens is -1; expected a"):
        provider.complete(ask("hi"))


def test_an_impossible_count_keeps_the_range_it_should_be_in(
    fake_openai: FakeOpenAI, provider: OpenAIProvider
) -> None:
    # (before: "... expected a whole number from 0 to ); body starts ...": cut at 80 characters)
    body = {
        "choices": [{"message": {"content": "Paris"}}],
        "usage": {"prompt_tokens": 10**20, "completion_tokens": 3},
    }
    fake_openai.queue(malformed(json.dumps(body)))

    with pytest.raises(ProviderError) as excinfo:
        provider.complete(ask("hi"))

    message = str(excinfo.value)
    assert (
        "(ValueError: usage.prompt_tokens is 100000000000000000000; expected a whole number "
        'from 0 to 2**53); body starts \'{"choices": [{"message"' in message
    )
    assert len(message.partition("): ")[2]) <= 200


def test_content_parts_are_read_as_their_joined_text(
    fake_openai: FakeOpenAI, provider: OpenAIProvider
) -> None:
    # (stored as the Python repr of the list before)
    parts = '[{"type": "text", "text": "Par"}, {"type": "text", "text": "is"}]'
    fake_openai.queue(malformed('{"choices": [{"message": {"content": ' + parts + "}}]}"))

    assert provider.complete(ask("hi")).text == "Paris"


@pytest.mark.parametrize(("content", "kind"), [('{"a": 1}', "dict"), ("42", "int")])
def test_content_that_is_not_text_is_a_malformed_response(
    fake_openai: FakeOpenAI, provider: OpenAIProvider, content: str, kind: str
) -> None:
    # (read as the Python repr "{'a': 1}" before, and the test went on with it)
    fake_openai.queue(malformed('{"choices": [{"message": {"content": ' + content + "}}]}"))

    with pytest.raises(ProviderError, match=rf"\(TypeError: content is {kind}, not text\)"):
        provider.complete(ask("hi"))


def test_a_legacy_function_call_answer_is_a_tool_call(
    fake_openai: FakeOpenAI, provider: OpenAIProvider
) -> None:
    # (before: text '' and no tool calls: the model's answer to `functions=` was lost)
    function = {"name": "get_weather", "arguments": '{"city": "Paris"}'}
    body = {"choices": [{"message": {"content": None, "function_call": function}}]}
    fake_openai.queue(malformed(json.dumps(body)))

    reply = provider.complete(ask("hi"), functions=[{"name": "get_weather", "parameters": {}}])

    assert (reply.text, reply.tool_calls) == ("", [{"type": "function", "function": function}])


def test_a_redirect_says_where_to(fake_openai: FakeOpenAI, provider: OpenAIProvider) -> None:
    fake_openai.queue(
        error(301, headers={"Location": "https://gateway.example/v1/chat/completions"})
    )

    with pytest.raises(ProviderError) as excinfo:
        provider.complete(ask("hi"))

    assert str(excinfo.value) == (
        f"openai:gpt-4o-mini: 301 Moved Permanently (host {fake_openai.host}): redirected to "
        "https://gateway.example/v1/chat/completions; set OPENAI_BASE_URL to the URL the API "
        "answers at"
    )


def test_an_error_body_with_a_success_status_says_what_the_server_said(
    fake_openai: FakeOpenAI, provider: OpenAIProvider
) -> None:
    fake_openai.queue(malformed('{"error": {"message": "no model gpt-4o-mini on this gateway"}}'))

    with pytest.raises(ProviderError) as excinfo:
        provider.complete(ask("hi"))

    assert str(excinfo.value) == (
        "openai:gpt-4o-mini: 200 with an error instead of a completion "
        f"(host {fake_openai.host}): no model gpt-4o-mini on this gateway"
    )
    assert fake_openai.request_count == 1  # not retried: the same request would get the same


def test_a_parameter_json_cannot_hold_is_named_and_nothing_is_sent(
    fake_openai: FakeOpenAI, provider: OpenAIProvider
) -> None:
    class Answer:  # a pydantic-style class, where a response_format dict is expected
        @staticmethod
        def model_json_schema() -> dict[str, Any]:
            return {}

    with pytest.raises(ValueError) as as_set:
        provider.complete(ask("hi"), stop={"\n"})
    with pytest.raises(ValueError) as as_class:
        asyncio.run(provider.acomplete(ask("hi"), response_format=Answer))

    assert str(as_set.value) == (
        "model parameter stop={'\\n'} cannot be sent as JSON "
        "(Object of type set is not JSON serializable); pass a list"
    )
    assert str(as_class.value).endswith(
        "pass a dict: {'type': 'json_schema', 'json_schema': {'name': 'Answer', "
        "'schema': Answer.model_json_schema()}}"
    )
    assert fake_openai.requests == []


def circular() -> list[Any]:
    loop: list[Any] = ["a"]
    loop.append(loop)
    return loop


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        (
            {"temperature": float("nan")},
            "model parameter temperature=nan cannot be sent as JSON (JSON has no NaN or "
            "infinity); pass a finite number",
        ),
        (
            {"logit_bias": {"50256": float("-inf")}},
            "model parameter logit_bias={'50256': -inf} cannot be sent as JSON (JSON has no NaN "
            "or infinity); pass a finite number",
        ),
        (
            {"stop": circular()},
            "model parameter stop=['a', [...]] cannot be sent as JSON (it holds itself); pass "
            "data without a cycle",
        ),
        (
            {"seed": 10**5000},
            "model parameter seed=<an integer of 16610 bits> cannot be sent as JSON (an integer "
            "of more than 4,300 digits); pass a smaller number",
        ),
    ],
    ids=["nan", "inf-inside", "circular", "huge-int"],
)
def test_a_value_json_cannot_carry_is_named_and_nothing_is_sent(
    fake_openai: FakeOpenAI, provider: OpenAIProvider, params: dict[str, Any], expected: str
) -> None:
    # (before: httpx's own ValueError, raised where the request's headers, key included, were
    # local variables: `pytest -l` printed them)
    with pytest.raises(ValueError) as synchronous:
        provider.complete(ask("hi"), **params)
    with pytest.raises(ValueError) as asynchronous:
        asyncio.run(provider.acomplete(ask("hi"), **params))

    assert str(synchronous.value) == str(asynchronous.value) == expected
    assert fake_openai.requests == []


def test_a_message_json_cannot_carry_is_named(
    fake_openai: FakeOpenAI, provider: OpenAIProvider
) -> None:
    parts = [{"type": "text", "text": "hi", "weight": float("nan")}]
    with pytest.raises(ValueError) as excinfo:
        provider.complete(
            [
                {"role": "system", "content": "Be brief."},
                *ask("q"),
                {"role": "user", "content": parts},
            ]
        )

    assert str(excinfo.value) == (
        "message 2 ('user') cannot be sent as JSON (JSON has no NaN or infinity); "
        "pass a finite number"
    )
    assert fake_openai.requests == []


def test_half_of_a_surrogate_pair_is_sent_as_the_replacement_character(
    fake_openai: FakeOpenAI, provider: OpenAIProvider
) -> None:
    # (before: httpx's UnicodeEncodeError, the request's headers in a frame `pytest -l` shows)
    reply = provider.complete(ask("cut answer: \ud83d"), stop=["\udc00"])

    assert reply.text == "echo: cut answer: \ufffd"
    (request,) = fake_openai.requests
    assert request.body.decode("utf-8") == (
        '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"cut answer: \ufffd"}],'
        '"stop":["\ufffd"]}'
    )
    assert request.headers["content-type"] == "application/json"


UNSENDABLE_SUITE = """\
    def test_nan(llm):
        llm.generate("hi", temperature=float("nan"))

    def test_circular(llm):
        tools = []
        tools.append(tools)
        llm.generate("hi", tools=tools)

    def test_huge(llm):
        llm.generate("hi", seed=10**5000)

    def test_half_emoji(llm):
        assert llm.generate("cut answer: \\ud83d").text == "echo: cut answer: \\ufffd"
    """


def test_an_unsendable_call_shows_no_header_in_the_locals_pytest_prints(
    pytester: pytest.Pytester, openai_env: FakeOpenAI
) -> None:
    pytester.makepyfile(dedent(UNSENDABLE_SUITE))

    result = pytester.runpytest("--llm-model=gpt-4o-mini", "-l", "--tb=long")

    result.assert_outcomes(passed=1, failed=3)
    result.stdout.fnmatch_lines(
        [
            "E * ValueError: model parameter temperature=nan cannot be sent as JSON (JSON has no "
            "NaN or infinity); pass a finite number",
            "E * ValueError: model parameter tools=* cannot be sent as JSON (it holds "
            "itself); pass data without a cycle",
            "E * ValueError: model parameter seed=<an integer of 16610 bits> cannot be sent as "
            "JSON (an integer of more than 4,300 digits); pass a smaller number",
        ]
    )
    output = result.stdout.str() + result.stderr.str()
    assert FAKE_API_KEY not in output and "Authorization" not in output
    assert openai_env.request_count == 1  # the half emoji's call only


def test_stream_true_is_refused_before_any_request(
    fake_openai: FakeOpenAI, provider: OpenAIProvider
) -> None:
    # (before: the server was called, and paid, and its event stream was a "malformed response")
    llm = LLM(provider)
    with activate(Observation(Trace("t"), "root")):
        with pytest.raises(ValueError) as excinfo:
            llm.generate("hi", stream=True)
        with pytest.raises(ValueError):
            asyncio.run(llm.agenerate("hi", stream=True, stream_options={"include_usage": True}))
        assert llm.generate("hi", stream=False).text == "echo: hi"

    assert str(excinfo.value) == (
        "model parameter stream=True cannot be used: llm.generate reads each answer whole, "
        "with its text, tool calls and usage; leave stream out"
    )
    assert fake_openai.request_count == 1  # the stream=False call


def test_a_client_error_is_not_retried(fake_openai: FakeOpenAI, provider: OpenAIProvider) -> None:
    fake_openai.queue(error(400, "Invalid value for 'temperature'"))
    with pytest.raises(CallError) as excinfo:
        provider.complete(ask("hi"), temperature=7)
    assert str(excinfo.value) == (
        f"openai:gpt-4o-mini: 400 Bad Request (host {fake_openai.host}): "
        "Invalid value for 'temperature'"
    )
    assert excinfo.value.status == 400
    assert len(excinfo.value.attempts) == 1


def test_final_failure_names_status_attempts_and_host(
    fake_openai: FakeOpenAI, provider: OpenAIProvider, waits: Waits
) -> None:
    fake_openai.respond_with(lambda request: error(500, "boom"))

    with pytest.raises(CallError) as excinfo:
        provider.complete(ask("hi"))

    assert str(excinfo.value) == (
        f"openai:gpt-4o-mini: 500 Internal Server Error after 4 attempts "
        f"(host {fake_openai.host}): boom"
    )
    assert [a["attempt"] for a in excinfo.value.attempts] == [1, 2, 3, 4]
    assert [a["status"] for a in excinfo.value.attempts] == [500] * 4
    assert excinfo.value.attempts[-1]["wait_s"] is None
    assert len(waits.requested) == 3
    assert fake_openai.request_count == 4


def test_connection_refused_is_retried_then_fails(waits: Waits) -> None:
    url = closed_url()
    model = make_provider(url, waits, max_retries=2)
    try:
        with pytest.raises(CallError) as excinfo:
            model.complete(ask("hi"))
    finally:
        model.close()
    host = url.removeprefix("http://").removesuffix("/v1")
    assert str(excinfo.value).startswith(
        f"openai:gpt-4o-mini: connection failed (ConnectError) after 3 attempts (host {host})"
    )
    assert [a["status"] for a in excinfo.value.attempts] == [None] * 3
    assert len(waits.requested) == 2


def test_the_session_policy_is_adopted_unless_the_model_string_sets_one(
    monkeypatch: pytest.MonkeyPatch, fake_openai: FakeOpenAI
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_API_KEY)
    plain = OpenAIProvider.from_spec("openai:gpt-4o-mini")
    pinned = OpenAIProvider.from_spec("openai:gpt-4o-mini?max_retries=5&backoff=0")
    session = RetryPolicy(max_retries=1, backoff=2.0)
    LLM(plain, retry=session)
    LLM(pinned, retry=session)
    assert (plain.retry.max_retries, plain.retry.backoff) == (1, 2.0)
    assert (pinned.retry.max_retries, pinned.retry.backoff) == (5, 0.0)


# --- async --------------------------------------------------------------------------------------


def test_agenerate_under_asyncio(fake_openai: FakeOpenAI, waits: Waits) -> None:
    model = make_provider(fake_openai.url, waits)
    fake_openai.respond_with(lambda request: answer(str(request.messages[-1]["content"]).upper()))
    fake_openai.queue(error(429, retry_after=1))  # the first request to arrive is retried
    llm = LLM(model)
    trace = Trace("t")

    async def main() -> list[str]:
        results = await asyncio.gather(*(llm.agenerate(q) for q in ("a", "b", "c")))
        return [r.text for r in results]

    with activate(Observation(trace, "root")):
        assert asyncio.run(main()) == ["A", "B", "C"]
    model.close()

    assert waits.requested == [1.0]
    generations = [o for o in trace.observations if o.type == "generation"]
    retried = [g for g in generations if "attempts" in g.metadata]
    assert len(retried) == 1
    assert [a["status"] for a in retried[0].metadata["attempts"]] == [429, 200]
    assert fake_openai.request_count == 4


def test_async_final_failure_raises_call_error(fake_openai: FakeOpenAI, waits: Waits) -> None:
    model = make_provider(fake_openai.url, waits, max_retries=1)
    fake_openai.respond_with(lambda request: error(502))
    with pytest.raises(CallError) as excinfo:
        asyncio.run(model.acomplete(ask("hi")))
    assert "502 Bad Gateway after 2 attempts" in str(excinfo.value)
    assert waits.requested and len(waits.requested) == 1


# --- model strings and configuration ------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "model"),
    [
        ("openai:gpt-4o-mini", "gpt-4o-mini"),
        ("gpt-4o-mini", "gpt-4o-mini"),
        ("gpt-4.1-nano?timeout=5", "gpt-4.1-nano"),
        ("o3-mini", "o3-mini"),
        ("o1", "o1"),
        ("openai:llama3.1:8b", "llama3.1:8b"),
    ],
)
def test_model_strings_resolve_to_the_openai_provider(
    monkeypatch: pytest.MonkeyPatch, spec: str, model: str
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_API_KEY)
    provider = default_registry().resolve(spec)
    assert isinstance(provider, OpenAIProvider)
    assert provider.model == model


def test_options_from_the_model_string(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_API_KEY)
    provider = OpenAIProvider.from_spec("openai:gpt-4o-mini?timeout=30&max_retries=4")
    assert dict(provider.options) == {"timeout": 30.0, "connect_timeout": 10.0, "max_retries": 4}
    assert provider.cache_identity == "openai:gpt-4o-mini"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            "openai:gpt-4o-mini?temprature=1",
            "openai: unknown option 'temprature' for 'gpt-4o-mini'; known options: "
            "timeout (seconds > 0), connect_timeout (seconds > 0), max_retries (int >= 0), "
            "backoff (seconds >= 0)",
        ),
        ("gpt-4o?timeout=0", "openai: bad value '0' for option 'timeout'; known options: *"),
        ("gpt-4o?max_retries=two", "openai: bad value 'two' for option 'max_retries' *"),
    ],
)
def test_bad_options_are_unknown_model_errors(
    monkeypatch: pytest.MonkeyPatch, spec: str, message: str
) -> None:
    import fnmatch

    monkeypatch.setenv("OPENAI_API_KEY", FAKE_API_KEY)
    with pytest.raises(UnknownModelError) as excinfo:
        OpenAIProvider.from_spec(spec)
    assert fnmatch.fnmatchcase(str(excinfo.value), message), str(excinfo.value)


def test_missing_key_is_a_config_error_naming_the_variable() -> None:
    with pytest.raises(ConfigError) as excinfo:
        OpenAIProvider.from_spec("gpt-4o-mini", env={})
    assert str(excinfo.value) == (
        "openai:gpt-4o-mini needs an API key: set the OPENAI_API_KEY environment variable "
        "(a local OpenAI-compatible server without auth accepts any value)"
    )


def test_base_url_must_be_http() -> None:
    env = {"OPENAI_API_KEY": FAKE_API_KEY, "OPENAI_BASE_URL": "localhost:8000"}
    with pytest.raises(ConfigError, match="OPENAI_BASE_URL must be an http"):
        OpenAIProvider.from_spec("gpt-4o-mini", env=env)


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("127.0.0.1:8000/v1", "'127.0.0.1:8000/v1' (no http:// or https:// in front)"),
        ("me:s3cret@gateway.local/v1", "'***@gateway.local/v1' (no http:// or https:// in front)"),
        ("ftp://gateway.local/v1", "'ftp://gateway.local/v1'"),
        ("htp://u:pw@gateway.local/v1?api-key=Q5", "'htp://***@gateway.local/v1?***'"),
        # (these three were urllib's ValueError: an INTERNALERROR)
        ("http://127.0.0.1:99999/v1", "'http://127.0.0.1:99999/v1' (Port out of range 0-65535)"),
        (
            "http://127.0.0.1:abc/v1",
            "'http://127.0.0.1:abc/v1' (Port could not be cast to integer value as 'abc')",
        ),
        ("http://[::1/v1", "'http://[::1/v1' (Invalid IPv6 URL)"),
    ],
)
def test_a_base_url_that_is_not_http_is_shown_back_without_credentials(
    value: str, shown: str
) -> None:
    env = {"OPENAI_API_KEY": FAKE_API_KEY, "OPENAI_BASE_URL": value}
    with pytest.raises(ConfigError) as excinfo:
        OpenAIProvider.from_spec("gpt-4o-mini", env=env)
    assert str(excinfo.value) == (
        f"OPENAI_BASE_URL must be an http(s) URL such as https://api.openai.com/v1; got {shown}"
    )


def test_credentials_in_the_base_url_are_refused_unshown() -> None:
    # httpx would send them as Basic auth in place of the key, and a 401 may quote them back
    env = {"OPENAI_API_KEY": FAKE_API_KEY, "OPENAI_BASE_URL": "http://me:s3cret@127.0.0.1:8000/v1"}
    with pytest.raises(ConfigError) as excinfo:
        OpenAIProvider.from_spec("gpt-4o-mini", env=env)
    assert str(excinfo.value) == (
        "OPENAI_BASE_URL holds credentials (user:password@ before the host): they would be "
        "sent as Basic auth in place of the key; put the key in OPENAI_API_KEY, or the header "
        "in LLMOBS_OPENAI_HEADERS (e.g. Authorization=Basic%20...); got "
        "'http://***@127.0.0.1:8000/v1'"
    )


def test_base_url_query_values_are_scrubbed_from_errors(fake_openai: FakeOpenAI) -> None:
    secret = "QUERYSECRET123/+="
    base_url = f"{fake_openai.url}?subscription-key={quote(secret, safe='')}&api-version=v1"
    env = {"OPENAI_API_KEY": FAKE_API_KEY, "OPENAI_BASE_URL": base_url}
    echoed = f"/v1/chat/completions?subscription-key={quote(secret, safe='')}"
    fake_openai.queue(error(400, f"bad request to {echoed} (decoded: {secret})"))

    message = failure_from_spec(env)

    assert message.endswith("?subscription-key=*** (decoded: ***)")
    assert "QUERYSECRET123" not in message


def test_base_url_query_values_are_scrubbed_from_httpxs_log(
    fake_openai: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    # (before: `INFO httpx ... POST http://.../chat/completions?subscription-key=APIM-SECRET-4242`
    # went into captured logs and junit reports)
    base_url = f"{fake_openai.url}?subscription-key=APIM-SECRET-4242&api-version=2024-10-21"
    env = {"OPENAI_API_KEY": FAKE_API_KEY, "OPENAI_BASE_URL": base_url}
    provider = OpenAIProvider.from_spec("gpt-4o-mini", env=env)

    with contextlib.closing(provider), caplog.at_level(logging.INFO, logger="httpx"):
        provider.complete(ask("hi"))
        asyncio.run(provider.acomplete(ask("hi")))

    lines = [r.getMessage() for r in caplog.records if r.name == "httpx"]
    assert len(lines) == 2
    assert all("/chat/completions?subscription-key=***&api-version=" in line for line in lines)
    assert "APIM-SECRET" not in caplog.text
    assert fake_openai.requests[0].path.endswith(
        "?subscription-key=APIM-SECRET-4242&api-version=2024-10-21"
    )


def test_a_base_url_naming_the_endpoint_is_a_config_error() -> None:
    env = {
        "OPENAI_API_KEY": FAKE_API_KEY,
        "OPENAI_BASE_URL": "http://localhost:8000/v1/chat/completions",
    }
    with pytest.raises(ConfigError) as excinfo:
        OpenAIProvider.from_spec("gpt-4o-mini", env=env)
    assert str(excinfo.value) == (
        "OPENAI_BASE_URL is the API's root, not its endpoint: got "
        "http://localhost:8000/v1/chat/completions; expected e.g. https://api.openai.com/v1 "
        "(calls go to <root>/chat/completions)"
    )


def test_organization_and_project_go_in_openais_headers(fake_openai: FakeOpenAI) -> None:
    env = {
        "OPENAI_API_KEY": FAKE_API_KEY,
        "OPENAI_BASE_URL": fake_openai.url,
        "OPENAI_ORG_ID": "org-acme",
        "OPENAI_PROJECT_ID": "proj_evals",
    }
    with contextlib.closing(OpenAIProvider.from_spec("gpt-4o-mini", env=env)) as scoped:
        scoped.complete([{"role": "user", "content": "hi"}])
    with contextlib.closing(
        OpenAIProvider.from_spec(
            "gpt-4o-mini", env={"OPENAI_API_KEY": FAKE_API_KEY, "OPENAI_BASE_URL": fake_openai.url}
        )
    ) as plain:
        plain.complete([{"role": "user", "content": "hi"}])

    first, second = fake_openai.requests
    assert (first.headers["openai-organization"], first.headers["openai-project"]) == (
        "org-acme",
        "proj_evals",
    )
    assert first.headers["authorization"] == f"Bearer {FAKE_API_KEY}"
    assert not {"openai-organization", "openai-project"} & set(second.headers)


def test_a_base_url_query_such_as_azures_api_version_goes_with_every_call(
    fake_openai: FakeOpenAI,
) -> None:
    deployment = fake_openai.url.removesuffix("/v1") + "/openai/deployments/gpt-4o"
    base_url = f"{deployment}?api-version=2024-10-21"
    env = {"OPENAI_API_KEY": FAKE_API_KEY, "OPENAI_BASE_URL": base_url}
    provider = OpenAIProvider.from_spec("openai:gpt-4o", env=env)

    with contextlib.closing(provider):
        provider.complete([{"role": "user", "content": "sync"}])
        asyncio.run(provider.acomplete([{"role": "user", "content": "async"}]))

    expected = "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"
    assert [request.path for request in fake_openai.requests] == [expected] * 2
    assert "api-version" not in repr(provider)  # shown without its query, like error messages


def test_an_azure_endpoint_gets_the_key_in_an_api_key_header(
    fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The fake server plays the Azure endpoint: httpx reaches it as the HTTP proxy of that host.
    for variable in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "http_proxy"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://{fake_openai.host}")
    endpoint = "http://contoso.openai.azure.com/openai/deployments/gpt-4o?api-version=2024-10-21"
    env = {"OPENAI_API_KEY": FAKE_API_KEY, "OPENAI_BASE_URL": endpoint}
    provider = OpenAIProvider.from_spec("openai:gpt-4o", env=env)

    with contextlib.closing(provider):
        answer = provider.complete([{"role": "user", "content": "hi"}])

    (request,) = fake_openai.requests
    assert answer.text
    assert request.headers["api-key"] == FAKE_API_KEY
    assert "authorization" not in request.headers  # Azure would read a bearer as an Entra token
    target = urlsplit(request.path)
    assert (target.netloc, target.path, target.query) == (
        "contoso.openai.azure.com",
        "/openai/deployments/gpt-4o/chat/completions",
        "api-version=2024-10-21",
    )


def test_extra_headers_go_with_every_call(fake_openai: FakeOpenAI) -> None:
    env = {
        "OPENAI_API_KEY": FAKE_API_KEY,
        "OPENAI_BASE_URL": fake_openai.url,
        "LLMOBS_OPENAI_HEADERS": "Ocp-Apim-Subscription-Key=sub-0a1b2c3d, X-Tags=evals%2Cnightly",
    }
    provider = OpenAIProvider.from_spec("openai:gpt-4o-mini", env=env)

    with contextlib.closing(provider):
        provider.complete([{"role": "user", "content": "sync"}])
        asyncio.run(provider.acomplete([{"role": "user", "content": "async"}]))

    assert len(fake_openai.requests) == 2
    for request in fake_openai.requests:
        assert request.headers["ocp-apim-subscription-key"] == "sub-0a1b2c3d"
        assert request.headers["x-tags"] == "evals,nightly"
        assert request.headers["authorization"] == f"Bearer {FAKE_API_KEY}"
    assert "sub-0a1b2c3d" not in repr(provider) + str(provider.options)


def test_an_authorization_header_replaces_the_key_even_for_azure(
    fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A Microsoft Entra token instead of a key: no OPENAI_API_KEY, no api-key header.
    for variable in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "http_proxy"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://{fake_openai.host}")
    env = {
        "OPENAI_BASE_URL": "http://contoso.openai.azure.com/openai/deployments/gpt-4o"
        "?api-version=2024-10-21",
        "LLMOBS_OPENAI_HEADERS": "authorization=Bearer%20eyJ0eXAi.entra-token",
    }
    provider = OpenAIProvider.from_spec("openai:gpt-4o", env=env)

    with contextlib.closing(provider):
        provider.complete([{"role": "user", "content": "hi"}])

    (request,) = fake_openai.requests
    assert request.headers["authorization"] == "Bearer eyJ0eXAi.entra-token"
    assert "api-key" not in request.headers


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("X-Gateway-Key", "LLMOBS_OPENAI_HEADERS: entry 1 is not 'key=value' (expected k=v,k2=v2"),
        ("X-Ok=s3cret-value,Bad Name=s3cret-value", "'Bad Name' is not a valid HTTP header name"),
        ("Content-Type=text/plain", "'Content-Type' is set by the HTTP client for each request"),
        ("X-Key=s3cret-value,x-key=s3cret-value", "header 'x-key' given more than once"),
        ("X-Key=s3cret%0D%0Avalue", "the value of 'X-Key' holds a line break"),
    ],
)
def test_malformed_extra_headers_are_config_errors(value: str, expected: str) -> None:
    env = {"OPENAI_API_KEY": FAKE_API_KEY, "LLMOBS_OPENAI_HEADERS": value}
    with pytest.raises(ConfigError) as excinfo:
        OpenAIProvider.from_spec("gpt-4o-mini", env=env)
    message = str(excinfo.value)
    assert expected in message
    assert "s3cret" not in message and "\n" not in message


def test_extra_header_values_are_scrubbed_from_errors(fake_openai: FakeOpenAI) -> None:
    token = "eyJ0eXAi.entra-token-0123"
    env = {
        "OPENAI_BASE_URL": fake_openai.url,
        "LLMOBS_OPENAI_HEADERS": f"Authorization=Bearer%20{token},X-Sub=sub-0a1b2c3d",
    }
    fake_openai.queue(error(401, f"token {token} expired; subscription sub-0a1b2c3d unknown"))

    message = failure_from_spec(env)

    assert message.endswith("token *** expired; subscription *** unknown")
    assert token not in message and "sub-0a1b2c3d" not in message


def test_malformed_extra_headers_are_a_usage_error(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_API_KEY)
    monkeypatch.setenv("LLMOBS_OPENAI_HEADERS", "X-Gateway-Key")
    pytester.makepyfile("def test_x(llm): pass")
    result = pytester.runpytest("--llm-model=gpt-4o-mini")
    assert result.ret == USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: --llm-model: LLMOBS_OPENAI_HEADERS: entry 1 is not 'key=value' (expected *"]
    )


def test_missing_key_is_a_usage_error(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest("--llm-model=gpt-4o-mini")
    assert result.ret == USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: --llm-model: openai:gpt-4o-mini needs an API key: set the OPENAI_API_KEY "
            "environment variable (a local OpenAI-compatible server without auth accepts any "
            "value)"
        ]
    )


NOT_ASCII = "is not ASCII (a typographic quote or non-breaking space pasted with it?)"
UNSENDABLE = "cannot be sent in an HTTP header: character {} {}; headers carry printable ASCII only"


@pytest.mark.parametrize(
    ("variable", "value", "shown"),
    [
        (
            "OPENAI_API_KEY",
            "sk-prøj-SECRET123",
            "OPENAI_API_KEY " + UNSENDABLE.format(6, NOT_ASCII),
        ),
        (  # a key pasted with a typographic quote around it
            "OPENAI_API_KEY",
            "\u201csk-SECRET123\u201d",
            "OPENAI_API_KEY " + UNSENDABLE.format(1, NOT_ASCII),
        ),
        (
            "OPENAI_API_KEY",
            "sk-SECRET123\u00a0x",
            "OPENAI_API_KEY " + UNSENDABLE.format(13, NOT_ASCII),
        ),
        (  # (h11 refused it at the call: 'Illegal header value b"Bearer ***\\x00SECRET123"')
            "OPENAI_API_KEY",
            "sk-\x00SECRET123",
            "OPENAI_API_KEY " + UNSENDABLE.format(4, "is a control character"),
        ),
        (
            "LLMOBS_OPENAI_HEADERS",
            "X-Trace=ok,X-Gateway-Key=SECRET123%C3%B8",
            "LLMOBS_OPENAI_HEADERS: the (URL-decoded) value of 'X-Gateway-Key' "
            + UNSENDABLE.format(10, NOT_ASCII),
        ),
        ("OPENAI_ORG_ID", "org-SECRET123é", "OPENAI_ORG_ID " + UNSENDABLE.format(14, NOT_ASCII)),
    ],
)
def test_a_key_or_header_value_no_header_can_carry_is_named_never_shown(
    fake_openai: FakeOpenAI, variable: str, value: str, shown: str
) -> None:
    # (before: every call raised httpx's UnicodeEncodeError, the key in its traceback's locals)
    env = {"OPENAI_API_KEY": FAKE_API_KEY, "OPENAI_BASE_URL": fake_openai.url, variable: value}
    with pytest.raises(ConfigError) as excinfo:
        OpenAIProvider.from_spec("gpt-4o-mini", env=env)
    assert str(excinfo.value) == shown
    assert "SECRET123" not in repr(excinfo.value)
    assert fake_openai.requests == []


def test_a_key_no_header_can_carry_is_refused_when_the_provider_is_built(waits: Waits) -> None:
    with pytest.raises(ConfigError) as excinfo:
        make_provider(closed_url(), waits, key="sk-prøj-SECRET123")
    assert str(excinfo.value) == "openai:gpt-4o-mini: api_key " + UNSENDABLE.format(6, NOT_ASCII)


def test_a_non_ascii_key_is_a_usage_error_naming_the_variable_not_the_key(
    pytester: pytest.Pytester, openai_env: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-prøj-SECRET123")
    pytester.makepyfile("def test_x(llm):\n    llm.generate('hi')\n")

    result = pytester.runpytest("--llm-model=gpt-4o-mini", "--showlocals", "--tb=long")

    assert result.ret == USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: --llm-model: OPENAI_API_KEY " + UNSENDABLE.format(6, NOT_ASCII)]
    )
    assert "SECRET123" not in result.stdout.str() + result.stderr.str()
    assert "UnicodeEncodeError" not in result.stdout.str() + result.stderr.str()
    assert openai_env.requests == []


def test_run_experiment_says_a_non_ascii_key_is_unsendable_before_any_item_runs(
    openai_env: FakeOpenAI, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-prøj-SECRET123")
    with pytest.raises(ConfigError) as excinfo:
        pytest_llmobs.run_experiment(
            name="bad-key",
            dataset=[{"input": "hi", "expected_output": "hi"}],
            task=lambda item, llm: llm.generate(str(item.input)).text,
            model="openai:gpt-4o-mini",
            store=tmp_path / "store",
        )
    assert str(excinfo.value) == "OPENAI_API_KEY " + UNSENDABLE.format(6, NOT_ASCII)
    assert openai_env.requests == []


def test_unknown_model_lists_the_known_ones(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest("--llm-model=claude-nope")
    assert result.ret == USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: --llm-model: unknown model 'claude-nope'; known models: mock-llm-v1, "
            "openai:<model> (plain gpt-*, chatgpt-*, o1*, o3*, o4* too)"
        ]
    )


# --- prices -------------------------------------------------------------------------------------


def test_price_table_overrides_and_snapshots(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text(
        json.dumps({"gpt-4o-mini": {"input": 1, "output": 2}, "llama": {"input": 0, "output": 0}})
    )
    table = PriceTable.default(path=path, env={})
    assert table.cost("gpt-4o-mini-2024-07-18", 1_000_000, 1_000_000) == 3.0
    assert table.cost("llama", 10, 10) == 0.0
    assert table.cost("gpt-4o", 1_000_000, 0) == 2.5  # built-in rows stay
    assert table.cost("mystery", 1, 1) is None


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{", "--llm-prices: '*prices.json' is not valid JSON (line 1: *)"),
        ("[]", "--llm-prices: '*prices.json' must hold an object *; got list"),
        (
            '{"m": {"input": 1}}',
            "--llm-prices: '*prices.json': model 'm': expected "
            '{"input": <USD per 1M>, "output": <USD per 1M>}; got *',
        ),
        ('{"m": {"input": -1, "output": 1}}', "*model 'm' input: expected a number >= 0; got -1"),
        (  # (before: the last price won silently)
            '{"m": {"input": 1, "output": 2},\n "m": {"input": 10, "output": 20}}',
            "--llm-prices: '*prices.json': model 'm' is given twice (JSON would keep the last "
            "price silently); keep one",
        ),
        (
            '{"m": {"input": 1, "output": 2, "input": 10}}',
            "--llm-prices: '*prices.json': model 'm': 'input' is given twice; keep one",
        ),
    ],
)
def test_bad_price_files_are_usage_errors(
    pytester: pytest.Pytester, content: str, message: str
) -> None:
    pytester.makefile(".json", prices=content)
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest("--llm-prices=prices.json")
    assert result.ret == USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {message}"])


def test_a_model_given_twice_in_the_environments_price_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text(
        '{"gpt-4o-mini": {"input": 1, "output": 2}, "gpt-4o-mini": {"input": 0, "output": 0}}'
    )
    with pytest.raises(PriceError) as excinfo:
        PriceTable.default(env={"LLMOBS_PRICES": str(path)})
    assert str(excinfo.value) == (
        f"LLMOBS_PRICES: {str(path)!r}: model 'gpt-4o-mini' is given twice (JSON would keep the "
        "last price silently); keep one"
    )


SUITE = """\
    import pytest

    @pytest.mark.parametrize("country", ["France", "Japan", "Peru"])
    def test_capital(llm, country):
        answer = llm.generate(f"What is the capital of {country}?", temperature=0)
        assert answer.text == f"capital:{country}"
    """


def capital_responder(fail: str | None = None) -> Any:
    def respond(request: RecordedRequest) -> Reply:
        question = str(request.messages[-1]["content"])
        country = question.rsplit(" ", 1)[-1].rstrip("?")
        if country == fail:
            return error(500, "upstream exploded")
        return answer(f"capital:{country}", prompt_tokens=10, completion_tokens=2)

    return respond


def generations(item: dict[str, Any]) -> list[dict[str, Any]]:
    return [o for o in item["trace"]["observations"] if o["type"] == "generation"]


def test_a_suite_records_usage_cost_and_prices_from_a_file(
    pytester: pytest.Pytester, runs: Runs, openai_env: FakeOpenAI
) -> None:
    openai_env.respond_with(capital_responder())
    pytester.makefile(".json", prices=json.dumps({"gpt-4o-mini": {"input": 100, "output": 1000}}))
    pytester.makepyfile(dedent(SUITE))

    result = pytester.runpytest("--llm-model=gpt-4o-mini", "--llm-prices=prices.json")

    result.assert_outcomes(passed=3)
    run = runs.latest()
    assert run["model"] == "gpt-4o-mini"
    for item in run["items"]:
        (generation,) = generations(item)
        assert generation["model"] == "gpt-4o-mini"
        assert generation["model_parameters"] == {"temperature": 0}
        assert generation["usage"] == {"input": 10, "output": 2, "total": 12}
        assert generation["cost"] == pytest.approx((10 * 100 + 2 * 1000) / 1e6)
        assert "attempts" not in generation["metadata"]


def test_answers_without_usage_leave_the_token_totals_out_not_zero(
    pytester: pytest.Pytester, runs: Runs, openai_env: FakeOpenAI
) -> None:
    # (before: the run's total_tokens counted them as 0, so 'total_tokens <= 20' passed)
    def respond(request: RecordedRequest) -> Reply:
        if "Peru" in str(request.messages[-1]["content"]):
            return malformed('{"choices": [{"message": {"content": "capital:Peru"}}]}')
        return capital_responder()(request)

    openai_env.respond_with(respond)
    pytester.makepyfile(dedent(SUITE))

    result = pytester.runpytest("--llm-model=gpt-4o-mini", "--llm-threshold=total_tokens <= 30")

    result.assert_outcomes(passed=3)
    run = runs.latest()
    totals = runs.aggregates(run, "*")
    usages = {i["node_id"].split("[")[1]: generations(i)[0]["usage"] for i in run["items"]}
    assert usages["Peru]"] is None  # not 0s: uploads send no counts for it
    assert usages["France]"] == {"input": 10, "output": 2, "total": 12}
    assert (totals["total_tokens"]["value"], totals["total_tokens"]["n"]) == (24.0, 2)
    (peru,) = (i for i in run["items"] if "Peru" in i["node_id"])
    assert generations(peru)[0]["cost"] is None  # (the session's price table made it $0)
    assert totals["total_cost"]["n"] == 2
    assert totals["generations"]["n"] == 3
    result.stdout.fnmatch_lines(["*generations 3 *tokens 20 in / 4 out (usage reported by 2 of 3)"])


def test_a_generation_records_the_model_that_answered_and_why_it_stopped(
    pytester: pytest.Pytester, runs: Runs, openai_env: FakeOpenAI
) -> None:
    openai_env.respond_with(
        lambda request: answer("Paris", model="gpt-4o-mini-2024-07-18", finish_reason="length")
    )
    pytester.makepyfile("def test_one(llm):\n    assert llm.generate('Capital?').text\n")

    pytester.runpytest("--llm-model=gpt-4o-mini").assert_outcomes(passed=1)

    run = runs.latest()
    assert run["model"] == "gpt-4o-mini"  # the run keeps the model the session asked for
    (generation,) = generations(run["items"][0])
    assert generation["model"] == "gpt-4o-mini-2024-07-18"
    assert generation["metadata"]["requested_model"] == "gpt-4o-mini"
    assert generation["metadata"]["finish_reason"] == "length"
    assert generation["metadata"]["response_id"].startswith("chatcmpl-fake-")


def test_a_model_repeating_the_key_does_not_get_it_into_the_run(
    fake_openai: FakeOpenAI, provider: OpenAIProvider
) -> None:
    fake_openai.queue(answer(f"Your key is {FAKE_API_KEY}, keep it safe. sk-not-ours-1234"))

    reply = provider.complete(ask("What is my key?"))

    assert reply.text == "Your key is ***, keep it safe. sk-not-ours-1234"  # only our key


def test_a_server_echoing_the_key_in_its_names_and_ids_does_not_get_it_into_the_run(
    fake_openai: FakeOpenAI, provider: OpenAIProvider
) -> None:
    # (before: only the text and tool calls were scrubbed; model, id and finish_reason were kept)
    body = {
        "id": f"chatcmpl-{FAKE_API_KEY}",
        "model": f"gw/{FAKE_API_KEY}",
        "choices": [{"message": {"content": "Paris"}, "finish_reason": FAKE_API_KEY}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1},
    }
    fake_openai.queue(malformed(json.dumps(body)))

    reply = provider.complete(ask("hi"))

    assert FAKE_API_KEY not in repr((reply.model, reply.metadata))
    assert (reply.model, reply.metadata["response_id"]) == ("gw/***", "chatcmpl-***")
    assert reply.metadata["finish_reason"] == "***"


PLACEHOLDER_ANSWER = "ollama is a test runner for EMPTY models: test it in production"


@pytest.mark.parametrize(
    ("key", "headers"),
    [
        ("EMPTY", ""),  # vLLM's convention
        ("ollama", ""),
        ("sk-no-key-required", ""),  # llama.cpp's
        ("sk-x", "Helicone-Property-Environment=test"),
        ("sk-x", "X-Env=production,X-Team=test"),
    ],
)
def test_a_placeholder_key_or_header_value_never_changes_the_answer(
    fake_openai: FakeOpenAI, key: str, headers: str
) -> None:
    # (before: "*** is a test runner for *** models": the answer scored, stored and cached was
    # not the model's)
    arguments = json.dumps({"tool": "ollama", "env": "production", "key": "EMPTY"})
    value = headers.partition("=")[2].partition(",")[0] or "the default environment"
    text = f"{PLACEHOLDER_ANSWER}; its server takes any key, say {key}"
    fake_openai.queue(
        answer(
            text,
            model="ollama/test",
            finish_reason="test",
            tool_calls=[("test", arguments)],
        ),
        error(401, f"key {key} rejected in {value}"),
    )
    env = {"OPENAI_API_KEY": key, "OPENAI_BASE_URL": fake_openai.url}
    env |= {"LLMOBS_OPENAI_HEADERS": headers} if headers else {}
    provider = OpenAIProvider.from_spec("gpt-4o-mini?max_retries=0", env=env)

    with contextlib.closing(provider):
        reply = provider.complete(ask("Which tool?"))
        with pytest.raises(ProviderError) as excinfo:
            provider.complete(ask("again"))

    assert (reply.text, reply.model) == (text, "ollama/test")
    assert reply.metadata["finish_reason"] == "test"
    assert reply.tool_calls is not None
    assert reply.tool_calls[0]["function"] == {"name": "test", "arguments": arguments}
    # what the plugin writes itself, an error message, is still scrubbed of them
    shown = "***" if headers else "the default environment"
    assert str(excinfo.value).endswith(f"key *** rejected in {shown}")


@pytest.mark.parametrize(
    ("value", "credential"),
    [
        (FAKE_API_KEY, True),
        ("sk-proj-Ab12/TAILSECRET+Zz==", True),
        ("0123456789abcdef0123456789abcdef", True),  # an Azure key
        ("eyJ0eXAiOiJKV1QiLCJhbGciOi", True),
        ("EMPTY", False),
        ("sk-1234", False),  # LiteLLM's example master key
        ("token-abc123", False),  # vLLM's example
        ("sk-no-key-required", False),
        ("Production-Environment", False),
        ("customer-support-v2", True),
    ],
)
def test_only_values_that_look_like_credentials_are_masked_in_answers(
    value: str, credential: bool
) -> None:
    assert looks_like_credential(value) is credential


def test_prices_from_the_environment(
    pytester: pytest.Pytester, runs: Runs, openai_env: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    openai_env.respond_with(capital_responder())
    prices = pytester.makefile(".json", prices=json.dumps({"local-llm": {"input": 1, "output": 1}}))
    monkeypatch.setenv("LLMOBS_PRICES", str(prices))
    pytester.makepyfile(dedent(SUITE))

    pytester.runpytest("--llm-model=openai:local-llm").assert_outcomes(passed=3)

    costs = [generations(i)[0]["cost"] for i in runs.latest()["items"]]
    assert costs == [pytest.approx(12 / 1e6)] * 3


def test_an_unreadable_price_file_is_named_for_its_own_setting(
    pytester: pytest.Pytester, openai_env: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLMOBS_PRICES", "no-such-prices.json")
    pytester.makepyfile(dedent(SUITE))

    result = pytester.runpytest("--llm-model=openai:local-llm")

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: LLMOBS_PRICES: cannot read 'no-such-prices.json': No such file or directory"]
    )


def test_a_call_failing_for_good_errors_its_test_and_the_run_goes_on(
    pytester: pytest.Pytester, runs: Runs, openai_env: FakeOpenAI, xdist_args: tuple[str, ...]
) -> None:
    openai_env.respond_with(capital_responder(fail="Japan"))
    pytester.makepyfile(dedent(SUITE))

    result = pytester.runpytest("--llm-model=openai:gpt-4o-mini?backoff=0", *xdist_args)

    result.assert_outcomes(passed=2, failed=1)
    message = (
        f"openai:gpt-4o-mini: 500 Internal Server Error after 4 attempts "
        f"(host {openai_env.host}): upstream exploded"
    )
    result.stdout.fnmatch_lines([f"E   *CallError: {message}"])
    traceback = result.stdout.str()
    assert "retry.py" not in traceback and "llm.py" not in traceback  # ends at the test's line
    items = runs.items(runs.latest())
    failed = items[
        "test_a_call_failing_for_good_errors_its_test_and_the_run_goes_on.py::test_capital[Japan]"
    ]
    assert failed["outcome"] == "failed"
    (generation,) = generations(failed)
    assert generation["level"] == "ERROR"
    assert generation["status_message"] == f"CallError: {message}"
    assert generation["output"] is None
    attempts = generation["metadata"]["attempts"]
    assert [a["status"] for a in attempts] == [500, 500, 500, 500]
    assert [a["wait_s"] for a in attempts] == [0.0, 0.0, 0.0, None]
    assert sum(1 for r in openai_env.requests if "Japan" in r.body.decode()) == 4
    assert sorted(i["outcome"] for i in items.values()) == ["failed", "passed", "passed"]


# --- the key never leaks ------------------------------------------------------------------------


def test_the_api_key_never_appears_in_errors_or_reprs(
    fake_openai: FakeOpenAI, provider: OpenAIProvider
) -> None:
    fake_openai.queue(error(401, f"Incorrect API key provided: {FAKE_API_KEY}."))
    with pytest.raises(ProviderError) as excinfo:
        provider.complete(ask("hi"))
    texts = [str(excinfo.value), repr(excinfo.value), repr(provider), str(provider.options)]
    texts += [json.dumps(a) for a in getattr(excinfo.value, "attempts", [])]
    assert all(FAKE_API_KEY not in text for text in texts)
    assert str(excinfo.value).endswith("Incorrect API key provided: ***.")


SLASHED_KEY = 'sk-proj-Ab12/TAILSECRET+Zz=="q\\'
"""A key whose tail JSON-escaping and URL-encoding change (``/``, ``+``, ``=``, ``"``, ``\\``)."""


def json_escaped(text: str, *, slash: bool = False, dotnet: bool = False) -> str:
    """``text`` as a JSON encoder writes it inside a string: PHP's and Java's also escape ``/``;
    .NET's System.Text.Json writes ``+`` and ``"`` as ``\\u002B`` and ``\\u0022``."""
    escaped = json.dumps(text)[1:-1]
    if slash:
        escaped = escaped.replace("/", "\\/")
    if dotnet:
        escaped = escaped.replace("+", "\\u002B").replace('\\"', "\\u0022")
    return escaped


ECHOES = [
    pytest.param(f"Bearer {SLASHED_KEY}", id="as-sent"),
    pytest.param(json_escaped(f"Bearer {SLASHED_KEY}"), id="json"),
    pytest.param(json_escaped(f"Bearer {SLASHED_KEY}", slash=True), id="json-slash"),
    pytest.param(json_escaped(f"Bearer {SLASHED_KEY}", dotnet=True), id="json-dotnet"),
    pytest.param(f"Bearer {quote(SLASHED_KEY, safe='')}", id="url"),
    pytest.param(
        "Bearer " + re.sub("%..", lambda m: m[0].lower(), quote(SLASHED_KEY, safe="")),
        id="url-lower-hex",
    ),
    pytest.param(quote(f"Bearer {SLASHED_KEY}", safe="/"), id="url-keep-slash"),
]


@pytest.mark.parametrize("echo", ECHOES)
def test_a_gateway_echoing_the_key_escaped_or_encoded_gets_none_of_it_into_errors(
    fake_openai: FakeOpenAI, waits: Waits, echo: str
) -> None:
    # (before: "Bearer ***\\/TAILSECRET+Zz==..." kept the tail of a JSON-escaped or encoded key)
    fake_openai.queue(*[error(502, f'upstream rejected {{"auth": "{echo}"}}')] * 2)
    provider = make_provider(fake_openai.url, waits, key=SLASHED_KEY, max_retries=1)
    with contextlib.closing(provider), pytest.raises(CallError) as excinfo:
        provider.complete(ask("hi"))

    message = str(excinfo.value)
    scheme = echo.partition("sk-")[0]  # "Bearer ", "Bearer%20": only the key is ours to mask
    assert message.endswith(f'upstream rejected {{"auth": "{scheme}***"}}'), message
    recorded = json.dumps(excinfo.value.attempts)  # (the generation's attempts metadata)
    assert "TAILSECRET" not in message + recorded and "Zz" not in message + recorded


@pytest.mark.parametrize(
    "encode",
    [
        pytest.param(lambda v: json_escaped(v, slash=True), id="json-slash"),
        pytest.param(lambda v: json_escaped(v, dotnet=True), id="json-dotnet"),
        pytest.param(lambda v: quote(v, safe=""), id="url"),
    ],
)
def test_a_header_value_echoed_escaped_or_encoded_is_scrubbed_too(
    fake_openai: FakeOpenAI, encode: Any
) -> None:
    # (nothing like "sk-" or "Bearer" in front: only the value itself can find it)
    secret = "gw/SUB+SECRET==/7"
    env = {
        "OPENAI_API_KEY": FAKE_API_KEY,
        "OPENAI_BASE_URL": fake_openai.url,
        "LLMOBS_OPENAI_HEADERS": f"X-Gateway-Key={quote(secret, safe='')}",
    }
    fake_openai.queue(error(403, f"subscription {encode(secret)} is not allowed"))

    assert failure_from_spec(env).endswith("subscription *** is not allowed")


def test_a_malformed_answer_echoing_the_key_json_escaped_is_quoted_without_it(
    fake_openai: FakeOpenAI, waits: Waits
) -> None:
    # a gateway's truncated JSON: the body is quoted (repr'd) in the message, which escaped the
    # echo's backslashes once more, past the scrubbing
    echoed = json_escaped(f"Bearer {SLASHED_KEY}", slash=True)
    fake_openai.queue(malformed('{"error": "upstream rejected", "auth": "' + echoed + '"'))
    provider = make_provider(fake_openai.url, waits, key=SLASHED_KEY)
    with contextlib.closing(provider), pytest.raises(ProviderError) as excinfo:
        provider.complete(ask("hi"))

    assert str(excinfo.value).endswith(
        """body starts '{"error": "upstream rejected", "auth": "Bearer ***"'"""
    )


def test_a_token_that_is_not_ours_is_masked_to_its_end() -> None:
    provider = OpenAIProvider("gpt-4o-mini", api_key=FAKE_API_KEY)
    assert provider._error("401", "Bearer other\\/Tok+en%3D%3D rejected").detail == (
        "Bearer *** rejected"
    )


def test_a_model_repeating_the_key_escaped_does_not_get_it_into_the_answer(
    fake_openai: FakeOpenAI, waits: Waits
) -> None:
    escaped = json_escaped(SLASHED_KEY, slash=True)
    arguments = json.dumps({"token": SLASHED_KEY}).replace("/", "\\/")  # PHP's JSON, as text
    fake_openai.queue(answer(f"key: {escaped}", tool_calls=[("login", arguments)]))
    with contextlib.closing(make_provider(fake_openai.url, waits, key=SLASHED_KEY)) as provider:
        reply = provider.complete(ask("What is my key?"))

    assert reply.text == "key: ***"
    assert reply.tool_calls is not None
    assert reply.tool_calls[0]["function"]["arguments"] == '{"token": "***"}'


def test_a_key_echoed_json_escaped_is_nowhere_in_the_run_or_the_output(
    pytester: pytest.Pytester, openai_env: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SLASHED_KEY)
    echoed = json_escaped(f"Bearer {SLASHED_KEY}", slash=True)
    openai_env.respond_with(lambda request: error(502, f'{{"auth": "{echoed}"}}'))
    pytester.makepyfile("def test_x(llm):\n    llm.generate('hi')\n")

    result = pytester.runpytest(
        "--llm-model=openai:gpt-4o-mini?backoff=0&max_retries=1", "-rA", "--tb=long"
    )

    result.assert_outcomes(failed=1)
    output = result.stdout.str() + result.stderr.str()
    assert "502 Bad Gateway after 2 attempts" in output and '{"auth": "Bearer ***"}' in output
    assert "TAILSECRET" not in output
    for path in (p for p in pytester.path.rglob("*") if p.is_file()):
        assert b"TAILSECRET" not in path.read_bytes(), path  # item error, span, attempts


LEAK_SUITE = """\
    import pytest
    from pytest_llmobs import start_span

    def test_ok(llm):
        assert llm.generate("say ok").text == "fine"

    def test_unauthorised(llm):
        llm.generate("please fail")

    def test_traced(llm):
        with start_span("outer") as span:
            span.update(metadata={"model": repr(llm.provider)})
            llm.generate("say ok")
    """


def test_the_api_key_is_nowhere_in_the_run_the_cache_or_the_output(
    pytester: pytest.Pytester, openai_env: FakeOpenAI
) -> None:
    def respond(request: RecordedRequest) -> Reply:
        if "fail" in request.body.decode():
            return error(401, f"Incorrect API key provided: {FAKE_API_KEY}")
        return answer("fine")

    openai_env.respond_with(respond)
    pytester.makepyfile(dedent(LEAK_SUITE))

    result = pytester.runpytest(
        "--llm-model=gpt-4o-mini", "--llm-cache=write", "-v", "-rA", "--tb=long"
    )

    result.assert_outcomes(passed=2, failed=1)
    assert all(r.headers["authorization"] == f"Bearer {FAKE_API_KEY}" for r in openai_env.requests)
    output = result.stdout.str() + result.stderr.str()
    assert "401 Unauthorized" in output
    assert FAKE_API_KEY not in output
    files = [p for p in pytester.path.rglob("*") if p.is_file()]
    assert any(p.suffix == ".db" for p in files)
    assert any(p.parent.parent.parent.name == "llm-cache" for p in files)
    for path in files:
        assert FAKE_API_KEY.encode() not in path.read_bytes(), path


# --- connections shared by one run_experiment ----------------------------------------------------


def test_run_experiment_reuses_connections_for_async_calls(
    openai_env: FakeOpenAI, tmp_path: Path
) -> None:
    async def ask(item: Any, llm: Any) -> str:
        return str((await llm.agenerate(str(item.input))).text)

    items = [{"id": f"q{n}", "input": f"Say hi #{n}", "expected_output": "hi"} for n in range(8)]

    result = pytest_llmobs.run_experiment(
        name="pooled",
        dataset=items,
        task=ask,
        model="openai:gpt-4o-mini",
        max_concurrency=2,
        store=tmp_path / "store",
    )

    assert [item.outcome for item in result.items] == ["passed"] * 8
    connections = {request.client for request in openai_env.requests}
    assert len(openai_env.requests) == 8
    assert 1 <= len(connections) <= 2  # kept alive across items, not one connection per call


@pytest.mark.parametrize("kind", ["async", "sync"])
def test_run_experiment_keeps_every_connection_alive_when_more_than_twenty_run_at_once(
    openai_env: FakeOpenAI, tmp_path: Path, kind: str
) -> None:
    wave = threading.Barrier(25)

    def together(request: RecordedRequest) -> Reply:
        wave.wait(timeout=20)  # answers only once 25 calls are in flight: two waves of 25
        return answer("hi")

    async def ask(item: Any, llm: Any) -> str:
        return str((await llm.agenerate(str(item.input))).text)

    def ask_sync(item: Any, llm: Any) -> str:
        return str(llm.generate(str(item.input)).text)

    openai_env.respond_with(together)
    items = [{"id": f"q{n}", "input": f"Say hi #{n}", "expected_output": "hi"} for n in range(50)]

    result = pytest_llmobs.run_experiment(
        name="wide",
        dataset=items,
        task=ask if kind == "async" else ask_sync,
        model="openai:gpt-4o-mini",
        max_concurrency=25,
        store=tmp_path / "store",
    )

    assert [item.outcome for item in result.items] == ["passed"] * 50
    assert len(openai_env.requests) == 50
    # the second wave reuses all 25 connections (httpx keeps only 20 by default: 30 here)
    assert len({request.client for request in openai_env.requests}) == 25


def test_run_experiment_closes_the_connections_of_a_model_it_resolved(
    openai_env: FakeOpenAI, tmp_path: Path
) -> None:
    def ask_sync(item: Any, llm: Any) -> str:
        return str(llm.generate(str(item.input)).text)

    unclosed: list[str] = []
    previous_hook = sys.unraisablehook
    sys.unraisablehook = lambda unraisable: unclosed.append(repr(unraisable.exc_value))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", ResourceWarning)  # an unclosed socket: unraisable
            result = pytest_llmobs.run_experiment(
                name="closed",
                dataset=[{"input": f"Say hi #{n}", "expected_output": "hi"} for n in range(4)],
                task=ask_sync,
                model="openai:gpt-4o-mini",
                max_concurrency=2,
                store=tmp_path / "store",
            )
            gc.collect()
    finally:
        sys.unraisablehook = previous_hook

    assert [item.outcome for item in result.items] == ["passed"] * 4
    assert unclosed == []


@pytest.mark.asyncio
async def test_async_calls_outside_an_experiment_open_and_close_their_own_client(
    openai_env: FakeOpenAI,
) -> None:
    provider = OpenAIProvider.from_spec("openai:gpt-4o-mini")
    first = await provider.acomplete([{"role": "user", "content": "one"}])
    second = await provider.acomplete([{"role": "user", "content": "two"}])

    assert (first.text, second.text) != ("", "")
    assert len({request.client for request in openai_env.requests}) == 2
