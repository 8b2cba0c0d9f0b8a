"""What every ``llmobs`` subcommand shares: `CliError` (a wrong command, exit status 2), the
store it opens (`open_store`; `main` closes them, and names them in an SQLite error), and the
checks of an option's value (`nonempty`, `check_count`).
"""

from __future__ import annotations

import argparse
import contextlib
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path

from pytest_llmobs.locate import find_store_dir
from pytest_llmobs.store import STORE_FILENAME, Store, StoreError
from pytest_llmobs.store_schema import SCHEMA_VERSION


class CliError(Exception):
    """A user-facing error: printed as one line, exit status 2 (`cli.BAD_INPUT`)."""


class OpenedStores:
    """The stores one ``llmobs`` command opened: `main` closes them when the command ends (Python
    3.13 warns of an unclosed one), and names the last one's file in an SQLite error met while
    reading it."""

    def __init__(self) -> None:
        self.paths: list[Path] = []
        self.stores: list[Store] = []

    @property
    def last_path(self) -> Path | None:
        return self.paths[-1] if self.paths else None

    def open(self, option: str | None, *, read_only: bool = False) -> Store:
        """The store of ``--store DIR`` (or found as pytest finds it); ``read_only`` for
        commands that only read: a file that is not a store is then refused, not given the
        schema."""
        directory = Path(option) if option else find_store_dir(Path.cwd())
        if option and directory.is_file():
            hint = (
                f" (give its directory, {str(directory.parent)!r})"
                if directory.name == STORE_FILENAME
                else ""
            )
            raise CliError(
                f"--store {option}: is a file; expected the store directory holding "
                f"{STORE_FILENAME}" + hint
            )
        path = directory / STORE_FILENAME
        if not path.is_file():
            raise CliError(
                f"no llmobs store at {path}; run pytest with the plugin first, or pass --store DIR"
            )
        self.paths.append(path)
        try:
            store = Store(path, read_only=read_only)
        except StoreError as exc:
            raise CliError(str(exc)) from None
        self.stores.append(store)
        if store.upgraded_from is not None:  # said: versions that knew only the old one refuse it
            print(
                f"llmobs: upgraded the store at {path} from schema {store.upgraded_from} to "
                f"{SCHEMA_VERSION}; pytest-llmobs versions that read only schema "
                f"{store.upgraded_from} can no longer open it",
                file=sys.stderr,
            )
        return store

    def close_all(self) -> None:
        while self.stores:
            with contextlib.suppress(sqlite3.Error):  # the command's own outcome stands
                self.stores.pop().close()


def open_store(args: argparse.Namespace, *, read_only: bool = False) -> Store:
    """The store of the command's ``--store`` option, opened for `main` to close."""
    opened: OpenedStores = args.opened
    return opened.open(args.store, read_only=read_only)


def check_count(value: int, option: str, *, minimum: int = 0) -> int:
    """``value`` of a count option when it is at least ``minimum``; otherwise a `CliError`."""
    if value < minimum:
        why = "negative" if value < 0 else "too small"
        raise CliError(f"{option}: {value} is {why}; expected N >= {minimum}")
    return value


def nonempty(expected: str) -> Callable[[str], str]:
    """An argparse ``type=`` refusing an empty (or blank) value, which an unset ``$VARIABLE``
    gives (``--store "$STORE"``): silently read as "not given" it would, say, prune the default
    store. ``expected`` says what the option takes."""

    def check(value: str) -> str:
        if not value.strip():
            raise argparse.ArgumentTypeError(
                f"{value!r} is empty (an unset variable?); expected {expected}"
            )
        return value

    check.__name__ = expected  # (what argparse would name in an "invalid ... value" message)
    return check


FILE = nonempty("a file name")
DIRECTORY = nonempty("a directory")
"""The ``type=`` of every option naming a file or a directory: an empty one (an unset variable)
is a usage error, not "not given" (a default store, stdout)."""
