"""Failed OpenAI calls as messages, kept free of secrets.

`AttemptError` is one failed HTTP attempt (its final message names how many there were); the
server's own error text and an unreadable answer are described here; `Secret` holds the key and
header values, and `ErrorReporting` (mixed into `OpenAIProvider`) builds the errors with the key
and those values masked, as written and as a gateway may echo them: JSON-escaped (``\\/``,
``\\"``, ``\\u002B``) or URL-encoded (``%2F``, ``+``). A model's answer is masked of credentials
only (`looks_like_credential`): a placeholder key such as ``EMPTY`` is a word the answer may hold.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from pytest_llmobs.providers.base import ProviderError
from pytest_llmobs.providers.openai_config import BASE_URL_ENV, PREFIX

if TYPE_CHECKING:
    import httpx

_KEY_LIKE = re.compile(r"\b(sk-|Bearer\s+)(?:[\w\-*.~+/=]|\\/|%[0-9A-Fa-f]{2}){4,}")
"""A credential of any kind (ours are masked by value first): base64 and JSON-escaped or
URL-encoded tails included."""
_UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]+")
"""Characters no JSON encoder escapes and no URL encoder encodes: an echo keeps them as they are
(so a secret's longest run of them tells cheaply whether a text may hold an echo at all)."""
_ENCODING_MARKS = ("\\", "%", "+")
"""What an encoded form of a secret holds: the test for one without such a run."""
_DETAIL_CHARS = 200
_REASON_CHARS = 160
"""Longer reasons are cut (ours name a value shortened already, and say what was expected)."""
SCRUBBED_MIN_CHARS = 4
"""Shorter header values are not scrubbed from messages (they would mask ordinary words)."""
CREDENTIAL_MIN_CHARS = 16
"""Shorter values are not masked in a model's answer: every real credential is longer (OpenAI
keys 50 to 170 characters, Azure and API Management keys 32, tokens hundreds), while the
placeholders local servers take (``EMPTY``, ``ollama``, ``lm-studio``, ``sk-1234``) and header
values such as ``production`` are words an answer may hold."""
_WORDS = re.compile(r"(?:[A-Z]+|[A-Za-z][a-z]*)(?:[-_. ](?:[A-Z]+|[A-Za-z][a-z]*))*")
"""Plain words (``sk-no-key-required``, ``customer-support``): no credential looks like this."""


def looks_like_credential(value: str) -> bool:
    """Whether a secret value is masked in a model's answer too: `CREDENTIAL_MIN_CHARS` or more
    and not plain words (a random token has digits or mixed case inside its words)."""
    return len(value) >= CREDENTIAL_MIN_CHARS and not _WORDS.fullmatch(value)


def _char_forms(char: str) -> str:
    """A regex for ``char`` as written, JSON-escaped (any encoder's choice: ``\\/``,
    ``\\u002b`` or ``\\u002B``) or URL-encoded (either case; ``+`` for a space)."""
    if _UNRESERVED.fullmatch(char):
        return re.escape(char)
    forms: list[str] = []
    escaped = json.dumps(char)[1:-1]  # \" \\ \t (and \uXXXX: below in either case)
    if escaped != char and not escaped.startswith("\\u"):
        forms.append(re.escape(escaped))
    if char == "/":
        forms.append(r"\\/")
    units = char.encode("utf-16-be", "surrogatepass")
    forms.append(
        "".join(rf"\\u(?i:{units[i]:02x}{units[i + 1]:02x})" for i in range(0, len(units), 2))
    )
    forms.append("".join(f"(?i:%{byte:02x})" for byte in char.encode("utf-8", "surrogatepass")))
    if char == " ":
        forms.append(r"\+")
    # as written last: a key ending in a backslash, echoed JSON-escaped (two), matches both
    forms.append(re.escape(char))
    return "(?:" + "|".join(forms) + ")"


class _Mask:
    """Masks some strings in a text, as written, JSON-escaped or URL-encoded."""

    __slots__ = ("_forms", "_hint", "_parts")

    def __init__(self, parts: Iterable[str]) -> None:
        self._parts = list(parts)
        """Each one contains the last (a value's credentials are its end)."""
        runs = _UNRESERVED.findall(self._parts[-1]) if self._parts else []
        self._hint = max(runs, key=len, default="")
        """In every echo of a part: a text without it holds none, and is not searched."""
        self._forms: re.Pattern[str] | None = None

    def masked(self, text: str) -> str:
        if not self._parts:
            return text
        for part in self._parts:
            if part in text:
                text = text.replace(part, "***")
        if len(self._hint) >= SCRUBBED_MIN_CHARS:
            may_echo = self._hint in text
        else:
            may_echo = any(mark in text for mark in _ENCODING_MARKS)
        if may_echo:
            if self._forms is None:  # (compiled once, on the first text that needs it)
                alternatives = ("".join(map(_char_forms, part)) for part in self._parts)
                self._forms = re.compile("|".join(alternatives))
            text = self._forms.sub("***", text)
        return text


class Secret:
    """A string that never shows itself in a repr or str."""

    __slots__ = ("_in_answers", "_in_messages", "_value")

    def __init__(self, value: str) -> None:
        self._value = value
        # the whole value, and the credentials of a "<scheme> <credentials>" value alone
        parts = dict.fromkeys((value, value.rpartition(" ")[2]))
        self._in_messages = _Mask(p for p in parts if len(p) >= SCRUBBED_MIN_CHARS)
        self._in_answers = _Mask(p for p in parts if looks_like_credential(p))

    def reveal(self) -> str:
        return self._value

    def masked(self, text: str) -> str:
        """``text`` with the value, and the credentials of a ``<scheme> <credentials>`` value
        alone, masked as written, JSON-escaped or URL-encoded (a gateway echoing a header)."""
        return self._in_messages.masked(text)

    def masked_in_answer(self, text: str) -> str:
        """`masked`, of the parts that `looks_like_credential` only: for a model's answer,
        which must reach the test as the model wrote it."""
        return self._in_answers.masked(text)

    def __repr__(self) -> str:
        return "'***'"

    __str__ = __repr__


class AttemptError(ProviderError):
    """One failed HTTP attempt, with the parts the final message is built from."""

    def __init__(self, label: str, summary: str, host: str, detail: str = "", **kw: Any) -> None:
        self.label, self.summary, self.host, self.detail = label, summary, host, detail
        super().__init__(self.render(1), **kw)

    def render(self, attempts: int) -> str:
        after = f" after {attempts} attempts" if attempts > 1 else ""
        tail = f": {self.detail}" if self.detail else ""
        return f"{self.label}: {self.summary}{after} (host {self.host}){tail}"


def final_message(error: ProviderError, attempts: int) -> str:
    return error.render(attempts) if isinstance(error, AttemptError) else str(error)


def failure_reason(exc: Exception) -> str:
    """Why a success answer could not be read, on one line: ``KeyError: 'choices'``."""
    reason = " ".join(str(exc).split())
    if len(reason) > _REASON_CHARS:
        reason = reason[: _REASON_CHARS - 1] + "…"
    return f"{type(exc).__name__}: {reason}"


def error_detail(response: httpx.Response) -> str:
    """The server's error message (OpenAI's ``{"error": {"message": ...}}``) or body text; for
    a redirect, where to (an http:// base URL sent to https:// is the usual cause)."""
    location = response.headers.get("location") if response.is_redirect else None
    if location:
        return f"redirected to {location}; set {BASE_URL_ENV} to the URL the API answers at"
    return error_message(response) or response.text


def error_message(response: httpx.Response) -> str | None:
    """OpenAI's ``{"error": {"message": ...}}`` (or ``{"error": "..."}``) in a JSON body."""
    try:
        data = response.json()
    except (ValueError, json.JSONDecodeError):
        return None
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    return error if isinstance(error, str) and error else None


class ErrorReporting:
    """`OpenAIProvider`'s errors and scrubbing: what it writes in a message goes without its
    secrets, and what it passes on from an answer without those that look like credentials."""

    _model: str
    host: str
    _key: Secret
    _extra: dict[str, Secret]
    _query_values: tuple[Secret, ...]

    def _scrub(self, text: str) -> str:
        """``text`` for a message: without our secrets, nor anything that looks like a key."""
        text = self._without_secrets(text, self._query_values)
        return _KEY_LIKE.sub(lambda m: m.group(1) + "***", text)

    def _without_secrets(self, text: str, more: tuple[Secret, ...] = ()) -> str:
        """``text`` with the key, the extra headers' values and ``more`` masked."""
        for secret in (self._key, *self._extra.values(), *more):
            text = secret.masked(text)
        return text

    def _without_credentials(self, text: str) -> str:
        """A text of the model's answer with the key and header values that look like
        credentials masked (a server echoing the key must not get it into a run), and nothing
        else: a placeholder key such as ``ollama`` is a word the answer may hold."""
        for secret in (self._key, *self._extra.values()):
            text = secret.masked_in_answer(text)
        return text

    def _error(self, summary: str, detail: str = "", **kw: Any) -> AttemptError:
        detail = " ".join(self._scrub(detail).split())
        if len(detail) > _DETAIL_CHARS:
            detail = detail[: _DETAIL_CHARS - 1] + "…"
        return AttemptError(
            f"{PREFIX}:{self._model}", self._scrub(summary), self.host, detail, **kw
        )

    def _transport_error(self, exc: Exception) -> AttemptError:
        import httpx

        kind = type(exc).__name__
        text = str(exc) or kind
        if isinstance(exc, httpx.TimeoutException):
            what = {"ConnectTimeout": "connect timeout", "ReadTimeout": "read timeout"}
            summary = what.get(kind, "timeout")
            return self._error(f"{summary} ({kind})", retryable=True)
        if isinstance(exc, (httpx.NetworkError, httpx.RemoteProtocolError)):
            return self._error(f"connection failed ({kind})", text, retryable=True)
        return self._error(f"request failed ({kind})", text)
