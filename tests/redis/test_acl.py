"""A Redis user whose ACL refuses commands the cache runs: a configuration the cache says so about,
never a Redis outage (the breaker stays closed, the exact layer keeps serving)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import redis

import semcache
from tests.conftest import answer, chat, hash_embedder


@pytest.fixture
def limited_url(redis_url: str, namespace: str) -> Iterator[str]:
    """The URL of the user :func:`_deny` makes, deleted afterwards."""
    admin = redis.Redis.from_url(redis_url)
    user = f"acl-{namespace}"
    yield redis_url.replace("://", f"://{user}:pw@", 1)
    admin.acl_deluser(user)
    admin.close()


def _deny(redis_url: str, namespace: str, *denied: str) -> None:
    admin = redis.Redis.from_url(redis_url)
    admin.acl_setuser(f"acl-{namespace}", enabled=True, passwords=["+pw"], keys=["~*"],
                      channels=["*"], commands=["+@all", *(f"-{c}" for c in denied)])  # fmt: skip
    admin.close()


def test_a_user_who_may_not_search_keeps_the_exact_layer_and_stops_embedding(
    redis_url: str, namespace: str, limited_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    with semcache.Cache(
        redis_url=redis_url, embedder=hash_embedder(), namespace=namespace
    ) as owner:
        owner.store(chat("Stored?"), answer("Yes."))
    _deny(redis_url, namespace, "ft.search")
    texts: list[str] = []
    embedder = semcache.CallableEmbedder(
        lambda batch: (texts.extend(batch), hash_embedder().embed(batch))[1],
        model_id="test-hash", dimension=16,
    )  # fmt: skip
    with semcache.Cache(redis_url=limited_url, embedder=embedder, namespace=namespace) as cache:
        first = cache.lookup(chat("Never stored?"))
        assert first.layer is None and first.reason == "search-denied"
        embedded = len(texts)
        later = [cache.lookup(chat(f"New question {i}?")) for i in range(5)]
        assert {r.reason for r in later} == {"search-denied"}
        assert len(texts) == embedded  # no embedding for a search that cannot run
        assert cache.lookup(chat("Stored?")).layer == "exact"
        assert cache._breaker.opened == 0 and cache._breaker._failures == 0
        said = [r for r in caplog.records if "may not search" in r.getMessage()]
        assert len(said) == 1 and said[0].levelno == logging.ERROR
    with semcache.Cache(
        redis_url=redis_url, embedder=hash_embedder(), namespace=namespace
    ) as owner:
        owner.flush()


def test_a_user_who_may_not_make_the_index_is_told_at_construction(
    redis_url: str, namespace: str, limited_url: str
) -> None:
    # It used to read "Redis unreachable at start", open the breaker and turn the exact layer off.
    _deny(redis_url, namespace, "ft.info", "ft.create")
    with pytest.raises(semcache.ConfigurationError, match=r"FT\.CREATE"):
        semcache.Cache(redis_url=limited_url, embedder=hash_embedder(), namespace=namespace)
    config = semcache.CacheConfig(namespace=namespace, semantic=False)  # what the message offers
    with semcache.Cache(redis_url=limited_url, config=config) as exact_only:
        assert exact_only.store(chat("Exact only?"), answer("Yes."))
        assert exact_only.lookup(chat("Exact only?")).layer == "exact"
        exact_only.flush()
