"""Evaluators refuse what would give a wrong verdict: empty needles and patterns, a list as one
needle, bad bounds and flags, reserved labels, shadowed, NaN-threshold or misnamed custom
evaluators; and treat bytes and parsed JSON the same way everywhere. (Also: a price file's JSON
error, said as the evaluators say theirs.)"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import pytest_llmobs
from pytest_llmobs.evaluators import EvalResult
from pytest_llmobs.evaluators.basic import char_length, exact_match
from pytest_llmobs.evaluators.custom import EvaluatorError, EvaluatorRegistry
from pytest_llmobs.evaluators.fuzzy import fuzzy
from pytest_llmobs.evaluators.groundedness import groundedness
from pytest_llmobs.evaluators.run_level import classification_metrics
from pytest_llmobs.evaluators.similarity import similarity
from pytest_llmobs.evaluators.structured import json_valid, label, matches_schema
from pytest_llmobs.evaluators.text import contains, contains_all, contains_any, regex, word_count
from pytest_llmobs.providers.pricing import PriceError, load_prices


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: contains_all("abc", [""]), "contains_all: a needle is empty"),
        (lambda: contains_any("abc", ["", "zzz"]), "contains_any: a needle is empty"),
        (lambda: contains_all("abc", ["a", None, ""]), "contains_all: a needle is empty"),
        (lambda: regex("abc", ""), "regex: pattern is empty"),
        (lambda: regex("abc", re.compile("")), "regex: pattern is empty"),
    ],
)
def test_an_empty_needle_or_pattern_is_an_error(
    call: Callable[[], EvalResult], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        call()


def test_a_list_given_to_contains_is_an_error_pointing_at_contains_all() -> None:
    with pytest.raises(TypeError) as caught:
        contains("x ['a', 'b']", ["a", "b"])
    assert str(caught.value) == (
        "contains: needle must be a string, got list ['a', 'b']; use contains_all() or"
        " contains_any() for several needles"
    )


@pytest.mark.parametrize("value", [{"a": 1}, ["a"], [1, 2], True, 0, 1.5, {"nested": [None]}])
def test_json_valid_passes_an_already_parsed_json_value(value: object) -> None:
    assert json_valid(value) == EvalResult("json_valid", True, True)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ({"a": float("nan")}, "not encodable as JSON: Out of range float values"),
        ([{1, 2}], "not encodable as JSON: Object of type set is not JSON serializable"),
    ],
)
def test_json_valid_fails_a_parsed_value_json_cannot_write(value: object, reason: str) -> None:
    result = json_valid(value)
    assert not result.passed
    assert result.reason.startswith(reason)


def test_json_valid_gives_a_verdict_on_an_integer_longer_than_pythons_limit() -> None:
    assert json_valid("1" + "0" * 5000).passed
    assert json_valid('{"n": 1' + "0" * 5000 + "}").passed
    assert not json_valid('{"n": 1' + "0" * 5000).passed


@pytest.mark.parametrize(
    ("output", "reason"),
    [
        ('{"a": "x\ny"}', "invalid JSON at line 1:9: Invalid control character in "),
        ('{"a": "xy', "invalid JSON at line 1:7: Unterminated string in "),
    ],
)
def test_a_json_error_names_its_place_once_without_a_dangling_at(output: str, reason: str) -> None:
    # (before: "line 1:9: Invalid control character at in ...": an "at" pointing nowhere)
    assert json_valid(output).reason == reason + repr(output)
    assert matches_schema(output, {"type": "object"}).reason.startswith(reason)


def test_a_price_file_json_error_has_no_dangling_at(tmp_path: Path) -> None:
    # (before: "(line 2: Invalid control character at)")
    path = tmp_path / "prices.json"
    path.write_text('{\n  "gpt": {"input": "1\t"}\n}', encoding="utf-8")
    with pytest.raises(PriceError) as error:
        load_prices(path)
    assert str(error.value) == (
        f"price file: {str(path)!r} is not valid JSON (line 2: Invalid control character)"
    )


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (lambda: exact_match(b"Paris", "Paris"), True),
        (lambda: exact_match("Paris", bytearray(b"Paris")), True),
        (lambda: contains(b"Rome", "b'"), False),
        (lambda: contains(b"Bogot\xc3\xa1", "bogotá"), True),
        (lambda: contains_all(b"a b", [b"a", "b"]), True),
        (lambda: contains_any(b"x", ["b'"]), False),
        (lambda: regex(b"abc", "^abc$"), True),
        (lambda: char_length(b"abc", max=3), True),
        (lambda: word_count(b"two words", min=2, max=2), True),
        (lambda: fuzzy(b"Paris", "Paris", threshold=1.0), True),
        (lambda: json_valid(b'{"bytes": true}'), True),
        (lambda: groundedness(b"Paris is in France.", [b"Paris is in France."]), True),
        (lambda: label(b"pos", "pos"), True),
    ],
)
def test_bytes_are_read_as_utf8_text_by_every_evaluator(
    call: Callable[[], EvalResult], expected: bool
) -> None:
    assert call().passed is expected


def test_bytes_that_are_not_utf8_are_an_error_naming_the_evaluator() -> None:
    with pytest.raises(
        ValueError, match=r"^exact_match: output is bytes but not UTF-8 text \(byte 0"
    ):
        exact_match(b"\xff", "x")


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (
            lambda: regex("ABC", re.compile("abc"), flags=re.I),
            ValueError,
            "regex: flags=re.IGNORECASE cannot be added to the compiled pattern 'abc'",
        ),
        (
            lambda: char_length("abc", min="2"),
            TypeError,
            "char_length: min must be an int or None, got str '2'",
        ),
        (
            lambda: word_count("abc", max=2.5),
            TypeError,
            "word_count: max must be an int or None, got float 2.5",
        ),
        (
            lambda: similarity("a", "a", threshold=2),
            ValueError,
            "similarity: threshold must be between 0 and 1, got 2",
        ),
        (
            lambda: similarity("a", "a", threshold="0.5"),
            TypeError,
            "similarity: threshold must be a number between 0 and 1, got str '0.5'",
        ),
        (
            lambda: groundedness("a", "a", threshold=float("nan")),
            ValueError,
            "groundedness: threshold must be between 0 and 1, got nan",
        ),
        (
            lambda: groundedness("a", "a", min_support=2),
            ValueError,
            "groundedness: min_support must be between 0 and 1, got 2",
        ),
        (
            lambda: groundedness("Paris.", 42),
            TypeError,
            "groundedness: context must be a string or a list of strings, got int 42",
        ),
    ],
)
def test_bad_arguments_are_errors_naming_the_evaluator(
    call: Callable[[], Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as caught:
        call()
    assert str(caught.value).startswith(message)


def test_groundedness_without_context_fails_saying_the_context_is_missing() -> None:
    for context in (None, ["Paris is in France.", None]):
        result = groundedness("Paris.", context)
        assert (result.value, result.passed) == (0.0, False)
        assert result.reason == (
            "context is None: the item has no context to check the answer against"
        )


def test_a_missing_expected_label_never_passes_and_the_none_label_is_reserved() -> None:
    result = label("positive", None)
    assert (result.passed, result.expected) == (False, "(none)")
    assert result.reason.startswith("expected is None")
    with pytest.raises(ValueError, match=r"predicted label '\(none\)' is reserved"):
        label("(none)", None)
    with pytest.raises(ValueError, match=r"expected label '\(none\)' is reserved"):
        label("x", " (none) ")


def test_confusion_cells_of_labels_holding_arrows_do_not_collide() -> None:
    expected, predicted = ["a", "a->b", "x\\", "x"], ["b->c", "c", "y", "\\y"]
    _, confusion = classification_metrics(expected, predicted)
    assert sum(confusion.values()) == len(expected)
    assert len(confusion) == len(set(expected) | set(predicted)) ** 2
    assert confusion["a->b-\\>c"] == confusion["a-\\>b->c"] == 1.0
    assert confusion["x\\\\->y"] == confusion["x->\\\\y"] == 1.0
    for key in confusion:  # the first "->" separates expected from predicted
        want = key.split("->", 1)[0]
        assert "->" not in want


def test_plain_labels_keep_the_readable_confusion_keys() -> None:
    _, confusion = classification_metrics(["pos", "neg"], ["neg", "neg"])
    assert confusion == {"neg->neg": 1.0, "neg->pos": 0.0, "pos->neg": 1.0, "pos->pos": 0.0}


@pytest.mark.parametrize("name", ["exact_match", "score", "record", "llm_judge", "label"])
def test_a_custom_evaluator_named_like_a_built_in_is_refused(name: str) -> None:
    registry = EvaluatorRegistry()
    with pytest.raises(pytest.UsageError) as caught:
        registry.add(lambda output: True, name=name)
    assert str(caught.value) == (
        f"evaluator {name!r} is named like the built-in scorer.{name}, which scorer.<name> would"
        " call instead; register it under another name (registry.add(..., name=...))"
    )
    assert registry.item == {}


@pytest.mark.parametrize(
    ("threshold", "error", "message"),
    [
        (float("nan"), ValueError, "threshold must be a finite number, got nan"),
        (float("inf"), ValueError, "threshold must be a finite number, got inf"),
        ("0.5", TypeError, "threshold must be a number or None, got str '0.5'"),
        (True, TypeError, "threshold must be a number or None, got bool True"),
    ],
)
def test_a_custom_evaluator_threshold_must_be_a_finite_number(
    threshold: Any, error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as caught:
        pytest_llmobs.evaluator(threshold=threshold)(lambda output: 0.9)
    assert str(caught.value) == f"evaluator '<lambda>': {message}"


@pytest.mark.parametrize(
    ("decorate", "message"),
    [
        (
            lambda: pytest_llmobs.evaluator(name=7)(lambda output: 0.9),
            "evaluator '<lambda>': name must be a string or None, got int 7",
        ),
        (
            lambda: pytest_llmobs.run_evaluator(name=b"rate")(lambda items: 0.9),
            "run evaluator '<lambda>': name must be a string or None, got bytes b'rate'",
        ),
        (
            lambda: pytest_llmobs.evaluator("politeness"),
            "@pytest_llmobs.evaluator decorates a function, got str 'politeness'; to name it, "
            "write @pytest_llmobs.evaluator(name='politeness')",
        ),
        (
            lambda: pytest_llmobs.run_evaluator(3),
            "@pytest_llmobs.run_evaluator decorates a function, got int 3",
        ),
    ],
)
def test_a_bad_custom_evaluator_name_or_function_is_refused_when_decorated(
    decorate: Callable[[], object], message: str
) -> None:
    with pytest.raises(TypeError) as caught:
        decorate()
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("register", "message"),
    [
        (
            lambda registry: registry.add(lambda output: True, name=7),
            "evaluator '<lambda>': name must be a string or None, got int 7",
        ),
        (
            lambda registry: registry.add_run(lambda items: 1.0, name=7),
            "run evaluator '<lambda>': name must be a string or None, got int 7",
        ),
        (
            lambda registry: registry.add("politeness"),
            "registry.add: expected an evaluator or a function, got str 'politeness'",
        ),
        (
            lambda registry: registry.add_run(None),
            "registry.add_run: expected a run evaluator or a function, got NoneType None",
        ),
    ],
)
def test_a_bad_registration_is_a_usage_error(
    register: Callable[[EvaluatorRegistry], None], message: str
) -> None:
    registry = EvaluatorRegistry()
    with pytest.raises(pytest.UsageError) as caught:
        register(registry)
    assert str(caught.value) == message
    assert (registry.item, registry.run) == ({}, {})


def _mentions(output: str, name: str) -> bool:
    return name in output


def _mentions_kw(output: str, *, name: str) -> bool:
    return name in output


def _mentions_positional(output: str, name: str, /) -> bool:
    return name in output


@pytest.mark.parametrize("function", [_mentions, _mentions_kw])
def test_an_evaluator_with_a_parameter_called_name_is_refused_when_registered(
    function: Callable[..., bool],
) -> None:
    registry = EvaluatorRegistry()
    with pytest.raises(pytest.UsageError) as caught:
        registry.add(pytest_llmobs.evaluator(name="mentions")(function))
    assert str(caught.value) == (
        "evaluator 'mentions' has a parameter 'name', but scorer.mentions(..., name=...) takes "
        "name= as the score's name, so the parameter could never be given by keyword; rename "
        "it, or make it positional-only ('name, /')"
    )
    assert registry.item == {}


def test_an_evaluator_with_a_positional_only_name_parameter_is_registered() -> None:
    registry = EvaluatorRegistry()
    registry.add(_mentions_positional, name="mentions")
    assert registry.item["mentions"].evaluate("Acme rocks", "Acme")


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        (
            "mean_q.ci_low",
            "it holds a '.', which a threshold reads as a field of aggregate "
            "'mean_q' (its 'ci_low')",
        ),
        ("", "it is blank"),
        ("  ", "it is blank"),
        ("two\nlines", "it holds a control or invisible character"),
        ("zero\u200bwidth", "it holds a control or invisible character"),
    ],
)
def test_a_run_evaluator_aggregate_name_a_threshold_could_not_read_is_an_error(
    name: str, problem: str
) -> None:
    gives = pytest_llmobs.run_evaluator(lambda items: {"fine": 0.5, name: 0.1})
    with pytest.raises(EvaluatorError) as caught:
        gives([{}])
    assert str(caught.value) == (
        f"run evaluator '<lambda>' gave the aggregate name {name!r}, but {problem}; "
        "expected a printable name without '.'"
    )
    assert pytest_llmobs.run_evaluator(lambda items: {"fine": 0.5, "q/a-rate": 1})([{}]) == {
        "fine": 0.5,
        "q/a-rate": 1.0,
    }


def test_a_run_evaluator_named_like_a_field_of_another_aggregate_is_refused() -> None:
    with pytest.raises(ValueError) as caught:
        pytest_llmobs.run_evaluator(name="mean_q.ci_low")(lambda items: 0.1)
    assert str(caught.value) == (
        "run evaluator 'mean_q.ci_low': it holds a '.', which a threshold reads as a field of "
        "aggregate 'mean_q' (its 'ci_low'); a run evaluator's name names the aggregate of the "
        "number it returns, so use another name"
    )
    with pytest.raises(pytest.UsageError, match=r"^run evaluator 'rate\.low': it holds a '\.'"):
        EvaluatorRegistry().add_run(lambda items: 0.1, name="rate.low")


def test_matches_schema_reads_bytes_as_text() -> None:
    assert matches_schema(b'{"a": 1}', {"type": "object"})
