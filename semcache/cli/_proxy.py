"""``semcache proxy``: serve the cache as an OpenAI-compatible HTTP gateway (``semcache.proxy``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from semcache.cli._app import NAMESPACE, REDIS_URL, main


@main.command()
@click.option("--upstream", required=True, envvar="SEMCACHE_UPSTREAM",
              help="The upstream's base URL, as an OpenAI client takes it (https://api.openai.com/v1).")  # fmt: skip
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True)
@REDIS_URL
@NAMESPACE
@click.option("--tenant-header", default=None, help="A request header that names the tenant.")
@click.option("--api-keys", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help='A JSON file {"api key": "tenant"}; other keys are refused.')  # fmt: skip
@click.option("--max-body", type=click.IntRange(min=1), default=8 * 1024 * 1024, show_default=True,
              help="Largest request body in bytes (413 past it).")  # fmt: skip
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=600.0,
              show_default=True, help="Seconds to wait for the upstream (504 past it).")  # fmt: skip
@click.option("--ttl", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Seconds a stored answer lives (default: the cache's TTL).")  # fmt: skip
@click.option("--exact-only", is_flag=True, help="No semantic layer (and no embedding model).")
def proxy(
    upstream: str,
    host: str,
    port: int,
    redis_url: str | None,
    namespace: str,
    tenant_header: str | None,
    api_keys: Path | None,
    max_body: int,
    timeout: float,
    ttl: float | None,
    exact_only: bool,
) -> None:
    """An OpenAI-compatible caching gateway: point any client's base URL at http://HOST:PORT/v1."""
    import semcache
    from semcache.proxy import ProxyConfig, serve

    try:
        config = ProxyConfig(
            upstream=upstream, tenant_header=tenant_header, api_keys=_keys(api_keys),
            max_body=max_body, timeout=timeout, defaults={"ttl": ttl} if ttl is not None else {},
        )  # fmt: skip
    except semcache.ConfigurationError as exc:
        raise click.UsageError(str(exc)) from exc
    settings = semcache.CacheConfig(namespace=namespace, semantic=not exact_only)
    cache = semcache.AsyncCache(redis_url=redis_url, config=settings)
    serve(config, host=host, port=port, cache=cache, own_cache=True, log_level="warning")


def _keys(path: Path | None) -> dict[str, str]:
    if path is None:
        return {}
    try:
        found: Any = json.loads(path.read_text())
    except ValueError as exc:
        raise click.BadParameter(f"{path} is not JSON: {exc}", param_hint="--api-keys") from exc
    if not isinstance(found, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in found.items()
    ):
        raise click.BadParameter('expected {"api key": "tenant", ...}', param_hint="--api-keys")
    return found
