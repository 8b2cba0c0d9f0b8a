"""``--llm-upload``: ship the finished, stored run from the controller, and say what happened.

An upload never changes the outcome of the tests: what was not sent is listed (per kind, with the
first error's host and status) and kept pending in the store for ``llmobs upload --pending``.
Only ``--llm-upload-strict`` turns an incomplete upload into a failed session.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import pytest

from pytest_llmobs.exporters import ExporterOptions, ExportError, ExportReport, create_exporter
from pytest_llmobs.exporters.state import note_not_started

if TYPE_CHECKING:
    from pytest_llmobs.session import SessionState

REPORTS_KEY = pytest.StashKey[list[ExportReport]]()


def upload_after_session(state: SessionState, session: pytest.Session) -> None:
    """Upload the run to each ``--llm-upload`` target; with ``--llm-upload-strict`` a failed
    upload sets the exit status."""
    settings = state.settings
    if not settings.upload or state.result is None or state.recorder is None:
        return
    run = state.store.load_run(state.result.run_id)
    reports = session.config.stash.setdefault(REPORTS_KEY, [])
    for target in settings.upload:
        options = ExporterOptions(
            store=state.store, environ=os.environ, legacy=settings.langfuse_legacy
        )
        try:
            report = create_exporter(target, options).export(run)
        except ExportError as exc:
            report = ExportReport(target=target, run_id=str(run["id"]))
            report.failed["run"] = 1
            report.error(f"not sent: {exc}")
            note_not_started(state.store, target, report.run_id)
        reports.append(report)
    failed = any(not r.ok for r in reports)
    if failed and settings.upload_strict and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def write_upload_summary(terminalreporter: Any) -> None:
    """The upload reports, after the run summary (red when something was not sent)."""
    reports = terminalreporter.config.stash.get(REPORTS_KEY, [])
    for report in reports:
        for line in report.lines():
            terminalreporter.write_line(line, red=not report.ok)
