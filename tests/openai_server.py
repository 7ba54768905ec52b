"""A local OpenAI-compatible server for tests: the real ``openai`` client talks to it on 127.0.0.1.

It answers chat completions, completions, responses (streamed or not) and embeddings
deterministically, records every request it gets, and misbehaves on demand:

- the last user text decides the answer: ``"echo: <text>"``; ``[tool]`` asks for a tool call,
  ``[refuse]`` for a refusal, ``[cut]`` cuts a stream before its terminal event, ``[slow]`` waits
  ``slow_seconds`` before answering, ``[fail]`` answers HTTP 500 (after ``[slow]``'s wait),
  ``[gate]`` streams one chunk and then waits for ``gate``;
- :meth:`FakeOpenAI.fail_next` answers the next requests with an error status.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

TOOL_CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
}
REFUSAL = "I can't help with that."


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    body: Any
    headers: dict[str, str]


class FakeOpenAI:
    """The server; ``with FakeOpenAI() as server: openai.OpenAI(base_url=server.base_url)``."""

    def __init__(self, *, slow_seconds: float = 2.0) -> None:
        self.received: list[Received] = []
        self.embedded: list[str] = []
        self.gate = threading.Event()
        self.slow_seconds = slow_seconds
        self._failures: deque[int] = deque()
        self._lock = threading.Lock()
        handler = type("Handler", (_Handler,), {"fake": self})
        ThreadingHTTPServer.request_queue_size = 128
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._http.daemon_threads = True
        self._thread = threading.Thread(target=self._http.serve_forever, args=(0.05,), daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._http.server_address[1]}/v1"

    def __enter__(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.gate.set()
        self._http.shutdown()
        self._http.server_close()

    def calls(self, endpoint: str) -> int:
        """How many requests reached ``/v1/<endpoint>``."""
        return sum(1 for r in self.received if r.path == f"/v1/{endpoint}")

    def last(self, endpoint: str) -> Received:
        return [r for r in self.received if r.path == f"/v1/{endpoint}"][-1]

    def fail_next(self, status: int, times: int = 1) -> None:
        with self._lock:
            self._failures.extend([status] * times)

    def _record(self, received: Received) -> int | None:
        with self._lock:
            self.received.append(received)
            return self._failures.popleft() if self._failures else None


class _Handler(BaseHTTPRequestHandler):
    fake: FakeOpenAI
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        self.fake._record(Received("GET", self.path, None, dict(self.headers)))
        if self.path == "/v1/models":
            self._json(
                200,
                {
                    "object": "list",
                    "data": [
                        {"id": "fake-model", "object": "model", "created": 0, "owned_by": "test"}
                    ],
                },
            )
        else:
            self._json(404, {"error": {"message": "not found", "type": "invalid_request_error"}})

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        failure = self.fake._record(Received("POST", self.path, body, dict(self.headers)))
        if failure is not None:
            error = {"message": f"injected {failure}", "type": "server_error", "code": None}
            return self._json(failure, {"error": error}, {"retry-after-ms": "1"})
        if self.path == "/v1/embeddings":
            return self._json(200, self._embeddings(body))
        text = _prompt(body)
        if "[slow]" in text:
            time.sleep(self.fake.slow_seconds)
        if "[fail]" in text:
            error = {"message": "injected by [fail]", "type": "server_error", "code": None}
            return self._json(500, {"error": error})
        route = {
            "/v1/chat/completions": _chat,
            "/v1/completions": _completion,
            "/v1/responses": _response,
        }.get(self.path)
        if route is None:
            return self._json(404, {"error": {"message": "no such route", "type": "invalid"}})
        answer = route(body, text)
        if body.get("stream"):
            return self._stream(_events(self.path, body, answer, text), text)
        return self._json(200, answer)

    def _embeddings(self, body: dict[str, Any]) -> dict[str, Any]:
        items = [body["input"]] if isinstance(body["input"], str) else body["input"]
        texts = [t if isinstance(t, str) else json.dumps(t) for t in items]  # or token ids
        self.fake.embedded.extend(texts)
        dims = int(body.get("dimensions") or 8)
        data = []
        for i, text in enumerate(texts):
            vector = vector_for(text, dims)
            value: Any = (
                base64.b64encode(vector.tobytes()).decode()
                if body.get("encoding_format") == "base64" else vector.tolist()
            )  # fmt: skip
            data.append({"object": "embedding", "index": i, "embedding": value})
        tokens = sum(len(t.split()) for t in texts)
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        return {"object": "list", "data": data, "model": body["model"], "usage": usage}

    def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.send_header("x-request-id", f"req_{time.monotonic_ns()}")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, events: Iterator[bytes], text: str) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        for n, event in enumerate(events):
            if n == 2 and "[gate]" in text and not self.fake.gate.wait(10):
                event = event.replace(b"echo", b"TIMEOUT")
            self._chunk(event)
        self._chunk(b"")

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


def vector_for(text: str, dims: int = 8) -> np.ndarray:
    """The fake model's embedding of a text (float32, deterministic)."""
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    return np.random.default_rng(seed).standard_normal(dims).astype("<f4")


# --- answers --------------------------------------------------------------------------------------


def _prompt(body: dict[str, Any]) -> str:
    if "messages" in body:
        users = [m for m in body["messages"] if m.get("role") == "user"]
        return _text(users[-1].get("content")) if users else ""
    if "prompt" in body:
        return str(body["prompt"])
    return _text(body.get("input"))


def _text(content: Any) -> str:
    if isinstance(content, list):
        return " ".join(p if isinstance(p, str) else _text(p.get("text") or p.get("content"))
                        for p in content)  # fmt: skip
    return str(content or "")


def _usage(text: str, answer: str) -> dict[str, int]:
    prompt, completion = len(text.split()) + 3, len(answer.split())
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion}  # fmt: skip


def _chat(body: dict[str, Any], text: str) -> dict[str, Any]:
    choices = []
    for i in range(int(body.get("n") or 1)):
        message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None}
        finish = "stop"
        if "[tool]" in text:
            message["tool_calls"], finish = [TOOL_CALL], "tool_calls"
        elif "[refuse]" in text:
            message["refusal"] = REFUSAL
        else:
            message["content"] = f"echo: {text}" + (f" #{i}" if i else "")
        choices.append({"index": i, "message": message, "logprobs": None, "finish_reason": finish})
    return {
        "id": f"chatcmpl-{time.monotonic_ns()}", "object": "chat.completion", "created": 1700000000,
        "model": body["model"], "system_fingerprint": "fp_fake", "choices": choices,
        "usage": _usage(text, f"echo: {text}"),
    }  # fmt: skip


def _completion(body: dict[str, Any], text: str) -> dict[str, Any]:
    choice = {"index": 0, "text": f"echo: {text}", "logprobs": None, "finish_reason": "stop"}
    return {
        "id": f"cmpl-{time.monotonic_ns()}", "object": "text_completion", "created": 1700000000,
        "model": body["model"], "choices": [choice], "usage": _usage(text, choice["text"]),
    }  # fmt: skip


def _response(body: dict[str, Any], text: str) -> dict[str, Any]:
    if "[tool]" in text:
        item = {"id": "fc_1", "type": "function_call", "call_id": "call_1", "status": "completed",
                "name": "get_weather", "arguments": '{"city": "Paris"}'}  # fmt: skip
    else:
        part = {"type": "output_text", "text": f"echo: {text}", "annotations": []}
        item = {"id": "msg_1", "type": "message", "role": "assistant", "status": "completed",
                "content": [part]}  # fmt: skip
    usage = _usage(text, f"echo: {text}")
    return {
        "id": f"resp_{time.monotonic_ns()}", "object": "response", "created_at": 1700000000,
        "status": "completed", "model": body["model"], "output": [item], "error": None,
        "incomplete_details": None, "instructions": None, "metadata": {},
        "parallel_tool_calls": True, "temperature": 1.0, "tool_choice": "auto", "tools": [],
        "top_p": 1.0,
        "usage": {"input_tokens": usage["prompt_tokens"], "output_tokens": usage["completion_tokens"],
                  "total_tokens": usage["total_tokens"],
                  "input_tokens_details": {"cached_tokens": 0},
                  "output_tokens_details": {"reasoning_tokens": 0}},
    }  # fmt: skip


# --- streams --------------------------------------------------------------------------------------


def _sse(data: Any, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data)}\n\n".encode()


def _pieces(text: str) -> list[str]:
    words = text.split(" ")
    return [w if i == 0 else " " + w for i, w in enumerate(words)]


def _events(path: str, body: dict[str, Any], answer: dict[str, Any], text: str) -> Iterator[bytes]:
    cut = "[cut]" in text
    if path == "/v1/responses":
        yield from _response_events(answer, cut)
        return
    usage = (body.get("stream_options") or {}).get("include_usage") is True
    chunks = _chat_chunks(answer) if path == "/v1/chat/completions" else _completion_chunks(answer)
    for n, chunk in enumerate(chunks):
        if cut and n == len(chunks) - 1:
            return
        yield _sse({**chunk, "usage": None} if usage else chunk)
    if usage:
        yield _sse({**_top(answer, chunks[0]["object"]), "choices": [], "usage": answer["usage"]})
    yield b"data: [DONE]\n\n"


def _top(answer: dict[str, Any], obj: str) -> dict[str, Any]:
    return {"id": answer["id"], "object": obj, "created": answer["created"], "model": answer["model"],
            "system_fingerprint": answer.get("system_fingerprint")}  # fmt: skip


def _chat_chunks(answer: dict[str, Any]) -> list[dict[str, Any]]:
    top, chunks = _top(answer, "chat.completion.chunk"), []

    def chunk(index: int, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
        return {**top, "choices": [choice]}

    for choice in answer["choices"]:
        i, message = choice["index"], choice["message"]
        chunks.append(chunk(i, {"role": "assistant", "content": "" if message["content"] else None,
                                "refusal": None}))  # fmt: skip
        for piece in _pieces(message["content"] or ""):
            if piece:
                chunks.append(chunk(i, {"content": piece}))
        for piece in _pieces(message["refusal"] or ""):
            if piece:
                chunks.append(chunk(i, {"refusal": piece}))
        for n, call in enumerate(message.get("tool_calls") or ()):
            args = call["function"]["arguments"]
            chunks.append(chunk(i, {"tool_calls": [{"index": n, "id": call["id"], "type": "function",
                                    "function": {"name": call["function"]["name"],
                                                 "arguments": ""}}]}))  # fmt: skip
            for piece in (args[:5], args[5:]):
                chunks.append(
                    chunk(i, {"tool_calls": [{"index": n, "function": {"arguments": piece}}]})
                )
        chunks.append(chunk(i, {}, choice["finish_reason"]))
    return chunks


def _completion_chunks(answer: dict[str, Any]) -> list[dict[str, Any]]:
    top = _top(answer, "text_completion")
    pieces = _pieces(answer["choices"][0]["text"])
    chunks = [{**top, "choices": [{"index": 0, "text": p, "logprobs": None, "finish_reason": None}]}
              for p in pieces]  # fmt: skip
    chunks.append({**top, "choices": [{"index": 0, "text": "", "logprobs": None,
                                       "finish_reason": "stop"}]})  # fmt: skip
    return chunks


def _response_events(answer: dict[str, Any], cut: bool) -> Iterator[bytes]:
    start = {**answer, "status": "in_progress", "output": [], "usage": None}
    item = answer["output"][0]
    where = {"output_index": 0, "item_id": item["id"]}
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": start},
        {"type": "response.in_progress", "response": start},
    ]
    if item["type"] == "message":
        text = item["content"][0]["text"]
        events.append({"type": "response.output_item.added", "output_index": 0,
                       "item": {**item, "status": "in_progress", "content": []}})  # fmt: skip
        part = {"type": "output_text", "text": "", "annotations": []}
        events.append({"type": "response.content_part.added", **where, "content_index": 0,
                       "part": part})  # fmt: skip
        for piece in _pieces(text):
            events.append({"type": "response.output_text.delta", **where, "content_index": 0,
                           "delta": piece, "logprobs": []})  # fmt: skip
        events.append({"type": "response.output_text.done", **where, "content_index": 0,
                       "text": text, "logprobs": []})  # fmt: skip
        events.append({"type": "response.content_part.done", **where, "content_index": 0,
                       "part": item["content"][0]})  # fmt: skip
    else:
        events.append({"type": "response.output_item.added", "output_index": 0,
                       "item": {**item, "status": "in_progress", "arguments": ""}})  # fmt: skip
        events.append({"type": "response.function_call_arguments.delta", **where,
                       "delta": item["arguments"]})  # fmt: skip
        events.append({"type": "response.function_call_arguments.done", **where,
                       "arguments": item["arguments"]})  # fmt: skip
    events.append({"type": "response.output_item.done", "output_index": 0, "item": item})
    if not cut:
        events.append({"type": "response.completed", "response": answer})
    for n, event in enumerate(events):
        yield _sse({**event, "sequence_number": n}, event["type"])
