"""CI shards: ``--llm-run-id`` shared by several sessions, and ``llmobs merge`` combining their
exports into the run an unsharded session records."""

from __future__ import annotations

import html
import json
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
    assert f"shard {two} failed: its session failed with no items (a collection error?)" in (
        out.splitlines()
    )
    assert out.splitlines()[1].endswith("-> failed")
    run = json.loads(merged.read_text(encoding="utf-8"))
    assert run["status"] == "failed"
    why = f"shard {two} failed: its session failed with no items (a collection error?)"
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
    assert lines.count(f"shard {a} failed: 1 collected item missing") == 1
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


def test_merge_refuses_a_store_whose_prompt_version_has_other_content(
    pytester: pytest.Pytester,
    runs: Runs,
    capitals: list[dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    # (before, the store's own content stayed and the merged run was linked to it)
    pytester.makepyfile(test_m=PROMPTED_SUITE)
    for content, store, args in (
        ("CI {{q}}", "ci", ["--llm-run-id=ci-4", "--llm-json=shard.json"]),
        ("LOCAL {{q}}", "local", []),
    ):
        write_prompt(pytester, content)
        pytester.runpytest(f"--llm-store={store}", *args).assert_outcomes(passed=len(capitals))
    capsys.readouterr()

    status = main(["merge", str(pytester.path / "shard.json"), "--store", "local"])

    assert status == 2
    err = capsys.readouterr().err
    assert err.startswith("llmobs: error: cannot merge into ")
    assert (
        "prompt 'g' version 1 there has hash " in err and "store the merged run in another" in err
    )
    assert "ci-4" not in [r["id"] for r in runs.list("local")]


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
