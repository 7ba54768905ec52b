"""The one operation vocabulary of every flow, and the one driver contract that runs them.

A flow is a generator: it yields an operation, receives the operation's result, and returns its
value. The cache's layers, the decision stage, calibration, log replay and the OpenAI wrapper all
speak these operations; an executor (``semcache.redis.executor`` for a cache, the wrapper's
transports for upstream HTTP) carries them out. A failed operation is thrown back into the flow at
the ``yield``, so the flow decides what a failure means. Nothing here touches a socket.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")
OpT = TypeVar("OpT")


@dataclass(frozen=True, slots=True)
class Commands:
    """Run these Redis commands (built by ``semcache.redis.commands``) in one non-transactional
    pipeline; errors come back in place of their replies."""

    commands: tuple[tuple[Any, ...], ...]


@dataclass(frozen=True, slots=True)
class Embed:
    """Embed these texts with the cache's embedder."""

    texts: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Call:
    """Call a function that does I/O of its own (a judge, a second model), or long work on this
    process's CPU (``local``: a model run, no I/O): ``fn(*args)`` in the sync shell, ``await
    afn(*args)`` in the async one (``fn`` on a worker thread when ``afn`` is None, so the event loop
    is not held). A driver that refuses I/O (:func:`refuse`) still runs a local call."""

    fn: Callable[..., Any]
    args: tuple[Any, ...] = ()
    afn: Callable[..., Awaitable[Any]] | None = None
    local: bool = False


@dataclass(frozen=True, slots=True)
class Scan:
    """Every key matching a pattern, on every node."""

    pattern: str


@dataclass(frozen=True, slots=True)
class Sleep:
    """Pause the flow (``time.sleep`` in the sync shell, ``asyncio.sleep`` in the async one)."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Wait:
    """Wait until ``event`` is set or ``timeout`` seconds pass (a ``threading.Event`` in the sync
    shell, an ``asyncio.Event`` in the async one); the result is not used."""

    event: Any
    timeout: float


@dataclass(frozen=True, slots=True)
class Defer:
    """Send these Redis commands with the executor's next round trip, whatever it is, and ignore
    their replies (a lock release that must not cost a hit a round trip of its own)."""

    commands: tuple[tuple[Any, ...], ...]


Op = Commands | Embed | Scan | Call | Sleep | Wait | Defer
Flow = Generator[Op, Any, T]


def drive(flow: Generator[OpT, Any, T], execute: Callable[[OpT], Any], *, throw: bool = True) -> T:
    """Run a flow to its end, executing each operation it yields. An operation's error is thrown
    back into the flow, or (``throw=False``) closes the flow and propagates to the caller. So is
    an interrupt or a cancellation: a flow that must undo something (leave a single flight) can,
    where closing it from outside would only run its ``finally`` blocks."""
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            op = flow.throw(error) if error is not None else flow.send(value)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        try:
            value, error = execute(op), None
        except BaseException as exc:  # a KeyboardInterrupt too: the flow's cleanup runs
            if not throw:
                flow.close()
                raise
            value, error = None, exc


async def adrive(flow: Generator[OpT, Any, T], execute: Callable[[OpT], Awaitable[Any]]) -> T:
    """The async twin of :func:`drive`: the same contract, each operation awaited."""
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            op = flow.throw(error) if error is not None else flow.send(value)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        try:
            value, error = await execute(op), None
        except BaseException as exc:  # a cancelled task too: the flow's cleanup runs
            value, error = None, exc


class NeedsIO(Exception):
    """A flow driven with :func:`refuse` asked for an operation."""

    def __init__(self, op: object) -> None:
        super().__init__(op)
        self.op = op


def refuse(op: object) -> Any:
    """The executor of a flow that must do no I/O (with ``throw=False``): any operation fails but
    a :class:`Call` of local work, which runs."""
    if isinstance(op, Call) and op.local:
        return op.fn(*op.args)
    raise NeedsIO(op)


def call_directly(op: Call) -> Any:
    """The executor of a flow that only asks for :class:`Call` (calibration drives decisions so)."""
    return op.fn(*op.args)
