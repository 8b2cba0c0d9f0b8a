"""The runs a store holds, as the commands and reports see them: listing them, resolving a
run reference, loading a run with its items, the baselines that name runs, and deleting runs
(retention)."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pytest_llmobs.store_connection import StoreConnection, StoreError
from pytest_llmobs.store_unfinished import (
    KILLED_BEFORE_IT,
    effective_status,
    recorded_elsewhere,
    summary_so_far,
)

_LISTED = 10
"""How many names an error lists before saying how many more there are."""


_JSON_TYPES = {
    dict: "object", list: "array", str: "string", int: "number", float: "number",
    bool: "boolean", type(None): "null",
}  # fmt: skip
"""How errors name what a JSON text held."""


def _like_prefix(ref: str) -> str:
    escaped = ref.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


@dataclass(frozen=True, slots=True)
class Pruned:
    """What `RunCatalog.prune` deleted."""

    runs: list[str]
    """The deleted runs' ids, newest first."""
    snapshots: list[tuple[str, str]]
    """(name, version) of the deleted dataset snapshots, which no remaining run used."""
    unused_kept: int = 0
    """Dataset snapshots no stored run names, kept because a run is still going."""


class RunCatalog(StoreConnection):
    """The stored runs: listing, resolving and loading them, baselines, retention."""

    def list_runs(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Runs, newest first, with item counts; a stale ``running`` run reads as interrupted."""
        query = (
            "SELECT r.id, r.name, r.model, r.status, r.started_at, r.ended_at, r.pid,"
            " (SELECT COUNT(*) FROM items i WHERE i.run_id = r.id)"
            " FROM runs r ORDER BY r.started_at DESC, r.rowid DESC"
        )
        if limit is not None:
            query += f" LIMIT {int(limit)}"
        runs = []
        for run_id, name, model, status, started, ended, pid, count in self._db.execute(query):
            runs.append(
                {
                    "id": run_id,
                    "name": name,
                    "model": model,
                    "status": self._effective_status(run_id, status, pid),
                    "started_at": started,
                    "ended_at": ended,
                    "items": count,
                }
            )
        return runs

    def running_here(self, run_id: str) -> bool:
        """Whether the run is still going, in a live process of this machine. (A run recorded on
        another machine that stored no summary reads as running for good: a CI job killed on a
        timeout, say. Nothing here can tell, so it does not count.)"""
        row = self._db.execute(
            "SELECT status, pid, json_extract(header, '$.process') FROM runs WHERE id = ?",
            (run_id,),
        ).fetchone()
        if row is None:
            raise StoreError(f"no run {run_id!r} in {self.path}")
        process = json.loads(row[2]) if row[2] else None
        status = effective_status(row[0], row[1], process)
        return status == "running" and recorded_elsewhere(process) is None

    def _effective_status(self, run_id: str, status: str, pid: int | None) -> str:
        if status != "running" or pid is None:
            return status
        row = self._db.execute(
            "SELECT json_extract(header, '$.process') FROM runs WHERE id = ?", (run_id,)
        ).fetchone()
        process = json.loads(row[0]) if row is not None and row[0] else None
        return effective_status(status, pid, process)

    def resolve_run(self, ref: str) -> str:
        """Resolve ``latest``, a saved baseline name, a run id, a run name (its newest run) or
        a unique run id prefix, in that order, to a run id. Baseline names come first so that a
        name means the same run wherever a run is accepted (`baselines.check_name` keeps new
        names from clashing with stored runs)."""
        if not ref.strip():
            raise StoreError(
                "empty run reference: expected a run id, a run name, a saved baseline or 'latest'"
            )
        if ref == "latest":
            row = self._db.execute(
                "SELECT id FROM runs ORDER BY started_at DESC, rowid DESC LIMIT 1"
            ).fetchone()
            if row is None:
                raise StoreError(f"no runs in {self.path or 'the in-memory store'}")
            return str(row[0])
        saved = self.get_baseline(ref)
        if saved is not None:
            return saved
        if self._db.execute("SELECT 1 FROM runs WHERE id = ?", (ref,)).fetchone():
            return ref
        row = self._db.execute(
            "SELECT id FROM runs WHERE name = ? ORDER BY started_at DESC, rowid DESC LIMIT 1",
            (ref,),
        ).fetchone()
        if row is not None:
            return str(row[0])
        prefixed = [
            r[0]
            for r in self._db.execute(
                "SELECT id FROM runs WHERE id LIKE ? ESCAPE '\\'", (_like_prefix(ref),)
            )
        ]
        if len(prefixed) == 1:
            return str(prefixed[0])
        if len(prefixed) > 1:
            shown = sorted(prefixed)
            more = f" and {len(shown) - _LISTED} more" if len(shown) > _LISTED else ""
            raise StoreError(
                f"run {ref!r} is ambiguous: it is a prefix of {len(shown)} run ids "
                f"({', '.join(shown[:_LISTED])}{more}); give more of the id"
            )
        recent = ", ".join(r["name"] for r in self.list_runs(limit=5)) or "(none)"
        saved = ", ".join(b["name"] for b in self.list_baselines()[:_LISTED]) or "(none)"
        raise StoreError(
            f"no run {ref!r} in {self.path or 'the in-memory store'}: expected a run id, a run "
            f"name, a saved baseline or 'latest'; recent runs: {recent}; saved baselines: {saved}"
        )

    def run_clash(self, name: str) -> str | None:
        """How ``name`` would read as a stored run where a RUN is accepted (its id, a prefix of
        ids, or a run's name), or ``None``: a baseline name must not."""
        if self.has_run(name):
            return "the id of a stored run"
        row = self._db.execute("SELECT 1 FROM runs WHERE name = ? LIMIT 1", (name,)).fetchone()
        if row is not None:
            return "the name of a stored run"
        row = self._db.execute(
            "SELECT id FROM runs WHERE id LIKE ? ESCAPE '\\' LIMIT 1", (_like_prefix(name),)
        ).fetchone()
        if row is not None:
            return f"a prefix of the stored run id {row[0]!r}"
        return None

    def has_run(self, run_id: str) -> bool:
        return self._db.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is not None

    def load_run(self, run_id: str) -> dict[str, Any]:
        """The run's header, status, summary and every stored item, as plain data."""
        row = self._db.execute(
            "SELECT header, status, ended_at, pid, summary FROM runs WHERE id = ?", (run_id,)
        ).fetchone()
        if row is None:
            raise StoreError(f"no run {run_id!r} in {self.path or 'the in-memory store'}")
        header, status, ended_at, pid, summary = row
        run: dict[str, Any] = self._stored(header, dict, f"the header of run {run_id!r}")
        run["status"] = effective_status(status, pid, run.get("process"))
        run["ended_at"] = ended_at
        run.update(self._stored(summary, dict, f"the summary of run {run_id!r}") if summary else {})
        run["items"] = list(self.iter_items(run_id))
        if summary:  # stored by an older version: its figures as today's code computes them
            from pytest_llmobs.aggregates import upgrade_aggregates

            upgrade_aggregates(run)
        if not summary:  # killed or still going: its figures so far, from its items
            run.update(summary_so_far(run["items"], run.get("declared_thresholds") or []))
            partial = self._partial_so_far(run["items"], run["datasets"])
            if partial:
                run["partial_datasets"] = partial
            never_run = self._never_run(run_id, run["items"])
            if never_run is not None:  # (no key: the run did not say what it collected)
                # a run still going has not run them yet: pending, not missing
                run["missing" if run["status"] == "interrupted" else "pending"] = never_run
        return run

    def _partial_so_far(
        self, items: Sequence[Mapping[str, Any]], versions: Mapping[str, str]
    ) -> dict[str, Any]:
        """The datasets of which a run that stored no summary ran only some items so far."""
        from pytest_llmobs.run_result import partial_datasets, partial_datasets_to_dict

        ran: dict[str, set[object]] = {}
        for item in items:
            if item.get("dataset") is not None:
                ran.setdefault(str(item["dataset"]), set()).add(item.get("item_id"))
        # (a `Store` is also its `ContentVersions`, which count a snapshot's items)
        size_of = getattr(self, "dataset_size", lambda name, version: None)
        return partial_datasets_to_dict(partial_datasets(ran, versions, size_of))

    def _never_run(
        self, run_id: str, items: Sequence[Mapping[str, Any]]
    ) -> list[dict[str, str]] | None:
        """The collected items of ``run_id`` with no stored result; None: it stored no list."""
        row = self._db.execute(
            "SELECT node_ids FROM expected_items WHERE run_id = ?", (run_id,)
        ).fetchone()
        if row is None:
            return None
        stored = {item.get("node_id") for item in items}
        collected = self._stored(row[0], list, f"the collected items of run {run_id!r}")
        return [
            {"node_id": node_id, "reason": KILLED_BEFORE_IT}
            for node_id in collected
            if node_id not in stored
        ]

    def iter_items(self, run_id: str) -> Iterator[dict[str, Any]]:
        for _, item in self.item_rows(run_id):
            yield item

    def item_rows(self, run_id: str) -> Iterator[tuple[int, dict[str, Any]]]:
        """``(seq, item)`` for each stored item of ``run_id``, in the order they finished."""
        for seq, node_id, data in self._db.execute(
            "SELECT seq, node_id, data FROM items WHERE run_id = ? ORDER BY seq", (run_id,)
        ):
            yield seq, self._stored(data, dict, f"item #{seq} ({node_id}) of run {run_id!r}")

    def _stored(self, text: object, kind: type[Any], what: str) -> Any:
        """The JSON ``text`` a row holds, a ``kind`` (dict or list); anything else (a row
        damaged, or edited by hand) is a `StoreError` naming ``what`` and the problem."""
        try:
            value = json.loads(text) if isinstance(text, str | bytes) else text
        except (ValueError, RecursionError) as exc:
            problem = f"is not valid JSON ({exc})"
        else:
            if isinstance(value, kind):
                return value
            problem = (
                f"is a JSON {_JSON_TYPES.get(type(value), 'value')}, not an {_JSON_TYPES[kind]}"
            )
        where = self.path or "the in-memory store"
        raise StoreError(f"{where}: damaged store: {what} {problem}")

    # --- baselines --------------------------------------------------------------------------

    def save_baseline(self, name: str, run_id: str) -> None:
        """Point the baseline ``name`` at ``run_id`` (replacing where it pointed before)."""
        with self._transaction():
            self._db.execute(
                "INSERT INTO baselines (name, run_id, saved_at) VALUES (?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET run_id = excluded.run_id,"
                " saved_at = excluded.saved_at",
                (name, run_id, time.time()),
            )

    def get_baseline(self, name: str) -> str | None:
        """The run id a saved baseline names, or ``None``."""
        row = self._db.execute("SELECT run_id FROM baselines WHERE name = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    def list_baselines(self) -> list[dict[str, Any]]:
        """Saved baselines by name: name, run_id, run name, saved_at."""
        return [
            {"name": name, "run_id": run_id, "run_name": run_name, "saved_at": saved_at}
            for name, run_id, run_name, saved_at in self._db.execute(
                "SELECT b.name, b.run_id, r.name, b.saved_at FROM baselines b"
                " LEFT JOIN runs r ON r.id = b.run_id ORDER BY b.name"
            )
        ]

    # --- retention --------------------------------------------------------------------------

    def prune(self, *, keep_last: int | None = None, older_than: float | None = None) -> Pruned:
        """Delete the finished runs beyond the newest ``keep_last`` finished ones and started
        before ``older_than`` (a Unix time): with both, only those both select (the newest
        ``keep_last`` are kept, however old); with neither, none. Then the dataset snapshots no
        remaining run uses, in one transaction; runs saved as baselines, runs still going and
        prompt versions (a registry with labels) are never deleted."""
        with self._transaction():
            runs = self.list_runs()
            protected = {r[0] for r in self._db.execute("SELECT run_id FROM baselines")}
            # (a run still going is kept, and not counted: it took the place of the newest finished)
            finished = [run for run in runs if run["status"] != "running"]
            if keep_last is None and older_than is None:
                finished = []  # nothing chosen: nothing deleted
            doomed = []
            for index, run in enumerate(finished):
                too_many = keep_last is None or index >= keep_last
                too_old = older_than is None or run["started_at"] < older_than
                if too_many and too_old and run["id"] not in protected:
                    doomed.append(str(run["id"]))
            for run_id in doomed:
                self._delete_run(run_id)
            unused = self._unused_snapshots()
            # A session going on may use a snapshot its items do not name yet (stored while
            # collecting, or found already stored): keep them all until no run is going.
            going = any(run["status"] == "running" for run in runs)
            if not going:
                self._db.executemany("DELETE FROM datasets WHERE name = ? AND version = ?", unused)
        pruned = Pruned(doomed, [] if going else unused, len(unused) if going else 0)
        if (doomed or pruned.snapshots) and self.path is not None:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._db.execute("VACUUM")
            # in WAL mode VACUUM writes the whole compacted database to the WAL: fold it back
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return pruned

    def _unused_snapshots(self) -> list[tuple[str, str]]:
        """(name, version) of the dataset snapshots no stored run names: a finished run names
        those of its summary's ``datasets``, one without a summary those of its items."""
        return [
            (str(name), str(version))
            for name, version in self._db.execute(
                "SELECT name, version FROM datasets"
                " EXCEPT SELECT d.key, d.value FROM runs r, json_each(r.summary, '$.datasets') d"
                " WHERE r.summary IS NOT NULL"
                " EXCEPT SELECT d.key, d.value FROM runs r JOIN items i ON i.run_id = r.id,"
                " json_each(i.data, '$.datasets') d WHERE r.summary IS NULL"
                " ORDER BY 1, 2"
            )
        ]

    def discard_run(self, run_id: str) -> None:
        """Delete a run that never ran anything (a session stopped by a usage error), so that
        ``latest`` keeps naming the last run that did."""
        with self._transaction():
            self._delete_run(run_id)

    def _delete_run(self, run_id: str) -> None:
        self._db.execute("DELETE FROM items WHERE run_id = ?", (run_id,))
        self._db.execute("DELETE FROM expected_items WHERE run_id = ?", (run_id,))
        self._db.execute("DELETE FROM runs WHERE id = ?", (run_id,))
        with contextlib.suppress(sqlite3.OperationalError):  # no uploads yet: no table
            self._db.execute("DELETE FROM upload_state WHERE run_id = ?", (run_id,))

    def size_bytes(self) -> int:
        """Bytes on disk of the database file and its WAL."""
        if self.path is None:
            return 0
        files = [self.path, self.path.with_name(self.path.name + "-wal")]
        return sum(f.stat().st_size for f in files if f.exists())
