"""The small protocol every model provider implements, and the values it returns.

Exception hierarchy::

    ProviderError            a model call failed (status, retryable, retry_after)
    UnknownModelError        a model string names no known model or option (ValueError)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

CHAT_ROLES = ("system", "developer", "user", "assistant", "tool", "function")
"""The roles of the Chat Completions API: what a chat message (a prompt file's too) may have."""

Message = dict[str, Any]
"""A chat message: ``{"role": "system"|"user"|"assistant"|"tool", "content": "..."}``; content
may also be a list of content parts or, on an assistant message with ``tool_calls``, ``None``,
and a message may hold other fields of the Chat Completions API (``name``, ``tool_call_id``)."""


def is_chat_message(value: object) -> bool:
    """A chat message as recorded: a role and content, or a tool-calling turn without content
    (the OpenAI SDK leaves ``content`` out of an assistant message that only calls tools)."""
    return (
        isinstance(value, Mapping)
        and "role" in value
        and ("content" in value or "tool_calls" in value or "function_call" in value)
    )


def tool_call_fields(call: object) -> tuple[str, str, Any] | None:
    """``(id, name, arguments)`` of a recorded tool call: OpenAI's shape (``function.name``,
    ``function.arguments`` as JSON text) or LangChain's (``name``, ``args`` as a mapping)."""
    if not isinstance(call, Mapping):
        return None
    function = call.get("function")
    if isinstance(function, Mapping):
        return str(call.get("id", "")), str(function.get("name", "")), function.get("arguments")
    if "name" in call:
        return str(call.get("id", "")), str(call["name"]), call.get("args")
    return None


def part_text(part: object) -> str | None:
    """The text of one content part (a bare string or a ``{"type": "text"}`` mapping), else None."""
    if isinstance(part, str):
        return part
    if isinstance(part, Mapping) and part.get("type") == "text":
        return str(part.get("text", ""))
    return None


def message_text(message: Mapping[str, Any]) -> str:
    """The text of a message: its content, or the texts of its content parts joined."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = (part.get("text") if isinstance(part, Mapping) else part for part in content)
        return " ".join(text for text in texts if isinstance(text, str))
    return ""


@dataclass(slots=True, frozen=True)
class Usage:
    """Token usage of one model call, named as Langfuse names usage details."""

    input: int = 0
    output: int = 0
    reported: bool = True
    """False when the server's answer held no usage: the counts are then unknown, not 0."""

    @property
    def total(self) -> int:
        return self.input + self.output

    def to_dict(self) -> dict[str, int]:
        return {"input": self.input, "output": self.output, "total": self.total}


def _number(value: object, name: str) -> int | float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} is {type(value).__name__} {value!r:.40}, not a number")
    return value


def _shown(value: int | float) -> str:
    """A number for an error message; an integer of hundreds of digits by its size."""
    if isinstance(value, int) and abs(value) > 10**20:
        return f"an integer of {abs(value).bit_length()} bits"
    return repr(value)


MAX_TOKEN_COUNT = 2**53
"""Counts beyond this cannot be told apart as JSON numbers (doubles): not a real count."""

MAX_COST = 2**1023
"""An integer cost beyond this has no float (``float(10**400)`` raises `OverflowError`)."""


def token_count(value: object, name: str) -> int:
    """A token count read from a server's answer or a cache file: a whole number from 0 to
    `MAX_TOKEN_COUNT` (``None`` is 0); anything else raises `ValueError` naming ``name``."""
    if value is None:
        return 0
    value = _number(value, name)
    # the range first: math.isfinite(2**2000) raises OverflowError
    if not 0 <= value <= MAX_TOKEN_COUNT or not math.isfinite(value) or value != int(value):
        raise ValueError(f"{name} is {_shown(value)}; expected a whole number from 0 to 2**53")
    return int(value)


def cost_value(value: object, name: str) -> float | None:
    """A cost in USD read from a cache file: ``None`` or a finite number >= 0; anything else
    raises `ValueError` naming ``name``."""
    if value is None:
        return None
    value = _number(value, name)
    if value < 0 or (isinstance(value, int) and value > MAX_COST) or not math.isfinite(value):
        raise ValueError(f"{name} is {_shown(value)}; expected a finite number >= 0")
    return float(value)


@dataclass(slots=True)
class ModelResponse:
    """What a provider returns for one call."""

    text: str
    model: str
    usage: Usage = field(default_factory=Usage)
    latency_ms: float = 0.0
    cost: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    tool_calls: list[dict[str, Any]] | None = None
    """The tools the model asked to call (OpenAI's ``message.tool_calls``), when it did."""


class ProviderError(Exception):
    """A model call failed; ``retryable`` says whether trying again may succeed."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after


class UnknownModelError(ValueError):
    """A model string names a model or an option this installation does not know."""


@runtime_checkable
class Provider(Protocol):
    """A model behind one model string, e.g. ``mock-llm-v1?accuracy=0.8``."""

    @property
    def model(self) -> str:
        """The model name reported on generations (without options)."""

    @property
    def options(self) -> Mapping[str, Any]:
        """The options parsed from the model string."""

    def complete(self, messages: list[Message], **params: Any) -> ModelResponse:
        """Answer ``messages`` synchronously."""

    async def acomplete(self, messages: list[Message], **params: Any) -> ModelResponse:
        """Answer ``messages`` without blocking the event loop."""
