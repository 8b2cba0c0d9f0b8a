"""The active trace: the current observation, opening and closing observations (`start_span`),
trace attributes for the block (`propagate_attributes`), and where traces started outside any
runner go. The records themselves are in `trace_model`, the `observe` decorator in
`observe_decorator`.

The current observation lives in a `ContextVar`, so nesting follows the call stack and is
correct across asyncio tasks (each task copies its context). Threads started without a copied
context fall back to the root of the trace the test runner has declared active, so work done in a
thread pool during a test still lands in that test's trace.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from pytest_llmobs.serialize import snapshot
from pytest_llmobs.trace_checks import check_attributes, check_name, check_type
from pytest_llmobs.trace_model import Observation, ObservationType, Trace

CURRENT_OBSERVATION: ContextVar[Observation | None] = ContextVar(
    "llmobs_current_observation", default=None
)
_pending_attributes: ContextVar[dict[str, Any] | None] = ContextVar(
    "llmobs_pending_attributes", default=None
)


class _ActiveTrace:
    """The trace a runner declared active, for threads whose context does not carry one."""

    __slots__ = ("root",)

    def __init__(self) -> None:
        self.root: Observation | None = None


ACTIVE_TRACE = _ActiveTrace()


def current_observation() -> Observation | None:
    """The innermost open observation in this context (or the active test's root)."""
    return _live(CURRENT_OBSERVATION.get()) or ACTIVE_TRACE.root


def _live(observation: Observation | None) -> Observation | None:
    """``observation``, unless its trace has ended while a test runs: an asyncio task that
    outlived its test (a module-scoped loop runs it on) records into the test running now, as
    a thread does, instead of into a trace already stored."""
    if observation is not None and observation.trace.end_time is not None:
        return ACTIVE_TRACE.root or observation
    return observation


def current_trace() -> Trace | None:
    """The trace of the current observation, if any."""
    observation = current_observation()
    return observation.trace if observation is not None else None


TraceSink = Callable[[Trace], None]


class _StandaloneTraces:
    """Where traces started outside any runner go when they end (set by run_experiment etc.)."""

    __slots__ = ("sink",)

    def __init__(self) -> None:
        self.sink: TraceSink | None = None


_standalone = _StandaloneTraces()


def set_standalone_sink(sink: TraceSink | None) -> TraceSink | None:
    """Route traces that start outside any runner to ``sink``; returns the previous sink."""
    previous, _standalone.sink = _standalone.sink, sink
    return previous


_held_attributes: dict[object, dict[str, Any]] = {}
"""The attributes of `propagate_attributes` blocks an async fixture keeps open past its setup,
for traces started in any context (see `hold_attributes`)."""


def block_attributes() -> dict[str, Any] | None:
    """The trace attributes of the `propagate_attributes` blocks open in this context."""
    return _pending_attributes.get()


@contextmanager
def hold_attributes(before: dict[str, Any] | None) -> Iterator[None]:
    """For the ``with`` block, give every trace started (in any context) the attributes of the
    `propagate_attributes` blocks opened in this context since ``block_attributes()`` was
    ``before``. An async fixture's block is opened in its runner task's context (anyio runs a
    module's fixtures and tests in one task), which the test runner starting the next test's
    trace does not see."""
    opened = _pending_attributes.get()
    if not opened or opened is before:
        yield
        return
    key = object()
    _held_attributes[key] = opened
    try:
        yield
    finally:
        del _held_attributes[key]


def pending_attributes(trace: Trace) -> None:
    """Give ``trace`` (just started by a runner: a test's, an experiment item's) the trace
    attributes of the `propagate_attributes` blocks it starts inside: those of this context,
    and those async fixtures hold open (`hold_attributes`)."""
    if _held_attributes:  # (rare: most tests start with none held)
        for held in list(_held_attributes.values()):
            trace.propagate(**held)
    pending = _pending_attributes.get()
    if pending:
        trace.propagate(**pending)


def open_observation(
    name: str,
    *,
    type: ObservationType = "span",
    input: Any = None,
    metadata: Mapping[str, Any] | None = None,
) -> Observation:
    """Start an observation under the current one, or as the root of a new trace."""
    parent = _live(CURRENT_OBSERVATION.get()) or ACTIVE_TRACE.root
    if parent is not None:
        return Observation(
            parent.trace, name, type=type, parent_id=parent.id, input=input, metadata=metadata
        )
    trace = Trace(name)
    pending_attributes(trace)
    return Observation(trace, name, type=type, input=input, metadata=metadata)


def close_observation(observation: Observation) -> None:
    """End ``observation``; a standalone trace whose root ends is handed to the sink."""
    observation.end()
    trace = observation.trace
    if observation.parent_id is None and trace.root is observation and ACTIVE_TRACE.root is None:
        trace.finish()
        if _standalone.sink is not None:
            _standalone.sink(trace)


def restore_observation(token: Any, parent: Observation | None) -> None:
    try:
        CURRENT_OBSERVATION.reset(token)
    except ValueError:  # closed in another context than it was opened in
        CURRENT_OBSERVATION.set(parent)
    restored = CURRENT_OBSERVATION.get()
    if restored is not None and restored.trace.end_time is not None:
        # a span a fixture held past its test closed: the observation it was opened under
        # belongs to a finished trace, so what follows goes to the test running now
        CURRENT_OBSERVATION.set(None)


@contextmanager
def start_span(
    name: str,
    *,
    as_type: ObservationType = "span",
    input: Any = None,
    metadata: Mapping[str, Any] | None = None,
) -> Iterator[Observation]:
    """Open a span (or generation/event) for the ``with`` block; exceptions mark it errored."""
    name = check_name("start_span", name)
    check_type("start_span", as_type)
    parent = CURRENT_OBSERVATION.get()
    observation = open_observation(
        name,
        type=as_type,
        input=snapshot(input),
        metadata={key: snapshot(value) for key, value in metadata.items()} if metadata else None,
    )
    token = CURRENT_OBSERVATION.set(observation)
    try:
        yield observation
    except BaseException as exc:
        observation.fail(exc)
        raise
    finally:
        restore_observation(token, parent)
        close_observation(observation)


@contextmanager
def activate(root: Observation) -> Iterator[Observation]:
    """Make ``root`` the current observation and the fallback for context-less threads."""
    previous_root = ACTIVE_TRACE.root
    ACTIVE_TRACE.root = root
    token = CURRENT_OBSERVATION.set(root)
    try:
        yield root
    finally:
        restore_observation(token, None)
        ACTIVE_TRACE.root = previous_root


def switch_root(root: Observation) -> None:
    """Make ``root`` current in place of the one `activate` made, until that ends (a test
    attempted again within the block)."""
    ACTIVE_TRACE.root = root
    CURRENT_OBSERVATION.set(root)


def deactivate() -> None:
    """Leave no trace active until the `activate` block ends (its trace has ended): what is
    recorded meanwhile goes where it would between tests, not into an ended trace."""
    ACTIVE_TRACE.root = None
    CURRENT_OBSERVATION.set(None)


@contextmanager
def propagate_attributes(
    *,
    user_id: str | None = None,
    session_id: str | None = None,
    tags: Sequence[str] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Iterator[None]:
    """Set trace attributes on the current trace, and on traces started inside the block."""
    check_attributes(user_id=user_id, session_id=session_id, tags=tags, metadata=metadata)
    # copies, as they were given: traces started later in the block get them, not later changes
    if tags is not None:
        tags = list(tags)
    if metadata is not None:
        metadata = {key: snapshot(value) for key, value in metadata.items()}
    attributes: dict[str, Any] = {
        k: v
        for k, v in {
            "user_id": user_id,
            "session_id": session_id,
            "tags": tags,
            "metadata": metadata,
        }.items()
        if v is not None
    }
    trace = current_trace()
    if trace is not None:
        trace.propagate(**attributes)
    outer = _pending_attributes.get() or {}
    merged = {**outer, **attributes}
    if tags is not None and outer.get("tags"):
        merged["tags"] = [*outer["tags"], *(t for t in tags if t not in outer["tags"])]
    if metadata is not None and outer.get("metadata"):
        merged["metadata"] = {**outer["metadata"], **metadata}
    token = _pending_attributes.set(merged)
    try:
        yield
    finally:
        _pending_attributes.reset(token)
