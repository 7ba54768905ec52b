"""Planning a request, and the one place lookup results are built. No I/O.

A :class:`Plan` is everything a lookup or store needs to know about one request (canonical form,
key names, tenant, scope, threshold), computed before any I/O, so a malformed request fails early
and a caller can plan once and look up, coordinate and store with the same plan.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from semcache._errors import ConfigurationError
from semcache.core.canonical import Canonical, canonicalize, exact_hash, scope_hash
from semcache.core.config import CacheConfig
from semcache.core.types import Entry, Layer, LookupResult, check_namespace, check_threshold
from semcache.redis.keys import Keys, tenant_tag


@dataclass(frozen=True)
class Plan:
    """Everything a lookup or store needs to know about one request, computed without I/O."""

    canon: Canonical
    keys: Keys
    tenant: str | None
    tenant_tag: str
    digest: str
    threshold: float
    text: str
    skip_semantic: str | None
    """Why the semantic layer is skipped for this request, or None when it is used."""
    version: str
    embedding_model: str

    @cached_property
    def scope(self) -> str:
        """The semantic layer's scope tag, hashed on first use: an exact hit never needs it."""
        return scope_hash(self.canon, namespace=self.keys.namespace, tenant=self.tenant_tag,
                          version=self.version, embedding_model=self.embedding_model)  # fmt: skip

    @cached_property
    def exact_key(self) -> str:
        return self.keys.exact(self.tenant_tag, self.digest)

    @cached_property
    def doc_key(self) -> str:
        return self.keys.doc(self.tenant_tag, self.digest)

    @property
    def lock_key(self) -> str:
        return self.keys.lock(self.tenant_tag, self.digest)


class Planner:
    """Plans requests of one configuration and builds their results (hits carry XFetch's
    early-refresh flag, drawn from ``rng`` against ``clock``)."""

    def __init__(
        self,
        config: CacheConfig,
        embedding_model: str,
        *,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.embedding_model = embedding_model
        self.clock = clock
        self.rng = rng or random.Random()
        self._keys: dict[str, Keys] = {}

    def plan(
        self,
        request: Mapping[str, Any],
        *,
        tenant: str | None = None,
        namespace: str | None = None,
        threshold: float | None = None,
        upstream: str | None = None,
    ) -> Plan:
        """Canonicalise a request; raises InvalidRequestError before any I/O. ``upstream`` names
        the server that answers it (entries of different servers never match)."""
        cfg = self.config
        canon = canonicalize(request, cfg.semantic_text)
        ns = check_namespace(namespace) if namespace is not None else cfg.namespace
        if tenant is not None and not isinstance(tenant, str):
            raise ConfigurationError("tenant must be a string")
        tt = tenant_tag(tenant)
        version = cfg.version if upstream is None else f"{cfg.version}@{upstream}"
        digest = exact_hash(canon, namespace=ns, tenant=tt, version=version)
        return Plan(
            canon=canon,
            keys=self.keys(ns),
            tenant=tenant,
            tenant_tag=tt,
            digest=digest,
            threshold=cfg.threshold if threshold is None else check_threshold(threshold),
            text=canon.semantic_text,
            skip_semantic=self._skip_reason(canon),
            version=version,
            embedding_model=self.embedding_model,
        )

    def keys(self, namespace: str | None = None) -> Keys:
        """The key names of a namespace (default: the configured one), with its shards."""
        keys = self._keys.get(namespace or "")
        if keys is None:
            ns = check_namespace(namespace) if namespace else self.config.namespace
            keys = Keys(ns, self.config.shards)
            if len(self._keys) < 1024:  # requests name namespaces: a bounded memory of them
                self._keys[namespace or ""] = keys
        return keys

    def _skip_reason(self, canon: Canonical) -> str | None:
        if not self.config.semantic:
            return "semantic-off"
        if not canon.semantic_text.strip():
            return "no-semantic-text"
        if len(canon.semantic_text) > self.config.max_semantic_chars:
            return "semantic-text-too-long"
        return None

    def bypass_reason(self, plan: Plan) -> str | None:
        """Why the cache neither looks this request up nor stores it, or None."""
        if plan.canon.stochastic and self.config.stochastic == "bypass":
            return "stochastic"
        return None

    def miss(
        self, plan: Plan, reason: str, best: float | None = None, **fields: Any
    ) -> LookupResult:
        """A miss of ``plan`` (``fields``: more fields of the result, set in one construction)."""
        return LookupResult(
            layer=None,
            key=plan.digest,
            reason=reason,
            best_similarity=best,
            namespace=plan.keys.namespace,
            tenant=plan.tenant,
            **fields,
        )

    def hit(
        self,
        plan: Plan,
        layer: Layer,
        entry: Entry,
        similarity: float,
        matched: str,
        tried: tuple[Layer, ...] = (),
        **fields: Any,
    ) -> LookupResult:
        """A hit of ``plan`` served by ``entry`` (``fields`` as in :meth:`miss`)."""
        fields.setdefault("best_similarity", similarity)
        return LookupResult(
            tried=tried,
            refresh=self._should_refresh(entry),
            layer=layer,
            key=plan.digest,
            similarity=similarity,
            response=entry.response,
            entry=entry,
            matched_key=matched,
            namespace=plan.keys.namespace,
            tenant=plan.tenant,
            **fields,
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

    def entry_ttl_ms(self, ttl: float | None) -> int | None:
        """An entry's TTL in ms, drawn in [ttl * (1 - jitter), ttl] so entries do not expire
        together (``ttl`` already resolved from "default" and checked)."""
        if ttl is None:
            return None
        jitter = self.config.ttl_jitter * self.rng.random()
        return max(1, int(ttl * 1000 * (1.0 - jitter)))


def ms(seconds: float | None) -> int | None:
    """Seconds as whole milliseconds (at least 1); None stays None."""
    return None if seconds is None else max(1, int(seconds * 1000))
