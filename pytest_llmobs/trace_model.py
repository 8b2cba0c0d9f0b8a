"""The records a trace is made of, on the hot path: ids, `Trace` and its `Observation`s.

Inputs, outputs and metadata are recorded as they are when given: strings and numbers as they
are, anything a caller could change afterwards (a messages list, a dict) as a JSON-able copy
(`serialize.snapshot`). The copy is turned into the stored form once more when the trace is
serialised (`Trace.to_dict`).
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from pytest_llmobs.score_model import Score, ScoreError, classify_score_value
from pytest_llmobs.serialize import jsonable, safe_repr, snapshot
from pytest_llmobs.trace_checks import (
    UPDATABLE,
    check_attributes,
    checked_field,
    checked_mapping,
    id_text,
)

if TYPE_CHECKING:
    from pytest_llmobs.prompts import Prompt

ObservationType = Literal["span", "generation", "event"]


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


_CHECKED_SCORE_SHAPES: set[tuple[str, str, tuple[str, ...]]] = set()
"""(name, data type, metadata keys) of scores whose name `score_kinds.check_score` accepted."""


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
            self.user_id = id_text(user_id)
        if session_id is not None:
            self.session_id = id_text(session_id)
        if tags:
            self.tags.extend(t for t in map(id_text, tags) if t not in self.tags)
        if metadata:
            for key, value in metadata.items():
                self.metadata[key] = snapshot(value)

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
            from pytest_llmobs.score_kinds import check_score, score_kind

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
            for key, value in checked_mapping("metadata", metadata).items():
                self.metadata[key] = snapshot(value)
        for key, value in generation.items():
            if key not in UPDATABLE:
                raise TypeError(
                    f"update() got an unexpected field {key!r}; "
                    f"expected one of input, output, metadata, {', '.join(sorted(UPDATABLE))}"
                )
            setattr(self, key, checked_field(key, value))
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


Span = Observation
