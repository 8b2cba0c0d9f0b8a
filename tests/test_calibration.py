"""``llmobs calibrate``: agreement between an automated score and human labels."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from textwrap import dedent
from typing import Any

import pytest
from conftest import Runs
from sklearn.metrics import cohen_kappa_score

from pytest_llmobs.calibration import CalibrationError, CalibrationReport, calibrate, read_labels

# item id, automated quality score, whether the test passes, human verdict
ROWS = [
    ("a", 0.95, True, "pass"),
    ("b", 0.80, True, "pass"),
    ("c", 0.72, True, "fail"),
    ("d", 0.65, True, "pass"),
    ("e", 0.40, False, "fail"),
    ("f", 0.30, False, "fail"),
    ("g", 0.20, False, "fail"),
    ("h", 0.90, True, "pass"),
]


def llmobs(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest_llmobs.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture
def project(pytester: pytest.Pytester) -> Path:
    pytester.makeini("[pytest]\n")
    lines = [
        json.dumps({"id": i, "input": f"q {i}", "metadata": {"quality": q, "ok": ok}})
        for i, q, ok, _ in ROWS
    ]
    pytester.makefile(".jsonl", **{"datasets/graded": "\n".join(lines)})
    pytester.makepyfile(
        test_graded=dedent("""\
        import pytest

        @pytest.mark.llm_dataset("graded")
        def test_graded(item, scorer):
            scorer.score("quality", item.metadata["quality"])
            scorer.score("verdict", item.metadata["ok"])
            scorer.score("tone", "good" if item.metadata["ok"] else "bad")
    """)
    )
    pytester.runpytest("--llm-run-name=graded").assert_outcomes(passed=len(ROWS))
    labels = "item_id,label\n" + "".join(f"{i},{h}\n" for i, _, _, h in ROWS) + "zz,pass\n"
    (pytester.path / "labels.csv").write_text(labels)
    return pytester.path


def test_numeric_score_gets_the_best_matching_threshold(project: Path) -> None:
    done = llmobs(
        project,
        "calibrate",
        "graded",
        "--labels",
        "labels.csv",
        "--score",
        "quality",
        "--format",
        "json",
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    human = [h == "pass" for _, _, _, h in ROWS]

    # brute force over every candidate threshold, computed here independently
    def agreement(t: float) -> tuple[float, float, float]:
        predicted = [q >= t for _, q, _, _ in ROWS]
        hits = sum(p == h for p, h in zip(predicted, human, strict=True))
        return hits, cohen_kappa_score(human, predicted), -t

    best = max(sorted({q for _, q, _, _ in ROWS}), key=agreement)
    predicted = [q >= best for _, q, _, _ in ROWS]
    assert report["threshold"] == best
    assert report["accuracy"] == sum(p == h for p, h in zip(predicted, human, strict=True)) / len(
        ROWS
    )
    assert report["kappa"] == pytest.approx(cohen_kappa_score(human, predicted))
    assert report["n"] == len(ROWS)
    assert report["unmatched_labels"] == ["zz"]
    assert sum(sum(row.values()) for row in report["confusion"].values()) == len(ROWS)


def test_boolean_score_text_report(project: Path) -> None:
    done = llmobs(project, "calibrate", "latest", "--labels", "labels.csv", "--score", "verdict")
    assert done.returncode == 0, done.stderr
    human = [h == "pass" for _, _, _, h in ROWS]
    auto = [ok for _, _, ok, _ in ROWS]
    accuracy = sum(a == h for a, h in zip(auto, human, strict=True)) / len(ROWS)
    kappa = cohen_kappa_score(human, auto)
    lines = done.stdout.splitlines()
    assert lines[0] == "calibration of score 'verdict' (BOOLEAN) against 8 human labels"
    assert lines[1] == f"accuracy {accuracy:.3f}  Cohen's kappa {kappa:.3f}"
    assert "1 label(s) match no item: zz" in lines


def test_long_lists_of_unmatched_names_say_how_many_more() -> None:
    report = CalibrationReport(
        "verdict", "BOOLEAN", 1, 1.0, 1.0, {}, unlabelled_items=[f"i{k}" for k in range(13)]
    )
    assert report.lines()[-1] == (
        "13 scored item(s) have no label: i0, i1, i2, i3, i4, i5, i6, i7, i8, i9 and 3 more"
    )


def test_categorical_score_compares_strings(project: Path) -> None:
    (project / "tone.csv").write_text(
        "id,label\n" + "".join(f"{i},{'good' if h == 'pass' else 'bad'}\n" for i, _, _, h in ROWS)
    )
    done = llmobs(
        project,
        "calibrate",
        "graded",
        "--labels",
        "tone.csv",
        "--score",
        "tone",
        "--format",
        "json",
    )
    report = json.loads(done.stdout)
    assert report["data_type"] == "CATEGORICAL"
    assert report["confusion"]["bad"]["good"] == 1  # item c: automated good, human bad


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            "item,label\na,pass\n",
            "labels.csv:1: expected a 'label' column and one of item_id, id, "
            "node_id; got item, label",
        ),
        ("item_id,label\na,\n", "labels.csv:2: empty 'item_id' or 'label'"),
        ("item_id,label\n", "labels.csv: no labels"),
        (
            "item_id,label\nfrance,pass\njapan,pass\nfrance,fail\n",
            "labels.csv:4: a second label for item_id 'france' (the first is on line 2); "
            "give one label per item",
        ),
    ],
)
def test_bad_labels_files(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "labels.csv"
    path.write_text(content)
    with pytest.raises(CalibrationError) as error:
        read_labels(path)
    assert str(error.value) == f"{tmp_path}/{message}"


def test_non_binary_label_and_unknown_score_are_clear(project: Path) -> None:
    (project / "odd.csv").write_text("item_id,label\na,maybe\n")
    odd = llmobs(project, "calibrate", "graded", "--labels", "odd.csv", "--score", "verdict")
    assert odd.returncode == 2
    assert "llmobs: error: odd.csv:2: label 'maybe' is not pass/fail; use one of" in odd.stderr
    unknown = llmobs(project, "calibrate", "graded", "--labels", "labels.csv", "--score", "nope")
    assert "has a score 'nope'" in unknown.stderr and "quality, tone, verdict" in unknown.stderr


@pytest.mark.parametrize(
    ("human", "threshold", "verdict"),
    [
        pytest.param("fail", 0.96, "fail", id="all-fail: just above the highest score"),
        pytest.param("pass", 0.2, "pass", id="all-pass: the lowest score"),
    ],
)
def test_one_class_of_labels_gets_a_threshold_classifying_every_item_so(
    project: Path, human: str, threshold: float, verdict: str
) -> None:
    (project / "one.csv").write_text(
        "item_id,label\n" + "".join(f"{i},{human}\n" for i, _, _, _ in ROWS)
    )

    done = llmobs(
        project, "calibrate", "graded", "--labels", "one.csv", "--score", "quality",
        "--format", "json",
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["threshold"] == threshold
    assert report["accuracy"] == 1.0
    assert report["confusion"] == {human: {verdict: len(ROWS)}}
    text = llmobs(project, "calibrate", "graded", "--labels", "one.csv", "--score", "quality")
    assert f"best threshold: quality >= {threshold:g}" in text.stdout.splitlines()


@pytest.mark.parametrize(
    ("values", "above"),
    [
        ([0.1, 0.5, 1.0], 1.01),
        ([0.2, 0.95], 0.96),
        ([3.0, 50.0], 51.0),
        ([0.0], 0.1),
        ([-2.0], -1.9),
    ],
)
def test_the_threshold_above_every_score_is_a_round_number_just_above_the_highest(
    values: list[float], above: float
) -> None:
    from pytest_llmobs.calibration import _above

    assert _above(values) == above
    assert _above(values) > max(values)


# Per (dataset item, repeat): the numeric score q, the boolean ok and the categorical tone. The
# first repeat's q orders the items against the human labels; their means agree with them.
REPEATED = {
    "1": ([0.3, 0.9, 0.9], [True, True, True], ["good", "good", "bad"]),
    "2": ([0.8, 0.1, 0.1], [False, False, False], ["bad", "bad", "bad"]),
    "3": ([0.6, 0.6, 0.6], [True, False, True], ["good", "bad", "meh"]),
    "4": ([0.2, 0.5, 0.2], [False, True, False], ["meh", "meh", "meh"]),
}
HUMAN = {"1": "pass", "2": "fail", "3": "pass", "4": "fail"}
HUMAN_CSV = "item_id,label\n" + "".join(f"{i},{h}\n" for i, h in HUMAN.items())


@pytest.fixture
def mixed(pytester: pytest.Pytester, runs: Runs) -> list[dict[str, Any]]:
    """A run with repeats (dataset a), an item id shared by datasets a and b, a score recorded
    twice by one test (dataset c) and a dataset item scored by two tests (score both)."""
    pytester.makeini("[pytest]\n")
    for name, ids in {"a": REPEATED, "b": ["1", "2"], "c": ["x", "y"]}.items():
        lines = [json.dumps({"id": i, "input": f"{name} {i}"}) for i in ids]
        pytester.makefile(".jsonl", **{f"datasets/{name}": "\n".join(lines)})
    pytester.makepyfile(
        test_mixed=dedent(f"""\
        import pytest

        REPEATED = {REPEATED!r}

        @pytest.mark.llm_dataset("a", repeat=3)
        def test_rep(item, scorer, request):
            r = request.node.callspec.params["_llmobs_repeat"]
            q, ok, tone = REPEATED[item.id]
            scorer.score("q", q[r])
            scorer.score("ok", ok[r])
            scorer.score("tone", tone[r])

        @pytest.mark.llm_dataset("b")
        def test_b(item, scorer):
            scorer.score("q", 0.5)

        @pytest.mark.llm_dataset("c")
        def test_c(item, scorer):
            scorer.score("judge", 0.1 if item.id == "x" else 0.3)
            if item.id == "x":
                scorer.score("judge", 0.9)  # a second opinion: x's mean is 0.5
            scorer.score("both", 1.0)

        @pytest.mark.llm_dataset("c")
        def test_c2(item, scorer):
            scorer.score("both", 0.0)
    """)
    )
    pytester.runpytest().assert_outcomes(passed=18)
    return list(runs.latest()["items"])


def write_labels(directory: Path, text: str, name: str = "labels.csv") -> Path:
    path = directory / name
    path.write_text(text)
    return path


def test_repeats_are_averaged_per_item(mixed: list[dict[str, Any]], tmp_path: Path) -> None:
    labels = write_labels(tmp_path, HUMAN_CSV)

    report = calibrate(mixed, labels, "q", dataset="a")

    # means 0.7, 0.333, 0.6, 0.3 (the first repeat alone, 0.3 0.8 0.6 0.2, gave AUC 0.5)
    assert (report.n, report.threshold, report.auc, report.accuracy) == (4, 0.6, 1.0, 1.0)
    assert report.averaged_items == 4
    assert report.unlabelled_items == []
    assert report.lines()[0] == (
        "calibration of score 'q' (NUMERIC) of dataset a against 4 human labels"
    )
    assert report.lines()[-1] == (
        "4 item(s) have several values (repeats, or the score recorded more than once): "
        "each is compared by its mean"
    )


def test_node_ids_label_a_repeated_test_case_not_one_repeat(
    mixed: list[dict[str, Any]], tmp_path: Path
) -> None:
    cases = write_labels(
        tmp_path,
        "node_id,label\n"
        + "".join(f"test_mixed.py::test_rep[{i}],{h}\n" for i, h in HUMAN.items()),
    )
    report = calibrate(mixed, cases, "q")
    assert (report.n, report.threshold, report.auc) == (4, 0.6, 1.0)
    assert report.unlabelled_items == ["test_mixed.py::test_b[1]", "test_mixed.py::test_b[2]"]

    one_repeat = write_labels(tmp_path, "node_id,label\ntest_mixed.py::test_rep[1-r0],pass\n")
    with pytest.raises(CalibrationError) as error:
        calibrate(mixed, one_repeat, "q")
    assert str(error.value) == (
        f"{one_repeat}:2: node_id 'test_mixed.py::test_rep[1-r0]' is one repeat of "
        "'test_mixed.py::test_rep[1]'; label the test case by that node id (the mean of its "
        "repeats is compared)"
    )


def test_a_score_recorded_twice_is_compared_by_its_mean(
    mixed: list[dict[str, Any]], tmp_path: Path
) -> None:
    labels = write_labels(tmp_path, "item_id,label\nx,pass\ny,fail\n")

    report = calibrate(mixed, labels, "judge")

    # x: 0.1 then 0.9, mean 0.5 (as mean_judge counts it), above y's 0.3: the first value
    # alone (0.1) put x below y, AUC 0
    assert (report.threshold, report.auc, report.accuracy, report.averaged_items) == (
        0.5,
        1.0,
        1.0,
        1,
    )


def test_an_item_id_in_two_datasets_needs_the_dataset(
    mixed: list[dict[str, Any]], tmp_path: Path
) -> None:
    plain = write_labels(tmp_path, HUMAN_CSV)
    with pytest.raises(CalibrationError) as error:
        calibrate(mixed, plain, "q")
    assert str(error.value) == (
        f"{plain}:2: item_id '1' is in datasets a, b of the run; add a 'dataset' column to "
        "the labels or pass --dataset NAME"
    )

    with_dataset = write_labels(
        tmp_path,
        "dataset,item_id,label,notes\n"
        + "".join(f"a,{i},{h},\n" for i, h in HUMAN.items())
        + "b,1,pass,only b/1\nzz,1,pass,\n",
        "with_dataset.csv",
    )
    report = calibrate(mixed, with_dataset, "q")
    assert report.n == 5
    assert report.unmatched_labels == ["zz/1"]
    assert report.unlabelled_items == ["b/2"]  # every scored item of the run is accounted for
    assert report.lines()[-2:] == [
        "1 label(s) match no item: zz/1",
        "1 scored item(s) have no label: b/2",
    ]

    with pytest.raises(CalibrationError, match=r"^--dataset 'nope': the run has no such "):
        calibrate(mixed, plain, "q", dataset="nope")

    twice = write_labels(tmp_path, "dataset,item_id,label\n,1,pass\na,1,fail\n", "twice.csv")
    with pytest.raises(CalibrationError) as error:
        calibrate(mixed, twice, "q", dataset="a")
    assert str(error.value) == (
        f"{twice}:3: a second label for item_id '1' (the first is on line 2); give one label "
        "per item"
    )


def test_an_item_id_scored_by_two_test_cases_is_ambiguous(
    mixed: list[dict[str, Any]], tmp_path: Path
) -> None:
    labels = write_labels(tmp_path, "item_id,label\nx,pass\n")
    with pytest.raises(CalibrationError) as error:
        calibrate(mixed, labels, "both")
    assert str(error.value) == (
        f"{labels}:2: item_id 'x' is scored by 2 test cases (test_mixed.py::test_c[x], "
        "test_mixed.py::test_c2[x]); label them by node_id"
    )


def test_boolean_repeats_that_disagree_get_a_threshold_on_their_share_of_true(
    mixed: list[dict[str, Any]], tmp_path: Path
) -> None:
    labels = write_labels(tmp_path, HUMAN_CSV)

    report = calibrate(mixed, labels, "ok")

    # shares of true: 1, 0, 2/3, 1/3; the majority (>= 2/3 of three) matches every label
    assert report.data_type == "BOOLEAN"
    assert report.threshold == pytest.approx(2 / 3)
    assert (report.accuracy, report.auc) == (1.0, 1.0)
    assert report.disagreeing_items == ["3", "4"]
    assert (
        "2 item(s) have values that disagree (their share of true values is compared with the "
        "best threshold): 3, 4"
    ) in report.lines()


def test_the_best_threshold_is_printed_as_the_value_it_is() -> None:
    # (before: "ok >= 0.666667", which fails the items agreeing 2 of 3 that 2/3 passes)
    report = CalibrationReport("ok", "BOOLEAN", 3, 1.0, 1.0, {}, threshold=2 / 3)
    assert "best threshold: ok >= 0.6666666666666666" in report.lines()
    report.threshold = 51.0
    assert "best threshold: ok >= 51" in report.lines()
    report.threshold = 0.96
    assert "best threshold: ok >= 0.96" in report.lines()


def test_categorical_repeats_compare_their_most_common_value_and_leave_ties_out(
    mixed: list[dict[str, Any]], tmp_path: Path
) -> None:
    labels = write_labels(tmp_path, "item_id,label\n1,good\n2,bad\n3,good\n4,bad\n")

    report = calibrate(mixed, labels, "tone")

    assert report.n == 3  # item 3: good, bad and meh tie
    assert report.confusion == {"good": {"good": 1}, "bad": {"bad": 1, "meh": 1}}
    assert report.disagreeing_items == ["1", "3"]
    assert report.tied_items == ["3"]
    assert "1 labelled item(s) left out, their most common values tie: 3" in report.lines()


def test_dataset_option_on_the_command_line(
    mixed: list[dict[str, Any]], pytester: pytest.Pytester
) -> None:
    write_labels(pytester.path, HUMAN_CSV)
    args = ["calibrate", "latest", "--labels", "labels.csv", "--score", "q"]

    ambiguous = llmobs(pytester.path, *args)
    picked = llmobs(pytester.path, *args, "--dataset", "a", "--format", "json")

    assert ambiguous.returncode == 2
    assert "labels.csv:2: item_id '1' is in datasets a, b of the run" in ambiguous.stderr
    assert picked.returncode == 0, picked.stderr
    assert json.loads(picked.stdout)["dataset"] == "a"
    assert json.loads(picked.stdout)["auc"] == 1.0


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(
            'item_id,label\n1,pass\n"2,pass\n3,fail\n',
            "labels.csv:3: invalid CSV (a quoted cell opened on this line is never closed)",
            id="unclosed quote",
        ),
        pytest.param(
            "item_id,label\n1,pass,extra\n",
            "labels.csv:2: row has 3 cells but the header 2",
            id="extra cell",
        ),
        pytest.param(
            "item_id,label,notes\n1,pass\n",
            "labels.csv:2: row has 2 cells but the header 3; an empty cell still needs its comma",
            id="missing cell",
        ),
        pytest.param(
            "item_id,label,label\n1,pass,fail\n",
            "labels.csv:1: CSV header has empty or repeated columns: 'item_id', 'label', 'label'",
            id="repeated column",
        ),
        pytest.param(
            'item_id,label\n1,"a\nlabel"\n\n2,pass,\n',
            "labels.csv:5: row has 3 cells but the header 2",
            id="line numbers after a quoted line break and a blank line",
        ),
        pytest.param(
            "dataset,item_id,label\na,1,pass\nb,1,pass\na,1,fail\n",
            "labels.csv:4: a second label for item_id 'a/1' (the first is on line 2); "
            "give one label per item",
            id="a second label in one dataset",
        ),
    ],
)
def test_labels_files_are_read_as_strictly_as_dataset_files(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "labels.csv"
    path.write_text(content)
    with pytest.raises(CalibrationError) as error:
        read_labels(path)
    assert str(error.value) == f"{tmp_path}/{message}"


def test_a_labels_file_with_a_cell_longer_than_the_csv_field_limit_is_read(
    tmp_path: Path,
) -> None:
    # (before: "labels.csv:2: invalid CSV (field larger than field limit (131072))")
    import csv

    path = tmp_path / "labels.csv"
    note = "long reviewer note " * 10_000  # 190,000 characters
    path.write_text(f'item_id,label,notes\n1,pass,"{note}"\n  ,  ,  \n2,fail,short\n')
    limit = csv.field_size_limit()

    key, labels = read_labels(path)

    assert key == "item_id"
    assert [(label.key, label.label, label.line) for label in labels] == [
        ("1", "pass", 2),
        ("2", "fail", 4),
    ]  # (the row of blank cells is left out, as a blank line is)
    assert csv.field_size_limit() == limit


def test_labels_file_not_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_bytes(b"\xef\xbb\xbfitem_id,label\n1,pass\n2,\xff\n")
    with pytest.raises(CalibrationError) as error:
        read_labels(path)
    assert str(error.value).startswith(f"{path}:3: not valid UTF-8 (byte offset ")


def test_a_skipped_xfailed_or_stopped_item_is_left_out_as_the_aggregates_leave_it(
    mixed: list[dict[str, Any]], tmp_path: Path
) -> None:
    labels = write_labels(tmp_path, HUMAN_CSV)
    one = next(i["item_id"] for i in mixed if i["dataset"] == "a")
    theirs = [i for i in mixed if i["dataset"] == "a" and i["item_id"] == one]
    others = [i for i in mixed if i not in theirs]

    kept = calibrate(mixed, labels, "q", dataset="a")
    xfailed = calibrate(
        [*others, *({**i, "outcome": "skipped"} for i in theirs)], labels, "q", dataset="a"
    )  # (an xfail is stored as skipped)
    stopped = calibrate(
        [*others, *({**i, "outcome": "error", "stopped": True} for i in theirs)],
        labels,
        "q",
        dataset="a",
    )

    assert kept.n == 4 and one not in kept.unmatched_labels
    for report in (xfailed, stopped):  # its label now matches no item counted
        assert (report.n, report.unmatched_labels) == (3, [one])
