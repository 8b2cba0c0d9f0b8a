"""One score name, one kind, across a whole run.

A run aggregates each score name one way: numbers and booleans into means, strings into counts,
``label`` scores into classification metrics. ``scorer.score`` refuses a name that changes kind
within one process, but the items of an xdist run come from several processes, and scores added
with ``Trace.add_score`` or returned by ``run_experiment`` evaluators pass no scorer. So the run
checks every item as it arrives (`ScoreKinds`): an item whose score has another kind than the
run's first score of that name counts as failed, and that score stays out of the aggregates, as
it would have if the scorer had refused it. The item is stored with all its scores, the clashing
ones marked (`KIND_CLASH` in their metadata), so every later reading of the stored items (a
killed run's figures so far, a comparison) leaves them out too.

A score's kind as it is recorded is `score_kind`'s; `check_score` refuses, on every way in (the
scorer, ``Trace.add_score``, evaluators), a name or comment no score may have, a name whose
aggregates would take a built-in or a repeat aggregate's name included.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pytest_llmobs.aggregate_names import (
    BUILTIN_AGGREGATES,
    KIND_CLASH,
    LABEL_EXPECTED,
    REPEAT_VARIANCE_PREFIX,
    score_aggregate_names,
)
from pytest_llmobs.evaluators.basic import shorten
from pytest_llmobs.score_model import ScoreError, classify_score_value

KIND_OF_TYPE = {"BOOLEAN": "number", "NUMERIC": "number", "CATEGORICAL": "string"}
"""A score's kind by its data type (a ``label`` score is told by its metadata)."""
KIND_SHOWN = {"number": "a number (or bool)", "string": "a string", "label": "a label"}


def kind_of_stored(score: Mapping[str, Any]) -> str:
    """The kind of a score as a run item holds it (a dict with ``data_type`` and ``metadata``)."""
    if (score.get("metadata") or {}).get(LABEL_EXPECTED) is not None:
        return "label"
    return KIND_OF_TYPE.get(str(score.get("data_type")), "number")


def score_kind(name: str, value: object, metadata: Mapping[str, Any] | None = None) -> str:
    """How the run aggregates the score: ``"number"`` (numeric or boolean), ``"string"``
    (categorical, counted) or ``"label"`` (a ``label`` score: classification metrics)."""
    if metadata is not None and LABEL_EXPECTED in metadata:
        return "label"
    return KIND_OF_TYPE[classify_score_value(name, value)[1]]


def check_score(name: object, kind: str, comment: object = None) -> None:
    """Refuse, with a one-line `ScoreError`, what a score must not be recorded with: a name
    that is not a non-empty string, holds control characters, or whose aggregates would take
    the name of a built-in aggregate (``mean_latency_ms`` of generations) or of a repeat
    aggregate (``mean_repeat_variance_x`` of a number ``repeat_variance_x``: score ``x``'s
    variance across repeats); a comment that is not a string or None. ``kind`` is
    `score_kind`'s.
    """
    if not isinstance(name, str) or not name:
        raise ScoreError(f"score name must be a non-empty string; got {name!r}")
    if any(unicodedata.category(c).startswith("C") for c in name):
        raise ScoreError(
            f"score name {name!r} holds a control or invisible character; "
            "expected printable text (it names aggregates and thresholds)"
        )
    clash = [a for a in score_aggregate_names(name, kind) if a in BUILTIN_AGGREGATES]
    if clash:
        raise ScoreError(
            f"score {name!r}: its aggregate{'s' * (len(clash) > 1)} {', '.join(clash)} would "
            "take the names of the run's own aggregates (from generations, count, pass_rate); "
            "use another score name"
        )
    repeat = [a for a in score_aggregate_names(name, kind) if a.startswith(REPEAT_VARIANCE_PREFIX)]
    if repeat:
        other = repeat[0].removeprefix(REPEAT_VARIANCE_PREFIX)
        raise ScoreError(
            f"score {name!r}: its aggregate {repeat[0]} would take the name of the run's own "
            f"variance of score {other!r} across repeats (--llm-repeat); use another score name"
        )
    if comment is not None and not isinstance(comment, str):
        raise ScoreError(
            f"score {name!r}: comment must be a str or None; got {type(comment).__name__} "
            f"{shorten(comment)}"
        )


@dataclass(frozen=True, slots=True)
class KindClash:
    """The scores of one item whose kind differs from the run's."""

    kinds: Mapping[str, str]
    """Name of each clashing score → the kind the run keeps for that name."""
    reason: str
    """One line for the item's error."""

    def failed(self, item: Mapping[str, Any]) -> dict[str, Any]:
        """The item as stored: failed (unless it already failed or errored) with the reason, its
        clashing scores marked so that no aggregate counts them."""
        stored = dict(item)
        if stored.get("outcome") == "passed":
            stored["outcome"] = "failed"
        if not stored.get("error"):
            stored["error"] = self.reason
        trace = dict(stored.get("trace") or {})
        trace["scores"] = [self._marked(score) for score in trace.get("scores", [])]
        stored["trace"] = trace
        return stored

    def _marked(self, score: Mapping[str, Any]) -> Mapping[str, Any]:
        kept = self.kinds.get(str(score.get("name")))
        if kept is None or kept == kind_of_stored(score) or _clashed(score):
            return score
        return {**score, "metadata": {**(score.get("metadata") or {}), KIND_CLASH: True}}


def _clashed(score: Mapping[str, Any]) -> bool:
    return bool((score.get("metadata") or {}).get(KIND_CLASH))


@dataclass
class ScoreKinds:
    """The kind each score name first arrived with in a run, and the items that broke it."""

    _first: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Score name → (kind, node id of the item that first recorded it)."""
    _broken: dict[str, dict[str, str]] = field(default_factory=dict)
    """Score name → node id → kind, of the items whose score of that name had another kind."""

    def check(self, item: Mapping[str, Any]) -> KindClash | None:
        """Note the kinds of ``item``'s scores; the clash, if one has another kind than before.

        An item that `KindClash.failed` returned passes (`run_experiment` checks each item as
        it ends, so that its result says it failed, and the recorder checks it again)."""
        node_id = str(item.get("node_id"))
        kinds: dict[str, str] = {}
        reasons: list[str] = []
        for score in (item.get("trace") or {}).get("scores", []):
            if _clashed(score):
                continue  # (checked before: run_experiment checks each item twice)
            name, kind = str(score.get("name")), kind_of_stored(score)
            first = self._first.setdefault(name, (kind, node_id))
            if first[0] == kind:
                continue
            if name not in kinds:
                self._broken.setdefault(name, {})[node_id] = kind
                where = "this item" if first[1] == node_id else first[1]
                reasons.append(
                    f"score {name!r} is {KIND_SHOWN[kind]} ({shorten(score.get('value'), 40)}) but "
                    f"{KIND_SHOWN[first[0]]} in {where}"
                )
            kinds[name] = first[0]
        if not kinds:
            return None
        reason = "; ".join(reasons) + (
            "; one name must keep one kind in a run, so record it under another name"
        )
        return KindClash(kinds, reason)

    @property
    def clashing(self) -> frozenset[str]:
        """The score names that came with more than one kind."""
        return frozenset(self._broken)

    def errors(self) -> list[str]:
        """One run error per score name that changed kind."""
        lines = []
        for name, broken in self._broken.items():
            kind, first = self._first[name]
            others = " or ".join(KIND_SHOWN[k] for k in sorted(set(broken.values())))
            node_ids = list(broken)
            count = len(node_ids)
            items = f"{count} item{'s' * (count > 1)} ({', '.join(node_ids[:3])}"
            items += ", ...)" if count > 3 else ")"
            lines.append(
                f"score {name!r} was {KIND_SHOWN[kind]} first ({first}) and {others} in "
                f"{items}: one name must keep one kind, so those items count as failed and those "
                "scores stay out of the aggregates; record them under another name"
            )
        return lines
