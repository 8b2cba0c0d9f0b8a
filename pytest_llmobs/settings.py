"""The ``--llm-*`` options and their ``llm_*`` ini twins, registered with pytest, and the
validated `Settings` they are read into (by `pytest_llmobs.settings_read`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pytest_llmobs.providers.cache import CacheMode
from pytest_llmobs.providers.retry import DEFAULT_MAX_RETRIES

DEFAULT_MODEL = "mock-llm-v1"
DEFAULT_CACHE_DIR = "llm-cache"
DEFAULT_STORE_DIR = ".llmobs"
FAIL_POLICIES = ("threshold", "regression")
"""What may fail the session besides failing tests (``--llm-fail-on``)."""
INI_UNION_TYPES = tuple(int(part) for part in pytest.version_tuple[:2]) >= (9, 2)
"""pytest 9.2 takes ``addini(type=str | int)``: a TOML number or any string (an INI value)."""


def expand_path(value: str) -> str:
    """``~`` and ``$VARS`` of a path read from the ini file expanded, as pytest's ``cache_dir``."""
    return os.path.expandvars(os.path.expanduser(value))


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
    number: type[int] | type[float] | None = None
    """A number: in native TOML (pytest >= 9.2) it may be written unquoted."""

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
        "run_id",
        "id of the experiment run (letters, digits, - _ . :); CI shards that share one id are "
        "combined by 'llmobs merge' (default: a new id per session)",
        metavar="ID",
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
    OptionSpec(
        "baseline",
        "compare the run with a baseline: a run id, run name, 'latest', a saved baseline "
        "name or a JSON export file (llmobs export)",
        metavar="REF",
    ),
    OptionSpec(
        "save_baseline",
        "save this run as baseline NAME when the session passes",
        metavar="NAME",
    ),
    OptionSpec(
        "max_drop",
        "tolerated significant drop of an aggregate vs the baseline, on its own scale "
        "(default 0.0)",
        default="0.0",
        metavar="X",
        number=float,
    ),
    OptionSpec(
        "fail_on",
        "what fails the session besides failing tests: comma-separated threshold, "
        "regression, or none (default threshold,regression)",
        default="threshold,regression",
        metavar="POLICY",
    ),
    OptionSpec(
        "repeat",
        "run each llm_dataset item N times (ids end in -r0, -r1...; default 1)",
        default="1",
        metavar="N",
        number=int,
    ),
    OptionSpec(
        "report",
        "write a self-contained HTML report of the run to PATH after the session",
        metavar="PATH",
        path=True,
    ),
    OptionSpec(
        "json",
        "write the run as JSON (the 'llmobs export' format) to PATH after the session",
        metavar="PATH",
        path=True,
    ),
    OptionSpec(
        "max_retries",
        "retries of a model call that failed with a retryable error (429, 5xx, timeout, "
        f"connection error; default {DEFAULT_MAX_RETRIES})",
        default=str(DEFAULT_MAX_RETRIES),
        metavar="N",
        number=int,
    ),
    OptionSpec(
        "cache",
        "record/replay model calls: off, read (replay only; a miss is an error), write (call "
        "and record) or readwrite (replay, else call and record); default off",
        default="off",
        metavar="MODE",
    ),
    OptionSpec(
        "cache_dir",
        f"directory of recorded model calls, to commit (default: <rootdir>/{DEFAULT_CACHE_DIR})",
        default=DEFAULT_CACHE_DIR,
        metavar="DIR",
        path=True,
    ),
    OptionSpec(
        "prices",
        "JSON file of model prices in USD per 1M tokens, {model: {input: x, output: y}}, over "
        "the built-in table (default: env LLMOBS_PRICES)",
        metavar="PATH",
        path=True,
    ),
    OptionSpec(
        "upload",
        "after the session, upload the run to langfuse, phoenix and/or otlp (comma-separated; "
        "configured by LANGFUSE_PUBLIC_KEY/LANGFUSE_SECRET_KEY/LANGFUSE_BASE_URL, "
        "PHOENIX_COLLECTOR_ENDPOINT, OTEL_EXPORTER_OTLP_ENDPOINT)",
        metavar="TARGETS",
    ),
    OptionSpec(
        "upload_strict",
        "fail the session when --llm-upload could not send everything",
        ini_type="bool",
        default=False,
        action="store_true",
    ),
    OptionSpec(
        "langfuse_legacy",
        "upload to Langfuse with ingestion events and dataset-run-items (older self-hosted "
        "servers without the OTLP endpoint)",
        ini_type="bool",
        default=False,
        action="store_true",
    ),
    OptionSpec(
        "redact",
        "mask PII and secrets before anything is stored: off, default or strict (default: default)",
        metavar="MODE",
    ),
    OptionSpec(
        "redact_maskers",
        "extra maskers, 'package.module:function' (str -> str), applied after the built-ins",
        ini_type="linelist",
        default=[],
        action="append",
        metavar="REF",
    ),
    OptionSpec(
        "trace_sample",
        "share of passing items that keep full span payloads, chosen by trace id (scores and "
        "outcomes are always kept; failures always in full) (default: 1)",
        metavar="SHARE",
        number=float,
    ),
    OptionSpec(
        "max_field_chars",
        "longest stored text; longer inputs/outputs/attributes are cut with a marker giving "
        "their length (default: 100000)",
        metavar="N",
        number=int,
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
        elif spec.number is not None and INI_UNION_TYPES:
            # `str` first: an INI or -o value stays the text it was, for our own checks
            ini_kwargs["type"] = str | spec.number
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
    max_retries: int = DEFAULT_MAX_RETRIES
    """``--llm-max-retries``: retries of a model call after a retryable error."""
    cache_mode: CacheMode = CacheMode.OFF
    cache_dir: Path | None = None
    """``--llm-cache-dir`` (``None`` only when Settings is built by hand)."""
    prices_path: Path | None = None
    """``--llm-prices``: a JSON price file over the built-in table (``LLMOBS_PRICES`` too)."""
    baseline: str | None = None
    """``--llm-baseline`` as given: a file, saved baseline name or run reference."""
    baseline_path: Path | None = None
    """``baseline`` read as a file path (relative to the invocation dir or the ini file)."""
    save_baseline: str | None = None
    max_drop: float = 0.0
    fail_on: frozenset[str] = frozenset(FAIL_POLICIES)
    repeat: int = 1
    report_html: Path | None = None
    """``--llm-report``: where the HTML report is written after the session."""
    report_json: Path | None = None
    """``--llm-json``: where the run's JSON (the ``llmobs export`` form) is written."""
    junit_properties: bool = False
    """``--junitxml`` is in use: each test's scores become its JUnit ``<property>`` elements."""
    run_id: str | None = None
    """``--llm-run-id``: the run's id, shared by CI shards (``None``: a new id)."""
    upload: tuple[str, ...] = ()
    """``--llm-upload``: exporter names the run is shipped to after the session."""
    upload_strict: bool = False
    """``--llm-upload-strict``: an incomplete upload fails the session."""
    langfuse_legacy: bool = False
    """``--llm-langfuse-legacy``: ingestion events instead of OTLP, for older servers."""
    redact: str = "default"
    """``--llm-redact``: off, default or strict."""
    redact_maskers: tuple[str, ...] = ()
    """``--llm-redact-maskers``: extra masker references, 'module:function'."""
    trace_sample: float = 1.0
    """``--llm-trace-sample``: share of passing items keeping full payloads."""
    max_field_chars: int = 100_000
    """``--llm-max-field-chars``: longest stored text."""
