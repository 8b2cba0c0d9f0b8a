"""What the Phoenix exporter sends, built from stored runs (no I/O here): the OpenInference span
attributes Phoenix's UI reads, and the bodies of its REST API (``/v1/datasets/upload``,
``/v1/datasets/{id}/experiments``, ``/v1/experiments/{id}/runs``, ``/v1/experiment_evaluations``,
``/v1/span_annotations``).

Mappings:

- trace and span ids are derived from the stored ones and the project (`id_salt`): Phoenix keeps
  a trace in the project it first reached, so the same ids sent to another project would land
  nowhere; the root span's ``metadata.llmobs.trace_id`` keeps the stored trace id;
- a dataset item is an example whose public id is the item id; an input or expected output that
  is not a JSON object is wrapped as ``{"input": value}`` / ``{"output": value}`` (Phoenix keeps
  objects), its metadata is the item's;
- a dataset item's result (one per repeat) is an experiment run: repetition = repeat + 1, output
  = the test's root span output, ``error`` only when the test errored (a failed assertion is a
  result, shown by the ``outcome`` evaluation), linked to its trace by trace id; a run has one
  experiment per dataset and project (its metadata names both), as its runs link to the traces
  of one project;
- a score is an experiment evaluation on its run (dataset items) and a span annotation on the span
  it judges (every test, identified by the score id so uploads upsert): NUMERIC → score, BOOLEAN →
  score 1/0 + label true/false, CATEGORICAL → label, the comment → explanation. Phoenix reserves
  the annotation name ``note`` for its span notes (free text, no score), so a score named ``note``
  becomes the span annotation ``llmobs.note`` (`RESERVED_ANNOTATION_NAMES`); its experiment
  evaluation keeps the name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pytest_llmobs.exporters.batching import encode_json
from pytest_llmobs.exporters.langfuse_payloads import iso
from pytest_llmobs.exporters.otlp import score_parts
from pytest_llmobs.providers.base import (
    is_chat_message,
    message_text,
    part_text,
    tool_call_fields,
)

if TYPE_CHECKING:
    from pytest_llmobs.exporters.otlp_spans import AttributeValue, SpanSource

OUTCOME_EVALUATION = "outcome"
"""The evaluation every experiment run gets: label passed/failed/error, score 1/0."""

PromptLookup = Callable[[str, int], "Mapping[str, Any] | None"]

RESERVED_ANNOTATION_NAMES = {"note": "llmobs.note"}
"""Span annotation names Phoenix refuses (400), and the name such a score is sent under."""


def id_salt(project: str) -> str:
    """The salt of the trace and span ids sent to ``project`` (`otlp_send.sent_id`)."""
    return f"phoenix project {project}"


# --- OpenInference span attributes ---------------------------------------------------------------


def _value(attrs: dict[str, AttributeValue | None], prefix: str, value: Any) -> None:
    if value is None:
        return
    if isinstance(value, str):
        attrs[f"{prefix}.value"], attrs[f"{prefix}.mime_type"] = value, "text/plain"
    else:
        attrs[f"{prefix}.value"], attrs[f"{prefix}.mime_type"] = (
            encode_json(value),
            "application/json",
        )


def _messages(attrs: dict[str, AttributeValue | None], prefix: str, value: Any, role: str) -> None:
    items = value if isinstance(value, list) else [value]
    chat = all(is_chat_message(m) for m in items)
    if not chat:
        items = [{"role": role, "content": value}]
    for index, message in enumerate(items):
        content = message.get("content")
        at = f"{prefix}.{index}.message"
        attrs[f"{at}.role"] = str(message["role"])
        if isinstance(content, str):
            attrs[f"{at}.content"] = content
        elif chat and (isinstance(content, list) or content is None):  # parts: their texts
            attrs[f"{at}.content"] = message_text(message)
            _contents(attrs, at, content or [])
        else:
            attrs[f"{at}.content"] = encode_json(content)
        if "tool_call_id" in message:
            attrs[f"{at}.tool_call_id"] = str(message["tool_call_id"])
        calls = message.get("tool_calls")
        fields = map(tool_call_fields, calls if isinstance(calls, list) else [])
        for number, call in enumerate(f for f in fields if f is not None):
            call_id, name, arguments = call
            at_call = f"{at}.tool_calls.{number}.tool_call"
            attrs[f"{at_call}.id"] = call_id
            attrs[f"{at_call}.function.name"] = name
            attrs[f"{at_call}.function.arguments"] = (
                arguments if isinstance(arguments, str) else encode_json(arguments)
            )


def _contents(attrs: dict[str, AttributeValue | None], at: str, parts: list[Any]) -> None:
    """A message's text and image parts as OpenInference ``message.contents`` entries."""
    for index, part in enumerate(p for p in parts if isinstance(p, (str, Mapping))):
        entry = f"{at}.contents.{index}.message_content"
        text = part_text(part)
        if text is not None:
            attrs[f"{entry}.type"] = "text"
            attrs[f"{entry}.text"] = text
        elif isinstance(part, Mapping) and part.get("type") == "image_url":
            image = part.get("image_url")
            if not isinstance(image, Mapping):
                continue
            attrs[f"{entry}.type"] = "image"
            attrs[f"{entry}.image.image.url"] = str(image.get("url", ""))


def prompt_template(stored: Mapping[str, Any]) -> str:
    """A stored prompt version's template as one string (chat prompts as JSON messages)."""
    template = stored.get("prompt")
    return template if isinstance(template, str) else encode_json(template)


def openinference_attributes(
    source: SpanSource, prompts: PromptLookup
) -> dict[str, AttributeValue | None]:
    """``openinference.span.kind`` (LLM for generations, CHAIN otherwise), ``input.*``,
    ``output.*``, ``metadata``; on generations the ``llm.*`` model, parameters, messages, token
    counts, cost and prompt template; on root spans the user, session and tags."""
    obs = source.observation
    generation = obs.get("type") == "generation"
    attrs: dict[str, AttributeValue | None] = {
        "openinference.span.kind": "LLM" if generation else "CHAIN"
    }
    _value(attrs, "input", obs.get("input"))
    _value(attrs, "output", obs.get("output"))
    metadata = dict(obs.get("metadata") or {})
    if source.is_root:
        trace, item = source.trace, source.item
        metadata.update(trace.get("metadata") or {})
        metadata["llmobs"] = {
            "run_id": source.run.get("id"),
            "trace_id": trace.get("id"),
            "node_id": item.get("node_id"),
            "outcome": item.get("outcome"),
            "repeat": item.get("repeat", 0),
            "dataset": item.get("dataset"),
            "item_id": item.get("item_id"),
        }
        if trace.get("user_id"):
            attrs["user.id"] = str(trace["user_id"])
        if trace.get("session_id"):
            attrs["session.id"] = str(trace["session_id"])
        if trace.get("tags"):
            attrs["tag.tags"] = [str(t) for t in trace["tags"]]
    if metadata:
        attrs["metadata"] = encode_json(metadata)
    if generation:
        attrs.update(_llm_attributes(obs, prompts))
    return attrs


def _llm_attributes(obs: Mapping[str, Any], prompts: PromptLookup) -> dict[str, Any]:
    attrs: dict[str, AttributeValue | None] = {}
    if obs.get("model"):
        attrs["llm.model_name"] = str(obs["model"])
    if obs.get("model_parameters"):
        attrs["llm.invocation_parameters"] = encode_json(obs["model_parameters"])
    if obs.get("input") is not None:
        _messages(attrs, "llm.input_messages", obs["input"], "user")
    if obs.get("output") is not None:
        _messages(attrs, "llm.output_messages", obs["output"], "assistant")
    usage = obs.get("usage") or {}
    for ours, theirs in (("input", "prompt"), ("output", "completion"), ("total", "total")):
        if isinstance(usage.get(ours), (int, float)):
            attrs[f"llm.token_count.{theirs}"] = int(usage[ours])
    if obs.get("cost") is not None:
        attrs["llm.cost.total"] = float(obs["cost"])
    name, version = obs.get("prompt_name"), obs.get("prompt_version")
    if name and version is not None:
        attrs["llm.prompt_template.version"] = f"{name}@{version}"
        stored = prompts(str(name), int(version))
        if stored is not None:
            attrs["llm.prompt_template.template"] = prompt_template(stored)
    return attrs


# --- datasets ------------------------------------------------------------------------------------


def example_input(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {"input": value}


def example_output(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {"output": value}


def dataset_upload_body(name: str, examples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """``POST /v1/datasets/upload`` (JSON, ``action=update``): the dataset becomes exactly these
    examples, keyed by item id, as its current version (unchanged content keeps the server's
    current version; content it holds as an older version is linked, not sent:
    `phoenix_versions`). The description names no content version: Phoenix keeps a dataset's
    first description (each experiment's metadata names the version it ran on)."""
    return {
        "action": "update",
        "name": name,
        "description": "Uploaded by pytest-llmobs",
        "inputs": [example_input(e.get("input")) for e in examples],
        "outputs": [example_output(e.get("expected_output")) for e in examples],
        "metadata": [dict(e.get("metadata") or {}) for e in examples],
        "example_ids": [str(e["id"]) for e in examples],
    }


# --- experiments ---------------------------------------------------------------------------------


def experiment_body(
    run: Mapping[str, Any], dataset: str, version_id: str, repetitions: int, project: str
) -> dict[str, Any]:
    """``POST /v1/datasets/{id}/experiments``: the run's experiment on ``dataset`` whose runs
    link to the traces in ``project``."""
    model = run.get("model") or "-"
    return {
        "name": str(run.get("name") or run["id"]),
        "description": f"pytest-llmobs run {run['id']} (model {model}, project {project})",
        "metadata": experiment_metadata(run, dataset, project),
        "version_id": version_id,
        "repetitions": max(1, repetitions),
    }


def experiment_metadata(run: Mapping[str, Any], dataset: str, project: str) -> dict[str, Any]:
    environment = run.get("environment") or {}
    metadata: dict[str, Any] = {
        "llmobs_run_id": str(run["id"]),
        "project": project,
        "dataset": dataset,
        "dataset_version": (run.get("datasets") or {}).get(dataset),
        "model": run.get("model"),
        "params": run.get("params") or {},
        "status": run.get("status"),
        "run_started_at": iso(run.get("started_at")),  # orders content versions (`newer_than`)
    }
    if environment.get("git_commit"):
        metadata["git_commit"] = environment["git_commit"]
    return metadata


def is_experiment_of(experiment: Any, run: Mapping[str, Any]) -> bool:
    """Whether a listed experiment is this run's, for any project (found again when the upload
    state is lost)."""
    metadata = experiment.get("metadata") if isinstance(experiment, Mapping) else None
    return isinstance(metadata, Mapping) and metadata.get("llmobs_run_id") == str(run["id"])


def experiment_project(experiment: Mapping[str, Any]) -> str | None:
    """The project whose traces a listed experiment of ours links to (`experiment_metadata`)."""
    project = (experiment.get("metadata") or {}).get("project")
    return project if isinstance(project, str) else None


def root_output(item: Mapping[str, Any]) -> Any:
    observations = (item.get("trace") or {}).get("observations") or []
    return observations[0].get("output") if observations else None


def experiment_run_body(
    item: Mapping[str, Any], example_node_id: str, trace_id: str
) -> dict[str, Any]:
    """``POST /v1/experiments/{id}/runs``: ``item``'s result, linked to its trace as sent."""
    started = item.get("started_at")
    ended = item.get("ended_at") or started
    body: dict[str, Any] = {
        "dataset_example_id": example_node_id,
        "output": root_output(item),
        "repetition_number": int(item.get("repeat") or 0) + 1,
        "start_time": iso(started) or iso(0),
        "end_time": iso(ended) or iso(0),
        "trace_id": trace_id,
    }
    if item.get("outcome") == "error":
        body["error"] = str(item.get("error") or "error")
    return body


def annotator_kind(score: Mapping[str, Any]) -> str:
    """LLM for the judge evaluators (``judge_*``), CODE for everything else."""
    return "LLM" if str(score.get("source") or "").startswith("judge") else "CODE"


def _result(score: Mapping[str, Any]) -> dict[str, Any]:
    number, label = score_parts(score)
    return {"score": number, "label": label, "explanation": score.get("comment") or None}


def evaluation_names(scores: Sequence[Mapping[str, Any]]) -> list[str]:
    """Evaluation names for one run's scores: Phoenix keeps one evaluation per name and run, so a
    name scored again (on another span, say) becomes ``name #2``, ``name #3``..."""
    seen: dict[str, int] = {}
    names = []
    for score in scores:
        name = str(score["name"])
        seen[name] = seen.get(name, 0) + 1
        names.append(name if seen[name] == 1 else f"{name} #{seen[name]}")
    return names


def evaluation_body(
    run_id: str, score: Mapping[str, Any], name: str, trace_id: str
) -> dict[str, Any]:
    when = iso(score.get("timestamp")) or iso(0)
    return {
        "experiment_run_id": run_id,
        "name": name,
        "annotator_kind": annotator_kind(score),
        "start_time": when,
        "end_time": when,
        "result": _result(score),
        "metadata": score_metadata(score),
        "trace_id": trace_id,
    }


def outcome_evaluation_body(run_id: str, item: Mapping[str, Any], trace_id: str) -> dict[str, Any]:
    outcome = str(item.get("outcome") or "")
    when = iso(item.get("ended_at")) or iso(0)
    return {
        "experiment_run_id": run_id,
        "name": OUTCOME_EVALUATION,
        "annotator_kind": "CODE",
        "start_time": when,
        "end_time": when,
        "result": {
            "score": 1.0 if outcome == "passed" else 0.0,
            "label": outcome,
            "explanation": item.get("error") or None,
        },
        "metadata": {"node_id": item.get("node_id")},
        "trace_id": trace_id,
    }


def score_metadata(score: Mapping[str, Any]) -> dict[str, Any]:
    metadata = dict(score.get("metadata") or {})
    metadata.update(score_id=score["id"], data_type=score.get("data_type") or "NUMERIC")
    if score.get("source"):
        metadata["source"] = score["source"]
    return metadata


def span_annotation(score: Mapping[str, Any], span_id: str) -> dict[str, Any]:
    """One entry of ``POST /v1/span_annotations``; the score id is the upsert identifier."""
    name = str(score["name"])
    return {
        "span_id": span_id,
        "name": RESERVED_ANNOTATION_NAMES.get(name, name),
        "annotator_kind": annotator_kind(score),
        "result": _result(score),
        "metadata": score_metadata(score),
        "identifier": str(score["id"]),
    }
