"""How every report writes a figure: the terminal summary, ``llmobs`` and the HTML report
share these, so one run reads the same in each."""

from __future__ import annotations

import math

from pytest_llmobs.thresholds import Threshold, holds

LARGE = 1e12
"""From here on a figure is written with four significant digits and an exponent: a score of
1e300 would otherwise print 300 digits."""


def fixed(value: float, digits: int = 3, *, signed: bool = False) -> str:
    """``value`` with ``digits`` decimals (``+`` before a positive one when ``signed``); past
    `LARGE`, four significant digits with an exponent (``2e+300``)."""
    sign = "+" if signed else ""
    return f"{value:{sign}.{digits}f}" if abs(value) < LARGE else f"{value:{sign}.4g}"


def signed_change(value: float) -> str:
    """A change with its sign: ``+0.020``, ``-0.350``, ``+3``, ``+2e+300``; one that is not 0
    never reads as 0 (``-0.0004``, as `compare.model.fmt_signed` writes it)."""
    from pytest_llmobs.compare.model import fmt_signed  # (the terminal summary loads none)

    if math.isfinite(value) and value == int(value) and abs(value) < LARGE:
        return f"{int(value):+d}" if value else "0"
    return fmt_signed(value) if abs(value) < LARGE else fixed(value, signed=True)


def format_number(value: float | None, digits: int = 3) -> str:
    """Integers plain, other numbers as `fixed` writes them, ``None`` as ``n/a``."""
    if value is None:
        return "n/a"
    if math.isfinite(value) and value == int(value) and abs(value) < LARGE:
        return str(int(value))
    return fixed(value, digits)


def observed_figure(threshold: Threshold, observed: float, passed: bool) -> str:
    """What a threshold's verdict shows it observed: as `format_number` writes it, unless that
    rounded figure would meet the threshold the other way (0.5476 shown as 0.548 failing
    ``>= 0.548``); then every digit (``repr``)."""
    shown = format_number(observed)
    return repr(observed) if holds(threshold, float(shown)) != passed else shown
