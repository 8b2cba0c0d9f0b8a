"""Maskers: each kind of PII and secret is replaced; masking is idempotent and total."""

from __future__ import annotations

import json
import re
from textwrap import dedent
from typing import TYPE_CHECKING

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_llmobs.governance import Governance
from pytest_llmobs.prompts import Prompt
from pytest_llmobs.redaction import (
    MASKING_FAILED,
    REDACT_MODES,
    Redactor,
    is_placeholder,
    is_secret_name,
)

if TYPE_CHECKING:
    from conftest import Runs

PII = {
    "email": ("write to jane.doe+test@example.co.uk today", "<EMAIL>", "jane.doe"),
    "card": ("paid with 4111 1111 1111 1111", "<CARD>", "4111 1111"),
    "card_dashes": ("card 5500-0000-0000-0004 ok", "<CARD>", "5500-0000"),
    "iban": ("IBAN DE89 3704 0044 0532 0130 00", "<IBAN>", "DE89"),
    "iban_compact": ("to GB82WEST12345698765432 now", "<IBAN>", "GB82WEST"),
    "ipv4": ("from 192.168.1.20 at noon", "<IP>", "192.168.1.20"),
    "ipv4_sentence_end": ("my ip is 192.168.1.20.", "is <IP>.", "192.168.1.20"),
    "ipv6": ("from 2001:db8::8a2e:370:7334", "<IP>", "2001:db8"),
    "phone_intl": ("call +44 20 7946 0958", "<PHONE>", "7946"),
    "phone_us": ("call (415) 555-2671", "<PHONE>", "555-2671"),
    "openai_key": ("key sk-proj-abcdefghijklmnop1234", "<SECRET>", "sk-proj"),
    "langfuse_key": ("sk-lf-1234567890abcdef1234", "<SECRET>", "sk-lf-1234"),
    "bearer": ("Authorization: Bearer abc.def-ghi_jkl123", "<SECRET>", "abc.def"),
    "aws": ("AKIAIOSFODNN7EXAMPLE is the key", "<SECRET>", "AKIAIOSFODNN7"),
    "password": ("login with password=hunter2", "password=<SECRET>", "hunter2"),
    "api_key_quoted": ("api_key: 'xyz-123'", "api_key: '<SECRET>'", "xyz-123"),
    "password_json": ('{"password":"hunter2"}', '"password":"<SECRET>"', "hunter2"),
    "token_json": ('{"token": "xyz987"}', '"token": "<SECRET>"', "xyz987"),
    "env_password": ("DB_PASSWORD=hunter2", "DB_PASSWORD=<SECRET>", "hunter2"),
    "env_token": ("export GITHUB_TOKEN=abc123def456", "GITHUB_TOKEN=<SECRET>", "abc123"),
    "env_aws": ("AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI", "_KEY=<SECRET>", "wJalr"),
    "env_api_key": ("OPENAI_API_KEY: abcd1234", "OPENAI_API_KEY: <SECRET>", "abcd1234"),
    "bearer_lowercase": ("authorization: bearer eyJhbGciOiJIUzI1", "<SECRET>", "eyJhbGci"),
    "bearer_capitals": ("BEARER abcdefghijklmnop", "<SECRET>", "abcdefghijklmnop"),
}


@pytest.mark.parametrize("kind", sorted(PII))
def test_each_kind_is_masked(kind: str) -> None:
    text, placeholder, secret = PII[kind]
    masked = Redactor("default").text(text)
    assert placeholder in masked
    assert secret not in masked


@pytest.mark.parametrize(
    "text",
    [
        "card 4111-1111-1111-1112 fails Luhn",
        "IBAN DE00 3704 0044 0532 0130 00 fails mod 97",
        "version 1.2.3.4.5 and 999.1.1.1",
        '{"max_tokens": 100, "token_count": 7}',
        "max_tokens=256 tokenizer=bert num_tokens: 12 secretary=Ann",
        "local server 127.0.0.1:8080 and ::1 and 0.0.0.0",
        "tests/test_a.py::test_dead failed; test_b.py::beef too",
        "dates 2026-11-27 20:44:33 and 12:30",
        "The capital of France is Paris.",
        "ratio 0.4242424242424242 and -0.21060533511106927",
        '{"lat": 48.85836971456284, "confidence": 0.21060533511106927, "big": 4111111111111111.5}',
        "see section 2.1.3.4",
        "temperature +20.5 21.3 22.1",
    ],
)
def test_look_alikes_are_kept(text: str) -> None:
    assert Redactor("default").text(text) == text


@settings(max_examples=500, deadline=None)
@given(number=st.floats(allow_nan=False, allow_infinity=False))
def test_json_numbers_are_never_taken_for_a_card(number: float) -> None:
    # (before: 0.21060533511106927 was stored as 0.<CARD>, and the JSON no longer parsed)
    arguments = json.dumps({"score": number, "scaled": number * 1e6})
    assert Redactor("default").text(arguments) == arguments


def test_strict_adds_numbers_and_tokens() -> None:
    text = "order 12345678 token 3f9a1c2b4d5e6f708192a3b4c5d6e7f8a9b0c1d2"
    assert Redactor("default").text(text) == text
    assert Redactor("strict").text(text) == "order <NUMBER> token <TOKEN>"


def test_off_changes_nothing_and_nested_values_are_masked() -> None:
    value = {"user": "jane@example.com", "items": [{"ip": "10.1.2.3"}, 3, None], "n": 1.5}
    assert Governance(Redactor("off")).value(value) == value
    masked = Governance(Redactor("default")).value(value)
    assert masked == {"user": "<EMAIL>", "items": [{"ip": "<IP>"}, 3, None], "n": 1.5}
    assert value["user"] == "jane@example.com"  # the caller's object is not altered


@pytest.mark.parametrize("mode", REDACT_MODES)
def test_every_mode_cuts_long_text_and_replaces_lone_surrogates(mode: str) -> None:
    long = "x" * 150
    value = {
        "node_id": "test_q.py::test_q[" + "y" * 150 + "]",  # an identifier: kept whole
        "output": [long, ("half \ud83d", 2.5)],
        "metadata": {"note": long, "n": None},
    }
    governed = Governance(Redactor(mode), max_field_chars=100).value(value)  # type: ignore[arg-type]

    cut = "x" * 100 + "…[truncated, 150 chars]"
    assert governed == {
        "node_id": value["node_id"],
        "output": [cut, ["half \ufffd", 2.5]],
        "metadata": {"note": cut, "n": None},
    }


def test_custom_masker_runs_after_built_ins() -> None:
    redactor = Redactor("default", extra=[lambda text: text.replace("ACME-", "<CUSTOMER>-")])
    assert redactor.text("ACME-42 wrote from a@b.io") == "<CUSTOMER>-42 wrote from <EMAIL>"


def test_unknown_mode_lists_valid_ones() -> None:
    with pytest.raises(
        ValueError, match=r"'loud' is not a redaction mode; valid: off, default, strict"
    ):
        Redactor("loud")  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(text=st.text(), mode=st.sampled_from(REDACT_MODES))
def test_masking_is_idempotent_and_never_raises(text: str, mode: str) -> None:
    redactor = Redactor(mode)  # type: ignore[arg-type]
    once = redactor.text(text)
    assert redactor.text(once) == once


@settings(max_examples=200, deadline=None)
@given(
    prefix=st.text(alphabet=st.characters(blacklist_categories=["Nd"]), max_size=20),
    digits=st.sampled_from(["4111111111111111", "5500000000000004", "340000000000009"]),
)
def test_valid_cards_are_masked_in_any_surrounding_text(prefix: str, digits: str) -> None:
    masked = Redactor("default").text(f"{prefix} {digits} ")
    assert digits not in masked


_SENSITIVE_PIECES = st.sampled_from(
    [
        "sk-proj-abcdefghijklmnopqrstuv",
        "Bearer abcdefghijklmnop",
        "AKIAABCDEFGHIJKLMNOP",
        "ghp_" + "a" * 30,
        "xoxb-abcdefghijkl",
        "password=hunter",
        "api_key={{ k }}",
        "ann@example.org",
        "4111 1111 1111 1111",
        "DE89 3704 0044 0532 0130 00",
        "10.1.2.3",
        "fe80::1",
        "+44 20 7946 0958",
        "1234567",
        "a1" * 20,
        "12345678",  # digits a phone, a card or a number mask only from a longer run
        "1.2.3",
        "a:b",  # below: 13 Arabic-Indic digits, which the patterns' \d matches too
        "\u0663\u0664\u0665\u0666\u0667\u0668\u0669\u0660\u0661\u0662\u0663\u0664\u0665",
        "+1 555 123 4567",
    ]
)


@settings(max_examples=600)
@given(
    parts=st.lists(st.one_of(st.text(max_size=12), _SENSITIVE_PIECES), max_size=6),
    mode=st.sampled_from(("default", "strict")),
)
def test_the_unscanned_fast_path_never_skips_a_match(parts: list[str], mode: str) -> None:
    text = " ".join(parts)
    redactor = Redactor(mode)  # type: ignore[arg-type]
    scanned = text
    for masker in redactor.builtin:
        scanned = masker(scanned)
    assert redactor.text(text) == scanned
    assert redactor.text(text) == scanned  # and again from the memo


def test_identifiers_are_kept_where_the_plugin_writes_them_and_nowhere_else() -> None:
    token = "3f9a1c2b4d5e6f708192a3b4c5d6e7f8"  # what strict masking takes for a token
    item = {
        "node_id": "test_q.py::test_q[1234567]",
        "dataset": "orders-20261128",
        "datasets": {"orders-20261128": "9990156fef47"},
        "prompts": [{"name": "agent", "version": 1, "hash": "2fea438fd6440fab"}],
        "thresholds": ["p95_latency_ms <= 1000000"],
        "input": {"name": "order 12345678", "id": token},
        "trace": {
            "id": token,
            "observations": [
                {
                    "id": "1234567890abcdef",
                    "type": "generation",
                    "model": "ft:model:1234567",
                    "metadata": {
                        "cache_key": token * 2,
                        "response_id": f"chatcmpl-{token}",
                        "requested_model": "model-1234567",
                        "model": "order 12345678",
                        "attempts": [{"item_id": "order 12345678"}],
                    },
                    "model_parameters": {"name": "order 12345678"},
                },
                {"type": "span", "metadata": {"finish_reason": "order 12345678"}},
            ],
            "scores": [{"id": token, "trace_id": token, "comment": f"see {token}"}],
        },
    }
    governed = Governance(Redactor("strict")).value(item)
    masked = "order <NUMBER>"
    for field in ("node_id", "dataset", "datasets", "prompts", "thresholds"):
        assert governed[field] == item[field], field
    assert governed["input"] == {"name": masked, "id": "<TOKEN>"}
    observation, span = governed["trace"]["observations"]
    assert span["metadata"] == {"finish_reason": masked}  # written by the plugin in generations
    assert observation["id"] == "1234567890abcdef" and observation["model"] == "ft:model:1234567"
    assert observation["metadata"] == {
        "cache_key": token * 2,
        "response_id": f"chatcmpl-{token}",
        "requested_model": "model-1234567",
        "model": masked,  # the user's metadata
        "attempts": [{"item_id": masked}],  # deeper down every key is the user's
    }
    assert observation["model_parameters"] == {"name": masked}
    (score,) = governed["trace"]["scores"]
    assert score == {"id": token, "trace_id": token, "comment": "see <TOKEN>"}


def test_run_header_and_summary_identifiers_are_kept() -> None:
    version = "0.1.dev3+g1a2b3c4.d20261128"  # a dirty editable install's version
    header = {
        "id": "20261128T075222-afe8be",
        "environment": {"git_commit": "ab12" * 10, "git_branch": "fix/1234567"},
        "plugin_version": version,
        "params": {"base_url": "http://203.0.113.7:8000"},  # configuration, masked as text
    }
    summary = {
        "datasets": {"orders-20261128": "9990156fef47"},
        "thresholds": [{"expression": "x <= 1000000", "dataset": "orders-20261128"}],
        "repeats": {"items": [{"dataset": "orders-20261128", "item_id": "1234567"}]},
        "errors": ["evaluator failed for order 12345678"],
    }
    governance = Governance(Redactor("strict"))
    assert governance.value(header) == {
        **header,
        "params": {"base_url": "http://<IP>:8000"},
    }
    assert governance.value(summary) == {
        **summary,
        "errors": ["evaluator failed for order <NUMBER>"],
    }


def test_a_secret_in_json_text_is_masked_and_the_text_stays_json() -> None:
    # (before: the value's quotes went with it, and a tool call's arguments no longer parsed)
    arguments = json.dumps({"city": "Paris", "token": "sk-x", "password": "two words"})

    masked = Redactor("default").text(arguments)

    assert json.loads(masked) == {"city": "Paris", "token": "<SECRET>", "password": "<SECRET>"}


@pytest.mark.parametrize(
    ("key", "secret"),
    [
        ("password", True),
        ("DB_PASSWORD", True),
        ("api_key", True),
        ("session_token", True),
        ("AWS_SECRET_ACCESS_KEY", True),
        ("max_tokens", False),
        ("tokens", False),
        ("token_count", False),
        ("secretary", False),
    ],
)
def test_keys_that_name_a_secret(key: str, secret: bool) -> None:
    assert is_secret_name(key) is secret


def test_ids_and_names_are_kept_whole_however_long() -> None:
    # (before: cut at --llm-max-field-chars, two tests whose ids share a long prefix became one)
    ids = ["test_l.py::test_summary[" + "x" * 120 + variant + "]" for variant in "ab"]
    governance = Governance(Redactor("default"), max_field_chars=100)

    governed = [governance.value({"node_id": i, "item_id": i, "output": i}) for i in ids]

    assert [g["node_id"] for g in governed] == [g["item_id"] for g in governed] == ids
    assert all(g["output"].endswith("…[truncated, 146 chars]") for g in governed)


def test_a_failing_masker_is_named_with_its_error_type_never_its_message() -> None:
    pseudonyms = {"CUST-1001": "<CUSTOMER-A>"}

    def mask_customers(text: str) -> str:
        return re.sub(r"CUST-\d+", lambda m: pseudonyms[m.group(0)], text)

    redactor = Redactor("default", extra=[mask_customers])

    assert redactor.text("order of CUST-2002") == MASKING_FAILED
    (error,) = redactor.failures.values()
    assert "CUST-2002" not in error  # (before: "KeyError: 'CUST-2002'")
    assert error.startswith("raised KeyError at test_redaction.py:")


def test_a_line_the_plugin_writes_is_not_given_to_the_custom_maskers() -> None:
    def picky(text: str) -> str:
        if "<" in text:
            raise ValueError(text)
        return text.replace("Falcon", "<CODENAME>")

    governance = Governance(Redactor("default", extra=[picky]))
    line = "masker picky failed: raised ValueError; 1 text(s) stored as <MASKING FAILED> instead"
    assert governance.value({"errors": [line]}) == {"errors": [MASKING_FAILED]}

    assert governance.plugin_line(line) == line
    assert governance.value({"errors": [line, "Project Falcon"]}) == {
        "errors": [line, "Project <CODENAME>"]
    }


TEMPLATES_WITH_A_SECRET_NAMED_VARIABLE = [
    "Call the API with api_key={{key}} for {{name}}",
    "token: {{tok}}",
    "password={{ pw }} then {{name}}",  # spaces inside: one placeholder still
    "DB_PASSWORD={{db.password}}&GITHUB_TOKEN={{gh_token}}; secret:{{\u00e9t\u00e9}}",
    '{"api_key": "{{key}}", "token": "{{ tok }}"}',  # JSON text
    "api_key='{{key}}'",
]


@pytest.mark.parametrize("template", TEMPLATES_WITH_A_SECRET_NAMED_VARIABLE)
def test_a_template_variable_after_a_secret_name_is_kept(template: str) -> None:
    # (before: api_key={{key}} was stored as api_key=<SECRET>, a version lost its variable)
    redactor = Redactor("default")
    assert redactor.text(template) == template

    def compiled(text: str) -> str:
        prompt = Prompt(name="p", version=1, type="text", template=text)
        return prompt.compile(**{name: f"<{name}>" for name in prompt.variables}).text

    stored = redactor.text(template)
    assert compiled(stored) == compiled(template)  # the variables prompts.py compiles


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("api_key=sk-abc123 for {{name}}", "api_key=<SECRET> for {{name}}"),
        ('api_key="{{x}}abc"', 'api_key="<SECRET>"'),  # more than one placeholder: masked whole
        ("api_key={{x}}abc", "api_key=<SECRET>"),
        ("api_key={{ x }}abc", "api_key=<SECRET>"),
        ("token: abc{{x}}", "token: <SECRET>"),
        ('"password": " {{pw}} "', '"password": "<SECRET>"'),
        ("password={{user-name}}", "password=<SECRET>"),  # no variable prompts.py compiles
        ("password={{}}", "password=<SECRET>"),
    ],
)
def test_a_value_that_is_not_exactly_one_placeholder_is_still_masked(
    text: str, masked: str
) -> None:
    assert Redactor("default").text(text) == masked


@pytest.mark.parametrize(
    ("value", "placeholder"),
    [
        ("{{key}}", True),
        ("{{ key }}", True),
        ("{{a.b_c}}", True),
        ("{{key}}x", False),
        ("{{key}} {{name}}", False),
        ("{{user-name}}", False),
        ("{{ }}", False),
        ("hunter2", False),
    ],
)
def test_what_is_one_placeholder(value: str, placeholder: bool) -> None:
    assert is_placeholder(value) is placeholder
    variables = Prompt(name="p", version=1, type="text", template=value).variables
    assert (len(variables) == 1 and value.strip("{} ") == variables[0]) is placeholder


def test_an_old_prompt_version_compiles_its_variables_after_a_secret_name(
    pytester: pytest.Pytester, runs: Runs
) -> None:
    # (before: version 1 was stored as "api_key=<SECRET> for {{name}}" with variables ['name'],
    # and compiling it sent "<SECRET>" to the model)
    template = "Call the API with api_key={{key}} for {{name}}, token: {{ tok }}"
    pytester.makefile(".json", **{"prompts/x": json.dumps({"prompt": template})})
    pytester.makepyfile(
        test_x=dedent(
            """\
            def test_v1(prompt, llm):
                llm.generate(prompt("x").compile(key="K", name="N", tok="T"))
            """
        )
    )
    pytester.runpytest().assert_outcomes(passed=1)
    (item,) = runs.latest()["items"]
    (generation,) = [o for o in item["trace"]["observations"] if o["type"] == "generation"]
    assert generation["input"] == [
        {"role": "user", "content": "Call the API with api_key=<SECRET> for N, token: <SECRET>"}
    ]  # the compiled text holds the values: masked

    pytester.makefile(".json", **{"prompts/x": json.dumps({"prompt": "v2 {{name}}"})})
    pytester.makepyfile(
        test_x=dedent(
            """\
            def test_old(prompt):
                old = prompt("x", version=1)
                assert old.variables == ["key", "name", "tok"]
                text = old.compile(key="K", name="N", tok="T").text
                assert text == "Call the API with api_key=K for N, token: T"
            """
        )
    )
    pytester.runpytest().assert_outcomes(passed=1)
    with runs.open() as store:
        assert (store.get_prompt("x", version=1) or {})["prompt"] == template
