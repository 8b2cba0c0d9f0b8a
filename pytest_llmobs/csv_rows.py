"""CSV text read into records, each with the line it starts on, whatever the length of a cell.

Python's CSV reader refuses a cell longer than ``csv.field_size_limit()`` (131,072 characters by
default), a limit shared by the whole process. A dataset cell holding a long RAG context is not
a mistake, so the limit is raised to the text's length for the read alone and put back after
it: code elsewhere in the process (the user's) keeps the limit it set. No cell can be longer
than the text, so no text is refused for its length.
"""

from __future__ import annotations

import csv
import io
import threading
from typing import NamedTuple

_LIMIT_LOCK = threading.Lock()
"""Held while a read may raise the process-wide limit: two reads never restore each other's."""
_LARGEST_LIMIT = 2**31 - 1  # the limit is a C long: 32 bits on Windows


class CsvRecords(NamedTuple):
    rows: list[tuple[int, list[str]]]
    """Each record read, with the physical line it starts on (blank lines included, as ``[]``)."""
    error: tuple[int, str] | None
    """The line and problem that stopped the reading (records after it unread), else None."""


def csv_records(text: str) -> CsvRecords:
    """The records of CSV ``text``, read strictly: a quote never closed is an error, not a cell
    that swallows the rest of the file."""
    with _LIMIT_LOCK:
        previous = csv.field_size_limit()
        if len(text) < previous:
            return _read(text)
        csv.field_size_limit(min(len(text) + 1, _LARGEST_LIMIT))
        try:
            return _read(text)
        finally:
            csv.field_size_limit(previous)


def _read(text: str) -> CsvRecords:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows = []
    end = 0  # physical line on which the previous record ended
    try:
        for row in reader:
            rows.append((end + 1, row))
            end = reader.line_num
    except csv.Error as exc:
        if "unexpected end of data" in str(exc):  # the record began after the previous one
            return CsvRecords(rows, (end + 1, "a quoted cell opened on this line is never closed"))
        return CsvRecords(rows, (reader.line_num, str(exc)))
    return CsvRecords(rows, None)
