"""Phoenix upload settings (``PHOENIX_*`` environment variables) and the project a run goes to."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pytest_llmobs.exporters import ConfigError
from pytest_llmobs.exporters.http import header_problem
from pytest_llmobs.exporters.otlp_config import TRACES_PATH
from pytest_llmobs.exporters.urls import checked_url, display_url, refuse_query

DEFAULT_ENDPOINT = "http://127.0.0.1:6006"
DEFAULT_PROJECT = "pytest-llmobs"


@dataclass(frozen=True)
class PhoenixConfig:
    endpoint: str
    api_key: str | None = field(default=None, repr=False)
    project: str | None = None
    """``PHOENIX_PROJECT_NAME``; `project_name` picks the default per run."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> PhoenixConfig:
        endpoint = endpoint_from_env(environ)
        api_key = environ.get("PHOENIX_API_KEY") or None
        problem = header_problem("Authorization", f"Bearer {api_key}") if api_key else None
        if problem is not None:
            raise ConfigError(f"PHOENIX_API_KEY {problem.replace(' in its value', '')}")
        return cls(
            endpoint=endpoint,
            api_key=api_key,
            project=environ.get("PHOENIX_PROJECT_NAME") or None,
        )

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def state_target(self, project: str) -> str:
        return f"phoenix {self.endpoint} project {project}"


def endpoint_from_env(environ: Mapping[str, str]) -> str:
    """``PHOENIX_COLLECTOR_ENDPOINT`` (its OTLP URL, ``.../v1/traces``, gives the base); a
    `ConfigError` when it does not parse, is not http(s), holds credentials or a query."""
    given = (environ.get("PHOENIX_COLLECTOR_ENDPOINT") or DEFAULT_ENDPOINT).strip()
    parts = checked_url(
        "PHOENIX_COLLECTOR_ENDPOINT",
        given,
        example=DEFAULT_ENDPOINT,
        credentials="put the API key in PHOENIX_API_KEY (sent as a bearer token)",
    )
    refuse_query("PHOENIX_COLLECTOR_ENDPOINT", given, parts, example=DEFAULT_ENDPOINT)
    endpoint = given.rstrip("/")
    if endpoint.endswith(TRACES_PATH):  # the OTLP URL some setups give: keep the base
        endpoint = endpoint[: -len(TRACES_PATH)]
    return endpoint


def display_endpoint(environ: Mapping[str, str]) -> str:
    """The endpoint for a report, also when it is malformed: no credentials, no query."""
    given = environ.get("PHOENIX_COLLECTOR_ENDPOINT") or DEFAULT_ENDPOINT
    return display_url(given.strip()).rstrip("/")


def project_name(run: Mapping[str, Any], configured: str | None) -> str:
    """``PHOENIX_PROJECT_NAME``, else the run's name when someone chose it, else pytest-llmobs
    (``/``, ``?`` and ``#`` become ``-``: Phoenix looks projects up by name in URLs)."""
    from pytest_llmobs.run_environment import default_run_name

    name = configured
    if not name and run.get("name") and run.get("started_at") is not None:
        default = default_run_name(str(run.get("model") or ""), float(run["started_at"]))
        name = None if run["name"] == default else str(run["name"])
    name = (name or DEFAULT_PROJECT).strip()
    for char in "/?#":
        name = name.replace(char, "-")
    return name or DEFAULT_PROJECT
