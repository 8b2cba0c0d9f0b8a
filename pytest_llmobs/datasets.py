"""Datasets as the rest of the plugin sees them: `Dataset` (its items in file order and the
version of their content), `DatasetItem`, `DatasetError`, and finding dataset ``qa``'s one file.

Dataset ``qa`` lives at ``<directory>/qa.jsonl``, ``qa.json`` or ``qa.csv`` (exactly one);
`dataset_files` reads it. ``version`` hashes the items, so the same items in the same order give
the same version in any format.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pytest_llmobs.serialize import huge_ints_as_text, safe_repr

EXTENSIONS = (".jsonl", ".json", ".csv")
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


class DatasetError(ValueError):
    """A dataset is missing, ambiguous or malformed; the message names the file and line."""


@dataclass(frozen=True, slots=True, repr=False)
class DatasetItem:
    """One test case of a dataset: an ``input`` and what the model is expected to produce."""

    id: str
    input: Any
    expected_output: Any = None
    metadata: dict[str, Any] = field(default_factory=dict)
    dataset: str = ""

    def to_dict(self) -> dict[str, Any]:
        """A fresh JSON-serialisable dict of the item's content (without ``dataset``)."""
        return copy.deepcopy(item_content(self))

    def fresh(self) -> DatasetItem:
        """A copy whose every dict and list (in its input, expected output and metadata) is
        new, strings and numbers shared: what a test may change without changing the item
        for any other test. An item holding no list or object but its empty metadata (a
        string input and expected output) costs one item and one empty dict."""
        value, expected, metadata = self.input, self.expected_output, self.metadata
        if type(value) in _SHARED and type(expected) in _SHARED and metadata == {}:
            return DatasetItem(self.id, value, expected, {}, self.dataset)
        return DatasetItem(
            self.id, _copied(value), _copied(expected), _copied(metadata), self.dataset
        )

    def __repr__(self) -> str:
        text = safe_repr(self.input)  # never raises: an int of 5,000 digits has no repr
        if len(text) > 60:
            text = text[:57] + "..."
        return f"DatasetItem({self.id!r}, input={text})"

    __str__ = __repr__


@dataclass(frozen=True, slots=True, repr=False)
class Dataset:
    """The items of one dataset file, in file order, and the version of their content."""

    name: str
    version: str
    path: Path
    items: tuple[DatasetItem, ...]
    versioned: tuple[DatasetItem, ...] | None = field(default=None, compare=False)
    """Every item of the content ``version`` names, when `limit` kept only some in ``items``."""

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[DatasetItem]:
        return iter(self.items)

    def __getitem__(self, index: int) -> DatasetItem:
        return self.items[index]

    def __repr__(self) -> str:
        return f"Dataset({self.name!r}, version={self.version!r}, items={len(self.items)})"

    def get(self, item_id: str) -> DatasetItem:
        """The item with id ``item_id``; a :class:`DatasetError` listing known ids if none."""
        for item in self.items:
            if item.id == item_id:
                return item
        known = _preview([item.id for item in self.items])
        raise DatasetError(f"dataset {self.name!r} has no item {item_id!r}; known ids: {known}")

    def snapshot(self) -> list[dict[str, Any]]:
        """The content of every item of this version (of a limited dataset too: the version
        names the whole file), as the store keeps it; values shared with the items, not
        copied: for serialising at once, not for changing."""
        return [item_content(item) for item in self.versioned or self.items]

    def fresh(self) -> Dataset:
        """This dataset with each item `DatasetItem.fresh`: items a test may change."""
        return replace(self, items=tuple(item.fresh() for item in self.items))

    def limit(self, n: int | None) -> Dataset:
        """The first ``n`` items (all of them when ``n`` is None).

        The ``version`` is kept: it identifies the dataset file's content, not the subset run.
        """
        if n is None:
            return self
        if n < 0:
            raise ValueError(f"limit must be >= 0, got {n}")
        return replace(self, items=self.items[:n], versioned=self.versioned or self.items)


def find_dataset_file(name: str, directory: Path) -> Path:
    """The one file ``<directory>/<name>.jsonl|.json|.csv``, or a :class:`DatasetError`."""
    check_name(name)
    directory = Path(directory).absolute()
    if not directory.is_dir():
        problem = "is a file, not a directory" if directory.exists() else "does not exist"
        raise DatasetError(f"dataset {name!r} not found: directory {directory} {problem}")
    found = [directory / f"{name}{ext}" for ext in EXTENSIONS]
    found = [path for path in found if path.is_file()]
    if len(found) > 1:
        files = ", ".join(str(path) for path in found[:-1]) + f" and {found[-1]}"
        raise DatasetError(f"dataset {name!r} is ambiguous: found {files}; keep only one")
    if not found:
        available = sorted(
            {p.stem for p in directory.iterdir() if p.suffix in EXTENSIONS and p.is_file()}
        )
        expected = f"{name}.jsonl, {name}.json or {name}.csv"
        raise DatasetError(
            f"dataset {name!r} not found in {directory}; expected {expected}; "
            f"available: {_preview([n for n in available if _NAME_RE.fullmatch(n)], 20)}"
        )
    return found[0]


def check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        rule = "letters, digits, '.', '_' or '-', starting with a letter or digit"
        raise DatasetError(f"invalid dataset name {name!r}; expected {rule}")
    return name


def _preview(names: Sequence[str], limit: int = 5) -> str:
    if not names:
        return "(none)"
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown}, ... ({len(names)} total)"


def digest(value: object) -> str:
    try:
        text = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    except ValueError:  # an int longer than str() writes (4,300 digits): hashed as its digits
        text = json.dumps(
            huge_ints_as_text(value), sort_keys=True, ensure_ascii=False, separators=(",", ":")
        )
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:12]


_SHARED = frozenset({str, int, float, bool, type(None)})
"""Types of value a test cannot change: shared between an item and its copies."""


def _copied(value: Any) -> Any:
    """``value`` with each dict and list in it new and everything else shared (a dataset file
    holds nothing else); what items given in code may hold besides (a tuple, a dict subclass)
    is deep-copied. Files nest at most 100 levels deep (`dataset_checks`)."""
    kind = type(value)
    if kind is dict:
        return {k: v if type(v) in _SHARED else _copied(v) for k, v in value.items()}
    if kind is list:
        return [v if type(v) in _SHARED else _copied(v) for v in value]
    if kind in _SHARED:
        return value
    return copy.deepcopy(value)


def item_content(item: DatasetItem) -> dict[str, Any]:
    content = {"id": item.id, "input": item.input, "expected_output": item.expected_output}
    return content | {"metadata": item.metadata}
