"""Where pytest's configuration puts things: config files, rootdir, ``-o``, ``~`` and ``$VARS``
in ini paths, and errors naming where a bad value came from. ``llmobs`` must find the store
where a real pytest session put it."""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path
from textwrap import dedent

import pytest
from conftest import INNER_SESSION_OPTIONS

from pytest_llmobs.cli import main
from pytest_llmobs.locate import find_store_dir
from pytest_llmobs.store import STORE_FILENAME

USAGE_ERROR = pytest.ExitCode.USAGE_ERROR

TEST_FILE = dedent("""\
    import pytest

    @pytest.mark.llm_dataset("qa")
    def test_qa(item, llm, scorer):
        assert scorer.exact_match(llm.generate(item.input).text, item.expected_output)
""")
DATASET = '{"id": "fr", "input": "What is the capital of France?", "expected_output": "Paris"}\n'


def project(pytester: pytest.Pytester, *, datasets: Path | None = None) -> None:
    """A suite of one dataset test (its dataset in ``datasets``, default ``<dir>/datasets``)."""
    folder = datasets or pytester.path / "datasets"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "qa.jsonl").write_text(DATASET, encoding="utf-8")
    (pytester.path / "tests").mkdir(exist_ok=True)
    (pytester.path / "tests" / "test_qa.py").write_text(TEST_FILE, encoding="utf-8")


def stores_under(*roots: Path) -> list[Path]:
    """The store directories a session wrote under ``roots``."""
    return sorted(db.parent for root in roots for db in root.rglob(STORE_FILENAME))


def llmobs(cwd: Path, monkeypatch: pytest.MonkeyPatch, *args: str) -> tuple[int, str, str]:
    """``llmobs ARGS`` run in ``cwd`` in this process: status, stdout, stderr."""
    monkeypatch.chdir(cwd)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(list(args), out)
    return code, out.getvalue(), err.getvalue()


# --- 1. the CLI finds the store as pytest does ----------------------------------------------


def test_cli_reads_pytest_toml_before_a_leftover_tox_ini(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # (before: pytest.toml was unknown; the CLI opened tox.ini's store, or said there was none)
    project(pytester)
    pytester.makefile(".toml", pytest='[pytest]\nllm_store = "tomlruns"\n')
    pytester.makefile(".ini", tox="[pytest]\nllm_store = wrong\n")

    pytester.runpytest("--llm-run-name=toml").assert_outcomes(passed=1)

    assert stores_under(pytester.path) == [pytester.path / "tomlruns"]
    code, out, err = llmobs(pytester.path / "tests", monkeypatch, "show", "latest")
    assert code == 0, err
    assert "name 'toml'" in out


@pytest.mark.parametrize("name", ["pytest.toml", ".pytest.toml"])
def test_an_empty_pytest_toml_makes_the_rootdir(pytester: pytest.Pytester, name: str) -> None:
    # pytest.toml is the config file even without a [pytest] table, over a parent's pytest.ini
    pytester.makeini("[pytest]\nllm_store = parent-runs\n")
    sub = pytester.mkdir("sub")
    (sub / name).write_text("", encoding="utf-8")

    assert find_store_dir(sub) == sub / ".llmobs"


def test_without_a_config_file_a_pyproject_toml_makes_the_rootdir(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # (before: the CLI run from tests/ looked in tests/.llmobs)
    project(pytester)
    pytester.makefile(".toml", pyproject='[project]\nname = "p"\nversion = "0"\n')
    monkeypatch.chdir(pytester.path / "tests")

    pytester.runpytest("--llm-run-name=pyproject").assert_outcomes(passed=1)

    assert stores_under(pytester.path) == [pytester.path / ".llmobs"]
    code, out, err = llmobs(pytester.path / "tests", monkeypatch, "show", "latest")
    assert code == 0, err
    assert "name 'pyproject'" in out


@pytest.mark.parametrize(
    ("ini", "env"),
    [
        pytest.param("addopts = -o llm_store=override-runs", "", id="ini-addopts"),
        pytest.param("", "--override-ini=llm_store=override-runs", id="PYTEST_ADDOPTS"),
        pytest.param(
            "llm_store = ini-runs\naddopts = -o llm_store=wrong",
            "-ollm_store=override-runs",
            id="PYTEST_ADDOPTS-after-addopts",
        ),
    ],
)
def test_cli_honours_override_ini_of_the_store(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, ini: str, env: str
) -> None:
    # (before: -o llm_store was ignored: the CLI looked in the ini's store or .llmobs)
    project(pytester)
    pytester.makeini(f"[pytest]\n{ini}\n")
    monkeypatch.setenv("PYTEST_ADDOPTS", f"{INNER_SESSION_OPTIONS} {env}")

    pytester.runpytest("--llm-run-name=override").assert_outcomes(passed=1)

    assert stores_under(pytester.path) == [pytester.path / "override-runs"]
    assert find_store_dir(pytester.path / "tests") == pytester.path / "override-runs"
    code, out, err = llmobs(pytester.path / "tests", monkeypatch, "show", "latest")
    assert code == 0, err
    assert "name 'override'" in out


# --- 2. ~ and $VARS in ini paths ------------------------------------------------------------


def test_home_and_variables_in_ini_paths_are_expanded(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # (before: a directory literally named '~' (and '$LLM_DATA') in the project)
    home, data = tmp_path / "home", tmp_path / "data"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("LLM_DATA", str(data))
    project(pytester, datasets=data / "datasets")
    pytester.makeini(
        dedent("""\
        [pytest]
        llm_store = ~/llmruns
        llm_datasets_dir = $LLM_DATA/datasets
        llm_cache = write
        llm_cache_dir = ${LLM_DATA}/cache
        llm_report = ~/out/report.html
        llm_json = $LLM_DATA/out/run.json
        """)
    )

    result = pytester.runpytest("--llm-run-name=expanded")

    result.assert_outcomes(passed=1)
    assert not (pytester.path / "~").exists()
    assert not any("$" in str(p) for p in pytester.path.rglob("*"))
    assert stores_under(home) == [home / "llmruns"]
    assert (home / "out" / "report.html").is_file()
    assert (data / "out" / "run.json").is_file()
    assert any((data / "cache").iterdir())
    assert find_store_dir(pytester.path / "tests") == home / "llmruns"


def test_a_baseline_file_in_the_ini_is_found_under_home(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    project(pytester)
    pytester.runpytest(f"--llm-json={tmp_path / 'base.json'}").assert_outcomes(passed=1)
    pytester.makeini("[pytest]\nllm_baseline = ~/base.json\n")

    result = pytester.runpytest()

    assert result.ret == pytest.ExitCode.OK, result.stderr.str()
    result.stdout.fnmatch_lines(["*= llmobs comparison vs baseline ~/base.json (run *) =*"])


# --- 3. a non-ASCII digit -------------------------------------------------------------------


@pytest.mark.parametrize("value", ["²", "1²"])
def test_a_non_ascii_digit_in_max_retries_is_a_usage_error(
    pytester: pytest.Pytester, value: str
) -> None:
    # (before: '²'.isdigit() is true, then int('²') raised: INTERNALERROR)
    pytester.makepyfile("def test_one():\n    pass\n")

    result = pytester.runpytest(f"--llm-max-retries={value}")

    assert result.ret == USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"ERROR: --llm-max-retries must be an integer >= 0; got {value!r}"]
    )


# --- 4. a report path ending in / -----------------------------------------------------------


@pytest.mark.parametrize("flag", ["--llm-report", "--llm-json"])
@pytest.mark.parametrize("name", ["newdir/", "newdir/."])
def test_a_report_path_ending_in_a_slash_is_a_usage_error(
    pytester: pytest.Pytester, flag: str, name: str
) -> None:
    # (before: a regular file named 'newdir' was written)
    pytester.makepyfile("def test_one():\n    pass\n")

    result = pytester.runpytest(f"{flag}={name}")

    assert result.ret == USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"ERROR: {flag}: {name!r} names a directory; expected a file path"]
    )
    assert not (pytester.path / "newdir").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--junitxml=out.xml", "--llm-report=out.xml"],
            "--llm-report: '{path}' is also the file --junitxml writes",
        ),
        (
            ["--llm-report=out.json", "--llm-json=./out.json"],
            "--llm-json: '{path}' is also the file --llm-report writes",
        ),
        (
            ["--html=out.html", "--llm-report=out.html"],
            "--llm-report: '{path}' is also the file --html (pytest-html) writes",
        ),
    ],
)
def test_two_reports_sharing_one_file_is_a_usage_error(
    pytester: pytest.Pytester, args: list[str], message: str
) -> None:
    # (before: the report written last silently replaced the other, after saying it was written)
    pytester.makeconftest(  # pytest-html's option, as it declares it
        "def pytest_addoption(parser):\n    parser.addoption('--html', dest='htmlpath')\n"
    )
    pytester.makepyfile("def test_one():\n    pass\n")

    result = pytester.runpytest(*args)

    assert result.ret == USAGE_ERROR
    path = pytester.path / args[1].split("=")[1]
    expected = message.format(path=os.path.normpath(path))
    result.stderr.fnmatch_lines([f"ERROR: {expected}; expected a file of its own (*)"])
    assert list(pytester.path.glob("out.*")) == []


@pytest.mark.parametrize(
    ("args", "target"),
    [
        (["--llm-json=.llmobs/llmobs.db"], ".llmobs/llmobs.db"),
        (["--llm-report=.llmobs/llmobs.db-wal"], ".llmobs/llmobs.db-wal"),
        (["--llm-json=sub/../.llmobs/llmobs.db-shm"], ".llmobs/llmobs.db-shm"),
        (["--llm-report=link.html"], ".llmobs/llmobs.db"),  # a symlink to the database
        (["--llm-store=new", "--llm-json=new/llmobs.db"], "new/llmobs.db"),  # created first
        (["--llm-no-store", "--junitxml=.llmobs/llmobs.db"], ".llmobs/llmobs.db"),
    ],
)
def test_a_report_written_over_a_file_of_the_store_is_a_usage_error(
    pytester: pytest.Pytester, args: list[str], target: str
) -> None:
    # (before: the report replaced the store's database: every run and baseline lost)
    project(pytester)
    pytester.runpytest().assert_outcomes(passed=1)
    (pytester.path / "sub").mkdir()
    (pytester.path / "link.html").symlink_to(pytester.path / ".llmobs" / "llmobs.db")
    database = pytester.path / ".llmobs" / "llmobs.db"
    before = database.read_bytes()

    result = pytester.runpytest(*args)

    assert result.ret == USAGE_ERROR
    flag = args[-1].split("=")[0]
    path = pytester.path / target
    assert result.stderr.lines[0] == (
        f"ERROR: {flag}: {str(path)!r} is a file of the llmobs store in {path.parent}; writing "
        "there would destroy its runs; expected a file of its own"
    )
    assert database.read_bytes() == before
    assert not (pytester.path / "new").exists()


@pytest.mark.parametrize("command", ["report", "export"])
def test_cli_output_ending_in_a_slash_is_a_usage_error(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    project(pytester)
    pytester.runpytest().assert_outcomes(passed=1)

    code, out, err = llmobs(pytester.path, monkeypatch, command, "latest", "-o", "newout/")

    assert (code, out) == (2, "")
    assert err == "llmobs: error: -o newout/: names a directory; give a file name\n"
    assert not (pytester.path / "newout").exists()


# --- 5. an ini value's error names the ini key and file -------------------------------------


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("llm_cache = reed", "llm_cache in {ini}: 'reed' is not a valid mode. Valid modes: *"),
        ("llm_repeat = 0", "llm_repeat in {ini} must be a positive integer; got '0'"),
        ("llm_max_retries = ²", "llm_max_retries in {ini} must be an integer >= 0; got '²'"),
        ("llm_max_drop = -1", "llm_max_drop in {ini} must be a number >= 0 *; got '-1'"),
        ("llm_upload = datadog", "llm_upload in {ini}: 'datadog' is not a known upload target*"),
        ("llm_run_name = latest", "llm_run_name in {ini}: 'latest' is reserved: *"),
        ("llm_redact = loud", "llm_redact in {ini}: 'loud' is not a redaction mode; valid: *"),
        ("llm_trace_sample = 2", "llm_trace_sample in {ini}: 2.0 is not a share; expected 0..1*"),
        (
            "llm_max_field_chars = 5",
            "llm_max_field_chars in {ini}: 5 is too small; expected >= 100",
        ),
        (
            "llm_fail_on = bogus",
            "'bogus' is not a valid --llm-fail-on policy. * (given by llm_fail_on in {ini})",
        ),
        (
            "llm_report = out/",
            "llm_report in {ini}: 'out/' names a directory; expected a file path",
        ),
        ("llm_model = gpt4", "llm_model in {ini}: unknown model 'gpt4'; known models: *"),
        ("llm_judge_model = nope", "llm_judge_model in {ini}: unknown model 'nope'; *"),
        ("llm_prices = prices.json", "llm_prices in {ini}: cannot read '*prices.json': *"),
        ("llm_baseline = main", "llm_baseline in {ini}: unknown baseline 'main': *"),
        ("llm_save_baseline = latest", "llm_save_baseline in {ini}: * 'latest' is reserved: *"),
        ("llm_store = tox.ini", "llm_store in {ini}: {ini} is a file; the store needs a directory"),
        ("llm_run_id = a b", "llm_run_id in {ini}: invalid run id 'a b'; *"),
        ("llm_threshold = p >= x", "invalid threshold 'p >= x' (from llm_threshold in {ini}): *"),
        ("llm_redact_maskers = nomod:f", "llm_redact_maskers in {ini}: masker 'nomod:f' cannot *"),
        ("llm_datasets_dir = tox.ini", "llm_datasets_dir in {ini}: '{ini}' is a file, not a *"),
        ("llm_prompts_dir = tox.ini", "llm_prompts_dir in {ini}: '{ini}' is a file, not a *"),
        (
            "llm_cache = read\nllm_cache_dir = tox.ini",
            "llm_cache_dir in {ini}: *'{ini}' is a file; expected the cache's directory",
        ),
    ],
)
def test_a_bad_ini_value_names_its_key_and_file(
    pytester: pytest.Pytester, line: str, message: str
) -> None:
    # (before: the command-line flag was named, as if it had been given there)
    ini = pytester.makeini(f"[pytest]\n{line}\n")
    pytester.makepyfile("def test_one():\n    pass\n")

    result = pytester.runpytest()

    assert result.ret == USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: " + message.format(ini=ini)])


def test_a_bad_override_ini_value_names_the_override(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nllm_repeat = 2\n")
    pytester.makepyfile("def test_one():\n    pass\n")

    result = pytester.runpytest("-o", "llm_repeat=zero")

    assert result.ret == USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: -o llm_repeat must be a positive integer; got 'zero'"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-o", "llm_model=nope"], "-o llm_model: unknown model 'nope'; known models: *"),
        (["-o", "llm_prices=x.json"], "-o llm_prices: cannot read '*x.json': *"),
        (["-o", "llm_threshold=p >= x"], "invalid threshold 'p >= x' (from -o llm_threshold): *"),
        (["--llm-model=nope"], "--llm-model: unknown model 'nope'; known models: *"),
        (["--llm-prices=x.json"], "--llm-prices: cannot read '*x.json': *"),
        (["--llm-run-id=a b"], "--llm-run-id: invalid run id 'a b'; *"),
    ],
)
def test_a_bad_override_or_flag_value_names_it(
    pytester: pytest.Pytester, args: list[str], message: str
) -> None:
    # (before: -o llm_model=... and -o llm_prices=... were said to be --llm-model, --llm-prices)
    pytester.makeini("[pytest]\nllm_model = mock-llm-v1\nllm_run_id = ci-1\n")
    pytester.makepyfile("def test_one():\n    pass\n")

    result = pytester.runpytest(*args)

    assert result.ret == USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: " + message])


# --- 6. numbers in native TOML --------------------------------------------------------------

NATIVE_TOML_NUMBERS = """\
llm_repeat = 2
llm_max_retries = "5"
llm_max_drop = 0.1
llm_trace_sample = 1
llm_max_field_chars = 200
"""


@pytest.mark.skipif(pytest.version_tuple[:2] < (9, 2), reason="pytest 9.2: addini(type=str | int)")
@pytest.mark.parametrize(
    ("name", "table"), [("pyproject.toml", "[tool.pytest]"), ("pytest.toml", "[pytest]")]
)
def test_numbers_may_be_written_unquoted_in_native_toml(
    pytester: pytest.Pytester, name: str, table: str
) -> None:
    # (before: "config option 'llm_repeat' expects a string, got int: 2")
    project(pytester)
    (pytester.path / name).write_text(f"{table}\n{NATIVE_TOML_NUMBERS}", encoding="utf-8")

    result = pytester.runpytest()

    result.assert_outcomes(passed=2)  # one item, repeated twice
    result.stdout.fnmatch_lines(["*repeats: up to 2 per item*"])


@pytest.mark.skipif(pytest.version_tuple[:2] < (9, 2), reason="pytest 9.2: addini(type=str | int)")
def test_a_bad_native_toml_number_gets_our_message(pytester: pytest.Pytester) -> None:
    pytester.makefile(".toml", pyproject="[tool.pytest]\nllm_repeat = 0\n")
    pytester.makepyfile("def test_one():\n    pass\n")

    result = pytester.runpytest()

    assert result.ret == USAGE_ERROR
    pyproject = pytester.path / "pyproject.toml"
    result.stderr.fnmatch_lines(
        [f"ERROR: llm_repeat in {pyproject} must be a positive integer; got '0'"]
    )
