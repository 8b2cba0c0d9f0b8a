"""The retry policy: backoff with full jitter, ``Retry-After``, bounded attempts, and the ``llm``
fixture retrying the mock model's transient errors (``--llm-max-retries``)."""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from textwrap import dedent
from typing import TYPE_CHECKING, Any

import pytest

from pytest_llmobs.llm import LLM
from pytest_llmobs.providers import ProviderError, default_registry
from pytest_llmobs.providers.retry import CallError, RetryPolicy, backoff_delay, parse_retry_after
from pytest_llmobs.trace_model import Observation, Trace
from pytest_llmobs.tracing import activate

if TYPE_CHECKING:
    from conftest import Runs

NOW = 1_700_000_000.0


class Waits:
    def __init__(self) -> None:
        self.requested: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.requested.append(seconds)

    async def asleep(self, seconds: float) -> None:
        self.requested.append(seconds)


class Flaky:
    """Raises the given errors in turn, then returns "ok"; counts its calls."""

    def __init__(self, *errors: ProviderError) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"

    async def acall(self) -> str:
        return self()


def transient(status: int = 500, retry_after: float | None = None) -> ProviderError:
    return ProviderError(f"{status} boom", status=status, retryable=True, retry_after=retry_after)


def policy(waits: Waits, **kwargs: Any) -> RetryPolicy:
    return RetryPolicy(rng=random.Random(3), sleep=waits.sleep, asleep=waits.asleep, **kwargs)


# --- Retry-After --------------------------------------------------------------------------------


def http_date(timestamp: float) -> str:
    return email.utils.formatdate(timestamp, usegmt=True)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "2"}, 2.0),
        ({"retry-after": "0.25"}, 0.25),
        ({"retry-after": " 7 "}, 7.0),
        ({"retry-after": http_date(NOW + 30)}, 30.0),
        ({"retry-after": http_date(NOW - 30)}, 0.0),
        ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),
        ({"retry-after-ms": "soon", "retry-after": "9"}, 9.0),
        ({"retry-after": "-1"}, None),
        ({"retry-after": "inf"}, None),
        ({"retry-after": "tomorrow"}, None),
        ({"retry-after": ""}, None),
        ({}, None),
    ],
)
def test_parse_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert parse_retry_after(headers, now=lambda: NOW) == expected


# --- waits --------------------------------------------------------------------------------------


def test_retry_after_is_honoured_up_to_its_cap() -> None:
    retry = RetryPolicy(max_retry_after=60.0)
    assert retry.wait(1, retry_after=2.5) == 2.5
    assert retry.wait(3, retry_after=0.0) == 0.0
    assert retry.wait(1, retry_after=3600.0) == 60.0


def test_backoff_is_full_jitter_under_a_doubling_cap() -> None:
    retry = RetryPolicy(backoff=0.5, max_backoff=3.0, rng=random.Random(1))
    for attempt, cap in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 3.0), (9, 3.0)]:
        waits = [retry.wait(attempt) for _ in range(200)]
        assert all(0.0 <= w <= cap for w in waits)
        assert max(waits) > cap * 0.8  # the jitter spans the range
    first = [RetryPolicy(rng=random.Random(5)).wait(n) for n in (1, 2, 3)]
    again = [RetryPolicy(rng=random.Random(5)).wait(n) for n in (1, 2, 3)]
    assert first == again


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_retries": -1}, "max_retries must be an integer >= 0; got -1"),
        ({"backoff": float("nan")}, "backoff must be a number >= 0; got nan"),
        ({"max_retry_after": -2.0}, "max_retry_after must be a number >= 0; got -2.0"),
    ],
)
def test_bad_policies_are_rejected(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as excinfo:
        RetryPolicy(**kwargs)
    assert str(excinfo.value) == message


# --- the loop -----------------------------------------------------------------------------------


def test_retryable_errors_are_retried_and_each_attempt_is_recorded() -> None:
    waits = Waits()
    flaky = Flaky(transient(429, retry_after=1.0), transient(500))

    result, attempts = policy(waits).call(flaky, ok_status=200)

    assert result == "ok"
    assert flaky.calls == 3
    assert waits.requested[0] == 1.0
    assert [a.to_dict() for a in attempts] == [
        {"attempt": 1, "status": 429, "error": "429 boom", "wait_s": 1.0},
        {"attempt": 2, "status": 500, "error": "500 boom", "wait_s": waits.requested[1]},
        {"attempt": 3, "status": 200, "error": None, "wait_s": None},
    ]


def test_retries_are_bounded_and_the_final_error_carries_the_attempts() -> None:
    waits = Waits()
    flaky = Flaky(*(transient() for _ in range(10)))

    with pytest.raises(CallError) as excinfo:
        policy(waits, max_retries=3).call(flaky)

    assert flaky.calls == 4
    assert len(waits.requested) == 3
    assert str(excinfo.value) == "500 boom after 4 attempts"
    assert excinfo.value.status == 500
    assert [a["attempt"] for a in excinfo.value.attempts] == [1, 2, 3, 4]
    assert excinfo.value.attempts[-1]["wait_s"] is None


def test_a_non_retryable_error_is_not_retried() -> None:
    waits = Waits()
    flaky = Flaky(ProviderError("400 nope", status=400))
    with pytest.raises(CallError) as excinfo:
        policy(waits).call(flaky)
    assert flaky.calls == 1
    assert waits.requested == []
    assert str(excinfo.value) == "400 nope"
    assert excinfo.value.attempts == [
        {"attempt": 1, "status": 400, "error": "400 nope", "wait_s": None}
    ]


def test_zero_retries_make_one_attempt() -> None:
    flaky = Flaky(transient())
    with pytest.raises(CallError):
        policy(Waits(), max_retries=0).call(flaky)
    assert flaky.calls == 1


def test_the_async_loop_waits_with_asleep() -> None:
    waits = Waits()
    flaky = Flaky(transient(503, retry_after=0.5))
    result, attempts = asyncio.run(policy(waits).acall(flaky.acall))
    assert (result, waits.requested, len(attempts)) == ("ok", [0.5], 2)


# --- the llm fixture client ---------------------------------------------------------------------


def test_llm_retries_the_mock_models_transient_errors() -> None:
    waits = Waits()
    mock = default_registry().resolve("mock-llm-v1?error_rate=0.5&seed=1")
    llm = LLM(mock, retry=policy(waits, max_retries=6))
    trace = Trace("t")
    with activate(Observation(trace, "root")):
        answers = [llm.generate(f"What is the capital of {c}?").text for c in ("France", "Peru")]
        answers += [asyncio.run(llm.agenerate("What is the capital of Japan?")).text]
    assert answers == ["Paris", "Lima", "Tokyo"]
    retried = [o for o in trace.observations if "attempts" in o.metadata]
    assert retried, "error_rate=0.5 should have needed a retry"
    for generation in retried:
        statuses = [a["status"] for a in generation.metadata["attempts"]]
        assert statuses[-1] is None and set(statuses[:-1]) <= {429, 500}
        assert generation.level == "DEFAULT"


@pytest.mark.parametrize("run", ["sync", "async"])
def test_a_failed_calls_latency_is_its_last_attempts_not_the_waits(run: str) -> None:
    class Failing:
        """Fails every call; notes when the last one began."""

        model = "failing"

        def __init__(self) -> None:
            self.options: dict[str, Any] = {}
            self.began: list[float] = []

        def complete(self, messages: Any, **params: Any) -> Any:
            self.began.append(time.perf_counter())
            raise transient(503)

        async def acomplete(self, messages: Any, **params: Any) -> Any:
            return self.complete(messages)

    provider = Failing()
    llm = LLM(provider, retry=policy(Waits(), max_retries=3))
    trace = Trace("t")
    with activate(Observation(trace, "root")), pytest.raises(CallError) as excinfo:
        if run == "sync":
            llm.generate("hi")
        else:
            asyncio.run(llm.agenerate("hi"))
    since_last_began = (time.perf_counter() - provider.began[-1]) * 1000.0

    (generation,) = [o for o in trace.observations if o.type == "generation"]
    latency = excinfo.value.latency_ms
    assert len(provider.began) == 4
    assert generation.metadata["latency_ms"] == latency
    assert latency is not None and 0.0 <= latency <= since_last_began  # the earlier tries left out


def test_llm_without_a_policy_does_not_retry() -> None:
    llm = LLM(default_registry().resolve("mock-llm-v1?error_rate=1"))
    with pytest.raises(ProviderError) as excinfo:
        llm.generate("hi")
    assert not isinstance(excinfo.value, CallError)


FLAKY_SUITE = """\
    import pytest

    COUNTRIES = ["France", "Japan", "Peru", "Kenya", "Chile", "Spain", "Italy", "Egypt",
                 "Norway", "Canada", "Mexico", "Ghana"]

    @pytest.mark.parametrize("country", COUNTRIES)
    def test_capital(llm, country):
        assert llm.generate(f"What is the capital of {country}?").text
    """


def generations(item: dict[str, Any]) -> list[dict[str, Any]]:
    return [o for o in item["trace"]["observations"] if o["type"] == "generation"]


def test_a_flaky_mock_model_runs_green_with_attempts_recorded(
    pytester: pytest.Pytester, runs: Runs
) -> None:
    pytester.makepyfile(dedent(FLAKY_SUITE))

    result = pytester.runpytest("--llm-model=mock-llm-v1?error_rate=0.3&seed=4")

    result.assert_outcomes(passed=12)
    recorded = [g for i in runs.latest()["items"] for g in generations(i)]
    retried = [g for g in recorded if "attempts" in g["metadata"]]
    assert retried
    for generation in retried:
        attempts = generation["metadata"]["attempts"]
        assert [a["attempt"] for a in attempts] == list(range(1, len(attempts) + 1))
        assert attempts[0]["error"].startswith("mock-llm-v1: ")
        assert all(a["wait_s"] is not None for a in attempts[:-1])
        assert attempts[-1] == {
            "attempt": len(attempts),
            "status": None,
            "error": None,
            "wait_s": None,
        }


def test_max_retries_zero_lets_transient_errors_fail_tests(
    pytester: pytest.Pytester, runs: Runs
) -> None:
    pytester.makeini("[pytest]\nllm_max_retries = 0\n")
    pytester.makepyfile(
        dedent(
            """\
            def test_capital(llm):
                llm.generate("What is the capital of France?")
            """
        )
    )

    result = pytester.runpytest("--llm-model=mock-llm-v1?error_rate=1")

    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["E   *CallError: mock-llm-v1: 429 Too Many Requests (simulated, error_rate=1)"]
    )
    (generation,) = generations(runs.latest()["items"][0])
    assert generation["level"] == "ERROR"
    assert len(generation["metadata"]["attempts"]) == 1


def test_the_final_mock_error_names_the_attempts(pytester: pytest.Pytester, runs: Runs) -> None:
    pytester.makepyfile(
        dedent(
            """\
            def test_capital(llm):
                llm.generate("What is the capital of France?")
            """
        )
    )

    result = pytester.runpytest("--llm-model=mock-llm-v1?error_rate=1", "--llm-max-retries=1")

    result.assert_outcomes(failed=1)
    message = "mock-llm-v1: 500 Internal Server Error (simulated, error_rate=1) after 2 attempts"
    result.stdout.fnmatch_lines([f"E   *CallError: {message}"])
    (generation,) = generations(runs.latest()["items"][0])
    assert generation["status_message"] == f"CallError: {message}"
    assert [a["status"] for a in generation["metadata"]["attempts"]] == [429, 500]


@pytest.mark.parametrize("value", ["-1", "two", "1.5"])
def test_bad_max_retries_is_a_usage_error(pytester: pytest.Pytester, value: str) -> None:
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest(f"--llm-max-retries={value}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"ERROR: --llm-max-retries must be an integer >= 0; got {value!r}"]
    )


def test_backoff_grows_to_its_ceiling_with_full_or_equal_jitter() -> None:
    def delays(retry: int, *, equal: bool) -> list[float]:
        rng = random.Random(0)
        return [
            backoff_delay(
                retry, base=0.5, ceiling=4.0, rng=rng, retry_after_max=60.0, equal_jitter=equal
            )
            for _ in range(200)
        ]

    for retry, cap in ((1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (9, 4.0)):
        full, equal = delays(retry, equal=False), delays(retry, equal=True)
        assert 0.0 <= min(full) < cap / 4 and cap * 3 / 4 < max(full) <= cap
        assert cap / 2 <= min(equal) and max(equal) <= cap  # never retries at once


def test_retry_after_wins_over_backoff_and_is_capped() -> None:
    def delay(retry_after: float) -> float:
        return backoff_delay(
            1,
            base=0.5,
            ceiling=4.0,
            rng=random.Random(0),
            retry_after=retry_after,
            retry_after_max=60.0,
        )

    assert (delay(12.0), delay(600.0), delay(-3.0)) == (12.0, 60.0, 0.0)
