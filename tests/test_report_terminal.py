"""The end-of-session summary on a terminal whose encoding lacks our marks (cp1252, ascii), and
what it writes instead."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest

SCORES = """\
def test_a(scorer):
    scorer.score("acc", 0.5)
    scorer.score("acc2", 0.7)

def test_b(scorer):
    scorer.score("acc", 0.6)
"""

THRESHOLDS = ("--llm-threshold", "mean_acc >= 0.9", "--llm-threshold", "mean_acc2 >= 0.5")


@pytest.mark.parametrize(("encoding", "dash"), [("cp1252", "–"), ("ascii", "-")])
def test_the_summary_on_a_terminal_without_our_marks_is_written_plain(
    pytester: pytest.Pytester, encoding: str, dash: str
) -> None:
    pytester.makepyfile(test_scores=SCORES)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--color=yes", *THRESHOLDS],
        cwd=pytester.path,
        env={**os.environ, "PYTHONIOENCODING": encoding},
        capture_output=True,
        encoding=encoding,
        check=False,
    )

    assert done.returncode == 1, done.stderr
    # (before: pytest's own fallback wrote each such line escaped, its colours too:
    # "\x1b[31m\x1b[1m  \u2717 mean_acc >= 0.9  observed 0.550 (n=2)\x1b[0m")
    assert "\\x1b" not in done.stdout and "\\u" not in done.stdout
    assert "\x1b[31m\x1b[1m  FAIL mean_acc >= 0.9  observed 0.550 (n=2)\x1b[0m" in done.stdout
    assert "\x1b[32m  PASS mean_acc2 >= 0.5  observed 0.700 (n=1)\x1b[0m" in done.stdout
    assert f"  acc   mean 0.550 (95% CI 0.500{dash}0.600)  sd 0.071" in done.stdout


def test_the_terminal_encoding_is_read_from_pytests_writer() -> None:
    from pytest_llmobs.reporting.terminal import terminal_encoding

    def reporter(writer: object) -> object:
        return SimpleNamespace(_tw=writer)

    stream = io.TextIOWrapper(io.BytesIO(), encoding="cp437")

    assert terminal_encoding(reporter(SimpleNamespace(_file=stream))) == "cp437"
    assert terminal_encoding(reporter(SimpleNamespace(encoding="ascii"))) == "ascii"  # (older)
    assert terminal_encoding(reporter(SimpleNamespace(_file=io.StringIO()))) == "utf-8"
    assert terminal_encoding(object()) == "utf-8"


def test_what_an_encoding_cannot_write_is_given_as_plain_ascii() -> None:
    from pytest_llmobs.reporting.printable import encodable, plain

    text = "✓ ✗ 0.5–0.6 → … ✅ ❌ ⚠️ 🔴 🟢 ⚪ Ж"

    assert encodable(text, "utf-8") == text
    assert encodable(text, "ascii") == "v x 0.5-0.6 -> ... [ok] [x] [!] [-] [+] [=] \\u0416"
    assert encodable(text, "cp1252").startswith("v x 0.5–0.6 -> … [ok]")  # (cp1252 has – and …)
    assert encodable(text, "no-such-encoding") == text
    assert plain("x\udcff") == "x\\udcff"
    assert encodable("x\udcff", "utf-8", "surrogateescape") == "x\udcff"  # (a byte, kept)
