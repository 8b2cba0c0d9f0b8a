"""CI shards: ``--llm-run-id`` shared by several sessions, and ``llmobs merge`` combining their
exports into the run an unsharded session records."""

from __future__ import annotations

import html
import json
import shutil
from pathlib import Path
from textwrap import dedent
from typing import TYPE_CHECKING, Any

import numpy  # noqa: F401  (loaded once: in-process sessions would load it again, and fail)
import pytest

from pytest_llmobs.cli import main

if TYPE_CHECKING:
    from conftest import Runs

USAGE_ERROR = pytest.ExitCode.USAGE_ERROR
QUIET_INI = "[pytest]\nasyncio_default_fixture_loop_scope = function\n"
"""pytest-asyncio warns in every session that leaves this unset."""

SUITE = """\
    import pytest

    @pytest.mark.llm_dataset("capitals", thresholds=["mean_accuracy >= 0.5"])
    def test_capital(item, llm, scorer):
        answer = llm.generate(item.input)
        correct = scorer.exact_match(answer.text, item.expected_output, name="accuracy")
        scorer.fuzzy(answer.text, item.expected_output, name="closeness")
        scorer.score("verdict", "right" if correct else "wrong")
        assert correct
    """
MODEL = "--llm-model=mock-llm-v1?accuracy=0.6&seed=5"
FIRST_HALF = "france or japan"


@pytest.fixture(autouse=True)
def _quiet_ini(pytester: pytest.Pytester) -> None:
    pytester.makeini(QUIET_INI)


def without_latency(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        group: {a["name"]: a for a in entries if "latency" not in a["name"]}
        for group, entries in run["aggregates"].items()
    }


def export(store: str, run: str, output: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", run, "--store", store, "-o", str(output)]) == 0
    capsys.readouterr()


QUALITY_SHARD = """\
import pytest

@pytest.mark.llm_dataset('capitals')
def test_capital(item, scorer):
    scorer.score('quality', 0.5)
"""
"""Every item scores a quality of 0.5."""


def run_shards(
    pytester: pytest.Pytester, capsys: pytest.CaptureFixture[str], run_id: str = "ci-42.1"
) -> tuple[Path, Path]:
    """Two shards of the suite (``-k`` halves) sharing ``run_id``, exported to JSON."""
    for store, selection in (("shard-a", FIRST_HALF), ("shard-b", f"not ({FIRST_HALF})")):
        result = pytester.runpytest(
            MODEL, f"--llm-run-id={run_id}", f"--llm-store={store}", "-k", selection
        )
        assert result.ret in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED)
    a, b = pytester.path / "a.json", pytester.path / "b.json"
    export(str(pytester.path / "shard-a"), run_id, a, capsys)
    export(str(pytester.path / "shard-b"), run_id, b, capsys)
    return a, b


@pytest.fixture
def quality_shards(
    pytester: pytest.Pytester, capitals: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> tuple[Path, Path]:
    """The two exported shards of `QUALITY_SHARD` over the capitals dataset."""
    pytester.makepyfile(test_shard=QUALITY_SHARD)
    return run_shards(pytester, capsys)


def test_merged_shards_equal_the_unsharded_run(
    pytester: pytest.Pytester,
    runs: Runs,
    capitals: list[dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    pytester.makepyfile(test_shard=dedent(SUITE))
    pytester.runpytest(MODEL, "--llm-store=whole")
    whole = runs.latest("whole")
    a, b = run_shards(pytester, capsys)

    status = main(
        [
            "merge",
            str(a),
            str(b),
            "-o",
            str(pytester.path / "merged.json"),
            "--store",
            str(pytester.path / "merged"),
        ]
    )

    out = capsys.readouterr().out
    merged = runs.latest("merged")
    assert merged["id"] == "ci-42.1"
    assert len(merged["items"]) == len(whole["items"]) == len(capitals)
    assert set(runs.items(merged)) == set(runs.items(whole))
    assert without_latency(merged) == without_latency(whole)
    assert merged["counts"] == whole["counts"]
    assert merged["datasets"] == whole["datasets"]
    assert [(t["expression"], t["observed"], t["passed"]) for t in merged["thresholds"]] == [
        (t["expression"], t["observed"], t["passed"]) for t in whole["thresholds"]
    ]
    shards = [json.loads(p.read_text(encoding="utf-8")) for p in (a, b)]
    assert merged["started_at"] == min(s["started_at"] for s in shards)
    assert merged["ended_at"] == max(s["ended_at"] for s in shards)
    exported = json.loads((pytester.path / "merged.json").read_text(encoding="utf-8"))
    assert exported["format"] == "pytest-llmobs/run"
    assert without_latency(exported) == without_latency(merged)
    assert out.splitlines()[0] == f"merged 2 shards of run ci-42.1: {len(capitals)} items"
    assert "dataset 'capitals' version" in out
    assert status == (0 if merged["status"] == "passed" else 1)


def test_merge_gates_on_thresholds_and_exits_1_when_one_fails(
    pytester: pytest.Pytester,
    capitals: list[dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
    quality_shards: tuple[Path, Path],
) -> None:
    a, b = quality_shards

    assert main(["merge", str(a), str(b), "--threshold", "mean_quality >= 0.5"]) == 0
    passing = capsys.readouterr().out
    status = main(["merge", str(a), str(b), "--threshold", "capitals: mean_quality > 0.9"])
    failing = capsys.readouterr().out

    assert "mean_quality >= 0.5  observed 0.500 (n=4)" in passing
    assert "not stored (--store DIR keeps it)" in passing
    assert status == 1
    assert "capitals: mean_quality > 0.9  observed 0.500 (n=4)" in failing
    assert "1 of 1 threshold(s) failed: gate fails (exit status 1)" in failing


def test_merge_evaluates_a_gate_the_shards_already_have_once(
    pytester: pytest.Pytester,
    capitals: list[dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    pytester.makepyfile(
        test_shard="import pytest\n\n"
        "@pytest.mark.llm_dataset('capitals', thresholds=['mean_quality >= 0.5'])\n"
        "def test_capital(item, scorer):\n    scorer.score('quality', 0.5)\n"
    )
    a, b = run_shards(pytester, capsys)

    status = main(["merge", str(a), str(b), "--threshold", "capitals: mean_quality>=0.50"])

    out = capsys.readouterr().out
    assert status == 0
    assert out.count("mean_quality") == out.count("mean_quality >= 0.5  observed") == 1


def test_merge_refuses_shards_of_different_runs(
    pytester: pytest.Pytester,
    capitals: list[dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    pytester.makepyfile(test_shard=dedent(SUITE))
    a, _ = run_shards(pytester, capsys, run_id="ci-1")
    pytester.runpytest(MODEL, "--llm-run-id=ci-2", "--llm-store=other")
    c = pytester.path / "c.json"
    export(str(pytester.path / "other"), "ci-2", c, capsys)

    assert main(["merge", str(a), str(c)]) == 2

    assert capsys.readouterr().err == (
        f"llmobs: error: cannot merge: {a} has run id 'ci-1' but {c} has run id 'ci-2'; "
        "shards of one run share --llm-run-id and the model\n"
    )


def test_merge_refuses_the_same_item_with_different_results(
    pytester: pytest.Pytester,
    capitals: list[dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    pytester.makepyfile(test_shard=dedent(SUITE))
    a, b = run_shards(pytester, capsys)
    data = json.loads(b.read_text(encoding="utf-8"))
    first = json.loads(a.read_text(encoding="utf-8"))["items"][0]
    data["items"].append({**first, "outcome": "error"})
    b.write_text(json.dumps(data), encoding="utf-8")

    assert main(["merge", str(a), str(b)]) == 2

    assert capsys.readouterr().err == (
        f"llmobs: error: cannot merge: item {first['node_id']!r} is in {a} and in {b} with "
        "different results; shards must not run the same tests\n"
    )


@pytest.mark.parametrize("spelling", ["same", "dot", "absolute", "symlink", "hardlink"])
def test_merge_refuses_a_file_given_twice(
    pytester: pytest.Pytester,
    capitals: list[dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
    spelling: str,
) -> None:
    pytester.makepyfile(test_shard=dedent(SUITE))
    a, _ = run_shards(pytester, capsys)
    again = {
        "same": "a.json",
        "dot": "./a.json",
        "absolute": str(a),
        "symlink": "link.json",
        "hardlink": "hard.json",
    }[spelling]
    if spelling == "symlink":
        (pytester.path / again).symlink_to(a)
    elif spelling == "hardlink":
        (pytester.path / again).hardlink_to(a)
    store = pytester.path / "merged-store"

    status = main(["merge", "a.json", "b.json", again, "--store", str(store)])

    shown = Path(again)  # as argparse's argument becomes a Path: './a.json' is 'a.json'
    how = "is given twice" if str(shown) == "a.json" else "is the same file as a.json"
    assert (status, capsys.readouterr().err) == (
        2,
        f"llmobs: error: cannot merge: {shown} {how}; give each shard's export once\n",
    )
    assert not store.exists()


def test_merge_refuses_two_files_holding_the_same_shard(
    pytester: pytest.Pytester,
    capitals: list[dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    pytester.makepyfile(test_shard=dedent(SUITE))
    a, b = run_shards(pytester, capsys)
    copy = pytester.path / "downloaded" / "a.json"  # one CI artifact fetched twice, say
    copy.parent.mkdir()
    export(str(pytester.path / "shard-a"), "ci-42.1", copy, capsys)  # exported again
    count = len(json.loads(a.read_text(encoding="utf-8"))["items"])

    assert main(["merge", str(a), str(b), str(copy)]) == 2

    assert capsys.readouterr().err == (
        f"llmobs: error: cannot merge: {copy} holds the same shard as {a} (the same {count} "
        "items with the same results); give each shard's export once\n"
    )


def test_merge_keeps_an_item_in_two_files_once_and_says_so(
    pytester: pytest.Pytester,
    capitals: list[dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
    quality_shards: tuple[Path, Path],
) -> None:
    a, b = quality_shards
    merged = pytester.path / "merged.json"
    assert main(["merge", str(a), str(b), "-o", str(merged)]) == 0
    capsys.readouterr()
    count = len(json.loads(b.read_text(encoding="utf-8"))["items"])

    status = main(["merge", str(merged), str(b)])  # a merged run merged again with a shard

    out = capsys.readouterr().out
    assert status == 0
    assert out.startswith(f"merged 2 shards of run ci-42.1: {len(capitals)} items\n")
    assert f"{count} items were in more than one file with the same results: counted once" in (
        out.splitlines()
    )


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        pytest.param("{not json", "not JSON", id="not-json"),
        pytest.param('{"id": "x"}', "not a run export", id="not-an-export"),
    ],
)
def test_merge_names_a_file_that_is_not_an_export(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, problem: str
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(content, encoding="utf-8")

    assert main(["merge", str(bad)]) == 2

    assert capsys.readouterr().err.startswith(f"llmobs: error: {bad}: {problem}")


def _edited(run: dict[str, Any], edit: str) -> dict[str, Any]:
    """``run`` with one thing broken, as a hand-edited or damaged shard would be."""
    item = run["items"][0]
    if edit == "outcome-null":
        item["outcome"] = None
    elif edit == "outcome-unknown":
        item["outcome"] = "exploded"
    elif edit == "item-not-an-object":
        run["items"][0] = "oops"
    elif edit == "aggregates-not-a-mapping":
        run["aggregates"] = "x"
    elif edit == "started-at-text":
        run["started_at"] = "yesterday"
    elif edit == "score-value-wrong-type":
        item["trace"]["scores"][0]["value"] = "x"
    elif edit == "format-version-from-the-future":
        run["format_version"] = 99
    elif edit == "trace-missing":
        del item["trace"]
    elif edit == "repeat-text":
        item["repeat"] = "x"
    elif edit == "marker-threshold-unparsable":
        item["thresholds"] = ["mean_quality >>= 0.5"]
    elif edit == "marker-thresholds-not-a-list":
        item["thresholds"] = "mean_quality >= 0.5"
    elif edit == "stored-threshold-unparsable":
        run["thresholds"] = [{"expression": "nonsense", "source": "llm_dataset marker"}]
    elif edit == "usage-text":
        item["trace"]["observations"].append({"type": "generation", "usage": {"input": "many"}})
    elif edit == "id-a-path":
        run["id"] = "../../etc/x"
    elif edit == "snapshot-prompt-without-hash":
        run["snapshots"] = {"prompts": [{"name": "qa", "version": 1}], "datasets": []}
    elif edit == "ended-before-started":
        run["ended_at"] = run["started_at"] - 60
    elif edit == "latency-text":
        observations = item["trace"]["observations"]
        observations.append({"type": "span", "metadata": {"latency_ms": "user's own"}})
        observations.append({"type": "generation", "metadata": {"latency_ms": "slow"}})
    return run


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        ("outcome-null", "items.0.outcome: Input should be 'passed', 'failed', 'error' or"),
        ("outcome-unknown", "items.0.outcome: Input should be 'passed', 'failed', 'error' or"),
        ("item-not-an-object", "items.0: Input should be a valid dictionary or instance of"),
        ("aggregates-not-a-mapping", "aggregates: Input should be a valid dictionary"),
        ("started-at-text", "started_at: Input should be a valid number"),
        ("score-value-wrong-type", "a NUMERIC score cannot have the value 'x'"),
        ("format-version-from-the-future", "format_version: Input should be less than or equal"),
        ("trace-missing", "items.0.trace: Field required"),
        ("repeat-text", "items.0.repeat: Input should be a valid integer"),
        # parsed by the recorder as it stores each item: a traceback after storing part of it
        ("marker-threshold-unparsable", "items.0.thresholds.0: invalid threshold 'mean_quali"),
        ("marker-thresholds-not-a-list", "items.0.thresholds: "),  # the field, in either check
        ("stored-threshold-unparsable", "thresholds.0.expression: invalid threshold 'nonsense'"),
        # read by the aggregates, after the items are stored
        ("usage-text", "items.0.trace.observations.1.usage.input: Input should be a valid int"),
        ("latency-text", "observations.2: Value error, a generation's metadata.latency_ms must"),
        ("id-a-path", "id: String should match pattern '^[A-Za-z0-9_.:-]{1,128}$'"),
        ("ended-before-started", "Value error, ended_at "),
        # (imported before the run is stored: a KeyError traceback and a 0-item run before)
        ("snapshot-prompt-without-hash", "snapshots.prompts.0.hash: Field required"),
    ],
)
def test_a_damaged_shard_is_named_and_nothing_is_stored(
    pytester: pytest.Pytester,
    capitals: list[dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
    quality_shards: tuple[Path, Path],
    edit: str,
    problem: str,
) -> None:
    a, b = quality_shards
    b.write_text(json.dumps(_edited(json.loads(b.read_text(encoding="utf-8")), edit)))
    store = pytester.path / "merged-store"

    status = main(["merge", str(a), str(b), "--store", str(store)])

    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith(f"llmobs: error: {b}: not a valid run export: ")
    assert problem in err and len(err.strip().splitlines()) == 1
    assert not store.exists()  # checked before the store is opened: a retry is not refused


def test_merge_output_is_checked_before_the_run_is_stored(
    pytester: pytest.Pytester,
    capitals: list[dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
    quality_shards: tuple[Path, Path],
) -> None:
    a, b = quality_shards
    store = str(pytester.path / "merged-store")

    into_a_directory = main(["merge", str(a), str(b), "--store", store, "-o", str(pytester.path)])
    refused = capsys.readouterr().err
    into_a_new_directory = main(
        ["merge", str(a), str(b), "--store", store, "-o", str(pytester.path / "out" / "m.json")]
    )

    assert into_a_directory == 2
    assert refused == f"llmobs: error: -o {pytester.path}: is a directory; give a file name\n"
    assert into_a_new_directory == 0  # the refused attempt stored nothing: no "already in"
    merged = json.loads((pytester.path / "out" / "m.json").read_text(encoding="utf-8"))
    assert merged["id"] == "ci-42.1" and len(merged["items"]) == len(capitals)


# --- --llm-run-id -------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["ci 42", "ci/42", "x" * 129, "ünï"])
def test_invalid_run_id_is_a_usage_error(pytester: pytest.Pytester, bad: str) -> None:
    pytester.makepyfile("def test_one():\n    pass\n")

    result = pytester.runpytest(f"--llm-run-id={bad}")

    assert result.ret == USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            f"ERROR: --llm-run-id: invalid run id {bad!r}; expected 1 to 128 letters, digits, "
            "'-', '_', '.' or ':', e.g. 'ci-4242.1'"
        ]
    )


def test_run_id_comes_from_the_ini_file(pytester: pytest.Pytester, runs: Runs) -> None:
    pytester.makeini(QUIET_INI + "llm_run_id = nightly:2026-11-27\n")
    pytester.makepyfile("def test_one():\n    pass\n")

    pytester.runpytest().assert_outcomes(passed=1)

    assert runs.latest()["id"] == "nightly:2026-11-27"


def test_invalid_run_id_in_the_ini_file_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeini(QUIET_INI + "llm_run_id = a b\n")
    pytester.makepyfile("def test_one():\n    pass\n")

    result = pytester.runpytest()

    assert result.ret == USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: llm_run_id in *tox.ini: invalid run id 'a b'; *"])


def test_run_id_already_in_the_store_is_a_usage_error(
    pytester: pytest.Pytester, runs: Runs, xdist_args: tuple[str, ...]
) -> None:
    pytester.makepyfile("def test_one():\n    pass\n")
    pytester.runpytest("--llm-run-id=ci-7", *xdist_args).assert_outcomes(passed=1)

    result = pytester.runpytest("--llm-run-id=ci-7", *xdist_args)

    assert result.ret == USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            f"ERROR: --llm-run-id: run 'ci-7' is already in {runs.db()}; each shard records its "
            "part in its own store, and 'llmobs merge' combines their exports"
        ]
    )
    assert [r["id"] for r in runs.list()] == ["ci-7"]


def test_a_run_id_another_session_takes_after_the_check_is_a_usage_error(
    pytester: pytest.Pytester, runs: Runs
) -> None:
    """Two sessions started together: both checked the id before either stored it."""
    pytester.makeconftest(
        """
        import pytest
        from pytest_llmobs.store import Store

        @pytest.hookimpl(tryfirst=True)
        def pytest_sessionstart(session):
            store = Store.in_directory(session.config.rootpath / ".llmobs")
            store.begin_run({"id": "ci-8", "name": "other", "model": "m", "started_at": 1.0})
            store.close()
            Store.has_run = lambda self, run_id: False  # as when checked before the insert
        """
    )
    pytester.makepyfile("def test_one():\n    pass\n")

    result = pytester.runpytest("--llm-run-id=ci-8")

    assert result.ret == USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: --llm-run-id: run 'ci-8' is already in {runs.db()}; *"])
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    assert [r["name"] for r in runs.list()] == ["other"]


# --- shards whose session failed outside their items ------------------------------------------


def test_a_shard_with_a_collection_error_fails_the_merged_run(
    pytester: pytest.Pytester, capsys: pytest.CaptureFixture[str]
) -> None:
    pytester.makepyfile(
        test_ok="def test_ok(scorer):\n    scorer.score('v', 1.0)\n",
        test_broken="import nonexistent_module_xyz\n\ndef test_b():\n    pass\n",
    )
    pytester.runpytest(
        "--llm-run-id=ci-9", "--llm-store=s1", "--llm-json=shard-1.json", "test_ok.py"
    ).assert_outcomes(passed=1)
    broken = pytester.runpytest(
        "--llm-run-id=ci-9", "--llm-store=s2", "--llm-json=shard-2.json", "test_broken.py"
    )
    assert broken.ret == pytest.ExitCode.INTERRUPTED  # "1 error during collection"
    one, two = pytester.path / "shard-1.json", pytester.path / "shard-2.json"
    merged = pytester.path / "run.json"
    capsys.readouterr()

    status = main(["merge", str(one), str(two), "-o", str(merged)])

    out = capsys.readouterr().out
    assert status == 1
    why = f"shard {two} failed: its session failed with no items (a collection error?)"
    assert f"  ERROR {why}" in out.splitlines()
    assert out.count(f"shard {two} failed") == 1  # (it was a note too: said twice)
    assert out.splitlines()[1].endswith("-> failed")
    run = json.loads(merged.read_text(encoding="utf-8"))
    assert run["status"] == "failed"
    assert run["errors"] == [why]  # stored with the run: a later report says why it failed
    capsys.readouterr()
    assert main(["report", str(merged), "-o", str(pytester.path / "r.html")]) == 0
    assert html.escape(why) in (pytester.path / "r.html").read_text(encoding="utf-8")


def test_a_shard_with_a_crashed_worker_fails_the_merged_run_and_keeps_its_missing_list(
    pytester: pytest.Pytester, capsys: pytest.CaptureFixture[str]
) -> None:
    # (the worker dies in the test's setup; one dying in its body is stored as a failed item)
    pytester.makepyfile(
        test_crash="import os\nimport pytest\n\n@pytest.fixture\ndef dies():\n    os._exit(1)\n\n"
        "def test_before():\n    pass\n\n"
        "def test_dies(dies):\n    pass\n\ndef test_after():\n    pass\n"
    )
    pytester.makepyfile(test_other="def test_other():\n    pass\n")
    pytester.runpytest_subprocess(
        "-n",
        "2",
        "-p",
        "no:cacheprovider",
        "--llm-run-id=ci-3",
        "--llm-store=s1",
        "--llm-json=a.json",
        "test_crash.py",
    ).assert_outcomes(passed=2, failed=1)
    pytester.runpytest(
        "--llm-run-id=ci-3", "--llm-store=s2", "--llm-json=b.json", "test_other.py"
    ).assert_outcomes(passed=1)
    a, b = pytester.path / "a.json", pytester.path / "b.json"
    merged = pytester.path / "merged.json"
    capsys.readouterr()

    status = main(["merge", str(a), str(b), "-o", str(merged)])

    lines = capsys.readouterr().out.splitlines()
    assert status == 1
    assert lines[0] == "merged 2 shards of run ci-3: 3 items"
    assert lines.count(f"  ERROR shard {a} failed: 1 collected item missing") == 1
    assert sum(f"shard {a} failed" in line for line in lines) == 1  # (not a note as well)
    assert "1 collected item missing from the run:" in lines
    run = json.loads(merged.read_text(encoding="utf-8"))
    assert run["status"] == "failed"
    assert [m["node_id"] for m in run["missing"]] == ["test_crash.py::test_dies"]
    assert run["missing"][0]["reason"].endswith(f"crashed while running it; in {a}")


def test_a_shard_failing_only_its_own_threshold_does_not_fail_the_merged_run(
    pytester: pytest.Pytester,
    capitals: list[dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    pytester.makepyfile(
        test_shard="import pytest\n\n"
        "@pytest.mark.llm_dataset('capitals', thresholds=['count >= 3'])\n"
        "def test_capital(item, scorer):\n    scorer.score('quality', 0.5)\n"
    )
    a, b = run_shards(pytester, capsys)  # two items each: each shard fails `count >= 3`
    assert json.loads(a.read_text(encoding="utf-8"))["status"] == "failed"

    status = main(["merge", str(a), str(b)])

    out = capsys.readouterr().out
    assert status == 0, out
    assert "failed:" not in out


# --- prompt versions ----------------------------------------------------------------------------

PROMPTED_SUITE = """\
import pytest

@pytest.mark.llm_dataset('capitals')
def test_m(item, prompt, llm):
    llm.generate(prompt('g').compile(q=item.input))
"""
"""Each item asks through prompt ``g`` (``prompts/g.json``, written by the test)."""


def write_prompt(pytester: pytest.Pytester, template: str) -> None:
    path = pytester.path / "prompts" / "g.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps({"type": "text", "prompt": template}), encoding="utf-8")


def test_the_merged_store_gets_the_shards_prompt_versions_and_dataset_snapshots(
    pytester: pytest.Pytester,
    runs: Runs,
    capitals: list[dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    # (before, an upload from the merged store linked generations to prompt versions it did
    # not have and sent dataset items without their metadata)
    pytester.makepyfile(test_m=PROMPTED_SUITE)
    write_prompt(pytester, "Q: {{q}}")
    for store, selection, output in (
        ("s1", FIRST_HALF, "c.json"),
        ("s2", f"not ({FIRST_HALF})", "d.json"),
    ):
        result = pytester.runpytest(
            "--llm-run-id=ci-3", f"--llm-store={store}", f"--llm-json={output}", "-k", selection
        )
        assert result.ret == pytest.ExitCode.OK
    c, d = pytester.path / "c.json", pytester.path / "d.json"
    capsys.readouterr()

    status = main(["merge", str(c), str(d), "--store", "merged", "-o", "merged.json"])

    assert status == 0, capsys.readouterr().err
    merged = runs.latest("merged")
    with runs.open("merged") as store:
        (link,) = merged["prompts"]
        stored = store.get_prompt("g", version=1)
        assert stored is not None and (stored["hash"], stored["prompt"]) == (
            link["hash"],
            "Q: {{q}}",
        )
        snapshot = store.get_dataset("capitals", merged["datasets"]["capitals"])
    assert snapshot is not None and [i["id"] for i in snapshot] == [c["id"] for c in capitals]
    exported = json.loads((pytester.path / "merged.json").read_text(encoding="utf-8"))
    assert [p["hash"] for p in exported["snapshots"]["prompts"]] == [link["hash"]]


def prompt_links(run: dict[str, Any]) -> set[tuple[str, int]]:
    """(prompt name, version) of every generation of the run's items."""
    return {
        (o["prompt_name"], o["prompt_version"])
        for item in run["items"]
        for o in item["trace"]["observations"]
        if o.get("prompt_name")
    }


def test_merge_into_a_store_with_other_content_under_the_shards_number_gives_it_another(
    pytester: pytest.Pytester,
    runs: Runs,
    capitals: list[dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    # (before, the store's own content stayed and the merged run was linked to it; then the
    # merge was refused: one content numbered otherwise by another store is no conflict)
    pytester.makepyfile(test_m=PROMPTED_SUITE)
    for content, store, args in (
        ("CI {{q}}", "ci", ["--llm-run-id=ci-4", "--llm-json=shard.json"]),
        ("LOCAL {{q}}", "local", []),
    ):
        write_prompt(pytester, content)
        pytester.runpytest(f"--llm-store={store}", *args).assert_outcomes(passed=len(capitals))
    shard = pytester.path / "shard.json"
    capsys.readouterr()

    status = main(["merge", str(shard), "--store", "local", "-o", "merged.json"])

    out = capsys.readouterr().out
    assert status == 0, out
    assert (
        f"prompt 'g' version 1 of {shard} is version 2 of the merged run "
        "(local/llmobs.db has other content as version 1)"
    ) in out.splitlines()
    merged = runs.load("ci-4", "local")
    (link,) = merged["prompts"]
    assert (link["version"], prompt_links(merged)) == (2, {("g", 2)})
    with runs.open("local") as store:
        kept = [store.get_prompt("g", version=v) for v in (1, 2)]
    assert [(p or {}).get("prompt") for p in kept] == ["LOCAL {{q}}", "CI {{q}}"]
    assert (kept[1] or {}).get("hash") == link["hash"]
    exported = json.loads((pytester.path / "merged.json").read_text(encoding="utf-8"))
    assert [(p["version"], p["prompt"]) for p in exported["snapshots"]["prompts"]] == [
        (2, "CI {{q}}")
    ]


@pytest.mark.parametrize(
    "history",
    [
        [],
        [("LOCAL {{q}}", ["production"])],
        [("CI {{q}}", []), ("LOCAL {{q}}", ["production", "staging"])],
    ],
    ids=["new-store", "label-on-other-content", "content-kept-label-elsewhere"],
)
def test_merge_sets_the_shards_prompt_labels_as_the_unsharded_session_would(
    pytester: pytest.Pytester,
    runs: Runs,
    capitals: list[dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
    history: list[tuple[str, list[str]]],
) -> None:
    # (before: the merged store kept the version without labels, 'latest' neither, so
    # prompt(name, label=...) and the merged export had none)
    pytester.makepyfile(test_m=PROMPTED_SUITE)
    prompt = pytester.path / "prompts" / "g.json"
    prompt.parent.mkdir()
    for template, labels in history:  # what the target store saw before
        prompt.write_text(json.dumps({"prompt": template, "labels": labels}), encoding="utf-8")
        pytester.runpytest("--llm-store=target", "-k", FIRST_HALF).assert_outcomes(passed=2)
    if history:  # the same store, for the unsharded session to run on
        shutil.copytree(pytester.path / "target", pytester.path / "twin")
    prompt.write_text(json.dumps({"prompt": "CI {{q}}", "labels": ["production"]}), "utf-8")
    for store, selection, output in (
        ("s1", FIRST_HALF, "c.json"),
        ("s2", f"not ({FIRST_HALF})", "d.json"),
    ):
        pytester.runpytest(
            "--llm-run-id=ci-7", f"--llm-store={store}", f"--llm-json={output}", "-k", selection
        ).assert_outcomes(passed=2)
    pytester.runpytest("--llm-store=twin").assert_outcomes(passed=len(capitals))
    c, d, merged = (pytester.path / name for name in ("c.json", "d.json", "merged.json"))
    capsys.readouterr()

    status = main(["merge", str(c), str(d), "--store", "target", "-o", str(merged)])

    assert status == 0, capsys.readouterr().out
    (link,) = runs.load("ci-7", "target")["prompts"]
    with runs.open("target") as target, runs.open("twin") as twin:
        assert target.prompt_index("g") == twin.prompt_index("g")
        assert target.prompt_hashes("g") == twin.prompt_hashes("g")
        production = target.get_prompt("g", label="production")
        assert production is not None and production["hash"] == link["hash"]
        kept = twin.get_prompt("g", version=link["version"])
    (snapshot,) = json.loads(merged.read_text(encoding="utf-8"))["snapshots"]["prompts"]
    assert kept is not None and snapshot["labels"] == kept["labels"]


@pytest.mark.parametrize("target", ["memory", "fresh-store", "store-numbering-it-3"])
def test_one_prompt_content_numbered_differently_by_two_shards_gets_one_number(
    pytester: pytest.Pytester,
    runs: Runs,
    capitals: list[dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
    target: str,
) -> None:
    # (before: the merged run listed the prompt as v1 and v2 with one hash, one snapshot was
    # kept, and one shard's generations linked to a version that existed nowhere)
    pytester.makepyfile(test_m=PROMPTED_SUITE)
    write_prompt(pytester, "Old: {{q}}")  # shard 1's store (a CI cache) had an older version
    pytester.runpytest("--llm-store=s1", "-k", FIRST_HALF).assert_outcomes(passed=2)
    if target == "store-numbering-it-3":  # the target store saw two older versions first
        for template in ("Older: {{q}}", "Old: {{q}}", "Q: {{q}}"):
            write_prompt(pytester, template)
            pytester.runpytest("--llm-store=target", "-k", FIRST_HALF).assert_outcomes(passed=2)
    write_prompt(pytester, "Q: {{q}}")
    for store, selection, output in (
        ("s1", FIRST_HALF, "c.json"),  # version 2 there
        ("s2", f"not ({FIRST_HALF})", "d.json"),  # version 1 in a new store
    ):
        pytester.runpytest(
            "--llm-run-id=ci-6", f"--llm-store={store}", f"--llm-json={output}", "-k", selection
        ).assert_outcomes(passed=2)
    c, d = pytester.path / "c.json", pytester.path / "d.json"
    assert [p["version"] for p in json.loads(c.read_text(encoding="utf-8"))["prompts"]] == [2]
    assert [p["version"] for p in json.loads(d.read_text(encoding="utf-8"))["prompts"]] == [1]
    store = [] if target == "memory" else ["--store", "target"]
    capsys.readouterr()

    status = main(["merge", str(c), str(d), "-o", "merged.json", *store])

    out = capsys.readouterr().out
    assert status == 0, out
    merged = json.loads((pytester.path / "merged.json").read_text(encoding="utf-8"))
    number = 3 if target == "store-numbering-it-3" else 1
    (link,) = merged["prompts"]
    assert link["version"] == number
    assert prompt_links(merged) == {("g", number)}
    for item in merged["items"]:
        assert [p["version"] for p in item["prompts"]] == [number]
    assert [(p["version"], p["prompt"]) for p in merged["snapshots"]["prompts"]] == [
        (number, "Q: {{q}}")
    ]
    renumbered = (
        f"prompt 'g' version 2 of {c} is version 1 of the merged run (the shards' stores "
        "numbered that content differently)"
        if number == 1
        else f"prompt 'g' version 1 of {d} is version 3 of the merged run (as "
        "target/llmobs.db numbers that content)"
    )
    assert renumbered in out.splitlines()
    if target != "memory":
        with runs.open("target") as kept:
            assert kept.prompt_hashes("g")[number] == link["hash"]
            assert len(kept.prompt_hashes("g")) == number


def test_merge_refuses_one_prompt_version_with_two_contents(
    pytester: pytest.Pytester, capsys: pytest.CaptureFixture[str]
) -> None:
    pytester.makepyfile(
        test_m="import pytest\n\n@pytest.mark.parametrize('x', range(4))\n"
        "def test_m(x, prompt, llm):\n    llm.generate(prompt('g').compile(x=x))\n"
    )
    prompt = pytester.path / "prompts" / "g.json"
    prompt.parent.mkdir()
    for content, store, selection, output in (
        ("AAA", "s1", "0 or 1", "c.json"),
        ("BBB", "s2", "2 or 3", "d.json"),
    ):
        prompt.write_text(json.dumps({"type": "text", "prompt": content + " {{x}}"}))
        pytester.runpytest(
            "--llm-run-id=ci-2", f"--llm-store={store}", f"--llm-json={output}", "-k", selection
        ).assert_outcomes(passed=2)
    c, d = pytester.path / "c.json", pytester.path / "d.json"
    (first,) = json.loads(c.read_text(encoding="utf-8"))["prompts"]
    (second,) = json.loads(d.read_text(encoding="utf-8"))["prompts"]
    assert first["version"] == second["version"] == 1
    store = pytester.path / "merged"
    capsys.readouterr()

    status = main(["merge", str(c), str(d), "--store", str(store)])

    assert status == 2
    assert capsys.readouterr().err == (
        f"llmobs: error: cannot merge: prompt 'g' version 1 has hash {first['hash']!r} in {c} "
        f"but {second['hash']!r} in {d}; the shards' prompt files differ\n"
    )
    assert not store.exists()


KIND_SHARD = """\
import pytest

@pytest.mark.llm_dataset('capitals')
def test_capital(item, scorer):
    # the first half's shard scores a number, the other's a word
    scorer.score('quality', 0.5 if item.id in ('france', 'japan') else 'good')
"""


def test_merge_fails_a_score_name_the_shards_recorded_with_two_kinds(
    pytester: pytest.Pytester,
    runs: Runs,
    capitals: list[dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Each shard's scorer saw one kind; the merge sees both, as an xdist controller would."""
    pytester.makepyfile(test_shard=KIND_SHARD)
    a, b = run_shards(pytester, capsys)

    status = main(["merge", str(a), str(b), "--store", str(pytester.path / "merged")])

    out = capsys.readouterr().out
    assert status == 1
    assert "ERROR score 'quality' was a number (or bool) first (" in out
    assert "not recomputed" not in out  # the words were left out on purpose, not lost
    merged = runs.latest("merged")
    words = len(capitals) - 2
    assert merged["counts"] == {"failed": words, "passed": 2}
    aggregates = runs.aggregates(merged, "*")
    assert aggregates["mean_quality"]["n"] == 2
    assert "counts_quality" not in aggregates


# --- run evaluators, governance, retried shards -------------------------------------------------

SHORT_RATE = """\
import pytest_llmobs

@pytest_llmobs.run_evaluator
def short_rate(items):
    short = [len(str(i["trace"]["observations"][0]["output"] or "")) < 6 for i in items]
    return sum(short) / max(len(short), 1)

def pytest_llmobs_register_evaluators(registry, config):
    registry.add_run(short_rate)
"""
"""A run evaluator: the share of items whose root span's output is under 6 characters."""


def test_a_shard_threshold_on_a_run_evaluators_aggregate_is_not_evaluated_by_the_merge(
    pytester: pytest.Pytester,
    runs: Runs,
    capitals: list[dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    # (before: "ERROR: no aggregate 'short_rate' ... known: ..." failed every merge)
    pytester.makeini(QUIET_INI + "llm_threshold = short_rate >= 0.5\n")
    pytester.makeconftest(SHORT_RATE)
    pytester.makepyfile(
        test_s="def test_a(llm):\n    llm.generate('What is the capital of France?')\n"
    )
    pytester.makepyfile(test_t="def test_b():\n    pass\n")  # (its root span has no output)
    for store, test, output in (("s1", "test_s.py", "c.json"), ("s2", "test_t.py", "d.json")):
        pytester.runpytest(
            "--llm-run-id=ci-8", f"--llm-store={store}", f"--llm-json={output}", test
        )
    c, d = pytester.path / "c.json", pytester.path / "d.json"
    assert [t["passed"] for t in json.loads(c.read_text(encoding="utf-8"))["thresholds"]] == [True]
    capsys.readouterr()

    status = main(["merge", str(c), str(d), "--store", "merged"])

    out = capsys.readouterr().out
    assert status == 0, out
    assert (
        "  – short_rate >= 0.5  not evaluated: 'short_rate' is a run evaluator's aggregate, "
        "which llmobs merge does not recompute (run evaluators need the suite's code); each "
        f"shard's session judged its own items: passed in {c}, {d}"
    ) in out.splitlines()
    assert "threshold(s) failed" not in out
    (stored,) = runs.load("ci-8", "merged")["thresholds"]
    assert (stored["passed"], stored["evaluated"]) == (True, False)


def test_a_merge_threshold_on_a_run_evaluators_aggregate_is_refused(
    pytester: pytest.Pytester, capsys: pytest.CaptureFixture[str]
) -> None:
    pytester.makeconftest(SHORT_RATE)
    pytester.makepyfile(
        test_s="def test_a(llm):\n    llm.generate('What is the capital of France?')\n"
    )
    pytester.runpytest("--llm-run-id=ci-8", "--llm-json=c.json").assert_outcomes(passed=1)
    capsys.readouterr()

    status = main(["merge", "c.json", "--threshold", "short_rate >= 0.5"])

    assert status == 2
    assert capsys.readouterr().err == (
        "llmobs: error: --threshold 'short_rate >= 0.5': 'short_rate' is a run evaluator's "
        "aggregate in the shards, which llmobs merge does not recompute (run evaluators need the "
        "suite's code); --threshold gates the aggregates merge computes from the items\n"
    )


MAILS = """\
from pytest_llmobs import start_span

def test_{name}():
    with start_span("s") as span:
        span.update(output="mail {name}@example.com, order 12345678")
"""


@pytest.mark.parametrize("where", [["--store", "merged"], ["-o", "merged.json"]])
def test_the_merge_applies_the_projects_redaction_to_what_it_stores(
    pytester: pytest.Pytester, runs: Runs, capsys: pytest.CaptureFixture[str], where: list[str]
) -> None:
    # (before: a shard recorded with --llm-redact=off kept its addresses in the merged store)
    pytester.makeini(QUIET_INI + "llm_redact = strict\n")
    pytester.makepyfile(test_a=MAILS.format(name="ann"), test_b=MAILS.format(name="bob"))
    for store, test, extra in (("s1", "test_a.py", []), ("s2", "test_b.py", ["--llm-redact=off"])):
        pytester.runpytest(
            "--llm-run-id=ci-9", f"--llm-store={store}", f"--llm-json={store}.json", test, *extra
        ).assert_outcomes(passed=1)
    assert "bob@example.com" in (pytester.path / "s2.json").read_text(encoding="utf-8")
    capsys.readouterr()

    assert main(["merge", "s1.json", "s2.json", *where]) == 0

    if where[0] == "--store":
        merged = runs.load("ci-9", "merged")
    else:
        merged = json.loads((pytester.path / "merged.json").read_text(encoding="utf-8"))
    spans = [o for i in merged["items"] for o in i["trace"]["observations"] if o["name"] == "s"]
    outputs = [span["output"] for span in spans]
    assert outputs == ["mail <EMAIL>, order <NUMBER>"] * 2


def test_a_bad_redaction_setting_is_a_usage_error_before_anything_is_stored(
    pytester: pytest.Pytester, capsys: pytest.CaptureFixture[str]
) -> None:
    pytester.makepyfile(test_a="def test_a():\n    pass\n")
    pytester.runpytest("--llm-run-id=ci-9", "--llm-json=s1.json").assert_outcomes(passed=1)
    pytester.makeini(QUIET_INI + "llm_redact = strictest\n")
    capsys.readouterr()

    status = main(["merge", "s1.json", "--store", "merged"])

    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith("llmobs: error: cannot merge: llm_redact in ")
    assert "'strictest' is not a redaction mode" in err
    assert not (pytester.path / "merged").exists()


def test_a_retried_shard_is_refused_as_recorded_twice(
    pytester: pytest.Pytester, capitals: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    # (before: "... with different results; shards must not run the same tests")
    pytester.makepyfile(test_shard=dedent(SUITE))
    a, b = run_shards(pytester, capsys)
    pytester.runpytest(MODEL, "--llm-run-id=ci-42.1", "--llm-store=retry", "-k", FIRST_HALF)
    retry = pytester.path / "retry.json"
    export(str(pytester.path / "retry"), "ci-42.1", retry, capsys)
    first = json.loads(a.read_text(encoding="utf-8"))["items"][0]["node_id"]

    assert main(["merge", str(a), str(retry), str(b)]) == 2

    assert capsys.readouterr().err == (
        f"llmobs: error: cannot merge: item {first!r} is recorded twice, in {a} and in {retry} "
        "(the same results in different traces: a retried shard? keep one export)\n"
    )


# --- shards that ran nothing, retried failing shards, models, edited dataset versions -------------


def test_a_shard_whose_selection_ran_nothing_does_not_fail_the_merged_run(
    pytester: pytest.Pytester, capsys: pytest.CaptureFixture[str]
) -> None:
    # (before: "shard b.json failed: its session failed with no items (a collection error?)")
    pytester.makepyfile(test_ok="def test_ok():\n    pass\n")
    gate = "--llm-threshold=pass_rate >= 0.5"
    pytester.runpytest(gate, "--llm-run-id=ci-5", "--llm-store=s1", "--llm-json=a.json")
    nothing = pytester.runpytest(
        gate, "--llm-run-id=ci-5", "--llm-store=s2", "--llm-json=b.json", "-k", "no_such_test"
    )
    assert nothing.ret == pytest.ExitCode.TESTS_FAILED  # its threshold has no pass_rate to judge
    b = json.loads((pytester.path / "b.json").read_text(encoding="utf-8"))
    assert (b["status"], b["items"], b["errors"]) == ("failed", [], [])
    capsys.readouterr()

    status = main(["merge", "a.json", "b.json"])

    out = capsys.readouterr().out
    assert status == 0, out
    assert "  ✓ pass_rate >= 0.5  observed 1 (n=1)" in out.splitlines()
    assert "failed:" not in out


@pytest.mark.parametrize("with_items", [False, True], ids=["no-items", "items-passed"])
def test_a_collection_error_fails_the_merged_run_though_the_shard_also_failed_a_threshold(
    pytester: pytest.Pytester, capsys: pytest.CaptureFixture[str], with_items: bool
) -> None:
    # (before, with items: the failed threshold hid the collection error; the merge passed)
    pytester.makepyfile(
        test_ok="def test_ok():\n    pass\n",
        test_more="def test_more():\n    pass\n",
        test_broken="import nonexistent_module_xyz\n",
    )
    gate, run_id = "--llm-threshold=count >= 2", "--llm-run-id=ci-6"
    first = ["test_ok.py"] if with_items else ["test_ok.py", "test_more.py"]
    second = ["test_broken.py"]
    second += ["--continue-on-collection-errors", "test_more.py"] if with_items else []
    pytester.runpytest(gate, run_id, "--llm-store=s1", "--llm-json=a.json", *first)
    pytester.runpytest(gate, run_id, "--llm-store=s2", "--llm-json=b.json", *second)
    b = json.loads((pytester.path / "b.json").read_text(encoding="utf-8"))
    assert [t["passed"] for t in b["thresholds"]] == [False]
    assert len(b["items"]) == (1 if with_items else 0)
    capsys.readouterr()

    status = main(["merge", "a.json", "b.json"])

    lines = capsys.readouterr().out.splitlines()
    assert status == 1
    assert "  ✓ count >= 2  observed 2 (n=2)" in lines  # (the merged run's own gate passes)
    why = (
        "pytest counted 1 failure(s) outside the tests stored in this run (a collection error, "
        "say): see its summary"
        if with_items
        else "its session failed with no items (a collection error?)"
    )
    assert f"  ERROR shard b.json failed: {why}" in lines


FAILING_MODEL = "--llm-model=mock-llm-v1?accuracy=0.0"
ASSERTING_SUITE = """\
import pytest

@pytest.mark.llm_dataset("capitals")
def test_capital(item, llm, scorer):
    assert scorer.exact_match(llm.generate(item.input).text, item.expected_output, name="acc")
"""
"""A failure's text quotes the `LLMResult`: its latency and observation id."""


def test_a_retried_shard_whose_items_failed_is_refused_as_recorded_twice(
    pytester: pytest.Pytester, capitals: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    # (before: "... with different results": the assertion's text quotes the LLMResult, its
    # latency and observation id)
    pytester.makepyfile(test_shard=ASSERTING_SUITE)
    for store in ("first", "retry"):
        result = pytester.runpytest(
            FAILING_MODEL, "--llm-run-id=ci-7", f"--llm-store={store}", f"--llm-json={store}.json"
        )
        result.assert_outcomes(failed=len(capitals))
    item = json.loads((pytester.path / "first.json").read_text(encoding="utf-8"))["items"][0]
    assert "latency_ms=" in item["error"] and "observation_id=" in item["error"]
    capsys.readouterr()

    assert main(["merge", "first.json", "retry.json"]) == 2

    assert capsys.readouterr().err == (
        f"llmobs: error: cannot merge: item {item['node_id']!r} is recorded twice, in first.json "
        "and in retry.json (the same results in different traces: a retried shard? keep one "
        "export)\n"
    )


@pytest.mark.parametrize("where", ["error", "status_message"])
def test_a_retried_shard_with_another_failure_has_different_results(
    pytester: pytest.Pytester,
    capitals: list[dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
    where: str,
) -> None:
    pytester.makepyfile(test_shard=ASSERTING_SUITE)
    for store in ("first", "retry"):
        pytester.runpytest(
            FAILING_MODEL, "--llm-run-id=ci-7", f"--llm-store={store}", f"--llm-json={store}.json"
        )
    retry = pytester.path / "retry.json"
    run = json.loads(retry.read_text(encoding="utf-8"))
    item = run["items"][0]
    holder = item if where == "error" else item["trace"]["observations"][0]
    holder[where] = holder[where].replace("Usage(input=", "Usage(in=")
    retry.write_text(json.dumps(run), encoding="utf-8")
    capsys.readouterr()

    assert main(["merge", "first.json", "retry.json"]) == 2

    assert capsys.readouterr().err == (
        f"llmobs: error: cannot merge: item {item['node_id']!r} is in first.json and in "
        "retry.json with different results; shards must not run the same tests\n"
    )


def test_shards_of_one_model_spelled_with_its_options_in_another_order_merge(
    pytester: pytest.Pytester, capitals: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    # (before: "cannot merge: a.json has model 'mock-llm-v1?seed=3&accuracy=0.7' but ...")
    pytester.makepyfile(test_shard=QUALITY_SHARD)
    spellings = {
        "a": "seed=3&accuracy=0.7",
        "b": "accuracy=0.7&seed=3",
        "c": "accuracy=0.70&seed=3&latency_ms=0",  # the same options, defaults spelled out
        "d": "accuracy=0.7&seed=4",
    }
    for name, options in spellings.items():
        pytester.runpytest(
            f"--llm-model=mock-llm-v1?{options}",
            "--llm-run-id=ci-8",
            f"--llm-store={name}",
            f"--llm-json={name}.json",
            "-k",
            {"a": FIRST_HALF, "b": f"not ({FIRST_HALF})"}.get(name, "france"),
        )
    capsys.readouterr()

    assert main(["merge", "a.json", "b.json"]) == 0
    assert main(["merge", "b.json", "c.json"]) == 0  # (c holds an item b does not)
    capsys.readouterr()
    assert main(["merge", "a.json", "d.json"]) == 2
    assert capsys.readouterr().err == (
        "llmobs: error: cannot merge: a.json has model 'mock-llm-v1?seed=3&accuracy=0.7' but "
        "d.json has model 'mock-llm-v1?accuracy=0.7&seed=4'; shards of one run share "
        "--llm-run-id and the model\n"
    )


@pytest.mark.parametrize("fields", [("dataset_version",), ("dataset_version", "datasets")])
def test_an_item_naming_another_dataset_version_than_its_shard_is_refused(
    pytester: pytest.Pytester,
    capitals: list[dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
    quality_shards: tuple[Path, Path],
    fields: tuple[str, ...],
) -> None:
    # (before: merged silently; with both fields edited, the merged run named deadbeef0000 and
    # had no snapshot of the dataset)
    a, b = quality_shards
    run = json.loads(b.read_text(encoding="utf-8"))
    real = run["datasets"]["capitals"]
    for item in run["items"]:  # every item: the run's own header is left as it was
        item["dataset_version"] = "deadbeef0000"
        if "datasets" in fields:
            item["datasets"] = {"capitals": "deadbeef0000"}
    b.write_text(json.dumps(run), encoding="utf-8")
    store = pytester.path / "merged-store"

    status = main(["merge", str(a), str(b), "--store", str(store)])

    assert (status, capsys.readouterr().err) == (
        2,
        f"llmobs: error: cannot merge: item {run['items'][0]['node_id']!r} of {b} is at dataset "
        f"'capitals' version deadbeef0000 but {b}'s run names version {real}; was the export "
        "edited?\n",
    )
    assert not store.exists()
