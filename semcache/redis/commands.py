"""Every Redis command and Lua script semcache sends, spelled here and nowhere else. No I/O.

Each function is a domain verb that returns the command (a tuple) for a flow to yield inside
:class:`semcache.core.ops.Commands`; how replies read back is in :mod:`semcache.redis.replies`.
Every command names its key first, so a cluster pipeline routes each to the node that owns it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from semcache.redis.keys import Keys

if TYPE_CHECKING:  # types only: the index parameters are configuration, not wire
    from semcache.core.types import IndexParams

Command = tuple[Any, ...]

# Delete the lock only if it still holds our token (a slow leader must not free another's lock).
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

#: Fields added to a hash only while it exists: a deleted or expired document is not made again.
ADD_TO_EXISTING = """
if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('HSET', KEYS[1], unpack(ARGV)) end
return 0
"""

#: Append an observation to ``fb``, keeping the last ARGV[2] characters; nil if the entry is gone.
APPEND = """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local fb = (redis.call('HGET', KEYS[1], 'fb') or '') .. ARGV[1]
local keep = tonumber(ARGV[2])
if #fb > keep then fb = string.sub(fb, #fb - keep + 1) end
redis.call('HSET', KEYS[1], 'fb', fb)
return fb
"""

#: Store the cut-off computed from ``fb`` = ARGV[1], unless newer evidence arrived meanwhile.
SET_THRESHOLD = """
if redis.call('HGET', KEYS[1], 'fb') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'thr', ARGV[2])
return 1
"""

#: A lookup's embedding-cache read, and the KNN search with the vector it finds, in one round trip
#: (a single node; read-only, so a replica may run it). KEYS: the exact entry, the cached vector;
#: ARGV: the vector's size in bytes, its position among the search's arguments, the arguments.
#: Nothing is searched when the exact entry exists (it answers) or no vector of that size is found
#: (the client embeds, then searches, as without the script); a failed search is returned in place.
CACHED_SEARCH = """
if redis.call('EXISTS', KEYS[1]) == 1 then return {false} end
local vector = redis.call('GET', KEYS[2])
if not vector then return {false} end
if string.len(vector) ~= tonumber(ARGV[1]) then return {vector} end
local args = {}
for i = 3, #ARGV do args[#args + 1] = ARGV[i] end
args[tonumber(ARGV[2])] = vector
return {vector, redis.pcall('FT.SEARCH', unpack(args))}
"""
CACHED_SEARCH_SHA = hashlib.sha1(CACHED_SEARCH.encode()).hexdigest()


def cached_search(exact_key: str, vector_key: str, size: int, search: Command) -> Command:
    """:data:`CACHED_SEARCH` by its digest, for ``search`` (a :func:`knn` of any vector: the script
    puts the cached one in its place)."""
    at = search.index("PARAMS") + 3  # ("FT.SEARCH", index, query, "PARAMS", 2, "vec", <vector>)
    return ("EVALSHA_RO", CACHED_SEARCH_SHA, 2, exact_key, vector_key, size, at, *search[1:])


def with_script(command: Command) -> Command:
    """An EVALSHA_RO command sent with its script's text, for a server that lost it (a restart, a
    SCRIPT FLUSH); the server keeps it again for the next EVALSHA_RO."""
    assert command[:2] == ("EVALSHA_RO", CACHED_SEARCH_SHA)
    return ("EVAL_RO", CACHED_SEARCH, *command[2:])


#: Fields every KNN query returns; ``scope``, ``tenant`` and ``emb`` let the core verify each
#: candidate again after the search (defence in depth for tenant isolation).
KNN_FIELDS = ("dist", "entry", "text", "scope", "tenant", "emb")


# --- plain values ----------------------------------------------------------------------------------


def get(key: str) -> Command:
    return ("GET", key)


def put(key: str, value: Any, ttl_ms: int | None) -> Command:
    """Write a value, expiring in ``ttl_ms`` (None or 0: never)."""
    return ("SET", key, value, "PX", ttl_ms) if ttl_ms else ("SET", key, value)


def get_many(keys: Iterable[str]) -> Command:
    """One MGET for keys that a single node holds (no cluster)."""
    return ("MGET", *keys)


def is_get(command: Command) -> bool:
    """True for a plain single-key read (which a single node can batch into one MGET)."""
    return len(command) == 2 and command[0] == "GET"


#: Commands that only read: a batch of them can go again when its connection proves dead.
READS = frozenset({"GET", "MGET", "FT.SEARCH", "FT.INFO", "HGET", "HMGET", "EXISTS", "PTTL",
                   "EVALSHA_RO", "EVAL_RO"})  # fmt: skip  # a read-only script cannot write


def read_only(batch: Iterable[Command]) -> bool:
    """True when every command of ``batch`` only reads (sending it twice changes nothing)."""
    return all(str(c[0]).upper() in READS for c in batch)


def needs_routing(command: Command) -> bool:
    """True for a command a cluster client must send through a pipeline to reach the node that owns
    its key (redis-py sends FT.CREATE alone to its default node)."""
    return bool(command[0] == "FT.CREATE")


def field(key: str, name: str) -> Command:
    """One field of a hash (a semantic document's)."""
    return ("HGET", key, name)


def add_fields(key: str, fields: Sequence[tuple[str, Any]]) -> Command:
    """HSET of ``fields`` on the hash ``key`` only if it exists (its TTL kept): what the decision
    stage learned about a document it read, never a document an invalidation removed meanwhile."""
    return ("EVAL", ADD_TO_EXISTING, 1, key, *(part for pair in fields for part in pair))


def unlink(key: str) -> Command:
    return ("UNLINK", key)


def exists(key: str) -> Command:
    return ("EXISTS", key)


def renew(key: str, ttl_ms: int) -> Command:
    """Set a key's expiry anew (sliding TTL)."""
    return ("PEXPIRE", key, ttl_ms)


# --- semantic documents ----------------------------------------------------------------------------


def put_document(key: str, fields: Iterable[tuple[str, Any]], ttl_ms: int | None) -> list[Command]:
    """Replace a semantic document (a hash) with ``fields``, expiring in ``ttl_ms`` (None: never;
    the DEL already dropped an old expiry, so no PERSIST is sent)."""
    flat = [item for pair in fields for item in pair]
    replace: list[Command] = [("DEL", key), ("HSET", key, *flat)]
    return [*replace, ("PEXPIRE", key, ttl_ms)] if ttl_ms else replace


#: Expired members of a tag set are pruned this long after their expiry (the clocks of the
#: processes writing one tag may differ).
TAG_GRACE_MS = 3_600_000


def add_to_tag(key: str, digest: str, ttl_ms: int | None, now_ms: int) -> list[Command]:
    """Add an entry to a tag set. A tag set has no TTL, so no volatile-* eviction takes it before
    the entries it indexes (the embedded server runs volatile-lru); its members are scored by
    their entry's expiry and the expired ones pruned at each write, so it does not grow forever."""
    expiry = "+inf" if ttl_ms is None else now_ms + ttl_ms
    return [
        ("ZADD", key, expiry, digest),
        ("ZREMRANGEBYSCORE", key, "-inf", f"({now_ms - TAG_GRACE_MS}"),
    ]


def tag_members(key: str) -> Command:
    return ("ZRANGE", key, 0, -1)


def old_tag_members(key: str) -> Command:
    """The members of a tag set written by an earlier version (a plain set)."""
    return ("SMEMBERS", key)


def append_feedback(key: str, record: str, keep_bytes: int) -> Command:
    return ("EVAL", APPEND, 1, key, record, keep_bytes)


def set_entry_threshold(key: str, evidence: Any, cutoff: float) -> Command:
    return ("EVAL", SET_THRESHOLD, 1, key, evidence, f"{cutoff:.4f}")


# --- the semantic index ----------------------------------------------------------------------------


def index_info(index: str) -> Command:
    return ("FT.INFO", index)


def drop_index(index: str) -> Command:
    """Drop an index, keeping its documents."""
    return ("FT.DROPINDEX", index)


def list_indexes() -> Command:
    return ("FT._LIST",)


def create_index(keys: Keys, dimension: int, params: IndexParams, shard: int = 0) -> Command:
    """FT.CREATE of a namespace's semantic index (one of its shards), on a single node and on a
    cluster alike: its first key is the hash-tagged index name, so a cluster pipeline sends it to
    the node that owns the documents (RediSearch without its coordinator indexes one node's keys).
    The same command redisvl builds from the same schema."""
    attrs: list[Any] = ["TYPE", params.datatype.upper(), "DIM", dimension]
    attrs += ["DISTANCE_METRIC", "COSINE"]
    if params.algorithm == "hnsw":
        attrs += ["M", params.m, "EF_CONSTRUCTION", params.ef_construction]
        attrs += ["EF_RUNTIME", params.ef_runtime, "EPSILON", 0.01]
    tags = [arg for name in ("scope", "tenant", "emb") for arg in (name, "TAG", "SEPARATOR", ",")]
    return (
        "FT.CREATE", keys.index_of(shard), "ON", "HASH", "PREFIX", 1, keys.prefix_of(shard),
        "SCORE", 1.0, "SCHEMA", "vec", "VECTOR", params.algorithm.upper(), len(attrs), *attrs,
        *tags,
    )  # fmt: skip


#: HNSW's EPSILON for a range search (how far past the radius the graph walk looks before it
#: stops). RediSearch's default, 0.01, found 97.5% of stored paraphrases at 100,000 entries where
#: the KNN found 99.5%, 0.03 the same 99.5% but 99.5% against 100% at 1,000; 0.05 found the KNN's
#: share at both and took 0.57x (1,000 entries) and 0.77x (100,000) of the KNN's time on a miss
#: (benchmarks/bench_search_floor.py, benchmarks/results/search_floor.json).
RANGE_EPSILON = 0.05


def knn(
    keys: Keys,
    *,
    vector: bytes,
    scope: str,
    k: int,
    ef: int | None,
    fields: tuple[str, ...] = (),
    shard: int = 0,
    policy: str | None = None,
    radius: float | None = None,
    epsilon: float | None = None,
) -> Command:
    """FT.SEARCH for the k nearest documents inside one scope (in one shard of the namespace).

    The scope digest already covers tenant, namespace, version and embedding model, so one tag
    filter is a hard filter on all of them (one tag keeps RediSearch's hybrid query fast). Tag values
    are hex digests, so no user text ever reaches the query string. ``policy``: the hybrid plan to
    ask for (``BATCHES``; None lets RediSearch choose; see :mod:`semcache.core.hybrid`).

    ``radius`` (a cosine distance): only the k nearest within it, as a range query
    (``VECTOR_RANGE``; ``epsilon``: HNSW's, None on a FLAT index), which on a miss finds nothing
    and stops early where a KNN walks on to its k nearest however far; ``policy`` and ``ef`` are
    KNN clauses and do not apply to it.
    """
    if radius is not None:
        attrs = "$YIELD_DISTANCE_AS: dist" + (f"; $EPSILON: {epsilon}" if epsilon else "")
        reach = min(max(float(radius), 0.0), 2.0)  # a cosine distance is in [0, 2]
        query = f"@scope:{{{scope}}} @vec:[VECTOR_RANGE {reach:.6f} $vec]=>{{{attrs}}}"
    else:
        clauses = f" HYBRID_POLICY {policy}" if policy else ""
        clauses += f" EF_RUNTIME {int(ef)}" if ef else ""
        query = f"@scope:{{{scope}}}=>[KNN {int(k)} @vec $vec{clauses} AS dist]"
    returned = (*KNN_FIELDS, *fields)
    return (
        "FT.SEARCH", keys.index_of(shard), query, "PARAMS", 2, "vec", vector, "SORTBY", "dist",
        "RETURN", len(returned), *returned, "LIMIT", 0, int(k), "DIALECT", 2,
    )  # fmt: skip


def count(index: str, query: str) -> Command:
    """FT.SEARCH that only counts the documents matching ``query`` (``*``: the whole index)."""
    return ("FT.SEARCH", index, query, "LIMIT", 0, 0, "DIALECT", 2)


# --- stampede locks --------------------------------------------------------------------------------


def take_lock(key: str, token: str, ttl_ms: int) -> Command:
    return ("SET", key, token, "NX", "PX", ttl_ms)


def release_lock(key: str, token: str) -> Command:
    return ("EVAL", RELEASE, 1, key, token)


# --- invalidation ----------------------------------------------------------------------------------


def move_generation(key: str, value: str, ttl_ms: int) -> Command:
    """Set a generation to a fresh value: a store that saw the old one is dropped."""
    return ("SET", key, value, "PX", ttl_ms)


def publish(channel: str, message: str) -> Command:
    return ("PUBLISH", channel, message)


# --- counters --------------------------------------------------------------------------------------


def add_int(key: str, field: str, amount: int) -> Command:
    return ("HINCRBY", key, field, amount)


def add_float(key: str, field: str, amount: float) -> Command:
    return ("HINCRBYFLOAT", key, field, repr(amount))


def keep_for(key: str, seconds: int) -> Command:
    return ("EXPIRE", key, seconds)


def count_hit(key: str, member: str, n: int) -> Command:
    return ("ZINCRBY", key, n, member)


def keep_top(key: str, n: int) -> Command:
    """Trim a sorted set to its ``n`` highest members."""
    return ("ZREMRANGEBYRANK", key, 0, -n - 1)


def read_counters(key: str) -> Command:
    return ("HGETALL", key)


def top(key: str, n: int) -> Command:
    return ("ZREVRANGE", key, 0, n - 1, "WITHSCORES")


# --- the embedded server's cluster setup -----------------------------------------------------------


def add_slots(first: int, last: int) -> Command:
    return ("CLUSTER", "ADDSLOTSRANGE", first, last)


def meet(host: str, port: int) -> Command:
    return ("CLUSTER", "MEET", host, port)


def cluster_info() -> Command:
    return ("CLUSTER", "INFO")
