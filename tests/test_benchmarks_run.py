"""Smoke run of ``benchmarks/run.py --quick``: every section prints its rows with figures and
ratios, and the Langfuse comparison really exported to the local server. No timing is asserted.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

RUN = Path(__file__).resolve().parents[1] / "benchmarks" / "run.py"
NUMBER = r"\d[\d,]*(?:\.\d+)?"
RATIO = rf"{NUMBER}x"
VERDICT = r"(?:ok|MISSED|-)"

OURS = {
    "span: ours in a trace, µs/span": r"-",
    "span: ours standalone, µs/span": RATIO,
    "per-test: 100 llm_dataset items / parametrize": RATIO,
    "store: µs/item at 1,000 / at 200": RATIO,
    "store: peak RSS at 1,000 items": RATIO,
    "start-up: pytest --co, plugin / -p no:llmobs": RATIO,
    **{
        f"run_experiment {backend} {kind} / ideal": RATIO
        for backend in ("openai", "mock")
        for kind in ("async", "sync")
    },
}
COMPARISONS = [
    "span: langfuse @observe / ours",
    "span: otel SDK / ours",
    *(
        f"langfuse run_experiment {backend} {kind} / ideal"
        for backend in ("openai", "mock")
        for kind in ("async", "sync")
    ),
]


@dataclass(frozen=True)
class QuickRun:
    stdout: str
    figures: dict[str, Any]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> QuickRun:
    report = tmp_path_factory.mktemp("bench") / "figures.json"
    done = subprocess.run(
        [sys.executable, str(RUN), "--quick", "--json", str(report)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-5000:]
    return QuickRun(done.stdout, json.loads(report.read_text()))


def table_row(output: str, name: str) -> re.Match[str] | None:
    """The final table's row ``name | measured | baseline | ratio | target | verdict``."""
    cells = r"\s*\|\s*".join(
        (
            re.escape(name),
            rf"(?P<measured>[^|]*{NUMBER}[^|]*)",
            r"(?P<baseline>[^|]+)",
            r"(?P<ratio>[^|]+)",
            r"(?P<target>[^|]+)",
            rf"(?P<verdict>{VERDICT})",
        )
    )
    return re.search(rf"^{cells}\s*$", output, re.MULTILINE)


def require_comparison_sdks() -> None:
    """Skip without langfuse and opentelemetry-sdk, except under CI, where that is a failure
    (Python 3.10 always skips: Langfuse 5 needs 3.11, so the test extra leaves it out there)."""
    if sys.version_info < (3, 11):
        pytest.skip("the benchmark's comparisons need langfuse 5, which needs Python 3.11+")
    missing = [
        package
        for package, module in (("langfuse", "langfuse"), ("opentelemetry-sdk", "opentelemetry"))
        if importlib.util.find_spec(module) is None
        or (module == "opentelemetry" and importlib.util.find_spec("opentelemetry.sdk") is None)
    ]
    if missing:
        reason = (
            f"the benchmark's comparisons need {', '.join(missing)} "
            "(pip install -e '.[test]' or pip install langfuse opentelemetry-sdk)"
        )
        if os.environ.get("CI"):
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)


def test_every_section_prints_its_rows_with_figures_and_ratios(quick_run: QuickRun) -> None:
    for name, ratio in OURS.items():
        row = table_row(quick_run.stdout, name)
        assert row is not None, (name, quick_run.stdout)
        assert re.fullmatch(ratio, row["ratio"].strip()), (name, row["ratio"])
    assert re.search(r"^targets met: \d+, missed: \d+; took \d+ s$", quick_run.stdout, re.M)


def test_each_section_prints_its_measurements_above_the_table(quick_run: QuickRun) -> None:
    output = quick_run.stdout
    for section in ("spans", "per_test", "store", "startup", "experiment"):
        assert f"\n== {section} ==\n" in output, section
    assert re.search(rf"^  ours, in a trace\s+{NUMBER} µs per call, ", output, re.M)
    assert re.search(rf"^  plugin\s+{NUMBER} s\s+{NUMBER} ms/test", output, re.M)
    assert re.search(rf"^  plain\s+{NUMBER} s\s+{NUMBER} ms/test", output, re.M)
    assert "the plugin run stored 100 items" in output
    for items in ("200", "1,000"):
        assert re.search(rf"^\s+{items}(\s+{NUMBER}){{7}}$", output, re.M), items
    assert re.search(
        r"^  added by the plugin: [+-]\d+\.\d ms, median of the \d+ paired differences "
        r"\(plugin loaded: True\)$",
        output,
        re.M,
    )


def test_langfuse_and_opentelemetry_are_measured_beside_ours(quick_run: QuickRun) -> None:
    require_comparison_sdks()
    for name in COMPARISONS:
        row = table_row(quick_run.stdout, name)
        assert row is not None, (name, quick_run.stdout)
        assert re.fullmatch(RATIO, row["ratio"].strip()), (name, row["ratio"])
    received = [
        int(n)
        for n in re.findall(r"langfuse exporter server: (\d+) requests received", quick_run.stdout)
    ]
    assert len(received) == 2, quick_run.stdout  # the span section and the experiment section
    assert all(n > 0 for n in received), received  # Langfuse really exported: a real comparison


def test_the_json_report_holds_every_section_and_row(quick_run: QuickRun) -> None:
    sections = quick_run.figures["sections"]
    assert quick_run.figures["mode"] == "quick"
    assert set(sections) == {"spans", "per_test", "store", "startup", "experiment"}
    names = {row["benchmark"] for s in sections.values() for row in s["rows"]}
    assert set(OURS) <= names
    assert set(COMPARISONS) <= names
    assert sections["per_test"]["figures"]["stored_items"] == 100
    assert set(sections["store"]["figures"]["sizes"]) == {"200", "1000"}


def test_an_unknown_section_is_a_usage_error() -> None:
    done = subprocess.run(
        [sys.executable, str(RUN), "--only", "spans,nope"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 2
    assert "unknown section(s) nope; choose from spans, per_test, store, startup" in done.stderr


def test_without_the_comparison_sdks_their_columns_say_how_to_install_them() -> None:
    done = subprocess.run(
        [sys.executable, str(RUN), "--quick", "--only", "spans"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={**os.environ, "LLMOBS_BENCH_WITHOUT": "langfuse,otel"},
    )
    assert done.returncode == 0, done.stderr[-5000:]
    na = "n/a (pip install langfuse opentelemetry-sdk)"
    na_langfuse = na if sys.version_info >= (3, 11) else "n/a (Langfuse 5 needs Python 3.11+)"
    for name, missing in (
        ("span: langfuse @observe / ours", na_langfuse),
        ("span: otel SDK / ours", na),
    ):
        line = next(x for x in done.stdout.splitlines() if x.startswith(name))
        assert line.count(missing) == 4, line  # measured, baseline, ratio and verdict
    assert table_row(done.stdout, "span: ours in a trace, µs/span") is not None
