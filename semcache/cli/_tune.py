"""``semcache tune PAIRS``: the threshold that reaches a target precision with the most recall."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Any

import click

from semcache.cli._app import JSON, load_model, main, writable
from semcache.cli._progress import replay_progress, say


@main.command()
@click.argument(
    "data", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option("--sample", is_flag=True, help="Tune on the labelled pairs shipped with semcache.")
@click.option("--target-precision", type=click.FloatRange(0, 1), default=0.95, show_default=True)
@click.option(
    "--grid",
    default="0.50:1.00:0.01",
    show_default=True,
    metavar="A:B:STEP",
    help="Thresholds to evaluate.",
)
@click.option(
    "--embedder",
    default=None,
    metavar="MODULE:NAME",
    help="An Embedder, or a function returning one (default: local all-MiniLM-L6-v2).",
)
@click.option(
    "--guard/--no-guard",
    default=True,
    show_default=True,
    help="Decide pairs with the default decision stage (lexical guard and verifier), as the "
    "cache does; --no-guard: the threshold alone (logs always use the default decision).",
)
@click.option(
    "--configs",
    is_flag=True,
    help="Also report the hit rate at the target precision of each decision configuration "
    "(global threshold, guard, guard + verifier, per-entry thresholds; pairs only).",
)
@JSON
@click.option(
    "--plot",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Save the distributions and curves to this image (PNG, SVG or PDF).",
)
@click.option(
    "--no-embedding-cache",
    "no_cache",
    is_flag=True,
    help="Embed every text again instead of reusing the vectors kept on disk by earlier runs.",
)
def tune(
    data: Path | None,
    sample: bool,
    target_precision: float,
    grid: str,
    embedder: str | None,
    guard: bool,
    configs: bool,
    as_json: bool,
    plot: Path | None,
    no_cache: bool,
) -> None:
    """Recommend a semantic threshold from DATA: labelled pairs ({"query", "candidate",
    "equivalent"} JSONL) or a request log whose lines carry a "group". Exits 1 when no threshold
    reaches the target precision. Vectors are kept on disk (in semcache's data directory) by
    (model id, text), so a second run on the same texts embeds nothing."""
    from semcache import tuning

    data = _data_path(data, sample)
    try:
        thresholds = tuning.threshold_grid(grid)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--grid") from exc
    writable(plot, "--plot")
    model = load_embedder(embedder)
    if not no_cache:
        from semcache.cli._embcache import DiskCachedEmbedder

        model = DiskCachedEmbedder(model)
    report, scores = _evaluate(data, model, thresholds, guard)
    found = tuning.recommend(report["curve_points"], target_precision)
    report["target_precision"] = target_precision
    report["recommended"] = found.point.to_json() if found.point else None
    if plot is not None:
        _plot(plot, scores, report["curve_points"], found.point)
        say(f"wrote the plot to {plot}")
    points = report.pop("curve_points")
    report["curve"] = [p.to_json() for p in points]
    calibration = _calibration(scores, target_precision) if configs else None
    if calibration is not None:
        report["configurations"] = [row.to_json() for row in calibration]
    click.echo(json.dumps(report, indent=2) if as_json else _text(report, points))
    if calibration is not None and not as_json:
        from semcache.decision.calibrate import table

        click.echo("\n" + table(calibration, target_precision))
    sys.exit(0 if found.reached else 1)


def _data_path(data: Path | None, sample: bool) -> Path:
    if sample and data is not None:
        raise click.UsageError("give DATA or --sample, not both")
    if sample:
        from semcache.datasets import pairs_path

        return pairs_path()
    if data is None:
        raise click.UsageError("give a DATA file, or --sample for the shipped labelled pairs")
    return data


def _calibration(scores: Any, target: float) -> Any:
    """Hit rate at the target precision per decision configuration (labelled pairs only)."""
    if scores is None:
        raise click.ClickException("--configs needs labelled pairs, not a log")
    from semcache.decision.calibrate import calibrate
    from semcache.decision.decide import default_decision

    queries = [p.query for p in scores.pairs]
    candidates = [p.candidate for p in scores.pairs]
    verifier = getattr(default_decision(), "verifier", None)
    return calibrate(queries, candidates, scores.similarities, scores.labels, target=target,
                     verifier=verifier)  # fmt: skip


def _evaluate(
    data: Path, model: Any, thresholds: list[float], guard: bool
) -> tuple[dict[str, Any], Any]:
    from semcache import tuning

    if _is_pairs(data):
        parsed = tuning.read_pairs(data)
        if not parsed.pairs:
            raise click.ClickException(f"{data}: no usable pair")
        scores = _score(parsed.pairs, model)
        if guard:
            scores = scores.decided(tuning.default_decision())
        positives = int(scores.labels.sum())
        report = {
            "source": str(data),
            "kind": "pairs",
            "guard": guard,
            "decision": repr(scores.decision) if guard else "threshold",
            "pairs": len(parsed.pairs),
            "equivalent": positives,
            "not_equivalent": len(parsed.pairs) - positives,
        }
        report["curve_points"] = tuning.curve(scores, thresholds)
    else:
        parsed_log = tuning.read_log(data)
        if not any(r.group is not None for r in parsed_log.records):
            raise click.ClickException(f"{data}: a log needs a 'group' on its lines to be tuned on")
        load_model(model)
        sweep = tuning.evaluate_log(parsed_log.records, model, thresholds, progress=replay_progress)
        report = {"source": str(data), "kind": "log", "requests": len(parsed_log.records)}
        report["curve_points"] = tuning.log_curve(sweep)
        parsed, scores = parsed_log, None  # type: ignore[assignment]
    for bad in parsed.bad_lines:
        click.echo(f"skipped {bad}", err=True)
    report["bad_lines"] = [
        {"source": b.source, "line": b.line, "error": b.error} for b in parsed.bad_lines
    ]
    return report, scores


def _score(pairs: Any, model: Any) -> Any:
    """Score pairs; the model loads (and says so) before the texts are embedded."""
    from semcache import tuning

    load_model(model)
    return tuning.score_pairs(pairs, model)


def _is_pairs(path: Path) -> bool:
    with path.open(encoding="utf-8", errors="replace") as handle:
        for raw in handle:
            if raw.strip():
                try:
                    first = json.loads(raw)
                except json.JSONDecodeError:
                    continue
                return isinstance(first, dict) and "query" in first
    return True


def load_embedder(spec: str | None) -> Any:
    """The embedder named by ``MODULE:NAME`` (an Embedder or a factory), else the local model."""
    import semcache

    if spec is None:
        from semcache.embedding.default import default_local_embedder

        return default_local_embedder(threads=2)
    module, _, name = spec.partition(":")
    try:
        found = getattr(importlib.import_module(module), name or "embedder")
    except (ImportError, AttributeError) as exc:
        raise click.BadParameter(f"cannot load {spec!r}: {exc}", param_hint="--embedder") from exc
    return found if isinstance(found, semcache.Embedder) else found()


def _text(report: dict[str, Any], points: list[Any]) -> str:
    size = (
        f"{report['pairs']:,} pairs ({report['equivalent']:,} equivalent)"
        if report["kind"] == "pairs"
        else f"{report['requests']:,} requests"
    )
    lines = [f"{size} from {report['source']}"]
    if report["bad_lines"]:
        lines.append(f"{len(report['bad_lines'])} bad lines skipped")
    best = report["recommended"]
    target = report["target_precision"]
    if best is None:
        top = max(
            (p for p in points if p.precision is not None), key=lambda p: p.precision, default=None
        )
        lines.append(f"no threshold reaches precision {target:.3f}")
        if top is not None:
            lines.append(
                f"most precise: threshold {top.threshold:.3f} with precision "
                f"{top.precision:.3f}, recall {top.recall:.3f}"
            )
        return "\n".join(lines)
    lines += [
        f"recommended threshold for precision >= {target:.3f}: {best['threshold']:.3f}",
        f"  precision {best['precision']:.3f}  recall {best['recall']:.3f}  F1 {best['f1']:.3f}  "
        f"false-hit rate {best['false_hit_rate']:.3f}  expected hit rate {best['hit_rate']:.3f}",
    ]
    return "\n".join(lines)


def _plot(path: Path, scores: Any, points: list[Any], mark: Any) -> None:
    from semcache import tuning
    from semcache.replay._plot import pyplot

    plt = pyplot()
    panels = 2 if scores is not None else 1
    fig, axes = plt.subplots(1, panels, figsize=(6 * panels, 4), squeeze=False)
    if scores is not None:
        tuning.plot_distributions(scores, threshold=mark.threshold if mark else None, ax=axes[0][0])
    tuning.plot_curves(points, mark=mark, ax=axes[0][-1])
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
