"""What is recorded: redaction, trace sampling and size limits, applied as items are stored.

The store applies a `Governance` to every item, run header and dataset snapshot it writes, so the
SQLite file, the JSON export, the HTML report and every uploader (all of which read the store)
only ever see governed data. The objects the user's test code holds are never changed.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from pytest_llmobs.aggregate_names import LABEL_EXPECTED
from pytest_llmobs.redaction import (
    GENERATION_METADATA_KEYS,
    IDENTIFIER_KEYS,
    IDENTIFIERS_WITHIN,
    NO_IDENTIFIERS,
    REDACT_MODES,
    ROOT_METADATA_KEYS,
    Masker,
    RedactMode,
    Redactor,
    masker_name,
)
from pytest_llmobs.serialize import (
    distinct_key,
    int_text,
    key_text,
    stored_int_bound,
    without_lone_surrogates,
)

DEFAULT_MAX_FIELD_CHARS = 100_000
TRUNCATION_MARKER = "…[truncated, {length} chars]"
_CUT_BEFORE = re.compile(r"…\[truncated, [0-9]+ chars\]")
"""`TRUNCATION_MARKER` as a text cut before ends with it."""


class GovernanceError(ValueError):
    """A governance option has a bad value."""


def load_masker(reference: str) -> Masker:
    """Import ``package.module:callable`` (a function ``str -> str``)."""
    module_name, _, attribute = reference.partition(":")
    if not module_name or not attribute:
        raise GovernanceError(
            f"masker {reference!r}: expected 'package.module:function' (a function str -> str)"
        )
    try:
        target: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise GovernanceError(f"masker {reference!r} cannot be imported: {exc}") from None
    if not callable(target):
        raise GovernanceError(f"masker {reference!r} is not callable")
    masker: Masker = target
    return masker


def _try_masker(masker: Masker) -> None:
    """Call ``masker`` once before the session: one that cannot take a string, or gives back
    something else, is a usage error now rather than texts stored as `MASKING_FAILED` later."""
    try:
        masked = masker("llmobs masker check: hello")
    except Exception as exc:
        raise GovernanceError(
            f"masker {masker_name(masker)} raised {type(exc).__name__} ({exc}) on a test "
            "string; expected a function str -> str"
        ) from None
    if not isinstance(masked, str):
        raise GovernanceError(
            f"masker {masker_name(masker)} returned {type(masked).__name__} for a test "
            "string; expected a function str -> str"
        )


def checked_maskers(returned: Iterable[object]) -> list[Masker]:
    """What ``pytest_llmobs_register_maskers`` returned, each masker tried on a test string;
    anything else raises `GovernanceError`."""
    checked: list[Masker] = []
    for masker in returned:
        if not callable(masker):
            raise GovernanceError(
                f"pytest_llmobs_register_maskers returned {masker!r:.60} "
                f"({type(masker).__name__}), which is not callable; expected functions str -> str"
            )
        _try_masker(masker)
        checked.append(masker)
    return checked


def sampled(trace_id: str, rate: float) -> bool:
    """Whether a trace keeps its full payload: a deterministic choice by trace id."""
    if rate >= 1.0:
        return True
    try:
        position = int(trace_id[:8], 16) / 0x1_0000_0000
    except ValueError:
        return True
    return position < rate


def truncate(value: Any, limit: int) -> Any:
    """Strings over ``limit`` characters cut with a marker giving the original length (and
    lone surrogates replaced: UTF-8 cannot carry them)."""
    if isinstance(value, str):
        if not value.isascii():  # the common all-ASCII text skips the call
            value = without_lone_surrogates(value)
        if len(value) <= limit or _CUT_BEFORE.fullmatch(value, limit):
            return value  # (a record governed again, as `llmobs merge` does: keep its length)
        return value[:limit] + TRUNCATION_MARKER.format(length=len(value))
    if isinstance(value, Mapping):
        return {key: truncate(item, limit) for key, item in value.items()}
    if isinstance(value, list):
        return [truncate(item, limit) for item in value]
    return value


def _whole(value: Any) -> Any:
    """An identifier (a node id, an item id, a name) as stored: never cut, as two ids cut alike
    would become one, but with lone surrogates replaced as in any text."""
    if isinstance(value, str):
        return value if value.isascii() else without_lone_surrogates(value)
    if isinstance(value, Mapping):
        return {key: _whole(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_whole(item) for item in value]
    return value


_TEXTS_LIMIT = 65_536
"""Governed texts kept per `Governance` (then forgotten all at once, as the redactor's memo)."""
_PAYLOAD_FIELDS = ("input", "output", "metadata", "model_parameters")
_SCALARS = frozenset({bool, int, float})
SECRET = "<SECRET>"
"""What a value under a secret-naming key of user data is stored as."""


@dataclass
class Governance:
    """Redaction, sampling and size limits for what is stored."""

    redactor: Redactor = field(default_factory=lambda: Redactor("default"))
    trace_sample: float = 1.0
    max_field_chars: int = DEFAULT_MAX_FIELD_CHARS
    revision: int = field(default=0, init=False, compare=False)
    """How many times maskers were added since it was built (see `add_maskers`)."""
    _int_bound: int = field(default_factory=stored_int_bound, init=False, repr=False, compare=False)
    """Integers this long are stored as text: JSON readers refuse them (Python's: 4,300 digits)."""
    _secret_keys: dict[str, bool] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    """Whether each key of user data seen so far names a secret."""
    _texts: dict[str, str] = field(default_factory=dict, init=False, repr=False, compare=False)
    """Each string's governed text (masked, UTF-8-safe, cut): the same questions, answers and
    names recur in every item of a run."""

    def plugin_line(self, line: str) -> str:
        """``line``, which the plugin writes about a failing custom masker: stored with the
        built-in masking only (see `Redactor.keep_from_custom`)."""
        self.redactor.keep_from_custom(line)
        self._texts.pop(line, None)
        return line

    def add_maskers(self, maskers: Iterable[Masker]) -> None:
        """Apply ``maskers`` to what is stored from now on (a conftest pytest loaded late)."""
        self.redactor.add(maskers)
        self._texts.clear()
        self.revision += 1

    def value(self, value: Any) -> Any:
        """A redacted, size-limited copy of JSON-like ``value`` (a record of the plugin's: a run
        header or summary, an item, a dataset item), in one walk; the same walk without
        redaction (faster than `truncate`, which calls itself for every number)."""
        return self._walk(value, IDENTIFIER_KEYS)

    def _walk(self, value: Any, identifiers: frozenset[str]) -> Any:
        kind = type(value)
        if kind is str:
            return self._text(value)
        if kind is dict:
            return self._mapping(value, identifiers)
        if kind is list or kind is tuple:
            return [self._walk(item, identifiers) for item in value]
        if kind is int and not -self._int_bound < value < self._int_bound:
            return self._text(int_text(value))
        if value is None or kind in _SCALARS:
            return value
        # subclasses and other mappings: the slower checks, only for what the fast ones miss
        if isinstance(value, str):
            return self._text(str(value))
        if isinstance(value, Mapping):
            return self._mapping(dict(value), identifiers)
        if isinstance(value, (list, tuple)):
            return [self._walk(item, identifiers) for item in value]
        return value

    def _secret_key(self, key: str) -> bool:
        secret = self._secret_keys.get(key)
        if secret is None:
            if len(self._secret_keys) >= _TEXTS_LIMIT:
                self._secret_keys.clear()
            secret = self._secret_keys[key] = self.redactor.secret_key(key)
        return secret

    def _text(self, value: str) -> str:
        governed = self._texts.get(value)
        if governed is None:
            masked = self.redactor.text(value)
            if not masked.isascii():
                masked = without_lone_surrogates(masked)
            limit = self.max_field_chars
            governed = masked if len(masked) <= limit else truncate(masked, limit)  # rare
            if len(self._texts) >= _TEXTS_LIMIT:
                self._texts.clear()
            self._texts[value] = governed
        return governed

    def _mapping(self, value: dict[Any, Any], identifiers: frozenset[str]) -> dict[Any, Any]:
        """``identifiers``: the keys whose values are kept unmasked in this mapping. Outside
        the plugin's own records the keys are the user's data too (``{"ann@x.org": "vip"}``),
        and are masked like values."""
        governed: dict[Any, Any] = {}
        texts = self._texts
        bound = self._int_bound
        secret_keys = self._secret_keys
        user_keys = identifiers is not IDENTIFIER_KEYS
        clashes: dict[str, int] | None = None  # (made on the first clash: most maps have none)
        for key, item in value.items():
            name = key
            kind = type(item)
            if type(key) is not str:  # (rare: recorded values have text keys already)
                name = self._text(key_text(key)) if user_keys else key_text(key)
                if name in governed or name in value:  # 1 beside "1": keep both, as jsonable
                    clashes = {} if clashes is None else clashes
                    name = distinct_key(name, governed.keys() | value.keys(), clashes)
            elif user_keys:
                name = texts.get(key) or self._text(key)
                if name in governed:  # two keys masked alike (<EMAIL>): both values are kept
                    clashes = {} if clashes is None else clashes
                    name = distinct_key(name, governed, clashes)
                secret = secret_keys.get(key)
                if secret is None:
                    secret = self._secret_key(key)
                if secret and kind is not dict and kind is not list:
                    # {"password": "hunter2"}, as password=hunter2 in a text is
                    governed[name] = item if item is None or kind is bool else SECRET
                    continue
            if item is None or kind in _SCALARS:  # most leaves: no call at all
                governed[name] = item
                if kind is int and not -bound < item < bound:
                    governed[name] = self._text(int_text(item))
            elif key in identifiers:  # most are ASCII ids and names: kept without a call
                governed[name] = item if kind is str and item.isascii() else _whole(item)
            elif kind is str:  # a text seen before: no call either
                governed[name] = texts.get(item) or self._text(item)
            elif identifiers is IDENTIFIER_KEYS:  # a record's field: its own identifiers
                within = IDENTIFIERS_WITHIN.get(key, IDENTIFIER_KEYS)
                if key == "metadata" and value.get("type") == "generation":
                    within = GENERATION_METADATA_KEYS
                governed[name] = self._walk(item, within)
            else:  # inside user data every key is the user's
                governed[name] = self._walk(item, NO_IDENTIFIERS)
        return governed

    def item(self, item: Mapping[str, Any]) -> dict[str, Any]:
        """A governed copy of a run item: sampled, redacted and size-limited."""
        governed = dict(item)
        trace = governed.get("trace")
        if isinstance(trace, Mapping) and not self._keeps_payload(governed, trace):
            governed["trace"] = _without_payloads(trace)
        copy = self._with_own_id(governed)
        if not isinstance(trace, Mapping):
            return copy
        observations = governed["trace"].get("observations")  # (sampled out: no metadata)
        if observations:
            _keep_root_ids(governed, observations[0], copy["trace"]["observations"][0])
        scores = trace.get("scores")
        if scores:
            self._keep_labels(scores, copy["trace"]["scores"])
        return copy

    def _with_own_id(self, item: dict[str, Any]) -> dict[str, Any]:
        """`value` of ``item``, where a text equal to its own item id is kept as the id is (it
        is stored whole in the record anyway): each test's distinct id would otherwise miss the
        memo and go through every masking pattern once more."""
        item_id = item.get("item_id")
        if type(item_id) is not str:
            return cast("dict[str, Any]", self.value(item))
        texts = self._texts
        before = texts.get(item_id)
        texts[item_id] = _whole(item_id)
        try:
            return cast("dict[str, Any]", self.value(item))
        finally:
            if before is None:
                texts.pop(item_id, None)
            else:
                texts[item_id] = before

    def _keep_labels(self, scores: Sequence[Any], governed: Sequence[Any]) -> None:
        """A ``label`` score's predicted and expected labels are the classes the run's accuracy,
        F1 and confusion matrix count: masked, two different labels could become one
        (``<EMAIL>``) and a wrong prediction a right one, so they are kept (cut to size)."""
        for score, copy in zip(scores, governed, strict=True):
            metadata = score.get("metadata") if isinstance(score, Mapping) else None
            if isinstance(metadata, Mapping) and LABEL_EXPECTED in metadata:
                copy["value"] = truncate(score.get("value"), self.max_field_chars)
                copy["metadata"][LABEL_EXPECTED] = truncate(
                    metadata[LABEL_EXPECTED], self.max_field_chars
                )

    def items(self, items: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Governed copies of dataset items (each a new dict: the given ones are not changed)."""
        return [self.value(i) for i in items]

    def _keeps_payload(self, item: Mapping[str, Any], trace: Mapping[str, Any]) -> bool:
        if item.get("outcome") in ("failed", "error"):
            return True  # failures are always kept in full
        return sampled(str(trace.get("id", "")), self.trace_sample)


def _keep_root_ids(item: Mapping[str, Any], root: Any, copy: Any) -> None:
    """Put back the dataset, item id and outcome the plugin wrote into the root span's metadata
    (user data, so masked by the walk) where they are the item's own, which are identifiers."""
    metadata = root.get("metadata") if isinstance(root, Mapping) else None
    if not isinstance(metadata, Mapping) or root.get("parent_id") is not None:
        return
    governed = copy["metadata"]
    for key in ROOT_METADATA_KEYS:
        value = metadata.get(key)
        if value is not None and key in governed and value == item.get(key):
            governed[key] = _whole(value)


def _without_payloads(trace: Mapping[str, Any]) -> dict[str, Any]:
    stripped = dict(trace)
    stripped["observations"] = [
        {**o, **{name: None for name in _PAYLOAD_FIELDS if name in o}}
        for o in trace.get("observations", [])
    ]
    stripped["metadata"] = {**(trace.get("metadata") or {}), "llmobs_sampled_out": True}
    return stripped


def option_problem(mode: str, trace_sample: float, max_field_chars: int) -> tuple[str, str] | None:
    """(the option's ini name, what is wrong) for the first bad governance option, else None."""
    if mode not in REDACT_MODES:
        return "llm_redact", f"{mode!r} is not a redaction mode; valid: {', '.join(REDACT_MODES)}"
    if not 0.0 <= trace_sample <= 1.0:
        return "llm_trace_sample", f"{trace_sample!r} is not a share; expected 0..1 (e.g. 0.1)"
    if max_field_chars < 100:
        return "llm_max_field_chars", f"{max_field_chars!r} is too small; expected >= 100"
    return None


def build_governance(
    *,
    mode: str,
    maskers: Sequence[str] = (),
    extra: Sequence[Callable[[str], str]] = (),
    trace_sample: float = 1.0,
    max_field_chars: int = DEFAULT_MAX_FIELD_CHARS,
) -> Governance:
    """Validate the options and build the policy; bad values raise `GovernanceError`."""
    problem = option_problem(mode, trace_sample, max_field_chars)
    if problem is not None:
        ini_name, why = problem
        raise GovernanceError(f"--{ini_name.replace('_', '-')}: {why}")
    custom = [load_masker(reference) for reference in maskers]
    for masker in custom:
        _try_masker(masker)
    custom += checked_maskers(extra)
    mode_checked = cast("RedactMode", mode)  # (option_problem checked it is one)
    return Governance(Redactor(mode_checked, custom), trace_sample, max_field_chars)
