"""The executors: what carries out the operations flows yield, against one Redis client and one
embedder. The sync and async executors are the only code that sends a cache's commands.

On a single node every batch goes in one round trip on a kept connection, each run of GETs in it
as one MGET (an exact hit's reads are one plain MGET); on a cluster a batch of one command goes as
a plain command, anything else as one non-transactional pipeline; errors come back in place. Index creation is an ordinary command (see ``commands.create_index``).
"""

from __future__ import annotations

import asyncio
import codecs
import collections
import contextlib
import functools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import redis
import redis.asyncio
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.cluster import RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from semcache.core.ops import Call, Commands, Defer, Embed, Op, Scan, Sleep, Wait
from semcache.embedding.embedders import Embedder
from semcache.redis import commands
from semcache.redis.cluster import AsyncClient, Client, Detector, aconnect, connect

log = logging.getLogger("semcache")

Command = tuple[Any, ...]


def plain(batch: tuple[Command, ...]) -> Command | None:
    """A cluster batch that one plain command carries (a single command that needs no routing of
    ours), or None: a pipeline sends it."""
    if len(batch) == 1 and not commands.needs_routing(batch[0]):
        return batch[0]
    return None


def merge_gets(batch: tuple[Command, ...]) -> tuple[tuple[Command, ...], list[int] | None]:
    """A single node's batch with each run of two or more GETs sent as one MGET (a lookup's exact
    GET and its generations, before its search: one command to pack and one reply to read where
    three were), and how many replies each sent command stands for (None: nothing merged)."""
    gets = [commands.is_get(command) for command in batch]
    if gets.count(True) < 2:
        return batch, None
    sent: list[Command] = []
    counts: list[int] = []
    i, n = 0, len(batch)
    while i < n:
        j = i + 1
        if gets[i]:
            while j < n and gets[j]:
                j += 1
        if j - i > 1:
            sent.append(commands.get_many(c[1] for c in batch[i:j]))
        else:
            sent.append(batch[i])
        counts.append(j - i)
        i = j
    return tuple(sent), counts


def spread(replies: list[Any], counts: list[int] | None) -> list[Any]:
    """The replies of :func:`merge_gets`'s batch, one per command of the batch it was made from
    (an error in place of an MGET's reply stands for each of its GETs)."""
    if counts is None:
        return replies
    out: list[Any] = []
    for reply, count in zip(replies, counts, strict=True):
        if count == 1:
            out.append(reply)
        elif isinstance(reply, list) and len(reply) == count:
            out.extend(reply)
        else:
            out.extend([reply] * count)
    return out


def _reply(client: Any, command: Command, reply: Any) -> Any:
    callback = client.response_callbacks.get(str(command[0]).upper())
    return callback(reply) if callback is not None else reply


try:
    from hiredis import pack_command as _pack_one
except ImportError:  # pragma: no cover - redis[hiredis] is a dependency
    _pack_one = None  # type: ignore[assignment]


def _packed(connection: Any, batch: tuple[Command, ...]) -> Any:
    """The batch in the wire protocol: hiredis packs each command in C (redis-py's packer walks
    every argument in Python first: 12 µs of a semantic lookup's 5 commands). These are the bytes
    redis-py sends with hiredis installed for a client that encodes text as UTF-8 (hiredis's own
    encoding; redis-py before 8.2 sent them whatever the client's encoding, 8.2 encodes with the
    client's first): a client of another encoding, and anything hiredis refuses, go through
    redis-py's packer and its errors. No command name of ours holds a space, which redis-py's
    packer would split."""
    if _pack_one is not None and _utf8(getattr(connection, "encoder", None)):
        try:
            return _chunks([_pack_one(command) for command in batch])
        except TypeError:
            pass
    return connection.pack_commands(batch)


def _utf8(encoder: Any) -> bool:
    """Whether a redis-py encoder writes text as hiredis does: UTF-8, strict."""
    return _utf8_codec(str(getattr(encoder, "encoding", "")),
                       str(getattr(encoder, "encoding_errors", "")))  # fmt: skip


@functools.lru_cache(maxsize=16)
def _utf8_codec(encoding: str, errors: str) -> bool:
    """Whether ``encoding`` names UTF-8 under any of its aliases (``utf8``, ``U8``), strictly."""
    try:
        return errors == "strict" and codecs.lookup(encoding).name == "utf-8"
    except LookupError:
        return False


_CHUNK = 6000
"""Bytes per write of a packed batch, as redis-py's buffer cutoff: the socket timeout bounds each
write, and a write of a whole bulk load (megabytes, which Redis reads as fast as it indexes)
would outlast it."""


def _chunks(packed: list[bytes]) -> list[bytes]:
    """The packed commands joined into writes of about :data:`_CHUNK` bytes (a lookup's batch is
    one write)."""
    out: list[bytes] = []
    pieces: list[bytes] = []
    size = 0
    for one in packed:
        if pieces and size + len(one) > _CHUNK:
            out.append(b"".join(pieces))
            pieces, size = [], 0
        pieces.append(one)
        size += len(one)
    if pieces:
        out.append(b"".join(pieces))
    return out


def _bulk(client: Any, batch: tuple[Command, ...], lane: Lane) -> list[Any]:
    """A single node's batch in one round trip without redis-py's Pipeline object, errors in place.

    The commands are packed and sent at once on one of the ``lane``'s connections and the replies
    read back in order through the client's own reply callbacks, so they read exactly as a
    pipeline's. Through Pipeline a store's batch took 240-310 µs of client CPU against 140-230 µs
    this way, and a 2,000-entry write 31 µs per entry against 18-22 (measured on a loaded
    machine). A kept connection found dead (the server closed it: a restart, an idle timeout, a
    CLIENT KILL) takes the lane's other idle ones with it, and a batch that only reads goes again,
    once, on a new connection: a restart is not a failure of every request that meets it.
    """
    again = commands.read_only(batch)
    while True:
        connection, kept = lane.take()
        budget = _budget(connection.socket_timeout, len(batch))
        sock = getattr(connection, "_sock", None)
        if budget is not None and sock is not None:
            sock.settimeout(budget)
        try:
            connection.send_packed_command(_packed(connection, batch))
            replies: list[Any] = []
            for command in batch:
                try:
                    replies.append(_reply(client, command, connection.read_response()))
                except ResponseError as exc:
                    replies.append(exc)
        except RedisConnectionError:
            lane.drop(connection, everything=kept)
            if kept and again:
                again = False
                continue
            raise
        except BaseException:
            lane.drop(connection)  # a reply left unread would answer the next command
            raise
        if budget is not None and sock is not None:
            sock.settimeout(connection.socket_timeout)
        lane.give(connection)
        return replies


_QUICK = 64
"""Commands a batch may hold and still be bound by the socket timeout alone."""
_PER_COMMAND = 0.002
"""Seconds a larger batch's writes and reads may wait per command beyond the socket timeout."""


def _budget(timeout: float | None, commands: int) -> float | None:
    """The socket timeout of a round trip of ``commands`` commands, when it differs from the
    connection's: Redis takes a bulk load or a namespace's deletion only as fast as it indexes or
    unindexes each entry (milliseconds each on a large HNSW index), so a write or a read of such a
    batch can wait longer than the timeout a lookup is held to without Redis having failed."""
    if timeout is None or commands <= _QUICK:
        return None
    return timeout + _PER_COMMAND * commands


async def _abulk(client: Any, batch: tuple[Command, ...], lane: AsyncLane) -> list[Any]:
    """The asyncio twin of :func:`_bulk`."""
    again = commands.read_only(batch)
    while True:
        connection, kept = await lane.take()
        timeout = connection.socket_timeout
        budget = _budget(timeout, len(batch))
        if budget is not None:  # redis-py's asyncio connection reads it at every write and read
            connection.socket_timeout = budget
        try:
            await connection.send_packed_command(_packed(connection, batch))
            replies: list[Any] = []
            for command in batch:
                try:
                    replies.append(_reply(client, command, await connection.read_response()))
                except ResponseError as exc:
                    replies.append(exc)
        except RedisConnectionError:
            connection.socket_timeout = timeout
            await lane.drop(connection, everything=kept)
            if kept and again:
                again = False
                continue
            raise
        except BaseException:
            connection.socket_timeout = timeout
            await lane.drop(connection)
            raise
        connection.socket_timeout = timeout
        await lane.give(connection)
        return replies


class ConnectionsBusy(Exception):
    """Every connection the client's pool may open is in use, and none came back in time: the
    client is at its ``max_connections`` (redis-py 8's default is 100), not Redis failing. The
    lookup is a miss and the circuit breaker does not count it."""


def exhausted(exc: BaseException) -> bool:
    """Whether ``exc`` says the client's own pool is full, not that Redis failed: redis-py 8's
    ``MaxConnectionsError``, 5-7's ``ConnectionError("Too many connections")``, or ours."""
    if isinstance(exc, ConnectionsBusy):
        return True
    return isinstance(exc, RedisConnectionError) and (
        type(exc).__name__ == "MaxConnectionsError" or str(exc) == "Too many connections"
    )


WAITS = 4
"""Socket timeouts a round trip waits for a connection when the pool has none free: a miss costs
a model call, far longer than a queue of round trips (a burst of 300 tasks on a fresh client,
100 connecting at once, had 12 lookups miss waiting one socket timeout, none waiting four)."""


POLL = 0.05
"""Seconds between a waiting round trip's looks at the pool itself."""


class _Slot:
    """A thread waiting for a connection another thread gives back (see :meth:`Lane.take`)."""

    __slots__ = ("connection", "event")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.connection: Any = None


class _Idle:
    """The connections an executor keeps between its round trips on a single node.

    They come from the client's pool, once, and stay counted there as in use (closing the client
    disconnects them). Taking one is a list pop and the pool's own readiness check (a socket the
    server closed, or a reply left unread, means reconnect), not the pool's lock, bookkeeping and
    metrics: 1.2 µs of client CPU against 7.7, a fifth of a bare redis-py GET. There are as many
    as the executor's busiest moment had round trips at once, up to a quarter of the pool's
    ``max_connections`` (at most 32): past that, a connection goes back to the pool, which the
    client's other commands share. A forked child starts with none (its parent's sockets are not
    its own). A pool of another kind (``BlockingConnectionPool``: the caller rations connections)
    gets each one back after every round trip (``keep=False``).

    When more round trips run at once than the pool may open connections (300 threads or tasks
    against redis-py 8's 100), the ones past it wait for a connection another one gives back,
    handed over directly, for up to :data:`WAITS` socket timeouts; then :class:`ConnectionsBusy`.
    Before, the pool's refusal counted as Redis failing: the breaker opened ten times in a burst
    of 300 threads and a fifth of their lookups missed.
    """

    def __init__(self, pool: Any, *, keep: bool = True) -> None:
        self.pool = pool
        self.cap = min(32, int(getattr(pool, "max_connections", 0) or 0) // 4) if keep else 0
        self.keep = self.cap > 0
        timeout = getattr(pool, "connection_kwargs", {}).get("socket_timeout")
        self.wait = WAITS * timeout if timeout else 1.0
        self._idle: list[Any] = []
        self._waiters: collections.deque[Any] = collections.deque()
        self._lock = threading.Lock()
        self._pid = os.getpid()

    @classmethod
    def of(cls, client: Any) -> Any:
        pool = client.connection_pool
        return cls(pool, keep=type(pool) in (redis.ConnectionPool, redis.asyncio.ConnectionPool))

    def _kept(self) -> Any:
        """A kept connection, or None (none idle, or a pool that keeps none)."""
        if not self.keep:
            return None
        if self._pid != os.getpid():
            self._idle, self._pid = [], os.getpid()
            self._waiters = collections.deque()
        return self._idle.pop() if self._idle else None

    def _flush(self) -> list[Any]:
        """Take every idle connection out of the lane."""
        idle, self._idle = self._idle, []
        return idle


class Lane(_Idle):
    """The sync executor's kept connections (see :class:`_Idle`)."""

    def take(self) -> tuple[Any, bool]:
        """A ready connection, and whether it was used before (else it is new from the pool)."""
        connection = self._kept()
        if connection is None:
            try:
                return self.pool.get_connection(), False
            except RedisConnectionError as exc:
                if not (self.keep and exhausted(exc)):
                    raise
            connection = self._handed()
        try:
            try:
                if connection.can_read():
                    raise RedisConnectionError("connection has data")
            except (RedisConnectionError, TimeoutError, OSError):
                connection.disconnect()
                connection.connect()
        except BaseException:
            self._back(connection)
            raise
        return connection, True

    def _handed(self) -> Any:
        """A connection another thread gives back within :attr:`wait` seconds, or one the pool
        has again (the client's other users give theirs back to the pool, not to the lane)."""
        slot = _Slot()
        with self._lock:
            self._waiters.append(slot)
        deadline, served = time.monotonic() + self.wait, None
        try:
            while not slot.event.wait(min(POLL, max(0.0, deadline - time.monotonic()))):
                served = self._free()
                if served is not None:
                    return served
                if time.monotonic() >= deadline:
                    raise ConnectionsBusy(f"all {self.pool.max_connections} connections in use")
            served = slot.connection
            return served
        finally:
            with self._lock:
                handed = slot not in self._waiters
                if not handed:
                    self._waiters.remove(slot)
            if handed and slot.connection is not served:  # handed over as it took another or
                self.give(slot.connection)  # gave up: the handed one goes on

    def _free(self) -> Any:
        """A connection from the pool, or None while it has none free."""
        try:
            return self.pool.get_connection()
        except RedisConnectionError as exc:
            if exhausted(exc):
                return None
            raise

    def _hand(self, connection: Any) -> bool:
        """Give ``connection`` to a waiting thread, if one waits."""
        if not self._waiters:  # nearly always: no lock taken
            return False
        with self._lock:
            if not self._waiters:
                return False
            slot = self._waiters.popleft()
            slot.connection = connection
            slot.event.set()
        return True

    def _back(self, connection: Any) -> None:
        """A connection leaving the lane: to a waiting thread, else to the pool."""
        if not self._hand(connection):
            self.pool.release(connection)

    def give(self, connection: Any) -> None:
        if self._hand(connection):
            return
        if len(self._idle) < self.cap:
            self._idle.append(connection)
        else:
            self.pool.release(connection)

    def drop(self, connection: Any, *, everything: bool = False) -> None:
        """A connection whose round trip failed: disconnected, back to the pool (``everything``:
        the idle ones too, which the same restart has closed). A thread waiting for one gets it
        instead, and connects it again."""
        for each in [connection, *(self._flush() if everything else ())]:
            each.disconnect()
            self._back(each)


async def _ready(connection: Any) -> bool:
    """Whether an async connection has data waiting: redis-py 8's ``can_read``, 5-7's
    ``can_read_destructive``."""
    probe = getattr(connection, "can_read", None) or connection.can_read_destructive
    return bool(await probe())


class AsyncLane(_Idle):
    """The asyncio executor's kept connections (see :class:`_Idle`; one event loop uses them)."""

    async def take(self) -> tuple[Any, bool]:
        connection = self._kept()
        if connection is None:
            try:
                return await self.pool.get_connection(), False
            except RedisConnectionError as exc:
                if not (self.keep and exhausted(exc)):
                    raise
            connection = await self._handed()
        try:
            try:
                if await _ready(connection):
                    raise RedisConnectionError("connection has data")
            except (RedisConnectionError, TimeoutError, OSError):
                await connection.disconnect()
                await connection.connect()
        except BaseException:
            await self._back(connection)
            raise
        return connection, True

    async def _handed(self) -> Any:
        """See :meth:`Lane._handed`."""
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        deadline, served = time.monotonic() + self.wait, None
        try:
            while True:
                left = max(0.0, deadline - time.monotonic())
                with contextlib.suppress(TimeoutError):
                    served = await asyncio.wait_for(asyncio.shield(waiter), min(POLL, left))
                    return served
                served = await self._free()
                if served is not None:
                    return served
                if time.monotonic() >= deadline:
                    raise ConnectionsBusy(f"all {self.pool.max_connections} connections in use")
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
            if not waiter.done():
                waiter.cancel()
            elif not waiter.cancelled() and waiter.result() is not served:
                await self.give(waiter.result())  # handed over as it took another or gave up

    async def _free(self) -> Any:
        try:
            return await self.pool.get_connection()
        except RedisConnectionError as exc:
            if exhausted(exc):
                return None
            raise

    def _hand(self, connection: Any) -> bool:
        """Give ``connection`` to a waiting task, if one waits."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return True
        return False

    async def _back(self, connection: Any) -> None:
        if not self._hand(connection):
            await self.pool.release(connection)

    async def give(self, connection: Any) -> None:
        if self._hand(connection):
            return
        if len(self._idle) < self.cap:
            self._idle.append(connection)
        else:
            await self.pool.release(connection)

    async def drop(self, connection: Any, *, everything: bool = False) -> None:
        for each in [connection, *(self._flush() if everything else ())]:
            await each.disconnect()
            await self._back(each)


def _nodes_of(client: Any) -> set[Any]:
    """Every node an async cluster client knows: the ones it found and the ones it started from."""
    manager = client.nodes_manager
    return {*manager.nodes_cache.values(), *manager.startup_nodes.values()}


def _connections_of(client: Any) -> list[Any]:
    """Every connection an async client holds, of a single node's pool or of a cluster's nodes."""
    pool = getattr(client, "connection_pool", None)
    if pool is not None:
        return [*pool._available_connections, *pool._in_use_connections]
    return [c for node in _nodes_of(client) for c in getattr(node, "_connections", ())]


def _forsake(connection: Any) -> None:
    """Close the socket of an async connection whose event loop is closed: its transport would
    close it through that loop (it cannot: RuntimeError) or warn when collected."""
    writer = getattr(connection, "_writer", None)
    transport: Any = getattr(writer, "transport", None)
    sock = getattr(transport, "_sock", None)  # asyncio's selector transports
    if sock is not None:
        sock.close()
        transport._sock = None  # as its own close does, so it neither warns nor closes again
        transport._closing = True
    connection._reader = connection._writer = None


@contextlib.contextmanager
def _closing() -> Iterator[None]:
    """Closing the client never fails the caller: a socket whose close the machine is slow to
    confirm (redis-py's asyncio close waits for it, as long as the connect timeout) or one Redis
    already dropped is closed on our side all the same, and nothing is left to do with it."""
    try:
        yield
    except (redis.RedisError, OSError) as exc:
        log.debug("semcache: closing the Redis client: %s", exc)


class Deferred:
    """Commands waiting to ride with the next round trip (see :class:`semcache.core.ops.Defer`)."""

    def __init__(self) -> None:
        self._commands: list[Command] = []
        self._lock = threading.Lock()

    def add(self, batch: tuple[Command, ...]) -> None:
        with self._lock:
            self._commands += batch

    def take(self, batch: tuple[Command, ...]) -> tuple[int, tuple[Command, ...]]:
        """How many deferred commands go first, and the batch with them."""
        if not self._commands:  # nearly always: no lock taken (one that lands now rides next)
            return 0, batch
        with self._lock:
            waiting, self._commands = tuple(self._commands), []
        return len(waiting), (*waiting, *batch)


class SyncExecutor:
    """Executes operations with a ``redis.Redis`` / ``RedisCluster`` client and an embedder."""

    def __init__(
        self,
        client: Client,
        embedder: Embedder | None,
        detector: Detector | None = None,
        retry: Any = None,
    ) -> None:
        self.client = client
        self.embedder = embedder
        self.cluster = isinstance(client, RedisCluster)
        self.deferred = Deferred()
        self.lane = None if self.cluster else Lane.of(client)
        self._detector, self._retry = detector, retry
        self._switching = threading.Lock()
        self.remake: Callable[..., Any] | None = None  # kept for AsyncExecutor's sake: a
        # sync client serves every thread, with no event loop to belong to

    def _redetect(self) -> None:
        """A node that could not say whether it is a cluster says so now: a cluster client."""
        assert self._detector is not None and self._detector.url is not None
        with self._switching:
            if not self._detector.settled():
                return
            old = self.client
            self.client = connect(self._detector.url, self._detector.timeout, self._retry,
                                  cluster=True)  # fmt: skip
            self.cluster, self.lane = True, None
        old.close()

    def __call__(self, op: Op) -> Any:
        if self._detector is not None and self._detector.pending:
            self._redetect()
        if isinstance(op, Commands):
            skip, batch = self.deferred.take(op.commands)
            return self.commands(batch)[skip:] if batch else []
        if isinstance(op, Defer):
            return self.deferred.add(op.commands)
        if isinstance(op, Embed):
            assert self.embedder is not None
            return self.embedder.embed(list(op.texts))
        if isinstance(op, Call):
            return op.fn(*op.args)
        if isinstance(op, Sleep):
            return time.sleep(op.seconds)
        if isinstance(op, Wait):
            return op.event.wait(op.timeout)
        assert isinstance(op, Scan)
        return list(self.client.scan_iter(match=op.pattern, count=1000))

    def commands(self, batch: tuple[Command, ...]) -> list[Any]:
        if self.lane is not None:  # a single node: one round trip on a kept connection
            sent, counts = merge_gets(batch)
            return spread(_bulk(self.client, sent, self.lane), counts)
        one = plain(batch)  # a cluster from here on
        if one is not None:
            try:
                return [self.client.execute_command(*one)]  # type: ignore[no-untyped-call]
            except ResponseError as exc:
                return [exc]
        pipe = self.client.pipeline(transaction=False)
        for command in batch:
            pipe.execute_command(*command)
        return pipe.execute(raise_on_error=False)

    def ping(self) -> bool:
        return bool(self.client.ping())

    def close(self) -> None:
        # RedisCluster.close() leaves every node's connection pool open (redis-py 8): disconnect
        # them too, or their sockets linger until garbage collection warns about them.
        with _closing():
            self.client.close()
            if isinstance(self.client, RedisCluster):
                self.client.disconnect_connection_pools()  # type: ignore[no-untyped-call]


class AsyncExecutor:
    """The asyncio twin of :class:`SyncExecutor` (a sync-only judge runs on a worker thread)."""

    def __init__(
        self,
        client: AsyncClient,
        embedder: Embedder | None,
        detector: Detector | None = None,
        retry: Any = None,
    ) -> None:
        self.client = client
        self.embedder = embedder
        self.cluster = isinstance(client, AsyncRedisCluster)
        self.deferred = Deferred()
        self.lane = None if self.cluster else AsyncLane.of(client)
        self._detector, self._retry = detector, retry
        self.remake: Callable[..., Any] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._warned_loop = False

    def moved(self, loop: asyncio.AbstractEventLoop) -> None:
        """The cache is used from another event loop than before (``asyncio.run`` per job, a
        test framework's loop per test): redis-py's connections belong to the loop that made
        them, and on another one every round trip failed until each was dropped (half the
        lookups of 150 ``asyncio.run`` calls missed). A client the cache made is made again for
        the new loop; the old one's sockets are closed now if its loop is closed (they cannot
        close through it), else left to it. A client the caller gave is theirs: said once."""
        old_loop, self._loop = self._loop, loop
        if old_loop is None:
            return
        if self.remake is None:
            if not self._warned_loop:
                log.warning("semcache: the async Redis client given to the cache belongs to "
                            "another event loop; its round trips fail there (make the client "
                            "on the loop that uses it)")  # fmt: skip
                self._warned_loop = True
            return
        old = self.client
        self.client = self.remake(cluster_mode=self.cluster)
        self.lane = None if self.cluster else AsyncLane.of(self.client)
        if old_loop.is_closed():
            for connection in _connections_of(old):
                _forsake(connection)

    async def _redetect(self) -> None:
        """See :meth:`SyncExecutor._redetect` (the probe is one short blocking call)."""
        assert self._detector is not None and self._detector.url is not None
        if not self._detector.settled():
            return
        old = self.client
        self.client = aconnect(self._detector.url, self._detector.timeout, self._retry,
                               cluster=True)  # fmt: skip
        self.cluster, self.lane = True, None
        await old.aclose()

    async def __call__(self, op: Op) -> Any:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self.moved(loop)
        if self._detector is not None and self._detector.pending:
            await self._redetect()
        if isinstance(op, Commands):
            skip, batch = self.deferred.take(op.commands)
            return (await self.commands(batch))[skip:] if batch else []
        if isinstance(op, Defer):
            return self.deferred.add(op.commands)
        if isinstance(op, Embed):
            assert self.embedder is not None
            return await self.embedder.aembed(list(op.texts))
        if isinstance(op, Call):
            if op.afn is not None:
                return await op.afn(*op.args)
            return await asyncio.to_thread(op.fn, *op.args)
        if isinstance(op, Sleep):
            return await asyncio.sleep(op.seconds)
        if isinstance(op, Wait):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(op.event.wait(), op.timeout)
            return None
        assert isinstance(op, Scan)
        return [key async for key in self.client.scan_iter(match=op.pattern, count=1000)]

    async def commands(self, batch: tuple[Command, ...]) -> list[Any]:
        if self.lane is not None:  # see SyncExecutor.commands
            sent, counts = merge_gets(batch)
            return spread(await _abulk(self.client, sent, self.lane), counts)
        one = plain(batch)  # a cluster from here on
        if one is not None:
            try:
                return [await self.client.execute_command(*one)]
            except ResponseError as exc:
                return [exc]
        pipe = self.client.pipeline(transaction=False)
        for command in batch:
            pipe.execute_command(*command)
        return await pipe.execute(raise_on_error=False)

    async def ping(self) -> bool:
        return bool(await self.client.ping())

    async def close(self) -> None:
        with _closing():
            await self.client.aclose()
        if isinstance(self.client, AsyncRedisCluster):
            # aclose() skips a client it thinks needs initialising again, leaving the sockets of
            # its nodes open: disconnect every node it knows, as the sync close does.
            nodes = _nodes_of(self.client)
            await asyncio.gather(*(node.disconnect() for node in nodes), return_exceptions=True)
