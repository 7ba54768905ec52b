"""Redis Cluster at the edges: which client a URL needs, and index creation on the owning node.

The core needs nothing cluster-specific. Every command it sends names its key first (FT commands
name the index, whose name carries the namespace's hash tag, as do its documents), so redis-py's
cluster pipeline routes each command to the node that owns it, and sends a pipeline's per-node
batches in parallel. SCAN visits every primary. What remains lives here:

- a URL may point at a cluster node: ``INFO cluster`` decides which client to build;
- RediSearch without its coordinator (the open-source module) keeps an index on the node where
  ``FT.CREATE`` ran, over that node's keys only, and Redis routes ``FT.CREATE`` by the index name;
  redisvl's cluster helpers ask a random node (``exists()``) or the default node (async
  ``create``), so the index is created here, through a pipeline that routes by the name;
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


def connect(url: str, timeout: float, retry: Any) -> Client:
    """A client for ``url``: a :class:`RedisCluster` when the server is a cluster node."""
    options = {"socket_timeout": timeout, "socket_connect_timeout": timeout, "retry": retry}
    if is_cluster(url, timeout):
        return RedisCluster.from_url(url, **options)
    return redis.Redis.from_url(url, **options)


def aconnect(url: str, timeout: float, retry: Any) -> AsyncClient:
    """The asyncio twin of :func:`connect` (the cluster probe is one short blocking call)."""
    options = {"socket_timeout": timeout, "socket_connect_timeout": timeout, "retry": retry}
    if is_cluster(url, timeout):
        return AsyncRedisCluster.from_url(url, **options)
    return redis.asyncio.Redis.from_url(url, **options)


def create_command(schema: Any) -> tuple[Any, ...]:
    """FT.CREATE for a redisvl schema; its first key is the (hash-tagged) index name."""
    from redis.commands.search.index_definition import IndexDefinition, IndexType

    prefix = schema.index.prefix
    prefixes = prefix if isinstance(prefix, list) else [prefix]
    definition = IndexDefinition(prefix=prefixes, index_type=IndexType.HASH)  # type: ignore[no-untyped-call]
    fields = [arg for field in schema.redis_fields for arg in field.redis_args()]
    return ("FT.CREATE", schema.index.name, *definition.args, "SCHEMA", *fields)


def _created(reply: Any) -> None:
    if isinstance(reply, Exception) and "already exists" not in str(reply).lower():
        raise reply


def create_index(client: RedisCluster, schema: Any) -> None:
    """FT.CREATE on the node that owns the index name's hash tag; an existing index is kept.

    Sent through a pipeline, which routes by the index name and follows redirects (redisvl's
    cluster helpers send it to the default node)."""
    pipe = client.pipeline()  # type: ignore[no-untyped-call]
    pipe.execute_command(*create_command(schema))
    (reply,) = pipe.execute(raise_on_error=False)
    _created(reply)


async def acreate_index(client: AsyncRedisCluster, schema: Any) -> None:
    """The asyncio twin of :func:`create_index`."""
    pipe = client.pipeline()
    pipe.execute_command(*create_command(schema))
    (reply,) = await pipe.execute(raise_on_error=False)
    _created(reply)


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
