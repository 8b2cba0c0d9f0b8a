"""Structured-output evaluators: JSON validity, schema conformance and classification labels."""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from numbers import Number
from typing import TYPE_CHECKING, Any

from pytest_llmobs.evaluators.base import EvalResult
from pytest_llmobs.evaluators.basic import (
    NONE_EXPECTED,
    NONE_OUTPUT,
    as_text,
    none_output,
    shorten,
)
from pytest_llmobs.serialize import huge_ints_as_text

if TYPE_CHECKING:
    from pydantic import BaseModel

_SHOWN_ERRORS = 3
NO_LABEL = "(none)"
"""The label recorded for a ``None`` prediction (say, a tool-call-only answer)."""
_JSONSCHEMA_MISSING = (
    "matches_schema with a JSON Schema dict needs jsonschema: pip install 'pytest-llmobs[schema]'"
)


class _InvalidJSON(Exception):
    """Why a text is not JSON, already phrased for a reason."""


def _reject_constant(name: str) -> Any:
    raise _InvalidJSON(f"invalid JSON: {name} is not allowed in JSON")


def _unfence(text: str) -> tuple[str, int]:
    """The text inside a fenced block (```json ... ```) wrapping all of ``text``, and its offset.

    Text not wrapped in a fence is returned whole, at offset 0.
    """
    start, end = len(text) - len(text.lstrip()), len(text.rstrip())
    if not (text.startswith("```", start) and text.endswith("```", start + 3, end)):
        return text, 0
    inner = start + 3
    if text[inner : inner + 4].lower() == "json":
        inner += 4
    return text[inner : end - 3], inner


_PARSED_JSON = (dict, list, int, float)
"""Output types `json_valid` and `matches_schema` take as JSON already parsed (bool is an int)."""


def _big_int(digits: str) -> int | Decimal:
    """An integer of more digits than ``int()`` takes (Python's limit, 4300): a Decimal."""
    try:
        return int(digits)
    except ValueError:
        return Decimal(digits)


def _parse(text: str) -> tuple[Any, str]:
    """The JSON value in ``text`` (unfenced) and the JSON text it came from; `_InvalidJSON` if none.

    Line and column in the error refer to ``text`` as given, fence included.
    """
    body, offset = _unfence(text)
    try:
        try:
            return json.loads(body, parse_constant=_reject_constant), body
        except ValueError as error:
            if isinstance(error, (json.JSONDecodeError, _InvalidJSON)):
                raise
            # an integer beyond Python's int() digit limit is still JSON: parse it again (only
            # then: a parse_int of our own takes json's fast path away)
            return json.loads(body, parse_constant=_reject_constant, parse_int=_big_int), body
    except json.JSONDecodeError as error:
        at = offset + error.pos
        line = text.count("\n", 0, at) + 1
        column = at - text.rfind("\n", 0, at)
        from pytest_llmobs.dataset_files import json_problem

        raise _InvalidJSON(f"invalid JSON at line {line}:{column}: {json_problem(error)}") from None
    except RecursionError:
        raise _InvalidJSON("invalid JSON: nested too deeply to parse") from None


def json_valid(output: object) -> EvalResult:
    """Whether ``output`` is valid JSON (BOOLEAN value); the reason gives the error's line:col.

    A string is JSON text: wrapped in a Markdown fence (```json ... ```) it is judged by what is
    inside the fence. ``NaN`` and ``Infinity``, which Python accepts but JSON does not, fail.
    An already parsed value (dict, list, int, float, bool) passes when ``json.dumps`` can write
    it as strict JSON (no NaN; keys strings, numbers or bools). ``None`` fails like every
    evaluator's missing output; bytes are read as UTF-8 JSON text; other objects are judged by
    their ``str()`` (an `LLMResult` by its text).

    >>> json_valid('```json\\n{"city": "Paris"}\\n```')
    <json_valid passed value=True>
    >>> print(json_valid("[1, 2] [3]").reason)
    invalid JSON at line 1:8: Extra data in '[1, 2] [3]'
    """
    if output is None:
        return none_output("json_valid")
    if isinstance(output, _PARSED_JSON):
        try:
            try:
                json.dumps(output, allow_nan=False)
            except ValueError:  # JSON numbers have no length limit; Python's printing of
                json.dumps(huge_ints_as_text(output), allow_nan=False)  # long integers has
        except (TypeError, ValueError, RecursionError) as error:
            reason = f"not encodable as JSON: {error} in {shorten(output)}"
            return EvalResult("json_valid", False, False, reason)
        return EvalResult("json_valid", True, True)
    text = as_text("json_valid", output)
    try:
        _parse(text)
    except _InvalidJSON as error:
        return EvalResult("json_valid", False, False, f"{error} in {shorten(text)}")
    return EvalResult("json_valid", True, True)


def _path(parts: Iterable[object]) -> str:
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)


def parse_json(text: str) -> Any:
    """The JSON value in ``text`` (a wrapping ```json fence removed), as `json_valid` reads it;
    a ``ValueError`` saying why (``invalid JSON at line 1:1: ...``) when it holds none."""
    try:
        return _parse(text)[0]
    except _InvalidJSON as error:
        raise ValueError(str(error)) from None


def _is_number(value: object) -> bool:
    return isinstance(value, Number) and not isinstance(value, bool)


def value_difference(
    got: object, want: object, same_text: Callable[[str, str], bool], at: tuple[object, ...] = ()
) -> tuple[str, str] | None:
    """Where two values differ as JSON values, as ``(path, what)``: ``("$.city", "expected
    'Paris', got 'Lyon'")``; None when they are equal.

    Objects compare regardless of key order, arrays (lists or tuples) in order, numbers by value
    (``1 == 1.0``, NaN equal to NaN), booleans only with booleans (``true`` is not ``1``),
    strings with ``same_text``; anything else by ``==``.

    >>> value_difference({"b": [1, 2.0], "a": "x"}, {"a": "x", "b": [1, 2]}, str.__eq__) is None
    True
    >>> value_difference({"a": [1, True]}, {"a": [1, 1]}, str.__eq__)
    ('$.a[1]', 'expected 1, got True')
    """
    path = _path(at)
    if isinstance(want, Mapping):
        if not isinstance(got, Mapping):
            return path, f"expected an object, got {shorten(got, 60)}"
        missing = next((key for key in want if key not in got), None)
        if missing is not None:
            return path, f"missing key {shorten(missing, 40)}"
        extra = next((key for key in got if key not in want), None)
        if extra is not None:
            return path, f"unexpected key {shorten(extra, 40)}"
        pairs: Iterable[tuple[object, object, object]] = ((k, got[k], want[k]) for k in want)
    elif isinstance(want, (list, tuple)):
        if not isinstance(got, (list, tuple)):
            return path, f"expected an array, got {shorten(got, 60)}"
        if len(got) != len(want):
            return path, f"expected {len(want)} items, got {len(got)}"
        pairs = zip(range(len(want)), got, want, strict=True)
    else:
        if isinstance(want, str):
            equal = isinstance(got, str) and same_text(got, want)
        elif isinstance(want, bool) or isinstance(got, bool):
            equal = got is want
        elif _is_number(want):
            equal = _is_number(got) and (got == want or (got != got and want != want))
        else:
            equal = got == want
        return None if equal else (path, f"expected {shorten(want, 60)}, got {shorten(got, 60)}")
    for key, got_item, want_item in pairs:
        difference = value_difference(got_item, want_item, same_text, (*at, key))
        if difference is not None:
            return difference
    return None


def _summary(errors: Sequence[str], against: str) -> str:
    shown = "; ".join(errors[:_SHOWN_ERRORS])
    more = f" (+{len(errors) - _SHOWN_ERRORS} more)" if len(errors) > _SHOWN_ERRORS else ""
    plural = "" if len(errors) == 1 else "s"
    return f"{len(errors)} validation error{plural} for {against}: {shown}{more}"


def _pydantic_errors(model: type[BaseModel], data: Any, json_text: str | None) -> list[str]:
    from pydantic import ValidationError

    try:
        if json_text is None:
            model.model_validate(data)
        else:  # JSON mode: what a model expects of JSON (e.g. strict models take ISO dates)
            model.model_validate_json(json_text)
    except ValidationError as error:
        return [
            f"{_path(e['loc'])}: {e['msg']} (got {shorten(e['input'], 40)})"
            for e in error.errors(include_url=False)
        ]
    return []


def _is_pydantic_model(cls: type) -> bool:
    # pydantic is imported here, not at module import: a class that is a pydantic model means
    # the user has imported pydantic already, and the plugin's start-up stays light
    from pydantic import BaseModel

    return issubclass(cls, BaseModel)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _import_jsonschema() -> Any:
    """The ``jsonschema`` module, imported on first use: it is an optional dependency."""
    try:
        return importlib.import_module("jsonschema")
    except ImportError as error:
        raise ImportError(_JSONSCHEMA_MISSING) from error


def _jsonschema_errors(jsonschema: Any, schema: Mapping[str, Any], data: Any) -> list[str]:
    validator_class = jsonschema.validators.validator_for(schema)
    try:
        validator_class.check_schema(schema)
    except jsonschema.SchemaError as error:
        raise ValueError(
            f"matches_schema: invalid JSON Schema at {_path(error.absolute_path)}:"
            f" {_clip(error.message, 200)}"
        ) from None
    return [
        f"{_path(e.absolute_path)}: {_clip(e.message, 120)}"
        for e in validator_class(schema).iter_errors(data)
    ]


def matches_schema(output: object, schema: type[BaseModel] | Mapping[str, Any]) -> EvalResult:
    """Whether ``output`` conforms to ``schema`` (BOOLEAN value).

    ``schema`` is a pydantic model class or a JSON Schema dict (needs ``jsonschema``, the
    ``schema`` extra). ``output`` is JSON text (a wrapping ```json fence is removed) or an already
    parsed dict or list; invalid JSON fails with the JSON error. The reason lists the first few
    validation errors with their location, e.g. ``$.items[0].price``.

    >>> from pydantic import BaseModel
    >>> class City(BaseModel):
    ...     name: str
    ...     population: int
    >>> matches_schema('{"name": "Paris"}', City).reason
    "1 validation error for City: $.population: Field required (got {'name': 'Paris'})"
    """
    if isinstance(schema, type) and _is_pydantic_model(schema):
        against = schema.__name__
    elif isinstance(schema, Mapping):
        jsonschema = _import_jsonschema()  # before parsing: a missing extra is never a verdict
        against = "JSON Schema"
    else:
        raise TypeError(
            "matches_schema: schema must be a pydantic BaseModel subclass or a JSON Schema dict,"
            f" got {shorten(schema)}"
        )
    json_text: str | None = None
    if output is None:
        return none_output("matches_schema")
    if isinstance(output, (dict, list)):
        data: Any = output
    else:
        text = as_text("matches_schema", output)
        try:
            data, json_text = _parse(text)
        except _InvalidJSON as error:
            return EvalResult("matches_schema", False, False, f"{error} in {shorten(text)}")
    if isinstance(schema, Mapping):
        errors = _jsonschema_errors(jsonschema, schema, data)
    else:
        errors = _pydantic_errors(schema, data, json_text)
    reason = _summary(errors, against) if errors else ""
    return EvalResult("matches_schema", not errors, not errors, reason)


@dataclass(frozen=True, slots=True, eq=False, repr=False, kw_only=True)
class LabelResult(EvalResult):
    """A `label` verdict that also carries the expected label, for classification metrics.

    ``value`` is the predicted label; ``expected`` the reference one.
    """

    expected: str


def _label_text(value: object, what: str) -> str:
    text = as_text("label", value, what).strip()
    if text == NO_LABEL:
        raise ValueError(
            f"label: {what} label {NO_LABEL!r} is reserved for a missing (None) label;"
            " use another label text"
        )
    return text


def label(predicted: object, expected: object) -> LabelResult:
    """The predicted label (CATEGORICAL value); passes when it equals ``expected``.

    Both are compared as stripped strings, case-sensitively. The result is a `LabelResult`
    whose ``expected`` attribute holds the reference label. A ``None`` on either side fails
    and is recorded as ``"(none)"``, so that label is reserved: given as text it is a
    ``ValueError``.

    >>> result = label(" positive\\n", "negative")
    >>> result.value, result.expected, result.reason
    ('positive', 'negative', "expected label 'negative', got 'positive'")
    """
    # a missing label on either side is NO_LABEL, never the label "None"
    want = NO_LABEL if expected is None else _label_text(expected, "expected")
    if predicted is None:  # recorded as NO_LABEL, so it never counts as a right "None"
        return LabelResult("label", NO_LABEL, False, NONE_OUTPUT, expected=want)
    got = _label_text(predicted, "predicted")
    if expected is None:
        return LabelResult("label", got, False, NONE_EXPECTED, expected=want)
    passed = got == want
    reason = "" if passed else f"expected label {shorten(want)}, got {shorten(got)}"
    return LabelResult("label", got, passed, reason, expected=want)
