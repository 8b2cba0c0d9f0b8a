"""A span's attribute values cut to fit its size budget, JSON values inside so they stay JSON.

Input, output, metadata and messages travel as JSON text. Cutting that text would leave invalid
JSON and drop every key after the cut, so a JSON object, array or string is cut inside instead:
its largest strings (or runs of small values) get the marker ``…[truncated N chars]``, as
`batching.fit_json` cuts a Langfuse event. Any other text is cut as text.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from pytest_llmobs.exporters.batching import common_cap, encode_json, fit_json, truncate_text

if TYPE_CHECKING:
    from pytest_llmobs.exporters.otlp_spans import AttributeValue

_MIN_CUT = 64
"""Strings this long or shorter are never cut."""
_SPAN_MARGIN = 512
"""Bytes kept for the span's other fields (ids, times, name, status)."""


def fit_attributes(attrs: dict[str, AttributeValue], max_bytes: int) -> int:
    """Cut the largest string values until the attributes fit ``max_bytes`` (an estimate of
    their encoded size plus a margin for the span's other fields), all to one common size (see
    `batching.fit_json`) and JSON values inside (`cut_value`); returns how many values were
    cut."""
    budget = max_bytes - _SPAN_MARGIN
    total = sum(_size(k, v) for k, v in attrs.items())
    cut: set[str] = set()
    while total > budget:
        lengths = {
            k: len(v.encode()) for k, v in attrs.items() if isinstance(v, str) and len(v) > _MIN_CUT
        }
        if not lengths:
            break
        cap = common_cap(list(lengths.values()), total - budget)
        for key, length in lengths.items():
            value = attrs[key]
            if length <= cap or not isinstance(value, str):
                continue
            before = _size(key, value)
            attrs[key] = cut_value(value, cap)
            total += _size(key, attrs[key]) - before
            cut.add(key)
    return len(cut)


def _size(key: str, value: AttributeValue) -> int:
    if isinstance(value, str):
        return len(key) + len(value.encode()) + 8
    if isinstance(value, (list, tuple)):
        return len(key) + sum(len(str(v).encode()) + 4 for v in value) + 8
    return len(key) + 16


def cut_value(text: str, max_bytes: int) -> str:
    """``text`` in at most ``max_bytes`` UTF-8 bytes: a JSON object, array or string cut inside
    so it stays valid JSON (an object keeps every key), anything else (or JSON whose parts are
    all too small to cut) cut as text with the marker."""
    value = _json_value(text)
    if isinstance(value, str):  # cut inside the quotes: a one-element list's only member
        fitted = encode_json(fit_json([value], max_bytes + 2)[0][0])
    elif isinstance(value, (dict, list)):
        fitted = fit_json(value, max_bytes)[1]
    else:
        fitted = None
    if fitted is not None and len(fitted.encode()) <= max_bytes:
        return fitted
    return truncate_text(text, max_bytes)[0]


def _json_value(text: str) -> Any:
    """What ``text`` holds as JSON, when it is a JSON object, array or string; else None."""
    if text[:1] not in ("{", "[", '"'):
        return None
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None
