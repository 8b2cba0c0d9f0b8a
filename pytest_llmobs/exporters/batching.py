"""Size-limited batches, and truncation of a single oversized field with a visible marker.

Limits are the smallest documented for Langfuse (NOTES: the SDK keeps events <= 1 MB and
batches <= 2.5 MB; the spec says 3.5 MB per batch, the cloud docs 5 MB). Sizes are bytes of the
encoded form (UTF-8 JSON, or serialized protobuf).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

T = TypeVar("T")

EVENT_MAX_BYTES = 1_000_000
BATCH_MAX_BYTES = 2_500_000
BATCH_MAX_COUNT = 1_000
FIELD_MARKER = "…[truncated {n} chars]"
_MIN_KEEP = 64


def truncate_text(text: str, max_bytes: int) -> tuple[str, int]:
    """``text`` cut to at most ``max_bytes`` UTF-8 bytes including the marker; returns the new
    text and how many characters were cut (0 when it already fits)."""
    if len(text) * 4 <= max_bytes:
        return text, 0
    data = text.encode()
    if len(data) <= max_bytes:
        return text, 0
    # The marker's count has at most as many digits as len(text): reserve that much.
    budget = max(0, max_bytes - len(FIELD_MARKER.format(n=len(text)).encode()))
    head = data[:budget].decode("utf-8", "ignore")
    cut = len(text) - len(head)
    return head + FIELD_MARKER.format(n=cut), cut


def encode_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def fit_json(
    event: dict[str, Any], max_bytes: int = EVENT_MAX_BYTES
) -> tuple[dict[str, Any], str, int]:
    """``event`` encoded as JSON; while it is over ``max_bytes``, its largest field value is
    replaced by its JSON text truncated with a marker. Returns event, encoding, fields cut."""
    encoded = encode_json(event)
    cut_fields = 0
    while len(encoded.encode()) > max_bytes:
        path, size = _largest_leaf(event)
        if path is None or size <= _MIN_KEEP:
            break  # nothing left to cut: the caller sends it and the server decides
        excess = len(encoded.encode()) - max_bytes
        parent, key = _resolve(event, path)
        value = parent[key]
        text = value if isinstance(value, str) else encode_json(value)
        target = max(_MIN_KEEP, len(text.encode()) - excess - 64)
        parent[key], _ = truncate_text(text, target)
        cut_fields += 1
        encoded = encode_json(event)
    return event, encoded, cut_fields


def _largest_leaf(value: Any, path: tuple[Any, ...] = ()) -> tuple[tuple[Any, ...] | None, int]:
    """The path of the largest string or scalar-encoded value under ``value`` (containers whose
    children are all small count as one value, so a huge list of short strings gets cut too)."""
    best: tuple[tuple[Any, ...] | None, int] = (None, 0)
    children: Iterable[tuple[Any, Any]]
    if isinstance(value, dict):
        children = value.items()
    elif isinstance(value, list):
        children = enumerate(value)
    else:
        return (path, len(encode_json(value).encode())) if path else (None, 0)
    total = 0
    for key, child in children:
        found = _largest_leaf(child, (*path, key))
        total += found[1]
        if found[1] > best[1]:
            best = found
    if path and best[1] * 4 < total:  # many small children: cut the container as a whole
        return path, total
    return best


def _resolve(root: Any, path: tuple[Any, ...]) -> tuple[Any, Any]:
    parent = root
    for key in path[:-1]:
        parent = parent[key]
    return parent, path[-1]


def batches(
    items: Iterable[T],
    size: Callable[[T], int],
    *,
    max_bytes: int = BATCH_MAX_BYTES,
    max_count: int = BATCH_MAX_COUNT,
    overhead: int = 64,
) -> Iterator[list[T]]:
    """Group ``items`` in order into lists whose summed ``size`` (plus ``overhead`` and one byte
    per separator) stays within ``max_bytes``; an item over the limit alone forms its own list."""
    batch: list[T] = []
    used = overhead
    for item in items:
        n = size(item) + 1
        if batch and (used + n > max_bytes or len(batch) >= max_count):
            yield batch
            batch, used = [], overhead
        batch.append(item)
        used += n
    if batch:
        yield batch


def halves(batch: Sequence[T]) -> list[list[T]]:
    """Split a batch the server refused as too large (413); a single item cannot be split."""
    middle = len(batch) // 2
    return [list(batch[:middle]), list(batch[middle:])] if middle else []


def json_batch(encoded_events: Sequence[str]) -> bytes:
    """The ingestion body ``{"batch": [...]}`` from already-encoded events."""
    return ('{"batch":[' + ",".join(encoded_events) + "]}").encode()
