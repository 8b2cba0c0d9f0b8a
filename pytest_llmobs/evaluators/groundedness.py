"""Groundedness: the share of an answer's sentences that its context supports.

A sentence is supported when most of its content words occur in the context, or when it nearly
appears in the context verbatim (rapidfuzz ``partial_ratio`` >= 90)::

    >>> context = "Paris is the capital of France. It has about two million inhabitants."
    >>> groundedness("Paris is the capital of France.", context).value
    1.0
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from rapidfuzz import fuzz

from pytest_llmobs.evaluators.base import EvalResult
from pytest_llmobs.evaluators.basic import as_text, check_share, none_output
from pytest_llmobs.evaluators.similarity import shorten

PARTIAL_RATIO_SUPPORT = 90.0
"""A sentence whose rapidfuzz ``partial_ratio`` against the context reaches this is supported."""

_STOP_WORDS = """
a an and are as at be been but by can could did do does for from had has have he her his i if in
into is it its me my no not of on or our she so than that the their them then there these they
this those to too was we were what when which who will with would you your
"""
STOP_WORDS = frozenset(_STOP_WORDS.split())
"""Words ignored when deciding whether a sentence's content is in the context."""

# A sentence ends at . ! ? (or their Arabic and Devanagari forms, or an ellipsis) followed by
# whitespace, so "3.14" stays whole; right after a CJK 。！？; or at a line break.
_SENTENCE_END = re.compile(r"(?<=[.!?؟।…])\s+|(?<=[。！？])\s*|\s*\n\s*")
_WORD = re.compile(r"\w+")


def split_sentences(text: str) -> list[str]:
    """The non-empty sentences of ``text``.

    >>> split_sentences("It rains. Does it?\\nYes! 雨です。本当？")
    ['It rains.', 'Does it?', 'Yes!', '雨です。', '本当？']
    """
    return [part.strip() for part in _SENTENCE_END.split(text) if part.strip()]


def content_words(text: str) -> set[str]:
    """The lowercased words of ``text`` minus `STOP_WORDS`.

    >>> sorted(content_words("The Eiffel tower is in Paris"))
    ['eiffel', 'paris', 'tower']
    """
    return {word for word in _WORD.findall(text.casefold()) if word not in STOP_WORDS}


NONE_CONTEXT = "context is None: the item has no context to check the answer against"
"""The reason of the verdict on a ``None`` context (or a ``None`` passage in it): it fails,
rather than check the answer against the text ``"None"``."""


def groundedness(
    answer: object,
    context: str | Sequence[str] | None,
    *,
    threshold: float = 0.8,
    min_support: float = 0.6,
) -> EvalResult:
    """The share of ``answer``'s sentences supported by ``context`` (a string or a list of them).

    A sentence is supported when at least ``min_support`` of its content words occur in the
    context, when it (nearly) appears in it verbatim, or when it has no content words. Passes when
    the share is at least ``threshold``; ``reason`` quotes every unsupported sentence, even when
    the result passes. An empty answer or context scores 0.0 and fails, and so does a ``None``
    context (or a ``None`` in the list).

    >>> result = groundedness("Paris is in France. It has 90 moons.", ["Paris is in France."])
    >>> result.value, result.passed, result.reason
    (0.5, False, "1 of 2 sentences unsupported: 'It has 90 moons.'")
    """
    check_share("groundedness", "threshold", threshold)
    check_share("groundedness", "min_support", min_support)
    if answer is None:
        return none_output("groundedness", 0.0)
    text = as_text("groundedness", answer, "answer")
    if isinstance(context, (str, bytes, bytearray, memoryview)):
        source = as_text("groundedness", context, "context")
    elif isinstance(context, Iterable):
        parts = list(context)
        if any(part is None for part in parts):  # an item without context: not the text "None"
            return EvalResult("groundedness", 0.0, False, NONE_CONTEXT)
        source = "\n".join(as_text("groundedness", part, "context") for part in parts)
    elif context is None:
        return EvalResult("groundedness", 0.0, False, NONE_CONTEXT)
    else:
        raise TypeError(
            "groundedness: context must be a string or a list of strings, got "
            f"{type(context).__name__} {repr(context)[:60]}"
        )
    sentences = split_sentences(text)
    if not sentences:
        return EvalResult("groundedness", 0.0, False, "empty answer")
    if not source.strip():
        return EvalResult("groundedness", 0.0, False, "empty context")

    folded = source.casefold()
    known = set(_WORD.findall(folded))
    unsupported = []
    for sentence in sentences:
        words = content_words(sentence)
        if not words:
            continue
        share = len(words & known) / len(words)
        if share >= min_support:
            continue
        if fuzz.partial_ratio(sentence.casefold(), folded) >= PARTIAL_RATIO_SUPPORT:
            continue
        unsupported.append(sentence)

    value = 1.0 - len(unsupported) / len(sentences)
    reason = ""
    if unsupported:
        quoted = ", ".join(shorten(sentence) for sentence in unsupported)
        reason = f"{len(unsupported)} of {len(sentences)} sentences unsupported: {quoted}"
    return EvalResult("groundedness", value, value >= threshold, reason)
