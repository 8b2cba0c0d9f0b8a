"""Per-object upload state, kept in the run store so an interrupted or failed upload resumes.

One row per (target, run, kind, key): ``sent`` or ``failed`` as the latest attempt left it,
with the server's id where the server assigns one (a dataset's id, a prompt's version). An object
without a row was never confirmed. A ``run`` row marks that an upload of the run was attempted
and whether everything got through, so ``llmobs upload --pending`` finds the runs with something
left to send.

A target is a server (and project, for Langfuse the hash of the public key). A run pending at a
target that received none of it (a wrong key or base URL, say) is not tied to that target: an
upload to another target of the same exporter sends it (`pending_for`) and, once that upload has
delivered all of it, it is no longer pending there (`note_started`). A run partly delivered to
another target stays pending there (`pending_elsewhere`) until it is sent there, or sent in full
to another target.

The table lives beside the store's schema (created on first use), so it needs no migration.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import sqlite3

    from pytest_llmobs.exporters import ExporterOptions, ExportReport
    from pytest_llmobs.store import Store

_DDL = """
CREATE TABLE IF NOT EXISTS upload_state (
    target TEXT NOT NULL,
    run_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    status TEXT NOT NULL,
    remote_id TEXT,
    detail TEXT,
    updated_at REAL NOT NULL,
    PRIMARY KEY (target, run_id, kind, key)
);
"""

SENT = "sent"
FAILED = "failed"
RUN_KIND = "run"


@contextlib.contextmanager
def state_store(store: Store | None) -> Iterator[Store]:
    """Where an upload keeps its state: ``store``, or without one (a run read from an export
    file) an in-memory store for this upload only, closed after it."""
    if store is not None:
        yield store
        return
    from pytest_llmobs.store import Store

    scratch = Store(None)
    try:
        yield scratch
    finally:
        scratch.close()


def _connection(store: Store) -> sqlite3.Connection:
    return store.side_table(_DDL)


class UploadState:
    """The upload state of one run for one target (e.g. ``langfuse https://host project#abc``);
    with the upload's ``report``, `finish` settles what `note_started` left to its outcome."""

    def __init__(
        self, store: Store, target: str, run_id: str, *, report: ExportReport | None = None
    ) -> None:
        self._db = _connection(store)
        self.target = target
        self.run_id = run_id
        self.report = report

    def statuses(self, kind: str) -> dict[str, str]:
        rows = self._db.execute(
            "SELECT key, status FROM upload_state WHERE target = ? AND run_id = ? AND kind = ?",
            (self.target, self.run_id, kind),
        )
        return {str(key): str(status) for key, status in rows}

    def sent(self, kind: str) -> set[str]:
        return {key for key, status in self.statuses(kind).items() if status == SENT}

    def remote_id(self, kind: str, key: str) -> str | None:
        row = self._db.execute(
            "SELECT remote_id FROM upload_state"
            " WHERE target = ? AND run_id = ? AND kind = ? AND key = ? AND status = ?",
            (self.target, self.run_id, kind, key, SENT),
        ).fetchone()
        return None if row is None or row[0] is None else str(row[0])

    def record(
        self,
        kind: str,
        keys: Iterable[str],
        status: str,
        *,
        remote_id: str | None = None,
        detail: str | None = None,
    ) -> None:
        """Set the status of ``keys`` in one transaction. The latest attempt decides: an object
        that a repeated upload failed to send again is pending again, as that upload's report
        says, and ``--pending`` sends it (ids are deterministic: the server overwrites). A
        server id is kept, but `remote_id` gives it only while the object counts as sent."""
        now = time.time()
        rows = [
            (self.target, self.run_id, kind, key, status, remote_id, detail, now) for key in keys
        ]
        if not rows:
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.executemany(
                "INSERT INTO upload_state"
                " (target, run_id, kind, key, status, remote_id, detail, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (target, run_id, kind, key) DO UPDATE SET"
                " status = excluded.status,"
                " remote_id = COALESCE(excluded.remote_id, upload_state.remote_id),"
                " detail = excluded.detail, updated_at = excluded.updated_at",
                rows,
            )
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def begin(self) -> None:
        """Note that an upload of this run started (pending until `finish` says complete)."""
        self._db.execute(
            "INSERT OR IGNORE INTO upload_state"
            " (target, run_id, kind, key, status, remote_id, detail, updated_at)"
            " VALUES (?, ?, ?, ?, ?, NULL, 'started', ?)",
            (self.target, self.run_id, RUN_KIND, self.run_id, FAILED, time.time()),
        )

    def finish(self, *, complete: bool) -> None:
        """Record whether the upload delivered all of the run; then settle, as the report's
        `settle` says, what the run left pending at other targets."""
        self._db.execute(
            "INSERT INTO upload_state"
            " (target, run_id, kind, key, status, remote_id, detail, updated_at)"
            " VALUES (?, ?, ?, ?, ?, NULL, NULL, ?)"
            " ON CONFLICT (target, run_id, kind, key) DO UPDATE SET"
            " status = excluded.status, updated_at = excluded.updated_at",
            (
                self.target,
                self.run_id,
                RUN_KIND,
                self.run_id,
                SENT if complete else FAILED,
                time.time(),
            ),
        )
        report = self.report
        if report is not None and report.settle is not None:
            settle, report.settle = report.settle, None  # (once)
            settle(complete)


def unconfigured_target(exporter: str) -> str:
    """Where a run waits whose upload to ``exporter`` could not start (its configuration was
    missing or wrong): no server is known yet, so no server's state can hold it."""
    return f"{exporter} (not configured)"


def note_not_started(store: Store | None, exporter: str, run_id: str) -> None:
    """Keep ``run_id`` pending for ``exporter`` until an upload with a configuration starts."""
    if store is not None:
        UploadState(store, unconfigured_target(exporter), run_id).finish(complete=False)


def note_started(
    options: ExporterOptions, exporter: str, run_id: str, *, target: str, report: ExportReport
) -> ExporterOptions:
    """An upload of ``run_id`` to ``target`` began with a configuration: from now on that
    target's state says what is pending, not the unconfigured entry. Returns the options to
    upload it with: a run whose last upload never started had all of it reported pending, so
    all of it is sent, even what the server holds from an earlier upload.

    What the run has pending at another target of ``exporter`` is settled when the upload ends
    (``report.settle``, see `_settle`): dropped only if this upload delivered all of the run."""
    store = options.store
    if store is None:
        return options
    waiting = _connection(store).execute(
        "DELETE FROM upload_state WHERE target = ? AND run_id = ?",
        (unconfigured_target(exporter), run_id),
    )
    if waiting.rowcount:
        options = dataclasses.replace(options, pending_only=False)
    others = _stranded(store, exporter, [target], run_id=run_id)
    if others:
        report.settle = functools.partial(
            _settle, store, run_id, others, report, full=not options.pending_only
        )
    return options


def _settle(
    store: Store,
    run_id: str,
    others: list[tuple[str, bool]],
    report: ExportReport,
    complete: bool,
    *,
    full: bool,
) -> None:
    """After an upload of ``run_id`` that delivered all of it (``complete``) or not: each of
    ``others`` (target, whether it holds part of the run) that received none of the run, or
    whose run this upload sent in ``full``, is no longer pending there when the run was
    delivered, and stays so otherwise; either way ``report`` says so. The objects such a target
    holds stay recorded, so it never gets them twice."""
    db = _connection(store)
    for other, delivered in others:
        holds = "holds part of it" if delivered else "received none of it"
        if delivered and not full:
            continue  # only what was pending here was sent: the rest is still owed there
        if not complete:
            report.notes.append(
                f"still pending for {other}, which {holds}: not all of it was delivered here, "
                "so it stays pending there too"
            )
        elif delivered:
            db.execute(
                "DELETE FROM upload_state WHERE target = ? AND run_id = ? AND kind = ?",
                (other, run_id, RUN_KIND),
            )
            report.notes.append(
                f"was pending for {other}, which {holds}: uploaded here in full, "
                "no longer pending there"
            )
        else:
            db.execute("DELETE FROM upload_state WHERE target = ? AND run_id = ?", (other, run_id))
            report.notes.append(f"was pending for {other}, which {holds}: uploaded here instead")


def pending_for(store: Store, exporter: str, targets: Iterable[str]) -> list[str]:
    """Runs with something unsent at any of ``targets`` (servers of ``exporter``), then those
    whose upload never started for want of a configuration, then those pending at another
    server of ``exporter`` that received none of them; each once, oldest first."""
    targets = list(targets)
    pending: list[str] = []
    for target in [*targets, unconfigured_target(exporter)]:
        pending.extend(r for r in runs_with_pending(store, target) if r not in pending)
    for run_id, _, delivered in _stranded_runs(store, exporter, targets):
        if not delivered and run_id not in pending:
            pending.append(run_id)
    return pending


def pending_elsewhere(store: Store, exporter: str, targets: Iterable[str]) -> list[tuple[str, str]]:
    """(run, target) for runs with something unsent at another server of ``exporter`` that
    holds part of them already: they stay pending there, oldest first."""
    stranded = _stranded_runs(store, exporter, list(targets))
    return [(run_id, target) for run_id, target, delivered in stranded if delivered]


def _stranded_runs(store: Store, exporter: str, targets: list[str]) -> list[tuple[str, str, bool]]:
    """(run, target, whether that target holds any of it) for each run with something unsent
    at a target of ``exporter`` other than ``targets`` and the unconfigured entry."""
    return [
        (run_id, target, delivered)
        for run_id in _runs_pending_anywhere(store, exporter)
        for target, delivered in _stranded(store, exporter, targets, run_id=run_id)
    ]


def _runs_pending_anywhere(store: Store, exporter: str) -> list[str]:
    rows = _connection(store).execute(
        "SELECT run_id FROM upload_state WHERE substr(target, 1, ?) = ? AND kind = ?"
        " AND status != ? GROUP BY run_id ORDER BY min(updated_at)",
        (len(exporter) + 1, f"{exporter} ", RUN_KIND, SENT),
    )
    return [str(r[0]) for r in rows]


def _stranded(
    store: Store, exporter: str, targets: list[str], *, run_id: str
) -> list[tuple[str, bool]]:
    """(target, whether it holds any of the run) for targets of ``exporter`` other than
    ``targets`` (and the unconfigured entry) where ``run_id`` has something unsent."""
    db = _connection(store)
    skip = {*targets, unconfigured_target(exporter)}
    rows = db.execute(
        "SELECT target FROM upload_state WHERE run_id = ? AND kind = ? AND status != ?"
        " AND substr(target, 1, ?) = ? ORDER BY updated_at",
        (run_id, RUN_KIND, SENT, len(exporter) + 1, f"{exporter} "),
    )
    found = []
    for (target,) in rows.fetchall():
        if target in skip:
            continue
        delivered = db.execute(
            "SELECT 1 FROM upload_state WHERE target = ? AND run_id = ? AND kind != ?"
            " AND status = ? LIMIT 1",
            (target, run_id, RUN_KIND, SENT),
        ).fetchone()
        found.append((str(target), delivered is not None))
    return found


def runs_with_pending(store: Store, target: str) -> list[str]:
    """Runs whose last upload to ``target`` left something unsent, oldest first."""
    db = _connection(store)
    rows = db.execute(
        "SELECT run_id FROM upload_state WHERE target = ? AND kind = ? AND status != ?"
        " ORDER BY updated_at",
        (target, RUN_KIND, SENT),
    )
    return [str(r[0]) for r in rows]


class Ledger:
    """Counts into the report and records each object's outcome in the upload state."""

    def __init__(
        self,
        store: Store,
        target: str,
        run_id: str,
        report: ExportReport,
        *,
        pending_only: bool,
        scrub: Callable[[str], str] | None = None,
    ) -> None:
        self.state = UploadState(store, target, run_id, report=report)
        self.report = report
        self.pending_only = pending_only
        self.scrub = scrub or (lambda text: text)
        """Hides credentials in messages (`HttpSender.scrub`): every error passes through it
        before it is shown or stored."""

    def done(
        self,
        kind: str,
        label: str,
        keys: list[str],
        *,
        remote_id: str | None = None,
        weight: int | None = None,
    ) -> None:
        self.state.record(kind, keys, SENT, remote_id=remote_id)
        self.report.count(self.report.sent, label, len(keys) if weight is None else weight)

    def failed(
        self, kind: str, label: str, keys: list[str], message: str, *, weight: int | None = None
    ) -> None:
        message = self.scrub(message)
        self.state.record(kind, keys, FAILED, detail=message[:500])
        self.report.count(self.report.failed, label, len(keys) if weight is None else weight)
        self.report.error(message)

    def todo(
        self, kind: str, label: str, keys: list[str], weight: Callable[[str], int] | None = None
    ) -> list[str]:
        """``keys`` less those already sent, when only pending objects are wanted."""
        if not self.pending_only:
            return keys
        sent = self.state.sent(kind)
        skipped = [k for k in keys if k in sent]
        self.report.count(
            self.report.skipped, label, sum(map(weight, skipped)) if weight else len(skipped)
        )
        return [k for k in keys if k not in sent]
