"""Integrations that trace code built on other libraries into the current test's trace.

- `pytest_llmobs.integrations.langchain`: ``CallbackHandler`` for LangChain runs (extra
  ``[langchain]``), and the chat model behind ``llm.as_langchain()``;
- `pytest_llmobs.integrations.openai`: ``instrument(client)`` for ``openai.OpenAI`` and
  ``openai.AsyncOpenAI`` clients (extra ``[openai]``).

Nothing here is imported by ``import pytest_llmobs`` or by the plugin: each module imports its
library when it is imported itself, and says which extra to install when the library is missing.
"""

from __future__ import annotations

__all__ = ["missing_extra"]


def missing_extra(feature: str, package: str, extra: str) -> ImportError:
    """The error raised when ``feature`` needs ``package``, which ``extra`` installs."""
    return ImportError(
        f"{feature} needs {package}, which is not installed: pip install 'pytest-llmobs[{extra}]'"
    )
