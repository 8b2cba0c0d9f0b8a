"""The examples in the docs run: every ```python block of docs/evaluators.md, as a real suite."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


def python_blocks(name: str) -> list[str]:
    return BLOCK.findall((DOCS / name).read_text(encoding="utf-8"))


def test_evaluator_reference_examples_pass(pytester: pytest.Pytester) -> None:
    blocks = python_blocks("evaluators.md")
    conftests = [b for b in blocks if b.startswith("# conftest.py")]
    tests = [b for b in blocks if not b.startswith("# conftest.py")]
    pytester.makeconftest("\n\n".join(conftests))
    pytester.makepyfile(**{f"test_doc_{i}": block for i, block in enumerate(tests)})
    expected = sum(len(re.findall(r"^def test_", block, re.MULTILINE)) for block in tests)
    assert expected >= 11  # one example per evaluator family at least

    result = pytester.runpytest("-p", "no:cacheprovider")

    result.assert_outcomes(passed=expected)
    result.stdout.fnmatch_lines(["*= llmobs experiment run =*"])
