"""Record/replay of model calls: small JSON files, one per request, that can be committed.

Modes (``--llm-cache``, ini ``llm_cache``):

- ``off``: no cache.
- ``read``: replay recorded answers; a request with no recording is an error (`CacheMissError`),
  so a CI job never calls a real model by accident.
- ``write``: call the model every time and record (overwrite) the answer.
- ``readwrite``: replay when recorded, otherwise call the model and record.

A request's key is the sha256 of the canonical JSON of the model identity (model name and the
options that change answers; never a secret), the messages, the call parameters and an optional
``extra`` (the repeat index, or what the caller passes as ``cache_key_extra``). Its file is
``<dir>/<key[:2]>/<key[2:4]>/<key>.json``: pretty, sorted JSON holding the request and the
response. An entry replays only if it is one this version writes (``format``), its ``key`` is its
file's and its request still hashes to that key, so what replays is what a reviewer read in its
diff: a request edited by hand is an error, not an answer to another question. Writes go to a
temporary file in the same directory and are moved into place with `os.replace`, so concurrent
writers (xdist workers) never leave a partial file.

Exception hierarchy::

    ProviderError            (pytest_llmobs.providers.base)
     └─ CacheError           a cache file cannot be read, parsed or written
         └─ CacheMissError   ``read`` mode and the request was never recorded
"""

from __future__ import annotations

import enum
import hashlib
import json
import os
import re
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pytest_llmobs.providers.base import (
    Message,
    ModelResponse,
    Provider,
    ProviderError,
    Usage,
    cost_value,
    message_text,
    token_count,
)
from pytest_llmobs.serialize import has_lone_surrogate, without_lone_surrogates

__all__ = [
    "CacheError",
    "CacheMissError",
    "CacheMode",
    "ResponseCache",
    "cache_key",
    "model_identity",
]

FORMAT_VERSION = 1
_PREVIEW_CHARS = 60
_SKIPPED_METADATA = frozenset({"attempts", "cache"})


class CacheMode(enum.Enum):
    OFF = "off"
    READ = "read"
    WRITE = "write"
    READWRITE = "readwrite"

    @classmethod
    def parse(cls, value: str) -> CacheMode:
        """The mode named ``value``; anything else raises ValueError listing the choices."""
        try:
            return cls(value.strip().lower())
        except ValueError:
            choices = ", ".join(m.value for m in cls)
            raise ValueError(
                f"{value!r} is not a valid llm_cache mode; choose from {choices}"
            ) from None

    @property
    def reads(self) -> bool:
        return self in (CacheMode.READ, CacheMode.READWRITE)

    @property
    def writes(self) -> bool:
        return self in (CacheMode.WRITE, CacheMode.READWRITE)


class CacheError(ProviderError):
    """A cache file cannot be read or written."""


class CacheMissError(CacheError):
    """``--llm-cache=read`` and the request was never recorded."""


class CacheWriteError(CacheError):
    """The model answered but its answer could not be written to the cache. The answer travels
    with the error, so that the generation still records what was paid for."""

    def __init__(self, message: str, response: ModelResponse) -> None:
        super().__init__(message)
        self.response = response


def model_identity(provider: Provider) -> str:
    """What identifies ``provider``'s answers in a cache key: ``cache_identity`` when the
    provider has one (no secrets, no transport options), else its model and options."""
    identity = getattr(provider, "cache_identity", None)
    if isinstance(identity, str) and identity:
        return identity
    options = _canonical(dict(provider.options))
    return f"{provider.model}?{options}" if provider.options else provider.model


_MEMORY_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def _canonical(value: Any) -> str:
    """The JSON text a key hashes; half of a surrogate pair as U+FFFD, as it is sent and kept."""
    text = json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_stable_repr
    )
    return without_lone_surrogates(text) if has_lone_surrogate(text) else text


def _stable_repr(value: Any) -> str:
    """How a request part JSON cannot hold enters the key: its repr, unless that changes from
    one run to the next (a memory address), which would make the entry impossible to replay."""
    text = repr(value)
    if _MEMORY_ADDRESS.search(text):
        raise CacheError(
            f"llm cache: cannot key a request holding {text:.60} ({type(value).__name__}): its "
            "repr holds a memory address, so no later run could replay it; pass JSON data "
            "(str, numbers, lists, dicts) as call parameters and cache_key_extra"
        )
    return text


def cache_key(
    identity: str, messages: list[Message], params: Mapping[str, Any], extra: Any = None
) -> str:
    """The sha256 (hex) of the canonical JSON of one request; a whole-number float parameter
    counts as its integer (``temperature=0.0`` is ``temperature=0``, as the server reads it)."""
    return _legacy_key(identity, messages, _whole_numbers(dict(params)), extra)


def _legacy_key(
    identity: str, messages: list[Message], params: Mapping[str, Any], extra: Any = None
) -> str:
    """The key as versions before number normalising made it: entries they recorded replay."""
    request = {"model": identity, "messages": messages, "params": dict(params), "extra": extra}
    return hashlib.sha256(_canonical(request).encode("utf-8")).hexdigest()


def _whole_numbers(value: Any) -> Any:
    """``value`` with each finite whole-number float as its int (in dicts and lists)."""
    if type(value) is float:
        return int(value) if value.is_integer() else value
    if isinstance(value, dict):
        return {key: _whole_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_whole_numbers(item) for item in value]
    return value


Keyer = Callable[[str, list[Message], Mapping[str, Any], Any], str]


def _check_entry(path: Path, data: Any, key: str, keyed: Keyer, call: Mapping[str, Any]) -> None:
    """`CacheError` unless ``data`` is an entry of this format, for ``key`` (its ``key`` field
    and its request, hashed again), naming what does not match; a malformed request raises
    KeyError/TypeError for the caller's "not a valid cache entry"."""
    __tracebackhide__ = True
    where = f"llm cache: {str(path)!r}"
    again = "record it again with --llm-cache=write (or restore the file)"
    if not isinstance(data, dict):
        raise TypeError(f"the entry is a JSON {type(data).__name__}, not an object")
    version = data.get("format")
    if type(version) is not int or version != FORMAT_VERSION:
        found = f"format {_shown(version)}" if "format" in data else 'no "format"'
        raise CacheError(
            f"{where} has {found}; this version replays format {FORMAT_VERSION} only; {again}"
        )
    if data.get("key") != key:
        found = f'"key" {_shown(data["key"])}' if "key" in data else 'no "key"'
        raise CacheError(f"{where} has {found}, not the key in its file name; {again}")
    request = data["request"]
    parts = [request[part] for part in ("model", "messages", "params", "extra")]
    if not isinstance(parts[1], list) or not isinstance(parts[2], dict):
        raise TypeError("request.messages must be a list and request.params an object")
    if keyed(*parts) == key:
        return
    if keyed is cache_key:  # compared as the key compares them
        parts[2] = _whole_numbers(parts[2])
        call = {**call, "params": _whole_numbers(call["params"])}
    differ = [
        f"request.{name}"
        for name, recorded in zip(("model", "messages", "params", "extra"), parts, strict=True)
        if _canonical(recorded) != _canonical(call[name])
    ]
    raise CacheError(
        f"{where} does not match its key: its {' and '.join(differ) or 'request'} "
        f"{'differ' if len(differ) > 1 else 'differs'} from the call's (edited since it was "
        f"recorded?), so it would replay an answer to another request; {again}"
    )


def _shown(value: Any) -> str:
    """A value of a hand-edited field, for a one-line message."""
    text = " ".join(repr(value).split())
    return text if len(text) <= 70 else text[:69] + "…"


def _read_entry(path: Path) -> str | None:
    """The text of the cache entry at ``path``; None when there is none."""
    __tracebackhide__ = True
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CacheError(f"llm cache: cannot read {str(path)!r}: {exc}") from None
    except UnicodeDecodeError as exc:
        raise CacheError(
            f"llm cache: {str(path)!r} is not a valid cache entry (not UTF-8 text: {exc}); "
            "delete it or record it again with --llm-cache=write"
        ) from None


def _preview(messages: list[Message]) -> str:
    text = next((message_text(m) for m in reversed(messages) if m.get("role") == "user"), "")
    text = " ".join(text.split())
    return text if len(text) <= _PREVIEW_CHARS else text[: _PREVIEW_CHARS - 1] + "…"


class ResponseCache:
    """The cache directory in one mode; `lookup` and `store` one request at a time."""

    __slots__ = ("directory", "mode")

    def __init__(self, directory: Path, mode: CacheMode) -> None:
        self.directory = Path(directory)
        self.mode = mode

    def __repr__(self) -> str:
        return f"ResponseCache({str(self.directory)!r}, mode={self.mode.value!r})"

    def path_for(self, key: str) -> Path:
        return self.directory / key[:2] / key[2:4] / f"{key}.json"

    def lookup(
        self, identity: str, messages: list[Message], params: Mapping[str, Any], extra: Any = None
    ) -> tuple[str, ModelResponse | None]:
        """The request's key and its recorded response (None when not recorded or not read).

        In ``read`` mode a request that was never recorded raises `CacheMissError`.
        """
        __tracebackhide__ = True
        key = cache_key(identity, messages, params, extra)
        if not self.mode.reads:
            return key, None
        path = self.path_for(key)
        text = _read_entry(path)
        keyed = cache_key
        if text is None:  # recorded before keys normalised numbers (temperature=0.0)?
            legacy = _legacy_key(identity, messages, params, extra)
            if legacy != key:
                text = _read_entry(self.path_for(legacy))
                if text is not None:
                    key, path, keyed = legacy, self.path_for(legacy), _legacy_key
        if text is None:
            if self.mode is CacheMode.READ:
                raise CacheMissError(
                    f"llm cache miss (--llm-cache=read): {identity}, last user message "
                    f"{_preview(messages)!r}, key {key[:16]}; expected {str(path)!r}. "
                    "Record it with --llm-cache=write or --llm-cache=readwrite."
                )
            return key, None
        call = {"model": identity, "messages": messages, "params": params, "extra": extra}
        return key, self._response(path, text, key, keyed, call)

    @staticmethod
    def _response(
        path: Path, text: str, key: str, keyed: Keyer, call: Mapping[str, Any]
    ) -> ModelResponse:
        """The answer recorded at ``path`` for the request ``call`` keyed ``key`` by ``keyed``."""
        __tracebackhide__ = True
        try:
            data = json.loads(text)
            _check_entry(path, data, key, keyed, call)
            answer = data["response"]
            usage = answer.get("usage") or {}
            metadata = dict(answer.get("metadata") or {})
            tool_calls = answer.get("tool_calls")
            if tool_calls is not None and not (
                isinstance(tool_calls, list) and all(isinstance(c, dict) for c in tool_calls)
            ):
                raise TypeError(f"tool_calls is {type(tool_calls).__name__}, not a list of objects")
            if not isinstance(answer["text"], str) or not isinstance(answer["model"], str):
                raise TypeError("text and model must be strings")
            return ModelResponse(
                text=answer["text"],
                model=answer["model"],
                usage=Usage(
                    input=token_count(usage.get("input"), "usage.input"),
                    output=token_count(usage.get("output"), "usage.output"),
                    reported=metadata.get("usage_reported") is not False,
                ),
                latency_ms=0.0,  # the replay's own latency is measured by the caller
                cost=cost_value(answer.get("cost"), "cost"),
                metadata={**metadata, "recorded_latency_ms": answer.get("latency_ms")},
                tool_calls=tool_calls,
            )
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
            raise CacheError(
                f"llm cache: {str(path)!r} is not a valid cache entry ({type(exc).__name__}: "
                f"{exc}); delete it or record it again with --llm-cache=write"
            ) from None

    def store(
        self,
        key: str,
        identity: str,
        messages: list[Message],
        params: Mapping[str, Any],
        extra: Any,
        response: ModelResponse,
    ) -> Path:
        """Write the entry for ``key`` atomically; returns its path."""
        __tracebackhide__ = True
        path = self.path_for(key)
        entry = {
            "format": FORMAT_VERSION,
            "key": key,
            "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "request": {
                "model": identity,
                "messages": messages,
                "params": dict(params),
                "extra": extra,
            },
            "response": {
                "text": response.text,
                "model": response.model,
                "usage": {"input": response.usage.input, "output": response.usage.output},
                "cost": response.cost,
                "latency_ms": round(response.latency_ms, 3),
                "metadata": {
                    k: v for k, v in response.metadata.items() if k not in _SKIPPED_METADATA
                },
                **({"tool_calls": response.tool_calls} if response.tool_calls else {}),
            },
        }
        text = json.dumps(entry, indent=2, sort_keys=True, ensure_ascii=False, default=repr) + "\n"
        if has_lone_surrogate(text):  # (UTF-8 cannot carry one: U+FFFD, as the store keeps it)
            text = without_lone_surrogates(text)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{key[:8]}-", suffix=".tmp")
            try:
                with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
                    handle.write(text)
                os.chmod(temp, 0o644)  # mkstemp's 0600 is too private for a committed file
                os.replace(temp, path)
            except BaseException:
                Path(temp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise CacheWriteError(
                f"llm cache: cannot write {str(path)!r}: {exc}; the answer is recorded in the "
                "trace, not in the cache",
                response,
            ) from None
        return path
