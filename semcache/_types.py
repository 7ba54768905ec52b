"""Data models shared by every path: configuration, stored entries and lookup results. No I/O."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Literal

from semcache._canonical import SemanticPolicy
from semcache._errors import ConfigurationError
from semcache._redis import IndexParams, check_namespace

Layer = Literal["l1", "exact", "semantic"]
StochasticPolicy = Literal["cache", "bypass"]

ENTRY_FORMAT = 1


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
        decision: the decision stage that picks one of the ``top_k`` candidates or none
            (default: the lexical guard and the learned verifier, see ``semcache.Verifier``).
    """

    namespace: str = "default"
    threshold: float = 0.9
    ttl: float | None = 7 * 24 * 3600
    ttl_jitter: float = 0.1
    sliding_ttl: bool = False
    version: str = "1"
    semantic: bool = True
    top_k: int = 4
    stochastic: StochasticPolicy = "cache"
    read_only: bool = False
    max_semantic_chars: int = 8192
    embedding_ttl: float | None = 30 * 24 * 3600
    semantic_text: SemanticPolicy = field(default_factory=SemanticPolicy)
    index: IndexParams = field(default_factory=IndexParams)
    shards: int = 1
    l1_size: int = 0
    l1_ttl: float = 5.0
    decision: Any = None
    early_refresh: float | None = None
    stampede_wait: float = 10.0
    lock_ttl: float = 30.0
    """The semantic layer's decision stage (a ``semcache.Decision``); None: the default, a
    ``GuardedDecision`` with the lexical guard and the shipped verifier
    (``semcache.ThresholdDecision()``: the plain threshold)."""

    def __post_init__(self) -> None:
        check_namespace(self.namespace)
        check_threshold(self.threshold)
        check_ttl(self.ttl)
        check_ttl(self.embedding_ttl)
        if not 0 <= self.ttl_jitter < 1:
            raise ConfigurationError("ttl_jitter must be in [0, 1)")
        if self.top_k < 1:
            raise ConfigurationError("top_k must be at least 1")
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


def check_threshold(threshold: float) -> float:
    if not isinstance(threshold, int | float) or not -1 <= threshold <= 1:
        raise ConfigurationError(f"threshold is a cosine similarity in [-1, 1], got {threshold!r}")
    return float(threshold)


def check_ttl(ttl: float | None) -> None:
    if ttl is not None and (not isinstance(ttl, int | float) or not math.isfinite(ttl) or ttl <= 0):
        raise ConfigurationError(f"ttl must be a positive number of seconds or None, got {ttl!r}")


@dataclass(frozen=True, slots=True)
class Entry:
    """A stored answer and what is known about it."""

    response: dict[str, Any]
    kind: str
    model: str
    text: str = ""
    created_at: float = 0.0
    latency_ms: float | None = None
    cost_usd: float | None = None
    ttl_ms: int | None = None
    tags: tuple[str, ...] = ()
    streamed: bool = False

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": ENTRY_FORMAT,
                "response": self.response,
                "kind": self.kind,
                "model": self.model,
                "text": self.text,
                "created_at": self.created_at,
                "latency_ms": self.latency_ms,
                "cost_usd": self.cost_usd,
                "ttl_ms": self.ttl_ms,
                "tags": list(self.tags),
                "streamed": self.streamed,
            },
            separators=(",", ":"),
            ensure_ascii=False,
        )

    @classmethod
    def from_json(cls, raw: bytes | str) -> Entry | None:
        """Decode a stored entry; None when it is corrupt, truncated or not ours."""
        try:
            data = json.loads(raw)
            if not isinstance(data, dict) or data.get("format") != ENTRY_FORMAT:
                return None
            response = data["response"]
            if not isinstance(response, dict):
                return None
            return cls(
                response=response,
                kind=str(data["kind"]),
                model=str(data["model"]),
                text=str(data.get("text", "")),
                created_at=float(data.get("created_at") or 0.0),
                latency_ms=_opt_float(data.get("latency_ms")),
                cost_usd=_opt_float(data.get("cost_usd")),
                ttl_ms=int(data["ttl_ms"]) if data.get("ttl_ms") is not None else None,
                tags=tuple(str(t) for t in data.get("tags") or ()),
                streamed=bool(data.get("streamed", False)),
            )
        except (ValueError, KeyError, TypeError):
            return None


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclass(frozen=True, slots=True)
class LookupResult:
    """The outcome of one lookup. A miss is a result with ``layer=None``, never an exception.

    Attributes:
        layer: ``"l1"``, ``"exact"``, ``"semantic"``, or None for a miss.
        similarity: cosine similarity of the semantic match (1.0 for exact hits, None on a miss).
        response: the stored response body on a hit.
        entry: the stored entry on a hit.
        key: the exact key's digest of the request (pass to ``invalidate(keys=...)``).
        matched_key: the digest of the entry that answered (differs from ``key`` on semantic hits).
        reason: why a miss missed, or why the cache stepped aside (``"bypass"``, ``"stochastic"``,
            ``"below-threshold"``, ``"no-candidates"``, ``"no-semantic-text"``, ``"unavailable"``, ...).
        best_similarity: the closest candidate's similarity, even when below the threshold.
        lookup_ms: time spent in the lookup.
    """

    layer: Layer | None
    key: str = ""
    similarity: float | None = None
    response: dict[str, Any] | None = None
    entry: Entry | None = None
    matched_key: str | None = None
    reason: str | None = None
    best_similarity: float | None = None
    lookup_ms: float = 0.0
    namespace: str = ""
    tenant: str | None = None
    tried: tuple[Layer, ...] = ()
    """The layers this lookup consulted, in order."""
    embed_ms: float = 0.0
    """Time spent embedding the semantic text (0 when it came from the embedding cache)."""
    embedded: bool = False
    """True when the embedder was called (the embedding cache missed)."""
    refresh: bool = False
    """XFetch says this hit is near expiry: recompute it now and store the fresh answer."""
    judge_calls: int = 0
    """Calls the decision stage made to a second opinion (a judge) for this lookup."""
    judge_usd: float = 0.0
    """What those judge calls cost (``SecondOpinion.cost_usd`` each), counted as overhead."""
    checks: tuple[tuple[str, str], ...] = ()
    """Why the semantic layer accepted or rejected its candidates: ``(check, outcome)`` pairs."""
    nearest_key: str | None = None
    """The digest of the closest semantic candidate when the semantic layer missed anyway:
    ``cache.feedback(result, correct)`` on such a miss says whether its answer would have been right."""

    @property
    def hit(self) -> bool:
        return self.layer is not None
