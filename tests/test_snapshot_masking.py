"""Prompt versions and dataset snapshots are stored once but masked by every policy that uses
them, and an item lists every prompt version its generations link to."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_llmobs.cli import main
from pytest_llmobs.governance import build_governance
from pytest_llmobs.store import Store

if TYPE_CHECKING:
    from conftest import Runs

PII_SUITE = """
import pytest

@pytest.mark.llm_dataset("pii")
def test_g(item, llm, prompt):
    llm.generate(prompt("esc").compile(q=item.input))
"""
PII_ITEM = {"id": "a", "input": "Email ann@example.com", "expected_output": "ok"}
ESCALATE = "Escalate to boss@acme.com: {{q}}"
CODENAME_CONFTEST = """
def mask_codenames(text):
    return text.replace("Project Falcon", "<CODENAME>")

def pytest_llmobs_register_maskers(config):
    return [mask_codenames]
"""


def write_pii_suite(pytester: pytest.Pytester, template: str = ESCALATE) -> None:
    pytester.makeini("[pytest]\n")
    pytester.makefile(".jsonl", **{"datasets/pii": json.dumps(PII_ITEM)})
    write_prompt(pytester, "esc", template)
    pytester.makepyfile(test_g=PII_SUITE)


def write_prompt(pytester: pytest.Pytester, name: str, template: str) -> None:
    path = pytester.path / "prompts" / f"{name}.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps({"prompt": template}), encoding="utf-8")


def exported(pytester: pytest.Pytester, name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((pytester.path / name).read_text(encoding="utf-8"))
    return data


def test_a_snapshot_an_unmasked_session_stored_is_masked_by_the_masking_session_using_it(
    pytester: pytest.Pytester, xdist_args: tuple[str, ...]
) -> None:
    # (before: the dataset snapshot and the prompt template stayed as --llm-redact=off stored
    # them, and the masking session's export and uploads carried them raw)
    write_pii_suite(pytester)
    pytester.runpytest("--llm-redact=off", "--llm-json=off.json").assert_outcomes(passed=1)
    raw = exported(pytester, "off.json")["snapshots"]
    assert raw["datasets"][0]["items"][0]["input"] == "Email ann@example.com"

    pytester.runpytest("--llm-json=run.json", *xdist_args).assert_outcomes(passed=1)

    run = exported(pytester, "run.json")
    assert run["items"][0]["input"] == "Email <EMAIL>"
    (dataset,) = run["snapshots"]["datasets"]
    assert dataset["items"][0]["input"] == "Email <EMAIL>"
    (prompt,) = run["snapshots"]["prompts"]
    assert prompt["prompt"] == "Escalate to <EMAIL>: {{q}}"
    # the same version, named by the file's own content
    (before,) = raw["prompts"]
    assert (prompt["version"], prompt["hash"]) == (1, before["hash"])
    assert dataset["version"] == raw["datasets"][0]["version"]
    # one snapshot: the unmasked run's export now reads it masked too
    off_run = exported(pytester, "off.json")["id"]
    assert main(["export", off_run, "--store", ".llmobs", "-o", "again.json"]) == 0
    again = exported(pytester, "again.json")["snapshots"]
    assert again["datasets"][0]["items"][0]["input"] == "Email <EMAIL>"
    assert again["prompts"][0]["prompt"] == "Escalate to <EMAIL>: {{q}}"


def test_a_prompt_version_loaded_by_number_is_masked_by_the_session_using_it(
    pytester: pytest.Pytester,
) -> None:
    write_pii_suite(pytester)
    pytester.runpytest("--llm-redact=off").assert_outcomes(passed=1)
    write_prompt(pytester, "esc", "Now ask carol@example.org: {{q}}")  # version 2
    pytester.makepyfile(
        test_g=PII_SUITE.replace('prompt("esc")', 'prompt("esc", version=1)'),
    )

    pytester.runpytest("--llm-json=run.json").assert_outcomes(passed=1)

    (prompt,) = exported(pytester, "run.json")["snapshots"]["prompts"]
    assert (prompt["version"], prompt["prompt"]) == (1, "Escalate to <EMAIL>: {{q}}")


def test_what_an_earlier_policy_masked_stays_masked_under_a_policy_without_its_masker(
    pytester: pytest.Pytester,
) -> None:
    # the stored snapshot is masked again, not the file's items: the codename masker of the
    # first session is gone from the second, whose own masking adds the e-mail address
    pytester.makeini("[pytest]\n")
    item = {"id": "a", "input": "Project Falcon: mail ann@example.com"}
    pytester.makefile(".jsonl", **{"datasets/pii": json.dumps(item)})
    write_prompt(pytester, "esc", "Project Falcon asks boss@acme.com: {{q}}")
    pytester.makepyfile(test_g=PII_SUITE, conftest=CODENAME_CONFTEST)
    pytester.runpytest("--llm-redact=off").assert_outcomes(passed=1)
    (pytester.path / "conftest.py").unlink()

    pytester.runpytest("--llm-json=run.json").assert_outcomes(passed=1)

    snapshots = exported(pytester, "run.json")["snapshots"]
    assert snapshots["datasets"][0]["items"][0]["input"] == "<CODENAME>: mail <EMAIL>"
    assert snapshots["prompts"][0]["prompt"] == "<CODENAME> asks <EMAIL>: {{q}}"


def test_run_experiment_masks_a_snapshot_an_unmasked_run_stored(tmp_path: Path) -> None:
    from pytest_llmobs import run_experiment

    items = [{"id": "a", "input": "Email ann@example.com", "expected_output": "ok"}]
    (tmp_path / "pytest.ini").write_text("[pytest]\nllm_redact = off\n", encoding="utf-8")
    with contextlib.chdir(tmp_path):
        run_experiment(name="raw", dataset=items, task=lambda item: "ok", store="store")
        (tmp_path / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
        result = run_experiment(name="masked", dataset=items, task=lambda item: "ok", store="store")

    with contextlib.closing(Store(tmp_path / "store" / "llmobs.db")) as store:
        run = store.load_run(result.run_id)
        ((name, version),) = run["datasets"].items()
        (snapshot,) = store.get_dataset(name, version) or []
    assert snapshot["input"] == "Email <EMAIL>"


def test_merge_masks_a_snapshot_its_store_holds_unmasked(
    pytester: pytest.Pytester, capsys: pytest.CaptureFixture[str]
) -> None:
    write_pii_suite(pytester)
    pytester.runpytest("--llm-redact=off", "--llm-store=merged").assert_outcomes(passed=1)
    pytester.runpytest("--llm-store=shard", "--llm-json=shard.json").assert_outcomes(passed=1)
    capsys.readouterr()

    assert main(["merge", "shard.json", "--store", "merged", "-o", "merged.json"]) == 0

    snapshots = exported(pytester, "merged.json")["snapshots"]
    assert snapshots["datasets"][0]["items"][0]["input"] == "Email <EMAIL>"
    assert snapshots["prompts"][0]["prompt"] == "Escalate to <EMAIL>: {{q}}"


def test_a_prompt_version_a_worker_sends_masks_the_one_the_controller_has_unmasked(
    tmp_path: Path,
) -> None:
    content = {"type": "text", "prompt": "Escalate to boss@acme.com: {{q}}", "config": {}}
    with contextlib.closing(Store(tmp_path / "llmobs.db")) as unmasked:
        version = unmasked.register_prompt("esc", "h1", content, [])
        sent = unmasked.get_prompt("esc", version=version)
    assert sent is not None
    governance = build_governance(mode="default")
    with contextlib.closing(Store(tmp_path / "llmobs.db", governance=governance)) as store:
        assert store.import_prompt_version(sent) is False  # (kept once)
        stored = store.get_prompt("esc", version=version)
    assert stored is not None
    assert (stored["hash"], stored["prompt"]) == ("h1", "Escalate to <EMAIL>: {{q}}")


def test_a_snapshot_its_policy_masked_already_is_not_written_again(tmp_path: Path) -> None:
    items = [{"id": "a", "input": "Email ann@example.com"}]
    governance = build_governance(mode="default")
    with contextlib.closing(Store(tmp_path / "llmobs.db", governance=governance)) as store:
        store.record_dataset("pii", "v1", items)
        store.register_prompt("esc", "h1", {"prompt": "boss@acme.com"}, [])
        writes = store._db.total_changes

        store.record_dataset("pii", "v1", items)
        store.register_prompt("esc", "h1", {"prompt": "boss@acme.com"}, [])
        store.regovern_prompt("esc", 1)

        assert store._db.total_changes == writes
        assert store.get_dataset("pii", "v1") == [{"id": "a", "input": "Email <EMAIL>"}]


MODULE_PROMPT_SUITE = """
import pytest
import pytest_llmobs
from types import SimpleNamespace

@pytest.fixture(scope="module")
def greet(prompt):
    return prompt("greet")

def test_a(greet, llm):
    llm.generate(greet.compile(who="a"))

def test_b(greet, llm):
    llm.generate(greet.compile(who="b"))
    with pytest_llmobs.start_span("elsewhere") as span:
        span.attach_prompt(SimpleNamespace(name="hub-prompt", version=3))

def test_c(llm):
    llm.generate("no prompt")
"""


def test_an_item_lists_the_prompt_versions_its_generations_link_to(
    pytester: pytest.Pytester, runs: Runs
) -> None:
    # (before: only test_a, running when the module's fixture loaded the prompt, listed it)
    pytester.makeini("[pytest]\n")
    write_prompt(pytester, "greet", "Hello {{who}}")
    pytester.makepyfile(test_m=MODULE_PROMPT_SUITE)

    pytester.runpytest().assert_outcomes(passed=3)

    run = runs.latest()
    prompts = {node: item["prompts"] for node, item in runs.items(run).items()}
    (greet,) = run["prompts"]
    assert greet["name"] == "greet" and greet["version"] == 1
    # a link to a version the session never loaded (the user's own object) is no stored prompt
    assert prompts == {
        "test_m.py::test_a": [greet],
        "test_m.py::test_b": [greet],
        "test_m.py::test_c": [],
    }
