"""What `run_experiment` takes from the project's pytest configuration, read where a pytest
session started in the current directory reads it (`locate`): the config file, its ``addopts``
and ``PYTEST_ADDOPTS`` (``--llm-*`` flags and ``-o llm_*=...``), so that a script and a test
suite of one project mask, cut and sample what they store alike and default to the same model,
datasets directory and retries.

- ``llm_redact``, ``llm_redact_maskers`` (imported with the file's ``pythonpath`` on
  ``sys.path``), ``llm_trace_sample`` and ``llm_max_field_chars``: the store's `Governance`,
  built by the plugin's own `build_governance` (a conftest's ``pytest_llmobs_register_maskers``
  is not loaded: no conftest is);
- ``llm_model``: the model when ``model=`` is not given;
- ``llm_datasets_dir``: where a dataset's name is looked up when ``datasets_dir=`` is not given
  (relative to the config file's directory; default ``<rootdir>/datasets``);
- ``llm_max_retries``, ``llm_prices`` (over ``LLMOBS_PRICES``), ``llm_cache`` and
  ``llm_cache_dir``: a model call's retries, cost and record/replay, as the ``llm`` fixture's.

A bad value raises `GovernanceError` (a `ValueError`) or `ValueError` naming the key and where it
was given (``llm_redact in /project/pytest.ini: ...``).
"""

from __future__ import annotations

import contextlib
import shlex
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pytest_llmobs.governance import (
    DEFAULT_MAX_FIELD_CHARS,
    Governance,
    GovernanceError,
    build_governance,
    checked_maskers,
    load_masker,
    option_problem,
)
from pytest_llmobs.llm import LLM
from pytest_llmobs.locate import (
    ProjectOption,
    PytestConfig,
    locate_config,
    project_option,
)
from pytest_llmobs.providers import (
    ConfigError,
    Provider,
    UnknownModelError,
    default_registry,
)
from pytest_llmobs.providers.cache import CacheMode
from pytest_llmobs.providers.calls import close_provider, session_calls
from pytest_llmobs.providers.openai_config import replay_only
from pytest_llmobs.providers.retry import DEFAULT_MAX_RETRIES, RetryPolicy
from pytest_llmobs.redaction import Masker
from pytest_llmobs.settings import DEFAULT_CACHE_DIR, DEFAULT_MODEL, expand_path

_SYS_PATH = threading.Lock()
"""Held while a config file's ``pythonpath`` is on ``sys.path`` for an import."""


class ProjectConfig:
    """The project's options for an experiment started in ``start`` (see the module docstring)."""

    def __init__(self, start: Path) -> None:
        self.start = start.resolve()
        self.config: PytestConfig = locate_config(self.start)

    def option(self, name: str) -> ProjectOption | None:
        """``llm_<name>`` (or ``--llm-<name>``) as a session started here reads it."""
        return project_option(
            self.start, self.config, f"llm_{name}", flag="--llm-" + name.replace("_", "-")
        )

    def model(self) -> tuple[str, str | None]:
        """(the model string, where it was given; ``None`` for the built-in default)."""
        option = self.option("model")
        return (option.value, option.source) if option else (DEFAULT_MODEL, None)

    def datasets_dir(self) -> Path:
        return self._path("datasets_dir") or self.config.rootdir / "datasets"

    def _path(self, name: str) -> Path | None:
        """A path option, resolved as the plugin resolves it (a file's value expanded, relative
        to the file's directory; a flag's relative to the current one); ``None`` when unset."""
        option = self.option(name)
        if option is None:
            return None
        value = option.value if option.source.startswith("--") else expand_path(option.value)
        return (option.base / value).resolve()

    def retry(self) -> RetryPolicy:
        """The retry policy of the ``llm`` fixture (``llm_max_retries``)."""
        option = self.option("max_retries")
        if option is None:
            return RetryPolicy(max_retries=DEFAULT_MAX_RETRIES)
        try:
            retries = int(option.value)
        except ValueError:
            retries = -1
        if retries < 0:
            raise ValueError(f"{option.source} must be an integer >= 0; got {option.value!r}")
        return RetryPolicy(max_retries=retries)

    def calls(self) -> dict[str, Any]:
        """The ``retry``, ``cache`` and ``prices`` an `LLM` gets, as the ``llm`` fixture's: a
        bad value raises `ValueError` (`ConfigError`) naming it and where it was given."""
        option = self.option("cache")
        try:
            mode = CacheMode.parse(option.value if option else "off")
        except ValueError:
            assert option is not None  # ("off" parses)
            modes = ", ".join(m.value for m in CacheMode)
            raise ValueError(
                f"{option.source}: {option.value!r} is not a valid mode. Valid modes: {modes}."
            ) from None
        try:
            return session_calls(
                max_retries=self.retry().max_retries,
                cache_mode=mode,
                cache_dir=self._path("cache_dir") or self.config.rootdir / DEFAULT_CACHE_DIR,
                prices_path=self._path("prices"),
            )
        except ConfigError as exc:  # (it names the flag: say where the value was given)
            flag, sep, rest = str(exc).partition(": ")
            option = self.option(flag.removeprefix("--llm-").replace("-", "_")) if sep else None
            raise ConfigError(f"{option.source}: {rest}" if option else str(exc)) from None

    def governance(self) -> Governance:
        """The policy a pytest session here would store under; a bad option raises
        `GovernanceError` naming it and where it was given."""
        redact = self.option("redact")
        mode = redact.value.lower() if redact else "default"
        sample = self._number("trace_sample", float, 1.0)
        chars = int(self._number("max_field_chars", int, DEFAULT_MAX_FIELD_CHARS))
        problem = option_problem(mode, sample, chars)
        if problem is not None:
            name, why = problem
            option = self.option(name.removeprefix("llm_"))
            raise GovernanceError(f"{option.source if option else name}: {why}")
        return build_governance(
            mode=mode, extra=self._maskers(), trace_sample=sample, max_field_chars=chars
        )

    def _number(self, name: str, kind: type[int] | type[float], default: float) -> float:
        option = self.option(name)
        if option is None:
            return default
        try:
            return kind(option.value)
        except ValueError:
            expected = "an integer" if kind is int else "a number"
            raise GovernanceError(f"{option.source}: {option.value!r} is not {expected}") from None

    def _maskers(self) -> list[Masker]:
        """``llm_redact_maskers`` (or ``-o``) and every ``--llm-redact-maskers``, imported and
        tried on a test string."""
        references: list[tuple[str, str]] = []
        for option in (
            project_option(self.start, self.config, "llm_redact_maskers"),
            self.option("redact_maskers"),  # the flag's, which add to the file's
        ):
            if option is not None and option.source not in (s for _, s in references):
                references += [(reference, option.source) for reference in option.values]
        maskers: list[Masker] = []
        with self._importable():
            for reference, source in references:
                try:
                    maskers += checked_maskers([load_masker(reference)])
                except GovernanceError as exc:
                    raise GovernanceError(f"{source}: {exc}") from None
        return maskers

    @contextlib.contextmanager
    def _importable(self) -> Iterator[None]:
        """The config file's ``pythonpath`` on ``sys.path`` (as pytest puts it) while maskers
        are imported."""
        option = project_option(self.start, self.config, "pythonpath")
        paths: list[str] = []
        if option is not None:
            for value in option.values:
                with contextlib.suppress(ValueError):  # (unbalanced quotes: pytest refuses them)
                    paths += [str((option.base / p).resolve()) for p in shlex.split(value)]
        with _SYS_PATH:  # (runs in threads at once: one adds, the other must not remove it)
            added = [path for path in dict.fromkeys(paths) if path not in sys.path]
            sys.path[:0] = added
            try:
                yield
            finally:
                for path in added:
                    with contextlib.suppress(ValueError):
                        sys.path.remove(path)


def resolve_model(
    model: str | Provider | LLM | None, project: ProjectConfig, *, wanted: bool
) -> tuple[LLM | None, str]:
    """(the `LLM` a task's ``llm`` parameter gets, the model string the run records). A string
    or a `Provider` gets the ``llm`` fixture's retry policy; an `LLM` is used as it is. Without
    ``model``, a task that takes ``llm`` gets the project's ``llm_model``."""
    if isinstance(model, LLM):
        return model, model_string(model.provider)
    if model is not None and not isinstance(model, str):
        return LLM(model, **project.calls()), model_string(model)
    if model is None and not wanted:
        return None, ""
    calls = project.calls()
    # (a run that only replays recorded calls resolves a model without its API key, as
    # --llm-cache=read does)
    replaying = calls["cache"] is not None and calls["cache"].mode is CacheMode.READ
    with replay_only() if replaying else contextlib.nullcontext():
        if model is not None:
            return LLM(default_registry().resolve(model), **calls), model.strip()
        spec, source = project.model()
        try:
            provider = default_registry().resolve(spec)
        except (UnknownModelError, ConfigError) as exc:
            if source is None or getattr(exc, "names_its_setting", False):
                raise
            raise type(exc)(f"{source}: {exc}") from None
    return LLM(provider, **calls), spec


def model_string(provider: Provider) -> str:
    """The model string a run records for ``provider``: its model and the options it was given,
    those that differ from the model's defaults (``mock-llm-v1?accuracy=0.5&seed=3``), as a run
    given that string records it."""
    options = dict(provider.options)
    if not options:
        return provider.model
    defaults: dict[str, Any] = {}
    try:
        plain = default_registry().resolve(provider.model)
    except Exception:  # (not a model the registry knows, or one needing a key: all options)
        plain = None
    if plain is not None:
        close_provider(plain)
        if type(plain) is type(provider):
            defaults = dict(plain.options)
    missing = object()
    given = [(k, v) for k, v in options.items() if defaults.get(k, missing) != v]
    if not given:
        return provider.model
    return f"{provider.model}?{'&'.join(f'{k}={_option_text(v)}' for k, v in given)}"


def _option_text(value: Any) -> str:
    """An option's value as a model string writes it: ``0.5``, ``3``, ``50`` (not ``50.0``)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return str(value)
