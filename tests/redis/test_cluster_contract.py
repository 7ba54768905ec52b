"""The core and wrapper contract tests, run again against the local Redis Cluster.

Importing a test function into this module collects it here, where ``redis_url`` is the cluster's
URL, so every fixture built on it (``cache``, ``wrap_cache``, ``wrapped``) talks to the cluster.
Left out: tests that start a server of their own (Redis down, no search module) or inject a
single-node ``redis.Redis`` (see test_cluster.py for an injected ``RedisCluster``).
"""

from __future__ import annotations

import pytest

from tests.openai.test_wrapper import (  # noqa: F401
    test_chat_miss_then_exact_hit_returns_the_same_completion,
    test_completions_and_responses_hit_with_their_own_types,
    test_responses_function_calls_round_trip,
    test_semantic_hit_is_marked_with_layer_and_similarity,
    test_tool_calls_and_refusals_round_trip,
)
from tests.test_async_cache import (  # noqa: F401
    test_async_dimension_mismatch_raises_on_connect,
    test_async_exact_semantic_and_tenant_isolation,
    test_concurrent_async_lookups_are_answered_independently,
    test_sync_and_async_caches_read_each_others_entries,
)
from tests.test_cache import (  # noqa: F401
    test_a_document_with_a_foreign_tenant_tag_is_never_served,
    test_changed_dimension_is_a_clear_error_at_construction,
    test_corrupt_exact_entry_is_a_miss_and_is_removed,
    test_corrupt_semantic_entry_is_a_miss_and_is_removed,
    test_entry_expires_with_its_ttl_and_jitter_stays_below_it,
    test_exact_hit_returns_the_stored_response,
    test_invalidate_by_key_tenant_and_namespace,
    test_long_semantic_text_uses_the_exact_layer_only,
    test_malformed_request_raises_before_any_io,
    test_no_hit_across_different_earlier_turns,
    test_no_hit_across_namespaces,
    test_no_hit_across_request_scopes_even_for_identical_text,
    test_no_hit_across_tenants,
    test_no_semantic_hit_across_embedding_models,
    test_read_only_cache_never_stores,
    test_semantic_hit_on_a_paraphrase_reports_its_similarity,
    test_sliding_ttl_renews_on_hit,
    test_stochastic_policy_bypass,
    test_streamed_and_plain_requests_share_one_entry,
    test_tag_invalidation_removes_both_layers_and_nothing_else,
    test_threshold_override_turns_the_same_match_into_a_miss,
    test_unrelated_question_misses,
    test_version_bump_retires_older_entries,
    test_wrong_size_embedding_cache_value_is_recomputed,
)


@pytest.fixture(scope="session")
def redis_url(cluster_url: str) -> str:
    """Every fixture of this module that asks for Redis gets the cluster."""
    return cluster_url
