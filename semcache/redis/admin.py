"""What the embedded server's launcher asks its own Redis processes: are you up, and (for a local
cluster) take these slots, meet that node, what is your cluster state."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import redis

from semcache.redis import commands
from semcache.redis.replies import text


def ping(url: str, timeout: float) -> bool:
    """True when a server answers at ``url``."""
    client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


def list_indexes(url: str, timeout: float) -> list[str]:
    """The server's search indexes (FT._LIST); raises redis' errors, a ResponseError naming an
    unknown command when the server has no search module."""
    client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        return [text(name) for name in client.execute_command(*commands.list_indexes())]  # type: ignore[no-untyped-call]
    finally:
        client.close()


def shutdown(url: str, timeout: float, *, save: bool) -> None:
    """Ask the server at ``url`` to shut down (saving first with ``save``); no error if it is gone."""
    client = redis.Redis.from_url(url, socket_timeout=timeout)
    with contextlib.suppress(redis.RedisError, OSError):
        client.shutdown(save=save, nosave=not save)
    client.close()


def nodes(
    ports: Sequence[int], host: str = "127.0.0.1", password: str | None = None
) -> list[redis.Redis]:
    """One client per local cluster node."""
    return [redis.Redis(host=host, port=p, password=password, socket_timeout=5) for p in ports]


def form_cluster(clients: Sequence[Any], slots: int, host: str, port: int) -> None:
    """Split the slots evenly over the nodes and make every node meet the first (``host:port``)."""
    per = slots // len(clients)
    for i, client in enumerate(clients):
        last = slots - 1 if i == len(clients) - 1 else (i + 1) * per - 1
        with contextlib.suppress(Exception):  # already assigned on a restart
            client.execute_command(*commands.add_slots(i * per, last))
    for client in clients[1:]:
        client.execute_command(*commands.meet(host, port))


def cluster_state(client: Any) -> dict[str, str]:
    """A node's ``CLUSTER INFO`` as a mapping."""
    info = client.execute_command(*commands.cluster_info())
    if isinstance(info, dict):
        return {str(k): str(v) for k, v in info.items()}
    return dict(line.split(":", 1) for line in text(info).splitlines() if ":" in line)
