"""The default local embedder: the runtime is chosen by what is installed."""

from __future__ import annotations

import importlib.util

from semcache.embedding.embedders import Embedder, SentenceTransformerEmbedder
from semcache.embedding.onnx import OnnxEmbedder


def default_local_embedder(threads: int = 1) -> Embedder:
    """all-MiniLM-L6-v2 on ONNX Runtime when it is installed (the default install), else on torch."""
    if importlib.util.find_spec("onnxruntime") is not None:
        return OnnxEmbedder(threads=threads)
    return SentenceTransformerEmbedder(threads=threads)
