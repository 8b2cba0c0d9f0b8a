"""Evaluators as assertions in real suites (through ``pytester``): every built-in evaluator
records its score, custom item and run evaluators, thresholds on run-level aggregates and their
intervals, and the judge model."""

from __future__ import annotations

import glob
import inspect
import json
import math
import re
import statistics
from textwrap import dedent
from typing import TYPE_CHECKING, Any

import pytest
from rapidfuzz import fuzz
from sklearn.metrics import accuracy_score, precision_recall_fscore_support

from pytest_llmobs.aggregate_names import ALL_ITEMS

if TYPE_CHECKING:
    from conftest import Runs

USAGE_ERROR = pytest.ExitCode.USAGE_ERROR
TESTS_FAILED = pytest.ExitCode.TESTS_FAILED
Z = statistics.NormalDist().inv_cdf(0.975)


def exact(line: str) -> str:
    """An `fnmatch_lines` pattern matching ``line`` literally."""
    return glob.escape(line)


def wilson(successes: int, n: int) -> tuple[float, float]:
    """The Wilson score interval, from its textbook formula."""
    p = successes / n
    root = Z * math.sqrt(p * (1 - p) / n + Z**2 / (4 * n**2))
    centre, denominator = p + Z**2 / (2 * n), 1 + Z**2 / n
    return (centre - root) / denominator, (centre + root) / denominator


def jsonl(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(row) + "\n" for row in rows)


def generations(item: dict[str, Any]) -> list[dict[str, Any]]:
    return [o for o in item["trace"]["observations"] if o["type"] == "generation"]


def verdicts(run: dict[str, Any]) -> dict[str, tuple[bool, Any]]:
    return {t["expression"]: (t["passed"], t["observed"]) for t in run["thresholds"]}


# --- every built-in evaluator records its score -------------------------------------------------

EVALUATORS_SUITE = """\
    import pytest
    from pydantic import BaseModel

    class City(BaseModel):
        name: str
        population: int

    CITY_SCHEMA = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "population": {"type": "integer"}},
        "required": ["name", "population"],
    }
    CITY, PARTIAL_CITY = '{"name": "Paris", "population": 2100000}', '{"name": "Paris"}'
    CONTEXT = "Paris is the capital of France. It lies on the river Seine."
    RAMBLING = CONTEXT.split(".")[0] + ". Its mayor rides a purple dragon."

    CALLS = {
        "exact_match": lambda s, d, ok, k: s.exact_match(
            " PARIS " if ok else "Lyon", "paris", case_sensitive=False, **k
        ),
        "exact_match_normalised": lambda s, d, ok, k: s.exact_match(
            " Bogotá,\\t COLOMBIA! ",
            "bogota colombia" if ok else "bogota peru",
            case_sensitive=False,
            normalize_whitespace=True,
            ignore_punctuation=True,
            unicode=True,
            **k,
        ),
        "contains": lambda s, d, ok, k: s.contains(
            "The capital is Paris.", "paris" if ok else "lyon", **k
        ),
        "contains_all": lambda s, d, ok, k: s.contains_all(
            "Paris and Rome", ["paris", "rome"] + ([] if ok else ["oslo"]), **k
        ),
        "contains_any": lambda s, d, ok, k: s.contains_any(
            "Paris and Rome", ["oslo", "rome" if ok else "bern"], **k
        ),
        "regex": lambda s, d, ok, k: s.regex("Order #1234" if ok else "Order 1234", r"#\\d+", **k),
        "char_length": lambda s, d, ok, k: s.char_length("Paris", max=10 if ok else 3, **k),
        "word_count": lambda s, d, ok, k: s.word_count("Paris is lovely", min=1 if ok else 4, **k),
        "fuzzy": lambda s, d, ok, k: s.fuzzy("pariss" if ok else "lyon", "paris", **k),
        "similarity": lambda s, d, ok, k: s.similarity(
            "the capital of france" if ok else "paris", "the capital of france" if ok else "tokyo",
            **k,
        ),
        "similarity_corpus": lambda s, d, ok, k: s.similarity(
            "the capital of france" if ok else "paris",
            "the capital of france" if ok else "tokyo",
            corpus=d("capitals"),
            **k,
        ),
        "groundedness": lambda s, d, ok, k: s.groundedness(
            CONTEXT.split(".")[0] + "." if ok else RAMBLING, CONTEXT, **k
        ),
        "json_valid": lambda s, d, ok, k: s.json_valid(CITY if ok else CITY[:-1], **k),
        "matches_schema_model": lambda s, d, ok, k: s.matches_schema(
            CITY if ok else PARTIAL_CITY, City, **k
        ),
        "matches_schema_dict": lambda s, d, ok, k: s.matches_schema(
            CITY if ok else PARTIAL_CITY, CITY_SCHEMA, **k
        ),
        "label": lambda s, d, ok, k: s.label("positive" if ok else "negative", "positive", **k),
        "llm_judge": lambda s, d, ok, k: s.llm_judge(
            "judge/correctness",
            "The capital of France is Paris." if ok else "Lyon",
            input="What is the capital of France?",
            reference="Paris",
            **k,
        ),
    }

    @pytest.mark.parametrize("variant", ["holds", "fails", "named"])
    @pytest.mark.parametrize("evaluator", list(CALLS))
    def test_evaluator(scorer, dataset, evaluator, variant):
        named = {"name": "renamed_" + evaluator} if variant == "named" else {}
        assert CALLS[evaluator](scorer, dataset, variant != "fails", named)
    """

WORDS = len(re.findall(r"\w+", "Paris is lovely"))

# evaluator id -> (score name, data type, value when it holds, value when it fails)
EXPECTED_SCORES: dict[str, tuple[str, str, Any, Any]] = {
    "exact_match": ("exact_match", "BOOLEAN", True, False),
    "exact_match_normalised": ("exact_match", "BOOLEAN", True, False),
    "contains": ("contains", "BOOLEAN", True, False),
    "contains_all": ("contains_all", "NUMERIC", 2 / 2, 2 / 3),
    "contains_any": ("contains_any", "BOOLEAN", True, False),
    "regex": ("regex", "BOOLEAN", True, False),
    "char_length": ("char_length", "NUMERIC", len("Paris"), len("Paris")),
    "word_count": ("word_count", "NUMERIC", WORDS, WORDS),
    "fuzzy": (
        "fuzzy",
        "NUMERIC",
        fuzz.ratio("pariss", "paris") / 100,
        fuzz.ratio("lyon", "paris") / 100,
    ),
    "similarity": ("similarity", "NUMERIC", 1.0, 0.0),  # same text; no word in common
    "similarity_corpus": ("similarity", "NUMERIC", 1.0, 0.0),
    "groundedness": ("groundedness", "NUMERIC", 1 / 1, 1 / 2),  # sentences the context supports
    "json_valid": ("json_valid", "BOOLEAN", True, False),
    "matches_schema_model": ("matches_schema", "BOOLEAN", True, False),
    "matches_schema_dict": ("matches_schema", "BOOLEAN", True, False),
    "label": ("label", "CATEGORICAL", "positive", "negative"),
    "llm_judge": ("judge_correctness", "NUMERIC", 1.0, 0.0),  # share of reference words said
}


def test_every_evaluator_records_its_score_with_its_type_whether_or_not_it_holds(
    pytester: pytest.Pytester,
    runs: Runs,
    capitals: list[dict[str, Any]],
    xdist_args: tuple[str, ...],
) -> None:
    pytester.makepyfile(test_evals=dedent(EVALUATORS_SUITE))

    result = pytester.runpytest(*xdist_args)

    result.assert_outcomes(passed=2 * len(EXPECTED_SCORES), failed=len(EXPECTED_SCORES))
    stored = runs.items(runs.latest())
    assert len(stored) == 3 * len(EXPECTED_SCORES)
    for evaluator, (name, data_type, holding, failing) in EXPECTED_SCORES.items():
        for variant in ("holds", "fails", "named"):
            item = stored[f"test_evals.py::test_evaluator[{evaluator}-{variant}]"]
            where = (evaluator, variant)
            assert item["outcome"] == ("failed" if variant == "fails" else "passed"), where
            (score,) = item["trace"]["scores"]
            expected_name = f"renamed_{evaluator}" if variant == "named" else name
            assert (score["name"], score["data_type"]) == (expected_name, data_type), where
            assert score["source"] == name, where
            wanted = failing if variant == "fails" else holding
            if data_type == "NUMERIC":
                assert score["value"] == pytest.approx(wanted, abs=1e-9), where
            else:
                assert score["value"] == wanted, where
            if variant == "fails":
                assert score["comment"], where  # the reason it failed
            if evaluator == "label":
                assert score["metadata"] == {"label_expected": "positive"}


def test_a_failing_evaluator_assertion_explains_itself(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_fuzzy=dedent(
            """\
            def test_answer(scorer):
                answer = "Parma"
                assert scorer.fuzzy(answer, "Paris") >= 0.9
            """
        )
    )

    result = pytester.runpytest()

    result.assert_outcomes(failed=1)
    value = round(fuzz.ratio("parma", "paris") / 100, 4)
    reason = f"ratio similarity {value} < threshold 0.8: expected 'Paris', got 'Parma'"
    shown = f"<fuzzy FAILED value={value}: {reason}>"
    result.stdout.fnmatch_lines(
        [
            exact(f"E       AssertionError: assert {shown} >= 0.9"),
            exact(f"E        +  where {shown} = fuzzy('Parma', 'Paris')"),
        ]
    )


# --- custom item and run evaluators -------------------------------------------------------------

CUSTOM_CONFTEST = """\
    import json
    import numpy
    import pytest_llmobs

    @pytest_llmobs.evaluator(threshold=0.5)
    def politeness(output):
        return 1.0 if "please" in output.lower() else 0.0

    @pytest_llmobs.evaluator
    def shouting(output):
        return output.isupper()

    @pytest_llmobs.run_evaluator
    def answer_length(items):
        answers = [
            o["output"] for i in items for o in i["trace"]["observations"]
            if o["type"] == "generation"
        ]
        mean = sum(map(len, answers)) / len(answers)
        return {"mean_answer_chars": mean, "answers": numpy.int64(len(answers))}

    @pytest_llmobs.run_evaluator
    def one_word_rate(items):
        answers = [
            o["output"] for i in items for o in i["trace"]["observations"]
            if o["type"] == "generation"
        ]
        return sum(len(a.split()) == 1 for a in answers) / len(answers)

    def pytest_llmobs_register_evaluators(registry, config):
        registry.add(politeness)
        registry.add(politeness, name="courtesy")
        registry.add(shouting)
        registry.add_run(answer_length)
        registry.add_run(one_word_rate)

    def pytest_llmobs_run_finished(result, config):
        with open("finished.jsonl", "a", encoding="utf-8") as out:
            out.write(json.dumps({
                "run_id": result.run_id,
                "status": result.status,
                "pass_rate": result.aggregates["*"]["pass_rate"].value,
                "mean_answer_chars": result.aggregates["capitals"]["mean_answer_chars"].value,
            }) + "\\n")
    """

CUSTOM_SUITE = """\
    import pytest
    from conftest import politeness, shouting

    @pytest.mark.llm_dataset("capitals")
    def test_capital(item, llm):
        assert llm.generate(item.input).text == item.expected_output

    def test_plain(llm):
        llm.generate("Describe the weather in spring.")

    def test_through_the_scorer(scorer):
        assert scorer.politeness("Please hold the line.")

    def test_through_the_scorer_fails(scorer):
        assert scorer.politeness("Hold the line.")

    def test_through_the_scorer_renamed(scorer):
        assert scorer.politeness("Please wait.", name="manners")

    def test_registered_under_another_name(scorer):
        assert scorer.courtesy("Please.")

    def test_called_directly():
        assert politeness("please") and shouting("STOP")

    def test_unknown_evaluator(scorer):
        scorer.politenes("Please.")
    """


def test_custom_evaluators_run_through_the_scorer_and_directly(
    pytester: pytest.Pytester,
    runs: Runs,
    capitals: list[dict[str, Any]],
    xdist_args: tuple[str, ...],
) -> None:
    pytester.makeconftest(dedent(CUSTOM_CONFTEST))
    pytester.makepyfile(test_custom=dedent(CUSTOM_SUITE))

    result = pytester.runpytest(*xdist_args)

    result.assert_outcomes(passed=len(capitals) + 5, failed=2)
    result.stdout.fnmatch_lines_random(  # xdist reports failures in the order they happen
        [
            "E       AssertionError: assert <politeness FAILED value=0.0: politeness 0.000 < 0.5>",
            "E        +  where <politeness FAILED *> = <function Scorer.politeness at *>(*)",
            "E   *AttributeError: scorer has no evaluator 'politenes'; "
            "registered evaluators: courtesy, politeness, shouting",
        ]
    )
    stored = runs.items(runs.latest())

    def scores(test: str) -> list[tuple[str, Any, str, str | None]]:
        trace = stored[f"test_custom.py::{test}"]["trace"]
        return [(s["name"], s["value"], s["data_type"], s["source"]) for s in trace["scores"]]

    assert scores("test_through_the_scorer") == [("politeness", 1.0, "NUMERIC", "politeness")]
    assert scores("test_through_the_scorer_fails") == [("politeness", 0.0, "NUMERIC", "politeness")]
    assert scores("test_through_the_scorer_renamed") == [("manners", 1.0, "NUMERIC", "politeness")]
    assert scores("test_registered_under_another_name") == [
        ("courtesy", 1.0, "NUMERIC", "courtesy")
    ]
    assert scores("test_called_directly") == [
        ("politeness", 1.0, "NUMERIC", "politeness"),
        ("shouting", True, "BOOLEAN", "shouting"),
    ]
    assert scores("test_unknown_evaluator") == []


def test_run_evaluators_add_aggregates_that_thresholds_name_and_the_hook_sees_them(
    pytester: pytest.Pytester,
    runs: Runs,
    capitals: list[dict[str, Any]],
    xdist_args: tuple[str, ...],
) -> None:
    pytester.makeconftest(dedent(CUSTOM_CONFTEST))
    pytester.makepyfile(test_custom=dedent(CUSTOM_SUITE))
    answers = [c["expected_output"] for c in capitals]  # mock-llm-v1 answers capitals exactly
    mean_chars = statistics.fmean(map(len, answers))

    result = pytester.runpytest(
        "-k",
        "capital or plain",
        f"--llm-threshold=capitals: mean_answer_chars <= {mean_chars}",
        f"--llm-threshold=capitals: answers == {len(answers)}",
        "--llm-threshold=capitals: one_word_rate >= 1",
        "--llm-threshold=one_word_rate >= 1",  # the plain test's canned answer is longer
        *xdist_args,
    )

    result.assert_outcomes(passed=len(capitals) + 1)
    assert result.ret == TESTS_FAILED
    run = runs.latest()
    capitals_group = runs.aggregates(run, "capitals")
    assert capitals_group["mean_answer_chars"]["value"] == pytest.approx(mean_chars)
    assert capitals_group["answers"] == {"name": "answers", "value": 4.0, "n": len(capitals)}
    assert capitals_group["one_word_rate"]["value"] == 1.0
    (plain,) = [i for i in run["items"] if i["node_id"] == "test_custom.py::test_plain"]
    (canned,) = generations(plain)
    everything = [*answers, canned["output"]]
    whole = runs.aggregates(run, ALL_ITEMS)
    assert whole["mean_answer_chars"]["value"] == pytest.approx(
        statistics.fmean(map(len, everything))
    )
    assert whole["one_word_rate"]["value"] == pytest.approx(len(answers) / len(everything))
    assert whole["answers"]["n"] == len(capitals) + 1
    assert verdicts(run) == {
        f"capitals: mean_answer_chars <= {mean_chars}": (True, pytest.approx(mean_chars)),
        f"capitals: answers == {len(answers)}": (True, 4.0),
        "capitals: one_word_rate >= 1": (True, 1.0),
        "one_word_rate >= 1": (False, pytest.approx(len(answers) / len(everything))),
    }
    # shown apart from the scores: they were in the export and the report only
    result.stdout.fnmatch_lines(
        [
            "dataset 'capitals'*",
            "  mean_answer_chars  * n=4  (run evaluator)",
            "  answers            4  n=4  (run evaluator)",
            "  one_word_rate      1  n=4  (run evaluator)",
            "all tests*",
            "  one_word_rate      0.800  n=5  (run evaluator)",
        ]
    )
    assert run["run_evaluator_aggregates"]["capitals"] == [
        "mean_answer_chars",
        "answers",
        "one_word_rate",
    ]
    finished = (pytester.path / "finished.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in finished] == [  # called once, on the controller
        {
            "run_id": run["id"],
            "status": "failed",
            "pass_rate": 1.0,
            "mean_answer_chars": pytest.approx(mean_chars),
        }
    ]


def test_a_run_evaluator_that_raises_fails_the_session_naming_it_and_the_group(
    pytester: pytest.Pytester, runs: Runs, capitals: list[dict[str, Any]]
) -> None:
    pytester.makeconftest(
        dedent(
            """\
            import pytest_llmobs

            @pytest_llmobs.run_evaluator
            def refusal_rate(items):
                raise KeyError("refused")

            @pytest_llmobs.run_evaluator
            def item_count(items):
                return len(items)

            def pytest_llmobs_register_evaluators(registry, config):
                registry.add_run(refusal_rate)
                registry.add_run(item_count)
            """
        )
    )
    pytester.makepyfile(
        test_capitals=dedent(
            """\
            import pytest

            @pytest.mark.llm_dataset("capitals")
            def test_capital(item, llm):
                llm.generate(item.input)
            """
        )
    )

    result = pytester.runpytest()

    result.assert_outcomes(passed=len(capitals))
    assert result.ret == TESTS_FAILED
    errors = [
        "run evaluator 'refusal_rate' failed on the run: KeyError: 'refused'",
        "run evaluator 'refusal_rate' failed on dataset 'capitals': KeyError: 'refused'",
    ]
    result.stdout.fnmatch_lines([exact(f"  ERROR {line}") for line in errors])
    run = runs.latest()
    assert run["status"] == "failed"
    assert run["errors"] == errors
    assert runs.aggregates(run, "capitals")["item_count"]["value"] == len(capitals)  # still added
    assert "refusal_rate" not in runs.aggregates(run, "capitals")


def test_run_evaluator_aggregate_names_a_threshold_would_misread_fail_the_session(
    pytester: pytest.Pytester, runs: Runs
) -> None:
    pytester.makeconftest(
        dedent(
            """\
            import pytest_llmobs

            @pytest_llmobs.run_evaluator
            def extra(items):
                return {"mean_q.ci_low": 0.1, "spread": 0.2}

            @pytest_llmobs.run_evaluator
            def blank(items):
                return {"": 0.2, "two\\nlines": 0.3}

            def pytest_llmobs_register_evaluators(registry, config):
                registry.add_run(extra)
                registry.add_run(blank)
            """
        )
    )
    pytester.makepyfile(
        test_q=dedent(
            """\
            import pytest

            @pytest.mark.parametrize("v", [0.7, 0.9])
            def test_q(scorer, v):
                scorer.score("q", v)
            """
        )
    )

    result = pytester.runpytest("--llm-threshold", "mean_q.ci_low >= 0.5")

    result.assert_outcomes(passed=2)
    assert result.ret == TESTS_FAILED
    run = runs.latest()
    assert run["errors"] == [
        "run evaluator 'extra' failed on the run: EvaluatorError: run evaluator 'extra' gave the "
        "aggregate name 'mean_q.ci_low', but it holds a '.', which a threshold reads as a field "
        "of aggregate 'mean_q' (its 'ci_low'); expected a printable name without '.'",
        "run evaluator 'blank' failed on the run: EvaluatorError: run evaluator 'blank' gave the "
        "aggregate name '', but it is blank; expected a printable name without '.'",
    ]
    aggregates = runs.aggregates(run, ALL_ITEMS)
    assert not {"mean_q.ci_low", "", "two\nlines", "spread"} & set(aggregates)
    assert run["thresholds"][0]["observed"] == aggregates["mean_q"]["extra"]["ci_low"]


@pytest.mark.parametrize(
    ("registration", "error"),
    [
        pytest.param(
            "registry.add(pol, name=3)",
            "evaluator 'pol': name must be a string or None, got int 3",
            id="registered-under-a-number",
        ),
        pytest.param(
            'registry.add("politeness")',
            "registry.add: expected an evaluator or a function, got str 'politeness'",
            id="not-a-function",
        ),
        pytest.param(
            "registry.add(pol, name='exact_match')",
            "evaluator 'exact_match' is named like the built-in scorer.exact_match, which "
            "scorer.<name> would call instead; register it under another name "
            "(registry.add(..., name=...))",
            id="built-in-name",
        ),
        pytest.param(
            "registry.add(lambda output, name: name in output, name='mentions')",
            "evaluator 'mentions' has a parameter 'name', but scorer.mentions(..., name=...) "
            "takes name= as the score's name, so the parameter could never be given by keyword; "
            "rename it, or make it positional-only ('name, /')",
            id="a-parameter-called-name",
        ),
        pytest.param(
            "registry.add_run(lambda items: 0.5, name='mean_q.ci_low')",
            "run evaluator 'mean_q.ci_low': it holds a '.', which a threshold reads as a field "
            "of aggregate 'mean_q' (its 'ci_low'); a run evaluator's name names the aggregate of "
            "the number it returns, so use another name",
            id="a-run-evaluator-named-like-a-field",
        ),
    ],
)
def test_a_bad_registration_in_a_conftest_is_a_one_line_usage_error(
    pytester: pytest.Pytester, registration: str, error: str
) -> None:
    pytester.makeconftest(
        dedent(
            f"""\
            import pytest_llmobs

            @pytest_llmobs.evaluator
            def pol(output):
                return 1.0

            def pytest_llmobs_register_evaluators(registry, config):
                {registration}
            """
        )
    )
    pytester.makepyfile(test_polite='def test_polite(scorer):\n    scorer.pol("Please.")\n')

    result = pytester.runpytest()

    assert result.ret == USAGE_ERROR
    assert [line for line in result.stderr.lines if line.strip()] == [f"ERROR: {error}"]
    assert "Traceback" not in result.stdout.str()


# --- thresholds on run-level aggregates ---------------------------------------------------------


def classify(text: str) -> str:
    """The toy sentiment classifier the suite below uses (its source is copied into it)."""
    if "good" in text:
        return "positive"
    return "neutral" if "fine" in text else "negative"


SENTIMENT = [
    {"id": "s1", "input": "good food, good service", "expected_output": "positive"},
    {"id": "s2", "input": "good grief, what a mess", "expected_output": "negative"},
    {"id": "s3", "input": "it was fine", "expected_output": "neutral"},
    {"id": "s4", "input": "terrible and slow", "expected_output": "negative"},
    {"id": "s5", "input": "really good", "expected_output": "positive"},
    {"id": "s6", "input": "not good at all", "expected_output": "negative"},
    {"id": "s7", "input": "fine, I guess", "expected_output": "positive"},
]

LABEL_SUITE = """\
    import pytest

    {classify}

    @pytest.mark.llm_dataset("sentiment")
    def test_sentiment(item, scorer):
        scorer.label(classify(item.input), item.expected_output)
    """


def test_thresholds_on_classification_metrics(
    pytester: pytest.Pytester, runs: Runs, xdist_args: tuple[str, ...]
) -> None:
    pytester.makefile(".jsonl", **{"datasets/sentiment": jsonl(SENTIMENT)})
    pytester.makepyfile(
        test_labels=dedent(LABEL_SUITE).format(classify=inspect.getsource(classify))
    )
    expected = [row["expected_output"] for row in SENTIMENT]
    predicted = [classify(row["input"]) for row in SENTIMENT]
    labels = sorted(set(expected) | set(predicted))
    accuracy = accuracy_score(expected, predicted)
    f1 = precision_recall_fscore_support(
        expected, predicted, labels=labels, average="macro", zero_division=0
    )[2]
    thresholds = {
        f"sentiment: f1_macro >= {f1 - 0.001:.4f}": True,
        f"accuracy > {accuracy - 0.001:.4f}": True,
        f"sentiment: accuracy >= {accuracy + 0.001:.4f}": False,
        f"confusion == {len(SENTIMENT)}": True,
    }

    result = pytester.runpytest(*[f"--llm-threshold={t}" for t in thresholds], *xdist_args)

    result.assert_outcomes(passed=len(SENTIMENT))
    assert result.ret == TESTS_FAILED
    result.stdout.fnmatch_lines([f"*sentiment: accuracy >= {accuracy + 0.001:.4f}  observed *"])
    run = runs.latest()
    assert {e: passed for e, (passed, _) in verdicts(run).items()} == thresholds
    observed = {e: value for e, (_, value) in verdicts(run).items()}
    assert observed[f"sentiment: f1_macro >= {f1 - 0.001:.4f}"] == pytest.approx(f1)
    assert observed[f"accuracy > {accuracy - 0.001:.4f}"] == pytest.approx(accuracy)
    confusion = runs.aggregates(run, "sentiment")["confusion"]["extra"]
    pairs = list(zip(expected, predicted, strict=True))
    assert confusion == {f"{a}->{b}": float(pairs.count((a, b))) for a in labels for b in labels}


def test_a_confusion_cell_can_be_named_by_a_threshold(
    pytester: pytest.Pytester, runs: Runs
) -> None:
    # Confusion cells are fields named "<expected>-><predicted>"; the grammar reads the '->'
    # inside a field name, so a gate can bound one kind of mistake.
    pairs = [("pos", "pos"), ("pos", "neg"), ("neg", "neg"), ("neg", "neg")]
    items = [{"id": f"s{i}", "input": p, "expected_output": e} for i, (e, p) in enumerate(pairs)]
    pytester.makefile(".jsonl", **{"datasets/sentiment": jsonl(items)})
    pytester.makepyfile(
        test_sentiment=dedent(
            """\
            import pytest

            @pytest.mark.llm_dataset("sentiment")
            def test_label(item, scorer):
                scorer.label(item.input, item.expected_output)
            """
        )
    )
    mistakes = pairs.count(("pos", "neg"))

    passing = pytester.runpytest(f"--llm-threshold=sentiment: confusion.pos->neg <= {mistakes}")
    failing = pytester.runpytest(
        f"--llm-threshold=sentiment: confusion.pos->neg < {mistakes}",
        "--llm-threshold=sentiment: confusion.neg->neg == 2",
    )

    assert passing.ret == pytest.ExitCode.OK
    assert failing.ret == pytest.ExitCode.TESTS_FAILED
    verdicts = {t["expression"]: t["passed"] for t in runs.latest()["thresholds"]}
    assert verdicts == {
        f"sentiment: confusion.pos->neg < {mistakes}": False,
        "sentiment: confusion.neg->neg == 2": True,
    }


CHECKS: list[dict[str, Any]] = [
    {"id": f"c{i}", "input": f"q{i}", "metadata": {"ok": i % 10 < 7}} for i in range(20)
]


def test_thresholds_on_interval_fields(pytester: pytest.Pytester, runs: Runs) -> None:
    pytester.makefile(".jsonl", **{"datasets/checks": jsonl(CHECKS)})
    pytester.makepyfile(
        test_checks=dedent(
            """\
            import pytest

            @pytest.mark.llm_dataset("checks")
            def test_check(item, scorer):
                scorer.score("accuracy", item.metadata["ok"])
                assert item.metadata["ok"]
            """
        )
    )
    flags = [row["metadata"]["ok"] for row in CHECKS]
    low, high = wilson(sum(flags), len(flags))
    thresholds = {
        f"checks: mean_accuracy.ci_low >= {low - 0.001:.4f}": (True, low),
        f"checks: mean_accuracy.ci_low >= {low + 0.001:.4f}": (False, low),
        f"pass_rate.ci_high <= {high + 0.001:.4f}": (True, high),
        f"pass_rate.ci_high < {high - 0.001:.4f}": (False, high),
    }

    pytester.runpytest(*[f"--llm-threshold={t}" for t in thresholds])

    assert verdicts(runs.latest()) == {
        expression: (passed, pytest.approx(value, rel=1e-9))
        for expression, (passed, value) in thresholds.items()
    }


def test_thresholds_on_latency_and_tokens(
    pytester: pytest.Pytester, runs: Runs, capitals: list[dict[str, Any]]
) -> None:
    pytester.makepyfile(
        test_capitals=dedent(
            """\
            import pytest

            @pytest.mark.llm_dataset("capitals")
            def test_capital(item, llm):
                llm.generate(item.input)
            """
        )
    )
    thresholds = {
        "p95_latency_ms >= 5": True,  # the mock waits at least latency_ms on every call
        "capitals: p95_latency_ms < 5": False,
        "capitals: total_tokens > 0": True,
        "total_tokens < 1": False,
    }

    pytester.runpytest(
        "--llm-model=mock-llm-v1?latency_ms=5", *[f"--llm-threshold={t}" for t in thresholds]
    )

    run = runs.latest()
    calls = [g for item in run["items"] for g in generations(item)]
    assert len(calls) == len(capitals)
    latencies = [g["metadata"]["latency_ms"] for g in calls]
    p95 = statistics.quantiles(latencies, n=20, method="inclusive")[18]
    tokens = sum(g["usage"]["total"] for g in calls)
    assert verdicts(run) == {
        "p95_latency_ms >= 5": (True, pytest.approx(p95)),
        "capitals: p95_latency_ms < 5": (False, pytest.approx(p95)),
        "capitals: total_tokens > 0": (True, tokens),
        "total_tokens < 1": (False, tokens),
    }


# --- the judge model ----------------------------------------------------------------------------

JUDGED_SUITE = """\
    def test_judged(llm, scorer):
        answer = llm.generate("What is the capital of France?", name="answer")
        assert answer.text == "Paris"
        assert scorer.llm_judge(
            "judge/correctness", answer.text, input="What is the capital of France?",
            reference="Paris",
        )
    """


@pytest.mark.parametrize(
    ("ini", "args"),
    [
        pytest.param(None, ["--llm-judge-model=mock-llm-v1?error_rate=1"], id="option"),
        pytest.param("mock-llm-v1?error_rate=1", [], id="ini"),
        pytest.param("mock-llm-v1", ["--llm-judge-model=mock-llm-v1?error_rate=1"], id="cli-wins"),
    ],
)
def test_the_judge_model_is_its_own_model(
    pytester: pytest.Pytester, runs: Runs, ini: str | None, args: list[str]
) -> None:
    if ini is not None:
        pytester.makeini(f"[pytest]\nllm_judge_model = {ini}\n")
    pytester.makepyfile(test_judged=dedent(JUDGED_SUITE))

    result = pytester.runpytest(*args)

    result.assert_outcomes(failed=1)
    simulated = "(simulated, error_rate=1)"  # what only the judge's model string asks for
    result.stdout.fnmatch_lines([f"E   *: mock-llm-v1: * {exact(simulated)}*"])
    (item,) = runs.latest()["items"]
    by_name = {g["name"]: g for g in generations(item)}
    assert sorted(by_name) == ["answer", "llm_judge:judge/correctness"]
    assert (by_name["answer"]["level"], by_name["answer"]["output"]) == ("DEFAULT", "Paris")
    judge = by_name["llm_judge:judge/correctness"]
    assert judge["level"] == "ERROR"
    assert simulated in judge["status_message"]
    assert judge["output"] is None
    assert item["trace"]["scores"] == []
    assert runs.latest()["model"] == "mock-llm-v1"


def test_the_judges_calls_are_counted_apart_from_the_model_under_test(
    pytester: pytest.Pytester, runs: Runs
) -> None:
    # (before, a slow judge failed the model's latency gate and its tokens joined the model's)
    pytester.makepyfile(test_judged=dedent(JUDGED_SUITE))

    result = pytester.runpytest(
        "--llm-judge-model=mock-llm-v1?latency_ms=50", "--llm-threshold=p95_latency_ms < 40"
    )

    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.OK
    (item,) = runs.latest()["items"]
    by_name = {g["name"]: g for g in generations(item)}
    answer, judge = by_name["answer"], by_name["llm_judge:judge/correctness"]
    aggregates = runs.aggregates(runs.latest(), "*")
    assert aggregates["generations"]["value"] == 1
    assert aggregates["p95_latency_ms"]["value"] == pytest.approx(answer["metadata"]["latency_ms"])
    assert aggregates["total_tokens"]["value"] == answer["usage"]["total"]
    assert aggregates["judge_generations"]["value"] == 1
    assert aggregates["judge_total_tokens"]["value"] == judge["usage"]["total"]
    result.stdout.fnmatch_lines([f"  judge calls 1  tokens {judge['usage']['total']}"])


def test_without_a_judge_model_the_run_model_judges(pytester: pytest.Pytester, runs: Runs) -> None:
    pytester.makepyfile(test_judged=dedent(JUDGED_SUITE))

    result = pytester.runpytest("--llm-model=mock-llm-v1?seed=3")

    result.assert_outcomes(passed=1)
    (item,) = runs.latest()["items"]
    assert [(s["name"], s["value"]) for s in item["trace"]["scores"]] == [
        ("judge_correctness", 1.0)
    ]


@pytest.mark.parametrize(
    ("ini", "args", "where"),
    [
        pytest.param(None, ["--llm-judge-model=no-such-judge"], "--llm-judge-model", id="option"),
        pytest.param("no-such-judge", [], "llm_judge_model in *tox.ini", id="ini"),
    ],
)
def test_unknown_judge_model_is_a_usage_error(
    pytester: pytest.Pytester, ini: str | None, args: list[str], where: str
) -> None:
    if ini is not None:
        pytester.makeini(f"[pytest]\nllm_judge_model = {ini}\n")
    pytester.makepyfile("def test_nothing():\n    pass\n")

    result = pytester.runpytest(*args)

    assert result.ret == USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"ERROR: {where}: unknown model 'no-such-judge'; known models: mock-llm-v1*"]
    )
    assert not (pytester.path / ".llmobs").exists()


def test_an_unparsable_judge_answer_fails_the_test_and_marks_the_judge_generation(
    pytester: pytest.Pytester, runs: Runs
) -> None:
    pytester.makeconftest(
        dedent(
            """\
            from pytest_llmobs.providers import ModelResponse

            class Unsure:
                model = "unsure-judge"
                options = {}

                def complete(self, messages, **params):
                    return ModelResponse(text="looks fine to me", model=self.model)

                async def acomplete(self, messages, **params):
                    return self.complete(messages, **params)

            def pytest_llmobs_register_models(registry, config):
                registry.register("unsure-judge", lambda spec: Unsure())
            """
        )
    )
    pytester.makepyfile(test_judged=dedent(JUDGED_SUITE))

    result = pytester.runpytest("--llm-judge-model=unsure-judge")

    result.assert_outcomes(failed=1)
    detail = (
        "no score in the judge's answer 'looks fine to me'; expected a line 'Score: <number>' "
        "or a JSON object with a numeric 'score'"
    )
    error = f"pytest_llmobs.evaluators.judge.JudgeError: llm_judge 'judge/correctness': {detail}"
    result.stdout.fnmatch_lines(["E   *" + exact(error)])
    (item,) = runs.latest()["items"]
    assert item["outcome"] == "failed"
    assert item["error"] == error
    judge = {g["name"]: g for g in generations(item)}["llm_judge:judge/correctness"]
    assert (judge["model"], judge["output"]) == ("unsure-judge", "looks fine to me")
    assert (judge["level"], judge["status_message"]) == ("ERROR", f"JudgeError: {detail}")
    assert item["trace"]["scores"] == []  # never a silent 0


def test_a_rubric_in_the_prompts_dir_overrides_the_built_in_one(
    pytester: pytest.Pytester, runs: Runs
) -> None:
    strict: dict[str, Any] = {
        "type": "chat",
        "prompt": [
            {"role": "system", "content": "Grade strictly. Reply 'Score: <0..1>'."},
            {
                "role": "user",
                "content": "INPUT:\n{{input}}\n\nOUTPUT:\n{{output}}\n\nREFERENCE:\n{{reference}}",
            },
        ],
        "config": {"temperature": 0, "threshold": 0.9, "scale": [0, 1]},
    }
    pytester.makefile(".json", **{"prompts/judge/correctness": json.dumps(strict)})
    pytester.makepyfile(
        test_judged=dedent(
            """\
            def test_half_right(scorer):
                assert scorer.llm_judge(
                    "judge/correctness", "Paris", input="Where?", reference="Paris, Seine"
                )
            """
        )
    )

    result = pytester.runpytest()

    result.assert_outcomes(failed=1)  # half the reference: passes 0.5, not this rubric's 0.9
    result.stdout.fnmatch_lines(
        ["E       AssertionError: assert <judge_correctness FAILED value=0.5: *< 0.9: *>"]
    )
    (item,) = runs.latest()["items"]
    (judge,) = generations(item)
    assert (judge["prompt_name"], judge["prompt_version"]) == ("judge/correctness", 1)
    assert judge["input"][0] == strict["prompt"][0]
    assert judge["model_parameters"] == {"temperature": 0}


ECHO_JUDGE = """\
    from pytest_llmobs.providers import ModelResponse

    class Echo:
        \"\"\"A judge that answers whatever follows 'ECHO:' in its prompt.\"\"\"

        model = "echo-judge"
        options = {}

        def complete(self, messages, **params):
            answer = messages[-1]["content"].split("ECHO:", 1)[-1].strip()
            return ModelResponse(text=answer, model=self.model)

        async def acomplete(self, messages, **params):
            return self.complete(messages, **params)

    def pytest_llmobs_register_models(registry, config):
        registry.register("echo-judge", lambda spec: Echo())
    """


def echo_rubric(pytester: pytest.Pytester, name: str, config: dict[str, Any]) -> str:
    """Write ``prompts/judge/<name>.json``, a rubric the echo judge answers with its output."""
    rubric = {"type": "text", "prompt": "ECHO:{{output}}", "config": config}
    pytester.makefile(".json", **{f"prompts/judge/{name}": json.dumps(rubric)})
    return str(pytester.path / "prompts" / "judge" / f"{name}.json")


@pytest.mark.parametrize(
    ("config", "shown"),
    [
        pytest.param({"scale": [3, 3]}, "config 'scale' [3, 3]", id="empty-scale"),
        pytest.param({"scale": [5]}, "config 'scale' [5]", id="one-bound"),
        pytest.param({"scale": "1-5"}, "config 'scale' '1-5'", id="string"),
        pytest.param({"scale": [1, "5"]}, "config 'scale' [1, '5']", id="string-bound"),
    ],
)
def test_a_bad_rubric_scale_fails_the_test_naming_the_rubric_file_before_the_judge_is_asked(
    pytester: pytest.Pytester, runs: Runs, config: dict[str, Any], shown: str
) -> None:
    pytester.makeconftest(dedent(ECHO_JUDGE))
    path = echo_rubric(pytester, "bad", config)
    pytester.makepyfile(
        test_judged='def test_judged(scorer):\n    scorer.llm_judge("judge/bad", "Score: 3")\n'
    )

    result = pytester.runpytest("--llm-judge-model=echo-judge")

    result.assert_outcomes(failed=1)
    error = (
        f"pytest_llmobs.evaluators.judge.JudgeError: llm_judge 'judge/bad' ({path}): {shown} is "
        "not valid; expected [low, high], two numbers with low < high, e.g. [1, 5]"
    )
    result.stdout.fnmatch_lines(["E   *" + exact(error)])
    (item,) = runs.latest()["items"]
    assert generations(item) == []  # caught before the judge was asked


def test_a_bad_rubric_threshold_fails_the_test_naming_the_rubric_file(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(dedent(ECHO_JUDGE))
    path = echo_rubric(pytester, "bad", {"scale": [1, 5], "threshold": 4})
    pytester.makepyfile(
        test_judged='def test_judged(scorer):\n    scorer.llm_judge("judge/bad", "Score: 3")\n'
    )

    result = pytester.runpytest("--llm-judge-model=echo-judge")

    result.assert_outcomes(failed=1)
    error = (
        f"pytest_llmobs.evaluators.judge.JudgeError: llm_judge 'judge/bad' ({path}): config "
        "'threshold' 4 is not valid; expected a number from 0 to 1 (compared with the score "
        "mapped to 0..1)"
    )
    result.stdout.fnmatch_lines(["E   *" + exact(error)])


def test_a_judge_answer_with_a_zero_denominator_fails_the_test_and_marks_the_judge_generation(
    pytester: pytest.Pytester, runs: Runs
) -> None:
    pytester.makeconftest(dedent(ECHO_JUDGE))
    echo_rubric(pytester, "echo", {"scale": [1, 5]})
    pytester.makepyfile(
        test_judged='def test_judged(scorer):\n    scorer.llm_judge("judge/echo", "Score: 0/0")\n'
    )

    result = pytester.runpytest("--llm-judge-model=echo-judge")

    result.assert_outcomes(failed=1)
    detail = (
        "judge score 0/0 in the answer 'Score: 0/0': the denominator must be above the rubric's "
        "lowest score 1; expected 'Score: <number>' on the rubric's scale 1..5"
    )
    error = f"pytest_llmobs.evaluators.judge.JudgeError: llm_judge 'judge/echo': {detail}"
    result.stdout.fnmatch_lines(["E   *" + exact(error)])
    (item,) = runs.latest()["items"]
    (judge,) = generations(item)
    assert (judge["level"], judge["status_message"]) == ("ERROR", f"JudgeError: {detail}")
    assert item["trace"]["scores"] == []


def test_a_judge_score_outside_the_rubric_scale_fails_the_test_showing_the_answer(
    pytester: pytest.Pytester, runs: Runs
) -> None:
    pytester.makeconftest(dedent(ECHO_JUDGE))
    echo_rubric(pytester, "r15", {"scale": [1, 5]})
    pytester.makepyfile(
        test_judged='def test_judged(scorer):\n    scorer.llm_judge("judge/r15", "Score: 9")\n'
    )

    result = pytester.runpytest("--llm-judge-model=echo-judge")

    result.assert_outcomes(failed=1)
    detail = "judge score 9 in the answer 'Score: 9' is outside the rubric's scale 1..5"
    error = f"pytest_llmobs.evaluators.judge.JudgeError: llm_judge 'judge/r15': {detail}"
    result.stdout.fnmatch_lines(["E   *" + exact(error)])
    (item,) = runs.latest()["items"]
    (judge,) = generations(item)
    assert (judge["level"], judge["status_message"]) == ("ERROR", f"JudgeError: {detail}")
    assert item["trace"]["scores"] == []


def test_the_last_score_line_of_a_judge_answer_wins_over_a_score_in_its_reasoning(
    pytester: pytest.Pytester, runs: Runs
) -> None:
    pytester.makeconftest(dedent(ECHO_JUDGE))
    echo_rubric(pytester, "echo", {"scale": [1, 5]})
    pytester.makepyfile(
        test_judged=dedent(
            """\
            def test_reasoning_first(scorer):
                answer = "Reasoning: this deserves score: 2 at most.\\nScore: 5"
                assert scorer.llm_judge("judge/echo", answer) == 1.0

            def test_denominator_of_the_scale(scorer):
                assert scorer.llm_judge("judge/echo", "Score: 4/5") == 0.75
                assert scorer.llm_judge("judge/echo", "Score: 4") == 0.75
            """
        )
    )

    result = pytester.runpytest("--llm-judge-model=echo-judge")

    result.assert_outcomes(passed=2)
    stored = runs.items(runs.latest())
    reasoning_first = stored["test_judged.py::test_reasoning_first"]["trace"]["scores"]
    assert [(s["name"], s["value"], s["comment"]) for s in reasoning_first] == [
        ("judge_echo", 1.0, "this deserves score: 2 at most.")
    ]


NUMPY_CONFTEST = """\
    import numpy as np
    import pytest_llmobs

    @pytest_llmobs.evaluator(threshold=0.5)
    def half(output):
        return np.float32(0.5)

    @pytest_llmobs.evaluator
    def truthy(output):
        return np.bool_(bool(output))

    @pytest_llmobs.evaluator
    def words(output):
        return np.int64(len(output.split()))

    def pytest_llmobs_register_evaluators(registry, config):
        registry.add(half)
        registry.add(truthy)
        registry.add(words)
    """


def test_custom_evaluators_may_return_numpy_scalars(
    pytester: pytest.Pytester, runs: Runs, xdist_args: tuple[str, ...]
) -> None:
    pytester.makeconftest(dedent(NUMPY_CONFTEST))
    pytester.makepyfile(
        test_numpy=dedent(
            """\
            def test_numpy(scorer):
                assert scorer.half("x") == 0.5
                assert scorer.truthy("x")
                assert not scorer.truthy("")
                assert scorer.words("two words") == 2
            """
        )
    )

    result = pytester.runpytest(*xdist_args)

    result.assert_outcomes(passed=1)
    (item,) = runs.latest()["items"]
    assert [(s["name"], s["value"], s["data_type"]) for s in item["trace"]["scores"]] == [
        ("half", 0.5, "NUMERIC"),
        ("truthy", True, "BOOLEAN"),
        ("truthy", False, "BOOLEAN"),
        ("words", 2, "NUMERIC"),
    ]
