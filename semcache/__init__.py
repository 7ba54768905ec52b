"""semcache: a layered exact + semantic cache for LLM calls on Redis.

Example::

    import semcache
    cache = semcache.Cache(namespace="app", threshold=0.9, ttl=3600)
    result = cache.lookup({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]})
    result.layer        # "exact" | "semantic" | None
"""

from semcache._errors import ConfigurationError as ConfigurationError
from semcache._errors import DimensionMismatchError as DimensionMismatchError
from semcache._errors import InvalidRequestError as InvalidRequestError
from semcache._errors import SearchModuleMissingError as SearchModuleMissingError
from semcache._errors import SemcacheError as SemcacheError
from semcache._errors import ServerError as ServerError
from semcache._shell import AsyncCache as AsyncCache
from semcache._shell import Cache as Cache
from semcache.accounting.prices import Price as Price
from semcache.accounting.prices import PriceTable as PriceTable
from semcache.accounting.stats import LayerStats as LayerStats
from semcache.accounting.stats import Stats as Stats
from semcache.core.canonical import SemanticPolicy as SemanticPolicy
from semcache.core.config import CacheConfig as CacheConfig
from semcache.core.plan import Plan as Plan
from semcache.core.stampede import Flight as Flight
from semcache.core.types import Entry as Entry
from semcache.core.types import IndexParams as IndexParams
from semcache.core.types import LookupResult as LookupResult
from semcache.decision.decide import GuardedDecision as GuardedDecision
from semcache.decision.decide import ThresholdDecision as ThresholdDecision
from semcache.decision.guard import Guard as Guard
from semcache.decision.opinion import EmbeddingJudge as EmbeddingJudge
from semcache.decision.opinion import SecondOpinion as SecondOpinion
from semcache.decision.protocol import Candidate as Candidate
from semcache.decision.protocol import Decision as Decision
from semcache.decision.protocol import Verdict as Verdict
from semcache.decision.thresholds import PerEntryThresholds as PerEntryThresholds
from semcache.decision.verifier import Verifier as Verifier
from semcache.embedding.embedders import Batching as Batching
from semcache.embedding.embedders import CallableEmbedder as CallableEmbedder
from semcache.embedding.embedders import Embedder as Embedder
from semcache.embedding.embedders import OpenAIEmbedder as OpenAIEmbedder
from semcache.embedding.embedders import SentenceTransformerEmbedder as SentenceTransformerEmbedder
from semcache.embedding.onnx import OnnxEmbedder as OnnxEmbedder
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
    "Flight",
    "Guard",
    "GuardedDecision",
    "IndexParams",
    "InvalidRequestError",
    "LayerStats",
    "LookupResult",
    "OnnxEmbedder",
    "OpenAIEmbedder",
    "PerEntryThresholds",
    "Plan",
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
