"""The systems ``benchmarks/compare.py`` drives, behind one small interface.

Every system gets its embeddings from the same function ``embed_one(text) -> float32 vector``
(the offline all-MiniLM-L6-v2, or a table of vectors precomputed with it), stores a candidate as
one entry whose answer is the candidate's text, and looks a query up in one scope:

- semcache: ``Cache.store`` / ``Cache.lookup`` with ``tenant=scope`` (a hard filter in the KNN);
- RedisVL: ``SemanticCache.store(filters=...)`` / ``check(filter_expression=...)`` on a tag field;
- GPTCache: ``gptcache.adapter.api.put`` / ``get``; it has no scoping, so :meth:`reset` empties it
  between scopes (sqlite rows and faiss ids, through its own storage objects).

GPTCache and RedisVL come from the ``bench`` extra (``pip install -e ".[bench]"``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

import semcache
from benchmarks._compare_eval import COSINE, GPTCACHE, REDISVL, Found, Scale

EmbedOne = Callable[[str], np.ndarray]
MODEL = "gpt-4o-mini"


def chat(text: str) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": text}]}


def response(answer: str) -> dict[str, Any]:
    return {
        "id": "cmp", "object": "chat.completion", "model": MODEL,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": answer},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 20, "completion_tokens": 80, "total_tokens": 100},
    }  # fmt: skip


class Semcache:
    """semcache with a given :class:`semcache.CacheConfig` and embedder."""

    scale: Scale = COSINE

    def __init__(self, name: str, url: str, config: semcache.CacheConfig,
                 embedder: semcache.Embedder | None, namespace: str) -> None:  # fmt: skip
        self.name = name
        self.config = dataclasses.replace(config, namespace=namespace)
        self.cache = semcache.Cache(redis_url=url, embedder=embedder, config=self.config)
        self.default = self.config.threshold

    def describe(self) -> str:
        decision = self.cache._core.decision  # what CacheConfig.decision=None stands for, too
        shown = (
            repr(decision) if not repr(decision).startswith("<") else f"{type(decision).__name__}()"
        )
        return (f"semcache {semcache.__version__}: threshold {self.config.threshold}, "
                f"top_k {self.config.top_k}, decision {shown}, index {self.config.index}")  # fmt: skip

    def store(self, text: str, answer: str, scope: str) -> None:
        self.cache.store(chat(text), response(answer), tenant=scope)

    def lookup(self, text: str, scope: str, threshold: float) -> Found:
        result = self.cache.lookup(chat(text), tenant=scope, threshold=threshold)
        if not result.hit or result.response is None:
            return Found(None, result.best_similarity)
        return Found(result.response["choices"][0]["message"]["content"], result.similarity)

    def reset(self) -> None:
        """Scopes are tenants: nothing to do."""

    def close(self) -> None:
        self.cache.close()


class GPTCache:
    """GPTCache 0.1.44: sqlite + faiss in ``directory``, SearchDistanceEvaluation, our embedding."""

    scale: Scale = GPTCACHE

    def __init__(
        self, name: str, directory: str, embed_one: EmbedOne, dimension: int = 384
    ) -> None:
        import faiss
        from gptcache import Cache, Config
        from gptcache.manager import manager_factory
        from gptcache.processor.pre import get_prompt
        from gptcache.similarity_evaluation import SearchDistanceEvaluation

        # One OpenMP thread: a single-query flat search gains nothing from more, and on a busy
        # 2-core machine OpenMP's spinning threads cost it milliseconds.
        faiss.omp_set_num_threads(1)
        self.name = name
        self.default = GPTCACHE.default
        self.directory = directory
        # The memory LRU's bound must be passed as eviction_params["max_size"]: manager_factory's own
        # max_size argument is ignored for "sqlite,faiss", so by default GPTCache keeps 1,000 entries
        # and evicts 20% of them at the 1,001st.
        self.manager = manager_factory(
            "sqlite,faiss",
            data_dir=directory,
            vector_params={"dimension": dimension},
            eviction_params={"max_size": 10_000_000},
        )
        self.cache = Cache()
        self.cache.init(
            pre_embedding_func=get_prompt,
            embedding_func=lambda data, **_: embed_one(data),
            data_manager=self.manager,
            similarity_evaluation=SearchDistanceEvaluation(),
            config=Config(similarity_threshold=GPTCACHE.default),
        )

    def describe(self) -> str:
        return (f"GPTCache 0.1.44: manager_factory('sqlite,faiss', data_dir={self.directory!r}), "
                "faiss IDMap,Flat L2 top_k=1, SearchDistanceEvaluation(max_distance=4.0), "
                "temperature_softmax, reports on (defaults); LRU bound 10M entries (default 1,000)")  # fmt: skip

    def store(self, text: str, answer: str, scope: str) -> None:
        from gptcache.adapter.api import put

        put(text, answer, cache_obj=self.cache)

    def lookup(self, text: str, scope: str, threshold: float) -> Found:
        from gptcache.adapter.api import get

        self.cache.config.similarity_threshold = threshold
        seen: list[Any] = []
        answer = get(text, cache_obj=self.cache, hit_callback=seen.append)
        # hit_callback gets [(question, score / (max - min))]: (2 + 2cos) / 4, GPTCache's own scale.
        return Found(answer, float(seen[0][0][1]) if seen and answer is not None else None)

    def reset(self) -> None:
        ids = self.manager.s.get_ids(deleted=False)
        if ids:
            self.manager.s.mark_deleted(ids)
            self.manager.s.clear_deleted_data()
            self.manager.v.delete(np.asarray(ids, dtype=np.int64))

    def held(self) -> int:
        """Entries in the faiss index (a check that nothing was evicted)."""
        return int(self.manager.v.count())

    def close(self) -> None:
        self.manager.close()


class RedisVL:
    """RedisVL's SemanticCache on the same Redis, our embedding through a CustomVectorizer."""

    scale: Scale = REDISVL

    def __init__(self, name: str, client: Any, embed_one: EmbedOne, index: str) -> None:
        from redisvl.extensions.cache.llm import SemanticCache
        from redisvl.utils.vectorize import CustomVectorizer

        self.name = name
        self.default = REDISVL.default
        vectorizer = CustomVectorizer(embed=lambda text, **_: embed_one(text).tolist())
        self.cache = SemanticCache(
            name=index,
            distance_threshold=REDISVL.default,
            vectorizer=vectorizer,
            redis_client=client,
            filterable_fields=[{"name": "scope", "type": "tag"}],
            overwrite=True,
        )

    def describe(self) -> str:
        import redisvl

        return (f"RedisVL {redisvl.__version__} SemanticCache: FLAT cosine index (its schema), "
                f"distance_threshold {REDISVL.default} (default), num_results=1, tag filter scope")  # fmt: skip

    def store(self, text: str, answer: str, scope: str) -> None:
        self.cache.store(text, answer, filters={"scope": scope})

    def lookup(self, text: str, scope: str, threshold: float) -> Found:
        from redisvl.query.filter import Tag

        hits = self.cache.check(prompt=text, distance_threshold=threshold, num_results=1,
                                filter_expression=Tag("scope") == scope)  # fmt: skip
        if not hits:
            return Found(None, None)
        return Found(hits[0]["response"], float(hits[0]["vector_distance"]))

    def reset(self) -> None:
        """Scopes are tag values: nothing to do."""

    def close(self) -> None:
        self.cache.delete()
