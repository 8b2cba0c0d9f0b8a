"""``--llm-upload``: ship the finished, stored run from the controller, and say what happened.

An upload never changes the outcome of the tests: what was not sent is listed (per kind, with the
first error's host and status) and kept pending in the store for ``llmobs upload --pending``,
given ``--to`` and ``--store`` when ``llmobs``, run where pytest was, would not use that target
and store by itself (after ``--llm-no-store`` there is no store: the summary says that it cannot
be retried).
Only ``--llm-upload-strict`` turns an incomplete upload into a failed session, and the summary
then says so in a line of its own. An exporter's unexpected exception is reported like a failed
upload, with what the exporter had sent before it: it never ends the session with a traceback.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_llmobs.exporters import (
    ExporterOptions,
    ExportError,
    ExportReport,
    create_exporter,
    reports_made,
)
from pytest_llmobs.exporters.commands import store_option
from pytest_llmobs.exporters.state import note_not_started

if TYPE_CHECKING:
    from pytest_llmobs.session import SessionState

REPORTS_KEY = pytest.StashKey[list[ExportReport]]()
STRICT_KEY = pytest.StashKey[str]()
"""The line saying that ``--llm-upload-strict`` failed the session, when it did."""


def upload_after_session(state: SessionState, session: pytest.Session) -> None:
    """Upload the run to each ``--llm-upload`` target; with ``--llm-upload-strict`` a failed
    upload sets the exit status."""
    settings = state.settings
    if not settings.upload or state.result is None or state.recorder is None:
        return
    run = state.recorder.load_run()
    reports = session.config.stash.setdefault(REPORTS_KEY, [])
    path = state.store.path  # None after --llm-no-store: kept in memory only
    cwd = Path(session.config.invocation_params.dir)  # where the user goes on with `llmobs`
    store_hint = store_option(Path(path).parent, cwd) if path is not None else ""
    for target in settings.upload:
        options = ExporterOptions(
            store=state.store, environ=os.environ, legacy=settings.langfuse_legacy
        )
        with reports_made() as made:
            try:
                report = create_exporter(target, options).export(run)
            except ExportError as exc:
                report = ExportReport(target=target, run_id=str(run["id"]))
                report.failed["run"] = 1
                report.error(f"not sent: {exc}")
                note_not_started(state.store, target, report.run_id)
            except Exception as exc:  # a bug in an exporter: report it, keep the session's outcome
                report = _stopped(target, str(run["id"]), made, exc)
        report.stored = path is not None
        report.store_option = store_hint
        reports.append(report)
    failed = [r for r in reports if not r.ok]
    if failed and settings.upload_strict:
        if session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
            verdict = "the session fails (exit status 1)"
        else:
            verdict = "the session fails for that too"
        where = ", ".join(r.target for r in failed)
        session.config.stash[STRICT_KEY] = (
            f"--llm-upload-strict: the upload to {where} did not deliver everything "
            f"(NOT SENT above): {verdict}"
        )


def _stopped(target: str, run_id: str, made: list[ExportReport], exc: Exception) -> ExportReport:
    """The report of an upload that an exporter's unexpected ``exc`` stopped: the exporter's own
    so far (what it sent before), else an empty one; the rest of the run is not sent."""
    report = next((r for r in made if r.run_id == run_id), None)
    if report is None:
        report = ExportReport(target=target, run_id=run_id)
    report.count(report.failed, "run")
    detail = " ".join(str(exc).split())[:200]
    stop = f"upload stopped by an unexpected {type(exc).__name__}: {detail} (a bug: report it)"
    if report.first_error is None:
        report.error(stop)
    else:  # (an earlier request failed: the stop must show too)
        report.notes.insert(0, stop)
    return report


def write_upload_summary(terminalreporter: Any) -> None:
    """The upload reports, after the run summary (red when something was not sent)."""
    from pytest_llmobs.reporting.terminal import line_writer

    write = line_writer(terminalreporter)  # (a target or run name the terminal cannot write)
    reports = terminalreporter.config.stash.get(REPORTS_KEY, [])
    for report in reports:
        for line in report.lines():
            write(line, red=not report.ok)
    strict = terminalreporter.config.stash.get(STRICT_KEY, None)
    if strict is not None:
        write(strict, red=True, bold=True)
