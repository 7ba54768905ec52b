"""Stored entries read back exactly as they were written, through the fast JSON reader and its
fallback: values orjson refuses but json writes (NaN, integers past 64 bits) are not lost."""

from __future__ import annotations

import math
from typing import Any

import pytest

from semcache import InvalidRequestError
from semcache.core.canonical import MAX_DEPTH, check_depth
from semcache.core.types import Entry, check_response


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


def test_a_response_deeper_than_store_accepts_reads_as_corrupt_and_a_wide_one_does_not() -> None:
    import json

    from semcache.core.canonical import MAX_DEPTH

    def nested(depth: int) -> dict:
        value: dict = {"leaf": 1}
        for _ in range(depth - 1):
            value = {"a": value}
        return value

    good = Entry(response=nested(MAX_DEPTH), kind="chat", model="m").to_json()
    assert Entry.from_json(good) is not None  # as deep as store accepts
    deep = json.loads(good)
    deep["response"] = nested(MAX_DEPTH + 1)
    assert Entry.from_json(json.dumps(deep)) is None
    wide = {"logprobs": [{"token": str(i), "top": [{"t": "x"}]} for i in range(300)]}
    assert Entry.from_json(Entry(response=wide, kind="chat", model="m").to_json()) is not None


def _nested(levels: int) -> dict[str, Any]:
    """A response whose innermost value sits ``levels`` containers down (itself the first)."""
    value: Any = "leaf"
    for _ in range(levels - 1):
        value = {"a": value}
    return {"choices": value} if levels > 1 else {"choices": "leaf"}


@pytest.mark.parametrize(
    "levels", [2, MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1, MAX_DEPTH + 2, 1000]
)
def test_a_response_is_refused_for_its_depth_exactly_as_the_walk_refuses_it(levels: int) -> None:
    """``check_response`` walks a response only when its JSON has more brackets than MAX_DEPTH;
    it refuses what the walk refuses, with the walk's words, and takes what the walk takes."""
    response = _nested(levels)
    try:
        check_depth(response, "the response")
    except InvalidRequestError as walked:
        with pytest.raises(InvalidRequestError, match="nested deeper than") as refused:
            check_response(response)
        assert str(refused.value) == str(walked)
    else:
        assert check_response(response) is response


def test_brackets_in_text_or_in_many_shallow_lists_do_not_make_a_response_too_deep() -> None:
    text = {"choices": [{"message": {"content": "[{" * 400}}]}
    wide = {"choices": [[i] for i in range(500)]}
    assert check_response(text) is text and check_response(wide) is wide


def test_a_too_deep_response_that_json_cannot_hold_either_is_refused_for_its_depth() -> None:
    response = _nested(MAX_DEPTH + 5)
    response["bad"] = object()
    with pytest.raises(InvalidRequestError, match="nested deeper than"):
        check_response(response)
    with pytest.raises(InvalidRequestError, match="cannot be stored as JSON"):
        check_response({"choices": [], "bad": object()})
