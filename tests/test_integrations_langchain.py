"""LangChain runs traced by `CallbackHandler`, and the run's model as a LangChain chat model
(`llm.as_langchain()`): span trees, generations, errors, sync and async, outside a trace, and
through a real pytest session."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from textwrap import dedent
from typing import TYPE_CHECKING, Any

import pytest
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.fake import FakeListLLM
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate, PromptTemplate
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import Runnable, RunnableLambda, RunnableParallel
from langchain_core.tools import tool

from pytest_llmobs import run_experiment
from pytest_llmobs.integrations.langchain import CallbackHandler
from pytest_llmobs.integrations.langchain_model import LLMObsChatModel
from pytest_llmobs.llm import LLM
from pytest_llmobs.providers import ProviderError
from pytest_llmobs.providers.cache import CacheMode, ResponseCache
from pytest_llmobs.providers.mock import MockLLM
from pytest_llmobs.trace_model import Observation, Trace
from pytest_llmobs.tracing import set_standalone_sink, start_span

if TYPE_CHECKING:
    from conftest import Runs

PROMPT = ChatPromptTemplate.from_messages(
    [("system", "Answer from the context."), ("user", "Context: {context}\nQuestion: {question}")]
)
CONTEXT = "Paris is the capital of France. Lyon is known for its food."
QUESTION = {"context": CONTEXT, "question": "What is the capital of France?"}
MESSAGES = [
    {"role": "system", "content": "Answer from the context."},
    {"role": "user", "content": f"Context: {CONTEXT}\nQuestion: What is the capital of France?"},
]
SYNC_OR_ASYNC = pytest.mark.parametrize("sync", [True, False], ids=["invoke", "ainvoke"])


def fake_model(*answers: AIMessage | str) -> GenericFakeChatModel:
    """LangChain's fake chat model answering ``answers`` in turn."""
    return GenericFakeChatModel(messages=iter(answers))


def run_traced(
    runnable: Runnable[Any, Any], value: Any, *, sync: bool = True
) -> tuple[Any, Trace, CallbackHandler]:
    """Run ``runnable`` with a `CallbackHandler` inside a span named ``test``."""
    handler = CallbackHandler()
    config: Any = {"callbacks": [handler]}
    with start_span("test") as root:
        if sync:
            output = runnable.invoke(value, config)
        else:
            output = asyncio.run(runnable.ainvoke(value, config))
    return output, root.trace, handler


def tree(trace: Trace) -> list[tuple[str, str | None]]:
    """(name, parent name) of every observation, in start order."""
    names = {o.id: o.name for o in trace.observations}
    return [(o.name, names.get(o.parent_id or "")) for o in trace.observations]


def named(trace: Trace, name: str) -> Observation:
    (observation,) = [o for o in trace.observations if o.name == name]
    return observation


def children(trace: Trace, name: str) -> list[str]:
    parent = named(trace, name)
    return [o.name for o in trace.observations if o.parent_id == parent.id]


def generations(trace: Trace) -> list[Observation]:
    return [o for o in trace.observations if o.type == "generation"]


@pytest.fixture
def mock_llm() -> LLM:
    return LLM(MockLLM.from_spec("mock-llm-v1"))


# --- the handler ----------------------------------------------------------------------------


@SYNC_OR_ASYNC
def test_chain_steps_nest_under_the_sequence_with_their_inputs_and_outputs(sync: bool) -> None:
    reply = AIMessage(
        "Paris",
        usage_metadata={"input_tokens": 12, "output_tokens": 1, "total_tokens": 13},
        response_metadata={"model_name": "fake-4o-2024"},
    )
    chain = PROMPT | fake_model(reply) | StrOutputParser()

    output, trace, handler = run_traced(chain, QUESTION, sync=sync)

    assert output == "Paris"
    assert tree(trace) == [
        ("test", None),
        ("RunnableSequence", "test"),
        ("ChatPromptTemplate", "RunnableSequence"),
        ("GenericFakeChatModel", "RunnableSequence"),
        ("StrOutputParser", "RunnableSequence"),
    ]
    sequence, prompt, model, parser = trace.observations[1:]
    assert (sequence.input, sequence.output) == (QUESTION, "Paris")
    assert (prompt.input, prompt.output, prompt.metadata["run_type"]) == (
        QUESTION,
        MESSAGES,
        "prompt",
    )
    assert model.type == "generation"
    assert (model.input, model.output) == (MESSAGES, "Paris")
    assert (model.model, model.usage) == ("fake-4o-2024", {"input": 12, "output": 1, "total": 13})
    assert model.metadata["run_type"] == "chat_model"
    assert parser.input == {"role": "assistant", "content": "Paris"}
    assert [o.level for o in trace.observations] == ["DEFAULT"] * 5
    assert repr(handler) == "CallbackHandler(open_runs=0)"


@SYNC_OR_ASYNC
def test_parallel_branches_each_hold_their_own_steps(sync: bool) -> None:
    answer = (PROMPT | fake_model("Paris") | StrOutputParser()).with_config(run_name="answer")
    shout = RunnableLambda(lambda q: q["question"].upper()).with_config(run_name="shout")
    parallel = RunnableParallel(answer=answer, shout=shout)

    output, trace, _ = run_traced(parallel, QUESTION, sync=sync)

    assert output == {"answer": "Paris", "shout": "WHAT IS THE CAPITAL OF FRANCE?"}
    assert children(trace, "test") == ["RunnableParallel<answer,shout>"]
    assert sorted(children(trace, "RunnableParallel<answer,shout>")) == ["answer", "shout"]
    assert children(trace, "answer") == [
        "ChatPromptTemplate",
        "GenericFakeChatModel",
        "StrOutputParser",
    ]
    assert (children(trace, "shout"), named(trace, "shout").output) == (
        [],
        "WHAT IS THE CAPITAL OF FRANCE?",
    )


class CapitalFacts(BaseRetriever):
    """Returns the sentences of `CONTEXT` that mention a capital."""

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        sentences = CONTEXT.split(". ")
        return [Document(s, metadata={"source": "facts"}) for s in sentences if "capital" in s]


@SYNC_OR_ASYNC
def test_retriever_records_its_query_and_documents(sync: bool) -> None:
    join = RunnableLambda(lambda docs: " ".join(d.page_content for d in docs))
    chain = CapitalFacts() | join.with_config(run_name="join")

    output, trace, _ = run_traced(chain, "capital of France", sync=sync)

    assert output == "Paris is the capital of France"
    assert children(trace, "RunnableSequence") == ["CapitalFacts", "join"]
    retriever = named(trace, "CapitalFacts")
    assert (retriever.type, retriever.metadata["run_type"]) == ("span", "retriever")
    assert retriever.input == "capital of France"
    assert retriever.output == [
        {"page_content": "Paris is the capital of France", "metadata": {"source": "facts"}}
    ]


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def test_tool_call_round_trip_records_the_call_the_tool_and_the_answer() -> None:
    call = {"name": "add", "args": {"a": 2, "b": 3}, "id": "call_1", "type": "tool_call"}
    model = fake_model(AIMessage("", tool_calls=[call]), AIMessage("5"))
    config: Any = {"callbacks": [CallbackHandler()]}

    with start_span("test") as root:
        question = [HumanMessage("What is 2 + 3?")]
        decision = model.invoke(question, config)
        result = add.invoke(decision.tool_calls[0], config)
        final = model.invoke([*question, decision, result], config)

    assert final.content == "5"
    trace = root.trace
    assert tree(trace)[1:] == [
        ("GenericFakeChatModel", "test"),
        ("add", "test"),
        ("GenericFakeChatModel", "test"),
    ]
    first, tool_span, second = trace.observations[1:]
    assistant = {"role": "assistant", "content": "", "tool_calls": [call]}
    tool_message = {"role": "tool", "content": "5", "tool_call_id": "call_1", "name": "add"}
    assert first.output == assistant
    assert (tool_span.input, tool_span.output) == ({"a": 2, "b": 3}, tool_message)
    assert tool_span.metadata["run_type"] == "tool"
    assert second.input == [{"role": "user", "content": "What is 2 + 3?"}, assistant, tool_message]
    assert second.output == "5"


def test_a_text_llm_run_is_a_generation_of_its_prompt() -> None:
    chain = PromptTemplate.from_template("Capital of {country}?") | FakeListLLM(responses=["Paris"])

    output, trace, _ = run_traced(chain, {"country": "France"})

    assert output == "Paris"
    generation = named(trace, "FakeListLLM")
    assert (generation.type, generation.input, generation.output) == (
        "generation",
        "Capital of France?",
        "Paris",
    )
    assert (generation.model, generation.metadata["run_type"]) == ("fake-list", "llm")


def test_events_of_runs_the_handler_did_not_see_are_ignored_and_stopping_is_no_error() -> None:
    handler, run, unseen = CallbackHandler(), uuid.uuid4(), uuid.uuid4()

    with start_span("test") as root:
        handler.on_chain_end("late", run_id=unseen)
        handler.on_chain_start(None, {"q": "x"}, run_id=run, name="stream")
        handler.on_chain_error(GeneratorExit(), run_id=run)  # the consumer stopped reading
        handler.on_llm_error(ValueError("gone"), run_id=run)  # already ended: ignored

    (span,) = root.trace.observations[1:]
    assert (span.name, span.level, span.metadata["stopped_early"]) == ("stream", "DEFAULT", True)
    assert handler.observation_for(run) is None


def test_a_failing_step_marks_itself_and_its_chain_errored() -> None:
    def no_context(prompt: Any) -> str:
        raise ValueError("no context given")

    chain = PROMPT | RunnableLambda(no_context) | StrOutputParser()
    config: Any = {"callbacks": [CallbackHandler()]}

    with start_span("test") as root, pytest.raises(ValueError, match="no context given"):
        chain.invoke(QUESTION, config)

    trace = root.trace
    assert [(o.name, o.level, o.status_message) for o in trace.observations[1:]] == [
        ("RunnableSequence", "ERROR", "ValueError: no context given"),
        ("ChatPromptTemplate", "DEFAULT", None),
        ("no_context", "ERROR", "ValueError: no context given"),
    ]


def test_streaming_records_the_whole_answer_and_the_first_token_time() -> None:
    chain = PROMPT | fake_model("Paris is the capital") | StrOutputParser()
    config: Any = {"callbacks": [CallbackHandler()]}

    with start_span("test") as root:
        pieces = list(chain.stream(QUESTION, config))

    assert len(pieces) > 1 and "".join(pieces) == "Paris is the capital"
    trace = root.trace
    sequence = named(trace, "RunnableSequence")
    model, parser = named(trace, "GenericFakeChatModel"), named(trace, "StrOutputParser")
    assert model.output == "Paris is the capital"
    assert model.metadata["time_to_first_token_ms"] >= 0
    # a streamed run reports its input when it ends
    assert (sequence.input, sequence.output) == (QUESTION, "Paris is the capital")
    assert parser.input == {"role": "assistant", "content": "Paris is the capital"}


def test_a_run_outside_any_trace_starts_its_own_trace() -> None:
    chain = PROMPT | fake_model("Paris") | StrOutputParser()
    finished: list[Trace] = []
    previous = set_standalone_sink(finished.append)
    try:
        chain.invoke(QUESTION, {"callbacks": [CallbackHandler()]})
    finally:
        set_standalone_sink(previous)

    (trace,) = finished
    assert tree(trace) == [
        ("RunnableSequence", None),
        ("ChatPromptTemplate", "RunnableSequence"),
        ("GenericFakeChatModel", "RunnableSequence"),
        ("StrOutputParser", "RunnableSequence"),
    ]
    assert trace.end_time is not None


# --- llm.as_langchain() -------------------------------------------------------------------------


def test_as_langchain_is_a_chat_model_answering_with_the_runs_model(mock_llm: LLM) -> None:
    model = mock_llm.as_langchain(temperature=0)

    with start_span("test") as root:
        answer = (PROMPT | model | StrOutputParser()).invoke(QUESTION)

    assert isinstance(model, BaseChatModel) and isinstance(model, LLMObsChatModel)
    assert model.model_name == "mock-llm-v1"
    assert answer == "Paris is the capital of France."
    # without a handler the call is recorded as llm.generate records it, under the current span
    (generation,) = generations(root.trace)
    assert (generation.name, generation.parent_id) == ("LLMObsChatModel", root.id)
    assert (generation.model, generation.model_parameters) == ("mock-llm-v1", {"temperature": 0})
    assert (generation.input, generation.output) == (MESSAGES, answer)
    assert generation.usage == {"input": 30, "output": 7, "total": 37}
    assert (generation.cost, "latency_ms" in generation.metadata) == (0.0, True)


@SYNC_OR_ASYNC
def test_as_langchain_with_the_handler_is_recorded_once_where_langchain_ran_it(
    mock_llm: LLM, sync: bool
) -> None:
    chain = PROMPT | mock_llm.as_langchain(temperature=0) | StrOutputParser()

    answer, trace, _ = run_traced(chain, QUESTION, sync=sync)

    assert answer == "Paris is the capital of France."
    (generation,) = generations(trace)
    assert generation.name == "LLMObsChatModel"
    assert children(trace, "RunnableSequence") == [
        "ChatPromptTemplate",
        "LLMObsChatModel",
        "StrOutputParser",
    ]
    assert (generation.model, generation.model_parameters) == ("mock-llm-v1", {"temperature": 0})
    assert (generation.input, generation.output) == (MESSAGES, answer)
    assert generation.usage == {"input": 30, "output": 7, "total": 37}
    assert (generation.cost, "latency_ms" in generation.metadata) == (0.0, True)


def test_as_langchain_parameters_bind_and_stop_reach_the_model(mock_llm: LLM) -> None:
    model = mock_llm.as_langchain(max_tokens=3)
    question = f"Context: {CONTEXT}\nQuestion: What is the capital of France?"

    with start_span("test") as root:
        three = model.invoke(question)
        one = model.bind(max_tokens=1).invoke(question, stop=["\n"])

    assert (three.content, one.content) == ("Paris is the", "Paris")
    assert [g.model_parameters for g in generations(root.trace)] == [
        {"max_tokens": 3},
        {"max_tokens": 1, "stop": ["\n"]},
    ]


def test_the_handler_records_parameters_as_they_were_sent() -> None:
    # (before: the caller's stop list, appended to after the call, was in the trace)
    stop = ["\n"]
    handler = CallbackHandler()

    with start_span("test") as root:
        fake_model("Paris").invoke("Capital of France?", {"callbacks": [handler]}, stop=stop)
    stop.append("NEVER_SENT")

    (generation,) = generations(root.trace)
    assert generation.model_parameters["stop"] == ["\n"]


def test_as_langchain_sends_tool_turns_and_image_parts_in_the_chat_format(
    mock_llm: LLM,
) -> None:
    # (before: cut to role and text: tool_calls and tool_call_id dropped, images lost, while
    # the handler recorded them as sent; OpenAI refuses a tool message without its call id)
    from langchain_core.messages import ToolMessage

    from pytest_llmobs.integrations.langchain_values import provider_messages

    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    history = [
        HumanMessage(content=[{"type": "text", "text": "Weather here?"}, image]),
        AIMessage(
            content="", tool_calls=[{"name": "get_weather", "args": {"city": "Oslo"}, "id": "c1"}]
        ),
        ToolMessage(content="sunny", tool_call_id="c1", name="get_weather"),
        HumanMessage(content=[{"type": "text", "text": "And "}, {"type": "text", "text": "now?"}]),
    ]

    assert provider_messages(history) == [
        {"role": "user", "content": [{"type": "text", "text": "Weather here?"}, image]},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
                }
            ],
        },
        {"role": "tool", "content": "sunny", "tool_call_id": "c1", "name": "get_weather"},
        {"role": "user", "content": "And now?"},  # text parts alone: joined, as before
    ]
    with pytest.raises(NotImplementedError, match=r"does not support tool calling \(bind_tools\)"):
        mock_llm.as_langchain().bind_tools([])
    with pytest.raises(NotImplementedError, match=r"does not support structured output \(with_"):
        mock_llm.as_langchain().with_structured_output(dict)


def test_as_langchain_model_errors_mark_the_handlers_generation() -> None:
    failing = LLM(MockLLM.from_spec("mock-llm-v1?error_rate=1"))
    chain = PROMPT | failing.as_langchain()
    config: Any = {"callbacks": [CallbackHandler()]}

    with start_span("test") as root, pytest.raises(ProviderError, match="429"):
        chain.invoke(QUESTION, config)

    (generation,) = generations(root.trace)
    assert (generation.name, generation.model, generation.level) == (
        "LLMObsChatModel",
        "mock-llm-v1",
        "ERROR",
    )
    assert generation.status_message is not None
    assert "429 Too Many Requests (simulated" in generation.status_message


def test_as_langchain_uses_the_sessions_cache_through_the_handler(tmp_path: Path) -> None:
    model = MockLLM.from_spec("mock-llm-v1")

    def answer_with(mode: CacheMode) -> Observation:
        llm = LLM(model, cache=ResponseCache(tmp_path, mode))
        _, trace, _ = run_traced(PROMPT | llm.as_langchain() | StrOutputParser(), QUESTION)
        (generation,) = generations(trace)
        return generation

    written, replayed = answer_with(CacheMode.WRITE), answer_with(CacheMode.READ)

    assert (written.metadata["cache"], replayed.metadata["cache"]) == ("write", "hit")
    assert replayed.output == written.output == "Paris is the capital of France."


def test_a_chain_run_by_run_experiment_records_into_the_items_trace() -> None:
    def task(item: Any, llm: LLM) -> str:
        chain = PROMPT | llm.as_langchain() | StrOutputParser()
        answer: str = chain.invoke(item.input, {"callbacks": [CallbackHandler()]})
        return answer

    result = run_experiment(
        name="chain",
        dataset=[{"id": "france", "input": QUESTION, "expected_output": "Paris"}],
        task=task,
        evaluators={"mentions": lambda output, item: item.expected_output in output},
        store=None,
    )

    assert [i.output for i in result.items] == ["Paris is the capital of France."]
    assert "generations 1  " in result.summary()  # one generation, in the item's trace


# --- through pytest -----------------------------------------------------------------------------

INI = "[pytest]\nasyncio_default_fixture_loop_scope = function\n"

CHAIN_SUITE = """\
    from langchain_core.documents import Document
    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.prompts import ChatPromptTemplate, PromptTemplate
    from langchain_core.runnables import RunnableLambda, RunnableParallel, RunnablePassthrough

    from pytest_llmobs import start_span
    from pytest_llmobs.integrations.langchain import CallbackHandler

    FACTS = ["Paris is the capital of France.", "Lyon is known for its food."]
    PROMPT = ChatPromptTemplate.from_messages(
        [("user", "Context: {{context}}\\nQuestion: {{question}}")]
    )

    def retrieve(question):
        return [Document(f) for f in FACTS if "capital" in f]

    def join(documents):
        return "\\n".join(d.page_content for d in documents)

    def test_rag(llm, scorer):
        context = RunnableLambda(retrieve).with_config(run_name="retrieve") | join
        chain = (
            RunnableParallel(context=context, question=RunnablePassthrough())
            | PROMPT
            | llm.as_langchain()
            | StrOutputParser()
        )
        with start_span("pipeline"):
            answer = chain.{call}
        assert scorer.exact_match(answer, "Paris is the capital of France.")
    """


def stored_tree(item: dict[str, Any]) -> list[tuple[str, str | None]]:
    """(name, parent name) of the stored observations, checking the chain runs in ``pipeline``."""
    observations = item["trace"]["observations"]
    names = {o["id"]: o["name"] for o in observations}
    pairs = [(o["name"], names.get(o["parent_id"])) for o in observations]
    assert pairs[:3] == [
        ("test_rag", None),
        ("pipeline", "test_rag"),
        ("RunnableSequence", "pipeline"),
    ]
    return pairs


def test_a_chain_in_a_test_is_stored_in_the_tests_trace(
    pytester: pytest.Pytester, runs: Runs, xdist_args: tuple[str, ...]
) -> None:
    call = 'invoke("What is the capital of France?", {"callbacks": [CallbackHandler()]})'
    pytester.makeini(INI)
    pytester.makepyfile(test_chain=dedent(CHAIN_SUITE.format(call=call)))

    result = pytester.runpytest(*xdist_args)

    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*generations 1 *tokens 18 in / 7 out*"])
    (item,) = runs.latest()["items"]
    pairs = stored_tree(item)
    assert sorted(pairs[3:]) == sorted(
        [
            ("RunnableParallel<context,question>", "RunnableSequence"),
            ("RunnableSequence", "RunnableParallel<context,question>"),
            ("retrieve", "RunnableSequence"),
            ("join", "RunnableSequence"),
            ("RunnablePassthrough", "RunnableParallel<context,question>"),
            ("ChatPromptTemplate", "RunnableSequence"),
            ("LLMObsChatModel", "RunnableSequence"),
            ("StrOutputParser", "RunnableSequence"),
        ]
    )
    (generation,) = [o for o in item["trace"]["observations"] if o["type"] == "generation"]
    assert (generation["model"], generation["usage"]) == (
        "mock-llm-v1",
        {"input": 18, "output": 7, "total": 25},
    )
    assert generation["output"] == "Paris is the capital of France."
    retrieved = next(o for o in item["trace"]["observations"] if o["name"] == "retrieve")
    assert retrieved["output"] == [
        {"page_content": "Paris is the capital of France.", "metadata": {}}
    ]


def test_an_async_chain_in_an_async_test_is_stored_in_the_tests_trace(
    pytester: pytest.Pytester, runs: Runs
) -> None:
    pytester.makeini(INI)
    call = 'ainvoke("What is the capital of France?", {"callbacks": [CallbackHandler()]})'
    suite = dedent(CHAIN_SUITE.format(call=call))
    suite = suite.replace("def test_rag", "@pytest.mark.asyncio\nasync def test_rag")
    suite = suite.replace("answer = chain.", "answer = await chain.")
    pytester.makepyfile(test_chain="import pytest\n" + suite)

    pytester.runpytest().assert_outcomes(passed=1)

    (item,) = runs.latest()["items"]
    pairs = stored_tree(item)
    assert ("LLMObsChatModel", "RunnableSequence") in pairs
    assert len(pairs) == 11
