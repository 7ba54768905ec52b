"""The embedding cache: vectors of texts, in process memory (an LRU) and in Redis. No I/O.

Texts are embedded once per model: a vector is looked for in memory, then in Redis (the read rides
with the exact GET of a lookup), and only then asked of the embedder; what was embedded is written
back with the lookup's next round trip. Upstream embedding models (``embeddings.create`` through
the OpenAI wrapper) are cached by ``(model, text)`` in the same keyspace. Every vector of a tenant is
its own (:func:`vector_id`): a shared one would tell a tenant, by a lookup's ``embedded`` and its
time, what another asked.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from semcache._errors import InvalidRequestError
from semcache.core.canonical import sha256
from semcache.core.lru import LRU
from semcache.core.moving import Mean
from semcache.core.ops import Commands, Embed, Flow
from semcache.core.plan import ms
from semcache.core.vectors import check_vector
from semcache.embedding.embedders import Embedder, Vectors
from semcache.redis import commands
from semcache.redis.keys import embedding_key, model_tag, tenant_tag, upstream_tag

Command = tuple[Any, ...]


def vector_id(text: str, tenant: str | None) -> str:
    """What a text's vector is cached under: the text, and for a tenant its tag too (tenant-less
    ids, and so keys, are the text as before)."""
    return text if tenant is None else f"{tenant_tag(tenant)}\u0000{text}"


class Memory(LRU[str, Vectors]):
    """A thread-safe LRU of text → vector, bounded to ``size`` vectors."""


class EmbeddingCache:
    """Vectors of the semantic layer's embedder (and of upstream models), cached for ``ttl``
    seconds in Redis and the last ``memory`` of them in process."""

    def __init__(
        self, embedder: Embedder | None, *, ttl: float | None, datatype: str, memory: int = 4096
    ) -> None:
        self.embedder = embedder
        self.model_id = embedder.model_id if embedder is not None else "none"
        self.tag = model_tag(self.model_id)
        self.memory = Memory(memory)
        self._ttl_ms = ms(ttl)
        self._dtype = np.float16 if datatype == "float16" else np.float32
        #: What embedding one text alone takes (ms), as the flows see it: the embedder and the
        #: driver around it (a thread hop for an async cache), its first few calls left out. A
        #: batch is not counted: a remote model's big batch is cheap per text, its one text is not.
        self.cost = Mean(skip=4)

    @property
    def float32(self) -> bool:
        """Whether the index holds float32 vectors, the bytes this cache keeps in Redis."""
        return self._dtype is np.float32

    @property
    def dimension(self) -> int:
        assert self.embedder is not None
        return self.embedder.dimension

    def key(self, text: str, tenant: str | None = None) -> str:
        """The Redis key of a text's vector (the tenant's own)."""
        return embedding_key(self.tag, sha256(vector_id(text, tenant)))

    def recall(self, text: str, tenant: str | None = None) -> Vectors | None:
        """The text's vector (the tenant's own) if this process has it."""
        return self.memory.get(vector_id(text, tenant))

    def forget(self) -> None:
        """Drop the in-process copies (Redis keeps its own)."""
        self.memory.clear()

    def as_index_bytes(self, vector: Vectors) -> bytes:
        """A vector in the index's datatype."""
        return vector.astype(self._dtype).tobytes()

    def check(self, vector: Any) -> Vectors:
        """A caller's embedding of a semantic text, checked before any I/O (see
        :func:`~semcache.core.vectors.check_vector`); InvalidRequestError otherwise."""
        if self.embedder is None:
            raise InvalidRequestError("a vector was given, but this cache has no semantic layer")
        return check_vector(vector, self.embedder.dimension)

    def decode(self, raw: Any) -> Vectors | None:
        """A vector read from Redis, or None when it is missing or not one of this embedder's."""
        assert self.embedder is not None
        if not isinstance(raw, bytes) or len(raw) != 4 * self.embedder.dimension:
            return None
        vector = np.frombuffer(raw, dtype=np.float32)
        return vector if np.isfinite(vector).all() else None

    def vector(
        self, text: str, known: Any, tenant: str | None = None
    ) -> Flow[tuple[Vectors, list[Command]]]:
        """The text's vector (the tenant's own) from ``known`` (a vector, or the raw reply of its
        key), else from the embedder; with the writes that cache a freshly embedded one."""
        if isinstance(known, np.ndarray):
            return known, []
        vector = self.decode(known)
        if vector is None:
            vector = yield from self.fresh(text, tenant)
            return vector, [commands.put(self.key(text, tenant), vector.tobytes(), self._ttl_ms)]
        self.memory.put(vector_id(text, tenant), vector)
        return vector, []

    def fresh(self, text: str, tenant: str | None = None) -> Flow[Vectors]:
        """The text's vector from the embedder (timed: :attr:`cost`), kept in memory."""
        vector: Vectors = (yield from self._embedded((text,)))[0]
        self.memory.put(vector_id(text, tenant), vector)
        return vector

    def _embedded(self, texts: tuple[str, ...]) -> Flow[Vectors]:
        start = time.perf_counter()
        rows = yield Embed(texts)
        if len(texts) == 1:
            self.cost.saw((time.perf_counter() - start) * 1000)
        return np.asarray(rows, dtype=np.float32)

    def embed(self, texts: Sequence[str], tenant: str | None = None) -> Flow[Vectors]:
        """Vectors for many texts (the tenant's own), embedding only the ones neither memory nor
        Redis has."""
        rows, writes = yield from self.embed_many(texts, tenant)
        if writes:
            yield Commands(tuple(writes))
        return rows

    def embed_many(
        self, texts: Sequence[str], tenant: str | None = None
    ) -> Flow[tuple[Vectors, list[Command]]]:
        """:meth:`embed` without its writes: the vectors, and the writes that cache the freshly
        embedded ones, for the caller to send with its own (so one failure fails them together)."""
        assert self.embedder is not None
        rows: list[Vectors | None] = [self.recall(t, tenant) for t in texts]
        todo = [i for i, row in enumerate(rows) if row is None]
        if todo:
            reads = tuple(commands.get(self.key(texts[i], tenant)) for i in todo)
            replies = yield Commands(reads)
            for i, raw in zip(todo, replies, strict=True):
                rows[i] = self.decode(raw)
        missing = [i for i, row in enumerate(rows) if row is None]
        writes: list[Command] = []
        if missing:
            fresh = yield from self._embedded(tuple(texts[i] for i in missing))
            for i, vector in zip(missing, fresh, strict=True):
                rows[i] = vector
                key = self.key(texts[i], tenant)
                writes.append(commands.put(key, vector.tobytes(), self._ttl_ms))
        done = [row for row in rows if row is not None]
        for text, row in zip(texts, done, strict=True):
            self.memory.put(vector_id(text, tenant), row)
        return np.vstack(done).astype(np.float32), writes

    def upstream(
        self, model: str, texts: Sequence[str], tenant: str | None = None
    ) -> Flow[list[bytes | None]]:
        """Raw float32 vectors an upstream embedding model made for these texts (for this tenant),
        where cached."""
        tag = upstream_tag(model)
        keys = tuple(commands.get(embedding_key(tag, sha256(vector_id(t, tenant)))) for t in texts)
        replies = yield Commands(keys)
        return [r if isinstance(r, bytes) and r and len(r) % 4 == 0 else None for r in replies]

    def store_upstream(
        self, model: str, texts: Sequence[str], vectors: Sequence[bytes], tenant: str | None = None
    ) -> Flow[None]:
        """Cache float32 vectors an upstream embedding model made, keyed by (model, tenant, text)."""
        tag = upstream_tag(model)
        yield Commands(
            tuple(
                commands.put(embedding_key(tag, sha256(vector_id(t, tenant))), v, self._ttl_ms)
                for t, v in zip(texts, vectors, strict=True)
            )
        )
