"""A `Score`: one evaluation result on a trace or on one of its observations, and the check of
its value (`classify_score_value`)."""

from __future__ import annotations

import math
import numbers
import time
from collections.abc import Mapping
from typing import Any, Literal

from pytest_llmobs.serialize import int_text, jsonable, safe_repr

ScoreDataType = Literal["NUMERIC", "CATEGORICAL", "BOOLEAN"]
ScoreValue = bool | int | float | str


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
        # (-0.0 + 0.0 is 0.0: a signed zero read "-0.0" here, "0" there, "-0.000" in a CI)
        return (int(value) if isinstance(value, numbers.Integral) else number + 0.0), "NUMERIC"
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
