"""Accounting through ``semcache.wrap()``: the real openai client against the local server."""

from __future__ import annotations

import openai
import pytest

import semcache
from semcache.openai import cache_info

# gpt-4o-mini in genai-prices' table, USD per token.
INPUT = 0.15 / 1e6
OUTPUT = 0.60 / 1e6


def test_a_wrapped_hit_saves_the_upstream_call_it_replays(
    wrapped: openai.OpenAI, wrap_cache: semcache.Cache
) -> None:
    messages = [{"role": "user", "content": "What is Redis?"}]
    first = wrapped.chat.completions.create(model="gpt-4o-mini", messages=messages)
    second = wrapped.chat.completions.create(model="gpt-4o-mini", messages=messages)
    hit = cache_info(second)
    assert hit is not None and hit.layer == "exact"
    assert first.usage is not None
    # The local server reports 3 + 3 prompt tokens and 4 completion tokens ("echo: What is Redis?").
    assert (first.usage.prompt_tokens, first.usage.completion_tokens) == (6, 4)
    stats = wrap_cache.stats()
    exact = stats.layers["exact"]
    assert (stats.lookups, stats.hits, stats.stores) == (2, 1, 1)
    assert (exact.prompt_tokens_saved, exact.completion_tokens_saved) == (6, 4)
    assert exact.usd_saved == pytest.approx(6 * INPUT + 4 * OUTPUT)
    # The stored upstream latency minus the hit's lookup time (the only lookup that ended at exact).
    request = {"model": "gpt-4o-mini", "messages": messages}
    upstream = str(wrapped.base_url).rstrip("/")  # a wrapped client's entries are its server's
    entry = wrap_cache.lookup_plan(wrap_cache.plan(request, upstream=upstream)).entry
    assert entry is not None and entry.latency_ms is not None  # the wrapper recorded it
    assert sum(exact.buckets) == 1
    assert exact.latency_saved_ms == pytest.approx(entry.latency_ms - exact.lookup_ms)


def test_wrapped_embedding_calls_count_their_cached_texts(
    wrapped: openai.OpenAI, wrap_cache: semcache.Cache, namespace: str
) -> None:
    texts = [f"first text {namespace}", f"second text {namespace}"]
    wrapped.embeddings.create(model="text-embedding-3-small", input=texts)
    wrapped.embeddings.create(model="text-embedding-3-small", input=texts)
    embedding = wrap_cache.stats().layers["embedding"]
    assert embedding.upstream_hits == 2
    assert embedding.upstream_lookups == 4
    assert embedding.usd_saved == pytest.approx(embedding.prompt_tokens_saved * 0.02 / 1e6)
    assert embedding.prompt_tokens_saved > 0
