"""Defects 7-10 of issue 14 (found when the cache was attacked), on the real Redis: cluster mode is
detected once the node answers, ``stop()`` signals only our own redis-server, secrets stay out of
output, and single flight holds under upstream errors."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import redis
from click.testing import CliRunner

import semcache
from semcache import Cache, CacheConfig, ConfigurationError
from semcache.cli import main
from semcache.redis.urls import redact
from semcache.server import EmbeddedCluster, EmbeddedServer, free_ports
from tests.conftest import answer, chat, hash_embedder
from tests.openai_server import FakeOpenAI

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


# --- 9. secrets and exits ----------------------------------------------------------------------------


def test_a_password_in_the_url_is_never_printed() -> None:
    """Defect 9: `semcache stats` against a dead URL names where, never the password."""
    url = "redis://:hunter2-secret@127.0.0.1:1/0"
    result = CliRunner().invoke(main, ["stats", "--redis-url", url])
    assert result.exit_code != 0
    assert "hunter2-secret" not in result.output
    assert "127.0.0.1:1" in result.output  # still says where


@pytest.mark.parametrize(
    ("url", "printed"),
    [
        ("redis://:s3cret@h:6379/0", "redis://:***@h:6379/0"),
        ("redis://user:s3cret@h:6379/0", "redis://user:***@h:6379/0"),
        ("redis://s3cret@h:6379/0", "redis://***@h:6379/0"),  # a username alone is a password
        ("redis://h:6379/0", "redis://h:6379/0"),
    ],
)
def test_redact_masks_every_form_of_credentials(url: str, printed: str) -> None:
    """Defect 9: the one redaction every printed URL goes through."""
    assert redact(url) == printed


@pytest.fixture(scope="module")
def password_server() -> Iterator[tuple[EmbeddedServer, int]]:
    directory = Path(tempfile.mkdtemp(prefix="semcache-auth-"))
    (port,) = free_ports(1)
    server = EmbeddedServer(directory, port=port, persist=False, password="right").start()
    yield server, port
    server.wipe()


@pytest.mark.parametrize("auth", ["hunter3@", ""], ids=["wrong", "missing"])
def test_a_wrong_or_missing_password_is_a_configuration_error(
    password_server: tuple[EmbeddedServer, int], auth: str
) -> None:
    """Defect 9: a refused password raises at construction, and the error does not print it."""
    _, port = password_server
    url = f"redis://{':' + auth if auth else ''}127.0.0.1:{port}/0"
    with pytest.raises(ConfigurationError, match=r"password|auth") as caught:
        Cache(redis_url=url, embedder=hash_embedder())
    assert "hunter3" not in str(caught.value)


async def test_a_wrong_password_is_a_configuration_error_async(
    password_server: tuple[EmbeddedServer, int],
) -> None:
    """Defect 9, asyncio: on connect()."""
    _, port = password_server
    cache = semcache.AsyncCache(redis_url=f"redis://:hunter3@127.0.0.1:{port}/0",
                                embedder=hash_embedder())  # fmt: skip
    with pytest.raises(ConfigurationError, match=r"password"):
        await cache.connect()
    await cache.aclose()


def test_a_data_directory_is_tightened_to_owner_only(tmp_path: Path) -> None:
    """Defect 9: a pre-existing world-readable data directory becomes 0700 at start."""
    directory = tmp_path / "data"
    directory.mkdir(mode=0o755)
    os.chmod(directory, 0o755)
    server = EmbeddedServer(directory, persist=True).start()
    try:
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    finally:
        server.stop()


def test_a_tcp_server_gets_a_generated_password(tmp_path: Path) -> None:
    """Defect 9: EmbeddedServer(port=...) refuses anonymous clients; its URL works; the
    password is not on the command line nor in status()."""
    (port,) = free_ports(1)
    server = EmbeddedServer(tmp_path, port=port, persist=False).start()
    try:
        anonymous = redis.Redis(host="127.0.0.1", port=port, socket_timeout=2)
        with pytest.raises(redis.AuthenticationError):
            anonymous.ping()
        anonymous.close()
        assert server.password and server.password not in " ".join(server.command())
        assert server.password not in str(server.status())
        with Cache(redis_url=server.url, embedder=hash_embedder()) as cache:
            assert cache.store(chat("q"), answer("a"))
            assert cache.lookup(chat("q")).layer == "exact"
            cache.flush()
    finally:
        server.stop()
    assert server.pid() is None


def test_a_local_cluster_gets_a_generated_password(redis_cluster: EmbeddedCluster) -> None:
    """Defect 9: every node of an EmbeddedCluster on TCP requires the password."""
    anonymous = redis.Redis(host="127.0.0.1", port=redis_cluster.ports[0], socket_timeout=2)
    with pytest.raises(redis.AuthenticationError):
        anonymous.ping()
    anonymous.close()


# --- 10. single flight under upstream errors ---------------------------------------------------------


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def client_of(server: FakeOpenAI, cache: Cache, **options: Any) -> openai.OpenAI:
    raw = openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0)
    return semcache.wrap(raw, cache=cache, **options)


def in_threads(n: int, fn: Callable[[], Any]) -> list[Any]:
    """Run ``fn`` in ``n`` threads at once; each result, or the exception it raised."""
    out: list[Any] = []
    lock = threading.Lock()

    def work() -> None:
        try:
            value = fn()
        except Exception as exc:
            value = exc
        with lock:
            out.append(value)

    threads = [threading.Thread(target=work) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def finishes_within(seconds: float, fn: Callable[[], Any]) -> bool:
    """Whether ``fn`` returns within ``seconds`` (a liveness bound far above the expected time)."""

    def run() -> None:
        with contextlib.suppress(Exception):  # what it raised is the caller's to check
            fn()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    return not thread.is_alive()


@pytest.fixture
def slow_server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(slow_seconds=0.5) as server:
        yield server


def test_followers_of_a_failed_leader_do_not_all_go_upstream(
    slow_server: FakeOpenAI, wrap_cache: Cache
) -> None:
    client = client_of(slow_server, wrap_cache)
    results = in_threads(
        20, lambda: client.chat.completions.create(model="m", messages=ask("[slow] [fail] q"))
    )
    assert all(isinstance(r, openai.InternalServerError) for r in results)
    assert slow_server.calls("chat/completions") <= 2
    client.close()


def test_a_follower_stops_waiting_when_its_own_timeout_would_pass(
    redis_url: str, namespace: str
) -> None:
    with (
        FakeOpenAI(slow_seconds=3.0) as server,
        Cache(redis_url=redis_url, embedder=hash_embedder(), namespace=namespace) as cache,
    ):
        client = client_of(server, cache)
        leader = threading.Thread(
            target=lambda: client.chat.completions.create(model="m", messages=ask("[slow] hang"))
        )
        leader.start()
        time.sleep(0.3)  # the leader is upstream now
        with pytest.raises(openai.APITimeoutError):
            client.with_options(timeout=0.5).chat.completions.create(
                model="m", messages=ask("[slow] hang")
            )
        leader.join()
        client.close()
        cache.flush()


class LockReplyDropper:
    """A TCP proxy to the test Redis that forwards every command but drops the replies on the
    connection that sent the first compute-lock SET: the lock is taken, its caller never hears."""

    def __init__(self, socket_path: str) -> None:
        self.path = socket_path
        self.dropped = False
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = self.listener.accept()
                server = socket.socket(socket.AF_UNIX)
                server.connect(self.path)
                mute = threading.Event()
                threading.Thread(
                    target=self._pipe, args=(client, server, mute, True), daemon=True
                ).start()
                threading.Thread(
                    target=self._pipe, args=(server, client, mute, False), daemon=True
                ).start()

    def _pipe(
        self, src: socket.socket, dst: socket.socket, mute: threading.Event, up: bool
    ) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                if up and not self.dropped and b"semcache:l:" in data and b"NX" in data:
                    self.dropped = True
                    mute.set()
                if up or not mute.is_set():
                    dst.sendall(data)
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.close()

    def close(self) -> None:
        self.listener.close()


def test_a_lost_reply_to_the_lock_does_not_make_a_caller_wait_on_its_own_lock(
    fake_openai: FakeOpenAI, redis_server: EmbeddedServer, namespace: str
) -> None:
    proxy = LockReplyDropper(str(redis_server.socket))
    config = CacheConfig(namespace=namespace, stampede_wait=60.0, lock_ttl=60.0)
    url = f"redis://127.0.0.1:{proxy.port}/0"
    with Cache(redis_url=url, embedder=hash_embedder(), config=config, timeout=0.25) as cache:
        client = client_of(fake_openai, cache)
        done: list[str] = []

        def call() -> None:
            reply = client.chat.completions.create(model="m", messages=ask("lock lost"))
            done.append(reply.choices[0].message.content or "")

        assert finishes_within(15, call), "the caller waited on its own lock"
        assert proxy.dropped and done == ["echo: lock lost"]
        client.close()
        cache.flush()
    proxy.close()


def test_a_streamed_leader_never_read_does_not_block_the_next_identical_call(
    fake_openai: FakeOpenAI, wrap_cache: Cache
) -> None:
    client = client_of(fake_openai, wrap_cache)
    abandoned = client.chat.completions.create(model="m", messages=ask("streamed"), stream=True)
    results: list[str] = []

    def second() -> None:
        reply = client.chat.completions.create(model="m", messages=ask("streamed"))
        results.append(reply.choices[0].message.content or "")

    assert finishes_within(5, second), "the next call waited for a stream nobody reads"
    assert results == ["echo: streamed"]
    abandoned.close()
    client.close()
