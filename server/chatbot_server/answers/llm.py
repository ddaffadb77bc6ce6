"""An OpenAI-compatible chat-completions client (OpenRouter and others), streaming over SSE.

Retries 429 and 5xx answers and connection failures before the first token, with
exponential backoff, jitter and the server's Retry-After; never after text has been sent on,
since the caller would see it twice.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx

from chatbot_server.answers.sse import SseParser
from chatbot_server.config import LlmSettings


class LlmError(Exception):
    """The model call failed. `kind`: rate_limited, unavailable, timeout or bad_response."""

    def __init__(self, kind: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.retry_after = retry_after


@dataclass(frozen=True)
class Accepted:
    """The provider took the request (HTTP 200): from here on it may charge for it."""


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class Finished:
    reason: str


@dataclass(frozen=True)
class ReportedUsage:
    prompt_tokens: int
    completion_tokens: int
    # USD, when the provider reports it (OpenRouter does).
    cost_usd: float | None


LlmEvent = Accepted | TextDelta | Finished | ReportedUsage


class LlmClient:
    def __init__(
        self, http: httpx.AsyncClient, settings: LlmSettings, backoff_seconds: float = 0.5
    ) -> None:
        self._http = http
        self._url = settings.base_url.rstrip("/") + "/chat/completions"
        self._headers = {"authorization": f"Bearer {settings.api_key}"}
        self._settings = settings
        self._backoff = backoff_seconds

    @property
    def max_output_tokens(self) -> int:
        """The `max_tokens` every request carries: the most a call can produce."""
        return self._settings.max_output_tokens

    async def stream(
        self,
        model: str,
        messages: list[dict[str, str]],
        *,
        temperature: float,
        deadline_seconds: float | None = None,
    ) -> AsyncIterator[LlmEvent]:
        """Text deltas, then the usage (when reported) and the finish reason."""
        total = self._settings.total_timeout_seconds
        budget = min(total, deadline_seconds or total)
        ends_at = time.monotonic() + budget
        payload = {
            "model": model,
            "messages": messages,
            "temperature": temperature,
            "max_tokens": self._settings.max_output_tokens,
            "stream": True,
            "stream_options": {"include_usage": True},
            "usage": {"include": True},
        }
        attempt = 0
        while True:
            sent_text = False
            try:
                async with asyncio.timeout_at(_loop_time(ends_at)):
                    async for event in self._attempt(payload, ends_at):
                        sent_text = sent_text or isinstance(event, TextDelta)
                        yield event
                return
            except TimeoutError:
                raise LlmError(
                    "timeout", f"the model did not answer within {budget:.0f} s"
                ) from None
            except LlmError as error:
                retryable = error.kind in ("rate_limited", "unavailable")
                if sent_text or not retryable or attempt >= self._settings.max_retries:
                    raise
                delay = error.retry_after
                if delay is None:
                    delay = self._backoff * 2**attempt * (1 + random.random())
                if time.monotonic() + delay >= ends_at:
                    raise
                attempt += 1
                await asyncio.sleep(delay)

    async def _attempt(self, payload: dict[str, object], ends_at: float) -> AsyncIterator[LlmEvent]:
        connect = self._settings.connect_timeout_seconds
        timeout = httpx.Timeout(
            connect=connect,
            read=self._settings.first_token_timeout_seconds,
            write=connect,
            pool=connect,
        )
        try:
            async with self._http.stream(
                "POST", self._url, json=payload, headers=self._headers, timeout=timeout
            ) as response:
                if response.status_code != 200:
                    raise _status_error(
                        response.status_code,
                        (await response.aread())[:300],
                        response.headers.get("retry-after"),
                    )
                yield Accepted()
                parser = SseParser()
                async for text in response.aiter_text():
                    for sse in parser.feed(text):
                        if sse.data.strip() == "[DONE]":
                            return
                        for event in _events(sse.data):
                            yield event
                raise LlmError("unavailable", "the model's stream ended before it was complete")
        except httpx.TimeoutException as error:
            raise LlmError("timeout", f"the model timed out ({type(error).__name__})") from None
        except (httpx.TransportError, httpx.RemoteProtocolError) as error:
            raise LlmError("unavailable", f"the connection to the model failed ({error})") from None


def _events(data: str) -> list[LlmEvent]:
    try:
        chunk = json.loads(data)
    except json.JSONDecodeError:
        raise LlmError(
            "bad_response", f"the model sent a malformed chunk: {data[:100]!r}"
        ) from None
    if not isinstance(chunk, dict):
        raise LlmError("bad_response", "the model sent a chunk that is not an object")
    if "error" in chunk:
        error = chunk["error"] if isinstance(chunk["error"], dict) else {"message": chunk["error"]}
        code = error.get("code")
        kind = "rate_limited" if code == 429 else "unavailable"
        raise LlmError(kind, f"the model reported an error: {error.get('message', error)}")
    events: list[LlmEvent] = []
    for choice in chunk.get("choices") or []:
        content = (choice.get("delta") or {}).get("content")
        if content:
            events.append(TextDelta(content))
        if choice.get("finish_reason"):
            events.append(Finished(str(choice["finish_reason"])))
    usage = chunk.get("usage")
    if isinstance(usage, dict):
        cost = usage.get("cost")
        events.append(
            ReportedUsage(
                prompt_tokens=int(usage.get("prompt_tokens") or 0),
                completion_tokens=int(usage.get("completion_tokens") or 0),
                cost_usd=float(cost) if isinstance(cost, int | float) else None,
            )
        )
    return events


def _status_error(status: int, body: bytes, retry_after: str | None) -> LlmError:
    detail = body.decode(errors="replace")
    if status == 429:
        return LlmError(
            "rate_limited",
            f"the model provider is rate limiting (HTTP 429): {detail}",
            _seconds(retry_after),
        )
    if status >= 500:
        return LlmError(
            "unavailable",
            f"the model provider failed (HTTP {status}): {detail}",
            _seconds(retry_after),
        )
    return LlmError(
        "bad_response", f"the model provider refused the request (HTTP {status}): {detail}"
    )


def _seconds(retry_after: str | None) -> float | None:
    try:
        return max(0.0, float(retry_after)) if retry_after else None
    except ValueError:
        return None


def _loop_time(monotonic_deadline: float) -> float:
    loop = asyncio.get_running_loop()
    return loop.time() + (monotonic_deadline - time.monotonic())
