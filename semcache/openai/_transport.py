"""The sync and async HTTP transports of a wrapped client: thin shells that run ``_wrap_flow``.

Each forwards upstream through the client's original HTTP client (its pool, proxies and hooks) and
runs cache operations against the wrapped cache. A cache operation that fails in a way the cache
did not absorb itself is logged and replaced by a miss, so the call still goes upstream.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import anyio.to_thread
import httpx2

from semcache._shell import AsyncCache
from semcache.core.ops import adrive as _adrive
from semcache.core.ops import drive as _drive
from semcache.openai._flow import (
    CacheOp,
    Read,
    Relay,
    Send,
    Settings,
    WrapOp,
    cache_call,
    fallback,
    handle,
)

log = logging.getLogger("semcache")


class CachingTransport(httpx2.BaseTransport):
    """Answers covered requests from the cache, and sends the rest through ``inner``
    (or through ``send``, which an adapter for another HTTP library gives)."""

    def __init__(
        self, inner: Any, settings: Settings, send: Callable[[httpx2.Request], Any] | None = None
    ) -> None:
        self.inner = inner
        self.settings = settings
        self.send = send or (lambda request: inner.send(request, stream=True))

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        return _drive(handle(request, self.settings), self._execute)

    def _execute(self, op: WrapOp) -> Any:
        if isinstance(op, Send):
            return self.send(op.request)
        if isinstance(op, Read):
            return _read(op.response)
        if isinstance(op, Relay):
            return op.response(_SyncRelayStream(op, self._execute))
        try:
            return cache_call(op, self.settings.cache)()
        except Exception as exc:
            return _failed(op, exc)

    def close(self) -> None:
        self.inner.close()
        with contextlib.suppress(Exception):  # closing never fails because of the cache
            self.settings.cache.write_counters()  # a short-lived client's work is counted


class AsyncCachingTransport(httpx2.AsyncBaseTransport):
    """The asyncio twin of :class:`CachingTransport`. A sync ``Cache`` runs in a worker thread."""

    def __init__(
        self,
        inner: Any,
        settings: Settings,
        send: Callable[[httpx2.Request], Awaitable[Any]] | None = None,
    ) -> None:
        self.inner = inner
        self.settings = settings
        self.send = send or (lambda request: inner.send(request, stream=True))
        self._native = isinstance(settings.cache, AsyncCache)

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        return await _adrive(handle(request, self.settings), self._execute)

    async def _execute(self, op: WrapOp) -> Any:
        if isinstance(op, Send):
            return await self.send(op.request)
        if isinstance(op, Read):
            return await _aread(op.response)
        if isinstance(op, Relay):
            return op.response(_AsyncRelayStream(op, self._execute))
        call = cache_call(op, self.settings.cache)
        try:
            return await call() if self._native else await anyio.to_thread.run_sync(call)
        except Exception as exc:
            return _failed(op, exc)

    async def aclose(self) -> None:
        await self.inner.aclose()
        cache = self.settings.cache
        with contextlib.suppress(Exception):  # see CachingTransport.close
            if self._native:
                await cache.write_counters()
            else:
                await anyio.to_thread.run_sync(cache.write_counters)


def _failed(op: CacheOp, exc: Exception) -> Any:
    log.warning(
        "semcache: %s failed, the call goes on without the cache: %r", type(op).__name__, exc
    )
    return fallback(op)


def _read(response: httpx2.Response) -> bytes:
    try:
        return response.read()
    finally:
        response.close()


async def _aread(response: httpx2.Response) -> bytes:
    try:
        return await response.aread()
    finally:
        await response.aclose()


class _SyncRelayStream(httpx2.SyncByteStream):
    def __init__(self, relay: Relay, execute: Any) -> None:
        self.relay = relay
        self.execute = execute
        self.done = relay.done  # leave the single flight once, at the end or on close

    def __iter__(self) -> Iterator[bytes]:
        recorder = self.relay.recorder
        try:
            for chunk in self.relay.upstream.iter_bytes():
                self._moved()
                out, body = recorder.feed(chunk)
                if body is not None:
                    self.execute(self.relay.store(body))
                if out:
                    yield out
            if rest := recorder.rest():
                yield rest
        finally:
            self._done()

    def close(self) -> None:
        self.relay.upstream.close()
        self._done()

    def _moved(self) -> None:
        """The stream moved: the leader's followers keep waiting (see ``Flight.stalled``)."""
        if self.done is not None:
            self.done.flight.touch()

    def _done(self) -> None:
        done, self.done = self.done, None
        if done is not None:
            self.execute(done)


class _AsyncRelayStream(httpx2.AsyncByteStream):
    def __init__(self, relay: Relay, execute: Any) -> None:
        self.relay = relay
        self.execute = execute
        self.done = relay.done

    async def __aiter__(self) -> AsyncIterator[bytes]:
        recorder = self.relay.recorder
        try:
            async for chunk in self.relay.upstream.aiter_bytes():
                self._moved()
                out, body = recorder.feed(chunk)
                if body is not None:
                    await self.execute(self.relay.store(body))
                if out:
                    yield out
            if rest := recorder.rest():
                yield rest
        finally:
            await self._done()

    async def aclose(self) -> None:
        await self.relay.upstream.aclose()
        await self._done()

    def _moved(self) -> None:
        if self.done is not None:
            self.done.flight.touch()

    async def _done(self) -> None:
        done, self.done = self.done, None
        if done is not None:
            await self.execute(done)
