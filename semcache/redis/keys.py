"""Every key, index and channel name semcache uses, built here and nowhere else. No I/O.

Semantic documents and their index carry a hash tag (the namespace, or ``namespace:i`` for shard i
of a namespace split into shards), so each index and its documents live on one cluster node and FT
commands are routed by the index name like any key. Exact entries, tag sets, locks, embeddings and
counters carry no hash tag, so they spread across nodes. Tenants, tags and texts appear only as
digests: no user text reaches a key or a query.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from semcache.core.canonical import sha256

PREFIX = "semcache"
STATS_PREFIX = f"{PREFIX}:stats"
#: The pattern every L1 listener subscribes to.
CHANNELS = f"{PREFIX}:l1:*"


def tenant_tag(tenant: str | None) -> str:
    """Tenants appear in keys and tag filters only as digests: no user text reaches a query.
    A string's digest is remembered (a lookup asks for it twice)."""
    if tenant is None or type(tenant) is str:
        return _tenant_tag(tenant)
    return _tenant_digest(tenant)


def _tenant_digest(tenant: object) -> str:
    return sha256(f"tenant:{tenant or ''}")[:16]


_tenant_tag = functools.lru_cache(maxsize=4096)(_tenant_digest)


def tag_digest(tag: str) -> str:
    """The digest a tag has in keys and in L1 invalidation messages."""
    return sha256(f"tag:{tag}")[:32]


def model_tag(model_id: str) -> str:
    """The embedding-cache tag of the semantic layer's embedder."""
    return sha256(f"model:{model_id}")[:16]


def upstream_tag(model: str) -> str:
    """The embedding-cache tag of an upstream model id (e.g. ``"text-embedding-3-small@256"``)."""
    return sha256(f"model:upstream:{model}")[:16]


@dataclass(frozen=True, slots=True)
class Keys:
    """Key names of one namespace (split into ``shards`` semantic indexes)."""

    namespace: str
    shards: int = 1

    def exact(self, tenant: str, digest: str) -> str:
        return f"{PREFIX}:x:{self.namespace}:{tenant}:{digest}"

    def doc(self, tenant: str, digest: str) -> str:
        return f"{self.prefix_of(self.shard_of(digest))}{tenant}:{digest}"

    def tag(self, tenant: str, tag_digest: str) -> str:
        return f"{PREFIX}:t:{self.namespace}:{tenant}:{tag_digest}"

    def generation(self, tenant: str | None = None) -> str:
        """The generation every invalidation of the namespace (tenant None) or of one tenant in it
        moves; not matched by :meth:`patterns`, so a flush leaves it for the stores in flight."""
        return f"{PREFIX}:g:{self.namespace}" + ("" if tenant is None else f":{tenant}")

    def lock(self, tenant: str, digest: str) -> str:
        """The compute lock of one request (stampede control)."""
        return f"{PREFIX}:l:{self.namespace}:{tenant}:{digest}"

    def shard_of(self, digest: str) -> int:
        """The shard of an entry: its (hex) digest modulo the number of shards."""
        return int(digest[:8], 16) % self.shards if self.shards > 1 else 0

    def hash_tag(self, shard: int = 0) -> str:
        return self.namespace if self.shards == 1 else f"{self.namespace}:{shard}"

    def prefix_of(self, shard: int) -> str:
        return f"{PREFIX}:s:{{{self.hash_tag(shard)}}}:"

    def index_of(self, shard: int) -> str:
        return f"{PREFIX}-idx-{{{self.hash_tag(shard)}}}"

    @property
    def doc_prefix(self) -> str:
        """The document prefix of shard 0 (the only one of an unsharded namespace)."""
        return self.prefix_of(0)

    @property
    def index(self) -> str:
        """The index of shard 0 (the only one of an unsharded namespace)."""
        return self.index_of(0)

    @property
    def indexes(self) -> tuple[str, ...]:
        return tuple(self.index_of(i) for i in range(self.shards))

    @property
    def channel(self) -> str:
        """The pub/sub channel of the namespace's L1 invalidations."""
        return channel(self.namespace)

    def patterns(self, tenant: str | None = None) -> tuple[str, ...]:
        """SCAN patterns for every key of the namespace, or of one tenant in it."""
        t = "*" if tenant is None else f"{tenant}:*"
        docs = self.doc_prefix if self.shards == 1 else f"{PREFIX}:s:{{{self.namespace}:*}}:"
        return (
            f"{PREFIX}:x:{self.namespace}:{t}",
            f"{docs}{t}",
            f"{PREFIX}:t:{self.namespace}:{t}",
        )


def embedding_key(model_digest: str, text_digest: str) -> str:
    return f"{PREFIX}:e:{model_digest}:{text_digest}"


def channel(namespace: str) -> str:
    """The pub/sub channel of a namespace's L1 invalidations."""
    return f"{PREFIX}:l1:{namespace}"


def namespace_of_channel(name: str) -> str:
    return name.rsplit(":", 1)[-1]


def stats_key(namespace: str, day: str) -> str:
    """A hash of one namespace's counters of one UTC day."""
    return f"{STATS_PREFIX}:{namespace}:{day}"


def stats_pattern(namespace: str) -> str:
    """SCAN pattern of every day's counters of a namespace."""
    return f"{STATS_PREFIX}:{namespace}:*"


def hits_key(namespace: str) -> str:
    """A sorted set of ``<tenant tag>:<entry digest>`` by hit count."""
    return f"{STATS_PREFIX}-hits:{namespace}"
