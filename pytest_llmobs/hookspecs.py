"""Hooks pytest-llmobs calls, for conftest files and other plugins to implement.

Registered from ``pytest_addhooks``; always called with keyword arguments.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pytest_llmobs.evaluators.custom import EvaluatorRegistry
    from pytest_llmobs.providers import ModelRegistry
    from pytest_llmobs.run_result import RunResult


@pytest.hookspec
def pytest_llmobs_register_models(registry: ModelRegistry, config: pytest.Config) -> None:
    """Add model providers to ``registry`` before the session's model is resolved.

    The model is resolved when the session starts: implement this in a plugin or in a conftest
    pytest loads first (the rootdir's, or one in a directory given on the command line).

    .. code-block:: python

        # conftest.py
        def pytest_llmobs_register_models(registry, config):
            registry.register("my-model", MyProvider.from_spec)
    """


@pytest.hookspec(historic=True)
def pytest_llmobs_register_evaluators(registry: EvaluatorRegistry, config: pytest.Config) -> None:
    """Add item evaluators (``scorer.<name>``) and run evaluators (aggregates) to ``registry``.

    Called when the session starts, and for a conftest pytest loads later (one in a directory
    below those given on the command line) when it loads it, before its tests run.

    .. code-block:: python

        # conftest.py
        import pytest_llmobs

        @pytest_llmobs.evaluator(threshold=0.5)
        def politeness(output):
            return 1.0 if "please" in output.lower() else 0.0

        @pytest_llmobs.run_evaluator
        def long_answer_rate(items):
            outputs = [str(i["trace"]["observations"][0]["output"] or "") for i in items]
            return sum(len(o) > 200 for o in outputs) / max(len(outputs), 1)

        def pytest_llmobs_register_evaluators(registry, config):
            registry.add(politeness)
            registry.add_run(long_answer_rate)
    """


@pytest.hookspec(historic=True)
def pytest_llmobs_register_maskers(config: pytest.Config) -> list[Callable[[str], str]] | None:
    """Return extra maskers (``str -> str``) applied after the built-in ones, before storing.

    Called when the session starts, and for a conftest pytest loads later when it loads it:
    collection loads every conftest of the tests it collects before any test runs.

    .. code-block:: python

        # conftest.py
        import re

        def pytest_llmobs_register_maskers(config):
            return [lambda text: re.sub(r"CUST-\\d+", "<CUSTOMER>", text)]
    """


@pytest.hookspec
def pytest_llmobs_run_finished(result: RunResult, config: pytest.Config) -> None:
    """Called once the run's aggregates and thresholds are known and the run is stored.

    .. code-block:: python

        # conftest.py
        def pytest_llmobs_run_finished(result, config):
            print(result.run_id, result.status, result.aggregates["*"]["pass_rate"].value)
    """
