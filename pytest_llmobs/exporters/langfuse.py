"""Upload a stored run to Langfuse, losing nothing.

Order: prompt versions the server lacks → the datasets → their items (upserted by deterministic
id; when the server holds a later version of the dataset, those it holds are linked, not
overwritten, and those it lacks created) →
traces and observations as OTLP spans (``/api/public/otel/v1/traces``, ingestion version 4, with
``langfuse.experiment.*`` attributes tying the root span of each dataset item's trace to the
item and to the run's experiment on that dataset, one per repeat) → scores as ``score-create``
events. ``legacy`` mode (older self-hosted servers) sends traces and observations as ingestion
events and links runs with ``dataset-run-items``.

Every object's outcome is written to the store (`state.UploadState`), so a failed or interrupted
upload resumes with ``pending_only``; ids are deterministic, so sending twice does not duplicate.

Configuration comes from the environment: ``LANGFUSE_PUBLIC_KEY``, ``LANGFUSE_SECRET_KEY``,
``LANGFUSE_BASE_URL`` (then the older ``LANGFUSE_HOST``; default the EU cloud),
``LANGFUSE_TRACING_ENVIRONMENT`` and ``LANGFUSE_RELEASE`` (default: the run's git commit).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from pytest_llmobs.exporters import ExporterOptions, ExportError, ExportReport, langfuse_send
from pytest_llmobs.exporters import langfuse_payloads as payloads
from pytest_llmobs.exporters.batching import encode_json
from pytest_llmobs.exporters.http import HttpError, HttpSender, Response, execute_upload
from pytest_llmobs.exporters.http_options import HttpOptions
from pytest_llmobs.exporters.langfuse_config import LangfuseConfig, display_base_url
from pytest_llmobs.exporters.langfuse_inventory import (
    PROMPT,
    Inventory,
    PromptHistory,
    ServerDataset,
    count_all,
    item_scores,
    run_inventory,
)
from pytest_llmobs.exporters.state import (
    Ledger,
    note_not_started,
    note_started,
    pending_elsewhere,
    pending_for,
    state_store,
)
from pytest_llmobs.store import Store


class LangfuseExporter:
    """The ``langfuse`` upload target (see the module docstring)."""

    name = "langfuse"

    def __init__(self, options: ExporterOptions) -> None:
        self.options = options

    def configuration(self) -> LangfuseConfig:
        """The settings; a malformed one raises `ConfigError`, missing keys `ExportError`."""
        return LangfuseConfig.from_env(self.options.environ)

    def pending_runs(self, store: Store) -> list[str]:
        """Runs whose last upload to this project left something unsent, and runs pending at
        another server or project that received none of them."""
        return pending_for(
            store, self.name, [LangfuseConfig.from_env(self.options.environ).state_target]
        )

    def pending_elsewhere(self, store: Store) -> list[tuple[str, str]]:
        """(run, target) for runs partly delivered to another server or project (another
        public key) and still pending there."""
        return pending_elsewhere(
            store, self.name, [LangfuseConfig.from_env(self.options.environ).state_target]
        )

    def export(self, run: Mapping[str, Any]) -> ExportReport:
        environ = self.options.environ
        report = ExportReport(target=f"langfuse {display_base_url(environ)}", run_id=str(run["id"]))
        inventory = run_inventory(run, self.options.store)
        try:
            config = LangfuseConfig.from_env(environ)
            if not self.options.legacy:
                from pytest_llmobs.exporters.otlp_spans import require_otel

                require_otel()
            http = self.options.http or HttpOptions.from_env(environ)
        except ExportError as exc:
            report.error(f"not sent: {exc}")
            count_all(report, report.failed, inventory, legacy=self.options.legacy)
            note_not_started(self.options.store, self.name, str(run["id"]))
            return report
        options = note_started(
            self.options, self.name, str(run["id"]), target=config.state_target, report=report
        )
        with state_store(options.store) as store:
            execute_upload(Upload(run, inventory, config, options, http, report, store), report)
        return report


class Upload(Ledger):
    """One upload of one run: the steps in order, recording every object's outcome."""

    def __init__(
        self,
        run: Mapping[str, Any],
        inventory: Inventory,
        config: LangfuseConfig,
        options: ExporterOptions,
        http: HttpOptions,
        report: ExportReport,
        store: Store,
    ) -> None:
        self.run = run
        self.inv = inventory
        self.config = config
        self.options = options
        self.report = report
        self.store = store
        self.sender = HttpSender(
            base_url=config.base_url, auth=(config.public_key, config.secret_key), options=http
        )
        super().__init__(
            self.store,
            config.state_target,
            str(run["id"]),
            report,
            pending_only=options.pending_only,
            scrub=self.sender.scrub,
        )
        self.release = config.release or (run.get("environment") or {}).get("git_commit")
        self.prompt_versions: dict[tuple[str, int], int] = {}
        self.history = PromptHistory(self.sender, options.store, inventory)
        self.dataset_ids: dict[str, str] = {}
        self.dataset_errors: dict[str, str] = {}
        """Datasets whose state on the server could not be read: their items and traces wait."""
        self.linked: dict[str, ServerDataset] = {}
        """Datasets of which the server holds a later version: the items it holds are linked,
        not overwritten; those it lacks are created."""
        self.items_todo: list[str] = []
        self.project_id: str | None = None
        """The project's id (from a dataset answer), for experiment ids."""
        self.errors: dict[str, str] = {}
        """First error per object key (trace id, score id), for the upload state."""

    # --- steps --------------------------------------------------------------------------------

    def execute(self) -> None:
        self.state.begin()
        self.prompts()
        langfuse_send.datasets(self)
        langfuse_send.dataset_items(self)
        if self.options.legacy:
            langfuse_send.legacy_traces(self)
        else:
            langfuse_send.otlp_traces(self)
        self.scores()
        if self.options.legacy:
            langfuse_send.dataset_run_items(self)
        self.state.finish(complete=self.report.ok)

    def prompts(self) -> None:
        keys = {f"{n}@{v}": (n, v) for n, v in self.inv.prompts}
        for key in keys:
            name, version = keys[key]
            known = self.state.remote_id("prompt", key)
            if known is not None:
                self.prompt_versions[(name, version)] = int(known)
        for key in self.todo("prompt", "prompts", list(keys)):
            name, version = keys[key]
            stored = self.inv.prompts[(name, version)]
            if stored is None:
                self.report.count(self.report.skipped, "prompts")
                self.report.notes.append(
                    f"prompt {name!r} version {version} is not in the store: not uploaded; its "
                    "generations are sent without a prompt link"
                )
                continue
            try:
                remote = self.sync_prompt(name, version, stored)
            except HttpError as exc:
                self.failed("prompt", "prompts", [key], str(exc))
                continue
            if remote is None:
                continue
            self.prompt_versions[(name, version)] = remote
            self.done("prompt", "prompts", [key], remote_id=str(remote))

    def sync_prompt(self, name: str, version: int, stored: dict[str, Any]) -> int | None:
        """The server's version number for the stored one: the server's version with its
        content, else one created when the server's latest version is lower or every version
        the server holds is one this store knows (a newer run's, sent first); ``None``
        (recorded as failed) when the server holds a version of content this store lacks."""
        exact = self.history.version(name, version)
        if exact is not None and payloads.same_prompt(exact, stored):
            return version
        path = f"/api/public/v2/prompts/{quote(name, safe='')}"
        latest = self.sender.request(
            "GET", path, params={"label": "latest"}, accept_statuses=[404], expect="json"
        )
        latest_version = 0
        if latest.status == 200:
            latest_version = _version(latest, required=False)
            if payloads.same_prompt(latest.body, stored):
                return latest_version
        if latest_version >= version:
            unknown = []
            for number in range(latest_version, 0, -1):
                server = self.history.version(name, number)
                if server is not None and payloads.same_prompt(server, stored):
                    return number
                if server is not None and not self.history.known(name, server):
                    unknown.append(str(number))
            if unknown:
                self.failed(
                    "prompt",
                    "prompts",
                    [f"{name}@{version}"],
                    f"prompt {name!r} version {version}: the server already has versions up to "
                    f"{latest_version} with other content; not created: its version(s) "
                    f"{', '.join(unknown)} hold content this store does not know (rename the "
                    "prompt or reconcile the histories)",
                )
                return None
        created = self.sender.request(
            "POST",
            "/api/public/v2/prompts",
            json_body=_body(payloads.prompt_body(stored)),
            expect="json",
        )
        number = _version(created, required=True)
        self.history.keep(name, number, created.json_object(PROMPT))
        if latest_version >= version:
            self.report.notes.append(
                f"prompt {name!r}: local version {version} created as server version {number}, "
                "after the server's versions of other local ones (its `latest` label is on it now)"
            )
        return number

    def ready_items(
        self, kind: str, label: str, *, datasets_only: bool = False
    ) -> list[dict[str, Any]]:
        """Items to send whose dataset item (if any) is on the server; the others fail."""
        by_trace = {
            i["trace"]["id"]: i for i in self.inv.items if i.get("dataset") or not datasets_only
        }
        observations = {t: len(i["trace"]["observations"]) for t, i in by_trace.items()}
        weight = observations.__getitem__ if kind == "trace" else None
        todo = self.todo(kind, label, list(by_trace), weight)
        if kind == "trace":
            self.report.count(self.report.skipped, "traces", len(by_trace) - len(todo))
        sent_items = self.state.sent("dataset_item")
        ready = []
        for trace_id in todo:
            item = by_trace[trace_id]
            waits_for = None
            if item.get("dataset") and item.get("item_id") is not None:
                key = payloads.dataset_item_id(item["dataset"], str(item["item_id"]))
                if key not in sent_items:
                    waits_for = "its dataset item was not"
            if waits_for is None and kind == "trace":
                waits_for = self._unsynced_prompt(item) or self._no_experiment_id(item)
            if waits_for is not None:
                self.failed(
                    kind,
                    label,
                    [trace_id],
                    f"trace {trace_id} not sent: {waits_for}",
                    weight=observations[trace_id] if kind == "trace" else None,
                )
                if kind == "trace":
                    self.report.count(self.report.failed, "traces")
                continue
            ready.append(item)
        return ready

    def _unsynced_prompt(self, item: Mapping[str, Any]) -> str | None:
        """Why a trace must wait: a generation links a stored prompt version the server has
        no number for yet (sent now, the link would name the server's version of the same
        number, another prompt, or none). It goes once the prompt does (``--pending``)."""
        for obs in item["trace"]["observations"]:
            name, version = obs.get("prompt_name"), obs.get("prompt_version")
            if not name or version is None:
                continue
            key = (str(name), int(version))
            if self.inv.prompts.get(key) is not None and key not in self.prompt_versions:
                return f"its prompt {name!r} version {version} was not"
        return None

    def _no_experiment_id(self, item: Mapping[str, Any]) -> str | None:
        """Why a dataset item's trace must wait: its experiment id needs the server's ids of
        the project and the dataset, which could not be read (OTLP only)."""
        dataset = item.get("dataset")
        if self.options.legacy or not dataset or item.get("item_id") is None:
            return None
        if self.project_id is None or dataset not in self.dataset_ids:
            why = self.dataset_errors.get(dataset, "it was not read")
            return f"its experiment id needs dataset {dataset!r} from the server: {why}"
        return None

    def experiment_id(self, dataset: str, name: str) -> str | None:
        """The id of the experiment ``name`` on ``dataset``, as Langfuse derives it."""
        if self.project_id is None or dataset not in self.dataset_ids:
            return None
        return payloads.stable_experiment_id(self.project_id, self.dataset_ids[dataset], name)

    def record_traces(self, counts: Mapping[str, int], outcome: Mapping[str, bool]) -> None:
        """Record traces (and their observations) as sent when every request carrying them
        succeeded, failed otherwise."""
        sent = [t for t in counts if outcome.get(t) is True]
        if sent:
            self.done("trace", "observations", sent, weight=sum(counts[t] for t in sent))
            self.report.count(self.report.sent, "traces", len(sent))
        for trace_id in counts:
            if outcome.get(trace_id) is not True:
                message = self.errors.get(trace_id, f"trace {trace_id}: no answer")
                self.failed("trace", "observations", [trace_id], message, weight=counts[trace_id])
                self.report.count(self.report.failed, "traces")

    def scores(self) -> None:
        scores = {s["id"]: s for item in self.inv.items for s in item_scores(item)}
        todo = self.todo("score", "scores", list(scores))
        events = [
            langfuse_send.encode_event(
                self,
                payloads.score_event(scores[k], environment=self.config.environment),
                k,
            )
            for k in todo
        ]
        outcome = langfuse_send.send_events(self, events)
        sent = [k for k in todo if outcome.get(k) is True]
        if sent:
            self.done("score", "scores", sent)
        by_error: dict[str, list[str]] = {}
        for key in todo:
            if outcome.get(key) is not True:
                by_error.setdefault(self.errors.get(key, f"score {key}: no answer"), []).append(key)
        for message, keys in by_error.items():
            self.failed("score", "scores", keys, message)


def _body(value: Any) -> bytes:
    return encode_json(value).encode()


def _version(answer: Response, *, required: bool) -> int:
    """A prompt answer's version number (`MalformedAnswer` when it is not a prompt object, or
    has no positive integer ``version`` when ``required``; else 0 for a missing one)."""
    version = answer.json_object(PROMPT).get("version")
    if isinstance(version, int) and not isinstance(version, bool) and version > 0:
        return version
    if version is None and not required:
        return 0
    raise answer.malformed('a JSON prompt object with a "version" number')
