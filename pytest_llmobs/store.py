"""The embedded store: one SQLite file holding runs, their items, prompt versions and datasets.

Each finished test is written in its own transaction (WAL journal), so a session stopped by
Ctrl-C or a crash keeps every item it completed. Only one process per session writes.

`Store` is the one entry point: this module writes runs (the per-test path), and the rest
comes from its bases: `store_connection` (opening the file, the schema of `store_schema`,
transactions), `store_catalog` (listing, resolving, loading and pruning runs; baselines)
and `store_versions` (prompt versions, dataset snapshots).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_llmobs.store_catalog import RunCatalog
from pytest_llmobs.store_connection import StoreError, stored_json
from pytest_llmobs.store_unfinished import process_identity
from pytest_llmobs.store_versions import ContentVersions

if TYPE_CHECKING:
    from pytest_llmobs.governance import Governance

__all__ = ["STORE_FILENAME", "Store", "StoreError"]

STORE_FILENAME = "llmobs.db"


class Store(RunCatalog, ContentVersions):
    """A SQLite store at ``path`` (``None`` keeps everything in memory for ``--llm-no-store``)."""

    @classmethod
    def in_directory(cls, directory: Path, *, governance: Governance | None = None) -> Store:
        return cls(directory / STORE_FILENAME, governance=governance)

    # --- runs -------------------------------------------------------------------------------

    def begin_run(self, header: Mapping[str, Any]) -> None:
        """Insert a run in status ``running``; ``header`` holds id, name, model, started_at."""
        header = {**self._governed(header), "process": process_identity(os.getpid())}
        try:
            with self._transaction():
                self._db.execute(
                    "INSERT INTO runs (id, name, model, status, started_at, pid, header)"
                    " VALUES (?, ?, ?, 'running', ?, ?, ?)",
                    (
                        header["id"],
                        header["name"],
                        header.get("model"),
                        header["started_at"],
                        os.getpid(),
                        stored_json(dict(header)),
                    ),
                )
        except sqlite3.IntegrityError:
            raise  # a run id already stored: the caller's mistake, not a damaged store
        except sqlite3.DatabaseError as exc:
            raise self.unusable(exc) from None

    def write_item(
        self, run_id: str, seq: int, item: Mapping[str, Any], *, governed: bool = False
    ) -> None:
        """Store one finished run item in its own transaction, governed unless it already is."""
        if self.governance is not None and not governed:
            item = self.governance.item(item)
        # One statement on an autocommit connection is its own transaction: committed before
        # the next test starts, without a BEGIN/COMMIT round trip per test.
        self._db.execute(
            "INSERT OR REPLACE INTO items"
            " (run_id, seq, node_id, dataset, item_id, repeat, outcome, data)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                run_id,
                seq,
                item["node_id"],
                item.get("dataset"),
                item.get("item_id"),
                item.get("repeat", 0),
                item["outcome"],
                stored_json(item),
            ),
        )

    @contextlib.contextmanager
    def items_together(self) -> Iterator[None]:
        """One transaction for the `write_item` calls inside the block, committed even when the
        block raises: the items written before the failure stay written."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            if self._db.in_transaction:  # (an error such as a full disk may have rolled it back)
                self._db.execute("COMMIT")

    def finish_run(
        self, run_id: str, *, status: str, ended_at: float, summary: Mapping[str, Any]
    ) -> None:
        """Record the run's final status and its summary (datasets, prompts, aggregates...)."""
        summary = self._governed(summary)
        with self._transaction():
            self._db.execute(
                "UPDATE runs SET status = ?, ended_at = ?, summary = ? WHERE id = ?",
                (status, ended_at, stored_json(dict(summary)), run_id),
            )

    def update_run(
        self, run_id: str, *, status: str | None = None, summary: Mapping[str, Any] | None = None
    ) -> None:
        """Change a finished run's status and/or merge ``summary`` keys into its summary."""
        if summary is not None:
            summary = self._governed(summary)
        with self._transaction():
            row = self._db.execute("SELECT summary FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                raise StoreError(f"no run {run_id!r} in {self.path or 'the in-memory store'}")
            merged = {**(json.loads(row[0]) if row[0] else {}), **(summary or {})}
            self._db.execute(
                "UPDATE runs SET status = COALESCE(?, status), summary = ? WHERE id = ?",
                (status, stored_json(merged), run_id),
            )

    def expect_items(self, run_id: str, node_ids: Sequence[str]) -> None:
        """Note the items a run collected, so that a run killed before its summary still says
        which of them it never ran (`load_run`)."""
        with self._transaction():
            self._db.execute(
                "INSERT OR REPLACE INTO expected_items (run_id, node_ids) VALUES (?, ?)",
                (run_id, stored_json(list(node_ids))),
            )
