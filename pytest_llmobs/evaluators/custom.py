"""User-defined evaluators: ``@evaluator`` for items, ``@run_evaluator`` for whole runs.

An item evaluator returns a bool, a number, a string or an `EvalResult`; calling it inside a
test records its score on the current trace and returns an `EvalResult`::

    @pytest_llmobs.evaluator(threshold=0.5)
    def politeness(output: str) -> float:
        return 1.0 if "please" in output.lower() else 0.0

    def test_reply(llm):
        assert politeness(llm.generate("Ask nicely").text)

A run evaluator receives the stored items of one dataset (and of the whole run) at session end
and returns a number or a mapping of aggregate names to numbers; thresholds can name them::

    @pytest_llmobs.run_evaluator
    def refusal_rate(items: list[dict]) -> float:
        refused = [i for i in items if "cannot" in str(i["trace"]["observations"][-1]["output"])]
        return len(refused) / len(items)

Register both from a conftest (or a plugin) so ``scorer.politeness(...)`` works and run
evaluators run::

    def pytest_llmobs_register_evaluators(registry, config):
        registry.add(politeness)
        registry.add_run(refusal_rate)
"""

from __future__ import annotations

import functools
import inspect
import math
import numbers
import unicodedata
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, overload

import pytest

from pytest_llmobs.evaluators.base import EvalResult
from pytest_llmobs.serialize import int_text, safe_repr

ItemFunction = Callable[..., Any]
RunFunction = Callable[[list[dict[str, Any]]], Any]
F = TypeVar("F", bound=Callable[..., Any])
E = TypeVar("E")


class EvaluatorError(ValueError):
    """An evaluator returned something that cannot become a score or an aggregate."""


_NP_BOOLS = frozenset({"bool_", "bool"})  # numpy 1 and numpy 2 spellings


def _builtin(value: Any) -> Any:
    """``value`` with numpy (and other `numbers.Real`) scalars turned into bool, int or float,
    as ``scorer.score`` accepts them; anything else unchanged."""
    kind = type(value)
    if kind.__module__ == "numpy" and kind.__name__ in _NP_BOOLS:
        return bool(value)
    if isinstance(value, numbers.Real) and kind not in (bool, int, float):  # np.float64 too
        return int(value) if isinstance(value, numbers.Integral) else float(value)
    return value


def to_result(name: str, value: Any, threshold: float | None = None) -> EvalResult:
    """Turn an evaluator's return value into an `EvalResult` named ``name``.

    numpy scalars count as the matching builtin: ``np.float32(0.5)`` as ``0.5``,
    ``np.bool_(True)`` as ``True``.
    """
    value = _builtin(value)
    if isinstance(value, EvalResult):
        return _checked_result(name, value)
    if isinstance(value, bool):
        return EvalResult(name, value, value, "" if value else f"{name} is False")
    if isinstance(value, (int, float)):
        if not _finite(value):
            raise EvaluatorError(
                f"evaluator {name!r} returned {_shown(value)}; expected a finite number"
            )
        number = float(value)
        passed = threshold is None or number >= threshold
        reason = "" if passed else f"{name} {number:.3f} < {threshold:g}"
        return EvalResult(name, value, passed, reason)
    if isinstance(value, str):
        return EvalResult(name, value, True, "")
    raise EvaluatorError(
        f"evaluator {name!r} returned {type(value).__name__} {_shown(value)}; "
        "expected bool, int, float (numpy scalars too), str or EvalResult"
    )


def _checked_result(name: str, result: EvalResult) -> EvalResult:
    """``result`` named ``name``, once its value can be recorded as a score (an `EvalResult` is
    built by the evaluator, so nothing checked it yet) and its verdict is a bool."""
    value, passed = _builtin(result.value), bool(_builtin(result.passed))
    if isinstance(value, (int, float)) and not isinstance(value, bool) and not _finite(value):
        raise EvaluatorError(
            f"evaluator {name!r} returned an EvalResult of value {_shown(value)}; "
            "expected a finite number"
        )
    if not isinstance(value, (bool, int, float, str)):
        raise EvaluatorError(
            f"evaluator {name!r} returned an EvalResult of value {type(value).__name__} "
            f"{_shown(value)}; expected bool, int, float or str"
        )
    if name == result.name and value is result.value and passed is result.passed:
        return result
    return EvalResult(name, value, passed, result.reason)


def _finite(number: int | float) -> bool:
    try:
        return math.isfinite(number)  # an int too large for a float raises
    except OverflowError:
        return False


def _shown(value: object) -> str:
    """``repr(value)`` cut to one short line; an int of thousands of digits by its length."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**30:
        return f"an integer of {len(int_text(abs(value)))} digits"
    shown = safe_repr(value)
    return shown if len(shown) <= 80 else f"{shown[:77]}..."


def _checked_threshold(name: str, threshold: object) -> float | None:
    """``threshold`` when None or a finite number; else a one-line error naming the evaluator."""
    if threshold is None:
        return None
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real):
        raise TypeError(
            f"evaluator {name!r}: threshold must be a number or None, got "
            f"{type(threshold).__name__} {threshold!r}"
        )
    if not math.isfinite(threshold):
        raise ValueError(
            f"evaluator {name!r}: threshold must be a finite number, got {threshold!r}"
        )
    return float(threshold)


def _function_name(function: Callable[..., Any]) -> str:
    name = getattr(function, "__name__", None)
    return name if isinstance(name, str) else type(function).__name__


def _checked_name(name: object, function: Callable[..., Any], what: str) -> str:
    """``name``, or the function's name when None or empty; a one-line error if not a string."""
    if name is not None and not isinstance(name, str):
        raise TypeError(
            f"{what} {_function_name(function)!r}: name must be a string or None, got "
            f"{type(name).__name__} {name!r}"
        )
    if not name and not isinstance(getattr(function, "__name__", None), str):
        raise TypeError(f"{what} {function!r} has no __name__; pass name=")
    return name or _function_name(function)


def _checked_function(function: object, decorator: str) -> None:
    """A `TypeError` unless ``function`` can be called: ``@evaluator("politeness")`` would
    otherwise fail later with an obscure error."""
    if callable(function):
        return
    hint = (
        f"; to name it, write @pytest_llmobs.{decorator}(name={function!r})"
        if isinstance(function, str)
        else ""
    )
    raise TypeError(
        f"@pytest_llmobs.{decorator} decorates a function, got {type(function).__name__} "
        f"{function!r}{hint}"
    )


def _registered(make: Callable[[], E], method: str, value: object) -> E:
    """``make()``, its bad arguments (and a ``value`` that is no function) as usage errors:
    raised in the registration hook, pytest shows their one line."""
    if not callable(value):
        kind = "a run evaluator" if method == "add_run" else "an evaluator"
        raise pytest.UsageError(
            f"registry.{method}: expected {kind} or a function, got "
            f"{type(value).__name__} {value!r}"
        )
    try:
        return make()
    except (TypeError, ValueError) as exc:
        raise pytest.UsageError(str(exc)) from None


def _takes_name_by_keyword(function: Callable[..., Any]) -> bool:
    """Whether ``function`` has a parameter ``name`` a caller may give by keyword."""
    try:
        parameter = inspect.signature(function).parameters.get("name")
    except (TypeError, ValueError):  # no signature to read (some builtins): nothing to refuse
        return False
    return parameter is not None and parameter.kind in (
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        inspect.Parameter.KEYWORD_ONLY,
    )


def _builtin_scorer_names() -> frozenset[str]:
    from pytest_llmobs.scorer import Scorer

    return frozenset(n for n in dir(Scorer) if not n.startswith("_"))


class Evaluator:
    """An item evaluator: calling it returns an `EvalResult` and records its score."""

    def __init__(
        self, function: ItemFunction, *, name: str | None = None, threshold: float | None = None
    ) -> None:
        self.function = function
        self.name = _checked_name(name, function, "evaluator")
        self.threshold = _checked_threshold(self.name, threshold)
        functools.update_wrapper(self, function)

    def evaluate(self, *args: Any, **kwargs: Any) -> EvalResult:
        """Run the function and convert its value, without recording anything."""
        return to_result(self.name, self.function(*args, **kwargs), self.threshold)

    def __call__(self, *args: Any, **kwargs: Any) -> EvalResult:
        from pytest_llmobs.tracing import current_trace

        result = self.evaluate(*args, **kwargs)
        trace = current_trace()
        if trace is not None:
            from pytest_llmobs.score_kinds import check_score, score_kind

            check_score(result.name, score_kind(result.name, result.value), result.reason or None)
            trace.add_score(
                result.name, result.value, comment=result.reason or None, source=self.name
            )
        return result

    def __repr__(self) -> str:
        return f"<evaluator {self.name}>"


def aggregate_name_problem(name: str) -> str:
    """Why ``name`` cannot name a run evaluator's aggregate, or ``""``: a blank name, one with a
    control or invisible character (as no score name may have), or one with a ``.``, which a
    threshold reads as a field of another aggregate (``mean_q.ci_low`` is ``mean_q``'s).

    >>> aggregate_name_problem("mean_q.ci_low")
    "it holds a '.', which a threshold reads as a field of aggregate 'mean_q' (its 'ci_low')"
    """
    if not name.strip():
        return "it is blank"
    if any(unicodedata.category(c).startswith("C") for c in name):
        return "it holds a control or invisible character"
    if "." in name:
        owner, _, field = name.partition(".")
        return (
            f"it holds a '.', which a threshold reads as a field of aggregate {owner!r} "
            f"(its {field!r})"
        )
    return ""


class RunEvaluator:
    """A run-level evaluator: items of one group in, aggregates out."""

    def __init__(self, function: RunFunction, *, name: str | None = None) -> None:
        self.function = function
        self.name = _checked_name(name, function, "run evaluator")
        problem = aggregate_name_problem(self.name)
        if problem:
            raise ValueError(
                f"run evaluator {self.name!r}: {problem}; a run evaluator's name names the "
                "aggregate of the number it returns, so use another name"
            )
        functools.update_wrapper(self, function)

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, float]:
        value = self.function(items)
        if isinstance(value, Mapping):
            values = {str(k): v for k, v in value.items()}
        else:
            values = {self.name: value}
        for key, number in values.items():
            problem = aggregate_name_problem(key)
            if problem:
                raise EvaluatorError(
                    f"run evaluator {self.name!r} gave the aggregate name {key!r}, but {problem}; "
                    "expected a printable name without '.'"
                )
            if (
                isinstance(number, bool)
                or not isinstance(number, numbers.Real)  # numpy scalars count too
                or not (math.isfinite(number))
            ):
                raise EvaluatorError(
                    f"run evaluator {self.name!r} gave {key!r} = {number!r}; expected a finite "
                    "number"
                )
        return {k: float(v) for k, v in values.items()}

    def __repr__(self) -> str:
        return f"<run evaluator {self.name}>"


@overload
def evaluator(function: F, /) -> Evaluator: ...
@overload
def evaluator(
    *, name: str | None = None, threshold: float | None = None
) -> Callable[[F], Evaluator]: ...
def evaluator(
    function: F | None = None, /, *, name: str | None = None, threshold: float | None = None
) -> Evaluator | Callable[[F], Evaluator]:
    """Make a function an item evaluator (see the module docstring)."""
    if function is not None:
        _checked_function(function, "evaluator")
        return Evaluator(function, name=name, threshold=threshold)
    return lambda fn: Evaluator(fn, name=name, threshold=threshold)


@overload
def run_evaluator(function: F, /) -> RunEvaluator: ...
@overload
def run_evaluator(*, name: str | None = None) -> Callable[[F], RunEvaluator]: ...
def run_evaluator(
    function: F | None = None, /, *, name: str | None = None
) -> RunEvaluator | Callable[[F], RunEvaluator]:
    """Make a function a run-level evaluator (see the module docstring)."""
    if function is not None:
        _checked_function(function, "run_evaluator")
        return RunEvaluator(function, name=name)
    return lambda fn: RunEvaluator(fn, name=name)


class EvaluatorRegistry:
    """The evaluators a session knows beyond the built-ins, filled by
    ``pytest_llmobs_register_evaluators``."""

    def __init__(self) -> None:
        self.item: dict[str, Evaluator] = {}
        self.run: dict[str, RunEvaluator] = {}

    def add(self, item_evaluator: Evaluator | ItemFunction, *, name: str | None = None) -> None:
        """Register an item evaluator; ``scorer.<name>(...)`` then calls it."""
        if isinstance(item_evaluator, Evaluator):  # renamed: its scores carry the new name too
            given = item_evaluator
            wrapped = (
                given
                if name is None or name == given.name
                else _registered(
                    lambda: Evaluator(given.function, name=name, threshold=given.threshold),
                    "add",
                    given,
                )
            )
        else:
            function = item_evaluator
            wrapped = _registered(lambda: Evaluator(function, name=name), "add", function)
        if wrapped.name in _builtin_scorer_names():
            # a usage error: pytest shows its one line, not an internal error's traceback
            raise pytest.UsageError(
                f"evaluator {wrapped.name!r} is named like the built-in scorer.{wrapped.name}, "
                "which scorer.<name> would call instead; register it under another name "
                "(registry.add(..., name=...))"
            )
        if _takes_name_by_keyword(wrapped.function):
            raise pytest.UsageError(
                f"evaluator {wrapped.name!r} has a parameter 'name', but scorer.{wrapped.name}"
                "(..., name=...) takes name= as the score's name, so the parameter could never "
                "be given by keyword; rename it, or make it positional-only ('name, /')"
            )
        self.item[wrapped.name] = wrapped

    def add_run(self, evaluator: RunEvaluator | RunFunction, *, name: str | None = None) -> None:
        """Register a run evaluator, computed per dataset and for the whole run."""
        if isinstance(evaluator, RunEvaluator):  # renamed: a single value takes the new name
            given = evaluator
            wrapped = (
                given
                if name is None or name == given.name
                else _registered(lambda: RunEvaluator(given.function, name=name), "add_run", given)
            )
        else:
            function = evaluator
            wrapped = _registered(lambda: RunEvaluator(function, name=name), "add_run", function)
        self.run[wrapped.name] = wrapped
