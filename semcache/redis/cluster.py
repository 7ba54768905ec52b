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

__all__ = ["AsyncClient", "AsyncRedisCluster", "Client", "RedisCluster", "aconnect", "connect"]

Client = redis.Redis | RedisCluster
AsyncClient = redis.asyncio.Redis | AsyncRedisCluster

#: Connection settings copied from an async client into the L1 subscriber's sync one.
_COPIED = ("host", "port", "db", "username", "password", "path")


def is_cluster(url: str, timeout: float) -> bool:
    """True when the server at ``url`` runs in cluster mode (False when it cannot be asked)."""
    if url.startswith("unix:"):
        return False
    probe = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        info = probe.info("cluster")
    except (redis.RedisError, OSError):
        return False
    finally:
        probe.close()
    return bool(info.get("cluster_enabled"))


def connect(url: str, timeout: float, retry: Any, *, probe: bool = True) -> Client:
    """A client for ``url``: a :class:`RedisCluster` when the server is a cluster node (asked
    only with ``probe``)."""
    options = {"socket_timeout": timeout, "socket_connect_timeout": timeout, "retry": retry}
    if probe and is_cluster(url, timeout):
        return RedisCluster.from_url(url, **options)
    return redis.Redis.from_url(url, **options)


def aconnect(url: str, timeout: float, retry: Any, *, probe: bool = True) -> AsyncClient:
    """The asyncio twin of :func:`connect` (the cluster probe is one short blocking call)."""
    options = {"socket_timeout": timeout, "socket_connect_timeout": timeout, "retry": retry}
    if probe and is_cluster(url, timeout):
        return AsyncRedisCluster.from_url(url, **options)
    return redis.asyncio.Redis.from_url(url, **options)


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
