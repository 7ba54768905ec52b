"""The layered cache against a real Redis with the search module and the real local model."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest
import redis

import semcache
import semcache.redis.keys
import semcache.redis.replies
from semcache import Cache, CacheConfig
from tests.conftest import answer, chat, hash_embedder

PARAPHRASE = ("How do I reset my password?", "how can I reset my password")


def test_exact_hit_returns_the_stored_response(cache: Cache) -> None:
    request = chat("What is the capital of France?")
    assert cache.lookup(request).layer is None
    assert cache.store(request, answer("Paris."))
    result = cache.lookup(request)
    assert result.layer == "exact"
    assert result.similarity == 1.0
    assert result.response == answer("Paris.")
    assert result.entry is not None and result.entry.model == "gpt-4o-mini"
    assert result.tried == ("exact",)


def test_streamed_and_plain_requests_share_one_entry(cache: Cache) -> None:
    cache.store(chat("Tell me a joke", stream=True, stream_options={"include_usage": True}),
                answer("No."), streamed=True)  # fmt: skip
    result = cache.lookup(chat("Tell me a joke"))
    assert result.layer == "exact"
    assert result.entry is not None and result.entry.streamed


def test_semantic_hit_on_a_paraphrase_reports_its_similarity(
    cache: Cache, embedder: semcache.Embedder
) -> None:
    cache.store(chat(PARAPHRASE[0]), answer("Use the reset link."))
    result = cache.lookup(chat(PARAPHRASE[1]))
    vectors = embedder.embed(list(PARAPHRASE))
    expected = float(np.dot(vectors[0], vectors[1]))
    assert result.layer == "semantic"
    assert result.response == answer("Use the reset link.")
    assert result.similarity == pytest.approx(expected, abs=1e-4)
    assert cache.config.threshold <= result.similarity < 1.0
    assert result.matched_key != result.key


def test_threshold_override_turns_the_same_match_into_a_miss(cache: Cache) -> None:
    """A range search (the default) fetches nothing below the decision's floor: the miss has no
    candidate to report. A KNN search reports its nearest, below the threshold."""
    cache.store(chat(PARAPHRASE[0]), answer("x"))
    assert cache.lookup(chat(PARAPHRASE[1])).layer == "semantic"
    result = cache.lookup(chat(PARAPHRASE[1]), threshold=0.999)
    assert result.layer is None
    assert result.reason == "no-candidates" and result.best_similarity is None
    knn = Cache(
        redis_client=cache.client,
        embedder=cache._core.embeddings.embedder,
        config=dataclasses.replace(cache.config, search="knn"),
    )
    result = knn.lookup(chat(PARAPHRASE[1]), threshold=0.999)
    assert result.layer is None
    assert result.reason == "below-threshold"
    assert result.best_similarity is not None and 0.9 < result.best_similarity < 0.999


def test_unrelated_question_misses(cache: Cache) -> None:
    cache.store(chat(PARAPHRASE[0]), answer("x"))
    assert cache.lookup(chat("What's the weather like in Lisbon in May?")).layer is None


ISOLATION = {
    "model": ({"model": "gpt-4o"}, {}),
    "system prompt": ({"system": "Answer in French."}, {}),
    "tools": (
        {"tools": [{"type": "function", "function": {"name": "lookup", "parameters": {}}}]},
        {},
    ),
    "params": ({"temperature": 0, "max_tokens": 5}, {}),
}


@pytest.mark.parametrize("difference", ISOLATION.keys())
def test_no_hit_across_request_scopes_even_for_identical_text(
    cache: Cache, difference: str
) -> None:
    change, _ = ISOLATION[difference]
    cache.store(chat(PARAPHRASE[0]), answer("x"))
    for text in PARAPHRASE:
        result = cache.lookup(chat(text, **change))
        assert result.layer is None, difference


def test_no_hit_across_different_earlier_turns(cache: Cache) -> None:
    def convo(first: str) -> dict:
        return {"model": "m", "messages": [
            {"role": "user", "content": first}, {"role": "assistant", "content": "ok"},
            {"role": "user", "content": "And how much does it cost?"},
        ]}  # fmt: skip

    cache.store(convo("I want to buy a bike."), answer("About 500 euros."))
    assert cache.lookup(convo("I want to buy a bike.")).layer == "exact"
    assert cache.lookup(convo("I want to rent a flat.")).layer is None


def test_no_hit_across_tenants(cache: Cache) -> None:
    cache.store(chat(PARAPHRASE[0]), answer("acme's answer"), tenant="acme")
    for text in PARAPHRASE:
        assert cache.lookup(chat(text), tenant="globex").layer is None
        assert cache.lookup(chat(text)).layer is None
    assert cache.lookup(chat(PARAPHRASE[1]), tenant="acme").layer == "semantic"


def test_no_hit_across_namespaces(cache: Cache, redis_url: str, embedder: semcache.Embedder,
                                  namespace: str) -> None:  # fmt: skip
    cache.store(chat(PARAPHRASE[0]), answer("x"))
    with Cache(redis_url=redis_url, embedder=embedder, namespace=namespace + "-b") as other:
        for text in PARAPHRASE:
            assert other.lookup(chat(text)).layer is None
        other.flush()
    assert cache.lookup(chat(PARAPHRASE[1]), namespace=namespace + "-b").layer is None


def test_a_lookup_in_a_namespace_without_entries_creates_no_index(
    cache: Cache, namespace: str
) -> None:
    # A lookup created the index of every namespace it named: 300 lookups in 300 new namespaces
    # (a tenant per namespace, say, or names a client chose) left 300 indexes on the server.
    client = cache._executor.client
    other = namespace + "-only-looked-up"
    before = set(client.execute_command("FT._LIST"))
    result = cache.lookup(chat(PARAPHRASE[1]), namespace=other)
    assert result.layer is None and result.reason == "no-index"
    assert set(client.execute_command("FT._LIST")) == before
    assert cache.store(chat(PARAPHRASE[0]), answer("x"), namespace=other)  # the store makes it
    assert cache.lookup(chat(PARAPHRASE[1]), namespace=other).layer == "semantic"
    cache.flush(namespace=other)


def test_an_index_redis_lost_is_made_again_by_the_next_lookups(cache: Cache) -> None:
    # What a restart without the index (or FT.DROPINDEX) leaves: the documents, no index. Lookups
    # make no index in a namespace they never saw one in, but this one they did.
    cache.store(chat(PARAPHRASE[0]), answer("x"))
    assert cache.lookup(chat(PARAPHRASE[1])).layer == "semantic"
    cache.client.execute_command("FT.DROPINDEX", cache.plan(chat(PARAPHRASE[0])).keys.index)
    layers = []
    for _ in range(40):  # the remade index takes in the documents in the background
        layers.append(cache.lookup(chat(PARAPHRASE[1])).layer)
        if layers[-1] == "semantic":
            break
        time.sleep(0.05)
    assert layers[0] is None and layers[-1] == "semantic"


def constant_embedder(model_id: str) -> semcache.CallableEmbedder:
    """Every text maps to the same vector: any two texts match at similarity 1.0."""
    return semcache.CallableEmbedder(
        lambda texts: np.ones((len(texts), 8)), model_id=model_id, dimension=8
    )


def test_no_semantic_hit_across_embedding_models(redis_url: str, namespace: str) -> None:
    with Cache(
        redis_url=redis_url, embedder=constant_embedder("model-a"), namespace=namespace
    ) as a:
        a.store(chat("How do I reset my password?"), answer("x"))
        assert a.lookup(chat("How can I reset my password?")).layer == "semantic"  # same model
    with Cache(
        redis_url=redis_url, embedder=constant_embedder("model-b"), namespace=namespace
    ) as b:
        result = b.lookup(chat("How can I reset my password?"))
        assert result.layer is None and result.reason == "no-candidates"
        b.flush()


def test_entry_expires_with_its_ttl_and_jitter_stays_below_it(cache: Cache) -> None:
    request = chat("short lived")
    cache.store(request, answer("x"), ttl=10)
    plan = cache.plan(request)
    for key in (plan.exact_key, plan.doc_key):
        assert 9000 <= cache.client.pttl(key) <= 10000
    cache.store(request, answer("x"), ttl=0.3)
    assert cache.lookup(request).layer == "exact"
    time.sleep(0.5)
    assert cache.lookup(request).layer is None
    assert cache.lookup(chat("short-lived")).layer is None


def test_tag_invalidation_removes_both_layers_and_nothing_else(cache: Cache) -> None:
    tagged, kept = chat(PARAPHRASE[0]), chat("Where is the Eiffel Tower?")
    cache.store(tagged, answer("reset"), tags=("doc:42",))
    cache.store(kept, answer("Paris"), tags=("doc:7",))
    other_tenant = chat(PARAPHRASE[0])
    cache.store(other_tenant, answer("acme"), tenant="acme", tags=("doc:42",))
    assert cache.invalidate(tags=("doc:42",)) == 3  # exact key, semantic doc, tag set
    assert cache.lookup(tagged).layer is None
    assert cache.lookup(chat(PARAPHRASE[1])).layer is None
    assert cache.lookup(kept).layer == "exact"
    assert cache.lookup(other_tenant, tenant="acme").layer == "exact"
    assert cache.invalidate(tags=("doc:42",), all_tenants=True) == 3
    assert cache.lookup(other_tenant, tenant="acme").layer is None


def test_invalidate_by_key_tenant_and_namespace(cache: Cache) -> None:
    first, second = chat("one"), chat("two")
    cache.store(first, answer("1"))
    cache.store(second, answer("2"))
    cache.store(first, answer("acme 1"), tenant="acme")
    key = cache.lookup(first).key
    assert cache.invalidate(keys=[key]) == 2
    assert cache.lookup(first).layer is None
    assert cache.lookup(second).layer == "exact"
    assert cache.invalidate_tenant("acme") == 2
    assert cache.lookup(first, tenant="acme").layer is None
    assert cache.lookup(second).layer == "exact"
    assert cache.flush() == 2
    assert cache.lookup(second).layer is None


def test_version_bump_retires_older_entries(
    redis_url: str, embedder: semcache.Embedder, namespace: str
) -> None:
    with Cache(redis_url=redis_url, embedder=embedder,
               config=CacheConfig(namespace=namespace, version="1")) as v1:  # fmt: skip
        v1.store(chat(PARAPHRASE[0]), answer("old"))
    with Cache(redis_url=redis_url, embedder=embedder,
               config=CacheConfig(namespace=namespace, version="2")) as v2:  # fmt: skip
        assert v2.lookup(chat(PARAPHRASE[0])).layer is None
        assert v2.lookup(chat(PARAPHRASE[1])).layer is None
        v2.flush()


def test_corrupt_exact_entry_is_a_miss_and_is_removed(cache: Cache) -> None:
    request = chat("corrupt me", temperature=0)
    cache.store(request, answer("x"))
    plan = cache.plan(request)
    for junk in (b"{not json", b'{"format": 99, "response": {}}', b"\x80\x81\xfe"):
        cache.client.set(plan.exact_key, junk)
        cache.client.hset(plan.doc_key, "entry", junk)
        result = cache.lookup(request)
        assert result.layer is None
        assert cache.client.exists(plan.exact_key) == 0
        assert cache.client.exists(plan.doc_key) == 0
        cache.store(request, answer("x"))


def test_corrupt_semantic_entry_is_a_miss_and_is_removed(cache: Cache) -> None:
    cache.store(chat(PARAPHRASE[0]), answer("x"))
    doc = cache.plan(chat(PARAPHRASE[0])).doc_key
    cache.client.hset(doc, "entry", b'{"format": 1, "response": "truncated')
    assert cache.lookup(chat(PARAPHRASE[1])).layer is None
    assert cache.client.exists(doc) == 0


def test_wrong_size_embedding_cache_value_is_recomputed(cache: Cache) -> None:
    cache.store(chat(PARAPHRASE[0]), answer("x"))
    text = PARAPHRASE[1]
    key = cache._core.embeddings.key(text)
    cache.client.set(key, b"\x00" * 12)
    cache._core.embeddings.forget()
    result = cache.lookup(chat(text))
    assert result.layer == "semantic" and result.embedded
    assert len(cache.client.get(key)) == 4 * 384


def test_changed_dimension_is_a_clear_error_at_construction(
    redis_url: str, embedder: semcache.Embedder, namespace: str
) -> None:
    with Cache(redis_url=redis_url, embedder=hash_embedder(16), namespace=namespace):
        pass
    with pytest.raises(semcache.DimensionMismatchError, match="dimension 16"):
        Cache(redis_url=redis_url, embedder=embedder, namespace=namespace)
    with Cache(redis_url=redis_url, embedder=hash_embedder(16), namespace=namespace) as c:
        c.flush()


def test_stochastic_policy_bypass(redis_url: str, embedder: semcache.Embedder,
                                  namespace: str) -> None:  # fmt: skip
    config = CacheConfig(namespace=namespace, stochastic="bypass")
    with Cache(redis_url=redis_url, embedder=embedder, config=config) as c:
        hot, cold = chat("pick a number", temperature=0.8), chat("pick a number", temperature=0)
        assert c.store(hot, answer("7")) is False
        assert c.lookup(hot).reason == "stochastic"
        assert c.store(cold, answer("4"))
        assert c.lookup(cold).layer == "exact"
        c.flush()


def test_read_only_cache_never_stores(redis_url: str, embedder: semcache.Embedder,
                                      namespace: str) -> None:  # fmt: skip
    config = CacheConfig(namespace=namespace, read_only=True)
    with Cache(redis_url=redis_url, embedder=embedder, config=config) as c:
        assert c.store(chat("q"), answer("a")) is False
        assert c.lookup(chat("q")).layer is None


def test_sliding_ttl_renews_on_hit(redis_url: str, embedder: semcache.Embedder,
                                   namespace: str) -> None:  # fmt: skip
    config = CacheConfig(namespace=namespace, ttl=5, ttl_jitter=0, sliding_ttl=True)
    with Cache(redis_url=redis_url, embedder=embedder, config=config) as c:
        c.store(chat("slide"), answer("a"))
        key = c.plan(chat("slide")).exact_key
        c.client.pexpire(key, 1000)
        assert c.lookup(chat("slide")).layer == "exact"
        assert c.client.pttl(key) > 4000
        c.flush()


def test_long_semantic_text_uses_the_exact_layer_only(cache: Cache) -> None:
    long_text = "word " * 5000
    cache.store(chat(long_text), answer("x"))
    assert cache.lookup(chat(long_text)).layer == "exact"
    result = cache.lookup(chat(long_text + "!"))
    assert result.layer is None and result.reason == "semantic-text-too-long"


def test_malformed_request_raises_before_any_io(cache: Cache) -> None:
    with pytest.raises(semcache.InvalidRequestError):
        cache.lookup({"model": "m", "messages": "not a list"})


def test_redis_down_means_misses_not_exceptions(embedder: semcache.Embedder,
                                                tmp_path: object) -> None:  # fmt: skip
    from semcache.server import EmbeddedServer

    server = EmbeddedServer(str(tmp_path), persist=False).start()
    cache = Cache(redis_url=server.url, embedder=embedder, namespace="down", timeout=0.2)
    cache.store(chat("q"), answer("a"))
    assert cache.lookup(chat("q")).layer == "exact"
    server.stop()
    result = cache.lookup(chat("q"))
    assert result.layer is None and result.reason == "unavailable"
    assert cache.store(chat("q2"), answer("b")) is False
    cache.close()


def test_server_without_search_module_is_refused(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    from semcache.server import EmbeddedServer

    monkeypatch.setenv("SEMCACHE_SEARCH_MODULE", "")
    server = EmbeddedServer(str(tmp_path), persist=False).start()
    try:
        with pytest.raises(semcache.SearchModuleMissingError, match="search module"):
            Cache(redis_url=server.url, embedder=hash_embedder())
    finally:
        server.stop()


def test_cache_works_with_an_injected_client(redis_url: str, namespace: str) -> None:
    client = redis.Redis.from_url(redis_url)
    with Cache(redis_client=client, config=CacheConfig(namespace=namespace, semantic=False)) as c:
        c.store(chat("q"), answer("a"))
        assert c.lookup(chat("q")).layer == "exact"
        c.flush()
    assert client.ping()  # an injected client is not closed by the cache


def test_a_document_with_a_foreign_tenant_tag_is_never_served(cache: Cache) -> None:
    """Defence in depth: even a document that claims the query's scope digest is dropped when its
    tenant tag is another tenant's."""
    request = chat(PARAPHRASE[0])
    cache.store(request, answer("mine"))
    plan = cache.plan(request)
    forged = plan.keys.doc("f" * 16, "0" * 64)
    fields = cache.client.hgetall(plan.doc_key)
    cache.client.hset(forged, mapping={**fields, b"tenant": b"f" * 16,
                                       b"entry": fields[b"entry"].replace(b"mine", b"theirs")})  # fmt: skip
    cache.client.unlink(plan.doc_key)
    result = cache.lookup(chat(PARAPHRASE[1]), threshold=-1.0)
    assert result.layer is None and result.reason == "no-candidates"
    cache.client.hset(forged, b"tenant", plan.tenant_tag)  # control: with its own tag it is served
    assert cache.lookup(chat(PARAPHRASE[1]), threshold=-1.0).response == answer("theirs")
    cache.client.unlink(forged)


def test_an_index_of_another_schema_is_rebuilt_and_the_cache_works(
    redis_url: str, embedder: semcache.Embedder, namespace: str
) -> None:
    """An index under our name without our fields (an older version, another program) is dropped
    (its documents kept) and rebuilt, instead of failing every query."""
    keys = semcache.redis.keys.Keys(namespace)
    client = redis.Redis.from_url(redis_url)
    client.execute_command("FT.CREATE", keys.index, "ON", "HASH", "PREFIX", 1, keys.doc_prefix,
                           "SCHEMA", "vec", "VECTOR", "FLAT", 6, "TYPE", "FLOAT32", "DIM", 384,
                           "DISTANCE_METRIC", "COSINE")  # fmt: skip
    with Cache(redis_url=redis_url, embedder=embedder, namespace=namespace) as cache:
        cache.store(chat(PARAPHRASE[0]), answer("works"))
        assert cache.lookup(chat(PARAPHRASE[1])).layer == "semantic"
        fields = semcache.redis.replies.parse_index_fields(
            client.execute_command("FT.INFO", keys.index)
        )
        assert fields >= {"vec", "scope", "tenant", "emb"}
        cache.flush()
