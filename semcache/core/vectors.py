"""Vectors a caller already holds (``store(..., vector=)``, ``store_many(..., vectors=)``): checked
and normalised before any I/O. No I/O.

A bad vector is the caller's mistake, so it raises :class:`InvalidRequestError` (never counted
against the circuit breaker) instead of reaching Redis as a document no search can find.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from semcache._errors import InvalidRequestError
from semcache.embedding.embedders import Vectors


def check_vector(vector: Any, dimension: int) -> Vectors:
    """``vector`` as a unit-length float32 row of ``dimension`` values (the embedder's), or
    InvalidRequestError: another shape, a value that is not a finite real number, a zero vector.

    Example::

        check_vector([0.6, 0.8], 2)   # array([0.6, 0.8], dtype=float32)
    """
    if (
        isinstance(vector, np.ndarray)
        and vector.dtype == np.float32
        and vector.shape == (dimension,)
    ):
        # the usual case (an embedder's own row): float32 values cannot exceed float32's range,
        # and a NaN or an infinity makes the norm below non-finite, which is checked there
        wide = vector.astype(np.float64)
    else:
        try:
            raw = np.asarray(vector)
        except (TypeError, ValueError) as exc:
            raise InvalidRequestError(f"a vector must be a sequence of numbers: {exc}") from None
        if raw.dtype.kind not in "iuf":
            raise InvalidRequestError(f"a vector must hold real numbers, not {raw.dtype} values")
        if raw.shape != (dimension,):
            raise InvalidRequestError(
                f"a vector must have {dimension} values (the embedder's dimension), got shape "
                f"{raw.shape}"
            )
        # float64 first: a value beyond float32's range must fail here, not become inf silently.
        wide = raw.astype(np.float64)
        if not np.isfinite(wide).all() or np.abs(wide).max() > np.finfo(np.float32).max:
            raise InvalidRequestError(_BAD)
    norm = math.sqrt(float(np.dot(wide, wide)))  # what np.linalg.norm computes for a row
    if not math.isfinite(norm) or norm == 0.0:
        raise InvalidRequestError(_BAD)
    return (wide / norm).astype(np.float32)


_BAD = "a vector must hold finite float32 values and not be all zeros"


def check_vectors(
    vectors: Sequence[Any] | None, count: int, dimension: int
) -> list[Vectors | None]:
    """One checked vector (or None: embed that one) per pair of a ``store_many``; raises
    InvalidRequestError when the lengths differ or any vector is bad (naming which)."""
    if vectors is None:
        return [None] * count
    if isinstance(vectors, str | bytes) or len(vectors) != count:
        raise InvalidRequestError(f"vectors must give one vector (or None) per pair ({count})")
    out: list[Vectors | None] = []
    for i, vector in enumerate(vectors):
        try:
            out.append(None if vector is None else check_vector(vector, dimension))
        except InvalidRequestError as exc:
            raise InvalidRequestError(f"vectors[{i}]: {exc}") from None
    return out
