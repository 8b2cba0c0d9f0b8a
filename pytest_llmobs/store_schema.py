"""The store's tables: the schema a new store is created with, its version number, and the
statements that bring a store written by an older pytest-llmobs up to that version."""

from __future__ import annotations

SCHEMA_VERSION = 3

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    model TEXT,
    status TEXT NOT NULL,
    started_at REAL NOT NULL,
    ended_at REAL,
    pid INTEGER,
    header TEXT NOT NULL,
    summary TEXT
);
CREATE INDEX IF NOT EXISTS runs_by_name ON runs (name, started_at);
CREATE TABLE IF NOT EXISTS items (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    node_id TEXT NOT NULL,
    dataset TEXT,
    item_id TEXT,
    repeat INTEGER NOT NULL DEFAULT 0,
    outcome TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
);
CREATE TABLE IF NOT EXISTS prompt_versions (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    hash TEXT NOT NULL,
    data TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (name, version),
    UNIQUE (name, hash)
);
CREATE TABLE IF NOT EXISTS prompt_labels (
    name TEXT NOT NULL,
    label TEXT NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (name, label)
);
CREATE TABLE IF NOT EXISTS datasets (
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    data TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (name, version)
);
"""


MIGRATIONS: dict[int, str] = {
    2: """
CREATE TABLE IF NOT EXISTS baselines (
    name TEXT PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    saved_at REAL NOT NULL
)
""",
    3: """
CREATE TABLE IF NOT EXISTS expected_items (
    run_id TEXT PRIMARY KEY REFERENCES runs (id) ON DELETE CASCADE,
    node_ids TEXT NOT NULL
)
""",
}
"""Statements that bring a store from the previous schema version to the key's version."""
