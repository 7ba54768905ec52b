"""Issue 14, defects 1, 2, 6 and 12, on the real Redis: bad input never switches the cache off and is
refused clearly, inputs the cache cannot key or decode never fail a call, a request cannot reach
another tenant or namespace, clients of two upstream servers do not share entries, and a result says
nothing about another tenant."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import openai
import pytest
import redis
from conftest import answer, chat, hash_embedder
from openai_server import FakeOpenAI

import semcache
from semcache import Cache, CacheConfig, InvalidRequestError
from semcache.openai import cache_info


@pytest.fixture
def hcache(redis_url: str, namespace: str) -> Iterator[Cache]:
    """A cache with the fast hash embedder (both layers on) in a fresh namespace."""
    with Cache(redis_url=redis_url, embedder=hash_embedder(), namespace=namespace) as cache:
        yield cache
        cache.flush()


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"a": value}
    return value


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def client_of(server: FakeOpenAI, cache: Cache, **options: Any) -> openai.OpenAI:
    raw = openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0)
    return semcache.wrap(raw, cache=cache, **options)


# --- defect 1: bad input never counts against the circuit breaker -----------------------------------

BAD_STORES = [
    pytest.param(chat("fine"), {"content": "lone \ud800 surrogate"}, id="surrogate-in-response"),
    pytest.param(chat("fine"), {"sdk": object()}, id="object-in-response"),
    pytest.param(chat("lone \udcff in the question"), answer("a"), id="surrogate-in-request"),
]


@pytest.mark.parametrize(("request_", "response"), BAD_STORES)
def test_defect_1_bad_stores_are_refused_and_never_switch_the_cache_off(
    hcache: Cache, request_: dict, response: dict
) -> None:
    assert hcache.store(chat("good question"), answer("good answer"))
    for _ in range(5):  # more than the breaker's three failures in a row
        with pytest.raises(InvalidRequestError):
            hcache.store(request_, response)
    result = hcache.lookup(chat("good question"))
    assert result.layer == "exact", result.reason
    assert hcache.available


class BrokenDecision:
    """A decision stage with a bug: every semantic candidate makes it raise."""

    return_fields: tuple[str, ...] = ()

    def decide(self, query: str, candidates: Sequence[Any], threshold: float) -> Any:
        raise ZeroDivisionError("a bug in the decision stage")
        yield  # pragma: no cover


def test_defect_1_a_bug_is_logged_with_its_traceback_and_not_counted_as_redis_failing(
    redis_url: str, namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    config = CacheConfig(namespace=namespace, decision=BrokenDecision())
    with Cache(redis_url=redis_url, embedder=hash_embedder(), config=config) as cache:
        assert cache.store(chat("stored question"), answer("stored"))
        with caplog.at_level(logging.WARNING, logger="semcache"):
            for i in range(5):
                assert not cache.lookup(chat(f"other question {i}")).hit
        assert cache.lookup(chat("stored question")).layer == "exact"
        bugs = [r for r in caplog.records if r.levelno >= logging.WARNING and r.exc_info]
        assert bugs and "ZeroDivisionError" in caplog.text
        cache.flush()


# --- defect 2: inputs that escaped as other exceptions ----------------------------------------------


def test_defect_2_a_request_nested_600_deep_is_invalid(hcache: Cache) -> None:
    with pytest.raises(InvalidRequestError):
        hcache.lookup(chat("deep", response_format=nested(600)))


def test_defect_2_a_huge_integer_is_invalid(hcache: Cache) -> None:
    with pytest.raises(InvalidRequestError):
        hcache.lookup(chat("big", max_tokens=10**5000))


def test_defect_2_a_response_nested_1000_deep_is_refused_and_lookups_stay_available(
    hcache: Cache,
) -> None:
    with pytest.raises(InvalidRequestError):
        hcache.store(chat("deep answer"), {"choices": nested(1000)})
    result = hcache.lookup(chat("deep answer"))
    assert result.reason != "unavailable"


def _corrupt(url: str, result: semcache.LookupResult, edit: Any) -> None:
    client = redis.Redis.from_url(url)
    try:
        (key,) = list(client.scan_iter(match=f"semcache:x:*{result.key}", count=1000))
        client.set(key, edit(client.get(key).decode()))
    finally:
        client.close()


DEEP_JSON = '{"a":' * 1000 + '"leaf"' + "}" * 1000


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(lambda raw: raw.replace('"ttl_ms":', '"ttl_ms":1e999,"x":'), id="ttl-1e999"),
        pytest.param(
            lambda raw: raw.replace('"response":', f'"response":{DEEP_JSON},"r":'),
            id="response-1000-deep",
        ),
    ],
)
def test_defect_2_a_corrupt_stored_entry_is_a_miss_and_is_removed(
    hcache: Cache, redis_url: str, edit: Any
) -> None:
    request = chat("to be corrupted")
    assert hcache.store(request, answer("x"))
    _corrupt(redis_url, hcache.lookup(request), edit)
    result = hcache.lookup(request)  # raised OverflowError, or answered "unavailable"
    assert result.layer is None and result.reason != "unavailable"
    assert hcache.lookup(chat("other")).reason != "unavailable"


def test_defect_2_a_request_nested_600_deep_passes_through_uncached(
    fake_openai: FakeOpenAI, wrap_cache: Cache
) -> None:
    client = client_of(fake_openai, wrap_cache)
    reply = client.chat.completions.create(
        model="m", messages=ask("deep"), extra_body={"response_format": nested(600)}
    )
    assert reply.choices[0].message.content == "echo: deep"
    info = cache_info(reply)
    assert info is not None and info.reason == "uncacheable"
    client.close()


# --- defect 6: a request cannot choose another tenant or namespace; upstreams do not share entries --


@pytest.mark.parametrize(
    "override",
    [
        pytest.param({"extra_body": {"semcache": {"tenant": "A"}}}, id="extra_body"),
        pytest.param({"extra_headers": {"x-semcache-tenant": "A"}}, id="header"),
    ],
)
def test_defect_6_a_request_cannot_read_or_write_another_tenant(
    fake_openai: FakeOpenAI, wrap_cache: Cache, override: dict[str, Any]
) -> None:
    owner = client_of(fake_openai, wrap_cache, tenant="A")
    owner.chat.completions.create(model="m", messages=ask("A's private plan"))
    client = client_of(fake_openai, wrap_cache, tenant="B")
    reply = client.chat.completions.create(model="m", messages=ask("A's private plan"), **override)
    assert cache_info(reply).layer is None  # type: ignore[union-attr]
    assert fake_openai.calls("chat/completions") == 2
    client.chat.completions.create(model="m", messages=ask("written by B"), **override)
    again = owner.chat.completions.create(model="m", messages=ask("written by B"))
    assert cache_info(again).layer is None  # type: ignore[union-attr]
    owner.close()
    client.close()


def test_defect_6_a_request_cannot_choose_another_namespace(
    fake_openai: FakeOpenAI, wrap_cache: Cache, namespace: str
) -> None:
    other = f"{namespace}-other"
    client = client_of(fake_openai, wrap_cache)
    headers = {"x-semcache-namespace": other}
    client.chat.completions.create(model="m", messages=ask("q"), extra_headers=headers)
    assert not list(wrap_cache.client.scan_iter(match=f"semcache:x:{other}:*"))
    client.close()


def test_defect_6_a_tenant_override_works_when_the_application_opts_in(
    fake_openai: FakeOpenAI, wrap_cache: Cache
) -> None:
    client = client_of(
        fake_openai, wrap_cache, share_across_upstreams=True, allow_scope_override=True
    )
    client.chat.completions.create(
        model="m", messages=ask("q"), extra_body={"semcache": {"tenant": "A"}}
    )
    assert wrap_cache.lookup({"model": "m", "messages": ask("q")}, tenant="A").hit
    client.close()


def test_defect_6_clients_of_two_upstream_servers_do_not_share_entries(wrap_cache: Cache) -> None:
    with FakeOpenAI() as one, FakeOpenAI() as two:
        first, second = client_of(one, wrap_cache), client_of(two, wrap_cache)
        first.chat.completions.create(model="m", messages=ask("same question"))
        reply = second.chat.completions.create(model="m", messages=ask("same question"))
        assert two.calls("chat/completions") == 1
        assert cache_info(reply).layer is None  # type: ignore[union-attr]
        again = first.chat.completions.create(model="m", messages=ask("same question"))
        assert cache_info(again).layer == "exact"  # type: ignore[union-attr]
        first.close()
        second.close()


# --- defect 12: a result says nothing about another tenant ------------------------------------------


def test_defect_12_a_lookup_does_not_tell_whether_another_tenant_asked_the_same_text(
    hcache: Cache,
) -> None:
    secret = f"is acme being acquired? {uuid.uuid4().hex}"
    never = f"a text nobody asked {uuid.uuid4().hex}"
    hcache.lookup(chat(secret), tenant="acme")
    asked, fresh = (
        hcache.lookup(chat(secret), tenant="rival"),
        hcache.lookup(chat(never), tenant="rival"),
    )
    assert (asked.embedded, asked.reason) == (fresh.embedded, fresh.reason)


def test_defect_12_an_embeddings_call_does_not_tell_whether_another_tenant_embedded_the_text(
    fake_openai: FakeOpenAI, wrap_cache: Cache
) -> None:
    secret = f"acme's merger target {uuid.uuid4().hex}"
    owner, rival = (client_of(fake_openai, wrap_cache, tenant=t) for t in ("A", "B"))
    owner.embeddings.create(model="text-embedding-3-small", input=[secret])
    reply = rival.embeddings.create(model="text-embedding-3-small", input=[secret])
    assert cache_info(reply).cached_inputs == 0  # type: ignore[union-attr]
    again = owner.embeddings.create(model="text-embedding-3-small", input=[secret])
    assert cache_info(again).cached_inputs == 1  # type: ignore[union-attr]
    owner.close()
    rival.close()
