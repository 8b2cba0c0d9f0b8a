"""Fuzzy string similarity with rapidfuzz, normalised to 0..1."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

from rapidfuzz import fuzz

from pytest_llmobs.evaluators.base import EvalResult
from pytest_llmobs.evaluators.basic import as_text, none_expected, none_output, shorten

FuzzyMethod = Literal["ratio", "partial_ratio", "token_set_ratio", "token_sort_ratio"]

_METHODS: dict[str, Callable[[str, str], float]] = {
    "ratio": fuzz.ratio,
    "partial_ratio": fuzz.partial_ratio,
    "token_set_ratio": fuzz.token_set_ratio,
    "token_sort_ratio": fuzz.token_sort_ratio,
}


def _similarity(method: str, got: str, want: str) -> float:
    # What counts as "empty": no characters, or for the token methods no tokens (rapidfuzz scores
    # two empty strings 100 with some methods and 0 with others).
    got_empty, want_empty = (
        (not got.split(), not want.split()) if method.startswith("token") else (not got, not want)
    )
    if got_empty or want_empty:
        return 1.0 if got_empty and want_empty else 0.0
    return min(max(_METHODS[method](got, want) / 100.0, 0.0), 1.0)


def fuzzy(
    output: object,
    expected: object,
    *,
    method: FuzzyMethod = "ratio",
    threshold: float = 0.8,
    case_sensitive: bool = False,
) -> EvalResult:
    """Similarity of ``output`` to ``expected`` (NUMERIC, 0..1); passes when ``>= threshold``.

    ``method`` is a rapidfuzz scorer: ``ratio`` (whole strings), ``partial_ratio`` (best matching
    substring), ``token_sort_ratio`` (word order ignored) or ``token_set_ratio`` (word order and
    repeats ignored). Two empty strings score 1.0, one empty string 0.0. Comparing two long texts
    costs about ``len(output) * len(expected) / 64`` steps.

    >>> fuzzy("The capital is Paris", "the capital is paris.") >= 0.8
    True
    >>> fuzzy("Pairs", "Paris", threshold=0.9).reason
    "ratio similarity 0.8 < threshold 0.9: expected 'Paris', got 'Pairs'"
    """
    if method not in _METHODS:
        raise ValueError(
            f"fuzzy: {method!r} is not a valid method. Valid methods: {', '.join(_METHODS)}"
        )
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
        raise TypeError(f"fuzzy: threshold must be a number in [0, 1], got {threshold!r}")
    if math.isnan(threshold) or not 0.0 <= threshold <= 1.0:
        raise ValueError(f"fuzzy: threshold must be in [0, 1], got {threshold!r}")
    if output is None:
        return none_output("fuzzy", 0.0)
    if expected is None:
        return none_expected("fuzzy", 0.0)
    got, want = as_text("fuzzy", output), as_text("fuzzy", expected, "expected")
    if not case_sensitive:
        got, want = got.casefold(), want.casefold()
    value = _similarity(method, got, want)
    passed = value >= threshold
    reason = (
        ""
        if passed
        else f"{method} similarity {round(value, 4)} < threshold {threshold}:"
        f" expected {shorten(expected)}, got {shorten(output)}"
    )
    return EvalResult("fuzzy", value, passed, reason)
