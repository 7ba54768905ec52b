"""An on-disk embedding cache for the offline tools (``semcache tune``): vectors keyed by
(embedder model id, sha256 of the text) in a SQLite file in semcache's data directory, so a second
run embeds only the texts it has not seen. Tuning needs no Redis, so this cache needs none either.
"""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from semcache.cli._progress import bar

_SCHEMA = "CREATE TABLE IF NOT EXISTS vectors (model TEXT, digest TEXT, vector BLOB, " \
    "PRIMARY KEY (model, digest))"  # fmt: skip


def default_path() -> Path:
    """``<data dir>/embeddings.sqlite3`` (the data dir of :func:`semcache.server.data_dir`)."""
    from semcache.server import data_dir

    return data_dir() / "embeddings.sqlite3"


class DiskCachedEmbedder:
    """An embedder whose vectors are kept on disk by (model id, text): what was embedded once is
    read back, the rest is embedded in batches (with a progress bar on a terminal) and stored.

    Args:
        inner: the embedder that computes missing vectors.
        path: the SQLite file (default :func:`default_path`).
        batch: texts per call to ``inner``.
    """

    def __init__(self, inner: Any, path: Path | None = None, *, batch: int = 64) -> None:
        self.inner = inner
        self.path = path or default_path()
        self.batch = batch
        self.embedded = 0
        """Texts this object had ``inner`` embed (the rest came from disk)."""

    @property
    def model_id(self) -> str:
        return str(self.inner.model_id)

    @property
    def dimension(self) -> int:
        return int(self.inner.dimension)

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """One row per text, from disk where known (straight from ``inner`` if the file cannot
        be used)."""
        try:
            return self._cached(texts)
        except (sqlite3.Error, OSError):
            return np.asarray(self.inner.embed(list(texts)), dtype=np.float32)

    def _cached(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        digests = [hashlib.sha256(t.encode("utf-8")).hexdigest() for t in texts]
        with contextlib.closing(self._db()) as db:
            known = self._read(db, set(digests))
            missing = list(dict.fromkeys(d for d in digests if d not in known))
            if missing:
                by_digest = dict(zip(digests, texts, strict=True))
                known |= self._embed(db, [(d, by_digest[d]) for d in missing])
        return np.vstack([known[d] for d in digests]).astype(np.float32)

    def _embed(self, db: sqlite3.Connection, todo: list[tuple[str, str]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        chunks = [todo[i : i + self.batch] for i in range(0, len(todo), self.batch)]
        for chunk in bar(chunks, f"embedding {len(todo):,} new texts", len(chunks), "batch"):
            rows = np.asarray(self.inner.embed([t for _, t in chunk]), dtype=np.float32)
            self.embedded += len(chunk)
            out.update((d, row) for (d, _), row in zip(chunk, rows, strict=True))
            db.executemany(
                "INSERT OR REPLACE INTO vectors VALUES (?, ?, ?)",
                [
                    (self.model_id, d, row.tobytes())
                    for (d, _), row in zip(chunk, rows, strict=True)
                ],
            )
            db.commit()  # an interrupted run keeps what it embedded
        return out

    def _read(self, db: sqlite3.Connection, digests: set[str]) -> dict[str, Any]:
        found: dict[str, Any] = {}
        wanted = list(digests)
        for i in range(0, len(wanted), 500):  # SQLite's bound-parameter limit
            part = wanted[i : i + 500]
            marks = ",".join("?" * len(part))
            query = f"SELECT digest, vector FROM vectors WHERE model = ? AND digest IN ({marks})"
            for digest, blob in db.execute(query, [self.model_id, *part]):
                row = np.frombuffer(blob, dtype=np.float32)
                if row.size:  # a damaged row is embedded again
                    found[digest] = row
        return found

    def _db(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        db = sqlite3.connect(self.path)
        db.execute(_SCHEMA)
        return db
