"""The files a session's reports (``--llm-report``, ``--llm-json``) are written to, checked
when it starts: a directory, a place that cannot be written, a file another report writes, or
a file of a store (`store_files`) is a `pytest.UsageError` naming the option, not a report
lost (or a store destroyed) after an hour of tests.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import pytest

from pytest_llmobs.file_output import is_stream, unwritable


def real_path(path: Path) -> Path:
    """``path`` absolute, through symlinks and ``..``; a pipe or device (`is_stream`) keeps its
    name: /dev/stdout resolves through /proc/self/fd/1 to ``pipe:[N]``, which cannot be opened."""
    return Path(os.path.abspath(path)) if is_stream(path) else path.resolve()


def check_report_path(text: str, path: Path, origin: str) -> Path:
    """``path`` (``text`` as given, resolved) when a report can be written there; a directory,
    or a ``text`` ending in ``/`` (which `Path` would silently drop), is a usage error naming
    ``origin``."""
    if path.is_dir():
        raise pytest.UsageError(f"{origin}: {str(path)!r} is a directory; expected a file path")
    if os.path.basename(text) in ("", ".", ".."):
        raise pytest.UsageError(f"{origin}: {text!r} names a directory; expected a file path")
    problem = unwritable(path)
    if problem is not None:
        raise pytest.UsageError(f"{origin}: cannot write {str(path)!r}: {problem}")
    return path


OTHER_REPORT_FILES = {
    "xmlpath": "--junitxml",
    "htmlpath": "--html (pytest-html)",
    "report_log": "--report-log (pytest-reportlog)",
}
"""Files pytest or a common plugin writes when the session ends (option dest → flag)."""


def refuse_shared_report_files(
    config: pytest.Config, ours: Mapping[str, Path | None], store_dir: Path | None
) -> None:
    """A usage error when two reports would be written to one file (the last one written
    would silently replace the other), or one to a file of a store (the session's own in
    ``store_dir``, or another): ``ours`` maps where each of our reports was asked for to its
    resolved path."""
    taken: dict[Path, str] = {}
    for dest, flag in OTHER_REPORT_FILES.items():
        value = getattr(config.option, dest, None)
        if isinstance(value, str) and value:
            written = real_path(Path(value))
            _refuse_a_store_file(flag, written, store_dir)
            taken.setdefault(written, flag)
    for origin, path in ours.items():
        if path is None:
            continue
        _refuse_a_store_file(origin, path, store_dir)
        other = taken.setdefault(real_path(path), origin)
        if other != origin:
            why = "the report written last would replace the other"
            if is_stream(path):
                why = "both reports would be written into it, one after the other"
            raise pytest.UsageError(
                f"{origin}: {str(path)!r} is also the file {other} writes; expected a file of "
                f"its own ({why})"
            )


def _refuse_a_store_file(origin: str, path: Path, store_dir: Path | None) -> None:
    from pytest_llmobs.store_files import store_holding  # (only when a report is asked for)

    store = store_holding(path, store_dir)
    if store is not None:
        raise pytest.UsageError(
            f"{origin}: {str(path)!r} is a file of the llmobs store in {store}; writing there "
            "would destroy its runs; expected a file of its own"
        )
