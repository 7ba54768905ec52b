"""Redis wire details: key names, the index schema, and parsing replies in RESP2 or RESP3 form.

No I/O here; the shells in ``_cache.py`` send what this module builds.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from semcache._errors import ConfigurationError

PREFIX = "semcache"
_NAMESPACE_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


def check_namespace(namespace: str) -> str:
    if not isinstance(namespace, str) or not _NAMESPACE_RE.match(namespace):
        raise ConfigurationError(
            f"namespace {namespace!r} must be 1-64 characters of letters, digits, '_', '.' or '-'"
        )
    return namespace


@dataclass(frozen=True, slots=True)
class Keys:
    """Key names of one namespace.

    Semantic documents and their index carry a hash tag (the namespace, or ``namespace:i`` for shard
    i of a namespace split into ``shards``), so each index and its documents live on one cluster
    node and FT commands are routed by the index name like any key. Exact entries, tag sets and
    embeddings carry no hash tag, so they spread across nodes.
    """

    namespace: str
    shards: int = 1

    def exact(self, tenant: str, digest: str) -> str:
        return f"{PREFIX}:x:{self.namespace}:{tenant}:{digest}"

    def doc(self, tenant: str, digest: str) -> str:
        return f"{self.prefix_of(self.shard_of(digest))}{tenant}:{digest}"

    def tag(self, tenant: str, tag_digest: str) -> str:
        return f"{PREFIX}:t:{self.namespace}:{tenant}:{tag_digest}"

    def shard_of(self, digest: str) -> int:
        """The shard of an entry: its (hex) digest modulo the number of shards."""
        return int(digest[:8], 16) % self.shards if self.shards > 1 else 0

    def hash_tag(self, shard: int = 0) -> str:
        return self.namespace if self.shards == 1 else f"{self.namespace}:{shard}"

    def prefix_of(self, shard: int) -> str:
        return f"{PREFIX}:s:{{{self.hash_tag(shard)}}}:"

    def index_of(self, shard: int) -> str:
        return f"{PREFIX}-idx-{{{self.hash_tag(shard)}}}"

    @property
    def doc_prefix(self) -> str:
        """The document prefix of shard 0 (the only one of an unsharded namespace)."""
        return self.prefix_of(0)

    @property
    def index(self) -> str:
        """The index of shard 0 (the only one of an unsharded namespace)."""
        return self.index_of(0)

    @property
    def indexes(self) -> tuple[str, ...]:
        return tuple(self.index_of(i) for i in range(self.shards))

    def patterns(self, tenant: str | None = None) -> tuple[str, ...]:
        """SCAN patterns for every key of the namespace, or of one tenant in it."""
        t = "*" if tenant is None else f"{tenant}:*"
        docs = self.doc_prefix if self.shards == 1 else f"{PREFIX}:s:{{{self.namespace}:*}}:"
        return (
            f"{PREFIX}:x:{self.namespace}:{t}",
            f"{docs}{t}",
            f"{PREFIX}:t:{self.namespace}:{t}",
        )


def embedding_key(model_digest: str, text_digest: str) -> str:
    return f"{PREFIX}:e:{model_digest}:{text_digest}"


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


def index_schema(keys: Keys, dimension: int, params: IndexParams, shard: int = 0) -> dict[str, Any]:
    """The redisvl schema of a namespace's semantic index (of one of its shards)."""
    attrs: dict[str, Any] = {
        "algorithm": params.algorithm,
        "dims": dimension,
        "distance_metric": "cosine",
        "datatype": params.datatype,
    }
    if params.algorithm == "hnsw":
        attrs |= {"m": params.m, "ef_construction": params.ef_construction}
        attrs["ef_runtime"] = params.ef_runtime
    return {
        "index": {
            "name": keys.index_of(shard),
            "prefix": keys.prefix_of(shard),
            "storage_type": "hash",
        },
        "fields": [
            {"name": "vec", "type": "vector", "attrs": attrs},
            {"name": "scope", "type": "tag"},
            {"name": "tenant", "type": "tag"},
            {"name": "emb", "type": "tag"},
        ],
    }


#: Fields every KNN query returns; ``scope``, ``tenant`` and ``emb`` let the core verify each
#: candidate again after the search (defence in depth for tenant isolation).
KNN_FIELDS = ("dist", "entry", "text", "scope", "tenant", "emb")


def knn_command(
    keys: Keys,
    *,
    vector: bytes,
    scope: str,
    k: int,
    ef: int | None,
    fields: tuple[str, ...] = (),
    shard: int = 0,
) -> tuple[Any, ...]:
    """FT.SEARCH for the k nearest documents inside one scope (in one shard of the namespace).

    The scope digest already covers tenant, namespace, version and embedding model, so one tag
    filter is a hard filter on all of them (one tag keeps RediSearch's hybrid query fast). Tag values
    are hex digests, so no user text ever reaches the query string.
    """
    ef_clause = f" EF_RUNTIME {int(ef)}" if ef else ""
    query = f"@scope:{{{scope}}}=>[KNN {int(k)} @vec $vec{ef_clause} AS dist]"
    returned = (*KNN_FIELDS, *fields)
    return (
        "FT.SEARCH", keys.index_of(shard), query, "PARAMS", 2, "vec", vector, "SORTBY", "dist",
        "RETURN", len(returned), *returned, "LIMIT", 0, int(k), "DIALECT", 2,
    )  # fmt: skip


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _pairs(flat: Iterable[Any]) -> dict[str, Any]:
    items = list(flat)
    return {_text(items[i]): items[i + 1] for i in range(0, len(items) - 1, 2)}


def parse_search(reply: Any) -> list[tuple[str, dict[str, Any]]]:
    """FT.SEARCH reply → [(doc key, {field: raw value})], for RESP2 lists and RESP3 maps."""
    if isinstance(reply, Mapping):
        out = []
        for row in reply.get(b"results", reply.get("results", [])):
            doc = row.get(b"id", row.get("id"))
            attrs = row.get(b"extra_attributes", row.get("extra_attributes"))
            if attrs:  # None when the document expired or was deleted while the query ran
                out.append((_text(doc), {_text(k): v for k, v in attrs.items()}))
        return out
    rows = list(reply)[1:]
    return [
        (_text(rows[i]), _pairs(rows[i + 1]))
        for i in range(0, len(rows) - 1, 2)
        if rows[i + 1]  # None (RESP2) when the document went away while the query ran
    ]


#: The fields every semantic index of this version has (an index without them is foreign or old).
INDEX_FIELDS = frozenset({"vec", "scope", "tenant", "emb"})


def _attributes(info: Any) -> list[dict[str, Any]]:
    info = info if isinstance(info, Mapping) else _pairs(info)
    out = []
    for attribute in info.get(b"attributes", info.get("attributes", [])):
        fields = attribute if isinstance(attribute, Mapping) else _pairs(attribute)
        out.append({_text(k).lower(): v for k, v in fields.items()})
    return out


def parse_index_dimension(info: Any) -> int | None:
    """The vector dimension from an FT.INFO reply, or None if it cannot be read."""
    for fields in _attributes(info):
        if "dim" in fields:
            return int(_text(fields["dim"]))
    return None


def parse_index_fields(info: Any) -> set[str]:
    """The names of an index's fields, from an FT.INFO reply."""
    return {_text(f.get("attribute", f.get("identifier", b""))) for f in _attributes(info)}


def has_search_module(modules: Any) -> bool:
    """True when a MODULE LIST reply names the search module."""
    for module in modules or []:
        fields = {
            _text(k): v
            for k, v in (module if isinstance(module, Mapping) else _pairs(module)).items()
        }
        name = fields.get("name", b"")
        if _text(name).lower() in ("search", "ft", "searchlight"):
            return True
    return False
