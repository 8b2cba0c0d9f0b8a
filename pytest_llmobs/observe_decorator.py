"""The `observe` decorator: each call of a function (sync, async, generator or async
generator) traced as an observation under the current one.

Tracing never changes what the traced code does: arguments and results are recorded without
being called (`serialize`), a method's ``self`` or ``cls`` is left out of the input, and a
generator a function returns is handed back wrapped, so that the function's observation stays
open while it is consumed and what it yields becomes the output. Decisions that depend only on
the function (its kind, whether it is a method) are made once, when it is decorated.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable
from types import AsyncGeneratorType, FunctionType, GeneratorType
from typing import Any, TypeVar, overload

from pytest_llmobs.observe_wrappers import (
    Begin,
    handed_over,
    traced_async_generator,
    traced_generator,
)
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
Capture = Callable[[tuple[Any, ...], dict[str, Any]], dict[str, Any]]
"""A call's arguments as its observation's input."""

_RECEIVERS = ("self", "cls")
_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)

_CONTINUED = {
    capture_out: (
        traced_generator(handed_over, capture_out),
        traced_async_generator(handed_over, capture_out),
    )
    for capture_out in (False, True)
}
"""Per ``capture_output``: what a generator and an async generator a traced function returns
are handed back as, with the function's observation still open."""


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

    ``@observe`` and ``@observe(name=..., as_type="generation")`` both work, on functions and
    methods, above or below ``@staticmethod`` and ``@classmethod``. The call's arguments (less a
    method's ``self`` or ``cls``) become the input and its return value (or the yielded items)
    the output; a ``None`` result keeps an output set with ``update(output=...)``. A generator
    the function returns keeps the observation open while it is consumed. An exception marks
    the observation as errored and propagates; a consumer that stops reading a generator early
    marks it ``stopped_early`` in its metadata.
    """

    if func is not None and not callable(func) and not isinstance(func, classmethod):
        raise TypeError(  # @observe("answer"): the name as a keyword
            "observe: expected a function, or the span's name as name=...; "
            f"got {type(func).__name__} {safe_repr(func):.60}"
        )
    if name is not None:
        check_name("observe", name)
    check_type("observe", as_type)

    def decorate(fn: F) -> F:
        if isinstance(fn, (staticmethod, classmethod)):  # @observe above @staticmethod
            descriptor: Any = type(fn)
            function: Any = fn.__func__
            return descriptor(decorate(function))  # type: ignore[no-any-return]
        if not callable(fn):
            raise TypeError(
                f"observe: expected a function to trace; got {type(fn).__name__} "
                f"{safe_repr(fn):.60}"
            )
        span_name = name or str(getattr(fn, "__name__", None) or type(fn).__name__)
        capture = _argument_capture(fn) if capture_input else None
        wrapper: Callable[..., Any]
        if inspect.isasyncgenfunction(fn):
            begin = _opening(fn, span_name, as_type, capture)
            wrapper = functools.wraps(fn)(traced_async_generator(begin, capture_output))
        elif inspect.isgeneratorfunction(fn):
            begin = _opening(fn, span_name, as_type, capture)
            wrapper = functools.wraps(fn)(traced_generator(begin, capture_output))
        elif inspect.iscoroutinefunction(fn):
            wrapper = _wrap_coroutine(fn, span_name, as_type, capture, capture_output)
        else:
            wrapper = _wrap_function(fn, span_name, as_type, capture, capture_output)
        return wrapper  # type: ignore[return-value]

    return decorate(func) if func is not None else decorate


def _argument_capture(fn: Callable[..., Any]) -> Capture:
    """How a call of ``fn`` becomes its observation's input: its arguments, less a method's
    ``self`` or ``cls`` (an address that differs every run, or a whole object each call)."""
    if type(fn) is FunctionType and not hasattr(fn, "__wrapped__"):  # a plain def: its code
        code = fn.__code__  # (inspect.signature would take 10 µs per decorated function)
        receiver = code.co_varnames[0] if code.co_argcount else ""
    else:
        try:
            first = next(iter(inspect.signature(fn).parameters.values()), None)
        except Exception:  # a builtin without a signature, a broken __signature__
            return snapshot_arguments
        receiver = first.name if first is not None and first.kind in _POSITIONAL else ""
    if receiver not in _RECEIVERS:
        return snapshot_arguments

    def without_receiver(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        if args:
            return snapshot_arguments(args[1:], kwargs)
        return snapshot_arguments(args, {k: v for k, v in kwargs.items() if k != receiver})

    return without_receiver


def _opening(
    fn: Callable[..., Any], span_name: str, as_type: ObservationType, capture: Capture | None
) -> Begin:
    """`Begin` for a generator function: opens its observation, then calls it."""

    def begin(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Observation, Any]:
        input = capture(args, kwargs) if capture is not None else None
        observation = open_observation(span_name, type=as_type, input=input)
        try:
            return observation, fn(*args, **kwargs)
        except BaseException as exc:  # arguments it does not take
            observation.fail(exc)
            close_observation(observation)
            raise

    return begin


def _wrap_function(
    fn: F, span_name: str, as_type: ObservationType, capture: Capture | None, capture_out: bool
) -> F:
    streams = _CONTINUED[capture_out]

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        # open_observation/close_observation inlined: this wrapper is the hottest path we have
        parent = CURRENT_OBSERVATION.get()
        input = capture(args, kwargs) if capture is not None else None
        if parent is not None and parent.trace.end_time is None:
            owner: Observation | None = parent
        else:  # `tracing._live`: a task or thread that outlived its test records into the next
            owner = ACTIVE_TRACE.root or parent
        if owner is not None:
            observation = Observation(
                owner.trace, span_name, type=as_type, parent_id=owner.id, input=input
            )
        else:
            observation = open_observation(span_name, type=as_type, input=input)
        token = CURRENT_OBSERVATION.set(observation)
        streaming = False
        try:
            result = fn(*args, **kwargs)
            if result is not None:  # (None keeps an output set with update())
                kind = type(result)
                if kind is GeneratorType or kind is AsyncGeneratorType:
                    result = streams[kind is AsyncGeneratorType](observation, result)
                    streaming = True
                elif capture_out:
                    observation.output = snapshot(result)
        except BaseException as exc:
            observation.fail(exc)
            raise
        finally:
            try:
                CURRENT_OBSERVATION.reset(token)
            except ValueError:  # closed in another context than it was opened in
                CURRENT_OBSERVATION.set(parent)
            if streaming:
                pass  # ends with the generator it returned
            elif owner is not None:
                if observation.end_time is None:
                    observation.end_time = time.time()
            else:
                close_observation(observation)
        return result

    return wrapper  # type: ignore[return-value]


def _wrap_coroutine(
    fn: F, span_name: str, as_type: ObservationType, capture: Capture | None, capture_out: bool
) -> F:
    streams = _CONTINUED[capture_out]

    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        parent = CURRENT_OBSERVATION.get()
        observation = open_observation(
            span_name, type=as_type, input=capture(args, kwargs) if capture is not None else None
        )
        token = CURRENT_OBSERVATION.set(observation)
        streaming = False
        try:
            result = await fn(*args, **kwargs)
            if result is not None:  # (None keeps an output set with update())
                kind = type(result)
                if kind is GeneratorType or kind is AsyncGeneratorType:
                    result = streams[kind is AsyncGeneratorType](observation, result)
                    streaming = True
                elif capture_out:
                    observation.output = snapshot(result)
        except BaseException as exc:
            observation.fail(exc)
            raise
        finally:
            restore_observation(token, parent)
            if not streaming:
                close_observation(observation)
        return result

    return wrapper  # type: ignore[return-value]
