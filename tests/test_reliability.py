"""Stampede control, early refresh, the circuit breaker, and property-based checks of keys and
tenant isolation, all against the real Redis."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import semcache
from semcache import AsyncCache, Cache, CacheConfig
from semcache.core.canonical import canonicalize, exact_hash
from semcache.core.resilience import Breaker
from semcache.server import EmbeddedServer
from tests.conftest import answer, chat, hash_embedder


class Upstream:
    """A model stand-in that counts its calls and takes a while, so that callers overlap."""

    def __init__(self, delay: float = 0.2) -> None:
        self.calls = 0
        self.delay = delay
        self._lock = threading.Lock()

    def __call__(self) -> dict:
        with self._lock:
            self.calls += 1
        time.sleep(self.delay)
        return answer("computed once")


def cached_call(cache: Cache, request: dict, upstream: Upstream) -> dict:
    """What a wrapper does: lookup, then on a miss one shared upstream call, then store."""
    plan = cache.plan(request)
    result = cache.lookup_plan(plan)
    if result.hit:
        assert result.response is not None
        return result.response
    with cache.single_flight(plan) as shared:
        if shared is not None:
            assert shared.response is not None
            return shared.response
        response = upstream()
        cache.store_plan(plan, response)
        return response


@pytest.fixture
def exact_cache(redis_url: str, namespace: str) -> Iterator[Cache]:
    config = CacheConfig(namespace=namespace, semantic=False)
    with Cache(redis_url=redis_url, config=config) as cache:
        yield cache
        cache.flush()


def test_100_concurrent_identical_misses_in_threads_make_one_upstream_call(
    exact_cache: Cache,
) -> None:
    upstream = Upstream()
    request = chat("a popular question")
    results: list[dict] = []
    threads = [
        threading.Thread(target=lambda: results.append(cached_call(exact_cache, request, upstream)))
        for _ in range(100)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert upstream.calls == 1
    assert results == [answer("computed once")] * 100


async def test_100_concurrent_identical_misses_in_asyncio_make_one_upstream_call(
    redis_url: str, namespace: str
) -> None:
    calls = 0

    async def upstream() -> dict:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.2)
        return answer("async once")

    config = CacheConfig(namespace=namespace, semantic=False)
    async with AsyncCache(redis_url=redis_url, config=config) as cache:

        async def one() -> dict:
            plan = cache.plan(chat("async popular"))
            result = await cache.lookup_plan(plan)
            if result.hit:
                return result.response or {}
            async with cache.single_flight(plan) as shared:
                if shared is not None:
                    return shared.response or {}
                response = await upstream()
                await cache.store_plan(plan, response)
                return response

        results = await asyncio.gather(*(one() for _ in range(100)))
        await cache.flush()
    assert calls == 1
    assert results == [answer("async once")] * 100


def test_processes_share_one_call_through_the_redis_lock(redis_url: str, namespace: str) -> None:
    """Two Cache objects have separate in-process registries, as two processes do: only the Redis
    lock keeps the second from calling upstream."""
    config = CacheConfig(namespace=namespace, semantic=False)
    upstream = Upstream(delay=0.3)
    request = chat("shared across processes")
    with (
        Cache(redis_url=redis_url, config=config) as a,
        Cache(redis_url=redis_url, config=config) as b,
    ):
        out: dict[str, dict] = {}
        first = threading.Thread(
            target=lambda: out.__setitem__("a", cached_call(a, request, upstream))
        )
        first.start()
        time.sleep(0.05)
        out["b"] = cached_call(b, request, upstream)
        first.join()
        a.flush()
    assert upstream.calls == 1
    assert out["a"] == out["b"] == answer("computed once")


def test_a_caller_that_waited_out_another_holder_leads_holding_the_lock(
    redis_url: str, namespace: str
) -> None:
    # It used to lead without the lock: a caller whose lookup took the free lock before this
    # one's store landed called upstream too (2 calls for 100 threads, 1 run in 8 when loaded).
    config = CacheConfig(namespace=namespace, semantic=False, lock_ttl=5)
    with (
        Cache(redis_url=redis_url, config=config) as a,
        Cache(redis_url=redis_url, config=config) as b,
    ):
        plan = a.plan(chat("a holder that gives up"))
        a.client.set(plan.lock_key, "another process", px=5000)
        gives_up = threading.Timer(0.1, a.client.delete, args=(plan.lock_key,))
        gives_up.start()
        seen: list[object] = []
        with a.single_flight(plan) as shared:  # waits for the holder, which leaves no answer
            assert shared is None
            assert a.client.get(plan.lock_key) not in (None, b"another process")
            waiter = threading.Thread(target=lambda: seen.append(b.join_flight(plan).shared))
            waiter.start()  # another process's caller: it must wait for this one's answer
            time.sleep(0.1)
            assert a.store(chat("a holder that gives up"), answer("led with the lock"))
        waiter.join()
        gives_up.join()
        assert [r.response for r in seen] == [answer("led with the lock")]  # type: ignore[attr-defined]
        a.flush()


def test_a_failed_leader_lets_the_waiters_call_upstream(exact_cache: Cache) -> None:
    request = chat("the leader will fail")
    plan = exact_cache.plan(request)
    seen: list[object] = []

    def follower() -> None:
        with exact_cache.single_flight(plan) as shared:
            seen.append(shared)

    with exact_cache.single_flight(plan) as shared:
        assert shared is None  # the leader
        waiter = threading.Thread(target=follower)
        waiter.start()
        time.sleep(0.05)
        # the leader's upstream call fails: nothing is stored
    waiter.join()
    assert seen == [None]  # the waiter computes itself instead of waiting forever


def test_waiters_give_up_after_stampede_wait(redis_url: str, namespace: str) -> None:
    config = CacheConfig(namespace=namespace, semantic=False, stampede_wait=0.2, lock_ttl=5)
    with (
        Cache(redis_url=redis_url, config=config) as a,
        Cache(redis_url=redis_url, config=config) as b,
    ):
        plan = a.plan(chat("slow leader"))
        with a.single_flight(plan) as leader:
            assert leader is None
            start = time.monotonic()
            with b.single_flight(plan) as shared:
                waited = time.monotonic() - start
                assert shared is None
        assert waited >= 0.2
        a.flush()


def test_early_refresh_flags_hits_near_expiry_only(redis_url: str, namespace: str) -> None:
    now = [1_000_000.0]
    config = CacheConfig(namespace=namespace, semantic=False, ttl=100, ttl_jitter=0,
                         early_refresh=1.0)  # fmt: skip
    with Cache(redis_url=redis_url, config=config, clock=lambda: now[0]) as cache:
        cache._core.rng = random.Random(1)
        cache.store(chat("hot"), answer("x"), latency_ms=2000)
        fresh = [cache.lookup(chat("hot")).refresh for _ in range(200)]
        now[0] += 99.9  # 0.1 s before expiry, with a 2 s recompute
        late = [cache.lookup(chat("hot")).refresh for _ in range(200)]
        cache.flush()
    assert not any(fresh)
    assert sum(late) > 180


def test_breaker_opens_after_failures_and_closes_after_a_good_probe() -> None:
    clock = [0.0]
    breaker = Breaker(failures=2, cooldown=1.0, clock=lambda: clock[0])
    breaker.failure(OSError("down"))
    assert breaker.allow()
    breaker.failure(OSError("down"))
    assert breaker.state == "open" and not breaker.allow()
    clock[0] = 1.5
    assert breaker.allow() and breaker.state == "half-open"
    assert not breaker.allow()  # one probe at a time
    breaker.success()
    assert breaker.state == "closed" and breaker.opened == 1 and breaker.closed == 1


def test_outage_and_persistent_restart(tmp_path: Path) -> None:
    """Stop Redis in the middle of a run: every call still returns the model's answer, the
    breaker opens, and after a restart the entries stored before the stop are hits again."""
    server = EmbeddedServer(tmp_path, persist=True).start()
    config = CacheConfig(namespace="outage", semantic=False)
    upstream = Upstream(delay=0)
    cache = Cache(redis_url=server.url, config=config, timeout=0.2)
    cache._breaker.cooldown = 0.2
    before = [chat(f"question {i}") for i in range(5)]
    for request in before:
        assert cached_call(cache, request, upstream) == answer("computed once")
    cache.client.execute_command("SAVE")
    server.stop()
    for i in range(10):
        assert cached_call(cache, chat(f"during outage {i}"), upstream) == answer("computed once")
    assert cache._breaker.state == "open" and cache._breaker.opened == 1
    server.start()
    time.sleep(0.25)
    calls = upstream.calls
    for request in before:
        assert cached_call(cache, request, upstream) == answer("computed once")
    assert upstream.calls == calls  # all five were hits after the restart
    assert cache._breaker.state == "closed"
    stats = cache.stats()  # counted while Redis was down, flushed once it was back
    assert (stats.source, stats.breaker_opened, stats.breaker_closed) == ("redis", 1, 1)
    assert "semcache_breaker_opened_total" in stats.prometheus()
    cache.close()
    server.stop()


# --- properties ------------------------------------------------------------------------------------

texts = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
params = st.fixed_dictionaries(
    {},
    optional={
        "temperature": st.floats(0, 2, allow_nan=False),
        "max_tokens": st.integers(1, 4000),
        "seed": st.integers(0, 2**31),
        "stop": st.lists(texts, max_size=3),
    },
)


def body(text: str, extra: dict) -> dict:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}], **extra}


@given(text=texts, extra=params, transport=st.fixed_dictionaries(
    {}, optional={"stream": st.booleans(), "user": texts, "timeout": st.floats(0.1, 60)}))  # fmt: skip
def test_equivalent_requests_share_one_key(text: str, extra: dict, transport: dict) -> None:
    a = body(text, extra)
    b = dict(reversed(list({**body(text, extra), **transport}.items())))
    key = lambda r: exact_hash(canonicalize(r), namespace="n", tenant="t", version="1")  # noqa: E731
    assert key(a) == key(b)


@given(text=texts, extra=params, other=texts, field=st.sampled_from(
    ["text", "model", "temperature", "max_tokens", "seed", "tenant"]))  # fmt: skip
def test_any_answer_changing_difference_changes_the_key(
    text: str, extra: dict, other: str, field: str
) -> None:
    a, b, tenants = body(text, extra), body(text, extra), ["t", "t"]
    if field == "text":
        b["messages"][0]["content"] = text + "?" if other == text else other
    elif field == "model":
        b["model"] = "gpt-4o"
    elif field == "tenant":
        tenants[1] = "u"
    else:
        b[field] = (a.get(field) or 0) + 1 if field != "temperature" else (a.get(field) or 0) + 0.5
    keys = [exact_hash(canonicalize(r), namespace="n", tenant=t, version="1")
            for r, t in zip((a, b), tenants, strict=True)]  # fmt: skip
    assert keys[0] != keys[1]


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=st.from_regex(r"[A-Za-z][A-Za-z ]{0,29}", fullmatch=True),
       tenants=st.lists(st.text(min_size=0, max_size=12), min_size=2, max_size=4, unique=True))  # fmt: skip
def test_no_entry_is_ever_returned_to_another_tenant(
    redis_url: str, text: str, tenants: list[str]
) -> None:
    # The plain threshold at -1: any candidate of the same scope would be served.
    config = CacheConfig(namespace="prop-tenants", threshold=-1.0,
                         decision=semcache.ThresholdDecision())  # fmt: skip
    with Cache(redis_url=redis_url, embedder=hash_embedder(), config=config) as cache:
        for tenant in tenants:
            cache.store(chat(text), answer(f"for {tenant!r}"), tenant=tenant)
        for tenant in tenants:
            for probe in (chat(text), chat(text + " more"), chat("something else")):
                result = cache.lookup(probe, tenant=tenant)
                assert result.hit  # threshold -1: any same-scope candidate would be served
                assert result.response == answer(f"for {tenant!r}")
        cache.flush()


shapes = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=12,
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(request=st.dictionaries(st.sampled_from(["model", "messages", "prompt", "input", "tools", "n",
                                                "temperature", "content", "role"]), shapes, max_size=4)
       | shapes)  # fmt: skip
def test_fuzzed_request_shapes_raise_only_invalid_request(
    exact_cache_fuzz: Cache, request: object
) -> None:
    try:
        plan = exact_cache_fuzz.plan(request)  # type: ignore[arg-type]
    except semcache.InvalidRequestError:
        return
    result = exact_cache_fuzz.lookup_plan(plan)
    assert result.layer in (None, "exact", "semantic")
    assert exact_cache_fuzz.store_plan(plan, {"ok": True}) in (True, False)


@pytest.fixture(scope="module")
def exact_cache_fuzz(redis_url: str) -> Iterator[Cache]:
    with Cache(redis_url=redis_url, embedder=hash_embedder(), namespace="fuzz") as cache:
        yield cache
        cache.flush()


def test_a_timeout_while_creating_the_index_is_a_miss_then_the_index_is_made(
    redis_url: str, namespace: str
) -> None:
    import redis

    control = redis.Redis.from_url(redis_url)
    control.execute_command("CLIENT", "PAUSE", 10_000, "WRITE")  # FT.INFO answers, FT.CREATE waits
    try:
        cache = Cache(
            redis_url=redis_url, embedder=hash_embedder(), namespace=namespace, timeout=0.1
        )
        assert cache.lookup(chat("while paused")).layer is None  # a miss, not redisvl's error
        assert cache.store(chat("while paused"), answer("x")) is False
    finally:
        control.execute_command("CLIENT", "UNPAUSE")
    with cache:
        index = cache._core.planner.keys().index
        assert cache.store(chat("after"), answer("y")) is True  # the index is created now
        assert control.execute_command("FT.INFO", index)  # raises if it does not exist
        assert cache.lookup(chat("after")).response == answer("y")
        cache.flush()


async def test_async_a_timeout_while_creating_the_index_is_a_miss(
    redis_url: str, namespace: str
) -> None:
    import redis

    control = redis.Redis.from_url(redis_url)
    control.execute_command("CLIENT", "PAUSE", 10_000, "WRITE")
    try:
        cache = AsyncCache(
            redis_url=redis_url, embedder=hash_embedder(), namespace=namespace, timeout=0.1
        )
        assert (await cache.lookup(chat("while paused"))).layer is None
    finally:
        control.execute_command("CLIENT", "UNPAUSE")
    async with cache:
        assert await cache.store(chat("after"), answer("y")) is True
        assert (await cache.lookup(chat("after"))).response == answer("y")
        await cache.flush()
