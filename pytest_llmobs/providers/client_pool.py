"""Async HTTP clients shared by the calls of one experiment run.

An ``httpx.AsyncClient`` belongs to the event loop that opened its connections, so a provider
cannot keep one for good: pytest-asyncio gives each test its own loop. Outside a pool a provider
opens a client per call (a new connection each time). `shared_async_clients` opens a pool for a
block that runs on one loop, `run_experiment` for instance, so its concurrent calls reuse kept-
alive connections; the block closes the clients when it ends.

The calls of one provider share one client (and its connection pool). A client per concurrent
call costs less CPU (httpcore re-checks every connection of a client whenever a request starts
or ends) but more wall time: 200 calls of 50 ms, 20 at a time, through ``run_experiment`` took
0.75 s that way against 0.69 s with one client (``benchmarks/http_floor.py`` shows the same).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Hashable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any


class AsyncClientPool:
    """One client per key (a provider), made on first use, closed with the pool."""

    def __init__(self) -> None:
        self._clients: dict[Hashable, Any] = {}

    @asynccontextmanager
    async def lease(self, key: Hashable, make: Callable[[], Any]) -> AsyncIterator[Any]:
        """The pool's client for ``key`` (made now if it has none) for the block; it stays
        open for the next call."""
        client = self._clients.get(key)
        if client is None:
            client = self._clients[key] = make()
        yield client

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()


_current_pool: ContextVar[AsyncClientPool | None] = ContextVar("llmobs_client_pool", default=None)


def current_pool() -> AsyncClientPool | None:
    """The pool of the enclosing `shared_async_clients` block, if any."""
    return _current_pool.get()


@asynccontextmanager
async def shared_async_clients() -> AsyncIterator[AsyncClientPool]:
    """Share async clients between the calls made in the block (tasks it starts included)."""
    pool = AsyncClientPool()
    token = _current_pool.set(pool)
    try:
        yield pool
    finally:
        _current_pool.reset(token)
        await pool.aclose()
