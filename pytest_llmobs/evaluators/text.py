"""Substring, regular-expression and word-count evaluators."""

from __future__ import annotations

import re
from collections.abc import Iterable

from pytest_llmobs.evaluators.base import EvalResult
from pytest_llmobs.evaluators.basic import (
    as_text,
    check_bounds,
    none_expected,
    none_output,
    shorten,
    shorten_all,
)

_WORD = re.compile(r"\w+")


def _needles(name: str, needles: Iterable[object] | None) -> list[str] | None:
    """The needles as strings; None when there are none to look for (``needles`` or one of
    them is ``None``, say an item's missing metadata): the caller fails with `none_expected`."""
    if isinstance(needles, (str, bytes)):
        raise TypeError(
            f"{name}: needles must be an iterable of strings, not the string {shorten(needles)};"
            " use contains() for a single needle"
        )
    if needles is None:
        return None
    given = list(needles)
    if not given:
        raise ValueError(f"{name}: needles is empty; give at least one string to look for")
    texts = [as_text(name, n, "needle") for n in given if n is not None]
    if "" in texts:
        raise ValueError(f"{name}: a needle is empty; it would match every output")
    if len(texts) < len(given):
        return None
    return texts


def _fold(text: str, case_sensitive: bool) -> str:
    return text if case_sensitive else text.casefold()


def _in(case_sensitive: bool) -> str:
    return "" if case_sensitive else " (case-insensitive)"


def contains(output: object, needle: object, *, case_sensitive: bool = False) -> EvalResult:
    """Whether ``needle`` occurs in ``output`` (BOOLEAN value); case-insensitive by default.

    An empty needle is a ``ValueError``: it would be found in every output. A list of needles
    is a ``TypeError`` (use `contains_all` or `contains_any`). Bytes are read as UTF-8 text.

    >>> contains("The capital is Paris.", "paris")
    <contains passed value=True>
    """
    if isinstance(needle, (list, tuple, set, frozenset, dict)):
        raise TypeError(
            f"contains: needle must be a string, got {type(needle).__name__} "
            f"{shorten(needle)}; use contains_all() or contains_any() for several needles"
        )
    wanted = None if needle is None else as_text("contains", needle, "needle")
    if wanted == "":
        raise ValueError("contains: needle is empty; it would match every output")
    if output is None:
        return none_output("contains")
    if wanted is None:  # say, an item's missing expected_output: not the text "None"
        return none_expected("contains")
    text = as_text("contains", output)
    passed = _fold(wanted, case_sensitive) in _fold(text, case_sensitive)
    reason = (
        "" if passed else f"{shorten(wanted)} not found{_in(case_sensitive)} in {shorten(text)}"
    )
    return EvalResult("contains", passed, passed, reason)


def contains_all(
    output: object, needles: Iterable[object] | None, *, case_sensitive: bool = False
) -> EvalResult:
    """The share of ``needles`` found in ``output`` (NUMERIC, 0..1); passes when all are.

    ``None`` needles (or a ``None`` among them) fail: there is nothing to look for. An empty
    needle is a ``ValueError``: it would be found in every output.

    >>> contains_all("Paris, Rome", ["paris", "rome", "oslo"]).reason
    "missing 1 of 3 (case-insensitive): 'oslo' in 'Paris, Rome'"
    """
    wanted = _needles("contains_all", needles)
    if output is None:
        return none_output("contains_all", 0.0)
    if wanted is None:
        return none_expected("contains_all", 0.0)
    shown = as_text("contains_all", output)
    text = _fold(shown, case_sensitive)
    missing = [n for n in wanted if _fold(n, case_sensitive) not in text]
    share = 1.0 - len(missing) / len(wanted)
    reason = (
        f"missing {len(missing)} of {len(wanted)}{_in(case_sensitive)}: {shorten_all(missing)}"
        f" in {shorten(shown)}"
        if missing
        else ""
    )
    return EvalResult("contains_all", share, not missing, reason)


def contains_any(
    output: object, needles: Iterable[object] | None, *, case_sensitive: bool = False
) -> EvalResult:
    """Whether at least one of ``needles`` occurs in ``output`` (BOOLEAN value).

    ``None`` needles (or a ``None`` among them) fail: there is nothing to look for. An empty
    needle is a ``ValueError``: it would be found in every output.

    >>> contains_any("It is Rome.", ["Paris", "Rome"])
    <contains_any passed value=True>
    """
    wanted = _needles("contains_any", needles)
    if output is None:
        return none_output("contains_any")
    if wanted is None:
        return none_expected("contains_any")
    shown = as_text("contains_any", output)
    text = _fold(shown, case_sensitive)
    passed = any(_fold(n, case_sensitive) in text for n in wanted)
    reason = (
        ""
        if passed
        else f"none of {shorten_all(wanted)} found{_in(case_sensitive)} in {shorten(shown)}"
    )
    return EvalResult("contains_any", passed, passed, reason)


def regex(
    output: object,
    pattern: str | re.Pattern[str] | None,
    *,
    flags: int = 0,
    fullmatch: bool = False,
) -> EvalResult:
    """Whether ``pattern`` matches ``output`` (BOOLEAN value): anywhere, or the whole text.

    An invalid or empty pattern raises ``ValueError`` naming the pattern (and the ``re`` error),
    as do ``flags`` with an already compiled pattern; a pattern that is not text is a
    ``TypeError``; a ``None`` pattern fails (nothing to match).

    >>> regex("Order #1234 shipped", "#[0-9]+")
    <regex passed value=True>
    >>> regex("Order #1234 shipped", "#[0-9]+", fullmatch=True).reason
    "pattern '#[0-9]+' did not fully match 'Order #1234 shipped'"
    """
    if pattern is not None and not isinstance(pattern, (str, re.Pattern)):
        got = f"{type(pattern).__name__} {shorten(pattern)}"
        raise TypeError(f"regex: pattern must be a string or re.Pattern, got {got}")
    if pattern is None:
        return none_output("regex") if output is None else none_expected("regex")
    if isinstance(pattern, re.Pattern):
        if not isinstance(pattern.pattern, str):
            raise TypeError(f"regex: pattern must match text, got the bytes pattern {pattern!r}")
        if flags:  # re.compile refuses flags with a compiled pattern
            raise ValueError(
                f"regex: flags={flags!r} cannot be added to the compiled pattern "
                f"{pattern.pattern!r}; compile it with the flags, or pass the pattern as a string"
            )
        source, compiled = pattern.pattern, pattern
    else:
        source = pattern
        try:
            compiled = re.compile(pattern, flags)
        except re.error as error:
            raise ValueError(f"regex: invalid pattern {source!r}: {error}") from error
    if not source:
        raise ValueError("regex: pattern is empty; it would match every output")
    if output is None:
        return none_output("regex")
    text = as_text("regex", output)
    found = compiled.fullmatch(text) if fullmatch else compiled.search(text)
    passed = found is not None
    how = "fully match" if fullmatch else "match"
    reason = "" if passed else f"pattern {source!r} did not {how} {shorten(text)}"
    return EvalResult("regex", passed, passed, reason)


def word_count(text: object, *, min: int | None = None, max: int | None = None) -> EvalResult:
    """The number of words (runs of Unicode ``\\w``) in ``text`` (NUMERIC); passes within bounds.

    Punctuation separates words (``"don't"`` counts 2) and unspaced scripts count one word per
    run (``"東京都"`` counts 1). ``min > max`` raises ``ValueError``.

    >>> word_count("Paris is the capital.", min=5)
    <word_count FAILED value=4: word count 4 outside [5, ]>
    """
    if text is None:
        return none_output("word_count", 0)
    count = sum(1 for _ in _WORD.finditer(as_text("word_count", text, "text")))
    reason = check_bounds(count, min, max, what="word count", evaluator="word_count")
    return EvalResult("word_count", count, not reason, reason)
