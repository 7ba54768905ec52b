"""What a verifier with fine-tuned layers (``scripts/train_verifier_encoder.py``) costs a semantic
lookup, against the shipped verifier and one bare embedding, interleaved in one run.

For each held-out QQP pair (``benchmarks/_qqp.py`` test components, texts never run before in the
process): the default embedder embeds the candidate (as its store did) and the query (as the
lookup does); then each verifier scores the pair. The shipped verifier shares the embedder's
session, so it runs no model; a verifier with its own encoder runs it on the query (the
candidate's state it ran at store time, as an entry stores it).

Usage: python benchmarks/bench_verifier_encoder.py ARTIFACT_DIR [--pairs 600]
(writes benchmarks/results/verifier_encoder.json with the load average)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import _qqp
from benchmarks.bench_latency import summary, timed

RESULTS = Path(__file__).parent / "results" / "verifier_encoder.json"


def main() -> None:
    import semcache

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("artifact", type=Path)
    parser.add_argument("--pairs", type=int, default=600)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    split = _qqp.split(_qqp.read_qqp(_qqp.DEFAULT_DATA / "qqp-train.tsv"))
    pairs = [(a, b) for a, b, _ in split.test[: args.pairs]]
    embedder = semcache.OnnxEmbedder()
    shipped, tuned = semcache.Verifier().load(), semcache.Verifier(args.artifact).load()
    embedder.embed(["warm up"])
    shipped.score("warm up", ["warm up twice"])
    tuned.score("warm up", ["warm up twice"])
    times: dict[str, list[float]] = {"embedding": [], "shipped": [], "tuned": []}
    for i, (query, candidate) in enumerate(pairs):
        embedder.embed([candidate])  # the store's embedding
        tuned._load().model.states([candidate])  # its store ran the encoder on the entry
        times["embedding"].append(timed(lambda q=query: embedder.embed([q])))
        order = (("shipped", shipped), ("tuned", tuned))
        for name, verifier in order if i % 2 else order[::-1]:
            times[name].append(timed(lambda v=verifier, q=query, c=candidate: v.score(q, [c])))
    embed = summary(times["embedding"])
    out = {name: summary(t) for name, t in times.items()}
    for name in ("shipped", "tuned"):
        out[name]["p50_ratio_to_embedding"] = round(out[name]["p50_ms"] / embed["p50_ms"], 3)
    out["tuned_model_id"] = tuned.model_id
    out["load_average"] = os.getloadavg()
    print(json.dumps(out, indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
