"""Hooks pytest-llmobs calls, for conftest files and other plugins to implement.

Registered from ``pytest_addhooks``; always called with keyword arguments.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pytest_llmobs.providers import ModelRegistry
    from pytest_llmobs.run import RunResult


@pytest.hookspec
def pytest_llmobs_register_models(registry: ModelRegistry, config: pytest.Config) -> None:
    """Add model providers to ``registry`` before the session's model is resolved.

    .. code-block:: python

        # conftest.py
        def pytest_llmobs_register_models(registry, config):
            registry.register("my-model", MyProvider.from_spec)
    """


@pytest.hookspec
def pytest_llmobs_run_finished(result: RunResult, config: pytest.Config) -> None:
    """Called once the run's aggregates and thresholds are known and the run is stored.

    .. code-block:: python

        # conftest.py
        def pytest_llmobs_run_finished(result, config):
            print(result.run_id, result.status, result.aggregates["*"]["pass_rate"].value)
    """
