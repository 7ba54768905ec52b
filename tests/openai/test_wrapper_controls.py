"""Per-request control of a wrapped client (extra_body, extra_headers, cache_options) and the
stochastic policy."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator

import numpy as np
import openai
import pytest
from conftest import hash_embedder
from openai_server import FakeOpenAI

import semcache
from semcache.openai import cache_info, cache_options

CHAT = "chat/completions"


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def no_controls_reached_upstream(fake: FakeOpenAI) -> bool:
    return all(
        "semcache" not in (r.body or {}) and not any(h.lower().startswith("x-semcache") for h in r.headers)
        for r in fake.received
    )  # fmt: skip


def test_bypass_through_extra_body_goes_upstream_and_refreshes(
    wrapped: openai.OpenAI, fake_openai: FakeOpenAI
) -> None:
    wrapped.chat.completions.create(model="m", messages=ask("news"))
    fresh = wrapped.chat.completions.create(
        model="m", messages=ask("news"), extra_body={"semcache": {"bypass": True}}
    )
    assert fake_openai.calls(CHAT) == 2
    assert cache_info(fresh).reason == "bypass"  # type: ignore[union-attr]
    again = wrapped.chat.completions.create(model="m", messages=ask("news"))
    assert fake_openai.calls(CHAT) == 2 and again.id == fresh.id  # the fresh answer was stored
    assert no_controls_reached_upstream(fake_openai)


def test_no_store_through_a_header(wrapped: openai.OpenAI, fake_openai: FakeOpenAI) -> None:
    wrapped.chat.completions.create(
        model="m", messages=ask("secret"), extra_headers={"X-Semcache-No-Store": "1"}
    )
    wrapped.chat.completions.create(model="m", messages=ask("secret"))
    wrapped.chat.completions.create(model="m", messages=ask("secret"))
    assert fake_openai.calls(CHAT) == 2
    assert no_controls_reached_upstream(fake_openai)


def test_tenants_through_the_context_manager_never_share(
    wrapped: openai.OpenAI, fake_openai: FakeOpenAI
) -> None:
    with cache_options(tenant="acme"):
        wrapped.chat.completions.create(model="m", messages=ask("our plan"))
    with cache_options(tenant="globex"):
        wrapped.chat.completions.create(model="m", messages=ask("our plan"))
    assert fake_openai.calls(CHAT) == 2
    with cache_options(tenant="acme"), cache_options(bypass=False):
        hit = wrapped.chat.completions.create(model="m", messages=ask("our plan"))
    assert cache_info(hit).layer == "exact" and fake_openai.calls(CHAT) == 2  # type: ignore[union-attr]
    wrapped.chat.completions.create(model="m", messages=ask("our plan"))  # no tenant: its own
    assert fake_openai.calls(CHAT) == 3


def test_namespace_and_ttl_through_headers(
    fake_openai: FakeOpenAI, wrap_cache: semcache.Cache
) -> None:
    raw = openai.OpenAI(base_url=fake_openai.base_url, api_key="test", max_retries=0)
    wrapped = semcache.wrap(raw, cache=wrap_cache, share_across_upstreams=True,
                            allow_scope_override=True)  # fmt: skip
    other = f"t-{uuid.uuid4().hex[:12]}"
    headers = {"x-semcache-namespace": other, "x-semcache-ttl": "30"}
    wrapped.chat.completions.create(model="m", messages=ask("q"), extra_headers=headers)
    wrapped.chat.completions.create(model="m", messages=ask("q"))  # the cache's own namespace
    assert fake_openai.calls(CHAT) == 2
    key = wrap_cache.plan({"model": "m", "messages": ask("q")}, namespace=other).exact_key
    assert 0 < wrap_cache.client.pttl(key) <= 30_000
    wrap_cache.flush(namespace=other)
    wrapped.close()


def test_wrap_defaults_apply_to_every_call(
    fake_openai: FakeOpenAI, wrap_cache: semcache.Cache
) -> None:
    raw = openai.OpenAI(base_url=fake_openai.base_url, api_key="test", max_retries=0)
    client = semcache.wrap(
        raw, cache=wrap_cache, tenant="acme", tags=["faq"], share_across_upstreams=True
    )
    client.chat.completions.create(model="m", messages=ask("defaults"))
    request = {"model": "m", "messages": ask("defaults")}
    assert wrap_cache.lookup(request, tenant="acme").hit
    assert not wrap_cache.lookup(request).hit
    assert wrap_cache.invalidate(tags=["faq"], tenant="acme") > 0
    assert not wrap_cache.lookup(request, tenant="acme").hit
    client.close()


def table_embedder() -> semcache.CallableEmbedder:
    """'cats' and 'kittens' at cosine similarity 0.8; every other text near-orthogonal."""
    fallback = hash_embedder()
    table = {"cats": np.eye(16)[0], "kittens": 0.8 * np.eye(16)[0] + 0.6 * np.eye(16)[1]}

    def embed(texts: list[str]) -> np.ndarray:
        rows = [table.get(t, fallback.embed([t])[0]) for t in texts]
        return np.asarray(rows, dtype=np.float32)

    return semcache.CallableEmbedder(embed, model_id="table", dimension=16)


def test_threshold_override_per_request(
    fake_openai: FakeOpenAI, redis_url: str, namespace: str
) -> None:
    # the guard alone: "kittens" is not "cats", as the default's verifier knows; this is about the override
    config = semcache.CacheConfig(
        namespace=namespace, decision=semcache.GuardedDecision(guard=semcache.Guard())
    )
    cache = semcache.Cache(redis_url=redis_url, embedder=table_embedder(), config=config)
    raw = openai.OpenAI(base_url=fake_openai.base_url, api_key="test", max_retries=0)
    client = semcache.wrap(raw, cache=cache)
    client.chat.completions.create(model="m", messages=ask("cats"))
    strict = client.chat.completions.create(
        model="m", messages=ask("kittens"), extra_body={"semcache": {"no_store": True}}
    )
    assert cache_info(strict).reason == "no-candidates"  # type: ignore[union-attr]
    loose = client.chat.completions.create(
        model="m", messages=ask("kittens"), extra_body={"semcache": {"threshold": 0.75}}
    )
    info = cache_info(loose)
    assert info is not None and info.layer == "semantic"
    assert info.similarity == pytest.approx(0.8, abs=1e-3)
    assert loose.choices[0].message.content == "echo: cats"
    assert fake_openai.calls(CHAT) == 2
    client.close()
    cache.flush()
    cache.close()


@pytest.mark.parametrize(
    "options",
    [{"semcache": {"ttl": -1}}, {"semcache": {"bogus": 1}}, {"semcache": "bypass"},
     {"semcache": {"tenant": 7}}],
)  # fmt: skip
def test_bad_options_are_clear_errors_before_any_call(
    wrapped: openai.OpenAI, fake_openai: FakeOpenAI, options: dict[str, object]
) -> None:
    with pytest.raises(semcache.ConfigurationError):
        wrapped.chat.completions.create(model="m", messages=ask("x"), extra_body=options)
    with pytest.raises(semcache.ConfigurationError):
        wrapped.chat.completions.create(
            model="m", messages=ask("x"), extra_headers={"x-semcache-bypass": "maybe"}
        )
    with pytest.raises(semcache.ConfigurationError), cache_options(threshold=3):
        pass
    assert fake_openai.calls(CHAT) == 0


def test_stochastic_requests_are_cached_by_default(
    wrapped: openai.OpenAI, fake_openai: FakeOpenAI
) -> None:
    for _ in range(2):
        reply = wrapped.chat.completions.create(model="m", messages=ask("poem"), temperature=0.9)
    assert fake_openai.calls(CHAT) == 1 and cache_info(reply).layer == "exact"  # type: ignore[union-attr]


@pytest.fixture
def bypass_stochastic(redis_url: str, namespace: str) -> Iterator[semcache.Cache]:
    config = semcache.CacheConfig(namespace=namespace, stochastic="bypass")
    with semcache.Cache(redis_url=redis_url, embedder=hash_embedder(), config=config) as cache:
        yield cache
        cache.flush()


def test_stochastic_bypass_policy_never_reads_or_writes(
    fake_openai: FakeOpenAI, bypass_stochastic: semcache.Cache
) -> None:
    raw = openai.OpenAI(base_url=fake_openai.base_url, api_key="test", max_retries=0)
    client = semcache.wrap(raw, cache=bypass_stochastic)
    for params in ({"temperature": 0.9}, {"n": 2, "temperature": 0}):
        for _ in range(2):
            reply = client.chat.completions.create(model="m", messages=ask("poem"), **params)  # type: ignore[call-overload]
        assert cache_info(reply).reason == "stochastic"  # type: ignore[union-attr]
    list(client.chat.completions.create(model="m", messages=ask("s"), temperature=1, stream=True))
    assert "stream_options" not in fake_openai.last(CHAT).body  # nothing recorded, nothing asked
    client.chat.completions.create(model="m", messages=ask("poem"), temperature=0)
    client.chat.completions.create(model="m", messages=ask("poem"), temperature=0)
    assert fake_openai.calls(CHAT) == 6
    client.close()


def test_wrap_rejects_what_it_cannot_wrap(wrap_cache: semcache.Cache, redis_url: str) -> None:
    with pytest.raises(TypeError, match=r"openai\.OpenAI"):
        semcache.wrap(object(), cache=wrap_cache)
    raw = openai.OpenAI(base_url="http://127.0.0.1:9/v1", api_key="test")
    with pytest.raises(TypeError, match="AsyncCache"):
        semcache.wrap(raw, cache=semcache.AsyncCache(redis_url=redis_url, embedder=hash_embedder()))
    with pytest.raises(semcache.ConfigurationError):
        semcache.wrap(raw, cache=wrap_cache, ttl=0)
    raw.close()


def test_import_semcache_works_without_openai_and_wrap_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['openai'] = None; import semcache\n"
        "try:\n    semcache.wrap(object())\n"
        "except ImportError as exc:\n    print(exc)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "semcache[openai]" in result.stdout
