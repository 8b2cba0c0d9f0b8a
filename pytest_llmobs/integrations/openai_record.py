"""One ``chat.completions`` call of the ``openai`` SDK recorded as a generation.

`ChatCall` opens the generation when the call is made and closes it once: with the completion,
with the chunks a stream delivered when the stream ends, or with the error the call raised.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import openai
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from pytest_llmobs.providers.base import Usage
from pytest_llmobs.providers.pricing import PriceTable
from pytest_llmobs.serialize import snapshot
from pytest_llmobs.tracing import close_observation, open_observation

__all__ = ["ChatCall"]

_NOT_PARAMETERS = frozenset(
    {"messages", "model", "extra_headers", "extra_query", "extra_body", "timeout"}
)
"""Request arguments that are not model parameters (the input, the model, the transport)."""

_SENTINELS: tuple[type, ...] = tuple({openai.NotGiven, getattr(openai, "Omit", openai.NotGiven)})


def _output(
    content: str | None,
    tool_calls: list[dict[str, Any]],
    refusal: str | None,
    function_call: dict[str, Any] | None = None,
) -> Any:
    """The answer's text, or the assistant message when it calls tools (or, with the legacy
    ``functions``, a function) or refuses."""
    if not tool_calls and refusal is None and function_call is None:
        return content or ""
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    if function_call is not None:
        message["function_call"] = function_call
    if refusal is not None:
        message["refusal"] = refusal
    return message


def _answer(
    completion: ChatCompletion,
) -> tuple[str, str, list[Any], list[str | None], Any]:
    """A completion's model, id, answer(s), finish reason(s) and usage."""
    outputs: list[Any] = []
    reasons: list[str | None] = []
    for choice in completion.choices:
        message = choice.message
        calls = [call.model_dump(exclude_none=True) for call in message.tool_calls or ()]
        function = getattr(message, "function_call", None)
        called = None if function is None else function.model_dump(exclude_none=True)
        outputs.append(_output(message.content, calls, message.refusal, called))
        reasons.append(choice.finish_reason)
    return completion.model, completion.id, outputs, reasons, completion.usage


def _answered(error: BaseException) -> ChatCompletion | None:
    """The completion a call got before it raised ``error``: the SDK's finish-reason errors
    (``LengthFinishReasonError``...) carry it. (A ``.parse()`` whose answer fails validation
    raises pydantic's error, which does not: that call is recorded without the answer.)"""
    completion = getattr(error, "completion", None)
    return completion if isinstance(completion, ChatCompletion) else None


def _one_or_all(values: list[Any]) -> Any:
    return values[0] if len(values) == 1 else values


@dataclass
class _StreamedChoice:
    """What the chunks of one choice (``index``) of a stream have said so far."""

    text: list[str] = field(default_factory=list)
    refusal: list[str] = field(default_factory=list)
    tool_calls: dict[int, dict[str, Any]] = field(default_factory=dict)
    function_call: dict[str, Any] | None = None
    """The legacy ``functions`` call, as its name and arguments arrive."""
    finish_reason: str | None = None

    def add(self, choice: Any) -> None:
        delta = choice.delta
        if delta.content:
            self.text.append(delta.content)
        if getattr(delta, "refusal", None):
            self.refusal.append(delta.refusal)
        for call in delta.tool_calls or ():
            entry = self.tool_calls.setdefault(
                call.index,
                {"id": None, "type": "function", "function": {"name": "", "arguments": ""}},
            )
            entry["id"] = call.id or entry["id"]
            if call.function is not None:
                entry["function"]["name"] += call.function.name or ""
                entry["function"]["arguments"] += call.function.arguments or ""
        function = getattr(delta, "function_call", None)
        if function is not None:
            if self.function_call is None:
                self.function_call = {"name": "", "arguments": ""}
            self.function_call["name"] += function.name or ""
            self.function_call["arguments"] += function.arguments or ""
        if choice.finish_reason:
            self.finish_reason = choice.finish_reason

    def output(self) -> Any:
        refusal = "".join(self.refusal) if self.refusal else None
        calls = [self.tool_calls[i] for i in sorted(self.tool_calls)]
        return _output("".join(self.text) or None, calls, refusal, self.function_call)


class ChatCall:
    """The generation of one call: opened at the call, closed once by `finish`,
    `finish_stream` (after `add_chunk` for each chunk), `finish_unread` or `fail`."""

    __slots__ = (
        "_choices",
        "_done",
        "_model",
        "_requested",
        "_response_closed_at",
        "_response_id",
        "_secret",
        "_usage",
        "observation",
        "prices",
    )

    def __init__(
        self,
        name: str,
        request: Mapping[str, Any],
        prices: PriceTable,
        *,
        secret: str | None = None,
    ) -> None:
        params = {  # copies, as with messages: a tools list appended to later was not sent
            key: snapshot(value)
            for key, value in request.items()
            if key not in _NOT_PARAMETERS and not isinstance(value, _SENTINELS)
        }
        # a copy: callers append the answer to the same messages list for the next turn
        messages = snapshot(request.get("messages"))
        self.observation = open_observation(name, type="generation", input=messages)
        model = request.get("model")
        self._requested = str(model) if model else None
        self.observation.model = self._requested
        self.observation.model_parameters = params
        self.prices = prices
        self._secret = secret
        self._done = False
        self._choices: dict[int, _StreamedChoice] = {}
        self._model: str | None = None
        self._response_id: str | None = None
        self._usage: Any = None
        self._response_closed_at: float | None = None
        # a stream nobody closes through us (the SDK's `.stream()` helper closes the HTTP
        # response itself; a `for` loop left with `break`) is recorded when the test ends
        self.observation.on_trace_end = self._left_open

    # --- a whole completion -------------------------------------------------------------------

    def finish(self, completion: ChatCompletion) -> None:
        """Record the completion's model, answer(s), usage and finish reason(s)."""
        self._close(*_answer(completion))

    def finish_unread(self, response: object) -> None:
        """Close the generation of a call whose raw response the caller reads itself."""
        self.observation.metadata["response"] = f"{type(response).__name__} (not read)"
        self._close(None, None, [], [], None)

    # --- a stream -----------------------------------------------------------------------------

    def add_chunk(self, chunk: ChatCompletionChunk) -> None:
        """Take in one chunk of a stream."""
        metadata = self.observation.metadata
        if "time_to_first_token_ms" not in metadata:
            elapsed = (time.time() - self.observation.start_time) * 1000.0
            metadata["time_to_first_token_ms"] = elapsed
        self._model = chunk.model or self._model
        self._response_id = chunk.id or self._response_id
        if chunk.usage is not None:
            self._usage = chunk.usage
        for choice in chunk.choices:
            self._choices.setdefault(choice.index, _StreamedChoice()).add(choice)

    def finish_stream(self, *, closed_early: bool = False) -> None:
        """Record what the stream delivered (``closed_early``: the caller stopped reading)."""
        if self._done:
            return
        if closed_early:
            self.observation.metadata["stream_closed_early"] = True
        reasons = [self._choices[i].finish_reason for i in sorted(self._choices)]
        outputs = self._streamed_outputs()
        self._close(self._model, self._response_id, outputs, reasons, self._usage)

    def watch_response(self, response: Any) -> None:
        """Note when the stream's HTTP response is closed, by whoever closes it: the SDK's
        `.stream()` helper closes the response, not the stream it was handed."""
        close, aclose = response.close, response.aclose

        def closed() -> None:
            self._note_closed()
            close()

        async def aclosed() -> None:
            self._note_closed()
            await aclose()

        response.close, response.aclose = closed, aclosed

    def _note_closed(self) -> None:
        if self._response_closed_at is None:
            self._response_closed_at = time.time()

    def _left_open(self) -> None:
        """The trace ends with the stream still open: recorded as far as it got, ending when
        its response was closed if it was."""
        self.finish_stream(closed_early=True)
        if self._response_closed_at is not None:
            self.observation.end_time = self._response_closed_at

    def stream_stopped(self, reason: BaseException) -> None:
        """The stream raised ``reason`` reading its next chunk: its end, or an error."""
        if isinstance(reason, (StopIteration, StopAsyncIteration)):
            self.finish_stream()
        else:
            self.fail(reason)

    def _streamed_outputs(self) -> list[Any]:
        return [self._choices[i].output() for i in sorted(self._choices)]

    # --- errors -------------------------------------------------------------------------------

    def fail(self, error: BaseException) -> None:
        """Mark the generation errored with ``error`` (an HTTP status lands in metadata)."""
        if self._done:
            return
        status = getattr(error, "status_code", None)
        if isinstance(status, int):
            self.observation.metadata["status_code"] = status
        answered = _answered(error)
        if answered is not None:  # `.parse()` refused the answer: what the server answered
            self._record(*_answer(answered))
        else:  # a stream that broke: what it delivered before (nothing, for other errors)
            reasons = [self._choices[i].finish_reason for i in sorted(self._choices)]
            outputs = self._streamed_outputs()
            self._record(self._model, self._response_id, outputs, reasons, self._usage)
        self.observation.fail(error)
        self.observation.status_message = self._hidden(self.observation.status_message)
        self._done = True
        close_observation(self.observation)

    def _close(
        self,
        model: str | None,
        response_id: str | None,
        outputs: list[Any],
        reasons: Iterable[str | None],
        usage: Any,
    ) -> None:
        if self._done:
            return
        self._done = True
        self._record(model, response_id, outputs, reasons, usage)
        close_observation(self.observation)

    def _record(
        self,
        model: str | None,
        response_id: str | None,
        outputs: list[Any],
        reasons: Iterable[str | None],
        usage: Any,
    ) -> None:
        observation = self.observation
        if model:
            observation.model = model
        if outputs:
            observation.output = self._hidden(_one_or_all(outputs))
        finish_reasons = [reason for reason in reasons if reason]
        if finish_reasons:
            observation.metadata["finish_reason"] = _one_or_all(finish_reasons)
        if response_id:
            observation.metadata["response_id"] = response_id
        if usage is not None:
            self._record_usage(usage)

    def _hidden(self, value: Any) -> Any:
        """``value`` with the client's API key replaced by ``***`` wherever it appears."""
        secret = self._secret
        if secret is None or value is None:
            return value
        text = json.dumps(value, ensure_ascii=False, default=str)
        if secret not in text:
            return value
        return json.loads(text.replace(json.dumps(secret)[1:-1], "***"))

    def _record_usage(self, usage: Any) -> None:
        counted = Usage(input=usage.prompt_tokens or 0, output=usage.completion_tokens or 0)
        total = usage.total_tokens if isinstance(usage.total_tokens, int) else counted.total
        self.observation.usage = {**counted.to_dict(), "total": total}
        models = [m for m in (self.observation.model, self._requested) if m]
        self.observation.cost = self.prices.price(*models, usage=counted)
