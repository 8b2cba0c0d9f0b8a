"""Finding the store outside pytest the way the plugin finds it inside: the rootdir's ini file.

pytest's rootdir is the directory of the first ini file found walking up from the current
directory (``pytest.ini``, ``.pytest.ini``, ``pyproject.toml`` with a pytest table, ``tox.ini``
with ``[pytest]``, ``setup.cfg`` with ``[tool:pytest]``); the store is ``llm_store`` from that
file (relative to it) or ``<rootdir>/.llmobs``. A ``--llm-store DIR`` in that file's ``addopts``
or in ``PYTEST_ADDOPTS`` wins, relative to the current directory, as pytest reads it.
"""

from __future__ import annotations

import configparser
import os
import shlex
import sys
from pathlib import Path
from typing import Any

from pytest_llmobs.settings import DEFAULT_STORE_DIR


def _toml(path: Path) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        try:
            import tomli as tomllib
        except ImportError:
            return {}
    try:
        data: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data


def _ini_section(path: Path, section: str) -> dict[str, str] | None:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, OSError, UnicodeDecodeError):
        return None
    return dict(parser[section]) if parser.has_section(section) else None


def pytest_ini_options(directory: Path) -> dict[str, Any] | None:
    """The pytest options configured by an ini file in ``directory``, or ``None``."""
    for name, section in (("pytest.ini", "pytest"), (".pytest.ini", "pytest")):
        if (directory / name).is_file():
            return _ini_section(directory / name, section) or {}
    pyproject = directory / "pyproject.toml"
    if pyproject.is_file():
        tool = _toml(pyproject).get("tool", {}).get("pytest", {})
        if isinstance(tool, dict) and tool:
            options = tool.get("ini_options", tool)
            return dict(options) if isinstance(options, dict) else {}
    for name, section in (("tox.ini", "pytest"), ("setup.cfg", "tool:pytest")):
        if (directory / name).is_file():
            found = _ini_section(directory / name, section)
            if found is not None:
                return found
    return None


def store_option(addopts: object) -> str | None:
    """The last ``--llm-store DIR`` (or ``--llm-store=DIR``) of an ``addopts`` value (a string,
    or a list of arguments in pyproject.toml), or ``None``; after ``--llm-no-store``, ``""``."""
    if isinstance(addopts, str):
        try:
            args = shlex.split(addopts)
        except ValueError:
            return None
    elif isinstance(addopts, list):
        args = [str(arg) for arg in addopts]
    else:
        return None
    found = None
    for index, arg in enumerate(args):
        if arg.startswith("--llm-store="):
            found = arg.split("=", 1)[1]
        elif arg == "--llm-store" and index + 1 < len(args):
            found = args[index + 1]
        elif arg == "--llm-no-store":
            return ""
    return found


def find_store_dir(start: Path) -> Path:
    """The store directory pytest would use when run from ``start``."""
    start = start.resolve()
    from_env = store_option(os.environ.get("PYTEST_ADDOPTS", ""))
    if from_env:
        return (start / from_env).resolve()
    for directory in (start, *start.parents):
        options = pytest_ini_options(directory)
        if options is not None:
            in_addopts = store_option(options.get("addopts"))
            if in_addopts:
                return (start / in_addopts).resolve()
            configured = options.get("llm_store")
            return (
                (directory / str(configured)).resolve()
                if configured
                else (directory / DEFAULT_STORE_DIR)
            )
    return start / DEFAULT_STORE_DIR
