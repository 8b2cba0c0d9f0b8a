"""Chat completions made through an ``openai`` SDK client, as generations of the current trace.

``instrument(client)`` wraps ``client.chat.completions.create`` (and ``.parse``) of an
``openai.OpenAI`` or ``openai.AsyncOpenAI`` client in place and returns the client::

    client = instrument(OpenAI())
    client.chat.completions.create(model="gpt-4o-mini", messages=[...])  # one generation

Each call becomes a generation named ``openai.chat.completions.create`` under the current
observation (the test's root span under pytest, or an open ``start_span``), holding the
request's messages as input, the other request arguments as model parameters, and the answer:
model, output text (or the assistant message when it calls tools or refuses), token usage, cost
for models the price table knows, finish reason and response id.

- ``stream=True`` returns a stream that hands on every chunk and records the generation when the
  stream ends, with ``time_to_first_token_ms``; usage comes with
  ``stream_options={"include_usage": True}``. A stream closed before its end is recorded as far
  as it got (``stream_closed_early``); so is one left unclosed, when its trace ends. ``.stream()``
  is recorded the same way.
- A call that raises is recorded as an errored generation (with the HTTP status when there is one)
  and the error propagates.
- Copies (``client.with_options(...)``, ``client.copy()``) are instrumented too; instrumenting a
  client twice changes nothing. Raw responses (``with_raw_response`` / ``with_streaming_response``)
  are recorded without their answer, which the caller reads itself.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from pytest_llmobs.integrations import missing_extra

try:
    from openai import AsyncOpenAI, AsyncStream, OpenAI, Stream
    from openai.types.chat import ChatCompletion
except ImportError:  # pragma: no cover - exercised with openai hidden from imports
    raise missing_extra("the OpenAI integration", "openai", "openai") from None

from pytest_llmobs.integrations.openai_record import ChatCall
from pytest_llmobs.integrations.openai_streams import RecordedAsyncStream, RecordedStream
from pytest_llmobs.providers.pricing import PriceTable

__all__ = ["instrument"]

ClientT = TypeVar("ClientT", bound="OpenAI | AsyncOpenAI")

_MARK = "__llmobs_instrumented__"
_METHODS = ("create", "parse")


def instrument(client: ClientT, *, prices: PriceTable | None = None) -> ClientT:
    """Record every chat completion made through ``client`` as a generation; returns ``client``.

    ``prices`` prices generations (default: the built-in table and ``LLMOBS_PRICES``). Calling
    it again on the same client changes nothing.
    """
    if not isinstance(client, (OpenAI, AsyncOpenAI)):
        raise TypeError(
            "instrument() expects an openai.OpenAI or openai.AsyncOpenAI client; "
            f"got {_short_repr(client)}"
        )
    completions = client.chat.completions
    if vars(completions).get(_MARK):
        return client
    table = PriceTable.default() if prices is None else prices
    is_async = isinstance(client, AsyncOpenAI)
    for method in _METHODS:
        original = getattr(completions, method, None)
        if original is not None:
            name = f"openai.chat.completions.{method}"
            wrap = _wrap_async if is_async else _wrap_sync
            vars(completions)[method] = wrap(original, name, table, _secret_of(client))
    vars(completions)[_MARK] = True
    original_copy = client.copy

    def copy(*args: Any, **kwargs: Any) -> Any:
        return instrument(original_copy(*args, **kwargs), prices=table)

    vars(client)["copy"] = vars(client)["with_options"] = copy
    return client


def _secret_of(client: OpenAI | AsyncOpenAI) -> str | None:
    """The client's API key, hidden wherever a server's error or answer repeats it (whatever
    its shape: the default masking only knows keys shaped like ``sk-...``)."""
    key = getattr(client, "api_key", None)
    return key if isinstance(key, str) and len(key) >= 8 else None


def _short_repr(value: object, limit: int = 80) -> str:
    shown = repr(value)
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


def _request(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The call's arguments, with ``messages`` made a list (it may be a one-shot iterable)."""
    messages = kwargs.get("messages")
    if messages is not None and not isinstance(messages, (list, tuple, Mapping, str)):
        return {**kwargs, "messages": list(messages)}
    return kwargs


def _wrap_sync(
    original: Callable[..., Any], name: str, prices: PriceTable, secret: str | None
) -> Callable[..., Any]:
    @functools.wraps(original)
    def call(*args: Any, **kwargs: Any) -> Any:
        __tracebackhide__ = True  # a failing test shows its own call
        kwargs = _request(kwargs)
        recording = ChatCall(name, kwargs, prices, secret=secret)
        try:
            result = original(*args, **kwargs)
        except BaseException as exc:
            recording.fail(exc)
            raise
        return _recorded(recording, result)

    return call


def _wrap_async(
    original: Callable[..., Any], name: str, prices: PriceTable, secret: str | None
) -> Callable[..., Any]:
    @functools.wraps(original)
    async def call(*args: Any, **kwargs: Any) -> Any:
        __tracebackhide__ = True  # a failing test shows its own call
        kwargs = _request(kwargs)
        recording = ChatCall(name, kwargs, prices, secret=secret)
        try:
            result = await original(*args, **kwargs)
        except BaseException as exc:
            recording.fail(exc)
            raise
        return _recorded(recording, result)

    return call


def _recorded(recording: ChatCall, result: Any) -> Any:
    """What the call returned, recorded: a stream is wrapped to record when it ends."""
    if isinstance(result, Stream):
        return RecordedStream(result, recording)
    if isinstance(result, AsyncStream):
        return RecordedAsyncStream(result, recording)
    if isinstance(result, ChatCompletion):
        recording.finish(result)
    else:
        recording.finish_unread(result)
    return result
