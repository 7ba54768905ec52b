"""The speed half of ``benchmarks/compare.py`` (``--speed``): semcache against RedisVL's
SemanticCache on FLAT (its own schema) and on HNSW with semcache's own M, EF_CONSTRUCTION and
EF_RUNTIME, at each size (1,000 and 100,000 entries by default), on one embedded Redis, with the same
precomputed vectors (all-MiniLM-L6-v2 on semcache's default local embedder, OnnxEmbedder).

For each size, every system is bulk-loaded alone (semcache ``store_many`` with the vectors, RedisVL
``SearchIndex.load`` of its own records: entries/s), then single stores and lookups go to every
system interleaved (each text to every system in a seeded random order): repeated prompts (stored
texts), paraphrases of stored texts ("Quick question: ..."), and unrelated texts (PAWS sentences:
misses). Every system answers at cosine 0.9. Recall is the share of paraphrases answered with their
own source's answer; ``ceiling`` is the share whose exact (brute-force) nearest stored text is their
source at cosine >= 0.9, what a perfect index finds.

semcache runs three ways: its default (HNSW, guard and learned verifier), on FLAT, and on HNSW
with the guard alone (the lookup machinery without the verifier). Before each of its lookups the
process forgets the texts it has seen (``SemcacheBulk.forget``), so a verified paraphrase pays the
verifier's model runs for both texts, as in a process that was handed the query's vector and
never stored the candidate, whichever semcache system met the text first.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

import semcache
from benchmarks import _compare_systems as sy
from benchmarks._compare_latency import LATENCY_COSINE, shuffled, summary, timed
from benchmarks._data import support_questions
from semcache.core.types import IndexParams

ANSWER = " An answer. " * 30
BATCH = 2000


def answer_of(i: int) -> str:
    return f"#{i}" + ANSWER


def speed_texts(n: int, probes: int, unrelated: Sequence[str], stores: int) -> dict[str, Any]:
    """Stored texts, texts stored one by one, and the probes (spread over the stored ones)."""
    every = support_questions(n + stores + 20)
    stored, single, warmup = every[:n], every[n : n + stores], every[n + stores :]
    step = max(1, n // (2 * probes))
    picks = list(range(0, n, step))[: 2 * probes]
    repeat, para = picks[0::2][:probes], picks[1::2][:probes]
    return {
        "stored": stored, "single": single, "warmup": warmup,
        "repeat": [(stored[i], i) for i in repeat],
        "paraphrase": [(f"Quick question: {stored[i][0].lower()}{stored[i][1:]}", i) for i in para],
        "unrelated": [(t, -1) for t in list(dict.fromkeys(unrelated))[:probes]],
    }  # fmt: skip


def all_texts(texts: dict[str, Any], real: int | None = None) -> list[str]:
    """The texts to embed: all of them, or (``real``) the first ``real`` stored ones, the stored
    texts the probes come from, and every text stored or looked up one by one."""
    probes = [t for kind in ("repeat", "paraphrase", "unrelated") for t, _ in texts[kind]]
    used = {i for kind in ("repeat", "paraphrase") for _, i in texts[kind]}
    stored = [t for i, t in enumerate(texts["stored"]) if real is None or i < real or i in used]
    return [*stored, *texts["single"], *texts["warmup"], *probes]


def drawn_rows(speed: dict[int, dict[str, Any]], rows: dict[str, np.ndarray]) -> dict[str, Any]:
    """Vectors for the stored texts that were not embedded: drawn on segments between real
    embeddings of stored texts and their nearest real neighbours (``benchmarks/_data.py``), so
    they cluster like real ones; every system gets the same."""
    from benchmarks._data import drawn

    stored = dict.fromkeys(t for texts in speed.values() for t in texts["stored"])
    missing = [t for t in stored if t not in rows]
    if not missing:
        return {}
    centres = np.vstack([rows[t] for t in stored if t in rows])
    return dict(zip(missing, drawn(centres, len(missing), np.random.default_rng(3)), strict=True))


class SemcacheBulk(sy.Semcache):
    """semcache, bulk-loaded through ``store_many`` with the vectors given."""

    def bulk(self, texts: Sequence[str], vectors: np.ndarray, scope: str) -> None:
        for lo in range(0, len(texts), BATCH):
            pairs = [(sy.chat(t), sy.response(answer_of(lo + i)))
                     for i, t in enumerate(texts[lo : lo + BATCH])]  # fmt: skip
            done = self.cache.store_many(pairs, tenant=scope, vectors=vectors[lo : lo + BATCH])
            assert done == len(pairs), f"{self.name}: {done} of {len(pairs)} stored"

    def forget(self) -> None:
        """Forget what this process remembers of texts: the shared model's token rows, the
        verifier's pair scores, the guard's verdicts. Each lookup then pays what a process pays
        that neither embedded the query (its vector came precomputed) nor stored the candidate,
        whichever semcache system saw the text before it (the memories are per process)."""
        from semcache.decision import guard
        from semcache.embedding import onnx_runtime

        onnx_runtime.OnnxModel.forget_shared()
        verifier = getattr(self.cache._core.decision, "verifier", None)
        if verifier is not None:
            verifier._recent.clear()
        guard._VERDICTS.clear()


class RedisVLBulk(sy.RedisVL):
    """RedisVL's SemanticCache, on its own FLAT schema or on HNSW with the given parameters."""

    def __init__(self, name: str, client: Any, embed_one: Any, index: str,
                 hnsw: IndexParams | None = None) -> None:  # fmt: skip
        super().__init__(name, client, embed_one, index)
        self.hnsw = hnsw
        if hnsw is not None:
            self._as_hnsw(client, hnsw)

    def _as_hnsw(self, client: Any, params: IndexParams) -> None:
        from redisvl.index import SearchIndex
        from redisvl.schema import IndexSchema

        schema = self.cache._index.schema.to_dict()
        for field in schema["fields"]:
            if field["type"] == "vector":
                field["attrs"].update(algorithm="hnsw", m=params.m, epsilon=0.01,
                                      ef_construction=params.ef_construction,
                                      ef_runtime=params.ef_runtime)  # fmt: skip
        self.cache._index = SearchIndex(IndexSchema.from_dict(schema), redis_client=client)
        self.cache._index.create(overwrite=True, drop=True)

    def describe(self) -> str:
        if self.hnsw is None:
            return super().describe()
        p = self.hnsw
        return (f"RedisVL SemanticCache on HNSW M={p.m} EF_CONSTRUCTION={p.ef_construction} "
                f"EF_RUNTIME={p.ef_runtime} EPSILON=0.01 (semcache's), range query, tag filter scope")  # fmt: skip

    def bulk(self, texts: Sequence[str], vectors: np.ndarray, scope: str) -> None:
        from redisvl.extensions.cache.llm.schema import CacheEntry

        dtype = self.cache._vectorizer.dtype
        for lo in range(0, len(texts), BATCH):
            records = [
                CacheEntry(entry_id=self.cache._make_entry_id(t, {"scope": scope}), prompt=t,
                           response=answer_of(lo + i), prompt_vector=vectors[lo + i].tolist(),
                           filters={"scope": scope}).to_dict(dtype)
                for i, t in enumerate(texts[lo : lo + BATCH])
            ]  # fmt: skip
            self.cache._index.load(records, id_field="entry_id")


def make(client: Any, url: str, table: Any, n: int) -> list[Any]:
    """semcache (default, on FLAT, and with the guard alone: the lookup machinery without the
    verifier), RedisVL on FLAT and on HNSW with semcache's parameters."""
    params = IndexParams()
    flat = semcache.CacheConfig(index=IndexParams(algorithm="flat"))
    guard_only = semcache.CacheConfig(decision=semcache.GuardedDecision(guard=semcache.Guard()))
    model = semcache.embedding.embedders.DEFAULT_MODEL_ID
    return [
        SemcacheBulk("semcache (default, HNSW)", url, semcache.CacheConfig(),
                     table.embedder(f"{model}#speed-{n}-0"), f"spd-{n}-0"),
        SemcacheBulk("semcache (FLAT)", url, flat, table.embedder(f"{model}#speed-{n}-1"),
                     f"spd-{n}-1"),
        SemcacheBulk("semcache (HNSW, guard alone)", url, guard_only,
                     table.embedder(f"{model}#speed-{n}-2"), f"spd-{n}-2"),
        RedisVLBulk("RedisVL (FLAT)", client, table.one, f"spd-{n}-redisvl-flat"),
        RedisVLBulk("RedisVL (HNSW, same params)", client, table.one, f"spd-{n}-redisvl-hnsw",
                    hnsw=params),
    ]  # fmt: skip


def bulk_load(
    systems: Sequence[Any], texts: Sequence[str], vectors: np.ndarray
) -> dict[str, float]:
    """Each system loaded alone, in a seeded random order: entries/s."""
    rates = {}
    for s in shuffled(systems, random.Random(len(texts))):
        start = time.perf_counter()
        s.bulk(texts, vectors, "lat")
        rates[s.name] = len(texts) / (time.perf_counter() - start)
        print(f"    {s.name:<30} bulk load {rates[s.name]:9,.0f} entries/s", flush=True)
    return rates


def ceiling(texts: dict[str, Any], table: Any) -> float:
    """Share of paraphrases whose brute-force nearest stored text is their source, at >= 0.9."""
    stored = np.vstack([table.one(t) for t in texts["stored"]])
    good = 0
    for text, source in texts["paraphrase"]:
        sims = stored @ table.one(text)
        good += int(sims.argmax() == source and sims.max() >= LATENCY_COSINE)
    return good / len(texts["paraphrase"])


def probe(systems: Sequence[Any], texts: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Single stores, then the three kinds of lookups, interleaved across the systems."""
    rng = random.Random(5)
    times: dict[str, dict[str, list[float]]] = {s.name: {} for s in systems}
    found: dict[str, dict[str, int]] = {s.name: {} for s in systems}
    for s in systems:  # first connections, lazy loading: outside the timings
        for text in texts["warmup"]:
            s.lookup(text, "lat", s.scale.from_cosine(LATENCY_COSINE))
    for i, text in enumerate(texts["single"]):
        for s in shuffled(systems, rng):
            ms, _ = timed(s.store, text, answer_of(10**7 + i), "lat")
            times[s.name].setdefault("store", []).append(ms)
    for kind in ("repeat", "paraphrase", "unrelated"):
        for text, source in texts[kind]:
            for s in shuffled(systems, rng):
                if hasattr(s, "forget"):
                    s.forget()
                ms, got = timed(s.lookup, text, "lat", s.scale.from_cosine(LATENCY_COSINE))
                times[s.name].setdefault(kind, []).append(ms)
                own = got.answer is not None and got.answer.startswith(f"#{source} ")
                found[s.name][kind] = found[s.name].get(kind, 0) + (own if source >= 0 else got.answer is not None)  # fmt: skip
    out = {}
    for s in systems:
        row: dict[str, Any] = {k: summary(v) for k, v in times[s.name].items()}
        row["store_per_s"] = len(texts["single"]) / (sum(times[s.name]["store"]) / 1000)
        row["found"] = {k: v / len(texts[k]) for k, v in found[s.name].items()}
        out[s.name] = row
    return out


RATIO_PATHS = (("repeat", "repeated prompt"), ("paraphrase", "paraphrase"),
               ("unrelated", "miss"), ("store", "store"))  # fmt: skip


def ratios(rows: dict[str, Any], bulk: dict[str, float], ours: str, theirs: str) -> dict[str, Any]:
    """p50 semcache / RedisVL per path (< 1: semcache faster) and rate RedisVL / semcache for
    stores and bulk loads (< 1: semcache faster)."""
    out: dict[str, Any] = {}
    for key, label in RATIO_PATHS:
        out[f"{label} p50"] = rows[ours][key]["p50_ms"] / rows[theirs][key]["p50_ms"]
    out["store rate, RedisVL / semcache"] = rows[theirs]["store_per_s"] / rows[ours]["store_per_s"]
    out["bulk load rate, RedisVL / semcache"] = bulk[theirs] / bulk[ours]
    return out


def run_size(env: Any, table: Any, n: int, texts: dict[str, Any]) -> dict[str, Any]:
    env.client.flushall()
    load_before = os.getloadavg()
    systems = make(env.client, env.url, table, n)
    vectors = np.vstack([table.one(t) for t in texts["stored"]])
    print(f"  {n:,} entries:", flush=True)
    bulk = bulk_load(systems, texts["stored"], vectors)
    rows = probe(systems, texts)
    result: dict[str, Any] = {"entries": n, "systems": {s.name: s.describe() for s in systems},
                              "bulk_load_per_s": bulk, "paths": rows,
                              "recall_ceiling": ceiling(texts, table), "ratios": {}}  # fmt: skip
    result["load_average"] = {"before": load_before, "after": os.getloadavg()}
    for s in systems:
        s.close()
    for ours in ("semcache (default, HNSW)", "semcache (FLAT)", "semcache (HNSW, guard alone)"):
        for theirs in ("RedisVL (FLAT)", "RedisVL (HNSW, same params)"):
            result["ratios"][f"{ours} vs {theirs}"] = ratios(rows, bulk, ours, theirs)
    print(report(result), flush=True)
    return result


def report(result: dict[str, Any]) -> str:
    """A markdown table of one size."""

    def cell(row: dict[str, Any], key: str) -> str:
        return f"{row[key]['p50_ms']:.2f} / {row[key]['p99_ms']:.2f}"

    load = [result.get("load_average", {}).get(k, [float("nan")])[0] for k in ("before", "after")]
    lines = [f"**{result['entries']:,} entries** (p50 / p99 ms; recall: paraphrases answered with "
             f"their own source, ceiling {result['recall_ceiling']:.0%}; load average "
             f"{load[0]:.1f} → {load[1]:.1f})", "",
             "| system | bulk load /s | store /s | store | repeated prompt | paraphrase | recall "
             "| miss |", "|" + " --- |" * 8]  # fmt: skip
    for name, row in result["paths"].items():
        lines.append(f"| {name} | {result['bulk_load_per_s'][name]:,.0f} | {row['store_per_s']:,.0f} "
                     f"| {cell(row, 'store')} | {cell(row, 'repeat')} | {cell(row, 'paraphrase')} "
                     f"| {row['found']['paraphrase']:.0%} | {cell(row, 'unrelated')} |")  # fmt: skip
    lines += ["", "| semcache / RedisVL | " + " | ".join(next(iter(result["ratios"].values()))) + " |",
              "|" + " --- |" * (1 + len(next(iter(result["ratios"].values()))))]  # fmt: skip
    for pair, r in result["ratios"].items():
        lines.append(f"| {pair} | " + " | ".join(f"{v:.2f}x" for v in r.values()) + " |")
    return "\n".join(lines)
