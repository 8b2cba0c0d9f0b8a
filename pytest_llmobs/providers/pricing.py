"""Cost estimates: USD per million input and output tokens, per model.

The built-in table holds list prices of common OpenAI chat models (standard tier, no cached-input
discount). Prices change: override or extend them with a JSON file ``{model: {"input": x,
"output": y}}`` named by ``--llm-prices`` (ini ``llm_prices``) or the ``LLMOBS_PRICES``
environment variable. A model the table does not know costs ``None`` (unknown), never 0.
A dated snapshot (``gpt-4o-mini-2024-07-18``) is priced as its base model when it has no row.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_llmobs.providers.base import Usage

__all__ = ["BUILTIN_PRICES", "PRICES_ENV", "Price", "PriceError", "PriceTable"]

PRICES_ENV = "LLMOBS_PRICES"
"""Environment variable naming a JSON price file (``--llm-prices`` wins over it)."""

_SNAPSHOT = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{4})$")


class PriceError(ValueError):
    """A price file is missing, not JSON, or holds a malformed entry."""


@dataclass(slots=True, frozen=True)
class Price:
    """USD per one million tokens."""

    input: float
    output: float

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.input + output_tokens * self.output) / 1_000_000


BUILTIN_PRICES: Mapping[str, Price] = {
    "gpt-4o": Price(2.50, 10.00),
    "gpt-4o-mini": Price(0.15, 0.60),
    "gpt-4.1": Price(2.00, 8.00),
    "gpt-4.1-mini": Price(0.40, 1.60),
    "gpt-4.1-nano": Price(0.10, 0.40),
    "gpt-4-turbo": Price(10.00, 30.00),
    "gpt-4": Price(30.00, 60.00),
    "gpt-3.5-turbo": Price(0.50, 1.50),
    "gpt-5": Price(1.25, 10.00),
    "gpt-5-mini": Price(0.25, 2.00),
    "gpt-5-nano": Price(0.05, 0.40),
    "o1": Price(15.00, 60.00),
    "o1-mini": Price(1.10, 4.40),
    "o3": Price(2.00, 8.00),
    "o3-mini": Price(1.10, 4.40),
    "o4-mini": Price(1.10, 4.40),
}
"""List prices (USD per 1M tokens) of common OpenAI models; check them against the vendor's."""


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PriceError(f"{where}: expected a number >= 0; got {value!r}")
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise PriceError(f"{where}: expected a number >= 0; got {value!r}")
    return number


class PriceTable:
    """Model name → `Price`; ``cost(model, input, output)`` is None for an unknown model."""

    __slots__ = ("_prices",)

    def __init__(self, prices: Mapping[str, Price] | None = None) -> None:
        self._prices: dict[str, Price] = dict(BUILTIN_PRICES if prices is None else prices)

    @classmethod
    def default(
        cls, *, path: Path | None = None, env: Mapping[str, str] | None = None
    ) -> PriceTable:
        """The built-in prices, then the file in ``LLMOBS_PRICES``, then ``path`` on top."""
        table = cls()
        environ = os.environ if env is None else env
        from_env = environ.get(PRICES_ENV, "").strip()
        if from_env:
            table = table.merged(load_prices(Path(from_env), source=PRICES_ENV))
        if path is not None:
            table = table.merged(load_prices(path, source="--llm-prices"))
        return table

    def merged(self, other: Mapping[str, Price]) -> PriceTable:
        return PriceTable({**self._prices, **other})

    def get(self, model: str) -> Price | None:
        price = self._prices.get(model)
        if price is None:
            base = _SNAPSHOT.sub("", model)
            price = self._prices.get(base) if base != model else None
        return price

    def __contains__(self, model: object) -> bool:
        return isinstance(model, str) and self.get(model) is not None

    def cost(self, model: str, input_tokens: int, output_tokens: int) -> float | None:
        price = self.get(model)
        return None if price is None else price.cost(input_tokens, output_tokens)

    def price(self, *models: str, usage: Usage) -> float | None:
        """The cost of ``usage`` at the first of ``models`` the table knows, else None."""
        for model in models:
            price = self.get(model)
            if price is not None:
                return price.cost(usage.input, usage.output)
        return None

    def __repr__(self) -> str:
        return f"PriceTable({len(self._prices)} models)"


def load_prices(path: Path, *, source: str = "price file") -> dict[str, Price]:
    """Read ``{model: {"input": x, "output": y}}`` (USD per 1M tokens) from ``path``; a model
    (or a field of one) given twice is a `PriceError`, as the last would silently win."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PriceError(f"{source}: cannot read {str(path)!r}: {exc.strerror or exc}") from None
    given_twice: list[tuple[str, dict[str, Any]]] = []  # (key, the object it is in)

    def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(pairs)
        if len(obj) < len(pairs):
            keys = [key for key, _ in pairs]
            given_twice.append((next(k for k in keys if keys.count(k) > 1), obj))
        return obj

    try:
        data = json.loads(text, object_pairs_hook=unique_keys)
    except json.JSONDecodeError as exc:
        from pytest_llmobs.dataset_files import json_problem

        raise PriceError(
            f"{source}: {str(path)!r} is not valid JSON (line {exc.lineno}: {json_problem(exc)})"
        ) from None
    if not isinstance(data, dict):
        raise PriceError(
            f"{source}: {str(path)!r} must hold an object "
            '{"model": {"input": x, "output": y}}; got ' + type(data).__name__
        )
    twice = {id(obj): key for key, obj in given_twice}
    if id(data) in twice:
        raise PriceError(
            f"{source}: {str(path)!r}: model {twice[id(data)]!r} is given twice (JSON would "
            "keep the last price silently); keep one"
        )
    prices: dict[str, Price] = {}
    for model, entry in data.items():
        where = f"{source}: {str(path)!r}: model {model!r}"
        if id(entry) in twice:
            raise PriceError(f"{where}: {twice[id(entry)]!r} is given twice; keep one")
        if not isinstance(entry, dict) or set(entry) != {"input", "output"}:
            raise PriceError(
                f'{where}: expected {{"input": <USD per 1M>, "output": <USD per 1M>}}; '
                f"got {entry!r}"
            )
        prices[model] = Price(
            _number(entry["input"], f"{where} input"), _number(entry["output"], f"{where} output")
        )
    return prices
