"""The embedded store: one SQLite file holding runs, their items, prompt versions and datasets.

Each finished test is written in its own transaction (WAL journal), so a session stopped by
Ctrl-C or a crash keeps every item it completed. Only one process per session writes.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_llmobs.serialize import has_lone_surrogate, jsonable, without_lone_surrogates

if TYPE_CHECKING:
    from pytest_llmobs.governance import Governance

SCHEMA_VERSION = 3
STORE_FILENAME = "llmobs.db"
KILLED_BEFORE_IT = "no result arrived before the session died (killed or crashed)"
"""Why a collected item of a run that never stored its summary has no result."""
_OPEN_TIMEOUT_S = 30.0
"""How long opening a store retries while other processes hold it (as SQLite's busy timeout)."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    model TEXT,
    status TEXT NOT NULL,
    started_at REAL NOT NULL,
    ended_at REAL,
    pid INTEGER,
    header TEXT NOT NULL,
    summary TEXT
);
CREATE INDEX IF NOT EXISTS runs_by_name ON runs (name, started_at);
CREATE TABLE IF NOT EXISTS items (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    node_id TEXT NOT NULL,
    dataset TEXT,
    item_id TEXT,
    repeat INTEGER NOT NULL DEFAULT 0,
    outcome TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
);
CREATE TABLE IF NOT EXISTS prompt_versions (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    hash TEXT NOT NULL,
    data TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (name, version),
    UNIQUE (name, hash)
);
CREATE TABLE IF NOT EXISTS prompt_labels (
    name TEXT NOT NULL,
    label TEXT NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (name, label)
);
CREATE TABLE IF NOT EXISTS datasets (
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    data TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (name, version)
);
"""


_MIGRATIONS: dict[int, str] = {
    2: """
CREATE TABLE IF NOT EXISTS baselines (
    name TEXT PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    saved_at REAL NOT NULL
)
""",
    3: """
CREATE TABLE IF NOT EXISTS expected_items (
    run_id TEXT PRIMARY KEY REFERENCES runs (id) ON DELETE CASCADE,
    node_ids TEXT NOT NULL
)
""",
}
"""Statements that bring a store from the previous schema version to the key's version."""


def _file_identity(path: Path) -> tuple[int, int] | None:
    try:
        found = os.stat(path)
    except OSError:
        return None
    return found.st_dev, found.st_ino


class StoreError(Exception):
    """The store cannot be opened, or a run reference does not resolve."""


def _schema_number(value: object, path: Path | None) -> int:
    try:
        return int(str(value))
    except ValueError:
        raise StoreError(
            f"{path}: damaged store: schema version {value!r} is not a number"
        ) from None


def _summary_so_far(
    items: Sequence[Mapping[str, Any]], declared: Sequence[Mapping[str, Any]] = ()
) -> dict[str, Any]:
    """Counts, dataset versions, aggregates and threshold verdicts of a run that never stored
    its summary (killed, or still running), from the items it stored; its thresholds are those
    its header declared (options, ini) and those its items' markers carry."""
    from pytest_llmobs.aggregates import ItemSummary, aggregates_to_dict, compute_aggregates
    from pytest_llmobs.thresholds import Threshold, ThresholdError, evaluate, parse_threshold

    counts: dict[str, int] = {}
    datasets: dict[str, str] = {}
    for item in items:
        outcome = str(item["outcome"])
        counts[outcome] = counts.get(outcome, 0) + 1
        datasets.update(item.get("datasets") or {})
    aggregates = compute_aggregates(ItemSummary.from_item(item) for item in items)
    written = [(t.get("expression"), t.get("dataset"), t.get("source", "")) for t in declared]
    for item in items:
        written += [
            (e, item.get("dataset"), "llm_dataset marker") for e in item.get("thresholds") or []
        ]
    thresholds: dict[tuple[str | None, str, str, float], Threshold] = {}
    for expression, dataset, source in written:
        with contextlib.suppress(ThresholdError, TypeError):  # checked when it was recorded
            parsed = parse_threshold(str(expression), dataset=dataset, source=str(source))
            thresholds.setdefault(parsed.key, parsed)
    return {
        "counts": dict(sorted(counts.items())),
        "datasets": dict(sorted(datasets.items())),
        "aggregates": aggregates_to_dict(aggregates) if items else {},
        "thresholds": [v.to_dict() for v in evaluate(list(thresholds.values()), aggregates)],
    }


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
"""One encoder for every write (`json.dumps` with options builds a new one per call)."""


def _dumps(value: Any) -> str:
    try:
        text = _ENCODER.encode(value)
    except (TypeError, ValueError, RecursionError):
        # an object JSON has no type for (a Path, a numpy array) or a key it refuses: stored
        # as tracing records such values, never an error that would end the session
        text = _ENCODER.encode(jsonable(value))
    if has_lone_surrogate(text):  # SQLite stores UTF-8, which has no lone surrogates
        return without_lone_surrogates(text)
    return text


class _CannotOpen(Exception):
    """SQLite refused the file: ``message`` is the store's one-line error."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Store:
    """A SQLite store at ``path`` (``None`` keeps everything in memory for ``--llm-no-store``)."""

    def __init__(
        self,
        path: Path | None,
        *,
        governance: Governance | None = None,
        read_only: bool = False,
    ) -> None:
        self.path = path
        self.governance = governance
        """Redaction, sampling and size limits applied to everything written (None: as given)."""
        self.read_only = read_only
        """Opened to be read (``llmobs runs``, ``show``...): a file that holds no store is an
        error, not a new store, and nothing is created or switched (WAL) in it."""
        if path is not None and not read_only:
            if path.parent.exists() and not path.parent.is_dir():
                raise StoreError(f"{path.parent} is a file; the store needs a directory")
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create store directory {path.parent}: {exc}") from None
        self.upgraded_from: int | None = None
        """The schema an older pytest-llmobs wrote this store in, when opening it upgraded it."""
        self.registered_prompts: dict[tuple[str, int], str] = {}
        """(name, version) → hash of every prompt version this connection registered."""
        target = str(path) if path is not None else ":memory:"
        try:
            self._open(target, uri=False)
        except _CannotOpen as cannot:
            if not (read_only and path is not None):
                raise StoreError(cannot.message) from None
            # A store on a read-only file system (a mounted CI artifact): SQLite cannot make
            # the shared-memory file a WAL database is read with, and nothing can write there,
            # so the file is read as immutable, which ignores the write-ahead log: refused
            # when the log still holds changes (a killed session's), not read without them.
            wal = path.with_name(path.name + "-wal")
            if wal.exists() and wal.stat().st_size > 0:
                raise StoreError(
                    f"{path}: on a read-only file system with changes still in its write-ahead "
                    f"log ({wal}), which SQLite cannot read there; copy the store's directory "
                    "somewhere writable and read that"
                ) from None
            immutable = f"{path.resolve().as_uri()}?immutable=1"
            try:
                self._open(immutable, uri=True)
            except _CannotOpen:
                raise StoreError(cannot.message) from None
        self._identity = _file_identity(path) if path is not None and not read_only else None
        """The (device, inode) of the file this connection writes, to tell when the path stops
        leading to it (see `moved_away`)."""

    def moved_away(self) -> str | None:
        """Why the store's path no longer leads to the file this connection writes (deleted or
        replaced since it was opened: SQLite goes on writing the old file), else ``None``."""
        if self._identity is None or self.path is None:
            return None
        now = _file_identity(self.path)
        if now is None:
            return "was deleted"
        return None if now == self._identity else "was replaced by another file"

    def _not_writable(self) -> bool:
        """Whether the store's file or directory is read-only to this process (a read-only
        mount, another user's files), which SQLite reports as an unusable database."""
        path = self.path
        if path is None or self.read_only:
            return False
        return not os.access(path.parent, os.W_OK) or (
            path.exists() and not os.access(path, os.W_OK)
        )

    def _open(self, target: str, *, uri: bool) -> None:
        try:
            # One thread uses a store at a time; `close(wait=False)` hands it to another.
            self._db = sqlite3.connect(
                target, timeout=30.0, isolation_level=None, check_same_thread=False, uri=uri
            )
        except sqlite3.Error as exc:
            raise StoreError(f"{target}: cannot open the store ({exc})") from None
        try:
            self._db.execute("PRAGMA foreign_keys = ON")
            if self.read_only:
                self._check_readable()
            else:
                self._prepare(on_disk=self.path is not None)
        except sqlite3.DatabaseError as exc:
            self._db.close()
            where = self.path if self.path is not None else target
            if self._not_writable():  # a healthy store this process may not write
                raise _CannotOpen(
                    f"{where}: the store is read-only here ({exc}); pass --store (or "
                    "--llm-store) a directory you can write"
                ) from None
            raise _CannotOpen(f"{where}: not a usable llmobs store ({exc})") from None
        except StoreError:
            self._db.close()
            raise

    def _prepare(self, *, on_disk: bool) -> None:
        """WAL mode and the schema. Processes opening a new store at once (xdist workers) can
        get "database is locked" without SQLite waiting: switching to WAL while another
        connection writes the schema is refused at once (waiting could deadlock), so retry."""
        deadline = time.monotonic() + _OPEN_TIMEOUT_S
        while True:
            try:
                self._refuse_a_foreign_database()
                if on_disk:
                    self._db.execute("PRAGMA journal_mode = WAL")
                    self._db.execute("PRAGMA synchronous = NORMAL")
                self._migrate()
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(random.uniform(0.005, 0.05))

    def _check_readable(self) -> None:
        """A store opened to be read must already be one; an older schema is brought up to
        date (a real store, upgraded as pytest would), nothing else is written."""
        self._refuse_a_foreign_database()
        tables = {
            row[0] for row in self._db.execute("SELECT name FROM sqlite_master WHERE type='table'")
        }
        if "meta" not in tables:
            empty = self.path is not None and self.path.stat().st_size == 0
            raise StoreError(
                f"{self.path}: not an llmobs store ({'an empty file' if empty else 'no runs table'}"
                "); run pytest with the plugin to create one, or pass --store DIR"
            )
        if not self._schema_is_current():
            try:
                self._migrate()
            except sqlite3.OperationalError as exc:
                if "readonly" not in str(exc):
                    raise
                raise StoreError(
                    f"{self.path}: the store was written by an older pytest-llmobs, and reading "
                    f"it here means upgrading it, which this file system does not allow ({exc}); "
                    "copy the store's directory somewhere writable and read that"
                ) from None

    def unusable(self, exc: sqlite3.Error) -> StoreError:
        """The one-line error for an SQLite error met while using the store (a damaged page
        shows only when it is read)."""
        return self.unusable_error(self.path or "the in-memory store", exc)

    @staticmethod
    def unusable_error(where: object, exc: sqlite3.Error) -> StoreError:
        """`unusable` for the store at ``where``."""
        if isinstance(exc, sqlite3.OperationalError):
            return StoreError(f"{where}: cannot use the llmobs store ({exc})")
        return StoreError(f"{where}: not a usable llmobs store ({exc})")

    @classmethod
    def in_directory(cls, directory: Path, *, governance: Governance | None = None) -> Store:
        return cls(directory / STORE_FILENAME, governance=governance)

    def _migrate(self) -> None:
        if self._schema_is_current():
            return  # no write transaction: it would wait for a writer (or a closing checkpoint)
        with self._transaction():
            tables = {
                row[0]
                for row in self._db.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
            for statement in filter(str.strip, _SCHEMA.split(";")):
                self._db.execute(statement)
            row = self._db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
            found = 1 if row is None else _schema_number(row[0], self.path)
            for version in range(found + 1, SCHEMA_VERSION + 1):
                for statement in filter(str.strip, _MIGRATIONS[version].split(";")):
                    self._db.execute(statement)
            if "runs" in tables and found < SCHEMA_VERSION:
                self.upgraded_from = found
            if row is None:
                self._db.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema', ?)", (str(SCHEMA_VERSION),)
                )
            elif found < SCHEMA_VERSION:
                self._db.execute(
                    "UPDATE meta SET value = ? WHERE key = 'schema'", (str(SCHEMA_VERSION),)
                )
            elif found > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path}: store schema {row[0]} is newer than this plugin understands "
                    f"({SCHEMA_VERSION}); upgrade pytest-llmobs"
                )

    def _refuse_a_foreign_database(self) -> None:
        """Another program's SQLite file is left as it is (no WAL switch, no tables added)."""
        tables = {
            row[0] for row in self._db.execute("SELECT name FROM sqlite_master WHERE type='table'")
        }
        if tables and "meta" not in tables:
            found = ", ".join(sorted(tables)[:5])
            raise StoreError(
                f"{self.path}: not an llmobs store (it holds other tables: {found}); "
                "give the store a directory of its own"
            )

    def _schema_is_current(self) -> bool:
        try:
            row = self._db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        except sqlite3.OperationalError:
            return False  # a new file: no meta table yet
        return row is not None and row[0] == str(SCHEMA_VERSION)

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)

    def side_table(self, ddl: str) -> sqlite3.Connection:
        """Create a module's own table(s) with ``ddl`` (``CREATE ... IF NOT EXISTS``) and return
        the connection; such tables are outside the schema version (upload state)."""
        self._db.executescript(ddl)
        return self._db

    def close(self, *, wait: bool = True) -> None:
        """Close the connection. Closing checkpoints the WAL into the database file, with an
        fsync; ``wait=False`` leaves that to a thread the interpreter waits for at exit, for
        callers that are done with the store and should not wait for the disk."""
        if wait:
            self._db.close()
        else:
            threading.Thread(target=self._checkpoint_and_close, name="llmobs-store-close").start()

    def _checkpoint_and_close(self) -> None:
        # Closing the last connection checkpoints under an exclusive lock, which a store opened
        # meanwhile (the next run_experiment) would wait for; a passive checkpoint first copies
        # the WAL without that lock, leaving the close little to do.
        with contextlib.suppress(sqlite3.Error):
            self._db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        self._db.close()

    # --- runs -------------------------------------------------------------------------------

    def begin_run(self, header: Mapping[str, Any]) -> None:
        """Insert a run in status ``running``; ``header`` holds id, name, model, started_at."""
        header = {**self._governed(header), "process": _process_identity(os.getpid())}
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
                        _dumps(dict(header)),
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
                _dumps(item),
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
                (status, ended_at, _dumps(dict(summary)), run_id),
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
                (status, _dumps(merged), run_id),
            )

    # --- retention --------------------------------------------------------------------------

    def prune(self, *, keep_last: int | None = None, older_than: float | None = None) -> list[str]:
        """Delete finished runs beyond the newest ``keep_last`` or started before ``older_than``
        (a Unix time); runs saved as baselines and runs still going are never deleted."""
        protected = {r[0] for r in self._db.execute("SELECT run_id FROM baselines")}
        runs = self.list_runs()
        doomed = []
        for index, run in enumerate(runs):
            too_many = keep_last is not None and index >= keep_last
            too_old = older_than is not None and run["started_at"] < older_than
            if (too_many or too_old) and run["id"] not in protected and run["status"] != "running":
                doomed.append(str(run["id"]))
        with self._transaction():
            for run_id in doomed:
                self._delete_run(run_id)
        if doomed and self.path is not None:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._db.execute("VACUUM")
            # in WAL mode VACUUM writes the whole compacted database to the WAL: fold it back
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return doomed

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

    def _effective_status(self, run_id: str, status: str, pid: int | None) -> str:
        if status != "running" or pid is None:
            return status
        row = self._db.execute(
            "SELECT json_extract(header, '$.process') FROM runs WHERE id = ?", (run_id,)
        ).fetchone()
        process = json.loads(row[0]) if row is not None and row[0] else None
        return _effective_status(status, pid, process)

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
        run: dict[str, Any] = json.loads(header)
        run["status"] = _effective_status(status, pid, run.get("process"))
        run["ended_at"] = ended_at
        run.update(json.loads(summary) if summary else {})
        run["items"] = list(self.iter_items(run_id))
        if summary:  # stored by an older version: its figures as today's code computes them
            from pytest_llmobs.aggregates import upgrade_aggregates

            upgrade_aggregates(run)
        if not summary:  # killed or still going: its figures so far, from its items
            run.update(_summary_so_far(run["items"], run.get("declared_thresholds") or []))
            never_run = self._never_run(run_id, run["items"])
            if never_run is not None:  # (no key: the run did not say what it collected)
                # a run still going has not run them yet: pending, not missing
                run["missing" if run["status"] == "interrupted" else "pending"] = never_run
        return run

    def expect_items(self, run_id: str, node_ids: Sequence[str]) -> None:
        """Note the items a run collected, so that a run killed before its summary still says
        which of them it never ran (`load_run`)."""
        with self._transaction():
            self._db.execute(
                "INSERT OR REPLACE INTO expected_items (run_id, node_ids) VALUES (?, ?)",
                (run_id, _dumps(list(node_ids))),
            )

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
        return [
            {"node_id": node_id, "reason": KILLED_BEFORE_IT}
            for node_id in json.loads(row[0])
            if node_id not in stored
        ]

    def iter_items(self, run_id: str) -> Iterator[dict[str, Any]]:
        for _, item in self.item_rows(run_id):
            yield item

    def item_rows(self, run_id: str) -> Iterator[tuple[int, dict[str, Any]]]:
        """``(seq, item)`` for each stored item of ``run_id``, in the order they finished."""
        for seq, data in self._db.execute(
            "SELECT seq, data FROM items WHERE run_id = ? ORDER BY seq", (run_id,)
        ):
            yield seq, json.loads(data)

    # --- prompts ----------------------------------------------------------------------------

    def register_prompt(
        self, name: str, content_hash: str, data: Mapping[str, Any], labels: Sequence[str]
    ) -> int:
        """The version for this content (a new one when the content is new); moves ``labels``."""
        with self._transaction():
            row = self._db.execute(
                "SELECT version FROM prompt_versions WHERE name = ? AND hash = ?",
                (name, content_hash),
            ).fetchone()
            if row is not None:
                version = int(row[0])
            else:
                (latest,) = self._db.execute(
                    "SELECT COALESCE(MAX(version), 0) FROM prompt_versions WHERE name = ?", (name,)
                ).fetchone()
                version = int(latest) + 1
                self._db.execute(
                    "INSERT INTO prompt_versions (name, version, hash, data, created_at)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (name, version, content_hash, _dumps(self._governed(data)), time.time()),
                )
                self._set_label(name, "latest", version)
            for label in labels:
                self._set_label(name, label, version)
        self.registered_prompts[(name, version)] = content_hash
        return version

    def import_prompt_version(self, prompt: Mapping[str, Any]) -> bool:
        """Keep a prompt version registered in another store (an xdist worker's), unless this
        store already has that name and version or that content; True when it was added."""
        data = {k: v for k, v in prompt.items() if k not in ("name", "version", "hash", "labels")}
        data = self._governed(data)
        with self._transaction():
            added = self._db.execute(
                "INSERT OR IGNORE INTO prompt_versions (name, version, hash, data, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (prompt["name"], int(prompt["version"]), prompt["hash"], _dumps(data), time.time()),
            ).rowcount
        return bool(added)

    def _governed(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """A record of the store's own (a run header or summary, a prompt version's template
        and config) as it is written: through the store's policy, when it has one. A prompt
        version keeps the hash of its real content, which the prompt file is compared by."""
        if self.governance is None:
            return dict(record)
        governed: dict[str, Any] = self.governance.value(dict(record))
        return governed

    def _set_label(self, name: str, label: str, version: int) -> None:
        self._db.execute(
            "INSERT INTO prompt_labels (name, label, version) VALUES (?, ?, ?)"
            " ON CONFLICT (name, label) DO UPDATE SET version = excluded.version",
            (name, label, version),
        )

    def get_prompt(
        self, name: str, *, version: int | None = None, label: str | None = None
    ) -> dict[str, Any] | None:
        """A stored prompt version (by number, or by label), with its current labels."""
        if label is not None:
            row = self._db.execute(
                "SELECT version FROM prompt_labels WHERE name = ? AND label = ?", (name, label)
            ).fetchone()
            if row is None:
                return None
            version = int(row[0])
        row = self._db.execute(
            "SELECT version, hash, data FROM prompt_versions WHERE name = ? AND version = ?",
            (name, version),
        ).fetchone()
        if row is None:
            return None
        data: dict[str, Any] = json.loads(row[2])
        data.update(name=name, version=int(row[0]), hash=row[1])
        data["labels"] = sorted(
            r[0]
            for r in self._db.execute(
                "SELECT label FROM prompt_labels WHERE name = ? AND version = ?", (name, row[0])
            )
        )
        return data

    def prompt_by_hash(self, name: str, content_hash: str) -> dict[str, Any] | None:
        """The stored prompt version of ``name`` with this content hash, or ``None``."""
        row = self._db.execute(
            "SELECT version FROM prompt_versions WHERE name = ? AND hash = ?", (name, content_hash)
        ).fetchone()
        return None if row is None else self.get_prompt(name, version=int(row[0]))

    def prompt_index(self, name: str) -> tuple[list[int], dict[str, int]]:
        """The stored version numbers of ``name`` and where each of its labels points."""
        versions = [
            int(r[0])
            for r in self._db.execute(
                "SELECT version FROM prompt_versions WHERE name = ? ORDER BY version", (name,)
            )
        ]
        labels = {
            str(r[0]): int(r[1])
            for r in self._db.execute(
                "SELECT label, version FROM prompt_labels WHERE name = ? ORDER BY label", (name,)
            )
        }
        return versions, labels

    # --- datasets ---------------------------------------------------------------------------

    def record_dataset(self, name: str, version: str, items: Sequence[Mapping[str, Any]]) -> None:
        """Keep a (governed) snapshot of a dataset version (once per content hash)."""
        rows = self._governed_rows(items)
        with self._transaction():
            self._db.execute(
                "INSERT OR IGNORE INTO datasets (name, version, data, created_at)"
                " VALUES (?, ?, ?, ?)",
                (name, version, _dumps(rows), time.time()),
            )

    def _governed_rows(self, items: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Dataset items as stored: governed (masked, cut) when the store has a policy."""
        if self.governance is None:
            return [dict(i) for i in items]
        return self.governance.items(items)

    def regovern_dataset(self, name: str, version: str, items: Sequence[Mapping[str, Any]]) -> None:
        """Store the snapshot of ``name`` at ``version`` again, governed by today's policy (a
        masker a conftest added after it was stored)."""
        rows = self._governed_rows(items)
        with self._transaction():
            self._db.execute(
                "UPDATE datasets SET data = ? WHERE name = ? AND version = ?",
                (_dumps(rows), name, version),
            )

    def has_dataset(self, name: str, version: str) -> bool:
        """Whether a snapshot of this dataset version is stored already."""
        row = self._db.execute(
            "SELECT 1 FROM datasets WHERE name = ? AND version = ?", (name, version)
        ).fetchone()
        return row is not None

    def dataset_size(self, name: str, version: str) -> int | None:
        """How many items the snapshot of ``name`` at ``version`` holds (None: not kept)."""
        try:  # counted by SQLite, without decoding the snapshot
            row = self._db.execute(
                "SELECT json_array_length(data) FROM datasets WHERE name = ? AND version = ?",
                (name, version),
            ).fetchone()
        except sqlite3.OperationalError:  # an SQLite built without its JSON functions
            items = self.get_dataset(name, version)
            return None if items is None else len(items)
        return None if row is None else int(row[0])

    def get_dataset(self, name: str, version: str) -> list[dict[str, Any]] | None:
        row = self._db.execute(
            "SELECT data FROM datasets WHERE name = ? AND version = ?", (name, version)
        ).fetchone()
        return None if row is None else list(json.loads(row[0]))


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``/``ROLLBACK`` on an autocommit connection."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *_: object) -> None:
        self._db.execute("ROLLBACK" if exc_type is not None else "COMMIT")


def _like_prefix(ref: str) -> str:
    escaped = ref.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


_LISTED = 10
"""How many names an error lists before saying how many more there are."""


def _process_identity(pid: int) -> dict[str, Any]:
    """What tells process ``pid`` apart from a later one given the same pid: the host, its
    boot and the process's start time (Linux's /proc; elsewhere the host only)."""
    identity: dict[str, Any] = {"host": socket.gethostname()}
    with contextlib.suppress(OSError, ValueError, IndexError):
        identity["boot"] = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        stat = Path(f"/proc/{pid}/stat").read_text()
        identity["start"] = int(stat.rsplit(")", 1)[1].split()[19])  # field 22: starttime
    return identity


def recorded_elsewhere(process: Any) -> str | None:
    """The host a run's process identity (its header's ``process``) names, when that is not
    this machine: whether such a run still goes, nothing here can tell."""
    host = process.get("host") if isinstance(process, dict) else None
    return str(host) if host is not None and host != socket.gethostname() else None


def _effective_status(status: str, pid: int | None, recorded: Any = None) -> str:
    """A run still marked ``running`` whose process is gone was interrupted (crash, kill). A
    live process with the run's pid is another one when its start time (or the boot) differs
    from the one recorded; a run recorded on another host is taken as running."""
    if status != "running" or pid is None:
        return status
    if recorded_elsewhere(recorded) is not None:
        return status  # another machine's process: nothing here can tell
    if pid == os.getpid():
        return status
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return "interrupted"
    except OSError:
        return status
    if isinstance(recorded, dict) and "start" in recorded:
        now = _process_identity(pid)
        if now.get("boot") != recorded.get("boot") or now.get("start") != recorded["start"]:
            return "interrupted"  # the pid was reused by a process started since
    return status
