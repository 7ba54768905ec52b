"""Data models shared by every path: stored entries, lookup results and the checks of configuration
values. No I/O."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from semcache._errors import ConfigurationError, InvalidRequestError
from semcache.core.canonical import MAX_DEPTH, check_depth

try:
    from orjson import loads as _fast_loads
except ImportError:  # pragma: no cover - a dependency; json reads the same entries
    _fast_loads = json.loads  # type: ignore[assignment]

Layer = Literal["l1", "exact", "semantic"]
StochasticPolicy = Literal["cache", "bypass"]
SearchPolicy = Literal["range", "knn"]

ENTRY_FORMAT = 1
_NAMESPACE_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


def check_namespace(namespace: str) -> str:
    if not isinstance(namespace, str) or not _NAMESPACE_RE.match(namespace):
        raise ConfigurationError(
            f"namespace {namespace!r} must be 1-64 characters of letters, digits, '_', '.' or '-'"
        )
    return namespace


@dataclass(frozen=True, slots=True)
class IndexParams:
    """HNSW parameters of the semantic index (measured in benchmarks/bench_hnsw_params.py)."""

    algorithm: str = "hnsw"
    m: int = 32
    ef_construction: int = 400
    ef_runtime: int = 64
    datatype: str = "float32"

    def __post_init__(self) -> None:
        if self.algorithm not in ("hnsw", "flat"):
            raise ConfigurationError("index algorithm must be 'hnsw' or 'flat'")
        if self.datatype not in ("float32", "float16"):
            raise ConfigurationError("index datatype must be 'float32' or 'float16'")
        if min(self.m, self.ef_construction, self.ef_runtime) < 1:
            raise ConfigurationError("HNSW parameters must be positive")


def check_threshold(threshold: float) -> float:
    if not isinstance(threshold, int | float) or not -1 <= threshold <= 1:
        raise ConfigurationError(f"threshold is a cosine similarity in [-1, 1], got {threshold!r}")
    return float(threshold)


def check_ttl(ttl: float | None) -> None:
    if ttl is not None and (not isinstance(ttl, int | float) or not math.isfinite(ttl) or ttl <= 0):
        raise ConfigurationError(f"ttl must be a positive number of seconds or None, got {ttl!r}")


def check_response(response: Any) -> Mapping[str, Any]:
    """A response as given, once it is known to store as JSON text; InvalidRequestError (before any
    I/O) for anything else: an SDK object, values JSON cannot hold, text that is not Unicode."""
    if not isinstance(response, Mapping):
        raise InvalidRequestError(
            f"a response must be a mapping (a JSON object), not {type(response).__name__}; "
            "pass an SDK object as reply.model_dump()"
        )
    try:
        text = json.dumps(response, ensure_ascii=False)
        text.encode("utf-8")
    except (TypeError, ValueError, RecursionError) as exc:
        check_depth(response, "the response")  # too deep is the first thing said of it
        raise InvalidRequestError(f"the response cannot be stored as JSON: {exc}") from None
    if text.count("{") + text.count("[") > MAX_DEPTH:  # fewer brackets: it cannot be too deep
        check_depth(response, "the response")
    return response


@dataclass(frozen=True, slots=True)
class Entry:
    """A stored answer and what is known about it."""

    response: dict[str, Any]
    kind: str
    model: str
    text: str = ""
    created_at: float = 0.0
    latency_ms: float | None = None
    cost_usd: float | None = None
    ttl_ms: int | None = None
    tags: tuple[str, ...] = ()
    streamed: bool = False

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": ENTRY_FORMAT,
                "response": self.response,
                "kind": self.kind,
                "model": self.model,
                "text": self.text,
                "created_at": self.created_at,
                "latency_ms": self.latency_ms,
                "cost_usd": self.cost_usd,
                "ttl_ms": self.ttl_ms,
                "tags": list(self.tags),
                "streamed": self.streamed,
            },
            separators=(",", ":"),
            ensure_ascii=False,
        )

    @classmethod
    def from_json(cls, raw: bytes | str) -> Entry | None:
        """Decode a stored entry; None when it is corrupt, truncated or not ours."""
        try:
            data = _loads(raw)
            if not isinstance(data, dict) or data.get("format") != ENTRY_FORMAT:
                return None
            response = data["response"]
            if not isinstance(response, dict) or _too_deep(raw, response):
                return None
            return cls(
                response=response,
                kind=str(data["kind"]),
                model=str(data["model"]),
                text=str(data.get("text", "")),
                created_at=float(data.get("created_at") or 0.0),
                latency_ms=_opt_float(data.get("latency_ms")),
                cost_usd=_opt_float(data.get("cost_usd")),
                ttl_ms=int(data["ttl_ms"]) if data.get("ttl_ms") is not None else None,
                tags=tuple(str(t) for t in data.get("tags") or ()),
                streamed=bool(data.get("streamed", False)),
            )
        except (ValueError, KeyError, TypeError, OverflowError, RecursionError):
            return None  # OverflowError: a ttl_ms of 1e999; RecursionError: a value nested too deep


def _loads(raw: bytes | str) -> Any:
    """JSON text read by orjson (10 µs → 3 µs for a 1 KB entry); what it refuses and json reads
    (NaN, which json wrote; integers past 64 bits) is read by json, so no entry reads differently."""
    try:
        return _fast_loads(raw)
    except ValueError:
        return json.loads(raw)


def _too_deep(raw: bytes | str, response: dict[str, Any]) -> bool:
    """A response nested deeper than ``store`` accepts: not an entry of ours (and a caller walking
    it could run out of stack). Text with at most MAX_DEPTH brackets cannot be, so the walk is
    only made for the few larger ones (it costs about 7 µs for a 1 KB response)."""
    if isinstance(raw, bytes):
        brackets = raw.count(b"{") + raw.count(b"[")
    else:
        brackets = raw.count("{") + raw.count("[")
    if brackets <= MAX_DEPTH:
        return False
    try:
        check_depth(response, "the response")
    except InvalidRequestError:
        return True
    return False


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclass(frozen=True, slots=True)
class LookupResult:
    """The outcome of one lookup. A miss is a result with ``layer=None``, never an exception.

    Attributes:
        layer: ``"l1"``, ``"exact"``, ``"semantic"``, or None for a miss.
        similarity: cosine similarity of the semantic match (1.0 for exact hits, None on a miss).
        response: the stored response body on a hit.
        entry: the stored entry on a hit.
        key: the exact key's digest of the request (pass to ``invalidate(keys=...)``).
        matched_key: the digest of the entry that answered (differs from ``key`` on semantic hits).
        reason: why a miss missed, or why the cache stepped aside (``"bypass"``, ``"stochastic"``,
            ``"below-threshold"``, ``"no-candidates"`` (the search fetched none: nothing in scope
            at or above the decision's floor, or with ``search="knn"`` nothing in scope at all),
            ``"no-semantic-text"``, ``"no-index"`` (a namespace nothing was stored in),
            ``"unavailable"``, ...).
        best_similarity: the closest candidate's similarity, even when below the threshold (None
            when the search fetched none: a range search fetches only what could be accepted).
        lookup_ms: time spent in the lookup.
    """

    layer: Layer | None
    key: str = ""
    similarity: float | None = None
    response: dict[str, Any] | None = None
    entry: Entry | None = None
    matched_key: str | None = None
    reason: str | None = None
    best_similarity: float | None = None
    lookup_ms: float = 0.0
    namespace: str = ""
    tenant: str | None = None
    tried: tuple[Layer, ...] = ()
    """The layers this lookup consulted, in order."""
    embed_ms: float = 0.0
    """Time spent embedding the semantic text (0 when it came from the embedding cache)."""
    embedded: bool = False
    """True when the embedder was called (the embedding cache missed)."""
    refresh: bool = False
    """XFetch says this hit is near expiry: recompute it now and store the fresh answer."""
    judge_calls: int = 0
    """Calls the decision stage made to a second opinion (a judge) for this lookup."""
    judge_usd: float = 0.0
    """What those judge calls cost (``SecondOpinion.cost_usd`` each), counted as overhead."""
    checks: tuple[tuple[str, str], ...] = ()
    """Why the semantic layer accepted or rejected its candidates: ``(check, outcome)`` pairs."""
    nearest_key: str | None = None
    """The digest of the closest semantic candidate when the semantic layer missed anyway:
    ``cache.feedback(result, correct)`` on such a miss says whether its answer would have been right."""

    @property
    def hit(self) -> bool:
        return self.layer is not None


def with_lookup_ms(result: LookupResult, ms: float) -> LookupResult:
    """``result`` with its lookup time set. A result is finished once, by the lookup that built it,
    before anything else holds it, so it is set in place: ``dataclasses.replace`` costs ~10 µs on
    every lookup's hot path, this ~0.2 µs."""
    object.__setattr__(result, "lookup_ms", ms)
    return result
