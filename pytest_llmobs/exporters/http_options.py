"""The HTTP sender's timeouts and retry policy (`HttpOptions`), and the ``LLMOBS_UPLOAD_*``
environment variables that override them (each checked: a malformed value is a `ConfigError`)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, kw_only=True)
class HttpOptions:
    """Timeouts (seconds) and the retry policy."""

    timeout: float = 30.0
    connect_timeout: float = 10.0
    max_attempts: int = 5
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    retry_after_max: float = 60.0
    """Longest ``Retry-After`` waited for; a server asking for longer is not retried (what it
    did not take stays pending for ``llmobs upload --pending``)."""
    sleep: Callable[[float], None] = time.sleep
    transport: Any = None
    """An ``httpx.BaseTransport`` (tests plug ``httpx.MockTransport``)."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> HttpOptions:
        """``LLMOBS_UPLOAD_TIMEOUT`` (seconds) and ``LLMOBS_UPLOAD_MAX_ATTEMPTS`` override."""
        kwargs: dict[str, Any] = {}
        for setting in _SETTINGS:
            raw = environ.get(setting.variable)
            if raw:
                kwargs[setting.option] = setting.parse(raw)
        return cls(**kwargs)


@dataclass(frozen=True)
class _Setting:
    """An environment variable overriding one `HttpOptions` field, with its lowest value."""

    variable: str
    option: str
    kind: type[float] | type[int]
    least: float
    inclusive: bool
    """Whether ``least`` itself is allowed."""
    expected: str

    def parse(self, raw: str) -> float | int:
        try:
            value = self.kind(raw)
        except ValueError:
            value = None
        if (
            value is None
            or not math.isfinite(value)
            or value < self.least
            or (value == self.least and not self.inclusive)
        ):
            from pytest_llmobs.exporters import ConfigError

            raise ConfigError(f"{self.variable}={raw!r}: expected {self.expected}")
        return value


_SETTINGS = (
    _Setting("LLMOBS_UPLOAD_TIMEOUT", "timeout", float, 0.0, False, "seconds > 0"),
    _Setting("LLMOBS_UPLOAD_MAX_ATTEMPTS", "max_attempts", int, 1, True, "an integer >= 1"),
    _Setting("LLMOBS_UPLOAD_BACKOFF", "backoff_base", float, 0.0, True, "seconds >= 0"),
)
