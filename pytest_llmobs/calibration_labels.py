"""Reading the human labels of ``llmobs calibrate``: a CSV file read as strictly as a dataset's.

The header needs a ``label`` column and a key column: ``item_id`` (or ``id``, the dataset item
id) or ``node_id`` (the pytest node id); an optional ``dataset`` column names each row's dataset
(an empty cell: any). Other columns (notes) are allowed. A quoted cell never closed, a row with
more or fewer cells than the header, an empty or repeated header column, an empty key or label
and a second label for the same item are one-line errors naming the file and line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pytest_llmobs.csv_rows import csv_records
from pytest_llmobs.dataset_files import not_utf8

KEY_COLUMNS = ("item_id", "id", "node_id")
_TRUE = frozenset({"1", "true", "yes", "y", "pass", "passed", "good", "correct", "t"})
_FALSE = frozenset({"0", "false", "no", "n", "fail", "failed", "bad", "incorrect", "f"})
DATASET_COLUMN = "dataset"


class CalibrationError(ValueError):
    """The labels file or the score cannot be used; the message says which line or value."""


@dataclass(frozen=True, slots=True)
class HumanLabel:
    key: str
    label: str
    line: int
    dataset: str | None = None
    """The row's ``dataset`` cell; None without the column or with an empty cell."""

    @property
    def name(self) -> str:
        """How reports name the label: ``dataset/key`` when it names its dataset."""
        return self.key if self.dataset is None else f"{self.dataset}/{self.key}"


def read_labels(path: Path) -> tuple[str, list[HumanLabel]]:
    """The key column used and the labels of a CSV file."""
    header: list[str] | None = None
    key = ""
    labels: list[HumanLabel] = []
    first_line: dict[tuple[str | None, str], int] = {}
    for line, row in _csv_rows(path):
        if header is None:
            header = _header(row, path, line)
            key = next((k for k in KEY_COLUMNS if k in header), "")
            continue
        if len(row) != len(header):
            hint = "; an empty cell still needs its comma" if len(row) < len(header) else ""
            raise CalibrationError(
                f"{path}:{line}: row has {len(row)} cells but the header {len(header)}{hint}"
            )
        cells = {column: cell.strip() for column, cell in zip(header, row, strict=True)}
        if not cells[key] or not cells["label"]:
            raise CalibrationError(f"{path}:{line}: empty {key!r} or 'label'")
        label = HumanLabel(cells[key], cells["label"], line, cells.get(DATASET_COLUMN) or None)
        earlier = first_line.setdefault((label.dataset, label.key), line)
        if earlier != line:  # counted twice, two labels would weigh one item double
            raise CalibrationError(
                f"{path}:{line}: a second label for {key} {label.name!r} (the first is on "
                f"line {earlier}); give one label per item"
            )
        labels.append(label)
    if not labels:
        raise CalibrationError(f"{path}: no labels")
    return key, labels


def binary_label(value: str, where: str) -> bool:
    """A pass/fail label as a bool; ``where`` (``file:line``) starts the error for another."""
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise CalibrationError(
        f"{where}: label {value!r} is not pass/fail; use one of 1/0, true/false, yes/no, "
        "pass/fail, good/bad, correct/incorrect"
    )


def _header(row: list[str], path: Path, line: int) -> list[str]:
    header = [cell.strip() for cell in row]
    if "" in header or len(set(header)) < len(header):
        found = ", ".join(repr(column) for column in header)
        raise CalibrationError(f"{path}:{line}: CSV header has empty or repeated columns: {found}")
    if "label" not in header or not any(k in header for k in KEY_COLUMNS):
        raise CalibrationError(
            f"{path}:{line}: expected a 'label' column and one of {', '.join(KEY_COLUMNS)}; "
            f"got {', '.join(header)}"
        )
    return header


def _csv_rows(path: Path) -> list[tuple[int, list[str]]]:
    """The non-blank records of the file, each with the line it starts on."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CalibrationError(f"{path}: cannot read labels ({exc.strerror or exc})") from None
    try:
        text = data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        raise CalibrationError(not_utf8(path, data, exc)) from None
    records, error = csv_records(text)  # (strict, and cells of any length)
    if error is not None:
        line, problem = error
        raise CalibrationError(f"{path}:{line}: invalid CSV ({problem})")
    rows = [(line, row) for line, row in records if any(cell.strip() for cell in row)]
    if not rows:
        raise CalibrationError(
            f"{path}:1: expected a 'label' column and one of {', '.join(KEY_COLUMNS)}; "
            "got (no header)"
        )
    return rows
