"""An OpenAI chat completions request: its body as the bytes sent, and httpx's log of it kept
free of the base URL's secrets.

The body is encoded here, before httpx sees it: a value JSON cannot carry (NaN, a set, a list
that holds itself, an integer of more than 4,300 digits) is a one-line `ValueError` naming the
parameter or message, raised where no request headers (the key) are in reach; httpx's own error
came from a frame holding them, which ``pytest -l`` prints. Half of a surrogate pair (an emoji
cut in two), which UTF-8 cannot carry, is sent as U+FFFD, as the store records it.
"""

from __future__ import annotations

import json
import logging
import threading
import weakref
from collections.abc import Mapping
from typing import Any

from pytest_llmobs.providers.openai_errors import Secret
from pytest_llmobs.serialize import has_lone_surrogate, safe_repr, without_lone_surrogates

__all__ = ["encoded_body", "scrub_httpx_log", "unsendable"]

_SHOWN_CHARS = 80


def encoded_body(body: Mapping[str, Any]) -> bytes:
    """``body`` as the JSON bytes sent (``Content-Type: application/json``, written as httpx
    writes them: compact, UTF-8); `ValueError` with `unsendable`'s message when JSON cannot
    carry a value of it."""
    __tracebackhide__ = True  # a failed call shows the test's `llm.generate` line
    try:
        text = json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        raise ValueError(unsendable(body)) from None
    if has_lone_surrogate(text):
        text = without_lone_surrogates(text)
    return text.encode("utf-8")


def unsendable(body: Mapping[str, Any]) -> str:
    """Which parameter or message of a request body JSON cannot hold, and what to pass."""
    for name, value in body.items():
        if name == "messages" and isinstance(value, list):
            for index, message in enumerate(value):
                problem = _json_problem(message)
                if problem is not None:
                    role = message.get("role") if isinstance(message, Mapping) else None
                    return (
                        f"message {index} ({safe_repr(role):.20}) cannot be sent as JSON "
                        f"({problem[0]}); {problem[1]}"
                    )
            continue
        problem = _json_problem(value)
        if problem is not None:
            return (
                f"model parameter {name}={_shown(value)} cannot be sent as JSON ({problem[0]}); "
                f"{problem[1]}"
            )
    return "the request body cannot be sent as JSON"


def _json_problem(value: object) -> tuple[str, str] | None:
    """(why JSON cannot hold ``value``, what to pass instead), or None when it can."""
    try:
        json.dumps(value, allow_nan=False)
    except RecursionError:
        return "nested too deeply", "pass data nested less deeply"
    except (TypeError, ValueError) as exc:
        text = str(exc)
        if isinstance(value, type) and hasattr(value, "model_json_schema"):
            return text, (
                "pass a dict: {'type': 'json_schema', 'json_schema': {'name': "
                f"'{value.__name__}', 'schema': {value.__name__}.model_json_schema()}}}}"
            )
        if isinstance(value, (set, frozenset)):
            return text, "pass a list"
        if text.startswith("Out of range float"):
            return "JSON has no NaN or infinity", "pass a finite number"
        if text.startswith("Circular reference"):
            return "it holds itself", "pass data without a cycle"
        if text.startswith("Exceeds the limit"):
            return "an integer of more than 4,300 digits", "pass a smaller number"
        return text, "pass JSON values (str, number, bool, None, list, dict)"
    return None


def _shown(value: object) -> str:
    """A parameter's value for a message, shortened (an integer too long to print by size)."""
    if isinstance(value, int) and value.bit_length() > 1000:
        return f"<an integer of {value.bit_length()} bits>"
    text = safe_repr(value)
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 1] + "…"


class _HttpxLogScrubber(logging.Filter):
    """Masks the providers' base URL query values (a gateway's ``subscription-key``) in what the
    ``httpx`` logger writes: its INFO line names each request's URL. A logger's filters run only
    for a record some handler is to get, so a quiet log costs nothing."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._secrets: weakref.WeakKeyDictionary[object, tuple[Secret, ...]] = (
            weakref.WeakKeyDictionary()
        )

    def add(self, owner: object, secrets: tuple[Secret, ...]) -> None:
        with self._lock:
            self._secrets[owner] = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        with self._lock:
            groups = list(self._secrets.values())
        if not groups:
            return True
        try:
            message = record.getMessage()
        except Exception:  # the record is malformed: logging reports that, not the request
            return True
        shown = message
        for secrets in groups:
            for secret in secrets:
                shown = secret.masked(shown)
        if shown != message:
            record.msg, record.args = shown, ()
        return True


_SCRUBBER = _HttpxLogScrubber()


def scrub_httpx_log(owner: object, secrets: tuple[Secret, ...]) -> None:
    """Keep ``secrets`` out of httpx's log for as long as ``owner`` (a provider) lives."""
    logging.getLogger("httpx").addFilter(_SCRUBBER)  # (once: a filter is added once only)
    _SCRUBBER.add(owner, secrets)
