"""Writing a report file (``--llm-report``, ``--llm-json``, ``llmobs report -o``) and checking,
when the session starts, that it can be written. Kept apart from `reporting.files`, which
needs the store: the options are read in every session, reports written in few."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path


def is_stream(path: Path) -> bool:
    """``path`` exists and is neither a regular file nor a directory: a FIFO, a device such as
    /dev/null, /dev/stdout, a process substitution (``>(jq .)``); through symlinks."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return False
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


def write_file(path: Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path``. A regular file, or a new one (its directories made),
    is replaced whole through a temporary file beside it and `os.replace`, so a reader never
    sees half a report; a path that `is_stream` is opened and written into, as
    ``llmobs export -o`` does: replacing it would leave a reader waiting on the pipe forever,
    and for root swap a device (/dev/null) for a file."""
    if is_stream(path):
        with open(path, "w", encoding="utf-8") as stream:
            stream.write(text)
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, path)
    except BaseException:  # (a full disk: no half-written file left beside the report)
        with contextlib.suppress(OSError):
            partial.unlink()
        raise
    return path


def unwritable(path: Path) -> str | None:
    """Why ``path`` cannot be written, found by doing it: a scratch file in the nearest
    directory that exists (where the report's missing directories would be made; nothing is
    left behind, and nothing is made for a session that writes no report), or ``None``. A pipe
    or device (`is_stream`), written into and not replaced, needs only write permission:
    opening a pipe now would wait for its reader."""
    if is_stream(path):
        return None if os.access(path, os.W_OK) else "Permission denied (not writable)"
    existing = next((p for p in path.parents if p.exists()), None)
    if existing is None:
        return None
    if not existing.is_dir():  # a file where a directory of the path should be
        return f"{str(existing)!r} is a file, not a directory"
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        return f"{exc.strerror or exc} ({str(existing)!r})"
    return None
