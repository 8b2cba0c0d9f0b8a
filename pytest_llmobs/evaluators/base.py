"""The value every evaluator returns: truthy when it passes, comparable with numbers."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any


def _number(other: object) -> float:
    if isinstance(other, EvalResult):
        return float(other.value)
    if isinstance(other, (int, float)):
        return float(other)
    raise TypeError(f"cannot compare an evaluator result with {type(other).__name__}")


@functools.total_ordering
@dataclass(frozen=True, slots=True, eq=False)
class EvalResult:
    """An evaluator's verdict on one output.

    ``bool(result)`` is ``result.passed``, so ``assert scorer.exact_match(a, b)`` works, and
    comparisons use ``result.value``, so ``assert scorer.fuzzy(a, b) >= 0.8`` works, as do
    ``round(result, 2)`` and ``result == pytest.approx(0.9)`` (the result on the left: an
    ``approx`` on the left sees no number; write ``float(result)`` there). The ``repr`` is what
    pytest prints when an assertion fails: name, verdict, value and reason.
    """

    name: str
    value: float | bool | str
    passed: bool
    reason: str = ""

    def __bool__(self) -> bool:
        return self.passed

    def __float__(self) -> float:
        return float(self.value)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str):  # categorical results (labels) compare by value
            return isinstance(self.value, str) and self.value == other
        if isinstance(other, (int, float, EvalResult)):
            return _number(self) == _number(other)
        # anything else (pytest.approx, Decimal, a numpy integer) sees the value: `approx`
        # compares only what it takes for a number
        return self.value == other

    def __round__(self, ndigits: int | None = None) -> float | int:
        """``round(result, n)``: the value rounded; a `TypeError` for a categorical result."""
        if isinstance(self.value, str):
            raise TypeError(
                f"cannot round the result of {self.name}: its value {self.value!r} is not a number"
            )
        return round(self.value, ndigits)

    def __lt__(self, other: Any) -> bool:
        return _number(self) < _number(other)

    def __hash__(self) -> int:
        return hash((self.name, self.value, self.passed, self.reason))

    def __repr__(self) -> str:
        verdict = "passed" if self.passed else "FAILED"
        value = self.value if not isinstance(self.value, float) else round(self.value, 4)
        reason = f": {self.reason}" if self.reason else ""
        return f"<{self.name} {verdict} value={value!r}{reason}>"
