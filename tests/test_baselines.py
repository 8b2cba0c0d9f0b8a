"""Baselines: resolving ``--llm-baseline`` (files, saved names, runs), validating export files,
saving baselines from a session and from ``llmobs baseline``, and the store's schema migration."""

from __future__ import annotations

import contextlib
import glob
import json
import shlex
import sqlite3
from io import StringIO
from pathlib import Path
from textwrap import dedent
from typing import TYPE_CHECKING

import numpy  # noqa: F401  (numpy loads once per process: here, not in an inner session)
import pytest

import pytest_llmobs.baselines  # noqa: F401  (loaded once here, not inside the inner sessions)
from pytest_llmobs import cli
from pytest_llmobs.store import Store, StoreError
from pytest_llmobs.store_schema import SCHEMA_VERSION

if TYPE_CHECKING:
    from conftest import Runs

USAGE_ERROR = pytest.ExitCode.USAGE_ERROR
RESERVED = (
    "'latest' and names shaped like a run id or its prefix (e.g. '20261127T204433-3f9a1c', "
    "'20261127') are reserved for runs"
)

SUITE = """\
    import pytest

    @pytest.mark.llm_dataset("capitals")
    def test_capital(item, llm, scorer):
        assert scorer.exact_match(llm.generate(item.input).text, item.expected_output)
    """


def exact(line: str) -> str:
    return glob.escape(line)


@pytest.fixture
def project(pytester: pytest.Pytester, capitals: list[dict[str, object]]) -> pytest.Pytester:
    pytester.makeini("[pytest]\n")
    pytester.makepyfile(test_capitals=dedent(SUITE))
    return pytester


def llmobs(directory: Path, *args: str) -> tuple[int, str]:
    out = StringIO()
    code = cli.main([*args, "--store", str(directory / ".llmobs")], out)
    return code, out.getvalue()


def compared_with(runs: Runs) -> str:
    return str(runs.latest()["comparison"]["baseline"]["id"])


# --- resolution ---------------------------------------------------------------------------------


def test_baseline_by_run_name_id_prefix_and_latest(project: pytest.Pytester, runs: Runs) -> None:
    project.runpytest("--llm-run-name=first").assert_outcomes(passed=4)
    first = runs.latest()["id"]
    project.runpytest("--llm-run-name=second").assert_outcomes(passed=4)
    second = runs.latest()["id"]

    # "latest" first: each comparison run becomes the latest run.
    for ref, expected in (("latest", second), ("first", first), (first[:-2], first)):
        project.runpytest(f"--llm-baseline={ref}").assert_outcomes(passed=4)
        assert compared_with(runs) == expected, ref
        assert runs.latest()["comparison"]["baseline"]["source"] == "run"


def test_a_file_beats_a_saved_baseline_of_the_same_name(
    project: pytest.Pytester, runs: Runs
) -> None:
    project.runpytest("--llm-run-name=exported").assert_outcomes(passed=4)
    exported = runs.latest()["id"]
    assert llmobs(project.path, "export", "exported", "-o", str(project.path / "main"))[0] == 0
    project.runpytest("--llm-save-baseline=main").assert_outcomes(passed=4)

    project.runpytest("--llm-baseline=main").assert_outcomes(passed=4)

    assert compared_with(runs) == exported
    assert runs.latest()["comparison"]["baseline"]["source"] == "file"


def test_a_saved_baseline_beats_a_run_of_the_same_name(
    project: pytest.Pytester, runs: Runs
) -> None:
    project.runpytest("--llm-run-name=saved", "--llm-save-baseline=nightly").assert_outcomes(
        passed=4
    )
    saved = runs.latest()["id"]
    project.runpytest("--llm-run-name=nightly").assert_outcomes(passed=4)

    project.runpytest("--llm-baseline=nightly").assert_outcomes(passed=4)

    assert compared_with(runs) == saved
    assert runs.latest()["comparison"]["baseline"]["source"] == "saved baseline"


def test_unknown_baseline_lists_saved_baselines_and_recent_runs(
    project: pytest.Pytester, runs: Runs
) -> None:
    project.runpytest("--llm-run-name=kept", "--llm-save-baseline=main").assert_outcomes(passed=4)
    run_id = runs.latest()["id"]

    result = project.runpytest("--llm-baseline=mian")

    assert result.ret == USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            exact(
                f"ERROR: --llm-baseline: unknown baseline 'mian': not a file, a saved baseline or "
                f"a run in {runs.db()}; saved baselines: main; recent runs: kept ({run_id})"
            )
        ]
    )


def test_baseline_file_in_the_ini_file_is_relative_to_it(
    project: pytest.Pytester, runs: Runs
) -> None:
    project.runpytest("--llm-run-name=exported").assert_outcomes(passed=4)
    exported = runs.latest()["id"]
    ci = project.mkdir("ci")
    llmobs(project.path, "export", "exported", "-o", str(ci / "baseline.json"))
    (ci / "pytest.ini").write_text("[pytest]\nllm_baseline = baseline.json\n", encoding="utf-8")

    result = project.runpytest("-c", "ci/pytest.ini", f"--rootdir={project.path}")

    result.assert_outcomes(passed=4)
    assert compared_with(runs) == exported


# --- export files: validated at the edge --------------------------------------------------------


def test_missing_baseline_file_is_a_usage_error(project: pytest.Pytester) -> None:
    result = project.runpytest("--llm-baseline=ci/baseline.json")

    assert result.ret == USAGE_ERROR
    missing = project.path / "ci" / "baseline.json"
    result.stderr.fnmatch_lines(
        [exact(f"ERROR: --llm-baseline: baseline file {str(missing)!r} does not exist")]
    )
    assert not (project.path / ".llmobs" / "llmobs.db-wal").exists()  # store closed again


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        pytest.param(
            "{not json",
            "is not valid JSON: Expecting property name enclosed in double quotes: "
            "line 1 column 2 (char 1)",
            id="not-json",
        ),
        pytest.param(
            '{"runs": []}',
            "is not a pytest-llmobs run export (expected \"format\": 'pytest-llmobs/run'; write "
            "one with 'llmobs export RUN -o FILE')",
            id="not-an-export",
        ),
        pytest.param(
            json.dumps({"format": "pytest-llmobs/run", "format_version": 1, "id": "r1"}),
            "is not a valid run export: items: Field required",
            id="no-items",
        ),
        pytest.param(
            json.dumps(
                {
                    "format": "pytest-llmobs/run",
                    "format_version": 1,
                    "id": "r1",
                    "items": [{"node_id": "t.py::t", "outcome": "maybe", "trace": {}}],
                }
            ),
            "is not a valid run export: items.0.outcome: Input should be 'passed', 'failed', "
            "'error' or 'skipped'",
            id="bad-outcome",
        ),
        pytest.param(
            json.dumps(
                {"format": "pytest-llmobs/run", "format_version": 9, "id": "r", "items": []}
            ),
            "is not a valid run export: format_version: Input should be less than or equal to 1",
            id="newer-version",
        ),
    ],
)
def test_malformed_baseline_file_is_a_one_line_usage_error(
    project: pytest.Pytester, content: str, problem: str
) -> None:
    project.makefile(".json", baseline=content)

    result = project.runpytest("--llm-baseline=baseline.json")

    assert result.ret == USAGE_ERROR
    path = str(project.path / "baseline.json")
    result.stderr.fnmatch_lines([exact(f"ERROR: --llm-baseline: baseline file {path!r} {problem}")])
    errors = [line for line in result.stderr.lines if line.startswith("ERROR")]
    assert len(errors) == 1


# --- saving -------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["interrupted", "running"])
def test_an_unfinished_baseline_is_a_usage_error_as_compare_refuses_it(
    project: pytest.Pytester, runs: Runs, status: str
) -> None:
    # (before: the session compared the items the interrupted or still running run had stored,
    # passed its gate and exited 0, while `llmobs compare` on the same runs failed)
    project.runpytest("--llm-run-name=partial").assert_outcomes(passed=4)
    run_id = runs.latest()["id"]
    with contextlib.closing(sqlite3.connect(runs.db())) as db, db:
        db.execute("UPDATE runs SET status = ? WHERE id = ?", (status, run_id))

    result = project.runpytest("--llm-baseline=partial")

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    why = "still running" if status == "running" else "interrupted (Ctrl-C, killed or crashed)"
    result.stderr.fnmatch_lines(
        [
            exact(
                f"ERROR: --llm-baseline: baseline run {run_id} is incomplete: {why}, 4 item(s) "
                "stored; a partial run passes no gate; compare against a finished run (its id, "
                "or a saved baseline)"
            )
        ]
    )


def test_save_baseline_only_when_the_session_passes(project: pytest.Pytester, runs: Runs) -> None:
    project.runpytest("--llm-save-baseline=main").assert_outcomes(passed=4)
    good = runs.latest()["id"]

    result = project.runpytest("--llm-save-baseline=main", "--llm-threshold=pass_rate > 1")

    assert result.ret == pytest.ExitCode.TESTS_FAILED
    failed = runs.latest()["id"]
    result.stdout.fnmatch_lines(
        [
            "not saved as baseline 'main': the session did not pass (run status failed); "
            f"`llmobs baseline save main {failed} --force` saves it anyway"
        ]
    )
    with runs.open() as store:
        assert store.get_baseline("main") == good


def test_the_command_that_saves_a_failed_run_anyway_works_where_pytest_ran(
    project: pytest.Pytester,
) -> None:
    # (before: `llmobs baseline save a b RUN --force`: no --store, so llmobs looked for the
    # store in .llmobs, and the name unquoted, read by a shell as two words)
    result = project.runpytest(
        "--llm-store=other store", "--llm-save-baseline=a b", "--llm-threshold=pass_rate > 1"
    )

    assert result.ret == pytest.ExitCode.TESTS_FAILED
    database = project.path / "other store" / "llmobs.db"
    with contextlib.closing(Store(database)) as store:
        failed = store.resolve_run("latest")
    hint = (
        "not saved as baseline 'a b': the session did not pass (run status failed); "
        f"`llmobs baseline save 'a b' {failed} --force --store 'other store'` saves it anyway"
    )
    result.stdout.fnmatch_lines([exact(hint)])
    command = shlex.split(hint.split("`")[1])
    assert cli.main(command[1:], StringIO()) == 0  # as typed in the directory pytest ran in
    with contextlib.closing(Store(database)) as store:
        assert store.get_baseline("a b") == failed


def test_an_interrupted_session_compares_as_incomplete_and_saves_no_baseline(
    project: pytest.Pytester, runs: Runs
) -> None:
    """The stored comparison said "passed" while `llmobs compare` said "incomplete run"."""
    project.runpytest("--llm-save-baseline=main").assert_outcomes(passed=4)
    project.makeconftest(
        """
        import pytest

        @pytest.hookimpl(trylast=True)
        def pytest_runtest_logreport(report):
            if report.when == "teardown" and report.nodeid.endswith("[japan]"):
                pytest.exit("stopping for the day")
        """
    )

    result = project.runpytest("--llm-baseline=main", "--llm-save-baseline=next")

    assert result.ret == pytest.ExitCode.INTERRUPTED
    run = runs.latest()
    note = (
        f"compared run {run['id']} is incomplete: interrupted (Ctrl-C, killed or crashed), "
        "2 item(s) stored; a partial run passes no gate"
    )
    result.stdout.fnmatch_lines(
        ["not saved as baseline 'next': *", exact(note), "session fails: a run it compares is *"]
    )
    assert run["status"] == "interrupted"
    assert (run["comparison"]["verdict"], run["comparison"]["incomplete"]) == (
        "incomplete run",
        [note],
    )
    assert llmobs(project.path, "compare", "main", run["id"], "--format", "json")[0] == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(
            ["--llm-save-baseline=main", "--llm-no-store"],
            "ERROR: --llm-save-baseline: cannot save a baseline with --llm-no-store",
            id="no-store",
        ),
        pytest.param(
            ["--llm-save-baseline=ci/main.json"],
            "ERROR: --llm-save-baseline: baseline name 'ci/main.json' would read as a file path; "
            "use a name without '/' or '.json'",
            id="file-like",
        ),
        pytest.param(
            ["--llm-save-baseline=latest"],
            f"ERROR: --llm-save-baseline: baseline name 'latest' is reserved: {RESERVED}; "
            "pick another name",
            id="latest",
        ),
        pytest.param(
            ["--llm-save-baseline=20261127T20"],
            f"ERROR: --llm-save-baseline: baseline name '20261127T20' is reserved: {RESERVED}; "
            "pick another name",
            id="run-id-prefix",
        ),
    ],
)
def test_bad_save_baseline_is_a_usage_error(
    project: pytest.Pytester, args: list[str], message: str
) -> None:
    result = project.runpytest(*args)
    assert result.ret == USAGE_ERROR
    result.stderr.fnmatch_lines([exact(message)])


def test_cli_baseline_save_and_list(project: pytest.Pytester, runs: Runs) -> None:
    project.runpytest("--llm-run-name=first").assert_outcomes(passed=4)
    first = runs.latest()["id"]
    project.runpytest("--llm-run-name=second").assert_outcomes(passed=4)
    second = runs.latest()["id"]

    assert llmobs(project.path, "baseline", "save", "main", "first") == (
        0,
        f"saved baseline 'main': run {first} ('first')\n",
    )
    code, out = llmobs(project.path, "baseline", "save", "nightly")  # default: latest
    assert (code, out) == (0, f"saved baseline 'nightly': run {second} ('second')\n")
    code, listing = llmobs(project.path, "baseline", "list")
    rows = [line.split()[:3] for line in listing.splitlines()]
    assert rows == [["NAME", "RUN", "ID"], ["main", first, "first"], ["nightly", second, "second"]]
    project.runpytest("--llm-baseline=main").assert_outcomes(passed=4)
    assert compared_with(runs) == first
    # saving a name again moves it, and says which run it named before
    assert llmobs(project.path, "baseline", "save", "main", "second") == (
        0,
        f"saved baseline 'main': run {second} ('second'), replacing run {first}\n",
    )


def test_cli_baseline_save_of_an_unknown_run_fails(
    project: pytest.Pytester, capsys: pytest.CaptureFixture[str]
) -> None:
    project.runpytest("--llm-run-name=first").assert_outcomes(passed=4)
    code, _ = llmobs(project.path, "baseline", "save", "main", "nope")
    assert code == 2
    assert capsys.readouterr().err.startswith("llmobs: error: no run 'nope' in ")


@pytest.mark.parametrize(
    ("name", "why"),
    [
        pytest.param("latest", RESERVED, id="latest"),
        pytest.param("2026", RESERVED, id="digits"),
        pytest.param("20261127T204433-3f9a1c", RESERVED, id="generated-id"),
    ],
)
def test_cli_baseline_save_refuses_names_that_read_as_a_run(
    project: pytest.Pytester, capsys: pytest.CaptureFixture[str], name: str, why: str
) -> None:
    project.runpytest("--llm-run-id=ci-7").assert_outcomes(passed=4)

    assert llmobs(project.path, "baseline", "save", name) == (2, "")

    assert capsys.readouterr().err == (
        f"llmobs: error: baseline name {name!r} is reserved: {why}; pick another name\n"
    )
    assert llmobs(project.path, "baseline", "list")[1].startswith("no saved baselines")


@pytest.mark.parametrize(
    ("name", "why"),
    [
        pytest.param("ci-7", "the id of a stored run", id="stored-id"),
        pytest.param("ci", "a prefix of the stored run id 'ci-7'", id="id-prefix"),
        pytest.param("good", "the name of a stored run", id="run-name"),
    ],
)
def test_cli_baseline_save_refuses_names_of_stored_runs(
    project: pytest.Pytester, capsys: pytest.CaptureFixture[str], name: str, why: str
) -> None:
    project.runpytest("--llm-run-id=ci-7", "--llm-run-name=good").assert_outcomes(passed=4)

    assert llmobs(project.path, "baseline", "save", name) == (2, "")

    assert capsys.readouterr().err == (
        f"llmobs: error: baseline name {name!r} is {why}; a baseline name must not read as a "
        "run (its id, an id prefix or its name); pick another name\n"
    )
    assert llmobs(project.path, "baseline", "list")[1].startswith("no saved baselines")


def test_a_run_id_cannot_be_a_saved_baseline_name(project: pytest.Pytester, runs: Runs) -> None:
    project.runpytest("--llm-run-name=good").assert_outcomes(passed=4)
    assert llmobs(project.path, "baseline", "save", "nightly")[0] == 0

    result = project.runpytest("--llm-run-id=nightly")

    assert result.ret == USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --llm-run-id: 'nightly' is the name of a saved baseline*"])
    assert [r["name"] for r in runs.list()] == ["good"]


def test_save_baseline_option_refuses_a_name_of_this_or_a_stored_run(
    project: pytest.Pytester, runs: Runs
) -> None:
    project.runpytest("--llm-run-name=good").assert_outcomes(passed=4)

    clash = project.runpytest("--llm-save-baseline=good")
    own = project.runpytest("--llm-run-name=mine", "--llm-save-baseline=mine")

    assert clash.ret == own.ret == USAGE_ERROR
    clash.stderr.fnmatch_lines(["ERROR: --llm-save-baseline: baseline name 'good' is the name of*"])
    own.stderr.fnmatch_lines(["ERROR: --llm-save-baseline: baseline name 'mine' is this run's*"])
    assert [r["name"] for r in runs.list()] == ["good"]


def test_every_command_reads_a_baseline_name_as_its_run(project: pytest.Pytester) -> None:
    project.runpytest("--llm-run-name=first", "--llm-save-baseline=main").assert_outcomes(passed=4)
    project.runpytest("--llm-run-name=second").assert_outcomes(passed=4)

    code, shown = llmobs(project.path, "show", "main")
    exported = json.loads(llmobs(project.path, "export", "main")[1])

    assert code == 0
    assert "name 'first'" in shown
    assert exported["name"] == "first"


def test_baseline_save_refuses_a_run_that_did_not_pass_unless_forced(
    project: pytest.Pytester, capsys: pytest.CaptureFixture[str]
) -> None:
    project.runpytest("--llm-model=mock-llm-v1?accuracy=0", "--llm-run-name=bad")
    capsys.readouterr()

    refused = llmobs(project.path, "baseline", "save", "main", "bad")
    message = capsys.readouterr().err
    forced = llmobs(project.path, "baseline", "save", "main", "bad", "--force")

    assert refused == (2, "")
    assert message.startswith("llmobs: error: run ")
    assert "did not pass (status failed); a baseline is a run that passed: pass --force" in message
    assert forced[0] == 0
    assert "saved (--force)" in forced[1]


def test_baseline_names_with_control_characters_are_refused(
    project: pytest.Pytester, capsys: pytest.CaptureFixture[str]
) -> None:
    project.runpytest().assert_outcomes(passed=4)
    capsys.readouterr()

    assert llmobs(project.path, "baseline", "save", "two\nlines") == (2, "")

    assert "holds a control character" in capsys.readouterr().err


def test_a_directory_as_baseline_file_is_named_as_one(
    project: pytest.Pytester, capsys: pytest.CaptureFixture[str]
) -> None:
    project.runpytest("--llm-run-name=first").assert_outcomes(passed=4)
    folder = project.mkdir("exports")
    message = (
        f"baseline file {str(folder)!r} is a directory; expected a run export written by "
        "'llmobs export RUN -o FILE'"
    )

    result = project.runpytest(f"--llm-baseline={folder}")

    assert result.ret == USAGE_ERROR
    result.stderr.fnmatch_lines([exact(f"ERROR: --llm-baseline: {message}")])
    capsys.readouterr()
    assert llmobs(project.path, "compare", str(folder), "latest") == (2, "")
    assert capsys.readouterr().err == f"llmobs: error: {message}\n"


def test_rescore_latest_of_a_store_without_runs_says_so(
    project: pytest.Pytester, capsys: pytest.CaptureFixture[str], runs: Runs
) -> None:
    project.runpytest().assert_outcomes(passed=4)
    assert llmobs(project.path, "prune", "--keep-last", "0")[0] == 0
    capsys.readouterr()

    assert llmobs(project.path, "rescore", "latest") == (2, "")

    assert capsys.readouterr().err == f"llmobs: error: no runs in {runs.db()}\n"


# --- the store's schema ----------------------------------------------------------------------


def test_a_version_1_store_is_migrated_and_keeps_its_runs(
    project: pytest.Pytester, runs: Runs
) -> None:
    project.runpytest("--llm-run-name=old").assert_outcomes(passed=4)
    old = runs.latest()["id"]
    db = sqlite3.connect(runs.db())  # make it the store an older plugin wrote
    db.execute("DROP TABLE baselines")
    db.execute("UPDATE meta SET value = '1' WHERE key = 'schema'")
    db.commit()
    db.close()

    project.runpytest("--llm-save-baseline=main", "--llm-baseline=old").assert_outcomes(passed=4)

    db = sqlite3.connect(runs.db())
    try:
        assert db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone() == (
            str(SCHEMA_VERSION),
        )
        saved = db.execute("SELECT name, run_id FROM baselines").fetchall()
    finally:
        db.close()
    assert saved == [("main", runs.latest()["id"])]
    assert compared_with(runs) == old


def test_a_newer_store_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "llmobs.db"
    Store(path).close()
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (str(SCHEMA_VERSION + 1),))
    db.commit()
    db.close()
    with pytest.raises(Exception, match=rf"store schema {SCHEMA_VERSION + 1} is newer"):
        Store(path)


def test_a_damaged_schema_version_is_a_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "llmobs.db"
    Store(path).close()
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value = '2x' WHERE key = 'schema'")
    db.commit()
    db.close()
    with pytest.raises(StoreError) as raised:
        Store(path)
    assert str(raised.value) == f"{path}: damaged store: schema version '2x' is not a number"


def test_another_programs_database_is_refused_and_left_as_it_was(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    path = tmp_path / "theirs" / "llmobs.db"
    path.parent.mkdir()
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE notes (body TEXT)")
    db.commit()
    db.close()
    pytester.makepyfile("def test_x(llm): pass")

    result = pytester.runpytest(f"--llm-store={path.parent}")

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            f"ERROR: --llm-store: {path}: not an llmobs store (it holds other tables: notes); "
            "give the store a directory of its own"
        ]
    )
    db = sqlite3.connect(path)
    try:
        tables = db.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall()
        journal = db.execute("PRAGMA journal_mode").fetchone()
    finally:
        db.close()
    assert tables == [("notes",)] and journal == ("delete",)


def test_a_file_given_as_the_store_directory_is_named(tmp_path: Path) -> None:
    a_file = tmp_path / "results.txt"
    a_file.write_text("mine")
    with pytest.raises(StoreError, match=rf"^{a_file} is a file; the store needs a directory$"):
        Store.in_directory(a_file)
    assert a_file.read_text() == "mine"


def test_deleting_a_run_drops_its_baseline(tmp_path: Path) -> None:
    store = Store(tmp_path / "llmobs.db")
    try:
        store.begin_run({"id": "r1", "name": "one", "started_at": 1.0})
        store.save_baseline("main", "r1")
        assert store.get_baseline("main") == "r1"
        store.save_baseline("main", "r1")  # saving again replaces, not duplicates
        assert [b["name"] for b in store.list_baselines()] == ["main"]
        store._db.execute("DELETE FROM runs WHERE id = 'r1'")
        assert store.get_baseline("main") is None
    finally:
        store.close()


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("llm_baseline = good", "llm_baseline in {ini}: baseline run * is incomplete: *"),
        ("llm_save_baseline = good", "llm_save_baseline in {ini}: baseline name 'good' is the *"),
        ("llm_run_id = nightly", "llm_run_id in {ini}: 'nightly' is the name of a saved baseline*"),
        ("llm_run_id = first", "llm_run_id in {ini}: run 'first' is already in *"),
    ],
)
def test_a_clash_with_the_store_names_the_ini_key_and_file(
    project: pytest.Pytester, runs: Runs, line: str, message: str
) -> None:
    # (before: the flag was named, as if the value had been given on the command line)
    project.runpytest("--llm-run-name=good", "--llm-run-id=first").assert_outcomes(passed=4)
    assert llmobs(project.path, "baseline", "save", "nightly")[0] == 0
    with contextlib.closing(sqlite3.connect(runs.db())) as db, db:
        db.execute("UPDATE runs SET status = 'interrupted' WHERE id = 'first'")
    ini = project.makeini(f"[pytest]\n{line}\n")

    result = project.runpytest()

    assert result.ret == USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: " + message.format(ini=ini)])
    assert [r["id"] for r in runs.list()] == ["first"]
