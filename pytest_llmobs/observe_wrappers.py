"""Generators traced by `observe`: a generator function's calls, and a generator (or async
generator) that a traced function returns, which keeps that function's observation open.

Each step of the generator runs with its observation current, so spans made while it is
consumed nest under it; what it yields becomes the output, and the observation ends with the
generator. A consumer that stops reading early (``break``, ``close()``, a trace that ends with
the generator unfinished) is no error: the observation's metadata says ``stopped_early``.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any

from pytest_llmobs.serialize import snapshot
from pytest_llmobs.trace_model import Observation
from pytest_llmobs.tracing import CURRENT_OBSERVATION, close_observation, restore_observation

Begin = Callable[[tuple[Any, ...], dict[str, Any]], tuple[Observation, Any]]
"""Given the call's arguments, the observation to record into (opened now, or already open)
and the generator to trace."""

STOPPED_EARLY = "stopped_early"
"""The metadata key marking a generator whose consumer stopped reading before its end."""


def handed_over(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Observation, Any]:
    """`Begin` for a generator a traced function returned: called with the function's
    observation, still open, and the generator."""
    observation, generator = args
    return observation, generator


def generator_output(items: list[Any]) -> Any:
    """What a generator's yielded items are recorded as: strings joined, anything else a list."""
    if items and all(isinstance(i, str) for i in items):
        return "".join(items)
    return items


def _record_items(observation: Observation, produced: list[Any], capture_out: bool) -> None:
    # nothing yielded keeps an output set with update(), as a None result does
    if capture_out and (produced or observation.output is None):
        observation.output = generator_output(produced)


def _left_open(observation: Observation, produced: list[Any], capture_out: bool) -> None:
    """The trace ends with the generator unfinished (left with ``break``, an async generator is
    closed when its loop finalizes it, after the trace ended): record what it yielded so far."""
    observation.metadata[STOPPED_EARLY] = True
    _record_items(observation, list(produced), capture_out)


def _is_cancellation(error: BaseException) -> bool:
    asyncio = sys.modules.get("asyncio")  # (not imported here: without asyncio, no such error)
    return asyncio is not None and isinstance(error, asyncio.CancelledError)


def traced_generator(begin: Begin, capture_out: bool) -> Callable[..., Generator[Any, Any, Any]]:
    """A generator function tracing the generator ``begin`` gives, as transparent to
    ``send``, ``throw``, ``close`` and the return value as ``yield from``."""

    def traced(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
        observation, generator = begin(args, kwargs)
        produced: list[Any] = []
        observation.on_trace_end = functools.partial(_left_open, observation, produced, capture_out)
        to_send: Any = None
        thrown: BaseException | None = None
        try:
            while True:
                parent = CURRENT_OBSERVATION.get()
                token = CURRENT_OBSERVATION.set(observation)
                try:
                    if thrown is None:
                        item = generator.send(to_send)
                    else:  # forward what the consumer threw in, as `yield from` would
                        item, thrown = generator.throw(thrown), None
                except StopIteration as stop:
                    return stop.value
                finally:
                    restore_observation(token, parent)
                if capture_out:
                    produced.append(snapshot(item))
                try:
                    to_send = yield item
                except GeneratorExit:
                    observation.metadata[STOPPED_EARLY] = True
                    raise
                except BaseException as exc:
                    thrown = exc
        except GeneratorExit:
            generator.close()
            raise
        except BaseException as exc:
            observation.fail(exc)
            raise
        finally:
            _record_items(observation, produced, capture_out)
            close_observation(observation)

    return traced


def traced_async_generator(
    begin: Begin, capture_out: bool
) -> Callable[..., AsyncGenerator[Any, Any]]:
    """An async generator function tracing the async generator ``begin`` gives, transparent
    to ``asend``, ``athrow`` and ``aclose``."""

    async def traced(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
        observation, generator = begin(args, kwargs)
        produced: list[Any] = []
        observation.on_trace_end = functools.partial(_left_open, observation, produced, capture_out)
        to_send: Any = None
        thrown: BaseException | None = None
        try:
            while True:
                parent = CURRENT_OBSERVATION.get()
                token = CURRENT_OBSERVATION.set(observation)
                try:
                    if thrown is None:
                        item = await generator.asend(to_send)
                    else:  # forward what the consumer threw in
                        item, thrown = await generator.athrow(thrown), None
                except StopAsyncIteration:
                    return
                finally:
                    restore_observation(token, parent)
                if capture_out:
                    produced.append(snapshot(item))
                try:
                    to_send = yield item
                except GeneratorExit:
                    observation.metadata[STOPPED_EARLY] = True
                    raise
                except BaseException as exc:
                    thrown = exc
        except GeneratorExit:
            await generator.aclose()
            raise
        except BaseException as exc:
            if exc is thrown and _is_cancellation(exc):
                # cancelled while suspended at a yield, not while working: asyncio cancels the
                # task closing a generator the consumer left (``break``) when its loop closes
                observation.metadata[STOPPED_EARLY] = True
            else:
                observation.fail(exc)
            raise
        finally:
            _record_items(observation, produced, capture_out)
            close_observation(observation)

    return traced
