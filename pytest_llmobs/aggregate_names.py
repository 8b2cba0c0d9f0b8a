"""The names aggregation gives and reads: groups, score aggregate prefixes, the built-in
aggregates, and the score metadata keys that mark a label or a clashing score."""

from __future__ import annotations

ALL_ITEMS = "*"
"""The aggregate group holding every item of the run (thresholds without a dataset)."""

COUNTED_OUTCOMES = frozenset({"passed", "failed", "error"})

JUDGE_GENERATION_PREFIX = "llm_judge:"
"""Names an ``llm_judge`` call's generation (``llm_judge:<rubric>``): an evaluator's call, kept
out of the figures of the model under test."""

COUNTS_PREFIX = "counts_"
"""Prefix of a categorical score's aggregate, whose fields are the values seen and their counts."""

NUMERIC_PREFIXES = ("mean_", "std_", "min_", "max_", "p50_", "p95_")
"""Prefixes of a numeric or boolean score's aggregates (`numeric_aggregates`)."""

LABEL_METRICS = (
    "accuracy",
    "precision_macro",
    "recall_macro",
    "f1_macro",
    "precision_micro",
    "recall_micro",
    "f1_micro",
    "confusion",
)
"""Aggregates of a ``label`` score (`label_aggregates`), suffixed ``_<name>`` unless ``label``."""

GENERATION_AGGREGATES = frozenset(
    {
        "generations",
        "mean_latency_ms",
        "p50_latency_ms",
        "p95_latency_ms",
        "max_latency_ms",
        "total_input_tokens",
        "total_output_tokens",
        "total_tokens",
        "total_cost",
        "judge_generations",
        "judge_total_tokens",
        "judge_total_cost",
    }
)
"""Names `generation_aggregates` and `judge_aggregates` may give."""

FLAKY_AGGREGATES = ("flaky_items", "flaky_rate")
"""The flakiness aggregates of a group whose items ran more than once (`repeats`)."""

REPEAT_VARIANCE_PREFIX = "mean_repeat_variance_"
"""Prefix of a score's variance across an item's repeats, averaged over items (`repeats`)."""

BUILTIN_AGGREGATES = frozenset({"count", "pass_rate"}) | GENERATION_AGGREGATES
"""Aggregates every run may have whatever its scores: a score's aggregate must not take one."""


def score_aggregate_names(name: str, kind: str) -> list[str]:
    """The aggregate names a score ``name`` of ``kind`` gives: ``"number"`` (numeric or
    boolean), ``"string"`` (categorical) or ``"label"``.

    >>> score_aggregate_names("quality", "string")
    ['counts_quality']
    """
    if kind == "number":
        return [f"{prefix}{name}" for prefix in NUMERIC_PREFIXES]
    if kind == "string":
        return [f"{COUNTS_PREFIX}{name}"]
    suffix = "" if name == "label" else f"_{name}"
    return [f"{metric}{suffix}" for metric in LABEL_METRICS]


LABEL_EXPECTED = "label_expected"
"""Score metadata key that marks a ``label`` score and holds the expected label."""
KIND_CLASH = "llmobs_kind_clash"
"""Score metadata key that marks a score whose kind differs from the run's first score of that
name (see `pytest_llmobs.score_kinds`): stored, but left out of every aggregate."""
