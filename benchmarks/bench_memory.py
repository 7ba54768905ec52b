"""What one cache entry costs in Redis: exact string + semantic document (+ its HNSW node) +
embedding-cache string, measured on the embedded server with the default 384-dim embedder.

Stores N entries with a realistic chat response (~600 bytes of answer text), then reports
``MEMORY USAGE`` of each kind of key and the server's ``used_memory`` growth per entry (which also
counts the index): once with the default embedder (each entry then keeps the verifier's token state
of its text) and once with vectors from elsewhere (no state). Writes benchmarks/results/memory.json.

Usage: python benchmarks/bench_memory.py [--entries 5000]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import semcache
from benchmarks.bench_latency import ANSWER, chat, questions
from semcache.decision.decide import TOKENS
from semcache.embedding.onnx_runtime import OnnxModel
from semcache.server import EmbeddedServer

RESULTS = Path(__file__).parent / "results" / "memory.json"


def random_embedder(dimension: int = 384) -> semcache.CallableEmbedder:
    """Vectors of the default model's size; their values do not change the memory they take."""
    rng = np.random.default_rng(0)
    return semcache.CallableEmbedder(
        lambda texts: rng.standard_normal((len(texts), dimension)),
        model_id="sentence-transformers/all-MiniLM-L6-v2",
        dimension=dimension,
    )


def used(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def measure(url: str, client: redis.Redis, embedder: semcache.Embedder, texts: list[str],
            namespace: str) -> dict[str, Any]:  # fmt: skip
    """Store ``texts`` one by one, then the keys' median ``MEMORY USAGE`` and the growth per entry."""
    with semcache.Cache(redis_url=url, embedder=embedder, namespace=namespace) as cache:
        before = used(client)
        for text in texts:
            cache.store(chat(text), ANSWER)
        time.sleep(0.5)
        after = used(client)
        sample = texts[:: max(1, len(texts) // 200)]
        sizes: dict[str, list[int]] = {"exact": [], "semantic_doc": [], "embedding": []}
        states = []
        for text in sample:
            plan = cache.plan(chat(text))
            for name, key in (("exact", plan.exact_key), ("semantic_doc", plan.doc_key),
                              ("embedding", cache._core.embeddings.key(text))):  # fmt: skip
                sizes[name].append(client.memory_usage(key, samples=0) or 0)  # every field
            states.append(len(client.hget(plan.doc_key, TOKENS) or b""))
        cache.flush()
    per_key = {k: statistics.median(v) for k, v in sizes.items()}
    return {
        "memory_usage_median_bytes": per_key,
        "keys_total_bytes": sum(per_key.values()),
        "used_memory_per_entry_bytes": (after - before) / len(texts),
        "verifier_state_median_bytes": statistics.median(states),
        "entries_with_a_verifier_state": sum(1 for n in states if n) / len(states),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=5000)
    args = parser.parse_args()
    texts = questions(args.entries, seed=11)
    runs = {
        # the default embedder: the model runs on each stored text, so each entry keeps the
        # verifier's token state of it (semcache.decision.decide.TOKENS)
        "default_embedder": semcache.OnnxEmbedder(),
        # vectors from elsewhere (a remote embedder): no model run, no token state
        "other_embedder": random_embedder(),
    }
    found = {}
    with tempfile.TemporaryDirectory() as tmp, EmbeddedServer(tmp, persist=False) as server:
        client = redis.Redis.from_url(server.url)
        for name, embedder in runs.items():
            OnnxModel.forget_shared()  # no text the other run's model ran is remembered
            found[name] = measure(server.url, client, embedder, texts, f"mem-{name}")
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()} {platform.system()}, {platform.python_version()}",
        "entries": len(texts),
        "response_json_bytes": len(json.dumps(ANSWER)),
        **found,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))
    for name, row in found.items():
        print(f"{name}:")
        for key, size in row["memory_usage_median_bytes"].items():
            print(f"  {key:<14} {size:>8,.0f} B")
        print(f"  {'keys total':<14} {row['keys_total_bytes']:>8,.0f} B")
        print(f"  {'used_memory':<14} {row['used_memory_per_entry_bytes']:>8,.0f} B per entry "
              "(keys + HNSW index + tag structures)")  # fmt: skip
        print(
            f"  verifier token state: median {row['verifier_state_median_bytes']:,.0f} B, "
            f"in {row['entries_with_a_verifier_state']:.0%} of the entries"
        )
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
