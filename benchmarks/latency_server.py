"""An OpenAI-compatible chat completions server that adds nothing but a fixed latency.

Run ``python benchmarks/latency_server.py LATENCY_S``: it prints its base URL, answers every
``POST .../chat/completions`` after ``LATENCY_S`` seconds with the body `tests/fake_openai.py`
builds (same wire format, ``"Paris"``), and stops when its stdin closes.

`tests/fake_openai.py` serves each connection on a thread of ``http.server``; under 20 concurrent
keep-alive connections on a 2-core machine that costs a few milliseconds per request, which a
``run_experiment``-vs-ideal ratio would charge to the client. This server runs on one asyncio
loop, so a perfect client would see the ideal wall time.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from fake_openai import RecordedRequest, _completion, answer

_REPLY = answer("Paris", prompt_tokens=8, completion_tokens=1)
_counter = itertools.count(1)


async def _serve(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, latency_s: float
) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            request_line, *header_lines = head.decode("latin-1").split("\r\n")
            method, path, _ = request_line.split(" ", 2)
            headers = {
                name.strip().lower(): value.strip()
                for name, _, value in (line.partition(":") for line in header_lines if line)
            }
            body = await reader.readexactly(int(headers.get("content-length") or 0))
            await asyncio.sleep(latency_s)  # the model's latency
            request = RecordedRequest(method, path, headers, body)
            if method == "POST" and path.rstrip("/").endswith("/chat/completions"):
                status, payload = "200 OK", _completion(_REPLY, request, next(_counter))
            else:
                status, payload = "404 Not Found", {"error": {"message": f"no route {path}"}}
            data = json.dumps(payload).encode()
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(data)}\r\n\r\n".encode()
                + data
            )
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
        pass  # the client closed its connection, or the server is stopping
    finally:
        writer.close()


async def main(latency_s: float) -> None:
    server = await asyncio.start_server(
        lambda r, w: _serve(r, w, latency_s), "127.0.0.1", 0, backlog=512
    )
    host, port = server.sockets[0].getsockname()[:2]
    print(f"http://{host}:{port}/v1", flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)  # until the benchmark closes our stdin
    server.close()


if __name__ == "__main__":
    asyncio.run(main(float(sys.argv[1])))
