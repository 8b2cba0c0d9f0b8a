"""``mock-llm-v1``: a deterministic mock model for trying the plugin without an API key.

It answers capital-city questions from `CAPITALS`, answers extractively from a ``Context:``
block or ``<context>...</context>`` when one is supplied, and otherwise gives a canned reply.
Options in the model string make it imperfect, slow or flaky, reproducibly::

    mock-llm-v1?accuracy=0.8&latency_ms=50&error_rate=0.1&seed=7

Every "random" choice comes from sha256 of the seed and the normalised question, so the
same model string gives the same answers in every process, whatever ``PYTHONHASHSEED`` is.
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any
from urllib.parse import parse_qsl

from pytest_llmobs.providers.base import (
    Message,
    ModelResponse,
    ProviderError,
    UnknownModelError,
    Usage,
    message_text,
)
from pytest_llmobs.providers.capitals import CAPITALS
from pytest_llmobs.providers.mock_judge import judge_answer, judge_sections
from pytest_llmobs.providers.retry import ATTEMPT, async_sleep

__all__ = ["IDK_ANSWER", "MOCK_MODEL_NAME", "MockLLM"]

MOCK_MODEL_NAME = "mock-llm-v1"
"""The model name the registry maps to `MockLLM`."""

IDK_ANSWER = "I don't know based on the provided context."
"""The answer when a supplied context has nothing in common with the question."""

_KNOWN_OPTIONS = "accuracy (0..1), latency_ms (>= 0), error_rate (0..1), seed (int)"
_TOKEN = re.compile(r"\w+|[^\w\s]")
_WORD = re.compile(r"\w+")
_KEYWORD = re.compile(r"\w+(?:'\w+)*")
_CONTEXT_TAG = re.compile(r"<context>(.*?)</context>", re.IGNORECASE | re.DOTALL)
_CONTEXT_LINE = re.compile(r"^[ \t]*context:[ \t]*", re.IGNORECASE | re.MULTILINE)
_QUESTION_LINE = re.compile(r"^[ \t]*question:[ \t]*", re.IGNORECASE | re.MULTILINE)
_BLOCK_END = re.compile(r"^[ \t]*(?:question|context):", re.IGNORECASE | re.MULTILINE)
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])[ \t]+|[ \t]*\n\s*")
_CAPITAL_WORD = re.compile(r"\bcapital\b")
_SUPPORT_AGENT = re.compile(
    r"(?i:support\s+(?:agent|assistant|representative|bot)\s+(?:for|at|of|with))\s+"
    r"(?:the\s+)?([A-Z0-9][\w&'-]*(?:[ \t]+[A-Z0-9][\w&'-]*)*)"
)
_STOP_WORDS_TEXT = """
a about above according after all also am an and answer any are as at based be been before
being below between both but by can context could did do does doing during each few for from
further had has have having he her here hers him his how i if in into is it its itself just me
more most my no nor not now of off on once only or other our ours out over own please provided
question same she should so some such tell than that the their theirs them then there these
they this those through to too under until up us very was we were what when where which while
who whom whose why will with would you your yours
"""
_STOP_WORDS = frozenset(_STOP_WORDS_TEXT.split())
_SIMULATED_ERRORS = ((429, "Too Many Requests"), (500, "Internal Server Error"))
_CANNED_TAILS = (
    "This deterministic reply touches on {keys}.",
    "In short, the key points concern {keys}.",
    "A complete answer would discuss {keys} in more detail.",
)


def _uniform(*parts: object) -> float:
    """A reproducible number in [0, 1) derived from ``parts`` with sha256."""
    digest = hashlib.sha256("\x1f".join(str(part) for part in parts).encode("utf-8")).digest()
    return (int.from_bytes(digest[:8], "big") >> 11) / float(1 << 53)


def _count_tokens(text: str) -> int:
    return len(_TOKEN.findall(text))


def _content_words(text: str) -> set[str]:
    """Lower-cased non-stop words with a crude plural fold ("refunds" → "refund")."""
    words = (w for w in _WORD.findall(text.lower()) if w not in _STOP_WORDS)
    return {w[:-1] if len(w) > 3 and w[-1] == "s" and w[-2] != "s" else w for w in words}


def _country_key(text: str) -> str:
    text = re.sub(r"['’]s\b", "", text.lower())
    return " ".join(_WORD.findall(text))


_COUNTRY_CAPITAL = {_country_key(country): capital for country, capital in CAPITALS.items()}
_COUNTRY_PATTERN = re.compile(
    r"\b(?:"
    + "|".join(re.escape(k) for k in sorted(_COUNTRY_CAPITAL, key=len, reverse=True))
    + r")\b"
)
_ALL_CAPITALS = sorted(set(CAPITALS.values()))


def _bad_spec(detail: str) -> UnknownModelError:
    return UnknownModelError(f"{MOCK_MODEL_NAME}: {detail}; known options: {_KNOWN_OPTIONS}")


def _check_number(name: str, value: float, low: float, high: float) -> float:
    if not math.isfinite(value) or not low <= value <= high:
        shown = "in 0..1" if high == 1.0 else ">= 0"
        raise _bad_spec(f"option {name!r} must be {shown}, got {value!r}")
    return float(value)


class MockLLM:
    """A deterministic `Provider` for ``mock-llm-v1`` (see the module docstring)."""

    def __init__(
        self,
        *,
        accuracy: float = 1.0,
        latency_ms: float = 0.0,
        error_rate: float = 0.0,
        seed: int = 0,
    ) -> None:
        self._options: dict[str, float | int] = {
            "accuracy": _check_number("accuracy", accuracy, 0.0, 1.0),
            "latency_ms": _check_number("latency_ms", latency_ms, 0.0, math.inf),
            "error_rate": _check_number("error_rate", error_rate, 0.0, 1.0),
            "seed": int(seed),
        }

    @classmethod
    def from_spec(cls, spec: str) -> MockLLM:
        """Build from a model string such as ``mock-llm-v1?accuracy=0.8&seed=7``.

        Raises `UnknownModelError` for another model name, an unknown option or a bad value.
        """
        name, _, query = spec.strip().partition("?")
        if name.strip() != MOCK_MODEL_NAME:
            raise UnknownModelError(f"unknown model {name!r}; expected {MOCK_MODEL_NAME!r}")
        try:
            # (Python 3.10's strict parsing refuses the empty query that 3.11 reads as none)
            pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True) if query else []
        except ValueError:
            raise _bad_spec(f"malformed options {query!r} (expected name=value&...)") from None
        values: dict[str, Any] = {}
        for key, raw in pairs:
            if key not in ("accuracy", "latency_ms", "error_rate", "seed"):
                raise _bad_spec(f"unknown option {key!r}")
            if key in values:
                raise _bad_spec(f"option {key!r} given more than once")
            try:
                values[key] = int(raw) if key == "seed" else float(raw)
            except ValueError:
                kind = "an integer" if key == "seed" else "a number"
                raise _bad_spec(f"bad value {raw!r} for option {key!r} (expected {kind})") from None
        return cls(**values)

    @property
    def model(self) -> str:
        """Always ``"mock-llm-v1"``."""
        return MOCK_MODEL_NAME

    @property
    def options(self) -> Mapping[str, Any]:
        """The effective options (defaults filled in), read-only."""
        return MappingProxyType(self._options)

    @property
    def cache_identity(self) -> str:
        """The model as a cache key sees it: the options that choose answers (``accuracy``,
        ``seed``), not the ones that only delay or fail calls (``latency_ms``, ``error_rate``)."""
        accuracy, seed = self._options["accuracy"], self._options["seed"]
        return f"{MOCK_MODEL_NAME}?accuracy={accuracy}&seed={seed}"

    def __repr__(self) -> str:
        query = "&".join(f"{k}={v}" for k, v in self._options.items())
        return f"MockLLM({MOCK_MODEL_NAME}?{query})"

    def complete(self, messages: list[Message], **params: Any) -> ModelResponse:
        """Answer ``messages``, sleeping ``latency_ms`` with `time.sleep`."""
        start = time.perf_counter()
        text, meta = self._answer(messages, params)
        while (remaining := self._delay_left(start)) > 0:
            time.sleep(remaining)
        return self._response(messages, text, meta, start)

    async def acomplete(self, messages: list[Message], **params: Any) -> ModelResponse:
        """Answer ``messages``, waiting ``latency_ms`` in the running async library."""
        start = time.perf_counter()
        text, meta = self._answer(messages, params)
        while (remaining := self._delay_left(start)) > 0:
            await async_sleep(remaining)
        return self._response(messages, text, meta, start)

    def _delay_left(self, start: float) -> float:
        return float(self._options["latency_ms"]) / 1000.0 - (time.perf_counter() - start)

    def _response(
        self, messages: list[Message], text: str, meta: dict[str, Any], start: float
    ) -> ModelResponse:
        prompt_tokens = sum(_count_tokens(message_text(m)) for m in messages)
        return ModelResponse(
            text=text,
            model=MOCK_MODEL_NAME,
            usage=Usage(input=prompt_tokens, output=_count_tokens(text)),
            latency_ms=(time.perf_counter() - start) * 1000.0,
            cost=0.0,
            metadata={"mock": meta},
        )

    def _answer(
        self, messages: list[Message], params: Mapping[str, Any]
    ) -> tuple[str, dict[str, Any]]:
        """Raise a simulated error or return the answer text and its metadata."""
        question = _question_of(messages)
        key = " ".join(_WORD.findall(question.lower()))  # the question's identity
        self._maybe_fail(key)
        sections = judge_sections(messages)
        if sections is not None:
            return judge_answer(sections), {"wrong": False, "kind": "judge"}
        contexts = [
            block for m in messages for block in _context_blocks(message_text(m)) if block.strip()
        ]
        if contexts:
            text, wrong = self._context_answer(contexts, question, key)
            kind = "context"
        elif (capital := _capital_asked(question)) is not None:
            text, wrong = self._capital_answer(capital, key)
            kind = "capital"
        else:
            text, wrong, kind = self._canned_answer(messages, question, key), False, "canned"
        max_tokens = params.get("max_tokens")
        if max_tokens is not None:
            text = " ".join(text.split()[: max(int(max_tokens), 0)])
        return text, {"wrong": wrong, "kind": kind}

    def _maybe_fail(self, key: str) -> None:
        """A simulated error, drawn by question and attempt of the call (`retry.ATTEMPT`): a
        call fails the same way whatever ran before it in the process (``-k``, xdist)."""
        rate = float(self._options["error_rate"])
        if not rate:
            return
        attempt = ATTEMPT.get() - 1
        if _uniform(self._options["seed"], "error", key, attempt) >= rate:
            return
        status, reason = _SIMULATED_ERRORS[attempt % 2]  # 429, 500, 429, ... per question
        raise ProviderError(
            f"{MOCK_MODEL_NAME}: {status} {reason} (simulated, error_rate={rate:g})",
            status=status,
            retryable=True,
            retry_after=0.0 if status == 429 else None,
        )

    def _is_wrong(self, key: str) -> bool:
        accuracy = float(self._options["accuracy"])
        return _uniform(self._options["seed"], "accuracy", key) >= accuracy

    def _capital_answer(self, capital: str, key: str) -> tuple[str, bool]:
        if not self._is_wrong(key):
            return capital, False
        others = [c for c in _ALL_CAPITALS if c != capital]
        pick = _uniform(self._options["seed"], "wrong-capital", key)
        return others[int(pick * len(others))], True

    def _context_answer(self, contexts: list[str], question: str, key: str) -> tuple[str, bool]:
        wanted = _content_words(question)
        # (score, block, start, end) of every sentence, in context order
        spans = [
            (len(wanted & _content_words(block[start:end])), b, start, end)
            for b, block in enumerate(contexts)
            for start, end in _sentence_spans(block)
        ]
        ranked = sorted(range(len(spans)), key=lambda i: -spans[i][0])  # ties: context order
        best = spans[ranked[0]]
        if best[0] == 0:
            return IDK_ANSWER, False
        chosen = [ranked[0]]
        if best[0] >= 2 and len(ranked) > 1 and abs(ranked[1] - ranked[0]) == 1:
            second = spans[ranked[1]]
            lo, hi = min(best[2], second[2]), max(best[3], second[3])
            if second[:2] == best[:2] and "\n" not in contexts[best[1]][lo:hi]:
                chosen.append(ranked[1])  # two adjacent sentences, equally (and well) matched
        b, lo = best[1], min(spans[i][2] for i in chosen)
        answer = contexts[b][lo : max(spans[i][3] for i in chosen)]
        if not self._is_wrong(key):
            return answer, False
        others = [contexts[s[1]][s[2] : s[3]] for i, s in enumerate(spans) if i not in chosen]
        if not others:
            return IDK_ANSWER, True
        pick = _uniform(self._options["seed"], "wrong-context", key)
        return others[int(pick * len(others))], True

    def _canned_answer(self, messages: list[Message], question: str, key: str) -> str:
        restated = " ".join(question.split()[:40]).rstrip(" ?!.:;,")
        if not restated:
            return "Mock answer: no question was asked."
        keys: list[str] = []
        for word in _KEYWORD.findall(question.lower().replace("’", "'")):  # skip "hasn't"
            if "'" not in word and word not in _STOP_WORDS and word not in keys:
                keys.append(word)
        tail = "No further details are available."
        if keys:
            template = _CANNED_TAILS[int(_uniform(self._options["seed"], "canned", key) * 3)]
            tail = template.format(keys=", ".join(keys[:6]))
        text = f"Mock answer: {restated}. {tail}"
        for m in messages:
            if m.get("role") == "system":
                found = _SUPPORT_AGENT.search(message_text(m))
                if found:
                    return f"Thank you for contacting {found.group(1)}. {text}"
        return text


def _question_of(messages: list[Message]) -> str:
    """The last user message, narrowed to its ``Question:`` part or stripped of context."""
    content = next((message_text(m) for m in reversed(messages) if m.get("role") == "user"), "")
    marker = _QUESTION_LINE.search(content)
    if marker is not None:
        return _CONTEXT_TAG.sub(" ", content[marker.end() :]).strip()
    content = _CONTEXT_TAG.sub(" ", content)
    marker = _CONTEXT_LINE.search(content)
    return (content[: marker.start()] if marker else content).strip()


def _sentence_spans(block: str) -> list[tuple[int, int]]:
    """(start, end) of each non-blank sentence or line of ``block``, whitespace trimmed."""
    spans, pos = [], 0
    for brk in [*_SENTENCE_BREAK.finditer(block), None]:
        end = brk.start() if brk else len(block)
        piece = block[pos:end]
        if piece.strip():
            lead = len(piece) - len(piece.lstrip())
            spans.append((pos + lead, pos + len(piece.rstrip())))
        pos = brk.end() if brk else pos
    return spans


def _context_blocks(content: str) -> list[str]:
    """Texts inside ``<context>`` tags and after ``Context:`` lines (to ``Question:``)."""
    blocks = [m.group(1) for m in _CONTEXT_TAG.finditer(content)]
    for marker in _CONTEXT_LINE.finditer(content):
        end = _BLOCK_END.search(content, marker.end())
        blocks.append(content[marker.end() : end.start() if end else len(content)])
    return blocks


def _capital_asked(question: str) -> str | None:
    """The capital the question asks for, or None if it is not a capital question."""
    text = _country_key(question)
    word = _CAPITAL_WORD.search(text)
    if word is None:
        return None
    found = sorted(_COUNTRY_PATTERN.finditer(text), key=lambda m: m.start() < word.start())
    return _COUNTRY_CAPITAL[found[0].group(0)] if found else None
