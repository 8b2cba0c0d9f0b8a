"""Scores as JUnit XML properties (``--junitxml``).

Each test's scores become ``<property name="llmobs.score.<name>" value="..."/>`` elements of
its ``<testcase>``, next to ``llmobs.trace_id`` and, for a test linked to a dataset item,
``llmobs.dataset`` and ``llmobs.item_id``. They ride on the teardown report's
``user_properties``, which pytest's junitxml plugin reads and xdist serialises, so the same
path works from xdist workers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

PREFIX = "llmobs."


def junit_properties(payload: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The properties of one finished item (the payload of `TestRecord.finish`)."""
    trace = payload.get("trace") or {}
    properties: list[tuple[str, str]] = []
    if trace.get("id"):
        properties.append((f"{PREFIX}trace_id", str(trace["id"])))
    if payload.get("dataset"):
        properties.append((f"{PREFIX}dataset", str(payload["dataset"])))
    if payload.get("item_id") is not None:
        properties.append((f"{PREFIX}item_id", str(payload["item_id"])))
    for score in trace.get("scores") or []:
        value = score.get("value")  # full precision; booleans as true/false
        text = str(value).lower() if isinstance(value, bool) else str(value)
        properties.append((f"{PREFIX}score.{score.get('name')}", text))
    return properties
