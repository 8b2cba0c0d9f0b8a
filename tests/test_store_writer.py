"""`StoreWriter`: ``run_experiment``'s store thread — the run opened first, items in order,
and failures that reach the loop without losing what was written before them."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from pytest_llmobs import run_experiment
from pytest_llmobs.store import Store
from pytest_llmobs.store_writer import StoreWriter


def test_the_run_is_opened_first_then_items_are_written_in_order() -> None:
    done: list[Any] = []
    opening = threading.Event()

    def open_run() -> None:
        opening.wait(timeout=30)
        done.append("open")

    async def main() -> None:
        writer = StoreWriter(open_run=open_run, write=lambda item: done.append(item["n"]))
        for n in range(5):  # queued while the run is still being opened
            writer.put({"n": n})
        opening.set()
        await writer.finish()

    asyncio.run(main())

    assert done == ["open", 0, 1, 2, 3, 4]


def test_a_failure_to_open_the_run_is_raised_by_finish_and_by_the_next_put() -> None:
    def open_run() -> None:
        raise sqlite3.OperationalError("attempt to write a readonly database")

    async def main() -> list[str]:
        writer = StoreWriter(open_run=open_run, write=lambda item: None)
        raised = []
        with pytest.raises(sqlite3.OperationalError) as finished:
            await writer.finish()
        raised.append(str(finished.value))
        with pytest.raises(sqlite3.OperationalError) as put:
            writer.put({"n": 0})
        raised.append(str(put.value))
        return raised

    assert asyncio.run(main()) == ["attempt to write a readonly database"] * 2


def test_the_thread_starts_when_asked_and_writes_what_waited_for_it_in_one_block() -> None:
    done: list[Any] = []

    @contextlib.contextmanager
    def together() -> Iterator[None]:
        done.append("begin")
        yield
        done.append("commit")

    async def main() -> None:
        writer = StoreWriter(
            open_run=lambda: done.append("open"),
            write=lambda item: done.append(item["n"]),
            together=together,
        )
        for n in range(3):  # a wave of items that ended together
            writer.put({"n": n})
        assert done == []  # the first items are sent off before the thread competes with them
        writer.start()
        await writer.finish()

    asyncio.run(main())

    assert done == ["open", "begin", 0, 1, 2, "commit"]


def test_items_written_in_one_block_before_a_failure_stay_written(tmp_path: Path) -> None:
    store = Store(tmp_path / "llmobs.db")

    def write(item: Mapping[str, Any]) -> None:
        if item["item_id"] == "q2":
            raise sqlite3.OperationalError("database or disk is full")
        store.write_item("run-1", item["seq"], item)

    async def main() -> None:
        writer = StoreWriter(
            open_run=lambda: store.begin_run({"id": "run-1", "name": "n", "started_at": 0.0}),
            write=write,
            together=store.items_together,
        )
        for n in range(5):
            writer.put({"seq": n, "node_id": f"t[q{n}]", "item_id": f"q{n}", "outcome": "passed"})
        writer.start()
        with pytest.raises(sqlite3.OperationalError, match="disk is full"):
            await writer.finish()

    asyncio.run(main())
    store.close()

    with contextlib.closing(sqlite3.connect(tmp_path / "llmobs.db")) as db:
        kept = [row[0] for row in db.execute("SELECT item_id FROM items ORDER BY seq")]
    assert kept == ["q0", "q1"]


class FailingStore(Store):
    """A real SQLite store whose disk "fills up" after ``good`` items."""

    def __init__(self, path: Path, good: int) -> None:
        super().__init__(path)
        self.good = good

    def write_item(self, run_id: str, seq: int, item: Mapping[str, Any], **kwargs: Any) -> None:
        if seq >= self.good:
            raise sqlite3.OperationalError("database or disk is full")
        super().write_item(run_id, seq, item, **kwargs)


def test_run_experiment_raises_a_store_failure_and_keeps_the_items_written_before_it(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    store = FailingStore(tmp_path / "llmobs.db", good=3)
    request.addfinalizer(store.close)
    items = [{"id": f"q{n}", "input": f"question {n}", "expected_output": "x"} for n in range(8)]

    async def task(item: Any) -> str:
        return "x"

    with pytest.raises(sqlite3.OperationalError, match="disk is full"):
        run_experiment(name="full", dataset=items, task=task, max_concurrency=8, store=store)

    (run_id,) = [row[0] for row in store._db.execute("SELECT id FROM runs")]
    kept = store._db.execute("SELECT item_id FROM items WHERE run_id = ? ORDER BY seq", (run_id,))
    assert len(kept := [row[0] for row in kept]) == 3
    assert set(kept) <= {item["id"] for item in items}
