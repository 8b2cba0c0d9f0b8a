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


PLAIN = {"–": "-", "—": "-", "…": "...", "→": "->", "↓": "v", "✓": "v", "✗": "x"}
PLAIN |= {"✅": "[ok]", "❌": "[x]", "⚠": "[!]", "\ufe0f": ""}  # (⚠️ is the sign and a selector)
PLAIN |= {"🔴": "[-]", "🟢": "[+]", "⚪": "[=]"}  # (a comparison's verdicts, in markdown)
"""The ASCII a stream gets for a mark of ours its encoding lacks (cp437, cp1252, ascii)."""


def plain(text: str) -> str:
    """``text``'s marks as `PLAIN` ASCII, any other character outside ASCII as its backslash
    escape (``\\u0416``): what an output stream that cannot encode them gets."""
    return "".join(PLAIN.get(c, c.encode("ascii", "backslashreplace").decode()) for c in text)


def encodable(text: str, encoding: str | None, errors: str = "strict") -> str:
    """``text`` as it is when ``encoding`` can write it (with the error handler ``errors``:
    ``surrogateescape`` keeps an undecodable byte read into a name); otherwise each character
    it cannot write is given as `plain` gives it (an unknown encoding is taken for UTF-8)."""
    encoding = encoding or "utf-8"
    try:
        text.encode(encoding, errors)
    except LookupError:
        return text
    except UnicodeEncodeError:
        return "".join(c if _writes(c, encoding, errors) else plain(c) for c in text)
    return text


def _writes(char: str, encoding: str, errors: str) -> bool:
    try:
        char.encode(encoding, errors)
    except UnicodeEncodeError:
        return False
    return True
