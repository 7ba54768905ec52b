"""Every exception semcache raises on purpose.

::

    SemcacheError
    ├── ConfigurationError          a mistake in how the cache was set up (raised at construction)
    │   ├── SearchModuleMissingError  the Redis server has no search module with vector support
    │   └── DimensionMismatchError    the namespace's index was built for another vector size
    ├── InvalidRequestError (ValueError)   a request body semcache cannot key (raised before any I/O)
    └── ServerError                  the embedded local Redis could not be found, started or stopped

A missing optional dependency raises :class:`ImportError` naming the extra to install.
Redis going away is never raised from a lookup or a store: the cache steps aside instead.
"""

from __future__ import annotations


class SemcacheError(Exception):
    """Base class of every error semcache raises on purpose."""


class ConfigurationError(SemcacheError):
    """The cache was configured in a way that cannot work."""


class SearchModuleMissingError(ConfigurationError):
    """The Redis server lacks the search module (RediSearch with vector fields)."""


class DimensionMismatchError(ConfigurationError):
    """The embedder's dimension differs from the one the namespace's index was created with."""


class InvalidRequestError(SemcacheError, ValueError):
    """The request body is malformed: semcache cannot build a cache key for it."""


class ServerError(SemcacheError):
    """The embedded Redis server could not be found, started or stopped."""


def missing_extra(package: str, extra: str) -> ImportError:
    """The ImportError raised when an optional dependency is not installed."""
    return ImportError(
        f"{package} is not installed; install it with: pip install 'semcache[{extra}]'"
    )
