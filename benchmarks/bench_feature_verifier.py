"""What-if, out of sample: the guard plus a logistic regression over bi-encoder pair features as
the verifier (cosine, |u-v|, u*v and the guard's sub-check verdicts), which the decision stage
cannot run today (it is not handed the query's and the candidate's vectors).

Fitted on QQP ``fit`` (a balanced seeded sample of 4,000 pairs) and the PAWS ``fit`` components;
the band's low edge and the acceptance probability chosen on QQP ``dev`` (shared index) and PAWS
``dev`` (``scripts/_verifier_build.choose_band``, the shipped rule); measured once on QQP ``test``
(shared index, 4,000 pairs), PAWS ``test`` components (in-domain) and the project's pairs, at the
default cut-off 0.90, against the guard alone in the same run. Vectors: all-MiniLM-L6-v2 (the
on-disk embedding cache of bench_accuracy.py). Decisions are simulated with the vectorised sweep
that ``scripts/train_verifier.py`` checks against the real GuardedDecision.

Usage: python benchmarks/bench_feature_verifier.py (writes benchmarks/results/feature_verifier.json)
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import semcache
from benchmarks import _paws, _qqp
from benchmarks import _shared_index as shared
from benchmarks.bench_accuracy import embed_all, load_sets
from scripts import _verifier_build as vb
from semcache import Guard

RESULTS = Path(__file__).parent / "results" / "feature_verifier.json"
CUTOFF = 0.9


def candidate_probs(p: shared.Protocol, model: Any, vectors: dict[str, np.ndarray]) -> np.ndarray:
    """(lookups, k) the regression's probability for every top-k candidate."""
    pairs = [(q, p.entries[j], False) for q, row in zip(p.queries, p.top, strict=True) for j in row]
    probs = model.predict_proba(vb.pair_features(pairs, vectors))[:, 1]
    return np.asarray(probs).reshape(p.top.shape)


def per_pair(pairs: list[_qqp.Pair], model: Any, vectors: dict[str, np.ndarray]) -> vb.PerPair:
    sims = np.array([float(vectors[a] @ vectors[b]) for a, b, _ in pairs])
    return vb.PerPair(sims, np.array([y for *_, y in pairs]),
                      np.array([Guard().check(a, b) is None for a, b, _ in pairs]),
                      model.predict_proba(vb.pair_features(pairs, vectors))[:, 1])  # fmt: skip


def pair_figures(pp: vb.PerPair, low: float, high: float, accept: float) -> dict[str, Any]:
    hit = (pp.sims >= low) & pp.guard_ok & ((pp.sims >= high) | (pp.probs >= accept))
    tp = int((hit & pp.labels).sum())
    return {"precision": round(tp / max(1, int(hit.sum())), 4),
            "recall": round(tp / max(1, int(pp.labels.sum())), 4), "hits": int(hit.sum())}  # fmt: skip


def main() -> None:
    from sklearn.linear_model import LogisticRegression

    load = os.getloadavg()
    embedder = semcache.SentenceTransformerEmbedder()
    rows = _qqp.read_qqp(_qqp.DEFAULT_DATA / "qqp-train.tsv")
    split, paws = _qqp.split(rows), _paws.split()
    test = shared.sample(split.test, vb.EVAL_PAIRS, _qqp.SEED)
    dev = shared.sample(split.dev, vb.EVAL_PAIRS, _qqp.SEED)
    fit = _qqp.balanced(split.fit, 4000, _qqp.SEED)
    vectors: dict[str, np.ndarray] = {}
    sets = {name: (q, c, y) for name, q, c, y in load_sets(_qqp.DEFAULT_DATA)}
    for q, c, _ in sets.values():  # the same calls as bench_accuracy.py: its cache answers
        vectors.update(embed_all(q + c, embedder))
    for pairs in (test, dev, fit):
        vectors.update(embed_all([t for a, b, _ in pairs for t in (a, b)], embedder))
    train = fit + paws.fit
    model = LogisticRegression(C=1.0, max_iter=2000)
    model.fit(vb.pair_features(train, vectors), np.array([y for *_, y in train]))
    dups = _qqp.duplicates(rows)
    proto_dev = shared.build("QQP dev", dev, vectors, dups)
    band = vb.choose_band(proto_dev, shared.guard_passes(proto_dev, Guard()),
                          candidate_probs(proto_dev, model, vectors), per_pair(paws.dev, model, vectors))  # fmt: skip
    low, high, accept = band["low"], band["high"], band["accept"]
    proto = shared.build("QQP held-out", test, vectors, dups)
    guard_ok = shared.guard_passes(proto, Guard())
    probs = candidate_probs(proto, model, vectors)
    no = np.zeros(probs.shape)
    own_q, own_c, own_y = sets["semcache pairs"]
    own = [(a, b, y) for a, b, y in zip(own_q, own_c, own_y, strict=True)]
    out = {
        "band_on_dev": band,
        "fitted_on": f"{len(fit)} QQP fit pairs (balanced) + {len(paws.fit)} PAWS fit pairs",
        "qqp_test_shared_index": {
            "guard + feature verifier": shared.metrics(proto, shared.simulate(proto, guard_ok, probs, low, high, accept)),
            "guard": shared.metrics(proto, shared.simulate(proto, guard_ok, no, CUTOFF, 0.0, 0.0)),
        },
        "paws_test_in_domain": {
            "guard + feature verifier": pair_figures(per_pair(paws.test, model, vectors), low, high, accept),
            "guard": pair_figures(per_pair(paws.test, model, vectors), CUTOFF, 0.0, 0.0),
        },
        "semcache_pairs": {
            "guard + feature verifier": pair_figures(per_pair(own, model, vectors), low, high, accept),
            "guard": pair_figures(per_pair(own, model, vectors), CUTOFF, 0.0, 0.0),
        },
        "load_average": {"before": load, "after": os.getloadavg()},
    }  # fmt: skip
    print(json.dumps({k: v for k, v in out.items() if k != "band_on_dev"}, indent=1))
    print(f"band on dev: [{low}, {high}) accept {accept}: {band['rule']}")
    RESULTS.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
