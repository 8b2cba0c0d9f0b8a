"""What ``run_experiment`` accepts as its dataset: a `Dataset`, a dataset's name, a file, or
items given in code, which are checked as a file's would be."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pytest_llmobs.dataset_checks import check_item_values
from pytest_llmobs.dataset_files import (
    Loc,
    Raw,
    assign_ids,
    from_object,
    load_dataset,
    load_dataset_file,
)
from pytest_llmobs.datasets import (
    Dataset,
    DatasetError,
    DatasetItem,
    check_name,
    digest,
    item_content,
)

_DATASET_SUFFIXES = (".jsonl", ".json", ".csv")

DatasetArg = Dataset | str | os.PathLike[str] | Iterable[Mapping[str, Any] | DatasetItem]


def resolve_dataset(
    dataset: DatasetArg,
    *,
    datasets_dir: str | os.PathLike[str] | None,
    dataset_name: str | None,
) -> Dataset:
    """The `Dataset` ``run_experiment`` runs: given, named (under ``datasets_dir``), read
    from a file, or built from items given in code."""
    if isinstance(dataset, Dataset):
        return checked_dataset(dataset)
    if isinstance(dataset, (str, os.PathLike)):
        path = Path(dataset)
        names_a_file = (
            isinstance(dataset, os.PathLike)
            or len(path.parts) > 1
            or path.suffix.lower() in _DATASET_SUFFIXES
        )
        if not names_a_file:
            return load_dataset(str(dataset), Path(datasets_dir or "datasets"))
        if not path.is_file():
            raise DatasetError(
                f"dataset file {str(path)!r} not found (relative to {Path.cwd()}); pass a "
                ".jsonl, .json or .csv file, or a dataset's name with datasets_dir="
            )
        if path.suffix.lower() not in _DATASET_SUFFIXES:
            raise DatasetError(f"{path}: expected a .jsonl, .json or .csv dataset file")
        return load_dataset_file(path, dataset_name)
    if isinstance(dataset, Iterable) and not isinstance(dataset, (bytes, Mapping)):
        return dataset_from_items(list(dataset), dataset_name or "inline")
    raise TypeError(
        "dataset must be a Dataset, a dataset name (with datasets_dir=), a dataset file, or a "
        f"list of dicts or DatasetItems; got {type(dataset).__name__}"
    )


def dataset_from_items(entries: list[Mapping[str, Any] | DatasetItem], name: str) -> Dataset:
    """A dataset from dicts or items, validated, with ids and a version as a file would get."""
    check_name(name)  # dataset files' own helpers below: the same rules as files
    raws = []
    for index, entry in enumerate(entries, start=1):
        loc = Loc(f"dataset {name!r}: item {index}", f"item {index}")
        if isinstance(entry, DatasetItem):
            content = {"input": entry.input, "expected_output": entry.expected_output}
            raws.append(Raw(loc, entry.id, content | {"metadata": dict(entry.metadata)}))
        else:
            raws.append(from_object(dict(entry) if isinstance(entry, Mapping) else entry, loc))
        check_item_values(raws[-1])  # what a file could not hold: before the run begins
    if not raws:
        raise DatasetError(f"dataset {name!r} has no items")
    items = assign_ids(raws, name)
    version = digest([item_content(item) for item in items])
    return Dataset(name=name, version=version, path=Path(f"<{name}>"), items=items)


def checked_dataset(dataset: Dataset) -> Dataset:
    """A `Dataset` given whole, checked as items given in code are (its name, values a file could
    not hold, duplicate ids, no items), with its items carrying its name (the run stores them
    under it); its version is kept."""
    checked = dataset_from_items(list(dataset.items), dataset.name)
    if not isinstance(dataset.version, str) or not dataset.version.strip():
        raise DatasetError(
            f"dataset {dataset.name!r}: version {dataset.version!r} is not a version; expected a "
            "non-empty string (a file's dataset has the digest of its content)"
        )
    return dataclasses.replace(dataset, items=checked.items)
