"""The attacks of issue 14, measured for ``bench_faults.py`` on a private embedded Redis:

- a bad-input storm beside good traffic: the hit rate of another tenant's good lookups with and
  without bad ``store()`` calls arriving at the same cache;
- ``semcache warm`` while Redis holds every write (``CLIENT PAUSE WRITE``): entries it reports
  stored against the exact entries and semantic documents in Redis;
- invalidations racing in-flight misses through a wrapped client: entries served after the
  invalidation that were computed before it (stale).

Only the public API, so the same code measures any version of the package.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import openai
import redis
from click.testing import CliRunner

import semcache
from semcache.cli import main as cli
from semcache.openai import cache_info
from tests.conftest import answer, chat, hash_embedder
from tests.openai_server import FakeOpenAI

DEEP: Any = "leaf"
for _ in range(600):
    DEEP = {"a": DEEP}

#: Bad store() calls of the kinds the attack used: text that is not Unicode, an object JSON cannot
#: hold, a request nested 600 deep.
BAD_STORES: list[tuple[dict[str, Any], Any]] = [
    (chat("fine"), {"content": "lone \ud800 surrogate"}),
    (chat("fine"), {"sdk": object()}),
    (chat("lone \udcff surrogate"), answer("a")),
    (chat("deep", response_format=DEEP), answer("a")),
]


def _good_hit_rate(cache: semcache.Cache, seconds: float, storm: bool) -> dict[str, Any]:
    """Good lookups (tenant "good", every entry stored) for ``seconds``, with a storm of three bad
    stores every 2 s from another tenant when ``storm``."""
    stop = threading.Event()
    bad = [0]

    def attack() -> None:
        while not stop.is_set():
            for _ in range(3):  # three bad requests every 2 s, as in the attack
                request, response = BAD_STORES[bad[0] % len(BAD_STORES)]
                bad[0] += 1
                with contextlib.suppress(Exception):  # refused: what the fix makes of bad input
                    cache.store(request, response, tenant="attacker")
            stop.wait(2.0)

    thread = threading.Thread(target=attack, daemon=True)
    if storm:
        thread.start()
    hits = lookups = unavailable = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        result = cache.lookup(chat(f"good question {lookups % 50}"), tenant="good")
        lookups += 1
        hits += result.hit
        unavailable += result.reason == "unavailable"
        time.sleep(0.005)
    stop.set()
    if storm:
        thread.join()
    return {"good_lookups": lookups, "hit_rate": hits / lookups,
            "unavailable": unavailable, "bad_stores": bad[0]}  # fmt: skip


def bad_input_storm(url: str, seconds: float = 10.0) -> dict[str, Any]:
    """Good lookups' hit rate with and without the storm, on one cache."""
    with semcache.Cache(redis_url=url, embedder=hash_embedder(), namespace="storm") as cache:
        for i in range(50):
            cache.store(chat(f"good question {i}"), answer(str(i)), tenant="good")
        quiet = _good_hit_rate(cache, seconds, storm=False)
        stormy = _good_hit_rate(cache, seconds, storm=True)
        cache.flush()
    return {"without_storm": quiet, "with_storm": stormy, "seconds_each": seconds}


def _count(client: redis.Redis, pattern: str) -> int:
    return sum(1 for _ in client.scan_iter(match=pattern, count=1000))


def warm_under_paused_writes(url: str, entries: int = 5000, pause_s: float = 7.0) -> dict[str, Any]:
    """``semcache warm`` (default timeout and retries) while every write is held ``pause_s``."""
    namespace = "warmpause"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pairs.jsonl"
        rows = [{"request": chat(f"warm question {i}"), "response": answer(str(i))}
                for i in range(entries)]  # fmt: skip
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
        control = redis.Redis.from_url(url)
        timer = threading.Timer(
            0.3, lambda: control.execute_command("CLIENT", "PAUSE", int(pause_s * 1000), "WRITE")
        )
        timer.start()
        args = ["warm", str(path), "--redis-url", url, "-n", namespace,
                "--embedder", "tests.conftest:hash_embedder", "--json"]  # fmt: skip
        result = CliRunner().invoke(cli, args)
        timer.join()
        control.execute_command("CLIENT", "UNPAUSE")
        time.sleep(0.5)  # writes the server held are executed
        exact = _count(control, f"semcache:x:{namespace}:*")
        docs = _count(control, f"semcache:s:{{{namespace}}}:*")
        control.close()
    reported = json.loads(result.output[result.output.index("{") :])["stored"]
    return {"entries": entries, "pause_s": pause_s, "reported_stored": reported,
            "exact_in_redis": exact, "semantic_docs_in_redis": docs,
            "exit_code": result.exit_code}  # fmt: skip


def _race(url: str, misses: int, invalidate: bool) -> int:
    """``misses`` concurrent wrapped misses (0.5 s upstream each, tagged), the tag invalidated
    while they are upstream when ``invalidate``; then the same calls again: how many are answered
    from the cache."""
    with (
        FakeOpenAI(slow_seconds=0.5) as api,
        semcache.Cache(redis_url=url, embedder=hash_embedder(), namespace="race") as cache,
    ):
        client = semcache.wrap(openai.OpenAI(base_url=api.base_url, api_key="k", max_retries=0),
                               cache=cache, tags=["doc:1"])  # fmt: skip

        def ask(i: int) -> Any:
            text = f"[slow] what does doc 1 say, part {i}?"
            return client.chat.completions.create(model="m", messages=[{"role": "user",
                                                                         "content": text}])  # fmt: skip

        threads = [threading.Thread(target=ask, args=(i,)) for i in range(misses)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 10
        while api.calls("chat/completions") < misses and time.monotonic() < deadline:
            time.sleep(0.01)  # until every call is upstream (each answers after 0.5 s)
        if invalidate:
            cache.invalidate(tags=["doc:1"])
        for thread in threads:
            thread.join()
        served = sum(cache_info(ask(i)).layer is not None for i in range(misses))  # type: ignore[union-attr]
        client.close()
        cache.flush()
    return served


def invalidation_race(url: str, misses: int = 20) -> dict[str, Any]:
    """Entries computed before an invalidation and served after it (stale), beside the same race
    without the invalidation (every entry served: the stores themselves worked)."""
    return {
        "in_flight_misses": misses,
        "served_without_invalidation": _race(url, misses, invalidate=False),
        "stale_entries_served": _race(url, misses, invalidate=True),
    }


def attacks(url: str) -> dict[str, Any]:
    """Every scenario above, on the server at ``url``."""
    return {
        "bad_input_storm": bad_input_storm(url),
        "warm_under_client_pause_write": warm_under_paused_writes(url),
        "invalidation_racing_in_flight_misses": invalidation_race(url),
    }
