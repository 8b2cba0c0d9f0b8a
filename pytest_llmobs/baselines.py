"""Baselines: the run a new run is compared with.

A reference (``--llm-baseline=REF``, ``llmobs compare REF ...``) resolves in this order:

1. an existing file: a run exported by ``llmobs export`` (validated here, at the edge);
2. a saved baseline name, a run id, a run name, a unique run id prefix or ``latest``
   (`Store.resolve_run`, as every ``llmobs`` command reads a RUN).

A baseline name cannot read as a stored run (its id, an id prefix or its name), and a run id
(``--llm-run-id``) or run name (``--llm-run-name``) cannot be a saved baseline's name, so a
word names one run wherever it is given.

A reference that looks like a file (ends in ``.json`` or holds a path separator) but does not
exist is reported as a missing file; anything else unknown lists the saved baselines and recent
runs.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pytest_llmobs.aggregates import upgrade_aggregates
from pytest_llmobs.export_schema import export_problem
from pytest_llmobs.exports import EXPORT_FORMAT
from pytest_llmobs.store import Store, StoreError


class BaselineError(ValueError):
    """A baseline reference does not resolve, or its file is missing or malformed."""


def load_export(path: Path, what: str = "baseline") -> dict[str, Any]:
    """Read and validate a run exported by ``llmobs export``; problems raise `BaselineError`
    naming the file and what is wrong."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BaselineError(f"{what} file {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BaselineError(f"{what} file {str(path)!r} cannot be read: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BaselineError(f"{what} file {str(path)!r} is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != EXPORT_FORMAT:
        raise BaselineError(
            f"{what} file {str(path)!r} is not a pytest-llmobs run export "
            f"(expected \"format\": {EXPORT_FORMAT!r}; write one with 'llmobs export RUN -o FILE')"
        )
    problem = export_problem(data)
    if problem is not None:
        raise BaselineError(f"{what} file {str(path)!r} is not a valid run export: {problem}")
    upgrade_aggregates(data)  # (an export an older version wrote)
    return data


@dataclass(slots=True)
class Baseline:
    """A resolved baseline: the run as plain data, and how it was named."""

    run: dict[str, Any]
    source: Literal["file", "saved baseline", "run"]
    ref: str


"""The session's resolved ``--llm-baseline`` (controller only), in ``config.stash``."""


def _looks_like_a_file(ref: str) -> bool:
    return ref.endswith(".json") or "/" in ref or os.sep in ref


def resolve_baseline(
    ref: str, *, store: Store | None, path: Path | None = None, what: str = "baseline"
) -> Baseline:
    """Resolve ``ref`` (see the module docstring); ``path`` is ``ref`` as a file path when it
    should be read relative to somewhere other than the current directory. ``what`` names the
    reference in errors (``run`` for the run a baseline is compared with)."""
    candidate = path if path is not None else Path(ref)
    if candidate.is_file():
        return Baseline(load_export(candidate, what), "file", ref)
    if _looks_like_a_file(ref):
        if candidate.is_dir():
            raise BaselineError(
                f"{what} file {str(candidate)!r} is a directory; expected a run export "
                "written by 'llmobs export RUN -o FILE'"
            )
        raise BaselineError(f"{what} file {str(candidate)!r} does not exist")
    if store is not None:
        saved = store.get_baseline(ref) if ref.strip() else None
        if saved is not None:
            return Baseline(store.load_run(saved), "saved baseline", ref)
        try:
            run_id = store.resolve_run(ref)
        except StoreError as exc:
            # 'latest' names no baseline: when the store has no runs, say that.
            if ref == "latest" or "ambiguous" in str(exc) or not ref.strip():
                raise BaselineError(str(exc)) from None
        else:
            return Baseline(store.load_run(run_id), "run", ref)
    raise BaselineError(unknown_message(ref, store, what))


def unknown_message(ref: str, store: Store | None, what: str = "baseline") -> str:
    where = f" in {store.path or 'the in-memory store'}" if store is not None else ""
    saved = ", ".join(b["name"] for b in store.list_baselines()) if store is not None else ""
    recent = (
        ", ".join(f"{r['name']} ({r['id']})" for r in store.list_runs(limit=5))
        if store is not None
        else ""
    )
    return (
        f"unknown {what} {ref!r}: not a file, a saved baseline or a run{where}; "
        f"saved baselines: {saved or '(none)'}; recent runs: {recent or '(none)'}"
    )


_RUN_ID_LIKE = re.compile(r"\d{1,8}|\d{8}T\d{0,6}|\d{8}T\d{6}-[0-9a-f]{0,6}", re.IGNORECASE)
"""A generated run id (``20261127T204433-3f9a1c``, `pytest_llmobs.run_environment.new_run_id`)
or a prefix of one: where a RUN is accepted, such a name would resolve to a run."""

RESERVED = (
    "'latest' and names shaped like a run id or its prefix (e.g. '20261127T204433-3f9a1c', "
    "'20261127') are reserved for runs"
)


def check_name(name: str) -> str:
    """A baseline name: non-empty, not one that would read as a file path, and not one that
    reads as a run where a RUN is accepted (``latest``, a run id or id prefix)."""
    if not name.strip() or name != name.strip():
        raise BaselineError(f"a baseline name must be non-empty without outer spaces; got {name!r}")
    if not name.isprintable():
        raise BaselineError(
            f"baseline name {name!r} holds a control character (newline, tab...); "
            "use printable characters only"
        )
    if _looks_like_a_file(name):
        raise BaselineError(
            f"baseline name {name!r} would read as a file path; use a name without '/' or '.json'"
        )
    if name == "latest" or _RUN_ID_LIKE.fullmatch(name):
        raise BaselineError(f"baseline name {name!r} is reserved: {RESERVED}; pick another name")
    return name


def check_no_clash(store: Store, name: str) -> str:
    """``name`` when no stored run reads as it: a baseline named like a run's id, a prefix of
    one or a run's name would make the same word mean two runs."""
    clash = store.run_clash(name)
    if clash is not None:
        raise BaselineError(
            f"baseline name {name!r} is {clash}; a baseline name must not read as a run "
            "(its id, an id prefix or its name); pick another name"
        )
    return name


def save_baseline(store: Store, name: str, run_ref: str = "latest", *, force: bool = False) -> str:
    """Save the run ``run_ref`` as baseline ``name``; returns the run id. A run that did not
    pass is refused unless ``force`` (as ``--llm-save-baseline`` saves passed runs only)."""
    check_no_clash(store, check_name(name))
    try:
        run_id = store.resolve_run(run_ref)
        status = store.load_run(run_id)["status"] if not force else "passed"
    except StoreError as exc:
        raise BaselineError(str(exc)) from None
    if status != "passed":
        raise BaselineError(
            f"run {run_id} did not pass (status {status}); a baseline is a run that passed: "
            "pass --force to save it anyway"
        )
    store.save_baseline(name, run_id)
    return run_id
