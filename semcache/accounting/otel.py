"""OpenTelemetry for every lookup, when ``opentelemetry-api`` is installed (``semcache[otel]``).

Each lookup becomes a ``semcache.lookup`` span (a child of whatever span is current: the app's, or
an OpenAI instrumentation's around ``create``), and the same attributes go on that current span, so
a trace of a cached call shows it was not billed. Without the package, or without an SDK
configured, this costs one check per lookup. No I/O here: exporting is the SDK's business.

Attributes: ``semcache.layer`` (``exact``, ``semantic``, ``l1`` or ``miss``), ``semcache.hit``,
``semcache.similarity``, ``semcache.reason`` (why it missed), ``semcache.namespace``,
``semcache.key``, ``semcache.lookup_ms``, and on a hit ``semcache.saved.prompt_tokens``,
``semcache.saved.completion_tokens``, ``semcache.saved.usd``, ``semcache.saved.latency_ms``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

try:
    from opentelemetry import trace
except ImportError:  # pragma: no cover - depends on the environment
    trace = None  # type: ignore[assignment]

_SAVED = {
    "prompt_tokens_saved": "semcache.saved.prompt_tokens",
    "completion_tokens_saved": "semcache.saved.completion_tokens",
    "usd_saved": "semcache.saved.usd",
    "latency_saved_ms": "semcache.saved.latency_ms",
}


def attributes(namespace: str, result: Any, counters: Mapping[str, float]) -> dict[str, Any]:
    """The span attributes of one lookup (its result and the counters accounting made of it)."""
    found: dict[str, Any] = {
        "semcache.layer": result.layer or "miss",
        "semcache.hit": bool(result.hit),
        "semcache.namespace": namespace,
        "semcache.lookup_ms": float(result.lookup_ms),
    }
    if result.key:
        found["semcache.key"] = result.key
    if result.similarity is not None:
        found["semcache.similarity"] = float(result.similarity)
    if not result.hit:
        found["semcache.reason"] = result.reason or "miss"
        return found
    for name, attribute in _SAVED.items():
        value = counters.get(f"{result.layer}:{name}")
        if value is not None:
            found[attribute] = float(value)
    return found


def record(namespace: str, result: Any, counters: Mapping[str, float]) -> None:
    """Emit the lookup's span and annotate the current span (a no-op without OpenTelemetry)."""
    if trace is None:
        return
    current = trace.get_current_span()
    if not current.is_recording() and isinstance(
        trace.get_tracer_provider(), trace.ProxyTracerProvider
    ):
        return  # no SDK configured: nothing would record the span
    tracer = trace.get_tracer("semcache")
    found = attributes(namespace, result, counters)
    end = time.time_ns()
    start = end - int(result.lookup_ms * 1e6)
    span = tracer.start_span("semcache.lookup", start_time=start, attributes=found)
    span.end(end_time=end)
    if current.is_recording():
        current.set_attributes(found)
