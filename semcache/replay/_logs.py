"""Request logs for replay: plain JSONL and OpenAI Batch API files. No I/O beyond reading files.

Plain JSONL, one request a line::

    {"request": {...}, "response": {...}, "tenant": "acme", "timestamp": 1700000000, "group": "q17"}

Only ``request`` is required. Requests that share a ``group`` are equivalent: a semantic hit on an
entry of another group is a false hit.

OpenAI Batch API: the input file has ``{"custom_id", "method", "url", "body"}`` lines; the output
file (optional) has ``{"custom_id", "response": {"status_code", "body"}, "error"}`` lines matched by
``custom_id``. semcache also reads optional ``tenant``, ``group`` and ``timestamp`` fields on input
lines. A line of either shape may appear in either file.

A bad line is never dropped silently: it is returned as a :class:`BadLine` with its file and line
number, and the rest of the file is still read.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from semcache._errors import InvalidRequestError
from semcache.core.canonical import canonicalize


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One request of a log, with what the log says about it."""

    request: dict[str, Any]
    response: dict[str, Any] | None = None
    tenant: str | None = None
    group: str | None = None
    timestamp: float | str | None = None
    source: str = ""
    line: int = 0


@dataclass(frozen=True, slots=True)
class BadLine:
    """A line that could not be used, and why."""

    source: str
    line: int
    error: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.error}"


@dataclass(slots=True)
class Log:
    """The usable records of a log, in order, and the lines that were skipped."""

    records: list[LogRecord] = field(default_factory=list)
    bad_lines: list[BadLine] = field(default_factory=list)


class _Bad(ValueError):
    pass


def read_log(path: str | Path, *, responses: str | Path | None = None) -> Log:
    """Read a plain JSONL log or a Batch API input file (with its output file as ``responses``).

    Example::

        log = read_log("traffic.jsonl")
        for bad in log.bad_lines:
            print(bad)          # traffic.jsonl:17: not JSON: Expecting value
    """
    log = Log()
    outputs = _read_outputs(Path(responses), log) if responses is not None else {}
    seen_ids: set[str] = set()
    for number, obj in _objects(Path(path), log):
        try:
            log.records.append(_record(obj, outputs, seen_ids, str(path), number))
        except _Bad as exc:
            log.bad_lines.append(BadLine(str(path), number, str(exc)))
    return log


def _objects(path: Path, log: Log) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for every non-blank line; bad JSON goes to ``log.bad_lines``."""
    with path.open("r", encoding="utf-8", errors="replace") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except json.JSONDecodeError as exc:
                log.bad_lines.append(BadLine(str(path), number, f"not JSON: {exc.msg}"))
                continue
            if not isinstance(obj, dict):
                log.bad_lines.append(BadLine(str(path), number, "not a JSON object"))
                continue
            yield number, obj


def _read_outputs(path: Path, log: Log) -> dict[str, dict[str, Any] | None]:
    """custom_id → response body (None when the batch reported an error for it)."""
    out: dict[str, dict[str, Any] | None] = {}
    for number, obj in _objects(path, log):
        custom_id = obj.get("custom_id")
        if not isinstance(custom_id, str):
            log.bad_lines.append(BadLine(str(path), number, "output line has no string custom_id"))
            continue
        response = obj.get("response")
        body = response.get("body") if isinstance(response, dict) else None
        ok = isinstance(response, dict) and response.get("status_code", 200) == 200
        out[custom_id] = body if ok and isinstance(body, dict) else None
    return out


def _record(
    obj: dict[str, Any],
    outputs: dict[str, dict[str, Any] | None],
    seen_ids: set[str],
    source: str,
    number: int,
) -> LogRecord:
    if "custom_id" in obj:
        request, response = _batch_line(obj, outputs, seen_ids)
    elif "request" in obj:
        request, response = obj["request"], obj.get("response")
    else:
        raise _Bad("neither a 'request' line nor a batch line with 'custom_id' and 'body'")
    if not isinstance(request, dict):
        raise _Bad("'request' must be an object")
    if response is not None and not isinstance(response, dict):
        raise _Bad("'response' must be an object or null")
    try:
        canonicalize(request)
    except InvalidRequestError as exc:
        raise _Bad(f"invalid request: {exc}") from exc
    return LogRecord(
        request=request,
        response=response,
        tenant=_optional_str(obj, "tenant"),
        group=_optional_str(obj, "group"),
        timestamp=_timestamp(obj.get("timestamp")),
        source=source,
        line=number,
    )


def _batch_line(
    obj: dict[str, Any], outputs: dict[str, dict[str, Any] | None], seen_ids: set[str]
) -> tuple[Any, Any]:
    custom_id = obj["custom_id"]
    if not isinstance(custom_id, str):
        raise _Bad("custom_id must be a string")
    if custom_id in seen_ids:
        raise _Bad(f"duplicate custom_id {custom_id!r}")
    seen_ids.add(custom_id)
    if "body" not in obj:
        raise _Bad("batch line has no 'body'")
    return obj["body"], outputs.get(custom_id)


def _optional_str(obj: dict[str, Any], name: str) -> str | None:
    value = obj.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _Bad(f"'{name}' must be a string")
    return str(value)


def _timestamp(value: Any) -> float | str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise _Bad("'timestamp' must be a number or a string")
