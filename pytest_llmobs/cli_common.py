"""What every ``llmobs`` subcommand shares: `CliError` (a wrong command, exit status 2), the
store it opens (`open_store`; `main` closes them, and names them in an SQLite error), and the
check of a count option.
"""

from __future__ import annotations

import sys
from pathlib import Path

from pytest_llmobs.locate import find_store_dir
from pytest_llmobs.store import STORE_FILENAME, Store, StoreError
from pytest_llmobs.store_schema import SCHEMA_VERSION


class CliError(Exception):
    """A user-facing error: printed as one line, exit status `BAD_INPUT` (2)."""


OPENED: list[Path] = []
"""The store files a command opened, to name in an SQLite error met while reading them."""
STORES: list[Store] = []
"""The stores a command opened, closed when it ends (Python 3.13 warns of an unclosed one)."""


def open_store(option: str | None, *, read_only: bool = False) -> Store:
    """The store of ``--store DIR`` (or found as pytest finds it); ``read_only`` for commands
    that only read: a file that is not a store is then refused, not given the schema."""
    directory = Path(option) if option else find_store_dir(Path.cwd())
    if option and directory.is_file():
        hint = (
            f" (give its directory, {str(directory.parent)!r})"
            if directory.name == STORE_FILENAME
            else ""
        )
        raise CliError(
            f"--store {option}: is a file; expected the store directory holding {STORE_FILENAME}"
            + hint
        )
    path = directory / STORE_FILENAME
    if not path.is_file():
        raise CliError(
            f"no llmobs store at {path}; run pytest with the plugin first, or pass --store DIR"
        )
    OPENED.append(path)
    try:
        store = Store(path, read_only=read_only)
    except StoreError as exc:
        raise CliError(str(exc)) from None
    STORES.append(store)
    if store.upgraded_from is not None:  # said: versions that knew only the old one refuse it
        print(
            f"llmobs: upgraded the store at {path} from schema {store.upgraded_from} to "
            f"{SCHEMA_VERSION}; pytest-llmobs versions that read only schema "
            f"{store.upgraded_from} can no longer open it",
            file=sys.stderr,
        )
    return store


def check_count(value: int, option: str, *, minimum: int = 0) -> int:
    """``value`` of a count option when it is at least ``minimum``; otherwise a `CliError`."""
    if value < minimum:
        why = "negative" if value < 0 else "too small"
        raise CliError(f"{option}: {value} is {why}; expected N >= {minimum}")
    return value
