"""``Cache`` and ``AsyncCache``: thin sync and async shells over the flows of ``_flows.py``.

Each public method is one line: the shared flow, driven by the sync executor (:class:`Cache`) or
awaited on the async one (:class:`AsyncCache`). The shells own nothing else but their client's
life cycle.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import re
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any, Concatenate, ParamSpec, TypeVar

from semcache._flows import NO_RETRY, NO_RETRY_ASYNC, Base, Flows
from semcache.core.ops import Flow, adrive, drive
from semcache.core.plan import Plan
from semcache.core.types import LookupResult
from semcache.embedding.embedders import Embedder
from semcache.redis import cluster
from semcache.redis.cluster import Detector, aconnect, connect
from semcache.redis.executor import AsyncExecutor, SyncExecutor

T = TypeVar("T")
S = TypeVar("S", bound="Base[Any, Any]")
P = ParamSpec("P")


def _adopt(method: Callable[..., Any], flow: Callable[..., Any]) -> None:
    """Give a shell method its flow's name, docstring and signature, returning what the flow
    returns (``Flow[X]`` → ``X``), so help() and get_type_hints() show the public method."""
    functools.update_wrapper(method, flow)  # __wrapped__: type hints resolve in the flow's module
    hints = dict(flow.__annotations__)
    hints["return"] = re.sub(r"^Flow\[(.*)\]$", r"\1", str(hints["return"]))
    method.__annotations__ = hints
    method.__signature__ = inspect.signature(flow).replace(  # type: ignore[attr-defined]
        return_annotation=hints["return"]
    )


def _sync(flow: Callable[Concatenate[S, P], Flow[T]]) -> Callable[Concatenate[S, P], T]:
    """A ``Cache`` method: the flow, driven by the sync executor."""

    def method(self: S, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return drive(flow(self, *args, **kwargs), self._executor)

    _adopt(method, flow)
    return method


def _async(
    flow: Callable[Concatenate[S, P], Flow[T]],
) -> Callable[Concatenate[S, P], Coroutine[Any, Any, T]]:
    """An ``AsyncCache`` method: the flow, awaited on the async executor."""

    async def method(self: S, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await adrive(flow(self, *args, **kwargs), self._executor)

    _adopt(method, flow)
    return method


class Cache(Flows[SyncExecutor, cluster.Client]):
    """A layered LLM cache on Redis: exact layer, then semantic layer.

    Args:
        redis_url: any Redis with the search module (``redis://``, ``rediss://`` for TLS, password in
            the URL), or any node of a Redis Cluster whose nodes all load it. None starts (or
            reuses) semcache's embedded local Redis.
        redis_client: an existing ``redis.Redis`` or ``redis.cluster.RedisCluster`` to use instead
            of a URL.
        embedder: the semantic layer's embedder (default: local all-MiniLM-L6-v2, offline).
        namespace, threshold, ttl: shortcuts for the same fields of ``config``.
        config: every other policy (:class:`CacheConfig`).
        timeout: socket timeout in seconds of the cache's own Redis client.
        prices: per-model price overrides (``{model: semcache.Price(...)}``) or a
            :class:`semcache.PriceTable`, for the dollars :meth:`stats` reports.

    Example::

        cache = semcache.Cache(namespace="app", threshold=0.9, ttl=3600)
        result = cache.lookup(request, tenant="acme")
        if not result.hit:
            cache.store(request, response, tenant="acme", tags=("doc:42",))
    """

    _new_event = threading.Event

    @staticmethod
    def _connect(url: str, timeout: float, *, cluster_mode: bool) -> cluster.Client:
        return connect(url, timeout, NO_RETRY, cluster=cluster_mode)

    @staticmethod
    def _executor_of(
        client: cluster.Client, embedder: Embedder | None, detector: Detector
    ) -> SyncExecutor:
        return SyncExecutor(client, embedder, detector, NO_RETRY)

    def _opened(self) -> None:
        drive(self._f_connect(), self._executor)

    def _write_at_exit(self) -> None:
        self.write_counters()

    lookup = _sync(Flows._f_lookup)
    lookup_plan = _sync(Flows._f_lookup_plan)
    store = _sync(Flows._f_store)
    store_plan = _sync(Flows._f_store_plan)
    store_many = _sync(Flows._f_store_many)
    embed = _sync(Flows._f_embed)
    cached_vectors = _sync(Flows._f_cached_vectors)
    store_vectors = _sync(Flows._f_store_vectors)
    invalidate = _sync(Flows._f_invalidate)
    invalidate_tenant = _sync(Flows._f_invalidate_tenant)
    delete_namespace = _sync(Flows._f_delete_namespace)
    flush = delete_namespace
    """Deprecated: the old name of :meth:`delete_namespace`, kept working."""
    write_counters = _sync(Flows._f_write_counters)
    count_indexes = _sync(Flows._f_count_indexes)
    feedback = _sync(Flows._f_feedback)
    stats = _sync(Flows._f_stats)
    join_flight = _sync(Flows._f_join_flight)
    lookup_and_join = _sync(Flows._f_lookup_and_join)
    store_and_leave = _sync(Flows._f_store_and_leave)
    leave_flight = _sync(Flows._f_leave_flight)

    @contextlib.contextmanager
    def single_flight(self, plan: Plan) -> Iterator[LookupResult | None]:
        """Coordinate identical misses so that one caller calls upstream.

        Yields None to the caller that should call upstream (and then store the answer), or the
        hit that another caller, in this process or another, stored while this one waited. A caller
        that waited ``config.stampede_wait`` in vain gets None too and calls upstream itself.

        Example::

            result = cache.lookup_plan(plan)
            if not result.hit:
                with cache.single_flight(plan) as shared:
                    if shared is None:
                        cache.store_plan(plan, call_model())
        """
        flight = self.join_flight(plan)
        try:
            yield flight.shared
        finally:
            self.leave_flight(flight)

    def close(self) -> None:
        """Write pending counters and close the Redis client if the cache made it."""
        try:
            drive(self._f_closing(), self._executor)
        finally:
            if self._owns_client:
                self._executor.close()

    def __enter__(self) -> Cache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncCache(Flows[AsyncExecutor, cluster.AsyncClient]):
    """The asyncio twin of :class:`Cache`: the same arguments and methods, awaited.

    Checks (search module, index dimension) run on ``await cache.connect()``, ``async with``, or the
    first call.
    """

    _new_event = asyncio.Event

    @staticmethod
    def _connect(url: str, timeout: float, *, cluster_mode: bool) -> cluster.AsyncClient:
        return aconnect(url, timeout, NO_RETRY_ASYNC, cluster=cluster_mode)

    @staticmethod
    def _executor_of(
        client: cluster.AsyncClient, embedder: Embedder | None, detector: Detector
    ) -> AsyncExecutor:
        return AsyncExecutor(client, embedder, detector, NO_RETRY_ASYNC)

    def _write_at_exit(self) -> None:
        # No event loop runs at exit: the counters go through a sync client on the same server.
        executor = SyncExecutor(cluster.subscriber(self.client), None)
        try:
            drive(self._accounting.write(), executor)
        finally:
            executor.close()

    async def preload(self) -> None:  # type: ignore[override]  # the awaitable twin, as every method here
        """See :meth:`Cache.preload`; the models load on a worker thread."""
        await asyncio.to_thread(Flows.preload, self)

    async def connect(self) -> AsyncCache:
        """Check the server and create the index now; raises ConfigurationError on a mismatch."""
        await adrive(self._f_connect(), self._executor)
        return self

    lookup = _async(Flows._f_lookup)
    lookup_plan = _async(Flows._f_lookup_plan)
    store = _async(Flows._f_store)
    store_plan = _async(Flows._f_store_plan)
    store_many = _async(Flows._f_store_many)
    embed = _async(Flows._f_embed)
    cached_vectors = _async(Flows._f_cached_vectors)
    store_vectors = _async(Flows._f_store_vectors)
    invalidate = _async(Flows._f_invalidate)
    invalidate_tenant = _async(Flows._f_invalidate_tenant)
    delete_namespace = _async(Flows._f_delete_namespace)
    flush = delete_namespace
    """Deprecated: the old name of :meth:`delete_namespace`, kept working."""
    write_counters = _async(Flows._f_write_counters)
    count_indexes = _async(Flows._f_count_indexes)
    feedback = _async(Flows._f_feedback)
    stats = _async(Flows._f_stats)
    join_flight = _async(Flows._f_join_flight)
    lookup_and_join = _async(Flows._f_lookup_and_join)
    store_and_leave = _async(Flows._f_store_and_leave)
    leave_flight = _async(Flows._f_leave_flight)

    @contextlib.asynccontextmanager
    async def single_flight(self, plan: Plan) -> AsyncIterator[LookupResult | None]:
        """See :meth:`Cache.single_flight`."""
        flight = await self.join_flight(plan)
        try:
            yield flight.shared
        finally:
            await self.leave_flight(flight)

    async def aclose(self) -> None:
        """Write pending counters and close the Redis client if the cache made it."""
        try:
            await adrive(self._f_closing(), self._executor)
        finally:
            if self._owns_client:
                await self._executor.close()

    async def __aenter__(self) -> AsyncCache:
        return await self.connect()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
