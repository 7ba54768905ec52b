"""The cache's logic, written once as flows that yield operations (:mod:`semcache.core.ops`).

:class:`Core` composes one object per layer, each owning its own state: the :class:`Planner`
(plans and results), the :class:`L1` tier, the exact layer (here), the :class:`SemanticLayer`
(index, search, decision), the :class:`EmbeddingCache` and :class:`Invalidation`. The sync and
async shells execute what the flows yield. Nothing here touches a socket.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any, Literal

from semcache._errors import ConfigurationError
from semcache.core.config import CacheConfig
from semcache.core.embeddings import EmbeddingCache, vector_id
from semcache.core.invalidation import Invalidation, Leases, generations
from semcache.core.l1 import L1
from semcache.core.lru import LRU
from semcache.core.moving import Mean, Share
from semcache.core.ops import Commands, Flow
from semcache.core.plan import Plan, Planner
from semcache.core.semantic import SemanticLayer
from semcache.core.types import Entry, Layer, LookupResult, check_ttl
from semcache.decision.decide import default_decision
from semcache.decision.protocol import Decision
from semcache.decision.thresholds import feedback_flow
from semcache.embedding.embedders import Embedder, Vectors
from semcache.redis import commands
from semcache.redis.keys import tag_digest, tenant_tag
from semcache.redis.replies import is_ok, lost_script, refused_script

log = logging.getLogger("semcache")

TTL = float | None | Literal["default"]
Command = tuple[Any, ...]


STORE_CHUNK = 256
"""Entries of a ``store_many`` embedded per step: the local model remembers the token rows of its
last 512 texts, so a chunk's are all in memory when its documents take the verifier's state."""
WORTH_SCRIPTING = 0.1
"""The share of vector-unknown lookups that must find their vector in Redis behind an exact miss
for the lookup script to go: it saves ~300 µs on those and costs ~30 µs on the others."""


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
        self.embeddings = EmbeddingCache(
            embedder,
            ttl=config.embedding_ttl,
            datatype=config.index.datatype,
            memory=vector_memory,
        )
        self.planner = Planner(config, self.embeddings.model_id, clock=clock, rng=rng)
        self.l1 = L1(config.l1_size, config.l1_ttl) if config.l1_size else None
        self.decision: Decision = config.decision or default_decision()
        self.semantic = SemanticLayer(config, self.planner, self.embeddings, self.decision)
        self.invalidation = Invalidation(self.planner, self.semantic, self.l1)
        self.leases = Leases()
        #: Exact keys whose last read here missed (see :meth:`_searches`).
        self.exact_misses: LRU[str, bool] = LRU(vector_memory)
        #: Whether the commands go to a single node, where a lookup's scripted read of a cached
        #: vector may search with it (:meth:`_cached_search`); the shell says, as its executor knows.
        self.single_node: Callable[[], bool] = lambda: False
        #: False once the server refused that script (an ACL, a Redis before 7): plain reads since.
        self.scripts = True
        self.found_in_redis = Share()
        #: The share of lookups new to this process (their vector not in memory, not given) that
        #: the exact layer answered, over the last ~16, and a lookup's first round trip when it is
        #: a plain read, no search riding with it (ms): see :meth:`_embeds_first`.
        self.exact_of_new = Share(window=16)
        self.round_trip = Mean(skip=4)

    @property
    def embedding_model(self) -> str:
        return self.embeddings.model_id

    @property
    def rng(self) -> random.Random:
        """The randomness of TTL jitter and early refresh (replace it to make a test exact)."""
        return self.planner.rng

    @rng.setter
    def rng(self, rng: random.Random) -> None:
        self.planner.rng = rng

    # --- lookup ---------------------------------------------------------------------------------

    def lookup(self, plan: Plan, vector: Vectors | None = None) -> Flow[LookupResult]:
        """The L1 tier (when on), then the exact and semantic layers; exact hits fill the L1.
        ``vector``: the semantic text's embedding when the caller has it (checked already)."""
        result, _ = yield from self.lookup_or_lock(plan, None, vector)
        return result

    def lookup_or_lock(
        self, plan: Plan, lock: tuple[str, int] | None, vector: Vectors | None = None
    ) -> Flow[tuple[LookupResult, bool]]:
        """:meth:`lookup`, taking the request's compute lock (``lock``: a token and a TTL in ms)
        in the same round trip as the exact read; with whether the lock was taken."""
        if self.l1 is None or self.planner.bypass_reason(plan):
            return (yield from self._lookup(plan, lock, vector))
        entry = self.l1.get(plan.exact_key)
        if entry is not None:
            return self.planner.hit(plan, "l1", entry, 1.0, plan.digest, ("l1",)), False
        epoch = self.l1.epoch  # an invalidation from now on keeps this read out of the L1
        result, locked = yield from self._lookup(plan, lock, vector)
        if result.layer == "exact" and result.entry is not None:
            self.l1.put(plan.exact_key, result.entry, epoch)
        return replace(result, tried=("l1", *result.tried)), locked

    def _lookup(
        self, plan: Plan, lock: tuple[str, int] | None, given: Vectors | None
    ) -> Flow[tuple[LookupResult, bool]]:
        """Exact layer, then the semantic layer, their reads in one round trip: with the exact GET
        go the embedding-cache read when the vector is not known, or else the KNN search itself
        when the exact layer is not expected to answer (:meth:`_searches`)."""
        bypass = self.planner.bypass_reason(plan)
        if bypass:
            return self.planner.miss(plan, bypass), False
        if plan.skip_semantic is None and self.semantic.denied():  # the ACL refused its searches
            plan = replace(plan, skip_semantic="search-denied")
        semantic = plan.skip_semantic is None
        vector, fresh_ms = None, None
        if semantic:
            vector = given if given is not None else self.embeddings.recall(plan.text, plan.tenant)
        new = semantic and vector is None
        if new and self._embeds_first():
            vector, fresh_ms = yield from self._embed_first(plan)
            if vector is None:  # the embedder failed: the exact layer still answers
                plan, semantic = replace(plan, skip_semantic="embedding-failed"), False
        gens = generations(plan)
        reads: list[Command] = [commands.get(plan.exact_key), *map(commands.get, gens)]
        scripted = None
        if semantic and vector is None:
            key = self.embeddings.key(plan.text, plan.tenant)
            scripted = self._cached_search(plan, key)
            reads.append(scripted or commands.get(key))
        searches = self._searches(plan, vector, given is not None or fresh_ms is not None)
        # The lock goes first: a store that lands after it is seen by the GET behind it.
        first = (commands.take_lock(plan.lock_key, *lock),) if lock is not None else ()
        start = time.perf_counter()
        replies = yield Commands((*first, *reads, *searches))
        if not searches and scripted is None:  # a plain read: what embedding first would save
            self.round_trip.saw((time.perf_counter() - start) * 1000)
        locked = bool(first) and is_ok(replies[0])
        exact, *rest = replies[len(first) :]
        seen, rest = rest[: len(gens)], rest[len(gens) :]
        searched = bool(searches)
        if scripted is not None and exact is None:  # a hit does not need what the script found
            rest, searched = yield from self._cached_found(plan, scripted, rest[0])
        result = yield from self._layers(plan, exact, rest, vector, searched, fresh_ms)
        if semantic and vector is None:  # the script's saving: the vector came from Redis, not
            # the embedder, behind an exact miss; an exact hit is the script's cost
            self.found_in_redis.saw(result.layer != "exact" and not result.embedded)
        if new:
            self.exact_of_new.saw(result.layer == "exact")
        if result.layer != "exact" and not any(isinstance(g, Exception) for g in seen):
            self.leases.give(plan.exact_key, tuple(seen))  # for the store of this miss
        return result, locked

    def _embeds_first(self) -> bool:
        """Whether a lookup new to this process asks the embedder before its exact read, so the
        KNN search rides with the exact GET: one round trip where two are made (the embedding-cache
        read, then the search). It pays when the embedder is cheaper than a round trip (a vector
        table, a hashing embedder; never a model, local or remote) and the exact layer seldom
        answers such lookups. Embedding first costs an exact hit the embedding and a search it does
        not need (taken as another round trip's worth): p * (cost + round trip); it saves the
        others a round trip: (1 - p) * round trip. With the share over the last ~16 such lookups,
        a run of exact hits turns it off within about ten."""
        cost, trip = self.embeddings.cost, self.round_trip
        if not (cost.known and trip.known) or cost.mean >= trip.mean:
            return False
        p = self.exact_of_new.share
        return p * (cost.mean + trip.mean) < (1.0 - p) * trip.mean

    def _embed_first(self, plan: Plan) -> Flow[tuple[Vectors | None, float | None]]:
        """The text's vector, before the exact read, and the ms it took; (None, None) when the
        embedder failed (logged)."""
        start = time.perf_counter()
        try:
            vector = yield from self.embeddings.fresh(plan.text, plan.tenant)
        except Exception as exc:
            log.warning("semcache: embedding failed, semantic layer skipped: %s", exc)
            return None, None
        return vector, (time.perf_counter() - start) * 1000

    def _searches(self, plan: Plan, vector: Vectors | None, given: bool) -> tuple[Command, ...]:
        """The KNN searches that ride with the exact read: when the vector is known, the index
        checked, and the exact layer not expected to answer: the caller gave the vector, or this
        exact key missed here last time and was not stored here since (its lease is held). A
        repeated prompt, whose vector is in memory too, stays a lone GET: the exact layer wins when
        both answer, so its search would be wasted."""
        if vector is None or not self.semantic.ready(plan.keys):
            return ()
        key = plan.exact_key
        if not given and not (key in self.exact_misses and self.leases.holds(key)):
            return ()
        return self.semantic.queries(plan, vector)

    def _cached_search(self, plan: Plan, key: str) -> Command | None:
        """The cached vector's read as a script that also searches with it (one round trip where
        two were made: a text another worker embedded), where the server runs it and it pays: the
        script costs an exact hit about 30 µs over a plain MGET (measured), and saves a round trip
        only when the exact layer misses and Redis has the vector, so it goes while that happens
        on at least :data:`WORTH_SCRIPTING` of the lookups that did not know their vector."""
        if not (self.scripts and self.single_node()) or self.found_in_redis.share < WORTH_SCRIPTING:
            return None
        return self.semantic.cached_search(plan, key)

    def _cached_found(
        self, plan: Plan, scripted: Command, reply: Any
    ) -> Flow[tuple[list[Any], bool]]:
        """What the scripted read found, as :meth:`_layers` reads it: the search's reply (and the
        vector, kept in memory) when it searched with a sound vector, else the raw vector or None
        for the embedding cache to decode, embedding when it cannot."""
        if lost_script(reply):  # a restart or a SCRIPT FLUSH: the script's text, once
            (reply,) = yield Commands((commands.with_script(scripted),))
        if refused_script(reply):
            log.warning("semcache: the server refused the lookup script (%s); plain reads from "
                        "now on", reply)  # fmt: skip
            self.scripts = False
        if not isinstance(reply, list) or not reply:  # an error: embedded afresh, this once
            return [None], False
        raw, found = reply[0], (reply[1] if len(reply) > 1 else None)
        vector = self.embeddings.decode(raw) if found is not None else None
        if vector is None:  # not searched: no vector, or not one of this model's
            return [raw], False
        self.embeddings.memory.put(vector_id(plan.text, plan.tenant), vector)
        return [found], True

    def _layers(
        self,
        plan: Plan,
        exact: Any,
        rest: Sequence[Any],
        vector: Any,
        searched: bool,
        fresh_ms: float | None = None,
    ) -> Flow[LookupResult]:
        """The exact layer's answer, else the semantic layer's (``rest``: the replies of the
        embedding-cache read or of the searches that rode with the exact read; ``fresh_ms``: the
        vector was embedded before the read, in that time, and is not cached in Redis)."""
        found = yield from self._exact_hit(plan, exact)
        if found is not None:
            self.exact_misses.pop(plan.exact_key)  # stored by another process, say
            if fresh_ms is not None:  # embedded for nothing: the result says so
                return replace(found, embedded=True, embed_ms=fresh_ms)
            return found
        if exact is None:
            self.exact_misses.put(plan.exact_key, True)
        if plan.skip_semantic is not None:
            return self.planner.miss(plan, plan.skip_semantic, tried=("exact",))
        both: tuple[Layer, ...] = ("exact", "semantic")
        fresh = {} if fresh_ms is None else {"embedded": True, "embed_ms": fresh_ms}
        if searched:
            return (yield from self.semantic.answer(plan, rest, tried=both, **fresh))
        start = time.perf_counter()
        try:  # a vector known already (in memory, given, embedded first) comes back as it is
            vector, writes = yield from self.embeddings.vector(
                plan.text, rest[0] if vector is None else vector, plan.tenant
            )
        except Exception as exc:  # the embedder failed: the exact layer still answered
            log.warning("semcache: embedding failed, semantic layer skipped: %s", exc)
            return self.planner.miss(plan, "embedding-failed", tried=both, embedded=True)
        embed_ms = (time.perf_counter() - start) * 1000 if writes else 0.0
        made = fresh or {"embedded": bool(writes), "embed_ms": embed_ms}
        return (yield from self.semantic.search(plan, vector, writes, tried=both, **made))

    def _exact_hit(self, plan: Plan, raw: Any) -> Flow[LookupResult | None]:
        if raw is None or isinstance(raw, Exception):
            return None
        entry = Entry.from_json(raw)
        if entry is None:
            log.warning("semcache: corrupt exact entry %s removed", plan.exact_key)
            yield Commands((commands.unlink(plan.exact_key), commands.unlink(plan.doc_key)))
            return None
        if self.config.sliding_ttl and entry.ttl_ms:
            yield Commands((commands.renew(plan.exact_key, entry.ttl_ms),))
        return self.planner.hit(plan, "exact", entry, 1.0, plan.digest, ("exact",))

    # --- feedback -------------------------------------------------------------------------------

    def feedback(self, result: LookupResult, correct: bool) -> Flow[bool]:
        """Add ``(similarity, correct)`` to the evidence of the semantic entry a lookup served (or,
        on a miss, of its nearest candidate) and store the entry's new cut-off. False when there
        is no such entry (an exact hit, a miss without candidates, an entry since removed)."""
        digest = result.matched_key if result.layer == "semantic" else result.nearest_key
        similarity = result.similarity if result.layer == "semantic" else result.best_similarity
        if digest is None or similarity is None or result.layer == "exact":
            return False
        key = self.planner.keys(result.namespace).doc(tenant_tag(result.tenant), digest)
        per_entry = getattr(self.decision, "per_entry", None)
        return (
            yield from feedback_flow(key, similarity, correct, per_entry, self.config.threshold)
        )

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
        unlock: str | None = None,
        vector: Vectors | None = None,
    ) -> Flow[bool]:
        """Write the exact entry, the semantic document and the tag sets in one pipeline (with the
        release of the request's compute lock, given its token as ``unlock``). ``vector``: the
        caller's own (checked) embedding of the semantic text, used as given and never cached as
        the embedder's."""
        release = (commands.release_lock(plan.lock_key, unlock),) if unlock is not None else ()
        if self.config.read_only or self.planner.bypass_reason(plan):
            if release:
                yield Commands(release)
            return False
        entry = self._entry(plan, response, self.entry_ttl_ms(ttl), tuple(tags))
        entry = replace(entry, latency_ms=latency_ms, cost_usd=cost_usd, streamed=streamed)
        writes: list[Command] = []
        if plan.skip_semantic is not None:
            vector = None
        elif vector is None:
            try:
                vector, writes = yield from self.embeddings.vector(
                    plan.text, self.embeddings.recall(plan.text, plan.tenant), plan.tenant
                )
            except Exception as exc:
                log.warning("semcache: embedding failed, stored in the exact layer only: %s", exc)
        if vector is not None:
            yield from self.semantic.ensure_index(plan.keys)
        if self.l1 is not None:
            self.l1.discard(plan.exact_key)
        gens = tuple(map(commands.get, generations(plan)))
        seen = self.leases.take(plan.exact_key)
        before = gens if seen is None else ()  # no lookup of ours: the generations as of now
        batch = (*writes, *self._entry_commands(plan, entry, vector))
        replies = yield Commands((*before, *batch, *gens, *release))
        seen = tuple(replies[: len(before)]) if seen is None else seen
        replies = replies[len(before) : len(before) + len(batch) + len(gens)]
        failed = [r for r in replies if isinstance(r, Exception)]
        if failed:
            log.warning("semcache: %d store commands failed: %s", len(failed), failed[0])
            return False
        return (yield from self._outlived(plan, seen, tuple(replies[len(batch) :])))

    def _outlived(self, plan: Plan, seen: tuple[Any, ...], now: tuple[Any, ...]) -> Flow[bool]:
        """Whether a store stands: if an invalidation of its tenant or namespace moved a generation
        since its lookup, the invalidation wins and what the store wrote is removed. ``now`` is read
        behind the writes, and an invalidation moves its generation before it looks for victims, so
        either it finds these writes or ``now`` shows the move."""
        if now == seen:
            return True
        log.info("semcache: a store raced an invalidation and was dropped: %s", plan.digest)
        yield Commands((commands.unlink(plan.exact_key), commands.unlink(plan.doc_key)))
        if self.l1 is not None:
            self.l1.discard(plan.exact_key)
        return False

    def store_many(
        self,
        items: Sequence[tuple[Plan, Mapping[str, Any]]],
        *,
        ttl: TTL = "default",
        tags: Iterable[str] = (),
        vectors: Sequence[Vectors | None] = (),
    ) -> Flow[int]:
        """Store many (plan, response) pairs: batched embeddings of their semantic texts through the
        embedding cache, :data:`STORE_CHUNK` at a time (each chunk's documents built while the
        model still remembers its texts, so they keep the verifier's token state), then one
        pipeline of writes (the embedding cache's with them). Returns
        how many pairs Redis took in every layer they use: a failure to embed, or of Redis, fails
        the batch rather than leave it in the exact layer only. ``vectors``: the callers' own
        (checked) embeddings, one per pair or None where the embedder makes it (empty: all)."""
        if self.config.read_only:
            return 0
        given = list(vectors) or [None] * len(items)
        kept = [i for i, (p, _) in enumerate(items) if not self.planner.bypass_reason(p)]
        items, given = [items[i] for i in kept], [given[i] for i in kept]
        tags = tuple(tags)
        yield from self._ensure_indexes([plan for plan, _ in items])
        batch: list[Command] = []
        owners: list[int] = []  # the entry each write is for (-1: the embedding cache's)
        for lo in range(0, len(items), STORE_CHUNK):
            part = range(lo, min(lo + STORE_CHUNK, len(items)))
            found, writes = yield from self._batch_vectors(
                [items[i][0] for i in part if given[i] is None]
            )
            batch += writes
            owners += [-1] * len(writes)
            for i in part:
                (plan, response), vector = items[i], given[i]
                entry = self._entry(plan, response, self.entry_ttl_ms(ttl), tags)
                if plan.skip_semantic is not None:
                    vector = None
                elif vector is None:
                    vector = found.get(vector_id(plan.text, plan.tenant))
                rows = self._entry_commands(plan, entry, vector)
                batch += rows
                owners += [i] * len(rows)
        replies = yield Commands(tuple(batch))
        failed = {i for i, r in zip(owners, replies, strict=True) if isinstance(r, Exception)}
        failed.discard(-1)
        if failed:
            log.warning("semcache: %d of %d entries not stored", len(failed), len(items))
        return len(items) - len(failed)

    def _batch_vectors(
        self, plans: Sequence[Plan]
    ) -> Flow[tuple[dict[str, Vectors], list[Command]]]:
        """Vectors of the plans that use the semantic layer by :func:`vector_id`, embedded in one
        batch per tenant, and the embedding-cache writes of the fresh ones. A failure (of the
        embedder or of Redis) is raised: no entry is stored in one layer only."""
        semantic = [plan for plan in plans if plan.skip_semantic is None]
        if not semantic:
            return {}, []
        tenants: dict[str | None, dict[str, None]] = {}
        for plan in semantic:
            tenants.setdefault(plan.tenant, {})[plan.text] = None
        found: dict[str, Vectors] = {}
        writes: list[Command] = []
        for tenant, distinct in tenants.items():
            texts = list(distinct)
            rows, fresh = yield from self.embeddings.embed_many(texts, tenant)
            found |= {vector_id(t, tenant): row for t, row in zip(texts, rows, strict=True)}
            writes += fresh
        return found, writes

    def _ensure_indexes(self, plans: Sequence[Plan]) -> Flow[None]:
        """The indexes of the namespaces of the plans that use the semantic layer exist."""
        semantic = [plan for plan in plans if plan.skip_semantic is None]
        for keys in {plan.keys.namespace: plan.keys for plan in semantic}.values():
            yield from self.semantic.ensure_index(keys)

    def _entry(
        self, plan: Plan, response: Mapping[str, Any], ttl_ms: int | None, tags: tuple[str, ...]
    ) -> Entry:
        return Entry(
            response=dict(response),
            kind=plan.canon.kind,
            model=plan.canon.model,
            text=plan.text,
            created_at=self.planner.clock(),
            ttl_ms=ttl_ms,
            tags=tags,
        )

    def _entry_commands(self, plan: Plan, entry: Entry, vector: Vectors | None) -> list[Command]:
        """The exact entry, the semantic document (given a vector) and the tag sets."""
        value = entry.to_json()
        batch = [commands.put(plan.exact_key, value, entry.ttl_ms)]
        if vector is not None:
            batch += self.semantic.document(plan, vector, value, entry.ttl_ms)
        now_ms = int(self.planner.clock() * 1000)
        for tag in entry.tags:
            if not isinstance(tag, str) or not tag:
                raise ConfigurationError("tags must be non-empty strings")
            key = plan.keys.tag(plan.tenant_tag, tag_digest(tag))
            batch += commands.add_to_tag(key, plan.digest, entry.ttl_ms, now_ms)
        return batch

    def entry_ttl_ms(self, ttl: TTL) -> int | None:
        """An entry's TTL in ms, drawn in [ttl * (1 - jitter), ttl] so entries do not expire together."""
        seconds = self.config.ttl if ttl == "default" else ttl
        check_ttl(seconds)
        return self.planner.entry_ttl_ms(seconds)
