"""Experiments outside pytest (scripts, notebooks): run a task over a dataset, concurrently.

``run_experiment`` records the same run a pytest session would, through a `RunRecorder`: one
trace per item (a root span named after the task, linked to the dataset item, with its input and
output; everything the task does nests under it), item evaluators' results as scores,
aggregates, run evaluators and threshold verdicts, stored where a pytest session started here
would store them and ``llmobs`` looks (``llm_store``, else ``<rootdir>/.llmobs``; ``store=``),
under the project's redaction policy, with its ``llm_model``, ``llm_datasets_dir`` and
``llm_max_retries`` as defaults (`experiment_config`)::

    def exact(output, item):
        return output == item.expected_output

    async def answer(item, llm):
        return (await llm.agenerate(item.input)).text

    result = run_experiment(
        name="capitals", dataset="capitals", task=answer, evaluators=[exact],
        model="mock-llm-v1?accuracy=0.8", max_concurrency=20, thresholds=["mean_exact >= 0.7"],
    )
    print(result.summary())

At most ``max_concurrency`` items run at once (an asyncio semaphore). Async tasks and evaluators
run on the event loop; sync tasks in a thread pool of ``max_concurrency`` threads, with the item's
context copied so traces nest. Sync evaluators run in the thread of a sync task without a
timeout, otherwise on the loop until one proves slow, then in the pool. A task parameter named
``llm`` receives an `LLM` for ``model``.
Each task attempt may take ``timeout_s``; a failed attempt is retried ``retries`` times (after a
provider's ``retry_after``), and an item whose task finally fails is recorded with outcome
``error`` while the experiment goes on; a retried attempt's spans stay in the trace, its scores
go to the root span's ``retried_scores`` metadata and count nowhere. A sync task that overruns
its timeout cannot be stopped: its item is recorded at once (its calls still running marked
``ERROR``, abandoned) and its thread keeps a slot until it returns. Outcomes mirror tests:
``error`` when the task or an evaluator raised or returned what cannot be a score, ``failed``
when an evaluator's result did not pass, ``passed`` otherwise. An evaluator is called as
``(output, item)``, or ``(output)`` when that is all it takes; one returning ``None`` records no
score.
"""

from __future__ import annotations

import asyncio
import contextvars
import enum
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_llmobs.aggregate_model import Aggregate
from pytest_llmobs.evaluators.custom import RunEvaluator
from pytest_llmobs.experiment_args import (
    EvaluatorsArg,
    check_datasets_dir,
    check_limits,
    check_model,
    check_run_evaluator,
    check_score_name,
    check_task_signature,
    check_thresholds,
    named,
)
from pytest_llmobs.experiment_callables import ItemEvaluator, wants_llm
from pytest_llmobs.experiment_config import ProjectConfig, resolve_model
from pytest_llmobs.experiment_dataset import DatasetArg, resolve_dataset
from pytest_llmobs.experiment_item import ExperimentItem, ItemInterrupted
from pytest_llmobs.experiment_runner import ExperimentRunner
from pytest_llmobs.governance import Governance
from pytest_llmobs.llm import LLM
from pytest_llmobs.locate import find_store_dir
from pytest_llmobs.providers import Provider
from pytest_llmobs.providers.calls import close_provider
from pytest_llmobs.run import RunRecorder
from pytest_llmobs.run_environment import new_run_id
from pytest_llmobs.run_result import RunResult
from pytest_llmobs.store import Store
from pytest_llmobs.thresholds import ThresholdResult, parse_threshold

__all__ = ["ExperimentItem", "ExperimentResult", "arun_experiment", "run_experiment"]


class _Default(enum.Enum):
    STORE = "store"

    def __repr__(self) -> str:
        return "<the store pytest and the llmobs command use here>"


DEFAULT_STORE = _Default.STORE
"""``store=``'s default: the directory a pytest session started in the current directory
stores into, and ``llmobs`` reads (``llm_store``, else ``<rootdir>/.llmobs``; see `locate`)."""
THRESHOLD_SOURCE = "run_experiment"

_loop_of_our_own: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "llmobs_loop_of_our_own", default=False
)
"""Set by `run_experiment`, whose `asyncio.run` carries an `ItemInterrupted` out of the loop
and raises the ``KeyboardInterrupt`` (or ``SystemExit``) there."""


# --- what an experiment returns -----------------------------------------------------------------


@dataclass(slots=True)
class ExperimentResult:
    """The recorded run's verdict and every item's result, in dataset order."""

    run: RunResult
    items: list[ExperimentItem]
    governance: Governance | None = None
    """The store's policy, which `summary` shows the items' errors through (as stored)."""

    def __repr__(self) -> str:
        # Short on purpose: a notebook shows it, and asyncio formats the result of
        # `run_experiment`'s task when it restores the SIGINT handler (every item, every score).
        return f"<ExperimentResult {self.run_id} {self.status}: {len(self.items)} items>"

    @property
    def run_id(self) -> str:
        return self.run.run_id

    @property
    def status(self) -> str:
        return self.run.status

    @property
    def aggregates(self) -> dict[str, dict[str, Aggregate]]:
        """Per dataset (and ``"*"`` for the run): aggregate name → `Aggregate`."""
        return dict(self.run.aggregates)

    @property
    def thresholds(self) -> list[ThresholdResult]:
        return list(self.run.thresholds)

    @property
    def passed(self) -> bool:
        """The run passed (``status == "passed"``): no item failed or errored, every threshold
        passed, no run evaluator failed and the run was not interrupted (what a pytest session
        would exit 0 for)."""
        return self.run.status == "passed"

    @property
    def thresholds_passed(self) -> bool:
        """Every threshold passed and no run evaluator failed, whatever the items' outcomes."""
        return self.run.thresholds_passed

    def summary(self) -> str:
        """The summary pytest prints at the end of a session, plus the errored items, their
        errors masked as the store holds them (``items`` keep the real text)."""
        from pytest_llmobs.reporting.terminal import summary_lines

        lines = [
            "not stored (store=None)"
            if line == "not stored (--llm-no-store)"
            else line.replace("failed: session fails", "failed: the run did not pass")
            for line in summary_lines(self.run)
        ]  # (no session here: `passed` is false)
        errored = [i for i in self.items if i.outcome == "error"]
        if errored:
            lines.append(f"{len(errored)} item(s) errored:")
            governance = self.governance
            lines += [
                f"  {i.id}: {i.error if governance is None else governance.value(i.error)}"
                for i in errored[:10]
            ]
            if len(errored) > 10:
                lines.append(f"  ... and {len(errored) - 10} more")
        return "\n".join(lines)


# --- entry points -------------------------------------------------------------------------------


def run_experiment(
    *,
    name: str,
    dataset: DatasetArg,
    task: Callable[..., Any],
    evaluators: EvaluatorsArg = (),
    run_evaluators: EvaluatorsArg = (),
    max_concurrency: int = 10,
    timeout_s: float | None = None,
    retries: int = 0,
    model: str | Provider | LLM | None = None,
    store: str | os.PathLike[str] | Store | _Default | None = DEFAULT_STORE,
    thresholds: Sequence[str] = (),
    datasets_dir: str | os.PathLike[str] | None = None,
    dataset_name: str | None = None,
) -> ExperimentResult:
    """Run ``task`` over ``dataset`` and record the run (see the module docstring).

    Where an event loop already runs (a notebook cell, an async test), ``await
    arun_experiment(...)`` instead; this function then raises `RuntimeError` saying so.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise RuntimeError(
            "run_experiment() cannot start an event loop inside the running one; "
            "use 'await pytest_llmobs.arun_experiment(...)' here (same arguments)"
        )
    token = _loop_of_our_own.set(True)
    try:
        return asyncio.run(
            arun_experiment(
                name=name,
                dataset=dataset,
                task=task,
                evaluators=evaluators,
                run_evaluators=run_evaluators,
                max_concurrency=max_concurrency,
                timeout_s=timeout_s,
                retries=retries,
                model=model,
                store=store,
                thresholds=thresholds,
                datasets_dir=datasets_dir,
                dataset_name=dataset_name,
            )
        )
    except ItemInterrupted as stop:
        raise stop.original from None
    finally:
        _loop_of_our_own.reset(token)


async def arun_experiment(
    *,
    name: str,
    dataset: DatasetArg,
    task: Callable[..., Any],
    evaluators: EvaluatorsArg = (),
    run_evaluators: EvaluatorsArg = (),
    max_concurrency: int = 10,
    timeout_s: float | None = None,
    retries: int = 0,
    model: str | Provider | LLM | None = None,
    store: str | os.PathLike[str] | Store | _Default | None = DEFAULT_STORE,
    thresholds: Sequence[str] = (),
    datasets_dir: str | os.PathLike[str] | None = None,
    dataset_name: str | None = None,
) -> ExperimentResult:
    """`run_experiment` for code already in an asyncio event loop: ``await
    arun_experiment(...)``. Under trio (or another event loop), call `run_experiment` from a
    worker thread instead."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        raise RuntimeError(
            "arun_experiment runs on asyncio, and no asyncio event loop is running here (trio?); "
            "call run_experiment(...) in a worker thread instead, e.g. "
            "await trio.to_thread.run_sync(lambda: run_experiment(...))"
        ) from None
    check_limits(name, task, max_concurrency, timeout_s, retries)
    check_model(model)
    check_datasets_dir(datasets_dir)
    expressions = check_thresholds(thresholds)
    project = ProjectConfig(Path.cwd())
    data = resolve_dataset(
        dataset,
        datasets_dir=project.datasets_dir() if datasets_dir is None else Path(datasets_dir),
        dataset_name=dataset_name,
    )
    checks = [parse_threshold(t, source=THRESHOLD_SOURCE) for t in expressions]
    named_evaluators = named(evaluators, "evaluators")
    for label, _ in named_evaluators:
        check_score_name(label)
    item_evaluators = [ItemEvaluator.of(n, f) for n, f in named_evaluators]
    per_run = {}
    for label, function in named(run_evaluators, "run_evaluators"):
        check_run_evaluator(label, function)
        per_run[label] = (
            function if isinstance(function, RunEvaluator) else RunEvaluator(function, name=label)
        )
    check_task_signature(task, wants_llm(task))
    # the project's policy, unless the Store given keeps its own: said before any task runs
    governance = None if isinstance(store, Store) else project.governance()
    llm, model_text = resolve_model(model, project, wanted=wants_llm(task))
    opened: Store | None = None
    try:
        opened = store if isinstance(store, Store) else _open_store(store, governance)
        recorder = RunRecorder(
            store=opened,
            name=name,
            model=model_text,
            params=dict(llm.provider.options) if llm is not None else {},
            thresholds=checks,
            run_id=new_run_id(),
            run_evaluators=per_run,
        )
        runner = ExperimentRunner(recorder, data, task, item_evaluators, llm, timeout_s, retries)
        run, items = await runner.run(max_concurrency, Path.cwd())
        return ExperimentResult(run, items, governance=opened.governance)
    except ItemInterrupted as stop:
        if _loop_of_our_own.get():
            raise
        raise stop.original from None  # (in the caller's own task: theirs to handle)
    finally:
        if llm is not None and (model is None or isinstance(model, str)):  # resolved here
            close_provider(llm.provider)  # its kept-alive connections (sync tasks' client)
        if opened is not None and opened is not store:
            opened.close(wait=False)  # results are stored; the checkpoint need not delay them


def _open_store(
    store: str | os.PathLike[str] | _Default | None, governance: Governance | None
) -> Store:
    """The store ``store`` names, under the project's policy (`ProjectConfig.governance`: what a
    pytest session here would mask, cut and sample; pass a `Store` of your own to change it)."""
    if store is None:
        return Store(None, governance=governance)
    if store is DEFAULT_STORE:  # where `llmobs runs` looks: scripts and pytest share one store
        return Store.in_directory(find_store_dir(Path.cwd()), governance=governance)
    if not isinstance(store, (str, os.PathLike)):
        raise TypeError(
            f"store must be a directory path, a Store or None; got {type(store).__name__} {store!r}"
        )
    return Store.in_directory(Path(store).resolve(), governance=governance)
