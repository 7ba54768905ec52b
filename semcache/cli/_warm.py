"""``semcache warm FILE``: load a cache from a JSONL file of (request, response) pairs.

Each line is ``{"request": {...}, "response": {...}}`` (optionally ``"tenant"`` and ``"tags"``).
Lines are read in batches: every request is checked first, then a batch's semantic texts are
embedded at once through the embedding cache and every write goes in one pipeline
(:meth:`semcache.Cache.store_many`). Nothing stops at a bad line: it is skipped and counted by
reason. Bulk writes are not on a request path, so they get a longer socket timeout than the cache's
(``--timeout``, 5 s), and a batch Redis did not take (a timeout, a restart) is written again, up to
``--retries`` times with a growing pause (the writes are idempotent); what still fails is counted,
and the command then exits with status 1. An entry counts as stored once it is in every layer.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from itertools import groupby
from pathlib import Path
from typing import Any

import click

from semcache.cli._app import JSON, NAMESPACE, REDIS_URL, connect, load_model, main
from semcache.cli._progress import on_terminal

NOT_STORED = "skipped: not stored (Redis unavailable or refused)"
Pair = tuple[Mapping[str, Any], Mapping[str, Any], str | None, tuple[str, ...]]


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@REDIS_URL
@NAMESPACE
@click.option("--batch", type=click.IntRange(min=1), default=256, show_default=True)
@click.option("--ttl", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Seconds each entry lives (default: CacheConfig's).")  # fmt: skip
@click.option("--embedder", default=None, metavar="MODULE:NAME",
              help="An Embedder, or a function returning one (default: local all-MiniLM-L6-v2).")  # fmt: skip
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=5.0,
              show_default=True, help="Socket timeout (s) of the bulk writes.")  # fmt: skip
@click.option("--retries", type=click.IntRange(min=0), default=3, show_default=True,
              help="Times a batch Redis did not take is written again.")  # fmt: skip
@JSON
def warm(
    file: Path,
    redis_url: str | None,
    namespace: str,
    batch: int,
    ttl: float | None,
    embedder: str | None,
    timeout: float,
    retries: int,
    as_json: bool,
) -> None:
    """Load FILE (JSONL of {"request": ..., "response": ...}) into the cache, in batches."""
    import semcache
    from semcache.cli._tune import load_embedder

    model = load_embedder(embedder) if embedder else None
    config = semcache.CacheConfig(namespace=namespace)
    counts: Counter[str] = Counter()
    url = connect(redis_url)
    cache = semcache.Cache(redis_url=url, config=config, embedder=model, timeout=timeout)
    with cache:
        load_model(cache)
        start = time.perf_counter()
        for pairs in _progress(_batches(file, batch, cache, counts), file, counts):
            counts["stored"] += _store(cache, pairs, ttl, counts, retries)
        seconds = time.perf_counter() - start
    _report(counts, seconds, as_json)
    if counts[NOT_STORED]:  # a script must not take a partial load for a whole one
        sys.exit(1)


def _batches(file: Path, size: int, cache: Any, counts: Counter[str]) -> Iterator[list[Pair]]:
    batch: list[Pair] = []
    with file.open(encoding="utf-8", errors="replace") as lines:
        for line in lines:
            if not line.strip():
                continue
            pair = _parse(line, cache, counts)
            if pair is not None:
                batch.append(pair)
            if len(batch) >= size:
                yield batch
                batch = []
    if batch:
        yield batch


def _parse(line: str, cache: Any, counts: Counter[str]) -> Pair | None:
    """One line as (request, response, tenant, tags), or None after counting why it is skipped."""
    from semcache import SemcacheError

    counts["lines"] += 1
    try:
        data = json.loads(line)
    except ValueError:
        return _skip(counts, "malformed JSON")
    if not isinstance(data, dict) or not isinstance(data.get("request"), dict):
        return _skip(counts, "no request object")
    if not isinstance(data.get("response"), dict):
        return _skip(counts, "missing response")
    tenant, tags = data.get("tenant"), data.get("tags") or []
    if tenant is not None and not isinstance(tenant, str):
        return _skip(counts, "invalid tenant")
    if not isinstance(tags, list) or not all(isinstance(t, str) and t for t in tags):
        return _skip(counts, "invalid tags")
    try:
        cache.plan(data["request"], tenant=tenant)
    except SemcacheError:
        return _skip(counts, "invalid request")
    return data["request"], data["response"], tenant, tuple(tags)


def _skip(counts: Counter[str], reason: str) -> Pair | None:
    """Count a skipped line by reason; None, so ``return _skip(...)`` reads as a skip."""
    counts[f"skipped: {reason}"] += 1
    return None


def _store(
    cache: Any, pairs: list[Pair], ttl: float | None, counts: Counter[str], retries: int
) -> int:
    """Store a batch, grouped by (tenant, tags) so each group is one store_many call; a group Redis
    did not wholly take is written again after a pause (0.5 s, doubling), up to ``retries`` times."""
    stored = 0
    ordered = sorted(pairs, key=lambda p: (p[2] or "", p[3]))
    for (tenant, tags), group in groupby(ordered, key=lambda p: (p[2], p[3])):
        items = [(request, response) for request, response, _, _ in group]
        for attempt in range(retries + 1):
            if attempt:
                counts["retried batches"] += 1
                time.sleep(0.5 * 2 ** (attempt - 1))
            done = cache.store_many(items, tenant=tenant, tags=tags, ttl=ttl or "default")
            if done == len(items):
                break
        if done < len(items):
            counts[NOT_STORED] += len(items) - done
        stored += done
    return stored


def _progress(
    batches: Iterator[list[Pair]], file: Path, counts: Counter[str]
) -> Iterator[list[Pair]]:
    """A tqdm bar (lines read of the file's total) on a terminal; nothing when stderr is piped."""
    if not on_terminal():
        yield from batches
        return
    from tqdm import tqdm

    with file.open("rb") as handle:
        total = sum(1 for line in handle if line.strip())
    with tqdm(desc=f"warming from {file.name}", total=total, unit="line", file=sys.stderr) as bar:
        for batch in batches:
            yield batch
            bar.update(counts["lines"] - bar.n)


def _report(counts: Counter[str], seconds: float, as_json: bool) -> None:
    """What was stored and skipped, and the rate: entries stored per second of reading, embedding
    and writing (the model's loading left out)."""
    skipped = {k.removeprefix("skipped: "): v for k, v in sorted(counts.items())
               if k.startswith("skipped: ")}  # fmt: skip
    rate = counts["stored"] / seconds if seconds > 0 else 0.0
    result = {"lines": counts["lines"], "stored": counts["stored"], "skipped": skipped,
              "retried_batches": counts["retried batches"], "entries_per_s": round(rate, 1)}  # fmt: skip
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    stored, lines = counts["stored"], counts["lines"]
    share = f" ({100 * stored / lines:.1f}%)" if lines else ""
    click.echo(f"{stored:,} of {lines:,} lines stored{share}")
    click.echo(f"  {rate:,.0f} entries/s ({seconds:.1f} s)")
    if result["retried_batches"]:
        click.echo(f"  {result['retried_batches']:,} batches written again after a failure")
    for reason, n in skipped.items():
        click.echo(f"  skipped {n:,}: {reason}")
