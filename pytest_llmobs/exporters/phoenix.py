"""Upload a stored run to Arize Phoenix: traces over OTLP, then datasets, an experiment, its runs
and the scores over Phoenix's REST API.

Order: each dataset the run used, as the exact content version the run saw
(``POST /v1/datasets/upload``, examples keyed by item id; a version Phoenix already holds with
that content is linked instead, so an older run uploaded again does not make its content current
again: `phoenix_versions`) → every trace as OTLP spans on
``/v1/traces`` with OpenInference attributes (`phoenix_rest.openinference_attributes`), in the
project named by the resource attribute ``openinference.project.name``, with trace and span ids
derived from the stored ones and the project (Phoenix keeps a trace in the project it first
reached: a run sent to another project must not reuse its ids) → per dataset and project one
experiment on that dataset version (found again by its ``llmobs_run_id`` and ``project``
metadata) → one experiment run per dataset item and repeat, linked to its trace → each score as
an experiment evaluation on its run, plus an ``outcome`` evaluation → each score as a span
annotation (every test, not only dataset items).

Phoenix ingests spans and annotations asynchronously; the exporter does not wait for them.
Every object's outcome is kept in the store (`state.UploadState`), so ``--pending`` resumes;
examples, evaluations and annotations are upserted by stable keys, and experiment runs that the
server already has are not sent again.

Configuration: ``PHOENIX_COLLECTOR_ENDPOINT`` (default ``http://127.0.0.1:6006``),
``PHOENIX_API_KEY`` (sent as a bearer token), ``PHOENIX_PROJECT_NAME`` (default: the run's name
when it was given with ``--llm-run-name``, else ``pytest-llmobs``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from pytest_llmobs.exporters import ExporterOptions, ExportError, ExportReport
from pytest_llmobs.exporters import phoenix_rest as rest
from pytest_llmobs.exporters import phoenix_versions as versions
from pytest_llmobs.exporters.batching import encode_json
from pytest_llmobs.exporters.http import HttpError, HttpSender, execute_upload
from pytest_llmobs.exporters.http_options import HttpOptions
from pytest_llmobs.exporters.langfuse_payloads import iso
from pytest_llmobs.exporters.otlp import combine_hooks, genai_attributes
from pytest_llmobs.exporters.otlp_config import TRACES_PATH
from pytest_llmobs.exporters.otlp_send import TraceSend, send_traces, sent_id
from pytest_llmobs.exporters.phoenix_annotations import send_annotations
from pytest_llmobs.exporters.phoenix_config import PhoenixConfig, display_endpoint, project_name
from pytest_llmobs.exporters.phoenix_inventory import Inventory, PhoenixDataset
from pytest_llmobs.exporters.phoenix_versions import answer_data, answer_list
from pytest_llmobs.exporters.state import (
    Ledger,
    note_not_started,
    note_started,
    pending_elsewhere,
    pending_for,
    state_store,
)
from pytest_llmobs.store import Store


class PhoenixExporter:
    """The ``phoenix`` upload target (see the module docstring)."""

    name = "phoenix"

    def __init__(self, options: ExporterOptions) -> None:
        self.options = options

    def configuration(self) -> PhoenixConfig:
        return PhoenixConfig.from_env(self.options.environ)

    def pending_runs(self, store: Store) -> list[str]:
        """Runs whose last upload to this server (in the project each run maps to) left
        something unsent, then runs pending at another server or project that received none
        of them; oldest first."""
        return pending_for(store, self.name, self._targets(store))

    def pending_elsewhere(self, store: Store) -> list[tuple[str, str]]:
        """(run, target) for runs partly delivered to another server or project and still
        pending there."""
        return pending_elsewhere(store, self.name, self._targets(store))

    def _targets(self, store: Store) -> list[str]:
        config = self.configuration()
        targets = {config.state_target(project_name(r, config.project)) for r in store.list_runs()}
        return sorted(targets)

    def export(self, run: Mapping[str, Any]) -> ExportReport:
        environ = self.options.environ
        report = ExportReport(target=f"phoenix {display_endpoint(environ)}", run_id=str(run["id"]))
        with state_store(self.options.store) as store:
            return self._export(run, store, report)

    def _export(self, run: Mapping[str, Any], store: Store, report: ExportReport) -> ExportReport:
        from pytest_llmobs.exporters.otlp_spans import require_otel

        environ = self.options.environ
        inventory = Inventory.of(run, store, report)
        try:
            config = PhoenixConfig.from_env(environ)
            require_otel()
            http = self.options.http or HttpOptions.from_env(environ)
        except ExportError as exc:
            report.error(f"not sent: {exc}")
            inventory.count_all(report, report.failed)
            note_not_started(self.options.store, self.name, str(run["id"]))
            return report
        target = config.state_target(project_name(run, config.project))
        options = note_started(
            self.options, self.name, str(run["id"]), target=target, report=report
        )
        execute_upload(Upload(run, inventory, store, config, http, options, report), report)
        return report


class Upload:
    """One upload of one run to Phoenix: the steps in order, recording every object's outcome."""

    def __init__(
        self,
        run: Mapping[str, Any],
        inventory: Inventory,
        store: Store,
        config: PhoenixConfig,
        http: HttpOptions,
        options: ExporterOptions,
        report: ExportReport,
    ) -> None:
        self.run = run
        self.items = inventory.items
        self.dataset_items = inventory.dataset_items
        self.datasets = inventory.datasets
        self.store = store
        self.report = report
        self.project = project_name(run, config.project)
        self.salt = rest.id_salt(self.project)
        self.sender = HttpSender(base_url=config.endpoint, headers=config.headers, options=http)
        self.experiments: dict[str, list[Mapping[str, Any]]] = {}
        """The experiments listed per dataset id (`phoenix_versions.list_experiments`)."""
        self.ledger = Ledger(
            store,
            config.state_target(self.project),
            str(run["id"]),
            report,
            pending_only=options.pending_only,
            scrub=self.sender.scrub,
        )

    def execute(self) -> None:
        self.report.notes.append(f"Phoenix project {self.project!r}")
        self.ledger.state.begin()
        for dataset in self.datasets.values():
            self.dataset(dataset)
        self.traces()
        for dataset in self.datasets.values():
            items = [i for i in self.dataset_items if i["dataset"] == dataset.name]
            if items:
                self.experiment(dataset, items)
        send_annotations(self.ledger, self.sender, self.items, self.salt)
        self.ledger.state.finish(complete=self.report.ok)

    # --- steps --------------------------------------------------------------------------------

    def dataset(self, dataset: PhoenixDataset) -> None:
        ledger, name = self.ledger, dataset.name
        known = ledger.state.remote_id("dataset", name)
        try:
            listed = None
            if known is not None and not ledger.todo("dataset", "datasets", [name]):
                self.report.count(self.report.skipped, "dataset items", len(dataset.examples))
                dataset.remote_id, _, dataset.version_id = known.partition(" ")
            else:
                listed = self.send_dataset(dataset)
            if listed is None:
                remote_id = str(dataset.remote_id)
                listed = versions.list_examples(self.sender, remote_id, dataset.version_id)
            for example in listed:
                dataset.node_ids[str(example["id"])] = str(example["node_id"])
        except (HttpError, KeyError, TypeError) as exc:
            ledger.failed("dataset", "datasets", [name], _message(exc, f"dataset {name!r}"))
            self.report.count(self.report.failed, "dataset items", len(dataset.examples))
            dataset.remote_id = None

    def send_dataset(self, dataset: PhoenixDataset) -> list[Mapping[str, Any]] | None:
        """Upload the dataset as the run saw it, or link the version Phoenix holds with that
        content (`phoenix_versions.held_version`: then its examples are returned)."""
        body = rest.dataset_upload_body(dataset.name, dataset.examples)
        found = held = None
        if dataset.version is not None:  # (else no experiment can name the content)
            found = versions.find_dataset(self.sender, dataset.name)
        if found is not None:
            listed = self.experiments[found] = versions.list_experiments(self.sender, found)
            started = iso(self.run.get("started_at"))
            held = versions.held_version(self.sender, found, listed, body, dataset.version, started)
        if held is not None:
            dataset.remote_id, dataset.version_id = found, held.version_id
            if not held.current:
                self.report.notes.append(
                    f"dataset {dataset.name!r}: Phoenix holds this run's content as an earlier "
                    f"version ({held.version_id}): the experiment is linked to it, and the "
                    "current version is left as it is"
                )
        else:
            answer = self.sender.request(
                "POST",
                "/v1/datasets/upload",
                params={"sync": "true"},
                json_body=encode_json(body).encode(),
                expect="json",
            )
            data = answer_data(answer, ("dataset_id", "version_id"))
            dataset.remote_id = str(data["dataset_id"])
            dataset.version_id = str(data["version_id"])
        remote = f"{dataset.remote_id} {dataset.version_id}"
        self.ledger.done("dataset", "datasets", [dataset.name], remote_id=remote)
        self.report.count(self.report.sent, "dataset items", len(dataset.examples))
        return held.examples if held is not None else None

    def traces(self) -> None:
        from pytest_llmobs.exporters.otlp_spans import SpanOptions

        def prompt(name: str, version: int) -> Mapping[str, Any] | None:
            return self.store.get_prompt(name, version=version)

        options = SpanOptions(
            resource_attributes={"openinference.project.name": self.project},
            langfuse=False,
            span_hook=combine_hooks(
                genai_attributes, lambda s: rest.openinference_attributes(s, prompt)
            ),
        )
        send = TraceSend(
            self.sender, TRACES_PATH, self.run, options, self.report, id_salt=self.salt
        )
        send_traces(self.ledger, send, self.items)

    def experiment(self, dataset: PhoenixDataset, items: list[dict[str, Any]]) -> None:
        ledger, key = self.ledger, dataset.name
        weight = len(items)
        if dataset.remote_id is None or dataset.version_id is None:
            message = f"experiment on dataset {key!r} not created: the dataset was not sent"
            ledger.failed("experiment", "experiments", [key], message)
            self.report.count(self.report.failed, "run items", weight)
            return
        dataset.experiment_id = ledger.state.remote_id("experiment", key)
        try:
            if dataset.experiment_id is None:
                dataset.experiment_id = self.find_or_create_experiment(dataset, items)
                ledger.done("experiment", "experiments", [key], remote_id=dataset.experiment_id)
            else:
                self.report.count(self.report.skipped, "experiments")
            existing = self.existing_runs(dataset.experiment_id)
        except (HttpError, KeyError, TypeError) as exc:
            ledger.failed("experiment", "experiments", [key], _message(exc, "experiment"))
            self.report.count(self.report.failed, "run items", weight)
            return
        for item in items:
            self.experiment_run(dataset, item, existing)

    def find_or_create_experiment(
        self, dataset: PhoenixDataset, items: list[dict[str, Any]]
    ) -> str:
        dataset_id = str(dataset.remote_id)
        listed = self.experiments.get(dataset_id)
        if listed is None:
            listed = versions.list_experiments(self.sender, dataset_id)
        elsewhere: list[str] = []
        """Projects whose traces this run's other experiments on the dataset link to."""
        for experiment in listed:
            if rest.is_experiment_of(experiment, self.run):
                project = rest.experiment_project(experiment)
                if project == self.project:
                    return str(experiment["id"])
                elsewhere.append(repr(project) if project else "(not recorded)")
        repetitions = max(int(i.get("repeat") or 0) for i in items) + 1
        body = rest.experiment_body(
            self.run, dataset.name, str(dataset.version_id), repetitions, self.project
        )
        created = self.sender.request(
            "POST",
            f"/v1/datasets/{quote(dataset_id, safe='')}/experiments",
            json_body=encode_json(body).encode(),
            expect="json",
        )
        if elsewhere:
            self.report.notes.append(
                f"dataset {dataset.name!r} also holds this run's experiment for project "
                f"{', '.join(elsewhere)}: the new one links to the traces in {self.project!r}"
            )
        return str(answer_data(created, ("id",))["id"])

    def existing_runs(self, experiment_id: str) -> dict[tuple[str, int], str]:
        """The experiment's runs on the server: (example node id, repetition) → run id."""
        listed = self.sender.request(
            "GET", f"/v1/experiments/{quote(experiment_id, safe='')}/runs", expect="json"
        )
        runs = answer_list(listed, ("dataset_example_id", "repetition_number", "id"))
        try:
            return {
                (str(r["dataset_example_id"]), int(r["repetition_number"])): str(r["id"])
                for r in runs
            }
        except (TypeError, ValueError):
            raise listed.malformed("a list of experiment runs with repetition numbers") from None

    def experiment_run(
        self, dataset: PhoenixDataset, item: dict[str, Any], existing: dict[tuple[str, int], str]
    ) -> None:
        ledger, report = self.ledger, self.report
        trace_id = item["trace"]["id"]
        if item.get("outcome") == "skipped":
            report.count(report.skipped, "run items")
            return
        node_id = dataset.node_ids.get(str(item["item_id"]))
        if node_id is None:
            message = f"run item {trace_id}: item {item['item_id']!r} is not in the dataset sent"
            ledger.failed("run_item", "run items", [trace_id], message)
            return
        run_id = existing.get((node_id, int(item.get("repeat") or 0) + 1))
        if run_id is not None:
            if ledger.pending_only and trace_id in ledger.state.sent("run_item"):
                report.count(report.skipped, "run items")
            else:
                ledger.done("run_item", "run items", [trace_id], remote_id=run_id)
        else:
            body = rest.experiment_run_body(item, node_id, sent_id(self.salt, trace_id))
            try:
                answer = self.sender.request(
                    "POST",
                    f"/v1/experiments/{quote(str(dataset.experiment_id), safe='')}/runs",
                    json_body=encode_json(body).encode(),
                    expect="json",
                )
                run_id = str(answer_data(answer, ("id",))["id"])
            except (HttpError, KeyError, TypeError) as exc:
                ledger.failed("run_item", "run items", [trace_id], _message(exc, "run"))
                return
            ledger.done("run_item", "run items", [trace_id], remote_id=run_id)
        self.evaluations(run_id, item)

    def evaluations(self, run_id: str, item: dict[str, Any]) -> None:
        trace_id = item["trace"]["id"]
        sent = sent_id(self.salt, trace_id)
        scores = list(item["trace"].get("scores") or [])
        bodies = {
            str(s["id"]): rest.evaluation_body(run_id, s, name, sent)
            for s, name in zip(scores, rest.evaluation_names(scores), strict=True)
        }
        bodies[f"{trace_id}:outcome"] = rest.outcome_evaluation_body(run_id, item, sent)
        for key in self.ledger.todo("evaluation", "evaluations", list(bodies)):
            try:
                self.sender.request(
                    "POST",
                    "/v1/experiment_evaluations",
                    json_body=encode_json(bodies[key]).encode(),
                    expect="json",
                )
            except HttpError as exc:
                self.ledger.failed("evaluation", "evaluations", [key], str(exc))
                continue
            self.ledger.done("evaluation", "evaluations", [key])


def _message(exc: Exception, what: str) -> str:
    if isinstance(exc, HttpError):
        return str(exc)
    return f"{what}: unexpected answer from Phoenix ({type(exc).__name__}: {exc})"
