"""The root command group and the options every command shares."""

from __future__ import annotations

from typing import Any

import click

REDIS_URL = click.option(
    "--redis-url",
    envvar="SEMCACHE_REDIS_URL",
    default=None,
    help="Redis with the search module (default: the embedded local server).",
)
NAMESPACE = click.option("--namespace", "-n", default="default", show_default=True)
JSON = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="semcache")
def main() -> None:
    """semcache: a layered exact + semantic cache for LLM calls on Redis."""


def open_cache(redis_url: str | None, namespace: str, *, semantic: bool = True, **kw: Any) -> Any:
    """A Cache for a command; the semantic layer (and its model) only when the command needs it."""
    import semcache

    config = semcache.CacheConfig(namespace=namespace, semantic=semantic, **kw)
    return semcache.Cache(redis_url=redis_url, config=config)
