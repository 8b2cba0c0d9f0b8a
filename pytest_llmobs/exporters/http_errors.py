"""What an upload's error line says beyond the URL and the HTTP status: a transport error in
words (`transport_problem`: ``connection refused (ConnectError)``, not the class name alone), and
the way out of an answer whose cause is known: where a redirect points and the base URL to set
(`redirect_hint`), a Langfuse server without the OTLP endpoint (`status_hint`)."""

from __future__ import annotations

import re
import socket
import ssl
from typing import TYPE_CHECKING
from urllib.parse import urljoin

from pytest_llmobs.exporters.urls import display_url

if TYPE_CHECKING:
    import httpx

    from pytest_llmobs.exporters.http_options import HttpOptions

LANGFUSE_OTLP_PATH = "/api/public/otel/v1/traces"
LEGACY_HINT = (
    "; this Langfuse server has no OTLP endpoint (an older self-hosted version?): send the "
    "traces with --legacy (`llmobs upload --pending --legacy`; pytest: --llm-langfuse-legacy)"
)
"""A 404 on `LANGFUSE_OTLP_PATH`: retrying cannot help, ingestion events (``--legacy``) can."""

_MAX_CHARS = 200


def transport_problem(exc: BaseException, options: HttpOptions) -> str:
    """What a transport error (httpx's, or httpcore's) means, in words, then its class:
    ``connection refused (ConnectError)``, ``server disconnected without sending a response
    (RemoteProtocolError)``, ``no answer within 30 s (ReadTimeout)`` (the timeouts of
    ``options``)."""
    kind = type(exc).__name__
    return f"{_words(exc, kind, options.timeout, options.connect_timeout)} ({kind})"


def status_hint(status: int, path: str) -> str:
    """What to do about an error answer ``status`` to ``path`` (the API path, query allowed),
    to append to its message; empty when there is nothing to add."""
    if status == 404 and path.partition("?")[0].rstrip("/").endswith(LANGFUSE_OTLP_PATH):
        return LEGACY_HINT
    return ""


def redirect_hint(answer: httpx.Response, path: str, base_url: str) -> str:
    """What a redirect answer to the request of ``path`` (the API path after ``base_url``)
    asks for: where it points (without its query or credentials) and, when the Location ends
    with ``path``, the base URL to set instead."""
    location = answer.headers.get("Location", "").strip()
    if not location:
        return "a redirect without a Location; check the base URL (uploads do not follow redirects)"
    try:
        target = display_url(urljoin(str(answer.request.url), location))
    except (ValueError, RuntimeError):  # (no request attached: only in hand-made answers)
        target = display_url(location)
    api_path = path.partition("?")[0].rstrip("/")
    base = target[: -len(api_path)] if api_path and target.endswith(api_path) else ""
    if "://" not in base or base.rstrip("/") == display_url(base_url).rstrip("/"):
        return f"the server redirects to {target}; check the base URL (uploads do not follow it)"
    return f"the server redirects to {target}; set the base URL to {base}"


def _words(exc: BaseException, kind: str, timeout: float, connect_timeout: float) -> str:
    for cause in _causes(exc):  # httpx's error wraps httpcore's, which wraps the OSError
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, socket.gaierror):
            return f"host not found ({_text(cause)})"
        if isinstance(cause, ConnectionResetError):
            return "connection reset by the server"
        if isinstance(cause, ssl.SSLError):
            return f"TLS failed ({_text(cause)})"
    if kind == "ConnectTimeout":
        return f"no connection within {connect_timeout:g} s"
    if kind == "ReadTimeout":
        return f"no answer within {timeout:g} s"
    if kind == "WriteTimeout":
        return f"the request could not be sent within {timeout:g} s"
    return _text(exc) or "connection failed"


def _causes(exc: BaseException) -> list[BaseException]:
    found: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in found and len(found) < 10:
        found.append(current)
        current = current.__cause__ or current.__context__
    return found


def _text(exc: BaseException) -> str:
    """The exception's message as words within a sentence: one line, no ``[Errno N]`` prefix,
    no final period, a capital first letter lowered unless it starts an acronym (``TLS``)."""
    text = re.sub(r"^\[Errno -?\d+\]\s*", "", " ".join(str(exc).split())).rstrip(".")
    if text[1:2].islower():
        text = text[:1].lower() + text[1:]
    return text if len(text) <= _MAX_CHARS else text[: _MAX_CHARS - 1] + "…"
