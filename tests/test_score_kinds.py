"""One score name keeps one kind across a run, wherever its scores come from (`ScoreKinds`)."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_llmobs import run_experiment
from pytest_llmobs.aggregate_model import ItemSummary
from pytest_llmobs.aggregate_names import KIND_CLASH, LABEL_EXPECTED
from pytest_llmobs.repeats import item_scores
from pytest_llmobs.score_kinds import ScoreKinds, check_score
from pytest_llmobs.score_model import ScoreError


def item(node_id: str, *scores: tuple[str, str, Any], label: bool = False) -> dict[str, Any]:
    metadata = {LABEL_EXPECTED: "yes"} if label else {}
    return {
        "node_id": node_id,
        "outcome": "passed",
        "error": None,
        "trace": {
            "scores": [
                {"name": n, "data_type": t, "value": v, "metadata": metadata} for n, t, v in scores
            ]
        },
    }


def test_the_first_kind_of_a_name_holds_and_a_later_kind_clashes() -> None:
    kinds = ScoreKinds()
    assert kinds.check(item("t[1]", ("q", "NUMERIC", 0.5), ("ok", "BOOLEAN", True))) is None
    assert kinds.check(item("t[2]", ("q", "BOOLEAN", False))) is None  # numbers and bools: one

    clash = kinds.check(item("t[3]", ("q", "CATEGORICAL", "good"), ("ok", "BOOLEAN", True)))

    assert clash is not None
    assert clash.kinds == {"q": "number"}  # the kind the run keeps for 'q'
    assert clash.reason == (
        "score 'q' is a string ('good') but a number (or bool) in t[1]; one name must keep one "
        "kind in a run, so record it under another name"
    )


def test_a_clashing_item_is_stored_failed_with_every_score_and_counted_without_the_clash() -> None:
    kinds = ScoreKinds()
    kinds.check(item("t[1]", ("q", "CATEGORICAL", "good")))
    given = item("t[2]", ("q", "CATEGORICAL", "fine"), ("q", "NUMERIC", 1.0), ("o", "NUMERIC", 2.0))

    clash = kinds.check(given)
    assert clash is not None
    stored = clash.failed(given)

    assert given["outcome"] == "passed"  # the caller's item is not changed
    assert given["trace"]["scores"][1]["metadata"] == {}
    assert stored["outcome"] == "failed"
    assert stored["error"] == clash.reason
    assert [(s["name"], s["value"]) for s in stored["trace"]["scores"]] == [
        ("q", "fine"),
        ("q", 1.0),
        ("o", 2.0),
    ]
    assert [s["metadata"].get(KIND_CLASH, False) for s in stored["trace"]["scores"]] == [
        False,
        True,
        False,
    ]
    # every reader of the stored item leaves the marked score out
    assert ItemSummary.from_item(stored).scores == (
        ("q", "CATEGORICAL", "fine"),
        ("o", "NUMERIC", 2.0),
    )
    assert item_scores(stored) == {"o": [2.0]}
    assert kinds.check(stored) is None  # checked again (run_experiment): nothing new


def test_an_item_that_already_failed_keeps_its_own_outcome_and_error() -> None:
    kinds = ScoreKinds()
    kinds.check(item("t[1]", ("q", "NUMERIC", 1.0)))
    errored = {**item("t[2]", ("q", "NUMERIC", 1.0), label=True), "outcome": "error"}
    errored["error"] = "ValueError: boom"

    clash = kinds.check(errored)

    assert clash is not None
    assert "is a label" in clash.reason
    assert clash.failed(errored)["outcome"] == "error"
    assert clash.failed(errored)["error"] == "ValueError: boom"


def test_checking_an_item_again_gives_the_same_clash_and_one_error_per_name() -> None:
    kinds = ScoreKinds()
    kinds.check(item("t[0]", ("q", "NUMERIC", 1.0)))
    late = [item(f"t[{i}]", ("q", "CATEGORICAL", "x")) for i in range(1, 6)]
    first = [kinds.check(entry) for entry in late]

    again = [kinds.check(entry) for entry in late]

    assert again == first
    assert kinds.errors() == [
        "score 'q' was a number (or bool) first (t[0]) and a string in 5 items (t[1], t[2], "
        "t[3], ...): one name must keep one kind, so those items count as failed and those "
        "scores stay out of the aggregates; record them under another name"
    ]


def test_two_kinds_in_one_item_clash_with_the_first() -> None:
    clash = ScoreKinds().check(item("t", ("q", "NUMERIC", 1.0), ("q", "CATEGORICAL", "x")))

    assert clash is not None
    assert "but a number (or bool) in this item" in clash.reason


def test_run_experiment_fails_the_items_whose_evaluator_changed_kind() -> None:
    def judge(output: str, item: Any) -> bool | str:
        return True if item.id == "a" else "meh"

    result = run_experiment(
        name="kinds",
        dataset=[{"id": "a", "input": "x"}, {"id": "b", "input": "y"}, {"id": "c", "input": "z"}],
        task=lambda item: item.input,
        evaluators=[judge],
        store=None,
        max_concurrency=1,  # in order: 'a' sets the kind
    )

    assert result.status == "failed"
    assert [(i.id, i.outcome) for i in result.items] == [
        ("a", "passed"),
        ("b", "failed"),
        ("c", "failed"),
    ]
    assert "score 'judge' is a string ('meh') but a number (or bool) in" in str(
        result.items[1].error
    )
    assert result.items[1].scores == {"judge": "meh"}  # kept on the item
    (error,) = result.run.errors
    assert error.startswith("score 'judge' was a number (or bool) first (<lambda>[a])")
    aggregates = result.aggregates["*"]
    assert aggregates["mean_judge"].n == 1
    assert "counts_judge" not in aggregates
    assert aggregates["pass_rate"].value == 1 / 3


def test_a_number_named_after_a_repeat_variance_is_refused() -> None:
    # (before: under --llm-repeat, mean_repeat_variance_x, score x's variance across repeats,
    # replaced the mean of a score named repeat_variance_x)
    with pytest.raises(ScoreError) as caught:
        check_score("repeat_variance_x", "number")

    assert str(caught.value) == (
        "score 'repeat_variance_x': its aggregate mean_repeat_variance_x would take the name of "
        "the run's own variance of score 'x' across repeats (--llm-repeat); use another score name"
    )
    check_score("repeat_variance_x", "string")  # counts_repeat_variance_x: no clash
    check_score("x_repeat_variance", "number")
