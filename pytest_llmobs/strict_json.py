"""JSON read as strictly as other tools will read what the plugin writes from it."""

from __future__ import annotations

import json
import math
from typing import Any


class NotStrictJSON(ValueError):
    """What Python's JSON reader accepts but loses data or other tools reject: ``NaN`` or
    ``Infinity`` (also a number too large, which reads as it), a key given twice."""


def _refuse_constant(name: str) -> Any:
    raise NotStrictJSON(f"{name} is not a JSON number; write null or a string")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value = dict(pairs)
    if len(value) < len(pairs):
        keys = [key for key, _ in pairs]
        twice = next(key for key in keys if keys.count(key) > 1)
        raise NotStrictJSON(f"key {twice!r} appears twice in one object; all but the last is lost")
    return value


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise NotStrictJSON(
            f"{text[:40]} is too large for a number (it reads as Infinity); write a string"
        )
    return value


STRICT_DECODER = json.JSONDecoder(
    parse_constant=_refuse_constant, parse_float=_finite_float, object_pairs_hook=_unique_keys
)
"""One decoder for every call: ``json.loads`` with options builds one per call (per line of a
JSONL dataset)."""


def loads(text: str) -> Any:
    """``json.loads``, raising `NotStrictJSON` for NaN/Infinity (invalid JSON to every strict
    reader), for a number too large to be finite (``1e400``: written back, it would be
    ``Infinity``) and for a key given twice (all but the last value would be lost)."""
    if text.startswith("\ufeff"):  # as json.loads says it (JSONDecoder.decode does not check)
        raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
    return STRICT_DECODER.decode(text)
