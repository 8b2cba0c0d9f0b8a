"""Record/replay of model calls (``--llm-cache``): keys, files, modes, and end to end against a
real HTTP server on 127.0.0.1 that counts what it is asked."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from textwrap import dedent
from typing import TYPE_CHECKING, Any

import pytest
from fake_openai import (
    FAKE_API_KEY,
    FakeOpenAI,
    RecordedRequest,
    Reply,
    answer,
    closed_url,
    error,
    fake_openai,
    malformed,
    openai_env,
)

from pytest_llmobs.llm import LLM
from pytest_llmobs.providers import ModelResponse, ProviderError, Usage, default_registry
from pytest_llmobs.providers.cache import (
    CacheError,
    CacheMissError,
    CacheMode,
    CacheWriteError,
    ResponseCache,
    cache_key,
)
from pytest_llmobs.providers.openai import OpenAIProvider
from pytest_llmobs.trace_model import Observation, Trace
from pytest_llmobs.tracing import activate

if TYPE_CHECKING:
    from conftest import Runs

__all__ = ["fake_openai", "openai_env"]  # fixtures used here, imported from fake_openai

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]


def response(text: str = "Paris") -> ModelResponse:
    return ModelResponse(
        text=text, model="gpt-4o-mini", usage=Usage(input=7, output=1), latency_ms=12.5, cost=1e-6
    )


def write_entry(cache: ResponseCache, answer_json: str) -> Path:
    """A hand-written entry for ("m", MESSAGES, {}): format, key and request as recorded, and
    ``answer_json`` (JSON text) as its response."""
    key = cache_key("m", MESSAGES, {})
    path = cache.path_for(key)
    path.parent.mkdir(parents=True)
    request = json.dumps({"model": "m", "messages": MESSAGES, "params": {}, "extra": None})
    path.write_text(
        f'{{"format": 1, "key": "{key}", "request": {request}, "response": {answer_json}}}'
    )
    return path


# --- keys and files -----------------------------------------------------------------------------


def test_the_key_covers_model_messages_params_and_extra() -> None:
    base = cache_key("openai:gpt-4o-mini", MESSAGES, {"temperature": 0})
    assert len(base) == 64 and int(base, 16) >= 0
    assert cache_key("openai:gpt-4o-mini", MESSAGES, {"temperature": 0}) == base
    assert cache_key("openai:gpt-4o-mini", list(MESSAGES), {"temperature": 0}) == base
    others = {
        cache_key("openai:gpt-4o", MESSAGES, {"temperature": 0}),
        cache_key("openai:gpt-4o-mini", [{"role": "user", "content": "Hi"}], {"temperature": 0}),
        cache_key("openai:gpt-4o-mini", MESSAGES, {"temperature": 1}),
        cache_key("openai:gpt-4o-mini", MESSAGES, {"temperature": 0}, {"repeat": 1}),
    }
    assert base not in others and len(others) == 4


def test_a_whole_number_written_as_a_float_is_the_same_request(tmp_path: Path) -> None:
    # (before: temperature=0 and temperature=0.0 were two entries: a prompt config moved from
    # JSON to TOML missed every recorded answer)
    assert cache_key("m", MESSAGES, {"temperature": 0.0, "stop": [1.0]}) == cache_key(
        "m", MESSAGES, {"temperature": 0, "stop": [1]}
    )
    assert cache_key("m", MESSAGES, {"temperature": 0.5}) != cache_key(
        "m", MESSAGES, {"temperature": 0}
    )
    # an entry recorded under the old key (the float as written) still replays
    old = ResponseCache(tmp_path, CacheMode.READWRITE)
    legacy = hashlib.sha256(
        json.dumps(
            {"model": "m", "messages": MESSAGES, "params": {"temperature": 0.0}, "extra": None},
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        ).encode()
    ).hexdigest()
    old.store(legacy, "m", MESSAGES, {"temperature": 0.0}, None, response("recorded"))
    reader = ResponseCache(tmp_path, CacheMode.READ)
    assert reader.lookup("m", MESSAGES, {"temperature": 0.0})[1].text == "recorded"  # type: ignore[union-attr]


def test_the_key_ignores_parameter_order() -> None:
    one = cache_key("m", MESSAGES, {"temperature": 0, "seed": 1})
    assert one == cache_key("m", MESSAGES, {"seed": 1, "temperature": 0})


def test_the_model_identity_has_no_server_key_or_timeouts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_API_KEY)
    registry = default_registry()
    identities = {
        LLM(registry.resolve(spec)).caller._identity
        for spec in ("gpt-4o-mini", "openai:gpt-4o-mini?timeout=3&max_retries=1")
    }
    assert identities == {"openai:gpt-4o-mini"}
    mocks = {
        LLM(registry.resolve(spec)).caller._identity
        for spec in (  # latency and errors do not change answers: one recording for all
            "mock-llm-v1?accuracy=0.5",
            "mock-llm-v1?accuracy=0.5&latency_ms=5&error_rate=0.1",
        )
    }
    assert mocks == {"mock-llm-v1?accuracy=0.5&seed=0"}
    assert LLM(registry.resolve("mock-llm-v1?accuracy=0.5&seed=2")).caller._identity not in mocks


def test_entries_are_pretty_json_under_a_two_level_fan_out(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "llm-cache", CacheMode.READWRITE)
    key = cache_key("m", MESSAGES, {"temperature": 0})

    path = cache.store(key, "m", MESSAGES, {"temperature": 0}, None, response())

    assert path == tmp_path / "llm-cache" / key[:2] / key[2:4] / f"{key}.json"
    text = path.read_text(encoding="utf-8")
    assert text.endswith("}\n") and "\n  " in text
    entry = json.loads(text)
    assert entry["key"] == key
    assert entry["request"] == {
        "model": "m",
        "messages": MESSAGES,
        "params": {"temperature": 0},
        "extra": None,
    }
    assert entry["response"]["text"] == "Paris"
    assert entry["response"]["usage"] == {"input": 7, "output": 1}
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind

    found, replayed = cache.lookup("m", MESSAGES, {"temperature": 0})
    assert found == key
    assert replayed is not None
    assert (replayed.text, replayed.model, replayed.usage, replayed.cost) == (
        "Paris",
        "gpt-4o-mini",
        Usage(7, 1),
        1e-6,
    )


def test_read_mode_miss_names_the_request(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path, CacheMode.READ)
    question = "Please answer this fairly long question about the capital city of France, thanks"
    messages = [{"role": "system", "content": "Be brief"}, {"role": "user", "content": question}]
    key = cache_key("openai:gpt-4o-mini", messages, {})

    with pytest.raises(CacheMissError) as excinfo:
        cache.lookup("openai:gpt-4o-mini", messages, {})

    assert str(excinfo.value) == (
        "llm cache miss (--llm-cache=read): openai:gpt-4o-mini, last user message "
        "'Please answer this fairly long question about the capital c…', "
        f"key {key[:16]}; expected {str(cache.path_for(key))!r}. "
        "Record it with --llm-cache=write or --llm-cache=readwrite."
    )
    assert not excinfo.value.retryable


def test_a_corrupt_entry_is_a_clear_error(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path, CacheMode.READ)
    path = write_entry(cache, '{"text": "x"}')
    with pytest.raises(CacheError) as excinfo:
        cache.lookup("m", MESSAGES, {})
    assert str(excinfo.value) == (
        f"llm cache: {str(path)!r} is not a valid cache entry (KeyError: 'model'); "
        "delete it or record it again with --llm-cache=write"
    )


@pytest.mark.parametrize(
    ("response", "reason"),
    [
        (
            '"usage": {"input": 1e999}',
            "ValueError: usage.input is inf; expected a whole number from 0 to 2**53",
        ),
        (
            '"usage": {"output": -3}',
            "ValueError: usage.output is -3; expected a whole number from 0 to 2**53",
        ),
        ('"usage": {"input": "12"}', "ValueError: usage.input is str '12', not a number"),
        ('"cost": NaN', "ValueError: cost is nan; expected a finite number >= 0"),
        ('"cost": -5', "ValueError: cost is -5; expected a finite number >= 0"),
    ],
)
def test_an_entry_with_impossible_figures_is_a_clear_error(
    tmp_path: Path, response: str, reason: str
) -> None:
    # replayed as they were, they would give negative totals or a JSON export with NaN in it
    cache = ResponseCache(tmp_path, CacheMode.READ)
    path = write_entry(cache, '{"text": "Paris", "model": "m", ' + response + "}")
    with pytest.raises(CacheError) as excinfo:
        cache.lookup("m", MESSAGES, {})
    assert str(excinfo.value) == (
        f"llm cache: {str(path)!r} is not a valid cache entry ({reason}); "
        "delete it or record it again with --llm-cache=write"
    )


def test_an_entry_nested_too_deep_to_read_is_a_clear_error(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path, CacheMode.READ)
    path = cache.path_for(cache_key("m", MESSAGES, {}))
    path.parent.mkdir(parents=True)
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(CacheError) as excinfo:
        cache.lookup("m", MESSAGES, {})
    assert str(excinfo.value).startswith(
        f"llm cache: {str(path)!r} is not a valid cache entry (RecursionError: "
    )


AGAIN = "record it again with --llm-cache=write (or restore the file)"
OTHER_KEY = cache_key("openai:gpt-4o-mini", [{"role": "user", "content": "Hi"}], {})


def edited(entry: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """``entry`` with ``changes`` (``request__messages=...`` sets entry["request"]["messages"];
    a value of `Ellipsis` removes the field)."""
    entry = json.loads(json.dumps(entry))
    for name, value in changes.items():
        *parents, field = name.split("__")
        target = entry
        for parent in parents:
            target = target[parent]
        if value is ...:
            del target[field]
        else:
            target[field] = value
    return entry


@pytest.mark.parametrize(
    ("changes", "found"),
    [
        ({"format": 2}, "has format 2; this version replays format 1 only"),
        ({"format": "1"}, "has format '1'; this version replays format 1 only"),
        ({"format": ...}, 'has no "format"; this version replays format 1 only'),
        ({"key": OTHER_KEY}, f"has \"key\" '{OTHER_KEY}', not the key in its file name"),
        ({"key": ...}, 'has no "key", not the key in its file name'),
        (
            {"request__messages": [{"role": "user", "content": "What is the capital of Peru?"}]},
            "does not match its key: its request.messages differs from the call's",
        ),
        (
            {"request__model": "openai:gpt-4o", "request__params": {"temperature": 1}},
            "does not match its key: its request.model and request.params differ from the call's",
        ),
        ({"request__extra": {"repeat": 1}}, "does not match its key: its request.extra differs"),
    ],
    ids=[
        "format-2",
        "format-text",
        "no-format",
        "other-key",
        "no-key",
        "messages",
        "model",
        "extra",
    ],
)
def test_an_entry_that_is_not_what_was_recorded_for_its_key_is_refused(
    tmp_path: Path, changes: dict[str, Any], found: str
) -> None:
    # (before: served silently: an edited request replayed the answer to another question)
    cache = ResponseCache(tmp_path, CacheMode.READWRITE)
    key = cache_key("openai:gpt-4o-mini", MESSAGES, {"temperature": 0})
    path = cache.store(key, "openai:gpt-4o-mini", MESSAGES, {"temperature": 0}, None, response())
    path.write_text(json.dumps(edited(json.loads(path.read_text()), **changes)))

    with pytest.raises(CacheError) as excinfo:
        cache.lookup("openai:gpt-4o-mini", MESSAGES, {"temperature": 0})

    message = str(excinfo.value)
    assert message.startswith(f"llm cache: {str(path)!r} {found}"), message
    assert message.endswith(AGAIN) and "\n" not in message
    assert not isinstance(excinfo.value, CacheMissError)


def test_an_entry_replays_as_reviewed_whatever_its_layout(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path, CacheMode.READ)
    params = {"temperature": 0.0, "stop": ["\n"]}
    key = cache_key("m", MESSAGES, params)
    path = ResponseCache(tmp_path, CacheMode.WRITE).store(
        key, "m", MESSAGES, params, None, response()
    )
    entry = json.loads(path.read_text())
    # a reviewer's edit of the answer replays; so does the same request written differently
    entry = edited(
        entry, response__text="Paris, France", request__params={"stop": ["\n"], "temperature": 0}
    )
    path.write_text(json.dumps(entry, indent=None, ensure_ascii=True))

    assert cache.lookup("m", MESSAGES, params)[1].text == "Paris, France"  # type: ignore[union-attr]


def test_an_entry_recorded_under_the_old_key_is_checked_as_that_key(tmp_path: Path) -> None:
    params = {"temperature": 0.0}
    legacy = hashlib.sha256(
        json.dumps(
            {"model": "m", "messages": MESSAGES, "params": params, "extra": None},
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        ).encode()
    ).hexdigest()
    path = ResponseCache(tmp_path, CacheMode.WRITE).store(
        legacy, "m", MESSAGES, params, None, response()
    )
    cache = ResponseCache(tmp_path, CacheMode.READ)
    assert cache.lookup("m", MESSAGES, params)[1] is not None
    path.write_text(json.dumps(edited(json.loads(path.read_text()), request__extra="edited")))

    with pytest.raises(CacheError) as excinfo:
        cache.lookup("m", MESSAGES, params)

    assert str(excinfo.value).startswith(
        f"llm cache: {str(path)!r} does not match its key: its request.extra differs"
    )


def test_a_request_part_whose_repr_changes_every_run_cannot_be_keyed() -> None:
    class Options:  # no __repr__: "<...Options object at 0x7f...>", another in every process
        pass

    assert cache_key("m", MESSAGES, {}, ("a", 1)) == cache_key("m", MESSAGES, {}, ["a", 1])
    with pytest.raises(CacheError) as excinfo:
        cache_key("m", MESSAGES, {}, {"options": Options()})
    message = str(excinfo.value)
    assert message.startswith("llm cache: cannot key a request holding <")
    assert message.endswith(
        "(Options): its repr holds a memory address, so no later run could replay it; pass "
        "JSON data (str, numbers, lists, dicts) as call parameters and cache_key_extra"
    )


def test_an_entry_that_is_not_utf8_is_a_clear_error(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path, CacheMode.READ)
    path = cache.path_for(cache_key("m", MESSAGES, {}))
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\xff\xfe{}")
    with pytest.raises(CacheError) as excinfo:
        cache.lookup("m", MESSAGES, {})
    message = str(excinfo.value)
    assert message.startswith(f"llm cache: {str(path)!r} is not a valid cache entry (not UTF-8")
    assert message.endswith("delete it or record it again with --llm-cache=write")


def test_write_mode_does_not_read(tmp_path: Path) -> None:
    ResponseCache(tmp_path, CacheMode.WRITE).store(
        cache_key("m", MESSAGES, {}), "m", MESSAGES, {}, None, response()
    )
    assert ResponseCache(tmp_path, CacheMode.WRITE).lookup("m", MESSAGES, {})[1] is None


def test_concurrent_writers_leave_a_whole_file(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path, CacheMode.WRITE)
    key = cache_key("m", MESSAGES, {})
    start = threading.Barrier(8)

    def write(n: int) -> None:
        start.wait()
        for i in range(25):
            cache.store(key, "m", MESSAGES, {}, None, response(f"answer {n}-{i} " + "x" * 2000))

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    (path,) = (p for p in tmp_path.rglob("*") if p.is_file())
    assert json.loads(path.read_text())["response"]["text"].startswith("answer ")


@pytest.mark.parametrize("mode", ["OFF", "Read", "readwrite"])
def test_modes_parse_case_insensitively(mode: str) -> None:
    assert CacheMode.parse(mode).value == mode.lower()


# --- the llm client against the fake server -----------------------------------------------------


@pytest.fixture
def model(fake_openai: FakeOpenAI) -> Iterator[OpenAIProvider]:
    provider = OpenAIProvider("gpt-4o-mini", api_key=FAKE_API_KEY, base_url=fake_openai.url)
    yield provider
    provider.close()


@pytest.fixture
def root() -> Iterator[Observation]:
    with activate(Observation(Trace("t"), "root")) as observation:
        yield observation


def generation_metadata(root: Observation) -> list[dict[str, Any]]:
    return [o.metadata for o in root.trace.observations if o.type == "generation"]


def test_write_then_read_replays_without_calling_the_server(
    tmp_path: Path, fake_openai: FakeOpenAI, model: OpenAIProvider, root: Observation
) -> None:
    fake_openai.queue(answer("Paris", prompt_tokens=9, completion_tokens=1))
    writer = LLM(model, cache=ResponseCache(tmp_path, CacheMode.WRITE))
    recorded = writer.generate(MESSAGES, temperature=0)
    assert fake_openai.request_count == 1

    reader = LLM(model, cache=ResponseCache(tmp_path, CacheMode.READ))
    replayed = reader.generate(MESSAGES, temperature=0)

    assert fake_openai.request_count == 1  # the replay asked nobody
    assert (replayed.text, replayed.usage, replayed.cost) == (
        recorded.text,
        recorded.usage,
        recorded.cost,
    )
    written, hit = generation_metadata(root)
    assert written["cache"] == "write"
    assert hit["cache"] == "hit"
    assert hit["cache_key"] == written["cache_key"]


def test_a_call_that_fails_in_write_mode_is_not_marked_written(
    tmp_path: Path, fake_openai: FakeOpenAI, root: Observation
) -> None:
    # (before: `cache: "write"` was set before the call, so a failed call said it was recorded)
    fake_openai.queue(error(400, "bad request"))
    provider = OpenAIProvider("gpt-4o-mini", api_key=FAKE_API_KEY, base_url=fake_openai.url)
    llm = LLM(provider, cache=ResponseCache(tmp_path, CacheMode.WRITE))
    with contextlib.closing(provider), pytest.raises(ProviderError):
        llm.generate(MESSAGES)

    (failed,) = generation_metadata(root)
    assert failed["cache"] == "miss"
    assert not list(tmp_path.rglob("*.json"))


def test_half_of_a_surrogate_pair_is_keyed_recorded_and_replayed_as_sent(
    tmp_path: Path, fake_openai: FakeOpenAI, model: OpenAIProvider, root: Observation
) -> None:
    # (before: UnicodeEncodeError hashing the key: a message holding an emoji cut in half, as
    # models write them, could not be recorded)
    cut = [{"role": "user", "content": "cut answer: \ud83d"}]
    recorded = LLM(model, cache=ResponseCache(tmp_path, CacheMode.WRITE)).generate(cut)

    replayed = LLM(model, cache=ResponseCache(tmp_path, CacheMode.READ)).generate(cut)

    assert recorded.text == replayed.text == "echo: cut answer: \ufffd"
    (entry,) = tmp_path.rglob("*.json")
    assert json.loads(entry.read_text("utf-8"))["request"]["messages"] == [
        {"role": "user", "content": "cut answer: \ufffd"}
    ]
    assert [m["cache"] for m in generation_metadata(root)] == ["write", "hit"]
    assert fake_openai.request_count == 1


def test_an_answer_without_usage_replays_as_unreported(
    tmp_path: Path, fake_openai: FakeOpenAI, model: OpenAIProvider, root: Observation
) -> None:
    # (before: the replay said usage.reported True and the cost stayed unknown: a contradiction)
    fake_openai.queue(malformed('{"choices": [{"message": {"content": "Paris"}}]}'))
    recorded = LLM(model, cache=ResponseCache(tmp_path, CacheMode.WRITE)).generate(MESSAGES)

    replayed = LLM(model, cache=ResponseCache(tmp_path, CacheMode.READ)).generate(MESSAGES)

    assert recorded.usage.reported is False
    assert (replayed.usage, replayed.cost) == (recorded.usage, None)
    assert generation_metadata(root)[1]["usage_reported"] is False


def test_a_tool_round_trip_and_content_parts_are_sent_as_given(
    fake_openai: FakeOpenAI, model: OpenAIProvider, root: Observation
) -> None:
    # (before: every message was cut to role and str(content): tool_calls, tool_call_id and
    # name were dropped, None became "None" and content parts their Python repr)
    fake_openai.queue(
        answer("", finish_reason="tool_calls", tool_calls=[("get_weather", '{"city": "Paris"}')])
    )
    fake_openai.queue(answer("Sunny in Paris."))
    llm = LLM(model)
    called = llm.generate(MESSAGES)
    conversation = [
        *MESSAGES,
        {"role": "assistant", "content": None, "tool_calls": called.tool_calls},
        {"role": "tool", "tool_call_id": "call_0", "name": "get_weather", "content": "sunny"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "And this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            ],
        },
    ]

    assert llm.generate(conversation).text == "Sunny in Paris."

    assert fake_openai.requests[1].json["messages"] == conversation
    _, second = (o for o in root.trace.observations if o.type == "generation")
    assert second.input == conversation


def test_tool_calls_reach_the_result_and_the_generation_and_are_replayed(
    tmp_path: Path, fake_openai: FakeOpenAI, model: OpenAIProvider, root: Observation
) -> None:
    fake_openai.queue(
        answer("", finish_reason="tool_calls", tool_calls=[("get_weather", '{"city": "Paris"}')])
    )
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]
    writer = LLM(model, cache=ResponseCache(tmp_path, CacheMode.WRITE))
    called = writer.generate(MESSAGES, tools=tools)
    replayed = LLM(model, cache=ResponseCache(tmp_path, CacheMode.READ)).generate(
        MESSAGES, tools=tools
    )

    expected_calls = [
        {
            "id": "call_0",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
        }
    ]
    assert called.tool_calls == replayed.tool_calls == expected_calls
    assert called.text == ""
    recorded, hit = (o for o in root.trace.observations if o.type == "generation")
    for generation in (recorded, hit):
        assert generation.output == {
            "role": "assistant",
            "content": None,
            "tool_calls": expected_calls,
        }
        assert generation.metadata["finish_reason"] == "tool_calls"
    assert fake_openai.request_count == 1
    plain = writer.generate("Something else?")
    assert plain.tool_calls is None and root.trace.observations[-1].output == plain.text


def test_read_mode_miss_errors_the_generation(
    tmp_path: Path, fake_openai: FakeOpenAI, model: OpenAIProvider, root: Observation
) -> None:
    llm = LLM(model, cache=ResponseCache(tmp_path, CacheMode.READ))
    with pytest.raises(CacheMissError, match=r"openai:gpt-4o-mini, last user message 'What is"):
        llm.generate(MESSAGES)
    (generation,) = (o for o in root.trace.observations if o.type == "generation")
    assert generation.level == "ERROR"
    assert generation.metadata["cache"] == "miss"
    assert fake_openai.request_count == 0


def test_an_answer_the_cache_cannot_keep_errors_the_test_but_is_recorded(
    tmp_path: Path, fake_openai: FakeOpenAI, model: OpenAIProvider, root: Observation
) -> None:
    # (before, the paid answer was lost: the generation had no output, usage or cost)
    fake_openai.queue(answer("Paris", prompt_tokens=9, completion_tokens=1))
    blocked = tmp_path / "cache"
    blocked.write_text("a file where the cache's directory should be", encoding="utf-8")
    llm = LLM(model, cache=ResponseCache(blocked, CacheMode.WRITE))

    with pytest.raises(CacheWriteError, match=r"cannot write .*; the answer is recorded in the "):
        llm.generate(MESSAGES)

    (generation,) = (o for o in root.trace.observations if o.type == "generation")
    assert generation.output == "Paris"
    assert generation.usage == {"input": 9, "output": 1, "total": 10}
    assert generation.level == "ERROR"
    assert generation.status_message.startswith("CacheWriteError: llm cache: cannot write")
    assert fake_openai.request_count == 1


def test_readwrite_calls_once_then_replays(
    tmp_path: Path, fake_openai: FakeOpenAI, model: OpenAIProvider, root: Observation
) -> None:
    llm = LLM(model, cache=ResponseCache(tmp_path, CacheMode.READWRITE))
    first = llm.generate(MESSAGES).text
    second = llm.generate(MESSAGES).text
    other = llm.generate("Something else?").text
    assert first == second == "echo: What is the capital of France?"
    assert other == "echo: Something else?"
    assert fake_openai.request_count == 2
    assert [m["cache"] for m in generation_metadata(root)] == ["miss", "hit", "miss"]


def test_each_repeat_gets_its_own_entry(
    tmp_path: Path, fake_openai: FakeOpenAI, model: OpenAIProvider, root: Observation
) -> None:
    count = iter(range(100))
    fake_openai.respond_with(lambda request: answer(f"sample {next(count)}"))
    llm = LLM(model, cache=ResponseCache(tmp_path, CacheMode.READWRITE))

    by_extra = [llm.generate(MESSAGES, cache_key_extra=i).text for i in (0, 1, 0, 1)]
    root.metadata["repeat"] = 2  # what the plugin sets on a repeated test's root span
    by_repeat = [llm.generate(MESSAGES).text for _ in range(2)]
    root.metadata["repeat"] = 0
    plain = llm.generate(MESSAGES).text

    assert by_extra == ["sample 0", "sample 1", "sample 0", "sample 1"]
    assert by_repeat == ["sample 2", "sample 2"]
    assert plain == "sample 3"
    assert fake_openai.request_count == 4
    entries = [json.loads(p.read_text()) for p in tmp_path.rglob("*.json")]
    assert sorted(json.dumps(e["request"]["extra"]) for e in entries) == [
        "0",
        "1",
        "null",
        '{"extra": null, "repeat": 2}',
    ]


def test_a_replay_is_priced_by_the_sessions_table(
    tmp_path: Path, fake_openai: FakeOpenAI, model: OpenAIProvider, root: Observation
) -> None:
    from pytest_llmobs.providers.pricing import Price, PriceTable

    fake_openai.queue(answer("Paris", prompt_tokens=1_000_000, completion_tokens=0))
    LLM(model, cache=ResponseCache(tmp_path, CacheMode.WRITE)).generate(MESSAGES)
    table = PriceTable().merged({"gpt-4o-mini": Price(1.0, 1.0)})
    replayed = LLM(model, cache=ResponseCache(tmp_path, CacheMode.READ), prices=table)
    assert replayed.generate(MESSAGES).cost == 1.0


# --- end to end ---------------------------------------------------------------------------------

SUITE = """\
    import pytest

    @pytest.mark.parametrize("country", ["France", "Japan", "Peru", "Chile"])
    def test_capital(llm, country):
        answer = llm.generate(f"What is the capital of {country}?", temperature=0)
        assert answer.text == f"capital:{country}"
    """


def capitals(request: RecordedRequest) -> Reply:
    country = str(request.messages[-1]["content"]).rsplit(" ", 1)[-1].rstrip("?")
    return answer(f"capital:{country}", prompt_tokens=8, completion_tokens=1)


def generations(item: dict[str, Any]) -> list[dict[str, Any]]:
    return [o for o in item["trace"]["observations"] if o["type"] == "generation"]


def test_record_locally_then_replay_in_ci_with_no_server(
    pytester: pytest.Pytester,
    runs: Runs,
    openai_env: FakeOpenAI,
    monkeypatch: pytest.MonkeyPatch,
    xdist_args: tuple[str, ...],
) -> None:
    openai_env.respond_with(capitals)
    pytester.makepyfile(dedent(SUITE))

    recording = pytester.runpytest("--llm-model=gpt-4o-mini", "--llm-cache=write", *xdist_args)

    recording.assert_outcomes(passed=4)
    assert openai_env.request_count == 4
    files = sorted((pytester.path / "llm-cache").rglob("*.json"))
    assert len(files) == 4
    assert all(json.loads(f.read_text())["request"]["model"] == "openai:gpt-4o-mini" for f in files)
    assert not [p for p in (pytester.path / "llm-cache").rglob("*.tmp")]

    monkeypatch.setenv("OPENAI_BASE_URL", closed_url())  # CI: nothing to call
    monkeypatch.delenv("OPENAI_API_KEY")  # ... and no key: replaying never needs one
    replay = pytester.runpytest("--llm-model=gpt-4o-mini", "--llm-cache=read", *xdist_args)

    replay.assert_outcomes(passed=4)
    assert openai_env.request_count == 4
    for item in runs.latest()["items"]:
        (generation,) = generations(item)
        assert generation["metadata"]["cache"] == "hit"
        assert generation["usage"] == {"input": 8, "output": 1, "total": 9}


def test_read_mode_miss_fails_the_test_naming_the_request(
    pytester: pytest.Pytester, runs: Runs, openai_env: FakeOpenAI
) -> None:
    pytester.makeini("[pytest]\nllm_cache = read\nllm_cache_dir = recorded\n")
    pytester.makepyfile(dedent(SUITE))

    result = pytester.runpytest("--llm-model=gpt-4o-mini", "-k", "France")

    result.assert_outcomes(failed=1, deselected=3)
    result.stdout.fnmatch_lines(
        [
            "E   *CacheMissError: llm cache miss (--llm-cache=read): openai:gpt-4o-mini, "
            "last user message 'What is the capital of France?', key *; expected "
            f"'{pytester.path}/recorded/*.json'. Record it with --llm-cache=write or "
            "--llm-cache=readwrite."
        ]
    )
    output = result.stdout.str()  # the traceback ends at the test's call, not in the plugin
    assert "providers/cache.py" not in output and "providers/calls.py" not in output
    assert openai_env.request_count == 0
    (generation,) = generations(runs.latest()["items"][0])
    assert generation["level"] == "ERROR"
    assert generation["metadata"]["cache"] == "miss"


def test_each_repeat_of_an_item_is_recorded_and_replayed_apart(
    pytester: pytest.Pytester,
    runs: Runs,
    openai_env: FakeOpenAI,
    capitals: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    samples = itertools.count()
    openai_env.respond_with(lambda request: answer(f"sample {next(samples)}"))
    pytester.makepyfile(
        dedent(
            """\
            import pytest

            @pytest.mark.llm_dataset("capitals", limit=2)
            def test_sample(item, llm):
                llm.generate(item.input, temperature=1)
            """
        )
    )
    args = ("--llm-model=gpt-4o-mini", "--llm-repeat=2")

    pytester.runpytest(*args, "--llm-cache=write").assert_outcomes(passed=4)
    recorded = {n: generations(i)[0]["output"] for n, i in runs.items(runs.latest()).items()}
    monkeypatch.setenv("OPENAI_BASE_URL", closed_url())
    pytester.runpytest(*args, "--llm-cache=read").assert_outcomes(passed=4)
    replayed = {n: generations(i)[0]["output"] for n, i in runs.items(runs.latest()).items()}

    assert openai_env.request_count == 4
    assert len(set(recorded.values())) == 4  # one answer per item and repeat
    assert replayed == recorded
    assert len(list((pytester.path / "llm-cache").rglob("*.json"))) == 4


def test_cache_dir_on_the_command_line_is_relative_to_the_invocation_dir(
    pytester: pytest.Pytester, openai_env: FakeOpenAI
) -> None:
    openai_env.respond_with(capitals)
    pytester.makepyfile(dedent(SUITE))
    result = pytester.runpytest(
        "--llm-model=gpt-4o-mini", "--llm-cache=readwrite", "--llm-cache-dir=rec/llm"
    )
    result.assert_outcomes(passed=4)
    assert len(list((pytester.path / "rec" / "llm").rglob("*.json"))) == 4
    assert not (pytester.path / "llm-cache").exists()


def test_a_cache_dir_that_is_a_file_is_a_usage_error_before_any_test_runs(
    pytester: pytest.Pytester,
) -> None:
    # (before: every test that called the model errored with the same message)
    pytester.makefile(".txt", notadir="")
    pytester.makepyfile(dedent(SUITE))

    result = pytester.runpytest(
        "--llm-model=mock-llm-v1", "--llm-cache=write", "--llm-cache-dir=notadir.txt/sub"
    )

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            f"ERROR: --llm-cache-dir: {str(pytester.path / 'notadir.txt' / 'sub')!r}: "
            f"{str(pytester.path / 'notadir.txt')!r} is a file; "
            "expected the cache's directory"
        ]
    )


def test_the_mock_model_records_and_replays_too(pytester: pytest.Pytester, runs: Runs) -> None:
    pytester.makepyfile(
        dedent(
            """\
            def test_capital(llm):
                assert llm.generate("What is the capital of Peru?").text == "Lima"
            """
        )
    )
    pytester.runpytest("--llm-cache=readwrite").assert_outcomes(passed=1)
    pytester.runpytest("--llm-cache=read").assert_outcomes(passed=1)
    (generation,) = generations(runs.latest()["items"][0])
    assert generation["metadata"]["cache"] == "hit"
    assert generation["cost"] == 0.0


def test_a_recorded_request_edited_by_hand_fails_its_test_naming_the_file(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        dedent(
            """\
            def test_capital(llm):
                assert llm.generate("What is the capital of Peru?").text == "Lima"
            """
        )
    )
    pytester.runpytest("--llm-cache=write").assert_outcomes(passed=1)
    (path,) = (pytester.path / "llm-cache").rglob("*.json")
    path.write_text(path.read_text().replace("capital of Peru", "capital of Chile"))

    result = pytester.runpytest("--llm-cache=read")

    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            f"E   *CacheError: llm cache: {str(path)!r} does not match its key: its "
            "request.messages differs from the call's (edited since it was recorded?), so it "
            f"would replay an answer to another request; {AGAIN}"
        ]
    )


def test_a_bad_cache_mode_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest("--llm-cache=replay")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: --llm-cache: 'replay' is not a valid mode."
            " Valid modes: off, read, write, readwrite."
        ]
    )


def test_cache_replay_benchmark_runs() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "cache_replay.py"), "--quick"],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    for row in ("mock-llm-v1 (no cache)", "cache write (record)", "cache replay (read)"):
        assert row in done.stdout, done.stdout
    assert "replayed from the cache: 50/50" in done.stdout


def test_without_a_key_only_read_mode_starts(
    pytester: pytest.Pytester, openai_env: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    pytester.makepyfile(dedent(SUITE))

    for mode in ("off", "write", "readwrite"):
        result = pytester.runpytest("--llm-model=gpt-4o-mini", f"--llm-cache={mode}")
        assert result.ret == pytest.ExitCode.USAGE_ERROR, mode
        result.stderr.fnmatch_lines(["*--llm-model: openai:gpt-4o-mini needs an API key*"])
    replay = pytester.runpytest("--llm-model=gpt-4o-mini", "--llm-cache=read", "-k", "France")
    replay.assert_outcomes(failed=1, deselected=3)  # a miss, named; nothing was called
    replay.stdout.fnmatch_lines(["*CacheMissError: llm cache miss (--llm-cache=read)*"])
    assert openai_env.request_count == 0


def test_an_entry_whose_text_is_not_a_string_is_a_clear_error(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path, CacheMode.READ)
    path = write_entry(cache, '{"text": null, "model": "m"}')  # never replayed as "None"
    with pytest.raises(CacheError) as excinfo:
        cache.lookup("m", MESSAGES, {})
    assert str(excinfo.value) == (
        f"llm cache: {str(path)!r} is not a valid cache entry (TypeError: text and model must be"
        " strings); delete it or record it again with --llm-cache=write"
    )
