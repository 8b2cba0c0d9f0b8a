"""What of one stored run Langfuse should hold: its prompt versions, datasets, dataset items and
traced items (`Inventory`), read from the run and the store, and counted per kind for a report."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pytest_llmobs.exporters import ExportReport
from pytest_llmobs.exporters import langfuse_payloads as payloads


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
