"""wrap() on whichever openai is installed: 3.x (httpx2) here, 1.40 and 2.x (httpx) in the venvs of
``.ci/openai-versions``. The same contract on each: hits with the SDK's own types, streams replay,
embeddings cached, async, upstream errors relayed and never stored; LlamaIndex's OpenAI LLM (which
pins openai<3) through ``semcache.openai.http_client`` where it is installed."""

from __future__ import annotations

import importlib.util

import openai
import pytest
from openai.types import CreateEmbeddingResponse
from openai.types.chat import ChatCompletion
from openai_server import FakeOpenAI

import semcache
from semcache.openai import cache_info

CHAT = "chat/completions"


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def test_the_installed_http_library_is_the_one_wrapped(wrapped: openai.OpenAI) -> None:
    expected = "httpx2" if openai.__version__.startswith("3.") else "httpx"
    assert type(wrapped._client).__module__.split(".")[0] == expected


def test_chat_hit_stream_and_embeddings(wrapped: openai.OpenAI, fake_openai: FakeOpenAI) -> None:
    miss = wrapped.chat.completions.create(model="m", messages=ask("versions"))  # type: ignore[arg-type]
    hit = wrapped.chat.completions.create(model="m", messages=ask("versions"))  # type: ignore[arg-type]
    assert isinstance(hit, ChatCompletion) and hit.model_dump() == miss.model_dump()
    assert cache_info(hit).layer == "exact" and cache_info(miss).layer is None  # type: ignore[union-attr]
    chunks = list(wrapped.chat.completions.create(model="m", messages=ask("versions"), stream=True))  # type: ignore[arg-type]
    assert (
        "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: versions"
    )
    for _ in range(2):
        vectors = wrapped.embeddings.create(model="e", input=["x", "y"])
    assert isinstance(vectors, CreateEmbeddingResponse) and len(vectors.data[1].embedding) == 8
    assert fake_openai.calls(CHAT) == 1 and fake_openai.embedded == ["x", "y"]


def test_upstream_errors_relay_and_are_not_stored(
    wrapped: openai.OpenAI, fake_openai: FakeOpenAI
) -> None:
    fake_openai.fail_next(429)
    with pytest.raises(openai.RateLimitError):
        wrapped.chat.completions.create(model="m", messages=ask("busy"))  # type: ignore[arg-type]
    wrapped.chat.completions.create(model="m", messages=ask("busy"))  # type: ignore[arg-type]
    assert fake_openai.calls(CHAT) == 2


async def test_async_client_hits(fake_openai: FakeOpenAI, wrap_cache: semcache.Cache) -> None:
    raw = openai.AsyncOpenAI(base_url=fake_openai.base_url, api_key="t", max_retries=0)
    client = semcache.wrap(raw, cache=wrap_cache)
    await client.chat.completions.create(model="m", messages=ask("async"))  # type: ignore[arg-type]
    stream = await client.chat.completions.create(model="m", messages=ask("async"), stream=True)  # type: ignore[arg-type]
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "echo: async" and fake_openai.calls(CHAT) == 1
    await client.close()


def test_anything_else_is_a_clear_error(wrap_cache: semcache.Cache) -> None:
    with pytest.raises(TypeError, match=r"openai\.OpenAI or openai\.AsyncOpenAI"):
        semcache.wrap(object(), cache=wrap_cache)


def installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


@pytest.mark.skipif(not installed("llama_index.llms.openai"), reason="llama-index-llms-openai")
def test_llama_index_openai_llm_through_the_wrapped_http_client(
    fake_openai: FakeOpenAI, wrap_cache: semcache.Cache
) -> None:
    from llama_index.core.llms import ChatMessage
    from llama_index.llms.openai import OpenAI as LlamaOpenAI

    http = semcache.openai.http_client(wrap_cache)
    llm = LlamaOpenAI(
        model="gpt-4o-mini", api_base=fake_openai.base_url, api_key="t", max_retries=0,
        http_client=http,
    )  # fmt: skip
    replies = [llm.chat([ChatMessage(role="user", content="llama")]) for _ in range(2)]
    assert [r.message.content for r in replies] == ["echo: llama", "echo: llama"]
    assert fake_openai.calls(CHAT) == 1
    http.close()
