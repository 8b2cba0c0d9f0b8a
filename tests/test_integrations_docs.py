"""The examples in docs/integrations.md run: every ```python block, as a real suite, the OpenAI
ones against the local OpenAI-compatible server."""

from __future__ import annotations

import importlib
import re
from typing import TYPE_CHECKING

import pytest
from fake_openai import FakeOpenAI, fake_openai, openai_env, openai_sdk_loaded
from test_docs import python_blocks

if TYPE_CHECKING:
    from conftest import Runs

__all__ = ["fake_openai", "openai_env", "openai_sdk_loaded"]  # fixtures, from fake_openai
pytestmark = pytest.mark.usefixtures("openai_sdk_loaded")

# What the examples import, loaded here rather than first inside the in-process session, which
# would drop it again when it ends (and pay for importing LangChain in every session).
for _module in (
    "langchain_core.output_parsers",
    "langchain_core.prompts",
    "pytest_llmobs.integrations.langchain_model",
    "pytest_llmobs.integrations.openai",
):
    importlib.import_module(_module)


def test_integration_examples_pass_and_record_their_generations(
    pytester: pytest.Pytester, runs: Runs, openai_env: FakeOpenAI
) -> None:
    blocks = python_blocks("integrations.md")
    conftests = [b for b in blocks if b.startswith("# conftest.py")]
    tests = [b for b in blocks if not b.startswith("# conftest.py")]
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makeconftest("\n\n".join(conftests))
    pytester.makepyfile(**{f"test_doc_{i}": block for i, block in enumerate(tests)})
    expected = sum(len(re.findall(r"^def test_", block, re.MULTILINE)) for block in tests)
    assert expected >= 4  # the handler, as_langchain, a completion and a stream at least

    result = pytester.runpytest("-p", "no:cacheprovider")

    result.assert_outcomes(passed=expected)
    generations = {
        item["node_id"].split("::")[1]: [
            (o["name"], o["model"])
            for o in item["trace"]["observations"]
            if o["type"] == "generation"
        ]
        for item in runs.latest()["items"]
    }
    assert generations == {
        "test_capital_chain": [("LLMObsChatModel", "mock-llm-v1")],
        "test_model_without_handler": [("LLMObsChatModel", "mock-llm-v1")],
        "test_reply": [("openai.chat.completions.create", "gpt-4o-mini")],
        "test_streamed_reply": [("openai.chat.completions.create", "gpt-4o-mini")],
    }
    assert openai_env.request_count == 2
