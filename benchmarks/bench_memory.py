"""What one cache entry costs in Redis: exact string + semantic document (+ its HNSW node) +
embedding-cache string, measured on the embedded server with the default 384-dim embedder.

Stores N entries with a realistic chat response (~600 bytes of answer text), then reports
``MEMORY USAGE`` of each kind of key and the server's ``used_memory`` growth per entry (which also
counts the index). Writes benchmarks/results/memory.json.

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

import numpy as np
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import semcache
from benchmarks.bench_latency import ANSWER, chat, questions
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=5000)
    args = parser.parse_args()
    texts = questions(args.entries, seed=11)
    with tempfile.TemporaryDirectory() as tmp, EmbeddedServer(tmp, persist=False) as server:
        client = redis.Redis.from_url(server.url)
        with semcache.Cache(
            redis_url=server.url, embedder=random_embedder(), namespace="mem"
        ) as cache:
            before = used(client)
            for text in texts:
                cache.store(chat(text), ANSWER)
            time.sleep(0.5)
            after = used(client)
            sample = texts[:: max(1, len(texts) // 200)]
            sizes: dict[str, list[int]] = {"exact": [], "semantic_doc": [], "embedding": []}
            for text in sample:
                plan = cache.plan(chat(text))
                sizes["exact"].append(client.memory_usage(plan.exact_key) or 0)
                sizes["semantic_doc"].append(client.memory_usage(plan.doc_key) or 0)
                sizes["embedding"].append(
                    client.memory_usage(cache._core.embeddings.key(text)) or 0
                )
    per_key = {k: statistics.median(v) for k, v in sizes.items()}
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()} {platform.system()}, {platform.python_version()}",
        "entries": len(texts),
        "response_json_bytes": len(json.dumps(ANSWER)),
        "memory_usage_median_bytes": per_key,
        "keys_total_bytes": sum(per_key.values()),
        "used_memory_per_entry_bytes": (after - before) / len(texts),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))
    for name, size in per_key.items():
        print(f"{name:<14} {size:>8,.0f} B")
    print(f"{'keys total':<14} {result['keys_total_bytes']:>8,.0f} B")
    print(f"{'used_memory':<14} {result['used_memory_per_entry_bytes']:>8,.0f} B per entry "
          "(keys + HNSW index + tag structures)")  # fmt: skip
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
