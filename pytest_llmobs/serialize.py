"""Turning arbitrary recorded values into JSON-able data, once, at the edge."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import math
import numbers
import re
import sys
from collections.abc import Collection, Container, Mapping
from pathlib import PurePath
from typing import Any

MAX_DEPTH = 100
"""Deepest nesting kept of a recorded value (a dataset item may nest as deep); deeper values
become a marker. The walks that govern and store a value cost a few stack frames per level."""
_TRACKED_FROM = 8
"""Depth from which `jsonable`'s first walk remembers the containers it is inside (records of
the plugin's own are shallower and pay nothing for it). One met again inside itself is a cycle:
the walk is dropped and the value walked again remembering them from the top, so the cycle is
cut where it closes (``{"self": "<cycle: dict>"}``), not copied down to this depth."""
_MAX_VALUES = 1_000
"""Containers met again (shared) at most: per subtree below `_TRACKED_FROM` in the first walk,
in the whole value in the walk of a value with a cycle. An object graph sharing its nodes
(``a = [b, b]; b = [c, c]``...) would otherwise be copied once per path, 2**depth times; so
would a cyclic one (each node of a tree pointing to its parent). Containers met once, however
many, cost nothing."""
_IMMUTABLE = frozenset({str, int, float, bool, type(None)})
_SURROGATE = re.compile("[\ud800-\udfff]")
REPLACEMENT_CHARACTER = "\ufffd"


def has_lone_surrogate(text: str) -> bool:
    """Whether ``text`` holds a surrogate code point (half of a UTF-16 pair, say an emoji cut
    in two), which UTF-8, and so SQLite, JSON files and HTTP bodies, cannot carry."""
    return not text.isascii() and _SURROGATE.search(text) is not None


def without_lone_surrogates(text: str) -> str:
    """``text`` with each surrogate code point replaced by U+FFFD, as UTF-8 decoders do."""
    return _SURROGATE.sub(REPLACEMENT_CHARACTER, text) if not text.isascii() else text


_CHUNK_DIGITS = 500
"""Below the lowest limit Python lets one set on ``str(int)`` (640 digits)."""


def int_text(value: int) -> str:
    """The decimal digits of ``value``, however long: ``str()`` refuses integers longer than
    ``sys.get_int_max_str_digits()`` (4,300 digits by default), and so do JSON encoders."""
    try:
        return str(value)
    except ValueError:
        pass
    sign, rest = ("-", -value) if value < 0 else ("", value)
    chunks = []
    while rest:
        rest, chunk = divmod(rest, 10**_CHUNK_DIGITS)
        chunks.append(chunk)
    head, *tail = reversed(chunks)
    return sign + str(head) + "".join(f"{chunk:0{_CHUNK_DIGITS}d}" for chunk in tail)


DEFAULT_INT_DIGITS = 4300
"""Python's default limit on the digits ``str(int)`` and ``json.loads`` accept."""


def stored_int_bound() -> int:
    """Integers at or beyond this size (in absolute value) are stored as their decimal text:
    longer than a reader with Python's default limit (or this process's lower one) accepts."""
    limit: int = getattr(sys, "get_int_max_str_digits", lambda: 0)() or DEFAULT_INT_DIGITS
    digits: int = min(limit, DEFAULT_INT_DIGITS)
    bound: int = 10**digits
    return bound


def huge_ints_as_text(value: Any, bound: int | None = None) -> Any:
    """``value`` (JSON-like) with integers of more digits than readers accept as their text."""
    bound = stored_int_bound() if bound is None else bound
    if type(value) is int:
        return int_text(value) if not -bound < value < bound else value
    if isinstance(value, Mapping):
        return {key: huge_ints_as_text(item, bound) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [huge_ints_as_text(item, bound) for item in value]
    return value


def snapshot(value: Any) -> Any:
    """``value`` itself when nothing can change it later, else its `jsonable` copy taken now.

    Recorded inputs and outputs show what was passed at the time: a messages list the caller
    appends the model's answer to afterwards must not show that answer as the input."""
    return value if type(value) in _IMMUTABLE else jsonable(value)


def snapshot_arguments(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """A function's arguments as a span input, ``{"args": [...], "kwargs": {...}}``, copied
    only where an argument could change later (plain strings and numbers are kept as given)."""
    return {
        "args": args if _IMMUTABLE.issuperset(map(type, args)) else jsonable(args),
        "kwargs": kwargs
        if not kwargs or _IMMUTABLE.issuperset(map(type, kwargs.values()))
        else jsonable(kwargs),
    }


def unrepresentable(value: object, error: Exception) -> str:
    """The placeholder stored for ``value`` when turning it into text raised ``error``:
    ``<unrepresentable Opaque: RuntimeError: repr boom>``."""
    try:
        message = str(error)
    except Exception:  # the error's own __str__ is broken too
        message = ""
    described = f"{type(error).__name__}: {message}" if message else type(error).__name__
    return f"<unrepresentable {type(value).__name__}: {described}>"


def safe_repr(value: object) -> str:
    """``repr(value)`` as a plain str, or `unrepresentable`'s placeholder when it raises (or
    returns something other than a str)."""
    try:
        return str.__str__(repr(value))
    except Exception as exc:
        return unrepresentable(value, exc)


def key_text(key: Any) -> str:
    """A mapping key as JSON's text (an integer of any length by its digits); never raises."""
    try:
        if isinstance(key, str):
            return str.__str__(key)
        if isinstance(key, bool) or key is None:  # as json.dumps writes them
            return "null" if key is None else "true" if key else "false"
        if isinstance(key, int):
            return int_text(int.__int__(key))
        text = str(key)
        return str.__str__(text)
    except Exception as exc:
        return unrepresentable(key, exc)


def _keys_apart(
    items: Collection[tuple[Any, Any]], depth: int, deep: _Deep | None = None
) -> dict[str, Any]:
    """``items`` (a mapping's ``(key, value)`` pairs) as a dict with text keys, when some keys
    become the same text (``1`` and ``"1"``): all are kept, a key given as text keeps its name,
    and a converted one that clashes becomes ``1 (2)``, ``1 (3)``..."""
    pairs = [(k, jsonable(v, depth, deep)) for k, v in items]
    taken = {k for k, _ in pairs if type(k) is str}
    result = {}
    clashes: dict[str, int] = {}
    for key, item in pairs:
        if type(key) is str:
            result[key] = item
            continue
        name = key_text(key)
        if name in taken:
            name = distinct_key(name, taken, clashes)
        taken.add(name)
        result[name] = item
    return result


def distinct_key(name: str, taken: Container[str], clashes: dict[str, int]) -> str:
    """``name (2)``, ``name (3)``...: the first not in ``taken``, for two mapping keys that
    became the same text. ``clashes`` remembers the last number given per name, so that n keys
    alike cost n steps, not n²."""
    number = clashes.get(name, 1) + 1
    while f"{name} ({number})" in taken:
        number += 1
    clashes[name] = number
    return f"{name} ({number})"


class _Deep:
    """What `jsonable` remembers where it tracks containers: the containers it is inside, and
    how many more met again it may convert. ``whole``: tracking the whole value from the top,
    where a cycle becomes its marker; else one subtree of the first walk, which a cycle ends."""

    __slots__ = ("inside", "left", "seen", "whole")

    def __init__(self, whole: bool = False) -> None:
        self.inside: set[int] = set()
        self.seen: dict[int, object] = {}  # (the object kept: an id is unique while it lives)
        self.left = _MAX_VALUES
        self.whole = whole


class _CycleMet(BaseException):
    """The first walk met a container inside itself: `jsonable` walks the value again, whole.
    (Not an `Exception`: the handlers that turn a failing value into a placeholder let it by.)"""


def jsonable(value: Any, _depth: int = 0, _deep: _Deep | None = None) -> Any:
    """A JSON-compatible copy of ``value``, made of plain builtins only (what xdist can send).

    Builtins pass through; their subclasses (``numpy.float64``, a str enum) become the plain
    type; mappings, sequences, sets, dataclasses and pydantic models become dicts and lists;
    non-finite floats become strings; anything else becomes its ``repr``. Never raises: a value
    whose conversion fails (a ``__repr__`` that raises) becomes `unrepresentable`'s placeholder;
    a container met again inside itself becomes ``<cycle: dict>`` where the cycle closes,
    nesting deeper than `MAX_DEPTH` a marker.
    """
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if kind is float:
        return value if math.isfinite(value) else str(value)
    if _deep is not None or _depth >= _TRACKED_FROM:  # (or a fresh `_Deep` per subtree)
        return _tracked(value, kind, _depth, _Deep() if _deep is None else _deep)
    try:
        if kind is dict:  # the common containers, without ABC checks
            depth = _depth + 1
            result = {
                (k if type(k) is str else key_text(k)): jsonable(v, depth) for k, v in value.items()
            }
            return result if len(result) == len(value) else _keys_apart(value.items(), depth)
        if kind is list or kind is tuple:
            depth = _depth + 1
            return [jsonable(v, depth) for v in value]
        return _converted(value, kind, _depth)
    except _CycleMet:  # (caught here, not in a wrapper: one call more costs small values 2-4%)
        if _depth:
            raise
        return jsonable(value, 0, _Deep(whole=True))
    except Exception as exc:  # a broken items(), __float__...: tracing must not raise
        return unrepresentable(value, exc)


def _tracked(value: Any, kind: type, _depth: int, deep: _Deep) -> Any:
    """`jsonable` of a value nested `_TRACKED_FROM` levels deep or more, or of any value of
    one with a cycle, remembering the containers it is inside."""
    mark = id(value)
    if mark in deep.inside:
        if not deep.whole:
            raise _CycleMet
        return f"<cycle: {kind.__name__}>"
    if mark not in deep.seen:
        deep.seen[mark] = value
    elif not issubclass(kind, (str, int, float)):  # a container met again: a shared node
        deep.left -= 1
        if deep.left < 0:
            return f"<truncated: more than {_MAX_VALUES:,} shared values>"
    deep.inside.add(mark)
    try:
        if kind is dict and _depth < MAX_DEPTH:
            depth = _depth + 1
            result = {
                (k if type(k) is str else key_text(k)): jsonable(v, depth, deep)
                for k, v in value.items()
            }
            return result if len(result) == len(value) else _keys_apart(value.items(), depth, deep)
        if (kind is list or kind is tuple) and _depth < MAX_DEPTH:
            depth = _depth + 1
            return [jsonable(v, depth, deep) for v in value]
        return _converted(value, kind, _depth, deep)
    except Exception as exc:
        return unrepresentable(value, exc)
    finally:
        deep.inside.discard(mark)


def _converted(value: Any, kind: type, _depth: int, deep: _Deep | None = None) -> Any:
    # Every decision is made on the type: an instance that answers any attribute (a mock, a
    # forwarding proxy) or spoofs its `__class__` (a mock with a spec) is never asked anything,
    # so recording a value cannot change what the code under test sees (`mock.method_calls`).
    if issubclass(kind, str):  # a subclass (LangChain's TextAccessor, a str enum): plain str
        return str.__str__(value)
    if issubclass(kind, int) and kind is not bool:
        return int.__int__(value)
    if issubclass(kind, float):  # numpy.float64 and other subclasses: a plain float
        return _plain_float(value)
    if kind.__name__ in ("bool_", "bool"):  # numpy booleans
        return bool(value)
    if issubclass(kind, numbers.Integral):  # numpy integers and friends
        return int.__int__(int(value))
    if issubclass(kind, numbers.Real):
        return _plain_float(float(value))
    if _depth >= MAX_DEPTH:
        return f"<truncated at depth {MAX_DEPTH}>"
    depth = _depth + 1
    if issubclass(kind, Mapping):
        return _keys_apart(dict(value).items(), depth, deep)
    if issubclass(kind, (list, tuple)):
        return [jsonable(v, depth, deep) for v in value]
    if issubclass(kind, (set, frozenset)):
        return sorted((jsonable(v, depth, deep) for v in value), key=repr)
    if issubclass(kind, type):  # a class (e.g. a pydantic response_format), not an instance
        return safe_repr(value)
    try:  # duck-typed guesses, when the class has them: a method may want arguments or fail
        if callable(getattr(kind, "to_dict", None)):
            return jsonable(value.to_dict(), depth, deep)
        if callable(getattr(kind, "model_dump", None)):
            return jsonable(value.model_dump(mode="json"), depth, deep)
    except Exception:
        return safe_repr(value)
    if dataclasses.is_dataclass(kind):
        # field by field: dataclasses.asdict deep-copies, which fails on locks, files, ...
        return {
            f.name: jsonable(getattr(value, f.name), depth, deep) for f in dataclasses.fields(kind)
        }
    if issubclass(kind, (dt.datetime, dt.date, dt.time)):
        return str.__str__(value.isoformat())
    if issubclass(kind, enum.Enum):
        return jsonable(value.value, depth, deep)
    if issubclass(kind, PurePath):
        return str.__str__(str(value))
    if issubclass(kind, (bytes, bytearray)):
        return f"<{len(value)} bytes>"
    return safe_repr(value)


def _plain_float(value: float) -> float | str:
    number = float.__float__(value)
    return number if math.isfinite(number) else str(number)
