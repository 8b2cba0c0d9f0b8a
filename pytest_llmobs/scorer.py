"""The ``scorer`` fixture: records scores on the current trace and runs evaluators."""

from __future__ import annotations

from typing import Any

from pytest_llmobs import evaluators
from pytest_llmobs.evaluators import EvalResult
from pytest_llmobs.tracing import Observation, Score, Trace, current_trace


class NoActiveTraceError(RuntimeError):
    """A score was recorded with no trace to hold it."""


class Scorer:
    """Records scores (numeric, categorical, boolean) and evaluator results on the current trace.

    Evaluators record their score whether or not the result passes, then return the result, so
    ``assert scorer.exact_match(out.text, item.expected_output)`` both records and asserts.
    """

    def _trace(self, name: str) -> Trace:
        trace = current_trace()
        if trace is None:
            raise NoActiveTraceError(
                f"score {name!r}: no active trace; record scores inside a test or a traced span"
            )
        return trace

    def score(
        self,
        name: str,
        value: object,
        comment: str | None = None,
        *,
        observation: Observation | None = None,
        source: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Score:
        """Record a score: bool → BOOLEAN, int/float → NUMERIC (finite), str → CATEGORICAL."""
        trace = observation.trace if observation is not None else self._trace(name)
        return trace.add_score(
            name,
            value,
            comment=comment,
            source=source,
            metadata=metadata,
            observation_id=observation.id if observation is not None else None,
        )

    def record(self, result: EvalResult, *, name: str | None = None) -> EvalResult:
        """Record an evaluator's result as a score named ``name`` (default: the evaluator's)."""
        evaluator, score_name = result.name, name or result.name
        if score_name != evaluator:
            result = EvalResult(score_name, result.value, result.passed, result.reason)
        self.score(score_name, result.value, result.reason or None, source=evaluator)
        return result

    def exact_match(
        self,
        output: object,
        expected: object,
        *,
        name: str | None = None,
        case_sensitive: bool = True,
        strip: bool = True,
    ) -> EvalResult:
        """Score whether ``output`` equals ``expected`` (BOOLEAN); truthy when it does."""
        result = evaluators.exact_match(
            output, expected, case_sensitive=case_sensitive, strip=strip
        )
        return self.record(result, name=name)

    def char_length(
        self,
        text: object,
        *,
        min: int | None = None,
        max: int | None = None,
        name: str | None = None,
    ) -> EvalResult:
        """Score the length of ``text`` (NUMERIC); truthy when within ``[min, max]``."""
        return self.record(evaluators.char_length(text, min=min, max=max), name=name)

    def __repr__(self) -> str:
        return "Scorer()"
