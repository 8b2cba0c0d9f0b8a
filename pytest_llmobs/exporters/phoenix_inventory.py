"""What of one stored run Phoenix should hold: its traced items, and each dataset's examples as
the run saw them (`Inventory`, one `PhoenixDataset` per dataset, which also keeps the ids the
server gives), counted per kind for a report."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pytest_llmobs.exporters import ExportReport
from pytest_llmobs.exporters.otlp_send import traced_items

if TYPE_CHECKING:
    from pytest_llmobs.store import Store


@dataclass
class PhoenixDataset:
    name: str
    version: str | None
    examples: list[dict[str, Any]]
    remote_id: str | None = None
    version_id: str | None = None
    node_ids: dict[str, str] = field(default_factory=dict)
    """Item id → the example's node id (what experiment runs refer to)."""
    experiment_id: str | None = None


@dataclass
class Inventory:
    """What of one run Phoenix should hold: traced items, and each dataset's examples."""

    items: list[dict[str, Any]]
    datasets: dict[str, PhoenixDataset]

    @property
    def dataset_items(self) -> list[dict[str, Any]]:
        return [i for i in self.items if i.get("dataset") and i.get("item_id") is not None]

    @classmethod
    def of(cls, run: Mapping[str, Any], store: Store, report: ExportReport) -> Inventory:
        """The run's items and datasets (the stored snapshot of each version the run used)."""
        inventory = cls(traced_items(run), {})
        wanted = dict(run.get("datasets") or {})
        for item in inventory.dataset_items:
            wanted.setdefault(item["dataset"], item.get("dataset_version"))
        for name, version in wanted.items():
            stored = store.get_dataset(name, version) if version else None
            if stored is None:
                seen: dict[str, dict[str, Any]] = {}
                for item in inventory.dataset_items:
                    if item["dataset"] == name:
                        seen.setdefault(str(item["item_id"]), {**item, "id": item["item_id"]})
                stored = list(seen.values())
                report.notes.append(
                    f"dataset {name!r} version {version} is not in the store: uploaded the "
                    f"{len(stored)} item(s) the run used"
                )
            inventory.datasets[name] = PhoenixDataset(name, version, [dict(e) for e in stored])
        return inventory

    def count_all(self, report: ExportReport, bucket: dict[str, int]) -> None:
        items, count = self.items, report.count
        count(bucket, "datasets", len(self.datasets))
        count(bucket, "dataset items", sum(len(d.examples) for d in self.datasets.values()))
        count(bucket, "traces", len(items))
        count(bucket, "observations", sum(len(i["trace"]["observations"]) for i in items))
        count(bucket, "scores", sum(len(i["trace"].get("scores") or []) for i in items))
