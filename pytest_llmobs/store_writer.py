"""The thread that writes one `run_experiment` run to the store while its items run.

Governing, serialising and inserting an item cost more than recording it; done on the event
loop they would delay the next items. A `StoreWriter` does that work on a thread of its own, in
order: first the run's opening (environment, dataset snapshot, run header), then every finished
item. Items that finished while the thread was busy (a wave of concurrent items ends together)
are written in one ``together()`` block, a transaction committed even when one of them fails: an
item written stays written whatever fails after it.

The thread starts when `start` is called, so that the first items are sent off before it
competes with them for the interpreter. The loop is woken once, when the writer stops, not once
per item: a future per item costs the loop a wake-up each, which under many concurrent model
calls delays the calls themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import Any

_STOP = object()


class StoreWriter:
    """Runs ``open_run`` and then ``write(item)`` for every `put` item, on one thread; items
    queued together are written inside one ``together()`` block."""

    def __init__(
        self,
        *,
        open_run: Callable[[], None],
        write: Callable[[Mapping[str, Any]], None],
        together: Callable[[], AbstractContextManager[None]] = contextlib.nullcontext,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._write = write
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._stopped: asyncio.Future[None] = self._loop.create_future()
        self.error: BaseException | None = None
        """What made the writer stop early (the items queued after it are not stored)."""
        self._together = together
        self._thread = threading.Thread(
            target=self._work, args=(open_run,), name="llmobs-store", daemon=True
        )

    def start(self) -> None:
        """Start the thread (once; later calls do nothing). Items queued before wait for it."""
        if self._thread.ident is None:
            self._thread.start()

    def put(self, item: Mapping[str, Any]) -> None:
        """Queue a finished item; raises what stopped the writer, if it failed."""
        if self.error is not None:
            raise self.error
        self._queue.put(item)

    async def finish(self) -> None:
        """Wait until everything queued is written; raise what stopped the writer, if anything."""
        self._queue.put(_STOP)
        self.start()
        await asyncio.shield(self._stopped)
        if self.error is not None:
            raise self.error

    def _work(self, open_run: Callable[[], None]) -> None:
        try:
            open_run()
            stopping = False
            while not stopping and (item := self._queue.get()) is not _STOP:
                batch = [item]
                with contextlib.suppress(queue.Empty):
                    while (item := self._queue.get_nowait()) is not _STOP:
                        batch.append(item)
                    stopping = True
                with self._together():
                    for item in batch:
                        self._write(item)
        except BaseException as exc:
            self.error = exc
        finally:
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits for us any more
                self._loop.call_soon_threadsafe(self._settle)

    def _settle(self) -> None:
        if not self._stopped.done():
            self._stopped.set_result(None)
