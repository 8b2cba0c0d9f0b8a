"""``llmobs calibrate``: agreement between an automated score and human labels."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from textwrap import dedent

import pytest
from sklearn.metrics import cohen_kappa_score

from pytest_llmobs.calibration import CalibrationError, CalibrationReport, read_labels

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
