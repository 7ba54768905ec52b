"""What ``Cache`` and ``AsyncCache`` do, written once: :class:`Flows`, one flow per public method.

Planning, the breaker, the one-time startup check, timing, accounting and counter writes all live
in these flows; the shells in ``_shell.py`` only drive them (sync) or await them (async) on their
executor (``semcache.redis.executor``).
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import functools
import logging
import threading
import time
import weakref
from collections.abc import (
    Callable,
    Iterable,
    Mapping,
    Sequence,
)
from typing import Any, Generic, ParamSpec, TypeVar

import numpy as np
import numpy.typing as npt
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError, NoPermissionError, RedisError
from redis.retry import Retry

from semcache._errors import ConfigurationError, InvalidRequestError, SearchModuleMissingError
from semcache.accounting.accounting import Accounting
from semcache.accounting.prices import Price, PriceTable, as_price_table
from semcache.accounting.stats import Stats
from semcache.core.config import CacheConfig
from semcache.core.engine import TTL, Core
from semcache.core.ops import Call, Commands, Defer, Embed, Flow, Wait
from semcache.core.plan import Plan, ms
from semcache.core.resilience import Breaker
from semcache.core.stampede import (
    Flight,
    acquire,
    await_entry,
    follower_wait,
    owns_lock,
    release,
    token,
)
from semcache.core.types import LookupResult, check_namespace, check_response, with_lookup_ms
from semcache.core.vectors import check_vector, check_vectors
from semcache.decision.protocol import Decision
from semcache.embedding.default import default_local_embedder
from semcache.embedding.embedders import Batching, Embedder
from semcache.embedding.preload import preload
from semcache.redis import cluster, commands
from semcache.redis.executor import AsyncExecutor, SyncExecutor, exhausted
from semcache.redis.listener import Listener
from semcache.redis.replies import denied, unknown_command
from semcache.redis.urls import redact
from semcache.server import ensure_server

log = logging.getLogger("semcache")

T = TypeVar("T")
S = TypeVar("S", bound="Flows[Any, Any]")
P = ParamSpec("P")
E = TypeVar("E", SyncExecutor, AsyncExecutor)
C = TypeVar("C")

#: The cache's own client never retries: a failed cache call is a miss, and the breaker decides
#: when to try Redis again.
NO_RETRY = Retry(NoBackoff(), 0)
NO_RETRY_ASYNC = AsyncRetry(NoBackoff(), 0)

#: Times a leader that waited out another caller's lock tries to take it before it computes
#: without it (another caller took it meanwhile, or Redis does not answer).
LEAD_TRIES = 3

#: Failures of Redis or the network: the only ones that count against the circuit breaker.
REDIS_FAILURES = (RedisError, OSError, TimeoutError)


def _config(
    config: CacheConfig | None, namespace: str | None, threshold: float | None, ttl: TTL
) -> CacheConfig:
    config = config or CacheConfig()
    overrides: dict[str, Any] = {}
    if namespace is not None:
        overrides["namespace"] = namespace
    if threshold is not None:
        overrides["threshold"] = threshold
    if ttl != "default":
        overrides["ttl"] = ttl
    return config if not overrides else dataclasses.replace(config, **overrides)


class Base(Generic[E, C]):
    """What the shells share besides their flows: configuration, the core, the breaker, the
    accounting, the L1 listener, and how a flow runs (behind the breaker, after the startup check)."""

    #: What single-flight followers wait on (``threading.Event`` or ``asyncio.Event``).
    _new_event: Callable[[], Any]

    def __init__(
        self,
        *,
        redis_url: str | None = None,
        redis_client: C | None = None,
        embedder: Embedder | None = None,
        namespace: str | None = None,
        threshold: float | None = None,
        ttl: TTL = "default",
        config: CacheConfig | None = None,
        timeout: float = 0.25,
        clock: Callable[[], float] = time.time,
        prices: PriceTable | Mapping[str, Price] | None = None,
    ) -> None:
        config = _config(config, namespace, threshold, ttl)
        if config.semantic and embedder is None:
            embedder = Batching(default_local_embedder())
        self.config = config
        self.embedder = embedder
        self._owns_client = redis_client is None
        self._url = redis_url
        # Asked now and, while the node cannot answer, again before each round trip (the executor
        # switches to a cluster client once it does); the embedded server is never a cluster.
        detector = cluster.Detector(redis_url if redis_client is None else None, timeout)
        remake = None
        if redis_client is None:
            url = redis_url if redis_url is not None else ensure_server().url
            redis_client = self._connect(url, timeout, cluster_mode=bool(detector.cluster))
            remake = functools.partial(self._connect, url, timeout)
        self._executor: E = self._executor_of(redis_client, embedder, detector)
        self._executor.remake = remake  # a client of its own again: see AsyncExecutor.moved
        self._core = Core(config, embedder, clock=clock)
        self._core.single_node = lambda: not self._executor.cluster
        self._breaker = Breaker(on_change=self._breaker_changed)
        self._started = False
        self._flights: dict[str, Flight] = {}
        self._flight_lock = threading.Lock()
        self._accounting = Accounting(
            embedding_model=self._core.embedding_model, prices=as_price_table(prices), clock=clock
        )
        self._listener: Listener | None = None
        if self._core.l1 is not None:
            subscriber = cluster.subscriber(redis_client)
            self._listener = Listener(self._core.l1, lambda: subscriber).start()
        _LIVE.add(self)
        self._opened()

    # --- what differs between the shells --------------------------------------------------------

    @staticmethod
    def _connect(url: str, timeout: float, *, cluster_mode: bool) -> C:
        """The shell's own Redis client for ``url`` (it never retries: a failed call is a miss)."""
        raise NotImplementedError

    @staticmethod
    def _executor_of(client: C, embedder: Embedder | None, detector: cluster.Detector) -> E:
        raise NotImplementedError

    def _opened(self) -> None:
        """What the shell does once built (the sync one checks the server at once)."""

    def _write_at_exit(self) -> None:
        """Write pending counters from the exit handler (no event loop runs there)."""
        raise NotImplementedError

    # --- what other modules may ask -------------------------------------------------------------

    @property
    def namespace(self) -> str:
        return self.config.namespace

    @property
    def client(self) -> Any:
        """The Redis client the cache sends its commands with."""
        return self._executor.client

    @property
    def available(self) -> bool:
        """False while the circuit breaker has the cache stepping aside (Redis failing)."""
        return self._breaker.state == "closed"

    @property
    def decision(self) -> Decision:
        """The decision stage the semantic layer uses (``config.decision`` or the default)."""
        return self._core.decision

    def preload(self) -> None:
        """Load the embedding model, a verifier the decision stage holds and the price table now, so
        that the first semantic lookup does not wait for the models, nor the first hit for the
        prices it counts as saved. No Redis I/O.

        Example::

            cache = semcache.Cache()
            cache.preload()      # at start-up, before traffic
        """
        preload(self.embedder, self._core.decision, self._accounting.prices)

    def plan(
        self,
        request: Mapping[str, Any],
        *,
        tenant: str | None = None,
        namespace: str | None = None,
        threshold: float | None = None,
        upstream: str | None = None,
    ) -> Plan:
        """Canonicalise a request without I/O; raises InvalidRequestError for a malformed one.
        ``upstream`` names the server that answers it: entries of different servers never match
        (a wrapped client passes its base URL)."""
        return self._core.planner.plan(
            request, tenant=tenant, namespace=namespace, threshold=threshold, upstream=upstream
        )

    def bypasses(self, plan: Plan) -> bool:
        """True when the cache neither looks this request up nor stores it (e.g. a stochastic
        request under ``stochastic="bypass"``)."""
        return self._core.planner.bypass_reason(plan) is not None

    def stores(self, plan: Plan) -> bool:
        """True when a miss of this request would be stored (not read-only, not bypassed)."""
        return not self.config.read_only and not self.bypasses(plan)

    # --- running flows --------------------------------------------------------------------------

    def _breaker_changed(self, state: str) -> None:
        """Count the breaker's state changes in the stats (flushed once Redis answers again)."""
        self._accounting.breaker(self.namespace, opened=state == "open")

    def _startup(self) -> Flow[None]:
        # FT.INFO names a key (the index, hash-tagged), so a cluster routes it to the node that
        # will serve this namespace; a missing index answers an error of its own.
        (reply,) = yield Commands((commands.index_info(self._core.planner.keys().index),))
        if unknown_command(reply):
            raise SearchModuleMissingError(
                "this Redis server has no search module (RediSearch with vector fields); use "
                "Redis 8, Redis Stack, a managed Redis with search, or semcache's embedded server"
            )
        if self.config.semantic:
            yield from self._core.semantic.ensure_index(self._core.planner.keys())
        self._started = True

    def _f_connect(self) -> Flow[None]:
        """The startup check, where an unreachable Redis is only logged (the cache steps aside
        until it answers); a server without search or an index of another dimension raises."""
        try:
            yield from self._startup()
        except AuthenticationError as exc:
            raise self._refused() from exc
        except NoPermissionError as exc:  # it answered: the user may not run what the cache needs
            raise self._not_allowed(exc) from exc
        except (RedisError, OSError) as exc:
            log.warning("semcache: Redis unreachable at start (%s); cache steps aside", exc)

    def _not_allowed(self, exc: NoPermissionError) -> ConfigurationError:
        """An ACL that refuses the startup's index commands: said at construction too. It used to
        read "Redis unreachable", open the breaker and switch the exact layer off with it."""
        where = redact(self._url) if self._url else "the given client"
        return ConfigurationError(
            f"Redis at {where} does not let this user run a command the cache needs ({exc}): "
            "grant it FT.INFO, FT.CREATE and FT.SEARCH besides the string, hash and set commands, "
            "or turn the semantic layer off (CacheConfig(semantic=False))"
        )

    def _refused(self) -> ConfigurationError:
        """A wrong or missing password: a configuration mistake, said at construction (as a
        missing search module is), not a stream of misses."""
        where = redact(self._url) if self._url else "the given client"
        return ConfigurationError(
            f"Redis at {where} refused the connection's credentials (a wrong or missing "
            "password): give it in the URL (redis://:PASSWORD@host:port/0) or in the client"
        )

    def _f_closing(self) -> Flow[None]:
        """Before the client closes: write pending counters, stop the L1 listener."""
        _LIVE.discard(self)
        yield from self._safe(self._accounting.write(), None)
        yield from self._safe(self._send_deferred(), None)
        yield Call(self._stop_listener)

    def _send_deferred(self) -> Flow[None]:
        yield Commands(())  # an empty round trip carries what waits to ride with the next one

    def _safe(self, flow: Flow[T], fallback: T) -> Flow[T]:
        """Run ``flow`` behind the breaker (and the one-time startup check): a Redis failure, a
        configuration the server refuses, or a bug gives ``fallback`` instead of an error; bad
        input raises InvalidRequestError (see :meth:`_failed`)."""
        if not self._breaker.allow():
            return fallback
        try:
            if not self._started:
                yield from self._startup()
            value = yield from flow
        except Exception as exc:
            self._failed(exc)
            return fallback
        self._breaker.success()
        return value

    def _failed(self, exc: Exception) -> None:
        """What a failed cache operation means. Bad input is the caller's (raised); Redis or the
        network failing counts against the breaker (a client whose pool has no connection free is
        busy, not failing: not counted); anything else is a bug (ours or a plugin's):
        logged with its traceback, and only this operation steps aside."""
        if isinstance(exc, InvalidRequestError):
            raise exc
        if isinstance(exc, ConfigurationError):
            log.error("semcache: %s", exc)
        elif denied(exc):  # the ACL's answer: not Redis failing
            log.error("semcache: the Redis user may not run a command: %s", exc)
        elif exhausted(exc):  # the client's own pool is full: busy, not Redis failing
            log.debug("semcache: no Redis connection free, this operation skips the cache: %s", exc)
        elif isinstance(exc, REDIS_FAILURES):
            self._breaker.failure(exc)
            log.debug("semcache: cache operation failed: %r", exc)
        else:
            log.warning("semcache: unexpected error; this operation skips the cache", exc_info=exc)

    def _count(self, due: bool) -> Flow[None]:
        """Write the pending counters when the accounting says they are due."""
        if due:
            yield from self._safe(self._accounting.write(), None)

    def _f_count_indexes(self) -> Flow[int]:
        """How many search indexes the server has (any program's); raises when Redis or its search
        module does not answer (``semcache doctor``)."""
        (reply,) = yield Commands((commands.list_indexes(),))
        if isinstance(reply, Exception):
            raise reply
        return len(reply)

    def _f_write_counters(self) -> Flow[None]:
        """Write this process's pending counters to Redis now (they are written in batches
        anyway, and on close)."""
        yield from self._safe(self._accounting.write(), None)

    def _stop_listener(self) -> None:
        if self._listener is not None:
            self._listener.stop()


#: Every cache not closed yet, so that a process that never calls close() still writes its counters.
_LIVE: weakref.WeakSet[Base[Any, Any]] = weakref.WeakSet()


@atexit.register
def _write_at_exit() -> None:
    for cache in list(_LIVE):
        with contextlib.suppress(Exception):  # Redis gone at exit: the counters are lost
            cache._write_at_exit()


class Layers(Base[E, C]):
    """The flows of the lookups, stores, vectors, invalidation, feedback and stats."""

    # --- the flows of the public methods --------------------------------------------------------

    def _f_lookup(
        self,
        request: Mapping[str, Any],
        *,
        tenant: str | None = None,
        namespace: str | None = None,
        threshold: float | None = None,
        bypass: bool = False,
        vector: npt.ArrayLike | None = None,
    ) -> Flow[LookupResult]:
        """Look a request up: exact layer, then semantic. A miss is a result, never an exception.

        ``vector``: the embedding of the request's semantic text, for a caller that has it (made
        by this cache's embedder model): it is used as given, never embedded again, and its
        KNN search rides with the exact read, in one round trip.

        Raises InvalidRequestError (before any I/O) for a malformed request, or a vector that is not
        one finite row of the embedder's dimension.

        Example::

            result = cache.lookup(request, vector=embedding)   # embedding: 384 floats
        """
        plan = self.plan(request, tenant=tenant, namespace=namespace, threshold=threshold)
        checked = self._vector(vector)  # before the bypass: a bad vector is an error either way
        if bypass:
            return self._core.planner.miss(plan, "bypass")
        result, _ = yield from self._looked_up(plan, None, checked)
        return result

    def _f_lookup_plan(
        self, plan: Plan, *, vector: npt.ArrayLike | None = None
    ) -> Flow[LookupResult]:
        """Look up an already planned request (``vector`` as in :meth:`lookup`)."""
        result, _ = yield from self._looked_up(plan, None, self._vector(vector))
        return result

    def _vector(self, vector: npt.ArrayLike | None) -> npt.NDArray[np.float32] | None:
        return None if vector is None else self._core.embeddings.check(vector)

    def _looked_up(
        self,
        plan: Plan,
        lock: tuple[str, int] | None,
        vector: npt.NDArray[np.float32] | None = None,
    ) -> Flow[tuple[LookupResult, bool]]:
        """A timed, counted lookup (taking the compute lock with it when ``lock`` is given)."""
        start = time.perf_counter()
        found = yield from self._safe(self._core.lookup_or_lock(plan, lock, vector), None)
        result, locked = found or (self._core.planner.miss(plan, "unavailable"), False)
        result = with_lookup_ms(result, (time.perf_counter() - start) * 1000)
        yield from self._count(self._accounting.lookup(plan, result))
        return result, locked

    def _f_store(
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
        vector: Sequence[float] | npt.NDArray[Any] | None = None,
    ) -> Flow[bool]:
        """Store a response for a request in both layers; True when Redis took it.

        ``vector``: the embedding of the request's semantic text when the caller already holds it
        (the embedder's dimension, finite values; normalised here). It is used as given, never
        embedded again, and not written to the embedding cache. A bad one raises
        InvalidRequestError before any I/O.
        """
        plan = self.plan(request, tenant=tenant, namespace=namespace)
        flow = self._f_store_plan(
            plan, response, ttl=ttl, tags=tags, latency_ms=latency_ms, cost_usd=cost_usd,
            streamed=streamed, vector=vector,
        )  # fmt: skip
        return (yield from flow)

    def _f_store_plan(
        self,
        plan: Plan,
        response: Mapping[str, Any],
        *,
        ttl: TTL = "default",
        tags: Iterable[str] = (),
        latency_ms: float | None = None,
        cost_usd: float | None = None,
        streamed: bool = False,
        vector: Sequence[float] | npt.NDArray[Any] | None = None,
    ) -> Flow[bool]:
        """Store for an already planned request (arguments as :meth:`store`); raises
        InvalidRequestError, before any I/O, for a response that cannot be stored as JSON or a bad
        ``vector``."""
        check_response(response)
        flow = self._stored(
            plan, response, ttl=ttl, tags=tags, latency_ms=latency_ms, cost_usd=cost_usd,
            streamed=streamed, unlock=None, vector=self._own_vector(vector),
        )  # fmt: skip
        return (yield from flow)

    def _stored(self, plan: Plan, response: Mapping[str, Any], **store: Any) -> Flow[bool]:
        """A timed, counted store (``store``: the keyword arguments of ``Core.store``)."""
        start = time.perf_counter()
        stored = yield from self._safe(self._core.store(plan, response, **store), False)
        elapsed = (time.perf_counter() - start) * 1000
        yield from self._count(self._accounting.store(plan, elapsed, stored))
        return stored

    def _f_store_many(
        self,
        pairs: Iterable[tuple[Mapping[str, Any], Mapping[str, Any]]],
        *,
        tenant: str | None = None,
        namespace: str | None = None,
        ttl: TTL = "default",
        tags: Iterable[str] = (),
        vectors: Sequence[Sequence[float] | npt.NDArray[Any] | None] | None = None,
    ) -> Flow[int]:
        """Store many ``(request, response)`` pairs at once: their semantic texts are embedded in
        batches of 256 (through the embedding cache) and every write goes in one pipeline, after
        the last batch: an embedder failing midway stores none of them. Returns how
        many pairs Redis took in every layer they use (a pair not counted is not stored: store it
        again). Raises InvalidRequestError, before any I/O, for a malformed request or vector.

        ``vectors``: one embedding per pair (or None for a pair the embedder should embed), for
        callers who hold them already (as ``store(..., vector=)``; a 2-D array works).

        Example::

            cache.store_many([(request_a, answer_a), (request_b, answer_b)], tags=("faq",))
        """
        items = [
            (self.plan(q, tenant=tenant, namespace=namespace), check_response(a)) for q, a in pairs
        ]
        own = self._own_vectors(vectors, len(items))
        flow = self._core.store_many(items, ttl=ttl, tags=tags, vectors=own)
        return (yield from self._safe(flow, 0))

    def _own_vector(self, vector: Any) -> npt.NDArray[np.float32] | None:
        """A caller's vector, checked (see :meth:`_own_vectors`)."""
        if self.embedder is None or vector is None:
            return None
        return check_vector(vector, self.embedder.dimension)

    def _own_vectors(
        self, vectors: Sequence[Any] | None, count: int
    ) -> list[npt.NDArray[np.float32] | None]:
        """Callers' vectors, checked against the embedder's dimension (none without an embedder:
        without a semantic layer a vector has no use)."""
        if self.embedder is None or vectors is None:
            return [None] * count
        return check_vectors(vectors, count, self.embedder.dimension)

    def _f_embed(self, texts: list[str]) -> Flow[npt.NDArray[np.float32]]:
        """Vectors for texts through the embedding cache (float32, one row per text); with Redis
        unavailable, straight from the embedder."""
        if self.embedder is None:
            raise ConfigurationError("this cache has no semantic layer, so no embedder")
        found = yield from self._safe(self._core.embeddings.embed(texts), None)
        if found is None:
            found = np.asarray((yield Embed(tuple(texts))), dtype=np.float32)
        return found

    def _f_cached_vectors(
        self, model: str, texts: list[str], *, tenant: str | None = None
    ) -> Flow[list[bytes | None]]:
        """Float32 bytes an upstream embedding ``model`` made for each text (for ``tenant``: tenants
        never see each other's), or None where not cached (or where Redis is unavailable)."""
        missing: list[bytes | None] = [None] * len(texts)
        flow = self._core.embeddings.upstream(model, texts, tenant)
        found = yield from self._safe(flow, missing)
        yield from self._count(self._accounting.vectors(self.namespace, model, texts, found))
        return found

    def _f_store_vectors(
        self, model: str, texts: list[str], vectors: list[bytes], *, tenant: str | None = None
    ) -> Flow[None]:
        """Cache float32 bytes an upstream embedding ``model`` made for each text (for ``tenant``)."""
        flow = self._core.embeddings.store_upstream(model, texts, vectors, tenant)
        yield from self._safe(flow, None)

    def _f_invalidate(
        self,
        *,
        keys: Iterable[str] = (),
        tags: Iterable[str] = (),
        tenant: str | None = None,
        all_tenants: bool = False,
        namespace: str | None = None,
    ) -> Flow[int]:
        """Remove entries by key digest (``LookupResult.key``) or by tag, from both layers, for one
        tenant (or all with ``all_tenants=True``). Returns the number of Redis keys removed."""
        return (
            yield from self._core.invalidation.invalidate(
                keys=keys, tags=tags, tenant=tenant, all_tenants=all_tenants, namespace=namespace
            )
        )

    def _f_invalidate_tenant(
        self, tenant: str | None, *, namespace: str | None = None
    ) -> Flow[int]:
        """Remove every entry of one tenant in a namespace."""
        return (yield from self._core.invalidation.delete(namespace=namespace, tenant=tenant or ""))

    def _f_delete_namespace(self, *, namespace: str | None = None) -> Flow[int]:
        """Delete every entry of a namespace (default: this cache's) and drop its index."""
        return (yield from self._core.invalidation.delete(namespace=namespace))

    def _f_feedback(self, result: LookupResult, correct: bool) -> Flow[bool]:
        """Say whether a lookup's answer was right: the evidence of the entry's own threshold.

        On a semantic hit it labels the entry that answered; on a semantic miss (when the caller
        compared the fresh answer with the nearest candidate's), that candidate. Returns True when
        an entry's evidence was updated. See :class:`semcache.PerEntryThresholds`.

        Example::

            result = cache.lookup(request)
            if result.hit and user_says_wrong:
                cache.feedback(result, correct=False)
        """
        applied = yield from self._safe(self._core.feedback(result, bool(correct)), False)
        ns = result.namespace or self.namespace
        yield from self._count(self._accounting.feedback(ns, bool(correct), applied))
        return applied

    def _f_stats(
        self, *, namespace: str | None = None, days: int | None = None, local: bool = False
    ) -> Flow[Stats]:
        """What the cache saved and cost, per layer (see :class:`semcache.Stats`).

        Args:
            namespace: whose counters (default: this cache's namespace).
            days: only the last ``days`` days (UTC), today included; None: every day kept.
            local: this process's counters only, without Redis.

        Pending counters are written first, so the result includes this process's latest lookups
        and every other process's written ones. When Redis is unavailable, this process's counters
        are returned (``source="process"``).
        """
        ns = check_namespace(namespace) if namespace is not None else self.namespace
        if not local:
            yield from self._safe(self._accounting.write(), None)
            found = yield from self._safe(self._accounting.read(ns, days), None)
            if found is not None:
                return found
        return self._accounting.local(ns)


class Flows(Layers[E, C]):
    """Everything ``Cache`` and ``AsyncCache`` do, written once as flows over one executor: the
    layers' flows, and single flight (identical misses share one upstream call)."""

    def _f_join_flight(self, plan: Plan, *, timeout: float | None = None) -> Flow[Flight]:
        """The start of :meth:`single_flight`, for callers that cannot use a ``with`` block: waits
        while another caller computes the same request, at most ``config.stampede_wait`` seconds
        (or the caller's own ``timeout``). Always pair with :meth:`leave_flight`."""
        wait = follower_wait(self.config.stampede_wait, timeout)
        flight, ahead = self._joined(plan, token())
        if ahead is not None:
            return (yield from self._follow(plan, ahead, wait))
        assert flight.lock is not None
        held = yield from self._safe(acquire(plan, flight.lock, self._lock_ms()), False)
        return (yield from self._led(flight, held, recheck=True, wait=wait))

    def _f_lookup_and_join(
        self, plan: Plan, *, timeout: float | None = None, vector: npt.ArrayLike | None = None
    ) -> Flow[tuple[LookupResult, Flight | None]]:
        """:meth:`lookup_plan`, then, on a miss, :meth:`join_flight`, with the compute lock taken in
        the lookup's own round trip (a hit that took it frees it with the next round trip). Pair a
        flight with :meth:`store_and_leave` (which frees the lock with the store) or
        :meth:`leave_flight`. ``vector`` as in :meth:`lookup`."""
        checked = self._vector(vector)
        lock = token()
        result, locked = yield from self._looked_up(plan, (lock, self._lock_ms()), checked)
        if result.reason == "unavailable":  # the lock's reply may be lost: is the lock ours?
            locked = yield from self._safe(owns_lock(plan, lock), False)
        release = Defer((commands.release_lock(plan.lock_key, lock),))
        if result.hit:
            if locked:
                yield release
            return result, None
        wait = follower_wait(self.config.stampede_wait, timeout)
        flight, ahead = self._joined(plan, lock)
        if ahead is not None:
            if locked:  # another process's lock expired; this process's leader goes on
                yield release
            return result, (yield from self._follow(plan, ahead, wait))
        return result, (yield from self._led(flight, locked, recheck=False, wait=wait))

    def _joined(self, plan: Plan, lock: str) -> tuple[Flight, Flight | None]:
        """This caller's flight as this process's leader of the request, or the leader ahead."""
        with self._flight_lock:
            ahead = self._flights.get(plan.exact_key)
            if ahead is not None:
                return ahead, ahead
            flight = Flight(plan, leader=True, lock=lock, event=self._new_event())
            self._flights[plan.exact_key] = flight
            return flight, None

    def _f_store_and_leave(
        self,
        plan: Plan,
        response: Mapping[str, Any],
        *,
        flight: Flight | None,
        ttl: TTL = "default",
        tags: Iterable[str] = (),
        latency_ms: float | None = None,
        cost_usd: float | None = None,
        streamed: bool = False,
    ) -> Flow[bool]:
        """:meth:`store_plan`, then :meth:`leave_flight`, the lock freed in the store's pipeline."""
        lock = flight.lock if flight is not None else None
        flow = self._stored(
            plan, response, ttl=ttl, tags=tags, latency_ms=latency_ms, cost_usd=cost_usd,
            streamed=streamed, unlock=lock,
        )  # fmt: skip
        stored = yield from flow
        if flight is not None:
            flight.lock = None  # freed (or left to expire if Redis did not answer)
            self._end_flight(flight)
        return stored

    def _follow(self, plan: Plan, ahead: Flight, wait: float) -> Flow[Flight]:
        """Wait for this process's leader of the request (no longer than ``wait``, nor once its
        stream stalls), then look its answer up; a failed leader's failure is handed on, and a
        leader that gave up (cancelled) is followed by a new one from among its followers."""
        for pause in ahead.waiting(wait):
            yield Wait(ahead.event, pause)
        shared = yield from self._f_lookup_plan(plan)
        if shared.hit:
            return Flight(plan, shared)
        if ahead.abandoned and ahead.event.is_set():  # one of its followers leads in its place
            return (yield from self._f_join_flight(plan, timeout=wait))
        return Flight(plan, failure=ahead.failure if ahead.event.is_set() else None)

    def _led(self, flight: Flight, held: bool, *, recheck: bool, wait: float) -> Flow[Flight]:
        """A leader's flight once its lock was asked for: without the lock it waits (``wait``) for
        the holder (another process); with it, it checks once more unless its lookup came with the
        lock (a caller whose lookup missed just before another stored the answer must not call
        upstream)."""
        if held and not recheck:
            return flight
        mine, deadline = flight.lock, time.monotonic() + wait
        if not held:
            flight.lock = None
        for _ in range(LEAD_TRIES):
            left = 0.0 if held else max(0.0, deadline - time.monotonic())
            flight.shared = yield from self._safe(
                await_entry(self._core.planner, flight.plan, left), None
            )
            if flight.shared is not None or held or mine is None:
                return flight
            # The holder left without an answer. Lead holding the lock: one who led without it
            # let a caller whose lookup took the free lock before this one's store landed call
            # upstream too (2 calls for 100 threads, 1 run in 8 on a loaded machine).
            held = yield from self._safe(acquire(flight.plan, mine, self._lock_ms()), False)
            if held:
                flight.lock = mine  # and one more look: an answer stored since is served
            elif time.monotonic() >= deadline:
                return flight
        return flight

    def _lock_ms(self) -> int:
        lock_ms = ms(self.config.lock_ttl)
        assert lock_ms is not None
        return lock_ms

    def _f_leave_flight(self, flight: Flight) -> Flow[None]:
        """The end of :meth:`single_flight`: free the lock and wake the callers waiting."""
        if flight.lock is not None:
            yield from self._safe(release(flight.plan, flight.lock), None)
        self._end_flight(flight)

    def _end_flight(self, flight: Flight) -> None:
        if flight.leader:
            with self._flight_lock:  # only its own: a later flight may hold the key by now
                if self._flights.get(flight.plan.exact_key) is flight:
                    del self._flights[flight.plan.exact_key]
            flight.event.set()
