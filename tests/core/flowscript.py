"""Drive the cache's flows without Redis: every operation a flow yields is answered from a script.

As hishel tests its no-I/O core: the flows are the real ones, driven by the real driver
(``semcache.core.ops.drive``); only the replies are written by the test, so a test states exactly
what Redis (or the embedder) said and checks exactly what the flow asked for.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

import numpy as np

import semcache
from semcache.core.ops import Commands, drive

Reply = Any  # a value, an exception to raise, or a function of the operation


class Script:
    """Answers operations in order; records them; an exception in the script is raised."""

    def __init__(self, *replies: Reply) -> None:
        self.replies = list(replies)
        self.ops: list[Any] = []

    def __call__(self, op: Any) -> Any:
        self.ops.append(op)
        assert self.replies, f"the flow asked for more than the script holds: {op!r}"
        reply = self.replies.pop(0)
        if isinstance(reply, BaseException):
            raise reply
        return reply(op) if callable(reply) else reply

    @property
    def commands(self) -> list[tuple[Any, ...]]:
        """Every Redis command the flow sent, in order."""
        return [c for op in self.ops if isinstance(op, Commands) for c in op.commands]

    @property
    def round_trips(self) -> int:
        return sum(isinstance(op, Commands) for op in self.ops)


def run(flow: Generator[Any, Any, Any], *replies: Reply) -> tuple[Any, Script]:
    """The flow's value and the script that answered it (every reply must be used)."""
    script = Script(*replies)
    value = drive(flow, script)
    assert script.replies == [], f"replies left over: {script.replies!r}"
    return value, script


def embedder(dimension: int = 4) -> semcache.CallableEmbedder:
    def refuse(texts: list[str]) -> Any:
        raise AssertionError("a flow embeds through the Embed operation, not by calling")

    return semcache.CallableEmbedder(refuse, model_id="scripted", dimension=dimension)


def vectors(*rows: list[float]) -> Callable[[Any], np.ndarray]:
    """An Embed reply: these rows."""
    return lambda op: np.asarray(rows, dtype=np.float32)
