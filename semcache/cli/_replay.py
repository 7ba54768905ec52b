"""``semcache replay LOG``: what a cache would have done on a request log, calling no model."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import click

from semcache.cli._app import JSON, REDIS_URL, connect, load_model, main, writable
from semcache.cli._progress import replay_progress, say, step


@main.command()
@click.argument("log", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--responses",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Batch API output file whose responses match LOG's custom_id lines.",
)
@click.option("--sample", is_flag=True, help="Replay the sample log shipped with semcache.")
@click.option(
    "--threshold",
    "-t",
    type=click.FloatRange(-1, 1),
    default=None,
    help="Semantic threshold (cosine similarity; default: CacheConfig's).",
)
@click.option(
    "--sweep",
    default=None,
    metavar="A:B:STEP",
    help="Also evaluate every threshold from A to B (one pass, no second replay).",
)
@REDIS_URL
@click.option(
    "--namespace",
    "-n",
    default=None,
    help="Replay into this namespace and keep it (default: a throwaway one, removed after).",
)
@click.option(
    "--embedder",
    default=None,
    metavar="MODULE:NAME",
    help="An Embedder, or a function returning one (default: local all-MiniLM-L6-v2).",
)
@click.option(
    "--feedback",
    is_flag=True,
    help="Label each semantic lookup of a grouped request through cache.feedback (right when the "
    "served or nearest entry is of its group), so per-entry thresholds learn during the replay.",
)
@click.option(
    "--per-entry",
    "per_entry",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=None,
    metavar="DELTA",
    help="Use per-entry thresholds (with the guard) bounding each entry's wrong-answer rate by DELTA.",
)
@click.option(
    "--verifier/--no-verifier",
    default=True,
    show_default=True,
    help="Decide with the default decision's learned verifier; --no-verifier: the guard alone.",
)
@JSON
@click.option(
    "--html",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write a self-contained HTML report with plots to this file.",
)
def replay(
    log: Path | None,
    responses: Path | None,
    sample: bool,
    threshold: float | None,
    sweep: str | None,
    redis_url: str | None,
    namespace: str | None,
    embedder: str | None,
    feedback: bool,
    per_entry: float | None,
    verifier: bool,
    as_json: bool,
    html: Path | None,
) -> None:
    """Feed LOG (plain JSONL or an OpenAI Batch API input file) through a real cache in order,
    storing the logged response on each miss, and report hits, false hits, savings and latency per
    layer."""
    from semcache.replay._logs import read_log
    from semcache.replay._replay import threshold_grid

    path = _log_path(log, sample)
    try:
        grid = threshold_grid(sweep) if sweep else []
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--sweep") from exc
    writable(html, "--html")
    parsed = read_log(path, responses=responses)
    for bad in parsed.bad_lines:
        click.echo(f"skipped {bad}", err=True)
    if not parsed.records:
        raise click.ClickException(f"{path}: no usable request in the log")
    if feedback and grid:
        raise click.UsageError("--feedback teaches the cache as it goes: it cannot go with --sweep")
    report = _run(
        parsed, threshold, grid, redis_url, namespace, embedder, feedback, per_entry, verifier
    )
    if html is not None:
        from semcache.replay._html import render_html

        with step("writing the HTML report"):
            page = render_html(report, title=f"semcache replay of {path.name}")
        html.write_text(page, "utf-8")
        say(f"wrote the HTML report to {html}")
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        from semcache.replay._text import render_text

        click.echo(render_text(report, source=path.name, kept=namespace is not None))
    if namespace is None:
        say(
            f"the replay used the throwaway namespace {report.namespace}, removed after it, so "
            "`semcache stats` does not show it; keep one with --namespace NAME"
        )


def _log_path(log: Path | None, sample: bool) -> Path:
    if sample and log is not None:
        raise click.UsageError("give LOG or --sample, not both")
    if sample:
        from semcache.datasets import sample_log_path

        return sample_log_path()
    if log is None:
        raise click.UsageError("give a LOG file, or --sample for the shipped sample log")
    return log


def _run(
    parsed: Any,
    threshold: float | None,
    grid: list[float],
    url: str | None,
    namespace: str | None,
    embedder: str | None,
    feedback: bool = False,
    per_entry: float | None = None,
    verifier: bool = True,
) -> Any:
    import semcache
    from semcache.cli._tune import load_embedder
    from semcache.replay._replay import replay as run_replay

    name = namespace or f"replay-{uuid.uuid4().hex[:12]}"
    decision = None
    if per_entry is not None or not verifier:
        thresholds = semcache.PerEntryThresholds(delta=per_entry) if per_entry is not None else None
        from semcache.decision.decide import default_decision

        default = default_decision()
        decision = semcache.GuardedDecision(
            guard=semcache.Guard(), per_entry=thresholds,
            verifier=getattr(default, "verifier", None) if verifier else None,
        )  # fmt: skip
    # a KNN search: the report shows each miss's nearest entry, and --feedback labels it
    config = semcache.CacheConfig(namespace=name, ttl=None, decision=decision, search="knn")
    model = load_embedder(embedder) if embedder else None
    url = connect(url)
    with semcache.Cache(redis_url=url, config=config, embedder=model) as cache:
        load_model(cache)
        try:
            return run_replay(
                cache, parsed, threshold=threshold, sweep=grid, progress=replay_progress,
                feedback=feedback,
            )  # fmt: skip
        finally:
            if namespace is None:
                cache.delete_namespace()
