"""One open store file: the SQLite connection, refusing a file that is not a store, bringing
an older schema up to date, transactions, closing, and the JSON text everything is written as.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import sqlite3
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_llmobs.serialize import has_lone_surrogate, jsonable, without_lone_surrogates
from pytest_llmobs.store_schema import MIGRATIONS, SCHEMA, SCHEMA_VERSION

if TYPE_CHECKING:
    from pytest_llmobs.governance import Governance

_OPEN_TIMEOUT_S = 30.0
"""How long opening a store retries while other processes hold it (as SQLite's busy timeout)."""

_TABLES = frozenset(
    re.findall(r"CREATE TABLE IF NOT EXISTS (\w+)", SCHEMA + ";".join(MIGRATIONS.values()))
)
"""The tables of the current schema: a store of that schema lacking one is damaged."""


def _file_identity(path: Path) -> tuple[int, int] | None:
    try:
        found = os.stat(path)
    except OSError:
        return None
    return found.st_dev, found.st_ino


def _read_only_place(path: Path) -> bool:
    """Whether this process may not write the store's file or directory (a read-only mount,
    another user's files): SQLite cannot open a WAL store the usual way there, whereas a file
    that fails to open elsewhere is damaged, not read-only."""
    return not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK))


class StoreError(Exception):
    """The store cannot be opened, or a run reference does not resolve."""


def _schema_number(value: object, path: Path | None) -> int:
    try:
        return int(str(value))
    except ValueError:
        raise StoreError(
            f"{path}: damaged store: schema version {value!r} is not a number"
        ) from None


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
"""One encoder for every write (`json.dumps` with options builds a new one per call)."""


def stored_json(value: Any) -> str:
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


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``/``ROLLBACK`` on an autocommit connection."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *_: object) -> None:
        self._db.execute("ROLLBACK" if exc_type is not None else "COMMIT")


class StoreConnection:
    """The connection to a store at ``path`` (``None``: in memory), opened, checked and
    brought to the current schema: what every query of `Store` runs on."""

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
            if not (read_only and path is not None and _read_only_place(path)):
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
        """Whether the store, opened to be written, is read-only to this process
        (`_read_only_place`), which SQLite reports as an unusable database."""
        return self.path is not None and not self.read_only and _read_only_place(self.path)

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
        if self._schema_is_current():
            self._refuse_missing_tables()
            return
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

    def _migrate(self) -> None:
        if self._schema_is_current():
            # no write transaction: it would wait for a writer (or a closing checkpoint)
            self._refuse_missing_tables()
            return
        with self._transaction():
            tables = {
                row[0]
                for row in self._db.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
            for statement in filter(str.strip, SCHEMA.split(";")):
                self._db.execute(statement)
            row = self._db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
            found = 1 if row is None else _schema_number(row[0], self.path)
            for version in range(found + 1, SCHEMA_VERSION + 1):
                for statement in filter(str.strip, MIGRATIONS[version].split(";")):
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

    def _refuse_missing_tables(self) -> None:
        """A store of the current schema lacking one of its tables (dropped, or lost to a
        damaged page) is refused when opened, not when the first test's item is written. (The
        schema and its version are written in one transaction, so a store being created by
        another process has them all once its version reads as current.)"""
        found = {
            row[0] for row in self._db.execute("SELECT name FROM sqlite_master WHERE type='table'")
        }
        missing = sorted(_TABLES - found)
        if missing:
            tables = f"{', '.join(missing)} table{'s' if len(missing) > 1 else ''}"
            raise StoreError(f"{self.path}: not a usable llmobs store (damaged: no {tables})")

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

    def _governed(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """A record of the store's own (a run header or summary, a prompt version's template
        and config) as it is written: through the store's policy, when it has one. A prompt
        version keeps the hash of its real content, which the prompt file is compared by."""
        if self.governance is None:
            return dict(record)
        governed: dict[str, Any] = self.governance.value(dict(record))
        return governed
