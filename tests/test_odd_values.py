"""Odd values in recorded data: builtin subclasses, objects whose repr fails, names of the
wrong type, inline items and files JSON or UTF-8 cannot hold, keys that read alike.

Tracing must never change a test's outcome nor end the session, and no recorded value is lost.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from pytest_llmobs import run_experiment
from pytest_llmobs.dataset_files import load_dataset_file
from pytest_llmobs.datasets import DatasetError, DatasetItem
from pytest_llmobs.governance import Governance
from pytest_llmobs.observe_decorator import observe
from pytest_llmobs.prompt_files import parse_prompt_file
from pytest_llmobs.prompts import PromptError
from pytest_llmobs.serialize import jsonable
from pytest_llmobs.store import Store
from pytest_llmobs.store_connection import stored_json
from pytest_llmobs.trace_model import Observation, Trace
from pytest_llmobs.tracing import activate, propagate_attributes, start_span

if TYPE_CHECKING:
    from conftest import Runs

REPR_BOOM = "<unrepresentable Opaque: RuntimeError: repr boom>"


class Opaque:
    """An SDK object whose repr needs a connection that is closed."""

    def __repr__(self) -> str:
        raise RuntimeError("repr boom")


class NotText:
    """``__repr__`` and ``__str__`` that return something other than a str."""

    def __repr__(self) -> str:
        return 43  # type: ignore[return-value]

    def __str__(self) -> str:
        return 42  # type: ignore[return-value]


class Ratio(float):
    """A float subclass that is not numpy's."""


class Row(dict[str, Any]):
    pass


class Cells(list[Any]):
    pass


@pytest.fixture
def root() -> Iterator[Observation]:
    """A test-like root span, active for the duration of the test."""
    observation = Observation(Trace("t"), "t")
    with activate(observation):
        yield observation


def stored_observation(item: dict[str, Any], name: str) -> dict[str, Any]:
    found = [o for o in item["trace"]["observations"] if o["name"] == name]
    assert found, f"no observation {name!r} in {item['node_id']}"
    observation: dict[str, Any] = found[0]
    return observation


# --- 1. builtin subclasses become plain builtins (what xdist can send) ----------------------


def test_builtin_subclasses_become_exactly_plain_builtins() -> None:
    # (before: numpy.float64 and other float subclasses were returned as themselves)
    value = jsonable(
        {
            "f64": np.float64(0.5),
            "ratio": Ratio(0.25),
            "nan": np.float64("nan"),
            "i64": np.int64(3),
            "yes": np.bool_(True),
            "row": Row(a=1),
            "cells": Cells([np.float32(1.5)]),
        }
    )

    assert value == {
        "f64": 0.5,
        "ratio": 0.25,
        "nan": "nan",
        "i64": 3,
        "yes": True,
        "row": {"a": 1},
        "cells": [1.5],
    }
    assert [type(v) for v in value.values()] == [float, float, str, int, bool, dict, list]
    assert type(value["cells"][0]) is float


def test_numpy_values_in_span_data_are_stored_under_xdist(
    pytester: pytest.Pytester, runs: Runs
) -> None:
    # xdist only: without it the values never leave the process (the unit test above covers it)
    # (before, under -n 2: "DumpError: can't serialize <class 'numpy.float64'>" killed the
    # worker's item, which was missing from the run while the session passed)
    pytester.makepyfile(
        test_stats="""
        import numpy as np
        from pytest_llmobs import start_span

        def test_numpy_output():
            with start_span("stats") as span:
                span.update(output={"mean": np.float64(0.5), "n": np.int64(3)})

        def test_after(scorer):
            scorer.score("ok", True)
        """
    )

    result = pytester.runpytest("-p", "no:cacheprovider", "-n", "2")

    result.assert_outcomes(passed=2)
    assert "INTERNALERROR" not in result.stdout.str()
    items = runs.items(runs.latest())
    assert sorted(items) == ["test_stats.py::test_after", "test_stats.py::test_numpy_output"]
    stats = stored_observation(items["test_stats.py::test_numpy_output"], "stats")
    assert stats["output"] == {"mean": 0.5, "n": 3}


# --- 2. values whose repr or str fails --------------------------------------------------------


def test_values_whose_repr_fails_become_a_placeholder() -> None:
    # (before: the RuntimeError and TypeError from repr/str reached the caller)
    value = jsonable({"obj": Opaque(), "not_text": NotText(), NotText(): 1, "list": [Opaque()]})

    assert value == {
        "obj": REPR_BOOM,
        "not_text": "<unrepresentable NotText: TypeError: __repr__ returned non-string (type int)>",
        "<unrepresentable NotText: TypeError: __str__ returned non-string (type int)>": 1,
        "list": [REPR_BOOM],
    }


def test_an_observed_function_takes_and_returns_values_whose_repr_fails(
    root: Observation,
) -> None:
    # (before: the user's own call raised RuntimeError from tracing's repr)
    @observe
    def echo(x: object) -> object:
        return x

    given = Opaque()
    assert echo(given) is given
    with start_span("s") as span:
        span.update(output=Opaque(), metadata={"key": {NotText(): 1}})

    observations = root.trace.to_dict()["observations"]
    assert observations[1]["input"] == {"args": [REPR_BOOM], "kwargs": {}}
    assert observations[1]["output"] == REPR_BOOM
    assert observations[2]["output"] == REPR_BOOM
    json.dumps(observations)


def test_values_whose_repr_fails_do_not_end_the_session(
    pytester: pytest.Pytester, runs: Runs, xdist_args: tuple[str, ...]
) -> None:
    # (before: INTERNALERROR at teardown, and the session stopped after the first such test)
    pytester.makepyfile(
        test_opaque="""
        from pytest_llmobs import observe, propagate_attributes, start_span

        class Opaque:
            def __repr__(self):
                raise RuntimeError("repr boom")

        @observe
        def echo(x):
            return x

        def test_metadata():
            with propagate_attributes(metadata={"obj": Opaque()}):
                pass

        def test_generate(llm):
            llm.generate("What is the capital of France?", user=Opaque())

        def test_observed():
            echo(Opaque())

        def test_span_output():
            with start_span("s") as span:
                span.update(output=Opaque())

        def test_last(scorer):
            scorer.score("ok", True)
        """
    )

    result = pytester.runpytest("-p", "no:cacheprovider", *xdist_args)

    result.assert_outcomes(passed=5)
    assert "INTERNALERROR" not in result.stdout.str()
    items = runs.items(runs.latest())
    assert len(items) == 5
    assert items["test_opaque.py::test_metadata"]["trace"]["metadata"]["obj"] == REPR_BOOM
    generation = stored_observation(items["test_opaque.py::test_generate"], "llm.generate")
    assert generation["model_parameters"] == {"user": REPR_BOOM}
    assert stored_observation(items["test_opaque.py::test_span_output"], "s")["output"] == (
        REPR_BOOM
    )


# --- 3. names of the wrong type fail at the call ----------------------------------------------


_PATH: Any = Path("docs/faq.md")
_TOOL: Any = "tool"
_OPAQUE: Any = Opaque()
_observe: Any = observe  # called as type checkers would refuse


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: start_span(_PATH).__enter__(), "start_span: name must be a str; got PosixPath"),
        (lambda: observe(name=_PATH), "observe: name must be a str; got PosixPath"),
        (lambda: _observe("answer"), "observe: expected a function, or the span's name as name="),
        (lambda: start_span("s", as_type=_TOOL).__enter__(), "start_span: as_type must be one"),
        (lambda: observe(as_type=_TOOL), "observe: as_type must be one of 'span', 'generation'"),
        (lambda: propagate_attributes(tags=[_OPAQUE]).__enter__(), "tags must be a list of "),
        (
            lambda: propagate_attributes(user_id=_OPAQUE).__enter__(),
            f"user_id must be a string (or an int), not Opaque {REPR_BOOM}",
        ),
    ],
    ids=["start_span", "observe", "observe-positional", "as_type", "observe-as_type", "tags", "id"],
)
def test_a_name_of_the_wrong_type_is_a_type_error_at_the_call(
    root: Observation, call: Any, message: str
) -> None:
    # (before: stored as given, then "TypeError: Object of type PosixPath is not JSON
    # serializable" from the store ended the session; or a RuntimeError from repr)
    with pytest.raises(TypeError) as raised:
        call()
    assert str(raised.value).startswith(message)


def test_update_checks_the_generation_fields(root: Observation) -> None:
    # (before: a Path as model or name reached the store as itself)
    with start_span("g", as_type="generation") as span:
        with pytest.raises(TypeError, match=r"^update: name must be a str; got PosixPath$"):
            span.update(name=_PATH)
        with pytest.raises(TypeError, match=r"^update: model must be a str or None; got int$"):
            span.update(model=4)
        span.update(usage={"input": np.int64(3)}, cost=np.float64(0.5))

    assert type(span.usage["input"]) is int  # type: ignore[index]
    assert type(span.cost) is float


def test_generate_checks_its_name(root: Observation) -> None:
    from pytest_llmobs.llm import LLM
    from pytest_llmobs.providers import default_registry

    llm = LLM(default_registry().resolve("mock-llm-v1"))
    with pytest.raises(TypeError, match=r"^generate: name must be a str; got PosixPath$"):
        llm.generate("hi", name=Path("x"))  # type: ignore[arg-type]


def test_message_content_whose_str_fails_is_named() -> None:
    # (before: the object's own RuntimeError, naming no message)
    from pytest_llmobs.llm import to_messages

    with pytest.raises(TypeError) as raised:
        to_messages([{"role": "user", "content": "hi"}, {"role": "user", "content": Opaque()}])
    assert str(raised.value) == (
        "message 1: 'content' cannot be turned into text (Opaque: RuntimeError: repr boom)"
    )


def test_a_span_named_by_a_path_fails_only_its_test(
    pytester: pytest.Pytester, runs: Runs, xdist_args: tuple[str, ...]
) -> None:
    pytester.makepyfile(
        test_path_name="""
        import pathlib
        from pytest_llmobs import start_span

        def test_first(scorer):
            scorer.score("ok", True)

        def test_span_named_by_path():
            with start_span(pathlib.Path("docs/faq.md")):
                pass

        def test_last(scorer):
            scorer.score("ok", True)
        """
    )

    result = pytester.runpytest("-p", "no:cacheprovider", *xdist_args)

    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*TypeError: start_span: name must be a str; got PosixPath*"])
    assert "INTERNALERROR" not in result.stdout.str()
    assert len(runs.items(runs.latest())) == 3


def test_the_store_encodes_what_json_cannot_instead_of_raising() -> None:
    # (before: TypeError: Object of type PosixPath is not JSON serializable)
    text = stored_json({"name": Path("docs/faq.md"), "keys": {(1, 2): Opaque()}})

    assert json.loads(text) == {"name": "docs/faq.md", "keys": {"(1, 2)": REPR_BOOM}}


# --- 4. run_experiment: a task output whose repr fails ----------------------------------------


def test_an_experiment_output_whose_repr_fails_is_stored(tmp_path: Path) -> None:
    # (before: run_experiment raised RuntimeError and left an interrupted run without the item)
    def task(item: DatasetItem) -> object:
        return Opaque() if item.id == "q1" else item.input

    result = run_experiment(
        name="opaque",
        dataset=[{"id": f"q{i}", "input": "x"} for i in range(3)],
        task=task,
        store=tmp_path,
    )

    assert [i.id for i in result.items] == ["q0", "q1", "q2"]
    assert result.status == "passed"
    store = Store.in_directory(tmp_path)
    try:
        run = store.load_run(result.run_id)
    finally:
        store.close()
    assert run["status"] == "passed"
    outputs = {i["item_id"]: i["trace"]["observations"][0]["output"] for i in run["items"]}
    assert outputs == {"q0": "x", "q1": REPR_BOOM, "q2": "x"}


# --- 5. run_experiment: inline items a dataset file could not hold --------------------------


@pytest.mark.parametrize(
    ("items", "message"),
    [
        (
            [{"id": "ok", "input": "x"}, {"id": "a\ud800", "input": "x"}],
            "dataset 'inline': item 2: 'id' holds half of a UTF-16 surrogate pair in 'a\\ud800'",
        ),
        (
            [{"id": "a", "input": b"bytes"}],
            "dataset 'inline': item 1 (id 'a'): 'input' is bytes b'bytes'; expected what a "
            "dataset file holds: strings, numbers, booleans, None, lists and dicts with string "
            "keys",
        ),
        (
            [{"input": "x", "metadata": {"k": [1, {2: "v"}]}}],
            "dataset 'inline': item 1: 'metadata'['k'][1] has the key int 2; expected",
        ),
        (
            [DatasetItem("a", input={"when": Opaque()})],
            f"dataset 'inline': item 1 (id 'a'): 'input'['when'] is Opaque {REPR_BOOM}",
        ),
    ],
    ids=["surrogate-id", "bytes", "int-key", "object"],
)
def test_inline_items_json_cannot_hold_are_named_before_the_run(
    tmp_path: Path, items: list[Any], message: str
) -> None:
    # (before: UnicodeEncodeError from derived_id after an interrupted run was stored, or a
    # bare "Object of type bytes is not JSON serializable")
    with pytest.raises(DatasetError) as raised:
        run_experiment(name="odd", dataset=items, task=lambda item: "x", store=tmp_path)

    assert str(raised.value).startswith(message)
    assert not (tmp_path / "llmobs.db").exists() or not _run_ids(tmp_path)


def _run_ids(store_dir: Path) -> list[str]:
    store = Store.in_directory(store_dir)
    try:
        return [r["run_id"] for r in store.list_runs()]
    finally:
        store.close()


# --- 6. mapping keys that read alike ----------------------------------------------------------

ALIKE = {1: "int key", "1": "str key", None: "None key", "None": "str None"}


def test_keys_that_read_alike_are_all_kept() -> None:
    # (before: {'1': 'str key', 'None': 'str None'}: two values lost)
    value = jsonable({"out": ALIKE})["out"]

    assert value == {"1 (2)": "int key", "1": "str key", "null": "None key", "None": "str None"}


def test_governance_keeps_keys_that_read_alike_apart() -> None:
    # (before: 1 and "1" were both kept as keys, and JSON kept only the last)
    governed = Governance().value({"metadata": {1: "int key", "1": "str key"}})

    assert json.loads(stored_json(governed)) == {"metadata": {"1 (2)": "int key", "1": "str key"}}


def test_keys_that_read_alike_are_all_stored(pytester: pytest.Pytester, runs: Runs) -> None:
    pytester.makepyfile(
        test_keys="""
        from pytest_llmobs import start_span

        def test_keys():
            with start_span("keys") as span:
                span.update(output={1: "int key", "1": "str key", None: "None key",
                                    "None": "str None"})
        """
    )

    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)

    item = runs.items(runs.latest())["test_keys.py::test_keys"]
    assert sorted(stored_observation(item, "keys")["output"].values()) == sorted(ALIKE.values())


# --- 7. a surrogate escape in a prompt file ---------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("greet.json", '{"type": "text", "prompt": "Reply with \\ud83d only, {{name}}"}'),
        ("greet.yaml", 'type: text\nprompt: "Reply with \\ud83d only, {{name}}"\n'),
    ],
)
def test_a_surrogate_escape_in_a_prompt_file_names_the_file(
    tmp_path: Path, name: str, text: str
) -> None:
    # (before: a raw UnicodeEncodeError once the prompt was hashed, naming no file)
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")

    with pytest.raises(PromptError) as raised:
        parse_prompt_file(path)

    assert str(raised.value) == (
        f"{path}: prompt: a \\u escape gives half of a UTF-16 surrogate pair in "
        "'Reply with \\ud83d only, {{name}}'; write the character itself, or both halves of "
        "the pair"
    )


# --- 8. files that are not UTF-8 --------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            '{"input": "a"}\n{"input": "café"}\n'.encode("latin-1"),
            ":2: not valid UTF-8 (byte offset 29: invalid continuation byte); "
            "save the file as UTF-8",
        ),
        (
            '{"input": "a"}\n'.encode("utf-16"),
            ":1: not valid UTF-8 (byte offset 0: invalid start byte); it looks like UTF-16; "
            "save the file as UTF-8",
        ),
    ],
    ids=["latin-1", "utf-16"],
)
def test_a_file_that_is_not_utf8_names_the_line(tmp_path: Path, data: bytes, expected: str) -> None:
    # (before: "latin1.jsonl: not valid UTF-8 at byte offset 29", no line)
    dataset = tmp_path / "d.jsonl"
    dataset.write_bytes(data)
    prompt = tmp_path / "p.json"
    prompt.write_bytes(data.replace(b"input", b"prompt"))

    with pytest.raises(DatasetError) as from_dataset:
        load_dataset_file(dataset)
    with pytest.raises(PromptError) as from_prompt:
        parse_prompt_file(prompt)

    assert str(from_dataset.value) == f"{dataset}{expected}"
    assert str(from_prompt.value).startswith(f"{prompt}{expected.split(' (')[0]} (byte offset")


def test_a_missing_test_whose_name_the_terminal_cannot_write_is_listed_plain(
    pytester: pytest.Pytester,
) -> None:
    import os
    import subprocess
    import sys

    pytester.makepyfile(test_names="def test_a():\n    assert 0\n\ndef test_\u0436():\n    pass\n")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-x", "-p", "no:cacheprovider", "--color=yes"],
        cwd=pytester.path,
        env={**os.environ, "PYTHONIOENCODING": "ascii"},
        capture_output=True,
        encoding="ascii",
        check=False,
    )

    # (before: pytest's fallback escaped the whole line, its colours too:
    # "\x1b[33m  test_names.py::test_\u0436  (not run: ...)\x1b[0m")
    assert "\x1b[33m  test_names.py::test_\\u0436  (not run: stopping after 1 failures)" in (
        done.stdout
    )
    assert "\\x1b" not in done.stdout
