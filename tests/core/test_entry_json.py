"""Stored entries read back exactly as they were written, through the fast JSON reader and its
fallback: values orjson refuses but json writes (NaN, integers past 64 bits) are not lost."""

from __future__ import annotations

import math

from semcache.core.types import Entry


def test_an_entry_reads_back_as_written_including_what_orjson_refuses() -> None:
    response = {"choices": [{"message": {"content": "héllo ☃ 𝄞"}}], "score": float("nan"),
                "big": 123456789012345678901234567890, "n": 1.5e300}  # fmt: skip
    entry = Entry(response=response, kind="chat", model="m", text="q", ttl_ms=5, tags=("a",))
    back = Entry.from_json(entry.to_json().encode())
    assert back is not None
    assert math.isnan(back.response["score"]) and back.response["big"] == response["big"]
    assert back.response["choices"] == response["choices"] and back.response["n"] == 1.5e300
    assert (back.kind, back.model, back.text, back.ttl_ms, back.tags) == (
        "chat",
        "m",
        "q",
        5,
        ("a",),
    )


def test_corrupt_or_foreign_entries_read_as_none() -> None:
    good = Entry(response={"a": 1}, kind="chat", model="m").to_json()
    for raw in (b"{bad", good[:-5].encode(), b"[1, 2]", b'{"format": 99, "response": {}}',
                b'{"format": 1, "response": [1]}', b"\xff\xfe", b'{"format": 1}' ):  # fmt: skip
        assert Entry.from_json(raw) is None
