"""The executors' kept connections (``semcache.redis.executor.Lane``): a connection the server
closed is replaced without a failure, threads never read each other's replies, a forked child
never uses its parent's sockets, and a pool the caller rations gets every connection back."""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import threading

import pytest
import redis
import redis.asyncio
from conftest import answer, chat, hash_embedder

import semcache
from semcache.redis.executor import AsyncLane, Lane


def _kill_kept(client: redis.Redis, prefix: str) -> int:
    """Close, from the server side, every connection of the cache's client (named by prefix)."""
    killed = 0
    for row in client.client_list():
        if row.get("name", "").startswith(prefix):
            client.client_kill_filter(_id=row["id"])
            killed += 1
    return killed


def test_a_kept_connection_the_server_closed_is_replaced_and_the_hit_still_served(
    redis_url: str, namespace: str
) -> None:
    admin = redis.Redis.from_url(redis_url)
    with semcache.Cache(
        redis_url=redis_url, embedder=hash_embedder(), namespace=namespace
    ) as cache:
        cache.store(chat("What is the capital of France?"), answer("Paris."))
        assert cache.lookup(chat("What is the capital of France?")).layer == "exact"
        lane = cache._executor.lane
        assert lane is not None and lane.keep and lane._idle
        for connection in lane._idle:  # name them so the server-side kill finds them
            connection.send_command("CLIENT", "SETNAME", f"lane-{namespace}")
            assert connection.read_response() in (b"OK", "OK")
        assert _kill_kept(admin, f"lane-{namespace}") >= 1
        result = cache.lookup(chat("What is the capital of France?"))
        assert result.layer == "exact" and result.response == answer("Paris.")
        assert cache._breaker.state == "closed" and cache._breaker._failures == 0
        cache.flush()


def test_threads_sharing_the_lane_each_read_their_own_replies(
    redis_url: str, namespace: str
) -> None:
    questions = [f"Question number {i}: what is {i} squared?" for i in range(40)]
    with semcache.Cache(
        redis_url=redis_url, embedder=hash_embedder(), namespace=namespace
    ) as cache:
        for q in questions:
            cache.store(chat(q), answer(f"answer to {q}"))
        wrong: list[str] = []
        start = threading.Barrier(8)

        def worker(offset: int) -> None:
            start.wait()
            for round_ in range(25):
                q = questions[(offset * 5 + round_) % len(questions)]
                result = cache.lookup(chat(q))
                if result.response != answer(f"answer to {q}"):
                    wrong.append(q)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert wrong == []
        lane = cache._executor.lane
        assert lane is not None and 1 <= len(lane._idle) <= 8
        cache.flush()


def _child_lookup(url: str, namespace: str, queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    cache = _FORKED[0]
    lane = cache._executor.lane
    inherited = {id(c) for c in lane._idle}
    result = cache.lookup(chat("Forked question?"))
    queue.put((result.layer, bool({id(c) for c in lane._idle} & inherited)))


_FORKED: list[semcache.Cache] = []


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="no fork")
def test_a_forked_child_opens_its_own_connections(redis_url: str, namespace: str) -> None:
    with semcache.Cache(
        redis_url=redis_url, embedder=hash_embedder(), namespace=namespace
    ) as cache:
        cache.store(chat("Forked question?"), answer("Forked answer."))
        assert cache.lookup(chat("Forked question?")).layer == "exact"
        assert cache._executor.lane._idle  # the parent keeps one
        _FORKED[:] = [cache]
        context = multiprocessing.get_context("fork")
        queue = context.Queue()
        child = context.Process(target=_child_lookup, args=(redis_url, namespace, queue))
        child.start()
        layer, reused = queue.get(timeout=30)
        child.join(30)
        assert layer == "exact" and reused is False
        assert cache.lookup(chat("Forked question?")).layer == "exact"  # the parent's still work
        cache.flush()


def test_a_blocking_pool_gets_every_connection_back(redis_url: str, namespace: str) -> None:
    pool = redis.BlockingConnectionPool.from_url(redis_url, max_connections=2, timeout=2)
    client = redis.Redis(connection_pool=pool)
    with semcache.Cache(
        redis_client=client, embedder=hash_embedder(), namespace=namespace
    ) as cache:
        assert not cache._executor.lane.keep
        cache.store(chat("Rationed?"), answer("Yes."))
        for _ in range(5):
            assert cache.lookup(chat("Rationed?")).layer == "exact"
        held = [
            pool.get_connection(),
            pool.get_connection(),
        ]  # both free: none kept (else 2 s, error)
        for connection in held:
            pool.release(connection)
        cache.flush()
    client.close()


def test_the_lane_keeps_at_most_a_quarter_of_the_pool() -> None:
    assert Lane(redis.ConnectionPool(max_connections=100)).cap == 25
    assert Lane(redis.ConnectionPool(max_connections=2**31)).cap == 32
    assert not Lane(redis.ConnectionPool(max_connections=3)).keep
    assert AsyncLane(redis.asyncio.ConnectionPool(max_connections=40)).cap == 10


def test_async_tasks_sharing_the_lane_read_their_own_replies_after_a_server_side_close(
    redis_url: str, namespace: str
) -> None:
    questions = [f"Async question {i}?" for i in range(30)]

    async def main() -> list[str]:
        # A generous timeout: this test is about which reply each task reads. With the default
        # 0.25 s, 90 tasks each opening a connection on a loaded CI machine (the gather took over
        # 2 s there) had connects time out, the breaker step aside, and 21 lookups miss.
        async with semcache.AsyncCache(
            redis_url=redis_url, embedder=hash_embedder(), namespace=namespace, timeout=5
        ) as cache:
            for q in questions:
                await cache.store(chat(q), answer(f"async answer {q}"))
            results = await asyncio.gather(*(cache.lookup(chat(q)) for q in questions * 3))
            lane = cache._executor.lane
            assert lane is not None and lane._idle
            admin = redis.Redis.from_url(redis_url)
            for connection in lane._idle:
                await connection.send_command("CLIENT", "SETNAME", f"alane-{namespace}")
                await connection.read_response()
            assert _kill_kept(admin, f"alane-{namespace}") >= 1
            again = await asyncio.gather(*(cache.lookup(chat(q)) for q in questions))
            assert cache._breaker.state == "closed"
            await cache.flush()
            pairs = zip(questions * 4, [*results, *again], strict=True)
            return [q for q, r in pairs if r.response != answer(f"async answer {q}")]

    assert asyncio.run(main()) == []


async def test_closing_an_async_cache_whose_sockets_are_slow_to_close_raises_nothing(
    redis_url: str, namespace: str
) -> None:
    # redis-py's asyncio close waits for each socket's close for up to the connect timeout and
    # raises TimeoutError past it: on a loaded CI machine that failed `async with AsyncCache(...)`
    # after every call had succeeded. A zero timeout makes the wait expire every time here.
    admin = redis.Redis.from_url(redis_url)
    before = {row["id"] for row in admin.client_list()}
    async with semcache.AsyncCache(
        redis_url=redis_url, embedder=hash_embedder(), namespace=namespace
    ) as cache:
        await cache.store(chat("Slow close?"), answer("Yes."))
        found = await asyncio.gather(*(cache.lookup(chat("Slow close?")) for _ in range(8)))
        assert {r.layer for r in found} == {"exact"}
        await cache.flush()
        pool = cache._executor.client.connection_pool
        lane = cache._executor.lane
        assert lane is not None
        connections = [*pool._available_connections, *pool._in_use_connections]
        assert connections
        for connection in connections:
            connection.socket_connect_timeout = 0
        ours = {row["id"] for row in admin.client_list()} - before
        assert ours
    for _ in range(50):  # the server sees a closed socket a moment later
        if not (ours & {row["id"] for row in admin.client_list()}):
            break
        await asyncio.sleep(0.02)
    assert ours & {row["id"] for row in admin.client_list()} == set()
    admin.close()


def test_the_batch_packs_to_the_bytes_redis_py_would_send() -> None:
    from semcache.redis import commands
    from semcache.redis.executor import _packed
    from semcache.redis.keys import Keys

    keys = Keys("ns")
    batch = (
        commands.get("semcache:x:ns:t:é"),
        commands.put("k", "välue ☃", 1500),
        commands.knn(keys, vector=b"\x00\x01" * 8, scope="s" * 32, k=4, ef=None, fields=("fb",)),
        ("HSET", "doc", "created", 1.25, "n", 3),
    )
    connection = redis.Connection()
    assert _packed(connection, batch) == [b"".join(connection.pack_commands(batch))]
    # redis-py 8.2 encodes text with the client's encoding before hiredis packs it (before 8.2 it
    # sent UTF-8 whatever the encoding): a latin-1 client gets what redis-py itself would send
    latin = redis.Connection(encoding="latin-1")
    texts = (commands.get("semcache:x:ns:t:é"), commands.put("k", "välue", 1500))
    assert b"".join(_packed(latin, texts)) == b"".join(latin.pack_commands(texts))
    u8 = redis.Connection(encoding="U8")  # an alias of UTF-8 keeps hiredis's packer
    expected = b"".join(u8.pack_commands(texts))
    u8.pack_commands = lambda *_: pytest.fail("packed by redis-py")  # type: ignore[method-assign]
    assert _packed(u8, texts) == [expected]
    with pytest.raises(redis.DataError):  # what hiredis refuses gets redis-py's error
        _packed(connection, (("SET", "k", None),))


def test_a_bulk_load_longer_than_the_socket_timeout_loses_nothing(
    redis_url: str, namespace: str
) -> None:
    """Redis reads a bulk load only as fast as it indexes it, and a deletion as fast as it
    unindexes: sent as one write, 5,000 entries outlasted the socket timeout and the whole batch
    failed; written in chunks, a deletion's writes still outlasted it on a slower machine. A large
    batch now writes in chunks and waits 2 ms a command beyond the timeout."""
    import numpy as np

    embedder = hash_embedder(384)
    pairs = [(chat(f"Bulk question {i}?"), answer(f"bulk answer {i}")) for i in range(5000)]
    vectors = embedder.embed([f"Bulk question {i}?" for i in range(5000)])
    vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    with semcache.Cache(
        redis_url=redis_url, embedder=embedder, namespace=namespace, timeout=0.1
    ) as cache:
        assert cache.store_many(pairs, vectors=vectors) == 5000
        for i in (0, 2500, 4999):
            result = cache.lookup(chat(f"Bulk question {i}?"))
            assert result.layer == "exact" and result.response == answer(f"bulk answer {i}")
        # unindexing 5,000 documents: a batch's writes wait on Redis longer than 0.1 s
        assert cache.flush() >= 10000
        assert cache.lookup(chat("Bulk question 0?")).layer is None


def test_a_large_batch_may_wait_longer_than_the_socket_timeout_a_small_one_may_not() -> None:
    from semcache.redis.executor import _budget

    assert _budget(0.25, 4) is None and _budget(0.25, 64) is None and _budget(None, 10_000) is None
    assert _budget(0.25, 1000) == pytest.approx(2.25)


def test_the_async_lane_gives_large_batches_the_same_budget(redis_url: str, namespace: str) -> None:
    import numpy as np

    embedder = hash_embedder(384)
    pairs = [(chat(f"Async bulk {i}?"), answer(f"async bulk answer {i}")) for i in range(3000)]
    vectors = embedder.embed([f"Async bulk {i}?" for i in range(3000)])
    vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    async def main() -> tuple[int, str | None, int, float | None]:
        async with semcache.AsyncCache(
            redis_url=redis_url, embedder=embedder, namespace=namespace, timeout=0.1
        ) as cache:
            stored = await cache.store_many(pairs, vectors=vectors)
            layer = (await cache.lookup(chat("Async bulk 1500?"))).layer
            removed = await cache.flush()
            kept = cache._executor.lane._idle
            return stored, layer, removed, kept[0].socket_timeout if kept else None

    stored, layer, removed, timeout = asyncio.run(main())
    assert (stored, layer) == (3000, "exact") and removed >= 6000
    assert timeout == 0.1  # the connection's own timeout is back once the batch is done


# --- more round trips at once than the pool may open ------------------------------------------


def test_threads_past_the_pools_connections_wait_for_one_and_all_hit(
    redis_url: str, namespace: str
) -> None:
    # redis-py 8's pools open at most 100 connections: past that they raise "Too many
    # connections", which counted as Redis failing (300 threads opened the breaker 10 times and
    # a fifth of their lookups missed). A pool of 8 and 40 threads shows the same thing faster.
    client = redis.Redis.from_url(redis_url, max_connections=8)
    with semcache.Cache(
        redis_client=client, embedder=hash_embedder(), namespace=namespace
    ) as cache:
        cache.store(chat("Crowded?"), answer("Yes."))
        layers: list[str | None] = []
        start = threading.Barrier(40)

        def worker() -> None:
            start.wait()
            layers.extend(cache.lookup(chat("Crowded?")).layer for _ in range(10))

        threads = [threading.Thread(target=worker) for _ in range(40)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert layers.count("exact") == 400
        assert cache._breaker.opened == 0
        cache.flush()
    client.close()


def test_async_tasks_past_the_pools_connections_wait_for_one_and_all_hit(
    redis_url: str, namespace: str
) -> None:
    async def main() -> tuple[list[str | None], int]:
        client = redis.asyncio.Redis.from_url(redis_url, max_connections=8)
        async with semcache.AsyncCache(
            redis_client=client, embedder=hash_embedder(), namespace=namespace
        ) as cache:
            await cache.store(chat("Crowded?"), answer("Yes."))
            found = await asyncio.gather(*(cache.lookup(chat("Crowded?")) for _ in range(120)))
            opened = cache._breaker.opened
            await cache.flush()
        await client.aclose()
        return [r.layer for r in found], opened

    layers, opened = asyncio.run(main())
    assert layers.count("exact") == 120 and opened == 0


def test_a_pool_its_other_users_hold_is_a_miss_not_a_redis_failure_then_a_hit_once_one_frees(
    redis_url: str, namespace: str
) -> None:
    client = redis.Redis.from_url(redis_url, max_connections=4)
    with semcache.Cache(
        redis_client=client, embedder=hash_embedder(), namespace=namespace
    ) as cache:
        cache.store(chat("Held?"), answer("Yes."))
        lane = cache._executor.lane
        assert lane is not None
        for connection in lane._flush():  # the lane's kept one goes back: the others take all
            client.connection_pool.release(connection)
        held = [client.connection_pool.get_connection() for _ in range(4)]
        result = cache.lookup(chat("Held?"))
        assert result.layer is None
        assert cache._breaker.state == "closed" and cache._breaker._failures == 0
        # The pool's other user gives one back while a lookup waits: the lookup takes it.
        timer = threading.Timer(0.2, client.connection_pool.release, args=(held.pop(),))
        timer.start()
        assert cache.lookup(chat("Held?")).layer == "exact"
        timer.join()
        for connection in held:
            client.connection_pool.release(connection)
        cache.flush()
    client.close()


# --- one async cache, one event loop after another ---------------------------------------------


def test_an_async_cache_used_from_one_event_loop_after_another_serves_every_hit(
    redis_url: str, namespace: str
) -> None:
    # asyncio.run per job, or a test framework's loop per test, with one cache: redis-py's
    # connections belong to the loop that made them, and on the next loop every round trip failed
    # until each was dropped (half the lookups of 150 asyncio.run calls missed, with tracebacks).
    admin = redis.Redis.from_url(redis_url)
    before = {row["id"] for row in admin.client_list()}
    cache = semcache.AsyncCache(redis_url=redis_url, embedder=hash_embedder(), namespace=namespace)

    async def store() -> None:
        await cache.connect()
        await cache.store(chat("Loop after loop?"), answer("Yes."))

    async def look() -> list[str | None]:
        found = await asyncio.gather(*(cache.lookup(chat("Loop after loop?")) for _ in range(4)))
        return [r.layer for r in found]

    asyncio.run(store())
    layers = [layer for _ in range(12) for layer in asyncio.run(look())]
    assert layers == ["exact"] * 48
    assert cache._breaker.opened == 0
    # The closed loops' sockets were closed: the server holds only the last loop's connections.
    ours = {row["id"] for row in admin.client_list()} - before
    assert 1 <= len(ours) <= 5

    async def close() -> None:
        await cache.flush()
        await cache.aclose()

    asyncio.run(close())
    gc.collect()  # a socket left unclosed would warn here, and the warning fails the test
    admin.close()


def _sent(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The commands each round trip of a single node's lane puts on the wire, from now on."""
    from semcache.redis import executor as module

    wire: list[list[str]] = []
    original = module._bulk

    def bulk(client: object, batch: tuple[tuple[object, ...], ...], lane: object) -> list[object]:
        wire.append([str(c[0]) for c in batch])
        return original(client, batch, lane)  # type: ignore[arg-type]

    monkeypatch.setattr(module, "_bulk", bulk)
    return wire


def test_a_mixed_batchs_gets_go_as_one_mget_and_each_command_gets_its_own_reply(
    redis_url: str, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = redis.Redis.from_url(redis_url)
    a, b, h = f"{namespace}:a", f"{namespace}:b", f"{namespace}:h"
    admin.set(a, b"one")
    admin.hset(h, "f", "x")
    with semcache.Cache(redis_url=redis_url, embedder=hash_embedder(), namespace=namespace) as c:
        wire = _sent(monkeypatch)
        batch = (("GET", a), ("GET", b), ("GET", h), ("HGET", h, "f"), ("GET", a), ("INCR", h),
                 ("GET", b), ("GET", a))  # fmt: skip
        replies = c._executor.commands(batch)
        assert wire == [["MGET", "HGET", "GET", "INCR", "MGET"]]
        assert replies[:5] == [b"one", None, None, b"x", b"one"]  # MGET: a hash reads as nil
        assert isinstance(replies[5], redis.ResponseError)  # the error of its own command
        assert replies[6:] == [None, b"one"] and len(replies) == len(batch)
    admin.delete(a, b, h)


def test_an_error_in_place_of_the_mget_stands_for_each_of_its_gets(
    redis_url: str, namespace: str
) -> None:
    """A user whose ACL may not read the keys: each GET of the run gets the refusal, in place,
    and the command behind it its own reply."""
    admin = redis.Redis.from_url(redis_url)
    user, password = f"u-{namespace}", "pw-merge"
    admin.acl_setuser(user, enabled=True, passwords=[f"+{password}"], commands=["+@all"],
                      keys=["~semcache*", f"~{namespace}:free*"])  # fmt: skip
    try:
        url = redis_url.replace("://", f"://{user}:{password}@", 1)
        with semcache.Cache(redis_url=url, embedder=hash_embedder(), namespace=namespace) as c:
            admin.set(f"{namespace}:free", b"ok")
            reads = ("closed1", "closed2", "free")
            replies = c._executor.commands(tuple(("GET", f"{namespace}:{k}") for k in reads))
            assert len(replies) == 3
            assert all(isinstance(r, redis.ResponseError) for r in replies)  # one MGET, refused
            assert c._executor.commands((("GET", f"{namespace}:free"), ("PING",))) == [b"ok", True]
    finally:
        admin.acl_deluser(user)
        admin.delete(f"{namespace}:free")


def test_the_async_executor_merges_and_spreads_the_same_way(redis_url: str, namespace: str) -> None:
    admin = redis.Redis.from_url(redis_url)
    admin.set(f"{namespace}:a", b"one")

    async def run() -> list[object]:
        async with semcache.AsyncCache(
            redis_url=redis_url, embedder=hash_embedder(), namespace=namespace
        ) as c:
            a, none = ("GET", f"{namespace}:a"), ("GET", f"{namespace}:none")
            return await c._executor.commands((a, none, ("PING",), a))  # type: ignore[no-any-return]

    assert asyncio.run(run()) == [b"one", None, True, b"one"]
    admin.delete(f"{namespace}:a")
