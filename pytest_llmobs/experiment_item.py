"""One item of a `run_experiment` as it runs: the `Slot` it holds among ``max_concurrency``, its
record (`ItemRecord`: the outcome the experiment sets, an abandoned attempt's calls, a retried
attempt's scores set aside) and its result, `ExperimentItem`."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from pytest_llmobs.evaluators.base import EvalResult
from pytest_llmobs.recording import TestRecord


@dataclass(slots=True)
class ExperimentItem:
    """One dataset item's result: the task's output (the object itself), its scores, outcome."""

    id: str
    input: Any
    expected_output: Any
    output: Any
    outcome: str
    """passed | failed (an evaluator did not pass) | error (the task or an evaluator raised)."""
    error: str | None
    evaluations: list[EvalResult]
    attempts: int
    duration: float
    trace_id: str

    @property
    def scores(self) -> dict[str, float | bool | str]:
        return {r.name: r.value for r in self.evaluations}


class ItemRecord(TestRecord):
    """A test record whose outcome the experiment sets (no pytest reports are involved)."""

    __test__ = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.result_outcome = "passed"
        self.abandoned: tuple[int, str] | None = None
        """(index of the first observation of a sync attempt left running past its timeout,
        the status message its observations still open at the end get)."""

    @property
    def outcome(self) -> str:
        return self.result_outcome

    def abandon(self, first: int, timeout_s: float) -> None:
        """Observations from index ``first`` on belong to a thread no one waits for any more."""
        if self.abandoned is None:
            self.abandoned = (first, f"abandoned: the task timed out (timeout_s={timeout_s:g})")

    def finish(self) -> dict[str, Any]:
        """The payload, with the calls an abandoned thread still makes marked as errors (left
        as they are, they would read as normal, empty answers); the trace ends them."""
        if self.abandoned is not None:
            first, why = self.abandoned
            for observation in self.trace.observations[first:]:
                if observation.end_time is None and observation is not self.root:
                    observation.fail(why)
        return super().finish()

    def set_aside_scores(self, since: int, attempt: int) -> None:
        """Move the scores a failed ``attempt`` recorded (from index ``since`` on) out of the
        trace's scores, which the item's result and the aggregates count, into the root span's
        metadata ``retried_scores``: the attempt's spans stay, its verdicts no longer count."""
        scores = self.trace.scores
        moved = scores[since:]
        del scores[since:]
        if moved:
            kept = self.root.metadata.setdefault("retried_scores", [])
            kept += [
                {"attempt": attempt, "name": s.name, "value": s.value, "comment": s.comment}
                | ({"observation_id": s.observation_id} if s.observation_id else {})
                for s in moved
            ]


class Slot:
    """One of the ``max_concurrency`` places; a thread that overran its timeout keeps its own."""

    def __init__(self, semaphore: asyncio.Semaphore, keepers: set[asyncio.Future[None]]) -> None:
        self.semaphore = semaphore
        self.keepers = keepers
        self.held = False

    async def take(self) -> None:
        if not self.held:
            await self.semaphore.acquire()
            self.held = True

    def give_up(self) -> None:
        if self.held:
            self.semaphore.release()
            self.held = False

    def hand_to(self, thread_call: asyncio.Future[Any]) -> None:
        self.held = False
        keeper = asyncio.ensure_future(_release_after(thread_call, self.semaphore))
        self.keepers.add(keeper)
        keeper.add_done_callback(self.keepers.discard)


async def _release_after(thread_call: asyncio.Future[Any], semaphore: asyncio.Semaphore) -> None:
    try:
        await asyncio.wait({thread_call})
        if not thread_call.cancelled():
            thread_call.exception()  # retrieved: the item already recorded the timeout
    finally:
        semaphore.release()


def add_score(record: ItemRecord, result: EvalResult, source: str) -> EvalResult | Exception:
    """``result`` recorded as a score, or what refused it (a `ScoreError`: a reason that is not
    text...): the item's error, never the run's."""
    try:
        record.trace.add_score(
            result.name, result.value, comment=result.reason or None, source=source
        )
    except Exception as exc:
        return exc
    return result


class ItemInterrupted(Exception):
    """A ``KeyboardInterrupt`` or ``SystemExit`` that a task or an evaluator raised, carried as
    an ordinary exception to the end of the run. Raised in an asyncio task as itself it leaves
    the event loop at once, and asyncio then logs "Task exception was never retrieved" for the
    task that awaited it."""

    def __init__(self, original: BaseException) -> None:
        super().__init__(f"{type(original).__name__} in an item")
        self.original = original


class TaskTimeout(TimeoutError):
    """One attempt of the task took longer than ``timeout_s``."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__(f"the task took longer than timeout_s={timeout_s:g} s")
        self.timeout_s = timeout_s


def describe(exc: BaseException) -> str:
    """``Type: message`` (the type alone when the message is empty), as an item's error."""
    message = str(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__
