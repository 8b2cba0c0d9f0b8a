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
`CallError`. The API key lives in a `Secret` and is sent per request; it is never part of a
message, repr or recorded value: error texts the server sends are scrubbed of it, and so are its
answers when the key looks like a credential (a placeholder such as ``EMPTY`` is a word the
model may write). The extra headers' values are kept the same way. The body is encoded before
httpx sees it (`encoded_body`): a value JSON cannot carry is an error naming it.

httpx is imported on first use, so resolving a model string stays cheap.
"""

from __future__ import annotations

import dataclasses
import os
import re
import threading
import time
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from pytest_llmobs.providers import ConfigError
from pytest_llmobs.providers.base import Message, ModelResponse, UnknownModelError
from pytest_llmobs.providers.client_pool import current_pool
from pytest_llmobs.providers.openai_config import (
    API_KEY_ENV,
    AZURE_HOSTS,
    DEFAULT_BASE_URL,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_TIMEOUT,
    HEADERS_ENV,
    ORGANIZATION_ENV,
    PREFIX,
    PROJECT_ENV,
    REPLAY_ONLY,
    carries_auth,
    checked_base_url,
    connection_limits,
    parse_extra_headers,
    parse_options,
    sendable,
    shown_url_and_host,
    verifying_ssl_context,
)
from pytest_llmobs.providers.openai_errors import (
    SCRUBBED_MIN_CHARS,
    AttemptError,
    Secret,
    final_message,
)
from pytest_llmobs.providers.openai_request import encoded_body, scrub_httpx_log
from pytest_llmobs.providers.openai_response import (
    AnswerReading,
    Overdue,
    awithin_deadline,
    body_length,
    whole_response,
    within_deadline,
)
from pytest_llmobs.providers.pricing import PriceError, PriceTable
from pytest_llmobs.providers.retry import RetryPolicy

if TYPE_CHECKING:
    import httpx

__all__ = ["OpenAIProvider", "is_openai_model"]

PLAIN_HINT = "plain gpt-*, chatgpt-*, o1*, o3*, o4* too"

_PLAIN = re.compile(r"^(?:gpt-|chatgpt-|o[1-9](?:-|$))")
_REASONING = re.compile(r"^(?:o[1-9](?:-|$)|gpt-5)")


def is_openai_model(name: str) -> bool:
    """Whether a plain model name (no ``openai:``) is one of OpenAI's: gpt-*, o1*, o3*, ..."""
    return bool(_PLAIN.match(name))


class OpenAIProvider(AnswerReading):
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
        named = {f"headers[{name!r}]": value for name, value in (headers or {}).items()}
        given = {"api_key": api_key, "organization": organization, "project": project}
        sendable(f"{PREFIX}:{model}: ", **given, **named)
        self._model = model
        self._key = Secret(api_key)
        parts = urlsplit(base_url.strip())
        self._base_url = urlunsplit(parts._replace(query="", fragment="")).rstrip("/")
        self._url_params = tuple(parse_qsl(parts.query, keep_blank_values=True)) or None
        """The base URL's query (Azure's ``api-version``): httpx would append the request's
        path after it, so it is sent as the parameters of each call instead."""
        self._query_values = tuple(
            Secret(value)
            for value in {
                *(value for _, value in self._url_params or ()),
                *(pair.partition("=")[2] for pair in parts.query.split("&")),  # as sent
            }
            if len(value) >= SCRUBBED_MIN_CHARS
        )
        """The query's values (a gateway's ``subscription-key``, a ``sig``): kept out of
        messages, which may quote the URL called, and httpx's log, which names it."""
        if self._query_values:
            scrub_httpx_log(self, self._query_values)
        self._key_header = "api-key" if (parts.hostname or "").endswith(AZURE_HOSTS) else ""
        self._scope = {
            header: value
            for header, value in (
                ("OpenAI-Organization", organization),
                ("OpenAI-Project", project),
            )
            if value
        }
        self._extra = {name: Secret(value) for name, value in (headers or {}).items()}
        self._takes_auth = carries_auth(self._extra)
        """The extra headers carry the credentials: no key header of ours."""
        self._shown_url, self.host = shown_url_and_host(self._base_url)
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
        missing, it or a header value holds a character no HTTP header can carry (non-ASCII),
        ``OPENAI_BASE_URL`` is not an http(s) URL or ``LLMOBS_PRICES`` is unreadable.
        """
        environ = os.environ if env is None else env
        name, _, query = spec.strip().partition("?")
        name = name.strip()
        model = name[len(PREFIX) + 1 :] if name.startswith(f"{PREFIX}:") else name
        if not model:
            raise UnknownModelError(
                f"{PREFIX}: no model named in {spec!r}; e.g. openai:gpt-4o-mini"
            )
        options = parse_options(model, query)
        label = f"{PREFIX}:{model}"
        extra = parse_extra_headers(environ.get(HEADERS_ENV, ""))
        api_key = environ.get(API_KEY_ENV, "").strip()
        organization = environ.get(ORGANIZATION_ENV, "").strip() or None
        project = environ.get(PROJECT_ENV, "").strip() or None
        sendable("", **{API_KEY_ENV: api_key, ORGANIZATION_ENV: organization, PROJECT_ENV: project})
        if not api_key and REPLAY_ONLY.get():
            pass  # --llm-cache=read answers from the cache or fails: the key would go unused
        elif not api_key and not carries_auth(extra):
            raise ConfigError(
                f"{label} needs an API key: set the {API_KEY_ENV} environment variable "
                "(a local OpenAI-compatible server without auth accepts any value)"
            )
        base_url = checked_base_url(environ)
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
            organization=organization,
            project=project,
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
        body = encoded_body(self._body(messages, params))
        answer, attempts = self.retry.call(
            lambda: self._attempt(body), ok_status=200, message=final_message
        )
        answer.metadata["attempts"] = [a.to_dict() for a in attempts]
        return answer

    async def acomplete(self, messages: list[Message], **params: Any) -> ModelResponse:
        __tracebackhide__ = True
        body = encoded_body(self._body(messages, params))
        pool = current_pool()
        leased = (  # inside run_experiment: a kept-alive client; elsewhere one for the call
            pool.lease(id(self), self._new_async_client)
            if pool is not None
            else self._new_async_client()
        )
        async with leased as client:
            answer, attempts = await self.retry.acall(
                lambda: self._aattempt(client, body), ok_status=200, message=final_message
            )
        answer.metadata["attempts"] = [a.to_dict() for a in attempts]
        return answer

    def _new_async_client(self) -> httpx.AsyncClient:
        import httpx

        return httpx.AsyncClient(
            base_url=self._base_url,
            timeout=self._httpx_timeout(),
            limits=connection_limits(),
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
        return verifying_ssl_context()

    def _sync_client(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                import httpx

                self._client = httpx.Client(
                    base_url=self._base_url,
                    timeout=self._httpx_timeout(),
                    limits=connection_limits(),
                    transport=self._transport,
                    verify=self._ssl_context(),
                    follow_redirects=False,
                )
            return self._client

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json", "Content-Type": "application/json"}
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

    def _attempt(self, body: bytes) -> ModelResponse:
        import httpx

        client = self._sync_client()
        started = time.perf_counter()
        try:
            with client.stream("POST", **self._request(body)) as streamed:
                # the whole answer's time starts with its headers, as `timeout` promises
                deadline = time.perf_counter() + self._timeout[0]
                chunks = within_deadline(streamed.iter_raw(), deadline, body_length(streamed))
                response = whole_response(streamed, b"".join(chunks))
        except Overdue:
            raise self._overdue() from None
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from None
        return self._parse(response, started)

    async def _aattempt(self, client: httpx.AsyncClient, body: bytes) -> ModelResponse:
        import httpx

        started = time.perf_counter()
        try:
            async with client.stream("POST", **self._request(body)) as streamed:
                deadline = time.perf_counter() + self._timeout[0]  # (as in `_attempt`)
                chunks = awithin_deadline(streamed.aiter_raw(), deadline, body_length(streamed))
                response = whole_response(streamed, b"".join([c async for c in chunks]))
        except Overdue:
            raise self._overdue() from None
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from None
        return self._parse(response, started)

    def _request(self, body: bytes) -> dict[str, Any]:
        """The chat completion request's URL, body, headers and query (key included)."""
        return {
            "url": "/chat/completions",
            "content": body,
            "headers": self._headers(),
            "params": self._url_params,
        }

    def _overdue(self) -> AttemptError:
        """A server still sending when the attempt's time is up (httpx bounds each read only:
        an answer trickling a byte at a time would never time out)."""
        return self._error(
            f"timeout (no whole answer within timeout={self._timeout[0]:g} s)", retryable=True
        )
