"""Async test code that a long-lived runner task runs is traced into the running test.

anyio runs every test and async fixture of a module in one task, and pytest-asyncio can share a
loop (and its context) across tests: that task's context holds whichever span was current when it
was created. The wrappers here make the running test's root span current inside the coroutine or
async generator itself, for as long as it runs.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from typing import Any

from pytest_llmobs.trace_model import Observation
from pytest_llmobs.tracing import (
    CURRENT_OBSERVATION,
    block_attributes,
    hold_attributes,
    restore_observation,
)

RootOf = Callable[[], "Observation | None"]
"""Returns the root span of the test running now (``None`` between tests)."""


@contextmanager
def _current_root(root: Observation | None) -> Iterator[None]:
    if root is None:
        yield
        return
    parent = CURRENT_OBSERVATION.get()
    token = CURRENT_OBSERVATION.set(root)
    try:
        yield
    finally:
        restore_observation(token, parent)


def coroutine_in_test(function: Callable[..., Any], root_of: RootOf) -> Callable[..., Any]:
    """``function`` (a coroutine function), running in the trace of the test that awaits it."""

    @functools.wraps(function)
    async def in_test(*args: Any, **kwargs: Any) -> Any:
        with _current_root(root_of()):
            return await function(*args, **kwargs)

    return in_test


def fixture_generator_in_test(
    function: Callable[..., Any], root_of: RootOf
) -> Callable[..., AsyncIterator[Any]]:
    """``function`` (an async generator fixture): its setup runs in the trace of the test being
    set up, its teardown in the trace of the test being torn down, and the `propagate_attributes`
    blocks it keeps open in between reach the traces of the tests that start meanwhile."""

    @functools.wraps(function)
    async def in_test(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        generator = function(*args, **kwargs)
        before = block_attributes()
        with _current_root(root_of()):
            value = await generator.__anext__()
        with hold_attributes(before):  # a propagate_attributes block open across the yield
            yield value
            with _current_root(root_of()):
                try:
                    await generator.__anext__()
                except StopAsyncIteration:
                    return
        await generator.aclose()
        raise RuntimeError(f"async fixture {function.__name__!r} yielded more than once")

    return in_test
