"""`jsonable`: what recorded values become before they are stored or sent."""

from __future__ import annotations

import enum
import json
import math

from pytest_llmobs.serialize import jsonable


class Accessor(str):
    """Like LangChain's TextAccessor: a str subclass a parser returns."""


class Colour(str, enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


def test_builtin_subclasses_become_plain_builtins() -> None:
    value = jsonable({"text": Accessor("Paris"), "colour": Colour.RED, "level": Level.HIGH})

    assert value == {"text": "Paris", "colour": "red", "level": 3}
    assert [type(v) for v in value.values()] == [str, str, int]
    assert json.loads(json.dumps(value)) == value


def test_containers_are_copied_to_lists_and_dicts_with_string_keys() -> None:
    source = {"args": (1, [2, 3]), 4: {"nested": ("a",)}}

    value = jsonable(source)

    assert value == {"args": [1, [2, 3]], "4": {"nested": ["a"]}}
    assert value["args"] is not source["args"]


def test_non_finite_floats_and_unknown_objects_are_described() -> None:
    class Thing:
        def __repr__(self) -> str:
            return "<thing>"

    assert jsonable([math.inf, math.nan, 1.5, Thing(), b"abc"]) == [
        "inf",
        "nan",
        1.5,
        "<thing>",
        "<3 bytes>",
    ]


def test_deep_nesting_is_cut_with_a_marker() -> None:
    deep: list[object] = []
    cursor = deep
    for _ in range(40):
        inner: list[object] = []
        cursor.append(inner)
        cursor = inner

    text = json.dumps(jsonable(deep))

    assert "<truncated at depth 32>" in text
