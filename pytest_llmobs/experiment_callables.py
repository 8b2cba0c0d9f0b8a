"""The task and item evaluators of a `run_experiment` as the runner calls them: `ItemEvaluator`
(called as ``(output, item)`` or ``(output)``), whether a callable is async or wants the ``llm``,
and a sync task's output that must not be awaitable."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pytest_llmobs.datasets import DatasetItem
from pytest_llmobs.evaluators.base import EvalResult
from pytest_llmobs.evaluators.custom import Evaluator, to_result


@dataclass(frozen=True, slots=True)
class ItemEvaluator:
    name: str
    function: Callable[..., Any]
    threshold: float | None
    is_async: bool
    takes_item: bool = True
    """Called as ``(output, item)``; else as ``(output)``, like ``scorer.<name>(output)``."""

    @classmethod
    def of(cls, name: str, function: Callable[..., Any]) -> ItemEvaluator:
        """The evaluator ``function`` named ``name``; a `TypeError` when it can be called
        neither as ``(output, item)`` nor as ``(output)``."""
        threshold = None
        if isinstance(function, Evaluator):  # `@pytest_llmobs.evaluator`: its function, unrecorded
            threshold, function = function.threshold, function.function
        takes_item = _takes_item(name, function)
        return cls(name, function, threshold, is_async(function), takes_item)

    def call(self, output: Any, item: DatasetItem) -> Any:
        """The function's value (or coroutine) for ``output``."""
        return self.function(output, item) if self.takes_item else self.function(output)

    def result(self, value: Any) -> EvalResult | None:
        return None if value is None else to_result(self.name, value, self.threshold)


def _takes_item(name: str, function: Callable[..., Any]) -> bool:
    """Whether ``function`` takes ``(output, item)`` (else it takes ``(output)``)."""
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):  # a builtin without one: called as before
        return True
    for arguments in (("output", "item"), ("output",)):
        try:
            signature.bind(*arguments)
        except TypeError:
            continue
        return len(arguments) == 2
    bare = signature.replace(  # the parameters, without annotations
        parameters=[p.replace(annotation=p.empty) for p in signature.parameters.values()],
        return_annotation=signature.empty,
    )
    raise TypeError(
        f"evaluators: {name!r} takes {bare}; expected (output, item) or (output), "
        "with any other parameter optional"
    )


def is_async(function: Callable[..., Any]) -> bool:
    """Whether calling ``function`` gives a coroutine: an ``async def`` (also behind a
    ``functools.wraps`` decorator or a partial) or an object with ``async def __call__``."""
    if inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(
        inspect.unwrap(function)
    ):
        return True
    return inspect.iscoroutinefunction(type(function).__call__)  # `async def __call__`


def not_awaitable(output: Any, task: Callable[..., Any]) -> Any:
    """A sync task's output; one that must be awaited (a decorator hid the coroutine function
    without ``functools.wraps``) is an error of the item rather than a coroutine as its output."""
    if inspect.isawaitable(output):
        if inspect.iscoroutine(output):
            output.close()  # never to be awaited: no "was never awaited" warning
        raise TypeError(
            f"task {task!r} returned {type(output).__name__} {output!r}, which must be awaited; "
            "make the task (or its decorator's wrapper) 'async def', or keep "
            "functools.wraps on the wrapper"
        )
    return output


def wants_llm(task: Callable[..., Any]) -> bool:
    """Whether ``task`` has a parameter named ``llm`` (it then receives the model's `LLM`)."""
    try:
        return "llm" in inspect.signature(task).parameters
    except (TypeError, ValueError):
        return False
