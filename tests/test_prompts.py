"""Tests for prompt files, versions, labels and compiling ``{{variables}}``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from textwrap import dedent
from typing import Any

import pytest

import pytest_llmobs
from pytest_llmobs.governance import Governance
from pytest_llmobs.prompts import (
    CompiledPrompt,
    Prompt,
    PromptError,
    PromptRegistry,
    PromptVariableError,
)
from pytest_llmobs.store import Store

QA_CHAT: dict[str, Any] = {
    "type": "chat",
    "prompt": [
        {"role": "system", "content": "You answer about {{ topic }}."},
        {"role": "user", "content": "{{question}}"},
    ],
    "config": {"temperature": 0.2},
    "labels": ["production"],
}


@pytest.fixture
def prompts_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "prompts"
    directory.mkdir()
    return directory


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "store" / "s.db"


@pytest.fixture
def stores() -> Iterator[list[Store]]:
    opened: list[Store] = []
    yield opened
    for store in opened:
        store.close()


def write_json(directory: Path, name: str, data: Any) -> Path:
    path = directory / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def session(directory: Path, store_path: Path | None, stores: list[Store]) -> PromptRegistry:
    """A registry as one pytest session would build it (a fresh store connection)."""
    store = Store(store_path)
    stores.append(store)
    return PromptRegistry(directory, store)


def test_public_names_are_reexported() -> None:
    from pytest_llmobs.evaluators.judge import JudgeError
    from pytest_llmobs.providers.base import Provider, ProviderError

    # (the errors and the protocol the README and docs name, importable where the rest is)
    assert (pytest_llmobs.JudgeError, pytest_llmobs.ProviderError) == (JudgeError, ProviderError)
    assert pytest_llmobs.Provider is Provider
    assert set(pytest_llmobs.__all__) <= set(dir(pytest_llmobs))  # (completion in notebooks)
    assert pytest_llmobs.Prompt is Prompt
    assert pytest_llmobs.CompiledPrompt is CompiledPrompt
    assert pytest_llmobs.PromptError is PromptError
    assert pytest_llmobs.PromptVariableError is PromptVariableError


# --- reading files and compiling ---------------------------------------------------------------


def test_text_prompt_from_json_compiles(prompts_dir: Path, stores: list[Store]) -> None:
    write_json(
        prompts_dir, "greet", {"type": "text", "prompt": "Hello {{name}}, from {{ place }}!"}
    )
    prompt = session(prompts_dir, None, stores).get("greet")
    assert (prompt.name, prompt.version, prompt.type) == ("greet", 1, "text")
    assert prompt.variables == ["name", "place"]
    compiled = prompt.compile(name="Ada", place="London")
    assert compiled.text == "Hello Ada, from London!"
    assert str(compiled) == "Hello Ada, from London!"
    assert compiled.messages == [{"role": "user", "content": "Hello Ada, from London!"}]
    assert (compiled.name, compiled.version) == ("greet", 1)
    assert compiled.prompt is prompt
    assert repr(compiled) == "CompiledPrompt('greet', version=1)"


def test_chat_prompt_from_json_compiles(prompts_dir: Path, stores: list[Store]) -> None:
    write_json(prompts_dir, "qa", QA_CHAT)
    prompt = session(prompts_dir, None, stores).get("qa")
    assert prompt.type == "chat"
    assert prompt.config == {"temperature": 0.2}
    assert "production" in prompt.labels and "latest" in prompt.labels
    compiled = prompt.compile(topic="maths", question="What is 2+2?")
    assert compiled.messages == [
        {"role": "system", "content": "You answer about maths."},
        {"role": "user", "content": "What is 2+2?"},
    ]
    assert compiled.text == "system: You answer about maths.\nuser: What is 2+2?"
    assert compiled.config == {"temperature": 0.2}


def test_compiled_messages_are_copies(prompts_dir: Path, stores: list[Store]) -> None:
    write_json(prompts_dir, "qa", QA_CHAT)
    compiled = session(prompts_dir, None, stores).get("qa").compile(topic="t", question="q")
    compiled.messages[0]["content"] = "changed"
    assert compiled.messages[0]["content"] == "You answer about t."


def test_toml_prompts_text_and_chat(prompts_dir: Path, stores: list[Store]) -> None:
    (prompts_dir / "summary.toml").write_text(
        dedent(
            """\
            type = "text"
            prompt = "Summarise {{doc.title}} in {{n}} words."
            labels = ["staging"]

            [config]
            temperature = 0.0
            max_tokens = 50
            """
        ),
        encoding="utf-8",
    )
    (prompts_dir / "chatty.toml").write_text(
        dedent(
            """\
            type = "chat"

            [[prompt]]
            role = "system"
            content = "Be brief."

            [[prompt]]
            role = "user"
            content = "{{q}}"
            """
        ),
        encoding="utf-8",
    )
    registry = session(prompts_dir, None, stores)
    summary = registry.get("summary")
    assert summary.config == {"temperature": 0.0, "max_tokens": 50}
    assert "staging" in summary.labels
    assert summary.compile(**{"doc.title": "Dune", "n": 10}).text == "Summarise Dune in 10 words."
    chat = registry.get("chatty").compile(q="Why?")
    assert chat.messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Why?"},
    ]


def test_prompts_in_subdirectories_are_found(prompts_dir: Path, stores: list[Store]) -> None:
    write_json(prompts_dir / "support", "triage", {"prompt": "Triage {{ticket}}"})
    registry = session(prompts_dir, None, stores)
    assert registry.available() == ["support/triage"]
    assert registry.get("support/triage").compile(ticket="#1").text == "Triage #1"


def test_compile_fills_every_occurrence_and_ignores_extras() -> None:
    prompt = Prompt(name="p", version=1, type="text", template="{{a}}-{{ a }}-{{b}}")
    assert prompt.compile(a=1, b="x", unused="y").text == "1-1-x"
    assert prompt.compile(a=1, b=2).variables == {"a": 1, "b": 2}


def test_compile_refuses_none_rather_than_filling_in_the_text_none() -> None:
    prompt = Prompt(name="p", version=1, type="text", template="Hi {{name}}")
    with pytest.raises(PromptVariableError, match=r"variable 'name' is None"):
        prompt.compile(name=None)


def test_compile_does_not_expand_placeholders_inside_values() -> None:
    prompt = Prompt(name="p", version=1, type="text", template="Q: {{q}} / {{other}}")
    assert prompt.compile(q="{{other}}", other="x").text == "Q: {{other}} / x"


def test_text_without_variables_and_single_braces_are_kept() -> None:
    prompt = Prompt(name="p", version=1, type="text", template='Return {"a": 1} or {{ }}')
    assert prompt.variables == []
    assert prompt.compile().text == 'Return {"a": 1} or {{ }}'


def test_missing_variable_names_it_and_the_given_ones() -> None:
    prompt = Prompt(name="qa", version=2, type="text", template="{{question}} about {{topic}}")
    with pytest.raises(PromptVariableError) as excinfo:
        prompt.compile(topic="maths", tone="dry")
    assert str(excinfo.value) == (
        "prompt 'qa' version 2 is missing variable 'question'; given: tone, topic"
    )
    assert isinstance(excinfo.value, PromptError)
    assert isinstance(excinfo.value, KeyError)


def test_missing_variables_plural_and_none_given() -> None:
    prompt = Prompt(
        name="qa",
        version=1,
        type="chat",
        template=[{"role": "user", "content": "{{a}} {{b.c}}"}],
    )
    with pytest.raises(PromptVariableError) as excinfo:
        prompt.compile()
    assert str(excinfo.value) == (
        "prompt 'qa' version 1 is missing variables 'a', 'b.c'; given: (none)"
    )


# --- versions and labels across sessions -------------------------------------------------------


def test_same_content_keeps_its_version_across_sessions(
    prompts_dir: Path, store_path: Path, stores: list[Store]
) -> None:
    write_json(prompts_dir, "qa", QA_CHAT)
    first = session(prompts_dir, store_path, stores).get("qa")
    second = session(prompts_dir, store_path, stores).get("qa")
    assert first.version == second.version == 1
    assert first.hash == second.hash
    assert len(first.hash) == 16


def test_label_only_changes_do_not_make_a_new_version(
    prompts_dir: Path, store_path: Path, stores: list[Store]
) -> None:
    write_json(prompts_dir, "qa", QA_CHAT)
    session(prompts_dir, store_path, stores).get("qa")
    write_json(prompts_dir, "qa", {**QA_CHAT, "labels": ["production", "canary"]})
    prompt = session(prompts_dir, store_path, stores).get("qa")
    assert prompt.version == 1
    assert set(prompt.labels) == {"canary", "latest", "production"}


def test_changed_content_gets_the_next_version_and_old_ones_stay(
    prompts_dir: Path, store_path: Path, stores: list[Store]
) -> None:
    write_json(prompts_dir, "qa", QA_CHAT)
    v1 = session(prompts_dir, store_path, stores).get("qa")

    changed = {**QA_CHAT, "config": {"temperature": 0.7}, "labels": []}
    write_json(prompts_dir, "qa", changed)
    registry = session(prompts_dir, store_path, stores)
    v2 = registry.get("qa")
    assert (v1.version, v2.version) == (1, 2)
    assert v2.hash != v1.hash
    assert v2.config == {"temperature": 0.7}
    assert v2.labels == ("latest",)

    # The old version is still there, unchanged, and keeps the label nobody moved.
    old = registry.get("qa", version=1)
    assert old.config == {"temperature": 0.2}
    assert old.template == QA_CHAT["prompt"]
    assert old.hash == v1.hash
    assert old.labels == ("production",)
    assert registry.get("qa", label="production").version == 1
    assert registry.get("qa", label="latest").version == 2
    assert registry.get("qa", version=2).compile(topic="t", question="q").version == 2


def test_a_governed_store_masks_templates_but_the_file_compiles_as_written(
    prompts_dir: Path, store_path: Path, stores: list[Store]
) -> None:
    def governed_session() -> PromptRegistry:
        store = Store(store_path, governance=Governance())
        stores.append(store)
        return PromptRegistry(prompts_dir, store)

    first = {"type": "text", "prompt": "Escalate to ops@corp.example.com", "labels": ["production"]}
    write_json(prompts_dir, "esc", first)
    v1 = governed_session().get("esc")
    write_json(prompts_dir, "esc", {"type": "text", "prompt": "Escalate to sre@corp.example.com"})
    registry = governed_session()

    assert v1.template == "Escalate to ops@corp.example.com"  # the file, as written
    assert registry.get("esc").template == "Escalate to sre@corp.example.com"
    assert registry.get("esc", label="latest").template == "Escalate to sre@corp.example.com"
    old = registry.get("esc", label="production")  # only the store has it: masked
    assert (old.version, old.template, old.hash) == (1, "Escalate to <EMAIL>", v1.hash)
    raw = Store(store_path)  # what the file on disk holds
    stores.append(raw)
    assert "corp.example.com" not in json.dumps([raw.get_prompt("esc", version=v) for v in (1, 2)])


def test_labels_move_to_the_newest_version_whose_file_lists_them(
    prompts_dir: Path, store_path: Path, stores: list[Store]
) -> None:
    write_json(prompts_dir, "p", {"prompt": "one", "labels": ["production"]})
    session(prompts_dir, store_path, stores).get("p")
    write_json(prompts_dir, "p", {"prompt": "two", "labels": ["staging"]})
    session(prompts_dir, store_path, stores).get("p")
    write_json(prompts_dir, "p", {"prompt": "three", "labels": ["production", "staging"]})
    registry = session(prompts_dir, store_path, stores)
    assert registry.get("p").version == 3

    assert registry.get("p", label="production").template == "three"
    assert registry.get("p", label="staging").version == 3
    assert registry.get("p", label="latest").version == 3
    assert registry.get("p", version=1).labels == ()
    assert registry.get("p", version=2).labels == ()
    assert set(registry.get("p", version=3).labels) == {"latest", "production", "staging"}


def test_a_new_session_sees_versions_recorded_by_another(
    prompts_dir: Path, store_path: Path, stores: list[Store]
) -> None:
    write_json(prompts_dir, "p", {"prompt": "one"})
    session(prompts_dir, store_path, stores).get("p")
    write_json(prompts_dir, "p", {"prompt": "two"})
    session(prompts_dir, store_path, stores).get("p")
    # A third session that never loads the file itself still reads stored versions.
    reader = session(prompts_dir, store_path, stores)
    assert reader.get("p", version=1).template == "one"
    assert reader.get("p", label="latest").template == "two"


def test_unknown_version_lists_versions_and_labels(
    prompts_dir: Path, store_path: Path, stores: list[Store]
) -> None:
    write_json(prompts_dir, "p", {"prompt": "one", "labels": ["production"]})
    session(prompts_dir, store_path, stores).get("p")
    write_json(prompts_dir, "p", {"prompt": "two"})
    registry = session(prompts_dir, store_path, stores)
    with pytest.raises(PromptError) as excinfo:
        registry.get("p", version=9)
    assert str(excinfo.value) == (
        "prompt 'p' has no version 9; versions: 1, 2; labels: latest->2, production->1"
    )
    with pytest.raises(PromptError) as excinfo:
        registry.get("p", label="prod")
    assert str(excinfo.value) == (
        "prompt 'p' has no label 'prod'; versions: 1, 2; labels: latest->2, production->1"
    )


def test_version_and_label_together_are_rejected(prompts_dir: Path, stores: list[Store]) -> None:
    write_json(prompts_dir, "p", {"prompt": "one"})
    with pytest.raises(PromptError, match="pass version= or label=, not both"):
        session(prompts_dir, None, stores).get("p", version=1, label="latest")


def test_missing_prompt_lists_available_names(prompts_dir: Path, stores: list[Store]) -> None:
    write_json(prompts_dir, "alpha", {"prompt": "a"})
    (prompts_dir / "beta.toml").write_text('prompt = "b"\n', encoding="utf-8")
    (prompts_dir / "notes.txt").write_text("not a prompt", encoding="utf-8")
    with pytest.raises(PromptError) as excinfo:
        session(prompts_dir, None, stores).get("gamma")
    message = str(excinfo.value)
    assert message.startswith(f"prompt 'gamma' not found in {prompts_dir}; expected gamma.json")
    assert message.endswith("available: alpha, beta")


def test_missing_prompts_directory_is_reported(tmp_path: Path, stores: list[Store]) -> None:
    with pytest.raises(PromptError) as excinfo:
        session(tmp_path / "nowhere", None, stores).get("qa")
    assert "(missing)" in str(excinfo.value)
    assert str(excinfo.value).endswith("available: (none)")


def test_ambiguous_prompt_files_are_an_error(prompts_dir: Path, stores: list[Store]) -> None:
    write_json(prompts_dir, "p", {"prompt": "a"})
    (prompts_dir / "p.toml").write_text('prompt = "b"\n', encoding="utf-8")
    with pytest.raises(PromptError, match=r"prompt 'p' is ambiguous: .*; keep one file"):
        session(prompts_dir, None, stores).get("p")


@pytest.mark.parametrize("name", ["../secret", "", "a b", "greet\n"])
def test_invalid_prompt_names_are_rejected(
    prompts_dir: Path, stores: list[Store], name: str
) -> None:
    with pytest.raises(PromptError, match="invalid prompt name"):
        session(prompts_dir, None, stores).get(name)


@pytest.mark.parametrize(
    "name", ["team//a", "team/./a", "./team/a", "/team/a", "team/a/", "team//./a/."]
)
def test_a_prompt_has_one_name_other_spellings_of_its_path_are_refused(
    prompts_dir: Path, stores: list[Store], name: str
) -> None:
    # (before: 'team//a' and 'team/./a' loaded prompts/team/a.json, each as a prompt of its
    # own with its own versions, uploaded apart)
    write_json(prompts_dir, "team/a", {"prompt": "hi"})
    registry = session(prompts_dir, None, stores)
    assert registry.get("team/a").version == 1
    expected = f"invalid prompt name {name!r}; write it 'team/a', the one name of its file"
    for call in (registry.get, registry.find_file):
        with pytest.raises(PromptError) as raised:
            call(name)
        assert str(raised.value) == expected


@pytest.mark.parametrize("name", [3, Path("greet"), None, ["greet"]])
def test_a_prompt_name_that_is_not_a_string_is_a_one_line_error(
    prompts_dir: Path, stores: list[Store], name: Any
) -> None:
    # (before: "TypeError: expected string or bytes-like object" from the name's regex)
    write_json(prompts_dir, "greet", {"prompt": "hi"})
    registry = session(prompts_dir, None, stores)
    expected = (
        f"invalid prompt name {name!r}; expected a string such as 'support-agent' or "
        "'team/support-agent'"
    )
    for call in (registry.get, registry.find_file):
        with pytest.raises(PromptError) as raised:
            call(name)
        assert str(raised.value) == expected


# --- malformed files ----------------------------------------------------------------------------


def error_for(prompts_dir: Path, stores: list[Store], name: str) -> str:
    with pytest.raises(PromptError) as excinfo:
        session(prompts_dir, None, stores).get(name)
    return str(excinfo.value)


def test_invalid_json_reports_line_and_column(prompts_dir: Path, stores: list[Store]) -> None:
    path = prompts_dir / "bad.json"
    path.write_text('{\n  "prompt": "x",\n  oops\n}\n', encoding="utf-8")
    message = error_for(prompts_dir, stores, "bad")
    assert message.startswith(f"{path}:3:3: invalid JSON (")
    # (before: "(Invalid control character at)", an "at" pointing nowhere)
    path.write_text('{\n  "prompt": "a\tb"\n}\n', encoding="utf-8")
    message = error_for(prompts_dir, stores, "bad")
    assert message == f"{path}:2:15: invalid JSON (Invalid control character)"
    path.write_text('{\n  "prompt": "ab}', encoding="utf-8")
    message = error_for(prompts_dir, stores, "bad")
    assert message == f"{path}:2:13: invalid JSON (Unterminated string)"


def test_invalid_toml_names_the_file(prompts_dir: Path, stores: list[Store]) -> None:
    path = prompts_dir / "bad.toml"
    path.write_text("prompt = \n", encoding="utf-8")
    assert error_for(prompts_dir, stores, "bad").startswith(f"{path}: invalid TOML (")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ([1, 2], ": expected an object with 'type', 'prompt', 'config', 'labels'; got list"),
        ({"type": "image", "prompt": "x"}, ": type: Input should be 'text' or 'chat'"),
        ({"type": "chat", "prompt": "just text"}, ": a 'chat' prompt needs 'prompt' to be a list"),
        (
            {"type": "text", "prompt": [{"role": "user", "content": "x"}]},
            ": a 'text' prompt needs 'prompt' to be a string",
        ),
        ({"prompt": "x", "temperature": 0.1}, ": temperature: Extra inputs are not permitted"),
        ({"prompt": "x", "labels": ["latest"]}, ": labels: 'latest' is maintained"),
        ({"config": {}}, ": prompt: Field required"),
        ({"prompt": 42}, ": prompt: Input should be a valid string"),
        (
            {"type": "chat", "prompt": [{"role": "user"}]},
            ": prompt.0.content: Field required",
        ),
    ],
)
def test_malformed_prompt_files_name_the_file_and_the_problem(
    prompts_dir: Path, stores: list[Store], content: Any, expected: str
) -> None:
    path = write_json(prompts_dir, "broken", content)
    message = error_for(prompts_dir, stores, "broken")
    assert message.startswith(f"{path}{expected}")


def test_undecodable_file_names_the_file(prompts_dir: Path, stores: list[Store]) -> None:
    path = prompts_dir / "binary.json"
    path.write_bytes(b"\xff\xfe\x00")
    assert error_for(prompts_dir, stores, "binary") == (
        f"{path}:1: not valid UTF-8 (byte offset 0: invalid start byte); it looks like UTF-16; "
        "save the file as UTF-8"
    )


def test_malformed_file_is_not_registered(
    prompts_dir: Path, store_path: Path, stores: list[Store]
) -> None:
    write_json(prompts_dir, "p", {"prompt": "x", "labels": ["latest"]})
    with pytest.raises(PromptError):
        session(prompts_dir, store_path, stores).get("p")
    write_json(prompts_dir, "p", {"prompt": "x"})
    assert session(prompts_dir, store_path, stores).get("p").version == 1


def test_prompt_to_dict_round_trips_through_json(prompts_dir: Path, stores: list[Store]) -> None:
    write_json(prompts_dir, "qa", QA_CHAT)
    data = json.loads(json.dumps(session(prompts_dir, None, stores).get("qa").to_dict()))
    assert data["name"] == "qa"
    assert data["version"] == 1
    assert data["type"] == "chat"
    assert data["prompt"] == QA_CHAT["prompt"]
    assert data["config"] == QA_CHAT["config"]
    assert sorted(data["labels"]) == ["latest", "production"]


# --- malformed prompt files and arguments --------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "shown"),
    [
        ("Hello {{user-name}}!", "'{{user-name}}'"),
        ("Hi {{ first name }}", "'{{ first name }}'"),
        ("Hi {{name}", "'{{name}'"),
        ("Hi {{name} and {{other}}", "'{{name} and '"),
        ("{{ }}", "'{{ }}'"),
    ],
)
def test_a_malformed_placeholder_is_an_error_naming_the_file(
    prompts_dir: Path, stores: list[Store], template: str, shown: str
) -> None:
    path = write_json(prompts_dir, "bad", {"prompt": f"ok {{{{a}}}} {template}"})
    assert error_for(prompts_dir, stores, "bad") == (
        f"{path}: prompt: malformed placeholder {shown}; expected {{{{name}}}} with letters,"
        " digits, '_' or '.' inside"
    )


def test_a_malformed_placeholder_in_a_chat_message_names_the_message(
    prompts_dir: Path, stores: list[Store]
) -> None:
    messages = [{"role": "system", "content": "ok"}, {"role": "user", "content": "{{a-b}}"}]
    write_json(prompts_dir, "bad", {"type": "chat", "prompt": messages})
    assert "malformed placeholder '{{a-b}}' (message 1)" in error_for(prompts_dir, stores, "bad")


@pytest.mark.parametrize(
    ("file", "text", "expected"),
    [
        (
            "dup.json",
            '{"prompt": "first {{a}}", "prompt": "second {{b}}"}',
            ": invalid JSON (key 'prompt' appears twice in one object; all but the last is lost)",
        ),
        (
            "dup.yaml",
            'prompt: "hi"\nprompt: "dup"\n',
            ": invalid YAML (key 'prompt' appears twice in one mapping (line 2); all but the last",
        ),
        (
            "dup.json",
            '{"prompt": "x", "config": {"temperature": NaN}}',
            ": invalid JSON (NaN is not a JSON number; write null or a string)",
        ),
        (
            "dup.yaml",
            "prompt: x\nconfig:\n  temperature: .nan\n",
            ": config.temperature is not a finite number; JSON has no NaN or Infinity",
        ),
        (
            "dup.toml",
            'prompt = "x"\n[config]\ntop = [1.0, inf]\n',
            ": config.top.1 is not a finite number",
        ),
        (  # (a TypeError from json.dumps, with no file named, before)
            "dup.toml",
            'prompt = "x"\n[config]\nsince = 1979-05-27\n',
            ": config.since is a date (1979-05-27); JSON has no such type, so the prompt could "
            "not be stored: quote it to make it a string",
        ),
        (
            "dup.yaml",
            "prompt: x\nconfig:\n  at: [2020-01-01 10:00:00]\n",
            ": config.at.0 is a datetime (2020-01-01 10:00:00); JSON has no such type",
        ),
        (
            "dup.json",
            '{"prompt": "x", "config": {"t": 1e400}}',
            ": invalid JSON (1e400 is too large for a number (it reads as Infinity); write a",
        ),
        ("dup.yaml", "prompt: [unclosed\n", ":2:1: invalid YAML (expected ',' or ']', but got"),
        (
            "dup.json",
            '{"prompt": "Hi", "labels": ["prod", "prod"]}',
            ": labels: label 'prod' is given twice",
        ),
        (
            "dup.json",
            '{"prompt": "Hi", "labels": [""]}',
            ": labels: label '' is not valid; expected letters, digits, '.', '_' or '-', starting",
        ),
        ("dup.json", '{"prompt": "Hi", "labels": ["with space"]}', ": labels: label 'with space'"),
        (
            "dup.json",
            '{"type": "chat", "prompt": []}',
            ": a 'chat' prompt needs at least one message in 'prompt'",
        ),
        (
            "dup.json",
            '{"type": "chat", "prompt": [{"role": "banana", "content": "hi"}]}',
            ": prompt.0.role: unknown role 'banana'; expected one of system, developer, user,",
        ),
    ],
)
def test_prompt_files_are_read_as_strictly_as_datasets(
    prompts_dir: Path, stores: list[Store], file: str, text: str, expected: str
) -> None:
    path = prompts_dir / file
    path.write_text(text, encoding="utf-8")
    message = error_for(prompts_dir, stores, "dup")
    assert message.startswith(f"{path}{expected}")
    assert "\n" not in message


def test_a_json_prompt_with_a_byte_order_mark_loads(prompts_dir: Path, stores: list[Store]) -> None:
    (prompts_dir / "bom.json").write_bytes(b'\xef\xbb\xbf{"prompt": "hi {{name}}"}')
    loaded = session(prompts_dir, None, stores).get("bom")
    assert loaded.compile(name="Ann").text == "hi Ann"


@pytest.mark.parametrize(
    ("selector", "error", "message"),
    [
        ({"version": True}, TypeError, "version must be an int (1, 2, ...), got bool True"),
        ({"version": "1"}, TypeError, "version must be an int (1, 2, ...), got str '1'"),
        ({"version": 1.0}, TypeError, "version must be an int (1, 2, ...), got float 1.0"),
        ({"version": 0}, PromptError, "version must be 1 or more, got 0"),
        ({"label": ""}, PromptError, "label must be a non-empty string, got ''"),
        ({"label": 3}, TypeError, "label must be a string, got int 3"),
    ],
)
def test_a_version_or_label_of_the_wrong_kind_is_an_error_naming_the_argument(
    prompts_dir: Path,
    stores: list[Store],
    selector: dict[str, Any],
    error: type[Exception],
    message: str,
) -> None:
    write_json(prompts_dir, "p", {"prompt": "Hello {{name}}"})
    with pytest.raises(error) as caught:
        session(prompts_dir, None, stores).get("p", **selector)
    assert str(caught.value) == f"prompt 'p': {message}"
