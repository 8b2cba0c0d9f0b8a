"""What of one stored run Langfuse should hold: its prompt versions, datasets, dataset items and
traced items (`Inventory`), read from the run and the store, and counted per kind for a report;
and what the server holds already: a prompt's versions (`PromptHistory`, each compared with the
store's), a dataset's content version (`ServerDataset`) and which of a run's dataset items it
holds (`held_items`)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from pytest_llmobs.exporters import ExportReport
from pytest_llmobs.exporters import langfuse_payloads as payloads
from pytest_llmobs.exporters.times import aware_instant

if TYPE_CHECKING:
    from pytest_llmobs.exporters.http import HttpSender, Response
    from pytest_llmobs.store import Store

PROMPT = "a JSON prompt object"
DATASET = "a JSON dataset object"
ITEMS_PAGE = 100
"""Dataset items asked for per page (the most Langfuse's list endpoints give)."""
ITEM = "a JSON dataset item"
ITEM_PAGE = 'a JSON page of dataset items ("data": a list, "meta": with "totalPages")'


@dataclass
class Inventory:
    """Everything of one run that Langfuse should hold, by upload-state kind and key."""

    prompts: dict[tuple[str, int], dict[str, Any] | None] = field(default_factory=dict)
    datasets: dict[str, str | None] = field(default_factory=dict)
    dataset_items: dict[str, tuple[str, str, dict[str, Any], Any]] = field(default_factory=dict)
    items: list[dict[str, Any]] = field(default_factory=list)
    repeats: bool = False


def run_inventory(run: Mapping[str, Any], store: Any) -> Inventory:
    inv = Inventory()
    items = list(run.get("items") or [])
    inv.items = [i for i in items if (i.get("trace") or {}).get("observations")]
    inv.repeats = any(int(i.get("repeat") or 0) for i in items)
    snapshots: dict[str, dict[str, Any]] = {}
    for name, version in (run.get("datasets") or {}).items():
        inv.datasets[name] = version
        stored = store.get_dataset(name, version) if store is not None else None
        snapshots[name] = {str(d.get("id")): d for d in stored or []}
    for item in items:
        dataset, item_id = item.get("dataset"), item.get("item_id")
        if not dataset or item_id is None:
            continue
        inv.datasets.setdefault(dataset, item.get("dataset_version"))
        key = payloads.dataset_item_id(dataset, str(item_id))
        metadata = snapshots.get(dataset, {}).get(str(item_id), {}).get("metadata")
        inv.dataset_items.setdefault(key, (dataset, str(item_id), item, metadata))
    wanted = {(p["name"], int(p["version"])) for p in run.get("prompts") or []}
    for item in inv.items:
        for obs in item["trace"]["observations"]:
            if obs.get("prompt_name") and obs.get("prompt_version") is not None:
                wanted.add((str(obs["prompt_name"]), int(obs["prompt_version"])))
    for name, version in sorted(wanted):
        inv.prompts[(name, version)] = (
            store.get_prompt(name, version=version) if store is not None else None
        )
    return inv


def item_scores(item: Mapping[str, Any]) -> list[dict[str, Any]]:
    return list((item.get("trace") or {}).get("scores") or [])


def count_all(
    report: ExportReport, bucket: dict[str, int], inv: Inventory, *, legacy: bool
) -> None:
    report.count(bucket, "prompts", sum(1 for p in inv.prompts.values() if p is not None))
    report.count(bucket, "datasets", len(inv.datasets))
    report.count(bucket, "dataset items", len(inv.dataset_items))
    report.count(bucket, "traces", len(inv.items))
    report.count(bucket, "observations", sum(len(i["trace"]["observations"]) for i in inv.items))
    report.count(bucket, "scores", sum(len(item_scores(i)) for i in inv.items))
    if legacy:
        report.count(bucket, "run items", sum(1 for i in inv.items if i.get("dataset")))


class PromptHistory:
    """The server's versions of prompts, each asked for once per upload (a version never
    changes), and whether one is this store's."""

    def __init__(self, sender: HttpSender, store: Store | None, inventory: Inventory) -> None:
        self.sender = sender
        self.store = store
        self.inventory = inventory
        self.versions: dict[tuple[str, int], Mapping[str, Any]] = {}
        self.local: dict[str, list[dict[str, Any]]] = {}

    def version(self, name: str, number: int) -> Mapping[str, Any] | None:
        """The server's version ``number`` of prompt ``name``; ``None`` when it has none (an
        `HttpError` when it cannot say)."""
        if (name, number) not in self.versions:
            answer = self.sender.request(
                "GET",
                f"/api/public/v2/prompts/{quote(name, safe='')}",
                params={"version": number},
                accept_statuses=[404],
                expect="json",
            )
            if answer.status != 200:
                return None
            self.versions[(name, number)] = answer.json_object(PROMPT)
        return self.versions[(name, number)]

    def keep(self, name: str, number: int, prompt: Mapping[str, Any]) -> None:
        """Note a version the upload created."""
        self.versions[(name, number)] = prompt

    def known(self, name: str, server: Mapping[str, Any]) -> bool:
        """Whether a server version is one of this store's: created by pytest-llmobs from a
        stored version (its commit message names the content hash) or of a stored content."""
        hashed = payloads.commit_hash(server.get("commitMessage"))
        store = self.store
        if hashed and store is not None and store.prompt_by_hash(name, hashed) is not None:
            return True
        if name not in self.local:
            if self.store is not None:
                numbers = self.store.prompt_index(name)[0]
                stored = [self.store.get_prompt(name, version=v) for v in numbers]
            else:  # (a run read from elsewhere: only its own versions are known)
                stored = [p for (n, _), p in self.inventory.prompts.items() if n == name]
            self.local[name] = [p for p in stored if p is not None]
        return any(payloads.same_prompt(server, local) for local in self.local[name])


@dataclass(frozen=True)
class ServerDataset:
    """A dataset on the server, with the content version its items hold (the metadata
    `payloads.dataset_body` writes: the version and the run it was uploaded from)."""

    id: str
    project_id: str | None
    version: str | None
    run_id: str | None
    run_started_at: str | None

    @classmethod
    def from_answer(cls, answer: Response) -> ServerDataset:
        """From a ``Dataset`` answer (`MalformedAnswer` when it is not one, with an ``id``);
        metadata that another tool wrote, or none, reads as an unknown version."""
        body = answer.json_object(DATASET)
        if not isinstance(body.get("id"), str) or not body["id"]:
            raise answer.malformed('a JSON dataset object with an "id"')
        metadata = body.get("metadata")
        metadata = metadata if isinstance(metadata, Mapping) else {}

        def text(value: Any) -> str | None:
            return value if isinstance(value, str) and value else None

        return cls(
            id=str(body["id"]),
            project_id=text(body.get("projectId")),
            version=text(metadata.get("version")),
            run_id=text(metadata.get("run_id")),
            run_started_at=text(metadata.get("run_started_at")),
        )

    def holds_later(self, version: str | None, started_at: str | None) -> bool:
        """Whether the server's items are another content version, uploaded from a run that
        started after the one (``started_at``, ISO 8601) whose ``version`` is to be sent.

        A run's start orders content versions as they were current (a dataset edited back to
        an earlier version is the newest again), across stores and machines. Without a known
        version and start on both sides (a dataset an older pytest-llmobs or another tool
        uploaded) the order is unknown and the run's items are sent as they were before."""
        if None in (self.version, version) or self.version == version:
            return False
        return _later(self.run_started_at, started_at)

    def stamp(
        self, version: str | None, run_id: str, started_at: str | None
    ) -> tuple[str, str | None]:
        """The run (id, start) to name in the metadata when ``version`` is sent: this one, or
        the server's when it holds the same version from a run that started later (so that an
        older run of that version sent afterwards does not make it look older)."""
        if self.version == version and self.run_id and _later(self.run_started_at, started_at):
            return self.run_id, self.run_started_at
        return run_id, started_at


def held_items(sender: HttpSender, dataset: str, ids: Collection[str]) -> set[str]:
    """Which of the dataset item ids ``ids`` the server holds in ``dataset``; `HttpError` when
    it cannot say.

    One page of the dataset's items first; then its other pages when they are no more than the
    ids still unknown, else each of those ids on its own: at most 1 + ``len(ids)`` requests,
    however large the dataset on the server is."""
    path = "/api/public/dataset-items"
    unknown = set(ids)
    held: set[str] = set()

    def read(page: int) -> int:
        answer = sender.request(
            "GET",
            path,
            params={"datasetName": dataset, "page": page, "limit": ITEMS_PAGE},
            expect="json",
        )
        found, pages = _item_page(answer)
        held.update(unknown & found)
        unknown.difference_update(found)
        return pages

    pages = read(1) if unknown else 0
    if pages - 1 <= len(unknown):
        for page in range(2, pages + 1):
            if unknown:
                read(page)
        return held
    for item_id in sorted(unknown):
        answer = sender.request(
            "GET", f"{path}/{quote(item_id, safe='')}", accept_statuses=[404], expect="json"
        )
        if answer.status == 200 and answer.json_object(ITEM).get("datasetName") == dataset:
            held.add(item_id)  # (an id of another dataset is not held here: creating it fails)
    return held


def _item_page(answer: Response) -> tuple[set[str], int]:
    """The item ids on one page of a dataset's items, and how many pages there are."""
    body = answer.json_object(ITEM_PAGE)
    data, meta = body.get("data"), body.get("meta")
    pages = meta.get("totalPages") if isinstance(meta, Mapping) else None
    if not isinstance(data, list) or not isinstance(pages, int) or isinstance(pages, bool):
        raise answer.malformed(ITEM_PAGE)
    return {str(i["id"]) for i in data if isinstance(i, Mapping) and i.get("id")}, pages


def _later(first: str | None, second: str | None) -> bool:
    """Whether the time ``first`` is after ``second`` (both ISO 8601; False if either is not)."""
    one, other = aware_instant(first), aware_instant(second)
    return one is not None and other is not None and one > other
