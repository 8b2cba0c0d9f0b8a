"""The integrations' libraries are optional: nothing else imports them, and an integration used
without its library says which extra installs it."""

from __future__ import annotations

import re
from textwrap import dedent

import pytest

INI = "[pytest]\nasyncio_default_fixture_loop_scope = function\n"

HIDE = """\
    import sys

    class Hide:
        \"\"\"Makes {packages} look uninstalled.\"\"\"

        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in {packages!r}:
                raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
            return None

    sys.meta_path.insert(0, Hide())
    """


def hiding_conftest(*packages: str) -> str:
    """A conftest.py making ``packages`` unimportable in the session that loads it (run it in a
    subprocess: modules imported before it still resolve)."""
    return dedent(HIDE.format(packages=packages))


def test_as_langchain_without_langchain_core_says_which_extra_to_install(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(hiding_conftest("langchain_core"))
    pytester.makeini(INI)
    pytester.makepyfile("def test_app(llm):\n    llm.as_langchain()\n")

    result = pytester.runpytest_subprocess()

    result.assert_outcomes(failed=1)
    message = (
        "llm.as_langchain() needs langchain-core, which is not installed: "
        "pip install 'pytest-llmobs[langchain]'"
    )
    result.stdout.re_match_lines([rf"E +ImportError: {re.escape(message)}$"])


@pytest.mark.parametrize(
    ("module", "package", "message"),
    [
        (
            "pytest_llmobs.integrations.langchain",
            "langchain_core",
            "the LangChain integration needs langchain-core, which is not installed: "
            "pip install 'pytest-llmobs[langchain]'",
        ),
        (
            "pytest_llmobs.integrations.openai",
            "openai",
            "the OpenAI integration needs openai, which is not installed: "
            "pip install 'pytest-llmobs[openai]'",
        ),
    ],
    ids=["langchain", "openai"],
)
def test_an_integration_without_its_library_says_which_extra_to_install(
    pytester: pytest.Pytester, module: str, package: str, message: str
) -> None:
    pytester.makeconftest(hiding_conftest(package))
    pytester.makeini(INI)
    pytester.makepyfile(f"def test_app():\n    import {module}\n")

    result = pytester.runpytest_subprocess()

    result.assert_outcomes(failed=1)
    result.stdout.re_match_lines([rf"E +ImportError: {re.escape(message)}$"])


def test_neither_the_package_nor_the_plugin_imports_langchain_or_openai(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(
        dedent(
            """\
            import sys

            import pytest_llmobs
            import pytest_llmobs.integrations

            def test_modules(llm, scorer):
                llm.generate("What is the capital of France?")
                pytest_llmobs.start_span, pytest_llmobs.run_experiment, pytest_llmobs.LLM
                loaded = {name.partition(".")[0] for name in sys.modules}
                assert not loaded & {"langchain_core", "langchain", "openai"}
            """
        )
    )

    pytester.runpytest_subprocess().assert_outcomes(passed=1)
