"""Verifier artifacts side by side on the same held-out pairs: AUC, and precision / recall at each
artifact's own acceptance probability.

- QQP: the 4,000 held-out pairs of ``benchmarks/_qqp.py``'s ``test`` components (the sample
  ``scripts/train_verifier.py`` reports on).
- PAWS ``test`` components (``benchmarks/_paws.py``): in-domain for a model trained on PAWS fit
  components, cross-domain for one trained without PAWS.

Scores are computed in batches of 64 (int8 scores move by up to ~0.05 with batch composition; the
ranking figures here are what this compares). No Redis, no embedder.

Usage: python benchmarks/bench_verifier_models.py NAME=DIR [NAME=DIR ...]
(writes benchmarks/results/verifier_models.json)
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import _paws, _qqp
from benchmarks import _shared_index as shared
from scripts._verifier_build import EVAL_PAIRS, batch_scores, pairwise
from semcache.decision.verifier import Verifier, metadata

RESULTS = Path(__file__).parent / "results" / "verifier_models.json"


def main() -> None:
    models = dict(arg.split("=", 1) for arg in sys.argv[1:])
    split = _qqp.split(_qqp.read_qqp(_qqp.DEFAULT_DATA / "qqp-train.tsv"))
    sets = {"qqp_test": shared.sample(split.test, EVAL_PAIRS, _qqp.SEED),
            "paws_test": _paws.split().test}  # fmt: skip
    out: dict[str, object] = {"load_average_before": os.getloadavg()}
    for name, folder in models.items():
        verifier = Verifier(folder, threads=2).load()
        meta = metadata(Path(folder))
        row: dict[str, object] = {"model_id": meta.get("model_id"), "data": meta.get("data")}
        began = time.time()
        for set_name, pairs in sets.items():
            labels = np.array([y for *_, y in pairs])
            row[set_name] = pairwise(batch_scores(verifier, pairs), labels, verifier.threshold)
            print(f"{name:10} {set_name:10} {row[set_name]}")
        row["seconds"] = round(time.time() - began, 1)
        out[name] = row
    out["load_average_after"] = os.getloadavg()
    RESULTS.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
