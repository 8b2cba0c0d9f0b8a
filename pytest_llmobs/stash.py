"""Where the session's state lives on the pytest config, and building it on first use.

Nothing heavy is imported here: a session that never needs the plugin (``pytest --co`` on a
suite without its fixtures or markers, ``--fixtures``, ``--markers``) builds no state, opens no
store and imports neither the model providers nor pydantic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pytest_llmobs.baselines import Baseline
    from pytest_llmobs.session import SessionState

STATE_KEY: pytest.StashKey[SessionState] = pytest.StashKey()
BASELINE_KEY: pytest.StashKey[Baseline] = pytest.StashKey()
"""The resolved ``--llm-baseline``, when one was given."""

WORKER_RUN_ID = "llmobs_run_id"
"""Key of the controller's run id in an xdist worker's ``workerinput``."""


def is_xdist_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def session_state(config: pytest.Config) -> SessionState:
    """The session's state, built on first use (options checked, store opened, model resolved).

    A bad option raises `pytest.UsageError` from here.
    """
    state = config.stash.get(STATE_KEY, None)
    if state is None:
        from pytest_llmobs.configure import build_state

        state = build_state(config)
        config.stash[STATE_KEY] = state
    return state


def built_state(config: pytest.Config) -> SessionState | None:
    """The session's state if something has needed it yet, else ``None``."""
    return config.stash.get(STATE_KEY, None)
