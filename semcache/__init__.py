"""semcache: a layered exact + semantic cache for LLM calls on Redis.

Example::

    import semcache
    cache = semcache.Cache(namespace="app", threshold=0.9, ttl=3600)
    result = cache.lookup({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]})
    result.layer        # "exact" | "semantic" | None
"""

from semcache._cache import AsyncCache as AsyncCache
from semcache._cache import Cache as Cache
from semcache._canonical import SemanticPolicy as SemanticPolicy
from semcache._decide import Candidate as Candidate
from semcache._decide import Decision as Decision
from semcache._decide import GuardedDecision as GuardedDecision
from semcache._decide import ThresholdDecision as ThresholdDecision
from semcache._decide import Verdict as Verdict
from semcache._embedders import Batching as Batching
from semcache._embedders import CallableEmbedder as CallableEmbedder
from semcache._embedders import Embedder as Embedder
from semcache._embedders import OpenAIEmbedder as OpenAIEmbedder
from semcache._embedders import SentenceTransformerEmbedder as SentenceTransformerEmbedder
from semcache._errors import ConfigurationError as ConfigurationError
from semcache._errors import DimensionMismatchError as DimensionMismatchError
from semcache._errors import InvalidRequestError as InvalidRequestError
from semcache._errors import SearchModuleMissingError as SearchModuleMissingError
from semcache._errors import SemcacheError as SemcacheError
from semcache._errors import ServerError as ServerError
from semcache._guard import Guard as Guard
from semcache._opinion import EmbeddingJudge as EmbeddingJudge
from semcache._opinion import SecondOpinion as SecondOpinion
from semcache._prices import Price as Price
from semcache._prices import PriceTable as PriceTable
from semcache._redis import IndexParams as IndexParams
from semcache._stats import LayerStats as LayerStats
from semcache._stats import Stats as Stats
from semcache._thresholds import PerEntryThresholds as PerEntryThresholds
from semcache._types import CacheConfig as CacheConfig
from semcache._types import Entry as Entry
from semcache._types import LookupResult as LookupResult
from semcache._verifier import Verifier as Verifier
from semcache.openai import wrap as wrap

__version__ = "0.1.0"

__all__ = [
    "AsyncCache",
    "Batching",
    "Cache",
    "CacheConfig",
    "CallableEmbedder",
    "Candidate",
    "ConfigurationError",
    "Decision",
    "DimensionMismatchError",
    "Embedder",
    "EmbeddingJudge",
    "Entry",
    "Guard",
    "GuardedDecision",
    "IndexParams",
    "InvalidRequestError",
    "LayerStats",
    "LookupResult",
    "OpenAIEmbedder",
    "PerEntryThresholds",
    "Price",
    "PriceTable",
    "SearchModuleMissingError",
    "SecondOpinion",
    "SemanticPolicy",
    "SemcacheError",
    "SentenceTransformerEmbedder",
    "ServerError",
    "Stats",
    "ThresholdDecision",
    "Verdict",
    "Verifier",
    "wrap",
]
