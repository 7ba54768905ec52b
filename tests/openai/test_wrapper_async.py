"""semcache.wrap() around openai.AsyncOpenAI: the same behaviour, awaited."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import openai
import pytest
from conftest import hash_embedder
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai_server import TOOL_CALL, FakeOpenAI, vector_for

import semcache
from semcache.openai import cache_info, cache_options
from semcache.server import EmbeddedServer

CHAT = "chat/completions"


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def text_of(chunks: list[ChatCompletionChunk]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


@pytest.fixture
async def acache(redis_url: str, namespace: str) -> AsyncIterator[semcache.AsyncCache]:
    cache = semcache.AsyncCache(redis_url=redis_url, embedder=hash_embedder(), namespace=namespace)
    async with cache:
        yield cache
        await cache.flush()


@pytest.fixture
async def awrapped(
    fake_openai: FakeOpenAI, acache: semcache.AsyncCache
) -> AsyncIterator[openai.AsyncOpenAI]:
    raw = openai.AsyncOpenAI(base_url=fake_openai.base_url, api_key="test", max_retries=0)
    client = semcache.wrap(raw, cache=acache)
    yield client
    await client.close()


async def test_async_miss_then_hit(awrapped: openai.AsyncOpenAI, fake_openai: FakeOpenAI) -> None:
    first = await awrapped.chat.completions.create(model="m", messages=ask("async hello"))
    second = await awrapped.chat.completions.create(model="m", messages=ask("async hello"))
    assert isinstance(awrapped, openai.AsyncOpenAI)
    assert isinstance(second, ChatCompletion) and second.model_dump() == first.model_dump()
    assert fake_openai.calls(CHAT) == 1
    assert cache_info(first).hit is False and cache_info(second).layer == "exact"  # type: ignore[union-attr]


async def test_async_streams_record_and_replay(
    awrapped: openai.AsyncOpenAI, fake_openai: FakeOpenAI
) -> None:
    miss = await awrapped.chat.completions.create(model="m", messages=ask("a [tool]"), stream=True)
    first = [c async for c in miss]
    hit = await awrapped.chat.completions.create(model="m", messages=ask("a [tool]"), stream=True)
    second = [c async for c in hit]
    plain = await awrapped.chat.completions.create(model="m", messages=ask("a [tool]"))
    assert isinstance(hit, openai.AsyncStream)
    assert fake_openai.calls(CHAT) == 1
    assert all(c.usage is None and c.choices for c in first)  # injected usage never leaked
    calls = plain.choices[0].message.tool_calls
    assert calls is not None and calls[0].id == TOOL_CALL["id"]
    assert calls[0].function.arguments == '{"city": "Paris"}'  # type: ignore[union-attr]
    replayed = "".join(
        d.function.arguments or ""
        for c in second
        for d in c.choices[0].delta.tool_calls or []
        if d.function
    )
    assert replayed == '{"city": "Paris"}' and plain.usage is not None


async def test_async_responses_stream_and_helper(
    awrapped: openai.AsyncOpenAI, fake_openai: FakeOpenAI
) -> None:
    first = [e async for e in await awrapped.responses.create(model="m", input="hi", stream=True)]
    second = [e async for e in await awrapped.responses.create(model="m", input="hi", stream=True)]
    async with awrapped.responses.stream(model="m", input="hi") as stream:
        final = await stream.get_final_response()
    assert fake_openai.calls("responses") == 1
    assert [e.type for e in second][-1] == first[-1].type == "response.completed"
    assert final.output_text == "echo: hi"


async def test_async_embeddings_only_embed_the_rest(
    awrapped: openai.AsyncOpenAI, fake_openai: FakeOpenAI
) -> None:
    model = f"emb-{uuid.uuid4().hex[:8]}"
    await awrapped.embeddings.create(model=model, input=["one"])
    reply = await awrapped.embeddings.create(model=model, input=["two", "one"])
    assert fake_openai.embedded == ["one", "two"]
    for row, text in zip(reply.data, ["two", "one"], strict=True):
        assert np.array_equal(np.asarray(row.embedding, dtype=np.float32), vector_for(text))


async def test_async_errors_reach_the_caller_and_are_not_cached(
    awrapped: openai.AsyncOpenAI, fake_openai: FakeOpenAI
) -> None:
    fake_openai.fail_next(500)
    with pytest.raises(openai.InternalServerError):
        await awrapped.chat.completions.create(model="m", messages=ask("flaky"))
    fake_openai.fail_next(429)
    with pytest.raises(openai.RateLimitError):
        await awrapped.chat.completions.create(model="m", messages=ask("flaky"), stream=True)
    reply = await awrapped.chat.completions.create(model="m", messages=ask("flaky"))
    assert reply.choices[0].message.content == "echo: flaky" and fake_openai.calls(CHAT) == 3


async def test_async_options_context_and_concurrent_calls(
    awrapped: openai.AsyncOpenAI, fake_openai: FakeOpenAI
) -> None:
    async def one(i: int, tenant: str) -> str | None:
        with cache_options(tenant=tenant):
            reply = await awrapped.chat.completions.create(model="m", messages=ask(f"q{i}"))
        return reply.choices[0].message.content

    questions = range(12)
    answers = await asyncio.gather(*(one(i, "acme") for i in questions))
    assert answers == [f"echo: q{i}" for i in questions]
    await asyncio.gather(*(one(i, "acme") for i in questions))
    assert fake_openai.calls(CHAT) == 12
    await one(0, "globex")
    assert fake_openai.calls(CHAT) == 13


async def test_async_client_with_a_sync_cache(
    fake_openai: FakeOpenAI, wrap_cache: semcache.Cache
) -> None:
    raw = openai.AsyncOpenAI(base_url=fake_openai.base_url, api_key="test", max_retries=0)
    client = semcache.wrap(raw, cache=wrap_cache)
    for _ in range(2):
        reply = await client.chat.completions.create(model="m", messages=ask("threads"))
    assert fake_openai.calls(CHAT) == 1 and cache_info(reply).layer == "exact"  # type: ignore[union-attr]
    await client.close()


async def test_async_killed_redis_does_not_break_calls(fake_openai: FakeOpenAI) -> None:
    directory = Path(tempfile.mkdtemp(prefix="semcache-kill-"))
    server = EmbeddedServer(directory, persist=False).start()
    try:
        cache = semcache.AsyncCache(
            redis_url=server.url, embedder=hash_embedder(), namespace=f"k{uuid.uuid4().hex[:8]}"
        )
        raw = openai.AsyncOpenAI(base_url=fake_openai.base_url, api_key="test", max_retries=0)
        client = semcache.wrap(raw, cache=cache)
        await client.chat.completions.create(model="m", messages=ask("up"))
        hit = await client.chat.completions.create(model="m", messages=ask("up"))
        assert cache_info(hit).hit  # type: ignore[union-attr]
        server.stop()
        for text in ("up", "down"):
            reply = await client.chat.completions.create(model="m", messages=ask(text))
            assert reply.choices[0].message.content == f"echo: {text}"
        stream = await client.chat.completions.create(model="m", messages=ask("s"), stream=True)
        assert text_of([c async for c in stream]) == "echo: s"
        assert fake_openai.calls(CHAT) == 4
        await client.close()
        await cache.aclose()
    finally:
        if server.pid() is not None:
            server.stop()
        shutil.rmtree(directory, ignore_errors=True)
