"""Checks of the values a dataset item holds: nesting depth, halves of surrogate pairs, and
for items given in code what a dataset file could not hold (`check_item_values`)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from pytest_llmobs.datasets import DatasetError
from pytest_llmobs.serialize import has_lone_surrogate, safe_repr

if TYPE_CHECKING:
    from pytest_llmobs.dataset_files import Loc, Raw


_MAX_NESTING = 100
"""Deepest nesting of lists and objects an item may have: each level costs the walks that
govern and store it a few stack frames, and a thousand levels overflow Python's stack."""


def refuse_deep_nesting(
    value: object, text: str, where: str, start: int = 0, end: int | None = None
) -> None:
    """A `DatasetError` when ``value`` (parsed from ``text[start:end]``) nests deeper than
    `_MAX_NESTING`; most texts hold too few brackets to, and are not walked."""
    if text.count("[", start, end) + text.count("{", start, end) <= _MAX_NESTING:
        return
    level = [(value, 1)]
    while level:
        node, depth = level.pop()
        if depth > _MAX_NESTING:
            raise DatasetError(
                f"{where}: lists and objects nested more than {_MAX_NESTING} levels deep; "
                "flatten the item or store that part as a string"
            )
        if isinstance(node, dict):
            level.extend((child, depth + 1) for child in node.values())
        elif isinstance(node, list):
            level.extend((child, depth + 1) for child in node)


def may_escape_a_surrogate(text: str) -> bool:
    """Whether JSON ``text`` has a ``\\uD800``-``\\uDFFF`` escape (a lone one decodes to a
    string UTF-8 cannot store; the file's own bytes, valid UTF-8, cannot hold one)."""
    return "\\ud" in text or "\\uD" in text


def refuse_lone_surrogates(value: object, loc: Loc) -> None:
    if isinstance(value, str):
        if has_lone_surrogate(value):
            raise DatasetError(
                f"{loc.prefix}: a \\u escape gives half of a UTF-16 surrogate pair in "
                f"{value[:60]!r}; write the character itself, or both halves of the pair"
            )
    elif isinstance(value, dict):
        for key, item in value.items():
            refuse_lone_surrogates(key, loc)
            refuse_lone_surrogates(item, loc)
    elif isinstance(value, list):
        for item in value:
            refuse_lone_surrogates(item, loc)


_JSON_VALUES = (
    "expected what a dataset file holds: strings, numbers, booleans, None, lists and dicts "
    "with string keys"
)


def check_item_values(raw: Raw) -> None:
    """A `DatasetError` naming the item and field when an item given in code (not read from a
    file) holds what a dataset file cannot: a value JSON has no type for (bytes, a set, an
    object), NaN or infinity, a key that is not a string, or a string with half of a surrogate
    pair."""
    where = raw.loc.prefix
    if raw.id is not None:
        if not isinstance(raw.id, str) or not raw.id.strip():
            got = f"{type(raw.id).__name__} {safe_repr(raw.id):.60}"
            raise DatasetError(f"{where}: 'id' must be a non-empty string, got {got}")
        _refuse_unstorable(raw.id, where, "'id'", 0)
        where = f"{where} (id {raw.id!r:.60})"
    for name, value in raw.content.items():
        _refuse_unstorable(value, where, repr(name), 0)


def _refuse_unstorable(value: object, where: str, field: str, depth: int) -> None:
    if isinstance(value, str):
        if has_lone_surrogate(value):
            raise DatasetError(
                f"{where}: {field} holds half of a UTF-16 surrogate pair in {value[:60]!r}, "
                "which UTF-8 cannot store; use the character itself, or both halves of the pair"
            )
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise DatasetError(
            f"{where}: {field} is {value!r}, which a dataset file cannot hold (JSON has no "
            "NaN or Infinity); use null or a string"
        )
    if value is None or isinstance(value, (bool, int, float)):
        return
    if depth >= _MAX_NESTING:
        raise DatasetError(
            f"{where}: {field}: lists and objects nested more than {_MAX_NESTING} levels deep; "
            "flatten the item or store that part as a string"
        )
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                got = f"{type(key).__name__} {safe_repr(key):.60}"
                raise DatasetError(f"{where}: {field} has the key {got}; {_JSON_VALUES}")
            _refuse_unstorable(key, where, f"{field} key", depth + 1)
            _refuse_unstorable(item, where, f"{field}[{key!r}]", depth + 1)
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _refuse_unstorable(item, where, f"{field}[{index}]", depth + 1)
    else:
        got = f"{type(value).__name__} {safe_repr(value):.60}"
        raise DatasetError(f"{where}: {field} is {got}; {_JSON_VALUES}")
