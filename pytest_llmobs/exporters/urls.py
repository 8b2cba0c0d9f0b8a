"""Upload URLs from the environment: checked once, and shown without what may be secret.

A URL that does not parse (a port out of range or not a number, an unclosed ``[``), that is not
http(s), or that holds ``user:password@`` is a `ConfigError` naming the variable. Credentials in
a URL would go out as Basic auth and appear wherever the URL is shown, so they are refused with
a pointer to where they belong. A query may hold a token (``?api_key=...``): messages, reports
and the upload state show the URL without it.
"""

from __future__ import annotations

import re
from urllib.parse import SplitResult, parse_qsl, urlsplit

from pytest_llmobs.exporters import ConfigError


def checked_url(variable: str, value: str, *, example: str, credentials: str) -> SplitResult:
    """``value`` (the setting of ``variable``) split, when it is an http(s) URL without
    credentials; `ConfigError` otherwise. ``credentials`` says where credentials belong (e.g.
    ``put the keys in LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY``)."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 (a port out of range or not a number raises ValueError)
    except ValueError as exc:
        raise ConfigError(
            f"{variable}={shown_url(value)} is not a valid URL ({exc}); expected an http(s) URL, "
            f"e.g. {example}"
        ) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{variable}={shown_url(value)} is not an http(s) URL, e.g. {example}")
    if parts.username is not None or parts.password is not None:
        raise ConfigError(
            f"{variable} holds credentials (user:password@ before the host): they would be sent "
            f"as Basic auth and shown with the URL; {credentials}; got {shown_url(value)}"
        )
    return parts


def refuse_query(variable: str, value: str, parts: SplitResult, *, example: str) -> None:
    """`ConfigError` when a base URL has a query or a fragment: the API's paths are appended to
    the URL, so either would break every request (after ``#`` they would not even be sent)."""
    for found, what in ((parts.query, "a query (?...)"), (parts.fragment, "a fragment (#...)")):
        if found:
            raise ConfigError(
                f"{variable}={shown_url(value)} has {what}: expected the server's base URL "
                f"without one, e.g. {example}"
            )


def shown_url(value: str) -> str:
    """``value`` quoted for a message, credentials (``user:pass@``) and query cut; works on a
    URL that does not parse."""
    return repr(_masked(value))


def _masked(value: str) -> str:
    shown = re.sub(r"[^/@\s]*@", "***@", value, count=1)
    return re.sub(r"\?.*", "?***", shown, flags=re.DOTALL)


def display_url(value: str) -> str:
    """``scheme://host[:port]/path`` of ``value``, for reports and the upload state: never the
    credentials or the query (a URL that does not parse is shown as `shown_url` does)."""
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        return _masked(value)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}" + (f":{port}" if port is not None else "") + parts.path


def query_values(url: str) -> tuple[str, ...]:
    """The values in ``url``'s query, decoded and as sent (percent-encoded), to keep out of
    messages: a server may echo the URL it was called with."""
    query = urlsplit(url).query
    decoded = {value for _, value in parse_qsl(query, keep_blank_values=True)}
    raw = {pair.partition("=")[2] for pair in query.split("&")}
    return tuple(sorted(v for v in decoded | raw if v))
