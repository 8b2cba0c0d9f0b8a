"""Escaping and formatting shared by the HTML report's sections.

Everything that reaches the page from a run (test ids, inputs, outputs, score values, error
messages) is untrusted text: it goes through `esc`, which escapes quotes as well, so the result
is safe both between tags and inside attribute values. Control characters and bidi controls are
shown as escapes (``\\x00``, ``\\u202e``), as on the terminal: the HTML parser drops a NUL, and a
bidi override would make the text around it read in another order.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import math
import re

from pytest_llmobs.reporting.figures import format_number
from pytest_llmobs.reporting.printable import printable

MAX_TEXT_CHARS = 20_000
"""Longest value shown in full in a trace; longer ones are cut, with a note saying so."""

OUTCOMES = ("passed", "failed", "error", "skipped")

_HIDDEN = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]+"
)
"""C0 and C1 control characters but tab, newline and carriage return (layout the page keeps),
and the bidi controls (Unicode's Bidi_Control property)."""

_BLANKS = re.compile(r"[^\S\x0b\x0c\x1c-\x1f\x85]+")
"""Whitespace that `short` folds into one space: not the control characters Python also counts
as whitespace, which `esc` shows as escapes instead."""


def esc(value: object) -> str:
    """``value`` as text, escaped for HTML content and (double- or single-quoted) attributes,
    each control or bidi control character written as its escape (``\\x00``, ``\\u202e``)."""
    text = value if isinstance(value, str) else str(value)
    return html.escape(_HIDDEN.sub(lambda m: printable(m.group()), text), quote=True)


def marked(value: object) -> str:
    """``value`` escaped as `esc` does, for element content only (not attributes, ``<title>``
    or SVG): the escapes of control and bidi control characters are set apart in a
    ``<span class="esc">``, so they cannot be mistaken for a backslash typed in the text."""
    text = html.escape(value if isinstance(value, str) else str(value), quote=True)
    return _HIDDEN.sub(lambda m: f'<span class="esc">{printable(m.group())}</span>', text)


def number(value: object, *, digits: int = 3) -> str:
    """A number the way people read it, as the terminal writes it (`figures.format_number`):
    integers plain, others with ``digits`` decimals, past 1e12 with an exponent."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if not isinstance(value, int | float):
        return "n/a" if value is None else str(value)
    return format_number(value, digits)


def compact(value: float) -> str:
    """A number in at most four significant digits (axis ticks, bin edges): ``0.3``, ``146``."""
    return f"{value:.4g}"


def percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def duration(seconds: float | None) -> str:
    """``0.4 ms``, ``12 ms``, ``1.25 s``, ``3 min 5 s``."""
    if seconds is None or not math.isfinite(seconds):
        return "–"
    if seconds < 0.01:
        return f"{seconds * 1000:.1f} ms"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.2f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s"


def timestamp(value: object) -> str:
    """A Unix time as local date and time with its UTC offset."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "–"
    try:
        moment = dt.datetime.fromtimestamp(float(value)).astimezone()
    except (OverflowError, OSError, ValueError):
        return "–"
    return moment.strftime("%Y-%m-%d %H:%M:%S %z")


def score_value(value: object) -> str:
    """A score's value as shown in chips and JUnit properties (booleans as true/false)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return number(value)
    return str(value)


def as_text(value: object) -> str:
    """A recorded value (string, list, dict...) as readable text: strings as they are, other
    values as indented JSON."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, indent=2, sort_keys=False, default=str)
    except (TypeError, ValueError):
        return repr(value)


def clipped(text: str, limit: int = MAX_TEXT_CHARS) -> str:
    """``text`` escaped as `marked` does, cut at ``limit`` characters with a visible note when
    longer."""
    if len(text) <= limit:
        return marked(text)
    hidden = len(text) - limit
    return f'{marked(text[:limit])}<span class="cut">… {hidden:,} more characters not shown</span>'


def short(text: str, limit: int) -> str:
    """``text`` on one line, at most ``limit`` characters (not escaped)."""
    flat = _BLANKS.sub(" ", text).strip(" ")
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
