"""The ``scorer`` fixture: records scores on the current trace and runs evaluators."""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from pytest_llmobs.aggregate_names import LABEL_EXPECTED
from pytest_llmobs.evaluators import EvalResult, basic, text
from pytest_llmobs.evaluators.custom import EvaluatorRegistry
from pytest_llmobs.score_kinds import KIND_SHOWN, score_kind
from pytest_llmobs.score_model import Score, ScoreError
from pytest_llmobs.trace_model import Observation, Trace
from pytest_llmobs.tracing import current_trace

if TYPE_CHECKING:
    from pydantic import BaseModel

    from pytest_llmobs.datasets import Dataset
    from pytest_llmobs.evaluators.fuzzy import FuzzyMethod
    from pytest_llmobs.evaluators.similarity import SimilarityBackend
    from pytest_llmobs.llm import LLM
    from pytest_llmobs.prompts import Prompt, PromptRegistry


class NoActiveTraceError(RuntimeError):
    """A score was recorded with no trace to hold it."""


class _Stopped:
    __slots__ = ("reason",)

    def __init__(self) -> None:
        self.reason: str | None = None


_stopped = _Stopped()


def drop_scores_without_trace(stopped: str | None) -> None:
    """After a session stopped (Ctrl-C, `pytest.exit`; ``stopped`` says where), pytest tears
    down the fixtures left once the stopped test is stored, with no test running: a score with
    no trace is then dropped with a warning, not raised over the interrupted run. ``None``:
    refused again (`NoActiveTraceError`)."""
    _stopped.reason = stopped


class Scorer:
    """Records scores (numeric, categorical, boolean) and evaluator results on the current trace.

    Evaluators record their score whether or not the result passes, then return the result, so
    ``assert scorer.exact_match(out.text, item.expected_output)`` both records and asserts.
    Every evaluator takes ``name=`` to record its score under another name. Evaluators
    registered with ``pytest_llmobs_register_evaluators`` are available as ``scorer.<name>``.
    """

    def __init__(
        self,
        *,
        judge: LLM | None = None,
        prompts: PromptRegistry | None = None,
        registry: EvaluatorRegistry | None = None,
        on_prompt: Callable[[Prompt], None] | None = None,
    ) -> None:
        self._judge = judge
        self._prompts = prompts
        self._registry = registry or EvaluatorRegistry()
        self._on_prompt = on_prompt
        """Told of each rubric prompt used, so the test's record lists its version."""
        self._kinds: dict[str, str] = {}
        """Each score name's kind so far (see `score_kind`): the run aggregates one name one way,
        so a name recorded as a number and later as a string would lose values."""

    def __getattr__(self, name: str) -> Callable[..., EvalResult]:
        registered = self.__dict__.get("_registry")
        if registered is None or name.startswith("_") or name not in registered.item:
            known = ", ".join(sorted(registered.item)) if registered is not None else ""
            raise AttributeError(
                f"scorer has no evaluator {name!r}"
                + (f"; registered evaluators: {known}" if known else "")
            )
        custom = registered.item[name]

        def run(*args: Any, name: str | None = None, **kwargs: Any) -> EvalResult:
            return self.record(custom.evaluate(*args, **kwargs), name=name)

        # Named like a method, so a failed assertion shows `Scorer.politeness`, not `run`.
        run.__name__ = custom.name
        run.__qualname__ = f"Scorer.{custom.name}"
        return run

    def _trace(self, name: str) -> Trace:
        trace = current_trace()
        if trace is None:
            if _stopped.reason is not None:  # (a crash here would hide the interrupted run)
                warnings.warn(
                    f"score {name!r} dropped: {_stopped.reason}, which is stored already; a "
                    "fixture torn down after the stop has no test to score into",
                    stacklevel=3,
                )
                return Trace(name)  # checks the score, then is let go
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
        """Record a score: bool → BOOLEAN, int/float → NUMERIC (finite), str → CATEGORICAL.

        ``comment`` is a string or None. A `ScoreError` refuses a bad value, a name with control
        characters or whose aggregates would take a built-in aggregate's name (``latency_ms``),
        and a name recorded before with another kind in this session (a number, then a string).
        """
        if not isinstance(name, str) or not name:
            raise ScoreError(f"score name must be a non-empty string; got {name!r}")
        kind = score_kind(name, value, metadata)
        before = self._kinds.get(name)
        # the name itself, and the comment, are checked by Trace.add_score (every way in)
        if before is not None and before != kind:
            raise ScoreError(
                f"score {name!r} is {KIND_SHOWN[kind]} ({basic.shorten(value, 40)}) but was "
                f"recorded as {KIND_SHOWN[before]} before in this session; one name must keep "
                "one kind, so record this one under another name"
            )
        trace = observation.trace if observation is not None else self._trace(name)
        score = trace.add_score(
            name,
            value,
            comment=comment,
            source=source,
            metadata=metadata,
            observation_id=observation.id if observation is not None else None,
        )
        self._kinds[name] = kind
        return score

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
        normalize_whitespace: bool = False,
        ignore_punctuation: bool = False,
        unicode: bool = False,
    ) -> EvalResult:
        """Score whether ``output`` equals ``expected`` after the chosen normalisation (BOOLEAN);
        a dict or list (and JSON text against one) compares by value, keys in any order."""
        return self.record(
            basic.exact_match(
                output,
                expected,
                case_sensitive=case_sensitive,
                strip=strip,
                normalize_whitespace=normalize_whitespace,
                ignore_punctuation=ignore_punctuation,
                unicode=unicode,
            ),
            name=name,
        )

    def contains(
        self,
        output: object,
        needle: object,
        *,
        case_sensitive: bool = False,
        name: str | None = None,
    ) -> EvalResult:
        """Score whether ``needle`` occurs in ``output`` (BOOLEAN)."""
        return self.record(text.contains(output, needle, case_sensitive=case_sensitive), name=name)

    def contains_all(
        self,
        output: object,
        needles: Iterable[object] | None,
        *,
        case_sensitive: bool = False,
        name: str | None = None,
    ) -> EvalResult:
        """Score the share of ``needles`` found in ``output`` (NUMERIC); passes when all are."""
        return self.record(
            text.contains_all(output, needles, case_sensitive=case_sensitive), name=name
        )

    def contains_any(
        self,
        output: object,
        needles: Iterable[object] | None,
        *,
        case_sensitive: bool = False,
        name: str | None = None,
    ) -> EvalResult:
        """Score whether any of ``needles`` occurs in ``output`` (BOOLEAN)."""
        return self.record(
            text.contains_any(output, needles, case_sensitive=case_sensitive), name=name
        )

    def regex(
        self,
        output: object,
        pattern: str | re.Pattern[str] | None,
        *,
        flags: int = 0,
        fullmatch: bool = False,
        name: str | None = None,
    ) -> EvalResult:
        """Score whether ``pattern`` matches ``output`` (BOOLEAN)."""
        return self.record(text.regex(output, pattern, flags=flags, fullmatch=fullmatch), name=name)

    def char_length(
        self,
        text_: object,
        *,
        min: int | None = None,
        max: int | None = None,
        name: str | None = None,
    ) -> EvalResult:
        """Score the length in characters (NUMERIC); truthy when within ``[min, max]``."""
        return self.record(basic.char_length(text_, min=min, max=max), name=name)

    def word_count(
        self,
        text_: object,
        *,
        min: int | None = None,
        max: int | None = None,
        name: str | None = None,
    ) -> EvalResult:
        """Score the number of words (NUMERIC); truthy when within ``[min, max]``."""
        return self.record(text.word_count(text_, min=min, max=max), name=name)

    def fuzzy(
        self,
        output: object,
        expected: object,
        *,
        method: FuzzyMethod = "ratio",
        threshold: float = 0.8,
        case_sensitive: bool = False,
        name: str | None = None,
    ) -> EvalResult:
        """Score rapidfuzz similarity normalised to 0..1 (NUMERIC); passes at ``threshold``."""
        from pytest_llmobs.evaluators import fuzzy

        return self.record(
            fuzzy.fuzzy(
                output, expected, method=method, threshold=threshold, case_sensitive=case_sensitive
            ),
            name=name,
        )

    def similarity(
        self,
        output: object,
        reference: object,
        *,
        threshold: float = 0.8,
        corpus: Sequence[str] | Dataset | None = None,
        backend: SimilarityBackend | None = None,
        name: str | None = None,
    ) -> EvalResult:
        """Score TF-IDF cosine similarity (NUMERIC 0..1), fitted on the pair, or on ``corpus``
        (texts, or a dataset's inputs and expected outputs) once for many calls."""
        from pytest_llmobs.evaluators import similarity

        return self.record(
            similarity.similarity(
                output,
                reference,
                threshold=threshold,
                corpus=corpus_texts(corpus),
                backend=backend,
            ),
            name=name,
        )

    def groundedness(
        self,
        answer: object,
        context: str | Sequence[str] | None,
        *,
        threshold: float = 0.8,
        min_support: float = 0.6,
        name: str | None = None,
    ) -> EvalResult:
        """Score the share of the answer's sentences the context supports (NUMERIC 0..1);
        the unsupported sentences are in ``.reason``."""
        from pytest_llmobs.evaluators import groundedness

        return self.record(
            groundedness.groundedness(
                answer, context, threshold=threshold, min_support=min_support
            ),
            name=name,
        )

    def json_valid(self, output: object, *, name: str | None = None) -> EvalResult:
        """Score whether ``output`` is valid JSON (BOOLEAN); a fenced ```json block counts."""
        from pytest_llmobs.evaluators import structured

        return self.record(structured.json_valid(output), name=name)

    def matches_schema(
        self,
        output: object,
        schema: type[BaseModel] | dict[str, Any],
        *,
        name: str | None = None,
    ) -> EvalResult:
        """Score whether ``output`` validates against a pydantic model or a JSON Schema."""
        from pytest_llmobs.evaluators import structured

        return self.record(structured.matches_schema(output, schema), name=name)

    def label(self, predicted: object, expected: object, *, name: str | None = None) -> EvalResult:
        """Record a predicted label (CATEGORICAL) with its expected label, for the run's
        accuracy, precision/recall/F1 and confusion matrix; truthy when they are equal."""
        from pytest_llmobs.evaluators import structured

        result = structured.label(predicted, expected)
        score_name = name or result.name
        self.score(
            score_name,
            result.value,
            result.reason or None,
            source=result.name,
            metadata={LABEL_EXPECTED: result.expected},
        )
        return EvalResult(score_name, result.value, result.passed, result.reason)

    def llm_judge(
        self,
        rubric: str,
        output: object,
        *,
        threshold: float | None = None,
        name: str | None = None,
        **variables: Any,
    ) -> EvalResult:
        """Grade ``output`` with the rubric prompt ``rubric`` (e.g. ``judge/correctness``) on the
        judge model (``--llm-judge-model``); the judge call is its own generation."""
        from pytest_llmobs.evaluators.judge import llm_judge

        if self._judge is None or self._prompts is None:
            raise RuntimeError("llm_judge needs the session's judge model: use the scorer fixture")
        if self._on_prompt is not None:
            self._on_prompt(self._prompts.get(rubric))
        result = llm_judge(
            rubric,
            output,
            llm=self._judge,
            prompts=self._prompts,
            threshold=threshold,
            **variables,
        )
        return self.record(result, name=name)

    def __repr__(self) -> str:
        return "Scorer()"


def corpus_texts(corpus: Sequence[str] | Dataset | None) -> list[str] | None:
    """Texts to fit a vectoriser on: strings as given, or a dataset's inputs and references."""
    if corpus is None:
        return None
    if isinstance(corpus, str):
        raise TypeError("corpus must be a list of texts or a dataset, not one string")
    texts: list[str] = []
    for entry in corpus:
        if isinstance(entry, str):
            texts.append(entry)
        else:
            texts.append(str(entry.input))
            if entry.expected_output is not None:
                texts.append(str(entry.expected_output))
    return texts
