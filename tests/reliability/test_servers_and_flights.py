"""Defects 7-10 of issue 14 (found when the cache was attacked), on the real Redis: cluster mode is
detected once the node answers, ``stop()`` signals only our own redis-server, secrets stay out of
output, and single flight holds under upstream errors."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import semcache
from semcache.server import EmbeddedCluster, EmbeddedServer
from tests.conftest import answer, chat, hash_embedder

# --- 7. cluster mode is detected once the node answers ----------------------------------------------


def test_cluster_mode_is_detected_when_the_node_comes_back(
    redis_cluster: EmbeddedCluster, namespace: str
) -> None:
    """Defect 7: a node that did not answer at construction gets a cluster client once it does."""
    pid = redis_cluster.nodes[0].pid()
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)  # the node in the URL does not answer while the cache is built
    try:
        cache = semcache.Cache(redis_url=redis_cluster.url, embedder=hash_embedder(),
                               namespace=namespace)  # fmt: skip
    finally:
        os.kill(pid, signal.SIGCONT)
    with cache:
        stored = [cache.store(chat(f"c{i}"), answer(str(i))) for i in range(30)]
        hits = [cache.lookup(chat(f"c{i}")).layer for i in range(30)]
        assert stored.count(True) == 30 and hits.count("exact") == 30
        cache.flush()


async def test_cluster_mode_is_detected_when_the_node_comes_back_async(
    redis_cluster: EmbeddedCluster, namespace: str
) -> None:
    """Defect 7, asyncio."""
    pid = redis_cluster.nodes[0].pid()
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    try:
        cache = semcache.AsyncCache(redis_url=redis_cluster.url, embedder=hash_embedder(),
                                    namespace=namespace)  # fmt: skip
    finally:
        os.kill(pid, signal.SIGCONT)
    async with cache:
        stored = [await cache.store(chat(f"a{i}"), answer(str(i))) for i in range(30)]
        hits = [(await cache.lookup(chat(f"a{i}"))).layer for i in range(30)]
        assert stored.count(True) == 30 and hits.count("exact") == 30
        await cache.flush()


# --- 8. stop() never signals a process that is not our redis-server --------------------------------


def test_stop_with_a_stale_pidfile_leaves_the_other_process_alive(tmp_path: Path) -> None:
    """Defect 8: a stale pidfile naming another process: stop(), pid() leave it alone."""
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        server = EmbeddedServer(tmp_path, persist=False)
        server.pidfile.write_text(f"{bystander.pid}\n")
        assert server.stop(timeout=0.5) is False
        assert bystander.poll() is None, "stop() killed a process that was not its redis-server"
        assert server.pid() is None
    finally:
        bystander.kill()
        bystander.wait()


def test_a_running_server_is_still_ours(tmp_path: Path) -> None:
    """Defect 8: the check still recognises our own redis-server, so stop() stops it."""
    server = EmbeddedServer(tmp_path, persist=False).start()
    pid = server.pid()
    assert pid is not None
    assert server.stop() is True
    assert server.pid() is None
