"""The ``semcache`` command line: ``server``, ``flush``, ``invalidate``, ``doctor`` and more.

Each group of commands lives in its own private module and registers itself on :data:`main`.
"""

from __future__ import annotations

try:
    import click
except ImportError as exc:  # pragma: no cover - depends on the environment
    from semcache._errors import missing_extra

    raise missing_extra("click", "cli") from exc

from semcache.cli import _proxy as _proxy
from semcache.cli import _replay as _replay
from semcache.cli import _server as _server
from semcache.cli import _stats as _stats
from semcache.cli import _tune as _tune
from semcache.cli import _warm as _warm
from semcache.cli._app import main as main

__all__ = ["click", "main"]
