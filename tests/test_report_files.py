"""Where ``--llm-report``, ``--llm-json`` and ``llmobs report -o`` write: a regular file is
replaced whole, a path that is not one (a FIFO, /dev/null, /dev/stdout) is written into, as
``llmobs export -o`` does, and is accepted by the start-up check."""

from __future__ import annotations

import contextlib
import io
import json
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy  # noqa: F401  (loaded once here: in-process sessions must not import it anew)
import pytest

from pytest_llmobs.cli import main as llmobs_main

needs_fifos = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")

FLAGS = pytest.mark.parametrize("flag", ["--llm-report", "--llm-json"])


@contextlib.contextmanager
def fifo_reader(fifo: Path) -> Iterator[list[str]]:
    """Make the FIFO ``fifo`` and read it in a thread while the block runs; the list holds
    what was read once the block is done. The reader blocks on open and read (no sleeps)."""
    os.mkfifo(fifo)
    keep = fifo.with_name(fifo.name + ".link")
    os.link(fifo, keep)  # a name for the pipe even if the code under test replaces `fifo`
    read: list[str] = []

    def reader() -> None:
        with open(keep, encoding="utf-8") as stream:
            read.append(stream.read())

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    try:
        yield read
    finally:
        # A reader still waiting for a writer (the pipe was replaced, not written) gets EOF;
        # with no reader left, the non-blocking open fails instead of waiting.
        with contextlib.suppress(OSError):
            os.close(os.open(keep, os.O_WRONLY | os.O_NONBLOCK))
        thread.join()


@needs_fifos
@FLAGS
def test_a_fifo_is_written_into_for_its_reader(pytester: pytest.Pytester, flag: str) -> None:
    # (before: the FIFO was replaced by a regular file and its reader waited forever)
    pytester.makepyfile("def test_one():\n    pass\n")
    fifo = pytester.path / "out.fifo"

    with fifo_reader(fifo) as read:
        result = pytester.runpytest("--llm-no-store", f"{flag}={fifo}")

    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.OK
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    (text,) = read
    if flag == "--llm-json":
        assert json.loads(text)["format"] == "pytest-llmobs/run"
    else:
        assert text.startswith("<!DOCTYPE html>") and text.endswith("</html>\n")
    label = "JSON run" if flag == "--llm-json" else "HTML report"
    result.stdout.fnmatch_lines([f"llmobs: {label} written to {fifo}"])


@FLAGS
def test_dev_null_stays_a_character_device(pytester: pytest.Pytester, flag: str) -> None:
    # (before: refused at start-up; as root, /dev/null was replaced by a regular file)
    if not stat.S_ISCHR(os.stat(os.devnull).st_mode):
        pytest.skip(f"{os.devnull} is not a character device here")
    pytester.makepyfile("def test_one():\n    pass\n")

    result = pytester.runpytest("--llm-no-store", f"{flag}={os.devnull}")

    assert stat.S_ISCHR(os.stat(os.devnull).st_mode)
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines([f"llmobs: * written to {os.devnull}"])


def test_dev_stdout_is_accepted_and_written_into(pytester: pytest.Pytester) -> None:
    # (before: a usage error at start-up naming '/proc/<pid>/fd/pipe:[N]', which /dev/stdout
    # resolved to, since the check tried to create a scratch file in /proc/<pid>/fd)
    if not Path("/dev/stdout").exists():
        pytest.skip("needs /dev/stdout")
    pytester.makepyfile("def test_one():\n    pass\n")

    args = ["-p", "no:cacheprovider", "--llm-no-store", "--llm-json=/dev/stdout"]
    session = pytester.popen(
        [sys.executable, "-m", "pytest", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,  # /dev/stdout is a pipe in the session
        stderr=subprocess.PIPE,
    )
    out, err = session.communicate()

    assert session.returncode == pytest.ExitCode.OK, err.decode()
    assert b'"format": "pytest-llmobs/run"' in out
    assert b"llmobs: JSON run written to /dev/stdout" in out


@needs_fifos
def test_cli_report_writes_into_a_fifo(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_one():\n    pass\n")
    pytester.runpytest("--llm-no-store", "--llm-json=run.json").assert_outcomes(passed=1)
    fifo = pytester.path / "report.fifo"

    with fifo_reader(fifo) as read:
        code = llmobs_main(["report", "run.json", "-o", str(fifo)], io.StringIO())

    assert code == 0
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    (text,) = read
    assert text.startswith("<!DOCTYPE html>")


def test_two_reports_into_one_device_are_refused(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_one():\n    pass\n")

    result = pytester.runpytest(f"--llm-report={os.devnull}", f"--llm-json={os.devnull}")

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            f"ERROR: --llm-json: '{os.devnull}' is also the file --llm-report writes; expected "
            "a file of its own (both reports would be written into it, one after the other)"
        ]
    )


def test_a_regular_report_file_is_replaced_whole(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_one():\n    pass\n")
    target = pytester.path / "run.json"
    target.write_text("an old run\n", encoding="utf-8")
    before = os.stat(target).st_ino

    pytester.runpytest("--llm-no-store", "--llm-json=run.json").assert_outcomes(passed=1)

    assert os.stat(target).st_ino != before  # a new file moved into place, not rewritten
    assert json.loads(target.read_text(encoding="utf-8"))["format"] == "pytest-llmobs/run"
    assert not [p.name for p in pytester.path.iterdir() if p.name.endswith(".tmp")]
