"""Uploading runs to Langfuse, against the contract-validating fake server (tests/fake_langfuse.py).

Every test reads back what the server accepted and compares it with the stored run, object by
object: traces and observations (as OTLP spans), scores, dataset items and prompt versions.
"""

from __future__ import annotations

import json
from pathlib import Path
from textwrap import dedent
from typing import Any

import httpcore  # noqa: F401  (one copy for all in-process pytester runs; httpx imports it lazily)
import pytest
from conftest import CAPITALS, Runs, jsonl
from fake_langfuse import (
    OTEL_PATH,
    FakeLangfuse,
    contracts_dir,
    fake_langfuse_fixture,  # noqa: F401 (the fake_langfuse fixture)
)

# In-process pytester sessions drop the modules they imported, while a package keeps its
# submodules as attributes: a fresh `langfuse` exporter importing `langfuse_send` from the
# package got the dropped copy, whose `except HttpError` missed the fresh sender's errors.
import pytest_llmobs.exporters.langfuse  # (one copy for all sessions)
from pytest_llmobs.cli import main as llmobs
from pytest_llmobs.exporters import (
    EXPORTERS,
    ConfigError,
    ExporterOptions,
    create_exporter,
    langfuse_inventory,
)
from pytest_llmobs.exporters.http import HttpSender
from pytest_llmobs.exporters.http_options import HttpOptions
from pytest_llmobs.exporters.langfuse_config import DEFAULT_BASE_URL, LangfuseConfig
from pytest_llmobs.exporters.langfuse_inventory import Inventory, PromptHistory
from pytest_llmobs.exporters.langfuse_payloads import dataset_item_id, stable_experiment_id
from pytest_llmobs.exporters.otlp_spans import unix_nanos
from pytest_llmobs.store import Store

SUITE = """
    import pytest
    from pytest_llmobs import propagate_attributes, start_span


    @pytest.mark.llm_dataset("capitals")
    def test_capital(item, llm, prompt, scorer):
        question = prompt("qa").compile(question=item.input)
        with propagate_attributes(
            user_id="user-7", session_id="session-3", tags=["geo", "smoke"],
            metadata={"suite": "capitals"},
        ):
            answer = llm.generate(question, temperature=0.0, max_tokens=20)
        scorer.score("accuracy", item.expected_output in answer.text)
        scorer.score("quality", 0.75, comment="fixed")
        scorer.score("verdict", "ok")


    def test_plain_fails(llm):
        with start_span("step", input={"n": 1}) as span:
            span.update(output={"answer": 42}, metadata={"stage": "final"})
            span.score("step_ok", True)
        assert False, "boom"
"""
QA_PROMPT = {
    "type": "chat",
    "prompt": [
        {"role": "system", "content": "Answer with one word."},
        {"role": "user", "content": "{{question}}"},
    ],
    "config": {"temperature": 0},
    "labels": ["production"],
}
FAST = {"LLMOBS_UPLOAD_BACKOFF": "0.01", "LLMOBS_UPLOAD_MAX_ATTEMPTS": "2"}


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makefile(".jsonl", **{"datasets/capitals": jsonl(CAPITALS[:3])})
    pytester.makefile(".json", **{"prompts/qa": json.dumps(QA_PROMPT)})
    pytester.makepyfile(test_suite=dedent(SUITE))
    return pytester


def use_server(monkeypatch: pytest.MonkeyPatch, fake: FakeLangfuse, **extra: str) -> None:
    for key in ("LANGFUSE_HOST", "LANGFUSE_TRACING_ENVIRONMENT", "LANGFUSE_RELEASE"):
        monkeypatch.delenv(key, raising=False)
    for key, value in {**fake.env(), **FAST, **extra}.items():
        monkeypatch.setenv(key, value)


def decode(attributes: dict[str, Any], key: str) -> Any:
    return json.loads(attributes[key]) if key in attributes else None


def flat(value: Any) -> Any:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def assert_uploaded(
    run: dict[str, Any], fake: FakeLangfuse, store: Store, *, alone: bool = True
) -> None:
    """Every observation, score, dataset item and prompt version of ``run`` is on the server
    (and, when ``alone``, nothing else)."""
    repeats = any(item["repeat"] for item in run["items"])
    observations = scores = 0
    for item in run["items"]:
        trace = item["trace"]
        for index, obs in enumerate(trace["observations"]):
            observations += 1
            span = fake.spans[(trace["id"], obs["id"])]
            attrs = span.attributes
            assert span.parent_id == obs["parent_id"]
            assert span.name == obs["name"]
            assert span.start == unix_nanos(obs["start_time"])
            assert attrs["langfuse.observation.type"] == obs["type"]
            assert attrs["langfuse.observation.level"] == obs["level"]
            assert attrs.get("langfuse.observation.status_message") == obs["status_message"]
            assert span.status_code == (2 if obs["level"] == "ERROR" else 0)
            assert decode(attrs, "langfuse.observation.input") == obs["input"]
            assert decode(attrs, "langfuse.observation.output") == obs["output"]
            for key, value in obs["metadata"].items():
                assert attrs[f"langfuse.observation.metadata.{key}"] == flat(value)
            if obs["type"] == "generation":
                assert attrs["langfuse.observation.model.name"] == obs["model"]
                assert attrs["gen_ai.request.model"] == obs["model"]
                assert decode(attrs, "langfuse.observation.model.parameters") == (
                    obs["model_parameters"] or None
                )
                assert decode(attrs, "langfuse.observation.usage_details") == obs["usage"]
                assert attrs["gen_ai.usage.input_tokens"] == obs["usage"]["input"]
                assert decode(attrs, "langfuse.observation.cost_details") == {"total": obs["cost"]}
                if obs["prompt_name"]:
                    assert attrs["langfuse.observation.prompt.name"] == obs["prompt_name"]
                    server = fake.prompts[obs["prompt_name"]]
                    linked = server[attrs["langfuse.observation.prompt.version"] - 1]
                    local = store.get_prompt(obs["prompt_name"], version=obs["prompt_version"])
                    assert local is not None and linked["prompt"] == local["prompt"]
            if index == 0:
                assert attrs["langfuse.trace.name"] == trace["name"]
                assert attrs.get("user.id") == trace["user_id"]
                assert attrs.get("session.id") == trace["session_id"]
                assert attrs.get("langfuse.trace.tags", []) == trace["tags"]
                for key, value in trace["metadata"].items():
                    assert attrs[f"langfuse.trace.metadata.{key}"] == flat(value)
                if item["dataset"]:  # in the run's experiment on its dataset (per repeat)
                    dataset = fake.datasets[item["dataset"]]
                    name = run["name"] + (f" [repeat {item['repeat']}]" if repeats else "")
                    assert attrs["langfuse.experiment.name"] == name
                    assert attrs["langfuse.experiment.id"] == stable_experiment_id(
                        dataset["projectId"], dataset["id"], name
                    )
                    item_key = dataset_item_id(item["dataset"], item["item_id"])
                    assert attrs["langfuse.experiment.item.id"] == item_key
                    assert attrs["langfuse.experiment.dataset.id"] == dataset["id"]
                    assert attrs["langfuse.experiment.item.root_observation_id"] == obs["id"]
                    expected = decode(attrs, "langfuse.experiment.item.expected_output")
                    assert expected == item["expected_output"]
                    uploaded = fake.dataset_items[item_key]
                    assert uploaded["input"] == item["input"]
                    assert uploaded["expectedOutput"] == item["expected_output"]
                else:  # in no experiment
                    assert not [k for k in attrs if k.startswith("langfuse.experiment.")]
        for score in trace["scores"]:
            scores += 1
            body = fake.scores[score["id"]]
            assert body["traceId"] == trace["id"]
            assert body.get("observationId") == score["observation_id"]
            assert body["dataType"] == score["data_type"]
            value = {"BOOLEAN": int(bool(score["value"]))}.get(score["data_type"], score["value"])
            assert body["value"] == value
    if alone:
        assert len(fake.spans) == observations
        assert len(fake.scores) == scores
        items = {dataset_item_id(i["dataset"], i["item_id"]) for i in run["items"] if i["dataset"]}
        assert set(fake.dataset_items) == items


def test_upload_after_session_sends_everything(
    suite: pytest.Pytester, runs: Runs, fake_langfuse: FakeLangfuse, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_server(monkeypatch, fake_langfuse)
    result = suite.runpytest("--llm-upload=langfuse", "--llm-repeat=2")
    result.assert_outcomes(passed=6, failed=1)  # the upload does not change the outcome
    result.stdout.fnmatch_lines(
        [
            f"upload to langfuse {fake_langfuse.url}: run *: sent 1 prompts, 1 datasets, "
            "3 dataset items, 7 traces, * observations, 19 scores"
        ]
    )
    run = runs.latest()
    with runs.open() as store:
        assert_uploaded(run, fake_langfuse, store)
    assert {p["name"] for p in fake_langfuse.prompts.values() for p in p} == {"qa"}
    experiment_names = {
        s.attributes["langfuse.experiment.name"]
        for s in fake_langfuse.spans.values()
        if "langfuse.experiment.name" in s.attributes
    }
    assert experiment_names == {f"{run['name']} [repeat 0]", f"{run['name']} [repeat 1]"}
    assert fake_langfuse.count("POST", OTEL_PATH) >= 1


def test_upload_twice_stores_the_same_objects(
    suite: pytest.Pytester, runs: Runs, fake_langfuse: FakeLangfuse, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_server(monkeypatch, fake_langfuse)
    suite.runpytest("--llm-upload=langfuse").assert_outcomes(passed=3, failed=1)
    first = fake_langfuse.snapshot()
    with runs.open() as store:
        assert_uploaded(runs.latest(), fake_langfuse, store)
    assert llmobs(["upload", "latest", "--store", str(runs.directory / ".llmobs")]) == 0
    assert fake_langfuse.snapshot() == first


def test_outage_leaves_everything_pending_then_pending_sends_only_that(
    suite: pytest.Pytester,
    runs: Runs,
    fake_langfuse: FakeLangfuse,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use_server(monkeypatch, fake_langfuse)
    suite.runpytest().assert_outcomes(passed=3, failed=1)
    store_dir = str(runs.directory / ".llmobs")
    fake_langfuse.fail("/", 503, times=None)
    assert llmobs(["upload", "--store", store_dir]) == 1
    out = capsys.readouterr().out
    assert "sent nothing" in out
    assert (
        "NOT SENT (pending; retry with `llmobs upload --pending`): 1 prompts, 1 datasets, "
        "3 dataset items, 4 traces" in out
    )
    assert f"first error: GET {fake_langfuse.url}/api/public/v2/prompts/qa: HTTP 503" in out
    # The circuit opened after the first request's retries: the rest was not even tried.
    assert len(fake_langfuse.requests) == 2

    fake_langfuse.heal()
    fake_langfuse.requests.clear()
    assert llmobs(["upload", "--pending", "--store", store_dir]) == 0
    out = capsys.readouterr().out
    assert "sent 1 prompts, 1 datasets, 3 dataset items, 4 traces" in out
    with runs.open() as store:
        assert_uploaded(runs.latest(), fake_langfuse, store)
    assert llmobs(["upload", "--pending", "--store", store_dir]) == 0
    assert "langfuse: nothing pending" in capsys.readouterr().out


def test_a_run_not_sent_for_want_of_keys_is_sent_by_pending_once_they_are_set(
    suite: pytest.Pytester,
    runs: Runs,
    fake_langfuse: FakeLangfuse,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use_server(monkeypatch, fake_langfuse)
    for key in ("LANGFUSE_PUBLIC_KEY", "LANGFUSE_SECRET_KEY"):
        monkeypatch.delenv(key)
    result = suite.runpytest("--llm-upload=langfuse")
    result.stdout.fnmatch_lines(["*NOT SENT (pending; retry*", "*first error: not sent: *"])
    assert fake_langfuse.requests == []
    store_dir = str(runs.directory / ".llmobs")

    use_server(monkeypatch, fake_langfuse)
    assert llmobs(["upload", "--pending", "--store", store_dir]) == 0

    assert "sent 1 prompts, 1 datasets, 3 dataset items, 4 traces" in capsys.readouterr().out
    with runs.open() as store:
        assert_uploaded(runs.latest(), fake_langfuse, store)
    assert llmobs(["upload", "--pending", "--store", store_dir]) == 0
    assert "langfuse: nothing pending" in capsys.readouterr().out


def test_a_run_sent_before_whose_upload_again_fails_is_pending_until_sent(
    suite: pytest.Pytester,
    runs: Runs,
    fake_langfuse: FakeLangfuse,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use_server(monkeypatch, fake_langfuse)
    suite.runpytest("--llm-upload=langfuse").stdout.fnmatch_lines(["*: sent 1 prompts, *"])
    delivered = fake_langfuse.snapshot()
    store_dir = str(runs.directory / ".llmobs")
    fake_langfuse.fail("/", 503, times=None)

    assert llmobs(["upload", "--store", store_dir]) == 1
    assert "NOT SENT (pending; retry with `llmobs upload --pending`): 1 prompts" in (
        capsys.readouterr().out
    )
    assert llmobs(["upload", "--pending", "--store", store_dir]) == 1  # still down
    out = capsys.readouterr().out
    assert "NOT SENT (pending" in out and "skipped" not in out

    fake_langfuse.heal()
    assert llmobs(["upload", "--pending", "--store", store_dir]) == 0
    assert "sent 1 prompts, 1 datasets, 3 dataset items, 4 traces" in capsys.readouterr().out
    assert fake_langfuse.snapshot() == delivered  # sent again, overwritten: nothing duplicated
    assert llmobs(["upload", "--pending", "--store", store_dir]) == 0
    assert "langfuse: nothing pending" in capsys.readouterr().out


def test_pending_resends_only_what_failed(
    suite: pytest.Pytester,
    runs: Runs,
    fake_langfuse: FakeLangfuse,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use_server(monkeypatch, fake_langfuse)
    fake_langfuse.fail("/api/public/ingestion", 500, times=None)
    result = suite.runpytest("--llm-upload=langfuse")
    result.assert_outcomes(passed=3, failed=1)
    assert result.ret == 1  # the failing test, not the upload
    result.stdout.fnmatch_lines(
        [
            "*NOT SENT (pending; retry with `llmobs upload --pending`): 10 scores",
            f"*first error: POST {fake_langfuse.url}/api/public/ingestion: HTTP 500*",
        ]
    )
    fake_langfuse.heal()
    fake_langfuse.requests.clear()
    assert llmobs(["upload", "--pending", "--store", str(runs.directory / ".llmobs")]) == 0
    assert "sent 10 scores" in capsys.readouterr().out
    assert {r.path for r in fake_langfuse.requests} == {"/api/public/ingestion"}
    with runs.open() as store:
        assert_uploaded(runs.latest(), fake_langfuse, store)


@pytest.mark.parametrize(
    ("path", "content_type", "body", "expected"),
    [
        (
            "/api/public/v2/datasets",
            "text/html",
            b"<html><body>Welcome to nginx!</body></html>",
            "JSON (got text/html: <html><body>Welcome to nginx!</body></html>)",
        ),
        ("/api/public/v2/datasets", "application/json", b"{not json", "JSON (got *: {not json)"),
        (
            "/api/public/v2/datasets",
            "application/json",
            b'["a list"]',
            'a JSON dataset object (got JSON list: [[]"a list"])',
        ),
        ("/api/public/v2/prompts", "text/html", b"<p>hi</p>", "JSON (got text/html: <p>hi</p>)"),
        ("/api/public/ingestion", "text/html", b"<p>hi</p>", "JSON (got text/html: <p>hi</p>)"),
    ],
)
def test_a_success_that_is_no_api_answer_is_an_upload_error_and_stays_pending(
    suite: pytest.Pytester,
    runs: Runs,
    fake_langfuse: FakeLangfuse,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    path: str,
    content_type: str,
    body: bytes,
    expected: str,
) -> None:
    use_server(monkeypatch, fake_langfuse)
    fake_langfuse.fail(path, 200, body=body, content_type=content_type, times=None)
    result = suite.runpytest("--llm-upload=langfuse")
    result.assert_outcomes(passed=3, failed=1)
    assert result.ret == 1  # the failing test, not the upload
    result.stdout.fnmatch_lines(
        [
            "*NOT SENT (pending; retry with `llmobs upload --pending`): *",
            f"*first error: * {fake_langfuse.url}{path}*: HTTP 200 answer is not {expected}",
        ]
    )
    assert "Traceback" not in str(result.stdout) + str(result.stderr)
    store_dir = str(runs.directory / ".llmobs")
    assert llmobs(["upload", "--store", store_dir]) == 1  # the command says the same
    out = capsys.readouterr().out
    assert f"{path}" in out and "HTTP 200 answer is not" in out

    fake_langfuse.heal()
    assert llmobs(["upload", "--pending", "--store", store_dir]) == 0
    capsys.readouterr()
    with runs.open() as store:
        assert_uploaded(runs.latest(), fake_langfuse, store)


def test_strict_upload_fails_the_session(
    suite: pytest.Pytester, fake_langfuse: FakeLangfuse, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_server(monkeypatch, fake_langfuse)
    suite.makepyfile(test_suite="def test_ok(): pass")
    fake_langfuse.fail(OTEL_PATH, 503, times=None)
    lenient = suite.runpytest("--llm-upload=langfuse")
    assert lenient.ret == 0
    lenient.stdout.fnmatch_lines(["*NOT SENT*: 1 traces, 1 observations"])
    assert suite.runpytest("--llm-upload=langfuse", "--llm-upload-strict").ret == 1


def test_event_errors_in_a_207_answer_count_as_failures(
    suite: pytest.Pytester, runs: Runs, fake_langfuse: FakeLangfuse, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_server(monkeypatch, fake_langfuse)
    fake_langfuse.reject_events(
        lambda e: (400, "invalid score") if e["body"].get("name") == "verdict" else None
    )
    result = suite.runpytest("--llm-upload=langfuse")
    result.stdout.fnmatch_lines(
        [
            "*NOT SENT (pending*): 3 scores",
            "*first error: POST */api/public/ingestion: score-create * refused with status 400: "
            "invalid score",
        ]
    )
    assert {s["name"] for s in fake_langfuse.scores.values()} == {"accuracy", "quality", "step_ok"}


def test_rate_limit_honours_retry_after_and_timeouts_are_retried(
    suite: pytest.Pytester, runs: Runs, fake_langfuse: FakeLangfuse, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_server(monkeypatch, fake_langfuse)
    suite.runpytest().assert_outcomes(passed=3, failed=1)
    fake_langfuse.fail("/api/public/v2/datasets", 429, retry_after=7, method="POST")
    fake_langfuse.delay(OTEL_PATH, 2.5)  # longer than the client's timeout: retried
    waits: list[float] = []
    with runs.open() as store:
        options = ExporterOptions(
            store=store,
            environ=fake_langfuse.env(),
            http=HttpOptions(timeout=1.0, max_attempts=5, sleep=waits.append),
        )
        run = runs.latest()
        report = create_exporter("langfuse", options).export(run)
        assert report.ok, report.lines()
        # Retry-After, and a backoff after the timed-out OTLP post (a loaded machine may time
        # out an earlier request too: its backoff then comes first)
        assert 7.0 in waits
        assert len(waits) >= 2 and report.requests >= fake_langfuse.count("POST", "/") + 1
        assert_uploaded(run, fake_langfuse, store)


def test_a_retry_after_longer_than_a_minute_is_not_waited_for(
    suite: pytest.Pytester, runs: Runs, fake_langfuse: FakeLangfuse, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_server(monkeypatch, fake_langfuse)
    suite.runpytest().assert_outcomes(passed=3, failed=1)
    fake_langfuse.fail("/api/public/v2/datasets", 429, retry_after=3600, method="POST")
    waits: list[float] = []
    with runs.open() as store:
        options = ExporterOptions(
            store=store, environ=fake_langfuse.env(), http=HttpOptions(sleep=waits.append)
        )
        report = create_exporter("langfuse", options).export(runs.latest())
    assert not report.ok and waits == []  # said at once, not after minutes of silence
    assert any(
        "the server asks to wait 3600 s before retrying, more than the 60 s an upload waits; "
        "not retried" in line
        for line in report.lines()
    ), report.lines()
    assert fake_langfuse.count("POST", "/api/public/v2/datasets") == 1


def test_too_large_batches_are_split(
    suite: pytest.Pytester, runs: Runs, fake_langfuse: FakeLangfuse, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_server(monkeypatch, fake_langfuse)
    suite.runpytest().assert_outcomes(passed=3, failed=1)
    fake_langfuse.max_body_bytes(4000)
    with runs.open() as store:
        options = ExporterOptions(store=store, environ=fake_langfuse.env())
        run = runs.latest()
        report = create_exporter("langfuse", options).export(run)
        assert report.ok, report.lines()
        assert_uploaded(run, fake_langfuse, store)
    refused = [r for r in fake_langfuse.requests if r.status == 413]
    assert refused and all(r.size > 4000 for r in refused)
    assert max(r.size for r in fake_langfuse.requests if r.status < 300) <= 4000


def test_an_oversized_field_is_truncated_with_a_marker(
    pytester: pytest.Pytester,
    runs: Runs,
    fake_langfuse: FakeLangfuse,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    use_server(monkeypatch, fake_langfuse)
    pytester.makepyfile(
        """
        from pytest_llmobs import start_span

        def test_big():
            with start_span("big") as span:
                span.update(output="é" * 1_500_000)
        """
    )
    # The store keeps the field whole (its own limit is raised), so the uploader must cut it.
    result = pytester.runpytest("--llm-upload=langfuse", "--llm-max-field-chars=5000000")
    result.stdout.fnmatch_lines(["*sent 1 traces, 2 observations", "*truncated * oversized*"])
    (span,) = [s for s in fake_langfuse.spans.values() if s.name == "big"]
    output = span.attributes["langfuse.observation.output"]
    text = json.loads(output)  # the output's JSON string, cut inside its quotes
    assert text.endswith(" chars]") and "…[truncated " in text
    assert len(output.encode()) < 1_000_000


def test_nul_which_postgres_refuses_reaches_langfuse_as_the_replacement_character(
    pytester: pytest.Pytester,
    runs: Runs,
    fake_langfuse: FakeLangfuse,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The real server keeps dataset items and prompts in Postgres, which refuses U+0000 with
    a bare 500 (the fake answers so too): sent as it is, one NUL kept the whole run pending."""
    use_server(monkeypatch, fake_langfuse)
    items = [
        {"id": "nul", "input": "Capital of\u0000France?", "expected_output": {"a\u0000": "P"}},
        {"id": "plain", "input": "Capital of Peru?", "expected_output": "Lima"},
    ]
    pytester.makefile(".jsonl", **{"datasets/caps": "\n".join(json.dumps(i) for i in items)})
    pytester.makefile(".json", **{"prompts/qa": json.dumps({"prompt": "Q\u0000: {{q}}"})})
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.llm_dataset("caps")
        def test_cap(item, llm, prompt):
            llm.generate(prompt("qa").compile(q=item.input))
        """
    )
    result = pytester.runpytest("--llm-upload=langfuse")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*sent 1 prompts, 1 datasets, 2 dataset items, 2 traces, *"])
    uploaded = fake_langfuse.dataset_items[dataset_item_id("caps", "nul")]
    assert (uploaded["input"], uploaded["expectedOutput"]) == (
        "Capital of\ufffdFrance?",
        {"a\ufffd": "P"},
    )
    (version,) = fake_langfuse.prompts["qa"]
    assert version["prompt"] == "Q\ufffd: {{q}}"
    (stored,) = runs.latest()["items"][:1]
    assert stored["input"] == "Capital of\u0000France?"  # the store keeps the text as it was

    # the server's version is recognised as the stored one: no second version, no conflict
    assert llmobs(["upload", "latest", "--store", str(runs.directory / ".llmobs")]) == 0
    assert len(fake_langfuse.prompts["qa"]) == 1


def test_a_cut_dataset_item_leaves_the_traces_expected_output_whole(
    pytester: pytest.Pytester,
    runs: Runs,
    fake_langfuse: FakeLangfuse,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Fitting the dataset item under the event limit cut the run's own value in place, so the
    trace's attribute was cut twice and its marker counted only the second cut."""
    use_server(monkeypatch, fake_langfuse)
    big = {"id": "big", "input": "x" * 600_000, "expected_output": {"answer": "y" * 600_000}}
    pytester.makefile(".jsonl", **{"datasets/big": json.dumps(big)})
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.llm_dataset("big")
        def test_big(item):
            pass
        """
    )
    result = pytester.runpytest("--llm-upload=langfuse", "--llm-max-field-chars=5000000")
    result.assert_outcomes(passed=1)
    (root,) = [s for s in fake_langfuse.spans.values() if s.parent_id is None]
    attrs = root.attributes
    experiment = attrs["langfuse.experiment.item.expected_output"]
    assert experiment == attrs["langfuse.observation.metadata.expected_output"]
    answer = json.loads(experiment)["answer"]  # cut inside: still the object, every key kept
    kept = answer.index("…[truncated ")
    cut = int(answer.rsplit("…[truncated ", 1)[1].split(" ")[0])
    assert kept + cut == len(big["expected_output"]["answer"])
    uploaded = fake_langfuse.dataset_items[dataset_item_id("big", "big")]
    assert "…[truncated " in json.dumps(uploaded, ensure_ascii=False)  # fitted under 1 MB


def test_legacy_mode_sends_ingestion_events_and_run_items(
    suite: pytest.Pytester, runs: Runs, fake_langfuse: FakeLangfuse, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_server(monkeypatch, fake_langfuse)
    result = suite.runpytest("--llm-upload=langfuse", "--llm-langfuse-legacy", "--llm-repeat=2")
    result.stdout.fnmatch_lines(
        [
            "*sent 1 prompts, 1 datasets, 3 dataset items, 7 traces, "
            "* observations, 19 scores, 6 run items"
        ]
    )
    assert not fake_langfuse.spans
    run = runs.latest()
    for item in run["items"]:
        trace = item["trace"]
        assert fake_langfuse.traces[trace["id"]]["name"] == trace["name"]
        for obs in trace["observations"]:
            body = fake_langfuse.observations[obs["id"]]
            assert (body["type"], body["traceId"], body.get("parentObservationId")) == (
                obs["type"],
                trace["id"],
                obs["parent_id"],
            )
            assert body["input"] == obs["input"] and body["output"] == obs["output"]
    runs_by_name = {key[0] for key in fake_langfuse.run_items}
    assert runs_by_name == {f"{run['name']} [repeat 0]", f"{run['name']} [repeat 1]"}
    assert len(fake_langfuse.scores) == sum(len(i["trace"]["scores"]) for i in run["items"])


def test_prompt_versions_are_mapped_to_the_servers_numbers(
    suite: pytest.Pytester, runs: Runs, fake_langfuse: FakeLangfuse, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_server(monkeypatch, fake_langfuse)
    suite.runpytest().assert_outcomes(passed=3, failed=1)  # qa version 1
    changed = {**QA_PROMPT, "config": {"temperature": 0.5}}
    suite.makefile(".json", **{"prompts/qa": json.dumps(changed)})
    suite.runpytest("--llm-upload=langfuse").assert_outcomes(passed=3, failed=1)  # version 2
    (server,) = fake_langfuse.prompts["qa"]  # the server had none: version 2 became its 1
    assert server["config"] == {"temperature": 0.5}
    assert server["labels"] == ["latest"]  # (the local labels stay local)
    with runs.open() as store:
        assert_uploaded(runs.latest(), fake_langfuse, store)


def test_an_upload_never_moves_a_label_applications_fetch(
    suite: pytest.Pytester, runs: Runs, fake_langfuse: FakeLangfuse, monkeypatch: pytest.MonkeyPatch
) -> None:
    # (before, the prompt file's labels were sent: `production` moved to the version under test,
    # and applications fetching it got the test's candidate)
    use_server(monkeypatch, fake_langfuse)
    suite.runpytest().assert_outcomes(passed=3, failed=1)  # qa 1, labelled production locally
    changed = {**QA_PROMPT, "config": {"temperature": 0.5}}
    suite.makefile(".json", **{"prompts/qa": json.dumps(changed)})
    suite.runpytest().assert_outcomes(passed=3, failed=1)  # qa 2, labelled production locally
    team = {"name": "qa", "type": "text", "prompt": "the team's", "labels": ["production"]}
    fake_langfuse._create_prompt(team)

    assert llmobs(["upload", "latest", "--store", str(runs.directory / ".llmobs")]) == 0

    assert [(p["version"], p["labels"]) for p in fake_langfuse.prompts["qa"]] == [
        (1, ["production"]),
        (2, ["latest"]),
    ]
    assert fake_langfuse.prompts["qa"][1]["config"] == {"temperature": 0.5}


@pytest.mark.parametrize(
    ("path", "status", "body", "error", "not_sent"),
    [
        (
            OTEL_PATH,
            200,
            b'{"partialSuccess":{"rejectedSpans":"n/a"}}',
            "POST {url}" + OTEL_PATH + ": partialSuccess.rejectedSpans is not a number",
            "4 traces, 8 observations",
        ),
        (
            "/api/public/ingestion",
            207,
            b'{"successes":[],"errors":true}',
            "POST {url}/api/public/ingestion: HTTP 207 answer is not a JSON object with "
            '"successes" and "errors" lists (got JSON dict: {"successes":[],"errors":true})',
            "10 scores",
        ),
    ],
    ids=["otlp", "ingestion"],
)
def test_an_odd_field_in_a_success_answer_is_an_upload_error_not_a_crash(
    suite: pytest.Pytester,
    runs: Runs,
    fake_langfuse: FakeLangfuse,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    path: str,
    status: int,
    body: bytes,
    error: str,
    not_sent: str,
) -> None:
    # (before: a ValueError or TypeError; the command ended with a traceback, and a session
    # said "sent nothing ... upload stopped by an unexpected ValueError (a bug: report it)")
    use_server(monkeypatch, fake_langfuse)
    error = error.replace("{url}", fake_langfuse.url)
    fake_langfuse.fail(path, status, body=body, content_type="application/json", times=None)
    result = suite.runpytest("--llm-upload=langfuse")
    result.assert_outcomes(passed=3, failed=1)
    out = str(result.stdout)
    assert ": sent 1 prompts, 1 datasets, 3 dataset items, " in out
    assert f"NOT SENT (pending; retry with `llmobs upload --pending`): {not_sent}\n" in out
    assert f"first error: {error}" in out
    assert "Traceback" not in out + str(result.stderr) and "a bug" not in out
    store_dir = str(runs.directory / ".llmobs")
    assert llmobs(["upload", "--store", store_dir]) == 1  # the command says the same
    captured = capsys.readouterr()
    assert f"first error: {error}" in captured.out and not captured.err

    fake_langfuse.heal()
    assert llmobs(["upload", "--pending", "--store", store_dir]) == 0
    assert f"sent {not_sent}" in capsys.readouterr().out
    with runs.open() as store:
        assert_uploaded(runs.latest(), fake_langfuse, store)


def test_a_conflicting_prompt_history_is_reported_not_overwritten(
    suite: pytest.Pytester, fake_langfuse: FakeLangfuse, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_server(monkeypatch, fake_langfuse)
    for text in ("someone else's", "prompt"):
        fake_langfuse._create_prompt({"name": "qa", "type": "text", "prompt": text})
    result = suite.runpytest("--llm-upload=langfuse")
    result.stdout.fnmatch_lines(
        [
            "*NOT SENT*: 1 prompts, 3 traces, 6 observations",  # (linked, they would name v1)
            "*first error: prompt 'qa' version 1: the server already has "
            "versions up to 2 with other content; not created*",
        ]
    )
    assert len(fake_langfuse.prompts["qa"]) == 2


def test_traces_wait_for_their_prompt_and_are_linked_once_it_is_sent(
    suite: pytest.Pytester,
    runs: Runs,
    fake_langfuse: FakeLangfuse,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # (before, the traces went out linked to local version 1, which the server lacked, and
    # --pending then created the prompt without ever linking them)
    use_server(monkeypatch, fake_langfuse)
    suite.runpytest().assert_outcomes(passed=3, failed=1)
    store_dir = str(runs.directory / ".llmobs")
    fake_langfuse._create_prompt({"name": "qa", "type": "text", "prompt": "another"})

    assert llmobs(["upload", "--store", store_dir]) == 1

    out = capsys.readouterr().out
    assert (
        "NOT SENT (pending; retry with `llmobs upload --pending`): 1 prompts, 3 traces, 6 " in out
    )
    linked = [
        s
        for s in fake_langfuse.spans.values()
        if "langfuse.observation.prompt.name" in s.attributes
    ]
    assert linked == []  # the plain test's trace went; none names a prompt version
    fake_langfuse.heal()
    fake_langfuse.prompts["qa"].clear()  # the conflicting history was reconciled

    assert llmobs(["upload", "--pending", "--store", store_dir]) == 0

    assert "sent 1 prompts, 3 traces" in capsys.readouterr().out
    with runs.open() as store:
        assert_uploaded(runs.latest(), fake_langfuse, store)


def _root(fake: FakeLangfuse, item: dict[str, Any]) -> dict[str, Any]:
    """The attributes of the root span of ``item``'s trace on the server."""
    trace = item["trace"]
    return fake.spans[(trace["id"], trace["observations"][0]["id"])].attributes


def test_an_older_run_sent_after_a_newer_one_gets_its_prompt_version_created_next(
    suite: pytest.Pytester,
    runs: Runs,
    fake_langfuse: FakeLangfuse,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # (before, `--pending` refused it for good: "the server already has versions up to 1 with
    # other content", that content being the store's own version 2, sent by the newer run)
    use_server(monkeypatch, fake_langfuse)
    fake_langfuse.fail("/", 503, times=None)
    suite.runpytest("--llm-upload=langfuse").assert_outcomes(passed=3, failed=1)  # qa v1: pending
    older = runs.latest()
    fake_langfuse.heal()
    reworded = [{"role": "system", "content": "Reply in one word."}, QA_PROMPT["prompt"][1]]
    suite.makefile(".json", **{"prompts/qa": json.dumps({**QA_PROMPT, "prompt": reworded})})
    suite.runpytest("--llm-upload=langfuse").assert_outcomes(passed=3, failed=1)  # v2: server 1
    store_dir = str(runs.directory / ".llmobs")

    assert llmobs(["upload", "--pending", "--store", store_dir]) == 0

    out = capsys.readouterr().out
    assert f"run {older['id']}: sent 1 prompts, 1 datasets, 3 dataset items, 4 traces" in out
    assert (
        "prompt 'qa': local version 1 created as server version 2, after the server's versions "
        "of other local ones (its `latest` label is on it now)" in out
    )
    assert [p["prompt"][0]["content"] for p in fake_langfuse.prompts["qa"]] == [
        "Reply in one word.",
        "Answer with one word.",
    ]
    with runs.open() as store:  # its generations name server version 2, of their content
        assert_uploaded(older, fake_langfuse, store, alone=False)
        assert_uploaded(runs.latest(), fake_langfuse, store, alone=False)
    assert llmobs(["upload", "--pending", "--store", store_dir]) == 0
    assert "langfuse: nothing pending" in capsys.readouterr().out


def test_a_server_prompt_version_the_store_does_not_know_still_stops_an_older_run(
    suite: pytest.Pytester,
    runs: Runs,
    fake_langfuse: FakeLangfuse,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use_server(monkeypatch, fake_langfuse)
    fake_langfuse.fail("/", 503, times=None)
    suite.runpytest("--llm-upload=langfuse").assert_outcomes(passed=3, failed=1)  # qa v1: pending
    fake_langfuse.heal()
    fake_langfuse._create_prompt({"name": "qa", "type": "text", "prompt": "someone else's"})
    reworded = [{"role": "system", "content": "Reply in one word."}, QA_PROMPT["prompt"][1]]
    suite.makefile(".json", **{"prompts/qa": json.dumps({**QA_PROMPT, "prompt": reworded})})
    suite.runpytest("--llm-upload=langfuse").assert_outcomes(passed=3, failed=1)  # v2: server 2

    assert llmobs(["upload", "--pending", "--store", str(runs.directory / ".llmobs")]) == 1

    assert (
        "first error: prompt 'qa' version 1: the server already has versions up to 2 with other "
        "content; not created: its version(s) 1 hold content this store does not know"
    ) in capsys.readouterr().out
    assert len(fake_langfuse.prompts["qa"]) == 2


def test_a_server_prompt_is_known_by_its_content_or_the_hash_its_commit_message_names() -> None:
    store = Store(None)
    try:
        content = {"type": "text", "prompt": "Hello {{name}}", "config": {}}
        version = store.register_prompt("greet", "0123abcd", content, [])
        history = PromptHistory(None, store, Inventory())  # type: ignore[arg-type]  (no request)
        ours = f"pytest-llmobs: local version {version} (0123abcd)"
        assert history.known("greet", {**content, "commitMessage": "made in the UI"})
        assert history.known(
            "greet", {**content, "prompt": "Hello {{ name }}", "commitMessage": ours}
        )
        assert not history.known("greet", {**content, "prompt": "Hi", "commitMessage": None})
        other = "pytest-llmobs: local version 1 (ffff)"  # (a hash this store does not hold)
        assert not history.known("greet", {**content, "prompt": "Hi", "commitMessage": other})
    finally:
        store.close()


def test_an_older_run_sent_after_a_newer_one_links_its_dataset_items_without_overwriting_them(
    suite: pytest.Pytester,
    runs: Runs,
    fake_langfuse: FakeLangfuse,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # (before, `--pending` upserted the older items over the newer ones, and the dataset's
    # metadata named the older version)
    use_server(monkeypatch, fake_langfuse)
    store_dir = str(runs.directory / ".llmobs")
    fake_langfuse.fail("/", 503, times=None)
    suite.runpytest("--llm-upload=langfuse").assert_outcomes(passed=3, failed=1)  # version A
    older = runs.latest()
    fake_langfuse.heal()
    edited = [{**item, "expected_output": item["expected_output"] + "!"} for item in CAPITALS[:3]]
    suite.makefile(".jsonl", **{"datasets/capitals": jsonl(edited)})
    suite.runpytest("--llm-upload=langfuse").assert_outcomes(passed=3, failed=1)  # version B
    newer = runs.latest()
    version_b = newer["datasets"]["capitals"]
    held = {k: v["expectedOutput"] for k, v in fake_langfuse.dataset_items.items()}
    assert sorted(held.values()) == ["Paris!", "Rome!", "Tokyo!"]

    assert llmobs(["upload", "--pending", "--store", store_dir]) == 0

    out = capsys.readouterr().out
    assert (
        f"dataset 'capitals': the server holds version {version_b}, from a later run "
        f"({newer['id']}), not this run's {older['datasets']['capitals']}: 3 item(s) linked to it "
        "by id, not overwritten"
    ) in out
    assert f"run {older['id']}: sent 1 prompts, 4 traces" in out
    assert {k: v["expectedOutput"] for k, v in fake_langfuse.dataset_items.items()} == held
    assert fake_langfuse.datasets["capitals"]["metadata"]["version"] == version_b
    for item in older["items"]:  # in its experiment, linked to the item, scored as it was
        if item["dataset"]:
            attrs = _root(fake_langfuse, item)
            assert attrs["langfuse.experiment.item.id"] in held
            expected = decode(attrs, "langfuse.experiment.item.expected_output")
            assert expected == item["expected_output"] and not expected.endswith("!")
    assert llmobs(["upload", "--pending", "--store", store_dir]) == 0
    assert "langfuse: nothing pending" in capsys.readouterr().out

    # The file back at version A: a run started after both holds the newest content.
    suite.makefile(".jsonl", **{"datasets/capitals": jsonl(CAPITALS[:3])})
    suite.runpytest("--llm-upload=langfuse").assert_outcomes(passed=3, failed=1)
    latest = runs.latest()
    assert latest["datasets"]["capitals"] == older["datasets"]["capitals"]
    assert fake_langfuse.datasets["capitals"]["metadata"]["run_id"] == latest["id"]
    assert sorted(v["expectedOutput"] for v in fake_langfuse.dataset_items.values()) == [
        "Paris",
        "Rome",
        "Tokyo",
    ]


@pytest.mark.parametrize("legacy", [False, True], ids=["otlp", "legacy"])
def test_an_older_run_sent_after_a_newer_one_creates_the_items_the_newer_version_lacks(
    suite: pytest.Pytester,
    runs: Runs,
    fake_langfuse: FakeLangfuse,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    legacy: bool,
) -> None:
    # (before, they were recorded as linked and never sent: the older run's traces named dataset
    # items the server did not have, and in legacy mode its run items stayed pending for good)
    use_server(monkeypatch, fake_langfuse)
    store_dir = str(runs.directory / ".llmobs")
    flags = ["--llm-langfuse-legacy"] if legacy else []
    fake_langfuse.fail("/", 503, times=None)
    suite.runpytest("--llm-upload=langfuse", *flags).assert_outcomes(passed=3, failed=1)
    older = runs.latest()  # france, japan, italy: pending
    fake_langfuse.heal()
    edited = [{**CAPITALS[0], "expected_output": "Paris!"}]
    suite.makefile(".jsonl", **{"datasets/capitals": jsonl(edited)})
    suite.runpytest("--llm-upload=langfuse", *flags).assert_outcomes(passed=1, failed=1)
    newer = runs.latest()  # france only, edited: sent
    france = dataset_item_id("capitals", "france")
    assert set(fake_langfuse.dataset_items) == {france}
    command = ["upload", "--pending", "--store", store_dir, *(["--legacy"] if legacy else [])]

    fake_langfuse.fail("/api/public/dataset-items", 400, method="GET")
    assert llmobs(command) == 1  # which items the server holds cannot be read: all wait
    out = capsys.readouterr().out
    assert (
        f"first error: dataset 'capitals': 3 item(s) not sent: which of them the server's later "
        f"version {newer['datasets']['capitals']} holds could not be read: GET "
        f"{fake_langfuse.url}/api/public/dataset-items: HTTP 400"
    ) in out
    assert set(fake_langfuse.dataset_items) == {france}

    fake_langfuse.requests.clear()
    assert llmobs(command) == 0

    out = capsys.readouterr().out
    assert f"run {older['id']}: sent 2 dataset items, 3 traces" in out
    assert (
        f"dataset 'capitals': the server holds version {newer['datasets']['capitals']}, from a "
        f"later run ({newer['id']}), not this run's {older['datasets']['capitals']}: 1 item(s) "
        "linked to it by id, not overwritten; 2 item(s) it lacked, created"
    ) in out
    assert fake_langfuse.count("GET", "/api/public/dataset-items") == 1  # (one page: 3 items)
    assert fake_langfuse.dataset_items[france]["expectedOutput"] == "Paris!"
    for item in older["items"]:
        if not item["dataset"]:
            continue
        key = dataset_item_id("capitals", item["item_id"])
        if key != france:
            assert fake_langfuse.dataset_items[key]["expectedOutput"] == item["expected_output"]
        if legacy:
            assert (older["name"], key, item["trace"]["id"]) in fake_langfuse.run_items
        else:
            assert _root(fake_langfuse, item)["langfuse.experiment.item.id"] == key
    assert llmobs(command) == 0
    assert "langfuse: nothing pending" in capsys.readouterr().out


def test_which_items_the_server_holds_is_read_in_one_request_more_than_items_at_most(
    fake_langfuse: FakeLangfuse, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("dd", "other"):
        fake_langfuse._dataset({"name": name})
    for n in range(5):  # on pages of 2: [i0 i1] [i2 i3] [i4]
        fake_langfuse._dataset_item({"datasetName": "dd", "id": f"i{n}", "input": n})
    fake_langfuse._dataset_item({"datasetName": "other", "id": "o1", "input": 0})
    monkeypatch.setattr(langfuse_inventory, "ITEMS_PAGE", 2)
    keys = (fake_langfuse.public_key, fake_langfuse.secret_key)
    sender = HttpSender(fake_langfuse.url, auth=keys)

    def asked(ids: list[str]) -> tuple[set[str], list[str]]:
        fake_langfuse.requests.clear()
        held = langfuse_inventory.held_items(sender, "dd", ids)
        return held, [r.path.split("?")[0] for r in fake_langfuse.requests]

    listing, one = "/api/public/dataset-items", "/api/public/dataset-items/"
    try:
        # no more pages left than ids to find: the pages
        assert asked(["i0", "i3", "i4", "absent"]) == ({"i0", "i3", "i4"}, [listing] * 3)
        assert asked(["i1", "i0"]) == ({"i0", "i1"}, [listing])  # all on the first page
        # fewer ids left than pages: each of them
        assert asked(["i4"]) == ({"i4"}, [listing, one + "i4"])
        assert asked(["absent"]) == (set(), [listing, one + "absent"])
        assert asked(["o1"]) == (set(), [listing, one + "o1"])  # (another dataset's)
        assert asked([]) == (set(), [])
    finally:
        sender.close()


TWO_DATASETS = """
    import pytest


    @pytest.mark.llm_dataset("capitals")
    def test_capital(item, llm):
        llm.generate(item.input)


    @pytest.mark.llm_dataset("more")
    def test_more(item, llm):
        llm.generate(item.input)


    def test_plain(llm):
        llm.generate("What is the capital of Peru?")
"""


def test_each_dataset_and_repeat_is_an_experiment_and_other_tests_are_in_none(
    pytester: pytest.Pytester,
    runs: Runs,
    fake_langfuse: FakeLangfuse,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # (before, one experiment id covered both datasets and the plain test, which was labelled
    # "<run name> [repeat 0]")
    use_server(monkeypatch, fake_langfuse)
    pytester.makefile(".jsonl", **{"datasets/capitals": jsonl(CAPITALS[:2])})
    pytester.makefile(".jsonl", **{"datasets/more": jsonl(CAPITALS[2:])})
    pytester.makepyfile(test_two=dedent(TWO_DATASETS))
    pytester.runpytest("--llm-upload=langfuse", "--llm-repeat=2").assert_outcomes(passed=9)
    run = runs.latest()
    experiments: dict[tuple[str, int], set[str]] = {}
    for item in run["items"]:
        attrs = _root(fake_langfuse, item)
        if not item["dataset"]:
            assert not [k for k in attrs if k.startswith("langfuse.experiment.")]
            continue
        dataset = fake_langfuse.datasets[item["dataset"]]
        name = f"{run['name']} [repeat {item['repeat']}]"
        assert attrs["langfuse.experiment.name"] == name
        assert attrs["langfuse.experiment.dataset.id"] == dataset["id"]
        experiment = attrs["langfuse.experiment.id"]
        assert experiment == stable_experiment_id("project-fake", dataset["id"], name)
        experiments.setdefault((item["dataset"], item["repeat"]), set()).add(experiment)
    assert sorted(experiments) == [("capitals", 0), ("capitals", 1), ("more", 0), ("more", 1)]
    ids = [e for found in experiments.values() for e in found]
    assert len(ids) == len(set(ids)) == 4  # one id per dataset and repeat, all distinct
    with runs.open() as store:
        assert_uploaded(run, fake_langfuse, store)


def test_experiment_ids_are_derived_as_langfuse_derives_them() -> None:
    # Known answers of langfuse 5.0.4's `Langfuse._create_experiment_id` (which says it matches
    # the server's derivation byte for byte) and of the JS SDK's `createStableExperimentId`.
    assert stable_experiment_id("project-fake", "ds-1", "nightly [repeat 0]") == "d39d5c119d6e03e9"
    assert stable_experiment_id("cm1x", "cm2y", 'Zürich "run" ✓') == "062b5de4322e7d77"


def test_traces_left_pending_alone_are_sent_in_their_experiment(
    suite: pytest.Pytester,
    runs: Runs,
    fake_langfuse: FakeLangfuse,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use_server(monkeypatch, fake_langfuse)
    fake_langfuse.fail(OTEL_PATH, 503, times=None)
    suite.runpytest("--llm-upload=langfuse").stdout.fnmatch_lines(
        ["*NOT SENT (pending; retry with `llmobs upload --pending`): 4 traces, 8 observations, *"]
    )
    fake_langfuse.heal()
    fake_langfuse.requests.clear()

    assert llmobs(["upload", "--pending", "--store", str(runs.directory / ".llmobs")]) == 0

    assert "sent 4 traces, 8 observations, 10 scores" in capsys.readouterr().out
    paths = {(r.method, r.path) for r in fake_langfuse.requests}
    assert ("GET", "/api/public/v2/datasets/capitals") in paths  # the ids of its experiment
    assert {path for method, path in paths if method == "POST"} == {
        OTEL_PATH,
        "/api/public/ingestion",
    }
    with runs.open() as store:
        assert_uploaded(runs.latest(), fake_langfuse, store)


def test_upload_from_the_controller_with_xdist(
    suite: pytest.Pytester, runs: Runs, fake_langfuse: FakeLangfuse, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_server(monkeypatch, fake_langfuse)
    result = suite.runpytest("--llm-upload=langfuse", "-n", "2")
    result.assert_outcomes(passed=3, failed=1)
    assert fake_langfuse.count("POST", "/api/public/v2/datasets") == 1
    with runs.open() as store:
        assert_uploaded(runs.latest(), fake_langfuse, store)


@pytest.mark.parametrize("mistake", ["wrong public key", "wrong base URL"])
def test_a_run_refused_for_a_wrong_key_or_url_is_sent_by_pending_once_it_is_fixed(
    suite: pytest.Pytester,
    runs: Runs,
    fake_langfuse: FakeLangfuse,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    mistake: str,
) -> None:
    from phoenix_server import free_port

    wrong = (
        {"LANGFUSE_PUBLIC_KEY": "pk-lf-TYPO"}
        if mistake == "wrong public key"
        else {"LANGFUSE_BASE_URL": f"http://127.0.0.1:{free_port()}"}
    )
    use_server(monkeypatch, fake_langfuse, **wrong)
    result = suite.runpytest("--llm-upload=langfuse")
    result.stdout.fnmatch_lines(["*: sent nothing", "*NOT SENT (pending; retry*"])
    capsys.readouterr()
    wrong_target = f"langfuse {wrong.get('LANGFUSE_BASE_URL', fake_langfuse.url)} project#*"
    store_dir = str(runs.directory / ".llmobs")

    use_server(monkeypatch, fake_langfuse)  # fixed
    fake_langfuse.requests.clear()
    assert llmobs(["upload", "--pending", "--store", store_dir]) == 0
    out = capsys.readouterr().out.splitlines()
    assert any("sent 1 prompts, 1 datasets, 3 dataset items, 4 traces" in line for line in out)
    pytest.LineMatcher(out).fnmatch_lines(
        [f"  was pending for {wrong_target}, which received none of it: uploaded here instead"]
    )
    with runs.open() as store:
        assert_uploaded(runs.latest(), fake_langfuse, store)
    assert llmobs(["upload", "--pending", "--store", store_dir]) == 0
    assert capsys.readouterr().out == "langfuse: nothing pending\n"


def test_a_run_partly_sent_to_another_project_stays_pending_there_and_is_listed(
    suite: pytest.Pytester,
    runs: Runs,
    fake_langfuse: FakeLangfuse,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use_server(monkeypatch, fake_langfuse)
    fake_langfuse.fail("/api/public/ingestion", 503, times=None)  # the scores are not sent
    suite.runpytest("--llm-upload=langfuse").stdout.fnmatch_lines(["*NOT SENT*: 10 scores"])
    run_id = runs.latest()["id"]
    store_dir = str(runs.directory / ".llmobs")
    capsys.readouterr()
    with FakeLangfuse(public_key="pk-lf-other", spec_dir=contracts_dir()) as other:
        use_server(monkeypatch, other)
        assert llmobs(["upload", "--pending", "--store", store_dir]) == 1
        assert capsys.readouterr().out == (
            f"langfuse: run {run_id} is still pending for langfuse {fake_langfuse.url} "
            f"project#{LangfuseConfig.from_env(fake_langfuse.env()).state_target[-12:]}, which "
            "holds part of it: not sent to the configured target. Send all of it here with "
            f"`llmobs upload {run_id} --to langfuse`, or configure that target again and run "
            "`llmobs upload --pending --to langfuse`\n"
        )
        assert other.requests == []

        assert llmobs(["upload", run_id, "--store", store_dir]) == 0
        assert "no longer pending there" in capsys.readouterr().out
        with runs.open() as store:
            assert_uploaded(runs.latest(), other, store)
        assert llmobs(["upload", "--pending", "--store", store_dir]) == 0
        assert capsys.readouterr().out == "langfuse: nothing pending\n"
        assert not other.violations, other.violations

    use_server(monkeypatch, fake_langfuse)  # back to the first project: what it holds is kept
    fake_langfuse.heal()
    fake_langfuse.requests.clear()
    assert llmobs(["upload", run_id, "--pending", "--store", store_dir]) == 0
    assert "sent 10 scores" in capsys.readouterr().out
    assert {r.path for r in fake_langfuse.requests} == {"/api/public/ingestion"}


# --- configuration and secrets -------------------------------------------------------------------


def test_missing_keys_are_reported_and_do_not_fail_the_tests(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in ("LANGFUSE_PUBLIC_KEY", "LANGFUSE_SECRET_KEY"):
        monkeypatch.delenv(key, raising=False)
    pytester.makepyfile("def test_ok(): pass")
    result = pytester.runpytest("--llm-upload=langfuse")
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            f"upload to langfuse {DEFAULT_BASE_URL}: run *: sent nothing",
            "*NOT SENT*: 1 traces, 1 observations",
            "*first error: not sent: LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY not set: export "
            "the project's API keys (Langfuse → project settings → API keys)",
        ]
    )
    assert pytester.runpytest("--llm-upload=langfuse", "--llm-upload-strict").ret == 1


def test_unknown_upload_target_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_ok(): pass")
    result = pytester.runpytest("--llm-upload=langfuse,datadog")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "*--llm-upload: 'datadog' is not a known upload target. "
            f"Valid targets: {', '.join(EXPORTERS)}."
        ]
    )


def test_config_precedence_and_no_keys_in_repr() -> None:
    keys = {"LANGFUSE_PUBLIC_KEY": "pk-1", "LANGFUSE_SECRET_KEY": "sk-SECRET"}
    assert LangfuseConfig.from_env(keys).base_url == "https://cloud.langfuse.com"
    us = {**keys, "LANGFUSE_HOST": "https://us.cloud.langfuse.com/"}
    assert LangfuseConfig.from_env(us).base_url == "https://us.cloud.langfuse.com"
    both = {**us, "LANGFUSE_BASE_URL": "http://langfuse.internal:3000"}
    config = LangfuseConfig.from_env(both)
    assert config.base_url == "http://langfuse.internal:3000"
    assert "sk-SECRET" not in repr(config) and "pk-1" not in repr(config)
    assert "pk-1" not in config.state_target
    with pytest.raises(ConfigError, match="LANGFUSE_TRACING_ENVIRONMENT='Prod!'"):
        LangfuseConfig.from_env({**keys, "LANGFUSE_TRACING_ENVIRONMENT": "Prod!"})


URL_EXAMPLE = f"expected an http(s) URL, e.g. {DEFAULT_BASE_URL}"
CREDENTIALS = (
    "holds credentials (user:password@ before the host): they would be sent as Basic auth and "
    "shown with the URL; put the project's keys in LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY"
)


@pytest.mark.parametrize(
    ("variable", "value", "error"),
    [
        (
            "LANGFUSE_BASE_URL",
            "http://127.0.0.1:99999",
            "LANGFUSE_BASE_URL='http://127.0.0.1:99999' is not a valid URL (Port out of range "
            f"0-65535); {URL_EXAMPLE}",
        ),
        (
            "LANGFUSE_BASE_URL",
            "http://127.0.0.1:80x",
            "LANGFUSE_BASE_URL='http://127.0.0.1:80x' is not a valid URL (Port could not be cast "
            f"to integer value as '80x'); {URL_EXAMPLE}",
        ),
        (
            "LANGFUSE_BASE_URL",
            "http://[::1",
            f"LANGFUSE_BASE_URL='http://[::1' is not a valid URL (Invalid IPv6 URL); {URL_EXAMPLE}",
        ),
        (
            "LANGFUSE_BASE_URL",
            "http://user:pw-hush-41@{host}",
            f"LANGFUSE_BASE_URL {CREDENTIALS}; got 'http://***@{{host}}'",
        ),
        (
            "LANGFUSE_HOST",
            "http://user:pw-hush-41@{host}/",
            f"LANGFUSE_HOST {CREDENTIALS}; got 'http://***@{{host}}/'",
        ),
        (
            "LANGFUSE_BASE_URL",
            "http://{host}/?token=hush-42",
            "LANGFUSE_BASE_URL='http://{host}/?***' has a query (?...): expected the server's "
            f"base URL without one, e.g. {DEFAULT_BASE_URL}",
        ),
        (
            "LANGFUSE_BASE_URL",
            "http://{host}/#eu",
            "LANGFUSE_BASE_URL='http://{host}/#eu' has a fragment (#...): expected the server's "
            f"base URL without one, e.g. {DEFAULT_BASE_URL}",
        ),
        (
            "LANGFUSE_TRACING_ENVIRONMENT",
            "Prod!",
            "LANGFUSE_TRACING_ENVIRONMENT='Prod!': expected lowercase letters, digits, '-' or '_' "
            "(at most 40, not starting with 'langfuse')",
        ),
    ],
)
def test_a_malformed_setting_is_a_configuration_error_and_sends_nothing(
    suite: pytest.Pytester,
    runs: Runs,
    fake_langfuse: FakeLangfuse,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    variable: str,
    value: str,
    error: str,
) -> None:
    use_server(monkeypatch, fake_langfuse)
    suite.runpytest().assert_outcomes(passed=3, failed=1)
    capsys.readouterr()
    host = fake_langfuse.url.removeprefix("http://")
    if variable == "LANGFUSE_HOST":
        monkeypatch.delenv("LANGFUSE_BASE_URL")
    monkeypatch.setenv(variable, value.format(host=host))
    store_dir = str(runs.directory / ".llmobs")
    assert llmobs(["upload", "latest", "--to", "langfuse", "--store", store_dir]) == 2
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", f"llmobs: error: {error.format(host=host)}\n")
    assert "hush" not in captured.err
    assert fake_langfuse.requests == []


def test_credentials_in_the_base_url_are_refused_and_never_shown_or_stored(
    suite: pytest.Pytester, runs: Runs, fake_langfuse: FakeLangfuse, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_server(monkeypatch, fake_langfuse)
    host = fake_langfuse.url.removeprefix("http://")
    monkeypatch.setenv("LANGFUSE_BASE_URL", f"http://admin:pw-hush-43@{host}")
    result = suite.runpytest("--llm-upload=langfuse")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(
        [
            f"upload to langfuse {fake_langfuse.url}: run *: sent nothing",
            "*NOT SENT (pending; retry with `llmobs upload --pending`): 1 prompts, *",
            f"*first error: not sent: LANGFUSE_BASE_URL {CREDENTIALS}; got 'http://***@{host}'",
        ]
    )
    assert "hush" not in str(result.stdout) + str(result.stderr)
    assert fake_langfuse.requests == []
    store_bytes = b"".join(p.read_bytes() for p in (runs.directory / ".llmobs").glob("llmobs.db*"))
    assert b"hush" not in store_bytes


def test_a_malformed_setting_of_a_later_target_sends_nothing_to_an_earlier_one(
    suite: pytest.Pytester,
    runs: Runs,
    fake_langfuse: FakeLangfuse,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use_server(monkeypatch, fake_langfuse)
    suite.runpytest().assert_outcomes(passed=3, failed=1)
    capsys.readouterr()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "api-key=abc%0Adef")
    store_dir = str(runs.directory / ".llmobs")
    assert llmobs(["upload", "latest", "--to", "langfuse,otlp", "--store", store_dir]) == 2
    captured = capsys.readouterr()
    assert captured.err == (
        "llmobs: error: OTEL_EXPORTER_OTLP_HEADERS: header 'api-key' has a control character in "
        "its value (a line break, e.g. from %0A or %0D, cannot be sent)\n"
    )
    assert captured.out == ""
    assert fake_langfuse.requests == []


SECRET = "sk-lf-VERY-SECRET-0000"
PUBLIC = "pk-lf-public-1111"


def test_secrets_never_reach_output_store_reports_or_errors(
    suite: pytest.Pytester,
    runs: Runs,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with FakeLangfuse(public_key=PUBLIC, secret_key=SECRET, spec_dir=contracts_dir()) as fake:
        use_server(monkeypatch, fake)
        ok = suite.runpytest("--llm-upload=langfuse", "-v")
        ok.stdout.fnmatch_lines(["*sent 1 prompts*"])
        monkeypatch.setenv("LANGFUSE_SECRET_KEY", SECRET + "-wrong")  # the server answers 401
        refused = suite.runpytest("--llm-upload=langfuse")
        refused.stdout.fnmatch_lines(
            [f"*first error: GET {fake.url}/api/public/v2/prompts/qa: HTTP 401*"]
        )
        code = llmobs(["upload", "--store", str(runs.directory / ".llmobs"), "--json"])
        assert code == 1
        report_json = capsys.readouterr().out
        assert not fake.violations, fake.violations
    texts = [str(ok.stdout), str(ok.stderr), str(refused.stdout), str(refused.stderr), report_json]
    store_bytes = b"".join(p.read_bytes() for p in (runs.directory / ".llmobs").glob("llmobs.db*"))
    for secret in (SECRET, PUBLIC):
        assert all(secret not in text for text in texts)
        assert secret.encode() not in store_bytes
    assert "HTTP 401" in report_json


def test_contract_tests_skip_without_the_spec_and_fail_under_ci(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LLMOBS_CONTRACTS_DIR", str(tmp_path))
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="LLMOBS_CONTRACTS_DIR is not set"):
        contracts_dir()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="LLMOBS_CONTRACTS_DIR is not set"):
        contracts_dir()


def test_the_fake_server_rejects_requests_that_break_the_contract(
    fake_langfuse: FakeLangfuse,
) -> None:
    import httpx

    auth = (fake_langfuse.public_key, fake_langfuse.secret_key)
    with httpx.Client(base_url=fake_langfuse.url, auth=auth) as client:
        bad = client.post("/api/public/dataset-items", json={"input": "no dataset name"})
        assert bad.status_code == 400
        nullable = client.post("/api/public/v2/datasets", json={"name": "d"})
        ok = client.post("/api/public/dataset-items", json={"datasetName": "d", "status": None})
        assert (nullable.status_code, ok.status_code) == (200, 200)
        otlp = client.post(
            OTEL_PATH,
            content=b"\xff\x00garbage",
            headers={"content-type": "application/x-protobuf", "x-langfuse-ingestion-version": "4"},
        )
        assert otlp.status_code == 400
    assert len(fake_langfuse.violations) == 2
    assert "datasetName" in fake_langfuse.violations[0]
    fake_langfuse.violations.clear()


def test_an_exporter_bug_is_reported_as_a_failed_upload_not_a_crash(
    suite: pytest.Pytester, runs: Runs, fake_langfuse: FakeLangfuse, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_server(monkeypatch, fake_langfuse)

    def broken(self: Any, run: Any) -> Any:  # a bug inside the exporter, injected
        raise KeyError("observations")

    # (the in-process session uses this module's copy of the exporter: patched for this test only)
    monkeypatch.setattr(pytest_llmobs.exporters.langfuse.LangfuseExporter, "export", broken)

    result = suite.runpytest("--llm-upload=langfuse")

    result.assert_outcomes(passed=3, failed=1)
    assert result.ret == 1  # the failing test, not the upload
    result.stdout.fnmatch_lines(
        ["*upload stopped by an unexpected KeyError: 'observations' (a bug: report it)"]
    )
    assert "Traceback" not in str(result.stdout) + str(result.stderr)
    assert len(runs.latest()["items"]) == 4  # the run is stored whatever the upload did
