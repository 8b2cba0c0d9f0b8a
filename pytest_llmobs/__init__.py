"""pytest-llmobs: every pytest session becomes a traced, scored experiment run that gates CI.

Public names are imported lazily, so loading the plugin costs little in suites that do not use it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "Dataset": "pytest_llmobs.datasets",
    "DatasetError": "pytest_llmobs.datasets",
    "DatasetItem": "pytest_llmobs.datasets",
    "EvalResult": "pytest_llmobs.evaluators",
    "evaluator": "pytest_llmobs.evaluators.custom",
    "run_evaluator": "pytest_llmobs.evaluators.custom",
    "EvaluatorRegistry": "pytest_llmobs.evaluators.custom",
    "JudgeError": "pytest_llmobs.evaluators.judge",
    "ExperimentItem": "pytest_llmobs.experiment",
    "ExperimentResult": "pytest_llmobs.experiment",
    "arun_experiment": "pytest_llmobs.experiment",
    "run_experiment": "pytest_llmobs.experiment",
    "LLM": "pytest_llmobs.llm",
    "LLMResult": "pytest_llmobs.llm",
    "CompiledPrompt": "pytest_llmobs.prompts",
    "Prompt": "pytest_llmobs.prompts",
    "PromptError": "pytest_llmobs.prompts",
    "PromptVariableError": "pytest_llmobs.prompts",
    "Provider": "pytest_llmobs.providers.base",
    "ProviderError": "pytest_llmobs.providers.base",
    "Scorer": "pytest_llmobs.scorer",
    "Observation": "pytest_llmobs.trace_model",
    "Score": "pytest_llmobs.score_model",
    "ScoreError": "pytest_llmobs.score_model",
    "Span": "pytest_llmobs.trace_model",
    "Trace": "pytest_llmobs.trace_model",
    "current_observation": "pytest_llmobs.tracing",
    "current_trace": "pytest_llmobs.tracing",
    "observe": "pytest_llmobs.observe_decorator",
    "propagate_attributes": "pytest_llmobs.tracing",
    "start_span": "pytest_llmobs.tracing",
}

__all__ = [
    "LLM",
    "CompiledPrompt",
    "Dataset",
    "DatasetError",
    "DatasetItem",
    "EvalResult",
    "EvaluatorRegistry",
    "ExperimentItem",
    "ExperimentResult",
    "JudgeError",
    "LLMResult",
    "Observation",
    "Prompt",
    "PromptError",
    "PromptVariableError",
    "Provider",
    "ProviderError",
    "Score",
    "ScoreError",
    "Scorer",
    "Span",
    "Trace",
    "__version__",
    "arun_experiment",
    "current_observation",
    "current_trace",
    "evaluator",
    "observe",
    "propagate_attributes",
    "run_evaluator",
    "run_experiment",
    "start_span",
]


def __dir__() -> list[str]:
    """The public names too (loaded lazily, so not in the module's dict), for completion."""
    return sorted({*globals(), *__all__})


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pytest_llmobs' has no attribute {name!r}")
    # Not cached in globals(): pytester's in-process runs drop and re-import our modules, and a
    # cached name would keep pointing into the dropped copy.
    return getattr(importlib.import_module(module), name)


if TYPE_CHECKING:
    from pytest_llmobs.datasets import Dataset, DatasetError, DatasetItem
    from pytest_llmobs.evaluators import EvalResult
    from pytest_llmobs.evaluators.custom import EvaluatorRegistry, evaluator, run_evaluator
    from pytest_llmobs.evaluators.judge import JudgeError
    from pytest_llmobs.experiment import (
        ExperimentItem,
        ExperimentResult,
        arun_experiment,
        run_experiment,
    )
    from pytest_llmobs.llm import LLM, LLMResult
    from pytest_llmobs.observe_decorator import observe
    from pytest_llmobs.prompts import CompiledPrompt, Prompt, PromptError, PromptVariableError
    from pytest_llmobs.providers.base import Provider, ProviderError
    from pytest_llmobs.score_model import Score, ScoreError
    from pytest_llmobs.scorer import Scorer
    from pytest_llmobs.trace_model import Observation, Span, Trace
    from pytest_llmobs.tracing import (
        current_observation,
        current_trace,
        propagate_attributes,
        start_span,
    )
