"""Shard exports read and checked before a merge: each file once, each a valid run export
(`load_shard`), all parts of one run (`check_compatible`), none at odds with the store
(`snapshots_fit`); a refusal is a `MergeError` naming the files.

Parts of one run share the run id and the model, hold no shard twice (the same items with the
same results: a copy, or one shard exported twice), have each dataset at one version and each
prompt version with one content (hash).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_llmobs.export_schema import export_problem
from pytest_llmobs.exports import EXPORT_FORMAT, conflicting_prompts
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


def _prompt_versions(shards: Sequence[Shard]) -> None:
    """A prompt version is one content everywhere: the same name and version with two hashes
    (prompt files edited between shards, each with its own store) is refused."""
    hashes: dict[tuple[str, int], tuple[str, Shard]] = {}
    for shard in shards:
        entries = [*(shard.run.get("prompts") or [])]
        for item in shard.run["items"]:
            entries += item.get("prompts") or []
        for entry in entries:
            key, digest = (str(entry["name"]), int(entry["version"])), str(entry.get("hash") or "")
            if not digest:  # written without a hash: nothing to compare
                continue
            earlier = hashes.setdefault(key, (digest, shard))
            if earlier[0] != digest:
                raise MergeError(
                    f"cannot merge: prompt {key[0]!r} version {key[1]} has hash {earlier[0]!r} "
                    f"in {earlier[1].label} but {digest!r} in {shard.label}; the shards' prompt "
                    "files differ"
                )


def check_compatible(shards: Sequence[Shard]) -> None:
    """Raise `MergeError` unless the shards are parts of one run: the same run id and model,
    no shard twice, each dataset at one version, each prompt version with one content."""
    _same(shards, "id", "run id")
    _same(shards, "model", "model")
    _distinct_shards(shards)
    _dataset_versions(shards)
    _prompt_versions(shards)


def snapshots_fit(shards: Sequence[Shard], store: Store) -> None:
    """`MergeError` when the store already has a prompt version a shard carries with other
    content: the merged run would be linked to the store's content under the shard's hash."""
    for shard in shards:
        for name, version, kept, used in conflicting_prompts(shard.run, store):
            raise MergeError(
                f"cannot merge into {store.path}: prompt {name!r} version {version} there "
                f"has hash {kept!r}, but {shard.label} used {used!r}; "
                "store the merged run in another --store"
            )
