"""Size limits, truncation markers, and the retrying HTTP sender (with httpx.MockTransport)."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from pytest_llmobs.exporters import ExportError
from pytest_llmobs.exporters.batching import (
    batches,
    fit_json,
    halves,
    json_batch,
    truncate_text,
)
from pytest_llmobs.exporters.http import (
    AuthError,
    HttpError,
    HttpSender,
    PayloadTooLarge,
    Redirected,
    Unavailable,
    retry_after_seconds,
)
from pytest_llmobs.exporters.http_options import HttpOptions

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_truncate_text_fits_the_limit_with_a_visible_marker() -> None:
    assert truncate_text("short", 100) == ("short", 0)
    text, cut = truncate_text("é" * 1000, 500)  # 2 bytes per character
    assert len(text.encode()) <= 500
    assert text.endswith(f"…[truncated {cut} chars]")
    assert text.removesuffix(f"…[truncated {cut} chars]") == "é" * (1000 - cut)


def test_fit_json_cuts_the_largest_field_only() -> None:
    event = {"id": "e1", "body": {"input": "a" * 5000, "output": "short", "tags": ["x"]}}
    fitted, encoded, cut = fit_json(event, max_bytes=2000)
    assert cut == 1 and len(encoded.encode()) <= 2000
    assert fitted["body"]["output"] == "short"
    assert "…[truncated " in fitted["body"]["input"]
    assert json.loads(encoded) == fitted


def test_fit_json_shares_the_budget_between_large_fields() -> None:
    big = {"input": "i" * 6000, "output": "o" * 6000, "metadata": {"blob": "m" * 6000}}
    event = {"id": "e1", "body": {**big, "name": "span"}}

    fitted, encoded, cut = fit_json(event, max_bytes=3000)

    assert cut == 3 and len(encoded.encode()) <= 3000
    body = fitted["body"]
    kept = [len(body["input"]), len(body["output"]), len(body["metadata"]["blob"])]
    assert min(kept) > 700 and max(kept) - min(kept) <= 2  # each about a third, none starved
    assert body["name"] == "span"


def test_fit_json_cuts_a_large_structure_as_json_text() -> None:
    event = {"body": {"output": [{"k": "v" * 10} for _ in range(2000)], "name": "n"}}
    fitted, encoded, cut = fit_json(event, max_bytes=5000)
    assert cut >= 1 and len(encoded.encode()) <= 5000
    assert isinstance(fitted["body"]["output"], str)
    assert fitted["body"]["output"].startswith('[{"k":"vvvv')


def test_batches_respect_bytes_and_count() -> None:
    sizes = [400, 400, 400, 3000, 10, 10]
    grouped = list(batches(sizes, lambda n: n, max_bytes=1000, max_count=2, overhead=0))
    assert grouped == [[400, 400], [400], [3000], [10, 10]]
    assert halves([1, 2, 3]) == [[1], [2, 3]]
    assert halves([1]) == []
    assert json.loads(json_batch(['{"a":1}', '{"b":2}'])) == {"batch": [{"a": 1}, {"b": 2}]}


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10.0


def sender(handler: object, *, attempts: int = 3) -> tuple[HttpSender, list[float]]:
    waits: list[float] = []
    options = HttpOptions(
        max_attempts=attempts,
        backoff_base=1.0,
        sleep=waits.append,
        transport=httpx.MockTransport(handler),  # type: ignore[arg-type]
    )
    return HttpSender("https://lf.example:8443", ("pk-x", "sk-SECRET"), options=options), waits


def test_5xx_and_429_are_retried_with_backoff_and_retry_after() -> None:
    answers = iter(
        [
            httpx.Response(503),
            httpx.Response(429, headers={"Retry-After": "4"}),
            httpx.Response(200, json={"ok": True}),
        ]
    )
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return next(answers)

    client, waits = sender(handler)
    answer = client.request("POST", "/api/public/ingestion", json_body=b"{}")
    assert answer.body == {"ok": True}
    assert 0.5 <= waits[0] <= 1.0 and waits[1] == 4.0  # equal jitter, then Retry-After
    assert seen[0].headers["authorization"].startswith("Basic ")
    assert (client.requests, client.bytes_sent) == (3, 6)


def test_exhausted_retries_open_the_circuit() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        raise httpx.ConnectError("refused", request=request)

    client, waits = sender(handler, attempts=2)
    refused = r"POST https://lf.example:8443/x: refused \(ConnectError\) after 2"
    with pytest.raises(Unavailable, match=refused):
        client.request("POST", "/x", json_body=b"{}")
    with pytest.raises(Unavailable, match="not sent"):
        client.request("POST", "/y", json_body=b"{}")
    assert len(calls) == 2 and len(waits) == 1


def test_errors_name_host_and_status_but_never_the_keys() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        status = {"/big": 413, "/auth": 401, "/bad": 400}[request.url.path]
        return httpx.Response(status, text=f"echo {request.headers['authorization']} sk-SECRET")

    client, _ = sender(handler)
    with pytest.raises(PayloadTooLarge, match="HTTP 413"):
        client.request("POST", "/big", json_body=b"{}")
    with pytest.raises(HttpError, match=r"POST https://lf\.example:8443/bad: HTTP 400") as bad:
        client.request("POST", "/bad", json_body=b"{}")
    with pytest.raises(AuthError, match="HTTP 401") as auth:
        client.request("GET", "/auth")
    for exc in (bad.value, auth.value):
        assert "sk-SECRET" not in str(exc) and "pk-x" not in str(exc)
        assert base64.b64encode(b"pk-x:sk-SECRET").decode() not in str(exc)
    with pytest.raises(Unavailable, match="answered HTTP 401"):
        client.request("GET", "/bad")


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_not_followed_and_names_the_base_url_to_set(status: int) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        where = f"https://eu.example{request.url.path}?token=sk-SECRET"  # (a query: not shown)
        return httpx.Response(status, headers={"Location": where}, text="<html>Moved</html>")

    client, waits = sender(handler)
    with pytest.raises(Redirected) as redirected:
        client.request("POST", "/api/public/ingestion?x=1", json_body=b"{}")
    # (before: "POST https://lf.example:8443/api/public/ingestion: HTTP 308 <html>Moved</html>")
    assert str(redirected.value) == (
        f"POST https://lf.example:8443/api/public/ingestion: HTTP {status}: the server "
        "redirects to https://eu.example/api/public/ingestion; set the base URL to "
        "https://eu.example"
    )
    assert redirected.value.status == status
    assert len(seen) == 1 and waits == []  # neither followed nor retried
    assert "sk-SECRET" not in str(redirected.value)


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        pytest.param(
            "/langfuse/api/public/x",
            "the server redirects to https://lf.example:8443/langfuse/api/public/x; set the base "
            "URL to https://lf.example:8443/langfuse",
            id="relative, under a prefix",
        ),
        pytest.param(
            "https://lf.example:8443/login",
            "the server redirects to https://lf.example:8443/login; check the base URL (uploads "
            "do not follow it)",
            id="not to the API path",
        ),
        pytest.param(
            "https://lf.example:8443/api/public/x/",
            "the server redirects to https://lf.example:8443/api/public/x/; check the base URL "
            "(uploads do not follow it)",
            id="a trailing slash: the same base",
        ),
        pytest.param(
            None,
            "a redirect without a Location; check the base URL (uploads do not follow redirects)",
            id="no Location",
        ),
    ],
)
def test_a_redirect_says_what_it_can_of_the_base_url(location: str | None, expected: str) -> None:
    headers = {"Location": location} if location else {}
    client, _ = sender(lambda request: httpx.Response(307, headers=headers))
    with pytest.raises(Redirected) as redirected:
        client.request("GET", "/api/public/x")
    where = "GET https://lf.example:8443/api/public/x"
    assert str(redirected.value) == f"{where}: HTTP 307: {expected}"


def test_accepted_statuses_are_returned() -> None:
    client, _ = sender(lambda request: httpx.Response(404, json={"message": "nope"}))
    answer = client.request("GET", "/api/public/v2/prompts/x", accept_statuses=[404])
    assert (answer.status, answer.body) == (404, {"message": "nope"})


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("LLMOBS_UPLOAD_TIMEOUT", "-3", "expected seconds > 0"),
        ("LLMOBS_UPLOAD_TIMEOUT", "0", "expected seconds > 0"),
        ("LLMOBS_UPLOAD_TIMEOUT", "soon", "expected seconds > 0"),
        ("LLMOBS_UPLOAD_MAX_ATTEMPTS", "0", "expected an integer >= 1"),
        ("LLMOBS_UPLOAD_MAX_ATTEMPTS", "2.5", "expected an integer >= 1"),
        ("LLMOBS_UPLOAD_BACKOFF", "nan", "expected seconds >= 0"),
    ],
)
def test_upload_settings_out_of_range_are_named(variable: str, value: str, expected: str) -> None:
    with pytest.raises(ExportError) as raised:
        HttpOptions.from_env({variable: value})
    assert str(raised.value) == f"{variable}={value!r}: {expected}"


def test_upload_settings_in_range_are_used() -> None:
    options = HttpOptions.from_env(
        {
            "LLMOBS_UPLOAD_TIMEOUT": "2.5",
            "LLMOBS_UPLOAD_MAX_ATTEMPTS": "1",
            "LLMOBS_UPLOAD_BACKOFF": "0",
        }
    )
    assert (options.timeout, options.max_attempts, options.backoff_base) == (2.5, 1, 0.0)


def test_upload_benchmark_runs_in_quick_mode() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "upload.py"), "--quick"],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    for label in ("observations", "scores", "wall time", "requests", "bytes sent", "peak memory"):
        assert label in done.stdout, done.stdout
    assert "pending 0" in done.stdout
