"""The ``llm_dataset`` marker: arguments checked once, then one test case per dataset item."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

MARKER = "llm_dataset"
MARKER_HELP = (
    f"{MARKER}(name, argname='item', thresholds=None, limit=None, repeat=None): run the test "
    "once per item of the named dataset (test ids from item ids), repeat times per item when "
    "given (default --llm-repeat); thresholds are '[dataset:] aggregate op number' gates on "
    "that dataset's aggregates"
)
_KEYWORDS = ("argname", "thresholds", "limit", "repeat")
_TAKEN_ARGNAMES = frozenset({"llm", "prompt", "scorer", "dataset", "request"})
"""The plugin's fixtures and pytest's ``request``: an item under one of these names hides it."""


@dataclass(frozen=True, slots=True)
class DatasetMarker:
    name: str
    argname: str = "item"
    thresholds: tuple[str, ...] = ()
    limit: int | None = None
    repeat: int | None = None
    """Runs per item; ``None`` means ``--llm-repeat``."""


def read_marker(mark: pytest.Mark, where: str) -> DatasetMarker:
    """Validate the marker's arguments; a mistake raises `pytest.UsageError` naming the test."""
    prefix = f"{where}: @pytest.mark.{MARKER}"
    unknown = sorted(set(mark.kwargs) - {*_KEYWORDS, "name"})
    if unknown:
        raise pytest.UsageError(
            f"{prefix} got unknown keyword{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(map(repr, unknown))}; accepted keywords: {', '.join(_KEYWORDS)}"
        )
    args = list(mark.args)
    if "name" in mark.kwargs:
        raise pytest.UsageError(f"{prefix}: pass the dataset name positionally")
    if len(args) != 1 or not isinstance(args[0], str) or not args[0]:
        raise pytest.UsageError(f"{prefix} needs exactly one dataset name; got {args!r}")
    argname = mark.kwargs.get("argname", "item")
    if not isinstance(argname, str) or not argname.isidentifier():
        raise pytest.UsageError(f"{prefix}: argname must be an identifier; got {argname!r}")
    if argname in _TAKEN_ARGNAMES:
        raise pytest.UsageError(
            f"{prefix}: argname {argname!r} is the name of a fixture the test may need, which "
            "the item would hide; pick another, e.g. 'case'"
        )
    thresholds = mark.kwargs.get("thresholds") or ()
    if isinstance(thresholds, str):
        thresholds = (thresholds,)
    if not all(isinstance(t, str) for t in thresholds):
        raise pytest.UsageError(
            f"{prefix}: thresholds must be strings like 'mean_accuracy >= 0.9'; got {thresholds!r}"
        )
    from pytest_llmobs.thresholds import ThresholdError, parse_threshold

    for expression in thresholds:
        try:
            parse_threshold(expression, dataset=args[0], source=f"{MARKER} marker")
        except ThresholdError as exc:
            raise pytest.UsageError(f"{where}: {exc}") from None
    limit = mark.kwargs.get("limit")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise pytest.UsageError(f"{prefix}: limit must be a positive integer; got {limit!r}")
    repeat = mark.kwargs.get("repeat")
    if repeat is not None and (
        isinstance(repeat, bool) or not isinstance(repeat, int) or repeat < 1
    ):
        raise pytest.UsageError(f"{prefix}: repeat must be a positive integer; got {repeat!r}")
    return DatasetMarker(args[0], argname, tuple(thresholds), limit, repeat)
