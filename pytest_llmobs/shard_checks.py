"""Shard exports read and checked before a merge: each file once, each a valid run export
(`load_shard`), all parts of one run (`check_compatible`); a refusal is a `MergeError` naming
the files. `prompt_numbers` gives each prompt content one version number in the merged run.

Parts of one run share the run id and the model, hold no shard twice (the same items with the
same results: a copy, or one shard exported twice), have each dataset at one version and each
prompt version with one content (hash).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_llmobs.export_schema import export_problem
from pytest_llmobs.exports import EXPORT_FORMAT, SNAPSHOTS
from pytest_llmobs.thresholds import ThresholdError, parse_threshold

if TYPE_CHECKING:
    from pytest_llmobs.store import Store


class MergeError(Exception):
    """The shards cannot be combined into one run; the message names the files."""


@dataclass(frozen=True, slots=True)
class Shard:
    """One exported part of a run."""

    path: Path
    run: dict[str, Any]

    @property
    def label(self) -> str:
        return str(self.path)


def load_shard(path: Path) -> Shard:
    """Read one export; a missing, unreadable or foreign file raises `MergeError`."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise MergeError(f"{path}: cannot read shard export ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise MergeError(f"{path}: not JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != EXPORT_FORMAT:
        raise MergeError(
            f"{path}: not a run export (expected format {EXPORT_FORMAT!r}, as written by "
            "'llmobs export')"
        )
    problem = export_problem(data) or _threshold_problem(data)
    if problem is not None:
        raise MergeError(f"{path}: not a valid run export: {problem}")
    return Shard(path, data)


def _threshold_problem(run: dict[str, Any]) -> str | None:
    """The first threshold expression of a (schema-valid) export that merging could not parse,
    as ``field: problem``; None when all parse. Checked here because the recorder parses the
    items' own (their marker's) while it stores them: too late to store nothing."""
    places = [
        (f"thresholds.{n}.expression", str(entry["expression"]))
        for n, entry in enumerate(run.get("thresholds") or [])
    ]
    for index, item in enumerate(run["items"]):  # (the schema made them lists of strings)
        entries = item.get("thresholds") or []
        places += ((f"items.{index}.thresholds.{n}", e) for n, e in enumerate(entries))
    parsed: set[str] = set()  # items repeat their marker's: each spelling is parsed once
    for where, expression in places:
        if expression not in parsed:
            try:
                parse_threshold(expression)
            except ThresholdError as exc:
                return f"{where}: {exc}"
            parsed.add(expression)
    return None


def _same(shards: Sequence[Shard], key: str, what: str) -> None:
    first = shards[0]
    for shard in shards[1:]:
        if shard.run.get(key) != first.run.get(key):
            raise MergeError(
                f"cannot merge: {first.label} has {what} {first.run.get(key)!r} but "
                f"{shard.label} has {what} {shard.run.get(key)!r}; shards of one run share "
                "--llm-run-id and the model"
            )


def _model(run: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """The model a run used: its name (the model string before ``?``, as
    `ModelRegistry.resolve` reads it) and its options as the provider parsed them (the run's
    ``params``): ``?seed=3&accuracy=0.7`` is ``?accuracy=0.7&seed=3``."""
    return str(run.get("model") or "").split("?", 1)[0].strip(), dict(run.get("params") or {})


def _same_model(shards: Sequence[Shard]) -> None:
    first = shards[0]
    for shard in shards[1:]:
        if _model(shard.run) != _model(first.run):
            said = [repr(s.run.get("model")) for s in (first, shard)]
            if said[0] == said[1]:  # the strings match: the options parsed from them differ
                said = [f"{said[0]} (options {_model(s.run)[1]!r})" for s in (first, shard)]
            raise MergeError(
                f"cannot merge: {first.label} has model {said[0]} but {shard.label} has model "
                f"{said[1]}; shards of one run share --llm-run-id and the model"
            )


def distinct_files(paths: Sequence[Path]) -> None:
    """`MergeError` when one file is given twice: by the same path, or by two (``./a.json``
    and ``a.json``, a symbolic or a hard link). A file that cannot be read is left to
    `load_shard`, which names it."""
    seen: dict[tuple[int, int], Path] = {}
    for path in paths:
        try:
            info = path.stat()
        except OSError:
            continue
        earlier = seen.get((info.st_dev, info.st_ino))
        if earlier is None:
            seen[(info.st_dev, info.st_ino)] = path
            continue
        how = "is given twice" if str(earlier) == str(path) else f"is the same file as {earlier}"
        raise MergeError(f"cannot merge: {path} {how}; give each shard's export once")


def _distinct_shards(shards: Sequence[Shard]) -> None:
    """`MergeError` when two files hold the same shard: the same items with the same results
    (a copy of one export, or one shard exported twice). Merged, they would pass for two
    shards, and hide that the run lacks the other's items."""
    seen: dict[str, Shard] = {}
    for shard in shards:
        items = shard.run["items"]
        content = sorted(json.dumps(i, sort_keys=True) for i in items) if items else shard.run
        key = json.dumps(content, sort_keys=True)
        earlier = seen.get(key)
        if earlier is None:
            seen[key] = shard
            continue
        count = len(items)
        what = f"the same {count} item{'s' if count != 1 else ''} with the same results"
        raise MergeError(
            f"cannot merge: {shard.label} holds the same shard as {earlier.label} "
            f"({what if items else 'the same export'}); give each shard's export once"
        )


def _item_dataset_versions(shard: Shard) -> None:
    """`MergeError` when an item of ``shard`` names a dataset version its run does not (a
    hand-edited export): the merged run would name the item's version and lose the run's
    snapshot of the dataset."""
    versions = shard.run.get("datasets") or {}
    for item in shard.run["items"]:
        named = list((item.get("datasets") or {}).items())
        if item.get("dataset") is not None and item.get("dataset_version") is not None:
            named.insert(0, (str(item["dataset"]), item["dataset_version"]))
        for name, version in named:
            if versions.get(name) != version:
                repeat = f" (repeat {item['repeat']})" if item.get("repeat") else ""
                said = f"version {versions[name]}" if name in versions else "no version of it"
                raise MergeError(
                    f"cannot merge: item {item['node_id']!r}{repeat} of {shard.label} is at "
                    f"dataset {name!r} version {version} but {shard.label}'s run names {said}; "
                    "was the export edited?"
                )


def _dataset_versions(shards: Sequence[Shard]) -> None:
    versions: dict[str, tuple[str, Shard]] = {}
    for shard in shards:
        for name, version in (shard.run.get("datasets") or {}).items():
            earlier = versions.setdefault(name, (version, shard))
            if earlier[0] != version:
                raise MergeError(
                    f"cannot merge: dataset {name!r} is version {earlier[0]} in "
                    f"{earlier[1].label} but {version} in {shard.label}"
                )


def shard_prompts(shard: Shard) -> list[tuple[str, int, str]]:
    """``(name, version, hash)`` of each prompt version ``shard`` names (its run's list, its
    items', its snapshots), in that order; those written without a hash are left out."""
    run = shard.run
    entries = [*(run.get("prompts") or [])]
    for item in run["items"]:
        entries += item.get("prompts") or []
    entries += (run.get(SNAPSHOTS) or {}).get("prompts") or []
    found = [(str(e["name"]), int(e["version"]), str(e.get("hash") or "")) for e in entries]
    return [entry for entry in found if entry[2]]


def _prompt_versions(shards: Sequence[Shard]) -> None:
    """A prompt version is one content everywhere: the same name and version with two hashes
    (prompt files edited between shards, each with its own store) is refused."""
    hashes: dict[tuple[str, int], tuple[str, Shard]] = {}
    for shard in shards:
        for name, version, digest in shard_prompts(shard):
            key = (name, version)
            earlier = hashes.setdefault(key, (digest, shard))
            if earlier[0] != digest:
                raise MergeError(
                    f"cannot merge: prompt {key[0]!r} version {key[1]} has hash {earlier[0]!r} "
                    f"in {earlier[1].label} but {digest!r} in {shard.label}; the shards' prompt "
                    "files differ"
                )


def check_compatible(shards: Sequence[Shard]) -> None:
    """Raise `MergeError` unless the shards are parts of one run: the same run id and model
    (name and parsed options), no shard twice, each dataset at one version (in each shard's
    items as in its run), each prompt version with one content."""
    _same(shards, "id", "run id")
    _same_model(shards)
    _distinct_shards(shards)
    for shard in shards:
        _item_dataset_versions(shard)
    _dataset_versions(shards)
    _prompt_versions(shards)


def prompt_numbers(
    shards: Sequence[Shard], store: Store
) -> tuple[list[dict[tuple[str, int], int]], list[str]]:
    """The merged run's number for each prompt version the shards name: one per content.

    Each shard numbered its prompt versions in its own store, so one content (name and hash)
    can have two numbers (a store that had seen an older version, another that started empty),
    and ``store`` can keep it under a third. The merged run gives it the number ``store`` keeps
    it under, else the lowest of the shards' numbers that ``store`` does not use for other
    content, else a new one. Returns, per shard, ``(name, version) -> new version`` for the
    numbers that change, and a note for each. Run after `check_compatible` (a number of one
    name has one content across the shards)."""
    where = str(store.path or "the store")
    found = [shard_prompts(shard) for shard in shards]
    numbers: dict[str, dict[str, set[int]]] = {}  # name -> hash -> the shards' numbers
    for entries in found:
        for name, version, digest in entries:
            numbers.setdefault(name, {}).setdefault(digest, set()).add(version)
    stored: dict[str, dict[int, str]] = {}  # name -> the store's numbers -> hash
    chosen: dict[tuple[str, str], int] = {}
    for name, contents in sorted(numbers.items()):
        kept = stored[name] = store.prompt_hashes(name)  # (an in-memory store: none)
        kept_as = {digest: version for version, digest in kept.items()}
        fresh = max([*kept, *(n for taken in contents.values() for n in taken)]) + 1
        for digest, taken in sorted(contents.items(), key=lambda entry: min(entry[1])):
            free = sorted(n for n in taken if n not in kept)
            if digest in kept_as:
                chosen[name, digest] = kept_as[digest]
            elif free:  # (the shards give each number to one content: see _prompt_versions)
                chosen[name, digest] = free[0]
            else:
                chosen[name, digest] = fresh
                fresh += 1
    changes: list[dict[tuple[str, int], int]] = []
    notes: list[str] = []
    for shard, entries in zip(shards, found, strict=True):
        changed: dict[tuple[str, int], int] = {}
        for name, version, digest in entries:
            number = chosen[name, digest]
            if number == version or (name, version) in changed:
                continue
            changed[name, version] = number
            if stored[name].get(number) == digest:
                why = f"as {where} numbers that content"
            elif version in stored[name]:
                why = f"{where} has other content as version {version}"
            else:
                why = "the shards' stores numbered that content differently"
            notes.append(
                f"prompt {name!r} version {version} of {shard.label} is version {number} of "
                f"the merged run ({why})"
            )
        changes.append(changed)
    return changes, notes


def renumbered(run: Mapping[str, Any], changed: Mapping[tuple[str, int], int]) -> dict[str, Any]:
    """``run`` with its prompt links (the prompt lists, the observations' ``prompt_version``,
    its snapshots) moved to the merged run's numbers (`prompt_numbers`)."""
    if not changed:
        return dict(run)

    def links(entries: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        return [
            {**e, "version": changed.get((str(e["name"]), int(e["version"])), e["version"])}
            for e in entries
        ]

    def observation(entry: Mapping[str, Any]) -> dict[str, Any]:
        key = (entry.get("prompt_name"), entry.get("prompt_version"))
        if isinstance(key[1], bool) or key not in changed:  # (True would pass for 1)
            return dict(entry)
        return {**entry, "prompt_version": changed[key]}  # type: ignore[index]

    items = []
    for item in run["items"]:
        copy = dict(item)
        if item.get("prompts"):
            copy["prompts"] = links(item["prompts"])
        trace = item.get("trace") or {}
        if trace.get("observations"):
            observations = [observation(o) for o in trace["observations"]]
            copy["trace"] = {**trace, "observations": observations}
        items.append(copy)
    moved = {**run, "items": items}
    if run.get("prompts"):
        moved["prompts"] = links(run["prompts"])
    snapshots = run.get(SNAPSHOTS)
    if snapshots:
        moved[SNAPSHOTS] = {**snapshots, "prompts": links(snapshots.get("prompts") or [])}
    return moved


def same_but_ids_and_times(first: Mapping[str, Any], second: Mapping[str, Any]) -> bool:
    """Whether two records of one item differ only in what a new session changes: trace,
    observation and score ids, times and latencies (a shard retried, both exports kept)."""
    return _without_ids_and_times(first) == _without_ids_and_times(second)


_ITEM_TIMES = {"started_at": None, "ended_at": None, "duration": None}
_RESULT_FIELDS = re.compile(
    r"\b(latency_ms|observation_id)=(?:'[0-9a-f]*'|-?[0-9]+(?:\.[0-9]+)?(?:e[-+]?[0-9]+)?)"
)
"""An `LLMResult`'s latency and observation id as its repr (in an assertion's text) shows them."""


def _without_ids_and_times(item: Mapping[str, Any]) -> dict[str, Any]:
    """``item`` with its ids replaced by positions (an observation's, its parent's, a score's
    target: the shape stays compared) and its times and latencies by None; in its error texts
    (the item's, the spans' status) its ids and an `LLMResult`'s latency are masked, and the
    rest compared: a failure that differs otherwise is another result."""
    trace = item.get("trace") or {}
    observations = trace.get("observations") or []
    scores = trace.get("scores") or []
    position = {o.get("id"): n for n, o in enumerate(observations)}
    masked = _masker(trace, observations, scores)

    def observation(entry: Mapping[str, Any]) -> dict[str, Any]:
        metadata = entry.get("metadata")
        if isinstance(metadata, Mapping) and entry.get("type") == "generation":
            metadata = {**metadata, "latency_ms": None}
        return {
            **entry,
            "id": position.get(entry.get("id")),
            "parent_id": position.get(entry.get("parent_id")),
            "trace_id": None,
            "start_time": None,
            "end_time": None,
            "metadata": metadata,
            "status_message": masked(entry.get("status_message")),
        }

    def score(entry: Mapping[str, Any]) -> dict[str, Any]:
        target = position.get(entry.get("observation_id"))
        return {**entry, "id": None, "trace_id": None, "observation_id": target, "timestamp": None}

    untimed = {"id": None, "start_time": None, "end_time": None}
    return {
        **item,
        **_ITEM_TIMES,
        "error": masked(item.get("error")),
        "trace": {
            **trace,
            **untimed,
            "observations": [observation(o) for o in observations],
            "scores": [score(s) for s in scores],
        },
    }


def _masker(
    trace: Mapping[str, Any],
    observations: Sequence[Mapping[str, Any]],
    scores: Sequence[Mapping[str, Any]],
) -> Callable[[Any], Any]:
    """What masks, in a text of an item, the ids its record holds (by position: ``<observation
    1>``; not the user's own text) and an `LLMResult`'s latency and observation id."""
    names = {str(trace.get("id")): "<trace>"}
    names.update((str(o.get("id")), f"<observation {n}>") for n, o in enumerate(observations))
    names.update((str(e.get("id")), f"<score {n}>") for n, e in enumerate(scores))
    ids = sorted((text for text in names if len(text) >= 8), key=len, reverse=True)  # not None
    known = re.compile(rf"\b(?:{'|'.join(map(re.escape, ids))})\b") if ids else None

    def masked(text: Any) -> Any:
        if not isinstance(text, str) or not text:
            return text
        text = known.sub(lambda found: names[found.group()], text) if known else text
        return _RESULT_FIELDS.sub(r"\1=<masked>", text)

    return masked
