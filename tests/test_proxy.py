"""``semcache.proxy`` with the real openai client pointed at it: the same contract as wrap() (hits
return the same body types, streams replay, errors relay), plus the proxy's own rules (tenants,
limits, Cache-Control, status headers, /metrics, /healthz)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx2
import openai
import pytest
from openai.types import Completion, CreateEmbeddingResponse
from openai.types.chat import ChatCompletion
from openai.types.responses import Response
from openai_server import FakeOpenAI
from proxy_server import RunningProxy

import semcache
from semcache.proxy import ProxyConfig

CHAT = "chat/completions"


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


@pytest.fixture
def proxy(fake_openai: FakeOpenAI, wrap_cache: semcache.Cache) -> Iterator[RunningProxy]:
    with RunningProxy(ProxyConfig(upstream=fake_openai.base_url), cache=wrap_cache) as running:
        yield running


@pytest.fixture
def client(proxy: RunningProxy) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=proxy.base_url, api_key="test", max_retries=0) as c:
        yield c


def status(raw: object) -> tuple[str, str]:
    headers = raw.headers  # type: ignore[attr-defined]
    return headers["x-semcache-layer"], headers["x-portkey-cache-status"]


def test_chat_miss_then_hit_returns_the_same_completion(
    client: openai.OpenAI, fake_openai: FakeOpenAI
) -> None:
    create = client.chat.completions.with_raw_response.create
    first = create(model="m", messages=ask("hello proxy"))
    second = create(model="m", messages=ask("hello proxy"))
    assert status(first) == ("none", "MISS") and status(second) == ("exact", "HIT")
    assert isinstance(second.parse(), ChatCompletion)
    assert second.parse().model_dump() == first.parse().model_dump()
    assert second.headers["x-semcache-similarity"] == "1.0"
    assert fake_openai.calls(CHAT) == 1


def test_completions_responses_and_embeddings_hit_with_their_own_types(
    client: openai.OpenAI, fake_openai: FakeOpenAI
) -> None:
    for _ in range(2):
        completion = client.completions.create(model="m", prompt="say hi")
        response = client.responses.create(model="m", input="say hi")
        vectors = client.embeddings.create(model="e", input=["a", "b"])
    assert isinstance(completion, Completion) and completion.choices[0].text == "echo: say hi"
    assert isinstance(response, Response) and response.output_text == "echo: say hi"
    assert isinstance(vectors, CreateEmbeddingResponse) and len(vectors.data) == 2
    assert fake_openai.calls("completions") == fake_openai.calls("responses") == 1
    assert fake_openai.embedded == ["a", "b"]
    raw = client.embeddings.with_raw_response.create(model="e", input=["a", "b"])
    assert status(raw) == ("embeddings", "HIT")


def test_semantic_hit_reports_similarity(
    fake_openai: FakeOpenAI, redis_url: str, namespace: str
) -> None:
    from tests.conftest import normalising_embedder

    cache = semcache.Cache(
        redis_url=redis_url, embedder=normalising_embedder(), namespace=namespace
    )
    config = ProxyConfig(upstream=fake_openai.base_url)
    with (
        RunningProxy(config, cache=cache) as proxy,
        openai.OpenAI(base_url=proxy.base_url, api_key="t", max_retries=0) as client,
    ):
        client.chat.completions.create(model="m", messages=ask("What is Redis?"))
        raw = client.chat.completions.with_raw_response.create(
            model="m", messages=ask("what is redis")
        )
    assert status(raw) == ("semantic", "SEMANTIC HIT")
    assert float(raw.headers["x-semcache-similarity"]) >= cache.config.threshold
    assert raw.parse().choices[0].message.content == "echo: What is Redis?"
    cache.flush()
    cache.close()


def test_streams_are_relayed_as_events_and_replay_on_a_hit(
    client: openai.OpenAI, fake_openai: FakeOpenAI
) -> None:
    def text(stream: object) -> str:
        return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)  # type: ignore[attr-defined]

    first = text(client.chat.completions.create(model="m", messages=ask("stream me"), stream=True))
    with client.chat.completions.with_streaming_response.create(
        model="m", messages=ask("stream me"), stream=True
    ) as second:
        assert second.headers["content-type"].startswith("text/event-stream")
        assert status(second) == ("exact", "HIT")
        replayed = text(second.parse())
    assert first == replayed == "echo: stream me"
    unstreamed = client.chat.completions.create(model="m", messages=ask("stream me"))
    assert unstreamed.choices[0].message.content == first
    events = list(client.responses.create(model="m", input="events", stream=True))
    again = list(client.responses.create(model="m", input="events", stream=True))
    assert events[-1].type == again[-1].type == "response.completed"
    assert again[-1].response.output_text == events[-1].response.output_text == "echo: events"  # type: ignore[union-attr]
    deltas = "".join(e.delta for e in again if e.type == "response.output_text.delta")
    assert deltas == "echo: events"
    assert fake_openai.calls(CHAT) == fake_openai.calls("responses") == 1


@pytest.mark.parametrize(
    ("code", "error"), [(429, openai.RateLimitError), (500, openai.InternalServerError)]
)
def test_upstream_errors_pass_through_unchanged_and_are_never_stored(
    client: openai.OpenAI, fake_openai: FakeOpenAI, code: int, error: type[Exception]
) -> None:
    plain = openai.OpenAI(base_url=fake_openai.base_url, api_key="test", max_retries=0)
    fake_openai.fail_next(code)
    with pytest.raises(error) as direct:
        plain.chat.completions.create(model="m", messages=ask("flaky"))
    fake_openai.fail_next(code)
    with pytest.raises(error) as proxied:
        client.chat.completions.create(model="m", messages=ask("flaky"))
    assert proxied.value.body == direct.value.body  # type: ignore[attr-defined]
    assert proxied.value.response.headers["retry-after-ms"] == "1"  # type: ignore[attr-defined]
    client.chat.completions.create(model="m", messages=ask("flaky"))
    assert fake_openai.calls(CHAT) == 3  # both errors and then a miss: nothing stored
    plain.close()


def test_unknown_paths_pass_through(client: openai.OpenAI, fake_openai: FakeOpenAI) -> None:
    assert client.models.list().data[0].id == "fake-model"
    with pytest.raises(openai.NotFoundError):
        client.get("/nothing-here", cast_to=object)
    assert fake_openai.received[-1].path == "/v1/nothing-here"


def test_cache_control_and_semcache_headers(client: openai.OpenAI, fake_openai: FakeOpenAI) -> None:
    create = client.chat.completions.with_raw_response.create
    create(model="m", messages=ask("fresh"))
    fresh = create(model="m", messages=ask("fresh"), extra_headers={"Cache-Control": "no-cache"})
    assert status(fresh) == ("none", "REFRESH")
    create(model="m", messages=ask("private"), extra_headers={"Cache-Control": "no-store"})
    create(model="m", messages=ask("private"), extra_headers={"x-semcache-no-store": "1"})
    assert status(create(model="m", messages=ask("private"))) == ("none", "MISS")
    assert fake_openai.calls(CHAT) == 5
    assert all(
        not k.lower().startswith("x-semcache") for r in fake_openai.received for k in r.headers
    )
    with pytest.raises(openai.BadRequestError, match="x-semcache-ttl must be a number"):
        create(model="m", messages=ask("x"), extra_headers={"x-semcache-ttl": "soon"})


def test_a_client_cannot_pick_a_tenant_unless_configured(
    client: openai.OpenAI, fake_openai: FakeOpenAI
) -> None:
    with pytest.raises(openai.BadRequestError, match="sets the tenant itself"):
        client.chat.completions.create(
            model="m", messages=ask("x"), extra_headers={"x-semcache-tenant": "acme"}
        )
    with pytest.raises(openai.BadRequestError, match="sets the tenant itself"):
        client.chat.completions.create(
            model="m", messages=ask("x"), extra_body={"semcache": {"tenant": "acme"}}
        )
    assert fake_openai.calls(CHAT) == 0


def test_tenants_from_a_configured_header_never_share(
    fake_openai: FakeOpenAI, wrap_cache: semcache.Cache
) -> None:
    config = ProxyConfig(upstream=fake_openai.base_url, tenant_header="x-tenant")
    with RunningProxy(config, cache=wrap_cache) as proxy:
        layers = [_layer(proxy, "same question", {"x-tenant": t}) for t in ("a", "b", "a", "b")]
    assert layers == ["none", "none", "exact", "exact"]
    assert fake_openai.calls(CHAT) == 2


def test_tenants_from_an_api_key_map_and_unknown_keys_refused(
    fake_openai: FakeOpenAI, wrap_cache: semcache.Cache
) -> None:
    config = ProxyConfig(upstream=fake_openai.base_url, api_keys={"key-a": "a", "key-b": "b"})
    with RunningProxy(config, cache=wrap_cache) as proxy:
        layers = [
            _layer(proxy, "q", {"authorization": f"Bearer {k}"})
            for k in ("key-a", "key-b", "key-a")
        ]
        stranger = openai.OpenAI(base_url=proxy.base_url, api_key="stranger", max_retries=0)
        with stranger, pytest.raises(openai.AuthenticationError, match="unknown API key"):
            stranger.chat.completions.create(model="m", messages=ask("q"))
    assert layers == ["none", "none", "exact"]
    assert fake_openai.calls(CHAT) == 2


def test_bad_json_and_large_bodies_are_clear_4xx(
    fake_openai: FakeOpenAI, wrap_cache: semcache.Cache
) -> None:
    config = ProxyConfig(upstream=fake_openai.base_url, max_body=1000)
    with RunningProxy(config, cache=wrap_cache) as proxy:
        url = f"{proxy.base_url}/chat/completions"
        bad = httpx2.post(url, content=b"{not json", headers={"content-type": "application/json"})
        array = httpx2.post(url, json=[1, 2])
        big = httpx2.post(url, json=chat_body("x" * 2000))
    assert (bad.status_code, bad.json()["error"]["code"]) == (400, "invalid_json")
    assert (array.status_code, array.json()["error"]["code"]) == (400, "invalid_body")
    assert (big.status_code, big.json()["error"]["code"]) == (413, "body_too_large")
    assert fake_openai.calls(CHAT) == 0


def test_upstream_timeout_is_a_504_and_nothing_is_stored(
    fake_openai: FakeOpenAI, wrap_cache: semcache.Cache
) -> None:
    config = ProxyConfig(upstream=fake_openai.base_url, timeout=0.3)
    with RunningProxy(config, cache=wrap_cache) as proxy:
        slow = httpx2.post(f"{proxy.base_url}/chat/completions", json=chat_body("wait [slow]"))
        fake_openai.slow_seconds = 0
        after = _layer(proxy, "wait [slow]", {})
    assert (slow.status_code, slow.json()["error"]["code"]) == (504, "upstream_timeout")
    assert after == "none"


def test_unreachable_upstream_is_a_502(wrap_cache: semcache.Cache) -> None:
    with RunningProxy(ProxyConfig(upstream="http://127.0.0.1:9/v1"), cache=wrap_cache) as proxy:
        reply = httpx2.post(f"{proxy.base_url}/chat/completions", json=chat_body("hi"))
    assert (reply.status_code, reply.json()["error"]["code"]) == (502, "upstream_error")


def test_metrics_and_healthz(
    proxy: RunningProxy, client: openai.OpenAI, wrap_cache: semcache.Cache
) -> None:
    for _ in range(3):
        client.chat.completions.create(model="m", messages=ask("count me"))
    health = httpx2.get(f"{proxy.url}/healthz")
    metrics = httpx2.get(f"{proxy.url}/metrics")
    assert health.json() == {"status": "ok", "cache": "up"}
    assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
    hits = [line for line in metrics.text.splitlines() if line.startswith("semcache_hits_total")]
    exact = [line for line in hits if 'layer="exact"' in line]
    assert exact and float(exact[0].rsplit(" ", 1)[1]) == 2


def test_config_mistakes_are_clear(fake_openai: FakeOpenAI) -> None:
    with pytest.raises(semcache.ConfigurationError, match="not both"):
        ProxyConfig(upstream=fake_openai.base_url, tenant_header="x-t", api_keys={"k": "t"})
    with pytest.raises(semcache.ConfigurationError, match="http"):
        ProxyConfig(upstream="localhost:8000")
    with pytest.raises(semcache.ConfigurationError, match="unknown semcache option"):
        ProxyConfig(upstream=fake_openai.base_url, defaults={"tll": 5})


def chat_body(text: str) -> dict[str, object]:
    return {"model": "m", "messages": ask(text)}


def _layer(proxy: RunningProxy, text: str, headers: dict[str, str]) -> str:
    reply = httpx2.post(f"{proxy.base_url}/chat/completions", json=chat_body(text), headers=headers)
    assert reply.status_code == 200, reply.text
    json.loads(reply.content)
    return reply.headers["x-semcache-layer"]
