"""Uploading runs to Arize Phoenix, against a real Phoenix server (tests/phoenix_server.py).

The integration tests run a small suite, upload it with ``--llm-upload=phoenix`` (or ``llmobs
upload``), then read every object back through Phoenix's REST API — spans by project, the
dataset and its examples, the experiment and its runs, the evaluations and the span annotations —
and compare them with the stored run item by item. The rest checks configuration and mappings
without a server.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import uuid
from textwrap import dedent
from typing import Any

import pytest
from conftest import CAPITALS, Runs, jsonl
from phoenix_server import (
    FailingProxy,
    PhoenixServer,
    free_port,
    phoenix_binary,
    phoenix_server_fixture,  # noqa: F401 (the phoenix_server fixture)
    wait_for,
)

from pytest_llmobs.cli import main as llmobs
from pytest_llmobs.exporters import ExportError, ExportReport
from pytest_llmobs.exporters import phoenix_rest as rest
from pytest_llmobs.exporters import phoenix_versions as versions
from pytest_llmobs.exporters.http import HttpSender
from pytest_llmobs.exporters.http_options import HttpOptions
from pytest_llmobs.exporters.otlp_send import sent_id
from pytest_llmobs.exporters.phoenix_config import DEFAULT_ENDPOINT, PhoenixConfig, project_name
from pytest_llmobs.exporters.phoenix_inventory import Inventory
from pytest_llmobs.run_environment import default_run_name
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
        scorer.score("verdict", "ok" if item.id != "spain" else "bad")
        assert item.id != "spain", "spain fails on purpose"


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
ITEMS = [{**item, "metadata": {"continent": "asia" if item["id"] == "japan" else "europe"}}
         for item in CAPITALS]  # fmt: skip


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makefile(".jsonl", **{"datasets/capitals": jsonl(ITEMS)})
    pytester.makefile(".json", **{"prompts/qa": json.dumps(QA_PROMPT)})
    pytester.makepyfile(test_suite=dedent(SUITE))
    return pytester


def use_phoenix(monkeypatch: pytest.MonkeyPatch, url: str, project: str | None = None) -> str:
    """Point uploads at ``url`` with a project of this test's own; returns the project."""
    project = project or f"llmobs-{uuid.uuid4().hex[:8]}"
    for key in ("PHOENIX_API_KEY", "PHOENIX_COLLECTOR_ENDPOINT"):
        monkeypatch.delenv(key, raising=False)
    for key, value in {"PHOENIX_COLLECTOR_ENDPOINT": url, "PHOENIX_PROJECT_NAME": project,
                       **FAST}.items():  # fmt: skip
        monkeypatch.setenv(key, value)
    return project


# --- reading back and comparing ------------------------------------------------------------------


def sent(project: str, stored: str) -> str:
    """A stored trace or span id as Phoenix knows it in ``project``."""
    return sent_id(rest.id_salt(project), stored)


def nanos(iso_time: str) -> int:
    when = dt.datetime.fromisoformat(iso_time.replace("Z", "+00:00"))
    return int(when.timestamp()) * 1_000_000_000 + when.microsecond * 1000


def seconds_match(iso_time: str, seconds: float) -> bool:
    return abs(nanos(iso_time) - seconds * 1e9) < 2_000  # Phoenix keeps microseconds


def decoded(attrs: dict[str, Any], prefix: str) -> Any:
    """``input.value`` / ``output.value`` back as the recorded value (JSON unless plain text)."""
    if f"{prefix}.value" not in attrs:
        return None
    value = attrs[f"{prefix}.value"]
    return value if attrs[f"{prefix}.mime_type"] == "text/plain" else json.loads(value)


def expected_result(score: dict[str, Any]) -> dict[str, Any]:
    value, kind = score["value"], score["data_type"]
    if kind == "BOOLEAN":
        return {"score": 1.0 if value else 0.0, "label": "true" if value else "false"}
    if kind == "CATEGORICAL":
        return {"score": None, "label": value}
    return {"score": value, "label": None}


def wait_for_spans(
    server: PhoenixServer, project: str, run: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """The spans of ``run``'s traces in ``project`` by stored span id, once all have arrived."""
    trace_ids = {sent(project, item["trace"]["id"]) for item in run["items"]}
    stored = {
        sent(project, obs["id"]): obs["id"]
        for item in run["items"]
        for obs in item["trace"]["observations"]
    }
    count = len(stored)

    def spans() -> dict[str, dict[str, Any]] | None:
        found = {
            stored[s["context"]["span_id"]]: s
            for s in server.spans(project)
            if s["context"]["trace_id"] in trace_ids
        }
        return found if len(found) >= count else None

    return wait_for(spans, what=f"{count} spans in project {project!r}")


def assert_spans(
    server: PhoenixServer, project: str, run: dict[str, Any], store: Store
) -> dict[str, dict[str, Any]]:
    """Every observation of ``run`` is a span of ``project`` with its ids, times, status and
    OpenInference attributes."""
    spans = wait_for_spans(server, project, run)
    assert len(spans) == sum(len(item["trace"]["observations"]) for item in run["items"])
    for item in run["items"]:
        trace = item["trace"]
        for index, obs in enumerate(trace["observations"]):
            span = spans[obs["id"]]
            attrs = span["attributes"]
            assert span["context"]["trace_id"] == sent(project, trace["id"])
            assert span["parent_id"] == (obs["parent_id"] and sent(project, obs["parent_id"]))
            assert span["name"] == obs["name"]
            assert seconds_match(span["start_time"], obs["start_time"])
            assert seconds_match(span["end_time"], obs["end_time"])
            assert span["status_code"] == ("ERROR" if obs["level"] == "ERROR" else "UNSET")
            if obs["level"] == "ERROR":
                assert span["status_message"] == obs["status_message"]
            assert decoded(attrs, "input") == obs["input"]
            assert decoded(attrs, "output") == obs["output"]
            for key, value in obs["metadata"].items():
                assert attrs[f"metadata.{key}"] == value
            if obs["type"] == "generation":
                assert span["span_kind"] == "LLM"
                assert attrs["llm.model_name"] == obs["model"]
                assert attrs["gen_ai.request.model"] == obs["model"]
                assert json.loads(attrs["llm.invocation_parameters"]) == obs["model_parameters"]
                assert attrs["llm.token_count.prompt"] == obs["usage"]["input"]
                assert attrs["llm.token_count.completion"] == obs["usage"]["output"]
                assert attrs["llm.token_count.total"] == obs["usage"]["total"]
                for i, message in enumerate(obs["input"]):
                    assert attrs[f"llm.input_messages.{i}.message.role"] == message["role"]
                    assert attrs[f"llm.input_messages.{i}.message.content"] == message["content"]
                assert attrs["llm.output_messages.0.message.content"] == obs["output"]
                version = f"{obs['prompt_name']}@{obs['prompt_version']}"
                assert attrs["llm.prompt_template.version"] == version
                stored = store.get_prompt(obs["prompt_name"], version=obs["prompt_version"])
                assert stored is not None
                assert json.loads(attrs["llm.prompt_template.template"]) == stored["prompt"]
            else:
                assert span["span_kind"] == "CHAIN"
            if index == 0:
                assert attrs["llmobs.test.node_id"] == item["node_id"]
                assert attrs["llmobs.test.outcome"] == item["outcome"]
                assert attrs["metadata.llmobs.run_id"] == run["id"]
                assert attrs["metadata.llmobs.trace_id"] == trace["id"]
                assert attrs.get("user.id") == trace["user_id"]
                assert attrs.get("session.id") == trace["session_id"]
                if trace["tags"]:
                    assert attrs["tag.tags"] == trace["tags"]
                for key, value in trace["metadata"].items():
                    assert attrs[f"metadata.{key}"] == value
    return spans


def assert_annotations(server: PhoenixServer, project: str, run: dict[str, Any]) -> None:
    """Every score is a span annotation on the span it judges, identified by the score id."""
    expected = {}
    for item in run["items"]:
        root = item["trace"]["observations"][0]["id"]
        for score in item["trace"]["scores"]:
            expected[score["id"]] = (score, sent(project, score["observation_id"] or root))
    span_ids = sorted({span_id for _, span_id in expected.values()})

    def annotations() -> dict[str, dict[str, Any]] | None:
        found = {a["identifier"]: a for a in server.span_annotations(project, span_ids)}
        return found if len(found) >= len(expected) else None

    found = wait_for(annotations, what=f"{len(expected)} span annotations")
    assert set(found) == set(expected)
    for score_id, (score, span_id) in expected.items():
        annotation = found[score_id]
        assert annotation["span_id"] == span_id
        assert annotation["name"] == score["name"]
        assert annotation["annotator_kind"] == "CODE"
        result = annotation["result"]
        assert {"score": result["score"], "label": result["label"]} == expected_result(score)
        assert result["explanation"] == score["comment"]
        assert annotation["metadata"]["score_id"] == score_id


def assert_experiment(server: PhoenixServer, project: str, run: dict[str, Any]) -> dict[str, Any]:
    """The dataset version the run used, one experiment for ``project``, one run per item and
    repeat linked to its trace there, and the scores as evaluations."""
    dataset = server.dataset("capitals")
    experiments = [
        e for e in server.experiments(dataset["id"])
        if e["metadata"].get("llmobs_run_id") == run["id"]
        and e["metadata"].get("project") == project
    ]  # fmt: skip
    assert len(experiments) == 1, experiments
    (experiment,) = experiments
    items = [i for i in run["items"] if i["dataset"] == "capitals"]
    repeats = max(i["repeat"] for i in items) + 1
    assert experiment["name"] == run["name"]
    assert experiment["repetitions"] == repeats
    assert experiment["metadata"]["dataset_version"] == run["datasets"]["capitals"]
    assert experiment["metadata"]["model"] == run["model"]

    examples = server.examples(dataset["id"], experiment["dataset_version_id"])
    by_item = {e["id"]: e for e in examples}
    assert set(by_item) == {i["id"] for i in ITEMS}
    for source in ITEMS:
        example = by_item[source["id"]]
        assert example["input"] == {"input": source["input"]}
        assert example["output"] == {"output": source["expected_output"]}
        assert example["metadata"] == source["metadata"]
    item_of_node = {e["node_id"]: e["id"] for e in examples}

    results = {
        (item_of_node[r["example_id"]], r["repetition_number"]): r
        for r in server.experiment_results(experiment["id"])
    }
    runs = server.experiment_runs(experiment["id"])
    assert len(runs) == len(results) == len(items)
    for item in items:
        result = results[(item["item_id"], item["repeat"] + 1)]
        trace = item["trace"]
        assert result["trace_id"] == sent(project, trace["id"])
        assert result["output"] == trace["observations"][0]["output"]
        assert result["error"] is None  # failed assertions are results, not task errors
        assert seconds_match(result["start_time"], item["started_at"])
        evaluations = {a["name"]: a for a in result["annotations"]}
        assert set(evaluations) == {s["name"] for s in trace["scores"]} | {"outcome"}
        for score in trace["scores"]:
            evaluation = evaluations[score["name"]]
            got = {"score": evaluation["score"], "label": evaluation["label"]}
            assert got == expected_result(score)
            assert evaluation["explanation"] == score["comment"]
        outcome = evaluations["outcome"]
        assert outcome["label"] == item["outcome"]
        assert outcome["score"] == (1.0 if item["outcome"] == "passed" else 0.0)
    return experiment


def assert_in_phoenix(
    server: PhoenixServer, project: str, runs: Runs, ref: str = "latest"
) -> dict[str, Any]:
    with runs.open() as store:
        run = store.load_run(store.resolve_run(ref))
        assert_spans(server, project, run, store)
    assert_annotations(server, project, run)
    assert_experiment(server, project, run)
    return run


# --- against a real Phoenix ----------------------------------------------------------------------


@pytest.mark.phoenix
def test_tool_calls_and_content_parts_become_openinference_message_attributes() -> None:
    # (before: the tool calls and the tool result's call id were dropped, parts sent as JSON)
    calls = [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "What?"}, image]},
        {"role": "assistant", "content": None, "tool_calls": calls},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
    ]
    attrs: dict[str, Any] = {}

    rest._messages(attrs, "llm.input_messages", messages, "user")

    at = "llm.input_messages"
    call = f"{at}.1.message.tool_calls.0.tool_call"
    contents = f"{at}.0.message.contents.0.message_content"
    assert attrs == {
        f"{at}.0.message.role": "user",
        f"{at}.0.message.content": "What?",
        f"{contents}.type": "text",
        f"{contents}.text": "What?",
        f"{at}.0.message.contents.1.message_content.type": "image",
        f"{at}.0.message.contents.1.message_content.image.image.url": "data:image/png;base64,AAAA",
        f"{at}.1.message.role": "assistant",
        f"{at}.1.message.content": "",
        f"{call}.id": "c1",
        f"{call}.function.name": "f",
        f"{call}.function.arguments": "{}",
        f"{at}.2.message.role": "tool",
        f"{at}.2.message.content": "sunny",
        f"{at}.2.message.tool_call_id": "c1",
    }

    # the OpenAI SDK leaves content out of a tool-calling turn; LangChain records name and args
    langchain_call = {"name": "g", "args": {"x": 1}, "id": "c2", "type": "tool_call"}
    sdk: dict[str, Any] = {}
    rest._messages(sdk, "m", [{"role": "assistant", "tool_calls": [langchain_call]}], "user")
    bare: dict[str, Any] = {}
    rest._messages(
        bare, "m", [{"role": "user", "content": ["bare", {"type": "text", "text": "x"}]}], "user"
    )
    assert bare["m.0.message.content"] == "bare x"
    assert sdk == {
        "m.0.message.role": "assistant",
        "m.0.message.content": "",
        "m.0.message.tool_calls.0.tool_call.id": "c2",
        "m.0.message.tool_calls.0.tool_call.function.name": "g",
        "m.0.message.tool_calls.0.tool_call.function.arguments": '{"x":1}',
    }


def test_upload_after_session_sends_everything(
    suite: pytest.Pytester,
    runs: Runs,
    phoenix_server: PhoenixServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    project = use_phoenix(monkeypatch, phoenix_server.url)
    result = suite.runpytest("--llm-upload=phoenix", "--llm-repeat=2")
    result.assert_outcomes(passed=6, failed=3)  # the upload does not change the outcome
    result.stdout.fnmatch_lines(
        [
            f"upload to phoenix {phoenix_server.url}: run *: sent 1 datasets, 4 dataset items, "
            "9 traces, 18 observations, 25 scores, 8 run items, 32 evaluations, 1 experiments",
            f"  Phoenix project {project!r}",
        ]
    )
    run = assert_in_phoenix(phoenix_server, project, runs)
    assert {i["outcome"] for i in run["items"] if i["item_id"] == "spain"} == {"failed"}


@pytest.mark.phoenix
def test_upload_again_later_changes_nothing(
    suite: pytest.Pytester,
    runs: Runs,
    phoenix_server: PhoenixServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    project = use_phoenix(monkeypatch, phoenix_server.url)
    suite.runpytest().assert_outcomes(passed=3, failed=2)
    store_dir = str(runs.directory / ".llmobs")
    assert llmobs(["upload", "latest", "--to", "phoenix", "--store", store_dir]) == 0
    assert "sent 1 datasets, 4 dataset items, 5 traces" in capsys.readouterr().out
    run = assert_in_phoenix(phoenix_server, project, runs)
    dataset = phoenix_server.dataset("capitals")
    versions = phoenix_server.get(f"/v1/datasets/{dataset['id']}/versions")["data"]

    assert llmobs(["upload", "latest", "--to", "phoenix", "--store", store_dir]) == 0
    capsys.readouterr()
    flush(phoenix_server, project)  # the second upload's spans and annotations are ingested
    assert_in_phoenix(phoenix_server, project, runs)  # one experiment, same counts
    assert phoenix_server.get(f"/v1/datasets/{dataset['id']}/versions")["data"] == versions
    scores = sum(len(i["trace"]["scores"]) for i in run["items"])
    observations = sum(len(i["trace"]["observations"]) for i in run["items"])
    assert len(phoenix_server.spans(project)) == observations + 1  # and the flush span
    span_ids = [sent(project, o["id"]) for i in run["items"] for o in i["trace"]["observations"]]
    annotations = phoenix_server.span_annotations(project, span_ids)
    assert len(annotations) == scores


def flush(server: PhoenixServer, project: str) -> None:
    """Send one more span and annotation and wait for both: Phoenix ingests in order, so what
    was sent before is in once they are."""
    import httpx

    from pytest_llmobs.exporters.otlp_spans import SpanOptions, export_request, trace_spans

    trace_id, span_id = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    item = {
        "trace": {
            "id": trace_id,
            "observations": [{"id": span_id, "name": "flush", "start_time": 1.0, "end_time": 2.0}],
        }
    }
    options = SpanOptions(resource_attributes={"openinference.project.name": project})
    request = export_request(
        trace_spans({"id": "flush"}, item, options).spans, {"id": "f"}, options
    )
    headers = {"Content-Type": "application/x-protobuf"}
    body = request.SerializeToString()
    assert httpx.post(f"{server.url}/v1/traces", content=body, headers=headers).status_code == 200
    note = {"span_id": span_id, "name": "flush", "annotator_kind": "CODE", "identifier": "flush"}
    answer = httpx.post(f"{server.url}/v1/span_annotations", json={"data": [note]})
    assert answer.status_code == 200
    wait_for(lambda: server.span_annotations(project, [span_id]), what="the flush annotation")


@pytest.mark.phoenix
def test_a_run_uploaded_to_another_project_lands_there_with_an_experiment_of_its_own(
    suite: pytest.Pytester,
    runs: Runs,
    phoenix_server: PhoenixServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # (before: the second upload reused the first one's trace and span ids, Phoenix kept those
    # traces in the first project, and the second project never appeared though "sent")
    first = use_phoenix(monkeypatch, phoenix_server.url)
    suite.runpytest("--llm-upload=phoenix").stdout.fnmatch_lines(["*: sent 1 datasets, *"])
    second = use_phoenix(monkeypatch, phoenix_server.url)
    upload = ["upload", "latest", "--to", "phoenix", "--store", str(runs.directory / ".llmobs")]

    assert llmobs(upload) == 0
    out = capsys.readouterr().out
    assert "5 traces, 10 observations, 13 scores, 4 run items" in out
    observations = sum(len(i["trace"]["observations"]) for i in runs.latest()["items"])
    wait_for(
        lambda: len(phoenix_server.spans(second)) >= observations,
        what=f"{observations} spans in project {second!r}",
    )
    assert (
        f"dataset 'capitals' also holds this run's experiment for project {first!r}: the new "
        f"one links to the traces in {second!r}"
    ) in out
    assert_in_phoenix(phoenix_server, second, runs)  # its spans, annotations, experiment
    assert_in_phoenix(phoenix_server, first, runs)  # the first project keeps its copy

    assert llmobs(upload) == 0  # again to the same project: nothing doubles
    capsys.readouterr()
    flush(phoenix_server, second)
    assert_in_phoenix(phoenix_server, second, runs)
    assert len(phoenix_server.spans(second)) == observations + 1  # and the flush span


@pytest.mark.phoenix
def test_the_dataset_description_names_no_content_version_newer_content_would_not_update(
    pytester: pytest.Pytester,
    runs: Runs,
    phoenix_server: PhoenixServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # (before: "Uploaded by pytest-llmobs (content version <first>)" stayed after newer content:
    # Phoenix keeps a dataset's first description)
    use_phoenix(monkeypatch, phoenix_server.url)
    name = f"described-{uuid.uuid4().hex[:8]}"
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.llm_dataset("{name}")
        def test_item(item, scorer):
            scorer.score("seen", 1.0)
        """
    )
    versions = []
    for question in ("first?", "second?"):
        items = [{"id": "a", "input": question, "expected_output": "x"}]
        pytester.makefile(".jsonl", **{f"datasets/{name}": jsonl(items)})
        pytester.runpytest("--llm-upload=phoenix").stdout.fnmatch_lines(["*: sent 1 datasets*"])
        versions.append(runs.latest()["datasets"][name])

    assert versions[0] != versions[1]
    dataset = phoenix_server.dataset(name)
    assert len(phoenix_server.get(f"/v1/datasets/{dataset['id']}/versions")["data"]) == 2
    assert dataset["description"] == "Uploaded by pytest-llmobs"


REVISIONS = {
    "old": [
        {"id": "x", "input": "old text", "expected_output": "a"},
        {"id": "y", "input": "removed later", "expected_output": "b"},
    ],
    "new": [{"id": "x", "input": "new text", "expected_output": "a"}],
}


@pytest.mark.phoenix
def test_an_older_run_uploaded_again_links_the_version_phoenix_holds_not_a_new_current_one(
    pytester: pytest.Pytester,
    runs: Runs,
    phoenix_server: PhoenixServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # (before: uploading OLD, NEW, then OLD again made a third version, OLD's content, current)
    name = f"revisions-{uuid.uuid4().hex[:8]}"
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.llm_dataset("{name}")
        def test_item(item, scorer):
            scorer.score("seen", 1.0)
        """
    )
    run_ids = {}
    for label in ("old", "new", "old again"):  # the last: the file edited back, run later
        items = REVISIONS[label.split()[0]]
        pytester.makefile(".jsonl", **{f"datasets/{name}": jsonl(items)})
        pytester.runpytest().assert_outcomes(passed=len(items))
        run_ids[label] = runs.latest()["id"]
    store_dir = str(runs.directory / ".llmobs")

    def upload(label: str, url: str = phoenix_server.url) -> str:
        use_phoenix(monkeypatch, url, project=name)
        assert llmobs(["upload", run_ids[label], "--to", "phoenix", "--store", store_dir]) == 0
        return capsys.readouterr().out

    def current() -> list[str]:
        return sorted(e["input"]["input"] for e in phoenix_server.examples(dataset_id))

    upload("old")
    upload("new")
    dataset_id = phoenix_server.dataset(name)["id"]
    versions_path = f"/v1/datasets/{dataset_id}/versions"
    new_version, old_version = [v["version_id"] for v in phoenix_server.get(versions_path)["data"]]
    assert current() == ["new text"]

    with FailingProxy(phoenix_server.url).running() as proxy:
        out = upload("old", proxy.url)
    assert [v["version_id"] for v in phoenix_server.get(versions_path)["data"]] == [
        new_version,
        old_version,
    ]
    assert current() == ["new text"]  # the newer run's content stays current
    assert ("POST", "/v1/datasets/upload", 200) not in proxy.seen
    assert (
        f"dataset {name!r}: Phoenix holds this run's content as an earlier version "
        f"({old_version}): the experiment is linked to it, and the current version is left as it is"
    ) in out
    linked = {
        e["metadata"]["llmobs_run_id"]: e["dataset_version_id"]
        for e in phoenix_server.experiments(dataset_id)
    }
    assert linked == {run_ids["old"]: old_version, run_ids["new"]: new_version}

    assert "holds this run's content" not in upload("new")  # the current version: linked
    assert len(phoenix_server.get(versions_path)["data"]) == 2

    # A run that started after the current version's runs makes its content current again,
    # though Phoenix holds it (as for Langfuse: a dataset edited back is the newest again).
    upload("old again")
    assert len(phoenix_server.get(versions_path)["data"]) == 3
    assert current() == ["old text", "removed later"]


@pytest.mark.phoenix
def test_outage_leaves_everything_pending_then_pending_sends_it(
    suite: pytest.Pytester,
    runs: Runs,
    phoenix_server: PhoenixServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with FailingProxy(phoenix_server.url).running() as proxy:
        project = use_phoenix(monkeypatch, proxy.url)
        proxy.fail("/", 503)
        result = suite.runpytest("--llm-upload=phoenix")
        result.assert_outcomes(passed=3, failed=2)
        assert result.ret == 1  # the failing tests, not the upload
        result.stdout.fnmatch_lines(
            [
                f"upload to phoenix {proxy.url}: run *: sent nothing",
                "*NOT SENT (pending; retry with `llmobs upload --pending --to phoenix`): "
                "1 datasets, 4 dataset items, 5 traces, 10 observations, 13 scores, 4 run items, "
                "1 experiments",
                f"*first error: GET {proxy.url}/v1/datasets: HTTP 503 proxy says no "
                "after 2 attempt(s)",
            ]
        )
        # The circuit opened after the first request's retries: the rest was not even tried.
        assert len(proxy.seen) == 2

        proxy.heal()
        proxy.seen.clear()
        store_dir = str(runs.directory / ".llmobs")
        assert llmobs(["upload", "--pending", "--to", "phoenix", "--store", store_dir]) == 0
        out = capsys.readouterr().out
        assert "sent 1 datasets, 4 dataset items, 5 traces, 10 observations, 13 scores" in out
        assert_in_phoenix(phoenix_server, project, runs)
        assert llmobs(["upload", "--pending", "--to", "phoenix", "--store", store_dir]) == 0
        assert "phoenix: nothing pending" in capsys.readouterr().out


@pytest.mark.phoenix
def test_pending_resends_only_what_failed(
    suite: pytest.Pytester,
    runs: Runs,
    phoenix_server: PhoenixServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with FailingProxy(phoenix_server.url).running() as proxy:
        project = use_phoenix(monkeypatch, proxy.url)
        proxy.fail("/v1/span_annotations", 500)
        result = suite.runpytest("--llm-upload=phoenix")
        result.stdout.fnmatch_lines(
            [
                "*NOT SENT (pending*): 13 scores",
                f"*first error: POST {proxy.url}/v1/span_annotations: HTTP 500*",
            ]
        )
        proxy.heal()
        proxy.seen.clear()
        store_dir = str(runs.directory / ".llmobs")
        assert llmobs(["upload", "--pending", "--to", "phoenix", "--store", store_dir]) == 0
        out = capsys.readouterr().out
        assert "sent 13 scores" in out
        assert "skipped 1 datasets, 4 dataset items, 5 traces, 10 observations" in out
        posts = {path for method, path, _ in proxy.seen if method == "POST"}
        assert posts == {"/v1/span_annotations"}
        assert_in_phoenix(phoenix_server, project, runs)


@pytest.mark.phoenix
def test_a_run_sent_before_whose_upload_again_fails_is_pending_until_sent(
    suite: pytest.Pytester,
    runs: Runs,
    phoenix_server: PhoenixServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with FailingProxy(phoenix_server.url).running() as proxy:
        project = use_phoenix(monkeypatch, proxy.url)
        suite.runpytest("--llm-upload=phoenix").stdout.fnmatch_lines(["*: sent 1 datasets, *"])
        upload = ["upload", "--to", "phoenix", "--store", str(runs.directory / ".llmobs")]
        proxy.fail("/", 503)

        assert llmobs(upload) == 1
        hint = "NOT SENT (pending; retry with `llmobs upload --pending --to phoenix`): 1 datasets"
        assert hint in capsys.readouterr().out
        assert llmobs([*upload, "--pending"]) == 1  # still down: still pending
        out = capsys.readouterr().out
        assert "NOT SENT (pending" in out and "skipped" not in out

        proxy.heal()
        assert llmobs([*upload, "--pending"]) == 0
        assert "sent 1 datasets, 4 dataset items, 5 traces" in capsys.readouterr().out
        flush(phoenix_server, project)
        assert_in_phoenix(phoenix_server, project, runs)  # one experiment, nothing doubled
        assert llmobs([*upload, "--pending"]) == 0
        assert "phoenix: nothing pending" in capsys.readouterr().out


@pytest.mark.phoenix
def test_a_run_not_sent_for_a_bad_endpoint_is_sent_by_pending_once_it_is_fixed(
    suite: pytest.Pytester,
    runs: Runs,
    phoenix_server: PhoenixServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    project = use_phoenix(monkeypatch, phoenix_server.url.removeprefix("http://"))
    result = suite.runpytest("--llm-upload=phoenix")
    result.stdout.fnmatch_lines(
        [
            "*NOT SENT (pending; retry with `llmobs upload --pending --to phoenix`): 1 datasets, *",
            "*first error: not sent: PHOENIX_COLLECTOR_ENDPOINT=* is not an http(s) URL*",
        ]
    )
    upload = ["upload", "--pending", "--to", "phoenix", "--store", str(runs.directory / ".llmobs")]

    use_phoenix(monkeypatch, phoenix_server.url, project)
    assert llmobs(upload) == 0
    assert "sent 1 datasets, 4 dataset items, 5 traces" in capsys.readouterr().out
    assert_in_phoenix(phoenix_server, project, runs)
    assert llmobs(upload) == 0
    assert "phoenix: nothing pending" in capsys.readouterr().out


@pytest.mark.phoenix
def test_api_key_is_sent_as_a_bearer_token(
    suite: pytest.Pytester,
    runs: Runs,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    admin_secret = "llmobs-admin-" + uuid.uuid4().hex
    server = PhoenixServer.start(
        phoenix_binary(),
        tmp_path_factory.mktemp("phoenix-auth"),
        env={
            "PHOENIX_ENABLE_AUTH": "true",
            "PHOENIX_SECRET": "llmobs-secret-" + uuid.uuid4().hex,
            "PHOENIX_ADMIN_SECRET": admin_secret,
        },
    )
    try:
        project = use_phoenix(monkeypatch, server.url)
        refused = suite.runpytest("--llm-upload=phoenix")
        refused.stdout.fnmatch_lines([f"*first error: GET {server.url}/v1/datasets: HTTP 401*"])
        monkeypatch.setenv("PHOENIX_API_KEY", admin_secret)
        ok = suite.runpytest("--llm-upload=phoenix")
        ok.stdout.fnmatch_lines(["*sent 1 datasets, 4 dataset items, 5 traces*"])
        assert ok.stdout.str().count("NOT SENT") == 0
        server.headers = {"Authorization": f"Bearer {admin_secret}"}
        with runs.open() as store:
            run = store.load_run(store.resolve_run("latest"))
            assert_spans(server, project, run, store)
        texts = [str(refused.stdout), str(ok.stdout), str(ok.stderr)]
        assert all(admin_secret not in text for text in texts)
    finally:
        server.stop()


@pytest.mark.phoenix
def test_a_score_named_note_is_sent_renamed_and_does_not_hold_back_the_others(
    pytester: pytest.Pytester,
    runs: Runs,
    phoenix_server: PhoenixServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    project = use_phoenix(monkeypatch, phoenix_server.url)
    pytester.makepyfile(
        """
        def test_n(scorer):
            scorer.score("note", "see ticket")
            scorer.score("helpfulness", 0.8)
            scorer.score("resolved", True)
        """
    )
    result = pytester.runpytest("--llm-upload=phoenix")
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "upload to phoenix *: run *: sent 1 traces, 1 observations, 3 scores",
            "  1 score(s) named 'note' sent as span annotation 'llmobs.note' (Phoenix reserves "
            "'note' for span notes)",
        ]
    )
    assert "NOT SENT" not in str(result.stdout)
    run = runs.latest()
    (item,) = run["items"]
    root = sent(project, item["trace"]["observations"][0]["id"])

    def annotations() -> dict[str, dict[str, Any]] | None:
        found = {a["name"]: a for a in phoenix_server.span_annotations(project, [root])}
        return found if len(found) >= 3 else None

    found = wait_for(annotations, what="3 span annotations")
    assert set(found) == {"llmobs.note", "helpfulness", "resolved"}
    assert found["llmobs.note"]["result"]["label"] == "see ticket"
    store_dir = str(runs.directory / ".llmobs")
    capsys.readouterr()
    assert llmobs(["upload", "--pending", "--to", "phoenix", "--store", store_dir]) == 0
    assert capsys.readouterr().out == "phoenix: nothing pending\n"


def test_credentials_a_server_repeats_are_hidden_in_output_and_store(
    suite: pytest.Pytester,
    runs: Runs,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    secret = "PHXSECRETKEY42"
    suite.runpytest().assert_outcomes(passed=3, failed=2)
    with FailingProxy(f"http://127.0.0.1:{free_port()}").running() as proxy:
        use_phoenix(monkeypatch, proxy.url)
        monkeypatch.setenv("PHOENIX_API_KEY", secret)
        proxy.fail("/", 400, echo=True)  # {"message": "invalid credentials (header Bearer ...)"}
        store_dir = str(runs.directory / ".llmobs")
        assert llmobs(["upload", "latest", "--to", "phoenix", "--store", store_dir]) == 1
    out = capsys.readouterr().out
    assert (
        f"first error: GET {proxy.url}/v1/datasets: HTTP 400 "
        '{"message": "invalid credentials (header ***)"}'
    ) in out
    assert secret not in out
    store_bytes = b"".join(p.read_bytes() for p in (runs.directory / ".llmobs").glob("llmobs.db*"))
    assert secret.encode() not in store_bytes
    assert b"invalid credentials (header ***)" in store_bytes


def test_a_success_that_is_no_api_answer_is_an_upload_error_and_stays_pending(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makefile(".jsonl", **{"datasets/capitals": jsonl(ITEMS[:1])})
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.llm_dataset("capitals")
        def test_capital(item, llm, scorer):
            llm.generate(item.input)
            scorer.score("fine", True)
        """
    )
    with FailingProxy(f"http://127.0.0.1:{free_port()}").running() as proxy:
        use_phoenix(monkeypatch, proxy.url, project="nowhere")
        proxy.fail("/", 200)  # "proxy says no" as text/plain: no Phoenix answer
        result = pytester.runpytest("--llm-upload=phoenix")
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [  # (a text 2xx to OTLP is an accept, as from a collector answering a bare "OK")
            f"upload to phoenix {proxy.url}: run *: sent 1 traces, 2 observations",
            "*NOT SENT (pending; retry with `llmobs upload --pending --to phoenix`): 1 datasets, "
            "1 dataset items, 1 scores, 1 run items, 1 experiments",
            f"*first error: GET {proxy.url}/v1/datasets: HTTP 200 answer is not JSON "
            "(got text/plain: proxy says no)",
        ]
    )
    assert "Traceback" not in str(result.stdout) + str(result.stderr)


# --- without a server ----------------------------------------------------------------------------


def test_phoenix_down_is_reported_and_does_not_fail_the_tests(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    use_phoenix(monkeypatch, url, project="nowhere")
    pytester.makepyfile("def test_ok(scorer):\n    scorer.score('fine', True)")
    result = pytester.runpytest("--llm-upload=phoenix")
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            f"upload to phoenix {url}: run *: sent nothing",
            "*NOT SENT*: 1 traces, 1 observations, 1 scores",
            f"*first error: POST {url}/v1/traces: connection refused (ConnectError) after 2 "
            "attempt(s)",
        ]
    )
    assert pytester.runpytest("--llm-upload=phoenix", "--llm-upload-strict").ret == 1


URL_EXAMPLE = f"expected an http(s) URL, e.g. {DEFAULT_ENDPOINT}"
CREDENTIALS = (
    "PHOENIX_COLLECTOR_ENDPOINT holds credentials (user:password@ before the host): they would "
    "be sent as Basic auth and shown with the URL; put the API key in PHOENIX_API_KEY (sent as "
    "a bearer token)"
)


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (
            "http://127.0.0.1:99999",
            "PHOENIX_COLLECTOR_ENDPOINT='http://127.0.0.1:99999' is not a valid URL (Port out of "
            f"range 0-65535); {URL_EXAMPLE}",
        ),
        (
            "http://127.0.0.1:80x",
            "PHOENIX_COLLECTOR_ENDPOINT='http://127.0.0.1:80x' is not a valid URL (Port could not "
            f"be cast to integer value as '80x'); {URL_EXAMPLE}",
        ),
        (
            "http://[::1",
            "PHOENIX_COLLECTOR_ENDPOINT='http://[::1' is not a valid URL (Invalid IPv6 URL); "
            f"{URL_EXAMPLE}",
        ),
        ("http://admin:pw-hush-51@{host}", f"{CREDENTIALS}; got 'http://***@{{host}}'"),
        (
            "http://{host}?api_key=hush-52",
            "PHOENIX_COLLECTOR_ENDPOINT='http://{host}?***' has a query (?...): expected the "
            f"server's base URL without one, e.g. {DEFAULT_ENDPOINT}",
        ),
    ],
)
def test_a_malformed_endpoint_is_a_configuration_error_and_sends_nothing(
    suite: pytest.Pytester,
    runs: Runs,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    value: str,
    error: str,
) -> None:
    suite.runpytest().assert_outcomes(passed=3, failed=2)
    capsys.readouterr()
    with FailingProxy(f"http://127.0.0.1:{free_port()}").running() as proxy:
        host = proxy.url.removeprefix("http://")
        use_phoenix(monkeypatch, value.format(host=host), project="nowhere")
        store_dir = str(runs.directory / ".llmobs")
        assert llmobs(["upload", "latest", "--to", "phoenix", "--store", store_dir]) == 2
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", f"llmobs: error: {error.format(host=host)}\n")
    assert "hush" not in captured.err
    assert proxy.seen == []


def test_credentials_in_the_endpoint_are_refused_and_never_shown_or_stored(
    suite: pytest.Pytester, runs: Runs, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FailingProxy(f"http://127.0.0.1:{free_port()}").running() as proxy:
        host = proxy.url.removeprefix("http://")
        use_phoenix(monkeypatch, f"http://admin:pw-hush-53@{host}", project="nowhere")
        result = suite.runpytest("--llm-upload=phoenix")
    result.assert_outcomes(passed=3, failed=2)
    result.stdout.fnmatch_lines(
        [
            f"upload to phoenix {proxy.url}: run *: sent nothing",
            "*NOT SENT (pending; retry with `llmobs upload --pending --to phoenix`): 1 datasets, *",
            f"*first error: not sent: {CREDENTIALS}; got 'http://***@{host}'",
        ]
    )
    assert "hush" not in str(result.stdout) + str(result.stderr)
    assert proxy.seen == []
    store_bytes = b"".join(p.read_bytes() for p in (runs.directory / ".llmobs").glob("llmobs.db*"))
    assert b"hush" not in store_bytes


def test_config_from_env() -> None:
    assert PhoenixConfig.from_env({}).endpoint == DEFAULT_ENDPOINT
    otlp_style = {"PHOENIX_COLLECTOR_ENDPOINT": "http://phoenix.internal:6006/v1/traces"}
    assert PhoenixConfig.from_env(otlp_style).endpoint == "http://phoenix.internal:6006"
    keyed = PhoenixConfig.from_env({"PHOENIX_API_KEY": "px-SECRET"})
    assert keyed.headers == {"Authorization": "Bearer px-SECRET"}
    assert "px-SECRET" not in repr(keyed) and "px-SECRET" not in keyed.state_target("p")
    with pytest.raises(ExportError, match="PHOENIX_COLLECTOR_ENDPOINT='localhost:6006' is not"):
        PhoenixConfig.from_env({"PHOENIX_COLLECTOR_ENDPOINT": "localhost:6006"})


def test_project_name() -> None:
    started = 1_790_000_000.0
    auto = {"name": default_run_name("mock-llm-v1", started), "model": "mock-llm-v1",
            "started_at": started}  # fmt: skip
    assert project_name(auto, None) == "pytest-llmobs"
    assert project_name({**auto, "name": "nightly/gpt#4?"}, None) == "nightly-gpt-4-"
    assert project_name({**auto, "name": "nightly"}, "team-evals") == "team-evals"


def test_rest_bodies() -> None:
    examples = [
        {"id": "a", "input": "q", "expected_output": "x", "metadata": {"k": 1}},
        {"id": "b", "input": {"question": "q"}, "expected_output": {"answer": 1}},
    ]
    body = rest.dataset_upload_body("d", examples)
    assert body["action"] == "update" and body["example_ids"] == ["a", "b"]
    assert body["description"] == "Uploaded by pytest-llmobs"
    assert body["inputs"] == [{"input": "q"}, {"question": "q"}]
    assert body["outputs"] == [{"output": "x"}, {"answer": 1}]
    assert body["metadata"] == [{"k": 1}, {}]
    scores = [{"name": "acc"}, {"name": "tone"}, {"name": "acc"}, {"name": "acc"}]
    assert rest.evaluation_names(scores) == ["acc", "tone", "acc #2", "acc #3"]
    judged = {"id": "s", "name": "j", "value": "good", "data_type": "CATEGORICAL",
              "source": "judge_helpfulness", "comment": "because"}  # fmt: skip
    annotation = rest.span_annotation(judged, "0123456789abcdef")
    assert annotation["annotator_kind"] == "LLM" and annotation["identifier"] == "s"
    assert annotation["result"] == {"score": None, "label": "good", "explanation": "because"}
    item = {"repeat": 1, "outcome": "error", "error": "fixture broke", "started_at": 0.5,
            "trace": {"id": "t", "observations": [{"output": "o"}]}}  # fmt: skip
    run_body = rest.experiment_run_body(item, "node", "t-sent")
    assert run_body["repetition_number"] == 2 and run_body["error"] == "fixture broke"
    assert run_body["output"] == "o" and run_body["trace_id"] == "t-sent"
    assert "error" not in rest.experiment_run_body({**item, "outcome": "failed"}, "node", "t")
    assert rest.outcome_evaluation_body("r", item, "t-sent")["trace_id"] == "t-sent"
    experiment = rest.experiment_body(
        {"id": "run-1", "model": "m", "started_at": 0.5}, "d", "v", 2, "team"
    )
    assert experiment["metadata"]["project"] == "team"
    assert experiment["metadata"]["run_started_at"] == "1970-01-01T00:00:00.500000Z"
    assert rest.experiment_project(experiment) == "team"
    assert rest.is_experiment_of(experiment, {"id": "run-1"})
    ids = {sent_id(rest.id_salt(p), "0af7651916cd43dd8448eb211c80319c") for p in ("a", "b", "a")}
    assert len(ids) == 2 and all(len(i) == 32 for i in ids)


def test_a_dataset_missing_from_the_store_is_rebuilt_from_the_run_items() -> None:
    def item(repeat: int) -> dict[str, Any]:
        trace = {"id": f"{repeat:032x}", "observations": [{"id": f"{repeat + 1:016x}"}]}
        return {"dataset": "d", "item_id": "a", "input": "q", "expected_output": "x",
                "repeat": repeat, "trace": trace}  # fmt: skip

    run = {"id": "r", "datasets": {"d": "v1"}, "items": [item(0), item(1)]}
    report = ExportReport(target="phoenix", run_id="r")
    with contextlib.closing(Store(None)) as store:
        inventory = Inventory.of(run, store, report)
    (example,) = inventory.datasets["d"].examples
    assert (example["id"], example["input"], example["expected_output"]) == ("a", "q", "x")
    assert report.notes == [
        "dataset 'd' version v1 is not in the store: uploaded the 1 item(s) the run used"
    ]


def held_version_server(current_examples: list[dict[str, Any]]) -> tuple[HttpSender, list[str]]:
    """A sender to a fake Phoenix whose dataset's current version is v0, holding
    ``current_examples``; every other version holds something else. Returns it and the paths
    requested."""
    import httpx

    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        if request.url.path.endswith("/versions"):
            return httpx.Response(200, json={"data": [{"version_id": "v0"}], "next_cursor": None})
        version = request.url.params["version_id"]
        examples = current_examples if version == "v0" else [{"id": "z", "node_id": "n"}]
        return httpx.Response(200, json={"data": {"examples": examples}})

    options = HttpOptions(transport=httpx.MockTransport(handler), max_attempts=1)
    return HttpSender("http://phoenix.test", options=options), seen


def test_the_version_held_is_found_in_bounded_requests() -> None:
    body = rest.dataset_upload_body("d", [{"id": "a", "input": "q", "expected_output": "x"}])
    listed = [{"id": "a", "node_id": "n-a", "input": {"input": "q"}, "output": {"output": "x"},
               "metadata": {}}]  # fmt: skip
    experiments = [
        {"dataset_version_id": f"v{n}", "metadata": {"dataset_version": "c1"}}
        for n in range(10, 0, -1)
    ]
    sender, seen = held_version_server(listed)
    assert versions.held_version(sender, "d1", experiments, body, "c1", None) is None
    assert len(seen) == 1 + versions.MAX_CANDIDATES  # the current version, then 3 candidates

    experiments.append({"dataset_version_id": "v0", "metadata": {"dataset_version": "c1"}})
    sender, seen = held_version_server(listed)
    held = versions.held_version(sender, "d1", experiments, body, "c1", None)
    assert held is not None and (held.version_id, held.current) == ("v0", True)
    assert len(seen) == 2  # the current version is read first
    assert versions.held_version(sender, "d1", experiments, body, "other", None) is None
    assert len(seen) == 2  # no experiment names that content: nothing to read


def test_same_content_compares_what_was_sent_with_what_phoenix_lists() -> None:
    examples = [{"id": "a", "input": {"q": 1}, "expected_output": 2.0, "metadata": {"k": "v"}}]
    body = rest.dataset_upload_body("d", examples)
    listed = [{"id": "a", "node_id": "n", "input": {"q": 1}, "output": {"output": 2.0},
               "metadata": {"k": "v"}}]  # fmt: skip
    assert versions.same_content(body, listed)
    assert not versions.same_content(body, [{**listed[0], "metadata": {}}])
    assert not versions.same_content(body, [*listed, {**listed[0], "id": "b"}])
    assert not versions.same_content(body, [])


def test_a_run_is_newer_than_the_current_version_only_when_every_run_on_it_started_before() -> None:
    def on(version: str, started: str | None) -> dict[str, Any]:
        return {"dataset_version_id": version, "metadata": {"run_started_at": started}}

    early, late = "2026-01-01T00:00:00.000000Z", "2026-02-01T00:00:00.000000Z"
    assert versions.newer_than(late, [on("v1", early), on("v0", late)], "v1")
    assert not versions.newer_than(early, [on("v1", late)], "v1")
    assert not versions.newer_than(late, [on("v1", early), on("v1", None)], "v1")  # unknown
    assert not versions.newer_than(late, [on("v0", early)], "v1")  # no run on it: unknown


def test_phoenix_tests_skip_without_the_binary_and_fail_under_ci(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LLMOBS_PHOENIX_BIN", os.devnull + "-missing")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="LLMOBS_PHOENIX_BIN is not set"):
        phoenix_binary()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="LLMOBS_PHOENIX_BIN is not set"):
        phoenix_binary()
