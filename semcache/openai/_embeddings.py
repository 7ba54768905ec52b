"""``embeddings.create`` through the embedding cache, one (model, text) entry per input. No I/O.

Vectors are cached as the float32 bytes the model returned. A batch with some cached inputs sends
only the rest upstream; the answer is rebuilt in the encoding the caller asked for (``float`` or
``base64``, which is little-endian float32, as the API sends it).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from semcache.core.canonical import dumps, sha256

_NOT_KEYED = frozenset({"input", "encoding_format", "user", "model"})


def inputs(body: dict[str, Any]) -> list[str] | None:
    """The texts of an embeddings request, or None when it cannot be cached per text (token ids)."""
    value = body.get("input")
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return list(value)
    return None


def model_key(body: dict[str, Any]) -> str:
    """The embedding cache's model id: the model, plus every parameter that changes the vectors."""
    model = str(body.get("model", ""))
    rest = {k: v for k, v in body.items() if k not in _NOT_KEYED and v is not None}
    if set(rest) == {"dimensions"}:
        return f"{model}@{rest['dimensions']}"
    return f"{model}@{sha256(dumps(rest))[:16]}" if rest else model


def vectors(content: bytes, count: int) -> list[bytes] | None:
    """Float32 bytes of each vector of an upstream answer, in input order; None if it is not one."""
    try:
        data = json.loads(content)["data"]
        rows = sorted(data, key=lambda row: int(row.get("index", 0)))
        out = [_raw(row["embedding"]) for row in rows]
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    return out if len(out) == count and all(out) else None


def _raw(embedding: Any) -> bytes:
    if isinstance(embedding, str):
        return base64.b64decode(embedding)
    return np.asarray(embedding, dtype="<f4").tobytes()


def encode(raw: bytes, encoding_format: str) -> list[float] | str:
    if encoding_format == "base64":
        return base64.b64encode(raw).decode("ascii")
    return [float(x) for x in np.frombuffer(raw, dtype="<f4")]


def response(
    body: dict[str, Any], rows: Sequence[bytes], usage: dict[str, Any] | None, model: str | None
) -> dict[str, Any]:
    """The embeddings answer for ``rows``, encoded as the request asked."""
    fmt = str(body.get("encoding_format") or "float")
    data = [
        {"object": "embedding", "index": i, "embedding": encode(raw, fmt)}
        for i, raw in enumerate(rows)
    ]
    return {
        "object": "list",
        "data": data,
        "model": model or body.get("model"),
        "usage": usage or {"prompt_tokens": 0, "total_tokens": 0},
    }


def upstream_meta(content: bytes) -> tuple[dict[str, Any] | None, str | None]:
    """The usage and model of an upstream answer."""
    try:
        answer = json.loads(content)
        return answer.get("usage"), answer.get("model")
    except (ValueError, AttributeError):
        return None, None
