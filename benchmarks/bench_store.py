"""Store cost: write and summarise runs of growing size, each in a process of its own.

Run ``python benchmarks/bench_store.py [--quick] [--rounds R]`` (or ``benchmarks/run.py --only
store``). Each size runs in a child process (``--child N DB``) that writes one run of ``N`` items
to a temporary SQLite file on disk through the API a pytest session uses:

- a `Store` with the session's default governance (``build_governance(mode="default")``:
  redaction of PII and secrets, size limits), a `RunRecorder` (``begin``);
- per item, a `TestRecord` (root span, one generation with input, output and usage, one score,
  a marker threshold) finished into its payload and handed to ``RunRecorder.add_item``, which
  governs it and writes it in its own transaction: what the plugin does per test;
- ``RunRecorder.finish``: aggregates, threshold verdicts, the run's summary (summarise);
- a read-back of every item with ``Store.iter_items`` (what reports and exports do).

Items are made one at a time: the benchmark itself holds none of them. The child reports the
seconds of each phase and its peak RSS (`rss_mb`). The dataset snapshot a session also stores
(one row per dataset, at collection) is not part of this.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_common import Row, Section, median, print_section, subprocess_env, verdict

TARGET_GROWTH = 1.5
TARGET_RSS_MB = 300.0
FULL_SIZES = (1_000, 10_000, 100_000)
QUICK_SIZES = (200, 1_000)


def rss_mb() -> float:
    """Peak resident set size of this process so far, in MB.

    On Linux this is ``VmHWM`` of ``/proc/self/status``: ``getrusage().ru_maxrss`` of a process
    started with `subprocess` carries its parent's peak over the ``exec`` (the parent's memory is
    the child's until then), so it would report the benchmark runner's size, not the store's.
    Elsewhere ``ru_maxrss`` (KiB on Linux, bytes on macOS) is the best there is.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0


def child(items: int, db: Path) -> dict[str, Any]:
    """Write, summarise and read back one run of ``items`` items; return the figures."""
    from pytest_llmobs.datasets import DatasetItem
    from pytest_llmobs.governance import build_governance
    from pytest_llmobs.recording import TestRecord
    from pytest_llmobs.run import RunRecorder
    from pytest_llmobs.store import Store
    from pytest_llmobs.trace_model import Observation

    rss_before = rss_mb()
    started = time.perf_counter()
    store = Store(db, governance=build_governance(mode="default"))
    recorder = RunRecorder(
        store=store, name="store-benchmark", model="mock-llm-v1", environment={"python": "3"}
    )
    recorder.begin()
    thresholds = ("mean_accuracy >= 0.5",)
    for n in range(items):
        question = f"What is the capital of country number {n}? Reply in one word."
        answer = f"City{n}"
        item = DatasetItem(f"q{n}", question, answer, {"n": n, "split": "test"}, "bench")
        record = TestRecord(
            run_id=recorder.run_id,
            node_id=f"test_bench.py::test_answer[q{n}]",
            name=f"test_answer[q{n}]",
            item=item,
            dataset_version="v1",
            thresholds=thresholds,
        )
        generation = Observation(
            record.trace,
            "llm.generate",
            type="generation",
            parent_id=record.root.id,
            input=[{"role": "user", "content": question}],
        )
        generation.model = "mock-llm-v1"
        generation.model_parameters = {"temperature": 0}
        generation.output = answer
        generation.usage = {"input": 14, "output": 1, "total": 15}
        generation.end()
        record.trace.add_score("accuracy", n % 10 != 0, source="exact_match")
        record.phases = {"setup": "passed", "call": "passed", "teardown": "passed"}
        recorder.add_item(record.finish())
    written = time.perf_counter()
    result = recorder.finish(interrupted=False, tests_failed=False)
    summarised = time.perf_counter()
    read = sum(1 for _ in store.iter_items(recorder.run_id))
    done = time.perf_counter()
    store.close()
    if read != items or result.counts.get("passed") != items:
        raise RuntimeError(f"read back {read} items, counts {result.counts}; expected {items}")
    return {
        "items": items,
        "write_s": written - started,
        "summarise_s": summarised - written,
        "read_s": done - summarised,
        "rss_before_mb": rss_before,
        "peak_rss_mb": rss_mb(),
        "db_mb": db.stat().st_size / 1e6,
    }


def measure_size(items: int, directory: Path, round_index: int) -> dict[str, Any]:
    db = directory / f"store-{items}-{round_index}.db"
    done = subprocess.run(
        [sys.executable, __file__, "--child", str(items), str(db)],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"store child for {items} items failed:\n{done.stderr[-3000:]}")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def run(quick: bool = False, rounds: int | None = None) -> Section:
    """Every size, ``rounds`` times (median); rows: µs/item growth and peak RSS at the top."""
    sizes = QUICK_SIZES if quick else FULL_SIZES
    rounds = rounds or (1 if quick else 5)
    section = Section("store", "store: write and summarise runs of growing size")
    section.say(
        f"sizes {', '.join(f'{s:,}' for s in sizes)} items, one child process per size and "
        f"round, median of {rounds} round(s); default governance; temporary SQLite file on disk"
    )
    section.say(
        f"{'items':>9} {'write s':>8} {'summ. s':>8} {'read s':>7} {'µs/item':>8} "
        f"{'RSS MB':>7} {'(start)':>8} {'db MB':>7}"
    )
    per_size: dict[int, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="llmobs-store-") as scratch:
        for items in sizes:
            runs = [measure_size(items, Path(scratch), r) for r in range(rounds)]
            figures = {key: median([r[key] for r in runs]) for key in runs[0] if key != "items"}
            figures["us_per_item"] = (
                (figures["write_s"] + figures["summarise_s"]) / items * 1e6
            )  # what a session pays per item: its write plus its share of the summary
            per_size[items] = figures
            section.say(
                f"{items:>9,} {figures['write_s']:>8.2f} {figures['summarise_s']:>8.2f} "
                f"{figures['read_s']:>7.2f} {figures['us_per_item']:>8.1f} "
                f"{figures['peak_rss_mb']:>7.1f} {figures['rss_before_mb']:>8.1f} "
                f"{figures['db_mb']:>7.1f}"
            )
    small, large = per_size[sizes[0]], per_size[sizes[-1]]
    growth = large["us_per_item"] / small["us_per_item"]
    section.say(
        "µs/item = (write + summarise) / items; RSS MB = the child's peak (VmHWM), "
        "(start) = after its imports"
    )
    section.figures = {"rounds": rounds, "sizes": {str(k): v for k, v in per_size.items()}}
    section.rows.append(
        Row(
            f"store: µs/item at {sizes[-1]:,} / at {sizes[0]:,}",
            f"{large['us_per_item']:.1f} µs/item",
            f"{small['us_per_item']:.1f} µs/item",
            growth,
            f"<= {TARGET_GROWTH:g}x (linear)",
            verdict(growth, "<=", TARGET_GROWTH),
        )
    )
    section.rows.append(
        Row(
            f"store: peak RSS at {sizes[-1]:,} items",
            f"{large['peak_rss_mb']:.0f} MB",
            f"at {sizes[0]:,}: {small['peak_rss_mb']:.0f} MB",
            large["peak_rss_mb"] / small["peak_rss_mb"],
            f"< {TARGET_RSS_MB:g} MB",
            verdict(large["peak_rss_mb"], "<", TARGET_RSS_MB),
        )
    )
    return section


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="200 and 1,000 items, 1 round")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per size (default 5)")
    parser.add_argument("--child", nargs=2, metavar=("ITEMS", "DB"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(int(args.child[0]), Path(args.child[1]))))
        return
    print_section(run(quick=args.quick, rounds=args.rounds))


if __name__ == "__main__":
    main()
