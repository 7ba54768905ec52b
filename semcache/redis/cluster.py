"""Redis Cluster at the edges: which client a URL needs, and index creation on the owning node.

The core needs nothing cluster-specific. Every command it sends names its key first (FT commands
name the index, whose name carries the namespace's hash tag, as do its documents), so redis-py's
cluster pipeline routes each command to the node that owns it, and sends a pipeline's per-node
batches in parallel. SCAN visits every primary. What remains lives here:

- a URL may point at a cluster node: ``INFO cluster`` decides which client to build;
- RediSearch without its coordinator (the open-source module) keeps an index on the node where
  ``FT.CREATE`` ran, over that node's keys only; the executors send it through a pipeline, which
  routes by the (hash-tagged) index name (see ``commands.needs_routing``);
- the L1 tier's subscriber needs a plain client on any one node (classic pub/sub messages reach
  every node of a cluster).
"""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.cluster import RedisCluster

__all__ = [
    "AsyncClient",
    "AsyncRedisCluster",
    "Client",
    "Detector",
    "RedisCluster",
    "aconnect",
    "connect",
]

Client = redis.Redis | RedisCluster
AsyncClient = redis.asyncio.Redis | AsyncRedisCluster

#: Connection settings copied from an async client into the L1 subscriber's sync one.
_COPIED = ("host", "port", "db", "username", "password", "path")


def is_cluster(url: str, timeout: float) -> bool | None:
    """True when the server at ``url`` runs in cluster mode; None when it cannot be asked now."""
    if url.startswith("unix:"):
        return False
    probe = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        info = probe.info("cluster")
    except (redis.RedisError, OSError):
        return None
    finally:
        probe.close()
    return bool(info.get("cluster_enabled"))


def connect(url: str, timeout: float, retry: Any, *, cluster: bool | None = None) -> Client:
    """A client for ``url``: a :class:`RedisCluster` when the server is a cluster node (asked
    unless ``cluster`` is given; a plain client when it cannot be asked: see :class:`Detector`)."""
    options = {"socket_timeout": timeout, "socket_connect_timeout": timeout, "retry": retry}
    if is_cluster(url, timeout) if cluster is None else cluster:
        return RedisCluster.from_url(url, **options)
    return redis.Redis.from_url(url, **options)


def aconnect(url: str, timeout: float, retry: Any, *, cluster: bool | None = None) -> AsyncClient:
    """The asyncio twin of :func:`connect` (the cluster probe is one short blocking call)."""
    options = {"socket_timeout": timeout, "socket_connect_timeout": timeout, "retry": retry}
    if is_cluster(url, timeout) if cluster is None else cluster:
        return AsyncRedisCluster.from_url(url, **options)
    return redis.asyncio.Redis.from_url(url, **options)


class Detector:
    """Whether a URL's server is a cluster, asked again until it answers: a node unreachable when
    the cache was built must not leave a single-node client in place for good (the executors ask
    :meth:`settled` before each round trip while :attr:`pending`)."""

    def __init__(self, url: str | None, timeout: float) -> None:
        self.url, self.timeout = url, timeout
        self.cluster = None if url is None else is_cluster(url, timeout)

    @property
    def pending(self) -> bool:
        """True while the server has not answered whether it is a cluster."""
        return self.url is not None and self.cluster is None

    def settled(self) -> bool:
        """Ask again; True once the server answers now that it is a cluster node (the caller
        then needs a cluster client), False otherwise."""
        if not self.pending:
            return False
        assert self.url is not None
        self.cluster = is_cluster(self.url, self.timeout)
        return bool(self.cluster)


def subscriber(client: Any) -> redis.Redis:
    """A fresh sync client on one node of ``client``'s server, for the L1 pub/sub subscription."""
    if isinstance(client, redis.Redis):
        return redis.Redis(connection_pool=client.connection_pool)
    if isinstance(client, RedisCluster):
        node = client.get_random_node()  # type: ignore[no-untyped-call]
        return redis.Redis(connection_pool=node.redis_connection.connection_pool)
    if isinstance(client, AsyncRedisCluster):
        node = client.get_random_node()
        settings = {**client.connection_kwargs, "host": node.host, "port": node.port}
    else:
        settings = dict(client.connection_pool.connection_kwargs)
    kwargs = {k: settings[k] for k in _COPIED if settings.get(k) is not None}
    if "path" in kwargs:
        kwargs["unix_socket_path"] = kwargs.pop("path")
        kwargs.pop("host", None)
        kwargs.pop("port", None)
    return redis.Redis(**kwargs)
