"""`jsonable`: what recorded values become before they are stored or sent."""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import sys

import pytest

from pytest_llmobs.serialize import huge_ints_as_text, int_text, jsonable


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
    for _ in range(120):
        inner: list[object] = []
        cursor.append(inner)
        cursor = inner

    text = json.dumps(jsonable(deep))

    assert "<truncated at depth 100>" in text
    assert text.count("[") == 100  # as deep as a dataset item may nest (it was cut at 32)


@dataclasses.dataclass
class Node:
    name: str
    parent: Node | None = None
    children: list[Node] = dataclasses.field(default_factory=list)


def test_a_cycle_ends_in_a_marker_and_takes_no_time() -> None:
    """Two references back to itself made 2**32 copies: a test recording one never ended."""
    loop: dict[str, object] = {}
    loop["left"] = loop["right"] = loop
    root = Node("root")
    root.children.append(Node("child", parent=root))

    converted = jsonable({"loop": loop, "tree": root})

    loop_text, tree_text = json.dumps(converted["loop"]), json.dumps(converted["tree"])
    assert '"<cycle: dict>"' in loop_text and len(loop_text) < 100_000
    assert tree_text.startswith('{"name": "root", "parent": null, "children": [{"name": "child"')
    assert '"<cycle: list>"' in tree_text  # (the root's children, met again under the child)


def test_a_graph_sharing_its_nodes_is_cut_not_copied_per_path() -> None:
    shared: object = "leaf"
    for _ in range(40):
        shared = [shared, shared]  # 2**40 paths to the leaf

    text = json.dumps(jsonable(shared))

    assert "<truncated: more than 1,000 shared values>" in text
    assert len(text) < 5_000_000


def test_many_containers_deep_down_are_kept_when_none_is_shared() -> None:
    import numpy as np

    deep: dict[str, object] = {"rows": [{"n": i, "x": np.float64(i)} for i in range(1_500)]}
    for _ in range(9):
        deep = {"x": deep}

    text = json.dumps(jsonable(deep))

    assert "truncated" not in text and text.count('"n"') == 1_500


@pytest.mark.parametrize(
    "value",
    [0, 7, -42, 10**5000, -(10**5000) + 1, 3**20000, 10**4300 - 1],
    ids=["0", "7", "-42", "10^5000", "-10^5000+1", "3^20000", "10^4300-1"],
)
def test_int_text_gives_every_digit_of_any_integer(value: int) -> None:
    limit = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)
    try:
        expected = str(value)
    finally:
        sys.set_int_max_str_digits(limit)
    assert int_text(value) == expected


def test_integers_readers_refuse_become_text_and_others_stay_numbers() -> None:
    # (before: one such integer in a span crashed the session with an INTERNALERROR)
    value = {"n": 10**4300, "m": [10**4300 - 1, -(10**5000)], "k": 5, "b": True}

    converted = huge_ints_as_text(value)

    assert converted["n"] == "1" + "0" * 4300
    assert converted["m"][0] == 10**4300 - 1 and converted["m"][1] == "-1" + "0" * 5000
    assert (converted["k"], converted["b"]) == (5, True)
    assert json.loads(json.dumps(converted)) == converted


def test_an_integer_key_too_long_to_print_becomes_its_digits() -> None:
    # (before: ValueError from str() of the key, and the span's output was lost)
    assert jsonable({10**5000: "x", 7: "y", True: "z"}) == {
        "1" + "0" * 5000: "x",
        "7": "y",
        "true": "z",
    }


def test_keys_none_true_and_false_read_as_json_writes_them() -> None:
    assert jsonable({None: 1, True: 2, False: 3}) == json.loads(
        json.dumps({None: 1, True: 2, False: 3})
    )
