"""The `observe` decorator: each call of a function (sync, async, generator or async
generator) traced as an observation under the current one."""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable
from typing import Any, TypeVar, overload

from pytest_llmobs.serialize import safe_repr, snapshot, snapshot_arguments
from pytest_llmobs.trace_checks import check_name, check_type
from pytest_llmobs.trace_model import Observation, ObservationType
from pytest_llmobs.tracing import (
    ACTIVE_TRACE,
    CURRENT_OBSERVATION,
    close_observation,
    open_observation,
    restore_observation,
)

F = TypeVar("F", bound=Callable[..., Any])


def _generator_output(items: list[Any]) -> Any:
    if items and all(isinstance(i, str) for i in items):
        return "".join(items)
    return items


@overload
def observe(func: F, /) -> F: ...


@overload
def observe(
    *,
    name: str | None = None,
    as_type: ObservationType = "span",
    capture_input: bool = True,
    capture_output: bool = True,
) -> Callable[[F], F]: ...


def observe(
    func: F | None = None,
    /,
    *,
    name: str | None = None,
    as_type: ObservationType = "span",
    capture_input: bool = True,
    capture_output: bool = True,
) -> F | Callable[[F], F]:
    """Trace calls of a function (sync, async, generator or async generator) as observations.

    ``@observe`` and ``@observe(name=..., as_type="generation")`` both work. The call's arguments
    become the input and its return value (or the yielded items) the output; an exception marks
    the observation as errored and propagates.
    """

    if func is not None and not callable(func):  # @observe("answer"): the name as a keyword
        raise TypeError(
            "observe: expected a function, or the span's name as name=...; "
            f"got {type(func).__name__} {safe_repr(func):.60}"
        )
    if name is not None:
        check_name("observe", name)
    check_type("observe", as_type)

    def decorate(fn: F) -> F:
        span_name = name or str(getattr(fn, "__name__", None) or type(fn).__name__)
        if inspect.isasyncgenfunction(fn):
            return _wrap_async_generator(fn, span_name, as_type, capture_input, capture_output)
        if inspect.isgeneratorfunction(fn):
            return _wrap_generator(fn, span_name, as_type, capture_input, capture_output)
        if inspect.iscoroutinefunction(fn):
            return _wrap_coroutine(fn, span_name, as_type, capture_input, capture_output)
        return _wrap_function(fn, span_name, as_type, capture_input, capture_output)

    return decorate(func) if func is not None else decorate


def _wrap_function(
    fn: F, span_name: str, as_type: ObservationType, capture_in: bool, capture_out: bool
) -> F:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        # open_observation/close_observation inlined: this wrapper is the hottest path we have
        parent = CURRENT_OBSERVATION.get()
        input = snapshot_arguments(args, kwargs) if capture_in else None
        owner = parent or ACTIVE_TRACE.root
        if owner is not None:
            observation = Observation(
                owner.trace, span_name, type=as_type, parent_id=owner.id, input=input
            )
        else:
            observation = open_observation(span_name, type=as_type, input=input)
        token = CURRENT_OBSERVATION.set(observation)
        try:
            result = fn(*args, **kwargs)
            if capture_out:
                observation.output = snapshot(result)
        except BaseException as exc:
            observation.fail(exc)
            raise
        finally:
            try:
                CURRENT_OBSERVATION.reset(token)
            except ValueError:  # closed in another context than it was opened in
                CURRENT_OBSERVATION.set(parent)
            if owner is not None:
                if observation.end_time is None:
                    observation.end_time = time.time()
            else:
                close_observation(observation)
        return result

    return wrapper  # type: ignore[return-value]


def _wrap_coroutine(
    fn: F, span_name: str, as_type: ObservationType, capture_in: bool, capture_out: bool
) -> F:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        parent = CURRENT_OBSERVATION.get()
        observation = open_observation(
            span_name, type=as_type, input=snapshot_arguments(args, kwargs) if capture_in else None
        )
        token = CURRENT_OBSERVATION.set(observation)
        try:
            result = await fn(*args, **kwargs)
            if capture_out:
                observation.output = snapshot(result)
        except BaseException as exc:
            observation.fail(exc)
            raise
        finally:
            restore_observation(token, parent)
            close_observation(observation)
        return result

    return wrapper  # type: ignore[return-value]


def _wrap_generator(
    fn: F, span_name: str, as_type: ObservationType, capture_in: bool, capture_out: bool
) -> F:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        observation = open_observation(
            span_name, type=as_type, input=snapshot_arguments(args, kwargs) if capture_in else None
        )
        generator = fn(*args, **kwargs)
        produced: list[Any] = []
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
                produced.append(snapshot(item))
                try:
                    to_send = yield item
                except GeneratorExit:
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
            if capture_out:
                observation.output = _generator_output(produced)
            close_observation(observation)

    return wrapper  # type: ignore[return-value]


def _wrap_async_generator(
    fn: F, span_name: str, as_type: ObservationType, capture_in: bool, capture_out: bool
) -> F:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        observation = open_observation(
            span_name, type=as_type, input=snapshot_arguments(args, kwargs) if capture_in else None
        )
        generator = fn(*args, **kwargs)
        produced: list[Any] = []
        if capture_out:
            # left with `break`, it is closed when the loop finalizes it, after the trace ended
            # (a sync generator closes at once): record what it yielded when the trace ends

            def yielded_so_far() -> None:
                observation.output = _generator_output(list(produced))

            observation.on_trace_end = yielded_so_far
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
                produced.append(snapshot(item))
                try:
                    to_send = yield item
                except GeneratorExit:
                    raise
                except BaseException as exc:
                    thrown = exc
        except GeneratorExit:
            await generator.aclose()
            raise
        except BaseException as exc:
            observation.fail(exc)
            raise
        finally:
            if capture_out:
                observation.output = _generator_output(produced)
            close_observation(observation)

    return wrapper  # type: ignore[return-value]
