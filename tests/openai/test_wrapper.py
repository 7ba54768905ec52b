"""semcache.wrap() around the real openai.OpenAI client, against a local OpenAI-compatible server.

The server's request count proves hits and misses.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from openai.types import Completion
from openai.types.chat import ChatCompletion
from openai.types.responses import Response
from openai_server import REFUSAL, TOOL_CALL, FakeOpenAI

import semcache
from semcache.openai import cache_info
from semcache.server import EmbeddedServer
from tests.conftest import normalising_embedder

CHAT = "chat/completions"


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def test_wrapped_client_is_a_real_client_and_the_original_is_untouched(
    fake_openai: FakeOpenAI, wrap_cache: semcache.Cache
) -> None:
    original = openai.OpenAI(base_url=fake_openai.base_url, api_key="test", max_retries=0)
    client = semcache.wrap(original, cache=wrap_cache)
    assert isinstance(client, openai.OpenAI)
    assert type(client).__name__ == "OpenAI"
    for _ in range(2):
        original.chat.completions.create(model="m", messages=ask("hello"))
    assert fake_openai.calls(CHAT) == 2  # the original client never caches
    client.chat.completions.create(model="m", messages=ask("hello"))
    client.chat.completions.create(model="m", messages=ask("hello"))
    assert fake_openai.calls(CHAT) == 3
    client.close()


def test_chat_miss_then_exact_hit_returns_the_same_completion(
    wrapped: openai.OpenAI, fake_openai: FakeOpenAI
) -> None:
    first = wrapped.chat.completions.create(model="m", messages=ask("What is Redis?"))
    second = wrapped.chat.completions.create(model="m", messages=ask("What is Redis?"))
    assert fake_openai.calls(CHAT) == 1
    assert isinstance(second, ChatCompletion)
    assert second.model_dump() == first.model_dump()
    assert second.choices[0].message.content == "echo: What is Redis?"
    miss, hit = cache_info(first), cache_info(second)
    assert miss is not None and not miss.hit and miss.reason
    assert hit is not None and hit.hit and hit.layer == "exact" and hit.similarity == 1.0
    assert hit.key == miss.key
    assert second.semcache == hit  # type: ignore[attr-defined]
    assert "semcache" not in second.model_dump()


@pytest.mark.parametrize("marker", ["[tool]", "[refuse]"])
def test_tool_calls_and_refusals_round_trip(
    wrapped: openai.OpenAI, fake_openai: FakeOpenAI, marker: str
) -> None:
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]
    messages = ask(f"weather in Paris {marker}")
    first = wrapped.chat.completions.create(model="m", messages=messages, tools=tools)  # type: ignore[arg-type]
    second = wrapped.chat.completions.create(model="m", messages=messages, tools=tools)  # type: ignore[arg-type]
    assert fake_openai.calls(CHAT) == 1
    message = second.choices[0].message
    if marker == "[tool]":
        assert message.tool_calls is not None
        call = message.tool_calls[0]
        assert call.id == TOOL_CALL["id"] and call.function.name == "get_weather"  # type: ignore[union-attr]
        assert call.function.arguments == '{"city": "Paris"}'  # type: ignore[union-attr]
        assert second.choices[0].finish_reason == "tool_calls"
    else:
        assert message.refusal == REFUSAL and message.content is None
    assert second.usage == first.usage and second.usage is not None


def test_completions_and_responses_hit_with_their_own_types(
    wrapped: openai.OpenAI, fake_openai: FakeOpenAI
) -> None:
    for _ in range(2):
        completion = wrapped.completions.create(model="m", prompt="Say hi")
        response = wrapped.responses.create(model="m", input="Say hi")
    assert fake_openai.calls("completions") == 1 and fake_openai.calls("responses") == 1
    assert isinstance(completion, Completion) and completion.choices[0].text == "echo: Say hi"
    assert isinstance(response, Response) and response.output_text == "echo: Say hi"
    assert cache_info(completion).layer == "exact"  # type: ignore[union-attr]
    assert cache_info(response).layer == "exact"  # type: ignore[union-attr]


def test_responses_function_calls_round_trip(
    wrapped: openai.OpenAI, fake_openai: FakeOpenAI
) -> None:
    first = wrapped.responses.create(model="m", input="weather? [tool]")
    second = wrapped.responses.create(model="m", input="weather? [tool]")
    assert fake_openai.calls("responses") == 1
    assert second.output[0].type == "function_call"
    assert second.output[0].model_dump() == first.output[0].model_dump()
    assert second.usage == first.usage and second.usage is not None


def test_semantic_hit_is_marked_with_layer_and_similarity(
    fake_openai: FakeOpenAI, redis_url: str, namespace: str
) -> None:
    cache = semcache.Cache(
        redis_url=redis_url, embedder=normalising_embedder(), namespace=namespace
    )
    raw = openai.OpenAI(base_url=fake_openai.base_url, api_key="test", max_retries=0)
    client = semcache.wrap(raw, cache=cache)
    first = client.chat.completions.create(model="m", messages=ask("What is Redis?"))
    second = client.chat.completions.create(model="m", messages=ask("what is redis"))
    assert fake_openai.calls(CHAT) == 1
    info = cache_info(second)
    assert info is not None and info.layer == "semantic" and info.similarity is not None
    assert info.similarity >= cache.config.threshold
    assert second.choices[0].message.content == first.choices[0].message.content
    client.close()
    cache.flush()
    cache.close()


def test_other_calls_and_sdk_helpers_pass_through(
    wrapped: openai.OpenAI, fake_openai: FakeOpenAI
) -> None:
    assert wrapped.models.list().data[0].id == "fake-model"
    assert cache_info(wrapped.models.list()) is None
    raw = wrapped.chat.completions.with_raw_response.create(model="m", messages=ask("raw"))
    assert raw.headers["x-semcache-layer"] == "none"
    again = wrapped.chat.completions.with_raw_response.create(model="m", messages=ask("raw"))
    assert again.headers["x-semcache-layer"] == "exact"
    assert cache_info(again).layer == "exact"  # type: ignore[union-attr]
    assert again.parse().choices[0].message.content == "echo: raw"
    with wrapped.chat.completions.with_streaming_response.create(
        model="m", messages=ask("raw")
    ) as streamed:
        assert streamed.parse().choices[0].message.content == "echo: raw"
        assert cache_info(streamed).layer == "exact"  # type: ignore[union-attr]
    derived = wrapped.with_options(timeout=5.0)
    hit = derived.chat.completions.create(model="m", messages=ask("raw"))
    assert isinstance(derived, openai.OpenAI) and cache_info(hit).layer == "exact"  # type: ignore[union-attr]
    assert fake_openai.calls(CHAT) == 1


def test_malformed_request_goes_upstream_uncached(
    wrapped: openai.OpenAI, fake_openai: FakeOpenAI
) -> None:
    messages = [{"role": "user", "content": 42}]  # semcache cannot key this; the server accepts it
    for _ in range(2):
        reply = wrapped.chat.completions.create(model="m", messages=messages)  # type: ignore[arg-type]
    assert fake_openai.calls(CHAT) == 2
    assert cache_info(reply).reason == "uncacheable"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("status", "error"),
    [(429, openai.RateLimitError), (500, openai.InternalServerError), (503, openai.APIStatusError)],
)
def test_upstream_errors_reach_the_caller_and_are_never_cached(
    wrapped: openai.OpenAI, fake_openai: FakeOpenAI, status: int, error: type[Exception]
) -> None:
    plain = openai.OpenAI(base_url=fake_openai.base_url, api_key="test", max_retries=0)
    fake_openai.fail_next(status)
    with pytest.raises(error) as unwrapped:
        plain.chat.completions.create(model="m", messages=ask("flaky"))
    fake_openai.fail_next(status)
    with pytest.raises(error) as through_cache:
        wrapped.chat.completions.create(model="m", messages=ask("flaky"))
    assert type(through_cache.value) is type(unwrapped.value)
    assert through_cache.value.status_code == unwrapped.value.status_code == status  # type: ignore[attr-defined]
    assert through_cache.value.body == unwrapped.value.body  # type: ignore[attr-defined]
    # the next call goes upstream: the error was not stored
    ok = wrapped.chat.completions.create(model="m", messages=ask("flaky"))
    assert cache_info(ok).hit is False  # type: ignore[union-attr]
    wrapped.chat.completions.create(model="m", messages=ask("flaky"))
    assert fake_openai.calls(CHAT) == 3  # 2 errors, 1 miss, then a hit
    plain.close()


def test_sdk_retries_still_work_and_the_success_is_stored(
    fake_openai: FakeOpenAI, wrap_cache: semcache.Cache
) -> None:
    raw = openai.OpenAI(base_url=fake_openai.base_url, api_key="test", max_retries=2)
    client = semcache.wrap(raw, cache=wrap_cache)
    fake_openai.fail_next(500, times=2)
    reply = client.chat.completions.create(model="m", messages=ask("retry me"))
    assert reply.choices[0].message.content == "echo: retry me"
    client.chat.completions.create(model="m", messages=ask("retry me"))
    assert fake_openai.calls(CHAT) == 3
    client.close()


def test_timeout_reaches_the_caller_and_is_not_cached(
    fake_openai: FakeOpenAI, wrap_cache: semcache.Cache
) -> None:
    raw = openai.OpenAI(base_url=fake_openai.base_url, api_key="t", max_retries=0, timeout=0.3)
    client = semcache.wrap(raw, cache=wrap_cache)
    with pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(model="m", messages=ask("take your time [slow]"))
    fake_openai.slow_seconds = 0
    reply = client.chat.completions.create(model="m", messages=ask("take your time [slow]"))
    assert cache_info(reply).hit is False  # type: ignore[union-attr]
    assert fake_openai.calls(CHAT) == 2
    client.close()


@pytest.fixture
def private_redis() -> Iterator[EmbeddedServer]:
    """A second, private Redis this test may kill (never the shared session server)."""
    directory = Path(tempfile.mkdtemp(prefix="semcache-kill-"))
    server = EmbeddedServer(directory, persist=False).start()
    yield server
    if server.pid() is not None:
        server.stop()
    shutil.rmtree(directory, ignore_errors=True)


def test_killed_redis_does_not_break_calls(
    fake_openai: FakeOpenAI, private_redis: EmbeddedServer
) -> None:
    from conftest import hash_embedder

    cache = semcache.Cache(
        redis_url=private_redis.url, embedder=hash_embedder(), namespace=f"k{uuid.uuid4().hex[:8]}"
    )
    raw = openai.OpenAI(base_url=fake_openai.base_url, api_key="test", max_retries=0)
    client = semcache.wrap(raw, cache=cache)
    client.chat.completions.create(model="m", messages=ask("still there?"))
    hit = client.chat.completions.create(model="m", messages=ask("still there?"))
    assert cache_info(hit).hit  # type: ignore[union-attr]
    private_redis.stop()
    for text in ("still there?", "new question"):
        reply = client.chat.completions.create(model="m", messages=ask(text))
        assert reply.choices[0].message.content == f"echo: {text}"
        assert cache_info(reply).hit is False  # type: ignore[union-attr]
    chunks = list(client.chat.completions.create(model="m", messages=ask("s"), stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: s"
    vectors = client.embeddings.create(model="e", input=["x", "y"])
    assert len(vectors.data) == 2
    assert fake_openai.calls(CHAT) == 4
    client.close()
    cache.close()
