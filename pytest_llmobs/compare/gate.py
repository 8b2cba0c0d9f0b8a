"""The end of a session with the gate: compare with the baseline, store the comparison, apply
``--llm-fail-on`` and save the run as a baseline when asked."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from pytest_llmobs.settings import FAIL_POLICIES
from pytest_llmobs.stash import BASELINE_KEY

if TYPE_CHECKING:
    from pytest_llmobs.run_result import RunResult
    from pytest_llmobs.session import SessionState


def conclude(
    state: SessionState, config: pytest.Config, result: RunResult, *, tests_failed: bool
) -> bool:
    """Finish the verdict of ``result``; True when the plugin fails the session (a threshold or a
    regression, as ``--llm-fail-on`` selects, or a run evaluator error)."""
    settings = state.settings
    recorder = state.recorder
    assert recorder is not None, "conclude without a recorder"
    result.fail_on = tuple(sorted(settings.fail_on))
    baseline = config.stash.get(BASELINE_KEY, None)
    summary: dict[str, Any] = {}
    if baseline is not None:
        from pytest_llmobs.compare.core import compare_runs, run_info

        current = recorder.load_run()
        comparison = compare_runs(
            baseline.run,
            current,
            baseline_info=run_info(baseline.run, source=baseline.source, ref=baseline.ref),
            store=state.store,
            max_drop=settings.max_drop,
        )
        result.comparison = comparison
        result.gate_failed = not comparison.gate_passed
    thresholds_failed = any(not t.passed for t in result.thresholds)
    fails = (
        bool(result.errors)
        or ("threshold" in settings.fail_on and thresholds_failed)
        or ("regression" in settings.fail_on and result.gate_failed)
    )
    status = result.status
    if status == "passed" and fails:
        status = "failed"
    elif status == "failed" and thresholds_failed and not (fails or tests_failed or result.missing):
        status = "passed"  # failed on thresholds only, which --llm-fail-on does not enforce
    if result.comparison is not None:
        from pytest_llmobs.compare.model import status_note

        result.comparison.current.status = status
        note, incomplete = status_note({**current, "status": status}, "compared")
        result.comparison.incomplete = [note] if incomplete and note else []
        summary["comparison"] = {
            **result.comparison.to_dict(),
            "enforced": "regression" in settings.fail_on,  # for readers: does it fail runs?
        }
    if set(result.fail_on) != set(FAIL_POLICIES):  # readers assume the default otherwise
        summary["fail_on"] = list(result.fail_on)
    if status != result.status or summary:
        store_failure = recorder.update_run(status=status, summary=summary)
        if store_failure is not None:  # the first write the store refused: the run fails
            result.errors.append(store_failure)
            fails = True
        status = recorder.status
        result.status = status
    if settings.save_baseline and status == "passed":
        state.store.save_baseline(settings.save_baseline, result.run_id)
        result.baseline_saved = settings.save_baseline
    elif settings.save_baseline:
        result.baseline_not_saved = (
            f"not saved as baseline {settings.save_baseline!r}: the session did not pass (run "
            f"status {status}); `{_save_anyway(state, config, result.run_id)}` saves it anyway"
        )
    return fails


def _save_anyway(state: SessionState, config: pytest.Config, run_id: str) -> str:
    """The ``llmobs baseline save NAME RUN --force`` command that saves the run, as typed
    where pytest ran: the name quoted for a shell, and ``--store DIR`` unless ``llmobs``
    finds the store by itself there (as the upload's retry command says it)."""
    import shlex
    from pathlib import Path

    from pytest_llmobs.exporters.commands import store_option

    name = str(state.settings.save_baseline)
    words = ["llmobs baseline save", shlex.quote(name), shlex.quote(run_id), "--force"]
    if state.store.path is not None:
        cwd = Path(config.invocation_params.dir)  # where the user goes on with `llmobs`
        words.append(store_option(Path(state.store.path).parent, cwd))
    return " ".join(word for word in words if word)
