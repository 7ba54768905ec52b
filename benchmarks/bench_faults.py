"""Redis going away in the middle of wrapped model calls: nothing fails, little is added, and the
cache comes back by itself.

In one run, with the real ``openai`` client against the local OpenAI-compatible test server and the
embedded Redis (persistent):
1. the floor: the same calls through an unwrapped client;
2. wrapped calls with Redis up (entries stored);
3. an outage, two ways: Redis stopped (connections refused) and Redis frozen (SIGSTOP: every
   command times out); wrapped calls go on, counting failures seen by callers and the latency each
   call adds over the floor;
4. recovery: Redis restarted; the time until a wrapped call is answered again from an entry stored
   before the outage;
5. the attacks of issue 14 on a fresh server (``benchmarks/_attacks.py``): a bad-input storm beside
   good traffic, ``semcache warm`` under ``CLIENT PAUSE WRITE``, invalidations racing in-flight
   misses.

Writes benchmarks/results/faults.json (``--attacks-only``: only step 5, to
benchmarks/results/faults_attacks.json). Usage: python benchmarks/bench_faults.py [--calls 200]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import openai

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import semcache  # noqa: E402
from benchmarks._attacks import attacks  # noqa: E402
from benchmarks.bench_latency import pct  # noqa: E402
from semcache.openai import cache_info  # noqa: E402
from semcache.server import EmbeddedServer  # noqa: E402
from tests.conftest import hash_embedder  # noqa: E402
from tests.openai_server import FakeOpenAI  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "faults.json"
ATTACKS = Path(__file__).parent / "results" / "faults_attacks.json"


def ask(client: Any, text: str) -> tuple[float, str | None, bool]:
    """One chat call: (ms, cache layer, failed)."""
    start = time.perf_counter()
    try:
        reply = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": text}]
        )
    except Exception:
        return (time.perf_counter() - start) * 1000, None, True
    layer = cache_info(reply).layer if cache_info(reply) else None
    return (time.perf_counter() - start) * 1000, layer, False


def series(client: Any, prefix: str, n: int) -> list[tuple[float, str | None, bool]]:
    return [ask(client, f"{prefix} question number {i}") for i in range(n)]


def outage(client: Any, plain: Any, name: str, n: int) -> dict[str, Any]:
    """Wrapped calls during an outage, each paired with an unwrapped call of its own (the floor,
    measured alongside so machine noise hits both alike)."""
    wrapped, floor = [], []
    for i in range(n):
        floor.append(ask(plain, f"floor during {name} {i}")[0])
        wrapped.append(ask(client, f"during {name} question number {i}"))
    added = [w[0] - f for w, f in zip(wrapped, floor, strict=True)]
    return {
        "calls": n,
        "failures_seen_by_callers": sum(failed for _, _, failed in wrapped),
        "unwrapped_ms_p50": pct(floor, 0.5),
        "wrapped_ms_p50": pct([w[0] for w in wrapped], 0.5),
        "added_ms_p50": pct(added, 0.5),
        "added_ms_p99": pct(added, 0.99),
        "added_ms_max": max(added),
        "slow_calls_over_100ms": sum(a > 100 for a in added),
    }


def recover(client: Any, server: EmbeddedServer, stored: str) -> float:
    """Seconds from the restart until a call is answered from an entry stored before the outage."""
    server.start()
    start = time.monotonic()
    while time.monotonic() - start < 30:
        _, layer, failed = ask(client, stored)
        if layer == "exact" and not failed:
            return time.monotonic() - start
        time.sleep(0.01)
    return float("inf")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--attacks-only", action="store_true")
    parser.add_argument("--out", type=Path, default=None, help="Where --attacks-only writes.")
    args = parser.parse_args()
    if args.attacks_only:
        found = {"date": time.strftime("%Y-%m-%d"), "attacks": measure_attacks()}
        write(args.out or ATTACKS, found)
        return
    n = args.calls
    with tempfile.TemporaryDirectory() as tmp, FakeOpenAI() as api:
        server = EmbeddedServer(tmp, persist=True).start()
        plain = openai.OpenAI(base_url=api.base_url, api_key="k", max_retries=0)
        floor = [ms for ms, _, _ in series(plain, "floor", n)]
        floor_ms = pct(floor, 0.5)
        cache = semcache.Cache(redis_url=server.url, embedder=hash_embedder(), namespace="faults")
        client = semcache.wrap(openai.OpenAI(base_url=api.base_url, api_key="k", max_retries=0),
                               cache=cache)  # fmt: skip
        up = series(client, "before", n)
        cache.client.execute_command("SAVE")
        before = api.calls("chat/completions")
        server.stop()
        refused = outage(client, plain, "a stopped Redis", n)
        refused["upstream_calls_of_wrapped"] = api.calls("chat/completions") - before - n
        refused["recover_s"] = recover(client, server, "before question number 0")
        pid = server.pid()
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)
        try:
            frozen = outage(client, plain, "a frozen Redis", n)
        finally:
            os.kill(pid, signal.SIGCONT)
        start = time.monotonic()
        while (
            ask(client, "before question number 1")[1] != "exact" and time.monotonic() - start < 30
        ):
            time.sleep(0.01)
        frozen["recover_s"] = time.monotonic() - start
        breaker = {"opened": cache._breaker.opened, "closed": cache._breaker.closed}
        client.close()
        cache.close()
        server.stop()
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()} {platform.system()}, {platform.python_version()}",
        "floor_unwrapped_ms": {"p50": floor_ms, "p99": pct(floor, 0.99)},
        "wrapped_with_redis_up_ms": {
            "p50": pct([c[0] for c in up], 0.5),
            "p99": pct([c[0] for c in up], 0.99),
        },
        "redis_stopped": refused,
        "redis_frozen": frozen,
        "breaker": breaker,
        "settings": {"socket_timeout_s": 0.25, "breaker_failures": 3, "breaker_cooldown_s": 2.0},
        "attacks": measure_attacks(),
    }
    write(RESULTS, result)


def measure_attacks() -> dict[str, Any]:
    """The attacks of issue 14, each on the same fresh (non-persistent) server."""
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedServer(tmp, persist=False).start()
        try:
            return attacks(server.url)
        finally:
            server.stop()


def write(path: Path, result: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
