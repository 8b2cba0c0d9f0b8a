"""Reading an OpenAI chat completions answer: the whole body within the attempt's deadline,
then the completion in it (text, tool calls, usage, cost) or the error it holds instead.

`AnswerReading` is mixed into `OpenAIProvider`.
"""

from __future__ import annotations

import http
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from pytest_llmobs.providers.base import ModelResponse, Usage, token_count
from pytest_llmobs.providers.openai_errors import (
    ErrorReporting,
    error_detail,
    error_message,
    failure_reason,
)
from pytest_llmobs.providers.pricing import PriceTable
from pytest_llmobs.providers.retry import is_retryable_status, parse_retry_after

if TYPE_CHECKING:
    import httpx

_PREVIEW_CHARS = 128
"""A malformed answer's reason and the start of its body, together (the detail holds 200)."""


class Overdue(Exception):
    """An attempt's answer was still arriving when its time was up."""


def within_deadline(
    chunks: Iterator[bytes], deadline: float, length: int | None = None
) -> Iterator[bytes]:
    """``chunks`` until ``deadline`` (a `time.perf_counter` value), then `Overdue`; a body
    ``length`` bytes long (its ``Content-Length``) received in full is never overdue."""
    received = 0
    for chunk in chunks:
        yield chunk
        received += len(chunk)
        if time.perf_counter() > deadline and (length is None or received < length):
            raise Overdue


async def awithin_deadline(
    chunks: AsyncIterator[bytes], deadline: float, length: int | None = None
) -> AsyncIterator[bytes]:
    """`within_deadline` for an async stream."""
    received = 0
    async for chunk in chunks:
        yield chunk
        received += len(chunk)
        if time.perf_counter() > deadline and (length is None or received < length):
            raise Overdue


def body_length(streamed: httpx.Response) -> int | None:
    """The body's length as its ``Content-Length`` says (None when absent or unreadable)."""
    value = streamed.headers.get("content-length", "")
    return int(value) if value.isdigit() else None


def whole_response(streamed: httpx.Response, raw: bytes) -> httpx.Response:
    """A response read in full from ``streamed``'s status, headers and (still encoded) body."""
    import httpx

    return httpx.Response(
        streamed.status_code,
        headers=streamed.headers,
        content=raw,
        request=streamed.request,
        extensions=streamed.extensions,
    )


def _content_text(content: Any) -> Any:
    """A message's content as text: some servers answer with a list of content parts
    (``[{"type": "text", "text": ...}]``), whose texts are joined."""
    if isinstance(content, list):
        texts = [part.get("text") if isinstance(part, dict) else None for part in content]
        if not all(isinstance(text, str) for text in texts):
            raise TypeError("content is a list but not of text parts")
        return "".join(str(text) for text in texts)
    if content is not None and not isinstance(content, str):
        raise TypeError(f"content is {type(content).__name__}, not text")
    return content


class AnswerReading(ErrorReporting):
    """`OpenAIProvider`'s reading of an answer into a `ModelResponse` (or an `AttemptError`)."""

    prices: PriceTable

    def _parse(self, response: httpx.Response, started: float) -> ModelResponse:
        status = response.status_code
        if not 200 <= status < 300:
            try:
                phrase = http.HTTPStatus(status).phrase
            except ValueError:
                phrase = response.reason_phrase or "error"
            raise self._error(
                f"{status} {phrase}",
                error_detail(response),
                status=status,
                retryable=is_retryable_status(status),
                retry_after=parse_retry_after(response.headers),
            )
        try:
            data = response.json()
            choice = data["choices"][0]
            message = choice["message"]
            text = _content_text(message.get("content"))
            if text is None:
                text = message.get("refusal") or ""
            tool_calls = message.get("tool_calls") or None
            if tool_calls is not None and not isinstance(tool_calls, list):
                raise TypeError("tool_calls is not a list")
            function_call = message.get("function_call")
            if tool_calls is None and isinstance(function_call, dict):
                # the legacy `functions` answer: one call, as a tool call (without an id)
                tool_calls = [{"type": "function", "function": function_call}]
            counts = _usage_counts(data.get("usage") or {})
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            message = error_message(response)
            if message is not None:  # some gateways send their errors with a success status
                raise self._error(
                    f"{status} with an error instead of a completion", message, status=status
                ) from None
            reason = failure_reason(exc)
            # scrubbed before it is cut (a cut key is no longer found) and quoted (repr would
            # escape an echo's backslashes once more: ``\\/``); only as much as the detail has
            # room for, so that the reason is never what gets cut
            room = max(_PREVIEW_CHARS - len(reason), 20)
            preview = " ".join(self._scrub(response.text)[:room].split())
            raise self._error(
                "malformed response",
                f"expected chat completion JSON with choices[0].message ({reason}); "
                f"body starts {preview!r}",
                status=status,
            ) from None
        latency = (time.perf_counter() - started) * 1000.0
        # the answer as the server sent it, but for a credential of ours it echoed (the README
        # promises the key is never in a run)
        model = self._without_credentials(str(data.get("model") or self._model))
        reported = counts is not None
        input_tokens, output_tokens = counts or (0, 0)
        usage_ = Usage(input=input_tokens, output=output_tokens, reported=reported)
        return ModelResponse(
            text=self._without_credentials(str(text)),
            model=model,
            usage=usage_,
            latency_ms=latency,
            # no usage in the answer: the counts are unknown, and so is the cost (not $0)
            cost=self.prices.price(model, self._model, usage=usage_) if reported else None,
            metadata={
                "finish_reason": self._echoed(choice.get("finish_reason")),
                "response_id": self._echoed(data.get("id")),
                **({} if reported else {"usage_reported": False}),
            },
            tool_calls=None if tool_calls is None else self._calls_without_credentials(tool_calls),
        )

    def _echoed(self, value: object) -> str | None:
        """A name or id from the answer, as text without our credentials (``None`` stays)."""
        return None if value is None else self._without_credentials(str(value))

    def _calls_without_credentials(self, calls: list[Any]) -> list[dict[str, Any]]:
        """The tool calls as sent, with our credentials masked wherever the server echoed them
        (each string on its own: in a JSON text of the calls, an echo JSON-escaped in the
        arguments would be escaped twice, and a mask could cut an escape sequence in two)."""
        masked: list[dict[str, Any]] = self._data_without_credentials(calls)
        return masked

    def _data_without_credentials(self, value: Any) -> Any:
        if isinstance(value, str):
            return self._without_credentials(value)
        if isinstance(value, dict):
            return {
                self._without_credentials(str(k)): self._data_without_credentials(v)
                for k, v in value.items()
            }
        if isinstance(value, list):
            return [self._data_without_credentials(item) for item in value]
        return value


_COUNT_NAMES = (
    ("prompt_tokens", "input_tokens"),
    ("completion_tokens", "output_tokens"),
)
"""Chat Completions' names of the counts, then the Responses API's (some servers use those)."""


def _usage_counts(usage: Mapping[str, Any]) -> tuple[int, int] | None:
    """(input, output) tokens of an answer's ``usage``; None when it holds neither count (absent,
    null or named otherwise: ``{"total_tokens": 10}``), which leaves the usage unknown, not 0.
    A count that is there but not a whole number from 0 to 2**53 raises `ValueError`."""
    found: list[int | None] = []
    for names in _COUNT_NAMES:
        name = next((n for n in names if usage.get(n) is not None), None)
        found.append(None if name is None else token_count(usage[name], f"usage.{name}"))
    if found == [None, None]:
        return None
    return found[0] or 0, found[1] or 0
