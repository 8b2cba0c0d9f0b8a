"""``openai`` SDK clients instrumented with `instrument()`, calling a real HTTP server on
127.0.0.1 (`fake_openai`) through the real SDK: completions, streams, tool calls, errors, async
clients, copies, and a pytest session that stores what they recorded."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Callable, Iterator
from textwrap import dedent
from typing import TYPE_CHECKING, Any

import openai
import pydantic
import pytest
from fake_openai import (
    FAKE_API_KEY,
    FakeOpenAI,
    answer,
    broken_stream,
    closed_url,
    error,
    fake_openai,
    malformed,
    openai_env,
    openai_sdk_loaded,
)
from openai import AsyncOpenAI, OpenAI

from pytest_llmobs.integrations.openai import instrument
from pytest_llmobs.trace_model import Observation
from pytest_llmobs.tracing import start_span

if TYPE_CHECKING:
    from conftest import Runs

__all__ = ["fake_openai", "openai_env", "openai_sdk_loaded"]  # fixtures, from fake_openai
pytestmark = pytest.mark.usefixtures("openai_sdk_loaded")

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
ECHO = "echo: What is the capital of France?"
ECHO_USAGE = {"input": 6, "output": 7, "total": 13}  # the fake server counts words
MINI_INPUT, MINI_OUTPUT = 0.15, 0.60  # USD per 1M tokens, gpt-4o-mini in the built-in table


@pytest.fixture
def client(fake_openai: FakeOpenAI) -> Iterator[OpenAI]:
    with OpenAI(base_url=fake_openai.url, api_key=FAKE_API_KEY, max_retries=0) as sdk:
        yield instrument(sdk)


def recorded(call: Callable[[], Any]) -> tuple[Any, list[Observation]]:
    """``call()`` inside a span named ``test``; its result and the observations under the span."""
    with start_span("test") as root:
        result = call()
    observations = root.trace.observations[1:]
    assert all(o.parent_id == root.id for o in observations)
    return result, observations


def text_of(chunks: Any) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def test_a_completion_becomes_a_generation_in_the_current_trace(
    client: OpenAI, fake_openai: FakeOpenAI
) -> None:
    fake_openai.queue(answer("Paris", prompt_tokens=12, completion_tokens=1))

    completion, (generation,) = recorded(
        lambda: client.chat.completions.create(
            model="gpt-4o-mini", messages=QUESTION, temperature=0, max_tokens=5
        )
    )

    assert completion.choices[0].message.content == "Paris"
    assert (generation.name, generation.type) == ("openai.chat.completions.create", "generation")
    assert (generation.input, generation.output) == (QUESTION, "Paris")
    assert generation.model == "gpt-4o-mini"
    assert generation.model_parameters == {"temperature": 0, "max_tokens": 5}
    assert generation.usage == {"input": 12, "output": 1, "total": 13}
    assert generation.cost == pytest.approx((12 * MINI_INPUT + 1 * MINI_OUTPUT) / 1e6)
    assert generation.metadata == {"finish_reason": "stop", "response_id": "chatcmpl-fake-1"}
    assert (generation.level, generation.end_time is not None) == ("DEFAULT", True)
    (request,) = fake_openai.requests
    assert request.json == {
        "model": "gpt-4o-mini",
        "messages": QUESTION,
        "temperature": 0,
        "max_tokens": 5,
    }


def test_the_answering_model_and_one_shot_messages_are_recorded(
    client: OpenAI, fake_openai: FakeOpenAI
) -> None:
    fake_openai.queue(answer("Paris", model="gpt-4o-mini-2024-07-18"))
    messages = (dict(m) for m in QUESTION)  # an iterator the SDK accepts; read only once

    _, (generation,) = recorded(
        lambda: client.chat.completions.create(model="gpt-4o-mini", messages=messages)
    )

    assert generation.model == "gpt-4o-mini-2024-07-18"
    assert generation.cost is not None  # a dated snapshot is priced as its base model
    assert generation.input == QUESTION
    assert fake_openai.requests[0].messages == QUESTION


def test_a_stream_is_recorded_when_it_ends_with_the_usage_it_asked_for(
    client: OpenAI, fake_openai: FakeOpenAI
) -> None:
    with start_span("test") as root:
        stream = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=QUESTION,
            stream=True,
            stream_options={"include_usage": True},
        )
        (generation,) = root.trace.observations[1:]
        open_while_read = (generation.end_time, generation.output)
        text = text_of(stream)

    assert open_while_read == (None, None)
    assert text == ECHO
    assert (generation.output, generation.usage) == (ECHO, ECHO_USAGE)
    assert generation.cost == pytest.approx((6 * MINI_INPUT + 7 * MINI_OUTPUT) / 1e6)
    assert generation.model_parameters == {
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    assert generation.metadata["finish_reason"] == "stop"
    assert generation.metadata["time_to_first_token_ms"] >= 0
    assert generation.end_time is not None


def test_a_stream_without_include_usage_has_no_usage(client: OpenAI) -> None:
    text, (generation,) = recorded(
        lambda: text_of(
            client.chat.completions.create(model="gpt-4o-mini", messages=QUESTION, stream=True)
        )
    )

    assert text == generation.output == ECHO
    assert (generation.usage, generation.cost) == (None, None)


def test_a_stream_closed_early_is_recorded_as_far_as_it_got(client: OpenAI) -> None:
    def read_two_chunks() -> str:
        create = client.chat.completions.create
        with create(model="gpt-4o-mini", messages=QUESTION, stream=True) as stream:
            return text_of([next(stream), next(stream)])

    text, (generation,) = recorded(read_two_chunks)

    assert text == generation.output == "echo: "
    assert generation.metadata["stream_closed_early"] is True
    assert "finish_reason" not in generation.metadata


def test_the_stream_helper_left_early_is_recorded_as_far_as_it_got(client: OpenAI) -> None:
    def read_first_text() -> tuple[str, float]:
        completions = client.chat.completions
        with completions.stream(model="gpt-4o-mini", messages=QUESTION) as stream:
            for event in stream:
                if event.type == "content.delta" and event.snapshot:
                    break
        return event.snapshot, time.time()  # the helper has closed the response

    (text, closed_by), (generation,) = recorded(read_first_text)

    assert text and ECHO.startswith(text) and text != ECHO
    assert generation.output == text
    assert generation.metadata["stream_closed_early"] is True
    assert generation.end_time is not None and generation.end_time <= closed_by


def test_a_stream_left_by_break_is_recorded_when_its_trace_ends(client: OpenAI) -> None:
    def break_after_two_chunks() -> None:
        stream = client.chat.completions.create(model="gpt-4o-mini", messages=QUESTION, stream=True)
        for seen, _ in enumerate(stream, start=1):
            if seen == 2:
                break  # never closed: the SDK's response stays open until collected

    _, (generation,) = recorded(break_after_two_chunks)

    assert generation.output == "echo: "
    assert generation.metadata["stream_closed_early"] is True
    assert generation.end_time is not None


def test_an_async_stream_helper_left_early_is_recorded(fake_openai: FakeOpenAI) -> None:
    async def read_first_text() -> tuple[str, Observation]:
        async with AsyncOpenAI(base_url=fake_openai.url, api_key=FAKE_API_KEY) as sdk:
            completions = instrument(sdk).chat.completions
            with start_span("test") as root:
                async with completions.stream(model="gpt-4o-mini", messages=QUESTION) as stream:
                    async for event in stream:
                        if event.type == "content.delta" and event.snapshot:
                            break
        return event.snapshot, root.trace.observations[1]

    text, generation = asyncio.run(read_first_text())

    assert text and text != ECHO
    assert generation.output == text
    assert generation.metadata["stream_closed_early"] is True


def test_messages_appended_after_the_call_are_not_its_input(
    client: OpenAI, fake_openai: FakeOpenAI
) -> None:
    fake_openai.queue(answer("Paris"), answer("Lyon"))
    conversation = [dict(m) for m in QUESTION]

    def two_turns() -> None:
        first = client.chat.completions.create(model="gpt-4o-mini", messages=conversation)
        conversation.append({"role": "assistant", "content": first.choices[0].message.content})
        conversation.append({"role": "user", "content": "And of Italy's second city?"})
        client.chat.completions.create(model="gpt-4o-mini", messages=conversation)

    _, (first, second) = recorded(two_turns)

    assert first.input == QUESTION
    assert [m["content"] for m in second.input] == [
        QUESTION[0]["content"],
        "Paris",
        "And of Italy's second city?",
    ]


def test_parameters_changed_after_the_call_are_recorded_as_sent(
    client: OpenAI, fake_openai: FakeOpenAI
) -> None:
    # (before: the tools list itself, so the tool appended afterwards was stored as sent)
    tools: Any = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]

    def ask_then_add_a_tool() -> None:
        client.chat.completions.create(model="gpt-4o-mini", messages=QUESTION, tools=tools)
        tools.append({"type": "function", "function": {"name": "never_sent", "parameters": {}}})

    _, (generation,) = recorded(ask_then_add_a_tool)

    assert generation.model_parameters == {"tools": fake_openai.requests[0].params["tools"]}
    assert [t["function"]["name"] for t in generation.model_parameters["tools"]] == ["get_weather"]


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "streamed"])
def test_tool_calls_are_the_output(client: OpenAI, fake_openai: FakeOpenAI, stream: bool) -> None:
    call = ("get_weather", '{"city": "Paris"}')
    fake_openai.queue(answer("", tool_calls=[call], finish_reason="tool_calls"))

    def ask() -> None:
        result = client.chat.completions.create(
            model="gpt-4o-mini", messages=QUESTION, stream=stream
        )
        if stream:
            list(result)  # type: ignore[arg-type]

    _, (generation,) = recorded(ask)

    function = {"name": "get_weather", "arguments": '{"city": "Paris"}'}
    assert generation.output == {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": "call_0", "type": "function", "function": function}],
    }
    assert generation.metadata["finish_reason"] == "tool_calls"


def test_a_legacy_function_call_is_the_output(client: OpenAI, fake_openai: FakeOpenAI) -> None:
    # (before: the output was '' and the call was nowhere)
    function = {"name": "get_weather", "arguments": '{"city": "Paris"}'}
    completion = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "finish_reason": "function_call",
                "message": {"role": "assistant", "content": None, "function_call": function},
            }
        ],
    }
    fake_openai.queue(malformed(json.dumps(completion)))

    _, (generation,) = recorded(
        lambda: client.chat.completions.create(model="gpt-4o-mini", messages=QUESTION)
    )

    assert generation.output == {"role": "assistant", "content": None, "function_call": function}


def test_a_failed_call_is_an_errored_generation_and_the_error_propagates(
    client: OpenAI, fake_openai: FakeOpenAI
) -> None:
    fake_openai.queue(error(429, "slow down"))

    with start_span("test") as root, pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="gpt-4o-mini", messages=QUESTION)

    (generation,) = root.trace.observations[1:]
    assert generation.level == "ERROR"
    assert generation.status_message == "RateLimitError: Error code: 429 - slow down"
    assert generation.metadata == {"status_code": 429}
    assert (generation.output, generation.usage) == (None, None)


def test_the_clients_key_is_hidden_where_an_error_or_answer_repeats_it(
    fake_openai: FakeOpenAI,
) -> None:
    key = "gw-key-Zq81xPz"  # a gateway's key: not shaped like sk-..., which masking knows
    fake_openai.queue(error(401, f"invalid key {key}"), answer(f"your key is {key}"))
    with OpenAI(base_url=fake_openai.url, api_key=key, max_retries=0) as sdk:
        client = instrument(sdk)
        with start_span("test") as root:
            with pytest.raises(openai.AuthenticationError):
                client.chat.completions.create(model="gpt-4o-mini", messages=QUESTION)
            client.chat.completions.create(model="gpt-4o-mini", messages=QUESTION)

    failed, answered = root.trace.observations[1:]
    assert failed.status_message == "AuthenticationError: Error code: 401 - invalid key ***"
    assert answered.output == "your key is ***"


def test_a_connection_error_is_an_errored_generation() -> None:
    with OpenAI(base_url=closed_url(), api_key=FAKE_API_KEY, max_retries=0) as sdk:
        client = instrument(sdk)
        with start_span("test") as root, pytest.raises(openai.APIConnectionError):
            client.chat.completions.create(model="gpt-4o-mini", messages=QUESTION)

    (generation,) = root.trace.observations[1:]
    assert (generation.level, generation.status_message) == (
        "ERROR",
        "APIConnectionError: Connection error.",
    )


def test_a_stream_that_breaks_is_errored_with_what_it_delivered(
    client: OpenAI, fake_openai: FakeOpenAI
) -> None:
    fake_openai.queue(broken_stream("Paris is", "upstream went away"))
    create = client.chat.completions.create

    with start_span("test") as root, pytest.raises(openai.APIError, match="upstream went away"):
        for _ in create(model="gpt-4o-mini", messages=QUESTION, stream=True):
            pass

    (generation,) = root.trace.observations[1:]
    assert generation.level == "ERROR"
    assert generation.status_message == "APIError: upstream went away"
    assert generation.output == "Paris is"


def test_a_stream_that_breaks_records_the_model_its_chunks_named(
    client: OpenAI, fake_openai: FakeOpenAI
) -> None:
    # (before: the requested model, as if the server had not answered)
    dated = "gpt-4o-mini-2024-07-18"
    fake_openai.queue(dataclasses.replace(broken_stream("Paris is", "gone"), model=dated))
    create = client.chat.completions.create

    with start_span("test") as root, pytest.raises(openai.APIError, match="gone"):
        for _ in create(model="gpt-4o-mini", messages=QUESTION, stream=True):
            pass

    (generation,) = root.trace.observations[1:]
    assert (generation.level, generation.output, generation.model) == ("ERROR", "Paris is", dated)
    assert generation.metadata["response_id"] == "chatcmpl-fake-1"


class City(pydantic.BaseModel):
    name: str


def test_parse_cut_short_records_what_the_server_answered(
    client: OpenAI, fake_openai: FakeOpenAI
) -> None:
    # (before: neither the model that answered, nor the answer, nor its usage and cost)
    dated = "gpt-4o-mini-2024-07-18"
    reply = answer('{"name": "Par', finish_reason="length")
    fake_openai.queue(
        dataclasses.replace(reply, model=dated, prompt_tokens=12, completion_tokens=2)
    )

    with start_span("test") as root, pytest.raises(openai.LengthFinishReasonError):
        client.chat.completions.parse(model="gpt-4o-mini", messages=QUESTION, response_format=City)

    (generation,) = root.trace.observations[1:]
    assert (generation.level, generation.model, generation.output) == ("ERROR", dated, reply.text)
    assert generation.usage == {"input": 12, "output": 2, "total": 14}
    assert generation.cost == pytest.approx((12 * MINI_INPUT + 2 * MINI_OUTPUT) / 1e6)
    assert generation.metadata["finish_reason"] == "length"


def test_an_async_client_records_completions_and_streams(fake_openai: FakeOpenAI) -> None:
    async def ask() -> tuple[list[Observation], str, str]:
        async with AsyncOpenAI(base_url=fake_openai.url, api_key=FAKE_API_KEY) as sdk:
            client = instrument(sdk)
            with start_span("test") as root:
                create = client.chat.completions.create
                completion = await create(model="gpt-4o-mini", messages=QUESTION)
                stream = await create(model="gpt-4o-mini", messages=QUESTION, stream=True)
                async with stream:
                    chunks = [chunk async for chunk in stream]
        return root.trace.observations[1:], completion.choices[0].message.content or "", chunks

    observations, completed, chunks = asyncio.run(ask())

    assert completed == text_of(chunks) == ECHO
    assert [(o.name, o.output) for o in observations] == [
        ("openai.chat.completions.create", ECHO),
        ("openai.chat.completions.create", ECHO),
    ]
    assert [o.usage for o in observations] == [ECHO_USAGE, None]
    assert "time_to_first_token_ms" in observations[1].metadata
    assert "stream_closed_early" not in observations[1].metadata


def test_instrumenting_twice_and_copies_record_each_call_once(client: OpenAI) -> None:
    assert instrument(client) is client
    copies = [client, client.with_options(timeout=5), client.copy(), instrument(client)]

    def ask_each() -> list[str]:
        return [
            c.chat.completions.create(model="gpt-4o-mini", messages=QUESTION)
            .choices[0]
            .message.content
            or ""
            for c in copies
        ]

    answers, observations = recorded(ask_each)

    assert answers == [ECHO] * 4
    assert [o.name for o in observations] == ["openai.chat.completions.create"] * 4


def test_the_stream_helper_and_parse_are_recorded(client: OpenAI) -> None:
    def ask() -> tuple[str, str]:
        completions = client.chat.completions
        with completions.stream(model="gpt-4o-mini", messages=QUESTION) as stream:
            streamed = stream.get_final_completion().choices[0].message.content or ""
        parsed = completions.parse(model="gpt-4o-mini", messages=QUESTION)
        return streamed, parsed.choices[0].message.content or ""

    answers, (streamed, parsed) = recorded(ask)

    assert answers == (ECHO, ECHO)
    assert (streamed.name, streamed.output) == ("openai.chat.completions.create", ECHO)
    assert streamed.model_parameters == {"stream": True}  # the helper's unset arguments dropped
    assert (parsed.name, parsed.output, parsed.usage) == (
        "openai.chat.completions.parse",
        ECHO,
        ECHO_USAGE,
    )


# --- through pytest -----------------------------------------------------------------------------

INI = "[pytest]\nasyncio_default_fixture_loop_scope = function\n"


def test_calls_in_a_test_are_stored_in_its_trace(
    pytester: pytest.Pytester, runs: Runs, openai_env: FakeOpenAI
) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(
        dedent(
            """\
            from openai import OpenAI

            from pytest_llmobs.integrations.openai import instrument

            QUESTION = [{"role": "user", "content": "What is the capital of France?"}]

            def test_app(scorer):
                client = instrument(OpenAI(max_retries=0))  # OPENAI_BASE_URL: the fake server
                create = client.chat.completions.create
                reply = create(model="gpt-4o-mini", messages=QUESTION)
                stream = create(
                    model="gpt-4o-mini",
                    messages=QUESTION,
                    stream=True,
                    stream_options={"include_usage": True},
                )
                streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
                assert scorer.exact_match(streamed, reply.choices[0].message.content)
            """
        )
    )

    result = pytester.runpytest()

    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*generations 2 *tokens 12 in / 14 out*"])
    (item,) = runs.latest()["items"]
    root, *generations = item["trace"]["observations"]
    assert [(g["name"], g["parent_id"], g["model"]) for g in generations] == [
        ("openai.chat.completions.create", root["id"], "gpt-4o-mini"),
        ("openai.chat.completions.create", root["id"], "gpt-4o-mini"),
    ]
    assert [g["output"] for g in generations] == [ECHO, ECHO]
    assert [g["usage"] for g in generations] == [ECHO_USAGE, ECHO_USAGE]
    assert generations[1]["model_parameters"]["stream"] is True


def test_a_stream_the_test_stopped_reading_is_its_output(
    pytester: pytest.Pytester, runs: Runs, openai_env: FakeOpenAI
) -> None:
    # (before: the generation got its answer when the trace ended, after the test's output was
    # taken from it, so the test's output was None)
    pytester.makeini(INI)
    pytester.makepyfile(
        dedent(
            """\
            from openai import OpenAI

            from pytest_llmobs.integrations.openai import instrument

            def test_app():
                client = instrument(OpenAI(max_retries=0))  # OPENAI_BASE_URL: the fake server
                messages = [{"role": "user", "content": "What is the capital of France?"}]
                stream = client.chat.completions.create(
                    model="gpt-4o-mini", messages=messages, stream=True
                )
                for chunk in stream:
                    if chunk.choices[0].delta.content == "What ":
                        break  # the stream is never closed
            """
        )
    )

    pytester.runpytest().assert_outcomes(passed=1)

    (item,) = runs.latest()["items"]
    root, generation = item["trace"]["observations"]
    assert generation["metadata"]["stream_closed_early"] is True
    assert root["output"] == generation["output"] == "echo: What "


def test_instrument_says_what_it_expects(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(
        dedent(
            """\
            import openai

            from pytest_llmobs.integrations.openai import instrument

            def test_app():
                instrument(openai.OpenAI)
            """
        )
    )

    result = pytester.runpytest()

    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "E *TypeError: instrument() expects an openai.OpenAI or openai.AsyncOpenAI client; "
            "got <class 'openai.OpenAI'>"
        ]
    )
