"""`jsonable`: what recorded values become before they are stored or sent."""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import sys
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from pytest_llmobs.serialize import (
    huge_ints_as_text,
    int_text,
    jsonable,
    snapshot,
    snapshot_arguments,
)

if TYPE_CHECKING:
    from conftest import Runs


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

    # (before: cut 8 levels down, after 8 copies of the loop, and in the tree at the root's
    # children, `<cycle: list>`, met again under the child's parent)
    assert converted == {
        "loop": {"left": "<cycle: dict>", "right": "<cycle: dict>"},
        "tree": {
            "name": "root",
            "parent": None,
            "children": [{"name": "child", "parent": "<cycle: Node>", "children": []}],
        },
    }


@pytest.mark.parametrize("convert", [jsonable, snapshot])
def test_the_smallest_cycle_is_cut_where_it_closes(convert: Callable[[Any], Any]) -> None:
    # (before: 9 nested copies, {'self': {'self': ... {'self': '<cycle: dict>'}}})
    itself: dict[str, object] = {}
    itself["self"] = itself
    in_itself: list[object] = []
    in_itself.append(in_itself)
    ordered: OrderedDict[str, object] = OrderedDict()
    ordered["self"] = ordered

    assert convert(itself) == {"self": "<cycle: dict>"}
    assert convert(in_itself) == ["<cycle: list>"]
    assert convert(ordered) == {"self": "<cycle: OrderedDict>"}


def test_a_cycle_deep_down_is_cut_where_it_closes() -> None:
    itself: dict[str, object] = {}
    itself["self"] = itself
    value: object = itself
    expected: object = {"self": "<cycle: dict>"}
    for _ in range(12):
        value, expected = {"x": [value]}, {"x": [expected]}

    assert jsonable(value) == expected


def parent_pointer_tree(children: int) -> dict[str, Any]:
    """The README's cycle: a root whose children point back to it."""
    root: dict[str, Any] = {"name": "root", "children": []}
    root["children"] += [{"name": f"c{i}", "parent": root} for i in range(children)]
    return root


@pytest.mark.parametrize("nodes", [13, 61])
def test_a_tree_whose_nodes_point_to_their_parent_is_recorded_in_proportion_to_its_size(
    nodes: int,
) -> None:
    # (before: 13 nodes took 0.96 MB, 26 nodes 17 MB, 41 nodes 114 MB, 6.5 s and 917 MB)
    recorded = snapshot_arguments((parent_pointer_tree(nodes - 1),), {})

    assert recorded["args"][0]["children"][7] == {"name": "c7", "parent": "<cycle: dict>"}
    assert len(json.dumps(recorded)) < 50 * nodes


def test_a_deeper_tree_whose_nodes_point_to_their_parent_is_recorded_in_proportion() -> None:
    def grow(parent: dict[str, Any] | None, depth: int) -> dict[str, Any]:
        node: dict[str, Any] = {"parent": parent, "children": []}
        if depth:
            node["children"] = [grow(node, depth - 1) for _ in range(2)]
        return node

    root = grow(None, 9)  # 1,023 nodes, 10 levels: the cycles close above and below depth 8

    text = json.dumps(jsonable(root))

    assert text.count('"<cycle: dict>"') == 1_022  # (every parent but the root's, None)
    assert len(text) < 60 * 1_023


def test_a_graph_with_cycles_and_shared_nodes_is_cut_at_the_shared_values_cap() -> None:
    # each node links to every other: its cycles close everywhere, through 12! paths
    nodes: list[dict[str, Any]] = [{"name": f"n{i}"} for i in range(12)]
    for node in nodes:
        node["links"] = [other for other in nodes if other is not node]

    text = json.dumps(jsonable(nodes))

    assert "<cycle: dict>" in text and "<truncated: more than 1,000 shared values>" in text
    assert len(text) < 2_000_000


def test_a_value_met_twice_but_not_inside_itself_is_recorded_in_both_places() -> None:
    message = {"role": "user", "content": "hi"}
    deep: object = message
    for _ in range(10):
        deep = {"x": deep}
    itself: dict[str, object] = {}
    itself["self"] = itself

    shared = {"a": message, "b": [message, message], "deep": [deep, deep]}
    expected = json.loads(json.dumps(shared))  # (JSON writes a value met twice twice)

    assert jsonable(shared) == expected
    # also in a value with a cycle, walked again from the top
    assert jsonable({**shared, "cycle": itself}) == {**expected, "cycle": {"self": "<cycle: dict>"}}


def test_recording_the_readme_tree_stores_each_node_once(
    pytester: pytest.Pytester, runs: Runs
) -> None:
    # (before: 9.8 s, 571 MB, a 14.7 MB store and a 69 MB --llm-json file for 61 nodes)
    pytester.makepyfile(
        test_tree="""
        from pytest_llmobs import observe

        @observe
        def handle(tree):
            return len(tree["children"])

        def test_tree():
            root = {"name": "root", "children": []}
            root["children"] += [{"name": f"c{i}", "parent": root} for i in range(60)]
            assert handle(root) == 60
        """
    )

    pytester.runpytest("-p", "no:cacheprovider", "--llm-json=tree.json").assert_outcomes(passed=1)

    item = runs.items(runs.latest())["test_tree.py::test_tree"]
    (handle,) = [o for o in item["trace"]["observations"] if o["name"] == "handle"]
    children = [{"name": f"c{i}", "parent": "<cycle: dict>"} for i in range(60)]
    assert handle["input"] == {"args": [{"name": "root", "children": children}], "kwargs": {}}
    assert (pytester.path / "tree.json").stat().st_size < 200_000


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
