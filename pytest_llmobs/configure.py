"""Building the session's state from options, and closing the run at the end of the session."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from pytest_llmobs.evaluators.custom import EvaluatorRegistry
from pytest_llmobs.governance import (
    Governance,
    GovernanceError,
    build_governance,
    checked_maskers,
    load_masker,
)
from pytest_llmobs.llm import LLM
from pytest_llmobs.prompts import PromptRegistry
from pytest_llmobs.providers import ConfigError, Provider, UnknownModelError, default_registry
from pytest_llmobs.providers.cache import CacheMode
from pytest_llmobs.providers.calls import close_provider, session_calls
from pytest_llmobs.redaction import Masker
from pytest_llmobs.run import NO_RESULT, RunRecorder
from pytest_llmobs.run_environment import default_run_name, environment, new_run_id
from pytest_llmobs.session import SessionState
from pytest_llmobs.settings import OPTIONS, Settings
from pytest_llmobs.settings_read import ini_where, read_settings, where
from pytest_llmobs.stash import WORKER_RUN_ID, is_xdist_worker
from pytest_llmobs.store import Store, StoreError
from pytest_llmobs.thresholds import Threshold, ThresholdError, parse_threshold


def run_id_taken(run_id: str, store: Store, source: str = "--llm-run-id") -> str:
    """The usage error of a run id (given by ``source``) the store already holds."""
    return (
        f"{source}: run {run_id!r} is already in {store.path or 'the store'}; "
        "each shard records its part in its own store, and 'llmobs merge' combines "
        "their exports"
    )


def _run_id(config: pytest.Config, given: str | None) -> str:
    """The controller's run id on an xdist worker; elsewhere ``--llm-run-id`` or a new one."""
    workerinput = getattr(config, "workerinput", None) or {}
    return str(workerinput.get(WORKER_RUN_ID) or given or new_run_id())


def resolve_models(config: pytest.Config, settings: Settings) -> tuple[Provider, Provider]:
    """The session's model and judge model; an unknown one raises `pytest.UsageError`."""
    registry = default_registry()
    config.hook.pytest_llmobs_register_models(registry=registry, config=config)
    with _replaying(settings):
        try:
            provider = registry.resolve(settings.model)
        except (UnknownModelError, ConfigError) as exc:
            raise pytest.UsageError(_about(where(config, "llm_model"), exc)) from None
        try:
            judge = registry.resolve(settings.judge_model) if settings.judge_model else provider
        except (UnknownModelError, ConfigError) as exc:
            raise pytest.UsageError(_about(where(config, "llm_judge_model"), exc)) from None
    return provider, judge


def _about(option: str, error: Exception) -> str:
    """The error, under the option it is about unless it names its own setting."""
    if isinstance(error, ConfigError) and error.names_its_setting:
        return str(error)
    return f"{option}: {error}"


def check_models(config: pytest.Config) -> None:
    """Resolve the models a session names, without opening the store (``pytest --co``)."""
    resolve_models(config, read_settings(config))


def build_state(config: pytest.Config) -> SessionState:
    """Validate every option and open the store; mistakes raise `pytest.UsageError`."""
    settings = read_settings(config)
    provider, judge = resolve_models(config, settings)
    try:
        calls = session_calls(
            max_retries=settings.max_retries,
            cache_mode=settings.cache_mode,
            cache_dir=settings.cache_dir,
            prices_path=settings.prices_path,
        )
    except ConfigError as exc:
        raise pytest.UsageError(_from_where(config, str(exc))) from None
    evaluators = EvaluatorRegistry()
    hook = config.hook.pytest_llmobs_register_evaluators  # (and for conftests loaded later)
    hook.call_historic(kwargs={"registry": evaluators, "config": config})
    thresholds = _thresholds(config, settings)
    governance = _governance(config, settings)
    try:
        store = (
            Store.in_directory(settings.store_dir, governance=governance)
            if settings.store_dir
            else Store(None, governance=governance)
        )
    except StoreError as exc:
        raise pytest.UsageError(f"{where(config, 'llm_store')}: {exc}") from None
    with _closed_on_error(store):  # a usage error found after opening it
        if not is_xdist_worker(config):
            _resolve_baseline(config, settings, store)
        run_id = _run_id(config, settings.run_id)
        recorder = None
        if not is_xdist_worker(config):
            if settings.run_id and store.has_run(run_id) and not config.option.collectonly:
                raise pytest.UsageError(run_id_taken(run_id, store, where(config, "llm_run_id")))
            recorder = RunRecorder(
                store=store,
                name="",
                model=settings.model,
                params=dict(provider.options),
                environment=environment(settings.rootdir),
                thresholds=thresholds,
                run_id=run_id,
                run_evaluators=evaluators.run,  # (a conftest loaded later may add some)
                outlive_store_failures=True,
            )
            recorder.name = settings.run_name or default_run_name(
                settings.model, recorder.started_at
            )
            if not config.option.collectonly:
                _refuse_name_clashes(config, settings, store, recorder)
        return SessionState(
            settings=settings,
            run_id=run_id,
            provider=provider,
            store=store,
            recorder=recorder,
            prompts=PromptRegistry(settings.prompts_dir, store),
            llm=LLM(provider, **calls),
            judge=LLM(judge, **calls),
            evaluators=evaluators,
            governed_at=governance.revision,
        )


def _from_where(config: pytest.Config, message: str) -> str:
    """``message`` of a module that knows an option by its flag (``--llm-prices: ...``) naming
    where the value came from instead (``llm_prices in /path/pytest.ini: ...``)."""
    flag, sep, rest = message.partition(": ")
    spec = next((spec for spec in OPTIONS if spec.flag == flag), None)
    return f"{where(config, spec.ini)}: {rest}" if spec is not None and sep else message


def _thresholds(config: pytest.Config, settings: Settings) -> list[Threshold]:
    """The option's thresholds; a malformed one is a usage error naming where it was given.
    (The run keeps the short source, ``ini llm_threshold``: a path would not travel.)"""
    thresholds = []
    for expression, source in settings.thresholds:
        told = source if source.startswith("--") else ini_where(config, "llm_threshold")
        try:
            threshold = parse_threshold(expression, source=told)
        except ThresholdError as exc:
            raise pytest.UsageError(str(exc)) from None
        thresholds.append(dataclasses.replace(threshold, source=source))
    return thresholds


@contextlib.contextmanager
def _closed_on_error(store: Store) -> Iterator[None]:
    """Close ``store`` when the block raises (Python 3.13 warns of a connection left open)."""
    try:
        yield
    except BaseException:
        store.close()
        raise


def _replaying(settings: Settings) -> contextlib.AbstractContextManager[None]:
    """With ``--llm-cache=read`` models resolve without API keys: nothing calls them."""
    if settings.cache_mode is not CacheMode.READ:
        return contextlib.nullcontext()
    from pytest_llmobs.providers.openai_config import replay_only

    return replay_only()


def _resolve_baseline(config: pytest.Config, settings: Settings, store: Store) -> None:
    """Check ``--llm-save-baseline`` and load ``--llm-baseline`` into ``config.stash``."""
    if not settings.baseline and not settings.save_baseline:
        return
    from pytest_llmobs.baselines import BaselineError, check_name, resolve_baseline
    from pytest_llmobs.stash import BASELINE_KEY

    problem = None
    if settings.save_baseline:
        try:
            if settings.store_dir is None:
                raise BaselineError("cannot save a baseline with --llm-no-store")
            check_name(settings.save_baseline)
        except BaselineError as exc:
            problem = f"{where(config, 'llm_save_baseline')}: {exc}"
    if settings.baseline and problem is None:
        source = where(config, "llm_baseline")
        try:
            baseline = resolve_baseline(settings.baseline, store=store, path=settings.baseline_path)
        except (BaselineError, StoreError) as exc:
            problem = f"{source}: {exc}"
        else:
            problem = _unfinished_baseline(baseline.run, source)
            if problem is None:
                config.stash[BASELINE_KEY] = baseline
    if problem is not None:
        raise pytest.UsageError(problem)


def _unfinished_baseline(run: dict[str, Any], source: str) -> str | None:
    """Why ``run`` cannot be a baseline: interrupted, or still running (another session's, which
    ``latest`` may name). ``llmobs compare`` refuses such a run too; a gate must not pass on the
    items it happened to store."""
    from pytest_llmobs.compare.model import status_note

    note, incomplete = status_note(run, "baseline")
    if not incomplete:
        return None
    return f"{source}: {note}; compare against a finished run (its id, or a saved baseline)"


def _refuse_name_clashes(
    config: pytest.Config, settings: Settings, store: Store, recorder: RunRecorder
) -> None:
    """A word names one run wherever a RUN is read: this run's id is no saved baseline's name,
    and the baseline it saves reads as no stored run nor as this one. (A run name may be a
    baseline's: the baseline comes first wherever a RUN is read.)"""
    if not settings.run_id and not settings.save_baseline:
        return  # the common case: nothing to check, and no import of the baseline machinery
    from pytest_llmobs.baselines import BaselineError, check_no_clash

    problem = None
    if settings.run_id and store.get_baseline(settings.run_id) is not None:
        problem = (
            f"{where(config, 'llm_run_id')}: {settings.run_id!r} is the name of a saved baseline "
            f"in {store.path}; "
            "a run id must not be one (the same word would name two runs); pick another id"
        )
    name = settings.save_baseline
    if problem is None and name:
        try:
            check_no_clash(store, name)
            if name in (recorder.run_id, recorder.name) or recorder.run_id.startswith(name):
                raise BaselineError(
                    f"baseline name {name!r} is this run's id, a prefix of it or its name; a "
                    "baseline name must not read as a run; pick another name"
                )
        except BaselineError as exc:
            problem = f"{where(config, 'llm_save_baseline')}: {exc}"
    if problem is not None:
        raise pytest.UsageError(problem)


def _governance(config: pytest.Config, settings: Settings) -> Governance:
    """The redaction/sampling/size policy; bad values are usage errors."""
    try:
        governance = build_governance(
            mode=settings.redact,
            extra=_maskers(config, settings.redact_maskers),
            trace_sample=settings.trace_sample,
            max_field_chars=settings.max_field_chars,
        )
    except GovernanceError as exc:
        raise pytest.UsageError(str(exc)) from None

    def add(maskers: list[Masker] | None) -> None:
        try:
            governance.add_maskers(checked_maskers(maskers or []))
        except GovernanceError as exc:
            raise pytest.UsageError(str(exc)) from None

    # historic: a conftest pytest loads while collecting gets its maskers in before any test
    hook = config.hook.pytest_llmobs_register_maskers
    hook.call_historic(result_callback=add, kwargs={"config": config})
    return governance


def _maskers(config: pytest.Config, references: Sequence[str]) -> list[Masker]:
    """The ``--llm-redact-maskers`` imported and tried; a bad one is a usage error (naming the
    ini key and file, or ``-o``, when it was given there)."""
    given = config.getoption("llm_redact_maskers") or []
    maskers = []
    for reference in references:
        try:
            maskers += checked_maskers([load_masker(reference)])
        except GovernanceError as exc:
            if reference in given:  # as typed on the command line: the reference says which
                raise pytest.UsageError(str(exc)) from None
            raise pytest.UsageError(f"{ini_where(config, 'llm_redact_maskers')}: {exc}") from None
    return maskers


def finish_run(state: SessionState, session: pytest.Session, exitstatus: int) -> None:
    """Aggregate, evaluate thresholds, store the verdict and set the exit status."""
    recorder = state.recorder
    if recorder is None or not state.started:
        return
    interrupted = state.interrupted
    # Collection errors end the session as INTERRUPTED too, but they are failures, not Ctrl-C.
    tests_failed = session.testsfailed > 0 or exitstatus not in (
        pytest.ExitCode.OK,
        pytest.ExitCode.NO_TESTS_COLLECTED,
    )
    if exitstatus == pytest.ExitCode.USAGE_ERROR and recorder.item_count == 0:
        # nothing ran (a marker mistake found while collecting): no run to keep, and `latest`
        # must go on naming the last run that ran something
        state.store.discard_run(recorder.run_id)
        return
    stopped = session.shouldfail or session.shouldstop or state.stop_reason  # -x, --maxfail
    if interrupted or stopped:
        why = "not run: the session was interrupted" if interrupted else f"not run: {stopped}"
        for entry in recorder.missing:
            if entry["reason"] == NO_RESULT:
                recorder.note_lost(entry["node_id"], why)
    # (a collection error under -x or --maxfail stops the session too: nothing else says it)
    if not interrupted and tests_failed and not recorder.failing_count and not recorder.missing:
        recorder.failures.append(_failure_outside_the_run(session.testsfailed, exitstatus))
    result = recorder.finish(interrupted=interrupted, tests_failed=tests_failed)
    state.result = result
    from pytest_llmobs.compare.gate import conclude

    failed = conclude(state, session.config, result, tests_failed=tests_failed)
    if failed and session.exitstatus in (
        pytest.ExitCode.OK,
        pytest.ExitCode.NO_TESTS_COLLECTED,
    ):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    session.config.hook.pytest_llmobs_run_finished(result=result, config=session.config)


def _failure_outside_the_run(failures: int, exitstatus: int) -> str:
    """Why a run whose stored tests all passed failed: pytest failed the session anyway."""
    if failures:
        return (
            f"pytest counted {failures} failure(s) outside the tests stored in this run (a "
            "collection error, say): see its summary"
        )
    return f"pytest failed the session (exit status {int(exitstatus)}) although no test failed"


def close_models(state: SessionState) -> None:
    """Close the HTTP connections the session's models keep open."""
    close_provider(state.llm.provider)
    if state.judge.provider is not state.llm.provider:
        close_provider(state.judge.provider)
