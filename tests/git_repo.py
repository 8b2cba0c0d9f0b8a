"""Run git in a test's repository, with an identity, so commits work on any machine."""

from __future__ import annotations

import subprocess
from pathlib import Path


def git(directory: Path, *args: str) -> str:
    """``git args...`` in ``directory``; its stdout, stripped (a failure raises)."""
    done = subprocess.run(
        ["git", "-c", "user.name=Test", "-c", "user.email=test@example.com", *args],
        cwd=directory,
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip()
