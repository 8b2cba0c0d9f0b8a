"""`StoreWriter`: ``run_experiment``'s store thread — the run opened first, items in order,
and failures that reach the loop without losing what was written before them."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Mapping
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
    tmp_path: Path,
) -> None:
    store = FailingStore(tmp_path / "llmobs.db", good=3)
    items = [{"id": f"q{n}", "input": f"question {n}", "expected_output": "x"} for n in range(8)]

    async def task(item: Any) -> str:
        return "x"

    with pytest.raises(sqlite3.OperationalError, match="disk is full"):
        run_experiment(name="full", dataset=items, task=task, max_concurrency=8, store=store)

    (run_id,) = [row[0] for row in store._db.execute("SELECT id FROM runs")]
    kept = store._db.execute("SELECT item_id FROM items WHERE run_id = ? ORDER BY seq", (run_id,))
    assert len(kept := [row[0] for row in kept]) == 3
    assert set(kept) <= {item["id"] for item in items}
