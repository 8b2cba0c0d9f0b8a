"""OTLP upload settings: the OpenTelemetry SDK's ``OTEL_EXPORTER_OTLP_*`` environment variables
(endpoint, headers, compression, timeout, protocol) and the resource (``OTEL_SERVICE_NAME``,
``OTEL_RESOURCE_ATTRIBUTES``), each checked: a malformed value is a `ConfigError` naming the
variable, never its value."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from pytest_llmobs import env_pairs
from pytest_llmobs.exporters import ConfigError, ExportError
from pytest_llmobs.exporters.http import header_problem
from pytest_llmobs.exporters.urls import checked_url, display_url

TRACES_PATH = "/v1/traces"


def parse_pairs(value: str, variable: str) -> dict[str, str]:
    """``k=v,k2=v2`` (the OpenTelemetry list format) → a dict, values URL-decoded; a malformed
    entry raises `ConfigError` naming the variable (never its values: they may be secrets)."""
    return env_pairs.parse_pairs(value, variable, ConfigError)


def parse_headers(value: str, variable: str) -> dict[str, str]:
    """`parse_pairs`, then each header checked for HTTP: a `ConfigError` names the variable and
    the header (never its value) when a name is not a token or a value is not printable ASCII."""
    headers = parse_pairs(value, variable)
    for name, header_value in headers.items():
        problem = header_problem(name, header_value)
        if problem is not None:
            raise ConfigError(f"{variable}: header {name!r} {problem}")
    return headers


def traces_url(environ: Mapping[str, str]) -> str:
    """The traces endpoint: the signal-specific variable as it is, else base URL + /v1/traces."""
    specific = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
    base = environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
    if not specific and not base:
        raise ExportError(
            "OTEL_EXPORTER_OTLP_ENDPOINT not set: export the collector's OTLP/HTTP base URL, "
            "e.g. OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 (/v1/traces is appended), "
            "or the full URL in OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
        )
    variable = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT" if specific else "OTEL_EXPORTER_OTLP_ENDPOINT"
    parts = checked_url(
        variable,
        specific or base,
        example="http://localhost:4318",
        credentials="put them in a header in OTEL_EXPORTER_OTLP_HEADERS "
        "(e.g. Authorization=Basic%20...)",
    )
    if specific:
        return specific
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + TRACES_PATH))


def _signal(environ: Mapping[str, str], name: str) -> tuple[str, str]:
    """The traces-specific variable when set, else the general one: (variable, value)."""
    for variable in (f"OTEL_EXPORTER_OTLP_TRACES_{name}", f"OTEL_EXPORTER_OTLP_{name}"):
        value = environ.get(variable, "").strip()
        if value:
            return variable, value
    return "", ""


def parse_timeout(variable: str, raw: str) -> float | None:
    """``..._TIMEOUT`` (milliseconds, > 0 and finite) as seconds; ``None`` when not set."""
    if not raw:
        return None
    try:
        millis = float(raw)
    except ValueError:
        millis = math.nan
    if not math.isfinite(millis) or millis <= 0:
        raise ConfigError(f"{variable}={raw!r}: expected milliseconds > 0, e.g. 10000")
    return millis / 1000


@dataclass(frozen=True)
class OtlpConfig:
    url: str
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    compression: str | None = None
    timeout: float | None = None
    resource: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> OtlpConfig:
        """Read the SDK's variables: a malformed value raises `ConfigError`, a missing
        endpoint `ExportError`."""
        variable, protocol = _signal(environ, "PROTOCOL")
        if protocol and protocol != "http/protobuf":
            raise ConfigError(
                f"{variable}={protocol!r}: only 'http/protobuf' is supported (point the endpoint "
                "at the collector's OTLP/HTTP port, usually 4318)"
            )
        variable, raw_headers = _signal(environ, "HEADERS")
        headers = parse_headers(raw_headers, variable) if raw_headers else {}
        variable, compression = _signal(environ, "COMPRESSION")
        if compression not in ("", "none", "gzip"):
            raise ConfigError(f"{variable}={compression!r}: expected 'gzip' or 'none'")
        timeout = parse_timeout(*_signal(environ, "TIMEOUT"))
        resource = resource_from_env(environ)
        return cls(
            url=traces_url(environ),
            headers=headers,
            compression=compression if compression == "gzip" else None,
            timeout=timeout,
            resource=resource,
        )

    @property
    def base_url(self) -> str:
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def path(self) -> str:
        parts = urlsplit(self.url)
        return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")

    @property
    def display(self) -> str:
        """The endpoint without credentials or query (for reports and the upload state)."""
        return display_url(self.url)


def resource_from_env(environ: Mapping[str, str]) -> dict[str, str]:
    """``OTEL_RESOURCE_ATTRIBUTES`` then ``OTEL_SERVICE_NAME`` (which wins for service.name)."""
    raw = environ.get("OTEL_RESOURCE_ATTRIBUTES", "").strip()
    attributes = parse_pairs(raw, "OTEL_RESOURCE_ATTRIBUTES") if raw else {}
    if environ.get("OTEL_SERVICE_NAME", "").strip():
        attributes["service.name"] = environ["OTEL_SERVICE_NAME"].strip()
    return attributes
