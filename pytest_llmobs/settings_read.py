"""Command-line options and their ini twins read once into a validated `Settings`: each
option's value found, parsed and checked, a bad one a `pytest.UsageError` naming where it came
from.

Precedence is command line, then ini, then default. Relative paths given on the command line
are relative to the invocation directory; in the ini file, to the ini file's directory (``~``
and ``$VARS`` expanded, as pytest does for ``cache_dir``); the defaults, to pytest's rootdir.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pytest_llmobs.providers.cache import CacheMode
from pytest_llmobs.providers.retry import DEFAULT_MAX_RETRIES
from pytest_llmobs.report_targets import check_report_path, refuse_shared_report_files
from pytest_llmobs.report_targets import real_path as _real
from pytest_llmobs.settings import DEFAULT_MODEL, FAIL_POLICIES, OPTIONS, Settings, expand_path


def _path_getter(config: pytest.Config) -> Callable[[str], Path]:
    invocation = Path(config.invocation_params.dir)
    ini_dir = Path(config.inipath).parent if config.inipath else Path(config.rootpath)
    rootdir = Path(config.rootpath)

    def resolve(ini_name: str) -> Path:
        cli = config.getoption(ini_name)
        if cli is not None:
            return _real(invocation / str(cli))
        value = config.getini(ini_name)
        if value:
            return _real(ini_dir / expand_path(str(value)))
        spec = next(s for s in OPTIONS if s.ini == ini_name)
        return _real(rootdir / str(spec.default))

    return resolve


def _refuse_empty_values(config: pytest.Config) -> None:
    """An option given an empty value (``--llm-model=$MODEL`` with ``MODEL`` unset) is a
    usage error: falling back to the default would run, or write, something else than meant."""
    for spec in OPTIONS:
        if spec.action not in ("store", "append"):
            continue
        given = config.getoption(spec.ini)
        values = given if isinstance(given, list) else [given]
        if any(isinstance(value, str) and not value.strip() for value in values):
            raise pytest.UsageError(
                f"{spec.flag} is empty (an unset variable?); expected {spec.metavar}: {spec.help}"
            )


def read_settings(config: pytest.Config) -> Settings:
    """Build `Settings` from ``config``; a bad value raises `pytest.UsageError`."""
    _refuse_empty_values(config)
    model = config.getoption("llm_model") or str(config.getini("llm_model") or DEFAULT_MODEL)
    model = model.strip()
    if not model:
        raise pytest.UsageError(
            f"{where(config, 'llm_model')} is empty; expected a model such as mock-llm-v1"
        )
    run_name = config.getoption("llm_run_name") or (config.getini("llm_run_name") or None)
    if run_name is not None and run_name.strip().lower() == "latest":
        raise pytest.UsageError(
            f"{where(config, 'llm_run_name')}: {run_name!r} is reserved: `llmobs show latest` "
            "names the newest run, so no run could be found by this name; pick another, e.g. "
            "'nightly'"
        )
    resolve = _path_getter(config)
    # --llm-store on the command line beats llm_no_store in the ini file; --llm-no-store wins.
    no_store = bool(config.getoption("llm_no_store")) or (
        config.getoption("llm_store") is None and _ini_flag(config, "llm_no_store")
    )
    store_dir = None if no_store else resolve("llm_store")
    thresholds = tuple(
        [(str(t), "ini llm_threshold") for t in config.getini("llm_threshold") if str(t).strip()]
        + [(t, "--llm-threshold") for t in (config.getoption("llm_threshold") or [])]
    )
    baseline, baseline_path = _baseline(config)
    report_html = _report_path(config, "llm_report", resolve)
    report_json = _report_path(config, "llm_json", resolve)
    reports = {where(config, "llm_report"): report_html, where(config, "llm_json"): report_json}
    refuse_shared_report_files(config, reports, store_dir)
    return Settings(
        model=model,
        run_name=run_name,
        store_dir=store_dir,
        thresholds=thresholds,
        datasets_dir=_directory(config, "llm_datasets_dir", resolve),
        prompts_dir=_directory(config, "llm_prompts_dir", resolve),
        rootdir=Path(config.rootpath),
        **_call_settings(config, resolve),
        judge_model=(
            config.getoption("llm_judge_model") or config.getini("llm_judge_model") or None
        ),
        baseline=baseline,
        baseline_path=baseline_path,
        save_baseline=_text(config, "llm_save_baseline"),
        max_drop=_max_drop(_text(config, "llm_max_drop") or "0.0", where(config, "llm_max_drop")),
        fail_on=_fail_on(config),
        repeat=_repeat(_text(config, "llm_repeat") or "1", where(config, "llm_repeat")),
        report_html=report_html,
        report_json=report_json,
        # Workers see the controller's options, so their reports carry the properties too.
        junit_properties=bool(getattr(config.option, "xmlpath", None)),
        run_id=_run_id(config),
        **_upload_settings(config),
        **_governance_settings(config),
    )


RUN_ID_PATTERN = re.compile(r"[A-Za-z0-9_.:-]{1,128}")


def check_run_id(value: str, source: str) -> str:
    """``value`` when it is a valid run id; otherwise a `pytest.UsageError` naming ``source``."""
    if not RUN_ID_PATTERN.fullmatch(value):
        raise pytest.UsageError(
            f"{source}: invalid run id {value!r}; expected 1 to 128 letters, digits, "
            "'-', '_', '.' or ':', e.g. 'ci-4242.1'"
        )
    if value.lower() == "latest":
        raise pytest.UsageError(
            f"{source}: {value!r} is reserved: `llmobs show latest` names the newest run; "
            "pick another id, e.g. 'ci-4242.1'"
        )
    return value


def _run_id(config: pytest.Config) -> str | None:
    cli = config.getoption("llm_run_id")
    if cli is not None:
        return check_run_id(str(cli), "--llm-run-id")
    ini = str(config.getini("llm_run_id") or "").strip()
    return check_run_id(ini, ini_where(config, "llm_run_id")) if ini else None


def _directory(config: pytest.Config, ini_name: str, resolve: Callable[[str], Path]) -> Path:
    """A directory option's path; a file given there is a usage error (a missing directory is
    not, nor a file where the default would be: the suite may use none)."""
    path = resolve(ini_name)
    if _text(config, ini_name) and path.exists() and not path.is_dir():
        raise pytest.UsageError(
            f"{where(config, ini_name)}: {str(path)!r} is a file, not a directory"
        )
    return path


def _report_path(
    config: pytest.Config, ini_name: str, resolve: Callable[[str], Path]
) -> Path | None:
    """A report file to write (``None`` unless asked for), checked now, not after an hour of
    tests (`check_report_path`)."""
    text = _text(config, ini_name)
    return check_report_path(text, resolve(ini_name), where(config, ini_name)) if text else None


def _ini_flag(config: pytest.Config, ini_name: str) -> bool:
    """A yes/no ini key; a value pytest cannot read as one is a usage error naming the key
    (pytest's own says only "invalid truth value 'maybe'")."""
    try:
        return bool(config.getini(ini_name))
    except (ValueError, pytest.UsageError) as exc:  # (pytest 9 raises the latter)
        raise pytest.UsageError(
            f"{ini_where(config, ini_name)}: {exc}; expected true or false"
        ) from None


def where(config: pytest.Config, ini_name: str) -> str:
    """How to name an option in an error: its flag when given on the command line or not at
    all (its default), else where its ini value came from."""
    spec = next(s for s in OPTIONS if s.ini == ini_name)
    source = ini_where(config, ini_name)
    unset = config.getini(ini_name) in (None, "", [], spec.default)  # (inicfg is deprecated)
    if config.getoption(ini_name) is not None or (unset and not source.startswith("-o ")):
        return spec.flag
    return source


def ini_where(config: pytest.Config, ini_name: str) -> str:
    """Where an ini value came from: ``-o KEY`` (``--override-ini``), else the key and file."""
    overrides = config.getoption("override_ini", None) or []
    if any(str(o).partition("=")[0] == ini_name for o in overrides):
        return f"-o {ini_name}"
    return f"{ini_name} in {config.inipath or 'the ini file'}"


def _text(config: pytest.Config, ini_name: str) -> str | None:
    """The option's value from the command line, else the ini file, stripped; ``None`` if unset."""
    value = config.getoption(ini_name)
    if value is None:
        value = config.getini(ini_name)
    text = str(value).strip() if value is not None else ""
    return text or None


def _baseline(config: pytest.Config) -> tuple[str | None, Path | None]:
    """The baseline reference and where it would be as a file (CLI: invocation dir; ini: its
    directory)."""
    cli = config.getoption("llm_baseline")
    if cli is not None and str(cli).strip():
        return str(cli).strip(), (Path(config.invocation_params.dir) / str(cli).strip())
    ini = str(config.getini("llm_baseline") or "").strip()
    if not ini:
        return None, None
    ini_dir = Path(config.inipath).parent if config.inipath else Path(config.rootpath)
    return ini, ini_dir / expand_path(ini)


def _fail_on(config: pytest.Config) -> frozenset[str]:
    value = _text(config, "llm_fail_on")
    if value is None:
        return frozenset(FAIL_POLICIES)
    try:
        return parse_fail_on(value)
    except pytest.UsageError as exc:
        if config.getoption("llm_fail_on") is not None:
            raise
        raise pytest.UsageError(f"{exc} (given by {ini_where(config, 'llm_fail_on')})") from None


def parse_fail_on(value: str) -> frozenset[str]:
    """``threshold,regression`` → the set of policies; ``none`` → the empty set (in any case,
    as ``--llm-cache`` and ``--llm-redact`` take theirs)."""
    names = [part.strip().lower() for part in value.split(",") if part.strip()]
    if names == ["none"]:
        return frozenset()
    unknown = [n for n in names if n not in FAIL_POLICIES]
    if unknown or not names:
        raise pytest.UsageError(
            f"{value!r} is not a valid --llm-fail-on policy. Valid policies: "
            f"{', '.join(FAIL_POLICIES)} (comma-separated), or none."
        )
    return frozenset(names)


def _max_drop(value: str, where: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not number >= 0 or number == float("inf"):
        raise pytest.UsageError(
            f"{where} must be a number >= 0 on the aggregate's scale, e.g. 0.02; got {value!r}"
        )
    return number


def _repeat(value: str, where: str) -> int:
    try:
        count = int(value)
    except ValueError:
        count = 0
    if count < 1:
        raise pytest.UsageError(f"{where} must be a positive integer; got {value!r}")
    return count


def _call_settings(config: pytest.Config, resolve: Callable[[str], Path]) -> dict[str, Any]:
    """``--llm-max-retries``, ``--llm-cache``, ``--llm-cache-dir`` and ``--llm-prices``."""
    text = _text(config, "llm_max_retries") or str(DEFAULT_MAX_RETRIES)
    try:
        retries = int(text)  # (str.isdigit would pass '²', which int refuses)
    except ValueError:
        retries = -1
    if retries < 0:
        origin = where(config, "llm_max_retries")
        raise pytest.UsageError(f"{origin} must be an integer >= 0; got {text!r}")
    mode = str(config.getoption("llm_cache") or config.getini("llm_cache") or "off")
    try:
        cache_mode = CacheMode.parse(mode)
    except ValueError:
        modes = ", ".join(m.value for m in CacheMode)
        raise pytest.UsageError(
            f"{where(config, 'llm_cache')}: {mode!r} is not a valid mode. Valid modes: {modes}."
        ) from None
    prices = config.getoption("llm_prices") is not None or bool(config.getini("llm_prices"))
    return {
        "max_retries": retries,
        "cache_mode": cache_mode,
        "cache_dir": resolve("llm_cache_dir"),
        "prices_path": resolve("llm_prices") if prices else None,
    }


def _upload_settings(config: pytest.Config) -> dict[str, Any]:
    """``--llm-upload`` (validated target names), ``--llm-upload-strict``, legacy mode."""
    from pytest_llmobs.exporters import ExportError, parse_targets

    try:
        targets = tuple(parse_targets(_text(config, "llm_upload") or ""))
    except ExportError as exc:
        raise pytest.UsageError(f"{where(config, 'llm_upload')}: {exc}") from None

    def flag(name: str) -> bool:
        return bool(config.getoption(name)) or _ini_flag(config, name)

    return {
        "upload": targets,
        "upload_strict": flag("llm_upload_strict"),
        "langfuse_legacy": flag("llm_langfuse_legacy"),
    }


def _governance_settings(config: pytest.Config) -> dict[str, Any]:
    """``--llm-redact``, ``--llm-redact-maskers``, ``--llm-trace-sample``, size limit."""

    def number(name: str, kind: type[float] | type[int], default: float) -> float:
        raw = _text(config, name)
        if not raw:
            return default
        try:
            return kind(raw)
        except ValueError:
            expected = "an integer" if kind is int else "a number"
            raise pytest.UsageError(f"{where(config, name)}: {raw!r} is not {expected}") from None

    maskers = [str(m) for m in config.getini("llm_redact_maskers") if str(m).strip()]
    maskers += list(config.getoption("llm_redact_maskers") or [])
    values = {
        "redact": (_text(config, "llm_redact") or "default").strip().lower(),
        "redact_maskers": tuple(maskers),
        "trace_sample": float(number("llm_trace_sample", float, 1.0)),
        "max_field_chars": int(number("llm_max_field_chars", int, 100_000)),
    }
    _check_governance(config, values)
    return values


def _check_governance(config: pytest.Config, values: dict[str, Any]) -> None:
    """`build_governance`'s checks, said here where the option's source is known."""
    from pytest_llmobs.governance import option_problem

    problem = option_problem(values["redact"], values["trace_sample"], values["max_field_chars"])
    if problem is not None:
        name, why = problem
        raise pytest.UsageError(f"{where(config, name)}: {why}")
