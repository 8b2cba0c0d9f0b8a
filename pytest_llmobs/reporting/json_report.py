"""``--llm-json``: the finished run written as JSON, in the same form as ``llmobs export``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pytest_llmobs.exports import dump_run
from pytest_llmobs.file_output import write_file


def write_json(run: Mapping[str, Any], path: Path) -> Path:
    """Write ``run`` (as `Store.load_run` returns it) to ``path`` as `write_file` does: a file
    is replaced atomically (a reader never sees half a run), a pipe or device written into."""
    return write_file(path, dump_run(run) + "\n")
