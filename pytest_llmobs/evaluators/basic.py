"""String evaluators with no dependencies: exact match and length bounds."""

from __future__ import annotations

from pytest_llmobs.evaluators.base import EvalResult


def _shorten(text: object, limit: int = 80) -> str:
    shown = repr(text)
    return shown if len(shown) <= limit else shown[: limit - 4] + "...'"


def exact_match(
    output: object, expected: object, *, case_sensitive: bool = True, strip: bool = True
) -> EvalResult:
    """Whether ``output`` equals ``expected`` (after optional stripping and case folding)."""
    got, want = str(output), str(expected)
    if strip:
        got, want = got.strip(), want.strip()
    if not case_sensitive:
        got, want = got.casefold(), want.casefold()
    passed = got == want
    reason = "" if passed else f"expected {_shorten(expected)}, got {_shorten(output)}"
    return EvalResult("exact_match", passed, passed, reason)


def char_length(text: object, *, min: int | None = None, max: int | None = None) -> EvalResult:
    """The length of ``text`` in characters; passes when within ``[min, max]``."""
    length = len(str(text))
    too_short = min is not None and length < min
    too_long = max is not None and length > max
    bounds = f"[{'' if min is None else min}, {'' if max is None else max}]"
    passed = not (too_short or too_long)
    reason = "" if passed else f"length {length} outside {bounds}"
    return EvalResult("char_length", length, passed, reason)
