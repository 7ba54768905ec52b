"""The cache's logic, written once as generators that yield I/O operations.

A flow yields :class:`Commands` (a Redis pipeline), :class:`Embed` (texts to vectors),
:class:`CreateIndex` or :class:`Scan`, and receives each operation's result; the sync and async shells
in ``_cache.py`` execute them. A failed operation is thrown back into the flow, so the flow decides
what a failure means. Nothing here touches a socket.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, TypeVar

import numpy as np

from semcache._canonical import Canonical, canonicalize, exact_hash, scope_hash, sha256
from semcache._decide import Candidate, Decision, default_decision
from semcache._embedders import Embedder, Vectors
from semcache._errors import ConfigurationError, DimensionMismatchError
from semcache._l1 import L1, channel, message
from semcache._redis import (
    INDEX_FIELDS,
    Keys,
    check_namespace,
    embedding_key,
    index_schema,
    knn_command,
    parse_index_dimension,
    parse_index_fields,
    parse_search,
)
from semcache._types import CacheConfig, Entry, Layer, LookupResult, check_threshold, check_ttl

log = logging.getLogger("semcache")

T = TypeVar("T")
TTL = float | None | Literal["default"]


@dataclass(frozen=True, slots=True)
class Commands:
    """Run these Redis commands in one non-transactional pipeline; errors come back in place."""

    commands: tuple[tuple[Any, ...], ...]


@dataclass(frozen=True, slots=True)
class Embed:
    """Embed these texts with the cache's embedder."""

    texts: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CreateIndex:
    """Create a semantic index (through redisvl) unless it exists."""

    schema: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Call:
    """Call a function that does I/O of its own (a judge, a second model): ``fn(*args)`` in the sync
    shell, ``await afn(*args)`` in the async one (``fn`` on a worker thread when ``afn`` is None)."""

    fn: Callable[..., Any]
    args: tuple[Any, ...] = ()
    afn: Callable[..., Awaitable[Any]] | None = None


@dataclass(frozen=True, slots=True)
class Scan:
    """Every key matching a pattern, on every node."""

    pattern: str


@dataclass(frozen=True, slots=True)
class Sleep:
    """Pause the flow (``time.sleep`` in the sync shell, ``asyncio.sleep`` in the async one)."""

    seconds: float


Op = Commands | Embed | CreateIndex | Scan | Call | Sleep
Flow = Generator[Op, Any, T]


@dataclass(frozen=True, slots=True)
class Plan:
    """Everything a lookup or store needs to know about one request, computed without I/O."""

    canon: Canonical
    keys: Keys
    tenant: str | None
    tenant_tag: str
    digest: str
    threshold: float
    text: str
    scope: str
    skip_semantic: str | None
    """Why the semantic layer is skipped for this request, or None when it is used."""

    @property
    def exact_key(self) -> str:
        return self.keys.exact(self.tenant_tag, self.digest)

    @property
    def doc_key(self) -> str:
        return self.keys.doc(self.tenant_tag, self.digest)


def tenant_tag(tenant: str | None) -> str:
    """Tenants appear in keys and tag filters only as digests: no user text reaches a query."""
    return sha256(f"tenant:{tenant or ''}")[:16]


class Core:
    """The no-I/O heart of :class:`semcache.Cache` and :class:`semcache.AsyncCache`."""

    def __init__(
        self,
        config: CacheConfig,
        embedder: Embedder | None,
        *,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        vector_memory: int = 4096,
    ) -> None:
        if config.semantic and embedder is None:
            raise ConfigurationError("the semantic layer needs an embedder")
        self.config = config
        self.embedder = embedder
        self.clock = clock
        self.rng = rng or random.Random()
        self._ready: set[str] = set()
        self._vectors: OrderedDict[str, Vectors] = OrderedDict()
        self._vector_memory = vector_memory
        self._lock = threading.Lock()
        model_id = embedder.model_id if embedder is not None else "none"
        self.embedding_model = model_id
        self._emb_tag = sha256(f"model:{model_id}")[:16]
        self.l1 = L1(config.l1_size, config.l1_ttl) if config.l1_size else None
        self.decision: Decision = config.decision or default_decision()

    # --- planning (pure) ------------------------------------------------------------------------

    def plan(
        self,
        request: Mapping[str, Any],
        *,
        tenant: str | None = None,
        namespace: str | None = None,
        threshold: float | None = None,
    ) -> Plan:
        """Canonicalise a request; raises InvalidRequestError before any I/O."""
        cfg = self.config
        canon = canonicalize(request, cfg.semantic_text)
        ns = check_namespace(namespace) if namespace is not None else cfg.namespace
        if tenant is not None and not isinstance(tenant, str):
            raise ConfigurationError("tenant must be a string")
        tt = tenant_tag(tenant)
        digest = exact_hash(canon, namespace=ns, tenant=tt, version=cfg.version)
        scope = scope_hash(
            canon,
            namespace=ns,
            tenant=tt,
            version=cfg.version,
            embedding_model=self.embedding_model,
        )
        return Plan(
            canon=canon,
            keys=self.keys(ns),
            tenant=tenant,
            tenant_tag=tt,
            digest=digest,
            threshold=cfg.threshold if threshold is None else check_threshold(threshold),
            text=canon.semantic_text,
            scope=scope,
            skip_semantic=self._skip_reason(canon),
        )

    def keys(self, namespace: str | None = None) -> Keys:
        """The key names of a namespace (default: the configured one), with its shards."""
        ns = check_namespace(namespace) if namespace else self.config.namespace
        return Keys(ns, self.config.shards)

    def _skip_reason(self, canon: Canonical) -> str | None:
        if not self.config.semantic:
            return "semantic-off"
        if not canon.semantic_text.strip():
            return "no-semantic-text"
        if len(canon.semantic_text) > self.config.max_semantic_chars:
            return "semantic-text-too-long"
        return None

    def bypass_reason(self, plan: Plan) -> str | None:
        if plan.canon.stochastic and self.config.stochastic == "bypass":
            return "stochastic"
        return None

    def miss(self, plan: Plan, reason: str, best: float | None = None) -> LookupResult:
        return LookupResult(
            layer=None,
            key=plan.digest,
            reason=reason,
            best_similarity=best,
            namespace=plan.keys.namespace,
            tenant=plan.tenant,
        )

    # --- lookup ---------------------------------------------------------------------------------

    def lookup(self, plan: Plan) -> Flow[LookupResult]:
        """The L1 tier (when on), then :meth:`_lookup`; exact hits from Redis fill the L1."""
        if self.l1 is None or self.bypass_reason(plan):
            return (yield from self._lookup(plan))
        entry = self.l1.get(plan.exact_key)
        if entry is not None:
            return self._hit(plan, "l1", entry, 1.0, plan.digest, ("l1",))
        epoch = self.l1.epoch  # an invalidation from now on keeps this read out of the L1
        result = yield from self._lookup(plan)
        if result.layer == "exact" and result.entry is not None:
            self.l1.put(plan.exact_key, result.entry, epoch)
        return replace(result, tried=("l1", *result.tried))

    def _lookup(self, plan: Plan) -> Flow[LookupResult]:
        """Exact layer, then the semantic layer; the first GETs of both share one round trip."""
        bypass = self.bypass_reason(plan)
        if bypass:
            return self.miss(plan, bypass)
        semantic = plan.skip_semantic is None
        vector = self._recall(plan.text) if semantic else None
        commands: list[tuple[Any, ...]] = [("GET", plan.exact_key)]
        if semantic and vector is None:
            commands.append(("GET", self._embedding_key(plan.text)))
        replies = yield Commands(tuple(commands))
        found = yield from self._exact_hit(plan, replies[0])
        if found is not None:
            return found
        if not semantic:
            return replace(self.miss(plan, plan.skip_semantic or "miss"), tried=("exact",))
        both: tuple[Layer, ...] = ("exact", "semantic")
        start = time.perf_counter()
        try:
            vector, writes = yield from self._vector(
                plan.text, replies[1] if vector is None else vector
            )
        except Exception as exc:  # the embedder failed: the exact layer still answered
            log.warning("semcache: embedding failed, semantic layer skipped: %s", exc)
            return replace(self.miss(plan, "embedding-failed"), tried=both, embedded=True)
        embed_ms = (time.perf_counter() - start) * 1000 if writes else 0.0
        result = yield from self._semantic(plan, vector, writes)
        return replace(result, tried=both, embedded=bool(writes), embed_ms=embed_ms)

    def _exact_hit(self, plan: Plan, raw: Any) -> Flow[LookupResult | None]:
        if raw is None or isinstance(raw, Exception):
            return None
        entry = Entry.from_json(raw)
        if entry is None:
            log.warning("semcache: corrupt exact entry %s removed", plan.exact_key)
            yield Commands((("UNLINK", plan.exact_key), ("UNLINK", plan.doc_key)))
            return None
        if self.config.sliding_ttl and entry.ttl_ms:
            yield Commands((("PEXPIRE", plan.exact_key, entry.ttl_ms),))
        return self._hit(plan, "exact", entry, 1.0, plan.digest, ("exact",))

    def _hit(
        self,
        plan: Plan,
        layer: Any,
        entry: Entry,
        similarity: float,
        matched: str,
        tried: tuple[Layer, ...] = (),
    ) -> LookupResult:
        return LookupResult(
            tried=tried,
            refresh=self._should_refresh(entry),
            layer=layer,
            key=plan.digest,
            similarity=similarity,
            response=entry.response,
            entry=entry,
            matched_key=matched,
            best_similarity=similarity,
            namespace=plan.keys.namespace,
            tenant=plan.tenant,
        )

    def _should_refresh(self, entry: Entry) -> bool:
        """XFetch (Vattani et al. 2015): flag a hit for early refresh with a probability that rises
        towards expiry and with the recompute cost, so one caller refreshes a hot entry first."""
        beta = self.config.early_refresh
        if beta is None or not entry.ttl_ms or self.config.sliding_ttl:
            return False
        expiry = entry.created_at + entry.ttl_ms / 1000
        delta = (entry.latency_ms or 1000.0) / 1000  # seconds the upstream call took
        return self.clock() - delta * beta * math.log(max(self.rng.random(), 1e-12)) >= expiry

    def _semantic(
        self, plan: Plan, vector: Vectors, writes: list[tuple[Any, ...]]
    ) -> Flow[LookupResult]:
        yield from self.ensure_index(plan.keys)
        # One KNN per shard in one pipeline: a cluster pipeline writes to every node before it
        # reads, so the shards are searched in parallel; their candidates merge by distance.
        searches = tuple(
            knn_command(
                plan.keys,
                vector=self._vector_bytes(vector),
                scope=plan.scope,
                k=self.config.top_k,
                ef=None,
                fields=self.decision.return_fields,
                shard=shard,
            )
            for shard in range(plan.keys.shards)
        )
        replies = (yield Commands((*writes, *searches)))[len(writes) :]
        failed = [reply for reply in replies if isinstance(reply, Exception)]
        if failed:
            self._ready.discard(plan.keys.namespace)  # recreated on the next call if it was dropped
            log.warning("semcache: semantic search failed: %s", failed[0])
            return self.miss(plan, "search-failed")
        rows = [row for reply in replies for row in parse_search(reply)]
        candidates, stale = self._candidates(plan, rows)
        del candidates[self.config.top_k :]
        if stale:
            log.warning("semcache: %d corrupt semantic entries removed", len(stale))
            yield Commands(tuple(("UNLINK", doc) for doc in stale))  # one slot per command
        if not candidates:
            return self.miss(plan, "no-candidates")
        verdict = yield from self.decision.decide(plan.text, candidates, plan.threshold)
        best = candidates[0].similarity
        chosen = verdict.accepted
        if chosen is None:
            missed = self.miss(plan, verdict.reason, best)
            return replace(
                missed, checks=verdict.checks, nearest_key=candidates[0].digest,
                judge_calls=verdict.judge_calls, judge_usd=verdict.judge_usd,
            )  # fmt: skip
        result = self._hit(plan, "semantic", chosen.entry, chosen.similarity, chosen.digest)
        result = replace(
            result, best_similarity=best, checks=verdict.checks,
            judge_calls=verdict.judge_calls, judge_usd=verdict.judge_usd,
        )  # fmt: skip
        if self.config.sliding_ttl and chosen.entry.ttl_ms:
            yield Commands(self._renew(plan, result))
        return result

    def _candidates(
        self, plan: Plan, rows: list[tuple[str, dict[str, Any]]]
    ) -> tuple[list[Candidate], list[str]]:
        """Decode search rows, nearest first. Documents whose entry is corrupt are set aside for
        removal; a document of another scope, tenant or embedding model is never a candidate."""
        expected = {"scope": plan.scope, "tenant": plan.tenant_tag, "emb": self._emb_tag}
        candidates, stale = [], []
        for doc, fields in rows:
            if any(_text(fields.get(name, b"")) != want for name, want in expected.items()):
                log.error(
                    "semcache: search returned %s from outside the query's scope; ignored", doc
                )
                continue
            entry = Entry.from_json(fields.get("entry", b""))
            if entry is None:
                stale.append(doc)
                continue
            similarity = 1.0 - float(fields.get("dist", 2.0))  # RediSearch cosine distance
            text = _text(fields.get("text", b""))
            candidates.append(Candidate(doc.rsplit(":", 1)[-1], similarity, entry, text, fields))
        candidates.sort(key=lambda c: -c.similarity)
        return candidates, stale

    def _renew(self, plan: Plan, result: LookupResult) -> tuple[tuple[Any, ...], ...]:
        assert result.entry is not None and result.matched_key is not None
        ttl = result.entry.ttl_ms
        return (
            ("PEXPIRE", plan.keys.doc(plan.tenant_tag, result.matched_key), ttl),
            ("PEXPIRE", plan.keys.exact(plan.tenant_tag, result.matched_key), ttl),
        )

    # --- feedback -------------------------------------------------------------------------------

    def feedback(self, result: LookupResult, correct: bool) -> Flow[bool]:
        """Add ``(similarity, correct)`` to the evidence of the semantic entry a lookup served (or,
        on a miss, of its nearest candidate) and store the entry's new cut-off. False when there
        is no such entry (an exact hit, a miss without candidates, an entry since removed)."""
        from semcache._thresholds import feedback_flow

        digest = result.matched_key if result.layer == "semantic" else result.nearest_key
        similarity = result.similarity if result.layer == "semantic" else result.best_similarity
        if digest is None or similarity is None or result.layer == "exact":
            return False
        key = self.keys(result.namespace).doc(tenant_tag(result.tenant), digest)
        per_entry = getattr(self.decision, "per_entry", None)
        return (
            yield from feedback_flow(key, similarity, correct, per_entry, self.config.threshold)
        )

    # --- vectors --------------------------------------------------------------------------------

    def _embedding_key(self, text: str) -> str:
        return embedding_key(self._emb_tag, sha256(text))

    def _recall(self, text: str) -> Vectors | None:
        with self._lock:
            vector = self._vectors.get(text)
            if vector is not None:
                self._vectors.move_to_end(text)
            return vector

    def _remember(self, text: str, vector: Vectors) -> None:
        with self._lock:
            self._vectors[text] = vector
            while len(self._vectors) > self._vector_memory:
                self._vectors.popitem(last=False)

    def _decode_vector(self, raw: Any) -> Vectors | None:
        assert self.embedder is not None
        if not isinstance(raw, bytes) or len(raw) != 4 * self.embedder.dimension:
            return None
        vector = np.frombuffer(raw, dtype=np.float32)
        return vector if np.isfinite(vector).all() else None

    def _vector(self, text: str, known: Any) -> Flow[tuple[Vectors, list[tuple[Any, ...]]]]:
        """The text's vector: from memory, the embedding cache, or the embedder (then cached)."""
        if isinstance(known, np.ndarray):
            return known, []
        key = self._embedding_key(text)
        vector = self._decode_vector(known)
        if vector is None:
            rows = yield Embed((text,))
            vector = np.asarray(rows[0], dtype=np.float32)
            self._remember(text, vector)
            return vector, [self._set(key, vector.tobytes(), self._ms(self.config.embedding_ttl))]
        self._remember(text, vector)
        return vector, []

    def _vector_bytes(self, vector: Vectors) -> bytes:
        dtype = np.float16 if self.config.index.datatype == "float16" else np.float32
        return vector.astype(dtype).tobytes()

    def embed(self, texts: Sequence[str]) -> Flow[Vectors]:
        """Vectors for many texts through the embedding cache, embedding only the missing ones."""
        assert self.embedder is not None
        rows: list[Vectors | None] = [self._recall(t) for t in texts]
        todo = [i for i, row in enumerate(rows) if row is None]
        if todo:
            replies = yield Commands(tuple(("GET", self._embedding_key(texts[i])) for i in todo))
            for i, raw in zip(todo, replies, strict=True):
                rows[i] = self._decode_vector(raw)
        missing = [i for i, row in enumerate(rows) if row is None]
        if missing:
            fresh = yield Embed(tuple(texts[i] for i in missing))
            ttl = self._ms(self.config.embedding_ttl)
            writes = []
            for i, row in zip(missing, fresh, strict=True):
                vector = np.asarray(row, dtype=np.float32)
                rows[i] = vector
                writes.append(self._set(self._embedding_key(texts[i]), vector.tobytes(), ttl))
            yield Commands(tuple(writes))
        done = [row for row in rows if row is not None]
        for text, row in zip(texts, done, strict=True):
            self._remember(text, row)
        return np.vstack(done).astype(np.float32)

    def cached_vectors(self, model: str, texts: Sequence[str]) -> Flow[list[bytes | None]]:
        """Raw float32 vectors an upstream embedding model made for these texts, where cached."""
        keys = tuple(("GET", embedding_key(upstream_tag(model), sha256(t))) for t in texts)
        replies = yield Commands(keys)
        return [r if isinstance(r, bytes) and r and len(r) % 4 == 0 else None for r in replies]

    def store_vectors(
        self, model: str, texts: Sequence[str], vectors: Sequence[bytes]
    ) -> Flow[None]:
        """Cache float32 vectors an upstream embedding model made, keyed by (model, text)."""
        ttl = self._ms(self.config.embedding_ttl)
        tag = upstream_tag(model)
        yield Commands(
            tuple(
                self._set(embedding_key(tag, sha256(t)), v, ttl)
                for t, v in zip(texts, vectors, strict=True)
            )
        )

    # --- index ----------------------------------------------------------------------------------

    def ensure_index(self, keys: Keys) -> Flow[None]:
        """Create the namespace's index (one per shard) on first use; refuse an index of another
        dimension."""
        if keys.namespace in self._ready:
            return
        assert self.embedder is not None
        dimension = self.embedder.dimension
        infos = yield Commands(tuple(("FT.INFO", index) for index in keys.indexes))
        for shard, info in enumerate(infos):
            missing = isinstance(info, Exception)
            if not missing and not parse_index_fields(info) >= INDEX_FIELDS:
                # An index of another version or another program under our name: its documents
                # stay, the index is rebuilt over them (old documents simply match no scope).
                log.warning("semcache: index %s has another schema; rebuilt", keys.indexes[shard])
                yield Commands((("FT.DROPINDEX", keys.indexes[shard]),))
                missing = True
            if missing:
                yield CreateIndex(index_schema(keys, dimension, self.config.index, shard))
                continue
            existing = parse_index_dimension(info)
            if existing is not None and existing != dimension:
                raise DimensionMismatchError(
                    f"namespace {keys.namespace!r} has a semantic index of dimension {existing}, "
                    f"but the embedder {self.embedding_model!r} makes {dimension}; "
                    "use another namespace or flush this one"
                )
        self._ready.add(keys.namespace)

    # --- store ----------------------------------------------------------------------------------

    def store(
        self,
        plan: Plan,
        response: Mapping[str, Any],
        *,
        ttl: TTL = "default",
        tags: Iterable[str] = (),
        latency_ms: float | None = None,
        cost_usd: float | None = None,
        streamed: bool = False,
    ) -> Flow[bool]:
        """Write the exact entry, the semantic document and the tag sets in one pipeline."""
        if self.config.read_only or self.bypass_reason(plan):
            return False
        entry = self._entry(plan, response, self.entry_ttl_ms(ttl), tuple(tags))
        entry = replace(entry, latency_ms=latency_ms, cost_usd=cost_usd, streamed=streamed)
        vector: Vectors | None = None
        writes: list[tuple[Any, ...]] = []
        if plan.skip_semantic is None:
            try:
                vector, writes = yield from self._vector(plan.text, self._recall(plan.text))
            except Exception as exc:
                log.warning("semcache: embedding failed, stored in the exact layer only: %s", exc)
            else:
                yield from self.ensure_index(plan.keys)
        if self.l1 is not None:
            self.l1.discard(plan.exact_key)
        replies = yield Commands((*writes, *self._entry_commands(plan, entry, vector)))
        failed = [r for r in replies if isinstance(r, Exception)]
        if failed:
            log.warning("semcache: %d store commands failed: %s", len(failed), failed[0])
        return not failed

    def store_many(
        self,
        items: Sequence[tuple[Plan, Mapping[str, Any]]],
        *,
        ttl: TTL = "default",
        tags: Iterable[str] = (),
    ) -> Flow[int]:
        """Store many (plan, response) pairs: one batched embedding of their semantic texts through
        the embedding cache, then one pipeline of writes. Returns how many pairs Redis took."""
        if self.config.read_only:
            return 0
        items = [(plan, response) for plan, response in items if not self.bypass_reason(plan)]
        tags = tuple(tags)
        vectors = yield from self._batch_vectors([plan for plan, _ in items])
        commands: list[tuple[Any, ...]] = []
        owners: list[int] = []
        for i, (plan, response) in enumerate(items):
            entry = self._entry(plan, response, self.entry_ttl_ms(ttl), tags)
            rows = self._entry_commands(plan, entry, vectors.get(plan.text))
            commands += rows
            owners += [i] * len(rows)
        replies = yield Commands(tuple(commands))
        failed = {i for i, r in zip(owners, replies, strict=True) if isinstance(r, Exception)}
        if failed:
            log.warning("semcache: %d of %d entries not stored", len(failed), len(items))
        return len(items) - len(failed)

    def _batch_vectors(self, plans: Sequence[Plan]) -> Flow[dict[str, Vectors]]:
        """Vectors of the plans that use the semantic layer, embedded in one batch; their indexes."""
        semantic = [plan for plan in plans if plan.skip_semantic is None]
        if not semantic:
            return {}
        texts = list(dict.fromkeys(plan.text for plan in semantic))
        try:
            rows = yield from self.embed(texts)
        except Exception as exc:
            log.warning("semcache: embedding failed, stored in the exact layer only: %s", exc)
            return {}
        for keys in {plan.keys.namespace: plan.keys for plan in semantic}.values():
            yield from self.ensure_index(keys)
        return dict(zip(texts, rows, strict=True))

    def _entry(
        self, plan: Plan, response: Mapping[str, Any], ttl_ms: int | None, tags: tuple[str, ...]
    ) -> Entry:
        return Entry(
            response=dict(response),
            kind=plan.canon.kind,
            model=plan.canon.model,
            text=plan.text,
            created_at=self.clock(),
            ttl_ms=ttl_ms,
            tags=tags,
        )

    def _entry_commands(
        self, plan: Plan, entry: Entry, vector: Vectors | None
    ) -> list[tuple[Any, ...]]:
        """The exact entry, the semantic document (given a vector) and the tag sets."""
        value = entry.to_json()
        commands = [self._set(plan.exact_key, value, entry.ttl_ms)]
        if vector is not None:
            commands += self._doc_commands(plan, vector, value, entry.ttl_ms)
        for tag in entry.tags:
            commands += self._tag_commands(plan, tag, entry.ttl_ms)
        return commands

    def _doc_commands(
        self, plan: Plan, vector: Vectors, value: str, ttl_ms: int | None
    ) -> list[tuple[Any, ...]]:
        doc = plan.doc_key
        return [
            ("DEL", doc),
            ("HSET", doc, "vec", self._vector_bytes(vector), "scope", plan.scope,
             "tenant", plan.tenant_tag, "emb", self._emb_tag, "text", plan.text,
             "entry", value, "created", repr(self.clock())),
            ("PEXPIRE", doc, ttl_ms) if ttl_ms else ("PERSIST", doc),
        ]  # fmt: skip

    def _tag_commands(self, plan: Plan, tag: str, ttl_ms: int | None) -> list[tuple[Any, ...]]:
        if not isinstance(tag, str) or not tag:
            raise ConfigurationError("tags must be non-empty strings")
        key = plan.keys.tag(plan.tenant_tag, tag_digest(tag))
        if ttl_ms is None:
            return [("SADD", key, plan.digest), ("PERSIST", key)]
        # A tag set lives as long as its longest-lived member.
        return [
            ("SADD", key, plan.digest),
            ("PEXPIRE", key, ttl_ms, "NX"),
            ("PEXPIRE", key, ttl_ms, "GT"),
        ]

    def entry_ttl_ms(self, ttl: TTL) -> int | None:
        """An entry's TTL in ms, drawn in [ttl * (1 - jitter), ttl] so entries do not expire together."""
        seconds = self.config.ttl if ttl == "default" else ttl
        check_ttl(seconds)
        if seconds is None:
            return None
        jitter = self.config.ttl_jitter * self.rng.random()
        return max(1, int(seconds * 1000 * (1.0 - jitter)))

    @staticmethod
    def _ms(seconds: float | None) -> int | None:
        return None if seconds is None else max(1, int(seconds * 1000))

    @staticmethod
    def _set(key: str, value: Any, ttl_ms: int | None) -> tuple[Any, ...]:
        return ("SET", key, value, "PX", ttl_ms) if ttl_ms else ("SET", key, value)

    # --- invalidation ---------------------------------------------------------------------------

    def invalidate(
        self,
        *,
        keys: Iterable[str] = (),
        tags: Iterable[str] = (),
        tenant: str | None = None,
        all_tenants: bool = False,
        namespace: str | None = None,
    ) -> Flow[int]:
        """Remove entries by key digest or by tag (both layers, and every process's L1); returns
        the number of Redis keys removed."""
        ks = self.keys(namespace)
        tt = tenant_tag(tenant)
        keys, tags = tuple(keys), tuple(tags)
        victims: list[str] = []
        for digest in keys:
            victims += [ks.exact(tt, digest), ks.doc(tt, digest)]
        for tag in tags:
            if all_tenants:
                tag_keys = yield Scan(ks.tag("*", tag_digest(tag)))
            else:
                tag_keys = [ks.tag(tt, tag_digest(tag))]
            for tag_key in tag_keys:
                victims += yield from self._tag_members(ks, _text(tag_key))
        removed = yield from self._unlink(victims)
        exact = [ks.exact(tt, digest) for digest in keys]
        digests = [tag_digest(tag) for tag in tags]
        note = message(keys=exact, tags=digests, tenant=None if all_tenants else tt)
        yield from self._announce(ks, note)
        return removed

    def _announce(self, ks: Keys, note: str) -> Flow[None]:
        """Drop L1 copies here at once and in every other process through pub/sub."""
        if self.l1 is not None:
            self.l1.apply(ks.namespace, note)
        yield Commands((("PUBLISH", channel(ks.namespace), note),))

    def _tag_members(self, ks: Keys, tag_key: str) -> Flow[list[str]]:
        tenant = tag_key.split(":")[-2]
        (members,) = yield Commands((("SMEMBERS", tag_key),))
        out = [tag_key]
        for member in members or ():
            digest = _text(member)
            out += [ks.exact(tenant, digest), ks.doc(tenant, digest)]
        return out

    def drop(self, *, namespace: str | None = None, tenant: str | None = None) -> Flow[int]:
        """Remove one tenant of a namespace, or (tenant None) the whole namespace and its index."""
        ks = self.keys(namespace)
        tt = None if tenant is None else tenant_tag(tenant)
        victims: list[str] = []
        for pattern in ks.patterns(tt):
            victims += [_text(k) for k in (yield Scan(pattern))]
        removed = yield from self._unlink(victims)
        if tenant is None:
            yield Commands(tuple(("FT.DROPINDEX", index) for index in ks.indexes))
            self._ready.discard(ks.namespace)
        yield from self._announce(ks, message(tenant=tt, drop=True))
        return removed

    def _unlink(self, victims: list[str]) -> Flow[int]:
        removed = 0
        for start in range(0, len(victims), 512):
            chunk = victims[start : start + 512]
            replies = yield Commands(tuple(("UNLINK", key) for key in chunk))
            removed += sum(r for r in replies if isinstance(r, int))
        return removed


def upstream_tag(model: str) -> str:
    """The embedding-cache tag of an upstream model id (e.g. ``"text-embedding-3-small@256"``)."""
    return sha256(f"model:upstream:{model}")[:16]


def tag_digest(tag: str) -> str:
    return sha256(f"tag:{tag}")[:32]


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
