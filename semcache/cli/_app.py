"""The root command group, the options every command shares, and how commands reach Redis.

Every expected failure (Redis unreachable, a Redis without the search module, the embedded server
missing, an unwritable file) becomes one line on stderr and a non-zero exit, never a traceback, and
is found before any long work starts.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click
from redis.exceptions import RedisError

from semcache._errors import SemcacheError
from semcache.cli._progress import say, step
from semcache.redis.urls import redact

REDIS_URL = click.option(
    "--redis-url",
    envvar="SEMCACHE_REDIS_URL",
    default=None,
    help="Redis with the search module (default: the embedded local server).",
)
NAMESPACE = click.option("--namespace", "-n", default="default", show_default=True)
JSON = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")

#: Failures a command reports in one line: semcache's own, Redis', the file system's.
EXPECTED = (SemcacheError, RedisError, OSError, ImportError)


class _UsageLine(click.ClickException):
    """A usage mistake as one line (click's default prints three), still with exit code 2."""

    exit_code = 2


class _Main(click.Group):
    """The ``semcache`` group: turns expected failures of any command into one line."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            where = f" (see `{exc.ctx.command_path} -h`)" if exc.ctx is not None else ""
            raise _UsageLine(exc.format_message() + where) from None
        except click.ClickException:
            raise
        except EXPECTED as exc:
            raise click.ClickException(one_line(exc)) from None


def one_line(exc: BaseException) -> str:
    """An exception as one line: its first line, prefixed by its kind when that adds meaning."""
    text = (str(exc).strip().splitlines() or [""])[0]
    if isinstance(exc, SemcacheError | ImportError) and text:
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="semcache")
def main() -> None:
    """semcache: a layered exact + semantic cache for LLM calls on Redis."""


def connect(redis_url: str | None) -> str:
    """The URL a command uses, checked: the given one, else the embedded server (started, and
    announced, when it was not running). Raises a one-line ClickException when Redis does not
    answer or has no search module."""
    if redis_url is None:
        from semcache.server import EmbeddedServer

        server = EmbeddedServer()
        if not server.ping():
            with step("starting the embedded Redis"):
                server.start()
        if server.launched:
            say(server.started_message())
        redis_url = server.url
    _check(redis_url)
    return redis_url


def _check(url: str) -> None:
    import redis

    from semcache.redis import admin

    try:
        admin.list_indexes(url, timeout=3)
    except redis.ResponseError as exc:
        if "unknown command" in str(exc).lower():
            raise click.ClickException(
                f"{redact(url)} has no search module: use Redis 8, Redis Stack, a managed Redis "
                "with search, or leave out --redis-url for semcache's embedded server"
            ) from None
        raise click.ClickException(f"Redis at {redact(url)} refused: {exc}") from None
    except (RedisError, OSError) as exc:
        raise click.ClickException(f"Redis unreachable at {redact(url)}: {exc}") from None


def open_cache(redis_url: str | None, namespace: str, *, semantic: bool = True, **kw: Any) -> Any:
    """A Cache for a command, on a checked Redis; the semantic layer (and its model) only when the
    command needs it."""
    import semcache

    config = semcache.CacheConfig(namespace=namespace, semantic=semantic, **kw)
    return semcache.Cache(redis_url=connect(redis_url), config=config)


def load_model(cache_or_embedder: Any) -> None:
    """Load the embedding model (and a verifier) now, saying so, instead of on the first embed."""
    from semcache.embedding.preload import preload

    with step("loading the embedding model"):
        preload(cache_or_embedder)


def writable(path: Path | None, option: str) -> None:
    """Fail now, in one line, when ``path`` cannot be written (before a long run, not after)."""
    if path is None:
        return
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise click.BadParameter(f"{parent} is not a directory", param_hint=option)
    target = path if path.exists() else parent
    if (path.exists() and path.is_dir()) or not os.access(target, os.W_OK):
        raise click.BadParameter(f"cannot write {path}", param_hint=option)
