"""Tests for the tracer: observe, spans, trace attributes, context propagation, scores, ids."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import datetime as dt
import enum
import json
import math
import re
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pydantic
import pytest

import pytest_llmobs
from pytest_llmobs import trace_model
from pytest_llmobs.observe_decorator import observe
from pytest_llmobs.prompts import Prompt
from pytest_llmobs.score_model import ScoreError, classify_score_value
from pytest_llmobs.trace_model import (
    Observation,
    Trace,
    derived_id,
    new_observation_id,
    new_trace_id,
)
from pytest_llmobs.tracing import (
    activate,
    current_observation,
    current_trace,
    propagate_attributes,
    set_standalone_sink,
    start_span,
)

TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
OBSERVATION_ID = re.compile(r"^[0-9a-f]{16}$")


@pytest.fixture
def finished() -> Iterator[list[dict[str, Any]]]:
    """Standalone traces, serialised the moment the tracer hands them over."""
    received: list[dict[str, Any]] = []
    previous = set_standalone_sink(lambda trace: received.append(trace.to_dict()))
    try:
        yield received
    finally:
        set_standalone_sink(previous)


@pytest.fixture
def root() -> Iterator[Observation]:
    """An active test trace, as the plugin sets one up around each test."""
    trace = Trace("test_something")
    with activate(Observation(trace, "root")) as observation:
        yield observation


def by_name(trace: Trace) -> dict[str, Observation]:
    return {o.name: o for o in trace.observations}


# --- public re-exports --------------------------------------------------------------------------


def test_package_reexports_the_tracing_api() -> None:
    assert pytest_llmobs.observe is observe
    assert pytest_llmobs.start_span is start_span
    assert pytest_llmobs.propagate_attributes is propagate_attributes
    assert pytest_llmobs.current_trace is current_trace
    assert pytest_llmobs.ScoreError is ScoreError


# --- observe on the four kinds of function ------------------------------------------------------


def test_observe_sync_records_input_output_and_standalone_trace(
    finished: list[dict[str, Any]],
) -> None:
    @observe
    def add(a: int, b: int = 0) -> int:
        """Adds."""
        return a + b

    assert add(1, b=2) == 3
    assert add.__name__ == "add" and add.__doc__ == "Adds."
    assert len(finished) == 1
    trace = finished[0]
    assert trace["name"] == "add"
    assert trace["end_time"] is not None
    (span,) = trace["observations"]
    assert span["name"] == "add"
    assert span["type"] == "span"
    assert span["parent_id"] is None
    assert span["input"] == {"args": [1], "kwargs": {"b": 2}}
    assert span["output"] == 3
    assert span["level"] == "DEFAULT"
    assert span["end_time"] >= span["start_time"]


def test_observe_input_always_has_args_and_kwargs(root: Observation) -> None:
    @observe
    def nothing() -> None:
        return None

    @observe
    def keywords(*, x: int) -> int:
        return x

    nothing()
    keywords(x=4)
    spans = by_name(root.trace)
    assert spans["nothing"].to_dict()["input"] == {"args": [], "kwargs": {}}
    assert spans["keywords"].to_dict()["input"] == {"args": [], "kwargs": {"x": 4}}
    assert spans["keywords"].output == 4


def test_observe_with_name_and_generation_type(root: Observation) -> None:
    @observe(name="llm-call", as_type="generation")
    def call(question: str) -> str:
        return question.upper()

    assert call("hi") == "HI"
    generation = by_name(root.trace)["llm-call"]
    assert generation.type == "generation"
    assert generation.parent_id == root.id
    data = generation.to_dict()
    assert data["type"] == "generation"
    assert {"model", "usage", "prompt_name", "prompt_version"} <= set(data)
    assert "model" not in root.to_dict()


def test_observe_can_skip_capturing_input_and_output(root: Observation) -> None:
    @observe(capture_input=False, capture_output=False)
    def secret(password: str) -> str:
        return password[::-1]

    assert secret("hunter2") == "2retnuh"
    span = by_name(root.trace)["secret"]
    assert span.input is None and span.output is None


def test_observe_async_function(finished: list[dict[str, Any]]) -> None:
    @observe
    async def fetch(key: str) -> dict[str, str]:
        await asyncio.sleep(0)
        return {"key": key}

    assert asyncio.run(fetch("k")) == {"key": "k"}
    (trace,) = finished
    (span,) = trace["observations"]
    assert span["name"] == "fetch"
    assert span["input"] == {"args": ["k"], "kwargs": {}}
    assert span["output"] == {"key": "k"}


def test_observe_generator_of_strings_joins_output(finished: list[dict[str, Any]]) -> None:
    @observe
    def stream(n: int) -> Iterator[str]:
        for i in range(n):
            yield f"t{i} "

    assert list(stream(3)) == ["t0 ", "t1 ", "t2 "]
    (trace,) = finished
    (span,) = trace["observations"]
    assert span["output"] == "t0 t1 t2 "
    assert span["input"] == {"args": [3], "kwargs": {}}
    assert span["end_time"] is not None


def test_observe_generator_of_other_values_keeps_a_list(root: Observation) -> None:
    @observe
    def numbers() -> Iterator[object]:
        yield 1
        yield "two"
        yield {"three": 3}

    assert list(numbers()) == [1, "two", {"three": 3}]
    assert by_name(root.trace)["numbers"].output == [1, "two", {"three": 3}]


def test_observe_generator_is_transparent_to_send_and_return(root: Observation) -> None:
    @observe
    def echo() -> Any:
        received = yield "ready"
        yield f"got {received}"
        return "done"

    def driver() -> Any:
        result = yield from echo()
        return result

    gen = driver()
    assert next(gen) == "ready"
    assert gen.send("x") == "got x"
    with pytest.raises(StopIteration) as stop:
        next(gen)
    assert stop.value.value == "done"
    assert by_name(root.trace)["echo"].output == "readygot x"


def test_observe_generator_receives_exceptions_thrown_into_it(root: Observation) -> None:
    handled: list[str] = []

    @contextlib.contextmanager
    @observe
    def guarded() -> Iterator[str]:
        try:
            yield "resource"
        except KeyError as exc:
            handled.append(f"handled {exc}")
        finally:
            handled.append("cleaned up")

    with guarded() as resource:
        assert resource == "resource"
        raise KeyError("k")  # the generator handles it, so the with block swallows it
    assert handled == ["handled 'k'", "cleaned up"]
    span = by_name(root.trace)["guarded"]
    assert span.level == "DEFAULT"
    assert span.end_time is not None


def test_observe_generator_that_reraises_a_thrown_exception_is_marked(
    root: Observation,
) -> None:
    cleaned: list[bool] = []

    @observe
    def stream() -> Generator[int, None, None]:
        try:
            yield 1
            yield 2
        finally:
            cleaned.append(True)

    gen = stream()
    assert next(gen) == 1
    with pytest.raises(ValueError, match="stop"):
        gen.throw(ValueError("stop"))
    assert cleaned == [True]
    span = by_name(root.trace)["stream"]
    assert span.level == "ERROR"
    assert span.status_message == "ValueError: stop"


def test_observe_async_generator_receives_exceptions_thrown_into_it(
    root: Observation,
) -> None:
    @observe
    async def stream() -> AsyncGenerator[str, None]:
        try:
            yield "first"
        except ValueError:
            yield "recovered"

    async def main() -> list[str]:
        gen = stream()
        first = await gen.__anext__()
        second = await gen.athrow(ValueError("retry"))
        await gen.aclose()
        return [first, second]

    assert asyncio.run(main()) == ["first", "recovered"]
    span = by_name(root.trace)["stream"]
    assert span.output == "firstrecovered"
    assert span.level == "DEFAULT"


def test_observe_generator_closed_early_ends_its_span(root: Observation) -> None:
    @observe
    def endless() -> Generator[int, None, None]:
        i = 0
        while True:
            yield i
            i += 1

    gen = endless()
    assert [next(gen), next(gen)] == [0, 1]
    gen.close()
    span = by_name(root.trace)["endless"]
    assert span.end_time is not None
    assert span.output == [0, 1]
    assert span.level == "DEFAULT"


def test_observe_async_generator(finished: list[dict[str, Any]]) -> None:
    @observe(name="astream")
    async def stream(words: list[str]) -> AsyncIterator[str]:
        for word in words:
            await asyncio.sleep(0)
            yield word

    async def consume() -> list[str]:
        return [w async for w in stream(["a", "b"])]

    assert asyncio.run(consume()) == ["a", "b"]
    (trace,) = finished
    (span,) = trace["observations"]
    assert span["name"] == "astream"
    assert span["output"] == "ab"
    assert span["input"] == {"args": [["a", "b"]], "kwargs": {}}


def test_calls_inside_generators_nest_under_the_generator(root: Observation) -> None:
    @observe
    def inner(x: int) -> int:
        return x * 10

    @observe
    def outer() -> Iterator[int]:
        yield inner(1)
        yield inner(2)

    @observe
    async def ainner() -> str:
        return "a"

    @observe
    async def aouter() -> AsyncIterator[str]:
        yield await ainner()

    async def consume() -> list[str]:
        return [x async for x in aouter()]

    assert list(outer()) == [10, 20]
    assert asyncio.run(consume()) == ["a"]
    spans = root.trace.observations
    outer_span = next(o for o in spans if o.name == "outer")
    aouter_span = next(o for o in spans if o.name == "aouter")
    assert [o.parent_id for o in spans if o.name == "inner"] == [outer_span.id, outer_span.id]
    assert next(o for o in spans if o.name == "ainner").parent_id == aouter_span.id
    assert outer_span.parent_id == aouter_span.parent_id == root.id
    # Between items the generator's span is not current: the caller's context is unchanged.
    assert current_observation() is root


# --- errors ------------------------------------------------------------------------------------


def test_exception_in_sync_function_marks_error_and_propagates(root: Observation) -> None:
    @observe
    def boom() -> None:
        raise ValueError("bad input")

    with pytest.raises(ValueError, match="bad input"):
        boom()
    span = by_name(root.trace)["boom"]
    assert span.level == "ERROR"
    assert span.status_message == "ValueError: bad input"
    assert span.end_time is not None
    assert current_observation() is root


def test_exception_in_async_function_marks_error(root: Observation) -> None:
    @observe
    async def boom() -> None:
        raise KeyError("k")

    with pytest.raises(KeyError):
        asyncio.run(boom())
    span = by_name(root.trace)["boom"]
    assert span.level == "ERROR"
    assert span.status_message == "KeyError: 'k'"


def test_exception_in_generators_marks_error_and_keeps_items(root: Observation) -> None:
    @observe
    def gen() -> Iterator[str]:
        yield "partial"
        raise RuntimeError("stream broke")

    @observe
    async def agen() -> AsyncIterator[str]:
        yield "x"
        raise TimeoutError("too slow")

    async def consume() -> None:
        async for _ in agen():
            pass

    with pytest.raises(RuntimeError, match="stream broke"):
        list(gen())
    with pytest.raises(TimeoutError, match="too slow"):
        asyncio.run(consume())
    spans = by_name(root.trace)
    assert spans["gen"].level == "ERROR"
    assert spans["gen"].status_message == "RuntimeError: stream broke"
    assert spans["gen"].output == "partial"
    assert spans["agen"].level == "ERROR"
    assert spans["agen"].status_message == "TimeoutError: too slow"


def test_exception_in_start_span_marks_error_and_propagates(root: Observation) -> None:
    with pytest.raises(ZeroDivisionError), start_span("divide") as span:
        _ = 1 / 0
    assert span.level == "ERROR"
    assert span.status_message == "ZeroDivisionError: division by zero"
    assert span.end_time is not None
    assert current_observation() is root


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (ValueError("expected: "), "ValueError: expected: "),
        (ValueError("ends with a colon:"), "ValueError: ends with a colon:"),
        (ValueError(), "ValueError"),
        (ValueError(""), "ValueError"),
    ],
)
def test_status_message_keeps_the_exception_message_intact(
    root: Observation, error: Exception, message: str
) -> None:
    @observe
    def fails() -> None:
        raise error

    with pytest.raises(ValueError):
        fails()
    assert by_name(root.trace)["fails"].status_message == message


def test_standalone_trace_that_fails_is_still_handed_to_the_sink(
    finished: list[dict[str, Any]],
) -> None:
    @observe
    def boom() -> None:
        raise LookupError("nothing here")

    with pytest.raises(LookupError):
        boom()
    (trace,) = finished
    assert trace["observations"][0]["level"] == "ERROR"
    assert trace["observations"][0]["status_message"] == "LookupError: nothing here"


# --- nesting ------------------------------------------------------------------------------------


def test_nesting_builds_a_parent_chain(finished: list[dict[str, Any]]) -> None:
    @observe
    def leaf(x: int) -> int:
        return x + 1

    @observe
    def middle(x: int) -> int:
        return leaf(x) + leaf(x)

    @observe
    def top() -> int:
        with start_span("step") as step:
            step.update(output="stepped")
        return middle(1)

    assert top() == 4
    (trace,) = finished
    spans = trace["observations"]
    ids = {o["name"]: o["id"] for o in spans}
    parents = [(o["name"], o["parent_id"]) for o in spans]
    assert parents == [
        ("top", None),
        ("step", ids["top"]),
        ("middle", ids["top"]),
        ("leaf", ids["middle"]),
        ("leaf", ids["middle"]),
    ]
    assert {o["trace_id"] for o in spans} == {trace["id"]}
    assert current_observation() is None


def test_current_observation_and_trace_follow_the_stack(root: Observation) -> None:
    seen: list[Observation | None] = []

    @observe
    def inside() -> None:
        seen.append(current_observation())

    assert current_observation() is root
    assert current_trace() is root.trace
    with start_span("outer") as outer:
        assert current_observation() is outer
        inside()
        assert current_observation() is outer
    assert current_observation() is root
    (inner,) = seen
    assert inner is not None and inner.name == "inside" and inner.parent_id == outer.id


def test_outside_any_trace_there_is_no_current_observation() -> None:
    assert current_observation() is None
    assert current_trace() is None


def test_each_top_level_call_outside_a_trace_starts_its_own_trace(
    finished: list[dict[str, Any]],
) -> None:
    @observe
    def work() -> None:
        return None

    work()
    work()
    assert len(finished) == 2
    assert finished[0]["id"] != finished[1]["id"]


def test_traces_inside_an_active_trace_are_not_sent_to_the_sink(
    finished: list[dict[str, Any]], root: Observation
) -> None:
    @observe
    def work() -> None:
        return None

    work()
    assert finished == []
    assert [o.name for o in root.trace.observations] == ["root", "work"]


def test_set_standalone_sink_returns_the_previous_sink() -> None:
    first: list[Trace] = []
    second: list[Trace] = []
    original = set_standalone_sink(first.append)
    try:
        assert set_standalone_sink(second.append) == first.append
        with start_span("alone"):
            pass
        assert set_standalone_sink(None) == second.append
        with start_span("dropped"):  # no sink: the trace is simply not delivered
            pass
    finally:
        set_standalone_sink(original)
    assert first == []
    assert [t.name for t in second] == ["alone"]


# --- start_span ----------------------------------------------------------------------------------


def test_start_span_update_score_prompt_and_attributes(root: Observation) -> None:
    prompt = Prompt(name="qa", version=3, type="text", template="Q: {{q}}")
    with start_span("retrieve", input={"q": "?"}, metadata={"k": 1}) as span:
        span.update(output=["doc1"], metadata={"hits": 1})
        span.update(input={"q": "rewritten"})
        score = span.score("relevance", 0.75, comment="ok")
        span.attach_prompt(prompt.compile(q="x"))
        span.propagate_attributes(user_id="u1", session_id="s1", tags=["rag"])
    assert span.input == {"q": "rewritten"}
    assert span.output == ["doc1"]
    assert span.metadata == {"k": 1, "hits": 1}
    assert (span.prompt_name, span.prompt_version) == ("qa", 3)
    assert score.observation_id == span.id
    assert score.trace_id == root.trace.id
    assert score in root.trace.scores
    assert (score.value, score.data_type, score.comment) == (0.75, "NUMERIC", "ok")
    trace = root.trace
    assert (trace.user_id, trace.session_id, trace.tags) == ("u1", "s1", ["rag"])


def test_update_rejects_unknown_fields(root: Observation) -> None:
    with start_span("s") as span, pytest.raises(TypeError, match="unexpected field 'colour'"):
        span.update(colour="red")


def test_update_sets_generation_fields(root: Observation) -> None:
    with start_span("gen", as_type="generation") as generation:
        generation.update(model="m", usage={"input": 1, "output": 2, "total": 3}, cost=0.5)
    data = generation.to_dict()
    assert data["model"] == "m"
    assert data["usage"] == {"input": 1, "output": 2, "total": 3}
    assert data["cost"] == 0.5


@pytest.mark.parametrize(
    ("fields", "error", "message"),
    [
        ({"usage": {"input": "n/a"}}, ValueError, "usage['input'] is str 'n/a', not a number"),
        (
            {"usage": {"input": math.inf}},
            ValueError,
            "usage['input'] is inf; expected a whole number from 0 to 2**53",
        ),
        (
            {"usage": {"output": 2**64}},
            ValueError,
            "usage['output'] is 18446744073709551616; expected a whole number from 0 to 2**53",
        ),
        (
            {"usage": {"input": 1.5}},
            ValueError,
            "usage['input'] is 1.5; expected a whole number from 0 to 2**53",
        ),
        ({"usage": [3]}, TypeError, "usage must be a mapping of token counts or None; got list"),
        ({"cost": math.nan}, ValueError, "cost is nan; expected a finite number >= 0"),
        ({"cost": -0.5}, ValueError, "cost is -0.5; expected a finite number >= 0"),
        (
            {"cost": 10**400},
            ValueError,
            "cost is an integer of 1329 bits; expected a finite number >= 0",
        ),
    ],
)
def test_update_refuses_usage_and_cost_the_aggregates_cannot_sum(
    root: Observation, fields: dict[str, Any], error: type[Exception], message: str
) -> None:
    with start_span("gen", as_type="generation") as generation, pytest.raises(error) as caught:
        generation.update(**fields)
    assert str(caught.value) == f"update: {message}"
    assert (generation.usage, generation.cost) == (None, None)


def test_update_keeps_an_sdks_usage_shape_and_checks_only_the_counts_totals_sum(
    root: Observation,
) -> None:
    class Usage(pydantic.BaseModel):  # as an SDK's response.usage
        input: int
        output: int
        prompt_tokens_details: dict[str, int]

    given = Usage(input=7, output=1, prompt_tokens_details={"cached_tokens": 3})
    with start_span("gen", as_type="generation") as generation:
        generation.update(usage=given)
    assert generation.usage == {
        "input": 7,
        "output": 1,
        "prompt_tokens_details": {"cached_tokens": 3},
    }


def test_update_keeps_whole_token_counts_as_ints(root: Observation) -> None:
    with start_span("gen", as_type="generation") as generation:
        generation.update(usage={"input": 7.0, "output": None, "cached": 2}, cost=1)
    assert generation.to_dict()["usage"] == {"input": 7, "output": 0, "cached": 2}
    assert generation.cost == 1.0


def test_update_takes_langfuses_levels_in_any_case(root: Observation) -> None:
    # (before: 'warning' was stored as given, and 'error' was no error to the OTLP exporter)
    with start_span("s") as span:
        span.update(level="warning")
        assert span.level == "WARNING"
        span.update(level="Error")
        assert span.level == "ERROR"
        span.update(level=None)
        assert span.level == "DEFAULT"
        span.update(level="DEBUG")
    assert span.to_dict()["level"] == "DEBUG"


@pytest.mark.parametrize(
    ("level", "error", "message"),
    [
        ("BOGUS", ValueError, "level 'BOGUS' is not one of DEBUG, DEFAULT, WARNING, ERROR"),
        ("", ValueError, "level '' is not one of DEBUG, DEFAULT, WARNING, ERROR"),
        (3, TypeError, "level must be a str or None; got int"),
    ],
)
def test_update_refuses_a_level_langfuse_does_not_know(
    root: Observation, level: Any, error: type[Exception], message: str
) -> None:
    with start_span("s") as span, pytest.raises(error) as caught:
        span.update(level=level)
    assert str(caught.value).startswith(f"update: {message}")
    assert span.level == "DEFAULT"


def test_attach_prompt_accepts_an_uncompiled_prompt_and_a_span_keeps_the_link(
    root: Observation,
) -> None:
    with start_span("s") as span:
        span.attach_prompt(Prompt(name="p", version=7, type="text", template="hi"))
    with start_span("plain") as plain:
        pass
    assert (span.prompt_name, span.prompt_version) == ("p", 7)
    data = span.to_dict()  # what is stored and exported
    assert (data["prompt_name"], data["prompt_version"]) == ("p", 7)
    assert "prompt_name" not in plain.to_dict()


# --- values are recorded as they were when given -----------------------------------------------


def test_observe_records_arguments_and_results_as_they_were_at_the_call(root: Observation) -> None:
    @observe
    def agent_turn(messages: list[dict[str, str]], *, options: dict[str, int]) -> list[str]:
        messages.append({"role": "assistant", "content": "Paris"})  # the function mutates
        return ["Paris"]

    @observe
    def words(text: str) -> Iterator[dict[str, str]]:
        yield {"word": text}

    messages = [{"role": "user", "content": "Capital of France?"}]
    options = {"n": 1}
    answers = agent_turn(messages, options=options)
    answers.append("Lyon")  # the caller mutates the result and the arguments afterwards
    options["n"] = 2
    (produced,) = list(words("Paris"))
    produced["word"] = "changed"

    turn, generator = by_name(root.trace)["agent_turn"], by_name(root.trace)["words"]
    assert turn.input == {
        "args": [[{"role": "user", "content": "Capital of France?"}]],
        "kwargs": {"options": {"n": 1}},
    }
    assert turn.output == ["Paris"]
    assert generator.output == [{"word": "Paris"}]


def test_start_span_and_update_record_values_as_they_were_given(root: Observation) -> None:
    history = [{"role": "user", "content": "Hi"}]
    details = {"tags": ["a"]}
    with start_span("turn", input=history, metadata={"details": details}) as span:
        history.append({"role": "assistant", "content": "Hello"})
        details["tags"].append("b")
        result = {"text": "Hello"}
        span.update(output=result, metadata={"seen": details})
        result["text"] = "changed"
        details["tags"].append("c")

    assert span.input == [{"role": "user", "content": "Hi"}]
    assert span.output == {"text": "Hello"}
    assert span.metadata == {"details": {"tags": ["a"]}, "seen": {"tags": ["a", "b"]}}


def test_plain_strings_and_numbers_are_recorded_without_a_copy(root: Observation) -> None:
    text = "".join(["Pa", "ris"])  # a fresh object, not an interned constant

    @observe
    def echo(value: str, *, n: int = 1) -> str:
        return value

    echo(text, n=3)

    span = by_name(root.trace)["echo"]
    assert span.input["args"][0] is text and span.output is text


def test_generate_records_its_parameters_as_they_were_sent(root: Observation) -> None:
    # (before: the list itself, so {'stop': ['\n', 'NEVER_SENT']} was stored)
    from pytest_llmobs.llm import LLM
    from pytest_llmobs.providers import default_registry

    stop = ["\n"]
    LLM(default_registry().resolve("mock-llm-v1")).generate("Capital of France?", stop=stop)
    stop.append("NEVER_SENT")

    generation = by_name(root.trace)["llm.generate"]
    assert generation.to_dict()["model_parameters"] == {"stop": ["\n"]}


def test_propagate_attributes_records_metadata_as_it_was_given(root: Observation) -> None:
    # (before: the caller's dict itself, so the later temperature 999 was stored)
    config = {"temperature": 0.2}
    with propagate_attributes(metadata={"config": config}):
        config["temperature"] = 999
    with start_span("s") as span:
        span.propagate_attributes(metadata={"seen": config})
    config["temperature"] = 1000

    assert root.trace.to_dict()["metadata"] == {
        "config": {"temperature": 0.2},
        "seen": {"temperature": 999},
    }


def test_traces_started_in_a_propagate_block_get_its_attributes_as_given(
    finished: list[dict[str, Any]],
) -> None:
    @observe
    def job() -> None:
        return None

    config = {"temperature": 0.2}
    tags = ["a"]
    with propagate_attributes(metadata={"config": config}, tags=tags):
        config["temperature"] = 999
        tags.append("b")
        job()

    (inside,) = finished
    assert (inside["metadata"], inside["tags"]) == ({"config": {"temperature": 0.2}}, ["a"])


# --- propagate_attributes ------------------------------------------------------------------------


def test_propagate_attributes_sets_them_on_the_current_trace(root: Observation) -> None:
    with propagate_attributes(user_id="alice", session_id="sess", tags=["a"], metadata={"x": 1}):
        pass
    trace = root.trace
    assert trace.user_id == "alice"
    assert trace.session_id == "sess"
    assert trace.tags == ["a"]
    assert trace.metadata == {"x": 1}


def test_propagate_attributes_applies_to_traces_started_in_the_block(
    finished: list[dict[str, Any]],
) -> None:
    @observe
    def job() -> None:
        return None

    with propagate_attributes(user_id="bob", tags=["batch"], metadata={"env": "ci"}):
        job()
    job()  # after the block: no attributes
    inside, after = finished
    assert inside["user_id"] == "bob"
    assert inside["tags"] == ["batch"]
    assert inside["metadata"] == {"env": "ci"}
    assert after["user_id"] is None
    assert after["tags"] == []
    assert after["metadata"] == {}


def test_nested_propagate_attributes_accumulate_tags_and_merge_metadata(
    finished: list[dict[str, Any]],
) -> None:
    @observe
    def job() -> None:
        return None

    with propagate_attributes(user_id="u1", tags=["a"], metadata={"x": 1}):
        with propagate_attributes(user_id="u2", tags=["b", "a"], metadata={"y": 2}):
            job()
        job()
    inner, outer = finished
    assert inner["user_id"] == "u2"
    assert inner["tags"] == ["a", "b"]
    assert inner["metadata"] == {"x": 1, "y": 2}
    assert outer["user_id"] == "u1"
    assert outer["tags"] == ["a"]
    assert outer["metadata"] == {"x": 1}


def test_nested_propagate_attributes_inside_a_trace_accumulate(root: Observation) -> None:
    with (
        propagate_attributes(tags=["a"], metadata={"x": 1}),
        propagate_attributes(tags=["b"], metadata={"y": 2}),
    ):
        pass
    assert root.trace.tags == ["a", "b"]
    assert root.trace.metadata == {"x": 1, "y": 2}


def test_propagate_attributes_rejects_a_string_for_tags() -> None:
    with (
        pytest.raises(TypeError, match="tags must be a list of strings, not the string 'abc'"),
        propagate_attributes(tags="abc"),
    ):
        pass


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: propagate_attributes(metadata="team=support"),  # type: ignore[arg-type]
            "metadata must be a mapping such as {'team': 'support'}, not str 'team=support'",
        ),
        (
            lambda: propagate_attributes(user_id=["a", "b"]),  # type: ignore[arg-type]
            "user_id must be a string (or an int), not list ['a', 'b']",
        ),
    ],
)
def test_propagate_attributes_names_a_value_of_the_wrong_type(call: Any, message: str) -> None:
    # (before: a ValueError from dict.update, or the list stored as the string "['a', 'b']")
    with pytest.raises(TypeError, match=re.escape(message)), call():
        pass


def test_update_names_metadata_that_is_not_a_mapping(root: Observation) -> None:
    with (
        start_span("s") as span,
        pytest.raises(TypeError, match=r"^metadata must be a mapping such as .*, not str 'x'$"),
    ):
        span.update(metadata="x")  # type: ignore[arg-type]


def test_an_exception_whose_str_fails_reaches_the_caller_as_itself(root: Observation) -> None:
    # (before, tracing's str(error) raised instead, so pytest.raises(Weird) failed)
    class Weird(Exception):
        def __str__(self) -> str:
            raise RuntimeError("__str__ broke")

    with pytest.raises(Weird), start_span("s") as span:
        raise Weird
    assert span.status_message == "Weird: <str() of the exception failed>"


def test_a_span_closed_after_its_trace_ended_hands_back_to_the_running_trace() -> None:
    # a fixture's span opened in one test and closed in a later one
    first, second = Observation(Trace("t1"), "t1"), Observation(Trace("t2"), "t2")
    with activate(first):
        held = start_span("held")
        held.__enter__()
    first.trace.finish()
    with activate(second):
        held.__exit__(None, None, None)
        with start_span("after") as after:
            pass
    assert after.trace is second.trace  # (before: the finished first trace, so it was lost)


def test_propagate_attributes_are_isolated_between_asyncio_tasks(
    finished: list[dict[str, Any]],
) -> None:
    @observe
    async def job() -> None:
        await asyncio.sleep(0)

    async def as_user(user: str) -> None:
        with propagate_attributes(user_id=user):
            await asyncio.sleep(0)
            await job()

    async def main() -> None:
        await asyncio.gather(as_user("a"), as_user("b"))

    asyncio.run(main())
    assert sorted(t["user_id"] for t in finished) == ["a", "b"]


# --- concurrency: asyncio tasks and threads ---------------------------------------------------


def test_concurrent_asyncio_tasks_each_nest_under_their_own_span(root: Observation) -> None:
    @observe
    async def leaf(label: str) -> str:
        await asyncio.sleep(0)
        return label

    @observe
    async def task(label: str, started: asyncio.Event, other: asyncio.Event) -> str:
        started.set()
        await other.wait()  # both task spans are open at the same time
        first = await leaf(label)
        await asyncio.sleep(0)
        second = await leaf(label)
        return first + second

    async def main() -> list[str]:
        a, b = asyncio.Event(), asyncio.Event()
        return list(await asyncio.gather(task("a", a, b), task("b", b, a)))

    assert asyncio.run(main()) == ["aa", "bb"]
    spans = root.trace.observations
    tasks = {o.input["args"][0]: o for o in spans if o.name == "task"}
    leaves = [o for o in spans if o.name == "leaf"]
    assert len(leaves) == 4
    for leaf_span in leaves:
        assert leaf_span.parent_id == tasks[leaf_span.output].id
    assert {t.parent_id for t in tasks.values()} == {root.id}
    assert current_observation() is root


def test_thread_with_copied_context_nests_under_the_current_span(root: Observation) -> None:
    @observe
    def in_thread() -> str:
        return threading.current_thread().name

    with start_span("parallel") as parallel:
        context = contextvars.copy_context()
        worker = threading.Thread(target=context.run, args=(in_thread,), name="worker-1")
        worker.start()
        worker.join()
    span = by_name(root.trace)["in_thread"]
    assert span.parent_id == parallel.id
    assert span.output == "worker-1"


def test_plain_thread_attaches_to_the_active_root(root: Observation) -> None:
    @observe
    def in_thread() -> None:
        return None

    with start_span("not-inherited"):
        worker = threading.Thread(target=in_thread)
        worker.start()
        worker.join()
    span = by_name(root.trace)["in_thread"]
    assert span.parent_id == root.id
    assert span.trace is root.trace


def test_thread_pool_work_lands_in_the_active_trace(root: Observation) -> None:
    @observe
    def square(x: int) -> int:
        return x * x

    with ThreadPoolExecutor(max_workers=2) as pool:
        assert list(pool.map(square, range(4))) == [0, 1, 4, 9]
    squares = [o for o in root.trace.observations if o.name == "square"]
    assert sorted(o.output for o in squares) == [0, 1, 4, 9]
    assert {o.parent_id for o in squares} == {root.id}


def test_activate_restores_the_previous_state() -> None:
    outer = Observation(Trace("outer"), "outer-root")
    inner = Observation(Trace("inner"), "inner-root")
    with activate(outer):
        with activate(inner):
            assert current_observation() is inner
        assert current_observation() is outer
    assert current_observation() is None


# --- ids ---------------------------------------------------------------------------------------


def test_ids_are_opentelemetry_shaped_and_distinct() -> None:
    trace_ids = {new_trace_id() for _ in range(200)}
    observation_ids = {new_observation_id() for _ in range(200)}
    assert len(trace_ids) == 200 and len(observation_ids) == 200
    assert all(TRACE_ID.match(i) for i in trace_ids)
    assert all(OBSERVATION_ID.match(i) for i in observation_ids)
    trace = Trace("t")
    assert TRACE_ID.match(trace.id)
    assert OBSERVATION_ID.match(Observation(trace, "o").id)


def test_ids_are_never_all_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trace_model, "_random_bytes", lambda n: bytes(n))
    trace_id, observation_id = new_trace_id(), new_observation_id()
    assert TRACE_ID.match(trace_id) and trace_id.strip("0")
    assert OBSERVATION_ID.match(observation_id) and observation_id.strip("0")


def test_derived_ids_are_deterministic_hex() -> None:
    assert derived_id("run", "node", 0) == derived_id("run", "node", 0)
    assert derived_id("run", "node", 0) != derived_id("run", "node", 1)
    assert TRACE_ID.match(derived_id("x"))
    assert OBSERVATION_ID.match(derived_id("x", length=16))


# --- scores ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected", "data_type"),
    [
        (True, True, "BOOLEAN"),
        (False, False, "BOOLEAN"),
        (np.bool_(True), True, "BOOLEAN"),
        (3, 3, "NUMERIC"),
        (0, 0, "NUMERIC"),
        (0.25, 0.25, "NUMERIC"),
        (np.float64(0.5), 0.5, "NUMERIC"),
        (np.int64(7), 7, "NUMERIC"),
        ("good", "good", "CATEGORICAL"),
        ("", "", "CATEGORICAL"),
        (-0.0, 0.0, "NUMERIC"),  # (read "-0.0", "0" and "-0.000–-0.000" in three outputs)
    ],
)
def test_classify_score_value(value: object, expected: object, data_type: str) -> None:
    checked, kind = classify_score_value("s", value)
    assert kind == data_type
    assert checked == expected
    assert type(checked) is type(expected)
    assert str(checked) == str(expected)


FINITE = "score 'quality': value must be a finite number (at most about 1.8e308)"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (math.nan, f"{FINITE}; got nan"),
        (math.inf, f"{FINITE}; got inf"),
        (-math.inf, f"{FINITE}; got -inf"),
        (np.float64("nan"), f"{FINITE}; got "),
        (10**400, f"{FINITE}; got an integer of 401 digits"),
        (None, "score 'quality': value must be bool, int, float or str; got NoneType None"),
        ([1, 2], "score 'quality': value must be bool, int, float or str; got list [1, 2]"),
        ({"a": 1}, "score 'quality': value must be bool, int, float or str; got dict"),
    ],
    ids=["nan", "inf", "-inf", "numpy-nan", "huge-int", "none", "list", "dict"],
)
def test_invalid_score_values_raise_score_error(value: object, message: str) -> None:
    trace = Trace("t")
    with pytest.raises(ScoreError) as excinfo:
        trace.add_score("quality", value)
    assert str(excinfo.value).startswith(message)
    assert trace.scores == []


@pytest.mark.parametrize("name", ["", None, 3])
def test_score_name_must_be_a_non_empty_string(name: Any) -> None:
    with pytest.raises(ScoreError, match="score name must be a non-empty string; got"):
        Trace("t").add_score(name, 1)


def test_add_score_records_value_type_and_details() -> None:
    trace = Trace("t")
    score = trace.add_score(
        "verdict", "pass", comment="why", source="judge", metadata={"model": "m"}
    )
    assert trace.scores == [score]
    data = score.to_dict()
    assert data["trace_id"] == trace.id
    assert data["observation_id"] is None
    assert (data["name"], data["value"], data["data_type"]) == ("verdict", "pass", "CATEGORICAL")
    assert (data["comment"], data["source"], data["metadata"]) == ("why", "judge", {"model": "m"})
    assert TRACE_ID.match(data["id"])


def test_score_ids_are_deterministic_and_distinct_for_repeats() -> None:
    def record(trace: Trace) -> list[str]:
        return [
            trace.add_score("accuracy", 1.0).id,
            trace.add_score("accuracy", 0.0).id,
            trace.add_score("latency", 3).id,
        ]

    first = record(Trace("a", id="ab" * 16))
    second = record(Trace("b", id="ab" * 16))
    other = record(Trace("c", id="cd" * 16))
    assert first == second
    assert len(set(first)) == 3
    assert not set(first) & set(other)


# --- serialisation -----------------------------------------------------------------------------


@dataclasses.dataclass
class Retrieved:
    doc: str
    score: float
    lock: Any = dataclasses.field(default_factory=threading.Lock)


class Answer(pydantic.BaseModel):
    text: str
    when: dt.date


class Colour(enum.Enum):
    RED = "red"


class Opaque:
    def __repr__(self) -> str:
        return "<Opaque>"


class Frame:
    """Has a ``to_dict`` that is not the no-argument kind the serialiser hopes for."""

    def to_dict(self, orient: str) -> dict[str, str]:
        return {"orient": orient}

    def __repr__(self) -> str:
        return "<Frame>"


class WithOpaque(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(arbitrary_types_allowed=True)
    thing: Opaque


def test_trace_to_dict_is_json_serialisable_with_odd_values(root: Observation) -> None:
    odd = {
        "set": {3, 1, 2},
        "bytes": b"\x00\x01",
        "dataclass": Retrieved("d1", 0.5),
        "model": Answer(text="hi", when=dt.date(2024, 1, 2)),
        "model_class": Answer,
        "object": Opaque(),
        "frame": Frame(),
        "model_with_object": WithOpaque(thing=Opaque()),
        "nan": math.nan,
        "path": Path("a/b"),
        "enum": Colour.RED,
        "datetime": dt.datetime(2024, 1, 2, 3, 4, 5),
        "tuple": (1, "x"),
        1: "int key",
    }
    with start_span("odd", input=odd, metadata={"odd": odd}) as span:
        span.update(output=Opaque())
    root.trace.metadata["odd"] = {frozenset({1})}
    root.trace.add_score("s", 1, metadata={"b": b"x"})
    root.trace.finish()

    data = json.loads(json.dumps(root.trace.to_dict(), allow_nan=False))
    recorded = next(o for o in data["observations"] if o["name"] == "odd")
    value = recorded["input"]
    assert value["set"] == [1, 2, 3]
    assert value["bytes"] == "<2 bytes>"
    assert value["dataclass"]["doc"] == "d1" and value["dataclass"]["score"] == 0.5
    assert "lock" in value["dataclass"]["lock"]
    assert value["model"] == {"text": "hi", "when": "2024-01-02"}
    assert "Answer" in value["model_class"]
    assert value["object"] == "<Opaque>"
    assert value["frame"] == "<Frame>"
    assert value["model_with_object"] == "WithOpaque(thing=<Opaque>)"
    assert value["nan"] == "nan"
    assert value["path"] == str(Path("a/b"))
    assert value["enum"] == "red"
    assert value["datetime"] == "2024-01-02T03:04:05"
    assert value["tuple"] == [1, "x"]
    assert value["1"] == "int key"
    assert recorded["metadata"]["odd"]["set"] == [1, 2, 3]
    assert recorded["output"] == "<Opaque>"
    assert data["metadata"] == {"odd": [[1]]}
    assert data["scores"][0]["metadata"] == {"b": "<1 bytes>"}
    assert data["observations"][0]["end_time"] is not None


def test_to_dict_handles_self_referencing_values() -> None:
    loop: list[Any] = []
    loop.append(loop)
    trace = Trace("t")
    Observation(trace, "o", input=loop)
    json.dumps(trace.to_dict())


def test_generation_parameters_may_hold_classes(root: Observation) -> None:
    with start_span("gen", as_type="generation") as generation:
        generation.update(model_parameters={"response_format": Answer, "temperature": 0})
    data = json.loads(json.dumps(root.trace.to_dict()))
    params = next(o for o in data["observations"] if o["name"] == "gen")["model_parameters"]
    assert params["temperature"] == 0
    assert "Answer" in params["response_format"]


def test_finish_closes_open_observations() -> None:
    trace = Trace("t")
    first = Observation(trace, "a")
    second = Observation(trace, "b", parent_id=first.id)
    trace.finish()
    assert first.end_time is not None and second.end_time is not None
    assert trace.end_time is not None
    assert trace.root is first


@pytest.mark.parametrize(
    "details", [{"comment": 123}, {"comment": {"when": "x"}}, {"source": ["human"]}]
)
def test_a_score_comment_or_source_that_is_not_text_is_refused(details: Any) -> None:
    trace = Trace("t")
    field = next(iter(details))
    with pytest.raises(ScoreError, match=rf"^score 'q': {field} must be a str or None; got "):
        trace.add_score("q", 1.0, **details)
    assert trace.scores == []


def test_every_way_of_scoring_checks_the_name_against_the_runs_own_aggregates() -> None:
    trace = Trace("t")
    with pytest.raises(ScoreError, match=r"^score 'latency_ms': its aggregates mean_latency_ms"):
        trace.add_score("latency_ms", 5000)  # span.score() and run_experiment come this way
    with pytest.raises(ScoreError, match=r"holds a control or invisible character"):
        trace.add_score("two\nlines", 1.0)
    assert trace.scores == []
