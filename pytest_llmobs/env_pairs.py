"""``k=v,k2=v2`` environment values (OpenTelemetry's list format), shared by whatever reads one:
OTLP headers and resource attributes, the OpenAI provider's extra headers."""

from __future__ import annotations

from urllib.parse import unquote


def parse_pairs(value: str, variable: str, error: type[Exception] = ValueError) -> dict[str, str]:
    """``k=v,k2=v2`` → a dict, keys and values URL-decoded; a malformed entry raises ``error``
    naming the variable and the entry's position (never its values: they may be secrets)."""
    pairs: dict[str, str] = {}
    for index, entry in enumerate(value.split(","), start=1):
        if not entry.strip():
            continue
        key, sep, raw = entry.partition("=")
        key = unquote(key).strip()
        if not sep or not key:
            raise error(
                f"{variable}: entry {index} is not 'key=value' (expected k=v,k2=v2 with "
                "URL-encoded values)"
            )
        pairs[key] = unquote(raw).strip()
    return pairs
