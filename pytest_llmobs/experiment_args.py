"""`run_experiment`'s arguments checked before any task runs: each mistake a `TypeError` or
`ValueError` naming the argument, what it got and what it expects."""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from pytest_llmobs.evaluators.custom import RunEvaluator
from pytest_llmobs.experiment_callables import is_async
from pytest_llmobs.llm import LLM
from pytest_llmobs.providers import Provider
from pytest_llmobs.score_kinds import check_score
from pytest_llmobs.score_model import ScoreError
from pytest_llmobs.serialize import int_text

EvaluatorsArg = Sequence[Callable[..., Any]] | Mapping[str, Callable[..., Any]]


def check_limits(
    name: str, task: object, max_concurrency: int, timeout_s: float | None, retries: int
) -> None:
    """The run's name, the task, ``max_concurrency``, ``timeout_s`` and ``retries``."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"name must be a non-empty string; got {name!r}")
    if name.strip().lower() == "latest":
        raise ValueError(
            f"name {name!r} is reserved: `llmobs show latest` names the newest run, so no run "
            "could be found by this name; pick another, e.g. 'nightly'"
        )
    if not callable(task):
        raise TypeError(f"task must be a function of the dataset item; got {task!r}")
    if inspect.isgeneratorfunction(task) or inspect.isasyncgenfunction(task):
        raise TypeError(
            f"task must return the output, not yield it; {task!r} is a generator function "
            "(collect what it yields in the task and return that)"
        )
    if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int):
        raise TypeError(f"max_concurrency must be an int >= 1; got {max_concurrency!r}")
    if max_concurrency < 1:
        raise ValueError(f"max_concurrency must be >= 1; got {max_concurrency}")
    if timeout_s is not None and not _positive(timeout_s):
        shown = (
            f"an integer of {len(int_text(abs(int(timeout_s))))} digits"
            if _huge(timeout_s)
            else repr(timeout_s)
        )
        raise ValueError(f"timeout_s must be a number > 0, or None; got {shown}")
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ValueError(f"retries must be an int >= 0; got {retries!r}")


def _huge(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**30


def _positive(value: object) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return float(value) > 0  # (also infinity: no timeout)
    except OverflowError:  # an int beyond a float: asyncio could not wait for it
        return False


def check_task_signature(task: Callable[..., Any], wants_llm: bool) -> None:
    """A task the runner could not call as ``(item)`` (``(item, llm=...)`` when it has an
    ``llm`` parameter) is refused; one whose signature cannot be read is called as it is."""
    try:
        signature = inspect.signature(task)
    except (TypeError, ValueError):
        return
    try:
        signature.bind(None, **({"llm": None} if wants_llm else {}))
    except TypeError:
        expected = "(item, llm)" if wants_llm else "(item) or (item, llm)"
        raise TypeError(
            f"task {getattr(task, '__name__', task)!r} takes {_bare(signature)}; expected "
            f"{expected}, with any other parameter optional"
        ) from None


def check_run_evaluator(name: str, function: Callable[..., Any]) -> None:
    """A run evaluator is called as ``(items)``, synchronously, after every item ran."""
    inner = function.function if isinstance(function, RunEvaluator) else function
    if is_async(inner):
        raise TypeError(
            f"run_evaluators: {name!r} is async; a run evaluator is a plain function "
            "(items) -> number or {name: number}"
        )
    try:
        signature = inspect.signature(inner)
    except (TypeError, ValueError):
        return
    try:
        signature.bind(None)
    except TypeError:
        raise TypeError(
            f"run_evaluators: {name!r} takes {_bare(signature)}; expected (items), with any "
            "other parameter optional"
        ) from None


def _bare(signature: inspect.Signature) -> inspect.Signature:
    """``signature`` without annotations, as an error shows it."""
    return signature.replace(
        parameters=[p.replace(annotation=p.empty) for p in signature.parameters.values()],
        return_annotation=signature.empty,
    )


def check_model(model: object) -> None:
    if model is not None and not isinstance(model, (str, LLM, Provider)):
        raise TypeError(
            "model must be a model string (e.g. 'mock-llm-v1?accuracy=0.8'), a Provider, an LLM "
            f"or None; got {type(model).__name__} {model!r:.60}"
        )


def check_datasets_dir(datasets_dir: object) -> None:
    if datasets_dir is not None and not isinstance(datasets_dir, (str, os.PathLike)):
        raise TypeError(
            f"datasets_dir must be a directory path or None; got {type(datasets_dir).__name__} "
            f"{datasets_dir!r:.60}"
        )


def check_thresholds(thresholds: object) -> list[str]:
    """``thresholds`` as a list of expressions."""
    if isinstance(thresholds, str):
        raise TypeError(
            f"thresholds must be a list of expressions; got the string {thresholds!r} "
            f"(write thresholds=[{thresholds!r}])"
        )
    if not isinstance(thresholds, Iterable) or isinstance(thresholds, Mapping):
        raise TypeError(
            "thresholds must be a list of expressions such as 'mean_exact >= 0.7'; got "
            f"{type(thresholds).__name__} {thresholds!r:.60}"
        )
    expressions = list(thresholds)
    for expression in expressions:
        if not isinstance(expression, str):
            raise TypeError(
                f"thresholds: {expression!r:.60} is not an expression; expected a string such "
                "as 'mean_exact >= 0.7'"
            )
    return expressions


def named(functions: EvaluatorsArg, argument: str) -> list[tuple[str, Callable[..., Any]]]:
    """(name, function) of each evaluator given in a list or a mapping; a name given twice, or
    none at all (a lambda in a list), is refused."""
    if callable(functions) or not isinstance(functions, Iterable) or isinstance(functions, str):
        raise TypeError(
            f"{argument} must be a list of functions or a mapping {{name: function}}; "
            f"got {functions!r}"
        )
    if isinstance(functions, Mapping):
        pairs = [(str(k), v) for k, v in functions.items()]
    else:
        pairs = [
            (str(getattr(f, "name", None) or getattr(f, "__name__", "")), f) for f in functions
        ]
    seen: dict[str, Callable[..., Any]] = {}
    for label, function in pairs:
        if not callable(function):
            raise TypeError(f"{argument}: {function!r} is not callable")
        if not label or label == "<lambda>":
            raise ValueError(
                f"{argument}: {function!r} has no usable name; pass a mapping {{name: function}}"
            )
        if label in seen:  # their scores would be pooled as one
            raise ValueError(
                f"{argument}: {seen[label]!r} and {function!r} are both named {label!r}; "
                "pass a mapping {name: function} to tell them apart"
            )
        seen[label] = function
    return pairs


def check_score_name(name: str) -> None:
    """Refuse an item evaluator's name that its scores could not be recorded under, before any
    task runs (the same checks as every score: printable, no built-in aggregate's name)."""
    try:
        for kind in ("number", "string"):
            check_score(name, kind)
    except ScoreError as exc:
        raise ValueError(f"evaluators: {exc}") from None
