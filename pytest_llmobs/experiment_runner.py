"""How `run_experiment` runs the items of one experiment: concurrency slots, attempts with
timeouts and retries, evaluators, and one recorded item (trace, scores, outcome) each.

Each item runs in its own asyncio task with its root span current, so whatever the task does
(also in threads: the context is copied into the pool) nests under it. Sync tasks and sync
evaluators run in a `ThreadPoolExecutor` of ``max_concurrency`` threads; a thread that overran
its timeout keeps its slot (a `Slot` handed to a keeper task) until it returns, so no more than
``max_concurrency`` tasks ever run and a timeout only starts when a thread is free. Each attempt
and each evaluator gets its own copy of the item (`DatasetItem.fresh`): what one changes reaches
no other, nor the item recorded.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pytest_llmobs.datasets import Dataset, DatasetItem
from pytest_llmobs.evaluators.base import EvalResult
from pytest_llmobs.experiment_callables import ItemEvaluator, is_async, not_awaitable, wants_llm
from pytest_llmobs.experiment_item import (
    ExperimentItem,
    ItemInterrupted,
    ItemRecord,
    Slot,
    TaskTimeout,
    add_score,
    describe,
)
from pytest_llmobs.llm import LLM
from pytest_llmobs.providers.client_pool import shared_async_clients
from pytest_llmobs.run import RunRecorder
from pytest_llmobs.run_environment import environment
from pytest_llmobs.run_result import RunResult
from pytest_llmobs.store_writer import StoreWriter
from pytest_llmobs.tracing import CURRENT_OBSERVATION

SLOW_EVALUATOR_S = 0.02
SLOW_RUNS = 2

_Outcomes = dict[int, EvalResult | BaseException | None]
"""Evaluator index → its result, ``None`` (no score) or the exception it raised."""
_Done = tuple[ItemRecord, Any, _Outcomes, int, list[str], float]
"""An item run in a thread: (record, output, outcomes, attempts, errors, start time)."""


class ExperimentRunner:
    """Runs every item of one experiment under the concurrency limit and records it."""

    def __init__(
        self,
        recorder: RunRecorder,
        dataset: Dataset,
        task: Callable[..., Any],
        evaluators: list[ItemEvaluator],
        llm: LLM | None,
        timeout_s: float | None,
        retries: int,
    ) -> None:
        self.recorder = recorder
        self.dataset = dataset
        self.task = task
        self.task_name = getattr(task, "__name__", None) or type(task).__name__
        self.task_is_async = is_async(task)
        self.task_kwargs = {"llm": llm} if wants_llm(task) else {}
        self.evaluators = evaluators
        self.timeout_s = timeout_s
        self.retries = retries
        self.pool: ThreadPoolExecutor | None = None
        self.writer: StoreWriter | None = None
        self.keepers: set[asyncio.Future[None]] = set()
        self.whole_item_in_thread = not self.task_is_async and timeout_s is None
        """Sync tasks without a timeout: the pool's threads bound the concurrency and each
        runs whole items back to back; otherwise a semaphore slot per item."""
        self.slow: set[int] = set()
        self.slow_runs: dict[int, int] = {}
        """Sync evaluators (by index) found slow: they run in the pool, not on the loop."""
        self.interrupted: BaseException | None = None
        """The first ``KeyboardInterrupt`` or ``SystemExit`` an item raised: no item starts after
        it (checked in the pool's threads too, which take queued items at once)."""
        self.cancelling = False
        """The run cancels its items (it stops, or its caller cancelled it): a `CancelledError`
        is then the run's, otherwise the item's own (an inner call the task cancelled)."""

    async def run(
        self, max_concurrency: int, environment_dir: Path
    ) -> tuple[RunResult, list[ExperimentItem]]:
        """Run every item; the store's thread begins the run (with its environment, read by
        git, and a snapshot of the dataset) while the first items run, then stores each item."""
        semaphore = asyncio.Semaphore(max_concurrency)
        if not self.task_is_async or not all(e.is_async for e in self.evaluators):
            self.pool = ThreadPoolExecutor(max_concurrency, "llmobs-experiment")
        writer = self.writer = StoreWriter(
            open_run=functools.partial(self._open_run, environment_dir),
            write=self.recorder.add_item,
            together=self.recorder.store.items_together,
        )
        async with shared_async_clients():  # calls share kept-alive connections
            return await self._run_items(semaphore, max_concurrency, writer)

    async def _run_items(
        self, semaphore: asyncio.Semaphore, max_concurrency: int, writer: StoreWriter
    ) -> tuple[RunResult, list[ExperimentItem]]:
        items: list[ExperimentItem] = []
        tasks: list[asyncio.Future[ExperimentItem]] = []
        try:
            for item in self.dataset:
                tasks.append(asyncio.ensure_future(self._item(item, semaphore)))
                if len(tasks) == max_concurrency:
                    await asyncio.sleep(0)  # the first items start before the rest are queued
                    writer.start()  # and the store's thread after them, while they wait
            await asyncio.sleep(0)
            writer.start()  # (fewer items than max_concurrency)
            gathered = asyncio.gather(*tasks)
            gathered.add_done_callback(_retrieved)
            # shielded: a cancellation of the run reaches the items below, flagged as the run's
            items = list(await asyncio.shield(gathered))
        finally:
            self.cancelling = True
            for running in tasks:  # after a failure (or Ctrl-C) stop the rest, keep what ended
                running.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            try:
                await writer.finish()  # raises what stopped the store (nothing more is recorded)
            finally:
                for keeper in list(self.keepers):
                    keeper.cancel()
                if self.pool is not None:
                    self.pool.shutdown(wait=False, cancel_futures=True)
            verdict = self.recorder.finish(
                interrupted=len(items) < len(self.dataset),
                tests_failed=any(i.outcome != "passed" for i in items),
            )
        return verdict, items

    def _open_run(self, environment_dir: Path) -> None:
        """Begin the run in the store, with its environment (git) and the dataset's snapshot
        (on the store's thread, while the first items run)."""
        self.recorder.environment = environment(environment_dir)
        self.recorder.begin()
        store = self.recorder.store  # (one stored before is governed again by the store's policy)
        store.record_dataset(self.dataset.name, self.dataset.version, self.dataset.snapshot())

    def _new_record(self, item: DatasetItem) -> ItemRecord:
        return ItemRecord(
            run_id=self.recorder.run_id,
            node_id=f"{self.task_name}[{item.id}]",
            name=self.task_name,
            item=item,
            dataset_version=self.dataset.version,
        )

    async def _item(self, item: DatasetItem, semaphore: asyncio.Semaphore) -> ExperimentItem:
        try:
            return await self._run_item(item, semaphore)
        except (KeyboardInterrupt, SystemExit) as exc:
            self.interrupted = self.interrupted or exc
            raise ItemInterrupted(exc) from None

    def _refuse_if_interrupted(self) -> None:
        if self.interrupted is not None:
            raise ItemInterrupted(self.interrupted)

    def _own_cancellation(self) -> bool:
        """Whether a `CancelledError` caught in an item is the run's (not the item's own)."""
        if self.cancelling:
            return True
        current = asyncio.current_task()
        cancelling = getattr(current, "cancelling", None)  # (Python 3.11+)
        return bool(cancelling()) if cancelling is not None else False

    async def _run_item(self, item: DatasetItem, semaphore: asyncio.Semaphore) -> ExperimentItem:
        if self.whole_item_in_thread:
            done: _Done = await self._in_thread(self._run_in_thread, item)
            record, output, scored, attempts, errors, started = done
            token = CURRENT_OBSERVATION.set(record.root)
            try:
                results = await self._conclude(record, item, output, scored, attempts, errors)
            finally:
                CURRENT_OBSERVATION.reset(token)
            record.duration = time.perf_counter() - started
        else:
            slot = Slot(semaphore, self.keepers)
            await slot.take()
            try:
                self._refuse_if_interrupted()
                record = self._new_record(item)
                started = time.perf_counter()
                token = CURRENT_OBSERVATION.set(record.root)
                try:
                    (output, scored), attempts, errors = await self._attempts(record, item, slot)
                    results = await self._conclude(record, item, output, scored, attempts, errors)
                finally:
                    CURRENT_OBSERVATION.reset(token)
                record.duration = time.perf_counter() - started
            finally:
                slot.give_up()
            # the item waiting for this slot starts before this one is stored
            await asyncio.sleep(0)
        payload = record.finish()
        clash = self.recorder.score_kinds.check(payload)  # (the store's thread checks it again)
        if clash is not None:  # so that this item's result says what the run counts
            payload = clash.failed(payload)
        assert self.writer is not None
        self.writer.put(payload)
        return ExperimentItem(
            id=item.id,
            input=item.input,
            expected_output=item.expected_output,
            output=output,
            outcome=str(payload["outcome"]),
            error=payload["error"],
            evaluations=results,
            attempts=attempts,
            duration=record.duration,
            trace_id=record.trace.id,
        )

    def _run_in_thread(self, item: DatasetItem) -> _Done:
        """A sync task without a timeout: the whole item (attempts, sync evaluators) in one pool
        thread, which then takes the next item without waiting for the loop."""
        record = self._new_record(item)
        started = time.perf_counter()
        CURRENT_OBSERVATION.set(record.root)  # in this call's own copy of the context
        errors: list[str] = []
        attempt = 0
        while True:
            attempt += 1
            since = len(record.trace.scores)
            try:
                output = not_awaitable(self.task(item.fresh(), **self.task_kwargs), self.task)
            except (Exception, asyncio.CancelledError) as exc:  # (a thread's: never the run's)
                errors.append(describe(exc))
                if attempt > self.retries:  # the last attempt: its scores are the item's
                    return record, None, {}, attempt, errors, started
                record.set_aside_scores(since, attempt)
                delay = getattr(exc, "retry_after", None)
                if isinstance(delay, (int, float)) and delay > 0:
                    time.sleep(min(float(delay), 60.0))
                continue
            sync = [(i, e) for i, e in enumerate(self.evaluators) if not e.is_async]
            return record, output, _evaluate_sync(sync, output, item), attempt, errors, started

    async def _conclude(
        self,
        record: ItemRecord,
        item: DatasetItem,
        output: Any,
        scored: _Outcomes,
        attempts: int,
        errors: list[str],
    ) -> list[EvalResult]:
        """Set the item's output and outcome, running the evaluators not run yet."""
        results: list[EvalResult] = []
        if len(errors) == attempts:  # every attempt failed
            record.result_outcome, record.error = "error", errors[-1]
        else:
            record.root.output = output
            results = await self._evaluate(record, output, item, scored)
        if attempts > 1:
            record.root.metadata.update(attempts=attempts, retried_errors=errors)
        return results

    async def _attempts(
        self, record: ItemRecord, item: DatasetItem, slot: Slot
    ) -> tuple[tuple[Any, _Outcomes], int, list[str]]:
        """((output, evaluated so far), attempts made, the error of each failed attempt)."""
        errors: list[str] = []
        attempt = 0
        while True:
            attempt += 1
            await slot.take()  # again after a timed-out sync attempt left it to its thread
            since, opened = len(record.trace.scores), len(record.trace.observations)
            try:
                self._refuse_if_interrupted()
                return await self._call_task(item, slot), attempt, errors
            except (Exception, asyncio.CancelledError) as exc:
                if isinstance(exc, ItemInterrupted):  # another item's Ctrl-C: no attempt
                    raise
                if isinstance(exc, asyncio.CancelledError) and self._own_cancellation():
                    raise
                errors.append(describe(exc))
                if isinstance(exc, TaskTimeout) and not self.task_is_async:
                    record.abandon(opened, exc.timeout_s)
                if attempt > self.retries:  # the last attempt: its scores are the item's
                    return (None, {}), attempt, errors
                record.set_aside_scores(since, attempt)
                delay = getattr(exc, "retry_after", None)
                if isinstance(delay, (int, float)) and delay > 0:
                    await asyncio.sleep(min(float(delay), 60.0))

    async def _call_task(self, item: DatasetItem, slot: Slot) -> tuple[Any, _Outcomes]:
        """One attempt: the task's output (no evaluator has run yet)."""
        if self.task_is_async:
            call = self.task(item.fresh(), **self.task_kwargs)
            if self.timeout_s is None:
                return await call, {}
            started = time.perf_counter()
            try:
                return await asyncio.wait_for(call, self.timeout_s), {}
            except asyncio.TimeoutError:
                if time.perf_counter() - started < self.timeout_s:
                    raise  # the task's own timeout, not ours
                raise TaskTimeout(self.timeout_s) from None
        thread_call = self._in_thread(self.task, item.fresh(), **self.task_kwargs)
        if self.timeout_s is None:
            return not_awaitable(await thread_call, self.task), {}
        try:
            output = await asyncio.wait_for(asyncio.shield(thread_call), self.timeout_s)
            return not_awaitable(output, self.task), {}
        except asyncio.TimeoutError:
            if thread_call.done():
                raise  # the task's own timeout, not ours
            slot.hand_to(thread_call)
            raise TaskTimeout(self.timeout_s) from None

    def _in_thread(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        context = contextvars.copy_context()
        call = functools.partial(context.run, self._guarded, function, *args, **kwargs)
        return asyncio.get_running_loop().run_in_executor(self.pool, call)

    def _guarded(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """In a pool thread: ``function``, unless an item was interrupted; an interruption it
        raises is noted at once, before the thread takes the next queued call."""
        self._refuse_if_interrupted()
        try:
            return function(*args, **kwargs)
        except (KeyboardInterrupt, SystemExit) as exc:
            self.interrupted = self.interrupted or exc
            raise

    async def _evaluate(
        self, record: ItemRecord, output: Any, item: DatasetItem, scored: _Outcomes
    ) -> list[EvalResult]:
        """Score ``output`` with every evaluator not run yet, record the scores, judge the item.

        Sync evaluators run on the loop (a thread hop costs more than a quick check) until one
        has taken over `SLOW_EVALUATOR_S` `SLOW_RUNS` times; from then on it runs in the pool.
        """
        outcomes = dict(scored)
        pending = [(i, e) for i, e in enumerate(self.evaluators) if i not in outcomes]
        slow = [(i, e) for i, e in pending if not e.is_async and i in self.slow]
        if slow:
            outcomes.update(await self._in_thread(_evaluate_sync, slow, output, item))
        for index, evaluator in pending:
            if evaluator.is_async:
                try:
                    outcomes[index] = evaluator.result(await evaluator.call(output, item.fresh()))
                except (Exception, asyncio.CancelledError) as exc:
                    if isinstance(exc, asyncio.CancelledError) and self._own_cancellation():
                        raise
                    outcomes[index] = exc
            elif index not in outcomes:
                started = time.perf_counter()
                outcomes.update(_evaluate_sync([(index, evaluator)], output, item))
                if time.perf_counter() - started > SLOW_EVALUATOR_S:
                    self.slow_runs[index] = self.slow_runs.get(index, 0) + 1
                    if self.slow_runs[index] >= SLOW_RUNS:
                        self.slow.add(index)
        results: list[EvalResult] = []
        raised: list[str] = []
        for index, evaluator in enumerate(self.evaluators):
            outcome = outcomes[index]
            if isinstance(outcome, EvalResult):
                outcome = add_score(record, outcome, evaluator.name)
            if isinstance(outcome, BaseException):
                raised.append(f"evaluator {evaluator.name!r} raised {describe(outcome)}")
            elif outcome is not None:
                results.append(outcome)
        not_passed = [r.reason or f"{r.name} did not pass" for r in results if not r.passed]
        if raised:
            record.result_outcome, record.error = "error", "; ".join(raised)
        elif not_passed:
            record.result_outcome, record.error = "failed", "; ".join(not_passed)
        return results


def _evaluate_sync(
    evaluators: list[tuple[int, ItemEvaluator]], output: Any, item: DatasetItem
) -> _Outcomes:
    outcomes: _Outcomes = {}
    for index, evaluator in evaluators:
        try:
            outcomes[index] = evaluator.result(evaluator.call(output, item.fresh()))
        except (Exception, asyncio.CancelledError) as exc:  # (sync: never the run's)
            outcomes[index] = exc
    return outcomes


def _retrieved(gathered: asyncio.Future[Any]) -> None:
    """Mark the items' failure as seen when the run was cancelled first (no asyncio warning)."""
    if not gathered.cancelled():
        gathered.exception()
