"""Traces, observations and scores on the hot path, and the context that nests them.

The current observation lives in a `ContextVar`, so nesting follows the call stack and is
correct across asyncio tasks (each task copies its context). Threads started without a copied
context fall back to the root of the trace the test runner has declared active, so work done in a
thread pool during a test still lands in that test's trace.

Inputs, outputs and metadata are recorded as they are when given: strings and numbers as they
are, anything a caller could change afterwards (a messages list, a dict) as a JSON-able copy
(`serialize.snapshot`). The copy is turned into the stored form once more when the trace is
serialised (`Trace.to_dict`).
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import math
import numbers
import random
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

from pytest_llmobs.serialize import (
    int_text,
    jsonable,
    key_text,
    safe_repr,
    snapshot,
    snapshot_arguments,
)

if TYPE_CHECKING:
    from pytest_llmobs.prompts import Prompt

ObservationType = Literal["span", "generation", "event"]
ScoreDataType = Literal["NUMERIC", "CATEGORICAL", "BOOLEAN"]
ScoreValue = bool | int | float | str

F = TypeVar("F", bound=Callable[..., Any])

_random_bytes = random.Random().randbytes
_ZERO_SPAN_ID = "0" * 16


def new_trace_id() -> str:
    """A random OpenTelemetry-shaped trace id: 32 lowercase hex characters, never all zero."""
    trace_id = _random_bytes(16).hex()
    return trace_id if trace_id.strip("0") else "1".rjust(32, "0")


def new_observation_id() -> str:
    """A random OpenTelemetry-shaped span id: 16 lowercase hex characters, never all zero."""
    span_id = _random_bytes(8).hex()  # randbytes + hex is the cheapest random hex in CPython
    return span_id if span_id != _ZERO_SPAN_ID else "1".rjust(16, "0")


def derived_id(*parts: object, length: int = 32) -> str:
    """A deterministic hex id derived from ``parts`` (used for trace and score ids)."""
    text = "\x1f".join(map(str, parts))
    # surrogatepass: an id with a lone surrogate (refused in datasets) must not crash tracing
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:length]
    return digest if digest.strip("0") else "1".rjust(length, "0")


class ScoreError(ValueError):
    """A score cannot be recorded as given: a value of the wrong type or not finite, a bad
    name (control characters, or aggregates that would take the run's own aggregate names), a
    comment or source that is not text; the scorer also raises it for a name recorded with
    another kind before."""


_NP_BOOLS = frozenset({"bool_", "bool"})  # numpy 1 and numpy 2 spellings


def classify_score_value(name: str, value: object) -> tuple[ScoreValue, ScoreDataType]:
    """Check ``value`` and return it with its Langfuse data type.

    ``bool`` is BOOLEAN, ``int``/``float`` NUMERIC (finite only), ``str`` CATEGORICAL.
    """
    kind = type(value)
    if isinstance(value, bool) or (kind.__module__ == "numpy" and kind.__name__ in _NP_BOOLS):
        return bool(value), "BOOLEAN"
    if isinstance(value, numbers.Real):
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if not math.isfinite(number):
            shown = (
                f"an integer of {len(int_text(abs(int(value))))} digits"
                if isinstance(value, numbers.Integral)
                else safe_repr(value)
            )
            raise ScoreError(
                f"score {name!r}: value must be a finite number (at most about 1.8e308); "
                f"got {shown}"
            )
        return (int(value) if isinstance(value, numbers.Integral) else number), "NUMERIC"
    if isinstance(value, str):
        return value, "CATEGORICAL"
    raise ScoreError(
        f"score {name!r}: value must be bool, int, float or str; "
        f"got {type(value).__name__} {safe_repr(value)}"
    )


class Score:
    """One evaluation result attached to a trace or to one observation of it."""

    __slots__ = (
        "comment",
        "data_type",
        "id",
        "metadata",
        "name",
        "observation_id",
        "source",
        "timestamp",
        "trace_id",
        "value",
    )

    def __init__(
        self,
        *,
        id: str,
        trace_id: str,
        name: str,
        value: ScoreValue,
        data_type: ScoreDataType,
        observation_id: str | None = None,
        comment: str | None = None,
        source: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        self.id = id
        self.trace_id = trace_id
        self.observation_id = observation_id
        self.name = name
        self.value = value
        self.data_type = data_type
        self.comment = comment
        self.source = source
        self.metadata = dict(metadata) if metadata else {}
        self.timestamp = time.time()

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "trace_id": self.trace_id,
            "observation_id": self.observation_id,
            "name": self.name,
            "value": self.value,
            "data_type": self.data_type,
            "comment": self.comment,
            "source": self.source,
            "metadata": jsonable(self.metadata),
            "timestamp": self.timestamp,
        }


_CHECKED_SCORE_SHAPES: set[tuple[str, str, tuple[str, ...]]] = set()
"""(name, data type, metadata keys) of scores whose name `scorer.check_score` accepted."""


class Trace:
    """One unit of work (one pytest test): its observations, scores and trace attributes."""

    __slots__ = (
        "end_time",
        "id",
        "metadata",
        "name",
        "observations",
        "scores",
        "session_id",
        "start_time",
        "tags",
        "user_id",
    )

    def __init__(self, name: str, *, id: str | None = None) -> None:
        self.id = id or new_trace_id()
        self.name = name
        self.user_id: str | None = None
        self.session_id: str | None = None
        self.tags: list[str] = []
        self.metadata: dict[str, Any] = {}
        self.observations: list[Observation] = []
        self.scores: list[Score] = []
        self.start_time = time.time()
        self.end_time: float | None = None

    @property
    def root(self) -> Observation | None:
        """The first observation, which encloses the others (the test itself under pytest)."""
        return self.observations[0] if self.observations else None

    def propagate(
        self,
        *,
        user_id: str | None = None,
        session_id: str | None = None,
        tags: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        """Set trace-level attributes; tags accumulate and metadata merges."""
        check_attributes(user_id=user_id, session_id=session_id, tags=tags, metadata=metadata)
        if user_id is not None:
            self.user_id = _id_text(user_id)
        if session_id is not None:
            self.session_id = _id_text(session_id)
        if tags:
            self.tags.extend(t for t in map(_id_text, tags) if t not in self.tags)
        if metadata:
            self.metadata.update(metadata)

    def add_score(
        self,
        name: str,
        value: object,
        *,
        comment: str | None = None,
        observation_id: str | None = None,
        source: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Score:
        """Validate and record a score; its id is derived from the trace, target and name."""
        if not isinstance(name, str) or not name:
            raise ScoreError(f"score name must be a non-empty string; got {safe_repr(name)}")
        checked, data_type = classify_score_value(name, value)
        for field, given in (("comment", comment), ("source", source)):
            if given is not None and not isinstance(given, str):
                raise ScoreError(
                    f"score {name!r}: {field} must be a str or None; got "
                    f"{type(given).__name__} {safe_repr(given):.80}"
                )
        shape = (name, data_type, tuple(sorted(metadata)) if metadata else ())
        if shape not in _CHECKED_SCORE_SHAPES:  # each name and kind is checked once
            from pytest_llmobs.scorer import check_score, score_kind

            check_score(name, score_kind(name, checked, metadata))
            _CHECKED_SCORE_SHAPES.add(shape)
        occurrence = sum(1 for s in self.scores if s.name == name)
        score = Score(
            id=derived_id(self.id, observation_id or "", name, occurrence),
            trace_id=self.id,
            observation_id=observation_id,
            name=name,
            value=checked,
            data_type=data_type,
            comment=comment,
            source=source,
            metadata=metadata,
        )
        self.scores.append(score)
        return score

    def finish(self) -> None:
        """Close every observation still open and stamp the trace's end time."""
        now = time.time()
        for observation in self.observations:
            if observation.end_time is None:
                if observation.on_trace_end is not None:
                    observation.on_trace_end()
                if observation.end_time is None:
                    observation.end_time = now
        self.end_time = now

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "user_id": self.user_id,
            "session_id": self.session_id,
            "tags": list(self.tags),
            "metadata": jsonable(self.metadata),
            "start_time": self.start_time,
            "end_time": self.end_time,
            "observations": [o.to_dict() for o in self.observations],
            "scores": [s.to_dict() for s in self.scores],
        }


class Observation:
    """A span, generation or event inside a trace. Also the object `start_span` yields."""

    # Fields every observation sets live in slots. The rarely-set ones (level, status and the
    # generation fields) default to the class attributes below and only land in the instance
    # `__dict__` when set, so a plain span never allocates one: span creation is the hot path.
    __slots__ = (
        "__dict__",
        "end_time",
        "id",
        "input",
        "metadata",
        "name",
        "output",
        "parent_id",
        "start_time",
        "trace",
        "type",
    )

    level: str = "DEFAULT"
    status_message: str | None = None
    model: str | None = None
    model_parameters: dict[str, Any] | None = None
    usage: dict[str, int] | None = None
    cost: float | None = None
    prompt_name: str | None = None
    prompt_version: int | None = None
    on_trace_end: Callable[[], None] | None = None
    """Called if the observation is still open when its trace finishes (a stream the caller
    stopped reading): the recorder's last chance to store what it got before the end is
    stamped."""

    def __init__(
        self,
        trace: Trace,
        name: str,
        *,
        type: ObservationType = "span",
        parent_id: str | None = None,
        input: Any = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        self.id = new_observation_id()
        self.trace = trace
        self.parent_id = parent_id
        self.type: ObservationType = type
        self.name = name
        self.start_time = time.time()
        self.end_time: float | None = None
        self.input = input
        self.output: Any = None
        self.metadata: dict[str, Any] = dict(metadata) if metadata else {}
        trace.observations.append(self)

    def update(
        self,
        *,
        input: Any = None,
        output: Any = None,
        metadata: Mapping[str, Any] | None = None,
        **generation: Any,
    ) -> Observation:
        """Set input/output, merge metadata, and set generation fields (model, usage, ...)."""
        if input is not None:
            self.input = snapshot(input)
        if output is not None:
            self.output = snapshot(output)
        if metadata:
            for key, value in _mapping("metadata", metadata).items():
                self.metadata[key] = snapshot(value)
        for key, value in generation.items():
            if key not in _UPDATABLE:
                raise TypeError(
                    f"update() got an unexpected field {key!r}; "
                    f"expected one of input, output, metadata, {', '.join(sorted(_UPDATABLE))}"
                )
            setattr(self, key, _checked_field(key, value))
        return self

    def score(self, name: str, value: object, comment: str | None = None, **kwargs: Any) -> Score:
        """Record a score on this observation (and its trace)."""
        return self.trace.add_score(name, value, comment=comment, observation_id=self.id, **kwargs)

    def attach_prompt(self, prompt: Prompt | Any) -> Observation:
        """Link this observation to a prompt version (a `Prompt` or a compiled prompt)."""
        source = getattr(prompt, "prompt", prompt)
        self.prompt_name = source.name
        self.prompt_version = source.version
        return self

    def propagate_attributes(self, **attributes: Any) -> Observation:
        """Set trace attributes (user_id, session_id, tags, metadata) on this span's trace."""
        self.trace.propagate(**attributes)
        return self

    def fail(self, error: BaseException | str) -> None:
        """Mark the observation as errored with the exception's message."""
        self.level = "ERROR"
        if isinstance(error, BaseException):
            try:
                message = str(error)
            except Exception:  # the error's own __str__ is broken: tracing must not raise
                message = "<str() of the exception failed>"
            kind = type(error).__name__
            self.status_message = f"{kind}: {message}" if message else kind
        else:
            self.status_message = error

    def end(self) -> None:
        if self.end_time is None:
            self.end_time = time.time()

    @property
    def duration_ms(self) -> float | None:
        return None if self.end_time is None else (self.end_time - self.start_time) * 1000.0

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "trace_id": self.trace.id,
            "parent_id": self.parent_id,
            "type": self.type,
            "name": self.name,
            "start_time": self.start_time,
            "end_time": self.end_time,
            "input": jsonable(self.input),
            "output": jsonable(self.output),
            "metadata": jsonable(self.metadata),
            "level": self.level,
            "status_message": self.status_message,
        }
        if self.type == "generation":
            data.update(
                model=self.model,
                model_parameters=jsonable(self.model_parameters),
                usage=self.usage,
                cost=self.cost,
                prompt_name=self.prompt_name,
                prompt_version=self.prompt_version,
            )
        elif self.prompt_name is not None:  # `attach_prompt` on a span: kept, but only then
            data.update(prompt_name=self.prompt_name, prompt_version=self.prompt_version)
        return data


_TEXT_FIELDS = frozenset({"model", "prompt_name", "level", "status_message"})


def _checked_field(key: str, value: Any) -> Any:
    """``value`` for the generation field ``key`` of `Observation.update`, as plain builtins;
    a `TypeError` naming the field when it has the wrong type (at the call, not when stored)."""
    if key == "name":
        return check_name("update", value)
    if value is None:
        return None
    if key in _TEXT_FIELDS:
        if not isinstance(value, str):
            raise TypeError(f"update: {key} must be a str or None; got {type(value).__name__}")
        return str.__str__(value)
    if key == "prompt_version":
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(
                f"update: prompt_version must be an int or None; got {type(value).__name__}"
            )
        return int(value)
    if key == "cost" and (isinstance(value, bool) or not isinstance(value, numbers.Real)):
        raise TypeError(f"update: cost must be a number or None; got {type(value).__name__}")
    return jsonable(value)  # usage, model_parameters, cost


def check_name(function: str, name: object) -> str:
    """``name`` as a plain str; a `TypeError` naming ``function`` when it is not a str (a
    ``Path``, say), raised at the call rather than when the trace is stored."""
    if not isinstance(name, str):
        raise TypeError(f"{function}: name must be a str; got {type(name).__name__}")
    return str.__str__(name)


_OBSERVATION_TYPES: tuple[ObservationType, ...] = ("span", "generation", "event")


def _check_type(function: str, as_type: object) -> None:
    if as_type not in _OBSERVATION_TYPES:
        raise TypeError(
            f"{function}: as_type must be one of 'span', 'generation', 'event'; "
            f"got {type(as_type).__name__} {safe_repr(as_type):.60}"
        )


_UPDATABLE = frozenset(
    {
        "model",
        "model_parameters",
        "usage",
        "cost",
        "prompt_name",
        "prompt_version",
        "level",
        "status_message",
        "name",
    }
)

Span = Observation

_current: ContextVar[Observation | None] = ContextVar("llmobs_current_observation", default=None)
_pending_attributes: ContextVar[dict[str, Any] | None] = ContextVar(
    "llmobs_pending_attributes", default=None
)


class _ActiveTrace:
    """The trace a runner declared active, for threads whose context does not carry one."""

    __slots__ = ("root",)

    def __init__(self) -> None:
        self.root: Observation | None = None


_active = _ActiveTrace()


def current_observation() -> Observation | None:
    """The innermost open observation in this context (or the active test's root)."""
    return _current.get() or _active.root


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


def pending_attributes(trace: Trace) -> None:
    """Give ``trace`` (just started by a runner: a test's, an experiment item's) the trace
    attributes of the `propagate_attributes` blocks it starts inside."""
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
    parent = _current.get() or _active.root
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
    if observation.parent_id is None and trace.root is observation and _active.root is None:
        trace.finish()
        if _standalone.sink is not None:
            _standalone.sink(trace)


def _restore(token: Any, parent: Observation | None) -> None:
    try:
        _current.reset(token)
    except ValueError:  # closed in another context than it was opened in
        _current.set(parent)
    restored = _current.get()
    if restored is not None and restored.trace.end_time is not None:
        # a span a fixture held past its test closed: the observation it was opened under
        # belongs to a finished trace, so what follows goes to the test running now
        _current.set(None)


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
    _check_type("start_span", as_type)
    parent = _current.get()
    observation = open_observation(
        name,
        type=as_type,
        input=snapshot(input),
        metadata={key: snapshot(value) for key, value in metadata.items()} if metadata else None,
    )
    token = _current.set(observation)
    try:
        yield observation
    except BaseException as exc:
        observation.fail(exc)
        raise
    finally:
        _restore(token, parent)
        close_observation(observation)


@contextmanager
def activate(root: Observation) -> Iterator[Observation]:
    """Make ``root`` the current observation and the fallback for context-less threads."""
    previous_root = _active.root
    _active.root = root
    token = _current.set(root)
    try:
        yield root
    finally:
        _restore(token, None)
        _active.root = previous_root


def switch_root(root: Observation) -> None:
    """Make ``root`` current in place of the one `activate` made, until that ends (a test
    attempted again within the block)."""
    _active.root = root
    _current.set(root)


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


def check_attributes(
    *, user_id: Any = None, session_id: Any = None, tags: Any = None, metadata: Any = None
) -> None:
    """`TypeError` naming a trace attribute of the wrong type (a list as ``user_id`` would be
    stored as its repr, a string as ``tags`` as its letters)."""
    if isinstance(tags, str):
        raise TypeError(f"tags must be a list of strings, not the string {tags!r}")
    if metadata is not None:
        _mapping("metadata", metadata)
    for field, given in (("user_id", user_id), ("session_id", session_id)):
        if given is not None and not _is_id(given):
            raise TypeError(
                f"{field} must be a string (or an int), not "
                f"{type(given).__name__} {safe_repr(given):.60}"
            )
    for index, tag in enumerate(tags if isinstance(tags, Collection) else ()):
        if not _is_id(tag):
            raise TypeError(
                f"tags must be a list of strings; tag {index} is "
                f"{type(tag).__name__} {safe_repr(tag):.60}"
            )


def _is_id(value: object) -> bool:
    """Whether ``value`` may be a user or session id or a tag: a str, or an int (its digits)."""
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def _id_text(value: object) -> str:
    return value if type(value) is str else key_text(value)  # (a plain str, never raises)


def _mapping(field: str, value: Any) -> Mapping[str, Any]:
    """``value`` when it is a mapping; a clear `TypeError` naming ``field`` otherwise."""
    if not isinstance(value, Mapping):
        raise TypeError(
            f"{field} must be a mapping such as {{'team': 'support'}}, not "
            f"{type(value).__name__} {safe_repr(value):.60}"
        )
    return value


def _generator_output(items: list[Any]) -> Any:
    if items and all(isinstance(i, str) for i in items):
        return "".join(items)
    return items


@overload
def observe(func: F, /) -> F: ...


@overload
def observe(
    *,
    name: str | None = None,
    as_type: ObservationType = "span",
    capture_input: bool = True,
    capture_output: bool = True,
) -> Callable[[F], F]: ...


def observe(
    func: F | None = None,
    /,
    *,
    name: str | None = None,
    as_type: ObservationType = "span",
    capture_input: bool = True,
    capture_output: bool = True,
) -> F | Callable[[F], F]:
    """Trace calls of a function (sync, async, generator or async generator) as observations.

    ``@observe`` and ``@observe(name=..., as_type="generation")`` both work. The call's arguments
    become the input and its return value (or the yielded items) the output; an exception marks
    the observation as errored and propagates.
    """

    if func is not None and not callable(func):  # @observe("answer"): the name as a keyword
        raise TypeError(
            "observe: expected a function, or the span's name as name=...; "
            f"got {type(func).__name__} {safe_repr(func):.60}"
        )
    if name is not None:
        check_name("observe", name)
    _check_type("observe", as_type)

    def decorate(fn: F) -> F:
        span_name = name or str(getattr(fn, "__name__", None) or type(fn).__name__)
        if inspect.isasyncgenfunction(fn):
            return _wrap_async_generator(fn, span_name, as_type, capture_input, capture_output)
        if inspect.isgeneratorfunction(fn):
            return _wrap_generator(fn, span_name, as_type, capture_input, capture_output)
        if inspect.iscoroutinefunction(fn):
            return _wrap_coroutine(fn, span_name, as_type, capture_input, capture_output)
        return _wrap_function(fn, span_name, as_type, capture_input, capture_output)

    return decorate(func) if func is not None else decorate


def _wrap_function(
    fn: F, span_name: str, as_type: ObservationType, capture_in: bool, capture_out: bool
) -> F:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        # open_observation/close_observation inlined: this wrapper is the hottest path we have
        parent = _current.get()
        input = snapshot_arguments(args, kwargs) if capture_in else None
        owner = parent or _active.root
        if owner is not None:
            observation = Observation(
                owner.trace, span_name, type=as_type, parent_id=owner.id, input=input
            )
        else:
            observation = open_observation(span_name, type=as_type, input=input)
        token = _current.set(observation)
        try:
            result = fn(*args, **kwargs)
            if capture_out:
                observation.output = snapshot(result)
        except BaseException as exc:
            observation.fail(exc)
            raise
        finally:
            try:
                _current.reset(token)
            except ValueError:  # closed in another context than it was opened in
                _current.set(parent)
            if owner is not None:
                if observation.end_time is None:
                    observation.end_time = time.time()
            else:
                close_observation(observation)
        return result

    return wrapper  # type: ignore[return-value]


def _wrap_coroutine(
    fn: F, span_name: str, as_type: ObservationType, capture_in: bool, capture_out: bool
) -> F:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        parent = _current.get()
        observation = open_observation(
            span_name, type=as_type, input=snapshot_arguments(args, kwargs) if capture_in else None
        )
        token = _current.set(observation)
        try:
            result = await fn(*args, **kwargs)
            if capture_out:
                observation.output = snapshot(result)
        except BaseException as exc:
            observation.fail(exc)
            raise
        finally:
            _restore(token, parent)
            close_observation(observation)
        return result

    return wrapper  # type: ignore[return-value]


def _wrap_generator(
    fn: F, span_name: str, as_type: ObservationType, capture_in: bool, capture_out: bool
) -> F:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        observation = open_observation(
            span_name, type=as_type, input=snapshot_arguments(args, kwargs) if capture_in else None
        )
        generator = fn(*args, **kwargs)
        produced: list[Any] = []
        to_send: Any = None
        thrown: BaseException | None = None
        try:
            while True:
                parent = _current.get()
                token = _current.set(observation)
                try:
                    if thrown is None:
                        item = generator.send(to_send)
                    else:  # forward what the consumer threw in, as `yield from` would
                        item, thrown = generator.throw(thrown), None
                except StopIteration as stop:
                    return stop.value
                finally:
                    _restore(token, parent)
                produced.append(snapshot(item))
                try:
                    to_send = yield item
                except GeneratorExit:
                    raise
                except BaseException as exc:
                    thrown = exc
        except GeneratorExit:
            generator.close()
            raise
        except BaseException as exc:
            observation.fail(exc)
            raise
        finally:
            if capture_out:
                observation.output = _generator_output(produced)
            close_observation(observation)

    return wrapper  # type: ignore[return-value]


def _wrap_async_generator(
    fn: F, span_name: str, as_type: ObservationType, capture_in: bool, capture_out: bool
) -> F:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        observation = open_observation(
            span_name, type=as_type, input=snapshot_arguments(args, kwargs) if capture_in else None
        )
        generator = fn(*args, **kwargs)
        produced: list[Any] = []
        if capture_out:
            # left with `break`, it is closed when the loop finalizes it, after the trace ended
            # (a sync generator closes at once): record what it yielded when the trace ends

            def yielded_so_far() -> None:
                observation.output = _generator_output(list(produced))

            observation.on_trace_end = yielded_so_far
        to_send: Any = None
        thrown: BaseException | None = None
        try:
            while True:
                parent = _current.get()
                token = _current.set(observation)
                try:
                    if thrown is None:
                        item = await generator.asend(to_send)
                    else:  # forward what the consumer threw in
                        item, thrown = await generator.athrow(thrown), None
                except StopAsyncIteration:
                    return
                finally:
                    _restore(token, parent)
                produced.append(snapshot(item))
                try:
                    to_send = yield item
                except GeneratorExit:
                    raise
                except BaseException as exc:
                    thrown = exc
        except GeneratorExit:
            await generator.aclose()
            raise
        except BaseException as exc:
            observation.fail(exc)
            raise
        finally:
            if capture_out:
                observation.output = _generator_output(produced)
            close_observation(observation)

    return wrapper  # type: ignore[return-value]


def set_standalone_sink(sink: TraceSink | None) -> TraceSink | None:
    """Route traces that start outside any runner to ``sink``; returns the previous sink."""
    previous, _standalone.sink = _standalone.sink, sink
    return previous


def elapsed_ms(start: float) -> float:
    """Milliseconds since ``start`` (a `time.perf_counter` reading)."""
    return (time.perf_counter() - start) * 1000.0
