"""The semantic layer: its index, the nearest-neighbour search and the decision over candidates.
No I/O: the search and the index checks are yielded as commands.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from semcache._errors import DimensionMismatchError
from semcache.core.config import CacheConfig
from semcache.core.embeddings import EmbeddingCache
from semcache.core.hybrid import HybridPlans
from semcache.core.ops import Commands, Defer, Flow
from semcache.core.plan import Plan, Planner
from semcache.core.types import Entry, LookupResult
from semcache.decision.decide import search_floor
from semcache.decision.protocol import Candidate, Decision, Verdict
from semcache.embedding.embedders import Vectors
from semcache.redis import commands
from semcache.redis.keys import Keys
from semcache.redis.replies import (
    INDEX_FIELDS,
    already_exists,
    denied,
    parse_index_dimension,
    parse_index_fields,
    parse_search,
    refused_range,
    refused_vector_params,
    text,
)

log = logging.getLogger("semcache")

Command = tuple[Any, ...]


#: Seconds the semantic layer stays off after the server's ACL refused a search.
DENIED_S = 60

#: How far past the decision's floor a range search reaches (a cosine distance): RediSearch
#: computes distances in float32, so a candidate exactly at the floor may come back a rounding
#: error beyond it; the decision stage still judges it against the floor itself.
RADIUS_SLACK = 1e-5


class SemanticLayer:
    """The namespace indexes this process has checked, and the search over them."""

    def __init__(
        self,
        config: CacheConfig,
        planner: Planner,
        embeddings: EmbeddingCache,
        decision: Decision,
    ) -> None:
        self.config = config
        self.planner = planner
        self.embeddings = embeddings
        self.decision = decision
        self._ready: set[str] = set()
        self._denied_until = 0.0  # a search the server's ACL refused: none until then
        self._had: set[str] = set()  # namespaces whose index this process saw: a lookup remakes it
        # the graph's plan for scoped KNN searches; a FLAT index has no graph to walk, and a range
        # search no hybrid plan to choose
        hnsw = config.index.algorithm == "hnsw"
        self.plans = HybridPlans() if hnsw and config.search == "knn" else None
        self._epsilon = commands.RANGE_EPSILON if hnsw else None
        self.ranged = config.search == "range"  # False from the first range search refused

    # --- the index ------------------------------------------------------------------------------

    def ensure_index(self, keys: Keys, *, create: bool = True) -> Flow[bool]:
        """Create the namespace's index (one per shard) on first use; refuse an index of another
        dimension. Whether the index is there (``create=False``: a lookup's check, which leaves
        a namespace without one as it is and reports False)."""
        if keys.namespace in self._ready:
            return True
        embedder = self.embeddings.embedder
        assert embedder is not None
        dimension = embedder.dimension
        infos = yield Commands(tuple(commands.index_info(index) for index in keys.indexes))
        for shard, info in enumerate(infos):
            missing = isinstance(info, Exception)
            if not missing and not parse_index_fields(info) >= INDEX_FIELDS:
                # An index of another version or another program under our name: its documents
                # stay, the index is rebuilt over them (old documents simply match no scope).
                log.warning("semcache: index %s has another schema; rebuilt", keys.indexes[shard])
                yield Commands((commands.drop_index(keys.indexes[shard]),))
                missing = True
            if missing:
                if not create:
                    return False
                yield from self._create(keys, dimension, shard)
                continue
            existing = parse_index_dimension(info)
            if existing is not None and existing != dimension:
                raise DimensionMismatchError(
                    f"namespace {keys.namespace!r} has a semantic index of dimension {existing}, "
                    f"but the embedder {self.embeddings.model_id!r} makes {dimension}; "
                    "use another namespace or flush this one"
                )
        self._ready.add(keys.namespace)
        if len(self._had) < 4096:  # requests name namespaces: a bounded memory of them
            self._had.add(keys.namespace)
        return True

    def _create(self, keys: Keys, dimension: int, shard: int) -> Flow[None]:
        command = commands.create_index(keys, dimension, self.config.index, shard)
        (reply,) = yield Commands((command,))
        if isinstance(reply, Exception) and not already_exists(reply):
            raise reply

    def denied(self) -> bool:
        """Whether the server's ACL refused this client's searches lately: lookups then skip the
        semantic layer (no embedding for a search that cannot run) for :data:`DENIED_S` seconds,
        and try again after, in case the user was granted the command meanwhile."""
        return self._denied_until > 0 and time.monotonic() < self._denied_until

    def _deny(self, exc: Exception) -> None:
        if not self.denied():
            log.error("semcache: the Redis user may not search (%s); semantic layer off for %d s, "
                      "exact layer on", exc, DENIED_S)  # fmt: skip
        self._denied_until = time.monotonic() + DENIED_S

    def ready(self, keys: Keys) -> bool:
        """True when this namespace's index was checked (a search can go without a check)."""
        return keys.namespace in self._ready

    def forget_index(self, namespace: str) -> None:
        """Check the namespace's index again on next use (it was dropped, or may have been)."""
        self._ready.discard(namespace)

    # --- search ---------------------------------------------------------------------------------

    def search(
        self, plan: Plan, vector: Vectors, writes: list[Command], **extra: Any
    ) -> Flow[LookupResult]:
        """The nearest candidates in scope, and the decision stage's verdict over them; ``writes``
        (the embedding cache's) ride with the search; ``extra``: more fields of the result.

        A namespace without an index has nothing to find: a miss, its index left to the first
        store. A lookup used to create it: 300 lookups in 300 new namespaces left 300 indexes. An
        index this process saw before and Redis lost (a restart without its data, a FLUSHALL) is
        made again at once: the entries stored since then are indexed by it."""
        create = plan.keys.namespace in self._had
        if not (yield from self.ensure_index(plan.keys, create=create)):
            if writes:
                yield Commands(tuple(writes))
            return self.planner.miss(plan, "no-index", **extra)
        searches = self.queries(plan, vector)
        replies = (yield Commands((*writes, *searches)))[len(writes) :]
        return (yield from self.answer(plan, replies, **extra))

    def queries(self, plan: Plan, vector: Vectors) -> tuple[Command, ...]:
        """The KNN searches of a lookup (its namespace's index must be ready: :meth:`ensure_index`).

        One KNN per shard in one pipeline: a cluster pipeline writes to every node before it
        reads, so the shards are searched in parallel; their candidates merge by distance. Now and
        then the counts that choose each shard's hybrid plan go with them (:meth:`answer` reads
        them)."""
        blob = self.embeddings.as_index_bytes(vector)
        shards = range(plan.keys.shards)
        searches = tuple(self._knn(plan, blob, shard) for shard in shards)
        if self.plans is None:
            return searches
        return searches + self.plans.counts(plan.keys, plan.scope)

    def cached_search(self, plan: Plan, vector_key: str) -> Command | None:
        """The read of a text's cached vector with the search that uses it, as one script
        (:data:`semcache.redis.commands.CACHED_SEARCH`), when it can be: one index (no shards)
        already checked, of float32 vectors (the embedding cache's own bytes). None otherwise."""
        if plan.keys.shards != 1 or not self.embeddings.float32 or not self.ready(plan.keys):
            return None
        size = 4 * self.embeddings.dimension
        return commands.cached_search(plan.exact_key, vector_key, size, self._knn(plan, b"", 0))

    def _knn(self, plan: Plan, blob: bytes, shard: int) -> Command:
        index = plan.keys.index_of(shard)
        policy = self.plans.plan(index, plan.scope) if self.plans is not None else None
        return commands.knn(plan.keys, vector=blob, scope=plan.scope, k=self.config.top_k,
                            ef=None, fields=self.decision.return_fields, shard=shard,
                            policy=policy, radius=self.radius(plan.threshold),
                            epsilon=self._epsilon)  # fmt: skip

    def radius(self, threshold: float) -> float | None:
        """The cosine distance a range search reaches at ``threshold``: down to the lowest
        similarity the decision stage can accept (a hair below, for the float rounding of
        distances). None: a KNN (``CacheConfig(search="knn")``, or a decision that declares no
        floor)."""
        if not self.ranged:
            return None
        floor = search_floor(self.decision, threshold)
        return None if floor is None else 1.0 - floor + RADIUS_SLACK

    def answer(self, plan: Plan, replies: Sequence[Any], **extra: Any) -> Flow[LookupResult]:
        """The verdict over the replies of :meth:`queries` (``extra``: more fields of the result)."""
        replies = self._counted(plan, replies)
        failed = [reply for reply in replies if isinstance(reply, Exception)]
        if any(map(denied, failed)):
            self._deny(failed[0])
            return self.planner.miss(plan, "search-denied", **extra)
        if failed:
            if self.ranged and any(map(refused_range, failed)):
                # a server before range queries, or an index not of this config's kind (EPSILON
                # asked of a FLAT index another process made): KNN searches from now on
                log.warning("semcache: the server refused the range search (%s); KNN searches "
                            "from now on", failed[0])  # fmt: skip
                self.ranged = False
            elif self.plans is not None and any(map(refused_vector_params, failed)):
                # a server before HYBRID_POLICY (RediSearch 2.6): it chooses from now on
                log.warning("semcache: the server refused the search's hybrid plan (%s); "
                            "RediSearch chooses from now on", failed[0])  # fmt: skip
                self.plans = None
            self.forget_index(plan.keys.namespace)  # recreated on the next call if it was dropped
            log.warning("semcache: semantic search failed: %s", failed[0])
            return self.planner.miss(plan, "search-failed", **extra)
        rows = [row for reply in replies for row in parse_search(reply)]
        candidates = self._candidates(plan, rows)
        del candidates[self.config.top_k :]
        return (yield from self._decide(plan, candidates, extra))

    def _counted(self, plan: Plan, replies: Sequence[Any]) -> Sequence[Any]:
        """The searches' replies, after the counts that came with them (if any) are learned."""
        shards = plan.keys.shards
        if len(replies) <= shards:
            return replies
        if self.plans is not None:  # (None: turned off since the counts were sent)
            self.plans.learn(plan.keys, plan.scope, replies[shards:])
        return replies[:shards]

    def _decide(
        self, plan: Plan, candidates: list[Candidate], extra: dict[str, Any]
    ) -> Flow[LookupResult]:
        """The decision stage's verdict; a corrupt entry it chose is removed and it decides again
        over the rest (entries are decoded only once chosen)."""
        while candidates:
            verdict = yield from self.decision.decide(plan.text, candidates, plan.threshold)
            if verdict.learned and not self.config.read_only:  # with the next round trip
                yield Defer(
                    tuple(commands.add_fields(key, fields) for key, fields in verdict.learned)
                )
            chosen = verdict.accepted
            entry = chosen.decoded() if chosen is not None else None
            if chosen is not None and entry is None:
                log.warning("semcache: corrupt semantic entry %s removed", chosen.digest)
                yield Commands((commands.unlink(plan.keys.doc(plan.tenant_tag, chosen.digest)),))
                candidates = [c for c in candidates if c is not chosen]
                continue
            return (yield from self._verdict(plan, candidates[0], verdict, entry, extra))
        return self.planner.miss(plan, "no-candidates", **extra)

    def _verdict(
        self,
        plan: Plan,
        nearest: Candidate,
        verdict: Verdict,
        entry: Entry | None,
        extra: dict[str, Any],
    ) -> Flow[LookupResult]:
        judged = {"checks": verdict.checks, "judge_calls": verdict.judge_calls,
                  "judge_usd": verdict.judge_usd, **extra}  # fmt: skip
        chosen = verdict.accepted
        if chosen is None or entry is None:
            return self.planner.miss(
                plan, verdict.reason, nearest.similarity, nearest_key=nearest.digest, **judged
            )
        if self.config.sliding_ttl and entry.ttl_ms:
            yield Commands(self._renew(plan, chosen.digest, entry.ttl_ms))
        return self.planner.hit(
            plan, "semantic", entry, chosen.similarity, chosen.digest,
            best_similarity=nearest.similarity, **judged,
        )  # fmt: skip

    def _candidates(self, plan: Plan, rows: list[tuple[str, dict[str, Any]]]) -> list[Candidate]:
        """Search rows as candidates, nearest first, their entries not decoded yet; a document of
        another scope, tenant or embedding model is never a candidate."""
        expected = [(name, want, want.encode()) for name, want in
                    (("scope", plan.scope), ("tenant", plan.tenant_tag), ("emb", self.embeddings.tag))]  # fmt: skip
        candidates = []
        for doc, fields in rows:
            if any(fields.get(name) not in (want, raw) for name, want, raw in expected):
                log.error(
                    "semcache: search returned %s from outside the query's scope; ignored", doc
                )
                continue
            similarity = 1.0 - float(fields.get("dist", 2.0))  # RediSearch cosine distance
            digest = doc.rsplit(":", 1)[-1]
            found = text(fields.get("text", b""))
            raw = fields.get("entry", b"")
            candidates.append(Candidate(digest, similarity, None, found, fields, raw=raw, key=doc))
        candidates.sort(key=lambda c: -c.similarity)
        return candidates

    @staticmethod
    def _renew(plan: Plan, digest: str, ttl_ms: int) -> tuple[Command, ...]:
        return (
            commands.renew(plan.keys.doc(plan.tenant_tag, digest), ttl_ms),
            commands.renew(plan.keys.exact(plan.tenant_tag, digest), ttl_ms),
        )

    # --- documents ------------------------------------------------------------------------------

    def document(
        self, plan: Plan, vector: Vectors, value: str, ttl_ms: int | None
    ) -> list[Command]:
        """The commands that write a request's semantic document."""
        fields = (
            ("vec", self.embeddings.as_index_bytes(vector)), ("scope", plan.scope),
            ("tenant", plan.tenant_tag), ("emb", self.embeddings.tag), ("text", plan.text),
            ("entry", value), ("created", repr(self.planner.clock())),
        )  # fmt: skip
        wanted = getattr(self.decision, "document_fields", None)
        if wanted is not None:
            fields += tuple(wanted(plan.text))
        return commands.put_document(plan.doc_key, fields, ttl_ms)
