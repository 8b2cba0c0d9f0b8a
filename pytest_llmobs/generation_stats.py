"""Aggregates of generations: latency, tokens and cost of the model under test's calls, the
judge model's calls counted apart."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pytest_llmobs.aggregate_model import Aggregate, GenerationFigures
from pytest_llmobs.safe_stats import mean_of, percentile, total_of


def judge_aggregates(generations: Iterable[GenerationFigures]) -> list[Aggregate]:
    """The judge model's calls, apart from the model under test's: their count, tokens, cost."""
    figures = list(generations)
    if not figures:
        return []
    n = len(figures)
    counted = _counted(figures)
    tokens = [Aggregate("judge_total_tokens", float(sum(i + o for i, o in counted)), len(counted))]
    return [
        Aggregate("judge_generations", float(n), n),
        *(tokens if counted else []),
        *_total_cost("judge_total_cost", figures),
    ]


def _counted(figures: Sequence[GenerationFigures]) -> list[tuple[int, int]]:
    """(input, output) tokens of the generations whose usage is known."""
    return [(f[1], f[2]) for f in figures if f[1] is not None and f[2] is not None]


def _total_cost(name: str, figures: Sequence[GenerationFigures]) -> list[Aggregate]:
    """The summed cost of the generations whose cost is known (none: no aggregate)."""
    costs = [f[3] for f in figures if f[3] is not None]
    return [Aggregate(name, total_of(costs), len(costs))] if costs else []


def generation_aggregates(generations: Iterable[GenerationFigures]) -> list[Aggregate]:
    """Latency percentiles and token (and cost) totals over generations."""
    figures = list(generations)
    if not figures:
        return []
    n = len(figures)
    result = [Aggregate("generations", float(n), n)]
    latencies = sorted(f[0] for f in figures if f[0] is not None)
    if latencies:
        m = len(latencies)
        result += [
            Aggregate("mean_latency_ms", mean_of(latencies), m),
            Aggregate("p50_latency_ms", percentile(latencies, 50), m),
            Aggregate("p95_latency_ms", percentile(latencies, 95), m),
            Aggregate("max_latency_ms", latencies[-1], m),
        ]
    counted = _counted(figures)
    if counted:  # n: the generations whose usage is known
        tokens_in = sum(i for i, _ in counted)
        tokens_out = sum(o for _, o in counted)
        m = len(counted)
        result += [
            Aggregate("total_input_tokens", float(tokens_in), m),
            Aggregate("total_output_tokens", float(tokens_out), m),
            Aggregate("total_tokens", float(tokens_in + tokens_out), m),
        ]
    return [*result, *_total_cost("total_cost", figures)]
