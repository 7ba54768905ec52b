"""The configuration of a cache: every policy in one frozen value. No I/O."""

from __future__ import annotations

from dataclasses import dataclass, field

from semcache._errors import ConfigurationError
from semcache.core.canonical import SemanticPolicy
from semcache.core.types import (
    IndexParams,
    SearchPolicy,
    StochasticPolicy,
    check_namespace,
    check_threshold,
    check_ttl,
)
from semcache.decision.protocol import Decision


@dataclass(frozen=True, slots=True)
class CacheConfig:
    """Every policy of a cache, in one frozen value.

    Args:
        namespace: separates applications sharing a Redis; one semantic index per namespace.
        threshold: the cosine similarity (higher = closer, at most 1) a semantic match needs.
        ttl: seconds an entry lives (None: no expiry). Each entry's TTL is drawn in
            ``[ttl * (1 - ttl_jitter), ttl]`` so entries stored together do not expire together.
        sliding_ttl: a hit renews the entry's own TTL.
        version: part of every key; changing it retires every entry of older versions.
        semantic: enable the semantic layer.
        top_k: candidates fetched per semantic lookup.
        search: how the semantic layer looks for them. ``"range"`` (the default) asks only for
            candidates the decision stage could accept (a range query down to its lowest
            acceptable similarity: the threshold, the low end of the verifier's or the second
            opinion's band, the per-entry thresholds' floor), so a miss finds nothing and returns
            early; such a miss reports no nearest candidate (``best_similarity`` None) unless one
            was near enough to be judged. ``"knn"`` always fetches the ``top_k`` nearest however
            far, so every miss reports its nearest (and :meth:`semcache.Cache.feedback` on a miss
            can record evidence below the threshold); a decision of your own that declares no
            ``floor(threshold)`` is searched this way too.
        stochastic: what to do with temperature > 0 or n > 1 requests: ``"cache"`` the first answer
            (default) or ``"bypass"`` the cache entirely.
        read_only: look up but never store.
        max_semantic_chars: longer semantic texts skip the semantic layer (exact layer only).
        embedding_ttl: seconds an entry of the embedding cache lives.
        semantic_text: which part of the request is embedded.
        index: HNSW parameters of the semantic index.
        shards: split each namespace's semantic layer into this many indexes (hash tags
            ``{namespace:i}``), which a Redis Cluster spreads over its nodes; lookups search them
            all in parallel and merge. Part of the key layout: change it only with a flush.
        l1_size: entries of the optional in-process L1 tier of exact hits (0: off).
        l1_ttl: seconds an L1 copy is served before Redis is asked again; invalidations drop
            copies in every process at once (Redis pub/sub).
        early_refresh: XFetch's beta (1.0 is the paper's default); None turns early refresh off.
            A hit flagged ``refresh`` should be recomputed by its caller and stored again.
        stampede_wait: seconds a caller waits for another process computing the same request
            before it calls upstream itself.
        lock_ttl: seconds a compute lock lives if its holder dies.
        decision: the decision stage that picks one of the ``top_k`` candidates or none (a
            :class:`semcache.Decision`). None, the default, is a :class:`semcache.GuardedDecision`
            with the lexical guard; ``semcache.ThresholdDecision()`` is the plain threshold.
    """

    namespace: str = "default"
    threshold: float = 0.9
    ttl: float | None = 7 * 24 * 3600
    ttl_jitter: float = 0.1
    sliding_ttl: bool = False
    version: str = "1"
    semantic: bool = True
    top_k: int = 4
    search: SearchPolicy = "range"
    stochastic: StochasticPolicy = "cache"
    read_only: bool = False
    max_semantic_chars: int = 8192
    embedding_ttl: float | None = 30 * 24 * 3600
    semantic_text: SemanticPolicy = field(default_factory=SemanticPolicy)
    index: IndexParams = field(default_factory=IndexParams)
    shards: int = 1
    l1_size: int = 0
    l1_ttl: float = 5.0
    decision: Decision | None = None
    early_refresh: float | None = None
    stampede_wait: float = 10.0
    lock_ttl: float = 30.0

    def __post_init__(self) -> None:
        check_namespace(self.namespace)
        check_threshold(self.threshold)
        check_ttl(self.ttl)
        check_ttl(self.embedding_ttl)
        if not 0 <= self.ttl_jitter < 1:
            raise ConfigurationError("ttl_jitter must be in [0, 1)")
        if self.top_k < 1:
            raise ConfigurationError("top_k must be at least 1")
        if self.search not in ("range", "knn"):
            raise ConfigurationError("search must be 'range' or 'knn'")
        if self.stochastic not in ("cache", "bypass"):
            raise ConfigurationError("stochastic must be 'cache' or 'bypass'")
        if self.early_refresh is not None and self.early_refresh <= 0:
            raise ConfigurationError("early_refresh (XFetch beta) must be positive or None")
        if self.stampede_wait < 0 or self.lock_ttl <= 0:
            raise ConfigurationError("stampede_wait must be >= 0 and lock_ttl > 0")
        if not isinstance(self.shards, int) or not 1 <= self.shards <= 1024:
            raise ConfigurationError("shards must be an integer in [1, 1024]")
        if self.l1_size < 0 or not self.l1_ttl > 0:
            raise ConfigurationError("l1_size must be >= 0 and l1_ttl > 0")
        if self.max_semantic_chars < 1:
            raise ConfigurationError("max_semantic_chars must be positive")
