"""Server-sent events for the OpenAI wrapper: an incremental parser, an encoder and the recorder that
watches a streamed miss go by. No I/O.

A recorded stream is complete at its terminal event (``data: [DONE]`` for chat and completions,
``response.completed`` for the Responses API), never merely at EOF.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from semcache.openai._assemble import Assembler, assembler

DONE = b"data: [DONE]\n\n"
_BOUNDARY = re.compile(rb"\r\n\r\n|\n\n|\r\r")


@dataclass(frozen=True, slots=True)
class Event:
    """One server-sent event: its raw bytes (separator included), its type and its data."""

    raw: bytes
    event: str | None
    data: str

    def json(self) -> Any:
        """The event's data decoded as JSON, or None when it is not JSON (``[DONE]``)."""
        try:
            return json.loads(self.data)
        except ValueError:
            return None


class Parser:
    """Cuts a byte stream into events as their blank-line separators arrive."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, chunk: bytes) -> list[Event]:
        self._buffer += chunk
        events: list[Event] = []
        while match := _BOUNDARY.search(self._buffer):
            raw = bytes(self._buffer[: match.end()])
            del self._buffer[: match.end()]
            events.append(_parse(raw))
        return events

    def rest(self) -> bytes:
        """Bytes after the last complete event (a stream cut mid-event)."""
        rest = bytes(self._buffer)
        self._buffer.clear()
        return rest


def _parse(raw: bytes) -> Event:
    name: str | None = None
    data: list[str] = []
    for line in raw.decode("utf-8", "replace").splitlines():
        if not line or line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            name = value
        elif field == "data":
            data.append(value)
    return Event(raw=raw, event=name, data="\n".join(data))


def encode(data: Any, event: str | None = None) -> bytes:
    """One server-sent event carrying JSON ``data``."""
    head = f"event: {event}\n" if event else ""
    body = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return f"{head}data: {body}\n\n".encode()


class Recorder:
    """Watches a streamed miss: passes its events on and assembles the equivalent non-streamed body.

    Args:
        kind: ``"chat"``, ``"completion"`` or ``"responses"``.
        drop_usage: drop the usage-only chunk (``choices: []``) the wrapper asked for itself, so a
            caller who did not ask for usage never sees it.
    """

    def __init__(self, kind: str, *, drop_usage: bool) -> None:
        self.kind = kind
        self.drop_usage = drop_usage
        self._parser = Parser()
        self._assembler: Assembler = assembler(kind)

    def feed(self, chunk: bytes) -> tuple[bytes, dict[str, Any] | None]:
        """Bytes to pass on now, and the assembled body when this chunk held the terminal event."""
        out = bytearray()
        body: dict[str, Any] | None = None
        for event in self._parser.feed(chunk):
            data = event.json()
            if event.data.startswith("[DONE]") or _is_terminal(event, data):
                body = self._assembler.finish(data)
            elif isinstance(data, dict):
                self._assembler.add(data)
                if self.drop_usage and _is_usage_chunk(data):
                    continue
            out += event.raw
        return bytes(out), body

    def rest(self) -> bytes:
        return self._parser.rest()


def _is_terminal(event: Event, data: Any) -> bool:
    kind = event.event or (data.get("type") if isinstance(data, dict) else None)
    return kind == "response.completed"


def _is_usage_chunk(data: dict[str, Any]) -> bool:
    return data.get("choices") == [] and data.get("usage") is not None
