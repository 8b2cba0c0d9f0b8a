"""The HTTP sender every exporter shares: explicit timeouts, bounded retries with backoff and
jitter, ``Retry-After`` honoured, and a circuit that stops hammering a server that is down.

httpx's own ``retries=`` covers connection errors only; 429 and 5xx answers are retried here.
Credentials (the Basic-auth pair, every configured header value, e.g. a bearer token, and the
``hidden`` values, e.g. an endpoint query's) are scrubbed from every message: a server that echoes
the request in its error shows ``***``. Messages name the URL requested (the base URL's path
included) without its query, and say a transport error in words (`http_errors`).
Timeouts and the retry policy are `http_options.HttpOptions`.

Errors::

    HttpError                 a request failed for good: host, method, path and status
     ├─ PayloadTooLarge       413: the caller splits the batch and sends the halves
     ├─ AuthError             401/403: the keys are wrong; nothing else is sent
     ├─ Redirected            301/302/303/307/308: never followed (a body would be resent, or
     │                        dropped, elsewhere); the message names the Location and the base
     │                        URL to set
     ├─ MalformedAnswer       a 2xx answer that is not what the API sends (an HTML page, broken
     │                        JSON, JSON without the expected fields): not retried
     └─ Unavailable           retries exhausted on 429/5xx/timeouts, or the circuit is open
"""

from __future__ import annotations

import base64
import json
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol
from urllib.parse import quote, urlsplit

from pytest_llmobs import __version__
from pytest_llmobs.exporters.http_errors import redirect_hint, status_hint, transport_problem
from pytest_llmobs.exporters.http_options import HttpOptions
from pytest_llmobs.exporters.urls import display_url
from pytest_llmobs.providers.retry import backoff_delay, parse_retry_after

if TYPE_CHECKING:
    import httpx

    from pytest_llmobs.exporters import ExportReport

RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


class HttpError(Exception):
    """A request that failed for good."""

    def __init__(self, message: str, *, status: int | None = None, body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


class PayloadTooLarge(HttpError):
    """HTTP 413."""


class AuthError(HttpError):
    """HTTP 401 or 403."""


class Redirected(HttpError):
    """A redirect (3xx with a Location): the base URL points at the wrong place, e.g. http://
    where the server wants https://."""


class Unavailable(HttpError):
    """The server kept failing (429/5xx/timeouts) or an earlier request found it down."""


class MalformedAnswer(HttpError):
    """A successful status with an answer the API never sends: usually a wrong base URL (a web
    server's HTML page) or a proxy in the way."""


Expect = Literal["json", "otlp"]
"""What a successful answer must be: ``json`` (a JSON body, or none) or ``otlp`` (none, JSON, a
protobuf body, or other text such as a bare ``OK``: not an HTML page or broken JSON)."""


@dataclass
class Response:
    status: int
    body: Any
    """Parsed JSON, or the text when the answer is not JSON."""
    headers: Mapping[str, str]
    where: str = ""
    """``METHOD scheme://host/path`` of the request (no query), for messages."""
    excerpt: str = ""
    """The start of the answer's text, credentials scrubbed, for messages."""
    content: bytes = field(default=b"", repr=False)
    """The answer's bytes as received (a protobuf answer does not survive decoding as text)."""

    def json_object(self, expected: str = "a JSON object") -> Mapping[str, Any]:
        """The body when it is a JSON object; `MalformedAnswer` naming the URL otherwise."""
        if isinstance(self.body, Mapping):
            return self.body
        raise self.malformed(expected)

    def malformed(self, expected: str) -> MalformedAnswer:
        """The error for an answer that is not ``expected`` (e.g. ``a JSON object with "id"``)."""
        if self.body is None:
            got = "an empty answer"
        elif isinstance(self.body, str):
            kind = self.headers.get("content-type", "").split(";")[0].strip() or "text"
            got = f"{kind}: {self.excerpt}" if self.excerpt else kind
        else:
            got = f"JSON {type(self.body).__name__}: {self.excerpt}"
        return MalformedAnswer(
            f"{self.where}: HTTP {self.status} answer is not {expected} (got {got})",
            status=self.status,
            body=self.body,
        )


def retry_after_seconds(value: str | None, *, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds: a number of seconds or an HTTP date; ``None`` if absent/bad.

    The same reading as the model providers' (`parse_retry_after`), for one header value.
    """
    clock = time.time if now is None else (lambda: now)
    return parse_retry_after({"retry-after": value} if value else {}, now=clock)


@dataclass
class HttpSender:
    """One client per upload: counts requests and bytes, and remembers when a server is down."""

    base_url: str
    auth: tuple[str, str] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    options: HttpOptions = field(default_factory=HttpOptions)
    hidden: Sequence[str] = ()
    """More values never to show, e.g. those of the endpoint's query (``?api_key=...``)."""
    requests: int = 0
    bytes_sent: int = 0
    _client: httpx.Client | None = None
    _down: str | None = None
    _rng: random.Random = field(default_factory=random.Random)

    @property
    def host(self) -> str:
        parts = urlsplit(self.base_url)
        return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")

    def client(self) -> httpx.Client:
        if self._client is None:
            import httpx

            self._client = httpx.Client(
                base_url=self.base_url.rstrip("/"),
                auth=httpx.BasicAuth(*self.auth) if self.auth else None,
                timeout=httpx.Timeout(self.options.timeout, connect=self.options.connect_timeout),
                headers={"User-Agent": f"pytest-llmobs/{__version__}", **self.headers},
                transport=self.options.transport,
                follow_redirects=False,
            )
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def secrets(self) -> list[str]:
        """What must never be shown: the Basic-auth pair and its encoding, and every configured
        header value (whole, and the credential after an auth scheme such as ``Bearer``), and the
        ``hidden`` values, also in the forms a server may echo them (URL-encoded, JSON-escaped)."""
        found = [s for s in self.auth or () if s] + list(self.hidden)
        if self.auth:
            found.append(base64.b64encode(":".join(self.auth).encode()).decode())
        for value in self.headers.values():
            value = value.strip()
            found.append(value)
            scheme, _, credential = value.partition(" ")
            if credential.strip() and scheme.isalpha():
                found.append(credential.strip())
                if scheme.lower() == "basic":
                    found.extend(_basic_parts(credential.strip()))
        variants = set()
        for secret in found:
            if len(secret) >= MIN_SECRET_CHARS:
                variants |= {secret, quote(secret, safe=""), json.dumps(secret)[1:-1]}
        return sorted(variants, key=len, reverse=True)

    def scrub(self, text: str) -> str:
        """``text`` with the credentials replaced by ``***``."""
        for secret in self.secrets():
            text = text.replace(secret, "***")
        return text

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: bytes | None = None,
        content: bytes | None = None,
        content_type: str | None = None,
        params: Mapping[str, str | int] | None = None,
        headers: Mapping[str, str] | None = None,
        ok_statuses: Sequence[int] = (200, 201, 202, 204, 207),
        accept_statuses: Sequence[int] = (),
        expect: Expect | None = None,
    ) -> Response:
        """Send with retries; return the answer for ``ok_statuses`` and ``accept_statuses``
        (e.g. 404 on a lookup), raise an `HttpError` subclass otherwise. With ``expect``, an
        ``ok_statuses`` answer that is not of that kind raises `MalformedAnswer`."""
        if self._down is not None:
            raise Unavailable(f"not sent: {self._down}")
        body = json_body if json_body is not None else content
        send_headers = dict(headers or {})
        if json_body is not None:
            send_headers["Content-Type"] = "application/json"
        elif content_type:
            send_headers["Content-Type"] = content_type
        # the URL httpx requests (the base URL's path, then the API path), its query left out
        where = f"{method} {display_url(self.base_url.rstrip('/') + path)}"
        attempts = max(1, self.options.max_attempts)
        last = ""
        for attempt in range(1, attempts + 1):
            wait: float | None = None
            try:
                self.requests += 1
                self.bytes_sent += len(body or b"")
                answer = self.client().request(
                    method, path, content=body, params=params, headers=send_headers
                )
            except Exception as exc:  # httpx.TransportError and friends: retried
                if not _is_transport_error(exc):
                    raise
                last = f"{where}: {transport_problem(exc, self.options)}"
            else:
                status = answer.status_code
                if status in ok_statuses or status in accept_statuses:
                    response = Response(
                        status,
                        _parse(answer),
                        dict(answer.headers),
                        where=where,
                        excerpt=self._excerpt(answer),
                        content=answer.content,
                    )
                    if status in ok_statuses and expect is not None:
                        _check(response, answer, expect)
                    return response
                message = f"{where}: HTTP {status}{self._detail(answer)}"
                if status == 413:
                    raise PayloadTooLarge(self.scrub(message), status=status)
                if status in REDIRECT_STATUSES:  # (its body is a web page at most: left out)
                    redirect = redirect_hint(answer, path, self.base_url)
                    message = f"{where}: HTTP {status}: {redirect}"
                    raise Redirected(self.scrub(message), status=status)
                if status in (401, 403):
                    self._down = f"{self.host} answered HTTP {status} (check the keys)"
                    raise AuthError(self.scrub(message), status=status)
                if status not in RETRY_STATUSES:
                    message += status_hint(status, path)
                    raise HttpError(self.scrub(message), status=status, body=_parse(answer))
                last = message
                wait = retry_after_seconds(answer.headers.get("Retry-After"))
                longest = self.options.retry_after_max
                if wait is not None and wait > longest:  # minutes of silence would not help
                    self._down = (
                        f"{self.scrub(last)}: the server asks to wait {wait:.0f} s before "
                        f"retrying, more than the {longest:.0f} s an upload waits; not retried"
                    )
                    raise Unavailable(self._down)
            if attempt == attempts:
                break
            self.options.sleep(self._delay(attempt, wait))
        self._down = f"{self.scrub(last)} after {attempts} attempt(s)"
        raise Unavailable(self._down)

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        return backoff_delay(
            attempt,
            base=self.options.backoff_base,
            ceiling=self.options.backoff_max,
            rng=self._rng,
            retry_after=retry_after,
            retry_after_max=self.options.retry_after_max,
            equal_jitter=True,  # an upload never retries at once: the server asked for air
        )

    def _detail(self, answer: httpx.Response) -> str:
        text = self._excerpt(answer)
        return f" {text}" if text else ""

    def _excerpt(self, answer: httpx.Response) -> str:
        """The first 200 characters of the answer on one line, credentials scrubbed (scrubbed
        whole first, so a secret cut at the edge cannot leak its start)."""
        try:
            text = answer.text
        except Exception:  # an undecodable body: say nothing of it
            return ""
        text = " ".join(self.scrub(text[:2000]).split())
        return text[:200]


MIN_SECRET_CHARS = 4
"""Configured header values shorter than this are not scrubbed (``x-only: 1`` would turn every
``1`` of a message into ``***``); no credential is that short."""


def _basic_parts(credential: str) -> list[str]:
    """The user and password inside a Basic credential (a server may echo them decoded)."""
    try:
        user, _, password = base64.b64decode(credential, validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return []
    return [user, password, f"{user}:{password}"]


def _check(response: Response, answer: httpx.Response, expect: Expect) -> None:
    """Raise `MalformedAnswer` when a successful answer is not what ``expect`` says. An OTLP
    answer may be any body but a web page or broken JSON (`otlp_send.rejection` reads it: a
    bare ``OK`` accepts)."""
    if not isinstance(response.body, str):
        return  # parsed JSON, or no body
    content_type = answer.headers.get("content-type", "").lower()
    if expect == "json":
        raise response.malformed("JSON")
    page = "html" in content_type or response.body.lstrip().startswith("<")
    if page or "json" in content_type:  # (JSON that did not parse)
        raise response.malformed("an OTLP answer (protobuf or JSON)")


def header_problem(name: str, value: str) -> str | None:
    """Why ``name: value`` cannot be sent as an HTTP header (never showing the value), or
    ``None``: a name must be a token, a value printable ASCII."""
    if not name or any(c not in _TOKEN_CHARS for c in name):
        return "is not a valid header name (letters, digits and !#$%&'*+-.^_`|~ only)"
    if any(ord(c) > 0x7E for c in value):
        return "has a non-ASCII character in its value (HTTP header values must be ASCII)"
    if any((ord(c) < 0x20 and c != "\t") or ord(c) == 0x7F for c in value):
        return (
            "has a control character in its value (a line break, e.g. from %0A or %0D, "
            "cannot be sent)"
        )
    return None


_TOKEN_CHARS = frozenset(
    "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)


def _is_transport_error(exc: Exception) -> bool:
    """httpx's transport errors, and httpcore's should one reach here unmapped (httpx maps them
    with a table built once; a second copy of httpcore in one process defeats it)."""
    import httpx

    return isinstance(exc, httpx.TransportError) or type(exc).__module__.startswith("httpcore")


def _parse(answer: httpx.Response) -> Any:
    if not answer.content:
        return None
    try:
        return answer.json()
    except ValueError:
        return answer.text


class UploadSteps(Protocol):
    """One upload's steps, sent through one `HttpSender`."""

    sender: HttpSender

    def execute(self) -> None: ...


def execute_upload(upload: UploadSteps, report: ExportReport) -> None:
    """Run ``upload``'s steps; then (also after a step raised) close its connections and note
    its requests and bytes on ``report``."""
    try:
        upload.execute()
    finally:
        upload.sender.close()
        report.requests = upload.sender.requests
        report.bytes_sent = upload.sender.bytes_sent
