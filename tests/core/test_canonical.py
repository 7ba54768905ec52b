"""Canonical requests: which requests share a key, and what the semantic layer embeds."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from semcache import InvalidRequestError, SemanticPolicy
from semcache.core import canonical
from semcache.core.canonical import canonicalize, digest, dumps, exact_hash, scope_hash, sha256
from tests.conftest import chat


def key(request: dict, tenant: str = "", namespace: str = "ns", version: str = "1") -> str:
    return exact_hash(canonicalize(request), namespace=namespace, tenant=tenant, version=version)


def scope(request: dict, **kw: str) -> str:
    args = {"namespace": "ns", "tenant": "", "version": "1", "embedding_model": "m"} | kw
    return scope_hash(canonicalize(request), **args)


def test_transport_params_do_not_change_the_key() -> None:
    plain = chat("hello")
    streamed = chat("hello", stream=True, stream_options={"include_usage": True}, user="u1",
                    timeout=3, metadata={"a": "b"}, store=True)  # fmt: skip
    assert key(plain) == key(streamed)


def test_key_ignores_dict_order_and_whole_float_spelling() -> None:
    a = {"model": "m", "temperature": 1.0, "messages": [{"role": "user", "content": "x"}]}
    b = {"messages": [{"content": "x", "role": "user"}], "temperature": 1, "model": "m"}
    assert key(a) == key(b)


@pytest.mark.parametrize(
    "change",
    [
        {"model": "gpt-4o"},
        {"temperature": 0.5},
        {"top_p": 0.3},
        {"max_tokens": 10},
        {"seed": 7},
        {"stop": ["\n"]},
        {"n": 2},
        {"response_format": {"type": "json_object"}},
        {"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]},
        {"tool_choice": "none"},
    ],
)
def test_answer_changing_params_change_key_and_scope(change: dict) -> None:
    base = chat("hello", temperature=0)
    changed = {**base, **change}
    assert key(base) != key(changed)
    assert scope(base) != scope(changed)


def test_namespace_tenant_and_version_change_the_key() -> None:
    req = chat("hello")
    keys = {key(req), key(req, tenant="t"), key(req, namespace="other"), key(req, version="2")}
    assert len(keys) == 4


def test_semantic_text_is_last_user_turn_and_scope_ignores_it() -> None:
    one = {"model": "m", "messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": [{"type": "text", "text": "second"}, {"type": "text", "text": "part"}]},
    ]}  # fmt: skip
    canon = canonicalize(one)
    assert canon.semantic_text == "second\npart"
    other = {**one, "messages": [*one["messages"][:3], {"role": "user", "content": "different"}]}
    assert scope(one) == scope(other)
    assert key(one) != key(other)
    earlier = {**one, "messages": [one["messages"][0], {"role": "user", "content": "changed"},
                                   *one["messages"][2:]]}  # fmt: skip
    assert scope(one) != scope(earlier)


def test_non_text_parts_stay_in_the_scope() -> None:
    def with_image(url: str) -> dict:
        parts = [{"type": "text", "text": "what is this?"},
                 {"type": "image_url", "image_url": {"url": url}}]  # fmt: skip
        return {"model": "m", "messages": [{"role": "user", "content": parts}]}

    assert canonicalize(with_image("a")).semantic_text == "what is this?"
    assert scope(with_image("a")) != scope(with_image("b"))


def test_window_and_conversation_policies() -> None:
    req = {"model": "m", "messages": [
        {"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
        {"role": "user", "content": "c"},
    ]}  # fmt: skip
    assert canonicalize(req, SemanticPolicy("window", 2)).semantic_text == "assistant: b\nuser: c"
    conversation = canonicalize(req, SemanticPolicy("conversation")).semantic_text
    assert conversation == "user: a\nassistant: b\nuser: c"


def test_completion_and_responses_bodies() -> None:
    assert canonicalize({"model": "m", "prompt": "say hi"}).semantic_text == "say hi"
    assert canonicalize({"model": "m", "prompt": [1, 2, 3]}).semantic_text == ""
    assert canonicalize({"model": "m", "input": "hello"}).kind == "responses"
    items = {"model": "m", "instructions": "x", "input": [
        {"role": "user", "content": [{"type": "input_text", "text": "q1"}]},
    ]}  # fmt: skip
    assert canonicalize(items).semantic_text == "q1"


@pytest.mark.parametrize(
    "bad",
    [
        "not a dict",
        {"messages": [{"role": "user", "content": "x"}]},
        {"model": "", "messages": [{"role": "user", "content": "x"}]},
        {"model": "m"},
        {"model": "m", "messages": []},
        {"model": "m", "messages": "hello"},
        {"model": "m", "messages": [{"content": "no role"}]},
        {"model": "m", "messages": [{"role": "user", "content": 42}]},
        {"model": "m", "messages": [{"role": "user", "content": ["bare string part"]}]},
        {"model": "m", "prompt": "x", "temperature": float("nan")},
        {"model": "m", "prompt": "x", "logit_bias": object()},
    ],
)
def test_malformed_requests_raise_a_clear_error(bad: object) -> None:
    with pytest.raises(InvalidRequestError):
        canonicalize(bad)  # type: ignore[arg-type]


def test_odd_unicode_and_nul_bytes_key_stably() -> None:
    text = "caf\u00e9 \u0000 \ud83d\ude00 \u202e rtl"
    assert key(chat(text)) == key(chat(text))
    assert key(chat(text)) != key(chat(text.replace("\u0000", "")))
    # The surrogate pair is the character JSON carries upstream (a lone surrogate is refused).
    assert canonicalize(chat(text)).semantic_text == "caf\u00e9 \u0000 \U0001f600 \u202e rtl"


@pytest.mark.parametrize("field", ["messages", "prompt", "input"])
def test_a_null_conversation_field_is_invalid_request_not_a_key_error(field: str) -> None:
    # found by test_fuzzed_request_shapes_raise_only_invalid_request: null values are dropped from
    # the keyed body, so the field looked present to request_kind and was missing to the split
    with pytest.raises(InvalidRequestError):
        canonicalize({"model": "gpt-4o-mini", field: None})


# --- the digest is the one of the canonical JSON (entries keep their keys) -------------------

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text()
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=20,
)  # fmt: skip


@settings(max_examples=600, deadline=None)
@given(_JSON)
def test_the_digest_is_the_sha256_of_the_canonical_json(value: object) -> None:
    # orjson writes floats under 1e-4 and exponents otherwise than json.dumps: a digest that
    # took its bytes as they are would change the key of every entry holding one.
    assert digest(value) == sha256(dumps(value))


@pytest.mark.parametrize("value", [
    1e-05, -9.925192594575119e-05, 1e16, 1.5e300, 5e-324, 0.0001, 2**64, 2**200, {"\u2028": "\x00\x1f\x7f"},
    ["3e5 in a text", "0.00001 in a text"], {"z": 1, "a": [0.1, 0.25]}, {"a": 1e16}, [1, -2.5e-07],
    {"k": [0.1, {"j": -0.00001}]}, ["a,1e5", "b:0.00001"], 1e22,
])  # fmt: skip
def test_the_digest_of_values_orjson_writes_otherwise_or_not_at_all(value: object) -> None:
    assert digest(value) == sha256(dumps(value))


@pytest.mark.parametrize("value", [
    ["chat", {"model": "m"}, "p", "91cd2dbb998e5ec8", "1"], {"x": "3e5 in a text"}, ["1E-9x", 0.5],
])  # fmt: skip
def test_a_text_that_holds_an_exponent_keeps_the_fast_path(
    value: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a tenant's hex digest holds "8e5" one time in three: it used to send every digest of that
    # tenant through json.dumps, 15 times slower; only a number token can be written otherwise
    expected = sha256(dumps(value))

    def refuse(_: object) -> str:
        raise AssertionError("the digest fell back to json.dumps")

    monkeypatch.setattr(canonical, "dumps", refuse)
    assert digest(value) == expected


class _Dict(dict):  # type: ignore[type-arg]
    """A dict subclass: keyed as the dict it holds (the exact-type fast path must not skip it)."""


@pytest.mark.parametrize(
    ("bad", "where"),
    [
        ({"extra": {"a": [1, float("nan")]}}, "request.messages[0].extra.a[1] is not a finite"),
        ({"content": "x\ud800"}, "request.messages[0].content is not valid Unicode"),
        ({"z": 2**5000}, "request.messages[0].z is an integer too large"),
        ({"z": object()}, "request.messages[0].z has a value of type object"),
        ({"z": {1: {"k": float("inf")}}}, "request.messages[0].z.1.k is not a finite"),
        ({"z": _Dict(q=[float("-inf")])}, "request.messages[0].z.q[0] is not a finite"),
    ],
)
def test_a_bad_value_is_named_by_where_it_sits(bad: dict, where: str) -> None:
    """The error names the place of the value (built only when there is an error to name)."""
    request = {"model": "m", "messages": [{"role": "user", "content": "x", **bad}]}
    with pytest.raises(InvalidRequestError, match=where.replace("[", r"\[").replace("]", r"\]")):
        canonicalize(request)


def test_subclasses_of_the_json_types_key_as_the_types_they_extend() -> None:
    class Text(str):
        pass

    plain = chat("hello", metadata_like={"a": ["b", 1]})
    odd = chat(Text("hello"), metadata_like=_Dict(a=("b", 1.0)))
    assert key(plain) == key(odd)


def test_a_tenants_digest_is_remembered_for_strings_only() -> None:
    # the memo keys on the tenant itself: a value that cannot be hashed (invalidate() takes the
    # tenant unchecked) is digested as it always was, not refused with a TypeError
    from semcache.redis.keys import tenant_tag

    assert tenant_tag("acme") == sha256("tenant:acme")[:16] == tenant_tag("acme")
    assert tenant_tag(None) == tenant_tag("") == sha256("tenant:")[:16]
    assert tenant_tag(["acme"]) == sha256("tenant:['acme']")[:16]  # type: ignore[arg-type]
