"""Tests for the text evaluators: normalisation, exact match, substrings, regex, fuzzy, JSON."""

from __future__ import annotations

import dataclasses
import itertools
import re
import sys
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, RootModel

from pytest_llmobs.evaluators.base import EvalResult
from pytest_llmobs.evaluators.basic import char_length, exact_match, shorten
from pytest_llmobs.evaluators.fuzzy import fuzzy
from pytest_llmobs.evaluators.normalize import normalize
from pytest_llmobs.evaluators.similarity import similarity, similarity_many
from pytest_llmobs.evaluators.structured import LabelResult, json_valid, label, matches_schema
from pytest_llmobs.evaluators.text import contains, contains_all, contains_any, regex, word_count

UNIT = "Le café de Bogotá sert 東京 ramen 🍜, n'est-ce pas? "  # 11 words
MEGABYTE = UNIT * (1_000_000 // len(UNIT) + 1)
FLAGS = ("case", "whitespace", "punctuation", "unicode")
ALL_FLAG_COMBINATIONS = [
    dict(zip(FLAGS, combination, strict=True))
    for combination in itertools.product([False, True], repeat=len(FLAGS))
]
# Characters whose casefolding, compatibility mapping or composition interact.
TRICKY = list("İıßẞﬁ…،。、「」¿¡\u3000\u00a0\u0301\u0307\u0308한하ǅΐ𝐀ⅠＡé\u200d👍🏽\t\n.,'\"-")


@pytest.fixture
def fast() -> Any:
    """Asserts the wrapped call takes well under what a pathological algorithm would."""

    def run(call: Any, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        result = call(*args, **kwargs)
        assert time.perf_counter() - start < 5.0
        return result

    return run


# --- normalize ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "flags", "expected"),
    [
        ("Straße PARIS", {"case": True}, "strasse paris"),
        ("  a \t\n b\u3000\u00a0c  ", {"whitespace": True}, "a b c"),
        ("¡Hola, señor! «Qué?» 「東京」。", {"punctuation": True}, "Hola señor Qué 東京"),
        ("$5 + 3 = 8 ©", {"punctuation": True}, "$5 + 3 = 8 ©"),
        ("Bogotá, Zürich, Crème brûlée", {"unicode": True}, "Bogota, Zurich, Creme brulee"),
        ("ﬁne ①Ｐａｒｉｓ", {"unicode": True}, "fine 1Paris"),
        ("한국어 東京 🍜👍🏽", {"unicode": True}, "한국어 東京 🍜👍🏽"),
        ("  Bogotá,\tCOLOMBIA!! ", dict.fromkeys(FLAGS, True), "bogota colombia"),
        ("", dict.fromkeys(FLAGS, True), ""),
        (" Keep  AS is! ", {}, " Keep  AS is! "),
        (42, {"case": True}, "42"),
    ],
)
def test_normalize(text: object, flags: dict[str, bool], expected: str) -> None:
    assert normalize(text, **flags) == expected


@pytest.mark.parametrize("flags", ALL_FLAG_COMBINATIONS, ids=str)
def test_normalize_is_idempotent_on_tricky_characters(flags: dict[str, bool]) -> None:
    for char in TRICKY:
        for text in (char, f"a{char}b", f"{char}\u0301", f"ᄒ{char}ᅡ", char * 3):
            once = normalize(text, **flags)
            assert normalize(once, **flags) == once, (text, once)


@settings(max_examples=300)
@given(
    st.text() | st.lists(st.sampled_from(TRICKY) | st.characters(), max_size=20).map("".join),
    st.sampled_from(ALL_FLAG_COMBINATIONS),
)
def test_normalize_is_idempotent_and_never_raises(text: str, flags: dict[str, bool]) -> None:
    once = normalize(text, **flags)
    assert isinstance(once, str)
    assert normalize(once, **flags) == once


def test_normalize_a_megabyte(fast: Any) -> None:
    result = fast(normalize, MEGABYTE, **dict.fromkeys(FLAGS, True))
    assert result.startswith("le cafe de bogota sert 東京 ramen 🍜 nestce pas le cafe")


# --- exact_match ----------------------------------------------------------------------------------


def test_exact_match_keeps_its_defaults() -> None:
    assert exact_match(" Paris\n", "Paris")
    assert not exact_match(" Paris ", "Paris", strip=False)
    assert not exact_match("PARIS", "Paris")
    assert exact_match("PARIS", "paris", case_sensitive=False)
    assert exact_match(42, "42")
    assert exact_match("", "")


def test_exact_match_value_is_a_boolean() -> None:
    assert exact_match("a", "a").value is True
    assert exact_match("a", "b").value is False


@pytest.mark.parametrize(
    ("output", "expected", "options"),
    [
        ("The  capital\tis\nParis", "The capital is Paris", {"normalize_whitespace": True}),
        ("Paris!", "Paris.", {"ignore_punctuation": True}),
        ("Bogotá", "Bogota", {"unicode": True}),
        ("ＰＡＲＩＳ", "paris", {"unicode": True, "case_sensitive": False}),
        (
            "  It's BOGOTÁ,\n Colombia! ",
            "its bogota colombia",
            {
                "case_sensitive": False,
                "normalize_whitespace": True,
                "ignore_punctuation": True,
                "unicode": True,
            },
        ),
    ],
)
def test_exact_match_normalisations(output: str, expected: str, options: dict[str, bool]) -> None:
    assert exact_match(output, expected, **options)
    assert not exact_match(output, expected)


def test_exact_match_reason_shows_the_texts() -> None:
    failed = exact_match("Lyon", "Paris")
    assert failed.reason == "expected 'Paris', got 'Lyon'"
    assert repr(failed) == "<exact_match FAILED value=False: expected 'Paris', got 'Lyon'>"
    assert exact_match("x", "x").reason == ""


def test_exact_match_reason_shows_the_normalised_texts_when_they_differ() -> None:
    failed = exact_match("  Bogotá!", "BOGOTA?", case_sensitive=False, unicode=True)
    assert failed.reason == (
        "expected 'BOGOTA?', got '  Bogotá!'; normalised: expected 'bogota?', got 'bogota!'"
    )


def test_exact_match_reason_locates_a_difference_the_reprs_hide(fast: Any) -> None:
    tail_differs = MEGABYTE[:-1] + "X"
    failed = fast(exact_match, tail_differs, MEGABYTE)
    assert len(failed.reason) < 400
    assert f"; first difference at char {len(MEGABYTE) - 1}: expected " in failed.reason
    assert fast(exact_match, MEGABYTE, MEGABYTE, unicode=True, normalize_whitespace=True)


def test_exact_match_reason_shortens_long_values() -> None:
    failed = exact_match("y" * 500, "x" * 500)
    assert f"expected {shorten('x' * 500)}, got {shorten('y' * 500)}" in failed.reason
    assert shorten("x" * 500) == "'" + "x" * 75 + "...'"


CITY = {"city": "Paris", "country": "France"}


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        pytest.param({"country": "France", "city": "Paris"}, CITY, id="dicts-in-another-order"),
        pytest.param('{"country": "France", "city": "Paris"}', CITY, id="json-text-output"),
        pytest.param('```json\n{"country": "France", "city": "Paris"}\n```', CITY, id="fenced"),
        pytest.param(b'{"city": "Paris", "country": "France"}', CITY, id="json-bytes"),
        pytest.param(CITY, '{"country": "France", "city": "Paris"}', id="json-text-expected"),
        pytest.param({"a": [1, 2.0, None, True]}, {"a": [1.0, 2, None, True]}, id="numbers"),
        pytest.param((1, "x"), [1, "x"], id="tuple-as-array"),
        pytest.param({"b": {"c": [{"e": 1, "d": 2}]}}, {"b": {"c": [{"d": 2, "e": 1}]}}, id="deep"),
        pytest.param(4.0, 4, id="two-numbers"),
    ],
)
def test_exact_match_compares_structured_values_by_value(output: object, expected: object) -> None:
    assert exact_match(output, expected)
    assert exact_match(expected, output)


@pytest.mark.parametrize(
    ("output", "expected", "reason"),
    [
        pytest.param(
            {"country": "France", "city": "Lyon"},
            CITY,
            "expected {'city': 'Paris', 'country': 'France'}, got {'country': 'France', "
            "'city': 'Lyon'}; at $.city: expected 'Paris', got 'Lyon'",
            id="a-value",
        ),
        pytest.param(
            {"city": "Paris"},
            CITY,
            "expected {'city': 'Paris', 'country': 'France'}, got {'city': 'Paris'}; "
            "missing key 'country'",
            id="a-missing-key",
        ),
        pytest.param(
            {**CITY, "x": 1},
            CITY,
            "expected {'city': 'Paris', 'country': 'France'}, got {'city': 'Paris', "
            "'country': 'France', 'x': 1}; unexpected key 'x'",
            id="an-extra-key",
        ),
        pytest.param(
            [{"n": [1, True]}],
            [{"n": [1, 1]}],
            "expected [{'n': [1, 1]}], got [{'n': [1, True]}]; at $[0].n[1]: expected 1, got True",
            id="true-is-not-1",
        ),
        pytest.param(
            {"n": "4"},
            {"n": 4},
            "expected {'n': 4}, got {'n': '4'}; at $.n: expected 4, got '4'",
            id="text-is-not-a-number",
        ),
        pytest.param([1, 2, 3], [1, 2], "expected [1, 2], got [1, 2, 3]; expected 2 items, got 3"),
        pytest.param(
            "Paris",
            CITY,
            "expected {'city': 'Paris', 'country': 'France'}, got 'Paris': the output is not "
            "JSON (invalid JSON at line 1:1: Expecting value)",
            id="output-not-json",
        ),
        pytest.param(
            "{'city': 'Paris', 'country': 'France'}",  # a Python repr is not JSON
            CITY,
            "expected {'city': 'Paris', 'country': 'France'}, got \"{'city': 'Paris', "
            "'country': 'France'}\": the output is not JSON (invalid JSON at line 1:2: "
            "Expecting property name enclosed in double quotes)",
            id="python-repr",
        ),
        pytest.param(
            CITY,
            "Paris",
            "expected 'Paris', got {'city': 'Paris', 'country': 'France'}: the expected is not "
            "JSON (invalid JSON at line 1:1: Expecting value)",
            id="expected-not-json",
        ),
        pytest.param("[1]", {"a": 1}, "expected {'a': 1}, got '[1]'; expected an object, got [1]"),
        pytest.param(4, 5, "expected 5, got 4", id="two-numbers"),
    ],
)
def test_exact_match_says_where_structured_values_differ(
    output: object, expected: object, reason: str
) -> None:
    result = exact_match(output, expected)
    assert (result.value, result.passed, result.reason) == (False, False, reason)


def test_exact_match_options_apply_to_the_strings_in_a_structure_not_its_keys() -> None:
    assert exact_match({"city": " PARIS"}, {"city": "Paris"}, case_sensitive=False)
    assert not exact_match({"city": " PARIS"}, {"city": "Paris"})
    assert not exact_match({"city": " Paris"}, {"city": "Paris"}, strip=False)
    assert not exact_match({"City": "Paris"}, {"city": "Paris"}, case_sensitive=False)
    assert exact_match(
        ['"Bogotá!"'], ["bogota"], unicode=True, ignore_punctuation=True, case_sensitive=False
    )


def test_exact_match_keeps_comparing_text_and_scalars_as_text() -> None:
    assert exact_match(42, "42")
    assert exact_match(True, "True")
    assert not exact_match(True, 1)
    assert not exact_match("4.0", 4)
    assert not exact_match('{"a": 1, "b": 2}', '{"b": 2, "a": 1}')  # two texts: as text


def test_exact_match_of_a_structure_too_deep_to_compare_fails_saying_so() -> None:
    output: list[Any] = []
    expected: list[Any] = []
    for _ in range(sys.getrecursionlimit() + 10):
        output, expected = [output], [expected]
    result = exact_match(output, expected)
    assert (result.passed, result.reason) == (
        False,
        "output and expected are nested too deeply to compare",
    )


@settings(max_examples=200)
@given(st.text(), st.booleans(), st.booleans(), st.booleans(), st.booleans(), st.booleans())
def test_exact_match_is_reflexive(
    text: str, case: bool, strip: bool, whitespace: bool, punctuation: bool, unicode: bool
) -> None:
    assert exact_match(
        text,
        text,
        case_sensitive=case,
        strip=strip,
        normalize_whitespace=whitespace,
        ignore_punctuation=punctuation,
        unicode=unicode,
    )


def test_char_length_rejects_crossed_bounds() -> None:
    with pytest.raises(ValueError, match=r"^char_length: min=5 is greater than max=2$"):
        char_length("abc", min=5, max=2)


# --- contains, contains_all, contains_any ---------------------------------------------------------


def test_contains() -> None:
    assert contains("The capital is PARIS.", "paris").value is True
    failed = contains("The capital is PARIS.", "paris", case_sensitive=True)
    assert failed.value is False
    assert failed.reason == "'paris' not found in 'The capital is PARIS.'"
    assert contains("Lyon", "Paris").reason == "'Paris' not found (case-insensitive) in 'Lyon'"
    assert not contains("", "Paris")
    assert contains(12345, 234)


def test_contains_unicode() -> None:
    assert contains("Je vais à BOGOTÁ", "bogotá")
    assert not contains("Je vais à Bogota", "bogotá")
    assert contains("東京タワー 🗼", "🗼")
    assert contains("STRASSE", "straße")


def test_contains_rejects_an_empty_needle() -> None:
    with pytest.raises(ValueError, match=r"^contains: needle is empty; it would match every"):
        contains("anything", "")


def test_contains_a_megabyte(fast: Any) -> None:
    assert fast(contains, MEGABYTE + "needle", "NEEDLE")
    assert not fast(contains_all, MEGABYTE, ["bogotá", "東京", "absent"])


def test_contains_all() -> None:
    result = contains_all("Paris, Rome and Madrid", ["paris", "ROME", "Oslo", "Bern"])
    assert result.value == 0.5
    assert not result
    assert result.reason == (
        "missing 2 of 4 (case-insensitive): 'Oslo', 'Bern' in 'Paris, Rome and Madrid'"
    )
    assert contains_all("Paris, Rome", ("Paris", "Rome")).value == 1.0
    assert contains_all("Paris, Rome", iter(["Paris", "Rome"]))
    case = contains_all("Paris", ["paris"], case_sensitive=True)
    assert case.reason == "missing 1 of 1: 'paris' in 'Paris'"
    assert case == 0.0


def test_contains_all_shortens_a_long_list_of_missing_needles() -> None:
    result = contains_all("", [f"word{i}" for i in range(15)])
    assert result.reason.endswith("'word8', 'word9' (+5 more) in ''")


def test_contains_any() -> None:
    assert contains_any("It is Rome.", ["Paris", "rome"]).value is True
    failed = contains_any("It is Lyon.", ["Paris", "Rome"])
    assert failed.value is False
    assert failed.reason == "none of 'Paris', 'Rome' found (case-insensitive) in 'It is Lyon.'"
    assert not contains_any("It is rome.", ["Rome"], case_sensitive=True)


@pytest.mark.parametrize("evaluator", [contains_all, contains_any])
def test_needle_lists_are_checked(evaluator: Any) -> None:
    name = evaluator.__name__
    with pytest.raises(TypeError, match=rf"^{name}: needles must be an iterable of strings, not"):
        evaluator("Paris", "Paris")
    with pytest.raises(ValueError, match=rf"^{name}: needles is empty"):
        evaluator("Paris", [])


# --- regex ----------------------------------------------------------------------------------------


def test_regex() -> None:
    assert regex("Order #1234 shipped", r"#\d{4}").value is True
    assert not regex("Order #1234 shipped", r"#\d{4}", fullmatch=True)
    assert regex("Order #1234", r"order #\d+", flags=re.IGNORECASE, fullmatch=True)
    assert regex("Bogotá 東京", re.compile(r"\w+ \w+"), fullmatch=True)
    failed = regex("no digits", r"\d+")
    assert failed.value is False
    assert failed.reason == r"pattern '\\d+' did not match 'no digits'"
    assert regex("ab", "abc", fullmatch=True).reason == "pattern 'abc' did not fully match 'ab'"
    assert regex("", "^$")


def test_regex_rejects_an_invalid_pattern() -> None:
    with pytest.raises(ValueError, match=r"^regex: invalid pattern '\(unclosed': missing \)"):
        regex("text", "(unclosed")


def test_regex_on_a_megabyte(fast: Any) -> None:
    assert fast(regex, MEGABYTE, r"pas\? $")
    assert not fast(regex, MEGABYTE, "absent")


# --- word_count -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "count"),
    [
        ("", 0),
        ("   ", 0),
        ("Paris is the capital.", 4),
        ("Zürich, Bogotá et Crème brûlée", 5),
        ("don't stop", 3),
        ("東京都 に 行く", 3),
        ("🍜 👍🏽 !!!", 0),
        (12345, 1),
    ],
)
def test_word_count(text: object, count: int) -> None:
    result = word_count(text)
    assert result.value == count
    assert result


def test_word_count_bounds() -> None:
    assert word_count("one two three", min=3, max=3)
    too_few = word_count("one two", min=3)
    assert not too_few
    assert too_few.reason == "word count 2 outside [3, ]"
    assert word_count("one two three", max=2).reason == "word count 3 outside [, 2]"
    assert word_count("one two three") > 2


def test_word_count_rejects_crossed_bounds() -> None:
    with pytest.raises(ValueError, match=r"^word_count: min=5 is greater than max=3$"):
        word_count("text", min=5, max=3)


def test_word_count_a_megabyte(fast: Any) -> None:
    assert len(MEGABYTE) > 1_000_000
    assert fast(word_count, MEGABYTE).value == 11 * MEGABYTE.count(UNIT)
    assert fast(word_count, "word " * 200_000).value == 200_000


# --- fuzzy ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("output", "expected", "method", "value"),
    [
        ("Paris", "paris", "ratio", 1.0),
        ("Pairs", "Paris", "ratio", 0.8),
        ("The capital of France is Paris", "Paris", "partial_ratio", 1.0),
        ("Paris Rome Madrid", "Madrid Rome Paris", "token_sort_ratio", 1.0),
        ("Paris Paris Rome", "Rome Paris", "token_set_ratio", 1.0),
        ("東京タワー", "東京タワー", "ratio", 1.0),
        ("Bogotá", "Bogota", "ratio", pytest.approx(0.8333, abs=1e-4)),
    ],
)
def test_fuzzy_methods(output: str, expected: str, method: Any, value: float) -> None:
    result = fuzzy(output, expected, method=method)
    assert result.value == value
    assert isinstance(result.value, float)


def test_fuzzy_threshold_and_comparisons() -> None:
    result = fuzzy("Pairs", "Paris")
    assert result and result.passed
    assert result >= 0.8
    assert result == 0.8
    assert not result > 0.8
    assert not fuzzy("Pairs", "Paris", threshold=0.81)
    assert fuzzy("Paris", "Lyon", threshold=0.0)
    assert not fuzzy("PARIS", "paris", case_sensitive=True, threshold=1.0)


def test_fuzzy_reason() -> None:
    failed = fuzzy("Pairs", "Paris", threshold=0.9)
    assert failed.reason == "ratio similarity 0.8 < threshold 0.9: expected 'Paris', got 'Pairs'"
    assert repr(failed).startswith("<fuzzy FAILED value=0.8: ratio similarity 0.8 <")
    assert fuzzy("Paris", "Paris").reason == ""


@pytest.mark.parametrize(
    "method", ["ratio", "partial_ratio", "token_set_ratio", "token_sort_ratio"]
)
def test_fuzzy_empty_strings(method: Any) -> None:
    assert fuzzy("", "", method=method).value == 1.0
    assert fuzzy("Paris", "", method=method).value == 0.0
    assert fuzzy("", "Paris", method=method).value == 0.0


def test_fuzzy_token_methods_treat_blank_text_as_empty() -> None:
    assert fuzzy("  ", "\n", method="token_set_ratio").value == 1.0
    assert fuzzy("  ", "Paris", method="token_sort_ratio").value == 0.0


def test_fuzzy_rejects_an_unknown_method() -> None:
    message = (
        "fuzzy: 'levenshtein' is not a valid method. Valid methods: ratio, partial_ratio,"
        " token_set_ratio, token_sort_ratio"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        fuzzy("a", "b", method="levenshtein")  # type: ignore[arg-type]


@pytest.mark.parametrize("threshold", [-0.1, 1.5, 80, float("nan")])
def test_fuzzy_rejects_a_threshold_outside_0_1(threshold: float) -> None:
    with pytest.raises(ValueError, match=r"^fuzzy: threshold must be in \[0, 1\], got "):
        fuzzy("a", "b", threshold=threshold)


def test_fuzzy_rejects_a_threshold_that_is_no_number() -> None:
    with pytest.raises(TypeError, match=r"^fuzzy: threshold must be a number in \[0, 1\], got '"):
        fuzzy("a", "b", threshold="0.8")  # type: ignore[arg-type]


def test_fuzzy_a_megabyte_against_a_short_text(fast: Any) -> None:
    assert fast(fuzzy, MEGABYTE, "café de bogotá", method="partial_ratio")
    assert fast(fuzzy, MEGABYTE, "Bogotá", method="ratio").value < 0.01
    assert fast(fuzzy, MEGABYTE, "pas café", method="token_set_ratio").value == pytest.approx(2 / 3)
    assert fast(fuzzy, MEGABYTE, "pas café", method="token_sort_ratio").value < 0.01


@settings(max_examples=300)
@given(
    st.text(max_size=60),
    st.text(max_size=60),
    st.sampled_from(["ratio", "partial_ratio", "token_set_ratio", "token_sort_ratio"]),
    st.booleans(),
)
def test_fuzzy_value_is_within_0_1(a: str, b: str, method: Any, case: bool) -> None:
    value = fuzzy(a, b, method=method, case_sensitive=case).value
    assert isinstance(value, float)
    assert 0.0 <= value <= 1.0


@settings(max_examples=300)
@given(st.text(max_size=60), st.text(max_size=60), st.booleans())
def test_fuzzy_ratio_is_symmetric(a: str, b: str, case: bool) -> None:
    assert fuzzy(a, b, case_sensitive=case).value == fuzzy(b, a, case_sensitive=case).value


# --- json_valid -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "output",
    [
        '{"city": "Paris", "population": 2102650}',
        "[1, 2.5, null, true]",
        '"a string"',
        "  42\n",
        '{"ville": "Bogotá", "都市": "東京", "emoji": "🍜"}',
        '```json\n{"city": "Paris"}\n```',
        "\n```JSON\n[1, 2]\n```\n",
        '```\n{"city": "Paris"}\n```',
        b'{"bytes": true}',
        1.5,
        # JSON numbers have no length limit; Python's printing of them has
        pytest.param(10**5000, id="int-5001-digits"),
        pytest.param([{"n": -(10**5000)}], id="list-int-5001-digits"),
    ],
)
def test_json_valid(output: object) -> None:
    result = json_valid(output)
    assert result.value is True
    assert result.reason == ""


@pytest.mark.parametrize(
    ("output", "reason"),
    [
        ("", "invalid JSON at line 1:1: Expecting value in ''"),
        ("Sure!", "invalid JSON at line 1:1: Expecting value in 'Sure!'"),
        (
            '{\n  "city": "Paris",\n  "country": France\n}',
            "invalid JSON at line 3:14: Expecting value in",
        ),
        (
            '```json\n{"city": "Paris", country: "France"}\n```',
            "invalid JSON at line 2:19: Expecting property name enclosed in double quotes",
        ),
        ('{"a": 1} {"b": 2}', "invalid JSON at line 1:10: Extra data"),
        ("[NaN]", "invalid JSON: NaN is not allowed in JSON in '[NaN]'"),
        ("[1, -Infinity]", "invalid JSON: -Infinity is not allowed in JSON"),
        ("[" * 100_000 + "]" * 100_000, "invalid JSON: nested too deeply to parse in '[[[["),
        ('Here it is:\n```json\n{"a": 1}\n```', "invalid JSON at line 1:1: Expecting value"),
    ],
)
def test_json_invalid(output: object, reason: str) -> None:
    result = json_valid(output)
    assert result.value is False
    assert result.reason.startswith(reason)


def test_json_invalid_beside_a_long_integer_is_shown_shortly() -> None:
    result = json_valid([10**5000, float("nan")])
    assert result.value is False
    assert result.reason.startswith("not encodable as JSON: Out of range float values")
    assert len(result.reason) < 200


def test_json_valid_a_megabyte(fast: Any) -> None:
    document = '{"items": [' + ", ".join(['{"name": "café 東京"}'] * 50_000) + "]}"
    assert len(document) > 1_000_000
    assert fast(json_valid, document)
    failed = fast(json_valid, document[:-1])
    assert failed.reason.startswith("invalid JSON at line 1:")
    assert len(failed.reason) < 200


# --- matches_schema -------------------------------------------------------------------------------


class City(BaseModel):
    name: str
    population: int
    tags: list[str] = []


class Cities(RootModel[list[City]]):
    pass


CITY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "population": {"type": "integer", "minimum": 0},
    },
    "required": ["name", "population"],
}


@pytest.mark.parametrize(
    "output",
    [
        '{"name": "Bogotá", "population": 7968095}',
        '```json\n{"name": "東京", "population": 14000000, "tags": ["🍜"]}\n```',
        {"name": "Paris", "population": 2102650},
        b'{"name": "Paris", "population": "2102650"}',
    ],
)
def test_matches_a_pydantic_model(output: object) -> None:
    result = matches_schema(output, City)
    assert result.value is True
    assert result.reason == ""


def test_matches_a_root_model_with_a_list() -> None:
    assert matches_schema([{"name": "Paris", "population": 1}], Cities)
    assert matches_schema('[{"name": "Paris", "population": 1}]', Cities)
    failed = matches_schema([{"name": "Paris"}], Cities)
    assert failed.reason == (
        "1 validation error for Cities: $[0].population: Field required (got {'name': 'Paris'})"
    )


def test_pydantic_errors_are_listed_with_their_location() -> None:
    failed = matches_schema('{"name": 7, "population": "many", "tags": ["a", 2]}', City)
    assert failed.value is False
    assert failed.reason == (
        "3 validation errors for City: $.name: Input should be a valid string (got 7);"
        " $.population: Input should be a valid integer, unable to parse string as an integer"
        " (got 'many'); $.tags[1]: Input should be a valid string (got 2)"
    )


def test_only_the_first_errors_are_listed() -> None:
    failed = matches_schema([{}, {}], Cities)
    assert failed.reason.startswith("4 validation errors for Cities: $[0].name: Field required")
    assert failed.reason.endswith(" (+1 more)")


@pytest.mark.parametrize("schema", [City, CITY_SCHEMA], ids=["pydantic", "jsonschema"])
def test_invalid_json_fails_with_the_json_error(schema: Any) -> None:
    pytest.importorskip("jsonschema")
    failed = matches_schema('{"name": "Paris", population: 1}', schema)
    assert failed.value is False
    assert failed.reason == (
        "invalid JSON at line 1:19: Expecting property name enclosed in double quotes"
        """ in '{"name": "Paris", population: 1}'"""
    )


def test_matches_a_json_schema() -> None:
    pytest.importorskip("jsonschema")
    assert matches_schema('{"name": "Paris", "population": 2102650}', CITY_SCHEMA)
    assert matches_schema({"name": "Paris", "population": 1}, CITY_SCHEMA)
    failed = matches_schema('```json\n{"population": -5}\n```', CITY_SCHEMA)
    assert failed.value is False
    assert failed.reason == (
        "2 validation errors for JSON Schema: $.population: -5 is less than the minimum of 0;"
        " $: 'name' is a required property"
    )
    listed = {"type": "array", "items": CITY_SCHEMA}
    nested = matches_schema([{"name": "Paris", "population": "x" * 500}], listed)
    assert nested.reason.startswith("1 validation error for JSON Schema: $[0].population: 'xxx")
    assert len(nested.reason) < 200


def test_an_invalid_json_schema_is_an_error() -> None:
    pytest.importorskip("jsonschema")
    with pytest.raises(ValueError, match=r"^matches_schema: invalid JSON Schema at \$\.type: "):
        matches_schema("{}", {"type": "no-such-type"})


def test_a_json_schema_without_jsonschema_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "jsonschema", None)
    message = (
        "matches_schema with a JSON Schema dict needs jsonschema:"
        " pip install 'pytest-llmobs[schema]'"
    )
    with pytest.raises(ImportError, match=f"^{re.escape(message)}$"):
        matches_schema('{"name": "Paris"}', CITY_SCHEMA)
    with pytest.raises(ImportError, match=f"^{re.escape(message)}$"):
        matches_schema("not even JSON", CITY_SCHEMA)
    assert matches_schema('{"name": "Paris", "population": 1}', City)


def test_a_schema_of_the_wrong_kind_is_an_error() -> None:
    with pytest.raises(TypeError, match=r"^matches_schema: schema must be a pydantic BaseModel"):
        matches_schema("{}", str)  # type: ignore[arg-type]


# --- label ----------------------------------------------------------------------------------------


def test_label_passes_on_equal_stripped_labels() -> None:
    result = label(" positive\n", "positive ")
    assert isinstance(result, LabelResult) and isinstance(result, EvalResult)
    assert (result.name, result.value, result.passed, result.reason) == (
        "label",
        "positive",
        True,
        "",
    )
    assert result.expected == "positive"
    assert repr(result) == "<label passed value='positive'>"


def test_label_failure_carries_the_expected_label() -> None:
    result = label("Positive", "positive")
    assert not result
    assert (result.value, result.expected) == ("Positive", "positive")
    assert result.reason == "expected label 'positive', got 'Positive'"
    assert repr(result) == (
        "<label FAILED value='Positive': expected label 'positive', got 'Positive'>"
    )


def test_label_converts_non_strings() -> None:
    assert label(1, "1").value == "1"
    assert label("ネガティブ", "ネガティブ")
    assert label(True, "True")


def test_label_result_is_frozen_and_slotted() -> None:
    result = label("a", "b")
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.expected = "a"  # type: ignore[misc]
    assert not hasattr(result, "__dict__")
    assert dataclasses.replace(result, expected="a").expected == "a"
    assert [f.name for f in dataclasses.fields(result)] == [
        "name",
        "value",
        "passed",
        "reason",
        "expected",
    ]


NONE_CASES = [
    pytest.param(lambda: exact_match(None, "None"), False, id="exact_match"),
    pytest.param(lambda: exact_match(None, "none", case_sensitive=False), False, id="exact-fold"),
    pytest.param(lambda: contains(None, "none"), False, id="contains"),
    pytest.param(lambda: contains_all(None, ["no", "ne"]), 0.0, id="contains_all"),
    pytest.param(lambda: contains_any(None, ["None"]), False, id="contains_any"),
    pytest.param(lambda: regex(None, "None"), False, id="regex"),
    pytest.param(lambda: regex(None, ".*", fullmatch=True), False, id="regex-anything"),
    pytest.param(lambda: fuzzy(None, "None"), 0.0, id="fuzzy"),
    pytest.param(lambda: fuzzy(None, "none", method="partial_ratio"), 0.0, id="fuzzy-partial"),
    pytest.param(lambda: char_length(None, max=10), 0, id="char_length"),
    pytest.param(lambda: word_count(None, max=10), 0, id="word_count"),
    pytest.param(lambda: json_valid(None), False, id="json_valid"),
    pytest.param(lambda: matches_schema(None, City), False, id="matches_schema"),
]


@pytest.mark.parametrize(("evaluate", "value"), NONE_CASES)
def test_a_none_output_fails_every_text_evaluator_and_never_matches_the_text_none(
    evaluate: Any, value: object
) -> None:
    result = evaluate()

    assert not result
    assert (result.value, type(result.value)) == (value, type(value))
    assert result.reason == "output is None, not text"


def test_a_none_prediction_is_recorded_as_no_label_and_never_matches_the_label_none() -> None:
    result = label(None, "None")

    assert not result
    assert (result.value, result.expected) == ("(none)", "None")
    assert result.reason == "output is None, not text"


@pytest.mark.parametrize(
    ("evaluate", "value"),
    [
        pytest.param(lambda: exact_match("None", None), False, id="exact_match"),
        pytest.param(lambda: exact_match("none", None, case_sensitive=False), False, id="fold"),
        pytest.param(lambda: fuzzy("None", None), 0.0, id="fuzzy"),
        pytest.param(lambda: similarity("None", None), 0.0, id="similarity"),
        pytest.param(lambda: similarity_many([("Paris", None)])[0], 0.0, id="similarity_many"),
        pytest.param(lambda: contains("None", None), False, id="contains"),
        pytest.param(lambda: contains_all("None", None), 0.0, id="contains_all"),
        pytest.param(lambda: contains_all("None x", ["x", None]), 0.0, id="contains_all-one"),
        pytest.param(lambda: contains_any("None", None), False, id="contains_any"),
        pytest.param(lambda: contains_any("None", ["y", None]), False, id="contains_any-one"),
        pytest.param(lambda: regex("None", None), False, id="regex"),
    ],
)
def test_a_none_expected_fails_saying_there_is_nothing_to_compare_with(
    evaluate: Any, value: object
) -> None:
    result = evaluate()

    assert not result
    assert (result.value, type(result.value)) == (value, type(value))
    assert result.reason == "expected is None: the item has no expected output to compare with"


def test_a_none_reference_leaves_the_other_pairs_of_a_batch_alone() -> None:
    first, missing, last = similarity_many([("Paris", "Paris"), ("Paris", None), ("a", "a")])

    assert (first.value, first.passed, last.value, last.passed) == (1.0, True, 1.0, True)
    assert not missing and missing.value == 0.0


def test_a_none_expected_label_is_no_label_not_the_label_none() -> None:
    result = label("None", None)

    assert not result
    assert (result.value, result.expected) == ("None", "(none)")


def test_regex_names_a_pattern_that_is_not_text() -> None:
    with pytest.raises(
        TypeError, match=r"^regex: pattern must be a string or re.Pattern, got int 5$"
    ):
        regex("5", 5)  # type: ignore[arg-type]
