"""Finding the store outside pytest the way the plugin finds it inside: pytest's rootdir and
config file.

pytest's config file is the first one found walking up from the current directory, trying in
each directory, in this order: ``pytest.toml`` and ``.pytest.toml`` (pytest 9), ``pytest.ini``
and ``.pytest.ini`` (even without ``[pytest]``), ``pyproject.toml`` with a ``[tool.pytest]`` or
``[tool.pytest.ini_options]`` table, ``tox.ini`` with ``[pytest]``, ``setup.cfg`` with
``[tool:pytest]``; the rootdir is its directory. Without one, the nearest ``pyproject.toml``
(even without a pytest table) is the config file, else the rootdir is the nearest directory
with a ``setup.py``, else the current directory.

`project_option` reads any option so (what `run_experiment` follows besides the store). The
store is, as pytest reads the file's ``addopts`` and then ``PYTEST_ADDOPTS`` (the last one
wins): a ``--llm-store DIR``, relative to the current directory; else a ``-o llm_store=DIR``,
else ``llm_store`` in the config file, relative to the file's directory, ``~`` and ``$VARS``
expanded; else ``<rootdir>/.llmobs``.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import iniconfig
import pytest

from pytest_llmobs.settings import DEFAULT_STORE_DIR, expand_path

_NATIVE_TOML = int(pytest.version_tuple[0]) >= 9
"""pytest 9 reads ``pytest.toml``, ``.pytest.toml`` and pyproject's ``[tool.pytest]`` table."""

CONFIG_FILES: tuple[str, ...] = (
    *(("pytest.toml", ".pytest.toml") if _NATIVE_TOML else ()),
    "pytest.ini",
    ".pytest.ini",
    "pyproject.toml",
    "tox.ini",
    "setup.cfg",
)
"""The config files pytest looks for in each directory, in its order of precedence."""


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


def _ini_section(path: Path, section: str) -> dict[str, Any] | None:
    """``section`` of an ini file, read by pytest's own parser (iniconfig), or ``None``."""
    try:
        parsed = iniconfig.IniConfig(str(path))
    except (iniconfig.ParseError, OSError, UnicodeDecodeError):
        return None
    return dict(parsed[section].items()) if section in parsed else None


def _tool_pytest(document: dict[str, Any]) -> dict[str, Any] | None:
    """pyproject's ``[tool.pytest]`` (native TOML values) or ``[tool.pytest.ini_options]``
    (values as strings, lists kept), or ``None``."""
    tool = document.get("tool")
    table = tool.get("pytest") if isinstance(tool, dict) else None
    if not isinstance(table, dict):
        return None
    native = {key: value for key, value in table.items() if key != "ini_options"}
    if native and _NATIVE_TOML:
        return native
    ini_options = table.get("ini_options")
    if not isinstance(ini_options, dict):
        return None
    return {k: v if isinstance(v, list) else str(v) for k, v in ini_options.items()}


def pytest_ini_options(path: Path) -> dict[str, Any] | None:
    """The pytest options of config file ``path`` (one of `CONFIG_FILES`), or ``None`` when
    pytest passes the file over (a ``tox.ini`` without ``[pytest]``...)."""
    name = path.name
    if name in ("pytest.toml", ".pytest.toml"):
        table = _toml(path).get("pytest")
        return dict(table) if isinstance(table, dict) else {}
    if name in ("pytest.ini", ".pytest.ini"):
        return _ini_section(path, "pytest") or {}
    if name == "pyproject.toml":
        return _tool_pytest(_toml(path))
    return _ini_section(path, "tool:pytest" if name == "setup.cfg" else "pytest")


@dataclass(frozen=True, slots=True)
class PytestConfig:
    """Where pytest roots a session started in a directory, and the options of its config file."""

    rootdir: Path
    inipath: Path | None
    options: dict[str, Any]

    @property
    def ini_dir(self) -> Path:
        """The directory relative ini values are relative to (the plugin's rule)."""
        return self.inipath.parent if self.inipath else self.rootdir


def _config_in(directory: Path) -> PytestConfig | None:
    for name in CONFIG_FILES:
        path = directory / name
        if path.is_file():
            options = pytest_ini_options(path)
            if options is not None:
                return PytestConfig(directory, path, options)
    return None


def locate_config(start: Path) -> PytestConfig:
    """pytest's rootdir and config file for a session started in ``start`` with no paths."""
    start = start.resolve()
    for directory in (start, *start.parents):
        found = _config_in(directory)
        if found is not None:
            return found
    for directory in (start, *start.parents):
        if (directory / "pyproject.toml").is_file():
            return PytestConfig(directory, directory / "pyproject.toml", {})
    for directory in (start, *start.parents):
        if (directory / "setup.py").is_file():
            return PytestConfig(directory, None, {})
    return PytestConfig(start, None, {})


def _args(value: object) -> list[str]:
    """An ``addopts`` value as arguments: a string split as a shell does, or a TOML list."""
    if isinstance(value, list):
        return [str(arg) for arg in value]
    if not isinstance(value, str):
        return []
    try:
        return shlex.split(value)
    except ValueError:
        return []


def option_values(args: Sequence[str], *names: str) -> list[str]:
    """Every value given to one of the options ``names`` in ``args``, in order: ``--name V``,
    ``--name=V``, and for a one-letter ``-n``, ``-nV`` too."""
    values = []
    for index, arg in enumerate(args):
        for name in names:
            if arg == name and index + 1 < len(args):
                values.append(args[index + 1])
            elif arg.startswith(name + "="):
                values.append(arg[len(name) + 1 :])
            elif len(name) == 2 and arg.startswith(name) and len(arg) > 2:
                values.append(arg[2:])
    return values


def ini_override(args: Sequence[str], key: str) -> str | None:
    """The value of the last ``-o key=VALUE`` (``--override-ini``) in ``args``, or ``None``."""
    found = None
    for value in option_values(args, "-o", "--override-ini"):
        name, sep, rest = value.partition("=")
        if sep and name == key:
            found = rest
    return found


def session_args(config: PytestConfig) -> list[str]:
    """The arguments pytest adds to every session: the file's ``addopts``, then
    ``PYTEST_ADDOPTS`` (whose options come later, and so win)."""
    return _args(config.options.get("addopts")) + _args(os.environ.get("PYTEST_ADDOPTS", ""))


@dataclass(frozen=True, slots=True)
class ProjectOption:
    """An option's value as a session started in ``start`` reads it, and where it came from."""

    values: tuple[str, ...]
    """One value; several for a list option (an ini line list, a repeated flag)."""
    source: str
    """How an error names it: ``--llm-model in PYTEST_ADDOPTS``, ``-o llm_model in addopts``,
    or ``llm_model in /path/pytest.ini``."""
    base: Path
    """What a relative path is relative to: the current directory for a flag, else the
    config file's directory."""

    @property
    def value(self) -> str:
        return self.values[-1]


def project_option(
    start: Path, config: PytestConfig, ini_name: str, *, flag: str | None = None
) -> ProjectOption | None:
    """``ini_name`` (or its ``flag``) as pytest would read it: the ``flag``'s values in
    `session_args`, else the last ``-o ini_name=V`` there, else the config file's value; ``None``
    when unset or empty. (A list option whose flag adds to the file's lines: look the two up
    apart.)"""
    args = session_args(config)
    env = _args(os.environ.get("PYTEST_ADDOPTS", ""))
    given = [v for v in option_values(args, flag) if v.strip()] if flag else []
    if flag and given:
        return ProjectOption(tuple(given), _given_in(flag, bool(option_values(env, flag))), start)
    override = ini_override(args, ini_name)
    if override is not None:
        values = _lines(override)
        source = _given_in(f"-o {ini_name}", ini_override(env, ini_name) is not None)
    else:
        values = _lines(config.options.get(ini_name))
        source = f"{ini_name} in {config.inipath}"
    return ProjectOption(values, source, config.ini_dir) if values else None


def _given_in(option: str, in_environment: bool) -> str:
    """``option`` and where it was given: ``PYTEST_ADDOPTS``, else the config file's ``addopts``."""
    return f"{option} in {'PYTEST_ADDOPTS' if in_environment else 'addopts'}"


def _lines(value: object) -> tuple[str, ...]:
    """An ini value's non-empty lines (a TOML list: its items), stripped."""
    if value is None:
        return ()
    lines = [str(v) for v in value] if isinstance(value, list) else str(value).splitlines()
    return tuple(line.strip() for line in lines if line.strip())


def find_store_dir(start: Path) -> Path:
    """The store directory pytest would use when run from ``start``."""
    start = start.resolve()
    config = locate_config(start)
    args = session_args(config)
    given = option_values(args, "--llm-store")
    if given and given[-1] and "--llm-no-store" not in args:
        return (start / given[-1]).resolve()
    override = ini_override(args, "llm_store")
    configured = override if override is not None else config.options.get("llm_store")
    if configured:
        return (config.ini_dir / expand_path(str(configured))).resolve()
    return config.rootdir / DEFAULT_STORE_DIR
