"""Exporters: ship a stored run to an observability backend.

An exporter implements one small protocol, ``export(run) -> ExportReport``, where ``run`` is the
plain data `Store.load_run` returns. Exporters are created by name from `EXPORTERS` (the names
``--llm-upload`` and ``llmobs upload --to`` accept); each entry names a factory that is imported
only when used, so httpx and protobuf load only for an upload.

Errors::

    ExportError            the exporter cannot start: missing keys, a missing extra
     └─ ConfigError        a configuration value is malformed (``llmobs upload`` exits 2)
    (everything else)      is counted in the `ExportReport`: never raised for one failed request
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from pytest_llmobs.store import Store

DEFAULT_TARGET = "langfuse"
"""Where ``llmobs upload`` sends a run without ``--to``."""

KINDS = ("prompts", "datasets", "dataset items", "traces", "observations", "scores", "run items")
"""Kinds of uploaded objects, in the order reports list them."""


class ExportError(Exception):
    """An exporter cannot run at all (configuration, missing dependency)."""


class ConfigError(ExportError):
    """A configuration value is malformed (bad input, not a missing setting): the message names
    the variable and the entry, never a value that may be secret."""


_MADE: ContextVar[list[ExportReport] | None] = ContextVar("llmobs_export_reports", default=None)


@contextlib.contextmanager
def reports_made() -> Iterator[list[ExportReport]]:
    """Every `ExportReport` made in the block, in order: when an exporter raises, the report it
    was filling holds what it had sent before (an exporter returns its report only at the end)."""
    made: list[ExportReport] = []
    token = _MADE.set(made)
    try:
        yield made
    finally:
        _MADE.reset(token)


@dataclass
class ExportReport:
    """What one export sent, what failed and what is still pending, counted per kind."""

    target: str
    """Where it went, e.g. ``langfuse https://cloud.langfuse.com`` (never credentials)."""
    run_id: str = ""
    sent: dict[str, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)
    """Objects the server refused, or that could not be sent; they stay pending in the store."""
    skipped: dict[str, int] = field(default_factory=dict)
    """Objects already sent by an earlier upload (``--pending``), or that cannot be sent."""
    first_error: str | None = None
    truncated_fields: int = 0
    requests: int = 0
    bytes_sent: int = 0
    notes: list[str] = field(default_factory=list)
    stored: bool = True
    """Whether the run is in a store, so that what was not sent can be sent later (not after
    ``--llm-no-store``)."""
    store_option: str = ""
    """``--store DIR`` when ``llmobs`` would not find the run's store by itself (set by whoever
    ran the upload, which knows where the store is: `commands.store_option`), else empty."""
    settle: Callable[[bool], None] | None = field(default=None, repr=False, compare=False)
    """Set when the upload starts (`state.note_started`), called once when it ends with whether
    it delivered the whole run (`state.UploadState.finish`): what the run left pending at other
    targets is settled, and said, according to the outcome."""

    def __post_init__(self) -> None:
        made = _MADE.get()
        if made is not None:
            made.append(self)

    def count(self, bucket: dict[str, int], kind: str, n: int = 1) -> None:
        if n:
            bucket[kind] = bucket.get(kind, 0) + n

    def error(self, message: str) -> None:
        """Remember the first error (host and status, never credentials)."""
        if self.first_error is None:
            self.first_error = message

    @property
    def ok(self) -> bool:
        return not any(self.failed.values())

    @property
    def pending(self) -> int:
        return sum(self.failed.values())

    def lines(self) -> list[str]:
        """A short human summary: one line of counts, then what was not sent and why."""

        def counts(bucket: Mapping[str, int]) -> str:
            order = [*KINDS, *sorted(set(bucket) - set(KINDS))]
            return ", ".join(f"{bucket[k]} {k}" for k in order if bucket.get(k)) or "nothing"

        head = f"upload to {self.target}: run {self.run_id}"
        lines = [f"{head}: sent {counts(self.sent)}"]
        if self.skipped:
            lines.append(f"  skipped {counts(self.skipped)}")
        if self.truncated_fields:
            lines.append(f"  truncated {self.truncated_fields} oversized field(s) (marked …)")
        if not self.ok:
            lines.append(f"  NOT SENT ({self._retry_hint()}): {counts(self.failed)}")
            if self.first_error:
                lines.append(f"  first error: {self.first_error}")
        lines.extend(f"  {note}" for note in self.notes)
        return lines

    @property
    def exporter(self) -> str:
        """The exporter's name (`EXPORTERS`): the first word of `target`."""
        return self.target.split(" ", 1)[0]

    @property
    def retry_command(self) -> str:
        """The ``llmobs upload --pending`` command that sends what this upload did not: it
        names the target unless it is `DEFAULT_TARGET`, and the store unless ``llmobs`` finds
        it by itself (`store_option`)."""
        words = ["llmobs upload --pending"]
        if self.exporter != DEFAULT_TARGET:
            words.append(f"--to {self.exporter}")
        if self.store_option:
            words.append(self.store_option)
        return " ".join(words)

    def _retry_hint(self) -> str:
        if self.stored:
            return f"pending; retry with `{self.retry_command}`"
        return "the run was not stored (--llm-no-store), so it cannot be retried"

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "run_id": self.run_id,
            "ok": self.ok,
            "sent": dict(self.sent),
            "failed": dict(self.failed),
            "skipped": dict(self.skipped),
            "first_error": self.first_error,
            "truncated_fields": self.truncated_fields,
            "requests": self.requests,
            "bytes_sent": self.bytes_sent,
            "notes": list(self.notes),
        }


class Exporter(Protocol):
    """Ships one stored run somewhere; never raises for a failed request (see `ExportReport`)."""

    name: str

    def export(self, run: Mapping[str, Any]) -> ExportReport: ...


@dataclass(frozen=True, kw_only=True)
class ExporterOptions:
    """What every exporter factory receives."""

    store: Store | None
    """The store the run came from: upload state and prompt contents live there."""
    environ: Mapping[str, str]
    """Where credentials come from (``os.environ``; a dict in tests)."""
    pending_only: bool = False
    """Send only what is pending for this run at the same target: objects never delivered, or
    whose latest send failed."""
    legacy: bool = False
    """Langfuse: traces as ingestion events and ``dataset-run-items`` (older servers)."""
    http: Any = None
    """`pytest_llmobs.exporters.http_options.HttpOptions` to override timeouts and retries."""


EXPORTERS: Mapping[str, str] = MappingProxyType(
    {
        "langfuse": "pytest_llmobs.exporters.langfuse:LangfuseExporter",
        "otlp": "pytest_llmobs.exporters.otlp:OtlpExporter",
        "phoenix": "pytest_llmobs.exporters.phoenix:PhoenixExporter",
    }
)
"""Exporter names → ``module:factory``; the factory is called with one `ExporterOptions`."""


def parse_targets(value: str) -> list[str]:
    """``"langfuse, otlp"`` → ``["langfuse", "otlp"]``; an unknown name raises `ExportError`."""
    names = [n.strip().lower() for n in value.split(",") if n.strip()]
    for name in names:
        if name not in EXPORTERS:
            raise ExportError(
                f"{name!r} is not a known upload target. Valid targets: {', '.join(EXPORTERS)}."
            )
    return list(dict.fromkeys(names))


def create_exporter(name: str, options: ExporterOptions) -> Exporter:
    """Build the exporter registered as ``name``."""
    targets = parse_targets(name)
    if len(targets) != 1:
        raise ExportError(f"expected one upload target, got {name!r}")
    target = targets[0]
    module_name, _, factory_name = EXPORTERS[target].partition(":")
    factory = getattr(importlib.import_module(module_name), factory_name)
    exporter: Exporter = factory(options)
    return exporter
