"""A ``prometheus_client`` collector for a cache's stats (``semcache[prometheus]``).

Example::

    from prometheus_client import REGISTRY, start_http_server
    from semcache.prometheus import SemcacheCollector

    REGISTRY.register(SemcacheCollector(cache))
    start_http_server(9100)

**Per replica or cluster-wide.** By default each scrape reads the namespace's totals from Redis,
which every process of the namespace adds into: they are cluster-wide, so scrape them from one
replica (or aggregate with ``max``, never ``sum``, across replicas). With ``local=True`` each
replica reports only its own counters since it started; those add up with ``sum``.

The metric names and labels are the ones of ``Stats.prometheus()`` (see the README's accounting
section): the collector parses that one exposition rather than defining the metrics twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from semcache._errors import missing_extra

try:
    from prometheus_client.metrics_core import Metric
    from prometheus_client.parser import text_string_to_metric_families
    from prometheus_client.registry import Collector
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise missing_extra("prometheus-client", "prometheus") from exc

__all__ = ["SemcacheCollector"]


class SemcacheCollector(Collector):
    """Collects ``cache.stats()`` on every scrape.

    Args:
        cache: a :class:`semcache.Cache` (an ``AsyncCache``'s stats are async: collect from a
            ``Cache`` on the same namespace, or use ``local=True`` with either).
        namespace: whose stats (default: the cache's namespace).
        local: this process's counters only (per replica) instead of every process's (from Redis).
    """

    def __init__(self, cache: Any, *, namespace: str | None = None, local: bool = False) -> None:
        self.cache = cache
        self.namespace = namespace
        self.local = local

    def collect(self) -> Iterator[Metric]:
        stats = self.cache.stats(namespace=self.namespace, local=self.local)
        yield from text_string_to_metric_families(stats.prometheus())
