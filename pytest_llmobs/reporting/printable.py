"""User-derived text (score values, dataset item ids, prompt text, labels) made safe to print on
a terminal: an escape sequence could otherwise move the cursor, rewrite earlier lines or hide
what follows (a threshold failure, say)."""

from __future__ import annotations


def printable(text: str) -> str:
    """``text`` with each control or invisible character shown as its Python escape: ESC as
    ``\\x1b``, CR as ``\\r``, a newline as ``\\n``, NUL as ``\\x00``, a right-to-left override
    as ``\\u202e``. The result is all printable, so escaping it again changes nothing."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
