"""Runs that never stored their summary (killed, crashed, or still going): whether the
process that wrote one still runs, and the figures of the items it stored so far."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

KILLED_BEFORE_IT = "no result arrived before the session died (killed or crashed)"
"""Why a collected item of a run that never stored its summary has no result."""


def summary_so_far(
    items: Sequence[Mapping[str, Any]], declared: Sequence[Mapping[str, Any]] = ()
) -> dict[str, Any]:
    """Counts, dataset versions, aggregates and threshold verdicts of a run that never stored
    its summary (killed, or still running), from the items it stored; its thresholds are those
    its header declared (options, ini) and those its items' markers carry."""
    from pytest_llmobs.aggregate_model import ItemSummary, aggregates_to_dict
    from pytest_llmobs.aggregates import compute_aggregates
    from pytest_llmobs.thresholds import Threshold, ThresholdError, evaluate, parse_threshold

    counts: dict[str, int] = {}
    datasets: dict[str, str] = {}
    for item in items:
        outcome = str(item["outcome"])
        counts[outcome] = counts.get(outcome, 0) + 1
        datasets.update(item.get("datasets") or {})
    aggregates = compute_aggregates(ItemSummary.from_item(item) for item in items)
    written = [(t.get("expression"), t.get("dataset"), t.get("source", "")) for t in declared]
    for item in items:
        written += [
            (e, item.get("dataset"), "llm_dataset marker") for e in item.get("thresholds") or []
        ]
    thresholds: dict[tuple[str | None, str, str, float], Threshold] = {}
    for expression, dataset, source in written:
        with contextlib.suppress(ThresholdError, TypeError):  # checked when it was recorded
            parsed = parse_threshold(str(expression), dataset=dataset, source=str(source))
            thresholds.setdefault(parsed.key, parsed)
    return {
        "counts": dict(sorted(counts.items())),
        "datasets": dict(sorted(datasets.items())),
        "aggregates": aggregates_to_dict(aggregates) if items else {},
        "thresholds": [v.to_dict() for v in evaluate(list(thresholds.values()), aggregates)],
    }


def process_identity(pid: int) -> dict[str, Any]:
    """What tells process ``pid`` apart from a later one given the same pid: the host, its
    boot and the process's start time (Linux's /proc; elsewhere the host only)."""
    identity: dict[str, Any] = {"host": socket.gethostname()}
    with contextlib.suppress(OSError, ValueError, IndexError):
        identity["boot"] = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        stat = Path(f"/proc/{pid}/stat").read_text()
        identity["start"] = int(stat.rsplit(")", 1)[1].split()[19])  # field 22: starttime
    return identity


def recorded_elsewhere(process: Any) -> str | None:
    """The host a run's process identity (its header's ``process``) names, when that is not
    this machine: whether such a run still goes, nothing here can tell."""
    host = process.get("host") if isinstance(process, dict) else None
    return str(host) if host is not None and host != socket.gethostname() else None


def effective_status(status: str, pid: int | None, recorded: Any = None) -> str:
    """A run still marked ``running`` whose process is gone was interrupted (crash, kill). A
    live process with the run's pid is another one when its start time (or the boot) differs
    from the one recorded; a run recorded on another host is taken as running."""
    if status != "running" or pid is None:
        return status
    if recorded_elsewhere(recorded) is not None:
        return status  # another machine's process: nothing here can tell
    if pid == os.getpid():
        return status
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return "interrupted"
    except OSError:
        return status
    if isinstance(recorded, dict) and "start" in recorded:
        now = process_identity(pid)
        if now.get("boot") != recorded.get("boot") or now.get("start") != recorded["start"]:
            return "interrupted"  # the pid was reused by a process started since
    return status
