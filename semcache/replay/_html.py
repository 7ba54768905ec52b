"""A replay report as one self-contained HTML page: tables and inline SVG plots, no network."""

from __future__ import annotations

import html
import io
from collections.abc import Sequence
from typing import Any

import numpy as np

from semcache.replay._figures import Figures, Outcome
from semcache.replay._plot import pyplot
from semcache.replay._replay import ReplayReport
from semcache.replay._text import render_text

_STYLE = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}
pre{background:#f6f8fa;padding:1em;overflow-x:auto}
.plots{display:flex;flex-wrap:wrap;gap:1.5em}.plots figure{margin:0;width:520px}
figcaption{font-weight:600;margin-bottom:.3em}figcaption small{font-weight:400;color:#555}
svg{max-width:100%;height:auto}
"""


def render_html(report: ReplayReport, *, title: str = "semcache replay") -> str:
    """The report with plots: hit rate over the log, the nearest entry's similarity for hits and
    misses (with the threshold marked), savings per layer, and the sweep when there is one."""
    plt = pyplot()
    t = report.figures.threshold
    plots = [
        ("Hit rate over the log", "", _hit_rate_over_log(plt, report.outcomes)),
        (
            "Similarity of the nearest entry, hits and misses",
            f"every semantic lookup with a candidate; the dashed line is the threshold ({t:.3f})",
            _similarities(plt, report.outcomes, t),
        ),
        ("Tokens and dollars saved per layer", "", _savings(plt, report.figures)),
    ]
    if report.sweep:
        note = f"the dashed line is the threshold replayed ({t:.3f})"
        plots.append(("Threshold sweep", note, _sweep(plt, report.sweep, t)))
    figures = "".join(
        f"<figure><figcaption>{html.escape(name)}"
        + (f"<br><small>{html.escape(note)}</small>" if note else "")
        + f"</figcaption>{svg}</figure>"
        for name, note, svg in plots
    )
    bad = "".join(f"<li>{html.escape(str(b))}</li>" for b in report.bad_lines)
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
        f"<pre>{html.escape(render_text(report))}</pre><div class='plots'>{figures}</div>"
        + (f"<h2>Bad lines</h2><ul>{bad}</ul>" if bad else "")
        + "</body></html>"
    )


def _svg(plt: Any, fig: Any) -> str:
    buffer = io.StringIO()
    fig.tight_layout()
    with plt.rc_context({"svg.fonttype": "none"}):  # text as text: no glyph ids to collide
        fig.savefig(buffer, format="svg")
    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def _hit_rate_over_log(plt: Any, outcomes: Sequence[Outcome]) -> str:
    fig, ax = plt.subplots(figsize=(6, 3.6))
    x = np.arange(1, len(outcomes) + 1)
    for name, layers in (
        ("all hits", ("exact", "semantic")),
        ("exact", ("exact",)),
        ("semantic", ("semantic",)),
    ):
        hits = np.cumsum([o.layer in layers for o in outcomes])
        ax.plot(x, hits / x, label=name)
    ax.set(xlabel="requests replayed", ylabel="cumulative hit rate", ylim=(0, 1))
    ax.legend()
    return _svg(plt, fig)


def _threshold(ax: Any, threshold: float) -> None:
    ax.axvline(threshold, color="black", linestyle="--", linewidth=1.2,
               label=f"threshold {threshold:.3f}")  # fmt: skip


def _similarities(plt: Any, outcomes: Sequence[Outcome], threshold: float) -> str:
    fig, ax = plt.subplots(figsize=(6, 3.6))
    groups: dict[str, list[float | None]] = {
        "correct hits": [
            o.similarity for o in outcomes if o.layer == "semantic" and not o.false_hit
        ],
        "false hits": [o.similarity for o in outcomes if o.false_hit],
        "misses (best candidate)": [
            o.best_similarity for o in outcomes if o.layer is None and o.best_similarity is not None
        ],
    }
    bins = np.linspace(0.0, 1.0, 51)
    for (name, values), color in zip(
        groups.items(), ("#2ca02c", "#d62728", "#7f7f7f"), strict=True
    ):
        if values:
            ax.hist(values, bins=bins, alpha=0.6, label=f"{name} ({len(values)})", color=color)
    _threshold(ax, threshold)
    ax.set(xlabel="cosine similarity to the nearest entry", ylabel="lookups")
    ax.legend(fontsize=9)
    return _svg(plt, fig)


def _savings(plt: Any, figures: Figures) -> str:
    fig, ax = plt.subplots(figsize=(6, 3.6))
    layers = {"exact": figures.exact, "semantic": figures.semantic}
    ax.bar(
        list(layers),
        [layer.tokens_saved for layer in layers.values()],
        color=["#1f77b4", "#ff7f0e"],
    )
    for i, layer in enumerate(layers.values()):
        usd = "unpriced" if layer.usd_saved is None else f"${layer.usd_saved:,.4f}"
        ax.annotate(
            f"{layer.tokens_saved:,} tokens\n{usd}",
            (i, layer.tokens_saved),
            ha="center",
            va="bottom",
            fontsize=12,
            fontweight="bold",
        )
    ax.set(ylabel="tokens saved")
    ax.tick_params(labelsize=11)
    ax.margins(y=0.3)
    return _svg(plt, fig)


def _sweep(plt: Any, sweep: Sequence[Figures], threshold: float) -> str:
    fig, ax = plt.subplots(figsize=(6, 3.6))
    xs = [f.threshold for f in sweep]
    ax.plot(xs, [f.hit_rate for f in sweep], label="hit rate")
    ax.plot(
        xs,
        [np.nan if f.semantic.precision is None else f.semantic.precision for f in sweep],
        label="semantic precision",
    )
    ax.plot(xs, [np.nan if f.recall is None else f.recall for f in sweep], label="semantic recall")
    _threshold(ax, threshold)
    ax.set(xlabel="threshold", ylim=(0, 1.02))
    ax.legend(fontsize=9)
    return _svg(plt, fig)
