"""Reading Redis replies in RESP2 or RESP3 form. No I/O."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def lost_script(reply: Any) -> bool:
    """True for the error of a script the server does not hold (NOSCRIPT: send its text)."""
    from redis.exceptions import NoScriptError  # redis-py names the reply; imported with it

    return isinstance(reply, NoScriptError)


def denied(reply: Any) -> bool:
    """True for the error of a command the server's ACL does not let this user run (NOPERM)."""
    from redis.exceptions import NoPermissionError

    return isinstance(reply, NoPermissionError)


def refused_script(reply: Any) -> bool:
    """True for the error of a server that will not run a script command at all: an ACL without
    it (NOPERM), a Redis without it (before 7). Other errors (BUSY, LOADING) pass."""
    return denied(reply) or unknown_command(reply)


def refused_vector_params(reply: Any) -> bool:
    """True for a search RediSearch refused over its KNN clause's parameters (a hybrid policy the
    server does not know, say)."""
    return isinstance(reply, Exception) and "vector similarity parameters" in str(reply).lower()


def refused_range(reply: Any) -> bool:
    """True for a range search RediSearch refused: its parameters (EPSILON of a FLAT index), its
    attributes, or its syntax (a server before range queries)."""
    said = str(reply).lower() if isinstance(reply, Exception) else ""
    return refused_vector_params(reply) or "invalid attribute" in said or "syntax error" in said


def text(value: Any) -> str:
    """A reply value as text (bytes decoded as UTF-8, bad bytes replaced)."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


#: Field names a search returns, decoded once (a lookup reads about 30 of them).
_NAMES = {
    name.encode(): name
    for name in ("dist", "entry", "text", "scope", "tenant", "emb", "fb", "thr", "tkn")
}


def _name(value: Any) -> str:
    return _NAMES.get(value) or text(value)


def _pairs(flat: Iterable[Any]) -> dict[str, Any]:
    items = flat if isinstance(flat, list) else list(flat)
    return {_name(k): v for k, v in zip(items[::2], items[1::2], strict=False)}


def parse_search(reply: Any) -> list[tuple[str, dict[str, Any]]]:
    """FT.SEARCH reply → [(doc key, {field: raw value})], for RESP2 lists and RESP3 maps."""
    if isinstance(reply, Mapping):
        out = []
        for row in reply.get(b"results", reply.get("results", [])):
            doc = row.get(b"id", row.get("id"))
            attrs = row.get(b"extra_attributes", row.get("extra_attributes"))
            if attrs:  # None when the document expired or was deleted while the query ran
                out.append((text(doc), {_name(k): v for k, v in attrs.items()}))
        return out
    rows = list(reply)[1:]
    return [
        (text(rows[i]), _pairs(rows[i + 1]))
        for i in range(0, len(rows) - 1, 2)
        if rows[i + 1]  # None (RESP2) when the document went away while the query ran
    ]


def parse_total(reply: Any) -> int | None:
    """An FT.SEARCH reply's count of matching documents (RESP2 or RESP3); None for an error."""
    if isinstance(reply, Mapping):
        total = reply.get(b"total_results", reply.get("total_results"))
    elif isinstance(reply, list) and reply:
        total = reply[0]
    else:
        return None
    return total if isinstance(total, int) and not isinstance(total, bool) else None


#: The fields every semantic index of this version has (an index without them is foreign or old).
INDEX_FIELDS = frozenset({"vec", "scope", "tenant", "emb"})


def _attributes(info: Any) -> list[dict[str, Any]]:
    info = info if isinstance(info, Mapping) else _pairs(info)
    out = []
    for attribute in info.get(b"attributes", info.get("attributes", [])):
        fields = attribute if isinstance(attribute, Mapping) else _pairs(attribute)
        out.append({text(k).lower(): v for k, v in fields.items()})
    return out


def parse_index_dimension(info: Any) -> int | None:
    """The vector dimension from an FT.INFO reply, or None if it cannot be read."""
    for fields in _attributes(info):
        if "dim" in fields:
            return int(text(fields["dim"]))
    return None


def parse_index_fields(info: Any) -> set[str]:
    """The names of an index's fields, from an FT.INFO reply."""
    return {text(f.get("attribute", f.get("identifier", b""))) for f in _attributes(info)}


def has_search_module(modules: Any) -> bool:
    """True when a MODULE LIST reply names the search module."""
    for module in modules or []:
        fields = {
            text(k): v
            for k, v in (module if isinstance(module, Mapping) else _pairs(module)).items()
        }
        name = fields.get("name", b"")
        if text(name).lower() in ("search", "ft", "searchlight"):
            return True
    return False


def decode_hash(reply: Any) -> dict[str, float]:
    """An HGETALL reply of numbers (a map, or a flat list of fields and values)."""
    if isinstance(reply, Mapping):
        items = list(reply.items())
    else:
        items = list(zip(reply[::2], reply[1::2], strict=True))
    return {text(name): float(value) for name, value in items}


def ranked(reply: Any) -> tuple[tuple[str, int], ...]:
    """A ZREVRANGE ... WITHSCORES reply as (member, rounded score) pairs; () for an error."""
    if isinstance(reply, Exception) or not reply:
        return ()
    return tuple((text(member), round(float(score))) for member, score in reply)


def is_ok(reply: Any) -> bool:
    """True for the reply of a SET that took (``True`` or ``OK``)."""
    return reply is True or reply in (b"OK", "OK")


def unknown_command(reply: Any) -> bool:
    """True when a reply is the error of a command the server does not have (no search module)."""
    return isinstance(reply, Exception) and "unknown command" in str(reply).lower()


def already_exists(reply: Any) -> bool:
    """True when an FT.CREATE failed only because the index exists."""
    return isinstance(reply, Exception) and "already exists" in str(reply).lower()
