"""The ``semcache`` command line: ``server``, ``flush``, ``invalidate``, ``doctor`` and more.

Each group of commands lives in its own private module and registers itself on :data:`main`.
"""

from __future__ import annotations

try:
    import click
except ImportError as exc:  # pragma: no cover - depends on the environment
    from semcache._errors import missing_extra

    raise missing_extra("click", "cli") from exc

from semcache.cli._app import main as main
from semcache.cli import _server as _server  # noqa: F401  (registers commands)
from semcache.cli import _stats as _stats  # noqa: F401  (registers commands)
from semcache.cli import _replay as _replay  # noqa: F401  (registers commands)
from semcache.cli import _tune as _tune  # noqa: F401  (registers commands)

__all__ = ["click", "main"]
