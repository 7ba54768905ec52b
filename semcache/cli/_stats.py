"""``semcache stats``: what a namespace's cache saved and cost, per layer, over every process."""

from __future__ import annotations

import json

import click

from semcache.cli._app import JSON, NAMESPACE, REDIS_URL, main, open_cache
from semcache.cli._progress import say
from semcache.redis.urls import redact


@main.command()
@REDIS_URL
@NAMESPACE
@click.option(
    "--days",
    type=click.IntRange(min=1),
    default=None,
    help="Only the last N days (UTC, today included; default: every day kept).",
)
@JSON
@click.option("--prometheus", is_flag=True, help="Print the Prometheus text exposition.")
def stats(
    redis_url: str | None, namespace: str, days: int | None, as_json: bool, prometheus: bool
) -> None:
    """Lookups, hit rates, latency percentiles, tokens, dollars and time saved per layer, the
    cache's own overhead, and the net saving, summed over every process that used the namespace."""
    with open_cache(redis_url, namespace, semantic=False) as cache:
        found = cache.stats(days=days)
    if found.source != "redis":
        where = redact(redis_url) if redis_url else "the embedded server"
        raise click.ClickException(f"Redis unavailable at {where}")
    if as_json:
        click.echo(json.dumps(found.to_dict(), indent=2))
    elif prometheus:
        click.echo(found.prometheus(), nl=False)
    else:
        click.echo(found.table())
    if not found.lookups and not found.stores:
        say(
            f"namespace {namespace!r} has recorded no lookups yet: `semcache replay` uses a "
            "throwaway namespace unless given --namespace NAME, and `semcache stats` reads "
            "--namespace (default 'default')"
        )
