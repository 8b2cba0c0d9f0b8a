"""Retrying model calls: exponential backoff with full jitter, ``Retry-After``, bounded attempts.

One `RetryPolicy` serves every provider. The OpenAI provider runs each HTTP attempt through it;
`pytest_llmobs.llm.LLM` runs it around providers that do not retry themselves (``mock-llm-v1``
with ``error_rate``). Each attempt becomes an `Attempt`, recorded on the generation's metadata
as ``attempts: [{"attempt": 1, "status": 429, "error": "...", "wait_s": 1.0}, ...]``.

Exception hierarchy (see `pytest_llmobs.providers.base`)::

    ProviderError                a model call failed (status, retryable, retry_after)
     └─ CallError                it failed for good; ``attempts`` holds every try

The waits go through ``sleep``/``asleep`` and the jitter through ``rng``, all injectable, so tests
observe the *requested* waits without waiting. This module does not import httpx.
"""

from __future__ import annotations

import email.utils
import itertools
import math
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pytest_llmobs.providers.base import ProviderError

__all__ = [
    "DEFAULT_MAX_RETRIES",
    "RETRYABLE_STATUSES",
    "Attempt",
    "CallError",
    "RetryPolicy",
    "async_sleep",
    "parse_retry_after",
]

T = TypeVar("T")

DEFAULT_MAX_RETRIES = 3
"""Retries after the first attempt (so at most four attempts)."""

RETRYABLE_STATUSES = frozenset({408, 409, 429})
"""Statuses below 500 worth retrying; every 5xx is retried too."""


ATTEMPT: ContextVar[int] = ContextVar("llmobs_attempt", default=1)
"""The number of the attempt of a call running now (1 for its first try): the mock model draws
its simulated errors by it, so a call fails the same way whatever other calls ran before it."""


def is_retryable_status(status: int) -> bool:
    return status in RETRYABLE_STATUSES or 500 <= status <= 599


def parse_retry_after(
    headers: Mapping[str, str], *, now: Callable[[], float] = time.time
) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date).

    ``headers`` must look names up case-insensitively (``httpx.Headers`` does). A date in the
    past gives 0; a missing or unreadable value gives None.
    """
    raw_ms = headers.get("retry-after-ms")
    if raw_ms is not None:
        try:
            millis = float(raw_ms)
        except ValueError:
            millis = math.nan
        if math.isfinite(millis) and millis >= 0:
            return millis / 1000.0
    raw = headers.get("retry-after")
    if raw is None or not raw.strip():
        return None
    try:
        seconds = float(raw)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        return max(0.0, when.timestamp() - now())
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


@dataclass(slots=True, frozen=True)
class Attempt:
    """One try of a call: its status (if a response came), its error and the wait that followed."""

    attempt: int
    status: int | None = None
    error: str | None = None
    wait_s: float | None = None
    """The wait requested before the next attempt; None when no attempt followed."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "attempt": self.attempt,
            "status": self.status,
            "error": self.error,
            "wait_s": self.wait_s,
        }


class CallError(ProviderError):
    """A call that failed for good, with every attempt it made (``attempts``, plain dicts)."""

    def __init__(
        self,
        message: str,
        *,
        attempts: Sequence[Attempt],
        status: int | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, status=status, retryable=retryable, retry_after=retry_after)
        self.attempts: list[dict[str, Any]] = [a.to_dict() for a in attempts]
        self.latency_ms: float | None = None
        """How long the last attempt took (the waits before it left out): the call's latency,
        as a call that succeeds after retries reports its answering attempt's."""


def _default_message(error: ProviderError, attempts: int) -> str:
    return f"{error} after {attempts} attempts" if attempts > 1 else str(error)


def backoff_delay(
    retry: int,
    *,
    base: float,
    ceiling: float,
    rng: random.Random,
    retry_after: float | None = None,
    retry_after_max: float,
    equal_jitter: bool = False,
) -> float:
    """Seconds before retry number ``retry`` (1-based): the server's ``Retry-After`` when it gave
    one (capped at ``retry_after_max``), else exponential backoff ``base * 2 ** (retry - 1)``
    capped at ``ceiling``, with full jitter (uniform up to the cap) or, with ``equal_jitter``,
    half the cap plus up to half again (never retries at once)."""
    if retry_after is not None:
        return min(max(retry_after, 0.0), retry_after_max)
    cap = min(ceiling, base * 2.0 ** (retry - 1))
    if equal_jitter:
        return cap / 2 + rng.uniform(0.0, cap / 2)
    return rng.uniform(0.0, cap)


async def async_sleep(seconds: float) -> None:
    """Wait ``seconds`` in the async library running the caller: asyncio, or trio (via anyio)."""
    import asyncio  # only async callers get here, and they have imported it already

    try:
        in_asyncio = asyncio.current_task() is not None
    except RuntimeError:  # no asyncio loop in this thread: trio, say
        in_asyncio = False
    if in_asyncio:  # directly: anyio.sleep's dispatch adds ~1.3 µs a call (+45 % for sleep(0))
        await asyncio.sleep(seconds)
        return
    import anyio  # httpx's dependency, imported only when another async library runs

    await anyio.sleep(seconds)


@dataclass(slots=True, kw_only=True)
class RetryPolicy:
    """How often and how long to retry a call whose error is ``retryable``.

    The wait before retry ``n`` (1-based) is the error's ``retry_after`` (from ``Retry-After``)
    when it has one, capped at ``max_retry_after``; otherwise a full-jitter exponential backoff,
    ``uniform(0, min(max_backoff, backoff * 2 ** (n - 1)))``.
    """

    max_retries: int = DEFAULT_MAX_RETRIES
    backoff: float = 0.5
    """Seconds: the cap of the first jittered wait; it doubles per retry."""
    max_backoff: float = 8.0
    max_retry_after: float = 60.0
    rng: random.Random = field(default_factory=random.Random)
    sleep: Callable[[float], None] = time.sleep
    asleep: Callable[[float], Awaitable[None]] = field(default=async_sleep)

    def __post_init__(self) -> None:
        if isinstance(self.max_retries, bool) or self.max_retries < 0:
            raise ValueError(f"max_retries must be an integer >= 0; got {self.max_retries!r}")
        for name in ("backoff", "max_backoff", "max_retry_after"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a number >= 0; got {value!r}")

    def wait(self, retry: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (1-based)."""
        return backoff_delay(
            retry,
            base=self.backoff,
            ceiling=self.max_backoff,
            rng=self.rng,
            retry_after=retry_after,
            retry_after_max=self.max_retry_after,
        )

    def _after_failure(
        self, number: int, error: ProviderError, attempts: list[Attempt]
    ) -> float | None:
        """Record the failed attempt; the wait before the next one, or None to give up."""
        if not error.retryable or number > self.max_retries:
            attempts.append(Attempt(number, error.status, str(error)))
            return None
        wait = self.wait(number, error.retry_after)
        attempts.append(Attempt(number, error.status, str(error), wait))
        return wait

    @staticmethod
    def _give_up(
        error: ProviderError,
        attempts: list[Attempt],
        message: Callable[[ProviderError, int], str] | None,
        began: float,
    ) -> CallError:
        text = (message or _default_message)(error, len(attempts))
        failed = CallError(
            text,
            attempts=attempts,
            status=error.status,
            retryable=error.retryable,
            retry_after=error.retry_after,
        )
        failed.latency_ms = (time.perf_counter() - began) * 1000.0
        return failed

    def call(
        self,
        fn: Callable[[], T],
        *,
        ok_status: int | None = None,
        message: Callable[[ProviderError, int], str] | None = None,
    ) -> tuple[T, list[Attempt]]:
        """Run ``fn`` until it returns or raises a final `ProviderError` (then a `CallError`).

        ``message(last_error, attempts)`` words the final error (default: the last error's
        message plus ``after N attempts``). Returns the result and the attempts made.
        """
        __tracebackhide__ = True  # a failing test shows its own call, not this loop
        attempts: list[Attempt] = []
        for number in itertools.count(1):
            began = time.perf_counter()
            token = ATTEMPT.set(number)
            try:
                try:
                    result = fn()
                finally:
                    ATTEMPT.reset(token)
            except ProviderError as exc:
                wait = self._after_failure(number, exc, attempts)
                if wait is None:
                    raise self._give_up(exc, attempts, message, began) from None
                self.sleep(wait)
            else:
                attempts.append(Attempt(number, ok_status))
                return result, attempts
        raise AssertionError("unreachable")  # pragma: no cover

    async def acall(
        self,
        fn: Callable[[], Awaitable[T]],
        *,
        ok_status: int | None = None,
        message: Callable[[ProviderError, int], str] | None = None,
    ) -> tuple[T, list[Attempt]]:
        """`call` for coroutines: waits with ``asleep``."""
        __tracebackhide__ = True
        attempts: list[Attempt] = []
        for number in itertools.count(1):
            began = time.perf_counter()
            token = ATTEMPT.set(number)
            try:
                try:
                    result = await fn()
                finally:
                    ATTEMPT.reset(token)
            except ProviderError as exc:
                wait = self._after_failure(number, exc, attempts)
                if wait is None:
                    raise self._give_up(exc, attempts, message, began) from None
                await self.asleep(wait)
            else:
                attempts.append(Attempt(number, ok_status))
                return result, attempts
        raise AssertionError("unreachable")  # pragma: no cover
