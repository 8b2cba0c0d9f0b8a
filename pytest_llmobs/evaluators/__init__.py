"""Item-level evaluators: functions that judge one output and return an `EvalResult`."""

from __future__ import annotations

from pytest_llmobs.evaluators.base import EvalResult
from pytest_llmobs.evaluators.basic import char_length, exact_match

__all__ = ["EvalResult", "char_length", "exact_match"]
