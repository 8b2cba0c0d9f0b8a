"""Streams of an instrumented client: they hand on every chunk and record the generation once
the stream ends (exhausted, closed, or failed). Other attributes (``response``...) are the
wrapped stream's."""

from __future__ import annotations

from types import TracebackType
from typing import Any, Generic, TypeVar

from openai import AsyncStream, Stream
from openai.types.chat import ChatCompletionChunk

from pytest_llmobs.integrations.openai_record import ChatCall

__all__ = ["RecordedAsyncStream", "RecordedStream"]

S = TypeVar("S", Stream[ChatCompletionChunk], AsyncStream[ChatCompletionChunk])


class _Recorded(Generic[S]):
    def __init__(self, stream: S, call: ChatCall) -> None:
        self._stream: S = stream
        self._call = call
        response = getattr(stream, "response", None)
        if response is not None:
            call.watch_response(response)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class RecordedStream(_Recorded[Stream[ChatCompletionChunk]]):
    """An ``openai.Stream`` of chat completion chunks that records its generation at the end."""

    def __iter__(self) -> RecordedStream:
        return self

    def __next__(self) -> ChatCompletionChunk:
        try:
            chunk = next(self._stream)
        except BaseException as exc:
            self._call.stream_stopped(exc)
            raise
        self._call.add_chunk(chunk)
        return chunk

    def close(self) -> None:
        """Close the response; a stream not read to its end is recorded as far as it got."""
        try:
            self._stream.close()
        finally:
            self._call.finish_stream(closed_early=True)

    def __enter__(self) -> RecordedStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class RecordedAsyncStream(_Recorded[AsyncStream[ChatCompletionChunk]]):
    """An ``openai.AsyncStream`` of chat completion chunks that records its generation at the
    end."""

    def __aiter__(self) -> RecordedAsyncStream:
        return self

    async def __anext__(self) -> ChatCompletionChunk:
        try:
            chunk = await self._stream.__anext__()
        except BaseException as exc:
            self._call.stream_stopped(exc)
            raise
        self._call.add_chunk(chunk)
        return chunk

    async def close(self) -> None:
        """Close the response; a stream not read to its end is recorded as far as it got."""
        try:
            await self._stream.close()
        finally:
            self._call.finish_stream(closed_early=True)

    async def __aenter__(self) -> RecordedAsyncStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()
