"""Replay a stored body as the stream the API would have sent for it. No I/O.

Chat and completion streams are chunks ending in ``data: [DONE]``, with a usage-only last chunk when
the caller asked ``stream_options.include_usage``. Responses API streams are typed events from
``response.created`` to ``response.completed``. Recording a replayed stream gives back the body.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from semcache.openai._sse import DONE, encode

_MESSAGE_LATER = frozenset({"tool_calls", "function_call"})


def restream(kind: str, body: dict[str, Any], *, include_usage: bool) -> bytes:
    """The whole SSE body of a streamed hit."""
    if kind == "responses":
        events = [encode(e, e["type"]) for e in response_events(body)]
    else:
        chunks = chat_chunks(body) if kind == "chat" else completion_chunks(body)
        events = [encode(c) for c in _with_usage(chunks, body, include_usage)] + [DONE]
    return b"".join(events)


def _top(body: dict[str, Any], obj: str) -> dict[str, Any]:
    top = {k: v for k, v in body.items() if k not in ("choices", "usage", "object")}
    return {**top, "object": obj}


def _with_usage(
    chunks: list[dict[str, Any]], body: dict[str, Any], include_usage: bool
) -> Iterator[dict[str, Any]]:
    if not include_usage:
        yield from chunks
        return
    for chunk in chunks:
        yield {**chunk, "usage": None}
    yield {**_top(body, chunks[0]["object"]), "choices": [], "usage": body.get("usage")}


def chat_chunks(body: dict[str, Any]) -> list[dict[str, Any]]:
    top = _top(body, "chat.completion.chunk")
    chunks: list[dict[str, Any]] = []
    for choice in body["choices"]:
        index = choice.get("index", 0)
        message = choice.get("message") or {}
        first = {k: v for k, v in message.items() if k not in _MESSAGE_LATER}
        deltas = [{"role": "assistant", **first}]
        deltas += [{"tool_calls": [{"index": i, **call}]}
                   for i, call in enumerate(message.get("tool_calls") or ())]  # fmt: skip
        if message.get("function_call"):
            deltas.append({"function_call": message["function_call"]})
        logprobs = [choice.get("logprobs")] + [None] * len(deltas)
        finish = [None] * len(deltas) + [choice.get("finish_reason")]
        for delta, lp, fr in zip([*deltas, {}], logprobs, finish, strict=True):
            c = {"index": index, "delta": delta, "logprobs": lp, "finish_reason": fr}
            chunks.append({**top, "choices": [c]})
    return chunks


def completion_chunks(body: dict[str, Any]) -> list[dict[str, Any]]:
    top = _top(body, "text_completion")
    return [
        {**top, "choices": [{"index": c.get("index", 0), "text": c.get("text", ""),
                             "logprobs": c.get("logprobs"), "finish_reason": c.get("finish_reason")}]}
        for c in body["choices"]
    ]  # fmt: skip


def response_events(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The typed events of a Responses API stream that ends in ``body``."""
    start = {**body, "status": "in_progress", "output": [], "usage": None}
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": start},
        {"type": "response.in_progress", "response": start},
    ]
    for index, item in enumerate(body.get("output") or ()):
        events += _item_events(index, item)
    events.append({"type": "response.completed", "response": body})
    return [{**e, "sequence_number": n} for n, e in enumerate(events)]


def _item_events(index: int, item: dict[str, Any]) -> list[dict[str, Any]]:
    where = {"output_index": index}
    if item.get("type") == "message":
        added = {**item, "status": "in_progress", "content": []}
        parts = enumerate(item.get("content") or ())
        middle = [e for c, part in parts for e in _part(item, index, c, part)]
    elif item.get("type") == "function_call":
        added = {**item, "status": "in_progress", "arguments": ""}
        ids = {**where, "item_id": item.get("id")}
        args = item.get("arguments", "")
        middle = [
            {"type": "response.function_call_arguments.delta", **ids, "delta": args},
            {"type": "response.function_call_arguments.done", **ids, "arguments": args},
        ]
    else:
        added, middle = item, []
    return [
        {"type": "response.output_item.added", **where, "item": added},
        *middle,
        {"type": "response.output_item.done", **where, "item": item},
    ]


def _part(
    item: dict[str, Any], index: int, content_index: int, part: dict[str, Any]
) -> list[dict[str, Any]]:
    ids = {"item_id": item.get("id"), "output_index": index, "content_index": content_index}
    kind = part.get("type")
    if kind == "output_text":
        text = part.get("text", "")
        empty = {**part, "text": "", "annotations": []}
        logprobs = part.get("logprobs") or []
        middle = [
            {"type": "response.output_text.delta", **ids, "delta": text, "logprobs": logprobs},
            {"type": "response.output_text.done", **ids, "text": text, "logprobs": logprobs},
        ]
    elif kind == "refusal":
        refusal = part.get("refusal", "")
        empty = {**part, "refusal": ""}
        middle = [
            {"type": "response.refusal.delta", **ids, "delta": refusal},
            {"type": "response.refusal.done", **ids, "refusal": refusal},
        ]
    else:
        empty, middle = part, []
    return [
        {"type": "response.content_part.added", **ids, "part": empty},
        *middle,
        {"type": "response.content_part.done", **ids, "part": part},
    ]
