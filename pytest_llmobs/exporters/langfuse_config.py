"""Langfuse upload settings, read from the SDK's environment variables."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from pytest_llmobs.exporters import ConfigError, ExportError
from pytest_llmobs.exporters.urls import checked_url, display_url, refuse_query

DEFAULT_BASE_URL = "https://cloud.langfuse.com"
_ENVIRONMENT = re.compile(r"^(?!langfuse)[a-z0-9_-]{1,40}$")


@dataclass(frozen=True)
class LangfuseConfig:
    base_url: str
    public_key: str = field(repr=False)
    secret_key: str = field(repr=False)
    environment: str | None = None
    release: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> LangfuseConfig:
        """Read the SDK's variables: a malformed value raises `ConfigError`, missing keys
        `ExportError`."""
        base_url = base_url_from_env(environ)
        environment = environ.get("LANGFUSE_TRACING_ENVIRONMENT") or None
        if environment is not None and not _ENVIRONMENT.match(environment):
            raise ConfigError(
                f"LANGFUSE_TRACING_ENVIRONMENT={environment!r}: expected lowercase letters, digits,"
                " '-' or '_' (at most 40, not starting with 'langfuse')"
            )
        missing = [k for k in ("LANGFUSE_PUBLIC_KEY", "LANGFUSE_SECRET_KEY") if not environ.get(k)]
        if missing:
            raise ExportError(
                f"{' and '.join(missing)} not set: export the project's API keys "
                f"(Langfuse → project settings → API keys)"
            )
        return cls(
            base_url=base_url,
            public_key=environ["LANGFUSE_PUBLIC_KEY"],
            secret_key=environ["LANGFUSE_SECRET_KEY"],
            environment=environment,
            release=environ.get("LANGFUSE_RELEASE") or None,
        )

    @property
    def state_target(self) -> str:
        """The upload-state key: host and a hash of the public key (a project), no key."""
        project = hashlib.sha256(self.public_key.encode()).hexdigest()[:12]
        return f"langfuse {self.base_url} project#{project}"


def base_url_variable(environ: Mapping[str, str]) -> str:
    """The variable the base URL comes from: ``LANGFUSE_BASE_URL``, else the older
    ``LANGFUSE_HOST``."""
    if environ.get("LANGFUSE_HOST") and not environ.get("LANGFUSE_BASE_URL"):
        return "LANGFUSE_HOST"
    return "LANGFUSE_BASE_URL"


def base_url_from_env(environ: Mapping[str, str]) -> str:
    """The server's base URL (default the EU cloud); `ConfigError` naming the variable when it
    does not parse, is not http(s), holds credentials or a query."""
    variable = base_url_variable(environ)
    given = (environ.get(variable) or DEFAULT_BASE_URL).strip()
    parts = checked_url(
        variable,
        given,
        example=DEFAULT_BASE_URL,
        credentials="put the project's keys in LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY",
    )
    refuse_query(variable, given, parts, example=DEFAULT_BASE_URL)
    return given.rstrip("/")


def display_base_url(environ: Mapping[str, str]) -> str:
    """The base URL for a report, also when it is malformed: no credentials, no query."""
    given = environ.get(base_url_variable(environ)) or DEFAULT_BASE_URL
    return display_url(given.strip()).rstrip("/")
