"""One model call as the ``llm`` fixture makes it: cache lookup, retries, pricing, cache write.

`ModelCaller` wraps a provider with the session's `ResponseCache`, `RetryPolicy` and
`PriceTable`, and writes what happened into the generation's metadata dict:

- ``cache``: ``"hit"`` (replayed), ``"miss"`` (not recorded; called and, in readwrite, recorded)
  or ``"write"`` (called and recorded, in write mode: a call that failed is a ``"miss"``), with
  ``cache_key``;
- ``attempts``: every attempt of a call that failed or needed more than one.

Providers that retry themselves (``handles_retries``, e.g. OpenAI's, whose attempts arrive in
``ModelResponse.metadata["attempts"]`` or on the `CallError`) adopt the session's policy through
``set_default_retry``; the others are retried here when their errors are ``retryable``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pytest_llmobs.providers import ConfigError
from pytest_llmobs.providers.base import Message, ModelResponse, Provider, ProviderError
from pytest_llmobs.providers.cache import CacheMissError, CacheMode, ResponseCache, model_identity
from pytest_llmobs.providers.pricing import PriceError, PriceTable
from pytest_llmobs.providers.retry import Attempt, RetryPolicy
from pytest_llmobs.serialize import safe_repr

__all__ = ["ModelCaller", "refuse_streaming", "session_calls"]

Lookup = tuple[str | None, ModelResponse | None, Any]


def _note_attempts(
    metadata: dict[str, Any], attempts: list[dict[str, Any]] | None, *, failed: bool = False
) -> None:
    if attempts and (failed or len(attempts) > 1):
        metadata["attempts"] = attempts


def _dicts(attempts: list[Attempt]) -> list[dict[str, Any]]:
    return [a.to_dict() for a in attempts]


class ModelCaller:
    """Calls ``provider`` through the cache, the retry policy and the price table."""

    __slots__ = ("_identity", "_wraps", "cache", "prices", "provider", "retry")

    def __init__(
        self,
        provider: Provider,
        *,
        retry: RetryPolicy | None = None,
        cache: ResponseCache | None = None,
        prices: PriceTable | None = None,
    ) -> None:
        self.provider = provider
        self.retry = retry
        self.cache = cache if cache is not None and cache.mode is not CacheMode.OFF else None
        self.prices = prices
        self._identity = model_identity(provider)
        adopt = getattr(provider, "set_default_retry", None)
        if retry is not None and callable(adopt):
            adopt(retry)
        self._wraps = retry is not None and not getattr(provider, "handles_retries", False)

    def complete(
        self, messages: list[Message], params: dict[str, Any], metadata: dict[str, Any], extra: Any
    ) -> ModelResponse:
        __tracebackhide__ = True  # a failing test shows its `llm.generate` call
        refuse_streaming(params)
        lookup = self._lookup(messages, params, metadata, extra)
        if lookup[1] is not None:
            return self._priced(lookup[1])
        provider, attempts = self.provider, None
        try:
            if self.retry is not None and self._wraps:
                answer, tries = self.retry.call(lambda: provider.complete(messages, **params))
                attempts = _dicts(tries)
            else:
                answer = provider.complete(messages, **params)
        except ProviderError as exc:
            _note_attempts(metadata, getattr(exc, "attempts", None), failed=True)
            raise
        return self._done(answer, attempts, lookup, messages, params, metadata)

    async def acomplete(
        self, messages: list[Message], params: dict[str, Any], metadata: dict[str, Any], extra: Any
    ) -> ModelResponse:
        __tracebackhide__ = True  # a failing test shows its `llm.generate` call
        refuse_streaming(params)
        lookup = self._lookup(messages, params, metadata, extra)
        if lookup[1] is not None:
            return self._priced(lookup[1])
        provider, attempts = self.provider, None
        try:
            if self.retry is not None and self._wraps:
                answer, tries = await self.retry.acall(
                    lambda: provider.acomplete(messages, **params)
                )
                attempts = _dicts(tries)
            else:
                answer = await provider.acomplete(messages, **params)
        except ProviderError as exc:
            _note_attempts(metadata, getattr(exc, "attempts", None), failed=True)
            raise
        return self._done(answer, attempts, lookup, messages, params, metadata)

    def _lookup(
        self,
        messages: list[Message],
        params: dict[str, Any],
        metadata: dict[str, Any],
        extra: Any,
    ) -> Lookup:
        """The cache key, a replayed answer (or None) and the extra part of the key."""
        __tracebackhide__ = True  # a cache miss shows the test's `llm.generate` call
        if self.cache is None:
            return None, None, None
        try:
            key, hit = self.cache.lookup(self._identity, messages, params, extra)
        except CacheMissError:
            metadata["cache"] = "miss"
            raise
        metadata["cache_key"] = key
        metadata["cache"] = "hit" if hit is not None else "miss"  # "write" once it is written
        return key, hit, extra

    def _priced(self, answer: ModelResponse) -> ModelResponse:
        if self.prices is not None and answer.usage.reported:  # unknown usage: unknown cost
            cost = self.prices.price(answer.model, self.provider.model, usage=answer.usage)
            if cost is not None:
                answer.cost = cost
        return answer

    def _done(
        self,
        answer: ModelResponse,
        attempts: list[dict[str, Any]] | None,
        lookup: Lookup,
        messages: list[Message],
        params: dict[str, Any],
        metadata: dict[str, Any],
    ) -> ModelResponse:
        __tracebackhide__ = True  # a cache that cannot be written shows the test's call
        _note_attempts(metadata, attempts or answer.metadata.get("attempts"))
        self._priced(answer)
        key, _, extra = lookup
        if self.cache is not None and key is not None and self.cache.mode.writes:
            self.cache.store(key, self._identity, messages, params, extra, answer)
            if self.cache.mode is CacheMode.WRITE:
                metadata["cache"] = "write"
        return answer

    def __repr__(self) -> str:
        return f"ModelCaller({self.provider!r}, cache={self.cache!r})"


def refuse_streaming(params: dict[str, Any]) -> None:
    """`ValueError` for ``stream=True``: a call reads one whole answer, never a stream of
    events (the server would be paid for an answer that could not be read)."""
    stream = params.get("stream")
    if stream is not None and stream is not False:
        raise ValueError(
            f"model parameter stream={safe_repr(stream):.40} cannot be used: llm.generate reads "
            "each answer whole, with its text, tool calls and usage; leave stream out"
        )


def session_calls(
    *,
    max_retries: int,
    cache_mode: CacheMode,
    cache_dir: Path | None,
    prices_path: Path | None,
) -> dict[str, Any]:
    """The ``retry``, ``cache`` and ``prices`` arguments of the session's `LLM` objects.

    Raises `ConfigError` for an unreadable price file (``--llm-prices`` or ``LLMOBS_PRICES``)
    or a cache directory that is a file.
    """
    try:
        prices = PriceTable.default(path=prices_path)
    except PriceError as exc:
        raise ConfigError(str(exc)) from None
    cache = None
    if cache_mode is not CacheMode.OFF and cache_dir is not None:
        # said now, not by every test: a file where the cache's directory (or one above it) goes
        blocker = next((p for p in (cache_dir, *cache_dir.parents) if p.exists()), None)
        if blocker is not None and not blocker.is_dir():
            raise ConfigError(
                f"--llm-cache-dir: {str(cache_dir)!r}: {str(blocker)!r} is a file; expected "
                "the cache's directory"
            )
        cache = ResponseCache(cache_dir, cache_mode)
    return {"retry": RetryPolicy(max_retries=max_retries), "cache": cache, "prices": prices}


def close_provider(provider: Provider) -> None:
    """Release a provider's pooled connections, if it keeps any (``close()``)."""
    close = getattr(provider, "close", None)
    if callable(close):
        close()
