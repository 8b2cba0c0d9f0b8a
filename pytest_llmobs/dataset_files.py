"""Reading dataset files (``.jsonl``, ``.json``, ``.csv``) into validated items with a version.

Items have an ``input`` and optionally an ``id`` (derived from the content when absent), an
``expected_output`` (Langfuse's ``expectedOutput`` too) and a ``metadata`` object. Problems raise a
one-line :class:`DatasetError` naming the file and line (and a .json file's item) when known.
Blank CSV lines are skipped; a CSV row whose cells hold only spaces is kept like any other.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple, cast

from pytest_llmobs.csv_rows import csv_records
from pytest_llmobs.dataset_checks import (
    may_escape_a_surrogate,
    refuse_deep_nesting,
    refuse_lone_surrogates,
)
from pytest_llmobs.datasets import (
    Dataset,
    DatasetError,
    DatasetItem,
    check_name,
    digest,
    find_dataset_file,
    item_content,
)
from pytest_llmobs.strict_json import STRICT_DECODER, NotStrictJSON, loads

_KEYS = ("id", "input", "expected_output", "metadata")
_KEY_SET = frozenset(_KEYS)
_ALIASES = {"expectedOutput": "expected_output"}
_JSON_TYPES: dict[type, str] = {dict: "object", list: "list", str: "string", bool: "boolean"}
_JSON_TYPES |= {int: "number", float: "number", type(None): "null"}
_EXPECTED_OBJECT = (
    "expected a JSON object with 'input' (and optional 'id', 'expected_output', 'metadata')"
)


def load_dataset(name: str, directory: Path) -> Dataset:
    """Find dataset ``name`` in ``directory`` and load it."""
    return load_dataset_file(find_dataset_file(name, directory), name)


def load_dataset_file(path: Path, name: str | None = None) -> Dataset:
    """Load and validate one dataset file; ``name`` defaults to the file name without suffix."""
    path = Path(path)
    name = path.stem if name is None else check_name(name)
    parsers = {".jsonl": _parse_jsonl, ".json": _parse_json, ".csv": _parse_csv}
    parser = parsers.get(path.suffix.lower())
    if parser is None:
        raise DatasetError(
            f"{path}: unsupported dataset file type {path.suffix!r}; expected .jsonl, .json or .csv"
        )
    text = _read_text(path)
    raws = parser(text, path) if text.strip() else []
    if not raws:
        raise DatasetError(f"{path}: dataset has no items")
    items = assign_ids(raws, name)
    version = digest([item_content(item) for item in items])
    return Dataset(name=name, version=version, path=path, items=items)


class Loc(NamedTuple):
    prefix: str  # starts an error message: "data.jsonl:3" or "data.json:4: item 3"
    short: str  # points back at an earlier entry: "line 3" or "item 3, line 4"


class Raw(NamedTuple):
    loc: Loc
    id: str | None  # None: to be derived from the content
    content: dict[str, Any]  # input, expected_output, metadata


def _line(path: Path, lineno: int) -> Loc:
    return Loc(f"{path}:{lineno}", f"line {lineno}")


def _json_type(value: object) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


def _read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read dataset file ({exc.strerror or exc})") from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DatasetError(not_utf8(path, data, exc)) from exc
    return text.removeprefix("\ufeff")


_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


def not_utf8(path: Path, data: bytes, error: UnicodeDecodeError) -> str:
    """The one-line error for a file (``data``) that is not UTF-8, naming the line of the
    first undecodable byte: ``d.jsonl:3: not valid UTF-8 (byte offset 25: ...)``."""
    line = data.count(b"\n", 0, error.start) + 1
    hint = "it looks like UTF-16; " if data[:2] in _UTF16_BOMS else ""
    return (
        f"{path}:{line}: not valid UTF-8 (byte offset {error.start}: {error.reason}); "
        f"{hint}save the file as UTF-8"
    )


def json_problem(error: json.JSONDecodeError) -> str:
    """What ``error`` says is wrong, without the "at" its message ends with (the caller gives
    the place as ``line:column``): ``Unterminated string starting at`` → ``Unterminated string``."""
    return error.msg.removesuffix(" at").removesuffix(" starting")


def _int_of_any_length(text: str) -> int:
    """JSON's integer ``text`` as an int, however many digits (``int()`` refuses 4,300+)."""
    digits = text.lstrip("-")
    value = 0
    for start in range(0, len(digits), 500):  # below the lowest limit Python allows (640)
        chunk = digits[start : start + 500]
        value = value * 10 ** len(chunk) + int(chunk)
    return -value if text.startswith("-") else value


_ANY_INT_DECODER = json.JSONDecoder(
    parse_constant=STRICT_DECODER.parse_constant,
    parse_float=STRICT_DECODER.parse_float,
    object_pairs_hook=STRICT_DECODER.object_pairs_hook,
    parse_int=_int_of_any_length,
)
"""`loads`' strict decoder, reading integers of any length: slower, so only for a text the
strict one refused for an integer longer than ``int()`` reads (4,300 digits by default)."""


def _loads(text: str) -> Any:
    """`loads`, with integers longer than Python reads by default kept (stored as digits)."""
    try:
        return loads(text)
    except (json.JSONDecodeError, NotStrictJSON):
        raise
    except ValueError:  # "Exceeds the limit (4300 digits) for integer string conversion"
        return _ANY_INT_DECODER.decode(text)


def _parse_jsonl(text: str, path: Path) -> list[Raw]:
    raws = []
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            value = _loads(line)
        except json.JSONDecodeError as exc:
            where = f"{path}:{lineno}:{exc.colno}"
            raise DatasetError(f"{where}: invalid JSON ({json_problem(exc)})") from exc
        except NotStrictJSON as exc:
            raise DatasetError(f"{path}:{lineno}: invalid JSON ({exc})") from exc
        refuse_deep_nesting(value, line, f"{path}:{lineno}")
        if may_escape_a_surrogate(line):
            refuse_lone_surrogates(value, _line(path, lineno))
        raws.append(from_object(value, _line(path, lineno)))
    return raws


def _parse_json(text: str, path: Path) -> list[Raw]:
    """A list of items, or an object with an ``items`` list, read one item at a time so that
    an error in an item names the line it starts on and its place, as a JSONL line's does."""
    start = _SPACE(text, 0).end()
    try:
        if text[start] in "[{":
            entries, end = _json_items(text, start, path)
            got = "an object without an 'items' list"
        else:
            value, end = _json_value(text, start, path, None)
            entries, got = None, _json_type(value)
        end = _SPACE(text, end).end()
        if end != len(text):
            raise json.JSONDecodeError("Extra data", text, end)
    except json.JSONDecodeError as exc:
        where = f"{path}:{exc.lineno}:{exc.colno}"
        raise DatasetError(f"{where}: invalid JSON ({json_problem(exc)})") from exc
    if entries is None:
        raise DatasetError(
            f"{path}: expected a list of items or an object with an 'items' list, got {got}"
        )
    surrogates = may_escape_a_surrogate(text)
    raws = []
    line, counted = 1, 0  # (the lines before offset `counted`)
    for index, (start, end, value) in enumerate(entries, start=1):
        line += text.count("\n", counted, start)
        counted = start
        loc = Loc(f"{path}:{line}: item {index}", f"item {index}, line {line}")
        refuse_deep_nesting(value, text, loc.prefix, start, end)
        if surrogates:
            refuse_lone_surrogates(value, loc)
        raws.append(from_object(value, loc))
    return raws


_SPACE = json.decoder.WHITESPACE.match  # type: ignore[attr-defined]  # (as JSONDecoder skips)
_Entries = list[tuple[int, int, Any]]  # a .json dataset's items: start and end offsets, value
_NO_NAME = "Expecting property name enclosed in double quotes"
_UNIQUE = cast(Callable[[list[tuple[str, Any]]], dict[str, Any]], STRICT_DECODER.object_pairs_hook)


def _json_items(text: str, start: int, path: Path) -> tuple[_Entries | None, int]:
    """The entries of the list at offset ``start``, or of the ``items`` list of the object
    there (``None`` without one), and the offset after it."""
    in_list = text[start] == "["  # else an object's
    close = "]" if in_list else "}"
    entries: _Entries = []
    members: list[tuple[str, Any]] = []
    position = _SPACE(text, start + 1).end()
    empty = text.startswith(close, position)
    while not empty:  # (a member at a time, up to the closing bracket)
        if in_list:
            value, end = _json_value(text, position, path, len(entries) + 1)
            entries.append((position, end, value))
        else:
            if not text.startswith('"', position):
                raise json.JSONDecodeError(_NO_NAME, text, position)
            key, position = STRICT_DECODER.raw_decode(text, position)  # (a string)
            position = _SPACE(text, position).end()
            if not text.startswith(":", position):
                raise json.JSONDecodeError("Expecting ':' delimiter", text, position)
            position = _SPACE(text, position + 1).end()
            if key == "items" and text.startswith("[", position):
                value, end = _json_items(text, position, path)
            else:
                value, end = _json_value(text, position, path, None)
            members.append((key, value))
        position = _SPACE(text, end).end()
        if text.startswith(close, position):
            break
        if not text.startswith(",", position):
            raise json.JSONDecodeError("Expecting ',' delimiter", text, position)
        position = _SPACE(text, position + 1).end()
    if in_list:
        return entries, position + 1
    try:
        items = _UNIQUE(members).get("items")  # (no key given twice)
    except NotStrictJSON as exc:
        raise _not_strict(exc, text, start, path, None) from exc
    return (items if isinstance(items, list) else None), position + 1


def _json_value(text: str, start: int, path: Path, index: int | None) -> tuple[Any, int]:
    """The JSON value at offset ``start`` (in item ``index``) as `_loads` reads it; its end."""
    try:
        try:
            return STRICT_DECODER.raw_decode(text, start)
        except (json.JSONDecodeError, NotStrictJSON):
            raise
        except ValueError:  # an integer longer than int() reads by default
            return _ANY_INT_DECODER.raw_decode(text, start)
    except NotStrictJSON as exc:
        raise _not_strict(exc, text, start, path, index) from exc


def _not_strict(error: Exception, text: str, at: int, path: Path, item: int | None) -> DatasetError:
    """``error`` in the value at offset ``at`` (in ``item``), as an error naming its line."""
    line = text.count("\n", 0, at) + 1
    where = f"{path}:{line}" if item is None else f"{path}:{line}: item {item}"
    return DatasetError(f"{where}: invalid JSON ({error})")


def _parse_csv(text: str, path: Path) -> list[Raw]:
    rows, error = csv_records(text)
    header: list[str] | None = None
    raws = []
    for lineno, row in rows:
        if not any(row):  # a blank line; a cell of spaces is content, as in JSONL
            continue
        if header is None:
            header = _csv_header(row, _line(path, lineno))
        else:
            raws.append(_from_csv_row(header, row, _line(path, lineno)))
    if error is not None:  # (after the rows before it: an error names the first bad line)
        raise DatasetError(f"{path}:{error[0]}: invalid CSV ({error[1]})")
    return raws


def _csv_header(row: list[str], loc: Loc) -> list[str]:
    header = [_ALIASES.get(cell.strip(), cell.strip()) for cell in row]
    if "" in header or len(set(header)) < len(header):
        found = ", ".join(repr(column) for column in header)
        raise DatasetError(f"{loc.prefix}: CSV header has empty or repeated columns: {found}")
    if "input" not in header:
        raise DatasetError(
            f"{loc.prefix}: CSV header must include an 'input' column "
            f"(optional: id, expected_output, metadata); found: {', '.join(header)}"
        )
    return header


def _from_csv_row(header: list[str], row: list[str], loc: Loc) -> Raw:
    if len(row) != len(header):
        # A short row is as likely a lost separator (every later cell one column off) as
        # cells left out, so it is refused like a long one rather than padded.
        hint = "; an empty cell still needs its comma" if len(row) < len(header) else ""
        raise DatasetError(
            f"{loc.prefix}: row has {len(row)} cells but the header {len(header)}{hint}"
        )
    cells = dict(zip(header, row, strict=True))
    metadata: Any = {}
    if cells.get("metadata", "").strip():
        try:
            metadata = _loads(cells["metadata"])
            refuse_deep_nesting(metadata, cells["metadata"], loc.prefix)
            if may_escape_a_surrogate(cells["metadata"]):
                refuse_lone_surrogates(metadata, loc)
        except json.JSONDecodeError as exc:
            message = f"invalid JSON in 'metadata' column ({json_problem(exc)})"
            raise DatasetError(f"{loc.prefix}: {message}") from exc
        except NotStrictJSON as exc:
            raise DatasetError(f"{loc.prefix}: invalid JSON in 'metadata' column ({exc})") from exc
    extra = {column: cell for column, cell in cells.items() if column not in _KEYS}
    if isinstance(metadata, dict) and (clash := sorted(extra.keys() & metadata.keys())):
        raise DatasetError(f"{loc.prefix}: column {clash[0]!r} is also a key in 'metadata'")
    if not cells["input"]:
        raise DatasetError(f"{loc.prefix}: empty 'input' cell")
    entry: dict[str, Any] = {"id": cells.get("id") or None, "input": cells["input"]}
    entry["expected_output"] = cells.get("expected_output") or None
    entry["metadata"] = metadata | extra if isinstance(metadata, dict) else metadata
    return from_object(entry, loc)


def from_object(value: object, loc: Loc) -> Raw:
    if not isinstance(value, dict):
        raise DatasetError(f"{loc.prefix}: {_EXPECTED_OBJECT}, got {_json_type(value)}")
    # Most entries use only the canonical keys: nothing to rename or reject.
    fields = value if value.keys() <= _KEY_SET else _canonical_keys(value, loc)
    if fields.get("input") is None:
        present = ", ".join(repr(key) for key in value) or "none"
        problem = (
            "'input' must not be null" if "input" in fields else "missing required key 'input'"
        )
        raise DatasetError(f"{loc.prefix}: {problem} (keys present: {present})")
    metadata = {} if fields.get("metadata") is None else fields["metadata"]
    if not isinstance(metadata, dict):
        got = _json_type(metadata)
        raise DatasetError(f"{loc.prefix}: 'metadata' must be a JSON object, got {got}")
    item_id = fields.get("id")
    if isinstance(item_id, int) and not isinstance(item_id, bool):
        item_id = str(item_id)
    elif item_id is not None and not (isinstance(item_id, str) and item_id.strip()):
        if isinstance(item_id, str):
            got = f"the blank string {item_id!r}" if item_id else "an empty string"
        else:
            got = _json_type(item_id)
        raise DatasetError(f"{loc.prefix}: 'id' must be a non-empty string or integer, got {got}")
    content = {
        "input": fields["input"],
        "expected_output": fields.get("expected_output"),
        "metadata": metadata,
    }
    return Raw(loc, item_id, content)


def _canonical_keys(value: dict[Any, Any], loc: Loc) -> dict[str, Any]:
    """``value`` with aliases renamed; unknown keys are an error."""
    fields: dict[str, Any] = {}
    for key, item in value.items():
        name = _ALIASES.get(str(key), str(key))
        if name in fields:
            raise DatasetError(f"{loc.prefix}: both 'expected_output' and 'expectedOutput' given")
        fields[name] = item
    unknown = [repr(key) for key in fields if key not in _KEYS]
    if unknown:
        raise DatasetError(
            f"{loc.prefix}: unknown key{'s' * (len(unknown) > 1)} {', '.join(unknown)}; "
            "allowed keys: id, input, expected_output (or expectedOutput), metadata"
        )
    return fields


def assign_ids(raws: list[Raw], dataset: str) -> tuple[DatasetItem, ...]:
    first_seen: dict[str, Loc] = {}
    for raw in raws:
        if raw.id is not None and raw.id in first_seen:
            first = first_seen[raw.id].short
            raise DatasetError(f"{raw.loc.prefix}: duplicate id {raw.id!r} (first used at {first})")
        if raw.id is not None:
            first_seen[raw.id] = raw.loc
    taken = set(first_seen)
    items = []
    for raw in raws:
        item_id = raw.id
        if item_id is None:  # derived from content; identical content gets "-2", "-3", ...
            base = item_id = digest(raw.content)
            n = 1
            while item_id in taken:
                n += 1
                item_id = f"{base}-{n}"
            taken.add(item_id)
        items.append(DatasetItem(item_id, **raw.content, dataset=dataset))
    return tuple(items)
