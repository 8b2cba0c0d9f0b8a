"""What Phoenix already holds of a run's dataset, read before the dataset is uploaded, and the
readers of Phoenix's REST answers the exporter shares (`answer_data`, `answer_list`).

``POST /v1/datasets/upload`` makes the content it gets the dataset's current version (a new one
unless it is the current content already): it cannot add a version that is not current. An
older run uploaded again after a newer one would make its content current again, so the
exporter first looks for a version that holds the run's content (`held_version`) and links the
run's experiment to it:

- the dataset is found by name, and its experiments listed (each names the version it ran on;
  ours name the content version of the run, and when the run started, in their metadata);
- versions that our experiments name for the run's content version are the candidates, the
  current one first, and their examples are compared with the run's (`same_content`), at most
  `MAX_CANDIDATES` of them;
- a run that started after every run whose experiment is on the current version uploads its
  content instead, which becomes current, as for Langfuse: a dataset edited back to an earlier
  content is the newest again. Without that knowledge (a current version no experiment of ours
  names, or one uploaded by an older pytest-llmobs) the version held is linked.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from pytest_llmobs.exporters.batching import encode_json
from pytest_llmobs.exporters.times import aware_instant

if TYPE_CHECKING:
    from pytest_llmobs.exporters.http import HttpSender, Response

MAX_CANDIDATES = 3
"""Versions whose examples are read, at most, to find one holding the run's content."""

PAGE = 100


@dataclass(frozen=True)
class HeldVersion:
    """A version of the dataset on the server that holds exactly the run's content."""

    version_id: str
    examples: list[Mapping[str, Any]]
    """Its examples as listed (with the node ids experiment runs refer to)."""
    current: bool


def find_dataset(sender: HttpSender, name: str) -> str | None:
    """The id of the dataset named ``name`` on the server, or ``None``."""
    answer = sender.request("GET", "/v1/datasets", params={"name": name}, expect="json")
    found = [d for d in answer_list(answer, ("id", "name")) if d["name"] == name]
    return str(found[0]["id"]) if found else None


def list_experiments(sender: HttpSender, dataset_id: str) -> list[Mapping[str, Any]]:
    """Every experiment on the dataset, newest first (all pages)."""
    path = f"/v1/datasets/{quote(dataset_id, safe='')}/experiments"
    experiments: list[Mapping[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {"limit": PAGE, **({"cursor": cursor} if cursor else {})}
        listed = sender.request("GET", path, params=params, expect="json")
        experiments.extend(answer_list(listed, ("id",)))
        cursor = listed.json_object().get("next_cursor")
        if not cursor:
            return experiments


def held_version(
    sender: HttpSender,
    dataset_id: str,
    experiments: list[Mapping[str, Any]],
    body: Mapping[str, Any],
    version: str | None,
    started_at: str | None,
) -> HeldVersion | None:
    """The version of the dataset to link the run's experiment to instead of uploading
    ``body`` (`phoenix_rest.dataset_upload_body`): one holding exactly its content, found
    through ``experiments`` on the run's content ``version``; ``None`` when the run's content is
    to be uploaded (none is held, or the run, which started at ``started_at``, is newer than the
    current version's runs). See the module docstring."""
    candidates = content_versions(experiments, version)
    if not candidates:
        return None
    versions = sender.request(
        "GET",
        f"/v1/datasets/{quote(dataset_id, safe='')}/versions",
        params={"limit": 1},
        expect="json",
    )
    newest = answer_list(versions, ("version_id",))
    current = str(newest[0]["version_id"]) if newest else None
    if current not in candidates and newer_than(started_at, experiments, current):
        return None
    for version_id in sorted(candidates, key=lambda v: v != current)[:MAX_CANDIDATES]:
        examples = list_examples(sender, dataset_id, version_id)
        if same_content(body, examples):
            return HeldVersion(version_id, examples, version_id == current)
    return None


def list_examples(
    sender: HttpSender, dataset_id: str, version_id: str | None
) -> list[Mapping[str, Any]]:
    """The examples of one version of the dataset, each with its id and node id."""
    listed = sender.request(
        "GET",
        f"/v1/datasets/{quote(dataset_id, safe='')}/examples",
        params={"version_id": version_id or ""},
        expect="json",
    )
    return answer_records(listed, answer_data(listed, ()).get("examples"), ("id", "node_id"))


def content_versions(experiments: list[Mapping[str, Any]], version: str | None) -> list[str]:
    """The dataset versions our experiments ran on for content ``version``, newest first."""
    found: dict[str, None] = {}
    for experiment in experiments:
        named = _metadata(experiment).get("dataset_version")
        if version is not None and named == version and experiment.get("dataset_version_id"):
            found[str(experiment["dataset_version_id"])] = None
    return list(found)


def newer_than(
    started_at: str | None, experiments: list[Mapping[str, Any]], current: str | None
) -> bool:
    """Whether a run that started at ``started_at`` (ISO 8601) started after every run whose
    experiment is on the ``current`` version; ``False`` when that is not known (no experiment
    there, one without its run's start)."""
    starts = [
        aware_instant(_metadata(e).get("run_started_at"))
        for e in experiments
        if current is not None and str(e.get("dataset_version_id")) == current
    ]
    start = aware_instant(started_at)
    if start is None or not starts or any(s is None for s in starts):
        return False
    return all(start > s for s in starts if s is not None)


def same_content(body: Mapping[str, Any], examples: list[Mapping[str, Any]]) -> bool:
    """Whether listed ``examples`` are exactly those of an upload ``body``: the same ids, each
    with the same input, output and metadata (compared as JSON, as they were sent)."""
    sent = json.loads(encode_json(body))
    ours = {
        str(example_id): (given, expected, metadata)
        for example_id, given, expected, metadata in zip(
            sent["example_ids"], sent["inputs"], sent["outputs"], sent["metadata"], strict=True
        )
    }
    theirs = {
        str(e.get("id")): (e.get("input"), e.get("output"), e.get("metadata") or {})
        for e in examples
    }
    unique = len(ours) == len(sent["example_ids"]) and len(theirs) == len(examples)
    return unique and ours == theirs


def _metadata(experiment: Mapping[str, Any]) -> Mapping[str, Any]:
    metadata = experiment.get("metadata")
    return metadata if isinstance(metadata, Mapping) else {}


# --- reading answers -----------------------------------------------------------------------------


def answer_data(answer: Response, fields: tuple[str, ...]) -> Mapping[str, Any]:
    """The ``data`` object of a Phoenix answer, with ``fields`` (`MalformedAnswer` naming the
    URL when it has none)."""
    data = answer.json_object().get("data")
    if not isinstance(data, Mapping) or any(data.get(f) is None for f in fields):
        wanted = ", ".join(f'"{f}"' for f in fields)
        holding = f" holding {wanted}" if wanted else ""
        raise answer.malformed(f'a JSON object with "data"{holding}')
    return data


def answer_list(answer: Response, fields: tuple[str, ...]) -> list[Mapping[str, Any]]:
    """The ``data`` list of a Phoenix answer, each entry an object with ``fields``."""
    return answer_records(answer, answer.json_object().get("data"), fields)


def answer_records(
    answer: Response, value: Any, fields: tuple[str, ...]
) -> list[Mapping[str, Any]]:
    """``value`` (part of ``answer``) as a list of objects with ``fields``, or `MalformedAnswer`."""
    entries = [] if value is None else value
    if not isinstance(entries, list) or not all(
        isinstance(e, Mapping) and all(e.get(f) is not None for f in fields) for e in entries
    ):
        raise answer.malformed(f"a JSON list of objects with {', '.join(fields)}")
    return entries
