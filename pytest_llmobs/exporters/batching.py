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
J = TypeVar("J", bound="dict[str, Any] | list[Any]")

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


def fit_json(event: J, max_bytes: int = EVENT_MAX_BYTES) -> tuple[J, str, int]:
    """``event`` (an object, or a list) encoded as JSON; while it is over ``max_bytes``, its
    largest field values are replaced by their JSON text truncated with a marker, all to one
    common size (an input, output and metadata of 2 MB each keep a third of the budget each, not
    64 bytes, 64 bytes and the rest). Returns event, encoding, fields cut."""
    encoded = encode_json(event)
    cut_paths: set[tuple[Any, ...]] = set()
    if len(encoded.encode()) > max_bytes:
        # cut a copy: the event's values may be the run's own (an item's expected output,
        # which the trace's attributes send in full too)
        event = json.loads(encoded)
    while len(encoded.encode()) > max_bytes:
        units = [(path, size) for path, size in _cut_units(event) if size > _MIN_KEEP]
        if not units:
            break  # nothing left to cut: the caller sends it and the server decides
        excess = len(encoded.encode()) - max_bytes
        cap = common_cap([size for _, size in units], excess)
        for path, size in units:
            if size <= cap:
                continue
            parent, key = _resolve(event, path)
            value = parent[key]
            text = value if isinstance(value, str) else encode_json(value)
            parent[key], _ = truncate_text(text, cap)
            cut_paths.add(path)
        encoded = encode_json(event)
    return event, encoded, len(cut_paths)


_MARKER_ROOM = 64
"""Bytes a cut field may grow by beyond its cap: the marker and JSON quoting."""


def common_cap(sizes: list[int], excess: int) -> int:
    """The largest size to which cutting every value over it saves at least ``excess`` bytes
    (plus room for each marker); never below `_MIN_KEEP`."""
    low, high = _MIN_KEEP, max(sizes)
    while low < high:  # the largest cap that still saves enough
        middle = (low + high + 1) // 2
        over = [size for size in sizes if size > middle]
        if sum(size - middle for size in over) >= excess + _MARKER_ROOM * len(over):
            low = middle
        else:
            high = middle - 1
    return low


def _cut_units(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[tuple[Any, ...], int]]:
    """(path, encoded size) of each value that may be cut: strings and scalars, and containers
    whose children are all small (a huge list of short strings is cut as a whole)."""
    children: Iterable[tuple[Any, Any]]
    if isinstance(value, dict):
        children = value.items()
    elif isinstance(value, list):
        children = enumerate(value)
    else:
        return [(path, len(encode_json(value).encode()))] if path else []
    units = [unit for key, child in children for unit in _cut_units(child, (*path, key))]
    total = sum(size for _, size in units)
    if path and units and max(size for _, size in units) * 4 < total:
        return [(path, total)]
    return units


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
