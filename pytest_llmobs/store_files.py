"""The files a store is made of: its SQLite database and the files SQLite keeps beside it.
Only the store writes them: a report or an ``-o`` file written over one destroys its runs.
"""

from __future__ import annotations

from pathlib import Path

from pytest_llmobs.store import STORE_FILENAME

STORE_FILES = tuple(STORE_FILENAME + suffix for suffix in ("", "-wal", "-shm", "-journal"))
"""A store's database and the files SQLite keeps beside it (write-ahead log, shared memory,
rollback journal)."""


def store_holding(target: Path, store_dir: Path | None = None) -> Path | None:
    """The directory of the store ``target`` (a resolved path) is a file of, else ``None``:
    one of `STORE_FILES` in ``store_dir`` (the store a session writes, which may not exist
    yet) or in a directory holding a store's database."""
    if target.name not in STORE_FILES:
        return None
    if target.parent == store_dir or (target.parent / STORE_FILENAME).is_file():
        return target.parent
    return None
