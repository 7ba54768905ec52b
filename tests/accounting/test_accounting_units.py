"""The no-I/O parts of accounting: prices, token counts, histograms, renderings, batching."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

import semcache
from semcache.accounting.accounting import Accounting, api_embedding_model, flush_commands
from semcache.accounting.prices import Price, PriceTable
from semcache.accounting.stats import BUCKETS_MS, Stats, bucket, quantile
from semcache.accounting.tokens import count_tokens, encoding_name, reported_usage
from semcache.core.ops import Commands


def test_price_cost_bills_cached_prompt_tokens_at_the_cached_rate() -> None:
    price = Price(input=2.0, output=8.0, cached_input=0.5)
    # 100 uncached prompt tokens at $2/MTok, 900 cached at $0.5/MTok, 10 completion at $8/MTok.
    assert price.cost(1000, 10, cached=900) == pytest.approx((100 * 2 + 900 * 0.5 + 10 * 8) / 1e6)
    assert Price(input=2.0).cost(1000, 0, cached=900) == pytest.approx(1000 * 2 / 1e6)


def test_price_table_prefers_overrides_and_never_guesses() -> None:
    table = PriceTable({"gpt-4o-mini": Price(input=1.0, output=1.0)})
    assert table.cost("gpt-4o-mini", 1_000_000, 0) == pytest.approx(1.0)
    assert table.price("no-such-model-anywhere") is None
    assert table.cost("no-such-model-anywhere", 10, 10) is None
    dated = PriceTable().price("gpt-4o-mini-2024-07-18")
    assert dated is not None and dated.input == pytest.approx(0.15)


def test_a_bad_override_is_a_configuration_error() -> None:
    with pytest.raises(semcache.ConfigurationError):
        Price(input=-1.0)
    with pytest.raises(semcache.ConfigurationError):
        PriceTable({"m": 0.5})  # type: ignore[dict-item]


def test_reported_usage_reads_chat_and_responses_shapes() -> None:
    chat = {"usage": {"prompt_tokens": 10, "completion_tokens": 2,
                      "prompt_tokens_details": {"cached_tokens": 8}}}  # fmt: skip
    responses = {"usage": {"input_tokens": 7, "output_tokens": 3,
                           "input_tokens_details": {"cached_tokens": 0}}}  # fmt: skip
    assert (u := reported_usage(chat)) is not None and (u.prompt, u.completion, u.cached) == (
        10,
        2,
        8,
    )
    assert (u := reported_usage(responses)) is not None and (u.prompt, u.completion) == (7, 3)
    assert reported_usage({"usage": None}) is None


def test_unknown_and_unshipped_models_fall_back_to_o200k_base() -> None:
    assert encoding_name("gpt-4o-mini") == "o200k_base"
    assert encoding_name("gpt-3.5-turbo") == "cl100k_base"
    assert encoding_name("text-davinci-003") == "o200k_base"  # p50k_base is not shipped
    assert encoding_name("my-local-llama") == "o200k_base"


OFFLINE = textwrap.dedent(
    """
    import socket
    def refuse(*args, **kwargs):
        raise OSError("network disabled in this test")
    socket.socket.connect = refuse
    socket.create_connection = refuse
    socket.getaddrinfo = refuse
    import tiktoken
    from semcache.accounting.tokens import _encoding, count_tokens
    assert isinstance(_encoding("cl100k_base"), tiktoken.Encoding)
    print(count_tokens("hello world", "gpt-3.5-turbo"), count_tokens("hello world", "unknown"))
    """
)


def test_tiktoken_works_offline_from_the_shipped_files(tmp_path: Path) -> None:
    env = {**os.environ, "TIKTOKEN_CACHE_DIR": str(tmp_path)}
    run = subprocess.run([sys.executable, "-c", OFFLINE], capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["2", "2"]
    assert "network disabled" not in run.stderr  # tiktoken never tried to download
    url = "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"
    assert (tmp_path / hashlib.sha1(url.encode()).hexdigest()).exists()
    assert (tmp_path / "9b5ad71b2ce5302211f9c61530b329a4922fc6a4").exists()  # cl100k_base


def test_count_tokens_matches_known_counts() -> None:
    assert count_tokens("hello world", "gpt-4o") == 2
    assert count_tokens("", "gpt-4o") == 0


def test_histogram_quantiles_interpolate_inside_buckets() -> None:
    counts = [0] * len(BUCKETS_MS)
    counts[bucket(0.9)] = 50  # (0.75, 1]
    counts[bucket(4.0)] = 50  # (3, 5]
    assert BUCKETS_MS[bucket(0.9)] == 1 and BUCKETS_MS[bucket(4.0)] == 5
    assert quantile(tuple(counts), 0.5) == pytest.approx(1.0)
    assert quantile(tuple(counts), 0.99) == pytest.approx(3 + 2 * 49 / 50)
    assert quantile((0,) * len(BUCKETS_MS), 0.5) is None
    counts[-1] = 1000  # beyond the last bound: reported as that bound
    assert quantile(tuple(counts), 0.99) == BUCKETS_MS[-2]


def test_only_openai_or_overridden_embedders_are_priced() -> None:
    table = PriceTable({"my-embedder": Price(input=0.1)})
    assert (
        api_embedding_model("openai:text-embedding-3-small@256", table) == "text-embedding-3-small"
    )
    assert api_embedding_model("my-embedder", table) == "my-embedder"
    assert api_embedding_model("sentence-transformers/all-MiniLM-L6-v2", table) is None


def test_flush_commands_keep_integer_and_float_fields_apart() -> None:
    pending = {("ns", "2024-05-01"): {"exact:hits": 2.0, "exact:usd_saved": 0.25, "exact:b3": 0.0}}
    commands = flush_commands(pending, {("ns", "tt:abc"): 2})
    key = "semcache:stats:ns:2024-05-01"
    assert ("HINCRBY", key, "exact:hits", 2) in commands
    assert ("HINCRBYFLOAT", key, "exact:usd_saved", "0.25") in commands
    assert not any(c[2:3] == ("exact:b3",) for c in commands)  # zero deltas are not sent
    assert ("ZINCRBY", "semcache:stats-hits:ns", 2, "tt:abc") in commands


def test_a_failed_flush_keeps_its_counters_for_the_next_one() -> None:
    accounting = Accounting(embedding_model="local", prices=PriceTable(), clock=lambda: 0.0)
    accounting._record("ns", {"exact:hits": 1.0}, None)
    flow = accounting.write()
    assert isinstance(next(flow), Commands)
    with pytest.raises(ConnectionError):
        flow.throw(ConnectionError("Redis went away"))  # what a shell does when the pipeline fails
    retry = accounting.write()
    commands = next(retry).commands
    assert ("HINCRBY", "semcache:stats:ns:1970-01-01", "exact:hits", 1) in commands


def test_empty_stats_render_and_parse() -> None:
    stats = Stats.from_counters("ns", {})
    families = list(text_string_to_metric_families(stats.prometheus()))
    assert {f.name for f in families} >= {"semcache_lookups", "semcache_lookup_duration_seconds"}
    assert stats.layers["exact"].p50_ms is None
    assert "exact" in stats.table()
    assert stats.to_dict()["layers"]["embedding"]["calls"] == 0
