"""OpenAI-compatible chat completions over httpx: ``openai:gpt-4o-mini`` or plain ``gpt-4o-mini``.

Any server speaking ``POST {base}/chat/completions`` works (OpenAI, vLLM, Ollama, llama.cpp,
gateways). Configuration comes from the environment and the model string::

    OPENAI_API_KEY     required (a local server without auth accepts any value)
    OPENAI_BASE_URL    default https://api.openai.com/v1; a query (Azure's ?api-version=...)
                       is sent with every call
    OPENAI_ORG_ID, OPENAI_PROJECT_ID   optional, as OpenAI's SDK reads them
    LLMOBS_OPENAI_HEADERS   optional extra headers for gateways, ``Name=value,Name2=value2``
                       (URL-encoded values); an ``Authorization`` or ``api-key`` header there
                       replaces the key's header, and OPENAI_API_KEY is then optional
    openai:gpt-4o-mini?timeout=30&connect_timeout=5&max_retries=4&backoff=0.5

Each HTTP attempt runs under a `RetryPolicy` (429/408/409/5xx, timeouts and connection errors
are retried; ``Retry-After`` is honoured) with a connect timeout and a deadline for the whole
answer. The attempts ride on ``ModelResponse.metadata["attempts"]``, or on the final
`CallError`. The API key lives in a `_Secret` and is sent per request; it is never part of a
message, repr or recorded value, and anything the server echoes back is scrubbed of it. The
extra headers' values are kept the same way.

httpx is imported on first use, so resolving a model string stays cheap.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import http
import json
import math
import os
import re
import threading
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from contextvars import ContextVar
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from pytest_llmobs.env_pairs import parse_pairs
from pytest_llmobs.providers import ConfigError
from pytest_llmobs.providers.base import (
    Message,
    ModelResponse,
    ProviderError,
    UnknownModelError,
    Usage,
    token_count,
)
from pytest_llmobs.providers.client_pool import current_pool
from pytest_llmobs.providers.pricing import PriceError, PriceTable
from pytest_llmobs.providers.retry import (
    RetryPolicy,
    is_retryable_status,
    parse_retry_after,
)

if TYPE_CHECKING:
    import httpx

__all__ = [
    "API_KEY_ENV",
    "BASE_URL_ENV",
    "DEFAULT_BASE_URL",
    "PREFIX",
    "OpenAIProvider",
    "is_openai_model",
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
PLAIN_HINT = "plain gpt-*, chatgpt-*, o1*, o3*, o4* too"

_PLAIN = re.compile(r"^(?:gpt-|chatgpt-|o[1-9](?:-|$))")
_REASONING = re.compile(r"^(?:o[1-9](?:-|$)|gpt-5)")
_KNOWN_OPTIONS = (
    "timeout (seconds > 0), connect_timeout (seconds > 0), max_retries (int >= 0), "
    "backoff (seconds >= 0)"
)
_KEY_LIKE = re.compile(r"\b(sk-|Bearer\s+)[\w\-*.]{4,}")
_AZURE_HOSTS = (".openai.azure.com", ".cognitiveservices.azure.com", ".services.ai.azure.com")
"""Azure OpenAI endpoints: they take the key in an ``api-key`` header, not ``Authorization``
(which they read as a Microsoft Entra token)."""
_DETAIL_CHARS = 200
_AUTH_HEADERS = frozenset({"authorization", "api-key"})
_RESERVED_HEADERS = frozenset(
    {"host", "content-length", "content-type", "transfer-encoding", "connection"}
)
"""Headers httpx writes for the request's framing and body: not the user's to set."""
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_SCRUBBED_MIN_CHARS = 4
"""Shorter header values are not scrubbed from messages (they would mask ordinary words)."""


def is_openai_model(name: str) -> bool:
    """Whether a plain model name (no ``openai:``) is one of OpenAI's: gpt-*, o1*, o3*, ..."""
    return bool(_PLAIN.match(name))


class _Secret:
    """A string that never shows itself in a repr or str."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "'***'"

    __str__ = __repr__


class _AttemptError(ProviderError):
    """One failed HTTP attempt, with the parts the final message is built from."""

    def __init__(self, label: str, summary: str, host: str, detail: str = "", **kw: Any) -> None:
        self.label, self.summary, self.host, self.detail = label, summary, host, detail
        super().__init__(self.render(1), **kw)

    def render(self, attempts: int) -> str:
        after = f" after {attempts} attempts" if attempts > 1 else ""
        tail = f": {self.detail}" if self.detail else ""
        return f"{self.label}: {self.summary}{after} (host {self.host}){tail}"


def _final_message(error: ProviderError, attempts: int) -> str:
    return error.render(attempts) if isinstance(error, _AttemptError) else str(error)


def _display_url(url: str) -> tuple[str, str]:
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
        seen.add(lowered)
    return headers


def _unsendable(body: Mapping[str, Any]) -> str:
    """Which parameter of a request body JSON cannot hold, and what to pass instead."""
    for name, value in body.items():
        try:
            json.dumps(value)
        except (TypeError, ValueError) as exc:
            if isinstance(value, type) and hasattr(value, "model_json_schema"):
                hint = (
                    "pass a dict: {'type': 'json_schema', 'json_schema': {'name': "
                    f"'{value.__name__}', 'schema': {value.__name__}.model_json_schema()}}}}"
                )
            elif isinstance(value, (set, frozenset)):
                hint = "pass a list"
            else:
                hint = "pass JSON values (str, number, bool, None, list, dict)"
            return f"model parameter {name}={value!r} cannot be sent as JSON ({exc}); {hint}"
    return "the request body cannot be sent as JSON"


def _carries_auth(headers: Iterable[str]) -> bool:
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


def _parse_options(model: str, query: str) -> dict[str, float | int]:
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


_replay_only: ContextVar[bool] = ContextVar("llmobs_openai_replay_only", default=False)


@contextlib.contextmanager
def replay_only() -> Iterator[None]:
    """Providers resolved in the block may lack ``OPENAI_API_KEY``: the session only replays
    recorded calls (``--llm-cache=read``), so CI needs no key; a call that reaches the server
    anyway fails with a clear error."""
    token = _replay_only.set(True)
    try:
        yield
    finally:
        _replay_only.reset(token)


def _connection_limits() -> httpx.Limits:
    """No cap of our own on open or kept-alive connections: the calls a client carries at once
    are bounded by its caller (``max_concurrency``, or one test at a time). httpx's defaults keep
    20 idle connections and close the rest, so 25 calls at a time reconnected 5 of them every
    wave (a TLS handshake each against a real endpoint); idle ones still expire after 5 s."""
    import httpx

    return httpx.Limits(max_connections=None, max_keepalive_connections=None)


@functools.cache
def _verifying_ssl_context() -> Any:
    import httpx

    return httpx.create_ssl_context()


class OpenAIProvider:
    """A `Provider` for one model behind an OpenAI-compatible chat completions endpoint."""

    handles_retries: ClassVar[bool] = True
    """`LLM` does not wrap this provider in its own retries: it retries each HTTP call."""

    def __init__(
        self,
        model: str,
        *,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = DEFAULT_TIMEOUT,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        retry: RetryPolicy | None = None,
        prices: PriceTable | None = None,
        organization: str | None = None,
        project: str | None = None,
        headers: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
        async_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """``timeout`` bounds each read and write, and the whole answer once its headers have
        arrived; ``connect_timeout`` connecting (seconds).
        ``organization`` and ``project`` go in OpenAI's ``OpenAI-Organization`` and
        ``OpenAI-Project`` headers (for keys that belong to several). ``headers`` go with every
        call, after (and over) those; an ``Authorization`` or ``api-key`` among them replaces
        the key's header, for gateways and tokens the key does not cover (``api_key`` may then
        be empty). Their values are treated as secrets, as the key is.

        ``transport``/``async_transport`` replace httpx's network transports (the seam for unit
        tests with ``httpx.MockTransport``); each async call opens and closes its own client, so
        an ``async_transport`` must survive being closed (MockTransport does).
        """
        self._model = model
        self._key = _Secret(api_key)
        parts = urlsplit(base_url.strip())
        self._base_url = urlunsplit(parts._replace(query="", fragment="")).rstrip("/")
        self._url_params = tuple(parse_qsl(parts.query, keep_blank_values=True)) or None
        """The base URL's query (Azure's ``api-version``): httpx would append the request's
        path after it, so it is sent as the parameters of each call instead."""
        self._query_values = tuple(
            _Secret(value)
            for value in {
                *(value for _, value in self._url_params or ()),
                *(pair.partition("=")[2] for pair in parts.query.split("&")),  # as sent
            }
            if len(value) >= _SCRUBBED_MIN_CHARS
        )
        """The query's values (a gateway's ``subscription-key``, a ``sig``): kept out of
        messages, which may quote the URL called."""
        self._key_header = "api-key" if (parts.hostname or "").endswith(_AZURE_HOSTS) else ""
        self._scope = {
            header: value
            for header, value in (
                ("OpenAI-Organization", organization),
                ("OpenAI-Project", project),
            )
            if value
        }
        self._extra = {name: _Secret(value) for name, value in (headers or {}).items()}
        self._takes_auth = _carries_auth(self._extra)
        """The extra headers carry the credentials: no key header of ours."""
        self._shown_url, self.host = _display_url(self._base_url)
        self._timeout = (float(timeout), float(connect_timeout))
        self.retry = retry or RetryPolicy()
        self._retry_overrides: dict[str, Any] = {}
        self.prices = prices if prices is not None else PriceTable()
        self._transport = transport
        self._async_transport = async_transport
        self._client: httpx.Client | None = None
        self._lock = threading.RLock()

    @classmethod
    def from_spec(cls, spec: str, *, env: Mapping[str, str] | None = None) -> OpenAIProvider:
        """Build from ``openai:<model>[?options]`` or a plain ``gpt-4o-mini[?options]``.

        Raises `UnknownModelError` for a bad option and `ConfigError` when ``OPENAI_API_KEY`` is
        missing, ``OPENAI_BASE_URL`` is not an http(s) URL or ``LLMOBS_PRICES`` is unreadable.
        """
        environ = os.environ if env is None else env
        name, _, query = spec.strip().partition("?")
        name = name.strip()
        model = name[len(PREFIX) + 1 :] if name.startswith(f"{PREFIX}:") else name
        if not model:
            raise UnknownModelError(
                f"{PREFIX}: no model named in {spec!r}; e.g. openai:gpt-4o-mini"
            )
        options = _parse_options(model, query)
        label = f"{PREFIX}:{model}"
        extra = parse_extra_headers(environ.get(HEADERS_ENV, ""))
        api_key = environ.get(API_KEY_ENV, "").strip()
        if not api_key and _replay_only.get():
            pass  # --llm-cache=read answers from the cache or fails: the key would go unused
        elif not api_key and not _carries_auth(extra):
            raise ConfigError(
                f"{label} needs an API key: set the {API_KEY_ENV} environment variable "
                "(a local OpenAI-compatible server without auth accepts any value)"
            )
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
                f"{_display_url(base_url)[0]}; expected e.g. {DEFAULT_BASE_URL} "
                "(calls go to <root>/chat/completions)"
            )
        try:
            prices = PriceTable.default(env=environ)
        except PriceError as exc:
            raise ConfigError(str(exc), names_its_setting=True) from None
        provider = cls(
            model,
            api_key=api_key,
            base_url=base_url,
            timeout=float(options.get("timeout", DEFAULT_TIMEOUT)),
            connect_timeout=float(options.get("connect_timeout", DEFAULT_CONNECT_TIMEOUT)),
            prices=prices,
            organization=environ.get(ORGANIZATION_ENV, "").strip() or None,
            project=environ.get(PROJECT_ENV, "").strip() or None,
            headers=extra,
        )
        overrides: dict[str, Any] = {
            k: options[k] for k in ("max_retries", "backoff") if k in options
        }
        provider._retry_overrides = overrides
        provider.retry = dataclasses.replace(provider.retry, **overrides)
        return provider

    # --- Provider protocol -------------------------------------------------------------------

    @property
    def model(self) -> str:
        return self._model

    @property
    def options(self) -> Mapping[str, Any]:
        """The timeouts, and the retry options the model string set."""
        return MappingProxyType(
            {"timeout": self._timeout[0], "connect_timeout": self._timeout[1]}
            | self._retry_overrides
        )

    @property
    def cache_identity(self) -> str:
        """The model as a cache key sees it: neither the server, the key nor timeouts."""
        return f"{PREFIX}:{self._model}"

    def set_default_retry(self, policy: RetryPolicy) -> None:
        """Use the session's policy, keeping what the model string set (``max_retries=``...)."""
        self.retry = dataclasses.replace(policy, **self._retry_overrides)

    def __repr__(self) -> str:
        return f"OpenAIProvider({self._model!r}, base_url={self._shown_url!r})"

    def complete(self, messages: list[Message], **params: Any) -> ModelResponse:
        __tracebackhide__ = True
        body = self._body(messages, params)
        answer, attempts = self.retry.call(
            lambda: self._attempt(body), ok_status=200, message=_final_message
        )
        answer.metadata["attempts"] = [a.to_dict() for a in attempts]
        return answer

    async def acomplete(self, messages: list[Message], **params: Any) -> ModelResponse:
        __tracebackhide__ = True
        body = self._body(messages, params)
        pool = current_pool()
        leased = (  # inside run_experiment: a kept-alive client; elsewhere one for the call
            pool.lease(id(self), self._new_async_client)
            if pool is not None
            else self._new_async_client()
        )
        async with leased as client:
            answer, attempts = await self.retry.acall(
                lambda: self._aattempt(client, body), ok_status=200, message=_final_message
            )
        answer.metadata["attempts"] = [a.to_dict() for a in attempts]
        return answer

    def _new_async_client(self) -> httpx.AsyncClient:
        import httpx

        return httpx.AsyncClient(
            base_url=self._base_url,
            timeout=self._httpx_timeout(),
            limits=_connection_limits(),
            transport=self._async_transport,
            verify=self._ssl_context(),
            follow_redirects=False,
        )

    def close(self) -> None:
        """Close the pooled connections of the sync client (it reopens on the next call)."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    # --- one attempt --------------------------------------------------------------------------

    def _httpx_timeout(self) -> httpx.Timeout:
        import httpx

        return httpx.Timeout(self._timeout[0], connect=self._timeout[1])

    def _ssl_context(self) -> Any:
        """The verifying SSL context for https servers, built once per process (it loads the
        CA bundle: ~30 ms) and shared by every client; ``False`` for plain http servers, which
        never do TLS (redirects are not followed), so no CA bundle is loaded for them."""
        if not self._base_url.startswith("https:"):
            return False
        return _verifying_ssl_context()

    def _sync_client(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                import httpx

                self._client = httpx.Client(
                    base_url=self._base_url,
                    timeout=self._httpx_timeout(),
                    limits=_connection_limits(),
                    transport=self._transport,
                    verify=self._ssl_context(),
                    follow_redirects=False,
                )
            return self._client

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if not self._takes_auth:
            key = self._key.reveal()
            if not key:  # built for replay only (replay_only()), yet asked to call the server
                raise ConfigError(
                    f"{PREFIX}:{self._model} has no API key: set {API_KEY_ENV} to call the model"
                )
            headers[self._key_header or "Authorization"] = (
                key if self._key_header else f"Bearer {key}"
            )
        headers.update(self._scope)
        if self._extra:
            given = {name.lower() for name in self._extra}
            headers = {name: v for name, v in headers.items() if name.lower() not in given}
            headers.update((name, secret.reveal()) for name, secret in self._extra.items())
        return headers

    def _body(self, messages: list[Message], params: Mapping[str, Any]) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self._model, "messages": messages}
        body.update(params)
        if _REASONING.match(self._model) and "max_tokens" in body:
            body.setdefault("max_completion_tokens", body.pop("max_tokens"))
        return body

    def _attempt(self, body: dict[str, Any]) -> ModelResponse:
        import httpx

        client = self._sync_client()
        started = time.perf_counter()
        deadline = started + self._timeout[0]
        try:
            with client.stream("POST", **self._request(body)) as streamed:
                raw = b"".join(_within(streamed.iter_raw(), deadline))
                response = _whole(streamed, raw)
        except _Overdue:
            raise self._overdue() from None
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from None
        except TypeError:  # httpx's json.dumps of the body, before anything is sent
            raise ValueError(_unsendable(body)) from None
        return self._parse(response, started)

    async def _aattempt(self, client: httpx.AsyncClient, body: dict[str, Any]) -> ModelResponse:
        import httpx

        started = time.perf_counter()
        deadline = started + self._timeout[0]
        try:
            async with client.stream("POST", **self._request(body)) as streamed:
                chunks = [chunk async for chunk in _awithin(streamed.aiter_raw(), deadline)]
                response = _whole(streamed, b"".join(chunks))
        except _Overdue:
            raise self._overdue() from None
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from None
        except TypeError:  # httpx's json.dumps of the body, before anything is sent
            raise ValueError(_unsendable(body)) from None
        return self._parse(response, started)

    def _request(self, body: dict[str, Any]) -> dict[str, Any]:
        """The chat completion request's URL, body, headers and query (key included)."""
        return {
            "url": "/chat/completions",
            "json": body,
            "headers": self._headers(),
            "params": self._url_params,
        }

    def _overdue(self) -> _AttemptError:
        """A server still sending when the attempt's time is up (httpx bounds each read only:
        an answer trickling a byte at a time would never time out)."""
        return self._error(
            f"timeout (no whole answer within timeout={self._timeout[0]:g} s)", retryable=True
        )

    # --- errors and responses -----------------------------------------------------------------

    def _scrub(self, text: str) -> str:
        """``text`` for a message: without our secrets, nor anything that looks like a key."""
        text = self._without_secrets(text, self._query_values)
        return _KEY_LIKE.sub(lambda m: m.group(1) + "***", text)

    def _without_secrets(self, text: str, more: tuple[_Secret, ...] = ()) -> str:
        """``text`` with the key, the extra headers' values and ``more`` masked (answers too: a
        model that repeats the key must not get it into a run)."""
        for secret in (self._key, *self._extra.values(), *more):
            value = secret.reveal()
            # the whole value, and the credentials of a "<scheme> <credentials>" value alone
            for part in (value, value.rpartition(" ")[2]):
                if len(part) >= _SCRUBBED_MIN_CHARS and part in text:
                    text = text.replace(part, "***")
        return text

    def _error(self, summary: str, detail: str = "", **kw: Any) -> _AttemptError:
        detail = " ".join(self._scrub(detail).split())
        if len(detail) > _DETAIL_CHARS:
            detail = detail[: _DETAIL_CHARS - 1] + "…"
        return _AttemptError(
            f"{PREFIX}:{self._model}", self._scrub(summary), self.host, detail, **kw
        )

    def _transport_error(self, exc: Exception) -> _AttemptError:
        import httpx

        kind = type(exc).__name__
        text = str(exc) or kind
        if isinstance(exc, httpx.TimeoutException):
            what = {"ConnectTimeout": "connect timeout", "ReadTimeout": "read timeout"}
            summary = what.get(kind, "timeout")
            return self._error(f"{summary} ({kind})", retryable=True)
        if isinstance(exc, (httpx.NetworkError, httpx.RemoteProtocolError)):
            return self._error(f"connection failed ({kind})", text, retryable=True)
        return self._error(f"request failed ({kind})", text)

    def _parse(self, response: httpx.Response, started: float) -> ModelResponse:
        status = response.status_code
        if not 200 <= status < 300:
            try:
                phrase = http.HTTPStatus(status).phrase
            except ValueError:
                phrase = response.reason_phrase or "error"
            raise self._error(
                f"{status} {phrase}",
                _error_detail(response),
                status=status,
                retryable=is_retryable_status(status),
                retry_after=parse_retry_after(response.headers),
            )
        try:
            data = response.json()
            choice = data["choices"][0]
            message = choice["message"]
            text = _content_text(message.get("content"))
            if text is None:
                text = message.get("refusal") or ""
            tool_calls = message.get("tool_calls") or None
            if tool_calls is not None and not isinstance(tool_calls, list):
                raise TypeError("tool_calls is not a list")
            function_call = message.get("function_call")
            if tool_calls is None and isinstance(function_call, dict):
                # the legacy `functions` answer: one call, as a tool call (without an id)
                tool_calls = [{"type": "function", "function": function_call}]
            usage = data.get("usage") or {}
            reported = bool(usage)
            input_tokens = token_count(usage.get("prompt_tokens"), "usage.prompt_tokens")
            output_tokens = token_count(usage.get("completion_tokens"), "usage.completion_tokens")
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            message = _error_message(response)
            if message is not None:  # some gateways send their errors with a success status
                raise self._error(
                    f"{status} with an error instead of a completion", message, status=status
                ) from None
            preview = " ".join(response.text[:80].split())
            raise self._error(
                "malformed response",
                f"expected chat completion JSON with choices[0].message ({_reason(exc)}); "
                f"body starts {preview!r}",
                status=status,
            ) from None
        latency = (time.perf_counter() - started) * 1000.0
        # everything the server names is scrubbed: a gateway may echo the key anywhere
        model = self._without_secrets(str(data.get("model") or self._model))
        usage_ = Usage(input=input_tokens, output=output_tokens, reported=reported)
        return ModelResponse(
            text=self._without_secrets(str(text)),
            model=model,
            usage=usage_,
            latency_ms=latency,
            # no usage in the answer: the counts are unknown, and so is the cost (not $0)
            cost=self.prices.price(model, self._model, usage=usage_) if reported else None,
            metadata={
                "finish_reason": self._echoed(choice.get("finish_reason")),
                "response_id": self._echoed(data.get("id")),
                **({} if reported else {"usage_reported": False}),
            },
            tool_calls=None if tool_calls is None else self._calls_without_secrets(tool_calls),
        )

    def _echoed(self, value: object) -> str | None:
        """A name or id from the answer, as text without the key (``None`` stays ``None``)."""
        return None if value is None else self._without_secrets(str(value))

    def _calls_without_secrets(self, calls: list[Any]) -> list[dict[str, Any]]:
        """The tool calls as sent, with the key masked wherever the server echoed it."""
        masked: list[dict[str, Any]] = json.loads(self._without_secrets(json.dumps(calls)))
        return masked


class _Overdue(Exception):
    """An attempt's answer was still arriving when its time was up."""


def _within(chunks: Iterator[bytes], deadline: float) -> Iterator[bytes]:
    """``chunks`` until ``deadline`` (a `time.perf_counter` value), then `_Overdue`."""
    for chunk in chunks:
        yield chunk
        if time.perf_counter() > deadline:
            raise _Overdue


async def _awithin(chunks: AsyncIterator[bytes], deadline: float) -> AsyncIterator[bytes]:
    """`_within` for an async stream."""
    async for chunk in chunks:
        yield chunk
        if time.perf_counter() > deadline:
            raise _Overdue


def _whole(streamed: httpx.Response, raw: bytes) -> httpx.Response:
    """A response read in full from ``streamed``'s status, headers and (still encoded) body."""
    import httpx

    return httpx.Response(
        streamed.status_code,
        headers=streamed.headers,
        content=raw,
        request=streamed.request,
        extensions=streamed.extensions,
    )


def _content_text(content: Any) -> Any:
    """A message's content as text: some servers answer with a list of content parts
    (``[{"type": "text", "text": ...}]``), whose texts are joined."""
    if isinstance(content, list):
        texts = [part.get("text") if isinstance(part, dict) else None for part in content]
        if not all(isinstance(text, str) for text in texts):
            raise TypeError("content is a list but not of text parts")
        return "".join(str(text) for text in texts)
    if content is not None and not isinstance(content, str):
        raise TypeError(f"content is {type(content).__name__}, not text")
    return content


def _reason(exc: Exception) -> str:
    """Why a success answer could not be read, shortly: ``KeyError: 'choices'``."""
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:80]}"


def _error_detail(response: httpx.Response) -> str:
    """The server's error message (OpenAI's ``{"error": {"message": ...}}``) or body text; for
    a redirect, where to (an http:// base URL sent to https:// is the usual cause)."""
    location = response.headers.get("location") if response.is_redirect else None
    if location:
        return f"redirected to {location}; set {BASE_URL_ENV} to the URL the API answers at"
    return _error_message(response) or response.text


def _error_message(response: httpx.Response) -> str | None:
    """OpenAI's ``{"error": {"message": ...}}`` (or ``{"error": "..."}``) in a JSON body."""
    try:
        data = response.json()
    except (ValueError, json.JSONDecodeError):
        return None
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    return error if isinstance(error, str) and error else None
