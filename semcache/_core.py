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
from semcache._decide import Candidate, Decision, ThresholdDecision
from semcache._embedders import Embedder, Vectors
from semcache._errors import ConfigurationError, DimensionMismatchError
from semcache._redis import (
    Keys,
    check_namespace,
    embedding_key,
    index_schema,
    knn_command,
    parse_index_dimension,
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
        self.decision: Decision = config.decision or ThresholdDecision()

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
            keys=Keys(ns),
            tenant=tenant,
            tenant_tag=tt,
            digest=digest,
            threshold=cfg.threshold if threshold is None else check_threshold(threshold),
            text=canon.semantic_text,
            scope=scope,
            skip_semantic=self._skip_reason(canon),
        )

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
            return replace(found, tried=("exact",))
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
        return self._hit(plan, "exact", entry, 1.0, plan.digest)

    def _hit(
        self, plan: Plan, layer: Any, entry: Entry, similarity: float, matched: str
    ) -> LookupResult:
        return LookupResult(
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
        search = knn_command(
            plan.keys,
            vector=self._vector_bytes(vector),
            scope=plan.scope,
            tenant=plan.tenant_tag,
            emb=self._emb_tag,
            k=self.config.top_k,
            ef=None,
            fields=self.decision.return_fields,
        )
        replies = yield Commands((*writes, search))
        reply = replies[-1]
        if isinstance(reply, Exception):
            self._ready.discard(plan.keys.namespace)  # recreated on the next call if it was dropped
            log.warning("semcache: semantic search failed: %s", reply)
            return self.miss(plan, "search-failed")
        candidates, stale = self._candidates(parse_search(reply))
        if stale:
            log.warning("semcache: %d corrupt semantic entries removed", len(stale))
            yield Commands((("UNLINK", *stale),))
        if not candidates:
            return self.miss(plan, "no-candidates")
        verdict = yield from self.decision.decide(plan.text, candidates, plan.threshold)
        best = candidates[0].similarity
        chosen = verdict.accepted
        if chosen is None:
            return replace(self.miss(plan, verdict.reason, best), checks=verdict.checks)
        result = self._hit(plan, "semantic", chosen.entry, chosen.similarity, chosen.digest)
        result = replace(result, best_similarity=best, checks=verdict.checks)
        if self.config.sliding_ttl and chosen.entry.ttl_ms:
            yield Commands(self._renew(plan, result))
        return result

    @staticmethod
    def _candidates(rows: list[tuple[str, dict[str, Any]]]) -> tuple[list[Candidate], list[str]]:
        """Decode search rows, nearest first; documents whose entry is corrupt are set aside."""
        candidates, stale = [], []
        for doc, fields in rows:
            entry = Entry.from_json(fields.get("entry", b""))
            if entry is None:
                stale.append(doc)
                continue
            similarity = 1.0 - float(fields.get("dist", 2.0))  # RediSearch cosine distance
            text = fields.get("text", b"")
            text = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
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
        """Create the namespace's index on first use; refuse an index of another dimension."""
        if keys.namespace in self._ready:
            return
        assert self.embedder is not None
        dimension = self.embedder.dimension
        (info,) = yield Commands((("FT.INFO", keys.index),))
        if isinstance(info, Exception):
            yield CreateIndex(index_schema(keys, dimension, self.config.index))
        else:
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
        tags = tuple(tags)
        ttl_ms = self.entry_ttl_ms(ttl)
        entry = Entry(
            response=dict(response),
            kind=plan.canon.kind,
            model=plan.canon.model,
            text=plan.text,
            created_at=self.clock(),
            latency_ms=latency_ms,
            cost_usd=cost_usd,
            ttl_ms=ttl_ms,
            tags=tags,
            streamed=streamed,
        )
        value = entry.to_json()
        commands = [self._set(plan.exact_key, value, ttl_ms)]
        if plan.skip_semantic is None:
            try:
                vector, writes = yield from self._vector(plan.text, self._recall(plan.text))
            except Exception as exc:
                log.warning("semcache: embedding failed, stored in the exact layer only: %s", exc)
            else:
                yield from self.ensure_index(plan.keys)
                commands += [*writes, *self._doc_commands(plan, vector, value, ttl_ms)]
        for tag in tags:
            commands += self._tag_commands(plan, tag, ttl_ms)
        replies = yield Commands(tuple(commands))
        failed = [r for r in replies if isinstance(r, Exception)]
        if failed:
            log.warning("semcache: %d store commands failed: %s", len(failed), failed[0])
        return not failed

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
        """Remove entries by key digest or by tag (both layers); returns Redis keys removed."""
        ks = Keys(check_namespace(namespace) if namespace else self.config.namespace)
        tt = tenant_tag(tenant)
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
        return (yield from self._unlink(victims))

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
        ks = Keys(check_namespace(namespace) if namespace else self.config.namespace)
        victims: list[str] = []
        for pattern in ks.patterns(None if tenant is None else tenant_tag(tenant)):
            victims += [_text(k) for k in (yield Scan(pattern))]
        removed = yield from self._unlink(victims)
        if tenant is None:
            yield Commands((("FT.DROPINDEX", ks.index),))
            self._ready.discard(ks.namespace)
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
    return value.decode() if isinstance(value, bytes) else str(value)
