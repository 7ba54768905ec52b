"""Assemble a recorded stream into the body the same request would have returned unstreamed. No I/O.

The result is what the cache stores, so a streamed miss can later be replayed as JSON or as a stream.
An assembler returns None from :meth:`Assembler.finish` when the stream was not a complete answer
(an error event, a choice without a finish reason, a response that did not complete).
"""

from __future__ import annotations

from typing import Any, Protocol

_SKIP_TOP = frozenset({"choices", "usage", "object", "obfuscation"})
_SKIP_DELTA = frozenset({"tool_calls", "function_call", "obfuscation"})
#: String fields that arrive whole in the first delta that has them, never in pieces.
_FIRST_WINS = frozenset({"role", "id", "type"})


class Assembler(Protocol):
    def add(self, chunk: dict[str, Any]) -> None: ...

    def finish(self, terminal: Any) -> dict[str, Any] | None: ...


def assembler(kind: str) -> Assembler:
    if kind == "chat":
        return ChatAssembler()
    if kind == "completion":
        return CompletionAssembler()
    return ResponsesAssembler()


def merge(target: dict[str, Any], delta: dict[str, Any]) -> None:
    """Fold a delta into a snapshot: strings concatenate, lists extend, objects merge recursively."""
    for key, value in delta.items():
        old = target.get(key)
        if value is None:
            target.setdefault(key, None)
        elif _concatenates(key, old, value):
            target[key] = old + value
        elif isinstance(value, dict) and isinstance(old, dict):
            merge(old, value)
        elif old is None:
            target[key] = value if not isinstance(value, dict | list) else _copy(value)


def _concatenates(key: str, old: Any, value: Any) -> bool:
    if isinstance(value, str) and isinstance(old, str):
        return key not in _FIRST_WINS
    return isinstance(value, list) and isinstance(old, list)


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


class _Choices:
    """What chat and completion streams share: top-level fields, usage, choices by index."""

    def __init__(self) -> None:
        self.top: dict[str, Any] = {}
        self.usage: Any = None
        self.choices: dict[int, dict[str, Any]] = {}
        self.failed = False

    def add(self, chunk: dict[str, Any]) -> None:
        if chunk.get("error") is not None:
            self.failed = True
        for key, value in chunk.items():
            if key not in _SKIP_TOP and value is not None:
                self.top.setdefault(key, value)
        if chunk.get("usage") is not None:
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            self.add_choice(self.choices.setdefault(int(choice.get("index", 0)), {}), choice)

    def add_choice(self, state: dict[str, Any], choice: dict[str, Any]) -> None:
        raise NotImplementedError

    def body(self, obj: str, choices: list[dict[str, Any]]) -> dict[str, Any] | None:
        done = all(c.get("finish_reason") is not None for c in choices)
        if self.failed or not choices or not done:
            return None
        body = {**self.top, "object": obj, "choices": choices}
        if self.usage is not None:
            body["usage"] = self.usage
        return body


class ChatAssembler(_Choices):
    """``chat.completion.chunk`` objects into one ``chat.completion``."""

    def add_choice(self, state: dict[str, Any], choice: dict[str, Any]) -> None:
        message = state.setdefault("message", {})
        tools = state.setdefault("tools", {})
        delta = choice.get("delta") or {}
        merge(message, {k: v for k, v in delta.items() if k not in _SKIP_DELTA})
        for call in delta.get("tool_calls") or ():
            merge(tools.setdefault(int(call.get("index", 0)), {}), call)
        if delta.get("function_call"):
            merge(message.setdefault("function_call", {}), delta["function_call"])
        if choice.get("logprobs") is not None:
            merge(state.setdefault("logprobs", {}), choice["logprobs"])
        if choice.get("finish_reason") is not None:
            state["finish_reason"] = choice["finish_reason"]

    def finish(self, terminal: Any) -> dict[str, Any] | None:
        choices = [self._choice(i, s) for i, s in sorted(self.choices.items())]
        return self.body("chat.completion", choices)

    @staticmethod
    def _choice(index: int, state: dict[str, Any]) -> dict[str, Any]:
        message = {"role": "assistant", "content": None, "refusal": None, **state["message"]}
        calls = [
            {k: v for k, v in c.items() if k != "index"} for _, c in sorted(state["tools"].items())
        ]
        if calls:
            message["tool_calls"] = calls
        return {
            "index": index,
            "message": message,
            "logprobs": state.get("logprobs"),
            "finish_reason": state.get("finish_reason"),
        }


class CompletionAssembler(_Choices):
    """``text_completion`` chunks into one ``text_completion``."""

    def add_choice(self, state: dict[str, Any], choice: dict[str, Any]) -> None:
        state["text"] = state.get("text", "") + (choice.get("text") or "")
        if choice.get("logprobs") is not None:
            merge(state.setdefault("logprobs", {}), choice["logprobs"])
        if choice.get("finish_reason") is not None:
            state["finish_reason"] = choice["finish_reason"]

    def finish(self, terminal: Any) -> dict[str, Any] | None:
        choices = [
            {"index": i, "text": s.get("text", ""), "logprobs": s.get("logprobs"),
             "finish_reason": s.get("finish_reason")}
            for i, s in sorted(self.choices.items())
        ]  # fmt: skip
        return self.body("text_completion", choices)


class ResponsesAssembler:
    """Responses API events: the ``response.completed`` event carries the whole response."""

    def add(self, chunk: dict[str, Any]) -> None:
        pass

    def finish(self, terminal: Any) -> dict[str, Any] | None:
        response = terminal.get("response") if isinstance(terminal, dict) else None
        if not isinstance(response, dict) or response.get("status") != "completed":
            return None
        return response
