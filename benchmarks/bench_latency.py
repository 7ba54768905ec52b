"""Lookup latency against its floors, and semantic search recall at 10k and 100k entries.

In one run, on the embedded Redis (unix socket) and the default local embedder (all-MiniLM-L6-v2 on
ONNX Runtime; torch's sentence-transformers only as the baseline of the cold lookup):
- floors, interleaved with the lookups they are the floor of (same load): a bare redis-py GET; a
  bare pipelined GET + FT.SEARCH of the same query (the same KNN command semcache sends); a bare
  embedding of one text by the default embedder and by torch;
- p50/p99 of an exact hit, a semantic hit with the vector known (in process memory, or given by the
  caller as ``lookup(vector=...)``), with the vector in the Redis embedding cache, and not cached at
  all, and a miss, each timed around the whole ``cache.lookup`` call, as a ratio to its floor;
- the first lookup of a fresh process (a subprocess: import, ``Cache()``, one lookup that embeds),
  wall and CPU seconds;
- the learned verifier's added time: one bare verifier call (query + one candidate) and a semantic
  lookup under the new default decision against the old one (guard only), on the same stored entries
  and paraphrases, next to one bare embedding measured in the same run;
- semantic lookup p50/p99 and recall@1 against brute force at 10k and 100k entries, for several
  EF_RUNTIME values (HNSW M=16, EF_CONSTRUCTION=200) and for FLAT.

The 10k/100k entries are vectors drawn around real embeddings of generated questions (2,000 real
embeddings, each the centre of a cluster of noisy copies), so they cluster like real data without
embedding 100k texts on 2 cores. Queries are near-duplicates of stored entries, as a cache serves.

Usage: python benchmarks/bench_latency.py [--quick] [--verifier-only | --lookup-only]
(writes benchmarks/results/latency.json with the load average; ``--verifier-only`` measures the
floors and the verifier, ``--lookup-only`` the floors, the lookups and the first lookup, each keeping
the other rows of the JSON from the last full run)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import semcache
from benchmarks.bench_embed import first_lookup
from semcache.core.types import IndexParams
from semcache.decision.decide import HAS_TOKENS
from semcache.embedding.default import default_local_embedder
from semcache.embedding.onnx_runtime import OnnxModel
from semcache.redis.commands import create_index, knn
from semcache.redis.keys import Keys
from semcache.redis.replies import parse_search
from semcache.server import EmbeddedServer

RESULTS = Path(__file__).parent / "results" / "latency.json"

SUBJECTS = ["my password", "the invoice", "a refund", "my subscription", "the API key", "two-factor login",
            "the mobile app", "a Python list", "a git branch", "the router", "my order", "the printer",
            "a docker container", "the database backup", "an SSL certificate", "my account email"]  # fmt: skip
ACTIONS = ["reset", "cancel", "update", "find", "delete", "renew", "export", "fix", "configure",
           "download", "recover", "share", "merge", "restart", "verify", "translate"]  # fmt: skip
FRAMES = ["How do I {a} {s}?", "What is the fastest way to {a} {s}?", "Can you help me {a} {s}?",
          "Why can't I {a} {s}?", "Is it possible to {a} {s} on a weekend?",
          "Steps to {a} {s} for a team of {n} people", "How long does it take to {a} {s}?",
          "Who can {a} {s} when the admin is away?"]  # fmt: skip


def questions(n: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    out: set[str] = set()
    while len(out) < n:
        frame = rng.choice(FRAMES)
        out.add(frame.format(a=rng.choice(ACTIONS), s=rng.choice(SUBJECTS), n=rng.randint(2, 500)))
    return sorted(out)


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(samples: list[float], floor: float | None = None) -> dict[str, float]:
    out = {"p50_ms": pct(samples, 0.5), "p99_ms": pct(samples, 0.99), "n": len(samples)}
    if floor:
        out["p50_ratio_to_floor"] = out["p50_ms"] / floor
    return out


def timed(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def timed_call(fn: Any, cpu: list[float]) -> tuple[float, Any]:
    """Wall milliseconds of ``fn()`` and its value; its thread's CPU milliseconds go to ``cpu``."""
    start, start_cpu = time.perf_counter(), time.thread_time()
    value = fn()
    elapsed = (time.perf_counter() - start) * 1000
    cpu.append((time.thread_time() - start_cpu) * 1000)
    return elapsed, value


def chat(text: str) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}


ANSWER = {"id": "x", "object": "chat.completion", "model": "gpt-4o-mini",
          "choices": [{"index": 0, "message": {"role": "assistant", "content": "An answer " * 40},
                       "finish_reason": "stop"}],
          "usage": {"prompt_tokens": 20, "completion_tokens": 80, "total_tokens": 100}}  # fmt: skip


def paraphrase(text: str) -> str:
    """The cold lookups' probe of a stored question: it keeps the question's scope."""
    return f"Quick question: {text[0].lower()}{text[1:]}"


def unanswered(text: str) -> str:
    """The misses' probe: a question no entry answers (too far from every stored one)."""
    return f"{text} Please answer in Klingon."


def floors(
    client: redis.Redis, embedder: semcache.Embedder, torch: semcache.Embedder | None,
    texts: list[str],
) -> dict[str, Any]:  # fmt: skip
    """A bare GET; one text embedded by the default embedder and (interleaved) by torch; and the
    same for the cold lookups' own probe texts, which are a few tokens longer than the questions
    (the issue's baseline is torch's embedding of the same text)."""
    client.set("bench:floor", b"x" * 600)
    get = [timed(lambda: client.get("bench:floor")) for _ in range(2000)]
    out: dict[str, Any] = {"redis_get": summary(get)}
    for name, sample in (("", texts[:200]), ("_probe_texts", map(paraphrase, texts[:300])),
                         ("_miss_texts", map(unanswered, texts[300:600]))):  # fmt: skip
        embed: list[float] = []
        torch_embed: list[float] = []
        for text in sample:
            embed.append(timed(lambda t=text: embedder.embed([t])))
            if torch is not None and name != "_miss_texts":
                torch_embed.append(timed(lambda t=text: torch.embed([t])))
        out[f"embed_one{name}"] = summary(embed)
        if torch_embed:
            out[f"torch_embed_one{name}"] = summary(torch_embed)
    # the floors' texts are the timed runs' texts: their verifier calls must not find them kept
    OnnxModel.forget_shared()
    return out


def bare_get_and_search(client: redis.Redis, cache: semcache.Cache, text: str) -> Any:
    """The floor of a semantic hit with the vector known: one redis-py pipeline of the exact GET
    and the same FT.SEARCH semcache sends (k, scope filter, returned fields)."""
    plan = cache.plan(chat(text))
    vector = cache._core.embeddings.recall(plan.text)
    assert vector is not None
    search = knn(plan.keys, vector=vector.tobytes(), scope=plan.scope, k=cache.config.top_k,
                 ef=None, fields=cache.decision.return_fields)  # fmt: skip

    def run() -> Any:
        pipe = client.pipeline(transaction=False)
        pipe.get(plan.exact_key)
        pipe.execute_command(*search)
        return pipe.execute()

    return run


def alternate(
    calls: dict[str, Any], i: int, times: dict[str, list[float]], cpu: dict[str, list[float]]
) -> None:
    """Time each call once, in turn, first to last or (odd ``i``) last to first: the call after a
    pause pays for waking the server on a loaded machine, so none of them always goes first."""
    for name in list(calls) if i % 2 == 0 else list(calls)[::-1]:
        times[name].append(timed_call(calls[name], cpu[name])[0])


def layer_latencies(
    cache: semcache.Cache, client: redis.Redis, texts: list[str], fl: dict[str, Any]
) -> dict[str, Any]:
    """Each lookup path timed around the whole ``cache.lookup`` call, its floor interleaved."""
    stored, probes = texts[:300], texts[300:600]
    for text in stored:
        cache.store(chat(text), ANSWER)
    t: dict[str, list[float]] = {name: [] for name in (
        "get", "exact", "pipe", "memory", "given", "redis", "plain", "cold", "miss")}  # fmt: skip
    cpu: dict[str, list[float]] = {name: [] for name in t}
    for i, text in enumerate(stored):
        key = cache.plan(chat(text)).exact_key
        pair = {"get": lambda k=key: client.get(k), "exact": lambda q=text: cache.lookup(chat(q))}
        alternate(pair, i, t, cpu)
    # Paraphrase-like probes: the stored question with a prefix, which keeps it in the same scope.
    layers = []
    for text in map(paraphrase, stored):
        ms, result = timed_call(lambda q=text: cache.lookup(chat(q)), cpu["cold"])
        t["cold"].append(ms)
        layers.append(result.layer)
        # the vector in Redis only; "plain": without the script that searches with the vector it
        # reads (two round trips); in turn first, as the first lookup after a cold one pays more
        for name in ("redis", "plain") if len(layers) % 2 else ("plain", "redis"):
            cache._core.embeddings.forget()
            cache._core.scripts = name == "redis"
            t[name].append(timed_call(lambda q=text: cache.lookup(chat(q)), cpu[name])[0])
        cache._core.scripts = True
        bare = bare_get_and_search(client, cache, text)
        vector = cache._core.embeddings.recall(text)
        trio = {
            "pipe": bare,
            "memory": lambda q=text: cache.lookup(chat(q)),
            "given": lambda q=text, v=vector: cache.lookup(chat(q), vector=v),
        }
        for round_ in range(2):
            alternate(trio, round_, t, cpu)
    for miss in map(unanswered, probes):
        t["miss"].append(timed_call(lambda q=miss: cache.lookup(chat(q)), cpu["miss"])[0])
    embed_floor = fl["embed_one"]["p50_ms"]
    torch_floor = fl.get("torch_embed_one", {}).get("p50_ms")
    torch_same = fl.get("torch_embed_one_probe_texts", {}).get("p50_ms")
    rows = {
        "floor_redis_get_interleaved": summary(t["get"]),
        "floor_pipelined_get_and_ft_search": summary(t["pipe"]),
        "exact_hit": summary(t["exact"], pct(t["get"], 0.5)),
        "semantic_hit_vector_in_memory": summary(t["memory"], pct(t["pipe"], 0.5)),
        "semantic_hit_vector_given": summary(t["given"], pct(t["pipe"], 0.5)),
        "semantic_hit_embedding_in_redis": summary(t["redis"], pct(t["pipe"], 0.5)),
        "semantic_hit_embedding_in_redis_without_the_script": summary(
            t["plain"], pct(t["pipe"], 0.5)
        ),
        "semantic_lookup_embedding_not_cached": summary(t["cold"], embed_floor),
        "miss_with_new_embedding": summary(t["miss"], fl["embed_one_miss_texts"]["p50_ms"]),
    }
    names = dict(zip(t, ("floor_redis_get_interleaved", "exact_hit",
                         "floor_pipelined_get_and_ft_search", "semantic_hit_vector_in_memory",
                         "semantic_hit_vector_given", "semantic_hit_embedding_in_redis",
                         "semantic_hit_embedding_in_redis_without_the_script",
                         "semantic_lookup_embedding_not_cached", "miss_with_new_embedding"),
                     strict=True))  # fmt: skip
    for short, name in names.items():
        rows[name]["cpu_p50_ms"] = pct(cpu[short], 0.5)
    cold = rows["semantic_lookup_embedding_not_cached"]
    cold["p50_ratio_to_embed_one_same_texts"] = (
        cold["p50_ms"] / fl["embed_one_probe_texts"]["p50_ms"]
    )
    if torch_floor and torch_same:
        cold["p50_ratio_to_torch_embed_one"] = cold["p50_ms"] / torch_floor  # shorter texts
        cold["p50_ratio_to_torch_embed_same_texts"] = cold["p50_ms"] / torch_same
    rows["semantic_hit_rate_of_probes"] = sum(layer == "semantic" for layer in layers) / len(layers)
    return rows


def verifier_cost(
    url: str, embedder: semcache.Embedder, texts: list[str], fl: dict[str, Any]
) -> dict[str, Any]:
    """The verifier's time per semantic lookup, against one bare embedding (``fl``)."""
    embed_floor = fl["embed_one"]["p50_ms"]
    load_before = os.getloadavg()
    verifier = semcache.Verifier().load()
    pairs = [(paraphrase(t), t) for t in texts[:300]]
    verifier.score(pairs[0][0], [pairs[0][1]])  # warm up outside the timings
    bare = [timed(lambda q=q, c=c: verifier.score(q, [c])) for q, c in pairs]
    out: dict[str, Any] = {"bare_call_one_candidate": summary(bare, embed_floor)}
    # As a lookup meets it: the default embedder has just embedded the query (the verifier shares
    # its model and reuses those token rows); the candidate is new to the process, or was just
    # stored by it.
    fresh = [(f"Tell me: {t[0].lower()}{t[1:]}", f"Please answer: {t}") for t in texts[300:600]]
    just, own = [], []
    for q, c in fresh:
        embedder.embed([q])
        just.append(timed(lambda q=q, c=c: verifier.score(q, [c])))
        own.append(timed(lambda c=c: embedder.embed([c])))  # the model runs again: no memory
    out["query_just_embedded_candidate_new"] = summary(just, embed_floor)
    out["query_just_embedded_candidate_new"]["p50_ratio_to_embedding_the_candidate"] = pct(
        just, 0.5
    ) / pct(own, 0.5)
    out["embedding_the_candidate"] = summary(own)
    known = []
    for q, c in [(f"Say: {q}", f"Say: {c}") for q, c in fresh]:  # pairs not scored before
        embedder.embed([q])
        embedder.embed([c])
        known.append(timed(lambda q=q, c=c: verifier.score(q, [c])))
    out["query_and_candidate_just_embedded"] = summary(known, embed_floor)
    again = [timed(lambda q=q, c=c: verifier.score(q, [c])) for q, c in fresh]
    out["same_pair_again"] = summary(again, embed_floor)
    guard = semcache.GuardedDecision(guard=semcache.Guard())
    # the shipped band, and one wide enough that every probe is verified (the cost when it is asked)
    shipped = semcache.GuardedDecision(guard=semcache.Guard(), verifier=verifier)
    every = semcache.GuardedDecision(
        guard=semcache.Guard(), verifier=semcache.Verifier(below=0.2, above=0.2).load()
    )
    runs = (("guard", guard), ("guard_and_verifier", shipped), ("guard_and_verifier_every", every))
    for n, (name, decision) in enumerate(runs):
        # texts of this run only: each run embeds its own queries, as new traffic would
        mine = [(f"Note {n}. {q}", f"Note {n}. {c}") for q, c in pairs]
        config = semcache.CacheConfig(
            namespace=f"bench-{name.replace('_', '-')}", decision=decision
        )
        with semcache.Cache(redis_url=url, embedder=embedder, config=config) as cache:
            for _, stored in mine:
                cache.store(chat(stored), ANSWER)
            first = [cache.lookup(chat(query)) for query, _ in mine]  # a new paraphrase: embedded
            results = [cache.lookup(chat(q)) for q, _ in mine]  # asked again: vector in memory
            exact = [cache.lookup(chat(stored)) for _, stored in mine]  # never decided
            cache.flush()
        row = summary([r.lookup_ms for r in results])
        row["first_time"] = summary([r.lookup_ms for r in first])
        row["exact_hit"] = summary([r.lookup_ms for r in exact])
        row["exact_hit"]["verified_share"] = sum(
            any(c[0] == "verifier" for c in r.checks) for r in exact
        ) / len(exact)
        row["hit_rate"] = sum(r.layer == "semantic" for r in results) / len(results)
        row["verified_share"] = sum(any(c[0] == "verifier" for c in r.checks) for r in first) / len(
            first
        )
        out[name] = row
    out |= other_process(url, embedder, pairs, verifier)
    for name in ("guard_and_verifier", "guard_and_verifier_every"):
        added = out[name]["p50_ms"] - out["guard"]["p50_ms"]
        out[name]["added_p50_ms"] = added
        out[name]["added_p99_ms"] = out[name]["p99_ms"] - out["guard"]["p99_ms"]
        out[name]["added_p50_ratio_to_embed_one"] = added / embed_floor
        first = out[name]["first_time"]["p50_ms"] - out["guard"]["first_time"]["p50_ms"]
        out[name]["first_time_added_p50_ms"] = first
        out[name]["first_time_added_p50_ratio_to_embed_one"] = first / embed_floor
        exact = out[name]["exact_hit"]["p50_ms"] - out["guard"]["exact_hit"]["p50_ms"]
        out[name]["exact_hit_added_p50_ms"] = exact
    out["threads"] = verifier.threads
    out["load_average"] = {"before": load_before, "after": os.getloadavg()}
    return out


class _Stateless(semcache.GuardedDecision):
    """The default decision storing no token state with its entries (as before it did)."""

    def document_fields(self, text: str) -> tuple[tuple[str, bytes], ...]:
        return ()


def other_process(
    url: str, embedder: semcache.Embedder, pairs: list[tuple[str, str]], verifier: Any
) -> dict[str, Any]:
    """A lookup in a process that did not store the entry: one process stores, the model's memory
    of texts is dropped (as in another worker) and a new cache looks up a new paraphrase, verified.
    With the token state stored (the default) and without it (the model runs on the candidate),
    and for an entry stored without one (the caller's vector) after a first reader verified it
    (and so wrote the state back), interleaved per pair, beside the guard alone on the same texts;
    the added time is the lookup's p50 against the guard's."""
    from semcache.embedding.onnx_runtime import OnnxModel

    plans: dict[str, semcache.GuardedDecision] = {
        "guard": semcache.GuardedDecision(guard=semcache.Guard()),
        "state_stored": semcache.GuardedDecision(guard=semcache.Guard(), verifier=verifier),
        "no_state": _Stateless(guard=semcache.Guard(), verifier=verifier),
        "written_back": semcache.GuardedDecision(guard=semcache.Guard(), verifier=verifier),
    }
    held = verifier._load().model.held  # the states the reader read: forgotten as the model's
    times: dict[str, list[float]] = {name: [] for name in plans}
    verified: dict[str, int] = {name: 0 for name in plans}
    written = 0
    for i, (query, stored) in enumerate(pairs):
        for name, decision in plans.items():
            config = semcache.CacheConfig(namespace=f"bench-other-{name}", decision=decision)
            q, c = f"Case {i} {name}. {query}", f"Case {i} {name}. {stored}"
            with semcache.Cache(redis_url=url, embedder=embedder, config=config) as writer:
                if name == "written_back":  # stored with its vector (no state), then verified
                    given = embedder.embed([c, q])  # by a first reader, which writes it back
                    OnnxModel.forget_shared()
                    writer.store(chat(c), ANSWER, vector=given[0])
                    with semcache.Cache(redis_url=url, embedder=embedder, config=config) as first:
                        first.lookup(chat(q), vector=given[1])  # its vector not cached in Redis
                    doc = writer.plan(chat(c)).doc_key
                    written += writer.client.hget(doc, HAS_TOKENS) is not None
                else:
                    writer.store(chat(c), ANSWER)
            OnnxModel.forget_shared()
            held.clear()
            verifier._recent.clear()  # the pair scores a first reader left: another process's
            with semcache.Cache(redis_url=url, embedder=embedder, config=config) as reader:
                result = reader.lookup(chat(q))
                reader.flush()
            times[name].append(result.lookup_ms)
            verified[name] += any(check == "verifier" for check, _ in result.checks)
    out: dict[str, Any] = {}
    guard = pct(times["guard"], 0.5)
    for name in ("state_stored", "no_state", "written_back"):
        row = summary(times[name])
        row["verified_share"] = verified[name] / len(pairs)
        row["added_p50_ms"] = pct(times[name], 0.5) - guard
        out[f"other_process_{name}"] = row
    out["other_process_written_back"]["state_written_share"] = written / len(pairs)
    out["other_process_guard"] = summary(times["guard"])
    return out


def clustered(centres: np.ndarray, n: int, rng: np.random.Generator, noise: float) -> np.ndarray:
    picks = rng.integers(0, len(centres), n)
    rows = centres[picks] + rng.normal(0, noise, (n, centres.shape[1])).astype(np.float32)
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def load_index(client: redis.Redis, keys: Keys, vectors: np.ndarray, params: IndexParams) -> float:
    with contextlib.suppress(redis.ResponseError):  # a previous run's index and documents
        client.execute_command("FT.DROPINDEX", keys.index, "DD")
    client.execute_command(*create_index(keys, vectors.shape[1], params))
    start = time.perf_counter()
    for lo in range(0, len(vectors), 1000):
        pipe = client.pipeline(transaction=False)
        for i in range(lo, min(lo + 1000, len(vectors))):
            pipe.hset(f"{keys.doc_prefix}t:{i}", mapping={
                "vec": vectors[i].tobytes(), "scope": "s0", "tenant": "t0", "emb": "e0",
                "entry": "{}", "text": ""})  # fmt: skip
        pipe.execute()
    while True:  # wait for background indexing to finish
        info = client.execute_command("FT.INFO", keys.index)
        info = info if isinstance(info, dict) else dict(zip(info[::2], info[1::2], strict=False))
        pending = info.get(b"indexing", info.get("indexing", 0))
        if str(pending) in ("0", "b'0'"):
            break
        time.sleep(0.2)
    return len(vectors) / (time.perf_counter() - start)


def recall_at(client: redis.Redis, keys: Keys, vectors: np.ndarray, queries: np.ndarray,
              ef: int | None) -> dict[str, float]:  # fmt: skip
    truth = np.argmax(queries @ vectors.T, axis=1)
    times, correct = [], 0
    for q, want in zip(queries, truth, strict=True):
        cmd = knn(keys, vector=q.tobytes(), scope="s0", k=1, ef=ef)
        start = time.perf_counter()
        reply = client.execute_command(*cmd)
        times.append((time.perf_counter() - start) * 1000)
        rows = parse_search(reply)
        correct += bool(rows) and rows[0][0].rsplit(":", 1)[-1] == str(want)
    return {"recall_at_1": correct / len(queries), **summary(times)}


def scale(client: redis.Redis, centres: np.ndarray, sizes: list[int], n_queries: int) -> list[dict]:
    rng = np.random.default_rng(3)
    rows = []
    for size in sizes:
        vectors = clustered(centres, size, rng, noise=0.02)
        # Queries: stored entries with a small perturbation (near-duplicates, as a cache serves).
        picks = rng.integers(0, size, n_queries)
        queries = clustered(vectors[picks], n_queries, rng, noise=0.01)
        for algorithm, efs in (("hnsw", [10, 32, 64, 128]), ("flat", [None])):
            keys = Keys(f"bench-{algorithm}-{size}")
            params = IndexParams(algorithm=algorithm)
            rate = load_index(client, keys, vectors, params)
            for ef in efs:
                row = {"entries": size, "algorithm": algorithm, "ef_runtime": ef,
                       "load_per_s": rate, **recall_at(client, keys, vectors, queries, ef)}  # fmt: skip
                rows.append(row)
                print(f"  {size:>7} {algorithm:<5} ef={ef!s:<5} recall@1={row['recall_at_1']:.3f} "
                      f"p50={row['p50_ms']:.2f}ms p99={row['p99_ms']:.2f}ms "
                      f"load={rate:,.0f}/s")  # fmt: skip
            client.execute_command("FT.DROPINDEX", keys.index, "DD")
    return rows


def torch_embedder() -> semcache.Embedder | None:
    """sentence-transformers on torch (the ``torch`` extra): only the cold lookup's baseline."""
    try:
        torch = semcache.SentenceTransformerEmbedder()
        torch.embed(["load the model outside the timings"])
    except ImportError:
        return None
    return torch


def ratios(layers: dict[str, Any], first: dict[str, Any] | None) -> dict[str, Any]:
    """The goals of issue 18, as ratios measured in this run."""
    cold = layers.get("semantic_lookup_embedding_not_cached", {})
    fresh = {} if first is None else {
        "first_lookup_of_a_fresh_process_s": first["onnx"]["median_spawn_to_result_s"],
        "first_lookup_of_a_fresh_process_to_its_exit_s": first["onnx"][
            "median_with_interpreter_start_s"
        ],
        "first_lookup_of_a_fresh_process_cpu_s": first["onnx"]["median_cpu_s"],
    }  # fmt: skip
    return {
        "exact_hit_to_bare_get": layers["exact_hit"]["p50_ratio_to_floor"],
        "semantic_hit_vector_in_memory_to_bare_get_and_search": layers[
            "semantic_hit_vector_in_memory"
        ]["p50_ratio_to_floor"],
        "semantic_hit_vector_given_to_bare_get_and_search": layers["semantic_hit_vector_given"][
            "p50_ratio_to_floor"
        ],
        "semantic_hit_embedding_in_redis_script_to_two_round_trips": layers[
            "semantic_hit_embedding_in_redis"
        ]["p50_ms"]
        / layers["semantic_hit_embedding_in_redis_without_the_script"]["p50_ms"],
        "cold_semantic_lookup_to_torch_embed_of_the_same_text": cold.get(
            "p50_ratio_to_torch_embed_same_texts"
        ),
        "cold_semantic_lookup_to_torch_embed_of_the_shorter_stored_texts": cold.get(
            "p50_ratio_to_torch_embed_one"
        ),
        **fresh,
    }


def lookups(url: str, client: redis.Redis, embedder: semcache.Embedder, texts: list[str],
            fl: dict[str, Any], decision: Any = None) -> dict[str, Any]:  # fmt: skip
    """Every lookup path with the default decision (guard and verifier), or with ``decision``."""
    config = semcache.CacheConfig(namespace="bench", decision=decision)
    with semcache.Cache(redis_url=url, embedder=embedder, config=config) as cache:
        layers = layer_latencies(cache, client, texts, fl)
        cache.flush()
    if decision is not None:  # the lookup machinery alone: the first lookup is the default's
        # the texts were embedded by the run before: its cold rows would not be cold here
        for name in ("semantic_lookup_embedding_not_cached", "miss_with_new_embedding"):
            layers.pop(name, None)
        return {"decision": repr(decision), "layers": layers, "ratios": ratios(layers, None)}
    for name, row in layers.items():
        if isinstance(row, dict):
            print(f"  {name:<40} p50 {row['p50_ms']:7.3f} ms  p99 {row['p99_ms']:7.3f} ms  "
                  f"cpu p50 {row['cpu_p50_ms']:6.3f} ms  "
                  f"x{row.get('p50_ratio_to_floor', 0):.2f} of floor")  # fmt: skip
    first = first_lookup(url, 5, ("onnx",))
    print(f"  first lookup of a fresh process: {first['onnx']}")
    out = {"layers": layers, "first_lookup": first, "ratios": ratios(layers, first)}
    print(f"ratios: {json.dumps(out['ratios'], indent=1)}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="10k entries only, fewer queries")
    only = parser.add_mutually_exclusive_group()
    only.add_argument("--verifier-only", action="store_true")
    only.add_argument("--lookup-only", action="store_true")
    args = parser.parse_args()
    bare = default_local_embedder()
    embedder = semcache.Batching(bare)
    torch = torch_embedder()
    texts = questions(2000)
    embedder.embed(texts[:4])  # load the model outside the timings
    load = [round(os.getloadavg()[0], 2)]
    old = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    with tempfile.TemporaryDirectory() as tmp, EmbeddedServer(tmp, persist=False) as server:
        client = redis.Redis.from_url(server.url)
        fl = floors(client, bare, torch, texts)
        print(f"floors: GET p50 {fl['redis_get']['p50_ms']:.3f} ms, "
              f"embed one text p50 {fl['embed_one']['p50_ms']:.2f} ms")  # fmt: skip
        if args.lookup_only:
            found = lookups(server.url, client, embedder, texts, fl)
            print("the same with the guard alone (the lookup machinery without the verifier):")
            guard = semcache.GuardedDecision(guard=semcache.Guard())
            found["guard_only"] = lookups(server.url, client, embedder, texts, fl, guard)
            load.append(round(os.getloadavg()[0], 2))
            stamp = {"date": time.strftime("%Y-%m-%d %H:%M"), "load_average_1min": load}
            found |= {"floors_lookup_run": fl, "lookup_run": stamp}
            RESULTS.write_text(json.dumps({**old, **found}, indent=2))
            print(f"load average {load}; wrote {RESULTS}")
            return
        cost = verifier_cost(server.url, embedder, texts, fl)
        print(f"verifier: bare call p50 {cost['bare_call_one_candidate']['p50_ms']:.2f} ms, p99 "
              f"{cost['bare_call_one_candidate']['p99_ms']:.2f} ms")  # fmt: skip
        for name in ("bare_call_one_candidate", "query_just_embedded_candidate_new",
                     "query_and_candidate_just_embedded", "same_pair_again"):  # fmt: skip
            row = cost[name]
            print(f"  {name}: p50 {row['p50_ms']:.2f} ms = {row['p50_ratio_to_floor']:.2f}x one "
                  f"embedding, p99 {row['p99_ms']:.2f} ms")  # fmt: skip
        print("  the new candidate's case against embedding the candidate itself: "
              f"{cost['query_just_embedded_candidate_new']['p50_ratio_to_embedding_the_candidate']:.2f}x")  # fmt: skip
        for name in ("other_process_state_stored", "other_process_no_state",
                     "other_process_written_back"):  # fmt: skip
            row = cost[name]
            print(f"  {name}: verified {row['verified_share']:.0%}; p50 {row['p50_ms']:.2f} ms, "
                  f"added p50 {row['added_p50_ms']:.2f} ms against the guard alone "
                  f"(x{row['added_p50_ms'] / fl['embed_one']['p50_ms']:.2f} of one embedding)")  # fmt: skip
        for name in ("guard_and_verifier", "guard_and_verifier_every"):
            row = cost[name]
            print(f"  {name}: verified {row['verified_share']:.0%} of new lookups; added p50 "
                  f"{row['first_time_added_p50_ms']:.2f} ms the first time "
                  f"(x{row['first_time_added_p50_ratio_to_embed_one']:.2f} of one embedding), "
                  f"{row['added_p50_ms']:.2f} ms asked again; exact hit added p50 "
                  f"{row['exact_hit_added_p50_ms']:.3f} ms")  # fmt: skip
        if args.verifier_only:
            RESULTS.write_text(
                json.dumps({**old, "floors_verifier_run": fl, "verifier": cost}, indent=2)
            )
            return
        found = lookups(server.url, client, embedder, texts, fl)
        centres = default_local_embedder(threads=2).embed(texts)
        sizes = [10_000] if args.quick else [10_000, 100_000]
        scaled = scale(client, centres, sizes, 200 if args.quick else 500)
    load.append(round(os.getloadavg()[0], 2))
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()} {platform.system()}, {platform.python_version()}",
        "load_average_1min": load,
        "floors": fl,
        **found,
        "verifier": cost,
        "scale": scaled,
        "note": "scale rows use vectors drawn around 2,000 real embeddings (see docstring)",
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
