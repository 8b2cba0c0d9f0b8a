"""``run_experiment`` wall time against the ideal, beside Langfuse's own ``run_experiment``.

Run ``python benchmarks/bench_experiment.py [--quick]`` (or ``benchmarks/run.py --only
experiment``).

Our figures come from ``benchmarks/experiment_concurrency.py`` (its `time_backend`): 200 items,
one model call each that waits 50 ms, ``max_concurrency=20``, so the ideal is 0.5 s; an async
task and a sync task; against the fake OpenAI server of ``tests/fake_openai.py`` (its own process
on 127.0.0.1) and against ``mock-llm-v1?latency_ms=50``.

Beside them, Langfuse's ``Langfuse.run_experiment`` on the same items (a local list, not a
Langfuse dataset), with the same ``max_concurrency``, tasks that make the same model call through
the same provider (`pytest_llmobs.providers`, without our tracing) and one exact-match evaluator.
Langfuse exports its traces and scores to a local server on 127.0.0.1 (see `bench_common`).
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench_common import (
    NA_LANGFUSE,
    Row,
    Section,
    collector,
    environment,
    have_langfuse,
    interleaved,
    langfuse_client,
    median,
    not_installed_row,
    section_main,
    verdict,
)
from experiment_concurrency import Timing, dataset, fake_openai_server, time_backend

from pytest_llmobs.providers import default_registry

TARGET_RATIO = 1.05
LANGFUSE_REFERENCE = {"async": "ref. 1.17x", "sync": "ref. 20x"}


def langfuse_variants(
    model: str, items: list[dict[str, Any]], concurrency: int
) -> dict[str, Callable[[], None]]:
    """Langfuse ``run_experiment`` calls with an async and a sync task over ``items``."""
    from langfuse import Evaluation

    client = langfuse_client()

    def exact(*, output: Any, expected_output: Any, **_: Any) -> Evaluation:
        return Evaluation(name="exact", value=output == expected_output)

    def experiment(kind: str) -> Callable[[], None]:
        def run() -> None:
            provider = default_registry().resolve(model)  # a fresh client per event loop

            async def answer(*, item: dict[str, Any], **_: Any) -> str:
                messages = [{"role": "user", "content": item["input"]}]
                return (await provider.acomplete(messages)).text

            def answer_sync(*, item: dict[str, Any], **_: Any) -> str:
                return provider.complete([{"role": "user", "content": item["input"]}]).text

            result = client.run_experiment(
                name=f"bench-langfuse-{kind}",
                data=items,
                task=answer if kind == "async" else answer_sync,
                evaluators=[exact],
                max_concurrency=concurrency,
            )
            passed = sum(
                1 for r in result.item_results if [e.value for e in r.evaluations] == [True]
            )
            if passed != len(items):
                raise RuntimeError(f"langfuse run_experiment: {passed} of {len(items)} passed")

        return run

    return {"async": experiment("async"), "sync": experiment("sync")}


def run(quick: bool = False) -> Section:
    """Both backends; rows: ours / ideal per backend and kind, and Langfuse's beside them."""
    if quick:
        items, latency_ms, concurrency, rounds = 20, 20.0, 5, 1
    else:
        items, latency_ms, concurrency, rounds = 200, 50.0, 20, 5
    section = Section("experiment", "run_experiment: wall time vs the ideal, beside Langfuse's")
    section.say(
        f"{items} items, {latency_ms:g} ms per model call, max_concurrency={concurrency}, "
        f"median of {rounds} round(s) after a warm-up"
    )
    ours: list[Timing] = []
    theirs: dict[tuple[str, str], float] = {}
    requests_before = collector().total if have_langfuse() else 0
    entries = dataset(items)
    with tempfile.TemporaryDirectory(prefix="llmobs-experiment-") as scratch:
        store = Path(scratch) / ".llmobs"
        backends: list[tuple[str, str]] = [
            ("openai", "openai:fake-model"),
            ("mock", f"mock-llm-v1?latency_ms={latency_ms:g}"),
        ]
        for backend, model in backends:
            server = (
                fake_openai_server(latency_ms / 1000.0)
                if backend == "openai"
                else contextlib.nullcontext({})  # the mock model runs in-process
            )
            with server as env, environment(env):
                ours += time_backend(
                    backend,
                    model,
                    items=items,
                    latency_ms=latency_ms,
                    concurrency=concurrency,
                    rounds=rounds,
                    store=store,
                )
                if have_langfuse():
                    variants = langfuse_variants(model, entries, concurrency)
                    variants["async"]()  # warm-up; a sync round takes items x latency
                    times = interleaved(variants, rounds, warm_up=False)
                    for kind, values in times.items():
                        theirs[(backend, kind)] = median(values)
                    # its exporter sends those runs' spans from a background thread: sent now,
                    # untimed, so that they do not compete with the next backend's measurements
                    langfuse_client().flush()
    if have_langfuse():
        langfuse_client().flush()
        received = collector().total - requests_before
        section.say(f"langfuse exporter server: {received} requests received")
        section.figures["langfuse_requests"] = received
    else:
        section.say(f"langfuse: {NA_LANGFUSE}")
    section.say(
        f"{'backend':<7} {'task':<5} {'ideal s':>7} {'direct s':>8} {'ours s':>7} "
        f"{'langfuse s':>10}"
    )
    for t in ours:
        lf = theirs.get((t.backend, t.kind))
        lf_text = f"{lf:>10.3f}" if lf is not None else f"{'n/a':>10}"
        section.say(
            f"{t.backend:<7} {t.kind:<5} {t.ideal:>7.3f} {t.direct:>8.3f} {t.ours:>7.3f} {lf_text}"
        )
    figures: list[dict[str, Any]] = []
    for t in ours:
        ratio = t.ours / t.ideal
        section.rows.append(
            Row(
                f"run_experiment {t.backend} {t.kind} / ideal",
                f"{t.ours:.3f} s",
                f"{t.ideal:.3f} s",
                ratio,
                f"<= {TARGET_RATIO:g}x",
                verdict(ratio, "<=", TARGET_RATIO),
            )
        )
        lf = theirs.get((t.backend, t.kind))
        name = f"langfuse run_experiment {t.backend} {t.kind} / ideal"
        if lf is None:
            section.rows.append(not_installed_row(name, LANGFUSE_REFERENCE[t.kind], NA_LANGFUSE))
        else:
            section.rows.append(
                Row(
                    name,
                    f"{lf:.3f} s",
                    f"{t.ideal:.3f} s",
                    lf / t.ideal,
                    LANGFUSE_REFERENCE[t.kind],
                    "-",
                )
            )
        figures.append(
            {
                "backend": t.backend,
                "kind": t.kind,
                "ideal_s": t.ideal,
                "direct_s": t.direct,
                "ours_s": t.ours,
                "ours_rounds_s": t.rounds,
                "langfuse_s": lf,
            }
        )
    section.figures.update(
        items=items, latency_ms=latency_ms, concurrency=concurrency, rounds=rounds, runs=figures
    )
    return section


def main(argv: list[str] | None = None) -> None:
    section_main(run, __doc__, "20 items, 20 ms, 1 round (smoke)", argv)


if __name__ == "__main__":
    main()
