"""Embedders: normalised vectors, autobatching of concurrent embeds, the embedding cache."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

import semcache
from semcache import Batching, Cache, CallableEmbedder
from tests.conftest import hash_embedder


class CountingEmbedder(CallableEmbedder):
    """A callable embedder that records each batch it was given (and is slow enough to overlap)."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        inner = hash_embedder(8)
        self._gate = threading.Event()

        def fn(texts: list[str]) -> np.ndarray:
            self.batches.append(list(texts))
            self._gate.wait(0.05)
            return inner.embed(texts)

        super().__init__(fn, model_id="counting", dimension=8)


def test_vectors_are_unit_length_float32() -> None:
    rows = CallableEmbedder(lambda t: [[3.0, 4.0]] * len(t), model_id="m", dimension=2).embed(["a"])
    assert rows.dtype == np.float32
    assert np.allclose(rows, [[0.6, 0.8]])


def test_wrong_dimension_from_an_embedder_is_an_error() -> None:
    emb = CallableEmbedder(lambda t: [[1.0, 0.0, 0.0]] * len(t), model_id="m", dimension=2)
    with pytest.raises(ValueError, match="expected"):
        emb.embed(["a"])


def test_concurrent_thread_embeds_are_coalesced_into_batches() -> None:
    inner = CountingEmbedder()
    batching = Batching(inner)
    texts = [f"text {i}" for i in range(16)]
    results: dict[str, np.ndarray] = {}

    def work(text: str) -> None:
        results[text] = batching.embed([text])[0]

    threads = [threading.Thread(target=work, args=(t,)) for t in texts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(len(b) for b in inner.batches) == 16
    assert len(inner.batches) < 16
    direct = hash_embedder(8).embed(texts)
    for i, text in enumerate(texts):
        assert np.allclose(results[text], direct[i], atol=1e-6)


async def test_concurrent_async_embeds_are_coalesced_into_batches() -> None:
    inner = CountingEmbedder()
    batching = Batching(inner)
    texts = [f"async {i}" for i in range(12)]
    rows = await asyncio.gather(*(batching.aembed([t]) for t in texts))
    assert len(inner.batches) < 12
    assert sorted(x for b in inner.batches for x in b) == sorted(texts)
    direct = hash_embedder(8).embed(texts)
    assert np.allclose(np.vstack(rows), direct, atol=1e-6)


def test_batching_passes_embedder_errors_to_every_waiter() -> None:
    def broken(texts: list[str]) -> np.ndarray:
        raise RuntimeError("model crashed")

    batching = Batching(CallableEmbedder(broken, model_id="b", dimension=4))
    with pytest.raises(RuntimeError, match="model crashed"):
        batching.embed(["x"])


def test_local_model_embeds_paraphrases_close(embedder: semcache.Embedder) -> None:
    rows = embedder.embed(["How do I reset my password?", "how can I reset my password",
                           "What is the boiling point of water?"])  # fmt: skip
    assert rows.shape == (3, 384)
    assert np.allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-5)
    assert rows[0] @ rows[1] > 0.9 > rows[0] @ rows[2]


def test_sentence_transformer_embedder_embeds_paraphrases_close() -> None:
    pytest.importorskip("sentence_transformers", exc_type=ImportError)
    emb = semcache.SentenceTransformerEmbedder()
    rows = emb.embed(["How do I reset my password?", "how can I reset my password",
                      "What is the boiling point of water?"])  # fmt: skip
    assert rows.shape == (3, 384) and emb.dimension == 384
    assert np.allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-5)
    assert rows[0] @ rows[1] > 0.9 > rows[0] @ rows[2]


def test_embedding_cache_embeds_each_text_once(redis_url: str, namespace: str) -> None:
    inner = CountingEmbedder()
    with Cache(redis_url=redis_url, embedder=inner, namespace=namespace) as cache:
        first = cache.embed(["a", "b"])
        cache._core.embeddings.forget()  # forget the in-process copies: Redis must answer
        second = cache.embed(["a", "b", "c"])
        assert inner.batches == [["a", "b"], ["c"]]
        assert np.allclose(first, second[:2])
        cache.flush()


def test_embedding_failure_leaves_the_exact_layer_working(redis_url: str, namespace: str) -> None:
    calls = {"n": 0}

    def flaky(texts: list[str]) -> np.ndarray:
        calls["n"] += 1
        raise RuntimeError("embedding service down")

    emb = CallableEmbedder(flaky, model_id="flaky", dimension=4)
    from tests.conftest import answer, chat

    with Cache(redis_url=redis_url, embedder=emb, namespace=namespace) as cache:
        assert cache.store(chat("q"), answer("a"))
        assert cache.lookup(chat("q")).layer == "exact"
        result = cache.lookup(chat("another question"))
        assert result.layer is None and result.reason == "embedding-failed"
        assert calls["n"] >= 2
        cache.flush()
