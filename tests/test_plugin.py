"""The plugin end to end through ``pytester``: options and their ini twins, fixtures, the
``llm_dataset`` marker, tracing inside tests, the terminal summary and determinism."""

from __future__ import annotations

import contextlib
import glob
import io
import json
import re
import sqlite3
import statistics
from pathlib import Path
from textwrap import dedent
from typing import TYPE_CHECKING, Any

import pytest

from pytest_llmobs.cli import main as cli_main
from pytest_llmobs.dataset_files import load_dataset
from pytest_llmobs.evaluators.run_level import bootstrap_mean_interval
from pytest_llmobs.providers.capitals import CAPITALS as KNOWN_CAPITALS
from pytest_llmobs.reporting.terminal import format_number
from pytest_llmobs.settings import INI_UNION_TYPES
from pytest_llmobs.settings import OPTIONS as SETTINGS_OPTIONS

if TYPE_CHECKING:
    from conftest import Runs

USAGE_ERROR = pytest.ExitCode.USAGE_ERROR

CORE_OPTIONS = [
    ("--llm-model=MODEL", "llm_model", "string"),
    ("--llm-run-name=NAME", "llm_run_name", "string"),
    ("--llm-store=DIR", "llm_store", "string"),
    ("--llm-no-store", "llm_no_store", "bool"),
    ("--llm-threshold=EXPR", "llm_threshold", "linelist"),
    ("--llm-datasets-dir=DIR", "llm_datasets_dir", "string"),
    ("--llm-prompts-dir=DIR", "llm_prompts_dir", "string"),
]
"""The options the foundation promised, as they must read in ``--help``."""

OPTIONS = [
    (
        spec.flag + (f"={spec.metavar}" if spec.metavar else ""),
        spec.ini,
        spec.ini_type
        # pytest 9.2 shows a number's `str | int` type (a native TOML number is accepted)
        or (f"string | {spec.number.__name__}" if spec.number and INI_UNION_TYPES else "string"),
    )
    for spec in SETTINGS_OPTIONS
]
"""Every registered option, in registration order."""

ASK_PROMPT = {
    "type": "text",
    "prompt": "Answer briefly. {{question}}",
    "config": {"temperature": 0},
}


def exact(line: str) -> str:
    """An `fnmatch_lines` pattern matching ``line`` literally (paths and ids hold ``[``)."""
    return glob.escape(line)


def write_prompt(pytester: pytest.Pytester, name: str, content: dict[str, Any]) -> Path:
    return pytester.makefile(".json", **{f"prompts/{name}": json.dumps(content)})


def generations(item: dict[str, Any]) -> list[dict[str, Any]]:
    return [o for o in item["trace"]["observations"] if o["type"] == "generation"]


# --- options ------------------------------------------------------------------------------------


def test_help_shows_every_option_in_the_llmobs_group_with_its_ini_twin(
    pytester: pytest.Pytester,
) -> None:
    result = pytester.runpytest("--help")

    assert result.ret == pytest.ExitCode.OK
    lines = result.stdout.lines
    start = lines.index("LLM observability (pytest-llmobs):")
    group = lines[start : lines.index("", start)]
    flags = [line.split()[0] for line in group[1:] if line.startswith("  --")]
    assert flags == [flag for flag, _, _ in OPTIONS]
    assert set(CORE_OPTIONS) <= set(OPTIONS)
    text = " ".join(" ".join(group).split())
    assert "(default mock-llm-v1)" in text
    assert "(default: <rootdir>/.llmobs)" in text
    assert "(default: <rootdir>/datasets)" in text
    assert "(default: <rootdir>/prompts)" in text
    result.stdout.fnmatch_lines([f"  {ini} ({kind}):*" for _, ini, kind in OPTIONS])
    whole = " ".join(result.stdout.str().split())
    for flag, _, _ in OPTIONS:
        assert f"[{flag.split('=')[0]}]" in whole  # each ini twin names its option
    assert not (pytester.path / ".llmobs").exists()  # --help opens no store


@pytest.mark.parametrize(
    ("ini", "cli", "expected"),
    [
        pytest.param(None, None, "mock-llm-v1", id="default"),
        pytest.param("mock-llm-v1?accuracy=0.5", None, "mock-llm-v1?accuracy=0.5", id="ini"),
        pytest.param(
            "mock-llm-v1?accuracy=0.5", "mock-llm-v1?seed=9", "mock-llm-v1?seed=9", id="cli"
        ),
    ],
)
def test_model_comes_from_cli_then_ini_then_default(
    pytester: pytest.Pytester, runs: Runs, ini: str | None, cli: str | None, expected: str
) -> None:
    if ini is not None:
        pytester.makeini(f"[pytest]\nllm_model = {ini}\n")
    pytester.makepyfile(
        dedent(
            """\
            def test_generate(llm):
                assert llm.generate("What is the capital of France?").model == "mock-llm-v1"
            """
        )
    )

    result = pytester.runpytest(*([f"--llm-model={cli}"] if cli else []))

    result.assert_outcomes(passed=1)
    run = runs.latest()
    assert run["model"] == expected
    options = dict(pair.split("=") for pair in expected.partition("?")[2].split("&") if pair)
    for key, value in options.items():
        assert run["params"][key] == float(value)


@pytest.mark.parametrize(
    ("ini", "cli", "expected"),
    [
        pytest.param("from-ini", None, "from-ini", id="ini"),
        pytest.param(None, "from-cli", "from-cli", id="cli"),
        pytest.param("from-ini", "from-cli", "from-cli", id="cli-beats-ini"),
    ],
)
def test_run_name_comes_from_cli_then_ini(
    pytester: pytest.Pytester, runs: Runs, ini: str | None, cli: str | None, expected: str
) -> None:
    if ini is not None:
        pytester.makeini(f"[pytest]\nllm_run_name = {ini}\n")
    pytester.makepyfile("def test_nothing():\n    pass\n")

    result = pytester.runpytest(*([f"--llm-run-name={cli}"] if cli else []))

    result.assert_outcomes(passed=1)
    assert runs.latest()["name"] == expected


@pytest.mark.parametrize(
    ("args", "where"),
    [
        (["--llm-run-name=latest"], "--llm-run-name"),
        (["-o", "llm_run_name=Latest"], "-o llm_run_name"),
    ],
)
def test_a_run_cannot_be_named_latest(
    pytester: pytest.Pytester, args: list[str], where: str
) -> None:
    pytester.makepyfile("def test_nothing():\n    pass\n")

    result = pytester.runpytest(*args)

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {where}: '*atest' is reserved: *"])


def test_default_run_name_is_the_model_name_and_start_time(
    pytester: pytest.Pytester, runs: Runs
) -> None:
    pytester.makepyfile("def test_nothing():\n    pass\n")

    pytester.runpytest("--llm-model=mock-llm-v1?seed=4").assert_outcomes(passed=1)

    name = runs.latest()["name"]
    assert re.fullmatch(r"mock-llm-v1@\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", name), name


def test_store_defaults_to_dot_llmobs_under_rootdir(
    pytester: pytest.Pytester, runs: Runs, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeini("[pytest]\n")
    tests = pytester.mkdir("tests")
    (tests / "test_one.py").write_text("def test_one():\n    pass\n", encoding="utf-8")
    monkeypatch.chdir(tests)

    pytester.runpytest().assert_outcomes(passed=1)

    assert not (tests / ".llmobs").exists()
    assert [run["items"] for run in runs.list()] == [1]


def test_store_on_the_command_line_is_relative_to_the_invocation_dir(
    pytester: pytest.Pytester, runs: Runs, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeini("[pytest]\n")
    tests = pytester.mkdir("tests")
    (tests / "test_one.py").write_text("def test_one():\n    pass\n", encoding="utf-8")
    monkeypatch.chdir(tests)

    pytester.runpytest("--llm-store=runs").assert_outcomes(passed=1)

    assert not (pytester.path / ".llmobs").exists()
    assert [run["items"] for run in runs.list("tests/runs")] == [1]


def test_store_in_the_ini_file_is_relative_to_the_ini_file(
    pytester: pytest.Pytester, runs: Runs
) -> None:
    pytester.makefile(".ini", **{"conf/pytest": "[pytest]\nllm_store = runs\n"})
    pytester.makepyfile("def test_one():\n    pass\n")

    result = pytester.runpytest("-c", "conf/pytest.ini", f"--rootdir={pytester.path}")

    result.assert_outcomes(passed=1)
    assert not (pytester.path / "runs").exists()
    assert [run["items"] for run in runs.list("conf/runs")] == [1]


@pytest.mark.parametrize(
    ("ini", "args"),
    [
        pytest.param("", ["--llm-no-store"], id="cli"),
        pytest.param("llm_no_store = true\n", [], id="ini"),
    ],
)
def test_no_store_writes_nothing_to_disk(
    pytester: pytest.Pytester, ini: str, args: list[str], capitals: list[dict[str, Any]]
) -> None:
    pytester.makeini(f"[pytest]\n{ini}")
    write_prompt(pytester, "ask", ASK_PROMPT)
    pytester.makepyfile(
        dedent(
            """\
            import pytest

            @pytest.mark.llm_dataset("capitals")
            def test_capital(item, llm, prompt, scorer):
                answer = llm.generate(prompt("ask").compile(question=item.input))
                assert scorer.exact_match(answer.text, item.expected_output, name="accuracy")
            """
        )
    )
    before = {p for p in pytester.path.rglob("*") if ".pytest_cache" not in p.parts}

    result = pytester.runpytest("-p", "no:cacheprovider", *args)

    result.assert_outcomes(passed=len(capitals))
    result.stdout.fnmatch_lines(["not stored (--llm-no-store)"])
    after = {p for p in pytester.path.rglob("*") if ".pytest_cache" not in p.parts}
    assert after - before == {p for p in after if p.name == "__pycache__" or p.suffix == ".pyc"}


def test_store_on_the_command_line_beats_no_store_in_the_ini_file(
    pytester: pytest.Pytester, runs: Runs
) -> None:
    pytester.makeini("[pytest]\nllm_no_store = true\n")
    pytester.makepyfile("def test_one():\n    pass\n")

    pytester.runpytest("--llm-store=kept").assert_outcomes(passed=1)

    assert [run["items"] for run in runs.list("kept")] == [1]


def test_no_store_on_the_command_line_beats_store_in_addopts(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini("[pytest]\naddopts = --llm-store=kept\n")
    pytester.makepyfile("def test_one():\n    pass\n")

    result = pytester.runpytest("--llm-no-store")

    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["not stored (--llm-no-store)"])
    assert not (pytester.path / "kept").exists()


DIRS_SUITE = """\
    def test_dirs(dataset, prompt):
        assert [item.id for item in dataset("qa")] == ["only"]
        assert prompt("ask").template == "Answer briefly. {{question}}"
    """


def write_dirs(pytester: pytest.Pytester, datasets: str, prompts: str) -> None:
    pytester.makefile(".jsonl", **{f"{datasets}/qa": '{"id": "only", "input": "hi"}'})
    pytester.makefile(".json", **{f"{prompts}/ask": json.dumps(ASK_PROMPT)})


def test_datasets_and_prompts_dirs_default_to_rootdir(
    pytester: pytest.Pytester, runs: Runs, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeini("[pytest]\n")
    write_dirs(pytester, "datasets", "prompts")
    tests = pytester.mkdir("tests")
    (tests / "test_dirs.py").write_text(dedent(DIRS_SUITE), encoding="utf-8")
    monkeypatch.chdir(tests)

    pytester.runpytest().assert_outcomes(passed=1)

    assert list(runs.latest()["datasets"]) == ["qa"]


def test_datasets_and_prompts_dirs_on_the_command_line(
    pytester: pytest.Pytester, runs: Runs
) -> None:
    write_dirs(pytester, "data", "templates")
    pytester.makepyfile(dedent(DIRS_SUITE))

    result = pytester.runpytest("--llm-datasets-dir=data", "--llm-prompts-dir=templates")

    result.assert_outcomes(passed=1)
    assert list(runs.latest()["datasets"]) == ["qa"]


def test_datasets_and_prompts_dirs_in_the_ini_file_are_relative_to_it(
    pytester: pytest.Pytester,
) -> None:
    # "datasets" equals the default, yet it names conf/datasets, not <rootdir>/datasets.
    pytester.makefile(
        ".ini",
        **{"conf/pytest": "[pytest]\nllm_datasets_dir = datasets\nllm_prompts_dir = templates\n"},
    )
    write_dirs(pytester, "conf/datasets", "conf/templates")
    pytester.makefile(".jsonl", **{"datasets/qa": '{"id": "decoy", "input": "hi"}'})
    pytester.makepyfile(dedent(DIRS_SUITE))

    result = pytester.runpytest("-c", "conf/pytest.ini", f"--rootdir={pytester.path}")

    result.assert_outcomes(passed=1)


def test_dirs_on_the_command_line_beat_the_ini_file(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nllm_datasets_dir = nowhere\nllm_prompts_dir = nowhere\n")
    write_dirs(pytester, "data", "templates")
    pytester.makepyfile(dedent(DIRS_SUITE))

    result = pytester.runpytest("--llm-datasets-dir=data", "--llm-prompts-dir=templates")

    result.assert_outcomes(passed=1)


def test_p_no_llmobs_disables_the_plugin_entirely(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_uses_llm(llm):\n    pass\n")

    result = pytester.runpytest("-p", "no:llmobs")

    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["E       fixture 'llm' not found"])
    result.stdout.no_fnmatch_line("*llmobs experiment run*")
    assert not (pytester.path / ".llmobs").exists()

    result = pytester.runpytest("-p", "no:llmobs", "--llm-model=mock-llm-v1")

    assert result.ret == USAGE_ERROR
    result.stderr.fnmatch_lines(["*error: unrecognized arguments: --llm-model=mock-llm-v1"])


# --- usage errors -------------------------------------------------------------------------------


def test_unknown_model_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_nothing():\n    pass\n")

    result = pytester.runpytest("--llm-model=nope-model")

    assert result.ret == USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: --llm-model: unknown model 'nope-model'; known models: mock-llm-v1, "
            "openai:<model> (plain gpt-*, chatgpt-*, o1*, o3*, o4* too)"
        ]
    )
    assert not (pytester.path / ".llmobs").exists()


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        (
            "--llm-model=",
            "--llm-model is empty (an unset variable?); expected MODEL: model to run*",
        ),
        ("--llm-model=  ", "--llm-model is empty (an unset variable?); expected MODEL: *"),
        ("--llm-store=", "--llm-store is empty (an unset variable?); expected DIR: directory of*"),
        ("--llm-cache-dir=", "--llm-cache-dir is empty (an unset variable?); expected DIR: *"),
        ("--llm-threshold=", "--llm-threshold is empty (an unset variable?); expected EXPR: *"),
        ("--llm-run-id=", "--llm-run-id is empty (an unset variable?); expected ID: *"),
    ],
)
def test_an_empty_option_value_is_a_usage_error(
    pytester: pytest.Pytester, option: str, expected: str
) -> None:
    # `--llm-model=$MODEL` with MODEL unset ran the mock; `--llm-store=` wrote ./llmobs.db
    pytester.makepyfile("def test_nothing(llm):\n    llm.generate('hi')\n")

    result = pytester.runpytest("--llm-model=mock-llm-v1", option)

    assert result.ret == USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {expected}"])
    assert sorted(p.name for p in pytester.path.iterdir()) == [
        "test_an_empty_option_value_is_a_usage_error.py"
    ]


def test_collect_only_checks_a_named_model_without_opening_the_store(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile("def test_nothing():\n    pass\n")

    bad = pytester.runpytest("--co", "--llm-model=nope-model")
    good = pytester.runpytest("--co", "--llm-model=mock-llm-v1")

    assert bad.ret == USAGE_ERROR
    bad.stderr.fnmatch_lines(["ERROR: --llm-model: unknown model 'nope-model'; known models: *"])
    assert good.ret == pytest.ExitCode.OK
    good.stdout.fnmatch_lines(["*test_nothing*"])
    assert not (pytester.path / ".llmobs").exists()


def test_collect_only_without_a_named_model_imports_no_provider(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(
        dedent(
            """\
            import sys

            MODELS = {"pytest_llmobs.providers.mock", "pytest_llmobs.providers.openai"}
            STORE = {"pytest_llmobs.store", "pytest_llmobs.reporting.files"}

            def pytest_sessionfinish():
                print(f"model providers loaded: {sorted(MODELS & set(sys.modules))}")
                print(f"store modules loaded: {sorted(STORE & set(sys.modules))}")
            """
        )
    )
    pytester.makepyfile("def test_nothing():\n    pass\n")

    result = pytester.runpytest_subprocess("--co", "-s")

    assert result.ret == pytest.ExitCode.OK
    # (the report paths' check once imported the store with the reports' writer)
    result.stdout.fnmatch_lines(["model providers loaded: []", "store modules loaded: []"])


@pytest.mark.parametrize(
    ("ini", "message"),
    [
        ("llm_no_store = maybe", "llm_no_store in *tox.ini: invalid truth value 'maybe'; *"),
        ("llm_upload_strict = perhaps", "llm_upload_strict in *tox.ini: *'perhaps'; expected *"),
        ("llm_trace_sample = lots", "llm_trace_sample in *tox.ini: 'lots' is not a number"),
    ],
)
def test_a_bad_ini_value_is_named_by_its_key_and_file(
    pytester: pytest.Pytester, ini: str, message: str
) -> None:
    # (before: "invalid truth value 'maybe'" naming nothing, or the command-line flag)
    pytester.makeini(f"[pytest]\n{ini}\n")
    pytester.makepyfile("def test_nothing():\n    pass\n")

    result = pytester.runpytest()

    assert result.ret == USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {message}"])


def test_unknown_model_option_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_nothing():\n    pass\n")

    result = pytester.runpytest("--llm-model=mock-llm-v1?acuracy=1")

    assert result.ret == USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            exact(
                "ERROR: --llm-model: mock-llm-v1: unknown option 'acuracy'; known options: "
                "accuracy (0..1), latency_ms (>= 0), error_rate (0..1), seed (int)"
            )
        ]
    )


def test_unknown_model_in_the_ini_file_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nllm_model = nope-model\n")
    pytester.makepyfile("def test_nothing():\n    pass\n")

    result = pytester.runpytest()

    assert result.ret == USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: *unknown model 'nope-model'; known models: mock-llm-v1, openai:<model> *"]
    )


# --- fixtures -----------------------------------------------------------------------------------


def test_fixtures_work_with_real_files_and_link_the_prompt_version(
    pytester: pytest.Pytester,
    runs: Runs,
    capitals: list[dict[str, Any]],
    xdist_args: tuple[str, ...],
) -> None:
    write_prompt(pytester, "ask", ASK_PROMPT)
    pytester.makepyfile(
        dedent(
            """\
            def test_fixtures(llm, prompt, scorer, dataset):
                item = dataset("capitals").get("france")
                answer = llm.generate(prompt("ask").compile(question=item.input))
                assert (answer.prompt_name, answer.prompt_version) == ("ask", 1)
                assert scorer.exact_match(answer.text, item.expected_output, name="accuracy")
            """
        )
    )

    result = pytester.runpytest(*xdist_args)

    result.assert_outcomes(passed=1)
    run = runs.latest()
    (item,) = run["items"]
    (generation,) = generations(item)
    assert generation["prompt_name"] == "ask"
    assert generation["prompt_version"] == 1
    assert generation["model"] == "mock-llm-v1"
    assert generation["model_parameters"] == {"temperature": 0}
    assert generation["input"] == [
        {"role": "user", "content": "Answer briefly. What is the capital of France?"}
    ]
    assert [(s["name"], s["value"], s["data_type"]) for s in item["trace"]["scores"]] == [
        ("accuracy", True, "BOOLEAN")
    ]
    assert [(p["name"], p["version"]) for p in run["prompts"]] == [("ask", 1)]
    version = load_dataset("capitals", pytester.path / "datasets").version
    assert run["datasets"] == {"capitals": version}


PROMPT_VERSIONS_SUITE = """\
    def test_versions(llm, prompt):
        current = prompt("ask")
        assert current.version == {version}
        assert current.template == {template!r}
        first = prompt("ask", version=1)
        assert first.template == "Answer briefly. {{{{question}}}}"
        llm.generate(current.compile(question="What is the capital of Japan?"), name="current")
        llm.generate(first.compile(question="What is the capital of Japan?"), name="first")
    """


def test_changing_a_prompt_file_creates_a_new_version_and_keeps_the_old_one(
    pytester: pytest.Pytester, runs: Runs
) -> None:
    write_prompt(pytester, "ask", ASK_PROMPT)
    template = ASK_PROMPT["prompt"]
    pytester.makepyfile(dedent(PROMPT_VERSIONS_SUITE.format(version=1, template=template)))
    pytester.runpytest().assert_outcomes(passed=1)

    changed = {**ASK_PROMPT, "prompt": "Reply in one word. {{question}}"}
    write_prompt(pytester, "ask", changed)
    suite = PROMPT_VERSIONS_SUITE.format(version=2, template=changed["prompt"])
    pytester.makepyfile(dedent(suite))
    pytester.runpytest().assert_outcomes(passed=1)

    (item,) = runs.latest()["items"]
    linked = {g["name"]: (g["prompt_name"], g["prompt_version"]) for g in generations(item)}
    assert linked == {"current": ("ask", 2), "first": ("ask", 1)}
    assert [(p["name"], p["version"]) for p in runs.latest()["prompts"]] == [("ask", 1), ("ask", 2)]
    assert generations(item)[1]["input"][0]["content"].startswith("Answer briefly.")


def test_missing_prompt_variable_fails_the_test_naming_the_variable(
    pytester: pytest.Pytester, runs: Runs
) -> None:
    write_prompt(pytester, "ask", ASK_PROMPT)
    pytester.makepyfile(
        dedent(
            """\
            def test_compile(prompt):
                prompt("ask").compile(questoin="What is the capital of France?")
            """
        )
    )

    result = pytester.runpytest()

    result.assert_outcomes(failed=1)
    message = "prompt 'ask' version 1 is missing variable 'question'; given: questoin"
    result.stdout.fnmatch_lines([f"E   *PromptVariableError: {message}"])
    (item,) = runs.latest()["items"]
    assert item["outcome"] == "failed"
    assert item["error"] == f"pytest_llmobs.prompts.PromptVariableError: {message}"


def test_a_malformed_file_loaded_in_a_test_fails_at_the_tests_line(
    pytester: pytest.Pytester, runs: Runs
) -> None:
    pytester.makefile(".json", **{"prompts/bad": '{"name": "bad", "template": "hi"} trailing'})
    pytester.makefile(".jsonl", **{"datasets/broken": '{"input": "a"}\n{"input": \n'})
    pytester.makepyfile(
        dedent(
            """\
            import pytest
            from pytest_llmobs.datasets import DatasetError

            def test_prompt(prompt):
                prompt("bad")

            def test_dataset(dataset):
                dataset("broken")

            def test_still_catchable(dataset):
                with pytest.raises(DatasetError, match="broken.jsonl:2:10: invalid JSON"):
                    dataset("broken")
            """
        )
    )

    result = pytester.runpytest()

    result.assert_outcomes(failed=2, passed=1)
    result.stdout.fnmatch_lines(
        [
            '>       prompt("bad")',
            "E       *PromptError: */prompts/bad.json:1:*: invalid JSON (Extra data)",
            '>       dataset("broken")',
            "E       *DatasetError: */datasets/broken.jsonl:2:10: invalid JSON (Expecting value)",
        ]
    )
    output = result.stdout.str()  # neither the loaders' frames nor the JSON parser's error
    assert "prompt_files.py" not in output and "JSONDecodeError" not in output
    assert "datasets.py:" not in output and "dataset_files.py:" not in output
    # the failed tests' arguments name the loaders' directories, not nested functions
    assert f"prompt = <prompt loader for {pytester.path / 'prompts'}>" in output
    assert f"dataset = <dataset loader for {pytester.path / 'datasets'}>" in output
    assert "<locals>" not in output


def test_bad_dataset_line_is_a_collection_error_naming_file_and_line(
    pytester: pytest.Pytester,
) -> None:
    path = pytester.makefile(
        ".jsonl",
        **{
            "datasets/capitals": '{"id": "france", "input": "What is the capital of France?"}\n'
            '{"id": "japan", "input": \n'
        },
    )
    pytester.makepyfile(
        test_bad=dedent(
            """\
            import pytest

            @pytest.mark.llm_dataset("capitals")
            def test_capital(item):
                pass
            """
        )
    )

    result = pytester.runpytest()

    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR collecting test_bad.py*",
            exact(
                f"test_bad.py::test_capital: {path.resolve()}:2:25: invalid JSON (Expecting value)"
            ),
        ]
    )
    result.stdout.no_fnmatch_line("*During handling of the above exception*")
    result.stdout.no_fnmatch_line("*direct cause of the following exception*")


# --- the llm_dataset marker ---------------------------------------------------------------------

CAPITALS_SUITE = """\
    import pytest

    @pytest.mark.llm_dataset("capitals")
    def test_capital(item, llm, scorer):
        answer = llm.generate(item.input)
        assert scorer.exact_match(answer.text, item.expected_output, name="accuracy")
    """


def test_marker_runs_one_case_per_item_with_item_ids(
    pytester: pytest.Pytester,
    runs: Runs,
    capitals: list[dict[str, Any]],
    xdist_args: tuple[str, ...],
) -> None:
    pytester.makepyfile(test_capitals=dedent(CAPITALS_SUITE))

    result = pytester.runpytest("-v", *xdist_args)

    result.assert_outcomes(passed=len(capitals))
    node_ids = [f"test_capitals.py::test_capital[{c['id']}]" for c in capitals]
    result.stdout.fnmatch_lines_random([f"*{exact(node_id)}*" for node_id in node_ids])
    version = load_dataset("capitals", pytester.path / "datasets").version
    stored = runs.items(runs.latest())
    assert sorted(stored) == sorted(node_ids)
    for capital in capitals:
        item = stored[f"test_capitals.py::test_capital[{capital['id']}]"]
        assert item["dataset"] == "capitals"
        assert item["item_id"] == capital["id"]
        assert item["dataset_version"] == version
        assert item["input"] == capital["input"]
        assert item["expected_output"] == capital["expected_output"]
        assert item["outcome"] == "passed"


def test_marker_limit_and_argname(
    pytester: pytest.Pytester, runs: Runs, capitals: list[dict[str, Any]]
) -> None:
    pytester.makepyfile(
        test_limit=dedent(
            """\
            import pytest

            @pytest.mark.llm_dataset("capitals", argname="case", limit=2)
            def test_capital(case):
                assert case.dataset == "capitals"
            """
        )
    )

    result = pytester.runpytest("--collect-only", "-q")

    result.stdout.fnmatch_lines(
        [exact(f"test_limit.py::test_capital[{c['id']}]") for c in capitals[:2]] + ["", "2 *"]
    )
    pytester.runpytest().assert_outcomes(passed=2)
    assert [item["item_id"] for item in runs.latest()["items"]] == [c["id"] for c in capitals[:2]]


def test_marker_argname_naming_a_fixture_is_a_usage_error(
    pytester: pytest.Pytester, capitals: list[dict[str, Any]]
) -> None:
    # (before, the test's `scorer` was silently the dataset item)
    pytester.makepyfile(
        test_hidden=dedent(
            """\
            import pytest

            @pytest.mark.llm_dataset("capitals", argname="scorer")
            def test_capital(scorer):
                scorer.score("accuracy", 1.0)
            """
        )
    )

    result = pytester.runpytest()

    assert result.ret == USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: test_hidden.py::test_capital: @pytest.mark.llm_dataset: argname 'scorer' is "
            "the name of a fixture the test may need, which the item would hide; pick another, "
            "e.g. 'case'"
        ]
    )


def test_marker_unknown_keyword_is_a_usage_error(
    pytester: pytest.Pytester, capitals: list[dict[str, Any]]
) -> None:
    pytester.makepyfile(
        test_typo=dedent(
            """\
            import pytest

            @pytest.mark.llm_dataset("capitals", treshold=["pass_rate >= 1"])
            def test_capital(item):
                pass
            """
        )
    )

    result = pytester.runpytest()

    assert result.ret == USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            exact(
                "ERROR: test_typo.py::test_capital: @pytest.mark.llm_dataset got unknown keyword "
                "'treshold'; accepted keywords: argname, thresholds, limit, repeat"
            )
        ]
    )


def test_two_dataset_markers_on_one_test_are_a_usage_error(
    pytester: pytest.Pytester, capitals: list[dict[str, Any]]
) -> None:
    pytester.makepyfile(
        test_two=dedent(
            """\
            import pytest

            @pytest.mark.llm_dataset("capitals")
            @pytest.mark.llm_dataset("capitals", limit=1)
            def test_capital(item):
                pass

            @pytest.mark.llm_dataset("capitals")
            class TestOverride:  # the method's own marker is closer: it wins, as in pytest
                @pytest.mark.llm_dataset("capitals", limit=1)
                def test_capital(self, item):
                    pass
            """
        )
    )

    result = pytester.runpytest()

    assert result.ret == USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            exact(
                "ERROR: test_two.py::test_capital: @pytest.mark.llm_dataset is given 2 times "
                "('capitals', 'capitals'); a test runs one dataset: write one test per dataset, "
                "or merge the datasets"
            )
        ]
    )
    assert "TestOverride" not in result.stderr.str()


def test_marked_test_without_the_item_argument_is_a_usage_error_saying_what_to_add(
    pytester: pytest.Pytester, capitals: list[dict[str, Any]]
) -> None:
    # (before, pytest's own "In test_capital: function uses no argument 'item'")
    pytester.makepyfile(
        test_noarg=dedent(
            """\
            import pytest

            @pytest.mark.llm_dataset("capitals")
            def test_capital(llm):
                pass
            """
        )
    )

    result = pytester.runpytest()

    assert result.ret == USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            exact(
                "ERROR: test_noarg.py::test_capital: @pytest.mark.llm_dataset('capitals') passes "
                "each item as the argument 'item', which the test does not take: add 'item' to "
                "its parameters (or name yours with argname='...')"
            )
        ]
    )


UNITTEST_SUITE = """\
    import unittest
    import pytest

    @pytest.mark.llm_dataset("capitals")
    class TestCapitals(unittest.TestCase):
        def test_capital(self):
            pass

    def test_other():
        pass
    """


def test_marked_unittest_class_is_a_usage_error_not_one_run_without_the_dataset(
    pytester: pytest.Pytester, runs: Runs, capitals: list[dict[str, Any]]
) -> None:
    pytester.makepyfile(test_unit=dedent(UNITTEST_SUITE))

    result = pytester.runpytest()

    assert result.ret == USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            exact(
                "ERROR: test_unit.py::TestCapitals::test_capital: "
                "@pytest.mark.llm_dataset('capitals') cannot run this test once per item: pytest "
                "does not parametrize unittest.TestCase methods; write it as a test function or "
                "a plain class's method"
            )
        ]
    )
    assert runs.list() == []


def test_marked_unittest_class_under_xdist_fails_that_test_and_runs_the_rest(
    pytester: pytest.Pytester, runs: Runs, capitals: list[dict[str, Any]]
) -> None:
    pytester.makepyfile(test_unit=dedent(UNITTEST_SUITE))

    result = pytester.runpytest("-n", "2")

    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*cannot run this test once per item: pytest does not*"])
    stored = runs.items(runs.latest())
    assert stored["test_unit.py::TestCapitals::test_capital"]["outcome"] == "failed"
    assert stored["test_unit.py::test_other"]["outcome"] == "passed"


def test_marker_given_through_pytest_param_is_a_usage_error_not_ignored(
    pytester: pytest.Pytester, runs: Runs, capitals: list[dict[str, Any]]
) -> None:
    # (before: the case ran once without its dataset, its threshold unchecked, and passed)
    pytester.makepyfile(
        test_param=dedent(
            """\
            import pytest

            @pytest.mark.parametrize("cfg", ["base", pytest.param("tuned", marks=(
                pytest.mark.llm_dataset("capitals", thresholds=["mean_accuracy >= 0.99"])))])
            def test_variant(cfg, scorer):
                scorer.score("accuracy", 0.0)

            @pytest.mark.llm_dataset("capitals", limit=1)
            def test_marked(item):
                pass
            """
        )
    )

    result = pytester.runpytest("--strict-markers")

    assert result.ret == USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            exact(
                "ERROR: test_param.py::test_variant[tuned]: @pytest.mark.llm_dataset('capitals') "
                "was given to this one test case (pytest.param(..., marks=...) or "
                "item.add_marker), too late to run it once per item; put the marker on the test "
                "function, its class or its module"
            )
        ]
    )
    assert runs.list() == []


def test_marker_added_at_collection_is_a_usage_error_and_a_decorated_one_is_not(
    pytester: pytest.Pytester, runs: Runs, capitals: list[dict[str, Any]]
) -> None:
    pytester.makeconftest(
        """
        import pytest

        def pytest_collection_modifyitems(items):
            for item in items:
                if item.name == "test_late":
                    item.add_marker(pytest.mark.llm_dataset("capitals"))
        """
    )
    pytester.makepyfile(
        test_late=dedent(
            """\
            import pytest

            def test_late():
                pass

            class TestMarked:
                @pytest.mark.llm_dataset("capitals", limit=1)
                def test_method(self, item):
                    pass
            """
        )
    )

    result = pytester.runpytest()

    assert result.ret == USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: test_late.py::test_late: @pytest.mark.llm_dataset('capitals') was given to *"]
    )
    assert "test_method" not in result.stderr.str()
    assert runs.list() == []


def test_marker_unknown_keyword_under_xdist_is_a_collection_error(
    pytester: pytest.Pytester, capitals: list[dict[str, Any]]
) -> None:
    pytester.makepyfile(
        test_typo=dedent(
            """\
            import pytest

            @pytest.mark.llm_dataset("capitals", limt=2)
            def test_capital(item):
                pass
            """
        )
    )

    result = pytester.runpytest("-n", "2")

    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            exact(
                "test_typo.py::test_capital: @pytest.mark.llm_dataset got unknown keyword "
                "'limt'; accepted keywords: argname, thresholds, limit, repeat"
            )
        ]
    )


def test_marker_name_as_keyword_is_a_usage_error(
    pytester: pytest.Pytester, capitals: list[dict[str, Any]]
) -> None:
    pytester.makepyfile(
        test_named=dedent(
            """\
            import pytest

            @pytest.mark.llm_dataset(name="capitals")
            def test_capital(item):
                pass
            """
        )
    )

    result = pytester.runpytest()

    assert result.ret == USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: test_named.py::test_capital: @pytest.mark.llm_dataset: "
            "pass the dataset name positionally"
        ]
    )


# --- tracing inside tests -----------------------------------------------------------------------


def test_each_test_is_one_trace_whose_root_is_the_test(
    pytester: pytest.Pytester, runs: Runs, xdist_args: tuple[str, ...]
) -> None:
    pytester.makepyfile(
        test_rag=dedent(
            """\
            from pytest_llmobs import observe, start_span

            @observe
            def retrieve(question):
                with start_span("rank", input=question) as span:
                    span.update(output=["doc"])
                return ["doc"]

            def test_pipeline(llm):
                with start_span("pipeline"):
                    documents = retrieve("What is the capital of France?")
                    llm.generate("What is the capital of France?", name="answer")
                assert documents == ["doc"]

            def test_plain():
                pass
            """
        )
    )

    result = pytester.runpytest(*xdist_args)

    result.assert_outcomes(passed=2)
    stored = runs.items(runs.latest())
    trace = stored["test_rag.py::test_pipeline"]["trace"]
    root, *spans = trace["observations"]
    assert (root["name"], root["type"], root["parent_id"]) == ("test_pipeline", "span", None)
    named = {o["name"]: o for o in spans}
    assert sorted(named) == ["answer", "pipeline", "rank", "retrieve"]
    assert named["pipeline"]["parent_id"] == root["id"]
    assert named["retrieve"]["parent_id"] == named["pipeline"]["id"]
    assert named["rank"]["parent_id"] == named["retrieve"]["id"]
    assert named["answer"]["parent_id"] == named["pipeline"]["id"]
    assert named["answer"]["type"] == "generation"
    assert named["retrieve"]["input"]["args"] == ["What is the capital of France?"]
    assert named["retrieve"]["output"] == ["doc"]
    assert {o["trace_id"] for o in trace["observations"]} == {trace["id"]}
    assert re.fullmatch(r"[0-9a-f]{32}", trace["id"])
    assert all(re.fullmatch(r"[0-9a-f]{16}", o["id"]) for o in trace["observations"])
    plain = stored["test_rag.py::test_plain"]["trace"]
    assert [o["name"] for o in plain["observations"]] == ["test_plain"]
    assert plain["id"] != trace["id"]


def test_propagate_attributes_sets_user_session_and_tags_on_the_trace(
    pytester: pytest.Pytester, runs: Runs
) -> None:
    pytester.makepyfile(
        test_support=dedent(
            """\
            from pytest_llmobs import propagate_attributes

            def test_support(llm):
                with propagate_attributes(user_id="user-42", session_id="s-7", tags=["support"]):
                    llm.generate("How do I reset my password?")

            def test_other():
                pass
            """
        )
    )

    pytester.runpytest().assert_outcomes(passed=2)

    stored = runs.items(runs.latest())
    trace = stored["test_support.py::test_support"]["trace"]
    assert (trace["user_id"], trace["session_id"], trace["tags"]) == ("user-42", "s-7", ["support"])
    other = stored["test_support.py::test_other"]["trace"]
    assert (other["user_id"], other["session_id"], other["tags"]) == (None, None, [])


def test_a_session_fixtures_propagate_attributes_reach_every_test(
    pytester: pytest.Pytester, runs: Runs
) -> None:
    # (before, only the first test's trace, started before the fixture, got them)
    pytester.makeconftest(
        dedent(
            """\
            import pytest
            from pytest_llmobs import propagate_attributes

            @pytest.fixture(scope="session", autouse=True)
            def nightly():
                with propagate_attributes(session_id="ci-run-42", tags=["nightly"]):
                    yield
            """
        )
    )
    pytester.makepyfile("def test_1():\n    pass\n\ndef test_2():\n    pass\n")

    pytester.runpytest().assert_outcomes(passed=2)

    traces = [item["trace"] for item in runs.latest()["items"]]
    assert [(t["session_id"], t["tags"]) for t in traces] == [("ci-run-42", ["nightly"])] * 2


def test_a_fixtures_teardown_generation_is_not_the_tests_output(
    pytester: pytest.Pytester, runs: Runs
) -> None:
    # (before, the audit-log call made in teardown became the output the reports show)
    pytester.makepyfile(
        test_out=dedent(
            """\
            import pytest

            @pytest.fixture
            def conversation(llm):
                yield []
                llm.generate("Summarize the conversation for the audit log")

            def test_capital(llm, conversation):
                assert llm.generate("What is the capital of France?").text == "Paris"
            """
        )
    )

    pytester.runpytest().assert_outcomes(passed=1)

    (item,) = runs.latest()["items"]
    root = item["trace"]["observations"][0]
    assert root["output"] == "Paris"
    assert len([o for o in item["trace"]["observations"] if o["type"] == "generation"]) == 2


def test_after_a_failed_setup_a_teardown_generation_is_not_the_output(
    pytester: pytest.Pytester, runs: Runs
) -> None:
    pytester.makepyfile(
        test_setup=dedent(
            """\
            import pytest

            @pytest.fixture
            def audit(llm):
                yield
                llm.generate("audit after the test")

            @pytest.fixture
            def broken(audit):
                raise RuntimeError("no database")

            def test_never_runs(broken):
                pass
            """
        )
    )

    pytester.runpytest().assert_outcomes(errors=1)

    (item,) = runs.latest()["items"]
    assert item["trace"]["observations"][0]["output"] is None


def test_a_generation_after_a_module_fixtures_span_closes_is_kept(
    pytester: pytest.Pytester, runs: Runs
) -> None:
    # (before, it went to the first test's finished trace: lost)
    pytester.makepyfile(
        test_held=dedent(
            """\
            import pytest
            from pytest_llmobs import start_span

            @pytest.fixture(scope="session")
            def audit(llm):
                yield
                llm.generate("audit after the module")

            @pytest.fixture(scope="module")
            def resource(audit):
                with start_span("resource"):
                    yield

            def test_1(resource):
                pass

            def test_2(resource):
                pass
            """
        )
    )

    pytester.runpytest().assert_outcomes(passed=2)

    items = runs.items(runs.latest())
    last = items["test_held.py::test_2"]["trace"]["observations"]
    assert [o["input"] for o in last if o["type"] == "generation"] == [
        [{"role": "user", "content": "audit after the module"}]
    ]


def test_failing_test_root_observation_is_an_error_with_the_assertion_message(
    pytester: pytest.Pytester, runs: Runs
) -> None:
    pytester.makepyfile(
        test_fail=dedent(
            """\
            import pytest
            from pytest_llmobs import observe

            @observe
            def flaky():
                raise ValueError("upstream timed out")

            def test_wrong():
                answer = "Lyon"
                assert answer == "Paris", "expected the capital of France"

            def test_handled():
                with pytest.raises(ValueError):
                    flaky()
            """
        )
    )

    pytester.runpytest().assert_outcomes(passed=1, failed=1)

    stored = runs.items(runs.latest())
    wrong = stored["test_fail.py::test_wrong"]
    root = wrong["trace"]["observations"][0]
    assert root["level"] == "ERROR"
    assert root["status_message"].startswith("AssertionError: expected the capital of France")
    assert wrong["outcome"] == "failed"
    assert wrong["error"] == root["status_message"]
    handled_root, span = stored["test_fail.py::test_handled"]["trace"]["observations"]
    assert (handled_root["level"], handled_root["status_message"]) == ("DEFAULT", None)
    assert (span["name"], span["level"]) == ("flaky", "ERROR")
    assert span["status_message"] == "ValueError: upstream timed out"


def test_scores_are_stored_with_their_data_types(pytester: pytest.Pytester, runs: Runs) -> None:
    pytester.makepyfile(
        test_scores=dedent(
            """\
            from pytest_llmobs import start_span

            def test_scores(scorer):
                scorer.score("relevance", 0.75, comment="close enough")
                scorer.score("tokens", 12)
                scorer.score("grounded", True)
                scorer.score("feedback", "positive")
                with start_span("retrieve") as span:
                    span.score("recall", 0.5)
            """
        )
    )

    pytester.runpytest().assert_outcomes(passed=1)

    (item,) = runs.latest()["items"]
    trace = item["trace"]
    scores = {s["name"]: s for s in trace["scores"]}
    assert [(s["name"], s["value"], s["data_type"]) for s in trace["scores"]] == [
        ("relevance", 0.75, "NUMERIC"),
        ("tokens", 12, "NUMERIC"),
        ("grounded", True, "BOOLEAN"),
        ("feedback", "positive", "CATEGORICAL"),
        ("recall", 0.5, "NUMERIC"),
    ]
    assert scores["relevance"]["comment"] == "close enough"
    assert {s["trace_id"] for s in trace["scores"]} == {trace["id"]}
    span = next(o for o in trace["observations"] if o["name"] == "retrieve")
    assert scores["recall"]["observation_id"] == span["id"]
    assert scores["relevance"]["observation_id"] is None


# --- the terminal summary -----------------------------------------------------------------------

RATED: list[dict[str, Any]] = [
    {"id": "a", "input": "q1", "metadata": {"quality": 0.6, "tone": "calm", "ok": True}},
    {"id": "b", "input": "q2", "metadata": {"quality": 0.75, "tone": "curt", "ok": True}},
    {"id": "c", "input": "q3", "metadata": {"quality": 0.9, "tone": "calm", "ok": False}},
]


def test_terminal_summary_shows_datasets_scores_thresholds_and_the_stored_run(
    pytester: pytest.Pytester, runs: Runs
) -> None:
    pytester.makefile(".jsonl", **{"datasets/rated": "\n".join(json.dumps(i) for i in RATED)})
    pytester.makepyfile(
        test_rated=dedent(
            """\
            import pytest

            GATES = ["mean_quality >= 0.5", "pass_rate >= 0.9"]

            @pytest.mark.llm_dataset("rated", thresholds=GATES)
            def test_rated(item, scorer):
                scorer.score("quality", item.metadata["quality"])
                scorer.score("tone", item.metadata["tone"])
                assert item.metadata["ok"]

            def test_plain():
                pass
            """
        )
    )

    result = pytester.runpytest("--llm-run-name=summary")

    result.assert_outcomes(passed=3, failed=1)
    run = runs.latest()
    quality = [i["metadata"]["quality"] for i in RATED]
    mean, std = statistics.fmean(quality), statistics.stdev(quality)
    low, high = format_number(min(quality)), format_number(max(quality))
    interval = bootstrap_mean_interval(quality)
    ci = f"(95% CI {interval.low:.3f}–{interval.high:.3f})"
    scores = [
        f"  quality  mean {mean:.3f} {ci}  sd {std:.3f}  range {low}–{high}  n=3",
        "  tone     calm: 2, curt: 1  n=3",
    ]
    version = load_dataset("rated", pytester.path / "datasets").version
    result.stdout.fnmatch_lines(
        [
            "*= llmobs experiment run =*",
            f"run {run['id']}  name 'summary'  model mock-llm-v1  -> failed",
            exact(f"stored in {runs.db().resolve()}"),
            f"dataset 'rated' version {version}: 3 items  pass rate 66.7% (2/3)",
            *scores,
            "all tests: 4 items  pass rate 75.0% (3/4)",
            *scores,
            "thresholds:",
            f"  ✓ rated: mean_quality >= 0.5  observed {mean:.3f} (n=3)",
            "  ✗ rated: pass_rate >= 0.9  observed 0.667 (n=3)",
            "1 of 2 threshold(s) failed: session fails",
        ],
        consecutive=True,
    )


def test_terminal_summary_without_a_store(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_one():\n    pass\n")

    result = pytester.runpytest("--llm-no-store")

    result.stdout.fnmatch_lines(
        [
            "*= llmobs experiment run =*",
            "run *  name 'mock-llm-v1@*'  model mock-llm-v1  -> passed",
            "not stored (--llm-no-store)",
            "all tests: 1 item  pass rate 100.0% (1/1)",
        ],
        consecutive=True,
    )


# --- determinism --------------------------------------------------------------------------------


def test_same_outcomes_in_new_processes_whatever_the_hash_seed(
    pytester: pytest.Pytester, runs: Runs, monkeypatch: pytest.MonkeyPatch
) -> None:
    countries = sorted(KNOWN_CAPITALS)[:16]
    items = [
        {
            "id": f"c{n}",
            "input": f"What is the capital of {c}?",
            "expected_output": KNOWN_CAPITALS[c],
        }
        for n, c in enumerate(countries)
    ]
    pytester.makefile(".jsonl", **{"datasets/capitals": "\n".join(map(json.dumps, items))})
    pytester.makepyfile(test_capitals=dedent(CAPITALS_SUITE))
    model = "--llm-model=mock-llm-v1?accuracy=0.6&seed=3"

    outcomes = []
    for hash_seed in ("1", "2"):
        monkeypatch.setenv("PYTHONHASHSEED", hash_seed)
        pytester.runpytest_subprocess(model, "-p", "no:cacheprovider")
        run = runs.latest()
        outcomes.append({item["item_id"]: item["outcome"] for item in run["items"]})
        answers = {item["item_id"]: generations(item)[0]["output"] for item in run["items"]}
        outcomes.append(answers)

    first_outcomes, first_answers, second_outcomes, second_answers = outcomes
    assert len(runs.list()) == 2
    assert first_outcomes == second_outcomes
    assert first_answers == second_answers
    assert set(first_outcomes.values()) == {"passed", "failed"}  # accuracy 0.6 really errs


def test_marker_naming_a_missing_dataset_is_a_collection_error(
    pytester: pytest.Pytester, capitals: list[dict[str, Any]]
) -> None:
    pytester.makepyfile(
        test_missing=dedent(
            """\
            import pytest

            @pytest.mark.llm_dataset("capitols")
            def test_capital(item):
                pass
            """
        )
    )

    result = pytester.runpytest()

    result.assert_outcomes(errors=1)
    directory = (pytester.path / "datasets").resolve()
    result.stdout.fnmatch_lines(
        [
            exact(
                f"test_missing.py::test_capital: dataset 'capitols' not found in {directory}; "
                "expected capitols.jsonl, capitols.json or capitols.csv; available: capitals"
            )
        ]
    )


def test_missing_prompt_fails_the_test_listing_the_available_prompts(
    pytester: pytest.Pytester,
) -> None:
    write_prompt(pytester, "ask", ASK_PROMPT)
    pytester.makepyfile("def test_prompt(prompt):\n    prompt('aks')\n")

    result = pytester.runpytest()

    result.assert_outcomes(failed=1)
    directory = (pytester.path / "prompts").resolve()
    result.stdout.fnmatch_lines(
        [
            "E   *"
            + exact(
                f"PromptError: prompt 'aks' not found in {directory}; "
                "expected aks.json, aks.toml or aks.yaml; available: ask"
            )
        ]
    )


# A plugin that runs a failing test again inside one protocol, as pytest-rerunfailures does:
# every attempt's three reports are logged, a failure that is retried with outcome "rerun".
RERUNS_PLUGIN = """
import pytest
from _pytest.runner import runtestprotocol


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item, nextitem):
    item.execution_count = 0
    while True:
        item.execution_count += 1
        item.ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
        reports = runtestprotocol(item, nextitem=nextitem, log=False)
        again = item.execution_count < 3 and any(r.failed for r in reports)
        for report in reports:
            if again and report.failed:
                report.outcome = "rerun"
            item.ihook.pytest_runtest_logreport(report=report)
        if not again:
            break
    item.ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
    return True
"""


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_a_rerun_test_is_stored_as_its_last_attempt(
    pytester: pytest.Pytester, runs: Runs, workers: list[str]
) -> None:
    # (before: the first, failed attempt was stored and the retry recorded nothing, so
    # pass_rate was 0 and a threshold failed a session pytest called green)
    pytester.makeconftest(RERUNS_PLUGIN)
    pytester.makepyfile(
        """
        import pathlib

        COUNT = pathlib.Path(__file__).parent / "attempts.txt"

        def test_flaky(llm, scorer):
            attempt = int(COUNT.read_text()) if COUNT.exists() else 0
            COUNT.write_text(str(attempt + 1))
            llm.generate(f"attempt {attempt}")
            scorer.score("attempt", attempt)
            assert attempt >= 1
        """
    )

    result = pytester.runpytest_subprocess(
        "--llm-model=mock-llm-v1", "--llm-threshold=pass_rate >= 0.9", *workers
    )

    assert result.ret == 0, result.stdout.str()
    (item,) = runs.latest()["items"]
    assert item["outcome"] == "passed"
    assert [s["value"] for s in item["trace"]["scores"]] == [1]
    root = item["trace"]["observations"][0]
    assert root["metadata"]["reruns"] == 1
    generations = [o for o in item["trace"]["observations"] if o["type"] == "generation"]
    assert [g["input"][0]["content"] for g in generations] == ["attempt 1"]


CHAT_ITEMS = [
    {
        "id": "chat",
        "input": {"messages": [{"role": "user", "content": "Capital of France?"}]},
        "expected_output": ["Paris"],
    },
    {"id": "plain", "input": "Capital of Japan?", "expected_output": "Tokyo"},
]
"""A dataset item holding lists and objects, and one holding none (its metadata empty)."""


def test_a_test_changing_its_item_changes_it_for_no_other_test(
    pytester: pytest.Pytester, runs: Runs
) -> None:
    # (before: DatasetItem is frozen but its input, expected output and metadata were one
    # object for every test: the second repeat got the first's appended message, later tests
    # and the `dataset` fixture got them all, and the run stored the changed input)
    pytester.makefile(".jsonl", **{"datasets/chat": "\n".join(map(json.dumps, CHAT_ITEMS))})
    pytester.makepyfile(
        """
        import pytest

        FILE = {"chat": ({"messages": [{"role": "user", "content": "Capital of France?"}]},
                         ["Paris"]),
                "plain": ("Capital of Japan?", "Tokyo")}

        def as_in_the_file(item):
            assert (item.input, item.expected_output) == FILE[item.id]
            assert item.metadata == {}

        def change(item):
            if item.id == "chat":
                item.input["messages"].append({"role": "assistant", "content": "Paris"})
                item.expected_output.append("Paris, France")
            item.metadata["seen"] = True

        @pytest.fixture
        def seen(item):
            return item

        @pytest.mark.llm_dataset("chat", repeat=3)
        def test_changes(item, seen):
            as_in_the_file(item)
            assert seen is item  # one copy per run, whoever asks for it
            change(item)

        def test_fixture_changes(dataset):
            chat = dataset("chat")
            assert chat is dataset("chat")  # one copy per test
            for item in chat:
                as_in_the_file(item)
                change(item)

        def test_fixture_after(dataset):
            for item in dataset("chat"):
                as_in_the_file(item)

        @pytest.mark.llm_dataset("chat")
        def test_after(item):
            as_in_the_file(item)
        """
    )

    result = pytester.runpytest("--llm-model=mock-llm-v1")

    result.assert_outcomes(passed=10)
    stored = runs.items(runs.latest())
    by_id = {item["id"]: item for item in CHAT_ITEMS}
    linked = [item for item in stored.values() if item["item_id"] is not None]
    assert len(linked) == 8
    for item in linked:
        assert item["input"] == by_id[item["item_id"]]["input"]
        assert item["expected_output"] == by_id[item["item_id"]]["expected_output"]


def test_a_rerun_gets_its_item_as_the_dataset_has_it(pytester: pytest.Pytester, runs: Runs) -> None:
    # (before: the second attempt got the message the first one appended, and failed again)
    pytester.makeconftest(RERUNS_PLUGIN)
    pytester.makefile(".jsonl", **{"datasets/chat": "\n".join(map(json.dumps, CHAT_ITEMS))})
    pytester.makepyfile(
        """
        import pathlib
        import pytest

        COUNT = pathlib.Path(__file__).parent / "attempts.txt"

        @pytest.mark.llm_dataset("chat", limit=1)
        def test_flaky(item):
            attempt = int(COUNT.read_text()) if COUNT.exists() else 0
            COUNT.write_text(str(attempt + 1))
            messages = item.input["messages"]
            assert len(messages) == 1
            messages.append({"role": "assistant", "content": "Paris"})
            assert attempt >= 1
        """
    )

    result = pytester.runpytest("--llm-model=mock-llm-v1")

    assert result.ret == 0, result.stdout.str()
    (item,) = runs.latest()["items"]
    assert item["outcome"] == "passed"
    assert item["trace"]["observations"][0]["metadata"]["reruns"] == 1
    assert item["input"] == CHAT_ITEMS[0]["input"]


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_a_test_collected_twice_gets_a_trace_per_run(
    pytester: pytest.Pytester, runs: Runs, xdist: list[str]
) -> None:
    # (before: `pytest a.py a.py --keep-duplicates` stored both runs under one trace id, so an
    # upload merged them into one trace holding both runs' scores)
    pytester.makepyfile(test_twice="def test_one(scorer):\n    scorer.score('accuracy', 1.0)\n")

    result = pytester.runpytest(
        "--llm-model=mock-llm-v1", "test_twice.py", "test_twice.py", "--keep-duplicates", *xdist
    )

    result.assert_outcomes(passed=2)
    items = runs.latest()["items"]
    assert [item["node_id"] for item in items] == ["test_twice.py::test_one"] * 2
    assert len({item["trace"]["id"] for item in items}) == 2
    score_ids = [score["id"] for item in items for score in item["trace"]["scores"]]
    assert len(score_ids) == len(set(score_ids)) == 2


@pytest.mark.parametrize("option", ["--setup-only", "--setup-plan"])
def test_a_session_that_only_sets_up_stores_no_run(pytester: pytest.Pytester, option: str) -> None:
    # (before: pytest said "no tests ran", and the run stored every test as passed: it became
    # `latest` and could be saved as a baseline)
    pytester.makepyfile("def test_one(llm):\n    assert llm.generate('hi').text == 'never'\n")

    result = pytester.runpytest_subprocess("--llm-model=mock-llm-v1", option)

    result.stdout.fnmatch_lines(["*no tests ran*"])
    store = pytester.path / ".llmobs" / "llmobs.db"
    if store.exists():
        with contextlib.closing(sqlite3.connect(store)) as db:
            assert db.execute("SELECT count(*) FROM runs").fetchone() == (0,)


@pytest.mark.parametrize(
    "select", [["-k", "not japan and not peru"], []], ids=["two-deselected", "all-ran"]
)
def test_a_dataset_gated_on_part_of_its_items_says_how_many_ran(
    pytester: pytest.Pytester, select: list[str]
) -> None:
    # (before: -k, --lf or --deselect narrowed a dataset's gate to the items that ran, and
    # nothing but n said so: deselecting the failures turned a failing gate green)
    countries = ["france", "japan", "peru", "italy"]
    items = [{"id": c, "input": f"What is the capital of {c.title()}?"} for c in countries]
    pytester.makefile(".jsonl", **{"datasets/capitals": "\n".join(map(json.dumps, items))})
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.llm_dataset("capitals")
        def test_capital(item, llm):
            llm.generate(item.input)
        """
    )

    result = pytester.runpytest("--llm-model=mock-llm-v1", "--llm-report=report.html", *select)

    header = next(line for line in result.outlines if line.startswith("dataset 'capitals'"))
    out = io.StringIO()
    assert cli_main(["show", "latest", "--store", str(pytester.path / ".llmobs")], out) == 0
    shown = next(line for line in out.getvalue().splitlines() if line.startswith("dataset "))
    assert shown == header  # `llmobs show` says it too, from the stored run
    html = (pytester.path / "report.html").read_text(encoding="utf-8")
    rescored = io.StringIO()
    rescore = ["rescore", "latest", "--threshold", "capitals: pass_rate >= 1"]
    assert cli_main([*rescore, "--store", str(pytester.path / ".llmobs")], rescored) == 0
    if select:
        assert header.endswith("items  pass rate 100.0% (2/2)  (2 of its 4 items ran)")
        assert '<td class="num">2 (2 of its 4 items ran)</td>' in html
        assert "dataset 'capitals': 2 of its 4 items ran; its gates judge those only" in (
            rescored.getvalue().splitlines()
        )
    else:
        assert "of its" not in header
        assert "of its" not in html
        assert "of its" not in rescored.getvalue()


def test_a_datasets_directory_that_is_a_file_is_said_to_be_one(pytester: pytest.Pytester) -> None:
    # (before: "directory .../datasets does not exist", of a path that exists)
    (pytester.path / "datasets").write_text("", encoding="utf-8")
    pytester.makepyfile(
        test_file_dir=dedent(
            """\
            import pytest

            @pytest.mark.llm_dataset("capitals")
            def test_capital(item):
                pass
            """
        )
    )

    result = pytester.runpytest()

    result.assert_outcomes(errors=1)
    directory = (pytester.path / "datasets").resolve()
    result.stdout.fnmatch_lines(
        [
            exact(
                f"test_file_dir.py::test_capital: dataset 'capitals' not found: directory "
                f"{directory} is a file, not a directory"
            )
        ]
    )
