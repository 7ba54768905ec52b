"""OpenTelemetry attributes on every lookup, read back with opentelemetry-sdk's in-memory exporter."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

pytest.importorskip("opentelemetry.sdk")

from conftest import answer, chat
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import semcache

_EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="module")
def provider() -> TracerProvider:
    found = trace.get_tracer_provider()
    if not isinstance(found, TracerProvider):  # the process-wide provider can be set only once
        found = TracerProvider()
        found.add_span_processor(SimpleSpanProcessor(_EXPORTER))
        trace.set_tracer_provider(found)
    return found


@pytest.fixture
def spans(provider: TracerProvider) -> Iterator[InMemorySpanExporter]:
    _EXPORTER.clear()
    yield _EXPORTER
    _EXPORTER.clear()


def lookups(exporter: InMemorySpanExporter) -> list[dict[str, object]]:
    return [
        dict(s.attributes or {})
        for s in exporter.get_finished_spans()
        if s.name == "semcache.lookup"
    ]


def test_every_lookup_is_a_span_with_layer_and_savings(
    spans: InMemorySpanExporter, wrap_cache: semcache.Cache
) -> None:
    request = chat("traced question")
    wrap_cache.lookup(request)
    wrap_cache.store(request, answer("traced answer"))
    wrap_cache.lookup(request)
    miss, hit = lookups(spans)
    assert miss["semcache.layer"] == "miss" and miss["semcache.hit"] is False
    assert miss["semcache.reason"] and "semcache.saved.usd" not in miss
    assert hit["semcache.layer"] == "exact" and hit["semcache.similarity"] == 1.0
    assert (
        hit["semcache.saved.prompt_tokens"] == 12 and hit["semcache.saved.completion_tokens"] == 5
    )
    assert hit["semcache.saved.usd"] > 0  # gpt-4o-mini is priced
    assert hit["semcache.namespace"] == wrap_cache.namespace


def test_the_current_span_of_a_wrapped_call_carries_the_attributes(
    spans: InMemorySpanExporter, wrapped: openai.OpenAI
) -> None:
    tracer = trace.get_tracer("app")
    for name in ("first", "second"):
        with tracer.start_as_current_span(name):
            wrapped.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "in a trace"}]
            )
    parents = {s.name: dict(s.attributes or {}) for s in spans.get_finished_spans()}
    assert parents["first"]["semcache.layer"] == "miss"
    assert parents["second"]["semcache.layer"] == "exact"
    assert parents["second"]["semcache.saved.usd"] > 0
    children = [s for s in spans.get_finished_spans() if s.name == "semcache.lookup"]
    assert {s.parent.span_id for s in children if s.parent} == {
        s.context.span_id for s in spans.get_finished_spans() if s.name in ("first", "second")
    }
