"""The usage-on-hit policy: by default a hit replays the stored usage; with ``usage_on_hit="zero"``
it reports zero tokens, so tools that price ``usage`` see the hit as free."""

from __future__ import annotations

import openai
import pytest
from openai_server import FakeOpenAI

import semcache
from semcache.openai import cache_options


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def test_default_replays_the_stored_usage(wrapped: openai.OpenAI) -> None:
    miss = wrapped.chat.completions.create(model="m", messages=ask("usage"))
    hit = wrapped.chat.completions.create(model="m", messages=ask("usage"))
    assert hit.usage == miss.usage and miss.usage is not None and miss.usage.total_tokens > 0


def test_zero_usage_on_hits_only(wrapped: openai.OpenAI, fake_openai: FakeOpenAI) -> None:
    with cache_options(usage_on_hit="zero"):
        miss = wrapped.chat.completions.create(model="m", messages=ask("free"))
        hit = wrapped.chat.completions.create(model="m", messages=ask("free"))
        chunks = list(
            wrapped.chat.completions.create(
                model="m", messages=ask("free"), stream=True, stream_options={"include_usage": True}
            )
        )
        wrapped.responses.create(model="m", input="free too")
        response = wrapped.responses.create(model="m", input="free too")
    assert miss.usage is not None and miss.usage.total_tokens > 0
    assert hit.usage is not None and hit.usage.total_tokens == hit.usage.prompt_tokens == 0
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 0
    assert response.usage is not None and response.usage.total_tokens == 0
    assert hit.choices[0].message.content == miss.choices[0].message.content
    plain = wrapped.chat.completions.create(model="m", messages=ask("free"))
    assert plain.usage == miss.usage  # the stored entry kept its usage
    assert fake_openai.calls("chat/completions") == 1


def test_as_a_wrap_default_and_a_header(
    fake_openai: FakeOpenAI, wrap_cache: semcache.Cache
) -> None:
    raw = openai.OpenAI(base_url=fake_openai.base_url, api_key="t", max_retries=0)
    client = semcache.wrap(raw, cache=wrap_cache, usage_on_hit="zero")
    client.chat.completions.create(model="m", messages=ask("q"))
    assert client.chat.completions.create(model="m", messages=ask("q")).usage.total_tokens == 0  # type: ignore[union-attr]
    stored = semcache.wrap(raw, cache=wrap_cache)
    free = stored.chat.completions.create(
        model="m", messages=ask("q"), extra_headers={"x-semcache-usage-on-hit": "zero"}
    )
    assert free.usage.total_tokens == 0  # type: ignore[union-attr]
    with pytest.raises(semcache.ConfigurationError, match="usage_on_hit"):
        semcache.wrap(raw, cache=wrap_cache, usage_on_hit="none")  # type: ignore[typeddict-item]
    client.close()
