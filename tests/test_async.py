"""Async tests under pytest-asyncio and anyio: ``await llm.agenerate(...)`` traces into the test,
coroutines gathered in one test get their own spans under its root, and the plugin's waits (mock
latency, retry backoff) run under anyio's trio backend too."""

from __future__ import annotations

from textwrap import dedent
from typing import TYPE_CHECKING, Any

import pytest
from fake_openai import FakeOpenAI, answer, error, fake_openai, openai_env

if TYPE_CHECKING:
    from conftest import Runs

__all__ = ["fake_openai", "openai_env"]  # fixtures used here, imported from fake_openai

INI = "[pytest]\nasyncio_default_fixture_loop_scope = function\n"

MARKS = {
    "pytest-asyncio": "pytest.mark.asyncio",
    "anyio": "pytest.mark.anyio",
}

GATHER_SUITE = """\
    import asyncio

    import pytest
    from pytest_llmobs import observe

    @pytest.fixture
    def anyio_backend():
        return "asyncio"

    @observe
    async def ask(llm, country):
        await asyncio.sleep(0)  # let the other branch start before this one calls the model
        return (await llm.agenerate(f"What is the capital of {{country}}?")).text

    @{mark}
    async def test_two_branches(llm, scorer):
        france, japan = await asyncio.gather(ask(llm, "France"), ask(llm, "Japan"))
        assert scorer.exact_match(france, "Paris", name="france")
        assert (await llm.agenerate("What is the capital of Italy?")).text == "Rome"
        assert japan == "Tokyo"
    """


def tree(item: dict[str, Any]) -> list[tuple[str, str | None, Any]]:
    """(name, parent name, input) of every observation, in start order."""
    observations = item["trace"]["observations"]
    names = {o["id"]: o["name"] for o in observations}
    return [(o["name"], names.get(o["parent_id"]), o["input"]) for o in observations]


@pytest.mark.parametrize("plugin", sorted(MARKS))
def test_gathered_coroutines_get_their_own_spans_under_the_test_root(
    pytester: pytest.Pytester, runs: Runs, plugin: str, xdist_args: tuple[str, ...]
) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_gather=dedent(GATHER_SUITE.format(mark=MARKS[plugin])))

    pytester.runpytest(*xdist_args).assert_outcomes(passed=1)

    (item,) = runs.latest()["items"]
    observations = item["trace"]["observations"]
    by_id = {o["id"]: o for o in observations}
    root = observations[0]
    assert root["name"] == "test_two_branches" and root["parent_id"] is None
    branches = [o for o in observations if o["name"] == "ask"]
    assert [b["parent_id"] for b in branches] == [root["id"], root["id"]]
    generations = [o for o in observations if o["type"] == "generation"]
    assert len(generations) == 3
    for generation in generations:
        question = generation["input"][0]["content"]
        parent = by_id[generation["parent_id"]]
        if "Italy" in question:  # awaited by the test itself
            assert parent is root
        else:  # inside one branch: the branch that asked for that country
            assert parent["name"] == "ask"
            assert parent["input"]["args"][1] in question
            assert parent["output"] == generation["output"]
    assert [s["name"] for s in item["trace"]["scores"]] == ["france"]


ANYIO_SHARED_RUNNER = """\
    import pytest

    @pytest.fixture(scope="module")
    def anyio_backend():
        return "asyncio"

    @pytest.fixture(scope="module")
    async def shared(anyio_backend):  # keeps one anyio runner (one task) for the whole module
        yield "shared"

    @pytest.fixture
    async def greeting(llm, anyio_backend):  # runs in that task too, for each test
        await llm.agenerate("fixture setup")
        yield "hello"
        await llm.agenerate("fixture teardown")

    @pytest.fixture
    async def prepared(llm, anyio_backend):
        return (await llm.agenerate("prepared")).text

    @pytest.mark.anyio
    async def test_first(llm, shared, greeting, prepared):
        assert (await llm.agenerate("What is the capital of France?")).text == "Paris"

    @pytest.mark.anyio
    async def test_second(llm, shared, greeting, prepared):
        assert (await llm.agenerate("What is the capital of Japan?")).text == "Tokyo"
    """


def test_each_anyio_test_traces_into_its_own_trace_when_the_runner_is_shared(
    pytester: pytest.Pytester, runs: Runs
) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_shared=dedent(ANYIO_SHARED_RUNNER))

    pytester.runpytest().assert_outcomes(passed=2)

    items = runs.items(runs.latest())
    first = tree(items["test_shared.py::test_first"])
    second = tree(items["test_shared.py::test_second"])
    for test, spans, country in ((first, "test_first", "France"), (second, "test_second", "Japan")):
        assert [(name, parent) for name, parent, _ in test] == [
            (spans, None),
            ("llm.generate", spans),  # the fixtures' calls land in their own test's trace
            ("llm.generate", spans),
            ("llm.generate", spans),
            ("llm.generate", spans),
        ]
        assert [generation[0]["content"] for _, _, generation in test[1:]] == [
            "fixture setup",
            "prepared",
            f"What is the capital of {country}?",
            "fixture teardown",
        ]


def test_failing_async_test_marks_its_root_span(pytester: pytest.Pytester, runs: Runs) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(
        test_fail=dedent(
            """\
            import pytest

            @pytest.mark.asyncio
            async def test_wrong(llm):
                assert (await llm.agenerate("What is the capital of France?")).text == "Lyon"
            """
        )
    )

    pytester.runpytest().assert_outcomes(failed=1)

    (item,) = runs.latest()["items"]
    root = item["trace"]["observations"][0]
    assert item["outcome"] == "failed"
    assert root["level"] == "ERROR"
    assert "AssertionError" in root["status_message"]
    assert root["output"] == "Paris"  # the last generation's output


OUTLIVING_TASK = """\
    import asyncio

    import pytest
    from pytest_llmobs import start_span

    pytestmark = pytest.mark.asyncio(loop_scope="module")
    RELEASE = []
    TASKS = []

    async def test_one(llm):
        RELEASE.append(asyncio.Event())

        async def background():
            await RELEASE[0].wait()  # still waiting when test_one ends
            with start_span("late"):
                await llm.agenerate("What is the capital of Kenya?")

        TASKS.append(asyncio.create_task(background()))

    async def test_two(llm):
        RELEASE[0].set()
        await TASKS[0]
    """


def test_a_task_that_outlives_its_test_records_into_the_test_running_then(
    pytester: pytest.Pytester, runs: Runs
) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_outliving=dedent(OUTLIVING_TASK))

    pytester.runpytest().assert_outcomes(passed=2)

    items = runs.items(runs.latest())
    assert tree(items["test_outliving.py::test_one"]) == [("test_one", None, None)]
    assert [(name, parent) for name, parent, _ in tree(items["test_outliving.py::test_two"])] == [
        ("test_two", None),
        ("late", "test_two"),  # as a thread that outlives its test does
        ("llm.generate", "late"),
    ]


TRIO_SUITE = """\
    import pytest

    @pytest.fixture
    def anyio_backend():
        return "trio"

    @pytest.mark.anyio
    async def test_capital(llm):
        assert (await llm.agenerate("What is the capital of France?")).text == "Paris"
    """


def attempts(item: dict[str, Any]) -> list[dict[str, Any]]:
    """The attempts recorded on the item's one generation (none when it answered at once)."""
    (generation,) = [o for o in item["trace"]["observations"] if o["type"] == "generation"]
    return list(generation["metadata"].get("attempts", []))


def test_mock_latency_waits_under_trio(pytester: pytest.Pytester, runs: Runs) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_trio=dedent(TRIO_SUITE))

    pytester.runpytest("--llm-model=mock-llm-v1?latency_ms=5").assert_outcomes(passed=1)

    (item,) = runs.latest()["items"]
    assert attempts(item) == []


def test_a_retried_mock_error_waits_under_trio(pytester: pytest.Pytester, runs: Runs) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_trio=dedent(TRIO_SUITE))

    # seed 0: France's first attempt fails (a 429 with Retry-After: 0), its second answers
    result = pytester.runpytest("--llm-model=mock-llm-v1?error_rate=0.5&seed=0")

    result.assert_outcomes(passed=1)
    (item,) = runs.latest()["items"]
    assert [a["status"] for a in attempts(item)] == [429, None]


def test_the_openai_provider_backs_off_under_trio(
    pytester: pytest.Pytester, runs: Runs, openai_env: FakeOpenAI
) -> None:
    openai_env.queue(error(500), answer("Paris"))
    pytester.makeini(INI)
    pytester.makepyfile(test_trio=dedent(TRIO_SUITE))

    result = pytester.runpytest("--llm-model=openai:gpt-4o-mini?backoff=0.01")

    result.assert_outcomes(passed=1)
    (item,) = runs.latest()["items"]
    first, second = attempts(item)
    assert (first["status"], second["status"]) == (500, 200)
    assert first["wait_s"] > 0  # a real backoff wait, not a zero one
    assert openai_env.request_count == 2


TENANT_SUITE = """\
    import functools

    import pytest
    import pytest_asyncio
    from pytest_llmobs import propagate_attributes

    pytestmark = {mark}
    fixture = {fixture}

    @pytest.fixture(scope="module")
    def anyio_backend():
        return "{backend}"

    @fixture(scope="module", autouse=True)
    async def tenant():  # set up for test_a, its block open until the module ends
        with propagate_attributes(user_id="tenant-1", session_id="s-1", tags=["tenant"]):
            yield

    @fixture
    async def vip():
        with propagate_attributes(user_id="vip-1", tags=["vip"]):
            yield

    async def test_a(llm):
        await llm.agenerate("What is the capital of France?")

    async def test_b(llm, vip):
        await llm.agenerate("What is the capital of Japan?")

    async def test_c(llm):
        await llm.agenerate("What is the capital of Italy?")
    """

LATER_MODULE = """\
    import pytest

    pytestmark = {mark}

    @pytest.fixture(scope="module")
    def anyio_backend():
        return "{backend}"

    async def test_later(llm):
        await llm.agenerate("What is the capital of Spain?")
    """

RUNNERS = {  # the mark, anyio's backend, how the suite declares its async fixtures
    "anyio-asyncio": ("pytest.mark.anyio", "asyncio", "pytest.fixture"),
    "anyio-trio": ("pytest.mark.anyio", "trio", "pytest.fixture"),
    "pytest-asyncio-module-loop": (
        'pytest.mark.asyncio(loop_scope="module")',
        "asyncio",
        'functools.partial(pytest_asyncio.fixture, loop_scope="module")',
    ),
}


@pytest.mark.parametrize("runner", sorted(RUNNERS))
def test_a_module_fixtures_propagate_attributes_reach_every_test_of_the_module(
    pytester: pytest.Pytester, runs: Runs, runner: str
) -> None:
    mark, backend, fixture = RUNNERS[runner]
    pytester.makeini(INI)
    pytester.makepyfile(
        test_1_tenant=dedent(TENANT_SUITE.format(mark=mark, backend=backend, fixture=fixture)),
        test_2_later=dedent(LATER_MODULE.format(mark=mark, backend=backend)),
    )

    pytester.runpytest().assert_outcomes(passed=4)

    items = runs.items(runs.latest())
    attributes = {
        node_id.split("::")[1]: (
            item["trace"]["user_id"],
            item["trace"]["session_id"],
            item["trace"]["tags"],
        )
        for node_id, item in items.items()
    }
    assert attributes == {
        "test_a": ("tenant-1", "s-1", ["tenant"]),
        "test_b": ("vip-1", "s-1", ["tenant", "vip"]),  # the inner block's user id wins
        "test_c": ("tenant-1", "s-1", ["tenant"]),  # vip's block closed with test_b
        "test_later": (None, None, []),  # tenant's block closed with its module
    }
