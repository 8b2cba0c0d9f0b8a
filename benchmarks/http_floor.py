"""How close to the ideal a bare HTTP client gets against the benchmark's OpenAI-compatible server.

Run ``python benchmarks/http_floor.py [--items N] [--latency-ms L] [--concurrency C] [--rounds R]``.

The ``run_experiment`` target (issue 5) compares wall time with ``ceil(N / C) * L``. This script
shows what the client alone costs, with no tracing and no store: ``N`` chat completion requests,
``C`` at a time, to ``benchmarks/latency_server.py`` (its own process on 127.0.0.1, answering
after ``L`` ms), made by

- ``httpx``: one ``httpx.AsyncClient`` with ``C`` kept-alive connections (what most SDKs do);
- ``provider``: our OpenAI provider's ``acomplete`` (httpx, one leased client per concurrent call,
  as inside ``run_experiment``);
- ``aiohttp``: one ``aiohttp.ClientSession``, if aiohttp is installed (it is not a dependency);
- ``streams``: ``C`` asyncio stream connections writing a fixed request and reading the answer,
  the least a Python client can do: the server's and the event loop's own floor.

It prints the median wall time, its ratio to the ideal and the process CPU seconds per round.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import httpx
from experiment_concurrency import fake_openai_server, ideal_seconds, load_parser

from pytest_llmobs.providers import default_registry
from pytest_llmobs.providers.client_pool import shared_async_clients

BODY = {"model": "fake-model", "messages": [{"role": "user", "content": "Capital of France?"}]}

Client = Callable[[str, int, int], Awaitable[None]]


async def with_httpx(base_url: str, items: int, concurrency: int) -> None:
    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, verify=False) as client:

        async def one() -> None:
            async with gate:
                response = await client.post(f"{base_url}/chat/completions", json=BODY)
                response.json()

        await asyncio.gather(*(one() for _ in range(items)))


async def with_provider(base_url: str, items: int, concurrency: int) -> None:
    provider = default_registry().resolve("openai:fake-model")
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate:
            await provider.acomplete(BODY["messages"])

    async with shared_async_clients():
        await asyncio.gather(*(one() for _ in range(items)))


async def with_aiohttp(base_url: str, items: int, concurrency: int) -> None:
    import aiohttp

    gate = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one() -> None:
            async with gate, session.post(f"{base_url}/chat/completions", json=BODY) as answer:
                await answer.json()

        await asyncio.gather(*(one() for _ in range(items)))


async def with_streams(base_url: str, items: int, concurrency: int) -> None:
    url = urlsplit(base_url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    body = json.dumps(BODY).encode()
    request = (
        f"POST {url.path}/chat/completions HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(concurrency):
        idle.put_nowait(await asyncio.open_connection(host, port))

    async def one() -> None:
        reader, writer = await idle.get()
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        json.loads(await reader.readexactly(length))
        idle.put_nowait((reader, writer))

    await asyncio.gather(*(one() for _ in range(items)))
    while not idle.empty():
        _, writer = idle.get_nowait()
        writer.close()


def measure(client: Client, base_url: str, args: argparse.Namespace) -> tuple[float, float]:
    """Median wall seconds and median CPU seconds of ``args.rounds`` rounds after a warm-up."""
    walls, cpus = [], []
    for round_ in range(args.rounds + 1):
        wall, cpu = time.perf_counter(), time.process_time()
        asyncio.run(client(base_url, args.items, args.concurrency))
        if round_:
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def main(argv: list[str] | None = None) -> None:
    args = load_parser(__doc__.split("\n\n")[0]).parse_args(argv)
    ideal = ideal_seconds(args.items, args.concurrency, args.latency_ms)
    clients: dict[str, Client] = {"httpx": with_httpx, "provider": with_provider}
    if importlib.util.find_spec("aiohttp") is not None:
        clients["aiohttp"] = with_aiohttp
    clients["streams"] = with_streams
    print(
        f"{args.items} requests, {args.latency_ms:g} ms each, {args.concurrency} at a time, "
        f"ideal {ideal:.3f} s; median of {args.rounds} round(s) after a warm-up; "
        f"{os.cpu_count()} CPUs"
    )
    print(f"{'client':<9} {'wall s':>7} {'vs ideal':>9} {'CPU s':>6} {'CPU ms/request':>15}")
    with fake_openai_server(args.latency_ms / 1000.0) as env:
        os.environ.update(env)
        for name, client in clients.items():
            wall, cpu = measure(client, env["OPENAI_BASE_URL"], args)
            per_request = cpu / args.items * 1000
            print(f"{name:<9} {wall:>7.3f} {wall / ideal:>8.3f}x {cpu:>6.3f} {per_request:>15.2f}")


if __name__ == "__main__":
    main()
