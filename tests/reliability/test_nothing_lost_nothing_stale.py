"""Issue 14, defects 3, 4, 5 and 11, through the public API, the CLI and a wrapped real ``openai``
client on the real Redis: ``store_many`` and ``warm`` report only what every layer holds (3), an
invalidation wins over a store already in flight (4), tag sets outlive the entries they index under
the embedded server's volatile-lru (5), and counters are written without ``close()`` (11)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner

from semcache import Cache, CacheConfig
from semcache.cli import main
from semcache.server import EmbeddedServer
from tests.conftest import answer, chat, hash_embedder
from tests.openai_server import FakeOpenAI

ROOT = Path(__file__).resolve().parents[2]
EMBEDDER = "tests.conftest:hash_embedder"


@pytest.fixture
def hcache(redis_url: str, namespace: str) -> Iterator[Cache]:
    """A cache with the fast hash embedder (both layers on) in a fresh namespace."""
    with Cache(redis_url=redis_url, embedder=hash_embedder(), namespace=namespace) as cache:
        yield cache
        cache.flush()


def count(url: str, pattern: str) -> int:
    client = redis.Redis.from_url(url)
    try:
        return sum(1 for _ in client.scan_iter(match=pattern, count=1000))
    finally:
        client.close()


# --- 3. store_many and warm never report a semantic document they did not write -----------------


def test_store_many_under_paused_writes_reports_only_what_is_in_both_layers(
    redis_url: str, namespace: str
) -> None:
    """Defect 3: the embedding-cache write that timed out used to leave the batch in the exact
    layer only, counted as stored."""
    pairs = [(chat(f"paused question {i}"), answer(str(i))) for i in range(8)]
    with Cache(
        redis_url=redis_url, embedder=hash_embedder(), namespace=namespace, timeout=0.25
    ) as cache:
        control = redis.Redis.from_url(redis_url)
        # Held long enough that the embedding-cache write times out, short enough that the
        # entries written after it are taken.
        control.execute_command("CLIENT", "PAUSE", 400, "WRITE")
        try:
            stored = cache.store_many(pairs)
        finally:
            control.execute_command("CLIENT", "UNPAUSE")
            control.close()
        docs = count(redis_url, f"semcache:s:{{{namespace}}}:*")
        assert stored <= docs, f"{stored} reported stored, {docs} semantic documents in Redis"
        cache.flush()


def warm_file(tmp_path: Path, n: int) -> Path:
    path = tmp_path / "pairs.jsonl"
    lines = [{"request": chat(f"warm {i}"), "response": answer(str(i))} for i in range(n)]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def test_warm_under_paused_writes_counts_what_both_layers_hold(
    tmp_path: Path, redis_url: str, namespace: str
) -> None:
    """Defect 3: warm's counts equal what is in Redis, in both layers."""
    path = warm_file(tmp_path, 12)
    with Cache(redis_url=redis_url, embedder=hash_embedder(), namespace=namespace):
        pass  # the index exists before the pause
    control = redis.Redis.from_url(redis_url)
    control.execute_command("CLIENT", "PAUSE", 400, "WRITE")
    try:
        result = CliRunner().invoke(main, ["warm", str(path), "--redis-url", redis_url, "-n",
            namespace, "--embedder", EMBEDDER, "--timeout", "0.25", "--json"])  # fmt: skip
    finally:
        control.execute_command("CLIENT", "UNPAUSE")
        control.close()
    counts = json.loads(result.output)
    docs = count(redis_url, f"semcache:s:{{{namespace}}}:*")
    exact = count(redis_url, f"semcache:x:{namespace}:*")
    assert (counts["stored"], docs, exact) == (12, 12, 12)
    with Cache(redis_url=redis_url, embedder=hash_embedder(), namespace=namespace) as cache:
        cache.flush()


def test_warm_exits_non_zero_when_entries_were_not_stored(
    tmp_path: Path, redis_url: str, namespace: str
) -> None:
    """Defect 3: a partial load is not reported as success."""
    path = warm_file(tmp_path, 3)
    control = redis.Redis.from_url(redis_url)
    control.execute_command("CLIENT", "PAUSE", 10_000, "WRITE")
    try:
        result = CliRunner().invoke(main, ["warm", str(path), "--redis-url", redis_url, "-n",
            namespace, "--embedder", EMBEDDER, "--timeout", "0.1", "--retries", "0"])  # fmt: skip
    finally:
        control.execute_command("CLIENT", "UNPAUSE")
        control.close()
    assert result.exit_code != 0
    assert "not stored" in result.output


# --- 4. an invalidation wins over a store already in flight ---------------------------------------


@pytest.mark.parametrize(
    "invalidate",
    [
        pytest.param(lambda c: c.invalidate(tags=["doc:7"]), id="tag"),
        pytest.param(lambda c: c.invalidate_tenant(None), id="tenant"),
        pytest.param(lambda c: c.flush(), id="namespace"),
    ],
)
def test_a_store_whose_lookup_began_before_an_invalidation_is_dropped(
    hcache: Cache, invalidate: Any
) -> None:
    """Defect 4: the store of a miss that an invalidation overtook used to resurrect stale data."""
    request = chat("what does doc 7 say?")
    assert not hcache.lookup(request).hit  # the miss: the answer is being computed
    invalidate(hcache)  # doc 7 changes while the model answers from the old version
    hcache.store(request, answer("the old doc 7"), tags=["doc:7"])
    assert not hcache.lookup(request).hit
    # A store whose lookup began after the invalidation is kept.
    assert hcache.store(request, answer("the new doc 7"), tags=["doc:7"])
    assert hcache.lookup(request).response == answer("the new doc 7")


def test_an_invalidation_of_another_tag_does_not_drop_a_store(hcache: Cache) -> None:
    """Defect 4: only an invalidation that could cover the entry drops its store."""
    request = chat("what does doc 8 say?")
    assert not hcache.lookup(request).hit
    hcache.invalidate(tags=["doc:9"], tenant="someone else")
    assert hcache.store(request, answer("doc 8"), tags=["doc:8"])
    assert hcache.lookup(request).hit


# --- 5. tag sets are not evicted before the entries they index -------------------------------------


@pytest.fixture
def small_redis() -> Iterator[EmbeddedServer]:
    """A private server under memory pressure with the embedded server's own volatile-lru policy."""
    directory = Path(tempfile.mkdtemp(prefix="semcache-small-"))
    server = EmbeddedServer(directory, persist=False).start()
    yield server
    server.wipe()


def test_invalidation_by_tag_finds_every_entry_after_evictions(small_redis: EmbeddedServer) -> None:
    """Defect 5: tag sets with a TTL were evicted first, and their entries survived invalidation."""
    control = redis.Redis.from_url(small_redis.url)
    config = CacheConfig(namespace=f"e{uuid.uuid4().hex[:8]}", semantic=False, ttl=3600)
    with Cache(redis_url=small_redis.url, config=config, timeout=2.0) as cache:
        used = int(control.info("memory")["used_memory"])
        control.config_set("maxmemory", used + 1_500_000)
        padding = "x" * 800
        for i in range(4000):
            cache.store(chat(f"doc {i}"), answer(f"{padding} {i}"), tags=[f"doc:{i}"])
        assert int(control.info("stats")["evicted_keys"]) > 0  # the pressure is real
        control.config_set("maxmemory", 0)
        cache.invalidate(tags=[f"doc:{i}" for i in range(4000)])
        stale = [i for i in range(4000) if cache.lookup(chat(f"doc {i}")).hit]
        assert stale == [], f"{len(stale)} invalidated entries still served"
    control.close()


# --- 11. counters are written without close() -------------------------------------------------------


SCRIPT = """
import asyncio, openai, semcache
from tests.conftest import hash_embedder
URL, NS, BASE = {url!r}, {ns!r}, {base!r}
cache = semcache.Cache(redis_url=URL, embedder=hash_embedder(), namespace=NS)
raw = openai.OpenAI(base_url=BASE, api_key="k", max_retries=0)
{body}
"""
LOOSE = """
client = semcache.wrap(raw, cache=cache)
for i in range(20):
    client.chat.completions.create(model="m", messages=[{"role": "user", "content": f"q{i}"}])
"""
WITH = """
with semcache.wrap(raw, cache=cache) as client:
    for i in range(20):
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": f"q{i}"}])
import time; time.sleep(30)  # the process is still alive: the counters were written at close
"""
ASYNC = """
async def main():
    acache = semcache.AsyncCache(redis_url=URL, embedder=hash_embedder(), namespace=NS)
    client = semcache.wrap(openai.AsyncOpenAI(base_url=BASE, api_key="k"), cache=acache)
    for i in range(20):
        await client.chat.completions.create(model="m", messages=[{"role": "user", "content": f"q{i}"}])
asyncio.run(main())
"""


@pytest.mark.parametrize(
    "body",
    [pytest.param(LOOSE, id="no-close"), pytest.param(WITH, id="with"),
     pytest.param(ASYNC, id="async-no-close")],
)  # fmt: skip
def test_a_short_lived_process_counts_its_lookups(
    fake_openai: FakeOpenAI, redis_url: str, namespace: str, body: str
) -> None:
    """Defect 11: 20 wrapped calls and no close() (or ``with wrap(...)``) recorded 0 lookups."""
    code = SCRIPT.format(url=redis_url, ns=namespace, base=fake_openai.base_url, body=body)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], env=env, cwd=ROOT)
    with Cache(
        redis_url=redis_url, config=CacheConfig(namespace=namespace, semantic=False)
    ) as cache:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and cache.stats().lookups < 20:
            if process.poll() is not None and cache.stats().lookups < 20:
                break
            time.sleep(0.2)
        lookups = cache.stats().lookups
        process.kill()
        process.wait()
        assert lookups == 20
        cache.flush()
