"""Checks of what callers pass to the tracing API (names, observation types, generation fields,
trace attributes): a `TypeError` (a `ValueError` for a number out of range or an unknown
level) at the call, rather than when the trace is stored."""

from __future__ import annotations

import numbers
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any

from pytest_llmobs.providers.base import cost_value, token_count
from pytest_llmobs.serialize import jsonable, key_text, safe_repr

if TYPE_CHECKING:
    from pytest_llmobs.trace_model import ObservationType


_TEXT_FIELDS = frozenset({"model", "prompt_name", "status_message"})

LEVELS = ("DEBUG", "DEFAULT", "WARNING", "ERROR")
"""An observation's levels, as Langfuse knows them (``ObservationLevel``)."""


def checked_field(key: str, value: Any) -> Any:
    """``value`` for the generation field ``key`` of `Observation.update`, as plain builtins;
    a `TypeError` naming the field when it has the wrong type (at the call, not when stored)."""
    if key == "name":
        return check_name("update", value)
    if key == "level":
        return "DEFAULT" if value is None else check_level("update", value)
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
    if key == "cost":
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"update: cost must be a number or None; got {type(value).__name__}")
        return cost_value(_plain_number(value), "update: cost")
    if key == "usage":
        return _usage(value)
    return jsonable(value)  # model_parameters


COUNTED_USAGE = ("input", "output", "total")
"""The token counts the run's totals sum: whole numbers from 0 to 2**53 when given."""


def _usage(value: object) -> dict[str, Any]:
    """Token counts by kind (``{"input": 7, "output": 1}``), as plain data (an SDK's usage
    object becomes its dict). The counts the totals sum (`COUNTED_USAGE`) must be whole
    numbers from 0 to 2**53 (``None`` counts 0); other keys (an SDK's
    ``prompt_tokens_details``) are kept as they are."""
    usage = jsonable(value)
    if not isinstance(usage, dict):
        raise TypeError(
            f"update: usage must be a mapping of token counts or None; got {type(value).__name__}"
        )
    for kind in COUNTED_USAGE:
        if kind in usage:
            count = value[kind] if isinstance(value, Mapping) and kind in value else usage[kind]
            usage[kind] = token_count(_plain_number(count), f"update: usage[{kind!r}]")
    return usage


def _plain_number(value: object) -> object:
    """A numpy (or other) integer or real as Python's own; anything else as it is."""
    if isinstance(value, bool) or type(value) in (int, float):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    return float(value) if isinstance(value, numbers.Real) else value


def check_name(function: str, name: object) -> str:
    """``name`` as a plain str; a `TypeError` naming ``function`` when it is not a str (a
    ``Path``, say), raised at the call rather than when the trace is stored."""
    if not isinstance(name, str):
        raise TypeError(f"{function}: name must be a str; got {type(name).__name__}")
    return str.__str__(name)


def check_level(function: str, level: object) -> str:
    """``level`` in upper case when it is one of `LEVELS` in any case (``"warning"``); a
    `ValueError` naming the value otherwise (a `TypeError` when it is not a str)."""
    if not isinstance(level, str):
        raise TypeError(f"{function}: level must be a str or None; got {type(level).__name__}")
    upper = str.__str__(level).upper()
    if upper not in LEVELS:
        raise ValueError(
            f"{function}: level {safe_repr(level):.60} is not one of {', '.join(LEVELS)} "
            "(in any case)"
        )
    return upper


_OBSERVATION_TYPES: tuple[ObservationType, ...] = ("span", "generation", "event")


def check_type(function: str, as_type: object) -> None:
    if as_type not in _OBSERVATION_TYPES:
        raise TypeError(
            f"{function}: as_type must be one of 'span', 'generation', 'event'; "
            f"got {type(as_type).__name__} {safe_repr(as_type):.60}"
        )


UPDATABLE = frozenset(
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


def check_attributes(
    *, user_id: Any = None, session_id: Any = None, tags: Any = None, metadata: Any = None
) -> None:
    """`TypeError` naming a trace attribute of the wrong type (a list as ``user_id`` would be
    stored as its repr, a string as ``tags`` as its letters)."""
    if isinstance(tags, str):
        raise TypeError(f"tags must be a list of strings, not the string {tags!r}")
    if metadata is not None:
        checked_mapping("metadata", metadata)
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


def id_text(value: object) -> str:
    return value if type(value) is str else key_text(value)  # (a plain str, never raises)


def checked_mapping(field: str, value: Any) -> Mapping[str, Any]:
    """``value`` when it is a mapping; a clear `TypeError` naming ``field`` otherwise."""
    if not isinstance(value, Mapping):
        raise TypeError(
            f"{field} must be a mapping such as {{'team': 'support'}}, not "
            f"{type(value).__name__} {safe_repr(value):.60}"
        )
    return value
