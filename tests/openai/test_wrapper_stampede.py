"""Identical concurrent misses through a wrapped client make one upstream call (threads, asyncio,
streamed and not), and a failed leader does not strand the callers waiting on it."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import openai
import pytest

import semcache
from tests.conftest import hash_embedder
from tests.openai_server import FakeOpenAI

QUESTION = [{"role": "user", "content": "[slow] what is the most asked question?"}]


@pytest.fixture
def slow_server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(slow_seconds=0.3) as server:
        yield server


def wrapped(server: FakeOpenAI, cache: semcache.Cache) -> openai.OpenAI:
    raw = openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0)
    return semcache.wrap(raw, cache=cache)


@pytest.fixture
def hashed_cache(redis_url: str, namespace: str) -> Iterator[semcache.Cache]:
    """A cache with the hash embedder in a fresh namespace, flushed afterwards. Its timeout is
    generous: these tests count upstream calls. With 100 threads on a loaded machine (two CPU hogs
    beside the suite) the count was 2 once, nothing logged; the likely cause is a round trip past
    the default 0.25 s, after which a caller steps aside and goes upstream, as designed."""
    with semcache.Cache(redis_url=redis_url, embedder=hash_embedder(), namespace=namespace,
                        timeout=5) as c:  # fmt: skip
        yield c
        c.flush()


@pytest.fixture
def client(slow_server: FakeOpenAI, hashed_cache: semcache.Cache) -> Iterator[openai.OpenAI]:
    """A wrapped client of the slow server, through ``hashed_cache``."""
    wrapped_client = wrapped(slow_server, hashed_cache)
    yield wrapped_client
    wrapped_client.close()


def run_threads(n: int, fn: object) -> list[object]:
    out: list[object] = []
    lock = threading.Lock()

    def work() -> None:
        value = fn()  # type: ignore[operator]
        with lock:
            out.append(value)

    threads = [threading.Thread(target=work) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def test_100_threads_one_upstream_call(slow_server: FakeOpenAI, client: openai.OpenAI) -> None:
    answers = run_threads(100, lambda: client.chat.completions.create(
        model="gpt-4o-mini", messages=QUESTION).choices[0].message.content)  # fmt: skip
    assert slow_server.calls("chat/completions") == 1
    assert set(answers) == {"echo: [slow] what is the most asked question?"}
    assert len(answers) == 100


def test_streamed_misses_share_one_upstream_call(
    slow_server: FakeOpenAI, client: openai.OpenAI
) -> None:
    def streamed() -> str:
        stream = client.chat.completions.create(model="gpt-4o-mini", messages=QUESTION, stream=True)
        return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)

    answers = run_threads(20, streamed)
    assert slow_server.calls("chat/completions") == 1
    assert set(answers) == {"echo: [slow] what is the most asked question?"}


async def test_100_tasks_one_upstream_call(
    slow_server: FakeOpenAI, redis_url: str, namespace: str
) -> None:
    async with semcache.AsyncCache(redis_url=redis_url, embedder=hash_embedder(),
                                   namespace=namespace, timeout=5) as cache:  # fmt: skip
        client = semcache.wrap(openai.AsyncOpenAI(base_url=slow_server.base_url, api_key="k",
                                                  max_retries=0), cache=cache)  # fmt: skip
        results = await asyncio.gather(*(
            client.chat.completions.create(model="gpt-4o-mini", messages=QUESTION)
            for _ in range(100)))  # fmt: skip
        await client.close()
        await cache.flush()
    assert slow_server.calls("chat/completions") == 1
    assert {r.choices[0].message.content for r in results} == {
        "echo: [slow] what is the most asked question?"
    }


def test_an_upstream_error_is_not_shared_and_nobody_is_stranded(
    slow_server: FakeOpenAI, client: openai.OpenAI, hashed_cache: semcache.Cache
) -> None:
    slow_server.fail_next(500)
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="gpt-4o-mini", messages=QUESTION)
    assert hashed_cache._flights == {}  # the failed leader left its flight
    ok = client.chat.completions.create(model="gpt-4o-mini", messages=QUESTION)
    assert ok.choices[0].message.content.startswith("echo:")
    assert slow_server.calls("chat/completions") == 2


def test_bypass_and_early_refresh_go_upstream_even_while_an_entry_exists(
    slow_server: FakeOpenAI, redis_url: str, namespace: str
) -> None:
    import random

    from semcache.openai import cache_info

    now = [1_000_000.0]
    config = semcache.CacheConfig(namespace=namespace, ttl=100, ttl_jitter=0, early_refresh=1.0)
    question = [{"role": "user", "content": "refresh me"}]
    with semcache.Cache(redis_url=redis_url, embedder=hash_embedder(), config=config,
                        clock=lambda: now[0]) as cache:  # fmt: skip
        cache._core.rng = random.Random(3)
        client = wrapped(slow_server, cache)
        ask = lambda **kw: client.chat.completions.create(  # noqa: E731
            model="gpt-4o-mini", messages=question, **kw
        )
        ask()
        assert cache_info(ask()).layer == "exact"  # fresh: a hit
        assert slow_server.calls("chat/completions") == 1
        bypassed = ask(extra_body={"semcache": {"bypass": True}})
        assert cache_info(bypassed).layer is None
        assert slow_server.calls("chat/completions") == 2
        now[0] += 99.9999  # at the edge of expiry: XFetch picks this caller to recompute
        refreshed = ask()
        assert cache_info(refreshed).reason == "refresh"
        assert slow_server.calls("chat/completions") == 3
        client.close()
        cache.flush()


async def test_a_cancelled_leader_hands_its_flight_to_one_follower(
    redis_url: str, namespace: str
) -> None:
    # A leader whose task was cancelled never left its flight: its followers waited the whole
    # stampede_wait and then all went upstream (6 calls), and the dead flight stayed in the
    # process, so every later identical miss waited as long again.
    config = semcache.CacheConfig(namespace=namespace, stampede_wait=3.0)
    question = [{"role": "user", "content": "[slow] who leads when the leader is cancelled?"}]
    with FakeOpenAI(slow_seconds=0.6) as server:
        async with semcache.AsyncCache(redis_url=redis_url, embedder=hash_embedder(),
                                       config=config, timeout=5) as cache:  # fmt: skip
            client = semcache.wrap(openai.AsyncOpenAI(base_url=server.base_url, api_key="k",
                                                      max_retries=0), cache=cache)  # fmt: skip

            def ask() -> asyncio.Task[object]:
                return asyncio.create_task(
                    client.chat.completions.create(model="gpt-4o-mini", messages=question)
                )

            leader = ask()
            await asyncio.sleep(0.2)  # it leads, and waits for upstream
            followers = [ask() for _ in range(5)]
            await asyncio.sleep(0.1)
            leader.cancel()
            answers = await asyncio.gather(*followers)
            with pytest.raises(asyncio.CancelledError):
                await leader
            assert {a.choices[0].message.content for a in answers} == {  # type: ignore[attr-defined]
                "echo: [slow] who leads when the leader is cancelled?"
            }
            assert server.calls("chat/completions") == 2  # the cancelled one, and its successor
            assert cache._flights == {}
            # the compute locks are freed, not left to expire (lock_ttl): other processes go on
            locks = [k async for k in cache._executor.client.scan_iter(f"*:l:{namespace}:*")]
            assert locks == []
            await client.close()
            await cache.flush()
