"""Where and when a run happened: its id, its default name, the git state, the versions, the
process."""

from __future__ import annotations

import datetime as dt
import platform
import secrets
import subprocess
from pathlib import Path
from typing import Any

from pytest_llmobs import __version__


def new_run_id(now: dt.datetime | None = None) -> str:
    """A sortable, readable run id: ``20261127T204433-3f9a1c``."""
    stamp = (now or dt.datetime.now()).strftime("%Y%m%dT%H%M%S")
    return f"{stamp}-{secrets.token_hex(3)}"


def git_environment(directory: Path) -> dict[str, Any]:
    """Commit, branch and dirty flag of the repository at ``directory``, when there is one.

    One ``git status --porcelain=v2 --branch`` answers all three: a process costs milliseconds
    at every session start, and under ``run_experiment`` it competes with the first items.
    """
    try:
        done = subprocess.run(
            ["git", "status", "--porcelain=v2", "--branch", "--untracked-files=no"],
            cwd=directory,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return {}
    if done.returncode != 0:
        return {}  # not a repository (or no git)
    headers = {}
    dirty = False
    for line in done.stdout.splitlines():
        if line.startswith("# "):
            name, _, value = line[2:].partition(" ")
            headers[name] = value
        elif line:
            dirty = True  # a changed tracked file
    commit = headers.get("branch.oid", "(initial)")
    if commit == "(initial)":
        return {}  # no commit yet
    branch = headers.get("branch.head")
    return {
        "git_commit": commit,
        "git_branch": "HEAD" if branch == "(detached)" else branch,  # as rev-parse names it
        "git_dirty": dirty,
    }


def environment(directory: Path) -> dict[str, Any]:
    """Where the run happened, without host names."""
    import pytest

    return {
        **git_environment(directory),
        "python": platform.python_version(),
        "platform": platform.system(),
        "pytest": pytest.__version__,
        "plugin_version": __version__,
    }


def default_run_name(model: str, started_at: float) -> str:
    stamp = dt.datetime.fromtimestamp(started_at).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{model.split('?', 1)[0]}@{stamp}"
