"""Where the OpenAI provider's settings come from, and the HTTP client settings it uses.

The environment variables it reads, the model string's ``?options``, the checks of
``OPENAI_BASE_URL`` and ``LLMOBS_OPENAI_HEADERS``, Azure host detection, replay-only resolution
(no key needed), and httpx's connection limits and SSL context. httpx is imported on first use.
"""

from __future__ import annotations

import contextlib
import functools
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from pytest_llmobs.env_pairs import parse_pairs
from pytest_llmobs.providers import ConfigError
from pytest_llmobs.providers.base import UnknownModelError

if TYPE_CHECKING:
    import httpx

__all__ = [
    "API_KEY_ENV",
    "BASE_URL_ENV",
    "DEFAULT_BASE_URL",
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_TIMEOUT",
    "HEADERS_ENV",
    "ORGANIZATION_ENV",
    "PREFIX",
    "PROJECT_ENV",
    "check_header_value",
    "parse_extra_headers",
    "replay_only",
    "sendable",
]

PREFIX = "openai"
API_KEY_ENV = "OPENAI_API_KEY"
BASE_URL_ENV = "OPENAI_BASE_URL"
ORGANIZATION_ENV = "OPENAI_ORG_ID"
PROJECT_ENV = "OPENAI_PROJECT_ID"
HEADERS_ENV = "LLMOBS_OPENAI_HEADERS"
DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_TIMEOUT = 60.0
DEFAULT_CONNECT_TIMEOUT = 10.0

_KNOWN_OPTIONS = (
    "timeout (seconds > 0), connect_timeout (seconds > 0), max_retries (int >= 0), "
    "backoff (seconds >= 0)"
)
AZURE_HOSTS = (".openai.azure.com", ".cognitiveservices.azure.com", ".services.ai.azure.com")
"""Azure OpenAI endpoints: they take the key in an ``api-key`` header, not ``Authorization``
(which they read as a Microsoft Entra token)."""
_AUTH_HEADERS = frozenset({"authorization", "api-key"})
_RESERVED_HEADERS = frozenset(
    {"host", "content-length", "content-type", "transfer-encoding", "connection"}
)
"""Headers httpx writes for the request's framing and body: not the user's to set."""
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_UNSENDABLE = re.compile(r"[^\t\x20-\x7e]")
"""What a header value cannot carry: httpx encodes values as ASCII (``UnicodeEncodeError``, the
value in its message), and h11 refuses control characters."""


def shown_url_and_host(url: str) -> tuple[str, str]:
    """(base URL without credentials or query, host[:port]) for messages and reprs."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}", host


def parse_extra_headers(value: str) -> dict[str, str]:
    """`HEADERS_ENV`'s ``Name=value,...`` → headers; `ConfigError` names a bad entry, never a
    value (values are usually keys)."""
    headers = parse_pairs(value, HEADERS_ENV, ConfigError)
    seen: set[str] = set()
    for name, header_value in headers.items():
        lowered = name.lower()
        if not _HEADER_NAME.match(name):
            raise ConfigError(f"{HEADERS_ENV}: {name!r} is not a valid HTTP header name")
        if lowered in _RESERVED_HEADERS:
            raise ConfigError(
                f"{HEADERS_ENV}: {name!r} is set by the HTTP client for each request; "
                "remove it (extra headers are for authentication and gateways)"
            )
        if lowered in seen:
            raise ConfigError(f"{HEADERS_ENV}: header {name!r} given more than once")
        if "\r" in header_value or "\n" in header_value:
            raise ConfigError(f"{HEADERS_ENV}: the value of {name!r} holds a line break")
        check_header_value(header_value, f"{HEADERS_ENV}: the (URL-decoded) value of {name!r}")
        seen.add(lowered)
    return headers


def check_header_value(value: str, where: str) -> None:
    """`ConfigError` unless ``value`` can go in an HTTP header: it names ``where`` and the first
    bad character's position and kind, never the value (the key, a token)."""
    bad = _UNSENDABLE.search(value)
    if bad is None:
        return
    if ord(bad.group()) > 0x7F:
        kind = "is not ASCII (a typographic quote or non-breaking space pasted with it?)"
    else:
        kind = "is a control character"
    raise ConfigError(
        f"{where} cannot be sent in an HTTP header: character {bad.start() + 1} {kind}; "
        "headers carry printable ASCII only"
    )


def sendable(prefix: str, /, **values: str | None) -> None:
    """`check_header_value` of each value given (None: not set), named ``prefix + name``: said
    when the provider is set up, not by httpx's ``UnicodeEncodeError`` at each call."""
    for name, value in values.items():
        check_header_value(value or "", prefix + name)


def carries_auth(headers: Iterable[str]) -> bool:
    """Whether extra headers (their names) hold the credentials: then no key header of ours."""
    return any(name.lower() in _AUTH_HEADERS for name in headers)


def _shown_bad_url(value: str) -> str:
    """A base URL that did not parse, quoted for a message: credentials (``user:pass@``) cut,
    and the usual mistake, a missing scheme, named."""
    shown = re.sub(r"[^/@\s]*@", "***@", value, count=1)
    shown = repr(re.sub(r"\?.*", "?***", shown, flags=re.DOTALL))  # a query may hold a key
    if "://" not in value:
        return f"{shown} (no http:// or https:// in front)"
    return shown


def _bad_spec(detail: str) -> UnknownModelError:
    return UnknownModelError(f"{PREFIX}: {detail}; known options: {_KNOWN_OPTIONS}")


def parse_options(model: str, query: str) -> dict[str, float | int]:
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True) if query else []
    except ValueError:
        raise _bad_spec(f"malformed options {query!r} (expected name=value&...)") from None
    options: dict[str, float | int] = {}
    for key, raw in pairs:
        if key not in ("timeout", "connect_timeout", "max_retries", "backoff"):
            raise _bad_spec(f"unknown option {key!r} for {model!r}")
        if key in options:
            raise _bad_spec(f"option {key!r} given more than once")
        try:
            value: float | int = int(raw) if key == "max_retries" else float(raw)
        except ValueError:
            kind = "an integer" if key == "max_retries" else "a number"
            raise _bad_spec(f"bad value {raw!r} for option {key!r} (expected {kind})") from None
        low_ok = value >= 0 if key in ("max_retries", "backoff") else value > 0
        if not low_ok or not math.isfinite(value):
            raise _bad_spec(f"bad value {raw!r} for option {key!r}")
        options[key] = value
    return options


def checked_base_url(environ: Mapping[str, str]) -> str:
    """``OPENAI_BASE_URL`` (or the default); `ConfigError` unless it is an http(s) API root
    without credentials."""
    base_url = environ.get(BASE_URL_ENV, "").strip() or DEFAULT_BASE_URL
    try:
        parts = urlsplit(base_url)
        parts.port  # noqa: B018 (a port out of range or not a number raises ValueError)
    except ValueError as exc:
        raise ConfigError(
            f"{BASE_URL_ENV} must be an http(s) URL such as {DEFAULT_BASE_URL}; got "
            f"{_shown_bad_url(base_url)} ({exc})"
        ) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"{BASE_URL_ENV} must be an http(s) URL such as {DEFAULT_BASE_URL}; got "
            f"{_shown_bad_url(base_url)}"
        )
    if parts.username is not None or parts.password is not None:
        raise ConfigError(
            f"{BASE_URL_ENV} holds credentials (user:password@ before the host): they would "
            f"be sent as Basic auth in place of the key; put the key in {API_KEY_ENV}, or "
            f"the header in {HEADERS_ENV} (e.g. Authorization=Basic%20...); got "
            f"{_shown_bad_url(base_url)}"
        )
    if parts.path.rstrip("/").endswith("/chat/completions"):
        raise ConfigError(
            f"{BASE_URL_ENV} is the API's root, not its endpoint: got "
            f"{shown_url_and_host(base_url)[0]}; expected e.g. {DEFAULT_BASE_URL} "
            "(calls go to <root>/chat/completions)"
        )
    return base_url


REPLAY_ONLY: ContextVar[bool] = ContextVar("llmobs_openai_replay_only", default=False)


@contextlib.contextmanager
def replay_only() -> Iterator[None]:
    """Providers resolved in the block may lack ``OPENAI_API_KEY``: the session only replays
    recorded calls (``--llm-cache=read``), so CI needs no key; a call that reaches the server
    anyway fails with a clear error."""
    token = REPLAY_ONLY.set(True)
    try:
        yield
    finally:
        REPLAY_ONLY.reset(token)


def connection_limits() -> httpx.Limits:
    """No cap of our own on open or kept-alive connections: the calls a client carries at once
    are bounded by its caller (``max_concurrency``, or one test at a time). httpx's defaults keep
    20 idle connections and close the rest, so 25 calls at a time reconnected 5 of them every
    wave (a TLS handshake each against a real endpoint); idle ones still expire after 5 s."""
    import httpx

    return httpx.Limits(max_connections=None, max_keepalive_connections=None)


@functools.cache
def verifying_ssl_context() -> Any:
    import httpx

    return httpx.create_ssl_context()
