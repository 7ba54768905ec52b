"""The embedded server launcher and the package's public surface."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import semcache
from semcache import Cache, CacheConfig
from semcache.server import EmbeddedServer
from tests.conftest import answer, chat


def test_start_reuses_a_running_server_and_restart_keeps_the_cache(tmp_path: Path) -> None:
    server = EmbeddedServer(tmp_path).start()
    pid = server.pid()
    assert pid is not None
    assert EmbeddedServer(tmp_path).start().pid() == pid  # reused, not started twice
    config = CacheConfig(namespace="persist", semantic=False)
    with Cache(redis_url=server.url, config=config) as cache:
        cache.store(chat("kept across restarts"), answer("yes"))
    assert server.stop()
    assert not server.ping()
    server.start()
    assert server.pid() != pid
    with Cache(redis_url=server.url, config=config) as cache:
        assert cache.lookup(chat("kept across restarts")).layer == "exact"
    server.stop()
    assert server.status()["running"] is False


def test_tcp_port_server(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with EmbeddedServer(tmp_path, port=port, persist=False) as server:
        assert server.url == f"redis://:{server.password}@127.0.0.1:{port}/0"
        assert server.ping()


def test_missing_binary_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEMCACHE_REDIS_SERVER", str(tmp_path / "nope"))
    with pytest.raises(semcache.ServerError, match="SEMCACHE_REDIS_SERVER"):
        EmbeddedServer(tmp_path).start()


def test_public_api_is_pinned() -> None:
    assert semcache.__all__ == sorted(semcache.__all__)
    for name in semcache.__all__:
        assert getattr(semcache, name) is not None
    assert {"Cache", "AsyncCache", "CacheConfig", "LookupResult", "Embedder"} <= set(
        semcache.__all__
    )


def test_import_loads_no_heavy_modules() -> None:
    code = (
        "import sys, semcache; "
        "heavy = [m for m in ('torch', 'sentence_transformers', 'openai', 'redisvl') "
        "if m in sys.modules]; print(heavy); sys.exit(1 if heavy else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_configuration_mistakes_raise_at_construction(redis_url: str) -> None:
    for bad in ({"threshold": 1.5}, {"namespace": "has space"}, {"ttl": -1}, {"top_k": 0}):
        with pytest.raises(semcache.ConfigurationError):
            CacheConfig(**bad)  # type: ignore[arg-type]
