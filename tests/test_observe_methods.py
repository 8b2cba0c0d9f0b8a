"""`@observe` around the code under test, run under pytest: it never changes what that code does
(mocks passed or returned are not called), methods (self, cls, static and class methods),
outputs set with ``update``, generators returned or stopped early, and spans made after the trace
they started in has ended."""

from __future__ import annotations

from textwrap import dedent
from typing import TYPE_CHECKING, Any
from unittest.mock import AsyncMock, MagicMock

import pydantic
import pytest

from pytest_llmobs.serialize import jsonable

if TYPE_CHECKING:
    from conftest import Runs

INI = "[pytest]\nasyncio_default_fixture_loop_scope = function\n"


def spans(item: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The observations of a stored test, by name (the last of a name wins)."""
    return {o["name"]: o for o in item["trace"]["observations"]}


def tree(item: dict[str, Any]) -> list[tuple[str, str | None]]:
    """(name, parent name) of every observation of a stored test, in start order."""
    observations = item["trace"]["observations"]
    names = {o["id"]: o["name"] for o in observations}
    return [(o["name"], names.get(o["parent_id"])) for o in observations]


# --- recording a value never calls it ------------------------------------------------------------

MOCKS = """\
    from unittest.mock import AsyncMock, MagicMock, call

    import pytest
    from pytest_llmobs import observe, start_span

    @observe
    def notify(client, msg):
        client.send(msg)

    @observe
    def make_client():
        return MagicMock(name="client")

    @observe
    async def anotify(client, msg):
        await client.send(msg)

    def test_argument():
        client = MagicMock(name="arg")
        notify(client, "hi")
        assert client.method_calls == [call.send("hi")]

    def test_return_value():
        client = make_client()
        assert client.method_calls == []

    def test_span_input_and_output():
        given, returned = MagicMock(name="given"), MagicMock(name="returned")
        with start_span("work", input=given) as span:
            span.update(output=returned, metadata={"client": given})
        assert given.method_calls == [] and returned.method_calls == []

    @pytest.mark.asyncio
    async def test_async_mock():
        client = AsyncMock(name="aclient")
        await anotify(client, "hi")
        assert client.method_calls == [call.send("hi")]
    """


def test_a_mock_is_recorded_as_its_repr_and_never_called(
    pytester: pytest.Pytester, runs: Runs
) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_mocks=dedent(MOCKS))

    # -W error: an AsyncMock's to_dict() made a coroutine never awaited (a RuntimeWarning)
    pytester.runpytest("-W", "error").assert_outcomes(passed=4)

    items = runs.items(runs.latest())
    notify = spans(items["test_mocks.py::test_argument"])["notify"]
    assert notify["input"]["args"][0].startswith("<MagicMock name='arg' id=")
    assert notify["input"]["args"][1] == "hi"
    made = spans(items["test_mocks.py::test_return_value"])["make_client"]
    assert made["output"].startswith("<MagicMock name='client' id=")
    work = spans(items["test_mocks.py::test_span_input_and_output"])["work"]
    assert work["input"].startswith("<MagicMock name='given' id=")
    assert work["output"].startswith("<MagicMock name='returned' id=")
    assert work["metadata"]["client"].startswith("<MagicMock name='given' id=")
    anotify = spans(items["test_mocks.py::test_async_mock"])["anotify"]
    assert anotify["input"]["args"][0].startswith("<AsyncMock name='aclient' id=")


class Proxy:
    """Answers every attribute, as a mock or a forwarding proxy does; counts the answers."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def __getattr__(self, name: str) -> Any:
        self.asked.append(name)
        return lambda *args, **kwargs: {"answered": name}

    def __repr__(self) -> str:
        return "<Proxy>"


class Reply(pydantic.BaseModel):
    text: str


class Frame:
    """A ``to_dict`` of its class, as pandas' DataFrame has."""

    def to_dict(self) -> dict[str, list[int]]:
        return {"a": [1, 2]}


def test_serialising_asks_the_type_not_the_instance_for_to_dict_and_model_dump() -> None:
    proxy, mock, spec_mock, amock = Proxy(), MagicMock(), MagicMock(spec=dict), AsyncMock()

    values = jsonable([proxy, mock, spec_mock, amock, Reply(text="hi"), Frame()])

    assert values[0] == "<Proxy>" and proxy.asked == []
    assert values[1].startswith("<MagicMock id=") and mock.mock_calls == []
    assert values[2].startswith("<MagicMock spec='dict' id=") and spec_mock.mock_calls == []
    assert values[3].startswith("<AsyncMock id=") and amock.mock_calls == []
    assert values[4:] == [{"text": "hi"}, {"a": [1, 2]}]


# --- spans made after their context's trace ended land in the running test -----------------------

OUTLIVING_SERVICE = """\
    import asyncio

    import pytest
    import pytest_asyncio
    from pytest_llmobs import observe

    @observe
    def handle_sync(r):
        return r

    @observe
    async def handle_async(r):
        return r

    @observe
    def handle_stream(r):
        yield r

    @observe
    async def handle_astream(r):
        yield r

    @pytest_asyncio.fixture(scope="module", loop_scope="module")
    async def service():
        queue = asyncio.Queue()

        async def serve():  # started in test_first's context: its trace ends before test_second
            while True:
                r, future = await queue.get()
                handled = (handle_sync(r), await handle_async(r))
                streamed = list(handle_stream(r)) + [x async for x in handle_astream(r)]
                future.set_result((*handled, streamed))

        task = asyncio.create_task(serve())

        async def call(r):
            future = asyncio.get_running_loop().create_future()
            await queue.put((r, future))
            return await future

        yield call
        task.cancel()

    @pytest.mark.asyncio(loop_scope="module")
    async def test_first(service):
        assert await service("a") == ("a", "a", ["a", "a"])

    @pytest.mark.asyncio(loop_scope="module")
    async def test_second(service):
        assert await service("b") == ("b", "b", ["b", "b"])
    """

HANDLERS = ["handle_sync", "handle_async", "handle_stream", "handle_astream"]


def test_spans_of_a_task_that_outlives_its_test_land_in_the_test_running_then(
    pytester: pytest.Pytester, runs: Runs
) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_service=dedent(OUTLIVING_SERVICE))

    pytester.runpytest().assert_outcomes(passed=2)

    items = runs.items(runs.latest())
    for test, given in (("test_first", "a"), ("test_second", "b")):
        item = items[f"test_service.py::{test}"]
        assert tree(item) == [(test, None), *((name, test) for name in HANDLERS)]
        assert [o["input"]["args"] for o in item["trace"]["observations"][1:]] == [[given]] * 4


OUTLIVING_THREAD = """\
    import contextvars
    import threading

    from pytest_llmobs import observe, start_span

    @observe
    def late_sync():
        return "sync"

    GO = threading.Event()
    THREADS = []

    def test_one():
        def work():
            GO.wait()  # still waiting when test_one ends
            late_sync()
            with start_span("late_span"):
                pass

        thread = threading.Thread(target=contextvars.copy_context().run, args=(work,))
        thread.start()
        THREADS.append(thread)

    def test_two():
        GO.set()
        THREADS[0].join()
    """


def test_a_sync_span_from_a_copied_context_thread_outliving_its_test_lands_in_the_next(
    pytester: pytest.Pytester, runs: Runs
) -> None:
    pytester.makepyfile(test_thread=dedent(OUTLIVING_THREAD))

    pytester.runpytest().assert_outcomes(passed=2)

    items = runs.items(runs.latest())
    assert tree(items["test_thread.py::test_one"]) == [("test_one", None)]
    assert tree(items["test_thread.py::test_two"]) == [
        ("test_two", None),
        ("late_sync", "test_two"),
        ("late_span", "test_two"),
    ]


# --- an output set with update() is kept when the function returns None --------------------------

UPDATED_OUTPUT = """\
    import pytest
    from pytest_llmobs import current_observation, observe

    @observe(as_type="generation")
    def call_model(q):
        current_observation().update(
            output=f"answer to {q}", model="gpt-4o-mini", usage={"input": 3, "output": 2}
        )

    @observe
    async def acall(q):
        current_observation().update(output=f"async answer to {q}")

    @observe
    def silent_stream(q):
        current_observation().update(output=f"streamed answer to {q}")
        yield from ()

    @observe
    async def silent_astream(q):
        current_observation().update(output=f"async streamed answer to {q}")
        return
        yield

    @observe
    def nothing():
        return None

    @pytest.mark.asyncio
    async def test_x():
        call_model("q")
        await acall("q")
        assert list(silent_stream("q")) == []
        assert [x async for x in silent_astream("q")] == []
        nothing()
    """


def test_an_output_set_with_update_is_kept_when_the_function_returns_none(
    pytester: pytest.Pytester, runs: Runs
) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_updated=dedent(UPDATED_OUTPUT))

    pytester.runpytest().assert_outcomes(passed=1)

    (item,) = runs.latest()["items"]
    recorded = spans(item)
    assert recorded["call_model"]["output"] == "answer to q"
    assert recorded["call_model"]["model"] == "gpt-4o-mini"
    assert recorded["acall"]["output"] == "async answer to q"
    assert recorded["silent_stream"]["output"] == "streamed answer to q"
    assert recorded["silent_astream"]["output"] == "async streamed answer to q"
    assert recorded["nothing"]["output"] is None
    root = item["trace"]["observations"][0]
    assert root["output"] == "answer to q"  # the test's output: its last generation's


# --- methods: self and cls left out, @observe above @staticmethod / @classmethod -----------------

METHODS = """\
    import dataclasses

    import pytest
    from pytest_llmobs import observe

    @dataclasses.dataclass
    class Retriever:
        index: str = "capitals"

        @observe
        def search(self, query, k=1):
            return [f"{self.index}:{query}"] * k

        @observe
        async def asearch(self, query):
            return f"{self.index}:{query}"

        @observe
        def stream(self, query):
            yield query

        @observe
        @staticmethod
        def add(a, b):
            return a + b

        @observe(name="fetched")
        @staticmethod
        async def fetch(x):
            return x * 2

        @observe
        @classmethod
        def build(cls, index):
            return cls(index).index

        @observe
        @classmethod
        async def abuild(cls, index):
            return cls(index).index

    @observe
    def by_keyword(self):
        return self

    @pytest.mark.asyncio
    async def test_methods():
        retriever = Retriever()
        assert retriever.search("paris", k=2) == ["capitals:paris"] * 2
        assert await retriever.asearch("rome") == "capitals:rome"
        assert list(retriever.stream("oslo")) == ["oslo"]
        assert retriever.add(1, 2) == Retriever.add(1, 2) == 3
        assert await retriever.fetch(4) == await Retriever.fetch(4) == 8
        assert Retriever.build("towns") == retriever.build("towns") == "towns"
        assert await Retriever.abuild("rivers") == "rivers"
        assert by_keyword(self="given") == "given"
    """


def test_methods_leave_out_self_and_cls_and_observe_wraps_static_and_class_methods(
    pytester: pytest.Pytester, runs: Runs
) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_methods=dedent(METHODS))

    pytester.runpytest().assert_outcomes(passed=1)

    (item,) = runs.latest()["items"]
    recorded = {
        (o["name"], str(o["input"]), str(o["output"]), o["level"])
        for o in item["trace"]["observations"][1:]
    }
    assert recorded == {
        (
            "search",
            "{'args': ['paris'], 'kwargs': {'k': 2}}",
            str(["capitals:paris"] * 2),
            "DEFAULT",
        ),
        ("asearch", "{'args': ['rome'], 'kwargs': {}}", "capitals:rome", "DEFAULT"),
        ("stream", "{'args': ['oslo'], 'kwargs': {}}", "oslo", "DEFAULT"),
        ("add", "{'args': [1, 2], 'kwargs': {}}", "3", "DEFAULT"),
        ("fetched", "{'args': [4], 'kwargs': {}}", "8", "DEFAULT"),
        ("build", "{'args': ['towns'], 'kwargs': {}}", "towns", "DEFAULT"),
        ("abuild", "{'args': ['rivers'], 'kwargs': {}}", "rivers", "DEFAULT"),
        ("by_keyword", "{'args': [], 'kwargs': {}}", "given", "DEFAULT"),
    }
    calls = [o["name"] for o in item["trace"]["observations"][1:]]
    assert calls.count("add") == calls.count("fetched") == calls.count("build") == 2
    fetched = [o for o in item["trace"]["observations"] if o["name"] == "fetched"]
    assert all(o["end_time"] > o["start_time"] for o in fetched)


def test_observe_above_a_staticmethod_keeps_the_descriptor_and_its_function() -> None:
    from pytest_llmobs import observe

    class Tools:
        @observe
        @staticmethod
        def add(a: int, b: int) -> int:
            """Adds."""
            return a + b

        @observe(name="built")
        @classmethod
        def build(cls) -> str:
            return cls.__name__

    assert isinstance(Tools.__dict__["add"], staticmethod)
    assert isinstance(Tools.__dict__["build"], classmethod)
    assert Tools.add.__name__ == "add" and Tools.add.__doc__ == "Adds."
    assert Tools().add(1, 2) == 3 and Tools().build() == "Tools"


# --- a generator returned by a function is traced while it is consumed ---------------------------

RETURNED_GENERATORS = """\
    import pytest
    from pytest_llmobs import observe

    @observe
    def lookup(word):
        return word.upper()

    @observe
    def stream_answer(q):
        for word in q.split():
            yield lookup(word) + " "

    @observe
    def handler(q):
        return stream_answer(q)

    def plain_words(q):
        for word in q.split():
            yield lookup(word)

    @observe
    def plain_handler(q):
        return plain_words(q)

    @observe
    async def astream(q):
        for word in q.split():
            yield word

    @observe
    def ahandler(q):
        return astream(q)

    @observe
    async def async_returning(q):
        return astream(q)

    def test_sync():
        assert "".join(handler("a b")) == "A B "
        assert list(plain_handler("c d")) == ["C", "D"]

    @pytest.mark.asyncio
    async def test_async():
        assert [w async for w in ahandler("e f")] == ["e", "f"]
        assert [w async for w in await async_returning("g h")] == ["g", "h"]
    """


def test_a_returned_generator_keeps_the_span_open_and_its_items_are_the_output(
    pytester: pytest.Pytester, runs: Runs
) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_returned=dedent(RETURNED_GENERATORS))

    pytester.runpytest().assert_outcomes(passed=2)

    items = runs.items(runs.latest())
    sync = items["test_returned.py::test_sync"]
    assert tree(sync) == [
        ("test_sync", None),
        ("handler", "test_sync"),
        ("stream_answer", "handler"),
        ("lookup", "stream_answer"),
        ("lookup", "stream_answer"),
        ("plain_handler", "test_sync"),
        ("lookup", "plain_handler"),
        ("lookup", "plain_handler"),
    ]
    outputs = [(o["name"], o["output"]) for o in sync["trace"]["observations"]]
    assert ("handler", "A B ") in outputs and ("plain_handler", "CD") in outputs
    for observation in sync["trace"]["observations"][1:]:
        assert observation["level"] == "DEFAULT"
        assert "stopped_early" not in observation["metadata"]
    handler, stream = sync["trace"]["observations"][1:3]
    assert handler["end_time"] >= stream["end_time"]
    asynchronous = items["test_returned.py::test_async"]
    assert tree(asynchronous) == [
        ("test_async", None),
        ("ahandler", "test_async"),
        ("astream", "ahandler"),
        ("async_returning", "test_async"),
        ("astream", "async_returning"),
    ]
    assert [o["output"] for o in asynchronous["trace"]["observations"][1:]] == [
        "ef",
        "ef",
        "gh",
        "gh",
    ]


# --- a consumer stopping early is no error -------------------------------------------------------

STOPPED_EARLY = """\
    import pytest
    from pytest_llmobs import observe

    @observe
    async def tokens():
        for i in range(10):
            yield f"tok{i} "

    @observe
    def words():
        for i in range(10):
            yield f"word{i} "

    @pytest.mark.asyncio
    async def test_async():
        async for t in tokens():
            if t == "tok2 ":
                break

    def test_sync():
        for w in words():
            if w == "word1 ":
                break

    @observe
    def held():
        yield from ("a", "b", "c")

    HELD = []

    def test_held_unfinished():  # the generator outlives the test, still open
        HELD.append(held())
        assert next(HELD[0]) == "a"
    """


def test_a_generator_the_consumer_stops_reading_is_marked_stopped_early_not_an_error(
    pytester: pytest.Pytester, runs: Runs
) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_stopped=dedent(STOPPED_EARLY))

    pytester.runpytest("-W", "error").assert_outcomes(passed=3)

    items = runs.items(runs.latest())
    tokens = spans(items["test_stopped.py::test_async"])["tokens"]
    words = spans(items["test_stopped.py::test_sync"])["words"]
    assert (tokens["output"], tokens["level"], tokens["status_message"]) == (
        "tok0 tok1 tok2 ",
        "DEFAULT",
        None,
    )
    assert (words["output"], words["level"]) == ("word0 word1 ", "DEFAULT")
    assert tokens["metadata"] == words["metadata"] == {"stopped_early": True}
    assert tokens["end_time"] is not None and words["end_time"] is not None
    held = spans(items["test_stopped.py::test_held_unfinished"])["held"]
    assert (held["output"], held["metadata"]) == ("a", {"stopped_early": True})
    assert held["end_time"] is not None
