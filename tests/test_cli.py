"""The ``llmobs`` command against a store written by a real pytest session."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from textwrap import dedent
from typing import Any

import pytest

from pytest_llmobs import run_experiment
from pytest_llmobs.cli import main
from pytest_llmobs.cli_commands import REASON_WIDTH
from pytest_llmobs.store import Store


def llmobs(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest_llmobs.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture
def recorded(pytester: pytest.Pytester) -> Path:
    """A project with two stored runs: 'first' and 'second'."""
    pytester.makeini("[pytest]\n")
    pytester.makefile(
        ".jsonl",
        **{
            "datasets/qa": dedent("""\
        {"id": "fr", "input": "What is the capital of France?", "expected_output": "Paris"}
        {"id": "jp", "input": "What is the capital of Japan?", "expected_output": "Tokyo"}
    """)
        },
    )
    pytester.makepyfile(
        test_qa=dedent("""\
        import pytest

        @pytest.mark.llm_dataset("qa")
        def test_qa(item, llm, scorer):
            assert scorer.exact_match(llm.generate(item.input).text, item.expected_output)
    """)
    )
    pytester.runpytest("--llm-run-name=first").assert_outcomes(passed=2)
    pytester.runpytest("--llm-run-name=second").assert_outcomes(passed=2)
    return pytester.path


def test_runs_lists_newest_first(recorded: Path) -> None:
    done = llmobs(recorded, "runs")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["RUN", "ID", "NAME", "MODEL", "STATUS", "ITEMS", "STARTED"]
    assert [line.split()[1] for line in lines[1:3]] == ["second", "first"]
    assert all(line.split()[3:5] == ["passed", "2"] for line in lines[1:3])
    assert lines[-1].startswith(f"store: {recorded / '.llmobs' / 'llmobs.db'} (")
    assert lines[-1].endswith(("KiB)", "MiB)"))


def test_runs_shows_the_newest_runs_and_says_when_there_are_more(
    recorded: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # (before: every run of the store, a thousand lines after a thousand runs)
    monkeypatch.setattr("pytest_llmobs.cli_commands.RUNS_SHOWN", 1)
    out = io.StringIO()

    assert main(["runs", "--store", str(recorded / ".llmobs")], out=out) == 0

    lines = out.getvalue().splitlines()
    assert [line.split()[1] for line in lines[1:-2]] == ["second"]
    assert lines[-2] == "(the newest 1 runs; older ones: --limit N or --all)"
    every = llmobs(recorded, "runs", "--all").stdout.splitlines()
    assert [line.split()[1] for line in every[1:-1]] == ["second", "first"]
    both = llmobs(recorded, "runs", "--all", "--limit", "1")
    assert (both.returncode, both.stderr) == (
        2,
        "llmobs: error: --limit and --all: give one of them\n",
    )


def test_show_by_name_and_latest(recorded: Path) -> None:
    by_name = llmobs(recorded, "show", "first")
    assert by_name.returncode == 0, by_name.stderr
    assert "name 'first'" in by_name.stdout
    assert "  passed   test_qa.py::test_qa[fr]  [exact_match=True]" in by_name.stdout
    latest = llmobs(recorded, "show", "latest")
    assert "name 'second'" in latest.stdout


def test_export_json_round_trips_the_run(recorded: Path) -> None:
    done = llmobs(recorded, "export", "second", "--format", "json")
    run = json.loads(done.stdout)
    assert run["format"] == "pytest-llmobs/run"
    assert run["name"] == "second" and run["status"] == "passed"
    assert [i["item_id"] for i in run["items"]] == ["fr", "jp"]
    other = json.loads(llmobs(recorded, "export", "first").stdout)["id"]
    shared = next(i for i, (a, b) in enumerate(zip(run["id"], other, strict=True)) if a != b)
    prefix = run["id"][: shared + 1]  # the shortest prefix that tells the two runs apart
    out = recorded / "run.json"
    written = llmobs(recorded, "export", prefix, "-o", str(out))
    assert written.returncode == 0, written.stderr
    assert json.loads(out.read_text())["id"] == run["id"]


def test_unknown_run_is_a_clear_error(recorded: Path) -> None:
    done = llmobs(recorded, "show", "nope")
    assert done.returncode == 2
    assert done.stderr.strip().startswith("llmobs: error: no run 'nope' in ")
    assert "recent runs: second, first" in done.stderr


def test_store_option_and_missing_store(recorded: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    missing = llmobs(elsewhere, "runs")
    assert missing.returncode == 2
    assert "no llmobs store at" in missing.stderr and "--store DIR" in missing.stderr
    explicit = llmobs(elsewhere, "runs", "--store", str(recorded / ".llmobs"))
    assert explicit.returncode == 0 and "second" in explicit.stdout


@pytest.fixture
def read_only_copy(recorded: Path, tmp_path: Path) -> Iterator[Path]:
    """The recorded store's directory, mounted read-only (as a CI artifact may be)."""
    yield from mounted_read_only(recorded / ".llmobs", tmp_path / "read-only")


def mounted_read_only(source: Path, mount: Path) -> Iterator[Path]:
    """``source`` bind-mounted read-only at ``mount``; skips (fails under CI) where it cannot."""
    mount.mkdir()
    bind = ["mount", "--bind", str(source), str(mount)]
    remount = ["mount", "-o", "remount,bind,ro", str(mount)]
    done = subprocess.run(bind, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        reason = f"needs a read-only bind mount (root with CAP_SYS_ADMIN): {done.stderr.strip()}"
        if os.environ.get("CI"):
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    try:
        subprocess.run(remount, capture_output=True, text=True, check=True)
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True, check=False)


def runs_mounted_read_only(
    source: Path, tmp_path: Path
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """``llmobs runs`` on ``source`` mounted read-only: the mount point and the outcome."""
    mounted = mounted_read_only(source, tmp_path / "mount")
    mount = next(mounted)
    try:
        return mount, llmobs(tmp_path, "runs", "--store", str(mount))
    finally:
        mounted.close()  # (unmounts)


def test_a_store_on_a_read_only_file_system_can_be_read(read_only_copy: Path) -> None:
    # (before: "not a usable llmobs store (unable to open database file)")
    assert not os.access(read_only_copy, os.W_OK) or _cannot_create_in(read_only_copy)

    runs = llmobs(read_only_copy, "runs", "--store", str(read_only_copy))
    shown = llmobs(read_only_copy, "show", "first", "--store", str(read_only_copy))

    assert runs.returncode == 0, runs.stderr
    assert [line.split()[1] for line in runs.stdout.splitlines()[1:3]] == ["second", "first"]
    assert shown.returncode == 0, shown.stderr
    assert "name 'first'" in shown.stdout


def test_writing_to_a_read_only_store_says_it_is_read_only(read_only_copy: Path) -> None:
    # (before: "not a usable llmobs store", as if the healthy store were damaged)
    done = llmobs(read_only_copy, "prune", "--keep-last", "1", "--store", str(read_only_copy))

    assert done.returncode == 2
    assert done.stderr.startswith(
        f"llmobs: error: {read_only_copy / 'llmobs.db'}: the store is read-only here ("
    )


def test_a_read_only_store_with_an_unmerged_write_ahead_log_says_so(tmp_path: Path) -> None:
    # (before: read as immutable, which skips the log: "not an llmobs store", or old data)
    copied = tmp_path / "copied"
    copied.mkdir()
    writer = Store(tmp_path / "live" / "llmobs.db")
    writer._db.execute("PRAGMA wal_autocheckpoint = 0")  # keep every change in the log
    writer.begin_run({"id": "r1", "name": "r1", "model": "m", "started_at": 0.0})
    for suffix in ("", "-wal"):  # copied while the writer is alive, as from a killed session
        name = "llmobs.db" + suffix
        shutil.copyfile(tmp_path / "live" / name, copied / name)
    writer.close()
    assert (copied / "llmobs.db-wal").stat().st_size > 0
    mount, done = runs_mounted_read_only(copied, tmp_path)

    assert done.returncode == 2
    assert done.stderr == (
        f"llmobs: error: {mount / 'llmobs.db'}: on a read-only file system with changes still in "
        f"its write-ahead log ({mount / 'llmobs.db-wal'}), which SQLite cannot read there; copy "
        "the store's directory somewhere writable and read that\n"
    )


def schema_2_copy(recorded: Path, tmp_path: Path) -> Path:
    """A copy of the recorded store as pytest-llmobs wrote it at schema 2."""
    copied = tmp_path / "copied"
    shutil.copytree(recorded / ".llmobs", copied)
    db = sqlite3.connect(copied / "llmobs.db")
    with db:  # as a store of schema 2 was: the table schema 3 added is not there yet
        db.execute("DROP TABLE expected_items")
        db.execute("UPDATE meta SET value = '2' WHERE key = 'schema'")
    db.execute("PRAGMA journal_mode = DELETE")  # a closed store: no write-ahead log left
    db.close()
    return copied


def test_a_command_that_upgrades_an_older_store_says_so_once(
    recorded: Path, tmp_path: Path
) -> None:
    # (before: a read-only command upgraded it silently, and the older version then refused it)
    copied = schema_2_copy(recorded, tmp_path)

    first = llmobs(tmp_path, "runs", "--store", str(copied))
    again = llmobs(tmp_path, "runs", "--store", str(copied))

    assert first.returncode == 0 and "second" in first.stdout
    assert first.stderr == (
        f"llmobs: upgraded the store at {copied / 'llmobs.db'} from schema 2 to 3; "
        "pytest-llmobs versions that read only schema 2 can no longer open it\n"
    )
    assert again.returncode == 0 and again.stderr == ""


def test_an_older_store_on_a_read_only_file_system_says_it_needs_upgrading(
    recorded: Path, tmp_path: Path
) -> None:
    # (before: "not a usable llmobs store (unable to open database file)", as if damaged)
    copied = schema_2_copy(recorded, tmp_path)
    mount, done = runs_mounted_read_only(copied, tmp_path)

    assert done.returncode == 2
    assert done.stderr.startswith(
        f"llmobs: error: {mount / 'llmobs.db'}: the store was written by an older "
        "pytest-llmobs, and reading it here means upgrading it, which this file system does not "
        "allow ("
    )
    assert done.stderr.endswith("copy the store's directory somewhere writable and read that\n")
    assert llmobs(tmp_path, "runs", "--store", str(copied)).returncode == 0  # upgraded where it can


def _cannot_create_in(directory: Path) -> bool:
    try:
        (directory / "probe").touch()
    except OSError:
        return True
    return False


def test_store_found_from_a_subdirectory_via_ini(recorded: Path) -> None:
    sub = recorded / "sub" / "dir"
    sub.mkdir(parents=True)
    assert "second" in llmobs(sub, "runs").stdout


def test_a_reader_that_stops_early_ends_the_command_quietly(recorded: Path) -> None:
    command = [sys.executable, "-m", "pytest_llmobs.cli", "show", "latest"]
    with subprocess.Popen(
        command, cwd=recorded, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as process:
        assert process.stdout is not None and process.stderr is not None
        process.stdout.close()  # `llmobs show latest | head -0`
        stderr = process.stderr.read().decode()
        status = process.wait()
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr
    assert status == 141


def test_report_of_a_damaged_export_names_the_field(recorded: Path) -> None:
    exported = llmobs(recorded, "export", "latest", "-o", "runs/latest.json")
    assert exported.returncode == 0, exported.stderr  # -o's directory is created
    path = recorded / "runs" / "latest.json"
    run = json.loads(path.read_text(encoding="utf-8"))
    run["items"][0]["outcome"] = "exploded"
    path.write_text(json.dumps(run), encoding="utf-8")

    done = llmobs(recorded, "report", "runs/latest.json", "-o", "report.html")

    assert done.returncode == 2
    assert done.stderr == (
        "llmobs: error: run file 'runs/latest.json' is not a valid run export: items.0.outcome: "
        "Input should "
        "be 'passed', 'failed', 'error' or 'skipped'\n"
    )
    assert not (recorded / "report.html").exists()


def run_main(cwd: Path, *args: str) -> tuple[int, str, str]:
    """``llmobs ARGS`` in this process against ``cwd``'s store: status, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main([*args, "--store", str(cwd / ".llmobs")], out)
    return code, out.getvalue(), err.getvalue()


def test_compare_to_a_directory_is_a_usage_error(recorded: Path, tmp_path: Path) -> None:
    assert run_main(recorded, "compare", "first", "second", "-o", str(tmp_path)) == (
        2,
        "",
        f"llmobs: error: -o {tmp_path}: is a directory; give a file name\n",
    )


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs Linux's /dev/full")
@pytest.mark.parametrize(
    "command",
    [("export", "first"), ("compare", "first", "second"), ("merge", "shard.json")],
)
def test_an_output_that_cannot_be_written_is_one_line_not_a_traceback(
    recorded: Path, command: tuple[str, ...]
) -> None:
    # /dev/full accepts the open and fails the write, as a full disk does
    assert llmobs(recorded, "export", "first", "-o", "shard.json").returncode == 0

    done = llmobs(recorded, *command, "-o", "/dev/full")

    assert done.returncode == 2
    assert done.stderr == "llmobs: error: cannot write /dev/full: No space left on device\n"


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs Linux's /dev/full")
def test_stdout_on_a_full_disk_is_one_line_not_a_traceback(recorded: Path) -> None:
    with open("/dev/full", "w", encoding="utf-8") as full:
        done = subprocess.run(
            [sys.executable, "-m", "pytest_llmobs.cli", "export", "first"],
            cwd=recorded,
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )
    assert done.returncode == 2
    assert done.stderr == "llmobs: error: [Errno 28] No space left on device\n"


def test_compare_creates_the_directory_of_its_output(recorded: Path) -> None:
    target = recorded / "missing" / "parent" / "x.json"

    code, out, err = run_main(
        recorded, "compare", "first", "second", "--format", "json", "-o", str(target)
    )

    assert (code, err) == (0, "")
    assert out == f"wrote the comparison (passed) to {target}\n"
    assert json.loads(target.read_text(encoding="utf-8"))["verdict"] == "passed"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["runs", "--limit", "0"], "--limit: 0 is too small; expected N >= 1", id="0"),
        pytest.param(
            ["runs", "--limit", "-1"], "--limit: -1 is negative; expected N >= 1", id="negative"
        ),
        pytest.param(
            ["report", "latest", "--max-traces", "-1", "-o", "x.html"],
            "--max-traces: -1 is negative; expected N >= 0",
            id="max-traces",
        ),
    ],
)
def test_counts_below_their_minimum_are_usage_errors(
    recorded: Path, args: list[str], message: str
) -> None:
    assert run_main(recorded, *args) == (2, "", f"llmobs: error: {message}\n")
    assert not (recorded / "x.html").exists()


@pytest.mark.parametrize(
    ("args", "message", "helping"),
    [
        pytest.param(
            ["export", "latest", "--format", "csv"],
            "export: argument --format: invalid choice: 'csv'",
            "llmobs export --help",
            id="choice",
        ),
        pytest.param(
            ["runs", "--limit", "x"],
            "runs: argument --limit: invalid int value: 'x'",
            "llmobs runs --help",
            id="int",
        ),
        pytest.param(  # (argparse refuses it in the top parser, naming no command)
            ["runs", "--bogus"],
            "runs: unrecognized arguments: --bogus",
            "llmobs runs --help",
            id="unknown",
        ),
        pytest.param(
            ["runs", "a\nb"],
            "runs: unrecognized arguments: a\\nb",
            "llmobs runs --help",
            id="newline",
        ),
        pytest.param(
            ["baseline", "save"],
            "baseline save: the following arguments are required: NAME",
            "llmobs baseline save --help",
            id="nested",
        ),
        pytest.param(
            ["nosuch"], "argument COMMAND: invalid choice: 'nosuch'", "llmobs --help", id="command"
        ),
        pytest.param(
            [], "the following arguments are required: COMMAND", "llmobs --help", id="no-command"
        ),
    ],
)
def test_a_bad_option_is_one_error_line_naming_the_command(
    tmp_path: Path, args: list[str], message: str, helping: str
) -> None:
    done = llmobs(tmp_path, *args)

    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.startswith(f"llmobs: error: {message}")
    assert done.stderr.endswith(f" (see '{helping}')\n")
    assert len(done.stderr.splitlines()) == 1


def test_help_is_still_argparse_own(tmp_path: Path) -> None:
    done = llmobs(tmp_path, "export", "--help")

    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.startswith("usage: llmobs export [-h] [--store DIR] [--format {json}]")
    assert "export format" in done.stdout and "error" not in done.stdout


@pytest.mark.parametrize("command", [[], ["show"], ["export"], ["calibrate"], ["report"]])
def test_the_help_of_run_says_every_kind_of_reference_it_takes(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    # (before: `llmobs --help` left out saved baselines; show's help, id prefixes)
    with pytest.raises(SystemExit) as done:
        main([*command, "--help"])

    assert done.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # (as argparse wraps it)

    for kind in ("a saved baseline", "a run id (or a unique prefix)", "a run name", "'latest'"):
        assert kind in text
    assert ("a run exported as JSON" in text) == (command == ["report"])


def test_show_gives_the_reason_of_failed_errored_and_skipped_items(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini("[pytest]\n")
    pytester.makepyfile(
        test_bad=dedent("""\
        import pytest

        @pytest.fixture
        def broken():
            raise RuntimeError("fixture broke")

        def test_setup(broken):
            pass

        def test_assert(scorer):
            scorer.score("quality", 0.25)
            assert "x" * 3 == "y"

        def test_long():
            raise ValueError("z" * 300)

        def test_ok():
            pass

        @pytest.mark.xfail(reason="known bad")
        def test_known():
            assert False

        def test_later():
            pytest.skip("needs a key")
    """)
    )
    pytester.runpytest().assert_outcomes(passed=1, failed=2, errors=1, xfailed=1, skipped=1)

    done = llmobs(pytester.path, "show", "latest")

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    long_reason = "ValueError: " + "z" * (REASON_WIDTH - len("ValueError: ") - 1) + "…"
    assert lines[lines.index("items (6):") + 1 :] == [
        "  error    test_bad.py::test_setup - RuntimeError: fixture broke",
        # the first line, as pytest's short summary: the assertion's explanation follows
        "  failed   test_bad.py::test_assert  [quality=0.25] - AssertionError: assert 'xxx' == 'y'",
        f"  failed   test_bad.py::test_long - {long_reason}",
        "  passed   test_bad.py::test_ok",
        "  skipped  test_bad.py::test_known - xfail: known bad",  # (before: no reason at all)
        "  skipped  test_bad.py::test_later - Skipped: needs a key",
    ]


def test_show_says_the_baseline_comparison_a_run_failed_on(pytester: pytest.Pytester) -> None:
    # (before: "-> failed" with a pass rate of 100% and no threshold: nothing said why)
    from pytest_llmobs.providers.capitals import CAPITALS

    pytester.makeini("[pytest]\n")
    rows = [
        json.dumps(
            {"id": f"c{n}", "input": f"What is the capital of {country}?", "expected_output": city}
        )
        for n, (country, city) in enumerate(list(CAPITALS.items())[:20])
    ]
    pytester.makefile(".jsonl", **{"datasets/caps": "\n".join(rows)})
    pytester.makepyfile(
        test_caps=dedent("""\
        import pytest

        @pytest.mark.llm_dataset("caps")
        def test_cap(item, llm, scorer):  # scores only: every test passes
            answer = llm.generate(item.input).text
            scorer.exact_match(answer, item.expected_output, name="accuracy")
    """)
    )
    pytester.runpytest("--llm-save-baseline=b1").assert_outcomes(passed=20)
    worse = pytester.runpytest("--llm-model=mock-llm-v1?accuracy=0.5&seed=3", "--llm-baseline=b1")
    assert worse.ret == pytest.ExitCode.TESTS_FAILED

    code, out, err = run_main(pytester.path, "show", "latest")

    assert (code, err) == (0, "")
    baseline_id = json.loads(run_main(pytester.path, "export", "b1")[1])["id"]
    lines = out.splitlines()
    start = lines.index(
        f"compared with baseline 'b1' (run {baseline_id}): 2 significant regression(s) beyond "
        "--llm-max-drop 0: session fails"
    )
    assert lines[start + 1 : start + 3] == [
        "  REGRESSION caps: mean_accuracy 1.000 -> 0.400 (delta -0.600)",
        "  REGRESSION all tests: mean_accuracy 1.000 -> 0.400 (delta -0.600)",
    ]
    baseline_shown = run_main(pytester.path, "show", "b1")[1]
    assert "compared with" not in baseline_shown  # a run without a baseline: no such line


def test_show_gives_the_error_of_an_experiment_task(tmp_path: Path) -> None:
    def task(item: Any) -> str:
        if item.id == "bad":
            raise ValueError("the task broke\nat its second line")
        return "yes"

    run_experiment(
        name="broken",
        dataset=[{"id": "bad", "input": "a"}, {"id": "good", "input": "b"}],
        task=task,
        store=tmp_path / ".llmobs",
    )

    code, out, err = run_main(tmp_path, "show", "broken")

    assert (code, err) == (0, "")
    assert out.splitlines()[-2:] == [
        "  error    task[bad] - ValueError: the task broke",
        "  passed   task[good]",
    ]


def test_show_lists_missing_items_up_to_a_limit(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\n")
    later = "".join(f"def test_later_{index:02}():\n    pass\n\n" for index in range(23))
    pytester.makepyfile(test_stop="def test_first():\n    assert False\n\n" + later)
    pytester.runpytest("-x").assert_outcomes(failed=1)

    done = llmobs(pytester.path, "show", "latest")

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    start = lines.index("23 collected items missing from the run:")
    assert lines[start + 1] == "  test_stop.py::test_later_00  (not run: stopping after 1 failures)"
    assert lines[start + 20].startswith("  test_stop.py::test_later_19  (")
    assert lines[start + 21] == "  ... and 3 more ('llmobs export RUN' lists them all)"
    assert lines[start + 22] == "items (1):"


def test_runs_shows_a_name_with_a_newline_escaped(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\n")
    pytester.makepyfile(test_one="def test_one():\n    pass\n")
    pytester.runpytest("--llm-run-name=nightly\nrerun\tB").assert_outcomes(passed=1)

    done = llmobs(pytester.path, "runs")

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 3  # the header, the run, the store
    assert lines[1].split()[1] == "nightly\\nrerun\\tB"
    assert lines[1].split()[3:5] == ["passed", "1"]


# --- damaged stores, partial runs, names --------------------------------------------------------


def _damage_pages(db: Path) -> None:
    """Overwrite pages in the middle of a store, its header left intact."""
    pages = db.stat().st_size // 4096
    with db.open("r+b") as f:  # pages 1-3 (schema, meta, runs) kept: the store opens
        f.seek(4096 * 3)
        f.write(b"\xff" * 4096 * (pages - 3))


@pytest.fixture
def damaged(pytester: pytest.Pytester, recorded: Path) -> Path:
    for _ in range(3):  # enough pages that the damage hits the runs and items
        pytester.runpytest("--llm-run-name=more").assert_outcomes(passed=2)
    _damage_pages(recorded / ".llmobs" / "llmobs.db")
    return recorded


@pytest.mark.parametrize("command", [["runs"], ["show", "latest"], ["prune", "--keep-last", "1"]])
def test_a_damaged_page_is_a_one_line_usage_error(damaged: Path, command: list[str]) -> None:
    code, _, err = run_main(damaged, *command)

    assert code == 2
    db = damaged / ".llmobs" / "llmobs.db"
    assert err == (
        f"llmobs: error: {db}: not a usable llmobs store (database disk image is malformed)\n"
    )


def test_pytest_on_a_damaged_store_is_a_usage_error_naming_it(
    pytester: pytest.Pytester, damaged: Path
) -> None:
    result = pytester.runpytest()

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    db = damaged / ".llmobs" / "llmobs.db"
    result.stderr.fnmatch_lines(
        [f"ERROR: --llm-store: {db}: not a usable llmobs store (*malformed)*"]
    )
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()


def test_a_damaged_store_with_a_write_ahead_log_is_not_called_read_only(recorded: Path) -> None:
    # (before: "on a read-only file system with changes still in its write-ahead log", on a
    # writable disk: any failure to open was taken for a read-only file system)
    db = recorded / ".llmobs" / "llmobs.db"
    writer = sqlite3.connect(db, isolation_level=None)
    writer.execute("PRAGMA wal_autocheckpoint = 0")
    writer.execute("INSERT INTO meta VALUES ('x', 'y')")  # kept in the log: not checkpointed
    wal = db.with_name("llmobs.db-wal")
    kept = wal.read_bytes()
    writer.close()  # (folds the log in, and deletes it: put it back as a killed writer left it)
    wal.write_bytes(kept)
    db.write_text("not a database\n")

    code, out, err = run_main(recorded, "runs")

    assert (code, out) == (2, "")
    assert err == f"llmobs: error: {db}: not a usable llmobs store (file is not a database)\n"


@pytest.mark.parametrize("table", ["items", "datasets", "expected_items"])
def test_a_store_missing_a_table_is_refused_before_any_test_runs(
    pytester: pytest.Pytester, recorded: Path, table: str
) -> None:
    # (before: the store opened, every test ran, then "the store failed (no such table: items):
    # 0 of 2 items stored"; `llmobs runs` listed the runs)
    db = recorded / ".llmobs" / "llmobs.db"
    with contextlib.closing(sqlite3.connect(db)) as connection:
        connection.execute(f"DROP TABLE {table}")
        connection.commit()

    result = pytester.runpytest()
    code, out, err = run_main(recorded, "runs")

    assert result.ret == pytest.ExitCode.USAGE_ERROR  # before any test ran
    damaged = f"{db}: not a usable llmobs store (damaged: no {table} table)"
    assert result.stderr.lines[0] == f"ERROR: --llm-store: {damaged}"
    assert (code, out, err) == (2, "", f"llmobs: error: {damaged}\n")


def test_a_damaged_row_of_a_run_is_one_line_naming_the_run_and_item(
    pytester: pytest.Pytester, recorded: Path
) -> None:
    # (before: a JSONDecodeError traceback, exit status 1, which reads as a failed gate)
    db = recorded / ".llmobs" / "llmobs.db"
    with contextlib.closing(sqlite3.connect(db)) as connection, connection:
        (first,) = connection.execute("SELECT id FROM runs WHERE name = 'first'").fetchone()
        (second,) = connection.execute("SELECT id FROM runs WHERE name = 'second'").fetchone()
        connection.execute("UPDATE runs SET summary = '{broken' WHERE id = ?", (first,))
        connection.execute("UPDATE items SET data = '[1]' WHERE run_id = ? AND seq = 1", (second,))
    summary = (
        f"llmobs: error: {db}: damaged store: the summary of run {first!r} is not valid JSON "
        "(Expecting property name enclosed in double quotes: line 1 column 2 (char 1))\n"
    )
    item = (
        f"llmobs: error: {db}: damaged store: item #1 (test_qa.py::test_qa[jp]) of run "
        f"{second!r} is a JSON array, not an object\n"
    )

    assert run_main(recorded, "show", "first") == (2, "", summary)
    assert run_main(recorded, "show", "second") == (2, "", item)
    assert run_main(recorded, "compare", "first", "second") == (2, "", summary)
    result = pytester.runpytest("--llm-baseline=first")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert result.stderr.lines[0] == f"ERROR: --llm-baseline: {summary[15:-1]}"


def test_read_only_commands_leave_a_file_that_is_no_store_as_it_is(tmp_path: Path) -> None:
    (tmp_path / "llmobs.db").write_bytes(b"")

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["runs", "--store", str(tmp_path)], out)

    assert code == 2
    assert "llmobs.db: not an llmobs store (an empty file)" in err.getvalue()
    assert (tmp_path / "llmobs.db").stat().st_size == 0


def test_store_option_naming_a_file_says_so(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("hi")

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["runs", "--store", str(tmp_path / "afile")], out)

    assert code == 2
    assert err.getvalue() == (
        f"llmobs: error: --store {tmp_path / 'afile'}: is a file; expected the store directory "
        "holding llmobs.db\n"
    )


def test_empty_and_ambiguous_run_refs(pytester: pytest.Pytester, recorded: Path) -> None:
    for i in range(12):
        pytester.runpytest(f"--llm-run-id=ci-{i:02d}").assert_outcomes(passed=2)

    empty = run_main(recorded, "show", "")
    ambiguous = run_main(recorded, "show", "ci")

    assert empty[0] == ambiguous[0] == 2
    assert empty[2] == (
        "llmobs: error: empty run reference: expected a run id, a run name, a saved baseline or "
        "'latest'\n"
    )
    assert "is a prefix of 12 run ids (ci-00, ci-01" in ambiguous[2]
    assert "ci-09 and 2 more); give more of the id" in ambiguous[2]


def test_a_failed_export_creates_no_directory(recorded: Path) -> None:
    code, _, err = run_main(recorded, "export", "nosuch", "-o", str(recorded / "new/deeper/x.json"))

    assert code == 2
    assert "no run 'nosuch'" in err and "saved baselines: (none)" in err
    assert not (recorded / "new").exists()


def test_report_reads_an_export_without_a_json_suffix(recorded: Path) -> None:
    assert run_main(recorded, "export", "first", "-o", str(recorded / "run.export"))[0] == 0

    code, out, err = run_main(recorded, "report", str(recorded / "run.export"), "-o", "r.html")

    assert code == 0, err
    assert out.startswith("wrote the HTML report of run ")


def test_store_given_in_addopts_is_found(pytester: pytest.Pytester, recorded: Path) -> None:
    pytester.makeini("[pytest]\naddopts = --llm-store=runs-store\n")
    pytester.runpytest("--llm-run-name=third").assert_outcomes(passed=2)

    done = llmobs(recorded, "show", "latest")

    assert done.returncode == 0, done.stderr
    assert "name 'third'" in done.stdout


def test_a_long_run_name_does_not_widen_every_row(
    pytester: pytest.Pytester, recorded: Path
) -> None:
    pytester.runpytest(f"--llm-run-name={'x' * 3000}").assert_outcomes(passed=2)

    code, out, _ = run_main(recorded, "runs")

    assert code == 0
    rows = out.splitlines()[:-1]
    assert max(len(row) for row in rows) < 140
    assert "x" * 47 + "…" in rows[1]


def test_runs_pads_wide_characters_by_the_columns_they_take(
    pytester: pytest.Pytester, recorded: Path
) -> None:
    import unicodedata

    pytester.runpytest("--llm-run-name=東京テスト").assert_outcomes(passed=2)

    code, out, _ = run_main(recorded, "runs")

    def column(row: str, text: str) -> int:  # where ``text`` starts, in terminal columns
        before = row[: row.index(text)]
        return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in before)

    rows = out.splitlines()[:4]
    assert code == 0 and "東京テスト" in rows[1]
    # (before: padded by characters, the CJK row's columns stood five places right of the rest)
    assert len({column(row, "mock-llm-v1" if row != rows[0] else "MODEL") for row in rows}) == 1
    from pytest_llmobs.cli_output import table_cell, width

    cut = table_cell("名" * 40)  # 80 columns: cut to fit 48, as 48 narrow characters are
    assert cut == "名" * 23 + "…" and width(cut) == 47


def test_an_option_may_come_between_a_commands_arguments(recorded: Path) -> None:
    first = run_main(recorded, "runs")[1].splitlines()[2].split()[0]

    code, out, err = run_main(recorded, "baseline", "save", "b2", "--force", "first")

    # (before: "unrecognized arguments: first": NAME took b2, the optional RUN nothing)
    assert (code, err) == (0, "")
    assert out == f"saved baseline 'b2': run {first} ('first')\n"
    err_io = io.StringIO()
    with contextlib.redirect_stderr(err_io):  # after "--", "-x" is a RUN, never an option
        assert main(["show", "--store", str(recorded / ".llmobs"), "--", "-x"], io.StringIO()) == 2
    assert err_io.getvalue().startswith("llmobs: error: no run '-x' in ")


def test_compare_refuses_an_infinite_max_drop_and_names_its_own_option(recorded: Path) -> None:
    from pytest_llmobs.compare.commands import cli_wording
    from pytest_llmobs.compare.render import gate_line

    infinite = run_main(recorded, "compare", "first", "second", "--max-drop", "inf")

    assert infinite[0] == 2
    assert infinite[2] == "llmobs: error: --max-drop: inf is not a finite number >= 0\n"
    regressed = type("Regressed", (), {"regressions": [1, 2], "max_drop": 0.0, "incomplete": []})()
    assert cli_wording(gate_line(regressed)) == (  # type: ignore[arg-type]
        "2 significant regression(s) beyond --max-drop 0: gate fails (exit status 1)"
    )


def _kill_mid_run(store_dir: Path, run_id: str) -> None:
    """Make ``run_id`` read as a run whose process died before it finished."""

    db = sqlite3.connect(store_dir / "llmobs.db")
    with db:
        db.execute(
            "UPDATE runs SET status = 'running', summary = NULL, ended_at = NULL, pid = ?"
            " WHERE id = ?",
            (2**22 + 12345, run_id),
        )
    db.close()


def test_a_killed_run_passes_no_gate_and_keeps_its_thresholds(
    pytester: pytest.Pytester, recorded: Path
) -> None:
    pytester.makepyfile(
        test_qa=dedent("""\
        import pytest

        @pytest.mark.llm_dataset("qa", thresholds=["pass_rate >= 0.5"])
        def test_qa(item, llm, scorer):
            assert scorer.exact_match(llm.generate(item.input).text, item.expected_output)
    """)
    )
    pytester.runpytest("--llm-run-id=killed", "--llm-threshold=mean_exact_match >= 0.5")
    _kill_mid_run(recorded / ".llmobs", "killed")

    rescored = run_main(recorded, "rescore", "killed")
    compared = run_main(recorded, "compare", "first", "killed")
    saved = run_main(recorded, "baseline", "save", "fromkilled", "killed")
    shown = run_main(recorded, "show", "killed")

    assert rescored[0] == 1, rescored[2]
    assert "run killed is incomplete: interrupted" in rescored[1]
    assert "pass_rate >= 0.5" in rescored[1] and "mean_exact_match >= 0.5" in rescored[1]
    assert (
        rescored[1].splitlines()[-1].endswith("the run is incomplete: not a pass (exit status 1)")
    )
    assert compared[0] == 1
    assert compared[1].splitlines()[-1] == (
        "gate fails (exit status 1): a run it compares is incomplete"
    )
    # (before: JSON said "verdict": "passed" and markdown opened with ✅ while exiting 1)
    as_json = run_main(recorded, "compare", "first", "killed", "--format", "json")
    assert as_json[0] == 1
    verdict = json.loads(as_json[1])
    assert verdict["verdict"] == "incomplete run"
    assert verdict["incomplete"] == [
        "compared run killed is incomplete: interrupted (Ctrl-C, killed or crashed), 2 item(s) "
        "stored; a partial run passes no gate"
    ]
    as_markdown = run_main(recorded, "compare", "first", "killed", "--format", "markdown")
    assert as_markdown[0] == 1
    assert as_markdown[1].splitlines()[2] == (
        "❌ **gate fails (exit status 1): a run it compares is incomplete**"
    )
    assert saved[0] == 2 and "did not pass (status interrupted)" in saved[2]
    assert (
        "run interrupted before it finished: its 2 stored item(s) are listed, it ran every one"
        in (shown[1])
    )


def test_a_killed_run_says_which_datasets_it_ran_only_in_part(
    pytester: pytest.Pytester, recorded: Path
) -> None:
    """A Ctrl-C run said "(1 of its 2 items ran)" everywhere; a killed one said it nowhere."""
    pytester.runpytest("--llm-run-id=killed").assert_outcomes(passed=2)
    _kill_mid_run(recorded / ".llmobs", "killed")
    db = sqlite3.connect(recorded / ".llmobs" / "llmobs.db")
    with db:  # jp never finished
        db.execute("DELETE FROM items WHERE run_id = 'killed' AND item_id = 'jp'")
    db.close()  # (a connection's `with` commits; it does not close)

    shown = run_main(recorded, "show", "killed")
    rescored = run_main(recorded, "rescore", "killed", "--threshold", "pass_rate >= 1")
    exported = run_main(recorded, "export", "killed")

    assert "(1 of its 2 items ran)" in shown[1]
    assert "dataset 'qa': 1 of its 2 items ran; its gates judge those only" in rescored[1]
    assert json.loads(exported[1])["partial_datasets"] == {"qa": {"ran": 1, "items": 2}}


def test_a_run_recorded_on_another_host_reads_as_running_and_show_says_why(
    pytester: pytest.Pytester, recorded: Path
) -> None:
    """A store copied from a CI machine: its dead pid means nothing here, so the run is not
    declared interrupted; `show` names the host instead of leaving "running" unexplained."""

    db = sqlite3.connect(recorded / ".llmobs" / "llmobs.db")
    with db:  # its process (a pid no process here has) died on a machine named ci-runner-7
        db.execute(
            "UPDATE runs SET status = 'running', summary = NULL, ended_at = NULL, pid = ?,"
            " header = json_set(header, '$.process.host', 'ci-runner-7') WHERE name = 'second'",
            (2**22 + 12345,),
        )
    db.close()

    listed = run_main(recorded, "runs")
    shown = run_main(recorded, "show", "second")

    assert listed[1].splitlines()[1].split()[1:4] == ["second", "mock-llm-v1", "running"]
    assert shown[0] == 0
    assert (
        "run recorded on host 'ci-runner-7': this machine cannot tell whether that session still "
        "goes or died, so it reads as running until it stores its summary"
    ) in shown[1].splitlines()
    assert "run running before it finished: its 2 stored item(s) are listed" not in shown[1]
    # (before: "run running before it finished: the items it had not run yet are not known",
    # though the items it collected are stored)
    assert (
        "run still running: its 2 stored item(s) so far are listed, 0 collected item(s) not run yet"
    ) in shown[1].splitlines()


def test_the_report_of_a_running_run_says_what_show_says_of_it(
    pytester: pytest.Pytester, recorded: Path
) -> None:
    from test_report_html import section_text

    db = sqlite3.connect(recorded / ".llmobs" / "llmobs.db")
    with db:  # still going on a CI machine: it has stored fr, not yet jp
        db.execute(
            "UPDATE runs SET status = 'running', summary = NULL, ended_at = NULL, pid = ?,"
            " header = json_set(header, '$.process.host', 'ci-runner-7') WHERE name = 'second'",
            (2**22 + 12345,),
        )
        db.execute(
            "DELETE FROM items WHERE item_id = 'jp'"
            " AND run_id = (SELECT id FROM runs WHERE name = 'second')"
        )
    db.close()

    shown = run_main(recorded, "show", "second")[1].splitlines()
    code, _, err = run_main(recorded, "report", "second", "-o", str(recorded / "r.html"))

    assert (code, err) == (0, "")
    text = section_text((recorded / "r.html").read_text(encoding="utf-8"), "summary")
    notes = [line for line in shown if line.startswith("run ")][-2:]
    assert notes[1] == (
        "run still running: its 1 stored item(s) so far are listed, 1 collected item(s) not run yet"
    )
    for note in notes:  # (before: the page said nothing of the items still to run)
        assert note in text


def test_a_running_run_whose_pid_was_reused_reads_as_interrupted(
    pytester: pytest.Pytester, recorded: Path
) -> None:

    db = sqlite3.connect(recorded / ".llmobs" / "llmobs.db")
    with db:  # 'second' was recorded by a process; pid 1 (alive, started long before) now has it
        db.execute(
            "UPDATE runs SET status = 'running', summary = NULL, pid = 1 WHERE name = 'second'"
        )
    db.close()

    code, out, _ = run_main(recorded, "runs")

    assert code == 0
    assert out.splitlines()[1].split()[3] == "interrupted"


def test_prune_lists_at_most_twenty_deleted_runs(tmp_path: Path) -> None:
    # (before: one line per deleted run: 981 lines for a history of 1,000 runs)
    from pytest_llmobs.experiment import run_experiment

    store = tmp_path / "store"
    for index in range(23):
        run_experiment(name=f"r{index}", dataset=[{"id": "a", "input": 1}], task=str, store=store)

    out = io.StringIO()
    assert main(["prune", "--keep-last", "1", "--store", str(store)], out) == 0

    lines = out.getvalue().splitlines()
    assert lines[0].startswith("deleted 22 run(s); saved baselines kept; store ")
    assert len(lines) == 1 + 20 + 1
    assert lines[-1] == "  ... and 2 more"


def test_prune_deletes_the_dataset_snapshots_of_the_runs_it_deletes(tmp_path: Path) -> None:
    # (before: "deleted 1 run(s)", and the snapshot, with the data it holds, stayed)
    store = tmp_path / "store"
    pii = [{"id": "a", "input": "call ann@example.org"}]
    run_experiment(name="pii", dataset=pii, task=str, store=store)

    out = io.StringIO()
    assert main(["prune", "--keep-last", "0", "--store", str(store)], out) == 0

    assert out.getvalue().startswith(
        "deleted 1 run(s) and 1 dataset snapshot(s) no kept run used; saved baselines kept; store "
    )
    with contextlib.closing(sqlite3.connect(store / "llmobs.db")) as db:
        left = [db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ("runs", "datasets")]
    assert left == [0, 0]


def test_prune_keep_last_counts_finished_runs_and_keeps_a_running_one(recorded: Path) -> None:
    """A session going on took the place of the newest finished run: `--keep-last 1` during a
    session deleted the one run it was meant to keep."""
    runs = [line.split()[0] for line in run_main(recorded, "runs")[1].splitlines()[1:3]]
    newest = runs[0]
    db = sqlite3.connect(recorded / ".llmobs" / "llmobs.db")
    with db:
        db.execute(
            "INSERT INTO runs (id, name, model, status, started_at, pid, header)"
            " VALUES ('going', 'going', 'm', 'running', 4e9, ?, ?)",
            (os.getpid(), json.dumps({"id": "going", "name": "going", "started_at": 4e9})),
        )
    db.close()

    code, out, _ = run_main(recorded, "prune", "--keep-last", "1")

    assert code == 0 and out.startswith("deleted 1 run(s)")
    left = [line.split()[0] for line in run_main(recorded, "runs")[1].splitlines()[1:]]
    assert left[:2] == ["going", newest]


def test_upload_legacy_without_langfuse_and_an_export_file_are_usage_errors(
    recorded: Path,
) -> None:
    export = recorded / "run.json"
    assert run_main(recorded, "export", "latest", "-o", str(export))[0] == 0

    legacy = run_main(recorded, "upload", "latest", "--to", "otlp", "--legacy")
    from_file = run_main(recorded, "upload", str(export), "--to", "otlp")

    assert legacy[0] == 2 and legacy[2].strip() == (
        "llmobs: error: --legacy: applies to --to langfuse only (older self-hosted servers)"
    )
    assert from_file[0] == 2 and "'llmobs upload' reads runs from the store" in from_file[2]


@pytest.mark.parametrize(
    ("command", "target"),
    [
        pytest.param(["export", "latest"], ".llmobs/llmobs.db", id="export"),
        pytest.param(["report", "latest"], "sub/../.llmobs/llmobs.db-wal", id="report-relative"),
        pytest.param(["compare", "first", "second"], "link.json", id="compare-symlink"),
        pytest.param(["merge", "shard.json"], ".llmobs/llmobs.db-shm", id="merge"),
    ],
)
def test_an_output_naming_the_store_database_is_refused(
    recorded: Path, command: list[str], target: str
) -> None:
    # (before: the store's database was overwritten, every run lost, and the command said "wrote")
    assert run_main(recorded, "export", "first", "-o", "shard.json")[0] == 0
    (recorded / "sub").mkdir()
    (recorded / "link.json").symlink_to(recorded / ".llmobs" / "llmobs.db")
    database = recorded / ".llmobs" / "llmobs.db"
    before = database.read_bytes()

    code, out, err = run_main(recorded, *command, "-o", target)

    assert (code, out) == (2, "")
    store = recorded / ".llmobs"
    resolved = store / Path(target).name.replace("link.json", "llmobs.db")
    assert err == (
        f"llmobs: error: -o {target}: is {resolved}, part of the llmobs store in {store}; "
        "writing there would destroy its runs; give another file name\n"
    )
    assert database.read_bytes() == before
    assert run_main(recorded, "runs")[1].count("\n") == 4  # header, 2 runs, store line


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(["merge", "shard.json", "other.json", "-o", "./other.json"], id="merge"),
        pytest.param(["compare", "shard.json", "latest", "-o", "shard.json"], id="compare"),
        pytest.param(["report", "shard.json", "-o", "shard.json"], id="report"),
    ],
)
def test_an_output_that_is_one_of_the_inputs_is_refused(recorded: Path, command: list[str]) -> None:
    assert run_main(recorded, "export", "first", "-o", "shard.json")[0] == 0
    assert run_main(recorded, "export", "second", "-o", "other.json")[0] == 0
    shard = (recorded / "shard.json").read_text(encoding="utf-8")

    code, out, err = run_main(recorded, *command)

    output, source = command[-1], next(c for c in command[1:-2] if Path(c).samefile(command[-1]))
    assert (code, out) == (2, "")
    assert err == (
        f"llmobs: error: -o {output}: is also an input of the command ({source}); writing there "
        "would replace it; give another file name\n"
    )
    assert (recorded / "shard.json").read_text(encoding="utf-8") == shard


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(
            ["prune", "--keep-last", "0", "--store", ""],
            "prune: argument --store: '' is empty (an unset variable?); expected a directory",
            id="store",
        ),
        pytest.param(
            ["prune", "--older-than", ""],
            "prune: argument --older-than: '' is empty (an unset variable?); expected an age "
            "such as 30d, 12h or 2w",
            id="older-than",
        ),
        pytest.param(
            ["upload", "nosuch", "--to", ""],
            "upload: argument --to: '' names no target (an unset variable?); expected one or "
            "more of langfuse, otlp, phoenix, comma-separated",
            id="to",
        ),
        pytest.param(
            ["upload", "--to", ","],
            "upload: argument --to: ',' names no target; expected one or more of langfuse, "
            "otlp, phoenix, comma-separated",
            id="to-comma",
        ),
        pytest.param(
            ["export", "latest", "-o", ""],
            "export: argument -o/--output: '' is empty (an unset variable?); expected a file name",
            id="export-o",
        ),
        pytest.param(
            ["report", "latest", "-o", " "],
            "report: argument -o/--output: ' ' is empty (an unset variable?); expected a file name",
            id="report-o",
        ),
        pytest.param(
            ["calibrate", "latest", "--labels", "", "--score", "x"],
            "calibrate: argument --labels: '' is empty (an unset variable?); expected a file name",
            id="labels",
        ),
        pytest.param(
            ["merge", "", "--store", "x"],
            "merge: argument FILE: '' is empty (an unset variable?); expected a file name",
            id="merge-file",
        ),
    ],
)
def test_an_empty_option_value_is_a_usage_error(
    recorded: Path, args: list[str], message: str
) -> None:
    # (before: the default store pruned, nothing uploaded with exit 0, the export on stdout...)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(args, out)

    assert (code, out.getvalue()) == (2, "")
    command = args[0]
    assert err.getvalue() == f"llmobs: error: {message} (see 'llmobs {command} --help')\n"
    assert run_main(recorded, "runs")[1].count("\n") == 4  # nothing pruned


@pytest.mark.parametrize("encoding", ["cp437", "cp1252", "ascii", "latin-1"])
def test_output_in_an_encoding_without_our_marks_is_written_not_a_traceback(
    recorded: Path, encoding: str
) -> None:
    env = {**os.environ, "PYTHONIOENCODING": encoding}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pytest_llmobs.cli", *args],
            cwd=recorded,
            env=env,
            capture_output=True,
            text=True,
            encoding=encoding,
            check=False,
        )

    assert run("export", "first", "-o", "shard.json").returncode == 0
    shown = run("show", "latest")
    compared = run("compare", "first", "second", "--format", "markdown")
    merged = run("merge", "shard.json")
    written = run("compare", "first", "second", "--format", "markdown", "-o", "c.md")

    for done in (shown, compared, merged, written):
        assert (done.returncode, done.stderr) == (0, "")
    assert "✅" not in compared.stdout and "**no significant change" in compared.stdout
    # (before: the verdicts' ⚪ written "\u26aa", their own escape)
    assert "| [=] no significant change |" in compared.stdout and "\\u" not in compared.stdout
    assert "pass rate" in shown.stdout and "merged 1 shard" in merged.stdout
    assert (recorded / "c.md").read_text(encoding="utf-8").splitlines()[2].startswith("✅ **")


def test_a_huge_runs_limit_lists_every_run(recorded: Path) -> None:
    # (before: SQLite's integer overflow read as "not a usable llmobs store")
    code, out, err = run_main(recorded, "runs", "--limit", str(2**63 - 1))

    assert (code, err) == (0, "")
    assert out.count("\n") == 4 and "older ones" not in out
    assert run_main(recorded, "prune", "--older-than", "9" * 400 + "d")[:2] == (
        0,
        "deleted 0 run(s); saved baselines kept; store "
        + out.rsplit("(", 1)[1].split(")")[0]
        + " -> "
        + out.rsplit("(", 1)[1].split(")")[0]
        + "\n",
    )


def test_a_comparison_that_tested_nothing_says_so_when_written(
    pytester: pytest.Pytester, recorded: Path
) -> None:
    pytester.makepyfile(test_other="def test_other():\n    pass\n")
    pytester.runpytest("test_other.py", "--llm-run-name=other").assert_outcomes(passed=1)

    code, out, err = run_main(
        recorded, "compare", "first", "other", "--format", "json", "-o", "c.json"
    )

    assert (code, err) == (0, "")  # (README: a gate that checked nothing does not fail)
    assert out == "wrote the comparison (nothing tested) to c.json\n"
    data = json.loads((recorded / "c.json").read_text(encoding="utf-8"))
    assert (data["verdict"], data["tested"]) == ("nothing tested", 0)


@pytest.mark.parametrize("command", [["show"], ["export"], ["calibrate", "--labels", "l.csv"]])
def test_a_store_command_given_an_export_file_says_which_commands_read_files(
    recorded: Path, command: list[str]
) -> None:
    assert run_main(recorded, "export", "first", "-o", "merged.json")[0] == 0
    (recorded / "l.csv").write_text("item_id,label\nfr,1\n", encoding="utf-8")
    extra = ["--score", "x"] if command[0] == "calibrate" else []

    code, out, err = run_main(recorded, command[0], "merged.json", *command[1:], *extra)

    assert (code, out) == (2, "")
    assert err == (
        f"llmobs: error: merged.json: is a file; 'llmobs {command[0]}' reads runs from the "
        "store (a run id, a run name, a saved baseline or 'latest'); compare, rescore and report "
        "read export files\n"
    )
