"""benchmarks/_compare_speed.py: RedisVL on HNSW really gets semcache's index parameters, and both
systems' bulk loads store every entry where a repeated prompt finds it (real Redis, toy vectors)."""

from __future__ import annotations

import numpy as np
import redis

import semcache
from benchmarks import _compare_speed as sp
from semcache.core.types import IndexParams
from tests.conftest import hash_embedder

TEXTS = [f"stored question {i}" for i in range(30)]


class Table:
    """The interface of compare.Table over a hash embedder."""

    def __init__(self) -> None:
        self.model = hash_embedder(384)

    def one(self, text: str) -> np.ndarray:
        row = self.model.embed([text])[0]
        return row / np.linalg.norm(row)

    def embedder(self, model_id: str) -> semcache.Embedder:
        return semcache.CallableEmbedder(
            lambda texts: np.stack([self.one(t) for t in texts]), model_id=model_id, dimension=384
        )


def vector_field(client: redis.Redis, index: str) -> dict[bytes, object]:
    """The vector attribute of an index as FT.INFO shows it (RESP3: a dict)."""
    info = client.execute_command("FT.INFO", index)
    return next(a for a in info[b"attributes"] if a[b"type"] == b"VECTOR")


def test_redisvl_hnsw_has_semcaches_parameters(redis_url: str, namespace: str) -> None:
    client = redis.Redis.from_url(redis_url)
    table = Table()
    params = IndexParams()
    system = sp.RedisVLBulk("hnsw", client, table.one, f"{namespace}-hnsw", hnsw=params)
    ours = sp.SemcacheBulk("semcache", redis_url, semcache.CacheConfig(), table.embedder("toy"),
                           namespace)  # fmt: skip
    try:
        ours.store("one entry", "its answer", "scope")  # the index exists once a store made it
        theirs = vector_field(client, f"{namespace}-hnsw")
        mine = vector_field(client, ours.cache._core.planner.keys().index)
        for name in (b"algorithm", b"M", b"ef_construction", b"distance_metric", b"dim"):
            assert theirs[name] == mine[name], name
        assert (theirs[b"algorithm"], theirs[b"M"]) == (b"HNSW", params.m)
        # FT.INFO does not show EF_RUNTIME: the schema RedisVL created the index from does
        attrs = system.cache._index.schema.fields["prompt_vector"].attrs
        assert attrs.ef_runtime == params.ef_runtime  # type: ignore[attr-defined]
    finally:
        system.close()
        ours.close()


def test_bulk_loads_store_every_entry_where_a_repeat_finds_it(
    redis_url: str, namespace: str
) -> None:
    client = redis.Redis.from_url(redis_url)
    table = Table()
    vectors = np.vstack([table.one(t) for t in TEXTS])
    systems = [
        sp.SemcacheBulk("semcache", redis_url, semcache.CacheConfig(), table.embedder("toy"),
                        namespace),
        sp.RedisVLBulk("redisvl", client, table.one, f"{namespace}-flat"),
    ]  # fmt: skip
    try:
        for system in systems:
            system.bulk(TEXTS, vectors, "scope")
            for i in (0, 17, 29):
                found = system.lookup(TEXTS[i], "scope", system.scale.from_cosine(0.9))
                assert found.answer == sp.answer_of(i), system.name
    finally:
        for system in systems:
            system.close()


def test_forget_empties_the_memories_a_verified_lookup_fills(
    redis_url: str, namespace: str
) -> None:
    from semcache.decision import guard
    from semcache.embedding import onnx_runtime

    # a KNN search: its miss reports the nearest similarity
    config = semcache.CacheConfig(search="knn")
    ours = sp.SemcacheBulk("semcache", redis_url, config, None, namespace)
    try:
        ours.store("How do I learn Python fast?", "answer", "scope")
        query = "What is the quickest way to learn Python?"
        near = ours.lookup(query, "scope", 0.9999).score  # a miss: the nearest similarity
        assert near is not None
        found = ours.lookup(query, "scope", near - 0.01)  # inside the verifier's band
        assert found.answer == "answer"
        verifier = ours.cache._core.decision.verifier
        assert len(verifier._recent) and len(guard._VERDICTS)
        assert any(len(m.recent) for m in onnx_runtime._SHARED.values())
        ours.forget()
        assert not len(verifier._recent) and not len(guard._VERDICTS)
        assert not any(len(m.recent) for m in onnx_runtime._SHARED.values())
    finally:
        ours.close()
