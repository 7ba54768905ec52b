"""``semcache stats``: the totals every process flushed, as a table, JSON or Prometheus text."""

from __future__ import annotations

import json
import socket

import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from semcache import Cache, CacheConfig
from semcache.cli import main
from tests.conftest import answer, chat


@pytest.fixture
def seeded(redis_url: str, namespace: str) -> str:
    """Two exact hits of gpt-4o-mini (12 prompt + 5 completion tokens each) and one miss."""
    config = CacheConfig(namespace=namespace, semantic=False)
    with Cache(redis_url=redis_url, config=config) as cache:
        cache.lookup(chat("Hello?"))
        cache.store(chat("Hello?"), answer("Hi."), latency_ms=400.0)
        cache.lookup(chat("Hello?"))
        cache.lookup(chat("Hello?"))
        cache.flush()
    return namespace


def run(*args: str) -> str:
    result = CliRunner().invoke(main, ["stats", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_json_reports_every_process_totals(redis_url: str, seeded: str) -> None:
    data = json.loads(run("--redis-url", redis_url, "--namespace", seeded, "--json"))
    exact = data["layers"]["exact"]
    assert data["namespace"] == seeded
    assert (exact["lookups"], exact["hits"], exact["tokens_saved"]) == (3, 2, 2 * 17)
    assert exact["hit_rate"] == pytest.approx(2 / 3)
    # gpt-4o-mini: $0.15 per million prompt tokens, $0.60 per million completion tokens.
    assert exact["usd_saved"] == pytest.approx(2 * (12 * 0.15 + 5 * 0.60) / 1e6)
    assert {"p50_ms", "p99_ms", "latency_saved_ms"} <= exact.keys()
    assert set(data["layers"]) == {"exact", "semantic", "embedding"}
    assert set(data["overhead"]) == {"usd", "ms"} and "net_usd_saved" in data


def test_table_lists_each_layer_and_the_net(redis_url: str, seeded: str) -> None:
    output = run("--redis-url", redis_url, "-n", seeded, "--days", "1")
    rows = {line.split()[0]: line.split() for line in output.splitlines() if line.strip()}
    assert rows["exact"][1:3] == ["3", "2"]  # lookups, hits
    assert f"namespace {seeded} (redis" in output and "net $" in output


def test_prometheus_output_parses(redis_url: str, seeded: str) -> None:
    text = run("--redis-url", redis_url, "-n", seeded, "--prometheus")
    samples = [s for f in text_string_to_metric_families(text) for s in f.samples]
    hits = [s for s in samples if s.name == "semcache_hits_total" and s.labels["layer"] == "exact"]
    assert [s.value for s in hits] == [2.0]


def test_an_unreachable_redis_is_an_error_not_zeros() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = CliRunner().invoke(main, ["stats", "--redis-url", f"redis://127.0.0.1:{port}"])
    assert result.exit_code == 1
    assert result.output.startswith("Error: Redis unreachable at redis://127.0.0.1:")
    assert len(result.output.splitlines()) == 1
