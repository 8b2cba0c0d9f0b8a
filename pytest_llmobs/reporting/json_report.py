"""``--llm-json``: the finished run written as JSON, in the same form as ``llmobs export``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pytest_llmobs.exports import dump_run


def write_json(run: Mapping[str, Any], path: Path) -> Path:
    """Write ``run`` (as `Store.load_run` returns it) to ``path``; parents are created and the
    file is replaced atomically, so a reader never sees half a run."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    partial.write_text(dump_run(run) + "\n", encoding="utf-8")
    os.replace(partial, path)
    return path
