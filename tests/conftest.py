"""Shared fixtures for the pytester-based tests: suite files, xdist modes, reading stored runs."""

from __future__ import annotations

import contextlib
import importlib
import json
import sqlite3
import threading
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import pytest_llmobs
from pytest_llmobs.store import STORE_FILENAME, Store

# In-process `pytester` runs drop the modules they imported once they end, while
# `pytest_llmobs.__getattr__` caches what it hands out (`observe`, `start_span`...). A name
# cached in one inner session would then belong to a stale module copy in the next one (spans
# going to a tracer nobody reads). Importing every public name here keeps one copy for all.
for _name in pytest_llmobs.__all__:
    getattr(pytest_llmobs, _name)

# The same snapshot makes every in-process session re-import (and assertion-rewrite) what the
# hypothesis plugin loads in its terminal summary and what the plugin loads when a suite uses it:
# about a second per session. Loading them once here keeps them across sessions.
for _module in (
    "hypothesis",
    "hypothesis.internal.observability",
    "hypothesis.internal.conjecture.providers",
    "numpy",
    "httpx",
    "httpcore",
    "sklearn.metrics",
    "pytest_llmobs.plugin",
    "pytest_llmobs.configure",
    "pytest_llmobs.reporting.terminal",
    "pytest_llmobs.evaluators.similarity",
    "pytest_llmobs.evaluators.judge",
    "pytest_llmobs.calibration",
):
    importlib.import_module(_module)

INNER_SESSION_OPTIONS = "-p no:langsmith_plugin -o asyncio_default_fixture_loop_scope=function"
"""What every inner (pytester) session gets through PYTEST_ADDOPTS, which pytester empties:
langchain-core's langsmith dependency installs a pytest plugin that adds more than a second to
each session's start-up, and pytest-asyncio warns in each session without the loop scope."""


@pytest.fixture(autouse=True)
def _inner_session_options(request: pytest.FixtureRequest) -> Iterator[None]:
    if "pytester" not in request.fixturenames:
        yield
        return
    request.getfixturevalue("pytester")  # pytester clears PYTEST_ADDOPTS first
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTEST_ADDOPTS", INNER_SESSION_OPTIONS)
        yield


CAPITALS = [
    {"id": "france", "input": "What is the capital of France?", "expected_output": "Paris"},
    {"id": "japan", "input": "What is the capital of Japan?", "expected_output": "Tokyo"},
    {"id": "italy", "input": "What is the capital of Italy?", "expected_output": "Rome"},
    {"id": "spain", "input": "What is the capital of Spain?", "expected_output": "Madrid"},
]
"""The items of the ``capitals`` dataset written by `write_capitals`."""


def jsonl(items: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(item) + "\n" for item in items)


class Runs:
    """Reads the runs a pytester session stored (``<dir>/.llmobs/llmobs.db`` by default)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def db(self, store_dir: str = ".llmobs") -> Path:
        return self.directory / store_dir / STORE_FILENAME

    @contextlib.contextmanager
    def open(self, store_dir: str = ".llmobs") -> Iterator[Store]:
        path = self.db(store_dir)
        assert path.is_file(), f"no store at {path}"
        store = Store(path)
        try:
            yield store
        finally:
            store.close()

    def list(self, store_dir: str = ".llmobs") -> list[dict[str, Any]]:
        with self.open(store_dir) as store:
            return store.list_runs()

    def load(self, ref: str = "latest", store_dir: str = ".llmobs") -> dict[str, Any]:
        """The run ``ref`` (default: the latest) with its items, as plain data."""
        with self.open(store_dir) as store:
            return store.load_run(store.resolve_run(ref))

    def latest(self, store_dir: str = ".llmobs") -> dict[str, Any]:
        return self.load("latest", store_dir)

    @staticmethod
    def items(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """The run's items keyed by node id (xdist stores them in completion order)."""
        return {item["node_id"]: item for item in run["items"]}

    @staticmethod
    def aggregates(run: dict[str, Any], group: str) -> dict[str, dict[str, Any]]:
        """One stored aggregate group (a dataset name or ``*``) keyed by aggregate name."""
        return {a["name"]: a for a in run["aggregates"][group]}


@pytest.fixture
def runs(pytester: pytest.Pytester) -> Runs:
    """Read back the runs stored by sessions run in the ``pytester`` directory."""
    return Runs(pytester.path)


@pytest.fixture
def capitals(pytester: pytest.Pytester) -> list[dict[str, Any]]:
    """Write ``datasets/capitals.jsonl`` (four capital-city questions) and return its items."""
    pytester.makefile(".jsonl", **{"datasets/capitals": jsonl(CAPITALS)})
    return [dict(item) for item in CAPITALS]


@pytest.fixture(params=[pytest.param((), id="no-xdist"), pytest.param(("-n", "2"), id="xdist")])
def xdist_args(request: pytest.FixtureRequest) -> tuple[str, ...]:
    """Run a behaviour test without xdist and with two xdist workers."""
    args: tuple[str, ...] = request.param
    return args


_opened_stores: list[tuple[Any, str]] | None = None
"""While a test runs: the connection of every `Store` it opened, and where it was opened."""
_open_store = Store.__init__


def _watched_open(self: Store, *args: Any, **kwargs: Any) -> None:
    _open_store(self, *args, **kwargs)
    if _opened_stores is not None:
        caller = next(
            (
                f
                for f in reversed(traceback.extract_stack(limit=12)[:-1])
                if "pytest_llmobs" not in f.filename
            ),
            None,
        )
        _opened_stores.append((self._db, f"{caller.filename}:{caller.lineno}" if caller else "?"))


Store.__init__ = _watched_open  # type: ignore[method-assign]


@pytest.fixture(autouse=True)
def _stores_are_closed() -> Iterator[None]:
    """Every store a test opens (the plugin's, the CLI's, an exporter's scratch store, the
    test's own) is closed by the end of the test: Python 3.13 warns of a connection collected
    unclosed, which fails whatever test the collection happens in."""
    global _opened_stores
    _opened_stores = opened = []
    try:
        yield
    finally:
        _opened_stores = None
    for thread in threading.enumerate():
        if thread.name == "llmobs-store-close":  # `Store.close(wait=False)`
            thread.join()
    left_open = []
    for db, where in opened:
        try:
            db.execute("SELECT 1")
        except sqlite3.ProgrammingError:
            continue  # closed
        left_open.append(where)
        db.close()
    assert not left_open, f"stores opened and never closed, at: {left_open}"
