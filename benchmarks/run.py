"""The overhead budget of issue 9 in one table of ratios, each measured side by side in one run.

Run ``python benchmarks/run.py [--quick] [--only SECTION[,SECTION]] [--json PATH]``.

Sections (each a module of its own, also runnable alone):

- ``spans`` (`bench_spans`): µs per span of `pytest_llmobs.observe`, beside Langfuse's
  ``@observe`` and OpenTelemetry SDK spans;
- ``per_test`` (`bench_per_test`): a suite of dataset items through ``llm_dataset``, ``llm``,
  ``scorer`` and the store, beside plain ``pytest.mark.parametrize`` doing the same work;
- ``store`` (`bench_store`): runs of growing size written, summarised and read back: µs per
  item and peak RSS;
- ``startup`` (`bench_startup`): ``pytest --co`` with the plugin and with ``-p no:llmobs``;
- ``experiment`` (`bench_experiment`): ``run_experiment`` against the ideal wall time, beside
  Langfuse's ``run_experiment``.

Full mode takes medians of >= 5 rounds (``--store-rounds`` changes the store's);
``--quick`` uses tiny sizes and 1-2 rounds (a smoke run). Each row shows the measured value, its
baseline, the ratio, the issue's target and whether it is met (``ok`` / ``MISSED``): printed,
never asserted; the exit status is 0 whatever the verdicts.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import bench_experiment
import bench_per_test
import bench_spans
import bench_startup
import bench_store
from bench_common import Section, format_table

SECTIONS: dict[str, Callable[[argparse.Namespace], Section]] = {
    "spans": lambda args: bench_spans.run(quick=args.quick),
    "per_test": lambda args: bench_per_test.run(quick=args.quick),
    "store": lambda args: bench_store.run(quick=args.quick, rounds=args.store_rounds),
    "startup": lambda args: bench_startup.run(quick=args.quick),
    "experiment": lambda args: bench_experiment.run(quick=args.quick),
}


def sections(text: str) -> list[str]:
    """``--only`` value: section names separated by commas, each one of `SECTIONS`."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in SECTIONS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown section(s) {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(SECTIONS)}"
        )
    return names


def versions() -> str:
    """Versions of what is measured and compared."""
    found = []
    for package in ("pytest-llmobs", "pytest", "langfuse", "opentelemetry-sdk"):
        try:
            found.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            found.append(f"{package} not installed")
    return ", ".join(found)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, 1-2 rounds (smoke)")
    parser.add_argument(
        "--only",
        type=sections,
        default=list(SECTIONS),
        metavar="SECTION[,SECTION]",
        help=f"run only these sections ({', '.join(SECTIONS)})",
    )
    parser.add_argument(
        "--store-rounds",
        type=int,
        default=None,
        help="rounds per store size (default 5; 1 with --quick)",
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures here")
    args = parser.parse_args(argv)

    mode = "quick (smoke: tiny sizes, figures not meaningful)" if args.quick else "full"
    print(
        f"pytest-llmobs overhead budget, {mode} mode; Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, {platform.system()}; {versions()}",
        flush=True,
    )
    started = time.perf_counter()
    done: list[Section] = []
    seconds: dict[str, float] = {}
    for name in args.only:
        section_started = time.perf_counter()
        print(f"\n== {name} ==", flush=True)
        section = SECTIONS[name](args)
        seconds[name] = time.perf_counter() - section_started
        done.append(section)
    total = time.perf_counter() - started

    print()
    header = ("benchmark", "measured", "baseline", "ratio", "target", "verdict")
    print(format_table(header, [row.cells() for section in done for row in section.rows]))
    missed = sum(1 for s in done for row in s.rows if row.verdict == "MISSED")
    met = sum(1 for s in done for row in s.rows if row.verdict == "ok")
    print(f"\ntargets met: {met}, missed: {missed}; took {total:.0f} s")

    if args.json is not None:
        report = {
            "mode": "quick" if args.quick else "full",
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "seconds": {**seconds, "total": total},
            "sections": {
                s.name: {
                    "title": s.title,
                    "rows": [row.to_dict() for row in s.rows],
                    "figures": s.figures,
                }
                for s in done
            },
        }
        args.json.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
        print(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
