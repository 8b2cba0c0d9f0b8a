"""The example suite, run as a new user runs it: a copy, a real pytest process, the real store."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_integrations_imports import hiding_conftest

EXAMPLE_SUITE = Path(__file__).resolve().parents[1] / "example_suite"


@pytest.fixture
def suite(pytester: pytest.Pytester) -> Path:
    target = pytester.path / "example_suite"
    shutil.copytree(EXAMPLE_SUITE, target, ignore=shutil.ignore_patterns(".llmobs", "__pycache__"))
    return target


def run_suite(pytester: pytest.Pytester, suite: Path, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(str(suite), "-p", "no:cacheprovider", *args)


def export_latest(suite: Path) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "pytest_llmobs.cli", "export", "latest", "--format", "json"],
        cwd=suite,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)


def test_example_suite_passes_with_summary(pytester: pytest.Pytester, suite: Path) -> None:
    result = run_suite(pytester, suite, "--llm-model=mock-llm-v1")
    result.assert_outcomes(passed=25)
    result.stdout.fnmatch_lines(
        [
            "*= llmobs experiment run =*",
            "run * name 'mock-llm-v1@*'  model mock-llm-v1  -> passed",
            f"stored in {suite / '.llmobs' / 'llmobs.db'}",
            "dataset 'capital-cities-tutorial' version *: 10 items  pass rate 100.0% (10/10)",
            "  accuracy  mean 1.000 (95% CI 0.722–1.000)  sd 0.000  range 1–1  n=10",
            "  generations 10  latency p50 * ms  p95 * ms  tokens 66 in / 10 out",
            "dataset 'support-intents' version *: 8 items  pass rate 100.0% (8/8)",
            "  label  accuracy 0.875  f1_macro 0.900  f1_micro 0.875  n=8",
            "thresholds:",
            "  ✓ capital-cities-tutorial: mean_accuracy >= 0.9  observed 1 (n=10)",
            "  ✓ support-intents: f1_macro >= 0.8  observed 0.900 (n=8)",
            "  ✓ support-intents: accuracy >= 0.8  observed 0.875 (n=8)",
        ]
    )
    run = export_latest(suite)
    assert run["status"] == "passed"
    versions = {i["dataset"]: i["dataset_version"] for i in run["items"] if i["dataset"]}
    assert run["datasets"] == versions
    assert set(versions) == {"capital-cities-tutorial", "support-intents"}
    assert {p["name"] for p in run["prompts"]} == {
        "support-agent",
        "rag-answer",
        "judge/groundedness",
    }
    support = next(i for i in run["items"] if "support" in i["node_id"])
    trace = support["trace"]
    assert (trace["user_id"], trace["session_id"], trace["tags"]) == (
        "user-42",
        "support-session-7",
        ["support"],
    )
    generation = next(o for o in trace["observations"] if o["type"] == "generation")
    assert (generation["prompt_name"], generation["prompt_version"]) == ("support-agent", 1)
    rag = next(i for i in run["items"] if i["node_id"].startswith("test_rag.py::"))
    names = [o["name"] for o in rag["trace"]["observations"]]
    assert names[1:] == ["retrieve", "rank", "answer", "rag-answer", "llm_judge:judge/groundedness"]
    assert {s["name"]: s["data_type"] for s in rag["trace"]["scores"]} == {
        "groundedness": "NUMERIC",
        "judge_groundedness": "NUMERIC",
        "similarity": "NUMERIC",
        "user_feedback": "CATEGORICAL",
        "resolved": "BOOLEAN",
    }
    judge = rag["trace"]["observations"][-1]
    assert (judge["type"], judge["prompt_name"]) == ("generation", "judge/groundedness")
    langchain = next(i for i in run["items"] if i["node_id"].startswith("test_langchain_rag.py"))
    observations = langchain["trace"]["observations"]
    by_id = {o["id"]: o for o in observations}
    chain = next(o for o in observations if o["name"] == "rag")
    steps = [o for o in observations if o["parent_id"] == chain["id"]]
    assert [o["name"] for o in steps] == ["retrieve", "prompt", "model", "parser"]
    retriever = next(o for o in observations if o["name"] == "KnowledgeBaseRetriever")
    assert by_id[by_id[retriever["parent_id"]]["parent_id"]]["name"] == "retrieve"
    model = steps[2]
    assert (model["type"], model["model"], model["usage"]["output"] > 0) == (
        "generation",
        "mock-llm-v1",
        True,
    )


def test_the_langchain_example_is_skipped_without_langchain(
    pytester: pytest.Pytester, suite: Path
) -> None:
    (suite / "conftest.py").write_text(hiding_conftest("langchain_core"), encoding="utf-8")

    result = run_suite(pytester, suite, "-rs", "--llm-no-store")

    result.assert_outcomes(passed=22, skipped=1)
    reason = "needs langchain-core: pip install 'pytest-llmobs[[]langchain[]]'"
    result.stdout.fnmatch_lines([f"SKIPPED [[]1[]] *test_langchain_rag.py:*: {reason}"])


def test_degraded_model_fails_the_gate(pytester: pytest.Pytester, suite: Path) -> None:
    result = run_suite(pytester, suite, "--llm-model=mock-llm-v1?accuracy=0.5&seed=7")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "  ✗ capital-cities-tutorial: mean_accuracy >= 0.9  observed 0.* (n=10)",
            "  ✓ support-intents: f1_macro >= 0.8  observed 0.900 (n=8)",
            "  ✓ support-intents: accuracy >= 0.8  observed 0.875 (n=8)",
            "1 of 3 threshold(s) failed: session fails",
        ]
    )
    assert export_latest(suite)["status"] == "failed"


@pytest.mark.parametrize("asyncio_plugin", ["loaded", "absent"])
def test_example_suite_prints_no_warnings(
    pytester: pytest.Pytester, suite: Path, asyncio_plugin: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pytest-asyncio warns when its loop scope is unset, and pytest when the option that sets it
    is unknown (the quick start installs no pytest-asyncio): the suite's ini answers both."""
    monkeypatch.setenv("PYTEST_ADDOPTS", "-p no:langsmith_plugin")  # not the loop scope option
    blocked = ["-p", "no:asyncio"] if asyncio_plugin == "absent" else []
    result = run_suite(pytester, suite, "--llm-model=mock-llm-v1", *blocked)

    result.assert_outcomes(passed=25)
    result.stdout.no_fnmatch_line("*warnings summary*")
    result.stdout.no_fnmatch_line("*Warning*")
    result.stderr.no_fnmatch_line("*Warning*")  # (pytest-asyncio warns while pytest configures)
