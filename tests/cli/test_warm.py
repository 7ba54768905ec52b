"""``semcache warm FILE``: bulk loading with batched embeddings, pipelined writes, counted skips."""

from __future__ import annotations

import json
from pathlib import Path

import redis
from click.testing import CliRunner

from semcache import Cache, CacheConfig
from semcache.cli import main
from tests.conftest import answer, chat, hash_embedder

EMBEDDER = "tests.conftest:hash_embedder"


def write(path: Path, lines: list[object]) -> Path:
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    return path


def warm(url: str, namespace: str, path: Path, *extra: str, status: int = 0) -> dict:
    args = ["warm", str(path), "--redis-url", url, "-n", namespace, "--embedder", EMBEDDER]
    result = CliRunner().invoke(main, [*args, "--json", *extra])
    assert result.exit_code == status, result.output
    return json.loads(result.output)


def test_warm_loads_good_lines_and_counts_the_rest_by_reason(
    tmp_path: Path, redis_url: str, namespace: str
) -> None:
    good = [{"request": chat(f"question {i}"), "response": answer(f"answer {i}")} for i in range(7)]
    lines = [
        *good,
        "{not json",
        {"request": {"model": "m", "messages": "not a list"}, "response": answer("x")},
        {"request": chat("no answer")},
        {"response": answer("no request")},
        {"request": chat("bad tags"), "response": answer("x"), "tags": [3]},
        {"request": chat("tenant one"), "response": answer("t"), "tenant": "acme", "tags": ["faq"]},
    ]
    counts = warm(redis_url, namespace, write(tmp_path / "pairs.jsonl", lines), "--batch", "3")
    assert counts.pop("entries_per_s") > 0  # stored entries per second, reported
    assert counts == {
        "lines": 13,
        "stored": 8,
        "skipped": {"malformed JSON": 1, "invalid request": 1, "missing response": 1,
                    "no request object": 1, "invalid tags": 1},
        "retried_batches": 0,
    }  # fmt: skip
    config = CacheConfig(namespace=namespace)
    with Cache(redis_url=redis_url, embedder=hash_embedder(), config=config) as cache:
        for i in range(7):
            result = cache.lookup(chat(f"question {i}"))
            assert result.layer == "exact" and result.response == answer(f"answer {i}")
        assert cache.lookup(chat("tenant one")).layer is None  # stored for its tenant only
        assert cache.lookup(chat("tenant one"), tenant="acme").layer == "exact"
        assert cache.invalidate(tags=("faq",), tenant="acme") == 3  # tags were stored
        cache.flush()


def test_warmed_entries_answer_paraphrases(
    tmp_path: Path, redis_url: str, namespace: str, embedder: object
) -> None:
    lines = [{"request": chat("How do I reset my password?"), "response": answer("Use the link.")}]
    path = write(tmp_path / "pairs.jsonl", lines)
    result = CliRunner().invoke(
        main, ["warm", str(path), "--redis-url", redis_url, "-n", namespace]
    )
    assert result.exit_code == 0 and "1 of 1 lines stored" in result.output
    assert " entries/s (" in result.output.splitlines()[1]  # the rate, on its own line
    with Cache(redis_url=redis_url, embedder=embedder, namespace=namespace) as cache:  # type: ignore[arg-type]
        hit = cache.lookup(chat("how can I reset my password"))
        assert hit.layer == "semantic" and hit.response == answer("Use the link.")
        cache.flush()


def test_store_many_embeds_once_per_distinct_text(redis_url: str, namespace: str) -> None:
    calls: list[int] = []
    inner = hash_embedder()

    def embed(texts: list[str]) -> object:
        calls.append(len(texts))
        return inner.embed(texts)

    from semcache import CallableEmbedder

    counted = CallableEmbedder(embed, model_id="counted", dimension=16)
    with Cache(redis_url=redis_url, embedder=counted, namespace=namespace) as cache:
        pairs = [(chat(f"q{i % 5}", temperature=i // 5 / 10), answer("a")) for i in range(20)]
        assert cache.store_many(pairs) == 20
        assert calls == [5]  # one batch, each distinct semantic text once
        assert all(cache.lookup(q).layer == "exact" for q, _ in pairs)
        assert cache.store_many(pairs) == 20 and calls == [5]  # the embedding cache answers now
        cache.flush()


def test_warm_through_a_cluster(tmp_path: Path, cluster_url: str, namespace: str) -> None:
    lines = [{"request": chat(f"c{i}"), "response": answer(str(i))} for i in range(20)]
    counts = warm(cluster_url, namespace, write(tmp_path / "pairs.jsonl", lines))
    assert (counts["stored"], counts["skipped"]) == (20, {})
    with Cache(redis_url=cluster_url, embedder=hash_embedder(), namespace=namespace) as cache:
        assert [cache.lookup(chat(f"c{i}")).layer for i in range(20)] == ["exact"] * 20
        cache.flush()


def paused_writes(url: str, ms: int) -> redis.Redis:
    """Hold every client's writes on the server for ``ms`` (CLIENT PAUSE WRITE); the caller unpauses."""
    client = redis.Redis.from_url(url)
    client.execute_command("CLIENT", "PAUSE", ms, "WRITE")
    return client


def test_warm_writes_a_batch_again_after_redis_did_not_take_it(
    tmp_path: Path, redis_url: str, namespace: str
) -> None:
    lines = [{"request": chat(f"r{i}"), "response": answer(str(i))} for i in range(12)]
    path = write(tmp_path / "pairs.jsonl", lines)
    control = paused_writes(redis_url, 2000)  # longer than the first write's timeout, and than
    # the command's start on a loaded machine (600 ms was not: its first write came after it)
    try:
        counts = warm(redis_url, namespace, path, "--timeout", "0.2", "--retries", "3")
    finally:
        control.execute_command("CLIENT", "UNPAUSE")
    assert counts["stored"] == 12 and counts["skipped"] == {}
    assert counts["retried_batches"] >= 1  # the paused first attempt was written again
    with Cache(redis_url=redis_url, embedder=hash_embedder(), namespace=namespace) as cache:
        assert [cache.lookup(chat(f"r{i}")).layer for i in range(12)] == ["exact"] * 12
        cache.flush()


def test_warm_counts_what_redis_never_took(tmp_path: Path, redis_url: str, namespace: str) -> None:
    lines = [{"request": chat(f"n{i}"), "response": answer(str(i))} for i in range(5)]
    path = write(tmp_path / "pairs.jsonl", lines)
    control = paused_writes(redis_url, 10_000)
    try:
        counts = warm(redis_url, namespace, path, "--timeout", "0.1", "--retries", "1", status=1)
    finally:
        control.execute_command("CLIENT", "UNPAUSE")
    assert counts["stored"] == 0 and counts["retried_batches"] == 1
    assert counts["skipped"] == {"not stored (Redis unavailable or refused)": 5}
