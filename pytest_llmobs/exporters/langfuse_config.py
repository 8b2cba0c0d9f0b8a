"""Langfuse upload settings, read from the SDK's environment variables."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from pytest_llmobs.exporters import ExportError

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
        """Read the SDK's variables; missing keys or a bad value raise `ExportError`."""
        missing = [k for k in ("LANGFUSE_PUBLIC_KEY", "LANGFUSE_SECRET_KEY") if not environ.get(k)]
        if missing:
            raise ExportError(
                f"{' and '.join(missing)} not set: export the project's API keys "
                f"(Langfuse → project settings → API keys)"
            )
        base_url = (
            environ.get("LANGFUSE_BASE_URL") or environ.get("LANGFUSE_HOST") or DEFAULT_BASE_URL
        ).rstrip("/")
        if not base_url.startswith(("http://", "https://")):
            raise ExportError(
                f"LANGFUSE_BASE_URL={base_url!r} is not an http(s) URL, e.g. {DEFAULT_BASE_URL}"
            )
        environment = environ.get("LANGFUSE_TRACING_ENVIRONMENT") or None
        if environment is not None and not _ENVIRONMENT.match(environment):
            raise ExportError(
                f"LANGFUSE_TRACING_ENVIRONMENT={environment!r}: expected lowercase letters, digits,"
                " '-' or '_' (at most 40, not starting with 'langfuse')"
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
