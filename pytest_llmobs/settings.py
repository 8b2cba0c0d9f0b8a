"""Command-line options and their ini twins, read once into a validated `Settings`.

Precedence is command line, then ini, then default. Relative paths given on the command line
are relative to the invocation directory; in the ini file, to the ini file's directory; the
defaults, to pytest's rootdir.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

DEFAULT_MODEL = "mock-llm-v1"
DEFAULT_STORE_DIR = ".llmobs"


@dataclass(frozen=True, slots=True)
class OptionSpec:
    """One ``--llm-*`` option and its ``llm_*`` ini twin."""

    name: str
    help: str
    ini_type: str | None = None
    default: Any = None
    action: str = "store"
    metavar: str | None = None
    path: bool = False
    """A directory: relative to the invocation dir (CLI), the ini file or rootdir (default)."""

    @property
    def flag(self) -> str:
        return "--llm-" + self.name.replace("_", "-")

    @property
    def ini(self) -> str:
        return "llm_" + self.name


OPTIONS: tuple[OptionSpec, ...] = (
    OptionSpec(
        "model",
        f"model to run, e.g. mock-llm-v1?accuracy=0.8 (default {DEFAULT_MODEL})",
        default=DEFAULT_MODEL,
        metavar="MODEL",
    ),
    OptionSpec(
        "run_name", "name of the experiment run (default: '<model>@<start time>')", metavar="NAME"
    ),
    OptionSpec(
        "store",
        f"directory of the run store (default: <rootdir>/{DEFAULT_STORE_DIR})",
        default=DEFAULT_STORE_DIR,
        metavar="DIR",
        path=True,
    ),
    OptionSpec(
        "no_store",
        "keep the run in memory only; write nothing to disk",
        ini_type="bool",
        default=False,
        action="store_true",
    ),
    OptionSpec(
        "threshold",
        "quality gate '[dataset:] aggregate op number', e.g. "
        "'capitals: mean_accuracy >= 0.9' (repeatable)",
        ini_type="linelist",
        default=[],
        action="append",
        metavar="EXPR",
    ),
    OptionSpec(
        "datasets_dir",
        "directory holding dataset files (default: <rootdir>/datasets)",
        default="datasets",
        metavar="DIR",
        path=True,
    ),
    OptionSpec(
        "judge_model",
        "model that grades outputs in scorer.llm_judge (default: the --llm-model)",
        metavar="MODEL",
    ),
    OptionSpec(
        "prompts_dir",
        "directory holding prompt files (default: <rootdir>/prompts)",
        default="prompts",
        metavar="DIR",
        path=True,
    ),
)


def add_options(parser: pytest.Parser) -> None:
    """Register every option under one ``llmobs`` group, each with its ini twin."""
    group = parser.getgroup("llmobs", "LLM observability (pytest-llmobs)")
    for spec in OPTIONS:
        kwargs: dict[str, Any] = {"action": spec.action, "dest": spec.ini, "help": spec.help}
        if spec.action in ("store", "append"):
            kwargs["metavar"] = spec.metavar
        kwargs["default"] = None
        group.addoption(spec.flag, **kwargs)
        # A path's ini default is None, so that a value written in the ini file (even one equal
        # to the default) is told apart from the default: they resolve against different dirs.
        ini_kwargs: dict[str, Any] = {"default": None if spec.path else spec.default}
        if spec.ini_type is not None:
            ini_kwargs["type"] = spec.ini_type
        parser.addini(spec.ini, f"{spec.help} [{spec.flag}]", **ini_kwargs)


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the plugin reads from options and ini, validated."""

    model: str
    run_name: str | None
    store_dir: Path | None
    thresholds: tuple[tuple[str, str], ...]
    """(expression, where it came from) pairs, e.g. ("mean_accuracy >= 0.9", "--llm-threshold")."""
    datasets_dir: Path
    prompts_dir: Path
    rootdir: Path
    judge_model: str | None = None
    """The judge's model string; ``None`` means the run's model."""


def _path_getter(config: pytest.Config) -> Callable[[str], Path]:
    invocation = Path(config.invocation_params.dir)
    ini_dir = Path(config.inipath).parent if config.inipath else Path(config.rootpath)
    rootdir = Path(config.rootpath)

    def resolve(ini_name: str) -> Path:
        cli = config.getoption(ini_name)
        if cli is not None:
            return (invocation / str(cli)).resolve()
        value = config.getini(ini_name)
        if value:
            return (ini_dir / str(value)).resolve()
        spec = next(s for s in OPTIONS if s.ini == ini_name)
        return (rootdir / str(spec.default)).resolve()

    return resolve


def read_settings(config: pytest.Config) -> Settings:
    """Build `Settings` from ``config``; a bad value raises `pytest.UsageError`."""
    model = config.getoption("llm_model") or str(config.getini("llm_model") or DEFAULT_MODEL)
    model = model.strip()
    if not model:
        raise pytest.UsageError("--llm-model is empty; expected a model such as mock-llm-v1")
    run_name = config.getoption("llm_run_name") or (config.getini("llm_run_name") or None)
    resolve = _path_getter(config)
    # --llm-store on the command line beats llm_no_store in the ini file; --llm-no-store wins.
    no_store = bool(config.getoption("llm_no_store")) or (
        config.getoption("llm_store") is None and bool(config.getini("llm_no_store"))
    )
    store_dir = None if no_store else resolve("llm_store")
    thresholds = tuple(
        [(str(t), "ini llm_threshold") for t in config.getini("llm_threshold") if str(t).strip()]
        + [(t, "--llm-threshold") for t in (config.getoption("llm_threshold") or [])]
    )
    return Settings(
        model=model,
        run_name=run_name,
        store_dir=store_dir,
        thresholds=thresholds,
        datasets_dir=resolve("llm_datasets_dir"),
        prompts_dir=resolve("llm_prompts_dir"),
        rootdir=Path(config.rootpath),
        judge_model=(
            config.getoption("llm_judge_model") or config.getini("llm_judge_model") or None
        ),
    )
