"""Reading the times servers answer with (Langfuse's and Phoenix's ISO 8601 timestamps)."""

from __future__ import annotations

import datetime as dt
from typing import Any


def aware_instant(text: Any) -> dt.datetime | None:
    """An ISO 8601 time with ``Z`` or an offset as an aware datetime; ``None`` for anything else
    (no text, not a time, or a time without its zone, which cannot be ordered against ours)."""
    if not isinstance(text, str) or not text:
        return None
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo is not None else None
