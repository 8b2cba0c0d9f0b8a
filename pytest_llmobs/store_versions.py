"""Prompt versions (numbered per name, moved by labels) and dataset snapshots: the versioned
content runs refer to, each kept once per content hash.

A version is stored once, but governed by every policy that uses it: one kept already (by a
session with ``--llm-redact=off``, or fewer maskers) is governed again by the policy of the
store that uses it now. Masking is idempotent, so what an earlier policy masked stays masked.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Mapping, Sequence
from typing import Any

from pytest_llmobs.store_connection import StoreConnection, stored_json

_PROMPT_SQL = (
    "SELECT data FROM prompt_versions WHERE name = ? AND version = ?",
    "UPDATE prompt_versions SET data = ? WHERE name = ? AND version = ?",
)
_DATASET_SQL = (
    "SELECT data FROM datasets WHERE name = ? AND version = ?",
    "UPDATE datasets SET data = ? WHERE name = ? AND version = ?",
)


class ContentVersions(StoreConnection):
    """Prompt versions with their labels, and dataset snapshots."""

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
                self._govern_again_now(_PROMPT_SQL, (name, version))
            else:
                (latest,) = self._db.execute(
                    "SELECT COALESCE(MAX(version), 0) FROM prompt_versions WHERE name = ?", (name,)
                ).fetchone()
                version = int(latest) + 1
                self._db.execute(
                    "INSERT INTO prompt_versions (name, version, hash, data, created_at)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (name, version, content_hash, stored_json(self._governed(data)), time.time()),
                )
                self._set_label(name, "latest", version)
            for label in labels:
                self._set_label(name, label, version)
        self.registered_prompts[(name, version)] = content_hash
        return version

    def import_prompt_version(self, prompt: Mapping[str, Any]) -> bool:
        """Keep a prompt version registered in another store (an xdist worker's, a shard's),
        unless this store already has that name and version or that content (then governed
        again by this store's policy); True when it was added.

        Its labels move to the version as `register_prompt` moves a prompt file's: onto this
        store's version of that content, from whichever version held them; ``latest`` is this
        store's own (its newest version), never taken from the other store."""
        name, version = str(prompt["name"]), int(prompt["version"])
        data = {k: v for k, v in prompt.items() if k not in ("name", "version", "hash", "labels")}
        data = self._governed(data)
        labels = [
            label
            for label in prompt.get("labels") or ()
            if isinstance(label, str) and label and label != "latest"
        ]
        with self._transaction():
            added = self._db.execute(
                "INSERT OR IGNORE INTO prompt_versions (name, version, hash, data, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (name, version, prompt["hash"], stored_json(data), time.time()),
            ).rowcount
            row = self._db.execute(
                "SELECT version FROM prompt_versions WHERE name = ? AND hash = ?",
                (name, prompt["hash"]),
            ).fetchone()
            if added:
                (newest,) = self._db.execute(
                    "SELECT MAX(version) FROM prompt_versions WHERE name = ?", (name,)
                ).fetchone()
                self._set_label(name, "latest", int(newest))
            for label in labels if row is not None else ():  # (content kept: labels move)
                self._set_label(name, label, int(row[0]))
        if not added and row is not None:
            self.regovern_prompt(name, int(row[0]))
        return bool(added)

    def regovern_prompt(self, name: str, version: int) -> None:
        """Govern the stored prompt version ``name`` ``version`` again by this store's policy
        (a version an earlier session stored less masked, which this one uses)."""
        self._govern_again(_PROMPT_SQL, (name, version))

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

    def prompt_hashes(self, name: str) -> dict[int, str]:
        """The stored versions of ``name``: version number -> content hash."""
        return {
            int(r[0]): str(r[1])
            for r in self._db.execute(
                "SELECT version, hash FROM prompt_versions WHERE name = ? ORDER BY version", (name,)
            )
        }

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
        """Keep a (governed) snapshot of a dataset version (once per content hash); one kept
        already is governed again by this store's policy (`regovern_dataset`)."""
        if not self.has_dataset(name, version):
            rows = self._governed_rows(items)
            with self._transaction():
                added = self._db.execute(
                    "INSERT OR IGNORE INTO datasets (name, version, data, created_at)"
                    " VALUES (?, ?, ?, ?)",
                    (name, version, stored_json(rows), time.time()),
                ).rowcount
            if added:
                return
        self.regovern_dataset(name, version)

    def _governed_rows(self, items: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Dataset items as stored: governed (masked, cut) when the store has a policy."""
        if self.governance is None:
            return [dict(i) for i in items]
        return self.governance.items(items)

    def regovern_dataset(self, name: str, version: str) -> None:
        """Govern the stored snapshot of ``name`` at ``version`` again by this store's policy
        (stored by a session that masked less, or before a conftest added maskers)."""
        self._govern_again(_DATASET_SQL, (name, version))

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

    # --- governing stored content again ------------------------------------------------------

    def _governed_again(self, data: str) -> str:
        """Stored JSON ``data`` (a prompt version's content, a snapshot's items) governed by
        this store's policy; the same text when it changes nothing."""
        if self.governance is None:
            return data
        return stored_json(self.governance.value(json.loads(data)))

    def _govern_again(self, sql: tuple[str, str], key: tuple[str, str | int]) -> None:
        """Govern the stored data ``sql`` selects by ``key`` again, written only when that
        changes it. The check walks outside the write lock (most rows change nothing); the
        write walks the row as it is then, so a change another process made meanwhile is
        governed too and no policy's masking is lost."""
        if self.governance is None:
            return
        row = self._db.execute(sql[0], key).fetchone()
        if row is None or self._governed_again(row[0]) == row[0]:
            return
        with self._transaction():
            self._govern_again_now(sql, key)

    def _govern_again_now(self, sql: tuple[str, str], key: tuple[str, str | int]) -> None:
        """`_govern_again` inside the caller's transaction."""
        if self.governance is None:
            return
        select, update = sql
        row = self._db.execute(select, key).fetchone()
        if row is None:
            return
        governed = self._governed_again(row[0])
        if governed != row[0]:
            self._db.execute(update, (governed, *key))
