"""A fake OpenAI-compatible model server on loopback, with scripted replies and failures.

For tests, benchmarks and offline demos: real sockets, real HTTP/1.1 with chunked SSE, so
the service's httpx clients run exactly as against OpenRouter; nothing is patched. Run it
alone with `python -m chatbot_server.answers.fake_openai [PORT]` and point OPENROUTER_BASE_URL at
the address it prints.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict[str, object]:
        parsed: dict[str, object] = json.loads(self.body or b"{}")
        return parsed


@dataclass
class Failure:
    """A scripted failure for the next request: an HTTP status with a body and headers."""

    status: int
    body: str = '{"error": {"message": "scripted failure"}}'
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Reply:
    """A scripted streamed answer: text pieces sent one by one as SSE chunks."""

    pieces: list[str]
    first_byte_delay: float = 0.0
    piece_delay: float = 0.0
    # Close the connection after this many pieces, mid-body, without finishing the stream.
    cut_after: int | None = None
    # Send a chunk that is not JSON after this many pieces.
    malformed_after: int | None = None
    prompt_tokens: int = 120
    completion_tokens: int = 30


class FakeOpenAI:
    """Serves POST /v1/embeddings and streaming POST /v1/chat/completions; records every
    request; fails on demand; notices clients that hang up mid-stream."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.failures: list[Failure] = []
        self.replies: list[Reply] = []
        self.report_cost: float | None = None
        self.disconnects = 0
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def start(self, port: int = 0) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request = await _read_request(reader)
                if request is None:
                    return
                self.requests.append(request)
                if self.failures:
                    failure = self.failures.pop(0)
                    await _respond(writer, failure.status, failure.body, failure.headers)
                elif request.path == "/v1/embeddings":
                    await _respond(writer, 200, json.dumps(self._embeddings(request.json())))
                elif request.path == "/v1/chat/completions":
                    reply = self.replies.pop(0) if self.replies else Reply(["Answer [1]."])
                    await self._stream(writer, reply)
                    return
                else:
                    await _respond(writer, 404, '{"error": {"message": "no such path"}}')
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()

    async def _stream(self, writer: asyncio.StreamWriter, reply: Reply) -> None:
        await asyncio.sleep(reply.first_byte_delay)
        head = ("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                "transfer-encoding: chunked\r\n\r\n")  # fmt: skip
        writer.write(head.encode())
        try:
            await _chunk(writer, ": OPENROUTER PROCESSING\n\n")
            for index, piece in enumerate(reply.pieces):
                if index == reply.cut_after:
                    return
                if index == reply.malformed_after:
                    await _chunk(writer, "data: {not json\n\n")
                await asyncio.sleep(reply.piece_delay)
                delta = {"choices": [{"index": 0, "delta": {"content": piece}}]}
                await _chunk(writer, f"data: {json.dumps(delta)}\n\n")
            usage: dict[str, object] = {
                "prompt_tokens": reply.prompt_tokens,
                "completion_tokens": reply.completion_tokens,
            }
            if self.report_cost is not None:
                usage["cost"] = self.report_cost
            finish = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
            await _chunk(writer, f"data: {json.dumps(finish)}\n\n")
            await _chunk(writer, f"data: {json.dumps({'choices': [], 'usage': usage})}\n\n")
            await _chunk(writer, "data: [DONE]\n\n")
            writer.write(b"0\r\n\r\n")
            await writer.drain()
        except ConnectionError:
            self.disconnects += 1

    def _embeddings(self, payload: dict[str, object]) -> dict[str, object]:
        texts = payload["input"]
        assert isinstance(texts, list)
        dimensions = int(payload.get("dimensions", 1536))  # type: ignore[call-overload]
        tokens = sum(len(str(text).split()) for text in texts)
        usage: dict[str, object] = {"prompt_tokens": tokens, "total_tokens": tokens}
        if self.report_cost is not None:
            usage["cost"] = self.report_cost
        return {
            "object": "list",
            "model": payload["model"],
            "data": [
                {"object": "embedding", "index": i, "embedding": _vector(str(t), dimensions)}
                for i, t in enumerate(texts)
            ],
            "usage": usage,
        }


def _vector(text: str, dimensions: int) -> list[float]:
    """A deterministic vector per text: texts sharing words point in similar directions."""
    total = np.zeros(dimensions)
    for word in text.lower().split():
        seed = int.from_bytes(hashlib.sha256(word.encode()).digest()[:8], "big")
        total += np.random.default_rng(seed).standard_normal(dimensions)
    return [float(x) for x in total]


async def _read_request(reader: asyncio.StreamReader) -> Request | None:
    head = await reader.readuntil(b"\r\n\r\n") if not reader.at_eof() else b""
    if not head:
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return Request(method, path, headers, body)


async def _chunk(writer: asyncio.StreamWriter, text: str) -> None:
    data = text.encode()
    writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
    await writer.drain()
    if writer.transport.is_closing():
        raise ConnectionResetError("client went away")


async def _respond(
    writer: asyncio.StreamWriter, status: int, body: str, headers: dict[str, str] | None = None
) -> None:
    payload = body.encode()
    lines = [f"HTTP/1.1 {status} Status", "content-type: application/json",
             f"content-length: {len(payload)}"]  # fmt: skip
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + payload)
    await writer.drain()


async def _serve_forever(port: int) -> None:
    fake = FakeOpenAI()
    await fake.start(port)
    print(f"fake OpenAI-compatible server on {fake.base_url}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    import sys

    asyncio.run(_serve_forever(int(sys.argv[1]) if len(sys.argv) > 1 else 0))
