"""The fixtures ``llm``, ``prompt``, ``scorer`` and ``dataset``, bound to one pytest config.

They are session-scoped and take no other fixture: pytest sets a function-scoped fixture up anew
for every test, and a fixture that asks for ``request`` makes pytest build a ``request`` fixture
definition for every test that uses it; either costs more per test than the fixtures' own work.
So `fixtures_plugin` closes over the config and returns the fixtures in a module object that
`pytest_configure` registers as a plugin (pytest reads fixtures from registered modules). What
is per test (prompts and datasets used) goes to the record of the running test
(`SessionState.current_record`).
"""

from __future__ import annotations

import types
import weakref
from typing import TYPE_CHECKING, Any

import pytest

from pytest_llmobs.stash import session_state

if TYPE_CHECKING:
    from pytest_llmobs.datasets import Dataset
    from pytest_llmobs.llm import LLM
    from pytest_llmobs.prompts import Prompt
    from pytest_llmobs.recording import TestRecord
    from pytest_llmobs.scorer import Scorer
    from pytest_llmobs.session import SessionState


def fixtures_plugin(config: pytest.Config) -> types.ModuleType:
    """A plugin module holding the plugin's fixtures for ``config``'s session."""

    @pytest.fixture(scope="session")
    def llm() -> LLM:
        """The session's model (``--llm-model``): ``llm.generate(prompt_or_messages, **params)``.

        Each call is recorded as a generation in the test's trace.
        """
        return session_state(config).llm

    @pytest.fixture(scope="session")
    def prompt() -> PromptLoader:
        """Load a prompt: ``prompt("support-agent")``, ``prompt(name, version=2)``, ``label=...``.

        ``.compile(**variables)`` fills ``{{variables}}``; generations from the compiled prompt
        link to its exact version.
        """
        return PromptLoader(session_state(config))

    @pytest.fixture(scope="session")
    def scorer() -> Scorer:
        """Record scores on the test's trace: ``scorer.score(name, value)``, and evaluators such as
        ``assert scorer.exact_match(output, expected)``, ``scorer.similarity(...) >= 0.8``,
        ``scorer.llm_judge("judge/correctness", output, input=..., reference=...)``."""
        from pytest_llmobs.scorer import Scorer

        state = session_state(config)
        return Scorer(
            judge=state.judge,
            prompts=state.prompts,
            registry=state.evaluators,
            on_prompt=state.use_prompt,
        )

    @pytest.fixture(scope="session")
    def dataset() -> DatasetLoader:
        """Load a dataset from the datasets dir: ``dataset("capital-cities-tutorial")``."""
        return DatasetLoader(session_state(config))

    holder = types.ModuleType("pytest_llmobs.fixtures", "The pytest-llmobs fixtures.")
    attributes: dict[str, Any] = {
        "llm": llm,
        "prompt": prompt,
        "scorer": scorer,
        "dataset": dataset,
    }
    for name, fixture in attributes.items():
        setattr(holder, name, fixture)
    return holder


class PromptLoader:
    """The ``prompt`` fixture's value: ``prompt(name, version=None, label=None)`` loads a prompt
    from the prompts directory and notes its version on the running test's record."""

    __slots__ = ("_state",)

    def __init__(self, state: SessionState) -> None:
        self._state = state

    def __call__(
        self, name: str, *, version: int | None = None, label: str | None = None
    ) -> Prompt:
        from pytest_llmobs.prompts import PromptError

        __tracebackhide__ = True
        try:
            loaded = self._state.prompts.get(name, version=version, label=label)
        except PromptError as exc:
            raise _at_the_call(exc) from None
        self._state.use_prompt(loaded)
        return loaded

    def __repr__(self) -> str:  # shown among a failed test's arguments
        return f"<prompt loader for {self._state.settings.prompts_dir}>"


class DatasetLoader:
    """The ``dataset`` fixture's value: ``dataset(name)`` loads a dataset from the datasets
    directory and notes its version on the running test's record.

    Each test gets a copy of the dataset's items of its own (`Dataset.fresh`; the same one for
    every call in that test), so that what one test changes in them no later test sees."""

    __slots__ = ("_given", "_given_to", "_state")

    def __init__(self, state: SessionState) -> None:
        self._state = state
        self._given: dict[str, Dataset] = {}
        self._given_to: weakref.ref[TestRecord] | None = None
        """The test the copies in ``_given`` are for."""

    def __call__(self, name: str) -> Dataset:
        from pytest_llmobs.datasets import DatasetError

        __tracebackhide__ = True
        state = self._state
        try:
            loaded = state.dataset(name)
        except DatasetError as exc:
            raise _at_the_call(exc) from None
        record = state.current_record
        if record is None:  # outside a test (a fixture's teardown): a copy per call
            return loaded.fresh()
        record.use_dataset(loaded.name, loaded.version)
        if self._given_to is None or self._given_to() is not record:
            self._given, self._given_to = {}, weakref.ref(record)
        given = self._given.get(loaded.name)
        if given is None:
            given = self._given[loaded.name] = loaded.fresh()
        return given

    def __repr__(self) -> str:  # shown among a failed test's arguments
        return f"<dataset loader for {self._state.settings.datasets_dir}>"


def _at_the_call(error: Exception) -> Exception:
    """``error`` without its traceback: its message names the file and line at fault, so the
    test's own call is all a failure needs to show (not the loader's frames, nor the JSON
    parser's error it was made from)."""
    return error.with_traceback(None)
