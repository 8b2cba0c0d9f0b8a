"""Span cost: a function with two nested spans next to the same functions bare.

Run ``python benchmarks/bench_spans.py [--quick]`` (or ``benchmarks/run.py --only spans``).

Every variant calls ``outer(text)``, which calls ``inner(text)``; both return a string. The
variants, timed in turn in each round (the same number of calls each, after a warm-up):

- ``bare``: the two functions undecorated;
- ``ours, in a trace``: both under `pytest_llmobs.observe`, inside an active trace as a test
  runs under pytest (a `Trace` whose root observation is made current by `activate`);
- ``ours, standalone``: the same with no active trace (each call starts a trace of its own);
- ``langfuse``: both under Langfuse's own ``@observe``, exporting over OTLP/HTTP to a local
  server on 127.0.0.1 (flushed, untimed, after each round; the requests it got are counted);
- ``otel``: OpenTelemetry SDK spans, ``start_as_current_span`` nested twice, input and output
  set as attributes, a `SimpleSpanProcessor` and an exporter that drops everything.

Input and output are captured in every traced variant. Cost per span is
``(traced - bare) / 2`` per call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bench_common import (
    NA,
    NA_LANGFUSE,
    Row,
    Section,
    collector,
    have_langfuse,
    have_otel_sdk,
    interleaved,
    langfuse_client,
    median,
    not_installed_row,
    section_main,
    verdict,
)

from pytest_llmobs import observe
from pytest_llmobs.trace_model import Observation, Trace
from pytest_llmobs.tracing import activate

Fn = Callable[[str], str]
TEXT = "What is the capital of France?"

TARGET_US = 5.0
TARGET_LANGFUSE = 30.0
TARGET_OTEL = 1.0


def bare_pair() -> Fn:
    """``outer`` calling ``inner``: the work every variant does."""

    def inner(text: str) -> str:
        return text.upper()

    def outer(text: str) -> str:
        return inner(text) + "!"

    return outer


def decorated_pair(decorate: Callable[[Fn], Fn]) -> Fn:
    """`bare_pair` with both functions wrapped by ``decorate``."""

    @decorate
    def inner(text: str) -> str:
        return text.upper()

    @decorate
    def outer(text: str) -> str:
        return inner(text) + "!"

    return outer


def otel_pair() -> tuple[Fn, Callable[[], None]]:
    """`bare_pair` with OpenTelemetry SDK spans; returns it and the provider's shutdown."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        SimpleSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )

    class DropExporter(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()  # our own, not the global one Langfuse may have set
    provider.add_span_processor(SimpleSpanProcessor(DropExporter()))
    tracer = provider.get_tracer("benchmark")

    def inner(text: str) -> str:
        with tracer.start_as_current_span("inner") as span:
            span.set_attribute("input", text)
            result = text.upper()
            span.set_attribute("output", result)
            return result

    def outer(text: str) -> str:
        with tracer.start_as_current_span("outer") as span:
            span.set_attribute("input", text)
            result = inner(text) + "!"
            span.set_attribute("output", result)
            return result

    return outer, provider.shutdown


def loop(function: Fn, calls: int) -> Callable[[], None]:
    def run() -> None:
        for _ in range(calls):
            function(TEXT)

    return run


def run(quick: bool = False) -> Section:
    """Measure every variant; rows: our µs per span, Langfuse / ours, OpenTelemetry / ours."""
    calls, rounds = (300, 2) if quick else (2_000, 7)
    section = Section("spans", "span cost: two nested spans vs the bare functions")
    section.say(
        f"{calls:,} calls of outer(inner()) per round, median of {rounds} rounds after a "
        "warm-up; µs per span = (traced - bare) / 2 per call"
    )

    trace = Trace("benchmark")
    root = Observation(trace, "test_benchmark")

    def in_trace() -> None:
        with activate(root):
            loop(ours, calls)()

    def reset_trace() -> None:  # the trace of one test never outlives it
        del trace.observations[1:]

    ours = decorated_pair(observe)
    variants: dict[str, Callable[[], None]] = {
        "bare": loop(bare_pair(), calls),
        "ours, in a trace": in_trace,
        "ours, standalone": loop(ours, calls),
    }
    after: dict[str, Callable[[], None]] = {"ours, in a trace": reset_trace}
    shutdown_otel: Callable[[], None] | None = None
    if have_otel_sdk():
        otel, shutdown_otel = otel_pair()
        variants["otel"] = loop(otel, calls)
    requests_before = collector().total if have_langfuse() else 0
    if have_langfuse():
        from langfuse import observe as langfuse_observe

        client = langfuse_client()
        variants["langfuse"] = loop(decorated_pair(langfuse_observe), calls)
        after["langfuse"] = client.flush  # untimed: no export backlog spills into other variants

    times = interleaved(variants, rounds, after=after)
    if shutdown_otel is not None:
        shutdown_otel()

    bare = median(times["bare"])
    per_call = {name: median(values) / calls * 1e6 for name, values in times.items()}
    per_span = {name: (median(values) - bare) / calls / 2 * 1e6 for name, values in times.items()}
    for name in variants:
        extra = "" if name == "bare" else f", {per_span[name]:.2f} µs per span"
        section.say(f"{name:<18} {per_call[name]:8.2f} µs per call{extra}")
    ours_us = per_span["ours, in a trace"]
    section.figures = {
        "calls": calls,
        "rounds": rounds,
        "us_per_call": per_call,
        "us_per_span": {k: v for k, v in per_span.items() if k != "bare"},
    }

    section.rows.append(
        Row(
            "span: ours in a trace, µs/span",
            f"{ours_us:.2f} µs",
            f"bare {per_call['bare']:.2f} µs/call",
            None,
            f"<= {TARGET_US:g} µs",
            verdict(ours_us, "<=", TARGET_US),
        )
    )
    standalone = per_span["ours, standalone"]
    section.rows.append(
        Row(
            "span: ours standalone, µs/span",
            f"{standalone:.2f} µs",
            f"in a trace {ours_us:.2f} µs",
            standalone / ours_us,
            "-",
            "-",
        )
    )
    if "langfuse" in per_span:
        langfuse_us = per_span["langfuse"]
        received = collector().total - requests_before
        section.say(
            f"langfuse exporter server: {received} requests received "
            f"({collector().span_exports} span exports in all)"
        )
        section.figures["langfuse_requests"] = received
        section.rows.append(
            Row(
                "span: langfuse @observe / ours",
                f"{langfuse_us:.1f} µs",
                f"{ours_us:.2f} µs",
                langfuse_us / ours_us,
                f">= {TARGET_LANGFUSE:g}x",
                verdict(langfuse_us / ours_us, ">=", TARGET_LANGFUSE),
            )
        )
    else:
        section.say(f"langfuse: {NA_LANGFUSE}")
        section.rows.append(
            not_installed_row(
                "span: langfuse @observe / ours", f">= {TARGET_LANGFUSE:g}x", NA_LANGFUSE
            )
        )
    if "otel" in per_span:
        otel_us = per_span["otel"]
        section.rows.append(
            Row(
                "span: otel SDK / ours",
                f"{otel_us:.1f} µs",
                f"{ours_us:.2f} µs",
                otel_us / ours_us,
                f"> {TARGET_OTEL:g}x",
                verdict(otel_us / ours_us, ">", TARGET_OTEL),
            )
        )
    else:
        section.say(f"otel: {NA}")
        section.rows.append(not_installed_row("span: otel SDK / ours", f"> {TARGET_OTEL:g}x"))
    return section


def main(argv: list[str] | None = None) -> None:
    section_main(run, __doc__, "300 calls, 2 rounds (smoke)", argv)


if __name__ == "__main__":
    main()
