"""How ``llmobs`` subcommands print and write: tables padded to their columns, a cell escaped
and cut to fit, and the ``-o`` file checked before the command works (never the store's database
nor a file the command reads), then written.
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from pytest_llmobs.cli_common import CliError
from pytest_llmobs.reporting.printable import encodable, printable
from pytest_llmobs.store_files import store_holding


def print_table(rows: Sequence[Sequence[str]], out: TextIO) -> None:
    """Rows as columns padded to their widest cell, as a terminal draws them (`width`); a
    cell ``out``'s encoding cannot write is padded as it will be written (``\\u6771``)."""
    encoding = getattr(out, "encoding", None)
    rows = [[encodable(cell, encoding, "surrogateescape") for cell in row] for row in rows]
    widths = [max(width(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = (cell + " " * (w - width(cell)) for cell, w in zip(row, widths, strict=True))
        print("  ".join(cells).rstrip(), file=out)


def width(text: str) -> int:
    """The columns ``text`` takes on a terminal: two for a wide character (CJK, most emoji:
    East Asian Width W or F), none for a combining mark or a zero-width one, one otherwise."""
    return sum(_columns(c) for c in text)


def _columns(char: str) -> int:
    if unicodedata.east_asian_width(char) in ("W", "F"):
        return 2
    if unicodedata.combining(char) or unicodedata.category(char) in ("Mn", "Me", "Cf"):
        return 0
    return 1


CELL_WIDTH = 48
"""The widest a name is shown in a table; longer ones end in '…' (`llmobs show` has it all)."""


def table_cell(text: str) -> str:
    """``text`` for one table cell: a newline, tab or other control character is shown
    escaped (``\\n``), as the terminal summary shows the run name, so it cannot break the row;
    past `CELL_WIDTH` columns (`width`) it is cut, ending in '…'."""
    shown = printable(text)
    if width(shown) <= CELL_WIDTH:
        return shown
    kept, used = [], 0
    for char in shown:
        used += _columns(char)
        if used > CELL_WIDTH - 1:
            break
        kept.append(char)
    return "".join(kept) + "…"


def check_output(value: str, inputs: Sequence[str] = ()) -> Path:
    """``-o``'s path when a file can be written there: a directory, a place under a file, a
    store's database (writing there would lose every run) or one of the command's ``inputs``
    (files it reads) is a `CliError`. Nothing is created yet (the command may still fail)."""
    path = Path(value)
    if path.is_dir():
        raise CliError(f"-o {value}: is a directory; give a file name")
    if os.path.basename(value) in ("", ".", ".."):  # Path("out/") is "out": it would be a file
        raise CliError(f"-o {value}: names a directory; give a file name")
    try:  # (through symlinks, and `..`: what would really be overwritten)
        target = path.resolve()
    except (OSError, RuntimeError):  # (a symlink loop: then no store's file either)
        target = path.absolute()
    store = store_holding(target)
    if store is not None:
        raise CliError(
            f"-o {value}: is {target}, part of the llmobs store in {store}; writing "
            "there would destroy its runs; give another file name"
        )
    for source in inputs:
        if path.exists() and Path(source).exists() and os.path.samefile(path, source):
            raise CliError(
                f"-o {value}: is also an input of the command ({source}); writing there would "
                "replace it; give another file name"
            )
    if path.exists():
        if not os.access(path, os.W_OK):
            raise CliError(f"-o {value}: the file is not writable")
        return path
    for parent in path.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise CliError(f"-o {value}: {parent} is a file, not a directory")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise CliError(f"-o {value}: cannot create a file in {parent} (not writable)")
            break
    return path


def writable_output(value: str) -> Path:
    """``-o``'s path, its directory created; a directory or an unwritable place is a
    `CliError` (raised before the command does anything that cannot be undone)."""
    path = check_output(value)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CliError(f"-o {value}: cannot create its directory ({exc})") from None
    return path


def write_output(value: str, text: str) -> None:
    """Write ``-o``'s file; a failure (a full disk) is a `CliError`, not a traceback."""
    path = writable_output(value)
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror or exc}") from None
