"""``Cache`` and ``AsyncCache``: thin sync and async shells that run the flows of ``_core``.

Each shell only knows how to execute the four operations a flow yields, against its own Redis
client and embedder. All decisions live in ``_core``; the two shells share everything else here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Iterable,
    Iterator,
    Mapping,
)
from typing import Any, Generic, TypeVar

import redis
import redis.asyncio
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError, ResponseError
from redis.retry import Retry

from semcache import _cluster
from semcache._accounting import Accounting
from semcache._core import (
    TTL,
    Call,
    Commands,
    Core,
    CreateIndex,
    Embed,
    Flow,
    Op,
    Plan,
    Scan,
    Sleep,
)
from semcache._embedders import Batching, Embedder, SentenceTransformerEmbedder
from semcache._errors import ConfigurationError, SearchModuleMissingError
from semcache._l1 import Listener
from semcache._prices import Price, PriceTable, as_price_table
from semcache._redis import check_namespace
from semcache._resilience import Breaker
from semcache._stampede import Flight, acquire, await_entry, release, token
from semcache._stats import Stats
from semcache._types import CacheConfig, LookupResult

log = logging.getLogger("semcache")

T = TypeVar("T")
C = TypeVar("C")
OpT = TypeVar("OpT")

#: The cache's own client never retries: a failed cache call is a miss, and the breaker decides
#: when to try Redis again.
_NO_RETRY = Retry(NoBackoff(), 0)
_NO_RETRY_ASYNC = AsyncRetry(NoBackoff(), 0)

#: Failures that make the cache step aside rather than fail the caller.
STEP_ASIDE = (RedisError, OSError, TimeoutError, ValueError, TypeError, RuntimeError)


@contextlib.contextmanager
def _index_errors() -> Iterator[None]:
    """redisvl wraps a Redis failure (a timeout, a refused write) in its own exception; give it back
    as a RedisError, so a failed index creation steps aside like any other Redis failure (and is
    tried again on the next call) instead of reaching the caller."""
    from redisvl.exceptions import RedisVLError

    try:
        yield
    except RedisVLError as exc:
        raise RedisError(f"creating the semantic index failed: {exc}") from exc


def _config(
    config: CacheConfig | None,
    namespace: str | None,
    threshold: float | None,
    ttl: TTL,
) -> CacheConfig:
    config = config or CacheConfig()
    overrides: dict[str, Any] = {}
    if namespace is not None:
        overrides["namespace"] = namespace
    if threshold is not None:
        overrides["threshold"] = threshold
    if ttl != "default":
        overrides["ttl"] = ttl
    return config if not overrides else _replace(config, overrides)


def _replace(config: CacheConfig, overrides: dict[str, Any]) -> CacheConfig:
    import dataclasses

    return dataclasses.replace(config, **overrides)


def _default_embedder() -> Embedder:
    return Batching(SentenceTransformerEmbedder())


def _default_url() -> str:
    from semcache.server import ensure_server

    return ensure_server().url


class _Shell(Generic[C]):
    """What both shells share: configuration, the core, the breaker and argument handling."""

    def __init__(
        self,
        *,
        client: C,
        config: CacheConfig,
        embedder: Embedder | None,
        clock: Callable[[], float],
        prices: PriceTable | Mapping[str, Price] | None = None,
    ) -> None:
        if config.semantic and embedder is None:
            embedder = _default_embedder()
        self.config = config
        self.embedder = embedder
        self.client = client
        self.core = Core(config, embedder, clock=clock)
        self.breaker = Breaker(on_change=self._breaker_changed)
        self._started = False
        self._flights: dict[str, Any] = {}
        self._flight_lock = threading.Lock()
        self.accounting = Accounting(
            embedding_model=self.core.embedding_model, prices=as_price_table(prices), clock=clock
        )
        self._listener: Listener | None = None
        if self.core.l1 is not None:
            subscriber = _cluster.subscriber(client)
            self._listener = Listener(self.core.l1, lambda: subscriber).start()

    def _stop_listener(self) -> None:
        if self._listener is not None:
            self._listener.stop()

    def _breaker_changed(self, state: str) -> None:
        """Count the breaker's state changes in the stats (flushed once Redis answers again)."""
        self.accounting.breaker(self.namespace, opened=state == "open")

    @property
    def namespace(self) -> str:
        return self.config.namespace

    def plan(
        self,
        request: Mapping[str, Any],
        *,
        tenant: str | None = None,
        namespace: str | None = None,
        threshold: float | None = None,
    ) -> Plan:
        """Canonicalise a request without I/O; raises InvalidRequestError for a malformed one."""
        return self.core.plan(request, tenant=tenant, namespace=namespace, threshold=threshold)

    def preload(self) -> None:
        """Load the embedding model (and a verifier the decision stage holds) now, so that the
        first semantic lookup does not wait for it. No Redis I/O.

        Example::

            cache = semcache.Cache()
            cache.preload()      # at start-up, before traffic
        """
        from semcache._preload import preload

        preload(self.embedder, self.core.decision)

    def _embedder(self) -> Embedder:
        if self.embedder is None:
            raise ConfigurationError("this cache has no semantic layer, so no embedder")
        return self.embedder

    def _startup(self) -> Flow[None]:
        # FT.INFO names a key (the index, hash-tagged), so a cluster routes it to the node that
        # will serve this namespace; a missing index answers an error of its own.
        (reply,) = yield Commands((("FT.INFO", self.core.keys().index),))
        if isinstance(reply, ResponseError) and "unknown command" in str(reply).lower():
            raise SearchModuleMissingError(
                "this Redis server has no search module (RediSearch with vector fields); use "
                "Redis 8, Redis Stack, a managed Redis with search, or semcache's embedded server"
            )
        if self.config.semantic:
            yield from self.core.ensure_index(self.core.keys())
        self._started = True

    def _guarded(self, flow: Flow[T]) -> Flow[T]:
        if not self._started:
            yield from self._startup()
        return (yield from flow)


def _drive(flow: Generator[OpT, Any, T], execute: Callable[[OpT], Any]) -> T:
    """Run a flow to its end, executing each operation it yields."""
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            op = flow.throw(error) if error is not None else flow.send(value)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        try:
            value, error = execute(op), None
        except Exception as exc:
            value, error = None, exc


async def _adrive(flow: Generator[OpT, Any, T], execute: Callable[[OpT], Awaitable[Any]]) -> T:
    """The async twin of :func:`_drive`."""
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            op = flow.throw(error) if error is not None else flow.send(value)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        try:
            value, error = await execute(op), None
        except Exception as exc:
            value, error = None, exc


def _miss(plan: Plan, reason: str) -> LookupResult:
    return LookupResult(
        layer=None,
        key=plan.digest,
        reason=reason,
        namespace=plan.keys.namespace,
        tenant=plan.tenant,
    )


def _schema(schema: dict[str, Any]) -> Any:
    from redisvl.schema import IndexSchema

    return IndexSchema.from_dict(schema)


class Cache(_Shell[_cluster.Client]):
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

    def __init__(
        self,
        *,
        redis_url: str | None = None,
        redis_client: _cluster.Client | None = None,
        embedder: Embedder | None = None,
        namespace: str | None = None,
        threshold: float | None = None,
        ttl: TTL = "default",
        config: CacheConfig | None = None,
        timeout: float = 0.25,
        clock: Callable[[], float] = time.time,
        prices: PriceTable | Mapping[str, Price] | None = None,
    ) -> None:
        cfg = _config(config, namespace, threshold, ttl)
        if redis_client is None and redis_url is not None:
            redis_client = _cluster.connect(redis_url, timeout, _NO_RETRY)
            self._owns_client = True
        elif redis_client is None:
            redis_client = redis.Redis.from_url(
                _default_url(), socket_timeout=timeout, socket_connect_timeout=timeout,
                retry=_NO_RETRY,
            )  # fmt: skip
            self._owns_client = True
        else:
            self._owns_client = False
        super().__init__(
            client=redis_client, config=cfg, embedder=embedder, clock=clock, prices=prices
        )
        try:
            _drive(self._startup(), self._execute)
        except (RedisError, OSError) as exc:
            log.warning("semcache: Redis unreachable at start (%s); cache steps aside", exc)

    # --- public API -----------------------------------------------------------------------------

    def lookup(
        self,
        request: Mapping[str, Any],
        *,
        tenant: str | None = None,
        namespace: str | None = None,
        threshold: float | None = None,
        bypass: bool = False,
    ) -> LookupResult:
        """Look a request up: exact layer, then semantic. A miss is a result, never an exception.

        Raises InvalidRequestError (before any I/O) for a malformed request.
        """
        plan = self.plan(request, tenant=tenant, namespace=namespace, threshold=threshold)
        if bypass:
            return _miss(plan, "bypass")
        return self.lookup_plan(plan)

    def lookup_plan(self, plan: Plan) -> LookupResult:
        """Look up an already planned request."""
        start = time.perf_counter()
        result = _timed(self._run(self.core.lookup(plan), _miss(plan, "unavailable")), start)
        if self.accounting.lookup(plan, result):
            self._run(self.accounting.flush(), None)
        return result

    def store(
        self,
        request: Mapping[str, Any],
        response: Mapping[str, Any],
        *,
        tenant: str | None = None,
        namespace: str | None = None,
        ttl: TTL = "default",
        tags: Iterable[str] = (),
        latency_ms: float | None = None,
        cost_usd: float | None = None,
        streamed: bool = False,
    ) -> bool:
        """Store a response for a request in both layers; True when Redis took it."""
        plan = self.plan(request, tenant=tenant, namespace=namespace)
        return self.store_plan(
            plan, response, ttl=ttl, tags=tags, latency_ms=latency_ms, cost_usd=cost_usd,
            streamed=streamed,
        )  # fmt: skip

    def store_plan(self, plan: Plan, response: Mapping[str, Any], **options: Any) -> bool:
        """Store for an already planned request (options as :meth:`store`)."""
        start = time.perf_counter()
        stored = self._run(self.core.store(plan, response, **options), False)
        if self.accounting.store(plan, (time.perf_counter() - start) * 1000, stored):
            self._run(self.accounting.flush(), None)
        return stored

    def store_many(
        self,
        pairs: Iterable[tuple[Mapping[str, Any], Mapping[str, Any]]],
        *,
        tenant: str | None = None,
        namespace: str | None = None,
        ttl: TTL = "default",
        tags: Iterable[str] = (),
    ) -> int:
        """Store many ``(request, response)`` pairs at once: their semantic texts are embedded in
        one batch (through the embedding cache) and every write goes in one pipeline. Returns how
        many pairs Redis took. Raises InvalidRequestError, before any I/O, for a malformed request.

        Example::

            cache.store_many([(request_a, answer_a), (request_b, answer_b)], tags=("faq",))
        """
        items = [(self.plan(q, tenant=tenant, namespace=namespace), a) for q, a in pairs]
        return self._run(self.core.store_many(items, ttl=ttl, tags=tags), 0)

    def embed(self, texts: list[str]) -> Any:
        """Vectors for texts through the embedding cache (float32, one row per text); with Redis
        unavailable, straight from the embedder."""
        found = self._run(self.core.embed(texts), None)
        return found if found is not None else self._embedder().embed(list(texts))

    def cached_vectors(self, model: str, texts: list[str]) -> list[bytes | None]:
        """Float32 bytes an upstream embedding ``model`` made for each text, or None where not
        cached (or where Redis is unavailable)."""
        missing: list[bytes | None] = [None] * len(texts)
        found = self._run(self.core.cached_vectors(model, texts), missing)
        if self.accounting.vectors(self.namespace, model, texts, found):
            self._run(self.accounting.flush(), None)
        return found

    def store_vectors(self, model: str, texts: list[str], vectors: list[bytes]) -> None:
        """Cache float32 bytes an upstream embedding ``model`` made for each text."""
        self._run(self.core.store_vectors(model, texts, vectors), None)

    def invalidate(
        self,
        *,
        keys: Iterable[str] = (),
        tags: Iterable[str] = (),
        tenant: str | None = None,
        all_tenants: bool = False,
        namespace: str | None = None,
    ) -> int:
        """Remove entries by key digest (``LookupResult.key``) or by tag, from both layers, for one
        tenant (or all with ``all_tenants=True``). Returns the number of Redis keys removed."""
        flow = self.core.invalidate(
            keys=keys, tags=tags, tenant=tenant, all_tenants=all_tenants, namespace=namespace
        )
        return _drive(flow, self._execute)

    def invalidate_tenant(self, tenant: str | None, *, namespace: str | None = None) -> int:
        """Remove every entry of one tenant in a namespace."""
        return _drive(self.core.drop(namespace=namespace, tenant=tenant or ""), self._execute)

    def flush(self, *, namespace: str | None = None) -> int:
        """Remove every entry of a namespace (default: this cache's) and drop its index."""
        return _drive(self.core.drop(namespace=namespace), self._execute)

    def feedback(self, result: LookupResult, correct: bool) -> bool:
        """Say whether a lookup's answer was right: the evidence of the entry's own threshold.

        On a semantic hit it labels the entry that answered; on a semantic miss (when the caller
        compared the fresh answer with the nearest candidate's), that candidate. Returns True when
        an entry's evidence was updated. See :class:`semcache.PerEntryThresholds`.

        Example::

            result = cache.lookup(request)
            if result.hit and user_says_wrong:
                cache.feedback(result, correct=False)
        """
        applied = self._run(self.core.feedback(result, bool(correct)), False)
        if self.accounting.feedback(result.namespace or self.namespace, bool(correct), applied):
            self._run(self.accounting.flush(), None)
        return applied

    def stats(
        self, *, namespace: str | None = None, days: int | None = None, local: bool = False
    ) -> Stats:
        """What the cache saved and cost, per layer (see :class:`semcache.Stats`).

        Args:
            namespace: whose counters (default: this cache's namespace).
            days: only the last ``days`` days (UTC), today included; None: every day kept.
            local: this process's counters only, without Redis.

        Pending counters are flushed first, so the result includes this process's latest lookups
        and every other process's flushed ones. When Redis is unavailable, this process's counters
        are returned (``source="process"``).
        """
        ns = check_namespace(namespace) if namespace is not None else self.namespace
        if not local:
            self._run(self.accounting.flush(), None)
            found = self._run(self.accounting.read(ns, days), None)
            if found is not None:
                return found
        return self.accounting.local(ns)

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

    def join_flight(self, plan: Plan) -> Flight:
        """The start of :meth:`single_flight`, for callers that cannot use a ``with`` block: blocks
        while another caller computes the same request. Always pair with :meth:`leave_flight`."""
        with self._flight_lock:
            event = self._flights.get(plan.exact_key)
            leader = event is None
            if event is None:
                event = self._flights[plan.exact_key] = threading.Event()
        if not leader:
            event.wait(self.config.stampede_wait)
            shared = self.lookup_plan(plan)
            return Flight(plan, shared if shared.hit else None)
        flight = Flight(plan, leader=True, lock=token(), event=event)
        assert flight.lock is not None
        held = self._run(acquire(plan, flight.lock, _ms(self.config.lock_ttl)), False)
        if not held:
            flight.lock = None
        # Waiting for another process, or (holding the lock) checking once more: a caller whose
        # lookup missed just before another stored the answer must not call upstream again.
        wait = 0.0 if held else self.config.stampede_wait
        flight.shared = self._run(await_entry(self.core, plan, wait), None)
        return flight

    def leave_flight(self, flight: Flight) -> None:
        """The end of :meth:`single_flight`: free the lock and wake the callers waiting."""
        if flight.lock is not None:
            self._run(release(flight.plan, flight.lock), None)
        if flight.leader:
            with self._flight_lock:
                self._flights.pop(flight.plan.exact_key, None)
            flight.event.set()

    def close(self) -> None:
        """Flush pending counters and close the Redis client if the cache made it."""
        self._run(self.accounting.flush(), None)
        self._stop_listener()
        if self._owns_client:
            self.client.close()

    def __enter__(self) -> Cache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- I/O ------------------------------------------------------------------------------------

    def _run(self, flow: Flow[T], fallback: T) -> T:
        if not self.breaker.allow():
            return fallback
        try:
            value = _drive(self._guarded(flow), self._execute)
        except ConfigurationError as exc:
            log.error("semcache: %s", exc)
            return fallback
        except STEP_ASIDE as exc:
            self.breaker.failure(exc)
            log.debug("semcache: cache operation failed: %r", exc)
            return fallback
        self.breaker.success()
        return value

    def _execute(self, op: Op) -> Any:
        if isinstance(op, Commands):
            one = _as_one(op.commands, isinstance(self.client, _cluster.RedisCluster))
            if one is not None:  # one command: no pipeline object, the hot path of exact hits
                command, unpack = one
                try:
                    return unpack(self.client.execute_command(*command))  # type: ignore[no-untyped-call]
                except ResponseError as exc:
                    return [exc] * len(op.commands)
            pipe = self.client.pipeline(transaction=False)
            for command in op.commands:
                pipe.execute_command(*command)
            return pipe.execute(raise_on_error=False)
        if isinstance(op, Embed):
            assert self.embedder is not None
            return self.embedder.embed(list(op.texts))
        if isinstance(op, CreateIndex):
            from redisvl.index import SearchIndex

            if isinstance(self.client, _cluster.RedisCluster):
                return _cluster.create_index(self.client, _schema(op.schema))
            index = SearchIndex(_schema(op.schema), redis_client=self.client)
            with _index_errors():
                if not index.exists():
                    index.create(overwrite=False)
            return None
        if isinstance(op, Call):
            return op.fn(*op.args)
        if isinstance(op, Sleep):
            return time.sleep(op.seconds)
        assert isinstance(op, Scan)
        return list(self.client.scan_iter(match=op.pattern, count=1000))


class AsyncCache(_Shell[_cluster.AsyncClient]):
    """The asyncio twin of :class:`Cache`: the same arguments and methods, awaited.

    Checks (search module, index dimension) run on ``await cache.connect()``, ``async with``, or the
    first call.
    """

    def __init__(
        self,
        *,
        redis_url: str | None = None,
        redis_client: _cluster.AsyncClient | None = None,
        embedder: Embedder | None = None,
        namespace: str | None = None,
        threshold: float | None = None,
        ttl: TTL = "default",
        config: CacheConfig | None = None,
        timeout: float = 0.25,
        clock: Callable[[], float] = time.time,
        prices: PriceTable | Mapping[str, Price] | None = None,
    ) -> None:
        cfg = _config(config, namespace, threshold, ttl)
        self._owns_client = redis_client is None
        if redis_client is None and redis_url is not None:
            redis_client = _cluster.aconnect(redis_url, timeout, _NO_RETRY_ASYNC)
        elif redis_client is None:
            redis_client = redis.asyncio.Redis.from_url(
                _default_url(), socket_timeout=timeout, socket_connect_timeout=timeout,
                retry=_NO_RETRY_ASYNC,
            )  # fmt: skip
        super().__init__(
            client=redis_client, config=cfg, embedder=embedder, clock=clock, prices=prices
        )

    async def connect(self) -> AsyncCache:
        """Check the server and create the index now; raises ConfigurationError on a mismatch."""
        try:
            await _adrive(self._startup(), self._execute)
        except (RedisError, OSError) as exc:
            log.warning("semcache: Redis unreachable at start (%s); cache steps aside", exc)
        return self

    async def lookup(
        self,
        request: Mapping[str, Any],
        *,
        tenant: str | None = None,
        namespace: str | None = None,
        threshold: float | None = None,
        bypass: bool = False,
    ) -> LookupResult:
        """See :meth:`Cache.lookup`."""
        plan = self.plan(request, tenant=tenant, namespace=namespace, threshold=threshold)
        if bypass:
            return _miss(plan, "bypass")
        return await self.lookup_plan(plan)

    async def lookup_plan(self, plan: Plan) -> LookupResult:
        start = time.perf_counter()
        result = _timed(await self._run(self.core.lookup(plan), _miss(plan, "unavailable")), start)
        if self.accounting.lookup(plan, result):
            await self._run(self.accounting.flush(), None)
        return result

    async def store(
        self,
        request: Mapping[str, Any],
        response: Mapping[str, Any],
        *,
        tenant: str | None = None,
        namespace: str | None = None,
        ttl: TTL = "default",
        tags: Iterable[str] = (),
        latency_ms: float | None = None,
        cost_usd: float | None = None,
        streamed: bool = False,
    ) -> bool:
        """See :meth:`Cache.store`."""
        plan = self.plan(request, tenant=tenant, namespace=namespace)
        return await self.store_plan(
            plan, response, ttl=ttl, tags=tags, latency_ms=latency_ms, cost_usd=cost_usd,
            streamed=streamed,
        )  # fmt: skip

    async def store_plan(self, plan: Plan, response: Mapping[str, Any], **options: Any) -> bool:
        start = time.perf_counter()
        stored = await self._run(self.core.store(plan, response, **options), False)
        if self.accounting.store(plan, (time.perf_counter() - start) * 1000, stored):
            await self._run(self.accounting.flush(), None)
        return stored

    async def store_many(
        self,
        pairs: Iterable[tuple[Mapping[str, Any], Mapping[str, Any]]],
        *,
        tenant: str | None = None,
        namespace: str | None = None,
        ttl: TTL = "default",
        tags: Iterable[str] = (),
    ) -> int:
        """See :meth:`Cache.store_many`."""
        items = [(self.plan(q, tenant=tenant, namespace=namespace), a) for q, a in pairs]
        return await self._run(self.core.store_many(items, ttl=ttl, tags=tags), 0)

    async def embed(self, texts: list[str]) -> Any:
        """See :meth:`Cache.embed`."""
        found = await self._run(self.core.embed(texts), None)
        return found if found is not None else await self._embedder().aembed(list(texts))

    async def cached_vectors(self, model: str, texts: list[str]) -> list[bytes | None]:
        """See :meth:`Cache.cached_vectors`."""
        missing: list[bytes | None] = [None] * len(texts)
        found = await self._run(self.core.cached_vectors(model, texts), missing)
        if self.accounting.vectors(self.namespace, model, texts, found):
            await self._run(self.accounting.flush(), None)
        return found

    async def store_vectors(self, model: str, texts: list[str], vectors: list[bytes]) -> None:
        """See :meth:`Cache.store_vectors`."""
        await self._run(self.core.store_vectors(model, texts, vectors), None)

    async def invalidate(
        self,
        *,
        keys: Iterable[str] = (),
        tags: Iterable[str] = (),
        tenant: str | None = None,
        all_tenants: bool = False,
        namespace: str | None = None,
    ) -> int:
        """See :meth:`Cache.invalidate`."""
        flow = self.core.invalidate(
            keys=keys, tags=tags, tenant=tenant, all_tenants=all_tenants, namespace=namespace
        )
        return await _adrive(flow, self._execute)

    async def invalidate_tenant(self, tenant: str | None, *, namespace: str | None = None) -> int:
        """See :meth:`Cache.invalidate_tenant`."""
        return await _adrive(
            self.core.drop(namespace=namespace, tenant=tenant or ""), self._execute
        )

    async def flush(self, *, namespace: str | None = None) -> int:
        """See :meth:`Cache.flush`."""
        return await _adrive(self.core.drop(namespace=namespace), self._execute)

    async def feedback(self, result: LookupResult, correct: bool) -> bool:
        """See :meth:`Cache.feedback`."""
        applied = await self._run(self.core.feedback(result, bool(correct)), False)
        if self.accounting.feedback(result.namespace or self.namespace, bool(correct), applied):
            await self._run(self.accounting.flush(), None)
        return applied

    async def stats(
        self, *, namespace: str | None = None, days: int | None = None, local: bool = False
    ) -> Stats:
        """See :meth:`Cache.stats`."""
        ns = check_namespace(namespace) if namespace is not None else self.namespace
        if not local:
            await self._run(self.accounting.flush(), None)
            found = await self._run(self.accounting.read(ns, days), None)
            if found is not None:
                return found
        return self.accounting.local(ns)

    @contextlib.asynccontextmanager
    async def single_flight(self, plan: Plan) -> AsyncIterator[LookupResult | None]:
        """See :meth:`Cache.single_flight`."""
        flight = await self.join_flight(plan)
        try:
            yield flight.shared
        finally:
            await self.leave_flight(flight)

    async def join_flight(self, plan: Plan) -> Flight:
        """See :meth:`Cache.join_flight`."""
        event = self._flights.get(plan.exact_key)
        if event is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), self.config.stampede_wait)
            shared = await self.lookup_plan(plan)
            return Flight(plan, shared if shared.hit else None)
        event = self._flights[plan.exact_key] = asyncio.Event()
        flight = Flight(plan, leader=True, lock=token(), event=event)
        assert flight.lock is not None
        held = await self._run(acquire(plan, flight.lock, _ms(self.config.lock_ttl)), False)
        if not held:
            flight.lock = None
        wait = 0.0 if held else self.config.stampede_wait  # see Cache.join_flight
        flight.shared = await self._run(await_entry(self.core, plan, wait), None)
        return flight

    async def leave_flight(self, flight: Flight) -> None:
        """See :meth:`Cache.leave_flight`."""
        if flight.lock is not None:
            await self._run(release(flight.plan, flight.lock), None)
        if flight.leader:
            self._flights.pop(flight.plan.exact_key, None)
            flight.event.set()

    async def aclose(self) -> None:
        """Flush pending counters and close the Redis client if the cache made it."""
        await self._run(self.accounting.flush(), None)
        await asyncio.to_thread(self._stop_listener)
        if self._owns_client:
            await self.client.aclose()

    async def __aenter__(self) -> AsyncCache:
        return await self.connect()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _run(self, flow: Flow[T], fallback: T) -> T:
        if not self.breaker.allow():
            return fallback
        try:
            value = await _adrive(self._guarded(flow), self._execute)
        except ConfigurationError as exc:
            log.error("semcache: %s", exc)
            return fallback
        except (TimeoutError, *STEP_ASIDE) as exc:
            self.breaker.failure(exc)
            log.debug("semcache: cache operation failed: %r", exc)
            return fallback
        self.breaker.success()
        return value

    async def _execute(self, op: Op) -> Any:
        if isinstance(op, Commands):
            one = _as_one(op.commands, isinstance(self.client, _cluster.AsyncRedisCluster))
            if one is not None:
                command, unpack = one
                try:
                    return unpack(await self.client.execute_command(*command))
                except ResponseError as exc:
                    return [exc] * len(op.commands)
            pipe = self.client.pipeline(transaction=False)
            for command in op.commands:
                pipe.execute_command(*command)
            return await pipe.execute(raise_on_error=False)
        if isinstance(op, Embed):
            assert self.embedder is not None
            return await self.embedder.aembed(list(op.texts))
        if isinstance(op, CreateIndex):
            from redisvl.index import AsyncSearchIndex

            if isinstance(self.client, _cluster.AsyncRedisCluster):
                return await _cluster.acreate_index(self.client, _schema(op.schema))
            index = AsyncSearchIndex(_schema(op.schema), redis_client=self.client)
            with _index_errors():
                if not await index.exists():
                    await index.create(overwrite=False)
            return None
        if isinstance(op, Call):
            if op.afn is not None:
                return await op.afn(*op.args)
            return await asyncio.to_thread(op.fn, *op.args)
        if isinstance(op, Sleep):
            return await asyncio.sleep(op.seconds)
        assert isinstance(op, Scan)
        return [key async for key in self.client.scan_iter(match=op.pattern, count=1000)]


def _as_one(
    commands: tuple[tuple[Any, ...], ...], cluster: bool
) -> tuple[tuple[Any, ...], Callable[[Any], list[Any]]] | None:
    """A batch that one plain command can carry (a single command, or GETs as one MGET on a
    single node), with how to turn its reply back into one reply per command; None otherwise."""
    if len(commands) == 1:
        return commands[0], lambda reply: [reply]
    if not cluster and all(len(c) == 2 and c[0] == "GET" for c in commands):
        return ("MGET", *(c[1] for c in commands)), list
    return None


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def _timed(result: LookupResult, start: float) -> LookupResult:
    import dataclasses

    return dataclasses.replace(result, lookup_ms=(time.perf_counter() - start) * 1000)
