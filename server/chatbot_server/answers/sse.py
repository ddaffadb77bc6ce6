"""Server-sent events (the HTML spec's event-stream format), parsed incrementally."""

from __future__ import annotations

import re
from dataclasses import dataclass

_LINE_END = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True)
class SseEvent:
    event: str
    data: str


class SseParser:
    """Feed text as it arrives; get back the events completed so far. Comment lines (such as
    OpenRouter's ": OPENROUTER PROCESSING") are skipped; multi-line data is joined by newlines."""

    def __init__(self) -> None:
        self._pending = ""
        self._data: list[str] = []
        self._event = ""

    def feed(self, text: str) -> list[SseEvent]:
        self._pending += text
        # A trailing "\r" may be the first half of "\r\n": keep it until more text comes.
        held = "\r" if self._pending.endswith("\r") else ""
        lines = _LINE_END.split(self._pending[: len(self._pending) - len(held)])
        self._pending = lines.pop() + held
        events = []
        for line in lines:
            event = self._line(line)
            if event is not None:
                events.append(event)
        return events

    def _line(self, line: str) -> SseEvent | None:
        if line == "":
            if not self._data:
                self._event = ""
                return None
            event = SseEvent(self._event or "message", "\n".join(self._data))
            self._data, self._event = [], ""
            return event
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        return None
