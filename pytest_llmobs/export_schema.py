"""The shape of a run export (``llmobs export``, ``--llm-json``), checked where one is read back:
a baseline file, a CI shard to merge. Only what readers rely on is checked; other keys pass."""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pytest_llmobs.exports import EXPORT_VERSION
from pytest_llmobs.settings_read import RUN_ID_PATTERN

_LENIENT_KEYS = ConfigDict(extra="allow", strict=True)
RUN_ID = f"^{RUN_ID_PATTERN.pattern}$"
"""A run id as ``--llm-run-id`` takes one (the plugin's own ids match it too)."""
"""Unknown keys pass (newer writers may add some); known ones must have their JSON type."""

_SCORE_VALUES: dict[str, tuple[type, ...]] = {
    "NUMERIC": (int, float),
    "BOOLEAN": (bool,),
    "CATEGORICAL": (str,),
}


class _Score(BaseModel):
    model_config = _LENIENT_KEYS
    name: str
    value: Any
    data_type: Literal["NUMERIC", "CATEGORICAL", "BOOLEAN"]
    metadata: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _value_fits_its_type(self) -> _Score:
        value = self.value
        fits = isinstance(value, _SCORE_VALUES[self.data_type])
        if self.data_type == "NUMERIC":
            fits = fits and not isinstance(value, bool) and math.isfinite(value)
        if not fits:
            raise ValueError(f"a {self.data_type} score cannot have the value {value!r}")
        return self


class _Usage(BaseModel):
    model_config = _LENIENT_KEYS
    input: int | None = None
    output: int | None = None


class _Observation(BaseModel):
    """What aggregation reads of a span or generation (latency, tokens, cost)."""

    model_config = _LENIENT_KEYS
    type: str | None = None
    start_time: float | None = None
    end_time: float | None = None
    metadata: dict[str, Any] | None = None
    usage: _Usage | None = None
    cost: float | None = None

    @model_validator(mode="after")
    def _generation_latency_is_a_number(self) -> _Observation:
        # read from generations only; in other spans' metadata the key is the user's own
        latency = (self.metadata or {}).get("latency_ms")
        is_number = isinstance(latency, (int, float)) and not isinstance(latency, bool)
        if self.type == "generation" and latency is not None and not is_number:
            raise ValueError(
                f"a generation's metadata.latency_ms must be a number, not {latency!r}"
            )
        return self


class _Trace(BaseModel):
    model_config = _LENIENT_KEYS
    observations: list[_Observation] = Field(default_factory=list)
    scores: list[_Score] = Field(default_factory=list)


class _Prompt(BaseModel):
    model_config = _LENIENT_KEYS
    name: str
    version: int
    hash: str = ""


class _Item(BaseModel):
    model_config = _LENIENT_KEYS
    node_id: str
    dataset: str | None = None
    item_id: str | None = None
    repeat: int = Field(default=0, ge=0)
    outcome: Literal["passed", "failed", "error", "skipped"]
    trace: _Trace
    datasets: dict[str, str] = Field(default_factory=dict)
    prompts: list[_Prompt] = Field(default_factory=list)
    thresholds: list[str] = Field(default_factory=list)


class _Aggregate(BaseModel):
    model_config = _LENIENT_KEYS
    name: str
    value: float
    n: int
    extra: dict[str, float] = Field(default_factory=dict)


class _Missing(BaseModel):
    model_config = _LENIENT_KEYS
    node_id: str
    reason: str


class _StoredThreshold(BaseModel):
    model_config = _LENIENT_KEYS
    expression: str
    dataset: str | None = None
    source: str = ""


class _PromptSnapshot(BaseModel):
    model_config = _LENIENT_KEYS
    name: str = Field(min_length=1)
    version: int = Field(ge=1)
    hash: str = Field(min_length=1)


class _DatasetSnapshot(BaseModel):
    model_config = _LENIENT_KEYS
    name: str = Field(min_length=1)
    version: str = Field(min_length=1)
    items: list[dict[str, Any]]


class _Snapshots(BaseModel):
    model_config = _LENIENT_KEYS
    prompts: list[_PromptSnapshot] = Field(default_factory=list)
    datasets: list[_DatasetSnapshot] = Field(default_factory=list)


class ExportedRun(BaseModel):
    """The parts of an ``llmobs export`` file that comparison and merging read."""

    model_config = _LENIENT_KEYS
    format: Literal["pytest-llmobs/run"]
    format_version: int = Field(ge=1, le=EXPORT_VERSION)
    id: str = Field(pattern=RUN_ID)
    name: str = ""
    model: str | None = None
    status: str = "unknown"
    started_at: float | None = None
    ended_at: float | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    environment: dict[str, Any] = Field(default_factory=dict)
    items: list[_Item]
    aggregates: dict[str, list[_Aggregate]] | None = None
    datasets: dict[str, str] = Field(default_factory=dict)
    prompts: list[_Prompt] = Field(default_factory=list)
    thresholds: list[_StoredThreshold] = Field(default_factory=list)
    missing: list[_Missing] = Field(default_factory=list)
    snapshots: _Snapshots | None = None

    @model_validator(mode="after")
    def _ends_after_it_starts(self) -> ExportedRun:
        started, ended = self.started_at, self.ended_at
        if started is not None and ended is not None and ended < started:
            raise ValueError(f"ended_at {ended!r} is before started_at {started!r}")
        return self


def _first_problem(exc: ValidationError) -> str:
    errors = exc.errors()
    first = errors[0]
    where = ".".join(str(part) for part in first["loc"]) or "(top level)"
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    return f"{where}: {first['msg']}{more}"


def export_problem(data: Any) -> str | None:
    """The first problem of ``data`` as a run export (``"items.0.outcome: Input should be
    ..."``), or None when it is one."""
    try:
        ExportedRun.model_validate(data)
    except ValidationError as exc:
        return _first_problem(exc)
    return None
