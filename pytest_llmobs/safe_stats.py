"""Overflow-safe statistics of finite floats: mean, sum, sample standard deviation and
percentile, however large the values, with results clamped to the finite floats."""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence


def percentile(ordered: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0–100) of sorted values, interpolating linearly."""
    if not ordered:
        raise ValueError("percentile of no values")
    position = (len(ordered) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    gap = ordered[high] - ordered[low]
    if math.isinf(gap):  # two values near the float limit, of opposite signs
        return ordered[low] * (1 - (position - low)) + ordered[high] * (position - low)
    return ordered[low] + gap * (position - low)


LARGEST = sys.float_info.max
_LARGE = 2.0**400
"""Above this magnitude, sums of values and of squared deviations could overflow: such values
are scaled by a power of two first (exact), so that any finite scores aggregate."""


def overflow_scale(values: Sequence[float]) -> float:
    """A power of two bringing every value below 2 when some is beyond `_LARGE`, else 1."""
    top = max(max(values), -min(values)) if values else 0.0
    return 2.0 ** (math.frexp(top)[1] - 1) if top > _LARGE else 1.0


def clamp(value: float) -> float:
    """``value`` within the finite floats: an aggregate too large to represent (the spread of
    values near the float limit) is stored as the largest float, never as ``Infinity``, which
    JSON cannot hold."""
    return max(-LARGEST, min(LARGEST, value))


def mean_of(values: Sequence[float]) -> float:
    """The mean of finite ``values``, without overflow however large they are, and never
    outside their range: the division rounds a second time, and nine scores of 0.9 averaged
    0.8999999999999999, which failed ``mean >= 0.9`` beside ``min >= 0.9``."""
    scale = overflow_scale(values)
    mean = clamp(math.fsum(v / scale for v in values) / len(values) * scale)
    return min(max(mean, min(values)), max(values))


def total_of(values: Sequence[float]) -> float:
    """The sum of finite ``values``; a sum beyond the float limit is clamped to it."""
    scale = overflow_scale(values)
    return clamp(math.fsum(v / scale for v in values) * scale)


def variance_of(values: Sequence[float], mean: float) -> float:
    """The sample variance (0 for one value), without overflow; not `std_of` squared, which
    rounds twice (the variance of 1 and 0 read 0.5000000000000001)."""
    if len(values) < 2:
        return 0.0
    scale = overflow_scale(values)
    centre = mean / scale
    squares = math.fsum((v / scale - centre) ** 2 for v in values)
    return clamp(squares / (len(values) - 1) * scale * scale)


def std_of(values: Sequence[float], mean: float) -> float:
    """The sample standard deviation (0 for one value), without overflow."""
    if len(values) < 2:
        return 0.0
    scale = overflow_scale(values)
    centre = mean / scale
    squares = math.fsum((v / scale - centre) ** 2 for v in values)
    return clamp(math.sqrt(squares / (len(values) - 1)) * scale)
