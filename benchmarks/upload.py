"""Cost of uploading a large run to Langfuse: a synthetic run of 10,000 observations and 10,000
scores (2,000 traces: 1,000 dataset items x 2 repeats) sent to the fake Langfuse server of
``tests/fake_langfuse.py`` running in a child process on 127.0.0.1.

Run ``python benchmarks/upload.py [--quick] [--validate]``. Prints wall time, number of requests
by endpoint, bytes sent and peak memory. Contract validation is off unless ``--validate`` (it
needs ``LLMOBS_CONTRACTS_DIR`` and measures the fake server more than the uploader). Peak memory
is tracemalloc's peak during a second, identical upload (tracemalloc slows it down, so the wall
time comes from the first, untraced one), plus the process's max RSS. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from pytest_llmobs.exporters import ExporterOptions, create_exporter
from pytest_llmobs.exporters.http_options import HttpOptions
from pytest_llmobs.store import Store
from pytest_llmobs.trace_model import derived_id

PROMPT = {"type": "text", "prompt": "Answer {{question}} briefly.", "config": {"temperature": 0}}


def build_run(store: Store, items: int, repeats: int) -> str:
    """A finished run of ``items`` dataset items x ``repeats``; 5 observations and 5 scores each."""
    run_id = "bench-run"
    store.begin_run(
        {
            "id": run_id,
            "name": "upload-benchmark",
            "model": "mock-llm-v1",
            "started_at": 1_800_000_000.0,
        }
    )
    dataset = [
        {
            "id": f"q{n}",
            "input": f"Question {n}?",
            "expected_output": f"Answer {n}",
            "metadata": {"n": n},
        }
        for n in range(items)
    ]
    store.record_dataset("bench", "v1", dataset)
    version = store.register_prompt("bench-prompt", "hash1", PROMPT, ["production"])
    seq = 0
    for repeat in range(repeats):
        for entry in dataset:
            trace_id = derived_id(run_id, entry["id"], repeat)
            start = 1_800_000_000.0 + seq
            root = derived_id(trace_id, "root", length=16)
            observations: list[dict[str, Any]] = [
                _obs(
                    trace_id,
                    root,
                    None,
                    "span",
                    f"test_q[{entry['id']}]",
                    start,
                    entry["input"],
                    entry["expected_output"],
                )
            ]
            for k in range(2):
                span_id = derived_id(trace_id, "span", k, length=16)
                observations.append(
                    _obs(
                        trace_id,
                        span_id,
                        root,
                        "span",
                        f"step-{k}",
                        start,
                        {"k": k, "context": "lorem ipsum " * 20},
                        ["doc"] * 3,
                    )
                )
                gen = _obs(
                    trace_id,
                    derived_id(trace_id, "gen", k, length=16),
                    span_id,
                    "generation",
                    "llm.generate",
                    start,
                    [{"role": "user", "content": entry["input"]}],
                    entry["expected_output"],
                )
                gen.update(
                    model="mock-llm-v1",
                    model_parameters={"temperature": 0.0},
                    usage={"input": 12, "output": 3, "total": 15},
                    cost=0.00001,
                    prompt_name="bench-prompt",
                    prompt_version=version,
                )
                observations.append(gen)
            scores = [
                {
                    "id": derived_id(trace_id, name),
                    "trace_id": trace_id,
                    "observation_id": root if name == "step_ok" else None,
                    "name": name,
                    "value": value,
                    "data_type": kind,
                    "comment": None,
                    "source": None,
                    "metadata": {},
                    "timestamp": start,
                }
                for name, value, kind in (
                    ("accuracy", True, "BOOLEAN"),
                    ("similarity", 0.83, "NUMERIC"),
                    ("label", "billing", "CATEGORICAL"),
                    ("latency_ok", False, "BOOLEAN"),
                    ("step_ok", 1, "NUMERIC"),
                )
            ]
            trace = {
                "id": trace_id,
                "name": f"test_q[{entry['id']}-r{repeat}]",
                "user_id": None,
                "session_id": None,
                "tags": ["bench"],
                "metadata": {},
                "start_time": start,
                "end_time": start + 1,
                "observations": observations,
                "scores": scores,
            }
            store.write_item(
                run_id,
                seq,
                {
                    "node_id": trace["name"],
                    "dataset": "bench",
                    "dataset_version": "v1",
                    "item_id": entry["id"],
                    "repeat": repeat,
                    "input": entry["input"],
                    "expected_output": entry["expected_output"],
                    "outcome": "passed",
                    "trace": trace,
                    "prompts": [],
                    "datasets": {"bench": "v1"},
                },
            )
            seq += 1
    store.finish_run(
        run_id,
        status="passed",
        ended_at=1_800_000_999.0,
        summary={
            "datasets": {"bench": "v1"},
            "prompts": [{"name": "bench-prompt", "version": version, "hash": "hash1"}],
        },
    )
    return run_id


def _obs(
    trace_id: str,
    obs_id: str,
    parent: str | None,
    kind: str,
    name: str,
    start: float,
    input: Any,
    output: Any,
) -> dict[str, Any]:
    return {
        "id": obs_id,
        "trace_id": trace_id,
        "parent_id": parent,
        "type": kind,
        "name": name,
        "start_time": start,
        "end_time": start + 0.5,
        "input": input,
        "output": output,
        "metadata": {"step": name},
        "level": "DEFAULT",
        "status_message": None,
    }


def serve(conn: Any, validate: bool) -> None:
    """The child process: run the fake server until told to stop, then report what it got."""
    from fake_langfuse import FakeLangfuse

    with FakeLangfuse(validate=validate) as fake:
        conn.send(fake.env())
        while conn.recv() == "stats":
            conn.send(_stats(fake))


def _stats(fake: Any) -> dict[str, Any]:
    with fake.lock:
        by_path = Counter(
            r.path.split("?")[0].rsplit("/", 1)[0] if "/prompts/" in r.path else r.path
            for r in fake.requests
        )
        return {
            "requests": len(fake.requests),
            "by_path": dict(by_path),
            "received": sum(r.size for r in fake.requests),
            "spans": len(fake.spans),
            "scores": len(fake.scores),
            "violations": len(fake.violations),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="40 traces (smoke)")
    parser.add_argument("--validate", action="store_true", help="validate against the spec")
    args = parser.parse_args()
    items = 20 if args.quick else 1000
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "llmobs.db")
        run = store.load_run(build_run(store, items, repeats=2))
        n_obs = sum(len(i["trace"]["observations"]) for i in run["items"])
        n_scores = sum(len(i["trace"]["scores"]) for i in run["items"])
        parent, child = multiprocessing.Pipe()
        server = multiprocessing.get_context("spawn").Process(
            target=serve, args=(child, args.validate), daemon=True
        )
        server.start()
        env = parent.recv()
        options = ExporterOptions(store=store, environ=env, http=HttpOptions(timeout=120))
        started = time.perf_counter()
        report = create_exporter("langfuse", options).export(run)
        wall = time.perf_counter() - started
        parent.send("stats")
        stats = parent.recv()
        tracemalloc.start()
        create_exporter("langfuse", options).export(run)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        parent.send("stop")
        server.join(timeout=30)
        store.close()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"synthetic run: {len(run['items']):,} traces, {n_obs:,} observations, "
        f"{n_scores:,} scores, {items:,} dataset items x 2 repeats"
    )
    print(
        f"server: fake Langfuse in a child process, contract validation "
        f"{'on' if args.validate else 'off'}"
    )
    print(f"wall time        {wall:.2f} s  ({n_obs / wall:,.0f} observations/s)")
    print(f"requests         {report.requests:,}")
    for path, count in sorted(stats["by_path"].items()):
        print(f"  {path:<40} {count:,}")
    print(f"bytes sent       {report.bytes_sent / 1e6:.2f} MB")
    print(f"peak memory      {peak / 1e6:.1f} MB (tracemalloc, one upload); max RSS {rss:.0f} MB")
    print(
        f"server stored    {stats['spans']:,} spans, {stats['scores']:,} scores; "
        f"contract violations {stats['violations']}"
    )
    print(f"pending {report.pending}")


if __name__ == "__main__":
    main()
