"""Report files written once the run is finished: ``--llm-report`` (HTML) and ``--llm-json``.

Registered only in the process that records the run (never on xdist workers), and only when a
file is asked for. Both are built from the stored run, so they hold exactly what
``llmobs export`` and ``llmobs report`` would give for it later (from the items kept in memory
too, when the store failed during the session). A file that cannot be written fails the session:
a CI job must not go green without the artifact it was asked for. `file_output.write_file`
writes each (and ``llmobs report -o``'s): a regular file whole or not at all, a pipe or device
into it.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_llmobs.exports import with_snapshots
from pytest_llmobs.stash import session_state
from pytest_llmobs.store import StoreError

if TYPE_CHECKING:
    from pytest_llmobs.run_result import RunResult


class ReportFiles:
    """Writes the requested files after every other ``pytest_llmobs_run_finished``
    implementation (a baseline comparison, say) has had its say, then names them in the
    terminal summary."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.lines: list[tuple[str, bool]] = []
        """(line, is an error) pairs for the terminal summary."""
        self.failed = False
        """A requested file was not written."""

    @pytest.hookimpl(trylast=True)
    def pytest_llmobs_run_finished(self, result: RunResult, config: pytest.Config) -> None:
        from pytest_llmobs.reporting.html import write_html
        from pytest_llmobs.reporting.json_report import write_json

        state = session_state(config)
        settings = state.settings
        wanted: list[tuple[str, Path, Callable[[Mapping[str, Any], Path], Path]]] = []
        if settings.report_html is not None:
            wanted.append(("HTML report", settings.report_html, write_html))
        if settings.report_json is not None:
            wanted.append(("JSON run", settings.report_json, write_json))
        assert state.recorder is not None, "a run finished without a recorder"
        try:
            run = state.recorder.load_run()
        except StoreError as exc:
            self._error(f"llmobs: cannot write reports: {exc}")
            return
        except sqlite3.DatabaseError as exc:  # the store broke as the session ended
            self._error(f"llmobs: cannot write reports: {state.store.unusable(exc)}")
            return
        if settings.report_json is not None:  # what a merge or an upload elsewhere needs
            with contextlib.suppress(StoreError, sqlite3.DatabaseError):  # (a broken store)
                run = with_snapshots(run, state.store)
        for label, path, write in wanted:
            try:
                write(run, path)
            except OSError as exc:
                self._error(f"llmobs: could not write the {label} to {path}: {exc}")
            else:
                self.lines.append((f"llmobs: {label} written to {path}", False))

    def _error(self, line: str) -> None:
        self.lines.append((line, True))
        self.failed = True

    @pytest.hookimpl(trylast=True)  # after the session's hooks, which write the files
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.failed and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
            self.lines.append(("llmobs: a report was not written: the session fails", True))

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        for line, error in self.lines:
            terminalreporter.write_line(line, red=error, bold=error)
