"""Building the session's state from options, and closing the run at the end of the session."""

from __future__ import annotations

import pytest

from pytest_llmobs.evaluators.custom import EvaluatorRegistry
from pytest_llmobs.llm import LLM
from pytest_llmobs.prompts import PromptRegistry
from pytest_llmobs.providers import UnknownModelError, default_registry
from pytest_llmobs.run import RunRecorder, default_run_name, environment, new_run_id
from pytest_llmobs.session import SessionState
from pytest_llmobs.settings import read_settings
from pytest_llmobs.store import Store, StoreError
from pytest_llmobs.thresholds import ThresholdError, parse_threshold

WORKER_RUN_ID = "llmobs_run_id"
"""Key of the controller's run id in an xdist worker's ``workerinput``."""


def is_xdist_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def _run_id(config: pytest.Config) -> str:
    """The controller's run id on an xdist worker, a new one elsewhere."""
    workerinput = getattr(config, "workerinput", None) or {}
    return str(workerinput.get(WORKER_RUN_ID) or new_run_id())


def build_state(config: pytest.Config) -> SessionState:
    """Validate every option and open the store; mistakes raise `pytest.UsageError`."""
    settings = read_settings(config)
    registry = default_registry()
    config.hook.pytest_llmobs_register_models(registry=registry, config=config)
    try:
        provider = registry.resolve(settings.model)
    except UnknownModelError as exc:
        raise pytest.UsageError(f"--llm-model: {exc}") from None
    try:
        judge = registry.resolve(settings.judge_model) if settings.judge_model else provider
    except UnknownModelError as exc:
        raise pytest.UsageError(f"--llm-judge-model: {exc}") from None
    evaluators = EvaluatorRegistry()
    config.hook.pytest_llmobs_register_evaluators(registry=evaluators, config=config)
    try:
        thresholds = [parse_threshold(t, source=src) for t, src in settings.thresholds]
    except ThresholdError as exc:
        raise pytest.UsageError(str(exc)) from None
    try:
        store = Store.in_directory(settings.store_dir) if settings.store_dir else Store(None)
    except StoreError as exc:
        raise pytest.UsageError(f"--llm-store: {exc}") from None
    run_id = _run_id(config)
    recorder = None
    if not is_xdist_worker(config):
        recorder = RunRecorder(
            store=store,
            name="",
            model=settings.model,
            params=dict(provider.options),
            environment=environment(settings.rootdir),
            thresholds=thresholds,
            run_id=run_id,
            run_evaluators=dict(evaluators.run),
        )
        recorder.name = settings.run_name or default_run_name(settings.model, recorder.started_at)
    return SessionState(
        settings=settings,
        run_id=run_id,
        provider=provider,
        store=store,
        recorder=recorder,
        prompts=PromptRegistry(settings.prompts_dir, store),
        llm=LLM(provider),
        judge=LLM(judge),
        evaluators=evaluators,
    )


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
    result = recorder.finish(interrupted=interrupted, tests_failed=tests_failed)
    state.result = result
    if not result.thresholds_passed and session.exitstatus in (
        pytest.ExitCode.OK,
        pytest.ExitCode.NO_TESTS_COLLECTED,
    ):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    session.config.hook.pytest_llmobs_run_finished(result=result, config=session.config)
