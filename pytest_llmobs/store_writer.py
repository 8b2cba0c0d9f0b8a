"""The thread that writes one `run_experiment` run to the store while its items run.

Governing, serialising and inserting an item cost more than recording it; done on the event
loop they would delay the next items. A `StoreWriter` does that work on a thread of its own, in
order: first the run's opening (environment, dataset snapshot, run header), then every finished
item, each in its own transaction (an item written stays written whatever fails after it).
The loop is woken once, when the writer stops, not once per item: a future per item costs the
loop a wake-up each, which under many concurrent model calls delays the calls themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable, Mapping
from typing import Any

_STOP = object()


class StoreWriter:
    """Runs ``open_run`` and then ``write(item)`` for every `put` item, on one thread."""

    def __init__(
        self,
        *,
        open_run: Callable[[], None],
        write: Callable[[Mapping[str, Any]], None],
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._write = write
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._stopped: asyncio.Future[None] = self._loop.create_future()
        self.error: BaseException | None = None
        """What made the writer stop early (the items queued after it are not stored)."""
        threading.Thread(
            target=self._work, args=(open_run,), name="llmobs-store", daemon=True
        ).start()

    def put(self, item: Mapping[str, Any]) -> None:
        """Queue a finished item; raises what stopped the writer, if it failed."""
        if self.error is not None:
            raise self.error
        self._queue.put(item)

    async def finish(self) -> None:
        """Wait until everything queued is written; raise what stopped the writer, if anything."""
        self._queue.put(_STOP)
        await asyncio.shield(self._stopped)
        if self.error is not None:
            raise self.error

    def _work(self, open_run: Callable[[], None]) -> None:
        try:
            open_run()
            while (item := self._queue.get()) is not _STOP:
                self._write(item)
        except BaseException as exc:
            self.error = exc
        finally:
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits for us any more
                self._loop.call_soon_threadsafe(self._settle)

    def _settle(self) -> None:
        if not self._stopped.done():
            self._stopped.set_result(None)
