"""Tests for datasets and dataset_files: loading the three formats, versions, ids and errors."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from pytest_llmobs.dataset_files import load_dataset, load_dataset_file
from pytest_llmobs.datasets import (
    Dataset,
    DatasetError,
    DatasetItem,
    find_dataset_file,
)

ALLOWED = "allowed keys: id, input, expected_output (or expectedOutput), metadata"
EXPECTED_OBJECT = (
    "expected a JSON object with 'input' (and optional 'id', 'expected_output', 'metadata')"
)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def write_jsonl(path: Path, items: list[dict[str, Any]]) -> Path:
    return write(path, "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in items))


def canonical_hash(value: object) -> str:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def error(excinfo: pytest.ExceptionInfo[DatasetError]) -> str:
    return str(excinfo.value)


# --- loading ---------------------------------------------------------------------------------


def test_load_jsonl(tmp_path: Path) -> None:
    write(
        tmp_path / "qa.jsonl",
        '{"id": "france", "input": "What is the capital of France?", "expected_output": "Paris"}\n'
        "\n"
        '{"id": 7, "input": {"question": "Größe von Zürich?", "lang": "de"}, '
        '"expectedOutput": ["≈ 88 km²"], "metadata": {"tags": ["geo"]}}\n'
        '{"input": "日本の首都は？ 🗼"}\n',
    )
    dataset = load_dataset("qa", tmp_path)

    assert dataset.name == "qa"
    assert dataset.path == tmp_path / "qa.jsonl"
    assert len(dataset) == 3
    first, second, third = dataset
    assert first == DatasetItem("france", "What is the capital of France?", "Paris", {}, "qa")
    assert second.id == "7"
    assert second.input == {"question": "Größe von Zürich?", "lang": "de"}
    assert second.expected_output == ["≈ 88 km²"]
    assert second.metadata == {"tags": ["geo"]}
    assert third.input == "日本の首都は？ 🗼"
    assert third.expected_output is None
    assert third.metadata == {}
    assert third.dataset == "qa"
    assert dataset[1] is second
    assert dataset.get("7") is second


def test_load_json_list_and_items_object(tmp_path: Path) -> None:
    items = [
        {"id": "a", "input": "ünïcödé ✓", "expected_output": 1.5},
        {"id": "b", "input": {"messages": [{"role": "user", "content": "hi"}]}, "metadata": {}},
    ]
    as_list = load_dataset_file(write(tmp_path / "l.json", json.dumps(items, indent=2)))
    as_object = load_dataset_file(
        write(tmp_path / "o.json", json.dumps({"name": "o", "items": items})), name="same"
    )

    assert as_list.name == "l"
    assert as_object.name == "same"
    assert [item.to_dict() for item in as_list] == [
        {"id": "a", "input": "ünïcödé ✓", "expected_output": 1.5, "metadata": {}},
        {
            "id": "b",
            "input": {"messages": [{"role": "user", "content": "hi"}]},
            "expected_output": None,
            "metadata": {},
        },
    ]
    assert [item.to_dict() for item in as_object] == [item.to_dict() for item in as_list]
    assert as_object.version == as_list.version


def test_load_csv(tmp_path: Path) -> None:
    (tmp_path / "qa.csv").write_bytes(
        "\ufeffid,input,expected_output,metadata,difficulty\r\n"
        'q1,"Capital of France?",Paris,"{""source"": ""wiki""}",easy\r\n'
        "\r\n"
        'q2,"Multi\r\nline «input»",,,hard\r\n'.encode()
    )
    dataset = load_dataset("qa", tmp_path)

    assert [item.to_dict() for item in dataset] == [
        {
            "id": "q1",
            "input": "Capital of France?",
            "expected_output": "Paris",
            "metadata": {"source": "wiki", "difficulty": "easy"},
        },
        {
            "id": "q2",
            "input": "Multi\r\nline «input»",
            "expected_output": None,
            "metadata": {"difficulty": "hard"},
        },
    ]


def test_item_and_dataset_api(tmp_path: Path) -> None:
    long_input = "x" * 100
    write_jsonl(
        tmp_path / "d.jsonl", [{"id": "a", "input": "hello"}, {"id": 0, "input": long_input}]
    )
    dataset = load_dataset("d", tmp_path)

    assert repr(dataset[0]) == "DatasetItem('a', input='hello')"
    assert str(dataset[0]) == repr(dataset[0])
    assert repr(dataset[1]) == "DatasetItem('0', input='" + "x" * 56 + "...)"
    assert repr(dataset) == f"Dataset('d', version={dataset.version!r}, items=2)"

    limited = dataset.limit(1)
    assert isinstance(limited, Dataset)
    assert [item.id for item in limited] == ["a"]
    assert limited.version == dataset.version
    assert dataset.limit(None) is dataset
    assert len(dataset.limit(10)) == 2

    copy = dataset[0].to_dict()
    copy["metadata"]["changed"] = True
    assert dataset[0].metadata == {}


def test_a_fresh_item_has_lists_and_objects_of_its_own_and_shares_the_rest(
    tmp_path: Path,
) -> None:
    write_jsonl(
        tmp_path / "d.jsonl",
        [
            {
                "id": "nested",
                "input": {"messages": [{"role": "user", "content": "hi"}], "n": 2},
                "expected_output": ["a"],
                "metadata": {"tags": ["x"], "k": "v"},
            },
            {"id": "plain", "input": "q", "expected_output": "a"},
        ],
    )
    dataset = load_dataset("d", tmp_path)
    nested, plain = dataset

    copy = nested.fresh()
    assert copy == nested
    assert copy.input is not nested.input
    assert copy.input["messages"][0] is not nested.input["messages"][0]
    assert copy.expected_output is not nested.expected_output
    assert copy.metadata["tags"] is not nested.metadata["tags"]
    assert copy.input["messages"][0]["content"] is nested.input["messages"][0]["content"]
    copy.input["messages"].append({"role": "assistant", "content": "hello"})
    copy.input["messages"][0]["content"] = "changed"
    copy.metadata["tags"].append("y")
    assert nested.to_dict() == nested.fresh().to_dict() == dataset.snapshot()[0]
    assert nested.input["messages"] == [{"role": "user", "content": "hi"}]

    plain_copy = plain.fresh()  # nothing to copy but the empty metadata
    assert plain_copy == plain
    assert plain_copy.input is plain.input
    assert plain_copy.metadata == {}
    assert plain_copy.metadata is not plain.metadata

    given_in_code = DatasetItem("t", ([1],), {"s": {2}}, {"k": ([3],)})  # deep-copied
    other = given_in_code.fresh()
    assert other == given_in_code
    assert other.input[0] is not given_in_code.input[0]
    assert other.expected_output["s"] is not given_in_code.expected_output["s"]

    fresh = dataset.fresh()
    assert fresh == dataset
    assert fresh.version == dataset.version
    assert [item is original for item, original in zip(fresh, dataset, strict=True)] == [
        False,
        False,
    ]


def test_get_missing_id_lists_known_ids(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "d.jsonl", [{"id": f"i{n}", "input": n} for n in range(7)])
    dataset = load_dataset("d", tmp_path)

    with pytest.raises(DatasetError) as excinfo:
        dataset.get("nope")
    assert error(excinfo) == (
        "dataset 'd' has no item 'nope'; known ids: i0, i1, i2, i3, i4, ... (7 total)"
    )


# --- versions and ids ----------------------------------------------------------------------


def test_version_is_the_same_across_formats_for_the_same_content(tmp_path: Path) -> None:
    items: list[dict[str, Any]] = [
        {"id": "1", "input": "Quelle est la capitale de la France ?", "expected_output": "Paris"},
        {"id": "2", "input": "2+2", "expected_output": None, "metadata": {"kind": "math"}},
    ]
    jsonl = load_dataset_file(write_jsonl(tmp_path / "a.jsonl", items))
    json_file = load_dataset_file(write(tmp_path / "b.json", json.dumps({"items": items})))
    csv_file = load_dataset_file(
        write(
            tmp_path / "c.csv",
            "id,input,expected_output,kind\n"
            "1,Quelle est la capitale de la France ?,Paris,\n"
            "2,2+2,,math\n",
        )
    )
    # The CSV has a 'kind' cell for every row, so its first item differs by {"kind": ""}.
    assert csv_file.items[1].to_dict() == jsonl.items[1].to_dict()
    assert jsonl.version == json_file.version
    assert csv_file.version != jsonl.version

    csv_same = load_dataset_file(
        write(
            tmp_path / "d.csv",
            "id,input,expected_output,metadata\n1,Quelle est la capitale de la France ?,Paris,\n"
            '2,2+2,,"{""kind"": ""math""}"\n',
        )
    )
    assert csv_same.version == jsonl.version

    expected = canonical_hash(
        [
            {**items[0], "metadata": {}},
            {"id": "2", "input": "2+2", "expected_output": None, "metadata": {"kind": "math"}},
        ]
    )
    assert jsonl.version == expected


def test_version_ignores_key_order_and_tracks_every_character(tmp_path: Path) -> None:
    base = write(tmp_path / "a.jsonl", '{"id": "x", "input": {"a": 1, "b": 2}, "metadata": {}}\n')
    reordered = write(tmp_path / "b.jsonl", '{"metadata":{},"input":{"b":2,"a":1},"id":"x"}\n')
    changed = write(
        tmp_path / "c.jsonl", '{"id": "x", "input": {"a": 1, "b": 3}, "metadata": {}}\n'
    )

    version = load_dataset_file(base).version
    assert len(version) == 12
    assert int(version, 16) >= 0
    assert load_dataset_file(base).version == version
    assert load_dataset_file(reordered).version == version
    assert load_dataset_file(changed).version != version


def test_derived_ids_are_stable_and_unique(tmp_path: Path) -> None:
    items: list[dict[str, Any]] = [
        {"input": "same", "metadata": {"k": 1}},
        {"input": "other"},
        {"metadata": {"k": 1}, "input": "same"},
        {"input": "same", "metadata": {"k": 1}},
    ]
    path = write_jsonl(tmp_path / "d.jsonl", items)
    ids = [item.id for item in load_dataset_file(path)]

    same = canonical_hash({"input": "same", "expected_output": None, "metadata": {"k": 1}})
    other = canonical_hash({"input": "other", "expected_output": None, "metadata": {}})
    assert ids == [same, other, f"{same}-2", f"{same}-3"]
    assert [item.id for item in load_dataset_file(path)] == ids

    # An explicit id is never reused by a derived one.
    write_jsonl(
        tmp_path / "e.jsonl", [{"input": "same", "metadata": {"k": 1}}, {"id": same, "input": 0}]
    )
    assert [item.id for item in load_dataset("e", tmp_path)] == [f"{same}-2", same]


# --- errors --------------------------------------------------------------------------------


def load_error(path: Path) -> str:
    with pytest.raises(DatasetError) as excinfo:
        load_dataset_file(path)
    return error(excinfo)


def test_error_invalid_json_line(tmp_path: Path) -> None:
    path = write(tmp_path / "d.jsonl", '{"input": "a"}\n\n{input: "b"}\n')
    assert (
        load_error(path)
        == f"{path}:3:2: invalid JSON (Expecting property name enclosed in double quotes)"
    )


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        (
            "d.jsonl",
            '{"input": "fine"}\n{"input": "a\tb"}\n',
            ":2:13: invalid JSON (Invalid control character)",
        ),
        (
            "d.jsonl",
            '{"input": "fine"}\n{"input": "a}\n',
            ":2:11: invalid JSON (Unterminated string)",
        ),
        (
            "d.json",
            '[{"input": "fine"},\n {"input": "a\tb"}]',
            ":2:14: invalid JSON (Invalid control character)",
        ),
        (
            "d.csv",
            'input,metadata\na,"{""k"": ""v}"\n',
            ":2: invalid JSON in 'metadata' column (Unterminated string)",
        ),
    ],
)
def test_json_errors_give_line_and_column_and_no_dangling_at(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    # (before: "d.jsonl:2: invalid JSON (Invalid control character at)": no column, and an
    # "at" pointing nowhere; "(Unterminated string starting at)")
    path = write(tmp_path / name, text)
    assert load_error(path) == f"{path}{message}"


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ('{"input": "a", "expected_output": NaN}', "NaN is not a JSON number"),
        ('{"input": "a", "metadata": {"w": Infinity}}', "Infinity is not a JSON number"),
        ('{"input": "a", "metadata": {"w": -Infinity}}', "-Infinity is not a JSON number"),
        # read as Infinity, stored and exported as Infinity: JSON no other reader accepts
        ('{"input": "a", "expected_output": 1e400}', "1e400 is too large for a number (it"),
        ('{"input": "a", "metadata": {"w": [-2e308]}}', "-2e308 is too large for a number"),
        ('{"input": "x", "input": "y"}', "key 'input' appears twice in one object; all but"),
    ],
)
def test_error_json_other_tools_reject(tmp_path: Path, line: str, problem: str) -> None:
    jsonl = write(tmp_path / "d.jsonl", '{"input": "fine"}\n' + line + "\n")
    assert load_error(jsonl).startswith(f"{jsonl}:2: invalid JSON ({problem}")
    # (before: "d.json: invalid JSON (...)", naming neither the line nor the item)
    whole = write(tmp_path / "d.json", f'[\n  {{"input": "fine"}},\n  {line}\n]\n')
    assert load_error(whole).startswith(f"{whole}:3: item 2: invalid JSON ({problem}")
    items = write(tmp_path / "i.json", f'{{"name": "d",\n "items": [\n\n  {line}]}}')
    assert load_error(items).startswith(f"{items}:4: item 1: invalid JSON ({problem}")


def test_error_nesting_too_deep_to_store(tmp_path: Path) -> None:
    # (a RecursionError traceback while the snapshot was governed, naming no file, before)
    deep = "[" * 101 + "1" + "]" * 101
    jsonl = write(tmp_path / "d.jsonl", f'{{"input": "fine"}}\n{{"input": {deep}}}\n')
    assert load_error(jsonl) == (
        f"{jsonl}:2: lists and objects nested more than 100 levels deep; flatten the item or "
        "store that part as a string"
    )
    csv = write(tmp_path / "d.csv", 'input,metadata\na,"{""w"": ' + deep + '}"\n')
    assert load_error(csv).startswith(f"{csv}:2: lists and objects nested more than 100")
    many = "[" + ",".join(["[[1]]"] * 200) + "]"  # many brackets, little depth: loads
    assert load_dataset_file(write(tmp_path / "ok.jsonl", f'{{"input": {many}}}\n')).items


def test_json_file_nesting_errors_name_the_item_and_a_json_item_nests_as_a_jsonl_line(
    tmp_path: Path,
) -> None:
    # (before: "d.json: lists and objects nested more than 100 levels deep", and the list
    # around the items counted as a level: an item JSONL reads was refused in a .json file)
    deep = "[" * 101 + "1" + "]" * 101
    fine = '{"input": "fine"}'
    path = write(tmp_path / "d.json", f'[{fine}, {fine}, {fine},\n {{"input": {deep}}}]')
    assert load_error(path) == (
        f"{path}:2: item 4: lists and objects nested more than 100 levels deep; flatten the item "
        "or store that part as a string"
    )
    deepest = "[" * 99 + "1" + "]" * 99  # the item's object is level 1, as on a JSONL line
    jsonl = load_dataset_file(write(tmp_path / "ok.jsonl", f'{{"input": {deepest}}}\n'))
    as_list = load_dataset_file(write(tmp_path / "ok.json", f'[{{"input": {deepest}}}]'))
    as_items = load_dataset_file(
        write(tmp_path / "o.json", f'{{"items": [{{"input": {deepest}}}]}}')
    )
    assert as_list.version == as_items.version == jsonl.version


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '{"items": [{"input": "a"}],\n "items": []}',
            ":1: invalid JSON (key 'items' appears twice",
        ),
        ('{"name": "d",\n "version": NaN, "items": []}', ":2: invalid JSON (NaN is not a JSON"),
        ('[{"input": "a"}] []', ":1:18: invalid JSON (Extra data)"),
        ('[{"input": "a"},]', ":1:17: invalid JSON (Expecting value)"),
        ('[{"input": "a"}\n {"input": "b"}]', ":2:2: invalid JSON (Expecting ',' delimiter)"),
        ('{"items" [{"input": "a"}]}', ":1:10: invalid JSON (Expecting ':' delimiter)"),
        ("{items: []}", ":1:2: invalid JSON (Expecting property name enclosed in double quotes)"),
        (
            '{"items": {"input": "a"}}',
            ": expected a list of items or an object with an 'items' list",
        ),
        ('"a"', ": expected a list of items or an object with an 'items' list, got string"),
    ],
)
def test_json_file_errors_outside_the_items(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path / "d.json", text)
    assert load_error(path).startswith(f"{path}{message}")


def test_json_file_of_items_with_spaces_and_huge_integers(tmp_path: Path) -> None:
    huge = "9" * 5000  # longer than int() reads by default
    text = f'\n  [\n\t{{"id": "a", "input": {huge}}} ,\r\n  {{"input": [1, {{"k": "v"}}]}}\n]\n  '
    items = load_dataset_file(write(tmp_path / "d.json", text)).items
    assert items[0].input == int(huge[:4000]) * 10**1000 + int(huge[4000:])
    assert items[1].input == [1, {"k": "v"}]
    jsonl = f'{{"id": "a", "input": {huge}}}\n{{"input": [1, {{"k": "v"}}]}}\n'
    assert load_dataset_file(write(tmp_path / "d.jsonl", jsonl)).items == items


def test_error_csv_metadata_with_nan(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", 'input,metadata\na,"{""w"": NaN}"\n')
    assert load_error(path) == (
        f"{path}:2: invalid JSON in 'metadata' column "
        "(NaN is not a JSON number; write null or a string)"
    )


def test_error_non_object_line(tmp_path: Path) -> None:
    path = write(tmp_path / "d.jsonl", '{"input": "a"}\n["b"]\n')
    assert load_error(path) == f"{path}:2: {EXPECTED_OBJECT}, got list"


def test_error_invalid_json_file_has_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path / "d.json", '[\n  {"input": "a"},\n  {"input": nope}\n]\n')
    assert load_error(path) == f"{path}:3:13: invalid JSON (Expecting value)"


def test_error_json_file_entry_not_an_object(tmp_path: Path) -> None:
    path = write(tmp_path / "d.json", '{"items": [{"input": "a"}, "b"]}')
    assert load_error(path) == f"{path}:1: item 2: {EXPECTED_OBJECT}, got string"


def test_error_json_file_without_items(tmp_path: Path) -> None:
    path = write(tmp_path / "d.json", '{"data": []}')
    assert load_error(path) == (
        f"{path}: expected a list of items or an object with an 'items' list, "
        "got an object without an 'items' list"
    )


def test_error_missing_input(tmp_path: Path) -> None:
    path = write(tmp_path / "d.jsonl", '{"input": "a"}\n{"id": "q2", "expectedOutput": "b"}\n')
    assert load_error(path) == (
        f"{path}:2: missing required key 'input' (keys present: 'id', 'expectedOutput')"
    )


def test_error_unknown_key(tmp_path: Path) -> None:
    path = write(tmp_path / "d.json", '[{"input": "a", "expected": "b"}]')
    assert load_error(path) == f"{path}:1: item 1: unknown key 'expected'; {ALLOWED}"


def test_error_both_expected_output_spellings(tmp_path: Path) -> None:
    path = write(tmp_path / "d.jsonl", '{"input": "a", "expected_output": 1, "expectedOutput": 1}')
    assert load_error(path) == f"{path}:1: both 'expected_output' and 'expectedOutput' given"


def test_error_duplicate_id(tmp_path: Path) -> None:
    path = write(
        tmp_path / "d.jsonl", '{"id": 1, "input": "a"}\n{"input": "b"}\n{"id": "1", "input": "c"}\n'
    )
    assert load_error(path) == f"{path}:3: duplicate id '1' (first used at line 1)"

    path = write(tmp_path / "d.json", '[{"id": "x", "input": "a"},\n {"id": "x", "input": "b"}]')
    assert load_error(path) == f"{path}:2: item 2: duplicate id 'x' (first used at item 1, line 1)"


@pytest.mark.parametrize(
    ("id_json", "got"), [('""', "an empty string"), ("true", "boolean"), ("1.5", "number")]
)
def test_error_bad_id(tmp_path: Path, id_json: str, got: str) -> None:
    path = write(tmp_path / "d.jsonl", f'{{"id": {id_json}, "input": "a"}}\n')
    assert load_error(path) == f"{path}:1: 'id' must be a non-empty string or integer, got {got}"


def test_error_bad_metadata(tmp_path: Path) -> None:
    path = write(tmp_path / "d.jsonl", '{"input": "a", "metadata": ["tag"]}\n')
    assert load_error(path) == f"{path}:1: 'metadata' must be a JSON object, got list"


def test_error_csv_without_input_column(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "\nid,question\n1,What?\n")
    assert load_error(path) == (
        f"{path}:2: CSV header must include an 'input' column "
        "(optional: id, expected_output, metadata); found: id, question"
    )


def test_error_csv_invalid_metadata_json(tmp_path: Path) -> None:
    path = write(
        tmp_path / "d.csv",
        'input,metadata\n"two\nlines",{}\nb,"{a: 1}"\n',
    )
    assert load_error(path) == (
        f"{path}:4: invalid JSON in 'metadata' column "
        "(Expecting property name enclosed in double quotes)"
    )


def test_error_csv_metadata_not_an_object(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "input,metadata\na,[1]\n")
    assert load_error(path) == f"{path}:2: 'metadata' must be a JSON object, got list"


def test_error_csv_quote_never_closed(tmp_path: Path) -> None:
    # before, the cell swallowed every later row and the file loaded with two items
    path = write(
        tmp_path / "d.csv",
        'id,input,expected_output\nq1,France?,Paris\nq2,"Peru?,Lima\nq3,Japan?,Tokyo\n',
    )
    with pytest.raises(DatasetError) as raised:
        load_dataset_file(path)
    assert str(raised.value) == (
        f"{path}:3: invalid CSV (a quoted cell opened on this line is never closed)"
    )
    path.write_text('id,input\nq1\nq2,"Peru?\n', encoding="utf-8")  # the first problem is said
    assert load_error(path).startswith(f"{path}:2: row has 1 cells but the header 2;")


def test_csv_quotes_that_close_and_quotes_inside_a_cell_load(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", 'id,input\nq1,"two\nlines"\nq2,"a ""quoted"" word"\nq3,5"\n')
    assert [item.input for item in load_dataset_file(path)] == [
        "two\nlines",
        'a "quoted" word',
        '5"',
    ]


def test_a_csv_cell_longer_than_pythons_field_limit_loads_and_the_limit_is_kept(
    tmp_path: Path,
) -> None:
    # (before: "rag.csv:2: invalid CSV (field larger than field limit (131072))", while the
    # same item in JSONL loaded)
    context = "context " * 20_000
    rows = io.StringIO()
    csv.writer(rows).writerows([["id", "input"], ["q1", context], ["q2", "short"]])
    path = write(tmp_path / "rag.csv", rows.getvalue())
    jsonl = write_jsonl(
        tmp_path / "rag.jsonl", [{"id": "q1", "input": context}, {"id": "q2", "input": "short"}]
    )
    before = csv.field_size_limit()  # (131,072 unless changed)
    assert load_dataset_file(path).version == load_dataset_file(jsonl).version
    assert csv.field_size_limit() == before  # the process's limit, as it was
    previous = csv.field_size_limit(1_000)  # a limit the user's own code set
    try:
        assert load_dataset_file(path).items[0].input == context
        assert csv.field_size_limit() == 1_000
        unclosed = write(tmp_path / "u.csv", f'id,input\nq1,"{context}\n')
        assert load_error(unclosed) == (
            f"{unclosed}:2: invalid CSV (a quoted cell opened on this line is never closed)"
        )
        assert csv.field_size_limit() == 1_000
    finally:
        csv.field_size_limit(previous)


def test_error_csv_row_too_long(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "id,input\n1,a,extra\n")
    assert load_error(path) == f"{path}:2: row has 3 cells but the header 2"


def test_error_csv_row_too_short(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "id,input,expected_output\nq1,a,b\nq2,a\n")
    expected = f"{path}:3: row has 2 cells but the header 3; an empty cell still needs its comma"
    assert load_error(path) == expected
    path.write_text("id,input,expected_output\nq1,a,\n")  # an empty last cell is fine
    assert [item.expected_output for item in load_dataset_file(path)] == [None]


def test_error_not_found_lists_available(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "beta.jsonl", [{"input": 1}])
    write(tmp_path / "alpha.csv", "input\nx\n")
    write(tmp_path / "notes.txt", "not a dataset")
    with pytest.raises(DatasetError) as excinfo:
        load_dataset("qa", tmp_path)
    assert error(excinfo) == (
        f"dataset 'qa' not found in {tmp_path}; expected qa.jsonl, qa.json or qa.csv; "
        "available: alpha, beta"
    )

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError) as excinfo:
        find_dataset_file("qa", empty)
    assert error(excinfo).endswith("; available: (none)")

    with pytest.raises(DatasetError) as excinfo:
        find_dataset_file("qa", tmp_path / "missing")
    assert (
        error(excinfo) == f"dataset 'qa' not found: directory {tmp_path / 'missing'} does not exist"
    )


def test_error_ambiguous(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "qa.jsonl", [{"input": 1}])
    write(tmp_path / "qa.csv", "input\nx\n")
    with pytest.raises(DatasetError) as excinfo:
        find_dataset_file("qa", tmp_path)
    assert error(excinfo) == (
        f"dataset 'qa' is ambiguous: found {tmp_path / 'qa.jsonl'} and {tmp_path / 'qa.csv'}; "
        "keep only one"
    )


@pytest.mark.parametrize("name", ["../x", "", ".hidden", "a/b", "a b", "-x"])
def test_error_bad_name(tmp_path: Path, name: str) -> None:
    with pytest.raises(DatasetError) as excinfo:
        load_dataset(name, tmp_path)
    assert error(excinfo) == (
        f"invalid dataset name {name!r}; "
        "expected letters, digits, '.', '_' or '-', starting with a letter or digit"
    )


@pytest.mark.parametrize(
    ("filename", "text"), [("d.jsonl", "\n  \n"), ("d.json", "[]"), ("d.csv", "input\n")]
)
def test_error_empty_file(tmp_path: Path, filename: str, text: str) -> None:
    path = write(tmp_path / filename, text)
    assert load_error(path) == f"{path}: dataset has no items"


def test_error_invalid_utf8(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'{"input": "caf\xe9"}\n')
    assert load_error(path) == (
        f"{path}:1: not valid UTF-8 (byte offset 14: invalid continuation byte); "
        "save the file as UTF-8"
    )


def test_error_unsupported_suffix(tmp_path: Path) -> None:
    path = write(tmp_path / "d.yaml", "- input: a\n")
    assert load_error(path) == (
        f"{path}: unsupported dataset file type '.yaml'; expected .jsonl, .json or .csv"
    )


# --- property ------------------------------------------------------------------------------

ITEMS = st.lists(
    st.fixed_dictionaries(
        {"input": st.text()},
        optional={
            "id": st.text(min_size=1).filter(str.strip),
            "expected_output": st.none() | st.text(),
            "metadata": st.dictionaries(st.text(), st.text() | st.integers()),
        },
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(items=ITEMS)
def test_jsonl_and_json_agree(tmp_path: Path, items: list[dict[str, Any]]) -> None:
    ids = [item["id"] for item in items if "id" in item]
    assume(len(set(ids)) == len(ids))
    jsonl = load_dataset_file(write_jsonl(tmp_path / "p.jsonl", items))
    json_file = load_dataset_file(write(tmp_path / "p.json", json.dumps(items, indent=1)))

    assert jsonl.version == json_file.version
    assert [item.to_dict() for item in jsonl] == [item.to_dict() for item in json_file]
    assert [item.input for item in jsonl] == [item["input"] for item in items]
    assert len({item.id for item in jsonl}) == len(items)


@pytest.mark.parametrize(
    ("name", "text", "where"),
    [
        ("d.jsonl", '{"input": "ok"}\n{"input": "cut \\ud83d"}\n', ":2:"),
        (
            "d.json",
            '[{"input": "ok"}, {"input": "x", "metadata": {"k": "\\udc00"}}]',
            ":1: item 2:",
        ),
        ("d.csv", 'input,metadata\nx,"{""k"": ""\\ud800""}"\n', ":2:"),
    ],
)
def test_error_lone_surrogate_escape(tmp_path: Path, name: str, text: str, where: str) -> None:
    path = write(tmp_path / name, text)
    message = load_error(path)
    assert message.startswith(f"{path}{where} a \\u escape gives half of a UTF-16 surrogate pair")


def test_a_surrogate_pair_escape_is_one_character(tmp_path: Path) -> None:
    path = write(tmp_path / "d.jsonl", '{"input": "smile \\ud83d\\ude00"}\n')
    assert [item.input for item in load_dataset_file(path)] == ["smile \U0001f600"]


def test_a_csv_row_of_spaces_is_an_item_like_the_same_input_in_jsonl(tmp_path: Path) -> None:
    csv_items = load_dataset_file(write(tmp_path / "one.csv", 'input\n"  "\nreal\n\n'))
    jsonl_items = load_dataset_file(
        write(tmp_path / "one.jsonl", '{"input":"  "}\n{"input":"real"}\n')
    )
    assert [i.input for i in csv_items] == [i.input for i in jsonl_items] == ["  ", "real"]
    assert csv_items.version == jsonl_items.version


def test_a_csv_row_of_blank_cells_is_an_error_as_its_blank_id_is_in_jsonl(tmp_path: Path) -> None:
    path = write(tmp_path / "two.csv", 'id,input\na,x\n" "," "\n,\nb,y\n')
    with pytest.raises(DatasetError) as caught:
        load_dataset_file(path)
    assert str(caught.value) == (
        f"{path}:3: 'id' must be a non-empty string or integer, got the blank string ' '"
    )


# --- the llm_dataset marker -----------------------------------------------------------------


def test_two_dataset_markers_on_a_module_or_a_class_are_a_usage_error(
    pytester: pytest.Pytester,
) -> None:
    # (before: test_m[a1] and TestC::test_c[b1] were collected, one dataset each, the other
    # dropped silently; TestSub's own marker lost to its base class's)
    pytester.makefile(".jsonl", **{"datasets/a": '{"id": "a1", "input": "x"}\n'})
    pytester.makefile(".jsonl", **{"datasets/b": '{"id": "b1", "input": "y"}\n'})
    pytester.makepyfile(
        test_mod="""\
            import pytest
            pytestmark = [pytest.mark.llm_dataset("a"), pytest.mark.llm_dataset("b")]
            def test_m(item): pass
            def test_n(item): pass
            """,
        test_cls="""\
            import pytest
            @pytest.mark.llm_dataset("a")
            @pytest.mark.llm_dataset("b")
            class TestC:
                def test_c(self, item): pass
            @pytest.mark.llm_dataset("a")
            class TestBase:
                def test_c(self, item): pass
            @pytest.mark.llm_dataset("b")
            class TestSub(TestBase):
                pass
            """,
    )
    result = pytester.runpytest("--co")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    advice = "a test runs one dataset: write one test per dataset, or merge the datasets"
    errors = [
        f"test_cls.py::TestC: @pytest.mark.llm_dataset is given 2 times ('b', 'a'); {advice}",
        "test_cls.py::TestSub: @pytest.mark.llm_dataset is given 2 times ('a', 'b') (with its "
        f"base classes': a subclass's marker does not override theirs); {advice}",
        f"test_mod.py: @pytest.mark.llm_dataset is given 2 times ('a', 'b'); {advice}",
    ]
    stderr = result.stderr.str()
    assert f"ERROR: {errors[0]}\n{errors[1]}\n{errors[2]}\n" in stderr  # each said once


def test_a_dataset_marker_on_a_test_overrides_one_on_its_class_or_module(
    pytester: pytest.Pytester,
) -> None:
    pytester.makefile(".jsonl", **{"datasets/a": '{"id": "a1", "input": "x"}\n'})
    pytester.makefile(".jsonl", **{"datasets/b": '{"id": "b1", "input": "y"}\n'})
    pytester.makepyfile(
        test_ok="""\
            import pytest
            pytestmark = pytest.mark.llm_dataset("a")
            def test_m(item): pass
            @pytest.mark.llm_dataset("b")
            def test_n(item): pass
            @pytest.mark.llm_dataset("b")
            class TestK:
                def test_k(self, item): pass
                @pytest.mark.llm_dataset("a")
                def test_l(self, item): pass
            """
    )
    result = pytester.runpytest("--co", "-q")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        [
            "test_ok.py::test_m?a1?",
            "test_ok.py::test_n?b1?",
            "test_ok.py::TestK::test_k?b1?",
            "test_ok.py::TestK::test_l?a1?",
        ]
    )
